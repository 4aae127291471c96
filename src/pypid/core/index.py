"""
The in-memory index: projects, their files, and the deleted filenames.

Pure: no I/O and no clock. The web layer reads it on every request, so it
answers a lookup by filename in O(1) and keeps each page rendered, within a
budget of bytes (L{Index.rendered}, a L{RenderedPages} it tells of every
change).

Every change bumps L{Index.serial}; the snapshot service saves when the serial
moved since its last save.

Who promoted a file into this index, from which index and when (issue
26), is kept apart from its record (L{Index.promotion}): only promoted
files pay for it, a dict entry each. A promoted file takes its record's
memory once, whatever the number of indexes holding it: a promotion puts
the source's very record here, and after a restart, where each index's
snapshot made a record of its own, the index takes the source's instead
when the two are equal (L{Index.share_promoted}; the source found by its
name through C{peers}, made on demand if loaded later). Only promoted
files are looked up, and only an index given C{peers} (a server of named
indexes) does it.

A project's status (PEP 792: archived, quarantined, deprecated; L{None}
for the default, active) is kept here by name (L{Index.status}), apart
from the projects: few have one, it outlives a reload of the records
(L{Index.load} keeps it), and storage holds it apart from the files (read
at a start: L{Index.take_statuses}). Setting one drops the project's kept
pages, as a yank does.

A project can be loaded I{later} (L{Index.load}'s C{later}): listed, counted
and found by its filenames at once, its records made the first time
anything asks for them (L{Project.files}). A start from a large snapshot
so answers before a record is made (see L{pypid.storage.snapshot}).
"""

# (annotations kept as strings: a closure made per project at load, with
# its annotations evaluated, cost some 200 bytes a project of a large index)
from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from typing import Any

import attrs
from packaging.version import InvalidVersion, Version

from pypid.core.advisories import AdvisoryPolicy, no_advisories
from pypid.core.model import FileRecord
from pypid.core.names import InvalidName, distribution_key, filename_key, normalize, parse_filename
from pypid.core.pending import project_of
from pypid.core.project_status import ProjectStatus
from pypid.core.promotion import Promotion
from pypid.core.render import ProvenanceURL, provenance_url_for
from pypid.core.rendered_pages import PAGE_CACHE_SIZE, RenderedPages

#: What L{Index.load} takes of a project loaded later: C{(name,
#: display_name, filenames, source)}, where C{source()} gives the records.
LaterProject = tuple[str, str, Collection[str], Callable[[], Iterable[FileRecord]]]


def version_key(version: str) -> tuple[int, Version | None, str]:
    """Sort key for version strings; invalid ones sort first, by text."""
    try:
        return (1, Version(version), version)
    except InvalidVersion:
        return (0, None, version)


def is_prerelease(version: str) -> bool:
    """Whether C{version} is a pre-release (one packaging cannot read counts as one)."""
    parsed = version_key(version)[1]
    return parsed is None or parsed.is_prerelease


def choose_latest(versions: Iterable[str], yanked: Callable[[str], bool]) -> str | None:
    """
    The version installers pick by default among C{versions}: the newest
    final release that is not wholly yanked; without one, the newest final
    release; with no final release, the same among pre-releases. L{None}
    for no versions.

    @param yanked: C{yanked(version)}: whether every file of it is yanked.
    """
    ordered = sorted(versions, key=version_key, reverse=True)
    finals = [v for v in ordered if not is_prerelease(v)] or ordered
    return next((v for v in finals if not yanked(v)), finals[0] if finals else None)


def latest_per_project(records: Iterable[FileRecord]) -> set[str]:
    """
    The filename of one file of each project's latest version (a wheel
    rather than an sdist): the page a person opens first, worth describing
    ahead of that view.
    """
    by_project: dict[str, list[FileRecord]] = {}
    for record in records:
        by_project.setdefault(record.project, []).append(record)
    chosen = set()
    for files in by_project.values():
        alive = {r.version for r in files if r.yanked is None}
        latest = choose_latest({r.version for r in files}, _yanked_but(alive))
        chosen.add(min((not r.is_wheel, r.filename) for r in files if r.version == latest)[1])
    return chosen


def _yanked_but(alive: set[str]) -> Callable[[str], bool]:
    """C{yanked(version)} for L{choose_latest}: every version but those C{alive}."""
    return lambda version: version not in alive


@attrs.define
class Project:
    """
    A hosted project: its files by filename, its deleted filenames, and its
    rendered pages.

    A project stays known after all its files are deleted, so that its name
    keeps belonging to this index, and while any of its files is in the
    recycle bin (issue 41: else the upstream would be asked for its name).
    """

    name: str
    display_name: str
    _files: dict[str, FileRecord] = attrs.field(factory=dict)
    #: its rendered pages and the values other modules keep with them, by
    #: key: read and written by the index's L{RenderedPages} alone (here so
    #: that a project the index replaced or forgot takes them along)
    rendered: dict[Hashable, Any] = attrs.field(factory=dict)
    #: the deleted filenames that belonged to it
    deleted: set[str] = attrs.field(factory=set)
    #: how many of its stored files are still to be described (found
    #: without a record: L{pypid.core.pending}); its pages wait for them
    pending: int = 0
    #: how many of its files are in the recycle bin: while any is, its
    #: name stays hosted here (one slot; small ints are shared)
    binned: int = attrs.field(default=0, eq=False, repr=False)
    #: how many times its files changed (an add, yank, unyank, removal or
    #: discard: bumped by L{RenderedPages.project_changed}), so that a page
    #: composed of it elsewhere (L{pypid.core.views}) tells, with its
    #: identity, whether it is still what the page was made of; one slot,
    #: 8 bytes a project (small ints are shared)
    changes: int = attrs.field(default=0, init=False, eq=False, repr=False)
    #: distribution key -> filename, for its live and deleted files; made
    #: when an upload first asks (L{Index.same_distribution}), not at load:
    #: 150 bytes and 0.7 us a file that most projects of a large index,
    #: never uploaded to again, would not use
    _keys: dict[str, str] | None = None
    #: C{source() -> dict} of its files, for a project loaded later
    #: (L{Index.load}): called once, the first time they are asked for
    _source: Callable[[], dict[str, FileRecord]] | None = attrs.field(
        default=None, init=False, eq=False, repr=False)
    #: how many files it was loaded later with (L{count} until they are made)
    _count: int = attrs.field(default=0, init=False, eq=False, repr=False)

    @property
    def files(self) -> dict[str, FileRecord]:
        """Its live files: L{FileRecord}s by filename."""
        if self._source is not None:
            source, self._source = self._source, None
            self._files = source()
        return self._files

    @property
    def loaded(self) -> bool:
        """Whether its records are made (not waiting to be: L{files})."""
        return self._source is None

    @property
    def count(self) -> int:
        """How many live files it has, its records made or not."""
        return len(self._files) if self._source is None else self._count

    def sorted_files(self) -> list[FileRecord]:
        """The files in the order the pages list them: by version, then name."""
        return sorted(self.files.values(), key=lambda r: (version_key(r.version), r.filename))

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

    def _added(self, record: FileRecord) -> None:
        if self._keys is not None:
            self._keys.setdefault(_key_of(record), record.filename)

    def _gone(self, filename: str, key: str | None) -> None:
        if self._keys is not None and key is not None and self._keys.get(key) == filename:
            del self._keys[key]


def _key_of(record: FileRecord) -> str:
    return distribution_key(record.project, record.version, record.packagetype,
                            record.filename)


@attrs.define(init=False)
class Index:
    """
    Every hosted project and file, and their rendered pages (L{rendered}).

    @ivar file_url: C{file_url(record) -> str}, the URL a page links a file
        by (relative to the project page, or absolute when a base URL is set).
    """

    file_url: Callable[[FileRecord], str]
    serial: int
    #: the rendered pages, told of every change made here
    _rendered: RenderedPages
    _projects: dict[str, Project] = attrs.field(factory=dict)
    _files: dict[str, FileRecord] = attrs.field(factory=dict)
    #: deleted filename -> the project it belonged to (L{None}: unknown)
    _tombstones: dict[str, str | None] = attrs.field(factory=dict)
    #: the projects loaded later whose records are not made yet, by name,
    #: and how many files they hold (not in C{_files} until they are made)
    _later: dict[str, Project] = attrs.field(factory=dict)
    _later_count: int = 0
    #: filename -> how it was promoted into this index, for promoted files only
    _promotions: dict[str, Promotion] = attrs.field(factory=dict)
    #: C{peers(name) -> Index | None}: the hosted index of that name, where
    #: a promoted file's record is shared from (L{share_promoted})
    _peers: Callable[[str], Index | None] | None = None
    #: normalized project -> its status, for the projects that are not active
    _statuses: dict[str, ProjectStatus] = attrs.field(factory=dict)
    #: filename -> the record of a file in the recycle bin (issue 29): held
    #: apart from C{_files} and the projects, so that nothing that lists or
    #: serves files sees it, until it is restored (L{add}) or purged (L{remove})
    _binned: dict[str, FileRecord] = attrs.field(factory=dict)

    def __init__(self, file_url: Callable[[FileRecord], str], serial: int = 0, *,
                 page_cache_size: int = PAGE_CACHE_SIZE,
                 peers: Callable[[str], Index | None] | None = None,
                 advisories: AdvisoryPolicy | None = None,
                 provenance_url: ProvenanceURL | None = None) -> None:
        """
        @param page_cache_size: the budget of the projects' rendered pages
            (L{RenderedPages.max_bytes}).
        @param advisories: the index's L{AdvisoryPolicy} (issue 27), which
            its pages apply (L{RenderedPages.advisories}); L{None}: none.
        @param peers: C{peers(name)}: the server's other hosted index of that
            name, or L{None}; a promoted file's record is shared with the
            index it came from (L{share_promoted}). L{None}: no sharing (a
            server of one index).
        @param provenance_url: the link its pages give a file's provenance
            (L{pypid.core.render.provenance_url_for}); L{None}: none.
        """
        self.__attrs_init__(file_url, serial,
                            RenderedPages(file_url, self.projects, max_bytes=page_cache_size,
                                          status=self.status,
                                          advisories=advisories or no_advisories(),
                                          provenance_url=provenance_url
                                          or provenance_url_for(None)),
                            peers=peers)

    # -- reading -------------------------------------------------------------

    @property
    def listing_serial(self) -> int:
        """
        How many times the list of projects changed (a project came or
        went, or its display name changed; a L{load}): a page composed of
        this index where a project was I{absent} is still right while it
        has not moved (L{pypid.core.views}).
        """
        return self._rendered.listing_serial

    @property
    def rendered(self) -> RenderedPages:
        """Its rendered pages: the C{/simple/} pages, kept, and what is kept with them."""
        return self._rendered

    @property
    def advisories(self) -> AdvisoryPolicy:
        """What it does about security advisories (its pages apply it: issue 27)."""
        return self._rendered.advisories

    def project(self, name: str) -> Project | None:
        """The L{Project} with this normalized name, or L{None}."""
        return self._projects.get(name)

    def projects(self) -> list[Project]:
        """All projects, sorted by normalized name."""
        return [self._projects[name] for name in sorted(self._projects)]

    def status(self, name: str) -> ProjectStatus | None:
        """The status of the project of this normalized name, or L{None} when it is active."""
        return self._statuses.get(name) if self._statuses else None

    @property
    def statuses_set(self) -> bool:
        """Whether any project has a status (most indexes give none: one check)."""
        return bool(self._statuses)

    def quarantined(self, name: str) -> bool:
        """Whether the project of this normalized name is quarantined (its files not offered)."""
        status = self.status(name)
        return status is not None and status.quarantined

    def statuses(self) -> dict[str, ProjectStatus]:
        """Every project's status that is not active, by normalized name."""
        return dict(self._statuses)

    def get_file(self, filename: str, project: str | None = None) -> FileRecord | None:
        """
        The L{FileRecord} of a live file, or L{None}.

        @param project: the project the file must belong to (a file's URL
            names it), or L{None}. While projects loaded later wait for
            their records, a file not found among those made is looked for
            in its project's: the one given, else the one its name tells;
            without one given, a file not found there makes them all.
        """
        record = self._files.get(filename)
        if record is None and self._later:
            record = self._later_file(filename, project)
        return record

    def _later_file(self, filename: str, project: str | None) -> FileRecord | None:
        named = project
        if named is None:
            found = project_of(filename)
            named = found[0] if found is not None else None
        waiting = self._later.get(named) if named is not None else None
        if waiting is not None:
            waiting.files  # noqa: B018 (made by the property)
            record = self._files.get(filename)
            if record is not None:
                return record
        if project is not None:
            return None  # (not that project's, whatever another holds)
        # A name that does not tell its project (a legacy sdist's, spelt
        # otherwise than its project): every record is made now, once.
        self.load_later()
        return self._files.get(filename)

    def is_deleted(self, filename: str) -> bool:
        """Whether the filename belonged to a deleted file (never to be reused)."""
        return filename in self._tombstones

    def deleted_from(self, filename: str) -> str | None:
        """The project a deleted filename belonged to, or L{None} (not deleted, or unknown)."""
        return self._tombstones.get(filename)

    def same_distribution(self, filename: str) -> str | None:
        """
        The stored or deleted filename that names the same distribution as
        C{filename} under another spelling (or, for an sdist, another sdist
        of the same release), or L{None}.
        """
        key = filename_key(filename)
        project = self._projects.get(key.split("|", 1)[0]) if key is not None else None
        if project is None or key is None:
            return None
        other = project.keys().get(key)
        return other if other != filename else None

    def binned(self) -> list[FileRecord]:
        """Every file in the recycle bin (L{FileRecord.binned} set), the first binned first."""
        return sorted(self._binned.values(), key=lambda record: (record.binned, record.filename))

    def binned_file(self, filename: str) -> FileRecord | None:
        """The record of the file C{filename} if it is in the recycle bin, else L{None}."""
        return self._binned.get(filename)

    def held(self, filename: str) -> FileRecord | None:
        """
        The record of C{filename}, live or in the recycle bin: what storage
        holds as the index knows it (for telling storage's news from its own).
        """
        return self.get_file(filename) or self._binned.get(filename)

    def records(self) -> list[FileRecord]:
        """Every live L{FileRecord} (every project loaded later is loaded now)."""
        if self._later:
            self.load_later()
        return list(self._files.values())

    def loaded_records(self) -> list[FileRecord]:
        """
        Every live L{FileRecord} made so far: all of them, but those of the
        projects loaded later still waiting (L{later}), which are not made
        for it.
        """
        return list(self._files.values())

    def later(self) -> list[str]:
        """The names of the projects loaded later whose records are not made yet."""
        return list(self._later)

    @property
    def waiting(self) -> int:
        """How many projects loaded later are not made yet (L{later}, counted)."""
        return len(self._later)

    def load_later(self, names: Iterable[str] | None = None) -> None:
        """
        Make the records of the projects loaded later (of C{names}, or all):
        what asking for their files would, ahead of the asking.
        """
        for name in list(self._later) if names is None else names:
            project = self._later.get(name)
            if project is not None:
                project.files  # noqa: B018 (made by the property)

    def promotion(self, filename: str) -> Promotion | None:
        """How the live file C{filename} was promoted into this index, or L{None} (uploaded)."""
        return self._promotions.get(filename)

    def promotions(self) -> dict[str, Promotion]:
        """
        Every promoted live file's L{Promotion}, by filename (every project
        loaded later is loaded now, as L{records} does).
        """
        if self._later:
            self.load_later()
        files = self._files
        return {filename: promotion for filename, promotion in self._promotions.items()
                if filename in files}

    def tombstones(self) -> list[str]:
        """Every deleted filename."""
        return sorted(self._tombstones)

    def __len__(self) -> int:
        return len(self._files) + self._later_count

    def reconfigure(self, page_cache_size: int) -> None:
        """
        Take a reloaded configuration (C{SIGHUP}): the budget of rendered
        pages (L{RenderedPages.max_bytes}), and new access rules, by which
        the pages kept per reader's view are judged again (the serial
        moves: every view is made anew).
        """
        self._rendered.max_bytes = page_cache_size
        self.serial += 1

    # -- changing ------------------------------------------------------------

    def set_status(self, name: str, status: ProjectStatus | None) -> None:
        """
        Give the project of this normalized name a status (L{None}: active),
        and drop its kept pages, which carry it.
        """
        if status is None:
            self._statuses.pop(name, None)
        else:
            self._statuses[name] = status
        project = self._projects.get(name)
        if project is not None:
            self._rendered.project_changed(project)
        self.serial += 1

    def take_statuses(self, statuses: Mapping[str, ProjectStatus]) -> None:
        """Replace every status with those storage holds (at a start: L{set_status} each)."""
        for name in set(self._statuses) | set(statuses):
            if self._statuses.get(name) != statuses.get(name):
                self.set_status(name, statuses.get(name))

    def add_pending(self, name: str, count: int, display: str | None = None) -> None:
        """
        Note C{count} stored files of the project C{name} (normalized) that
        are not described yet: the project is listed from now on (as
        C{display} spells it, until a file's metadata says), and its pages
        are not served until L{described} says they are.
        """
        project = self._projects.get(name)
        if project is None:
            project = self._projects[name] = Project(name, display or name)
            self._rendered.listing_changed()
        project.pending += count

    def described(self, name: str, count: int) -> None:
        """
        C{count} files of the project C{name} noted by L{add_pending} were
        described (and those that were distributions added); a project
        left with nothing in it (its files were not distributions) is
        forgotten.
        """
        project = self._projects.get(name)
        if project is None:
            return
        project.pending = max(0, project.pending - count)
        if not project.claimed:
            del self._projects[name]
            self._rendered.listing_changed()

    def load(self, records: Iterable[FileRecord], tombstones: Iterable[str] = (),
             serial: int = 0, later: Iterable[LaterProject] = (),
             promotions: Mapping[str, Promotion] | None = None) -> None:
        """
        Replace the whole content with these records (a binned one goes to
        the recycle bin) and deleted filenames.

        @param serial: the serial the content had when saved; the index goes
            on counting from there, so C{last_serial} never goes back.
        @param later: projects whose records are made when first asked for:
            C{(name, display_name, filenames, source)} each, where
            C{source()} gives the records of those filenames (one that it
            does not give is forgotten then, as storage may still have it).
        @param promotions: how the promoted files among them came, as the
            snapshot or a scan of storage tells it (L{take_promotions} takes
            them later otherwise); their records are shared with their
            source index's as they are made (L{share_promoted}).
        """
        self._rendered.clear()
        self._projects.clear()
        self._files.clear()
        self._later.clear()
        self._later_count = 0
        self._tombstones.clear()
        self._binned = {}
        self._promotions = dict(promotions) if promotions else {}
        for filename in tombstones:
            self._tombstone(filename)
        # What _put does, for a whole index at once: every page is gone
        # already, and no project has keys yet (100,001 files in 0.07-0.10
        # s with the collector off, as at start-up).
        projects, files, in_bin = self._projects, self._files, self._binned
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
            project._files[filename] = record
            files[filename] = record
        for name, display, filenames, source in later:
            project = projects.get(name)
            if project is None:
                project = projects[name] = Project(name, display)
            elif project._files or not project.loaded:
                raise ValueError(f"project {name!r} given twice")
            else:
                project.display_name = display  # (made for a tombstone of it)
            project._source = self._loader(project, len(filenames), source)
            project._count = len(filenames)
            self._later[name] = project
            self._later_count += len(filenames)
        self._rendered.listing_changed()
        self.serial = max(self.serial, serial) + 1

    def _loader(self, project: Project, count: int, source: Callable[[], Iterable[FileRecord]],
                ) -> Callable[[], dict[str, FileRecord]]:
        """
        C{project}'s L{Project._source}: its records made, and found by
        filename from then on. (Its C{count} files are not in C{_files}
        before: a dict of a million filenames took 0.75 s of a start.) A
        filename the index holds already (another project's, given twice)
        stays as it is.
        """
        def load() -> dict[str, FileRecord]:
            try:
                records = source()
            finally:
                # (a source that fails leaves the project empty, and waiting
                # for nothing: the check finds its files in storage)
                self._later.pop(project.name, None)
                self._later_count -= count
            files, in_bin = self._files, self._binned
            made = {}
            for r in records:
                if r.binned is not None:
                    if r.filename not in in_bin:
                        in_bin[r.filename] = r
                        project.binned += 1
                elif r.filename not in files:
                    made[r.filename] = r
            if self._peers is not None and self._promotions:
                promoted = self._promotions
                for filename, record in made.items():
                    if filename in promoted:
                        made[filename] = self._shared(record)
            files.update(made)
            return made
        return load

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
            self._promotions.pop(record.filename, None)
            self._binned[record.filename] = record
            self.serial += 1
            return
        restored = self._binned.pop(record.filename, None)
        if restored is not None:
            self._bin_counted(restored, -1)
        if self._peers is not None and record.filename in self._promotions:
            # (a promoted file described by the backfill or found by a check)
            record = self._shared(record)
        self._put(record)
        self.serial += 1

    def add_promoted(self, record: FileRecord, promotion: Promotion) -> None:
        """Add a file promoted from another index (L{add}), and how it came."""
        self._promotions[record.filename] = promotion
        self.add(record)

    def take_promotions(self, promotions: dict[str, Promotion]) -> None:
        """
        Take what storage says of the promoted files (a scan's
        L{pypid.storage.interface.ScanResult.promotions}): those of live
        files, all the others forgotten.
        """
        self._promotions = {filename: promotion for filename, promotion in promotions.items()
                            if self.get_file(filename) is not None}
        self.share_promoted()

    def share_promoted(self) -> int:
        """
        Take, for each promoted file whose record is made, the record its
        source index holds when the two are equal: one record for a file
        in several indexes (see the module's docstring). A source not
        loaded yet shares nothing now; a start calls this again once every
        index is loaded (L{pypid.state.loader.IndexLoader.follow_up}), and
        the records of projects loaded later are shared as they are made.

        @return: how many records were taken from their source.
        """
        if self._peers is None or not self._promotions:
            return 0
        taken = 0
        files, projects = self._files, self._projects
        for filename in list(self._promotions):
            record = files.get(filename)
            if record is None:
                continue
            shared = self._shared(record)
            if shared is not record:
                files[filename] = shared
                project = projects.get(record.project)
                if project is not None and project.loaded:
                    project._files[filename] = shared
                taken += 1
        return taken

    def _shared(self, record: FileRecord) -> FileRecord:
        """The source index's record of the promoted file C{record} if equal, else C{record}."""
        promotion = self._promotions.get(record.filename)
        peers = self._peers
        if promotion is None or peers is None:
            return record
        source = peers(promotion.source)
        if source is None or source is self:
            return record
        # (a project of the source loaded later is made by the asking)
        theirs = source.get_file(record.filename, record.project)
        return theirs if theirs is not None and theirs == record else record

    def remove(self, filename: str) -> None:
        """Delete a file (live or in the recycle bin), keeping its name as a tombstone."""
        record = self.get_file(filename)
        if record is None:
            record = self._binned.pop(filename, None)
            if record is not None:
                self._bin_counted(record, -1)
        self._files.pop(filename, None)
        self._promotions.pop(filename, None)
        if record is not None and record.binned is None:
            project = self._projects[record.project]
            del project.files[filename]
            self._rendered.project_changed(project)
            # (the key stays, for the tombstone: _tombstone adds it if unset)
        self._tombstone(filename, record.project if record else None)
        self.serial += 1

    def discard(self, filename: str) -> None:
        """
        Forget a file that storage no longer holds and that was not deleted
        through the index (an upload another server rolled back): no
        tombstone, so its name stays free.
        """
        self._promotions.pop(filename, None)
        binned = self._binned.pop(filename, None)
        if binned is not None:
            self._bin_counted(binned, -1)
            project = self._projects.get(binned.project)
            if project is not None and not project.claimed:
                del self._projects[binned.project]
                self._rendered.listing_changed()
        if self._unlist(filename) or binned is not None:
            self.serial += 1

    def _bin_counted(self, record: FileRecord, change: int) -> None:
        """Count a file of C{record}'s project into (1) or out of (-1) the bin."""
        project = self._projects.get(record.project)
        if project is None and change > 0:
            project = self._projects[record.project] = Project(record.project, record.name)
            self._rendered.listing_changed()
        if project is not None:
            project.binned = max(0, project.binned + change)

    def _unlist(self, filename: str) -> bool:
        """
        Take the live file C{filename} out of its project (and a project
        left with nothing out of the listing); whether there was one.
        """
        record = self.get_file(filename)
        self._files.pop(filename, None)
        if record is None:
            return False
        project = self._projects[record.project]
        del project.files[filename]
        self._rendered.project_changed(project)
        project._gone(filename, _key_of(record))
        if not project.claimed:
            del self._projects[record.project]
            self._rendered.listing_changed()
        return True

    def _tombstone(self, filename: str, project: str | None = None) -> None:
        if project is None:
            try:
                project = parse_filename(filename, legacy=True).project
            except InvalidName:
                project = None
        self._tombstones[filename] = project
        if project is None:
            return
        known = self._projects.get(project)
        if known is None:
            known = self._projects[project] = Project(project, project)
            self._rendered.listing_changed()
        known.deleted.add(filename)
        if known._keys is not None:
            key = filename_key(filename)
            if key is not None:
                known._keys.setdefault(key, filename)

    def _put(self, record: FileRecord) -> None:
        project = self._projects.get(record.project)
        if project is None:
            project = self._projects[record.project] = Project(record.project, record.name)
            self._rendered.listing_changed()
        elif record.name != project.display_name and (project.display_name == project.name
                                                      or not project.files):
            # (the name a file's metadata spells, over the normalized one or
            # one read from a filename before any file was described)
            if normalize(record.name) == project.name:
                project.display_name = record.name
                self._rendered.listing_changed()
        project.files[record.filename] = record
        self._rendered.project_changed(project)
        project._added(record)
        self._files[record.filename] = record
