"""
A hosted project of an index, and the table of the projects loaded
I{later} (L{LaterProjects}): listed, counted and found by their filenames
at once, their records made the first time anything asks for them, so that
a start from a large snapshot answers before a record is made.

Apart from the L{pypid.core.indexes.index.Index}: the kept pages, the
composed indexes, the legacy JSON API, the exports and the upstream's
merged pages take a L{Project} and need nothing of the index (in the
index's module it made a circle of imports with the rendered pages).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any, Protocol

import attrs

from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import distribution_key, filename_key
from pypid.core.dists.version_order import choose_latest, page_order, version_key
from pypid.core.indexes.pending import project_of

#: the deleted filenames of a project that has none: one empty set shared
#: by every such project rather than a set each (216 bytes, 4.1 MiB of a
#: start of 20,001 projects), until the first is buried (L{Project.bury})
_NONE_DELETED: frozenset[str] = frozenset()


@attrs.define
class Project:
    """
    A hosted project. It stays known after all its files are deleted, so
    that its name keeps belonging to this index, and while any of its files
    is in the recycle bin (else the upstream would be asked for its name).
    """

    name: str
    display_name: str
    #: its records made so far: every live file's once L{loaded}, none before
    made: dict[str, FileRecord] = attrs.field(factory=dict)
    #: its rendered pages and the values kept with them, by key: the
    #: L{RenderedPages}' alone (here so that a project replaced takes them along)
    rendered: dict[Hashable, Any] = attrs.field(factory=dict)
    #: the deleted filenames that belonged to it (L{bury} adds to them)
    deleted: set[str] | frozenset[str] = _NONE_DELETED
    #: how many of its stored files are still to be described
    #: (L{pypid.core.indexes.pending}); its pages wait for them
    pending: int = 0
    #: how many of its files are in the recycle bin: while any is, its
    #: name stays hosted here (one slot; small ints are shared)
    binned: int = attrs.field(default=0, eq=False, repr=False)
    #: how many times its files changed (L{RenderedPages.project_changed}),
    #: so that a page composed of it elsewhere tells, with its identity,
    #: whether it is still what the page was made of; 8 bytes a project
    changes: int = attrs.field(default=0, init=False, eq=False, repr=False)
    #: distribution key -> filename, for its live and deleted files; made
    #: when an upload first asks (L{Index.same_distribution}), not at load:
    #: 150 bytes and 0.7 us a file that most projects of a large index,
    #: never uploaded to again, would not use
    _keys: dict[str, str] | None = None
    #: for a project loaded later (L{defer}): the source of its records and
    #: the table that makes them its files, used once
    _source: LaterProject | None = attrs.field(default=None, init=False, eq=False, repr=False)
    _later: LaterProjects | None = attrs.field(default=None, init=False, eq=False, repr=False)

    @property
    def files(self) -> dict[str, FileRecord]:
        """Its live files: L{FileRecord}s by filename (made now if they wait: L{defer})."""
        source = self._source
        if source is not None:
            later = self._later
            self._source = self._later = None
            assert later is not None  # (set with the source)
            self.made = later.made_now(self, source)
        return self.made

    @property
    def loaded(self) -> bool:
        """Whether its records are made (not waiting to be: L{files})."""
        return self._source is None

    @property
    def count(self) -> int:
        """How many live files it has, its records made or not."""
        return len(self.made) if self._source is None else self._source.count

    def defer(self, source: LaterProject, later: LaterProjects) -> None:
        """
        Have C{later.made_now(self, source)} make its records the first time
        anything asks for its L{files}. The table is held rather than a
        closure of it: a closure and its cells cost some 370 bytes a project.
        """
        self._source = source
        self._later = later

    def sorted_files(self) -> list[FileRecord]:
        """The files in the order the pages list them: by version, then name."""
        return page_order(self.files.values())

    def versions(self) -> list[str]:
        """Every version that has a file, oldest first."""
        return sorted({r.version for r in self.files.values()}, key=version_key)

    def latest_version(self) -> str | None:
        """The version installers pick by default (L{choose_latest}), or L{None}."""
        alive = {r.version for r in self.files.values() if r.yanked is None}
        return choose_latest({r.version for r in self.files.values()},
                             lambda v: v not in alive)

    def keys(self) -> dict[str, str]:
        """Distribution key -> the first filename of its deleted, then live, files."""
        if self._keys is None:
            keys: dict[str, str] = {}
            for filename in sorted(self.deleted):
                key = filename_key(filename)
                if key is not None:
                    keys.setdefault(key, filename)
            for record in self.files.values():
                keys.setdefault(_key_of(record), record.filename)
            self._keys = keys
        return self._keys

    @property
    def claimed(self) -> bool:
        """Whether anything keeps its name here: a live, binned, deleted or pending file."""
        return bool(self.files or self.binned or self.deleted or self.pending)

    def key_added(self, record: FileRecord) -> None:
        """Count the distribution of a file just added in its L{keys} (if they are made)."""
        if self._keys is not None:
            self._keys.setdefault(_key_of(record), record.filename)

    def key_gone(self, record: FileRecord) -> None:
        """Free the distribution of a file taken out, unless deleted (if its L{keys} are made)."""
        if self._keys is not None:
            key = _key_of(record)
            if self._keys.get(key) == record.filename:
                del self._keys[key]

    def bury(self, filename: str) -> None:
        """Note a deleted filename of it, whose distribution stays taken (L{keys})."""
        deleted = self.deleted
        if not isinstance(deleted, set):
            deleted = self.deleted = set(deleted)
        deleted.add(filename)
        if self._keys is not None:
            key = filename_key(filename)
            if key is not None:
                self._keys.setdefault(key, filename)


def _key_of(record: FileRecord) -> str:
    """The distribution key of a file (L{pypid.core.dists.names.distribution_key})."""
    return distribution_key(record.project, record.version, record.packagetype,
                            record.filename)


# -- the projects loaded later ------------------------------------------------------------


class LaterProject(Protocol):
    """
    A project loaded later, as L{pypid.core.indexes.index.Index.load} takes it:
    named and counted now, its records given when it is called (once).

    One small object a project and nothing else: two closures (and their
    cells), a tuple and a list of its filenames cost some 1,470 bytes a
    project at a start from a snapshot of 100,001 files in 20,001 projects
    (C{tracemalloc}: 28 MiB of the 80.5 MiB the load held).
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


@attrs.define
class LaterProjects:
    """
    The projects loaded later whose records are not made yet, by name.

    @ivar _take: C{take(project, records) -> dict}: the live records, by
        filename, the index makes of what a project's source gave.
    @ivar _made: C{made(filename)}: the index's record of the live file
        C{filename} if it is made, or L{None}.
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
        Make C{project}'s records when first asked for (L{made_now}). A
        source that fails leaves the project empty, and waiting for nothing
        (the check finds its files in storage).
        """
        project.defer(source, self)
        self._waiting[project.name] = project
        self.file_count += source.count

    def made_now(self, project: Project, source: LaterProject) -> dict[str, FileRecord]:
        """
        The live records of the waiting C{project}, from its C{source}, as
        the index takes them (once). A project no longer waited for (the
        index was loaded anew since) gets none: its source is stale.
        """
        if self._waiting.get(project.name) is not project:
            return {}
        del self._waiting[project.name]
        self.file_count -= source.count
        return self._take(project, source())

    def make(self, names: Iterable[str] | None = None) -> None:
        """Make the records of the waiting projects (of C{names}, or all) now."""
        for name in list(self._waiting) if names is None else names:
            project = self._waiting.get(name)
            if project is not None:
                project.files  # noqa: B018 (made by the property)

    def find(self, filename: str, project: str | None = None) -> FileRecord | None:
        """
        The record of the live file C{filename} not made so far, made now:
        from C{project}, or the project its name tells; then, without a
        C{project} (a legacy sdist may be spelt otherwise than its
        project), from every waiting project. L{None} if none holds it.
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
