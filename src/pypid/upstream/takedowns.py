"""
The files an upstream took down: kept here, then no longer listed by the
upstream's page of their project (one version deleted, or the project gone).

Why a table of its own, when the pages already withhold such a file: a
takedown is an event an operator must see (an audit entry, a metric,
C{pypid-upstream takedowns}), once, when it is first seen, and across
restarts; and a file listed again is served again, said once too. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from pypid.core.indexes.names_by_project import NamesByProject

#: The most takedowns remembered (the oldest are forgotten past it: the
#: files stay withheld, as no page lists them; only the record goes).
MAX_TAKEDOWNS = 100_000


@attrs.frozen
class Takedown:
    """
    A kept file the upstream stopped listing.

    @ivar seen: when the page that no longer listed it was fetched.
    """

    project: str
    filename: str
    seen: float

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class Takedowns:
    """The takedowns an upstream's pages showed, by filename."""

    _by_name: dict[str, Takedown] = attrs.field(factory=dict)
    #: whether the table changed since the last save
    changed: bool = False
    # the filenames of each project's takedowns: a page looks at its own
    _by_project: NamesByProject = attrs.field(factory=NamesByProject, init=False)

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, filename: str) -> bool:
        return filename in self._by_name

    def filenames(self) -> Iterable[str]:
        """The filenames taken down, in no order."""
        return self._by_name.keys()

    def all(self) -> list[Takedown]:
        """Every takedown, the oldest seen first."""
        return sorted(self._by_name.values(), key=lambda t: (t.seen, t.filename))

    def seen(self, project: str, kept: Iterable[str], listed: Iterable[str] | None,
             now: float) -> tuple[list[Takedown], list[Takedown]]:
        """
        What a page of C{project} fetched at C{now} shows: C{(taken down,
        listed again)} of the C{kept} files; C{listed} the page's filenames
        (L{None}: the upstream has no such project any more).
        """
        names = frozenset(listed or ())
        kept = list(kept)
        here = frozenset(kept)
        down = [Takedown(project, filename, now) for filename in kept
                if filename not in names and filename not in self._by_name]
        mine = [self._by_name[name] for name in self._by_project.of(project)]
        back = [t for t in mine if t.filename in names and t.filename in here]
        # (a file no longer kept, evicted since, is withheld no more: forgotten)
        gone = [t for t in mine if t.filename not in here or t.filename in names]
        for takedown in gone:
            self._remove(takedown.filename)
        for takedown in down:
            self._add(takedown)
        if len(self._by_name) > MAX_TAKEDOWNS:
            for oldest in self.all()[:len(self._by_name) - MAX_TAKEDOWNS]:
                self._remove(oldest.filename)
        if down or gone:
            self.changed = True
        return down, back

    def _add(self, takedown: Takedown) -> None:
        self._by_name[takedown.filename] = takedown
        self._by_project.add(takedown.project, takedown.filename)

    def _remove(self, filename: str) -> None:
        takedown = self._by_name.pop(filename, None)
        if takedown is not None:
            self._by_project.discard(takedown.project, filename)

    def to_json(self) -> list[dict[str, Any]]:
        """The table, for the upstream's saved state."""
        return [t.to_json() for t in self.all()]

    def load_json(self, data: object) -> None:
        """Take back what L{to_json} gave (what cannot be read is left out)."""
        self._by_name = {}
        self._by_project.clear()
        if not isinstance(data, list):
            return
        for item in data[-MAX_TAKEDOWNS:]:
            if not isinstance(item, dict):
                continue
            project, filename, seen = item.get("project"), item.get("filename"), item.get("seen")
            if (isinstance(project, str) and isinstance(filename, str)
                    and isinstance(seen, (int, float)) and not isinstance(seen, bool)):
                self._add(Takedown(project, filename, float(seen)))
