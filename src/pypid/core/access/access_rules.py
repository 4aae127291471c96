"""
The grammar of access rules: C{[acl]} lines (L{parse_rule}), project
patterns, and an index's grants (L{IndexGrants}), read by the configuration
and the access model (L{pypid.auth.policy}); tokens and publishers share
its patterns.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet

import attrs

from pypid.core.indexes.index_names import NAME as INDEX_NAME
from pypid.core.indexes.index_names import NAME_FORMS

READ, WRITE = "r", "w"

_GRANT = re.compile(r"^(user:[^\s,]+|group:[^\s,]+|everyone|authenticated)\s+(rw|wr|r|w)$")
_PATTERN = re.compile(r"^[A-Za-z0-9._*?\[\]-]+$")


class RuleError(ValueError):
    """A rule cannot be read; the message says why."""


@attrs.frozen
class Rule:
    """
    The grants of the projects a pattern names.

    @ivar pattern: a normalized project name, or a glob over normalized names.
    @ivar grants: C{((principal, frozenset of "r"/"w"), ...)} in file order.
    @ivar order: the rule's place in the file (breaks ties between patterns).
    """

    pattern: str
    grants: tuple[tuple[str, frozenset[str]], ...]
    order: int = 0
    #: the index it is for (C{[acl] release/acme-*}), or L{None} for every index
    index: str | None = None

    def specificity(self) -> tuple[int, int, int]:
        """Sort key: exact names first, then more literal characters, then file order."""
        return pattern_specificity(self.pattern, self.order)


def pattern_specificity(pattern: str, order: int = 0) -> tuple[int, int, int]:
    """
    How specific a project pattern is, as a sort key, the most specific
    least: C{[acl]} and C{[publishers]} both give a project to the most
    specific pattern naming it.
    """
    exact = not any(c in pattern for c in "*?[")
    literal = len(re.sub(r"\[[^\]]*\]|[*?]", "", pattern))
    return (0 if exact else 1, -literal, order)


def normalize_pattern(pattern: str) -> str:
    """Normalize a project name or glob like a project name, keeping C{*?[]}."""
    pattern = pattern.strip()
    if not pattern or not _PATTERN.match(pattern):
        raise RuleError(f"{pattern!r} is not a project name or glob")
    return re.sub(r"[-_.]+", "-", pattern).lower()


def parse_rule(pattern: str, text: str, order: int = 0) -> Rule:
    """
    Read one C{[acl]} line: C{pattern = grant, grant, ...}, a grant being a
    principal and C{r}, C{w} or C{rw}. A pattern may name its index
    (C{release/acme-*}): there it decides before every rule for all indexes.

    @raise RuleError: naming the part that cannot be read.
    """
    index: str | None = None
    if "/" in pattern:
        index, _, pattern = pattern.partition("/")
        index = index.strip()
        if not INDEX_NAME.match(index):
            raise RuleError(f"{index!r} is not an index name: {NAME_FORMS}")
    grants: list[tuple[str, frozenset[str]]] = []
    for part in text.split(","):
        part = " ".join(part.split())
        if not part:
            continue
        match = _GRANT.match(part)
        if not match:
            raise RuleError(
                f"{part!r}: expected a principal (user:NAME, group:NAME, everyone or "
                "authenticated) and r, w or rw")
        grants.append((match.group(1), frozenset(match.group(2))))
    if not grants:
        raise RuleError("a rule needs at least one grant, such as 'group:dev rw'")
    return Rule(normalize_pattern(pattern), tuple(grants), order, index)


#: C{[auth] read} value: anyone, authenticated or not, may read.
EVERYONE = "everyone"
#: C{[auth] read} and C{upload} value: only an authenticated user may.
AUTHENTICATED = "authenticated"


@attrs.frozen
class IndexGrants:
    """Who may read and upload to one index (C{[index:NAME]}); no one uploads to a view."""

    read: frozenset[str]
    upload: frozenset[str]

    def admits(self, permission: str, principals: AbstractSet[str]) -> bool:
        """Whether one of C{principals} has C{permission} (L{READ} or L{WRITE}) here."""
        granted = self.read if permission == READ else self.upload
        return not granted.isdisjoint(principals)
