"""
What one index's JSON API says of its namespaces (PEP 752, API version
1.5): each project page's C{namespaces}, the C{namespaces} list and each
namespace's detail.

One L{IndexNamespaces} per index, shared by what renders its pages and what
answers its routes, so a reload of the grants reaches them all at once: its
L{IndexNamespaces.serial} moves, and whoever keeps pages drops them.

A hidden grant (pypid's own: PEP 752 dropped them) is shown only to its
owners and the admins (its own detail is a 404 to others). The grants a
project falls in have the same owners: a reader sees all or none hidden.

C{owned} is false for the projects whose first file (binned ones
included) others than the owners had uploaded when the grant came into
force (L{foreign_projects}, kept in L{pypid.core.indexes.grant_ledger}),
and on a composed page when any source found it so: it depends neither on
the files listed now nor on who reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs

from pypid.core.indexes.grant_ledger import GrantLedger
from pypid.core.indexes.namespaces import Grant, NamespaceGrants


class CreatedFile(Protocol):
    """What tells when, and by whom, a project was made: a file of it."""

    @property
    def upload_time(self) -> float | None: ...


def foreign_projects(grant: Grant,
                     projects: Iterable[tuple[str, Callable[[], Iterable[CreatedFile]]]],
                     groups: Mapping[str, frozenset[str]],
                     admins: frozenset[str] = frozenset()) -> set[str]:
    """
    The projects of C{grant}'s namespace among C{projects} (C{(normalized
    name, files())}, the files read only in the namespace) whose first file
    was uploaded by other than its owners, a member of a C{groups} group it
    names or one of the C{admins} (principals); an unknown uploader, an
    import's, is other.
    """
    owners = grant.owners | admins
    found = set()
    for name, files in projects:
        if not grant.covers(name):
            continue
        _, who = creation(files())
        held = set() if who is None else {f"user:{who}"} | {
            f"group:{group}" for group, members in groups.items() if who in members}
        if not held & owners:
            found.add(name)
    return found


def creation(files: Iterable[CreatedFile]) -> tuple[float | None, str | None]:
    """
    When the first of C{files} (by upload time) was uploaded, and who
    uploaded it (L{None}: unknown, an import's or an upstream's file).
    """
    first: CreatedFile | None = None
    for f in files:
        when = f.upload_time
        if when is not None and (first is None or when < first.upload_time):  # type: ignore[operator]
            first = f
    if first is None:
        return None, None
    return first.upload_time, getattr(first, "uploader", None)


@attrs.define(eq=False)
class IndexNamespaces:
    """
    The namespaces one index serves (see the module).

    @ivar serial: moved by each L{take}: pages rendered before are stale.
    """

    index: str
    _grants: NamespaceGrants = attrs.field(factory=NamespaceGrants)
    _ledger: GrantLedger = attrs.field(factory=GrantLedger)
    serial: int = 0
    #: whether a grant in force here is hidden (L{hides} is then worth asking)
    any_hidden: bool = attrs.field(default=False, init=False)
    _shown: list[Grant] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        self._settle()

    @property
    def in_use(self) -> bool:
        """
        Whether a namespace is in force here: only then do its JSON pages
        announce API 1.5 (clients that know 1.4, such as pypi-simple, warn
        at each such page, as PEP 629 asks of them).
        """
        return bool(self._shown)

    def take(self, grants: NamespaceGrants, ledger: GrantLedger) -> bool:
        """Serve C{grants} over C{ledger}; whether anything shown here changed (L{serial} moved)."""
        before = (self._in_force(), self._records())
        self._grants, self._ledger = grants, ledger
        self._settle()
        if (self._in_force(), self._records()) == before:
            return False
        self.serial += 1
        return True

    def like(self, index: str) -> IndexNamespaces:
        """The namespaces C{index} serves under the same grants as this one's."""
        return IndexNamespaces(index, self._grants, self._ledger)

    def follow(self, other: IndexNamespaces) -> bool:
        """L{take} what C{other} serves (an index made while it changed)."""
        return self.take(other._grants, other._ledger)

    def _settle(self) -> None:
        shown = self._in_force()
        self._shown = sorted(shown, key=lambda grant: grant.name)
        self.any_hidden = any(grant.hidden for grant in shown)

    def _in_force(self) -> list[Grant]:
        return self._grants.in_force(self.index)

    def _records(self) -> list[frozenset[str] | None]:
        return [self._ledger.before(grant) for grant in self._in_force()]

    # -- project pages -------------------------------------------------------------

    def matching(self, project: str) -> list[Grant]:
        """The grants here the normalized C{project} falls in, the outermost first."""
        return self._grants.matching(project, self.index)

    def hides(self, project: str) -> bool:
        """Whether a grant C{project} falls in is hidden (its page has two forms)."""
        return self.any_hidden and any(grant.hidden for grant in
                                       self._grants.matching(project, self.index))

    def entries(self, project: str, full: bool = False,
                own: bool = False) -> list[dict[str, Any]] | None:
        """
        The C{namespaces} of C{project}'s page: L{None} outside every
        grant; hidden grants only when C{full} (for their owners). C{own}:
        a hosted index's own project, else one composed of other indexes'.
        """
        grants = [grant for grant in self._grants.matching(project, self.index)
                  if full or not grant.hidden]
        if not grants:
            return None
        return [{"name": grant.name, "owned": self._owned(grant, project, own)}
                for grant in grants]

    def _owned(self, grant: Grant, project: str, own: bool) -> bool:
        entry = self._ledger.entry(grant)
        if entry is None:
            return False  # (no word of the grant: before the ledger is read, nothing served)
        if own:
            return f"{self.index}/{project}" not in entry.before
        return project not in entry.projects

    # -- the namespace routes ------------------------------------------------------

    def listed(self, sees: Callable[[Grant], bool]) -> list[dict[str, str]]:
        """The C{/namespaces} list: each grant shown, of those hidden only those C{sees}."""
        return [{"name": grant.name} for grant in self._shown
                if not grant.hidden or sees(grant)]

    def detail(self, name: str, sees: Callable[[Grant], bool],
               with_owner: Callable[[Grant], bool]) -> dict[str, Any] | None:
        """
        The C{/namespace/<name>} detail (L{None}: no such grant, or a hidden
        one not C{sees}); with C{owner} when C{with_owner(grant)}.
        """
        grant = self._grants.granted(name, self.index)
        if grant is None or (grant.hidden and not sees(grant)):
            return None
        parent = self._grants.parent(name, self.index)
        found: dict[str, Any] = {
            "name": grant.name,
            "parent": parent if parent is not None and self._visible(parent, sees) else None,
            "children": [child for child in self._grants.children(name, self.index)
                         if self._visible(child, sees)],
        }
        if with_owner(grant):
            found["owner"] = sorted(grant.owners)
        return found

    def _visible(self, name: str, sees: Callable[[Grant], bool]) -> bool:
        grant = self._grants.granted(name, self.index)
        return grant is not None and (not grant.hidden or sees(grant))


def served(spaces: IndexNamespaces | None) -> IndexNamespaces | None:
    """C{spaces} when namespaces are in use there (API 1.5), else L{None} (API 1.4)."""
    return spaces if spaces is not None and spaces.in_use else None
