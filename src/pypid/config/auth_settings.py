"""
The C{[auth]}, C{[users]}, C{[groups]} and C{[acl]} sections: who may read
and upload, the users (with those of an htpasswd file), their groups, the
admins and the per-project rules. The last three have no fixed keys: their
keys are the names the administrator chooses (L{read_principals}).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from pypid.config.values import (
    Fail,
    Items,
    Keys,
    Values,
    choice,
    parse_optional_path,
    parse_path,
    text_of,
    whole_number,
)
from pypid.core.access.access_rules import Rule, RuleError, parse_rule
from pypid.core.access.addresses import IPV6_PREFIX
from pypid.core.access.credential_syntax import USER_NAME, parse_hash, parse_htpasswd
from pypid.core.util.units import parse_duration


@attrs.frozen
class AuthConfig:
    """The C{[auth]} section: who may read and who may upload, and the admins."""

    read: str
    upload: str
    #: user names, and C{group:NAME} for the users of a group
    admins: tuple[str, ...] = ()
    #: where API tokens are kept (their digests; mode 0600)
    tokens: str = "var/tokens.json"
    #: an htpasswd file of more users (bcrypt or argon2id), or L{None}
    htpasswd: str | None = None
    #: bits of an IPv6 address the login throttle counts as one client
    #: (L{pypid.auth.throttle.counted_client})
    throttle_ipv6_prefix: int = IPV6_PREFIX
    #: where the browser sessions are kept (mode 0600); L{None}:
    #: C{sessions.json} beside the snapshot
    sessions: str | None = None
    #: seconds a browser session lasts unused, and at most
    session_idle: float = 30 * 60.0
    session_lifetime: float = 12 * 3600.0


#: What a user or group name is made of, for a person.
NAME_CHARACTERS = "1 to 64 letters, digits, '.', '_', '@' or '-'"


def _names(value: str) -> tuple[str, ...]:
    """Whitespace-separated user (or group) names."""
    names = tuple(value.split())
    for name in names:
        if not USER_NAME.match(name):
            raise ValueError(f"{name!r}: a name is {NAME_CHARACTERS}")
    return names


def _admins(value: str) -> tuple[str, ...]:
    """User names, and C{group:NAME} for every user of a group."""
    admins = tuple(value.split())
    for admin in admins:
        if not USER_NAME.match(admin.removeprefix("group:")):
            raise ValueError(f"{admin!r}: an admin is a user name or group:NAME, a name being "
                             f"{NAME_CHARACTERS}")
    return admins


#: key -> (default, parser)
AUTH_KEYS: Keys = {
    "read": ("everyone", choice("everyone", "authenticated")),
    "upload": ("authenticated", choice("authenticated")),
    "admins": ("", _admins),
    "tokens": ("var/tokens.json", parse_path),
    "htpasswd": ("", parse_optional_path),
    "throttle_ipv6_prefix": (str(IPV6_PREFIX), whole_number(1, 128)),
    "sessions": ("", parse_optional_path),
    "session_idle": ("30m", parse_duration),
    "session_lifetime": ("12h", parse_duration),
}

#: Sections whose keys are names chosen by the administrator.
FREE_SECTIONS = {"users", "groups", "acl"}


def _user(name: str, value: str) -> str:
    if not USER_NAME.match(name):
        raise ValueError(f"a user name is {NAME_CHARACTERS}")
    parse_hash(value.strip())
    return value.strip()


#: What a principal is, for a person (C{[acl]}'s grants, an index's C{read}).
PRINCIPAL_FORMS = ("a principal is everyone, authenticated, user:NAME or group:NAME, a name "
                   f"being {NAME_CHARACTERS}")


def parse_principals(value: str) -> tuple[str, ...]:
    """Principals (C{group:dev, user:ci}) as C{[acl]} spells them, without repeats."""
    principals: list[str] = []
    for principal in value.replace(",", " ").split():
        kind, colon, name = principal.partition(":")
        if not (principal in ("everyone", "authenticated")
                or (colon and kind in ("user", "group") and USER_NAME.match(name))):
            raise ValueError(f"{principal!r}: {PRINCIPAL_FORMS}")
        if principal not in principals:
            principals.append(principal)
    return tuple(principals)


def groups_from_outside(values: Values) -> bool:
    """Whether a group C{[groups]} does not define may be a directory's or an SSO provider's."""
    return bool(values.get(("ldap", "url"))) or values.get(("sso", "issuer")) is not None


def check_principal(principal: str, users: Mapping[str, str],
                    groups: Mapping[str, frozenset[str]], directory: bool) -> None:
    """Check that the user or group a principal names exists (a group maybe in the C{directory})."""
    kind, _, who = principal.partition(":")
    if kind == "user" and who not in users:
        raise ValueError(f"{principal}: {who!r} is not a user of [users]")
    if kind == "group" and who not in groups and not directory:
        raise ValueError(f"{principal}: {who!r} is not a group of [groups]")


def read_principals(items: Items, values: Values, fail: Fail, files: dict[str, str]
                    ) -> tuple[dict[str, str], dict[str, frozenset[str]], list[Rule]]:
    """
    Read C{[users]} (with C{[auth] htpasswd}'s file), C{[groups]} and C{[acl]},
    each name checked against the others and C{[auth] admins} against the
    users; return C{(users, groups, rules)}.
    """
    directory = groups_from_outside(values)
    users: dict[str, str] = {}
    # (every user read before any is refused: several weak entries are
    # told at once, not one a start)
    refused: list[tuple[str, str]] = []
    for name, value in items("users"):
        try:
            users[name] = _user(name, value)
        except ValueError as e:
            refused.append((name, str(e)))
    if len(refused) == 1:
        fail("users", *refused[0])
    if refused:
        fail("users", None, _refused_users(refused), [("users", name) for name, _ in refused])

    htpasswd = values["auth", "htpasswd"]
    if htpasswd is not None:
        try:
            more = parse_htpasswd(text_of(htpasswd, files), htpasswd)
        except ValueError as e:
            fail("auth", "htpasswd", str(e))
        for name in more:
            if name in users:
                fail("auth", "htpasswd", f"user {name!r} is both in [users] and in {htpasswd}")
        users.update(more)
    groups: dict[str, frozenset[str]] = {}
    for name, value in items("groups"):
        try:
            if not USER_NAME.match(name):
                raise ValueError(f"a group name is {NAME_CHARACTERS}")
            members = _names(value)
            for member in members:
                if member not in users:
                    raise ValueError(f"{member!r} is not a user of [users]")
            groups[name] = frozenset(members)
        except ValueError as e:
            fail("groups", name, str(e))
    for admin in values["auth", "admins"]:
        group = admin.removeprefix("group:")
        if group != admin:
            if group not in groups and not directory:
                fail("auth", "admins", f"{admin}: {group!r} is not a group of [groups] (nor "
                     "of a directory or a provider: [ldap] url and [sso] issuer are empty)")
        elif admin not in users:
            fail("auth", "admins", f"{admin!r} is not a user of [users]")
    rules: list[Rule] = []
    for order, (pattern, value) in enumerate(items("acl")):
        try:
            rule = parse_rule(pattern, value, order)
            for principal, _ in rule.grants:
                check_principal(principal, users, groups, directory)
        except (RuleError, ValueError) as e:
            fail("acl", pattern, str(e))
        rules.append(rule)
    return users, groups, rules


def _refused_users(refused: list[tuple[str, str]]) -> str:
    """
    The one message of several users refused, C{(name, message)} (what is
    wrong, then C{; } and what to do): each user with what is wrong, then
    each remedy once.
    """
    listed = []
    remedies: dict[str, None] = {}
    for name, message in refused:
        what, _, remedy = message.partition("; ")
        listed.append(f"{name} ({what})")
        if remedy:
            remedies[remedy] = None
    return (f"users {', '.join(listed)} cannot be used"
            + "".join(f"; {remedy}" for remedy in remedies))

