"""
What the pages for people derive from the whole index: the search index,
each project's latest version and summary, and the uploads newest first.

Worked out again, lazily, when the index's serial has moved since: the
first search or landing page after a change pays for it (each project's
part is kept with its pages until it changes, so that is about 30 ms at
20,000 projects), every other one reads it as it is. Who may
see what is left to the caller, which filters (see L{visible_counts}).

Pure: no I/O and no clock.
"""

from __future__ import annotations

from collections.abc import Callable

from pypid.core.index import Index, Project
from pypid.core.model import FileRecord
from pypid.core.pages import Upload
from pypid.core.search import SearchEntry, SearchIndex

#: Where a project's entry is kept with its pages (L{RenderedPages.keep_page}).
_KEY = ("catalog",)


class Catalog:
    """
    The index as search and the landing page see it.

    @ivar _index: the L{pypid.core.index.Index}.
    """

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
                              summary_of(project, version)), version)
                index.rendered.keep_page(project, _KEY, kept)
            entries.append(kept[0])
            latest[project.name] = kept[1]
        self._search = SearchIndex(entries)
        self._latest = latest

    def search_index(self) -> SearchIndex:
        """The L{SearchIndex} of every project."""
        self._refresh()
        return self._search

    def latest(self, project: str) -> str | None:
        """The latest version of C{project} (a normalized name), or L{None}."""
        self._refresh()
        return self._latest.get(project)

    def recent(self, visible: Callable[[str], bool] | None = None,
               count: int = 10) -> list[Upload]:
        """
        The latest C{count} L{Upload}s of projects C{visible(project)}
        allows (every project when L{None}), newest first: one line per
        release, at the time of its newest file.
        """
        # (apart from the search entries: a landing page needs none of them)
        # While the projects a start loaded later wait for their records (a
        # few seconds), the uploads among those made so far, worked out again
        # as more are made: making them all at once for a landing page would
        # hold every other request (seconds at a million files).
        version = (self._index.serial, self._index.waiting)
        if self._recent is None or self._recent[0] != version:
            newest: dict[tuple[str, str], FileRecord] = {}
            for record in self._index.loaded_records():
                key = (record.project, record.version)
                if key not in newest or record.upload_time > newest[key].upload_time:
                    newest[key] = record
            self._recent = (version,
                            sorted(newest.values(), key=lambda r: (-r.upload_time, r.filename)))
        shown = []
        for record in self._recent[1]:
            if visible is not None and not visible(record.project):
                continue
            project = self._index.project(record.project)
            shown.append(Upload(record.project, project.display_name if project else record.name,
                                record.version, record.uploader, record.upload_time))
            if len(shown) == count:
                break
        return shown


def summary_of(project: Project, version: str | None) -> str | None:
    """
    The summary that stands for a project (in search, and in a static
    copy's C{packages.json}): its latest version's, a wheel's first; else
    the newest upload's that has one; L{None} without any.
    """
    files = project.files.values()
    latest = sorted((r for r in files if r.version == version), key=lambda r: not r.is_wheel)
    return next((r.summary for r in latest if r.summary), None) or next(
        (r.summary for r in sorted(files, key=lambda r: -r.upload_time) if r.summary), None)


def visible_counts(index: Index,
                   visible: Callable[[str], bool] | None = None) -> tuple[int, int]:
    """
    C{(projects, files)} of the projects C{visible(project)} allows (every
    one when L{None}) that have files.
    """
    projects = files = 0
    for project in index.projects():
        # (its count: a project whose records are not made yet is not made for it)
        count = project.count
        if count and (visible is None or visible(project.name)):
            projects += 1
            files += count
    return projects, files
