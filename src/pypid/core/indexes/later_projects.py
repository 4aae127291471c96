"""
The projects of an index loaded I{later}: listed, counted and found by
their filenames at once, their records made the first time anything asks
for them (L{pypid.core.indexes.project.Project.files}).

A start from a large snapshot so answers before a record is made (see
L{pypid.storage.snapshot}). A table of its own because it is the index's
only state that is about I{when} records exist rather than what they are:
which projects still wait, how many files they hold (counted in the
index's length, not in its records: a dict of a million filenames took
0.75 s of a start), and which waiting project a filename asked for belongs
to. What a made record becomes (live, binned, shared with its source
index) is the index's, which this table is given at construction.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import attrs

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.pending import project_of
from pypid.core.indexes.project import Project


class LaterProject(Protocol):
    """
    A project loaded later, as L{pypid.core.indexes.index.Index.load} takes it:
    named and counted now, its records given when it is called (once).

    One small object a project and nothing else: two closures a project
    (and their cells), a tuple and a list of its filenames cost some 1,470
    bytes a project at a start from a snapshot of 100,001 files in 20,001
    projects (C{tracemalloc}: 28 MiB of the 80.5 MiB the load held), for a
    table that needs only the count until the records are made (L{find}
    finds a file through the project its name or URL tells).
    """

    @property
    def name(self) -> str:
        """The project's normalized name."""

    @property
    def display_name(self) -> str:
        """The project's name as its files' metadata spell it."""

    @property
    def count(self) -> int:
        """How many files it holds."""

    def __call__(self) -> Iterable[FileRecord]:
        """Its records (called once, the first time they are asked for)."""


@attrs.frozen
class LaterRecords:
    """A L{LaterProject} whose records C{source()} gives (for callers with a plain callable)."""

    name: str
    display_name: str
    count: int
    source: Callable[[], Iterable[FileRecord]]

    def __call__(self) -> Iterable[FileRecord]:
        """The records C{source()} gives."""
        return self.source()


@attrs.define
class LaterProjects:
    """
    The projects loaded later whose records are not made yet, by name.

    @ivar _take: C{take(project, records) -> dict}: what the index makes of
        a project's records once its source gave them (the live ones, by
        filename, which become the project's L{Project.made}).
    @ivar _made: C{made(filename)}: the index's record of the live file
        C{filename} if it is made, or L{None}.
    @ivar file_count: how many files the waiting projects hold.
    """

    _take: Callable[[Project, Iterable[FileRecord]], dict[str, FileRecord]]
    _made: Callable[[str], FileRecord | None]
    _waiting: dict[str, Project] = attrs.field(factory=dict)
    file_count: int = 0

    @property
    def waiting(self) -> int:
        """How many projects wait for their records."""
        return len(self._waiting)

    def names(self) -> list[str]:
        """The names of the projects that wait for their records."""
        return list(self._waiting)

    def defer(self, project: Project, source: LaterProject) -> None:
        """
        Make C{project}'s C{source.count} records when first asked for: from
        C{source()}, then through the index's C{take} (L{made_now}). A
        source that fails leaves the project empty, and waiting for nothing
        (the check finds its files in storage).
        """
        project.defer(source, self)
        self._waiting[project.name] = project
        self.file_count += source.count

    def made_now(self, project: Project, source: LaterProject) -> dict[str, FileRecord]:
        """
        The live records of the waiting C{project}, from its C{source},
        as the index takes them (called by L{Project.files}, once). A
        project this table no longer waits for (the index was loaded anew
        since) gets none: its source is not the index's any more.
        """
        if self._waiting.get(project.name) is not project:
            return {}
        del self._waiting[project.name]
        self.file_count -= source.count
        return self._take(project, source())

    def make(self, names: Iterable[str] | None = None) -> None:
        """
        Make the records of the waiting projects (of C{names}, or all):
        what asking for their files would, ahead of the asking.
        """
        for name in list(self._waiting) if names is None else names:
            project = self._waiting.get(name)
            if project is not None:
                project.files  # noqa: B018 (made by the property)

    def find(self, filename: str, project: str | None = None) -> FileRecord | None:
        """
        The record of the live file C{filename} that no record made so far
        is, made now: that of its waiting project, C{project}, or without
        one, the project its name tells; then, if it is still not found
        and no C{project} was given (a name that does not tell its
        project: a legacy sdist's, spelt otherwise than its project),
        every waiting project's, once. L{None} if none holds it (given a
        C{project}, whatever another holds).
        """
        named = project
        if named is None:
            found = project_of(filename)
            named = found[0] if found is not None else None
        if named is not None:
            self.make([named])
        record = self._made(filename)
        if record is None and project is None:
            self.make()
            record = self._made(filename)
        return record

    def clear(self) -> None:
        """Forget every waiting project (the index's whole content is replaced)."""
        self._waiting.clear()
        self.file_count = 0
