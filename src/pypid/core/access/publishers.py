"""
The grammar of trusted publishing's configuration: C{[oidc] issuers} and
C{[publishers]} entries (L{PublisherRule}), read at start-up; the token
exchange (L{pypid.auth.oidc}) matches tokens against them.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

import attrs

from pypid.core.access.access_rules import RuleError, normalize_pattern
from pypid.core.dists.names import normalize

#: Claims pypid checks itself ([oidc] issuers and audience, the times,
#: replays): a rule may not name them.
RESERVED_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})

_CLAIM_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ISSUER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_issuers(value: str) -> tuple[tuple[str, str], ...]:
    """
    Read C{[oidc] issuers}: one C{NAME URL} per line, the URL as its tokens'
    C{iss} say it; C{((name, url), ...)} in file order.

    @raise ValueError: naming the line that cannot be used.
    """
    issuers: list[tuple[str, str]] = []
    for line in value.splitlines():
        words = line.split()
        if not words:
            continue
        if len(words) != 2:
            raise ValueError(f"{line.strip()!r}: expected a name and the issuer's URL, such as "
                             "'ci https://token.ci.example'")
        name, url = words
        if not _ISSUER_NAME.match(name):
            raise ValueError(f"{name!r}: an issuer name is 1 to 64 letters, digits, '.', '_' "
                             "or '-'")
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment \
                or parts.username or parts.password:
            raise ValueError(f"{url!r}: an issuer is an https:// URL with no query, as its "
                             "tokens' iss claim says it")
        for other, other_url in issuers:
            if other == name:
                raise ValueError(f"{name!r} names two issuers")
            if other_url == url:
                raise ValueError(f"{url!r} is given twice ({other} and {name})")
        issuers.append((name, url))
    return tuple(issuers)


@attrs.frozen
class PublisherRule:
    """
    One publisher of C{[publishers]}: the projects (C{pattern}, a normalized
    name or glob) a token of C{issuer} may publish when its claims equal
    C{claims}, C{((claim, value), ...)}; C{order} is its place in the file.
    """

    pattern: str
    issuer: str
    claims: tuple[tuple[str, str], ...]
    order: int = 0

    def mismatches(self, claims: Mapping[str, Any]) -> list[str]:
        """The names of this rule's claims that C{claims} (a token's) lacks or differs in."""
        return [name for name, wanted in self.claims
                if claim_text(claims.get(name)) != wanted]

    def covers(self, project: str) -> bool:
        """Whether the rule names C{project} (any spelling)."""
        return fnmatchcase(normalize(project), self.pattern)


def claim_text(value: object) -> str | None:
    """A claim as the text a rule compares: strings as they are, whole numbers as digits."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


#: What a minted token's identity starts with (user names hold no colon).
PUBLISHER_PREFIX = "publisher:"

#: The claims that name the repository a CI job ran in, the first a token
#: has used: GitHub Actions' C{repository}, GitLab CI's C{project_path}.
REPOSITORY_CLAIMS = ("repository", "project_path")


def _name_part(value: object) -> str | None:
    """A claim as a part of a publisher's name: a short printable text without spaces."""
    text = claim_text(value)
    if not text or len(text) > 255 or not text.isprintable() \
            or any(c.isspace() for c in text):
        return None
    return text


def publisher_name(issuer: str, claims: Mapping[str, Any],
                   rule: PublisherRule | None = None) -> str:
    """
    Who a token of C{issuer} publishes as: its minted token's identity and
    its share's key (L{pypid.core.access.shares}). Not the token's C{sub},
    which changes with each branch or environment and which an organisation
    may make the same for all its repositories, but the repository it ran
    in (L{REPOSITORY_CLAIMS}), else the claims of C{rule}, the first
    publisher it matched, else (no publisher matched) C{sub}.
    """
    for name in REPOSITORY_CLAIMS:
        repository = _name_part(claims.get(name))
        if repository is not None:
            return f"{PUBLISHER_PREFIX}{issuer}:{repository}"
    if rule is not None:
        return PUBLISHER_PREFIX + issuer + ":" + ",".join(
            f"{name}={value}" for name, value in rule.claims)
    return f"{PUBLISHER_PREFIX}{issuer}:sub={claim_text(claims.get('sub'))}"


def parse_publishers(pattern: str, text: str, order: int = 0) -> list[PublisherRule]:
    """
    Read one C{[publishers]} entry: C{project-or-glob = issuer:NAME
    CLAIM:VALUE ...}. Each C{issuer:} word starts a publisher, so an entry
    may hold several; a value holding spaces is quoted (C{environment:"prod east"}).

    @raise RuleError: naming the part that cannot be read.
    """
    normalized = normalize_pattern(pattern)
    try:
        words = shlex.split(text, comments=False, posix=True)
    except ValueError as e:
        raise RuleError(f"{' '.join(text.split())!r}: {e}")
    publishers: list[tuple[str, list[tuple[str, str]]]] = []
    for word in words:
        name, sep, value = word.partition(":")
        if not sep or not name or not value:
            raise RuleError(f"{word!r}: expected issuer:NAME or CLAIM:VALUE")
        if name == "issuer":
            publishers.append((value, []))
            continue
        if not publishers:
            raise RuleError(f"{word!r}: a publisher starts with issuer:NAME, the name of an "
                            "[oidc] issuer")
        claims = publishers[-1][1]
        if not _CLAIM_NAME.match(name):
            raise RuleError(f"{name!r} is not a claim name")
        if name in RESERVED_CLAIMS:
            raise RuleError(f"{name}: pypid checks that claim itself "
                            "([oidc] issuers and audience, the times, replays)")
        if any(name == other for other, _ in claims):
            raise RuleError(f"{name}: the claim is named twice")
        claims.append((name, value))
    if not publishers:
        raise RuleError("expected issuer:NAME and CLAIM:VALUE words")
    rules: list[PublisherRule] = []
    for issuer, claims in publishers:
        if not claims:
            raise RuleError(f"issuer:{issuer}: a publisher needs at least one CLAIM:VALUE "
                            "(without one, every token of the issuer could publish)")
        rules.append(PublisherRule(normalized, issuer, tuple(claims), order))
    return rules


@attrs.frozen
class PublishingSettings:
    """What trusted publishing is configured with (C{[oidc]} and C{[publishers]})."""

    audience: str = "pypid"
    issuers: tuple[tuple[str, str], ...] = ()
    rules: tuple[PublisherRule, ...] = ()
    leeway: float = 60.0
    lifetime: float = 900.0
    jwks_ttl: float = 3600.0
    jwks_min_refresh: float = 30.0
    timeout: float = 10.0

    def trust(self) -> tuple[object, ...]:
        """What a token's trust depends on: a change of it revokes minted tokens."""
        return (self.audience, self.issuers, self.rules)
