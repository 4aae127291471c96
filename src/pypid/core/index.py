"""
The in-memory index: projects, their files, and the deleted filenames.

Pure: no I/O and no clock. The web layer reads it on every request, so it
keeps each page as bytes (and gzip-compressed bytes, and their ETag), rendered
at most once after each change to the project, and answers a lookup by
filename in O(1).

Every change bumps L{Index.serial}; the snapshot service saves when the serial
moved since its last save.
"""

import gzip

import attrs
from packaging.version import InvalidVersion, Version

from pypid.core import render
from pypid.core.names import InvalidName, distribution_key, filename_key, normalize, parse_filename

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
    files: dict = attrs.field(factory=dict)
    _pages: dict = attrs.field(factory=dict)
    #: the deleted filenames that belonged to it
    deleted: set = attrs.field(factory=set)
    #: distribution key -> filename, for its live and deleted files; made
    #: when an upload first asks (L{Index.same_distribution}), not at load:
    #: 150 bytes and 0.7 us a file that most projects of a large index,
    #: never uploaded to again, would not use
    _keys: dict | None = None

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

    # -- reading -------------------------------------------------------------

    def project(self, name):
        """The L{Project} with this normalized name, or L{None}."""
        return self._projects.get(name)

    def projects(self):
        """All projects, sorted by normalized name."""
        return [self._projects[name] for name in sorted(self._projects)]

    def get_file(self, filename):
        """The L{FileRecord} of a live file, or L{None}."""
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
        """Every live L{FileRecord}."""
        return list(self._files.values())

    def tombstones(self):
        """Every deleted filename."""
        return sorted(self._tombstones)

    def __len__(self):
        return len(self._files)

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
        """The rendered C{/simple/<project>/} page of a L{Project}."""
        page = project._pages.get(kind)
        if page is None:
            files = [(r, self.file_url(r)) for r in project.sorted_files()]
            if kind == HTML:
                body = render.project_html(project.name, files)
            else:
                body = render.project_json(project.name, files, project.versions())
            page = project._pages[kind] = Page.of(body, CONTENT_TYPES[kind])
        return page

    def extra_page(self, project, key):
        """
        A page about C{project} that another module rendered and kept with
        L{keep_page} (the legacy JSON API), or L{None}; it is dropped with
        the project's own pages whenever the project changes.
        """
        return project._pages.get(key)

    def keep_page(self, project, key, page):
        """Keep a rendered page of C{project} until the project changes."""
        project._pages[key] = page

    # -- changing ------------------------------------------------------------

    def load(self, records, tombstones=(), serial=0):
        """
        Replace the whole content with these records and deleted filenames.

        @param serial: the serial the content had when saved; the index goes
            on counting from there, so C{last_serial} never goes back.
        """
        self._projects.clear()
        self._files.clear()
        self._tombstones.clear()
        for filename in tombstones:
            self._tombstone(filename)
        for record in records:
            self._put(record)
        self._root_pages.clear()
        self.serial = max(self.serial, serial) + 1

    def add(self, record):
        """Add a new file, or replace the record of an existing one (a yank)."""
        self._put(record)
        self.serial += 1

    def remove(self, filename):
        """Delete a file, keeping its name as a tombstone."""
        record = self._files.pop(filename, None)
        if record is not None:
            project = self._projects[record.project]
            del project.files[filename]
            project._pages.clear()
            # (the key stays, for the tombstone: _tombstone adds it if unset)
        self._tombstone(filename, record.project if record else None)
        self.serial += 1

    def discard(self, filename):
        """
        Forget a file that storage no longer holds and that was not deleted
        through the index (an upload another server rolled back): no
        tombstone, so its name stays free.
        """
        record = self._files.pop(filename, None)
        if record is None:
            return
        project = self._projects[record.project]
        del project.files[filename]
        project._pages.clear()
        project._gone(filename, _key_of(record))
        if not project.files and not project.deleted:
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
        elif project.display_name == project.name and record.name != project.name:
            if normalize(record.name) == project.name:
                project.display_name = record.name
                self._root_pages.clear()
        project.files[record.filename] = record
        project._pages.clear()
        project._added(record)
        self._files[record.filename] = record
