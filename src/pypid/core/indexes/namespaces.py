"""
Namespace grants (PEP 752): a namespace reserved in an index for its
owners, who alone may create projects named the namespace or starting with
it and a hyphen (C{acme}, C{acme-cli}; not C{acmecli}).

Why grants are configuration (C{[namespaces]}: C{acme = group:platform},
C{release/acme = user:bob hidden}): who owns a namespace is the company's
decision, reviewed with the access rules and reloaded with them. PEP 752's
MUSTs are checked as they are read: a valid project name, at most
L{MAX_DEPTH} parts, and no overlapping ownership. C{hidden} is pypid's own:
such a grant is listed only to its owners and the admins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import attrs

from pypid.core.dists.names import is_valid_name, normalize

#: The most hyphen-separated parts of a namespace (PEP 752: a repository
#: SHOULD bound the depth).
MAX_DEPTH = 3

#: The word of a grant's value that hides it.
HIDDEN = "hidden"


class InvalidGrant(ValueError):
    """A grant that cannot be used; the message says why."""


@attrs.frozen
class Grant:
    """
    A normalized namespace reserved for its C{owners} (principals,
    C{user:NAME} and C{group:NAME}) in C{index} (L{None}: every hosted one).
    """

    name: str
    owners: frozenset[str]
    hidden: bool = False
    index: str | None = None

    def covers(self, project: str) -> bool:
        """Whether the normalized C{project} falls in the namespace."""
        return project == self.name or project.startswith(self.name + "-")


def parse_grant(key: str, value: str) -> Grant:
    """
    The grant of one C{[namespaces]} line: C{key} the namespace, optionally
    after its index (C{release/acme}); C{value} its owners (separated by
    spaces or commas), and C{hidden}. L{InvalidGrant} names what is wrong.
    """
    index, _, name = key.rpartition("/")
    name = name.strip()
    if not is_valid_name(name):
        raise InvalidGrant(f"{name!r} is not a project name")
    normalized = normalize(name)
    if normalized.count("-") + 1 > MAX_DEPTH:
        raise InvalidGrant(f"{normalized}: at most {MAX_DEPTH} parts (a-b-c)")
    words = [w for w in re.split(r"[\s,]+", value) if w]
    hidden = HIDDEN in words
    owners = frozenset(w for w in words if w != HIDDEN)
    if not owners:
        raise InvalidGrant(f"{normalized}: name its owners (user:NAME or group:NAME)")
    for owner in owners:
        if not owner.startswith(("user:", "group:")) or len(owner.split(":", 1)[1]) == 0:
            raise InvalidGrant(f"{owner!r}: an owner is user:NAME or group:NAME")
    return Grant(normalized, owners, hidden, index.strip() or None)


@attrs.frozen
class NamespaceGrants:
    """Every grant of the configuration, in file order."""

    grants: tuple[Grant, ...] = ()
    # the grants by name in each index that has its own, and in every other
    # (L{None}): worked out once, read at each upload
    _scopes: dict[str | None, dict[str, Grant]] = attrs.field(init=False, eq=False,
                                                             repr=False)

    def __attrs_post_init__(self) -> None:
        scopes = {None, *(grant.index for grant in self.grants)}
        object.__setattr__(self, "_scopes", {scope: _gather(self.grants, scope)
                                             for scope in scopes})

    @classmethod
    def of(cls, grants: Iterable[Grant]) -> NamespaceGrants:
        """
        The grants, checked against each other in each index: one name
        once, and a grant inside another only with the same owners (else
        L{InvalidGrant} names the two).
        """
        found = cls(tuple(grants))
        for mine in found._scopes.values():
            for grant in mine.values():
                parent = found._nearest_parent(mine, grant.name)
                if parent is not None and parent.owners != grant.owners:
                    raise InvalidGrant(
                        f"{grant.name} is inside {parent.name}, granted to other owners: "
                        "grants must not overlap ownership (PEP 752)")
                if parent is not None and parent.hidden and not grant.hidden:
                    # (listing it would name the hidden one to everyone)
                    raise InvalidGrant(f"{grant.name} is inside {parent.name}, which is "
                                       "hidden: it must be hidden too")
        return found

    def _in(self, index: str | None) -> dict[str, Grant]:
        """The grants that apply in C{index}, by name."""
        return self._scopes.get(index) or self._scopes[None]

    @staticmethod
    def _nearest_parent(grants: Mapping[str, Grant], name: str) -> Grant | None:
        parts = name.split("-")
        for depth in range(len(parts) - 1, 0, -1):
            parent = grants.get("-".join(parts[:depth]))
            if parent is not None:
                return parent
        return None

    def in_force(self, index: str) -> list[Grant]:
        """The grants that apply in C{index} (a view: those for every hosted index)."""
        return list(self._in(index).values())

    def granted(self, name: str, index: str) -> Grant | None:
        """The grant of the normalized namespace C{name} in C{index}, or L{None}."""
        return self._in(index).get(name)

    def matching(self, project: str, index: str) -> list[Grant]:
        """The grants of C{index} the normalized C{project} falls in, the outermost first."""
        grants = self._in(index)
        parts = project.split("-")
        return [grants[name] for name in ("-".join(parts[:depth])
                                          for depth in range(1, len(parts) + 1))
                if name in grants]

    def parent(self, name: str, index: str) -> str | None:
        """PEP 752's C{parent}: the namespace one part shorter, when it is granted."""
        if "-" not in name:
            return None
        up = name.rsplit("-", 1)[0]
        return up if up in self._in(index) else None

    def children(self, name: str, index: str) -> list[str]:
        """PEP 752's C{children}: the granted namespaces one part longer."""
        depth = name.count("-") + 1
        return sorted(n for n in self._in(index)
                      if n.startswith(name + "-") and n.count("-") + 1 == depth + 1)


def _gather(grants: Iterable[Grant], index: str | None) -> dict[str, Grant]:
    """
    The C{grants} that apply in C{index} (L{None}: those for every index),
    by name; an index's own grant takes the place of the one for every
    index. L{InvalidGrant}: a name granted twice in one scope.
    """
    found: dict[str, Grant] = {}
    for grant in grants:
        if grant.index is None or grant.index == index:
            if grant.name in found and found[grant.name].index == grant.index:
                raise InvalidGrant(f"{grant.name} is granted twice")
            if grant.name not in found or grant.index is not None:
                found[grant.name] = grant
    return found


def private_globs(grants: NamespaceGrants) -> tuple[str, ...]:
    """
    The names every grant reserves (in any index), as C{[upstream] private}
    globs: C{acme} and C{acme-*}. A namespace is never asked upstream, so a
    project someone publishes there is not served in its place.
    """
    return tuple(dict.fromkeys(glob for grant in grants.grants
                               for glob in (grant.name, grant.name + "-*")))


def refusal(grants: Sequence[Grant], principals: Iterable[str], admin: bool) -> Grant | None:
    """
    The grant of C{grants} (L{NamespaceGrants.matching}) that refuses someone
    of C{principals} a new project, or L{None}: they own every one (an admin
    owns them all).
    """
    if admin:
        return None
    held = frozenset(principals)
    return next((grant for grant in grants if not grant.owners & held), None)
