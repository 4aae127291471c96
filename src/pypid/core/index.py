"""
The in-memory index: projects, their files, and the deleted filenames.

Pure: no I/O and no clock. The web layer reads it on every request, so it
keeps each page as bytes (and gzip-compressed bytes, and their ETag), rendered
at most once after each change to the project while it is kept, and answers a
lookup by filename in O(1). The root pages are always kept; the projects'
pages are kept within a budget of bytes (C{[pypid] page_cache_size}), the
least recently asked for dropped first (see L{Index.page_cache_size}).

Every change bumps L{Index.serial}; the snapshot service saves when the serial
moved since its last save.

A project can be loaded I{later} (L{Index.load}'s C{later}): listed, counted
and found by its filenames at once, its records made the first time
anything asks for them (L{Project.files}). A start from a large snapshot
so answers before a record is made (see L{pypid.storage.snapshot}).
"""

import gzip

import attrs
from packaging.version import InvalidVersion, Version

from pypid.core import render
from pypid.core.lru import ByteLRU
from pypid.core.names import InvalidName, distribution_key, filename_key, normalize, parse_filename
from pypid.core.pending import project_of

HTML = "html"
JSON = "json"

CONTENT_TYPES = {
    HTML: b"text/html; charset=utf-8",
    JSON: b"application/vnd.pypi.simple.v1+json",
}

# Pages shorter than this are not worth a Content-Encoding.
_MIN_GZIP = 256


@attrs.frozen
class Page:
    """
    One rendered page, ready to send.

    @ivar body: the bytes.
    @ivar etag: its strong ETag, quotes included.
    @ivar gzipped: the same bytes gzip-compressed, or L{None} when too small
        to be worth it.
    @ivar gzip_etag: the ETag of the compressed representation.
    @ivar content_type: the Content-Type header value.
    """

    body: bytes
    etag: bytes
    gzipped: bytes | None
    gzip_etag: bytes | None
    content_type: bytes

    @classmethod
    def of(cls, body, content_type):
        """Make a page from rendered bytes, with its compressed form."""
        tag = render.etag(body)
        if len(body) >= _MIN_GZIP:
            gzipped = gzip.compress(body, compresslevel=6, mtime=0)
            gzip_etag = tag[:-1] + b'-gz"'
        else:
            gzipped = gzip_etag = None
        return cls(body, tag, gzipped, gzip_etag, content_type)


#: The default of C{[pypid] page_cache_size}: 64 MiB holds one kind of
#: page (the JSON pip and uv ask for) of about 20,000 projects of 5 files
#: (3.4 KB each with its gzip form; both kinds of 10,000), more than a
#: company's installs ask for in a day, where every page of a million files
#: (200,000 projects) would take 1.3 GB.
PAGE_CACHE_SIZE = 64 << 20


def page_bytes(value):
    """
    The bytes a value kept with a project's pages counts against the
    budget: a L{Page}'s body and gzipped body, or those of the L{Page} a
    tuple starts with (the upstream proxy keeps C{(page, entry)}); 0 for
    anything else (a search entry, a token), which is small, one a project
    at most, and so is kept until the project changes, never evicted.
    """
    if type(value) is tuple and value:
        value = value[0]
    if isinstance(value, Page):
        return len(value.body) + (len(value.gzipped) if value.gzipped is not None else 0)
    return 0


def version_key(version):
    """Sort key for version strings; invalid ones sort first, by text."""
    try:
        return (1, Version(version), version)
    except InvalidVersion:
        return (0, None, version)


def is_prerelease(version):
    """Whether C{version} is a pre-release (one packaging cannot read counts as one)."""
    key = version_key(version)
    return key[0] == 0 or key[1].is_prerelease


def choose_latest(versions, yanked):
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


def latest_per_project(records):
    """
    The filename of one file of each project's latest version (a wheel
    rather than an sdist): the page a person opens first, worth describing
    ahead of that view.
    """
    by_project = {}
    for record in records:
        by_project.setdefault(record.project, []).append(record)
    chosen = set()
    for files in by_project.values():
        alive = {r.version for r in files if r.yanked is None}
        latest = choose_latest({r.version for r in files}, lambda v: v not in alive)
        chosen.add(min((not r.is_wheel, r.filename) for r in files if r.version == latest)[1])
    return chosen


@attrs.define
class Project:
    """
    A hosted project: its files by filename, its deleted filenames, and its
    rendered pages.

    A project stays known after all its files are deleted, so that its name
    keeps belonging to this index.
    """

    name: str
    display_name: str
    _files: dict = attrs.field(factory=dict)
    _pages: dict = attrs.field(factory=dict)
    #: the deleted filenames that belonged to it
    deleted: set = attrs.field(factory=set)
    #: how many of its stored files are still to be described (found
    #: without a record: L{pypid.core.pending}); its pages wait for them
    pending: int = 0
    #: distribution key -> filename, for its live and deleted files; made
    #: when an upload first asks (L{Index.same_distribution}), not at load:
    #: 150 bytes and 0.7 us a file that most projects of a large index,
    #: never uploaded to again, would not use
    _keys: dict | None = None
    #: C{source() -> dict} of its files, for a project loaded later
    #: (L{Index.load}): called once, the first time they are asked for
    _source: object = attrs.field(default=None, init=False, eq=False, repr=False)
    #: how many files it was loaded later with (L{count} until they are made)
    _count: int = attrs.field(default=0, init=False, eq=False, repr=False)

    @property
    def files(self):
        """Its live files: L{FileRecord}s by filename."""
        if self._source is not None:
            source, self._source = self._source, None
            self._files = source()
        return self._files

    @property
    def loaded(self):
        """Whether its records are made (not waiting to be: L{files})."""
        return self._source is None

    @property
    def count(self):
        """How many live files it has, its records made or not."""
        return len(self._files) if self._source is None else self._count

    def sorted_files(self):
        """The files in the order the pages list them: by version, then name."""
        return sorted(self.files.values(), key=lambda r: (version_key(r.version), r.filename))

    def versions(self):
        """Every version that has a file, oldest first."""
        return sorted({r.version for r in self.files.values()}, key=version_key)

    def latest_version(self):
        """The version installers pick by default (L{choose_latest}), or L{None}."""
        alive = {r.version for r in self.files.values() if r.yanked is None}
        return choose_latest({r.version for r in self.files.values()},
                             lambda v: v not in alive)

    def keys(self):
        """Distribution key -> the first filename of its deleted, then live, files."""
        if self._keys is None:
            keys = {}
            for filename in sorted(self.deleted):
                key = filename_key(filename)
                if key is not None:
                    keys.setdefault(key, filename)
            for record in self.files.values():
                keys.setdefault(_key_of(record), record.filename)
            self._keys = keys
        return self._keys

    def _added(self, record):
        if self._keys is not None:
            self._keys.setdefault(_key_of(record), record.filename)

    def _gone(self, filename, key):
        if self._keys is not None and key is not None and self._keys.get(key) == filename:
            del self._keys[key]


def _key_of(record):
    return distribution_key(record.project, record.version, record.packagetype,
                            record.filename)


def _evicted(name, project):
    """Drop the pages kept of an evicted C{project}, keeping its other values (L{page_bytes})."""
    pages = project._pages
    for key in [key for key, value in pages.items() if page_bytes(value)]:
        del pages[key]


def _page_table(size):
    """The table of the projects whose pages are kept, within C{size} bytes."""
    return size if isinstance(size, ByteLRU) else ByteLRU(size, on_evict=_evicted)


@attrs.define
class Index:
    """
    Every hosted project and file.

    @ivar file_url: C{file_url(record) -> str}, the URL a page links a file
        by (relative to the project page, or absolute when a base URL is set).
    """

    file_url: object
    serial: int = 0
    _projects: dict = attrs.field(factory=dict)
    _files: dict = attrs.field(factory=dict)
    _tombstones: dict = attrs.field(factory=dict)
    _root_pages: dict = attrs.field(factory=dict)
    #: the projects loaded later whose records are not made yet, by name,
    #: and how many files they hold (not in C{_files} until they are made)
    _later: dict = attrs.field(factory=dict, init=False)
    _later_count: int = attrs.field(default=0, init=False)
    #: the projects whose pages are kept, least recently asked for first,
    #: within the budget (L{page_cache_size}, the argument that makes it):
    #: normalized name -> L{Project}, counted the bytes its pages hold
    _recent: ByteLRU = attrs.field(default=PAGE_CACHE_SIZE, kw_only=True,
                                   alias="page_cache_size", converter=_page_table)

    # -- reading -------------------------------------------------------------

    def project(self, name):
        """The L{Project} with this normalized name, or L{None}."""
        return self._projects.get(name)

    def projects(self):
        """All projects, sorted by normalized name."""
        return [self._projects[name] for name in sorted(self._projects)]

    def get_file(self, filename, project=None):
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

    def _later_file(self, filename, project):
        named = project
        if named is None:
            found = project_of(filename)
            named = found[0] if found is not None else None
        waiting = self._later.get(named)
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

    def is_deleted(self, filename):
        """Whether the filename belonged to a deleted file (never to be reused)."""
        return filename in self._tombstones

    def deleted_from(self, filename):
        """The project a deleted filename belonged to, or L{None} (not deleted, or unknown)."""
        return self._tombstones.get(filename)

    def same_distribution(self, filename):
        """
        The stored or deleted filename that names the same distribution as
        C{filename} under another spelling (or, for an sdist, another sdist
        of the same release), or L{None}.
        """
        key = filename_key(filename)
        project = self._projects.get(key.split("|", 1)[0]) if key is not None else None
        if project is None:
            return None
        other = project.keys().get(key)
        return other if other != filename else None

    def records(self):
        """Every live L{FileRecord} (every project loaded later is loaded now)."""
        if self._later:
            self.load_later()
        return list(self._files.values())

    def loaded_records(self):
        """
        Every live L{FileRecord} made so far: all of them, but those of the
        projects loaded later still waiting (L{later}), which are not made
        for it.
        """
        return list(self._files.values())

    def later(self):
        """The names of the projects loaded later whose records are not made yet."""
        return list(self._later)

    @property
    def waiting(self):
        """How many projects loaded later are not made yet (L{later}, counted)."""
        return len(self._later)

    def load_later(self, names=None):
        """
        Make the records of the projects loaded later (of C{names}, or all):
        what asking for their files would, ahead of the asking.
        """
        for name in list(self._later) if names is None else names:
            project = self._later.get(name)
            if project is not None:
                project.files  # noqa: B018 (made by the property)

    def tombstones(self):
        """Every deleted filename."""
        return sorted(self._tombstones)

    def __len__(self):
        return len(self._files) + self._later_count

    # -- pages ---------------------------------------------------------------

    def root_page(self, kind):
        """The rendered C{/simple/} page of the given kind (C{"html"} or C{"json"})."""
        page = self._root_pages.get(kind)
        if page is None:
            pairs = [(p.name, p.display_name) for p in self.projects()]
            body = render.root_html(pairs) if kind == HTML else render.root_json(pairs)
            page = self._root_pages[kind] = Page.of(body, CONTENT_TYPES[kind])
        return page

    def project_page(self, project, kind):
        """
        The rendered C{/simple/<project>/} page of a L{Project}: the one
        kept, or rendered now (and kept, within L{page_cache_size}).

        A page kept costs a dict lookup and an C{OrderedDict.move_to_end}
        (O(1)): 160 to 170 ns a call against 100 ns for the lookup alone,
        before the budget (C{timeit}, 2,000 projects kept), so 50 to 70 ns
        of the 50 us it takes to serve the page; made through
        L{ByteLRU.touch}, 20 to 40 ns more (a method call). One evicted is
        rendered again: 60 us (HTML) and 140 us (JSON) for 5 files, 0.2 and
        0.6 ms for 30.
        """
        page = project._pages.get(kind)
        if page is not None:
            # (False for a project the index no longer holds)
            self._recent.touch(project.name)
            return page
        files = [(r, self.file_url(r)) for r in project.sorted_files()]
        if kind == HTML:
            body = render.project_html(project.name, files)
        else:
            body = render.project_json(project.name, files, project.versions())
        page = Page.of(body, CONTENT_TYPES[kind])
        self._keep(project, kind, page)
        return page

    def extra_page(self, project, key):
        """
        A page about C{project} that another module rendered and kept with
        L{keep_page} (the legacy JSON API), or L{None}; it is dropped with
        the project's own pages whenever the project changes, and evicted
        with them.
        """
        value = project._pages.get(key)
        if value is not None and page_bytes(value):
            self._recent.touch(project.name)
        return value

    def keep_page(self, project, key, page):
        """
        Keep a rendered page of C{project} until the project changes, or
        until it is evicted with the project's pages (L{page_cache_size}).
        A value that is no page (L{page_bytes} 0) is kept until the project
        changes.
        """
        self._keep(project, key, page)

    @property
    def page_cache_size(self):
        """
        The budget, in bytes, of the projects' rendered pages (body and
        gzipped body; C{[pypid] page_cache_size}). Over it, the pages of
        the projects least recently asked for are dropped, to be rendered
        again when next asked for (the same bytes). The root pages are
        always kept and not counted. 0 keeps no project's page: each
        request renders its page. Setting it (a reload) evicts at once.
        """
        return self._recent.max_bytes

    @page_cache_size.setter
    def page_cache_size(self, size):
        self._recent.max_bytes = size

    def reconfigure(self, page_cache_size):
        """
        Take a reloaded configuration (C{SIGHUP}): the budget of rendered
        pages, and new access rules, by which the pages kept per reader's
        view are judged again (the serial moves: every view is made anew).
        """
        self.page_cache_size = page_cache_size
        self.serial += 1

    @property
    def page_cache_bytes(self):
        """The bytes the projects' kept pages count (at most L{page_cache_size})."""
        return self._recent.bytes

    @property
    def page_cache_projects(self):
        """How many projects have pages kept."""
        return len(self._recent)

    def _keep(self, project, key, value):
        """
        Keep C{value} under C{key} with C{project}'s pages, counted, then
        evict the least recently used down to the budget; a project whose
        pages alone exceed it is not kept (rather than evict every other).
        """
        pages = project._pages
        pages[key] = value
        name = project.name
        kept = self._recent.peek(name)
        if kept is not None and kept is not project:
            # (an older Project of that name, which the index replaced)
            _evicted(name, self._recent.pop(name))
            kept = None
        size = sum(page_bytes(v) for v in pages.values())
        if kept is None and not size:
            return
        self._recent.put(name, project, size)

    def _drop_pages(self, project):
        """Forget every page and value kept of C{project}: it changed."""
        project._pages.clear()
        if self._recent.peek(project.name) is project:
            self._recent.pop(project.name)

    def _drop_all_pages(self):
        """Forget the pages of every project (the whole content was replaced)."""
        for _, project in self._recent.items():
            project._pages.clear()
        self._recent.clear()

    # -- changing ------------------------------------------------------------

    def add_pending(self, name, count, display=None):
        """
        Note C{count} stored files of the project C{name} (normalized) that
        are not described yet: the project is listed from now on (as
        C{display} spells it, until a file's metadata says), and its pages
        are not served until L{described} says they are.
        """
        project = self._projects.get(name)
        if project is None:
            project = self._projects[name] = Project(name, display or name)
            self._root_pages.clear()
        project.pending += count

    def described(self, name, count):
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
        if not project.pending and not project.files and not project.deleted:
            del self._projects[name]
            self._root_pages.clear()

    def load(self, records, tombstones=(), serial=0, later=()):
        """
        Replace the whole content with these records and deleted filenames.

        @param serial: the serial the content had when saved; the index goes
            on counting from there, so C{last_serial} never goes back.
        @param later: projects whose records are made when first asked for:
            C{(name, display_name, filenames, source)} each, where
            C{source()} gives the records of those filenames (one that it
            does not give is forgotten then, as storage may still have it).
        """
        self._drop_all_pages()
        self._projects.clear()
        self._files.clear()
        self._later.clear()
        self._later_count = 0
        self._tombstones.clear()
        for filename in tombstones:
            self._tombstone(filename)
        # What _put does, for a whole index at once: every page is gone
        # already, and no project has keys yet (100,001 files in 0.07-0.10
        # s with the collector off, as at start-up).
        projects, files = self._projects, self._files
        for record in records:
            filename, name, display = record.filename, record.project, record.name
            project = projects.get(name)
            if project is None:
                project = projects[name] = Project(name, display)
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
        self._root_pages.clear()
        self.serial = max(self.serial, serial) + 1

    def _loader(self, project, count, source):
        """
        C{project}'s L{Project._source}: its records made, and found by
        filename from then on. (Its C{count} files are not in C{_files}
        before: a dict of a million filenames took 0.75 s of a start.) A
        filename the index holds already (another project's, given twice)
        stays as it is.
        """
        def load():
            try:
                records = source()
            finally:
                # (a source that fails leaves the project empty, and waiting
                # for nothing: the check finds its files in storage)
                self._later.pop(project.name, None)
                self._later_count -= count
            files = self._files
            made = {r.filename: r for r in records if r.filename not in files}
            files.update(made)
            return made
        return load

    def add(self, record):
        """Add a new file, or replace the record of an existing one (a yank)."""
        self._put(record)
        self.serial += 1

    def remove(self, filename):
        """Delete a file, keeping its name as a tombstone."""
        record = self.get_file(filename)
        self._files.pop(filename, None)
        if record is not None:
            project = self._projects[record.project]
            del project.files[filename]
            self._drop_pages(project)
            # (the key stays, for the tombstone: _tombstone adds it if unset)
        self._tombstone(filename, record.project if record else None)
        self.serial += 1

    def discard(self, filename):
        """
        Forget a file that storage no longer holds and that was not deleted
        through the index (an upload another server rolled back): no
        tombstone, so its name stays free.
        """
        record = self.get_file(filename)
        self._files.pop(filename, None)
        if record is None:
            return
        project = self._projects[record.project]
        del project.files[filename]
        self._drop_pages(project)
        project._gone(filename, _key_of(record))
        if not project.files and not project.deleted and not project.pending:
            del self._projects[record.project]
            self._root_pages.clear()
        self.serial += 1

    def _tombstone(self, filename, project=None):
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
            self._root_pages.clear()
        known.deleted.add(filename)
        if known._keys is not None:
            key = filename_key(filename)
            if key is not None:
                known._keys.setdefault(key, filename)

    def _put(self, record):
        project = self._projects.get(record.project)
        if project is None:
            project = self._projects[record.project] = Project(record.project, record.name)
            self._root_pages.clear()
        elif record.name != project.display_name and (project.display_name == project.name
                                                      or not project.files):
            # (the name a file's metadata spells, over the normalized one or
            # one read from a filename before any file was described)
            if normalize(record.name) == project.name:
                project.display_name = record.name
                self._root_pages.clear()
        project.files[record.filename] = record
        self._drop_pages(project)
        project._added(record)
        self._files[record.filename] = record
