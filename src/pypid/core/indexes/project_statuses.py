"""
The statuses of an index's projects (PEP 792: archived, quarantined,
deprecated), by normalized name.

A table of its own, apart from the index's projects, because a status is
not the projects' content: few projects have one (an active project has no
entry: L{None} stands for it), it outlives a reload of the records (an
L{pypid.core.indexes.index.Index.load} keeps it), and storage holds it apart from
the files, read at a start (and, from a storage shared with other
servers, as they change it: L{pypid.state.sync}). A change tells the index
(L{ProjectStatuses.set}), which drops the project's kept pages (they carry
it), as a yank does, and moves its serial; its pages and the composed
views read it on every page they render. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs

from pypid.core.indexes.project_status import ProjectStatus


@attrs.define
class ProjectStatuses:
    """
    Every project's status that is not active, by normalized name.

    @ivar _changed: C{changed(name)}: told of every change of the status of
        the project C{name} (the index's, which holds the table).
    """

    _changed: Callable[[str], None]
    _by_name: dict[str, ProjectStatus] = attrs.field(factory=dict)
    #: how many changes the table took (L{serial}), and the serial of
    #: each project's last change: what changed while a shared storage's
    #: full check ran (L{changed_since}) is newer than what it read
    _serial: int = attrs.field(default=0, init=False)
    _set_at: dict[str, int] = attrs.field(factory=dict, init=False)

    def get(self, name: str) -> ProjectStatus | None:
        """
        The status of the project of this normalized name, or L{None} when
        it is active (one check when no project has one, as in most indexes).
        """
        return self._by_name.get(name) if self._by_name else None

    def quarantined(self, name: str) -> bool:
        """Whether the project of this normalized name is quarantined (its files not offered)."""
        status = self.get(name)
        return status is not None and status.quarantined

    def all(self) -> dict[str, ProjectStatus]:
        """Every status, by normalized name (a copy)."""
        return dict(self._by_name)

    def set(self, name: str, status: ProjectStatus | None) -> None:
        """Give the project of this normalized name a status (L{None}: active)."""
        if status is None:
            self._by_name.pop(name, None)
        else:
            self._by_name[name] = status
        self._serial += 1
        self._set_at[name] = self._serial
        self._changed(name)

    @property
    def serial(self) -> int:
        """How many changes the table has taken: a bookmark for L{changed_since}."""
        return self._serial

    def changed_since(self, serial: int) -> frozenset[str]:
        """The projects whose status was set after the bookmark C{serial} (L{serial})."""
        if serial >= self._serial:
            return frozenset()
        return frozenset(name for name, at in self._set_at.items() if at > serial)

    def take(self, statuses: Mapping[str, ProjectStatus]) -> None:
        """
        Take every status from those storage holds (at a start): L{set}
        each that differs here, so only the projects whose status changed
        are told of.
        """
        for name in sorted(set(self._by_name) | set(statuses)):
            if self._by_name.get(name) != statuses.get(name):
                self.set(name, statuses.get(name))
