"""
The in-memory index: projects, their files, and the deleted filenames.

The web layer reads it on every request, so it answers a lookup by
filename in O(1) and keeps each page rendered, within a budget of bytes
(L{Index.rendered}, told of every change). Every change bumps
L{Index.serial}, by which the snapshot service knows to save.

Three tables of its own, kept in step with its records, hold what is not
the records (each module says why it is apart): L{Index.promotions},
L{Index.statuses} and L{Index.later}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import attrs

from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import (
    filename_key,
    normalize,
    project_of_filename,
)
from pypid.core.dists.version_order import release_key
from pypid.core.indexes.links import ProvenanceURL, provenance_url_for
from pypid.core.indexes.namespace_api import IndexNamespaces
from pypid.core.indexes.project import LaterProject, LaterProjects, Project
from pypid.core.indexes.project_status import ProjectStatus, ProjectStatuses
from pypid.core.indexes.promotion import PromotedFiles, Promotion
from pypid.core.indexes.rendered_pages import PAGE_CACHE_SIZE, RenderedPages, Serials
from pypid.core.security.advisories import AdvisoryPolicy, no_advisories


def _fill(records: Iterable[FileRecord], projects: dict[str, Project],
          files: dict[str, FileRecord], in_bin: dict[str, FileRecord]) -> None:
    """
    Put C{records} in an index emptied by L{Index.load}: what L{Index._put}
    does, for a whole index at once, in a loop over locals (100,001 files
    in 0.07-0.10 s with the collector off, as at start-up).
    """
    for record in records:
        filename, name, display = record.filename, record.project, record.name
        project = projects.get(name)
        if project is None:
            project = projects[name] = Project(name, display)
        if record.binned is not None:
            in_bin[filename] = record
            project.binned += 1
            continue
        elif display != project.display_name and project.display_name == name \
                and normalize(display) == name:
            project.display_name = display
        project.made[filename] = record
        files[filename] = record


@attrs.define(init=False)
class Index:
    """
    Every hosted project and file, and their rendered pages (L{rendered}).

    @ivar file_url: C{file_url(record) -> str}, the URL a page links a file by.
    @ivar later: the projects loaded later still waiting for their records (L{load}).
    """

    file_url: Callable[[FileRecord], str]
    serial: int
    _rendered: RenderedPages
    statuses: ProjectStatuses
    promotions: PromotedFiles
    later: LaterProjects
    _projects: dict[str, Project] = attrs.field(factory=dict)
    #: the live files' records made so far (not those waiting in L{later})
    _files: dict[str, FileRecord] = attrs.field(factory=dict)
    #: deleted filename -> the project it belonged to (L{None}: unknown)
    _tombstones: dict[str, str | None] = attrs.field(factory=dict)
    #: filename -> the record of a file in the recycle bin, apart so that
    #: nothing that lists or serves files sees it
    _binned: dict[str, FileRecord] = attrs.field(factory=dict)
    #: the filenames changed since L{watch_changes}, else L{None}
    _watched: set[str] | None = None

    def __init__(self, file_url: Callable[[FileRecord], str], serial: int = 0, *,
                 page_cache_size: int = PAGE_CACHE_SIZE,
                 peers: Callable[[str], Index | None] | None = None,
                 advisories: AdvisoryPolicy | None = None,
                 provenance_url: ProvenanceURL | None = None,
                 namespaces: IndexNamespaces | None = None, serials: Serials | None = None,
                 ) -> None:
        """
        The keyword arguments but C{peers} are L{RenderedPages}' (L{None}:
        none). C{peers(name)}: the server's other hosted index of that name,
        with which promoted files' records are shared; L{None}: no sharing.
        """
        statuses = ProjectStatuses(self._status_changed)
        files: dict[str, FileRecord] = {}
        self.__attrs_init__(file_url, serial,
                            RenderedPages(file_url, self.projects, max_bytes=page_cache_size,
                                          status=statuses.get,
                                          advisories=advisories or no_advisories(),
                                          provenance_url=provenance_url
                                          or provenance_url_for(None),
                                          namespaces=namespaces, serials=serials),
                            statuses, PromotedFiles(peers),
                            LaterProjects(self._made_later, files.get), files=files)

    # -- reading -------------------------------------------------------------

    @property
    def rendered(self) -> RenderedPages:
        """Its rendered pages, and what is kept with them, told of every change here."""
        return self._rendered

    def project(self, name: str) -> Project | None:
        """The L{Project} with this normalized name, or L{None}."""
        return self._projects.get(name)

    def projects(self) -> list[Project]:
        """All projects, sorted by normalized name."""
        return [self._projects[name] for name in sorted(self._projects)]

    def status(self, name: str) -> ProjectStatus | None:
        """The status of the project of this normalized name (L{statuses}), or L{None}: active."""
        return self.statuses.get(name)

    def get_file(self, filename: str, project: str | None = None) -> FileRecord | None:
        """
        The L{FileRecord} of a live file (of C{project}, which a file's URL
        names), or L{None}; made now if loaded later (L{LaterProjects.find}).
        """
        record = self._files.get(filename)
        if record is None and self.later.waiting:
            record = self.later.find(filename, project)
        return record

    def is_deleted(self, filename: str) -> bool:
        """Whether the filename belonged to a deleted file (never to be reused)."""
        return filename in self._tombstones

    def deleted_from(self, filename: str) -> str | None:
        """The project a deleted filename belonged to, or L{None} (not deleted, or unknown)."""
        return self._tombstones.get(filename)

    def same_distribution(self, filename: str) -> str | None:
        """
        The stored or deleted filename of the same distribution as
        C{filename} spelt otherwise (for an sdist, of the same release), or L{None}.
        """
        key = filename_key(filename)
        project = self._projects.get(key.split("|", 1)[0]) if key is not None else None
        other = project.keys().get(key) if project is not None and key is not None else None
        return other if other != filename else None

    def binned(self) -> list[FileRecord]:
        """Every file in the recycle bin (L{FileRecord.binned} set), the first binned first."""
        return sorted(self._binned.values(), key=lambda record: (record.binned, record.filename))

    def binned_file(self, filename: str) -> FileRecord | None:
        """The record of the file C{filename} if it is in the recycle bin, else L{None}."""
        return self._binned.get(filename)

    def release_variants(self, project: str, version: str) -> list[str]:
        """
        The C{variant.json} of each variant wheel (PEP 825) of the release
        C{version} (C{1.0.0} is C{1.0}) of C{project}, live or binned (a
        restore brings one back): what a new one's must agree with.
        """
        found = self._projects.get(project)
        live = found.files.values() if found is not None else ()
        release = release_key(version)
        return [record.variant for record in (*live, *self._binned.values())
                if record.variant is not None and record.project == project
                and release_key(record.version) == release]

    def held(self, filename: str) -> FileRecord | None:
        """The record of C{filename}, live or in the recycle bin (what storage holds)."""
        return self.get_file(filename) or self._binned.get(filename)

    def records(self) -> list[FileRecord]:
        """Every live L{FileRecord} (every project loaded later is loaded now)."""
        self.later.make()
        return list(self._files.values())

    def loaded_records(self) -> list[FileRecord]:
        """Every live L{FileRecord} made so far (none of L{later}'s made for it)."""
        return list(self._files.values())

    def live_promotions(self) -> dict[str, Promotion]:
        """Every promoted live file's L{Promotion}, by filename (loading L{later}'s)."""
        self.later.make()
        return self.promotions.of(self._files)

    def tombstones(self) -> list[str]:
        """Every deleted filename."""
        return sorted(self._tombstones)

    def __len__(self) -> int:
        return len(self._files) + self.later.file_count

    def reconfigure(self, page_cache_size: int) -> None:
        """
        Take a reloaded configuration: the budget of rendered pages, and new
        access rules (the serial moves: every reader's view is made anew).
        """
        self._rendered.max_bytes = page_cache_size
        self.serial += 1

    # -- changing ------------------------------------------------------------

    def watch_changes(self) -> None:
        """
        Note each filename changed from now until L{watched}: a look at a
        shared storage (L{pypid.state.sync}) reads a file's state before it
        answers, and a change made here meanwhile is newer than what it read.
        """
        self._watched = set()

    def watched(self) -> set[str]:
        """The filenames changed since L{watch_changes}; noting stops."""
        seen, self._watched = self._watched or set(), None
        return seen

    def _changed(self, filename: str) -> None:
        self.serial += 1
        if self._watched is not None:
            self._watched.add(filename)

    def add_pending(self, name: str, count: int, display: str | None = None) -> None:
        """
        Note C{count} stored files of the project C{name} not described yet:
        it is listed from now on (as C{display} spells it, until a file's
        metadata says), its pages not served until L{described}.
        """
        self._project_for(name, display or name).pending += count

    def described(self, name: str, count: int) -> None:
        """
        C{count} files of the project C{name} noted by L{add_pending} were
        described; a project left with nothing in it is forgotten.
        """
        project = self._projects.get(name)
        if project is not None:
            project.pending = max(0, project.pending - count)
            self._unclaimed(name)

    def load(self, records: Iterable[FileRecord], tombstones: Iterable[str] = (),
             serial: int = 0, later: Iterable[LaterProject] = (),
             promotions: Mapping[str, Promotion] | None = None) -> None:
        """
        Replace the whole content with these records (a binned one goes to
        the recycle bin) and deleted filenames.

        @param serial: the serial the content had when saved; the index goes
            on counting from there, so C{last_serial} never goes back.
        @param later: projects whose records are made when first asked for.
        @param promotions: how the promoted files among them came, as the
            snapshot or a scan of storage tells it (else L{take_promotions}).
        """
        self._rendered.clear()
        self._projects.clear()
        self._files.clear()
        self.later.clear()
        self._tombstones.clear()
        self._binned = {}
        self.promotions.replace(promotions or {})
        for filename in tombstones:
            self._tombstone(filename)
        projects = self._projects
        _fill(records, projects, self._files, self._binned)
        for source in later:
            name = source.name
            project = projects.get(name)
            if project is None:
                project = projects[name] = Project(name, source.display_name)
            elif project.made or not project.loaded:
                raise ValueError(f"project {name!r} given twice")
            else:
                project.display_name = source.display_name  # (made for a tombstone of it)
            self.later.defer(project, source)
        self._rendered.listing_changed()
        self.serial = max(self.serial, serial) + 1

    def _made_later(self, project: Project, records: Iterable[FileRecord]) -> dict[str, FileRecord]:
        """
        L{LaterProjects}' C{take}: the live records of C{project}, found by
        filename from now on, promoted ones shared; binned ones go to the
        bin. A filename held already (another project's) stays as it is.
        """
        files, in_bin = self._files, self._binned
        made = {}
        for r in records:
            if r.binned is not None:
                if r.filename not in in_bin:
                    in_bin[r.filename] = r
                    project.binned += 1
            elif r.filename not in files:
                made[r.filename] = r
        self.promotions.share_in(made, self)
        files.update(made)
        return made

    def add(self, record: FileRecord) -> None:
        """
        Add a new file, or replace the record of an existing one (a yank);
        a record binned puts the file in the recycle bin (no longer listed
        nor served, its name still taken), a live one takes it out of there.
        """
        if record.binned is not None:
            # (counted before the file is unlisted: the project stays)
            if record.filename not in self._binned:
                self._bin_counted(record, 1)
            self._unlist(record.filename)
            self.promotions.forget(record.filename)
            self._binned[record.filename] = record
            self._changed(record.filename)
            return
        restored = self._binned.pop(record.filename, None)
        if restored is not None:
            self._bin_counted(restored, -1)
        # (a promoted file described by the backfill or found by a check)
        record = self.promotions.shared(record, self)
        self._put(record)
        self._changed(record.filename)

    def add_promoted(self, record: FileRecord, promotion: Promotion) -> None:
        """Add a file promoted from another index (L{add}), and how it came."""
        self.promotions.note(record.filename, promotion)
        self.add(record)

    def take_promotions(self, promotions: dict[str, Promotion]) -> None:
        """Take what a scan of storage says of the live promoted files; forget the others."""
        self.promotions.replace({filename: promotion for filename, promotion in promotions.items()
                                 if self.get_file(filename) is not None})
        self.share_promoted()

    def share_promoted(self) -> int:
        """
        Share each promoted file's record made with its source index; how
        many were taken. A source not loaded yet shares nothing, so a start
        calls this again once every index is loaded.
        """
        files, projects = self._files, self._projects
        taken = self.promotions.share_in(files, self)
        for filename in taken:
            project = projects.get(files[filename].project)
            if project is not None and project.loaded:
                project.made[filename] = files[filename]
        return len(taken)

    def remove(self, filename: str) -> None:
        """Delete a file (live or in the recycle bin), keeping its name as a tombstone."""
        record = self.get_file(filename)
        if record is None:
            record = self._binned.pop(filename, None)
            if record is not None:
                self._bin_counted(record, -1)
        self._files.pop(filename, None)
        self.promotions.forget(filename)
        if record is not None and record.binned is None:
            project = self._projects[record.project]
            del project.files[filename]
            self._rendered.project_changed(project)
            # (the key stays, for the tombstone: _tombstone adds it if unset)
        self._tombstone(filename, record.project if record else None)
        self._changed(filename)

    def discard(self, filename: str) -> None:
        """
        Forget a file storage no longer holds that was not deleted through
        the index (an upload another server rolled back): its name stays free.
        """
        self.promotions.forget(filename)
        binned = self._binned.pop(filename, None)
        if binned is not None:
            self._bin_counted(binned, -1)
            self._unclaimed(binned.project)
        if self._unlist(filename) or binned is not None:
            self._changed(filename)

    def _bin_counted(self, record: FileRecord, change: int) -> None:
        """Count a file of C{record}'s project into (1) or out of (-1) the bin."""
        project = self._project_for(record.project, record.name) if change > 0 \
            else self._projects.get(record.project)
        if project is not None:
            project.binned = max(0, project.binned + change)

    def _unlist(self, filename: str) -> bool:
        """Take the live file C{filename} out of its project; whether there was one."""
        record = self.get_file(filename)
        self._files.pop(filename, None)
        if record is None:
            return False
        project = self._projects[record.project]
        del project.files[filename]
        self._rendered.project_changed(project)
        project.key_gone(record)
        self._unclaimed(project.name)
        return True

    def _tombstone(self, filename: str, project: str | None = None) -> None:
        if project is None:
            project = project_of_filename(filename)
        self._tombstones[filename] = project
        if project is None:
            return
        self._project_for(project, project).bury(filename)

    def _status_changed(self, name: str) -> None:
        """A project's status changed (L{statuses}): its kept pages, which carry it, go."""
        project = self._projects.get(name)
        if project is not None:
            self._rendered.project_changed(project)
        self.serial += 1

    def _project_for(self, name: str, display: str) -> Project:
        """The project of the normalized C{name}, made and listed (as C{display}) if new."""
        project = self._projects.get(name)
        if project is None:
            project = self._projects[name] = Project(name, display)
            self._rendered.listing_changed()
        return project

    def _unclaimed(self, name: str) -> None:
        """Forget the project C{name} (unlisted) if nothing keeps it (L{Project.claimed})."""
        project = self._projects.get(name)
        if project is not None and not project.claimed:
            del self._projects[project.name]
            self._rendered.listing_changed()

    def _put(self, record: FileRecord) -> None:
        project = self._project_for(record.project, record.name)
        if record.name != project.display_name and (project.display_name == project.name
                                                    or not project.files):
            # (the name a file's metadata spells, over the normalized one or
            # one read from a filename before any file was described)
            if normalize(record.name) == project.name:
                project.display_name = record.name
                self._rendered.listing_changed()
        project.files[record.filename] = record
        self._rendered.project_changed(project)
        project.key_added(record)
        self._files[record.filename] = record
