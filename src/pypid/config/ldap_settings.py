"""
The C{[ldap]} section: the directory (OpenLDAP, Active Directory) whose
users may log in beside those of C{[users]}, and whose groups are pypid
groups. Without C{url} there is none, and the other keys must stay unset.
"""

from __future__ import annotations

import attrs

from pypid.config.values import (
    Fail,
    Keys,
    Values,
    is_loopback_host,
    parse_boolean,
    parse_optional_path,
)
from pypid.core.access.ldap_syntax import (
    PLACEHOLDERS,
    LDAPServer,
    check_filter_template,
    parse_ldap_url,
)
from pypid.core.util.units import is_zero_duration, parse_duration


@attrs.frozen
class LDAPConfig:
    """The C{[ldap]} section (see C{docs/configuration.rst})."""

    #: the servers, tried in order (L{pypid.auth.ldap.LDAPServer}s); none: no directory
    url: tuple[LDAPServer, ...] = ()
    #: StartTLS on C{ldap://} servers
    starttls: bool = True
    #: the service account that searches, or L{None} to search anonymously
    bind_dn: str | None = None
    bind_password: str = attrs.field(default="", repr=False)
    user_base: str | None = None
    user_filter: str = "(uid={user})"
    #: the attribute of a user's entry that must equal the typed name exactly
    user_name_attribute: str = "uid"
    #: where groups are searched; L{None}: no directory groups
    group_base: str | None = None
    group_filter: str = "(|(member={dn})(uniqueMember={dn}))"
    group_name_attribute: str = "cn"
    ca_bundle: str | None = None
    timeout: float = 5.0
    cache_ttl: float = 300.0

    @property
    def key(self) -> str | None:
        """
        What names this directory for the sessions and tokens of its users
        (its servers, where its users are, and how a name finds its entry):
        one that points elsewhere is another directory, whose users are
        other people. L{None} without a directory.
        """
        if not self.url:
            return None
        key = f"ldap {' '.join(str(server) for server in self.url)} {self.user_base}"
        # (another filter or attribute may make the same name another person;
        # named only when not the defaults, so that a key stays what it was)
        if (self.user_filter, self.user_name_attribute) != ("(uid={user})", "uid"):
            key += f" filter={self.user_filter} name={self.user_name_attribute}"
        return key


def _urls(value: str) -> tuple[LDAPServer, ...]:
    """One or more C{ldap://} or C{ldaps://} URLs, separated by spaces or lines."""
    return tuple(parse_ldap_url(word) for word in value.split())


def _dn(value: str) -> str | None:
    """A distinguished name (C{ou=people,dc=corp,dc=example}), or L{None} when empty."""
    value = value.strip()
    if not value:
        return None
    if "=" not in value or any(c in value for c in "\0\r\n"):
        raise ValueError(f"{value!r} is not a distinguished name, such as "
                         "ou=people,dc=corp,dc=example")
    return value


def _text(value: str) -> str:
    return value.strip()


def _attribute(value: str) -> str:
    value = value.strip()
    if not value or not value.replace("-", "").replace(";", "").isalnum() \
            or not value[0].isalpha() or not value.isascii():
        raise ValueError(f"{value!r} is not an attribute name, such as cn")
    return value


#: The most C{cache_ttl} may be: the credential cache's own TTL
#: (L{pypid.auth.verifier.PasswordVerifier}), which bounds it.
MAX_CACHE_TTL = 300.0


def _cache_ttl(value: str) -> float:
    """A duration of at most 5 minutes, or 0 to check with the directory at every request."""
    if is_zero_duration(value):
        return 0.0
    seconds = parse_duration(value)
    if seconds > MAX_CACHE_TTL:
        raise ValueError(f"{value.strip()!r} is longer than the most, 5m (the credential "
                         "cache keeps a login 5 minutes at most)")
    return seconds


#: key -> (default, parser)
LDAP_KEYS: Keys = {
    "url": ("", _urls),
    "starttls": ("yes", parse_boolean),
    "bind_dn": ("", _dn),
    "bind_password": ("", lambda value: value),
    "user_base": ("", _dn),
    "user_filter": ("(uid={user})", _text),
    "user_name_attribute": ("uid", _attribute),
    "group_base": ("", _dn),
    "group_filter": ("(|(member={dn})(uniqueMember={dn}))", _text),
    "group_name_attribute": ("cn", _attribute),
    "ca_bundle": ("", parse_optional_path),
    "timeout": ("5s", parse_duration),
    "cache_ttl": ("5m", _cache_ttl),
}


def check_ldap(values: Values, fail: Fail) -> None:
    """
    Check C{[ldap]} as a whole: without C{url}, nothing else is set; with it,
    C{user_base} is, the filters hold their placeholders, a service account
    has a password (a bind with an empty one is an "unauthenticated bind",
    answered as anonymous), and no password crosses the network unencrypted.
    """
    servers = values["ldap", "url"]
    if not servers:
        for key, (default, parse) in LDAP_KEYS.items():
            if key != "url" and values["ldap", key] != parse(default):
                fail("ldap", key, "set, but [ldap] url is empty: set url to the directory "
                     "(such as ldaps://ldap.corp.example), or leave [ldap] out",
                     [("ldap", "url")])
        return
    if values["ldap", "user_base"] is None:
        fail("ldap", "user_base", "required with [ldap] url: the DN under which users are "
             "searched, such as ou=people,dc=corp,dc=example", [("ldap", "url")])
    bind_dn, password = values["ldap", "bind_dn"], values["ldap", "bind_password"]
    if bind_dn is not None and not password:
        fail("ldap", "bind_password", "empty, but bind_dn is set: a bind with a DN and no "
             "password is an unauthenticated bind, which servers treat as anonymous; set "
             "the service account's password, or empty bind_dn to search anonymously",
             [("ldap", "bind_dn")])
    if bind_dn is None and password:
        fail("ldap", "bind_password", "set, but bind_dn is empty: set bind_dn to the "
             "service account's DN", [("ldap", "bind_dn")])
    for key, needed in (("user_filter", ("{user}",)), ("group_filter", PLACEHOLDERS)):
        try:
            check_filter_template(values["ldap", key], needed)
        except ValueError as e:
            fail("ldap", key, str(e))
    if not values["ldap", "starttls"]:
        for server in servers:
            if not server.secure and not is_loopback_host(server.host):
                fail("ldap", "starttls", f"no, but {server} is reached over the network "
                     "with plain LDAP: passwords would cross it unencrypted; use StartTLS "
                     "(starttls = yes) or an ldaps:// URL", [("ldap", "url")])
