"""
People whose logins pypid does not keep: the users of a
directory (C{[ldap]}) and the people of a single sign-on provider
(C{[sso]}), and what of them a browser session or an API token of theirs
still stands for once the configuration is read again.

A user of C{[users]} or the htpasswd file is checked against their
password's hash, which pypid has. A directory's user or a provider's
person is known only when they log in: a session they opened, or a token
they issued, carries where they logged in (L{LoginSource}) and the groups
they had then, and stands for them only while the configuration in force
still lets that in (L{OutsideLogins.admits}): the same
directory (its servers and user base); the same provider and client,
whose C{[sso] allow} still lets them in; and never once a local user has
their name (the caller checks that, against its users).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from pypid.core.access.sso_flow import ClaimMapping

#: Where a person's login was checked: a password pypid keeps, the
#: directory, or the single sign-on provider.
PASSWORD, DIRECTORY, PROVIDER = "password", "ldap", "sso"
SOURCES = frozenset({PASSWORD, DIRECTORY, PROVIDER})

#: The longest a token of a person from outside may live: pypid cannot see
#: them leave the directory or the provider, so their tokens must end.
MAX_OUTSIDE_TOKEN_LIFETIME = 90 * 24 * 3600.0


@attrs.frozen
class LoginSource:
    """
    Where a person logged in, as what they open or issue remembers it.

    @ivar source: one of L{SOURCES}.
    @ivar groups: the directory's or the provider's groups they had then.
    @ivar provider: the key of the directory or provider they came through
        (L{OutsideLogins.key_of}); empty for a password.
    @ivar person: who they are to that source, where a name is not enough:
        a local account's own id (given when the name first came into the
        configuration, so that a name removed and added again is a new
        person), the provider's subject (C{sub}); empty for the directory,
        whose name is its person.
    """

    source: str = PASSWORD
    groups: frozenset[str] = frozenset()
    provider: str = ""
    person: str = ""

    @property
    def outside(self) -> bool:
        """Whether pypid does not keep this person's login."""
        return self.source != PASSWORD


#: A user of C{[users]} or the htpasswd file (whose account id the
#: verifier adds, L{pypid.auth.verifier.PasswordVerifier.local_login}).
LOCAL = LoginSource(PASSWORD)


@attrs.frozen
class OutsideLogins:
    """
    Who from outside the configuration in force lets in.

    @ivar directory: C{[ldap]}'s directory (L{pypid.auth.factory.directory_key}:
        its servers and where its users are), or L{None} without one.
    @ivar provider: C{[sso]}'s provider and client
        (L{pypid.core.access.sso_flow.provider_key}), or L{None} without one.
    @ivar mapping: C{[sso]}'s claim mapping (its C{allow}).
    """

    directory: str | None = None
    provider: str | None = None
    mapping: ClaimMapping = ClaimMapping()

    def key_of(self, source: str) -> str | None:
        """The directory's or the provider's key in force for C{source}, or L{None}."""
        return self.directory if source == DIRECTORY else \
            self.provider if source == PROVIDER else None

    def admits(self, source: str, user: str, groups: Iterable[str], key: str) -> bool:
        """
        Whether a session or token of C{user} from C{source} (with the
        C{groups} it remembers, and the C{key} of the directory or provider
        it came through) still stands for them: the same directory, or the
        same provider and client whose C{allow} still lets them in.
        """
        if source not in (DIRECTORY, PROVIDER) or key != self.key_of(source):
            return False
        return source == DIRECTORY or self.mapping.allows(user, groups)
