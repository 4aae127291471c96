"""
The projects of an index loaded I{later}: listed, counted and found by
their filenames at once, their records made the first time anything asks
for them (L{pypid.core.project.Project.files}).

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

# (annotations kept as strings: a closure made per project at load, with
# its annotations evaluated, cost some 200 bytes a project of a large index)
from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

import attrs

from pypid.core.model import FileRecord
from pypid.core.pending import project_of
from pypid.core.project import Project

#: What L{pypid.core.index.Index.load} takes of a project loaded later:
#: C{(name, display_name, filenames, source)}, where C{source()} gives the
#: records.
LaterProject = tuple[str, str, Collection[str], Callable[[], Iterable[FileRecord]]]


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

    def defer(self, project: Project, count: int,
              source: Callable[[], Iterable[FileRecord]]) -> None:
        """
        Make C{project}'s C{count} records when first asked for: from
        C{source()}, then through the index's C{take}. A source that fails
        leaves the project empty, and waiting for nothing (the check finds
        its files in storage).
        """
        def make() -> dict[str, FileRecord]:
            try:
                records = source()
            finally:
                self._waiting.pop(project.name, None)
                self.file_count -= count
            return self._take(project, records)
        project.defer(make, count)
        self._waiting[project.name] = project
        self.file_count += count

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
