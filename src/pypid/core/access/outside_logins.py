"""
People whose logins pypid does not keep: a directory's users (C{[ldap]})
and a single sign-on provider's people (C{[sso]}). They are known only
when they log in, so what they open or issue carries where they logged in
(L{LoginSource}) and their groups then, and stands for them only while
the configuration in force still lets that in (L{OutsideLogins.admits})
and no local user has their name (the caller checks that).
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
    @ivar person: who they are to that source where a name is not enough:
        a local account's id (so a name removed and added again is a new
        person), the provider's C{sub}; empty for the directory.
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

    @ivar directory: C{[ldap]}'s key (L{pypid.auth.factory.directory_key}), or L{None}.
    @ivar provider: C{[sso]}'s key (L{pypid.core.access.sso_flow.provider_key}), or L{None}.
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
        Whether a session or token of C{user} from C{source}, with the
        C{groups} and C{key} it remembers, still stands for them.
        """
        if source not in (DIRECTORY, PROVIDER) or key != self.key_of(source):
            return False
        return source == DIRECTORY or self.mapping.allows(user, groups)
