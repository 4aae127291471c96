"""
The serials the pages carry, as the public index serves them: each
project of each index has the serial of the last journal entry that
changed it (C{_last-serial}, C{X-PyPI-Last-Serial}), and the index the
last of its projects'; an entry of another index, or of no project, moves
none of them. A mirror (bandersnatch) fetches again what moved since its
last run, and refuses a page whose serial is below the listing's.

Made of the journal's entries (L{ProjectSerials.take}), in any order and
more than once: a serial only grows. Kept in the snapshot with the serial
the journal was read up to, so a start reads only what came after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from pypid.core.records.audit_chain import BEGINNING, OK, Entry
from pypid.core.records.change_kinds import UNSHOWN_KINDS

#: C{changed(index, project)}: a project's serial moved (its kept pages are made again).
Changed = Callable[[str | None, str], None]


@attrs.frozen
class IndexSerials:
    """One index's view of the serials (L{pypid.core.indexes.rendered_pages.Serials})."""

    _table: ProjectSerials
    _index: str | None

    def __call__(self, project: str) -> int:
        """The serial of C{project}."""
        return self._table.of(self._index, project)

    @property
    def last(self) -> int:
        """The last serial of the index's projects (L{BEGINNING}: none moved)."""
        return self._table.last_of(self._index)


@attrs.define
class ProjectSerials:
    """
    Each index's projects' serials (see the module).

    @ivar followed: the serial the journal was read up to, where the next
        read begins (L{pypid.state.journal_follower}).
    """

    #: index (L{None}: the default) -> project -> serial
    _serials: dict[str | None, dict[str, int]] = attrs.field(factory=dict)
    #: index -> the last serial of its projects
    _last: dict[str | None, int] = attrs.field(factory=dict)
    followed: int = BEGINNING
    _listeners: list[Changed] = attrs.field(factory=list)

    def listen(self, changed: Changed) -> None:
        """Call C{changed(index, project)} whenever a project's serial moves."""
        self._listeners.append(changed)

    def of(self, index: str | None, project: str) -> int:
        """The serial of C{project} of C{index} (L{None}: the default index)."""
        return self._serials.get(index, {}).get(project, BEGINNING)

    def last_of(self, index: str | None) -> int:
        """The last serial of C{index}'s projects (L{BEGINNING}: none moved)."""
        return self._last.get(index, BEGINNING)

    def of_index(self, index: str | None) -> IndexSerials:
        """The serials of one index's projects, as its pages read them."""
        return IndexSerials(self, index)

    def take(self, entries: Iterable[Entry]) -> None:
        """Take in journal entries: the projects they changed carry their serials."""
        moved: list[tuple[str | None, str]] = []
        for entry in entries:
            serial = entry.serial
            # (a storage's own bookkeeping names a project whose status it
            # holds, not a change of the index: its action's entry is that)
            if serial is None or entry.project is None or entry.outcome != OK \
                    or entry.event in UNSHOWN_KINDS:
                continue
            table = self._serials.setdefault(entry.index, {})
            if table.get(entry.project, BEGINNING) < serial:
                table[entry.project] = serial
                self._last[entry.index] = max(self.last_of(entry.index), serial)
                moved.append((entry.index, entry.project))
        for index, project in dict.fromkeys(moved):
            for changed in self._listeners:
                changed(index, project)

    def to_json(self) -> dict[str, Any]:
        """What the snapshot keeps: how far the journal was read, and every project's serial."""
        return {"followed": self.followed,
                "projects": {index or "": dict(table) for index, table in self._serials.items()}}

    def restore(self, data: object) -> None:
        """Take back what L{to_json} gave (a snapshot's); what is not such data is left out."""
        if not isinstance(data, Mapping):
            return
        followed, projects = data.get("followed"), data.get("projects")
        if isinstance(followed, int) and not isinstance(followed, bool):
            self.followed = max(self.followed, followed)
        if not isinstance(projects, Mapping):
            return
        for index, table in projects.items():
            if not isinstance(index, str) or not isinstance(table, Mapping):
                continue
            kept = self._serials.setdefault(index or None, {})
            for project, serial in table.items():
                if isinstance(project, str) and isinstance(serial, int) \
                        and not isinstance(serial, bool):
                    kept[project] = max(kept.get(project, BEGINNING), serial)
                    self._last[index or None] = max(self.last_of(index or None), serial)
