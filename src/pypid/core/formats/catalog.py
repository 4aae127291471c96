"""
What the pages for people derive from the whole index: the search index,
each project's latest version and summary, and the uploads newest first.

Worked out again, lazily, when the index's serial has moved: the first
search or landing page after a change pays for it (each project's part is
kept with its pages until it changes, so that is about 30 ms at 20,000
projects). Who may see what is left to the caller, which filters.

An index of several hosted sources, or a view, has an L{IndexCatalog}
instead (L{catalog_for}): the same over its hosted sources, each project as
the index's pages list it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Sequence

import attrs

from pypid.core.dists.model import FileRecord
from pypid.core.dists.version_order import choose_latest
from pypid.core.formats.pages import Upload
from pypid.core.formats.search import SearchEntry, SearchIndex
from pypid.core.indexes.composition import ChainSource, Filters, compose
from pypid.core.indexes.index import Index
from pypid.core.indexes.project import Project

#: Where a project's entry is kept with its pages (L{RenderedPages.keep_page}).
_KEY = ("catalog",)


class Catalog:
    """The index as search and the landing page see it."""

    def __init__(self, index: Index) -> None:
        self._index = index
        self._serial: int | None = None
        self._search = SearchIndex([])
        self._latest: dict[str, str | None] = {}
        # (serial, releases' newest records, newest first)
        self._recent: tuple[tuple[int, int], list[FileRecord]] | None = None

    def _refresh(self) -> None:
        if self._serial == self._index.serial:
            return
        self._serial = self._index.serial
        entries, latest = [], {}
        index = self._index
        for project in index.projects():
            if not project.files:
                continue  # (every file deleted: the name stays the index's, unshown)
            # Kept with the project's pages: only the projects that changed
            # are worked out again (160 ms for all 20,000, 30 ms for none).
            kept = index.rendered.extra_page(project, _KEY)
            if kept is None:
                version = project.latest_version()
                kept = (SearchEntry(project.name, project.display_name,
                                    summary_among(project.files.values(), version)), version)
                index.rendered.keep_page(project, _KEY, kept)
            entries.append(kept[0])
            latest[project.name] = kept[1]
        self._search = SearchIndex(entries)
        self._latest = latest

    @property
    def serial(self) -> Hashable:
        """What changes whenever what it derives changes: the index's serial."""
        return self._index.serial

    def search_index(self) -> SearchIndex:
        """The L{SearchIndex} of every project."""
        self._refresh()
        return self._search

    def counts(self, visible: Callable[[str], bool] | None = None) -> tuple[int, int]:
        """C{(projects, files)} of the projects with files that C{visible} allows (L{None}: all)."""
        projects = files = 0
        for project in self._index.projects():
            # (its count: a project whose records are not made yet is not made for it)
            count = project.count
            if count and (visible is None or visible(project.name)):
                projects += 1
                files += count
        return projects, files

    def latest(self, project: str) -> str | None:
        """The latest version of C{project} (a normalized name), or L{None}."""
        self._refresh()
        return self._latest.get(project)

    def recent(self, visible: Callable[[str], bool] | None = None,
               count: int = 10) -> list[Upload]:
        """
        The latest C{count} L{Upload}s of projects C{visible(project)}
        allows (L{None}: all), newest first: one a release, at the time of
        its newest file.
        """
        # (while the projects loaded later wait for their records, the
        # uploads of those made so far: making them all for a landing page
        # would hold every other request, seconds at a million files)
        version = (self._index.serial, self._index.later.waiting)
        if self._recent is None or self._recent[0] != version:
            newest: dict[tuple[str, str], FileRecord] = {}
            for record in self._index.loaded_records():
                key = (record.project, record.version)
                if key not in newest or record.upload_time > newest[key].upload_time:
                    newest[key] = record
            self._recent = (version,
                            sorted(newest.values(), key=lambda r: (-r.upload_time, r.filename)))
        def display(record: FileRecord) -> str:
            project = self._index.project(record.project)
            return project.display_name if project else record.name
        return _uploads(self._recent[1], visible, count, display)


def summary_among(files: Collection[FileRecord], version: str | None) -> str | None:
    """
    The summary of the project whose live files are C{files}: its latest
    C{version}'s, a wheel's first; else the newest upload's that has one.
    """
    latest = sorted((r for r in files if r.version == version), key=lambda r: not r.is_wheel)
    return next((r.summary for r in latest if r.summary), None) or next(
        (r.summary for r in sorted(files, key=lambda r: -r.upload_time) if r.summary), None)


def catalog_for(order: Sequence[ChainSource], filters: Filters) -> Catalog | IndexCatalog:
    """
    The catalog of an index reading C{order} through C{filters}: a
    L{Catalog} of its one hosted source when it reads one, whole (its
    entries kept with that source's pages), else an L{IndexCatalog}.
    """
    hosted = [source.hosted for source in order if source.hosted is not None]
    if len(hosted) == 1 and filters == Filters():
        return Catalog(hosted[0])
    return IndexCatalog(order, filters)


@attrs.frozen
class _Listed:
    """
    What an L{IndexCatalog} keeps of one project: what it was worked out
    from, and what search and the landing page show of it.
    """

    held: tuple[Project | None, ...]
    changes: tuple[int, ...]
    entry: SearchEntry
    latest: str | None
    count: int
    #: each release's newest file, for the recent uploads
    newest: tuple[FileRecord, ...]


class IndexCatalog:
    """
    A named index as search and its landing page see it: its hosted
    sources' projects, each with the files its pages list (L{compose}), so
    that search finds, counts and dates what the simple pages list and
    nothing else. Upstream sources are not read (the root page lists none).

    Worked out again when a source's serial moved, each project only when
    one of its sources' project objects or counts of changes moved.
    """

    def __init__(self, order: Sequence[ChainSource], filters: Filters) -> None:
        self._order = tuple(source for source in order if source.hosted is not None)
        self._hosted = tuple(source.hosted for source in self._order
                             if source.hosted is not None)
        self._filters = filters
        self._serial: tuple[int, ...] | None = None
        self._listed: dict[str, _Listed] = {}
        self._search = SearchIndex([])
        self._recent: list[FileRecord] = []

    @property
    def serial(self) -> Hashable:
        """What changes whenever what it derives changes: its sources' serials."""
        return tuple(index.serial for index in self._hosted)

    def _refresh(self) -> None:
        serial = tuple(index.serial for index in self._hosted)
        if serial == self._serial:
            return
        self._serial = serial
        names: dict[str, str] = {}
        for index in self._hosted:
            for project in index.projects():
                names.setdefault(project.name, project.display_name)
        listed: dict[str, _Listed] = {}
        for name, display_name in names.items():
            if not self._filters.admits_project(name):
                continue
            held = tuple(index.project(name) for index in self._hosted)
            changes = tuple(p.changes if p is not None else 0 for p in held)
            kept = self._listed.get(name)
            if (kept is None or kept.changes != changes
                    or any(a is not b for a, b in zip(kept.held, held, strict=True))):
                kept = self._work_out(name, display_name, held, changes)
            if kept is not None:
                listed[name] = kept
        self._listed = listed
        self._search = SearchIndex([kept.entry for kept in listed.values()])
        self._recent = sorted((record for kept in listed.values() for record in kept.newest),
                              key=lambda r: (-r.upload_time, r.filename))

    def _work_out(self, name: str, display_name: str, held: tuple[Project | None, ...],
                  changes: tuple[int, ...]) -> _Listed | None:
        """A project's L{_Listed}, or L{None} when the index lists no file of it."""
        # (hosted sources only: the time matters to an upstream's cooldown alone)
        files: list[FileRecord] = [f for f, _ in compose(  # type: ignore[misc]
            self._order, name, self._filters, 0.0).files]
        # (a hosted source's files are FileRecords)
        if not files:
            return None
        alive = {r.version for r in files if r.yanked is None}
        latest = choose_latest({r.version for r in files}, lambda v: v not in alive)
        newest: dict[str, FileRecord] = {}
        for record in files:
            other = newest.get(record.version)
            if other is None or record.upload_time > other.upload_time:
                newest[record.version] = record
        return _Listed(held, changes,
                       SearchEntry(name, display_name, summary_among(files, latest)),
                       latest, len(files), tuple(newest.values()))

    def search_index(self) -> SearchIndex:
        """The L{SearchIndex} of every project the index lists files of."""
        self._refresh()
        return self._search

    def latest(self, project: str) -> str | None:
        """The latest version the index lists of C{project} (a normalized name), or L{None}."""
        self._refresh()
        kept = self._listed.get(project)
        return kept.latest if kept is not None else None

    def counts(self, visible: Callable[[str], bool] | None = None) -> tuple[int, int]:
        """C{(projects, files)} the index lists, of the projects C{visible} allows."""
        self._refresh()
        projects = files = 0
        for name, kept in self._listed.items():
            if visible is None or visible(name):
                projects += 1
                files += kept.count
        return projects, files

    def recent(self, visible: Callable[[str], bool] | None = None,
               count: int = 10) -> list[Upload]:
        """The latest C{count} L{Upload}s the index lists, as L{Catalog.recent}."""
        self._refresh()
        return _uploads(self._recent, visible, count,
                        lambda record: self._listed[record.project].entry.display_name)


def _uploads(records: Iterable[FileRecord], visible: Callable[[str], bool] | None,
             count: int, display: Callable[[FileRecord], str]) -> list[Upload]:
    """The first C{count} of C{records} as L{Upload}s, of the projects C{visible} allows."""
    shown: list[Upload] = []
    for record in records:
        if visible is None or visible(record.project):
            shown.append(Upload(record.project, display(record), record.version,
                                record.uploader, record.upload_time))
            if len(shown) == count:
                break
    return shown
