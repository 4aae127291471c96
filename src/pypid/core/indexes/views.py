"""
An index composed of others: a hosted index with bases, or a
read-only view with filters, answered as one index.

A named index lists a project's files from a chain of I{sources}: itself
(when it is hosted), then its bases, breadth first, left to right, each kept
at its first occurrence, the upstreams last, as devpi orders them
(L{resolve_order}). L{compose} gives the files one
project shows: the hosted sources' files first, in that order, then the
upstreams', a file whose filename or distribution (L{filename_key}, the
rule of L{pypid.upstream.confusion.merged}) is listed already hiding a
later one; the rules against dependency confusion across the whole chain
(a project hosted in the index or in any hosted base gets no upstream's
files unless that upstream merges it); then the view's L{Filters}.

L{IndexView} keeps the pages composed, each with a I{stamp} of what it was
made of: every hosted source's project object and its count of changes
(L{pypid.core.indexes.project.Project.changes}), the upstreams' cached entries (by
identity), and, when the view's cooldown hid a file, the moment it comes
of age. Checking it is a dict lookup a source and a comparison: no page
is composed again before one of those moved. A page that is the same as
one source's own (one source gave every file, all of its files, nothing
filtered, the same links) is not kept twice: the view serves that
source's own kept page (I{delegation}), so an inherited page costs no
memory and has the same ETag.

The index's own L{AdvisoryPolicy} is applied to the page it
composes, whatever its sources' own policies: a release it hides is left
off, one it denies is listed yanked with the advisories as the reason
(L{pypid.core.formats.rendered_pages.advised_files}). The stamp of a page of a
project the policy names holds the policy's stamp (the board's
generation and the rules taken), and a page composed while the policy
named no release of the project is stale once it does; such a page is
never delegated, nor one whose delegate's own pages apply advisories to
the project (they would show the source's decisions, not the index's).

A project quarantined (PEP 792) in any hosted source of the chain lists
no file at all (not a base's, not an upstream's): its page carries that
status. Otherwise the page carries the status of the first hosted source
that gives the project one, or, when none does, that of the first
upstream asked whose cached page gives one (L{upstream_status}); an
upstream that quarantines the project offers none of its files
(L{UpstreamSide.cached}), the hosted sources' files stand.

Pure: no I/O, no reactor; the time comes in as C{now}. The upstream side
is a small protocol (L{UpstreamSide}) that the upstream layer implements.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Protocol

import attrs

from pypid.core.dists.names import filename_key, normalize
from pypid.core.dists.variant_files import with_variant_files
from pypid.core.dists.version_order import is_prerelease, version_key
from pypid.core.formats import render
from pypid.core.formats.namespace_api import IndexNamespaces, served
from pypid.core.formats.render import CONTENT_TYPES, HTML, ListedFile, Page
from pypid.core.formats.rendered_pages import advised_files, page_bytes
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import UPSTREAM_PREFIX
from pypid.core.indexes.project import Project
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.security.advisories import AdvisoryPolicy, no_advisories
from pypid.core.util.lru import ByteLRU

#: The default budget of the pages composed by the views together
#: (C{[pypid] view_cache_size} once that is a key): 64 MiB.
VIEW_CACHE_SIZE = 64 << 20

#: What a kept composition costs besides its pages (its stamp, its entry in
#: the table, its dict of pages), counted so that the budget bounds the
#: delegated entries too, which keep no page of their own. Measured with
#: tracemalloc (tests/bench/bench_views.py --memory): 418 bytes an entry for a
#: chain of three hosted sources and an upstream.
ENTRY_COST = 420

#: The most project names whose admission by a view's globs is remembered.
MAX_NAMES = 1 << 16


class ComposedFile(ListedFile, Protocol):
    """
    A file as a composed page lists it: what a page shows of it
    (L{ListedFile}), and its project and version (for its link, the order
    and the pre-release filter). A L{pypid.core.indexes.model.FileRecord} and an
    upstream's file both are.
    """

    @property
    def project(self) -> str: ...
    @property
    def version(self) -> str: ...


class UpstreamAnswer(Protocol):
    """
    An upstream's answer for one project (the upstream layer's C{Decision}):
    whether it may be asked, and whether its files are merged beside hosted ones.
    """

    @property
    def allowed(self) -> bool: ...
    @property
    def merge(self) -> bool: ...


class UpstreamSide(Protocol):
    """What a composed page reads of an upstream, without I/O (implemented in C{upstream/})."""

    @property
    def name(self) -> str:
        """Its name as a base names it (C{upstream:public})."""

    def decide(self, project: str, hosted: bool) -> UpstreamAnswer:
        """May it be asked about C{project}, C{hosted} (files or tombstones) in the chain?"""

    def cached(self, project: str) -> tuple[object, Sequence[ComposedFile]] | None:
        """
        C{(token, files)}: the files its cached page of C{project} shows now
        (its own cooldown and rules applied), in page order, and a token that
        stays the same object exactly as long as those files do; L{None}
        when nothing is cached.
        """

    def status(self, project: str) -> ProjectStatus | None:
        """
        The status its cached page gives C{project} (PEP 792), or L{None};
        when it is a quarantine, L{cached} gives no file.
        """

    def file_url(self, f: ComposedFile) -> str:
        """The link its own pages give C{f}."""

    def page(self, project: str, kind: str) -> Page:
        """Its own rendered page of the files L{cached} gives (for delegation)."""


@attrs.frozen
class ChainSource:
    """
    One element of an index's resolved order: a hosted index or an upstream.

    @ivar name: as a base names it (C{release}, C{upstream:public}).
    """

    name: str
    hosted: Index | None = None
    upstream: UpstreamSide | None = None

    def __attrs_post_init__(self) -> None:
        if (self.hosted is None) == (self.upstream is None):
            raise ValueError(f"source {self.name!r}: a hosted index or an upstream, not both")


def resolve_order(name: str, bases: Mapping[str, Sequence[str]],
                  views: Collection[str] = ()) -> tuple[str, ...]:
    """
    The sources an index reads, in order, as devpi resolves an index's
    bases (its C{sro}), so that indexes brought over from devpi list what
    they listed there: itself (unless it is a view), then its bases
    breadth first, left to right, each kept where it first occurs, and the
    upstreams last, in the order they were met (C{staging -> release ->
    upstream:public}; for C{a} based on C{b, c}, both based on C{d}:
    C{a, b, c, d}). An upstream after every hosted index keeps a hosted
    file first whatever the depth that hosts it.

    @param bases: each index's bases; a name absent (an upstream) has none.
    @param views: the names that are views: read through, never a source.
    """
    order: list[str] = []
    upstreams: list[str] = []
    seen = {name}
    todo = deque([name])
    while todo:
        current = todo.popleft()
        if current.startswith(UPSTREAM_PREFIX):
            upstreams.append(current)
            continue
        if current not in views:
            order.append(current)
        for base in bases.get(current, ()):
            if base not in seen:
                seen.add(base)
                todo.append(base)
    return (*order, *upstreams)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


@attrs.frozen
class Filters:
    """
    What a view leaves out (C{[index:NAME]} of a view).

    @ivar min_age: seconds an upstream file must have been published
        before it is listed (0: none); hosted files are never held back.
        A file of unknown upload time is held back, as by C{[upstream] min_age}.
    @ivar as_of: a POSIX time: only files uploaded strictly before it are
        listed (uv's C{--exclude-newer}), hosted and upstream ones, a file
        of unknown upload time not; L{None}: no date.
    @ivar include: project name globs (normalized) a project must match.
    @ivar exclude: project name globs that leave a project out.
    @ivar hide_prereleases: leave out the files of pre-releases (and of
        versions packaging cannot read, as L{is_prerelease} counts them).
    @ivar hide_yanked: leave out yanked files altogether.
    """

    min_age: float = 0.0
    as_of: float | None = None
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    hide_prereleases: bool = False
    hide_yanked: bool = False

    def admits_project(self, name: str) -> bool:
        """Whether the view lists the project C{name} at all."""
        name = normalize(name)
        return _matches(name, self.include) and not _matches(name, self.exclude)

    def admits(self, f: ComposedFile, upstream: bool, now: float) -> bool:
        """Whether the view lists C{f} at C{now} (C{upstream}: an upstream's file)."""
        when = f.upload_time
        if self.as_of is not None and (when is None or when >= self.as_of):
            return False
        if upstream and self.min_age and (when is None or when > now - self.min_age):
            return False
        if self.hide_yanked and f.yanked is not None:
            return False
        return not (self.hide_prereleases and is_prerelease(f.version))


@attrs.frozen
class Composition:
    """
    A project's files in an index, and what they were made of.

    @ivar files: C{(file, source)} pairs, in the pages' order (version, then filename).
    @ivar found: whether any source knows the project (hosted, or a cached upstream page).
    @ivar hosted: whether a hosted source holds it (files or tombstones).
    @ivar held: per hosted source, in order: its L{Project}, or L{None}.
    @ivar changes: per hosted source: its project's L{Project.changes} (0 when absent).
    @ivar consulted: C{(upstream, token)} of each upstream asked (L{UpstreamSide.cached}).
    @ivar recheck_at: when a file the cooldown hid comes of age, or L{None}.
    @ivar delegate: the source whose own page is this one, or L{None}.
    @ivar status: the project's status in the chain (see the module), or
        L{None} (active).
    """

    project: str
    files: tuple[tuple[ComposedFile, ChainSource], ...]
    found: bool
    hosted: bool
    held: tuple[Project | None, ...]
    changes: tuple[int, ...]
    consulted: tuple[tuple[UpstreamSide, object], ...]
    recheck_at: float | None
    delegate: ChainSource | None
    status: ProjectStatus | None = None


def chain_status(order: Sequence[ChainSource], project: str) -> ProjectStatus | None:
    """
    The status of the normalized C{project} in a chain: a quarantine in
    any hosted source, else the first hosted source's status; L{None} when
    it is active in every one.
    """
    first: ProjectStatus | None = None
    for source in order:
        if source.hosted is not None:
            status = source.hosted.statuses.get(project)
            if status is not None:
                if status.quarantined:
                    return status
                first = first or status
    return first


def upstream_status(consulted: Sequence[tuple[UpstreamSide, object]],
                    project: str) -> ProjectStatus | None:
    """
    The status the first of the C{consulted} upstreams that has a cached
    page of C{project} gives it, or L{None} (for a chain whose hosted
    sources give none: L{chain_status} first).
    """
    for side, token in consulted:
        if token is not None:
            status = side.status(project)
            if status is not None:
                return status
    return None


@attrs.define(init=False)
class _Gathering:
    """
    What L{compose} gathers of a project along a chain, source after
    source, then filters: one object a call (where a closure and its cells
    were), each step a method called once a call, each file's work inline
    in its step (no call a file: this is the path of every page composed).

    @ivar taken: C{(file, source)} pairs offered and not shadowed, in order.
    @ivar names: the filenames taken.
    @ivar keys: the distribution keys taken (L{filename_key}).
    @ivar counts: per source: C{(source, how many files it offered, how
        many it gave)}, for L{_delegate}.
    @ivar held: per hosted source: its L{Project}, or L{None}.
    @ivar changes: per hosted source: its project's L{Project.changes}.
    @ivar consulted: C{(upstream, token)} of each upstream asked.
    @ivar hosted: whether a hosted source holds the project.
    @ivar filtered: whether the view's date or filters left a file out.
    @ivar files: the files that passed the filters (L{filter}).
    @ivar recheck_at: when a file the cooldown hid comes of age, or L{None}.
    """

    taken: list[tuple[ComposedFile, ChainSource]]
    names: set[str]
    keys: set[str | None]
    counts: list[tuple[ChainSource, int, int]]
    held: list[Project | None]
    changes: list[int]
    consulted: list[tuple[UpstreamSide, object]]
    hosted: bool
    filtered: bool
    files: list[tuple[ComposedFile, ChainSource]]
    recheck_at: float | None

    def __init__(self) -> None:
        # (literals, not attrs' factories: 0.3 us a call against 1.1)
        self.taken, self.names, self.keys, self.counts = [], set(), set(), []
        self.held, self.changes, self.consulted, self.files = [], [], [], []
        self.hosted = self.filtered = False
        self.recheck_at = None

    def offer(self, files: Sequence[ComposedFile], source: ChainSource) -> None:
        """Take those of a source's C{files} that no earlier source's file shadows."""
        # (shadowed by an earlier source's file only: one source's own
        # files all stand, as an upstream page's .tar.gz and .zip of one
        # release do today)
        names, keys, taken = self.names, self.keys, self.taken
        given = 0
        mine: list[tuple[str, str | None]] = []
        for f in files:
            key = filename_key(f.filename)
            if f.filename in names or (key is not None and key in keys):
                continue
            mine.append((f.filename, key))
            taken.append((f, source))
            given += 1
        for filename, key in mine:
            names.add(filename)
            keys.add(key)
        self.counts.append((source, len(files), given))

    def from_hosted(self, order: Sequence[ChainSource], project: str,
                    as_of: float | None, offering: bool) -> None:
        """Note each hosted source's project, and offer its files (unless quarantined)."""
        for source in order:
            if source.hosted is not None:
                found = source.hosted.project(project)
                self.held.append(found)
                self.changes.append(found.changes if found is not None else 0)
                if found is not None:
                    self.hosted = True
                    if offering:
                        mine: Sequence[ComposedFile] = found.sorted_files()
                        if as_of is not None:
                            before = _arrived_before(mine, source.hosted, as_of)
                            self.filtered = self.filtered or len(before) != len(mine)
                            mine = before
                        self.offer(mine, source)

    def from_upstreams(self, order: Sequence[ChainSource], project: str,
                       as_of: float | None) -> None:
        """Offer the cached files of each upstream that may be asked (L{asked})."""
        for source in asked(order, project, self.hosted):
            side = source.upstream
            assert side is not None
            cached = side.cached(project)
            self.consulted.append((side, cached[0] if cached is not None else None))
            if cached is not None:
                theirs = cached[1]
                if as_of is not None:
                    before = [f for f in theirs
                              if f.upload_time is not None and f.upload_time < as_of]
                    self.filtered = self.filtered or len(before) != len(theirs)
                    theirs = before
                self.offer(theirs, source)

    def filter(self, filters: Filters, now: float) -> None:
        """Keep the files taken that the view's C{filters} admit at C{now}, in the pages' order."""
        files = self.files
        recheck_at = self.recheck_at
        for f, source in self.taken:
            upstream = source.upstream is not None
            if filters.admits(f, upstream, now):
                files.append((f, source))
                continue
            self.filtered = True
            if upstream and filters.min_age and f.upload_time is not None \
                    and filters.admits(f, False, now):
                # (held back by the cooldown alone: listed once old enough)
                due = f.upload_time + filters.min_age
                recheck_at = due if recheck_at is None else min(recheck_at, due)
        self.recheck_at = recheck_at
        files.sort(key=lambda pair: (version_key(pair[0].version), pair[0].filename))


def compose(order: Sequence[ChainSource], project: str, filters: Filters, now: float,
            file_url: Callable[[ComposedFile], str] | None = None,
            reveal: bool = False) -> Composition:
    """
    The files the normalized C{project} lists in an index of this resolved
    C{order}, with the view's C{filters} at C{now}.

    A file is shadowed by an earlier one of the same filename or
    distribution, before the filters: a view hides what it filters, it
    does not let a later source's file of that name through (a yanked file
    in C{staging} does not bring back C{release}'s). A deleted file is no
    file: a tombstone in an earlier source hides nothing, nor
    does a file in its recycle bin. A dated view's date is the exception:
    what arrived in a source on or after it (uploaded, or
    promoted there) did not exist then, so it is left out before anything
    shadows anything, and the view's answer for its date never changes
    with what comes later.

    @param file_url: the links the view gives files; with it, the
        composition names its L{Composition.delegate}.
    @param reveal: list the files of a project quarantined in a hosted
        source all the same (what its admins see, to release or delete them).
    """
    got = _Gathering()
    status = chain_status(order, project)
    # (quarantined: no source offers a file)
    offering = reveal or status is None or not status.quarantined
    got.from_hosted(order, project, filters.as_of, offering)
    if offering:
        got.from_upstreams(order, project, filters.as_of)
    found_anywhere = got.hosted or any(token is not None for _, token in got.consulted)
    if status is None:
        status = upstream_status(got.consulted, project)
        if status is not None and status.quarantined:
            # (quarantined by the first upstream that knows it: no
            # upstream's file is listed, not a later upstream's either)
            got.taken = [pair for pair in got.taken if pair[1].upstream is None]
    got.filter(filters, now)
    files = got.files
    delegate = None
    # (a page with a status is the chain's own: a source's page may carry another)
    if file_url is not None and not got.filtered and status is None:
        delegate = _delegate(got.counts, files, file_url)
    return Composition(project, tuple(files), found_anywhere, got.hosted, tuple(got.held),
                       tuple(got.changes), tuple(got.consulted), got.recheck_at, delegate,
                       status)


def _arrived_before(files: Sequence[ComposedFile], index: Index,
                    as_of: float) -> list[ComposedFile]:
    """
    The hosted C{files} that arrived in C{index} strictly before C{as_of}:
    uploaded there then, or promoted there then (a promotion keeps the
    file's upload time; what a dated view promises is what each index
    held at its date).
    """
    kept = []
    for f in files:
        promotion = index.promotions.get(f.filename)
        when = promotion.at if promotion is not None else f.upload_time
        if when is not None and when < as_of:
            kept.append(f)
    return kept


def asked(order: Sequence[ChainSource], project: str,
          hosted: bool) -> list[ChainSource]:
    """
    The upstreams of C{order} that may be asked about C{project}, in order:
    those whose rules allow it, and, when it is C{hosted} somewhere in the
    chain, only those that merge it (the rule against dependency confusion,
    across the chain).
    """
    found = []
    for source in order:
        side = source.upstream
        if side is None:
            continue
        decision = side.decide(project, hosted)
        if decision.allowed and (not hosted or decision.merge):
            found.append(source)
    return found


def _delegate(counts: Sequence[tuple[ChainSource, int, int]],
              files: Sequence[tuple[ComposedFile, ChainSource]],
              file_url: Callable[[ComposedFile], str]) -> ChainSource | None:
    """
    The source whose own page lists exactly C{files} with the same links:
    the only one that gave files, and gave all it offered; with no file at
    all, the first that offered none (a project of tombstones only).
    """
    giving = [(source, offered) for source, offered, given in counts if given]
    if not giving:
        empty = [source for source, offered, _ in counts if not offered]
        return empty[0] if empty else None
    if len(giving) != 1:
        return None
    source, offered = giving[0]
    if offered != len(files):
        return None
    if source.hosted is not None:
        own: Callable[[ComposedFile], str] = source.hosted.file_url  # type: ignore[assignment]
        # (a hosted source's files are FileRecords: its file_url takes them)
    else:
        assert source.upstream is not None
        own = source.upstream.file_url
    if any(own(f) != file_url(f) for f, _ in files):
        return None
    return source


def render_page(project: str, files: Sequence[ComposedFile],
                file_url: Callable[[ComposedFile], str], kind: str,
                status: ProjectStatus | None = None,
                advisories: AdvisoryPolicy | None = None,
                provenance_url: render.ProvenanceURL | None = None,
                namespaces: IndexNamespaces | None = None, hidden: bool = False) -> Page:
    """
    A composed page's bytes, rendered as an index's own are
    (L{pypid.core.formats.render}), the index's C{advisories} applied, its
    C{namespaces} given (API 1.5; with the hidden ones when C{hidden}).
    """
    pairs: Sequence[tuple[ComposedFile, str]] = [(f, file_url(f)) for f in files]
    if advisories is not None:
        pairs = advised_files(advisories, project, pairs)
    pairs, variants = with_variant_files(pairs)
    links = provenance_url or render.provenance_url_for(None)
    if kind == HTML:
        body = render.project_html(project, pairs, status, links)
    else:
        versions = sorted({f.version for f, _ in pairs}, key=version_key)
        spaces = served(namespaces)
        body = render.project_json(
            project, pairs, versions, status, links,
            render.UNSERVED if spaces is None else spaces.entries(project, hidden))
    return Page.of(body, CONTENT_TYPES[kind], variants)


@attrs.define(eq=False)
class _Kept:
    """A composition kept by an L{IndexView}: its stamp, and its pages or its delegate."""

    held: tuple[Project | None, ...]
    changes: tuple[int, ...]
    consulted: tuple[tuple[UpstreamSide, object], ...]
    recheck_at: float | None
    #: the source whose own page this is, and its project if hosted
    delegate: ChainSource | None
    own: Project | None
    pages: dict[str, Page]
    #: the index's L{AdvisoryPolicy.stamp} when its policy named the
    #: project as it was composed, else L{None}
    advised: tuple[int, int] | None = None
    #: the L{IndexNamespaces.serial}s of the index and of its delegate's
    #: hosted index as it was composed (a delegate whose grants change may
    #: no longer show the index's)
    spaces: tuple[int, int] = (0, 0)

    def delegated(self, project: str, kind: str) -> Page:
        """The delegate's own page: the hosted index's kept page, or the upstream's."""
        source = self.delegate
        assert source is not None
        if source.hosted is not None:
            assert self.own is not None
            return source.hosted.rendered.project_page(self.own, kind)
        assert source.upstream is not None
        return source.upstream.page(project, kind)


def _table(size: int) -> ByteLRU[str, _Kept]:
    return ByteLRU(size)


@attrs.define(eq=False)
class IndexView:
    """
    The pages of one named index (hosted with bases, or a view), composed
    of its sources and kept within a budget of bytes.

    @ivar name: the index's name.
    @ivar order: its sources, resolved (L{resolve_order}).
    @ivar filters: what it leaves out (none for a hosted index).
    @ivar file_url: C{file_url(file)}: the link its pages give a file.
    @ivar advisories: what it does about security advisories (its own
        rules, whatever its sources'), applied to the pages it composes.
    """

    name: str
    order: tuple[ChainSource, ...]
    filters: Filters
    file_url: Callable[[ComposedFile], str]
    #: normalized project -> what its page was composed of, and its pages;
    #: counted their bytes and L{ENTRY_COST}
    _kept: ByteLRU[str, _Kept] = attrs.field(alias="max_bytes", default=VIEW_CACHE_SIZE,
                                             converter=_table)
    #: kind -> (the hosted sources' listing serials, the root page)
    _root: dict[str, tuple[tuple[int, ...], Page]] = attrs.field(factory=dict, init=False)
    _hosted: tuple[Index, ...] = attrs.field(init=False)
    #: each hosted source's C{project(name)}, bound once
    _lookups: tuple[Callable[[str], Project | None], ...] = attrs.field(init=False)
    _open: bool = attrs.field(init=False)
    #: whether an upstream is among its sources
    _upstream: bool = attrs.field(init=False)
    #: project name -> whether the view's globs admit it (L{MAX_NAMES} at most)
    _admitted: dict[str, bool] = attrs.field(factory=dict, init=False)
    #: hosted project name -> whether an upstream of the chain merges it
    _merged: dict[str, bool] = attrs.field(factory=dict, init=False)
    #: the hosted index whose own pages are this index's (L{own}), or L{None}
    _own: Index | None = attrs.field(default=None, init=False)
    advisories: AdvisoryPolicy = attrs.field(factory=no_advisories, kw_only=True)
    #: the link its pages give a file's provenance (PEP 740)
    provenance_url: render.ProvenanceURL = attrs.field(
        factory=lambda: render.provenance_url_for(None), kw_only=True)
    #: its PEP 752 namespaces (API 1.5), or L{None} (1.4)
    namespaces: IndexNamespaces | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        self._hosted = tuple(s.hosted for s in self.order if s.hosted is not None)
        self._lookups = tuple(index.project for index in self._hosted)
        self._open = self.filters.include == ("*",) and not self.filters.exclude
        self._upstream = any(s.upstream is not None for s in self.order)
        first = self.order[0].hosted if self.order else None
        if (first is not None and len(self._hosted) == 1 and self.filters == Filters()
                and self.file_url is first.file_url and self.advisories is first.rendered.advisories
                and self.provenance_url is first.rendered.provenance_url
                and self.namespaces is first.rendered.namespaces):
            self._own = first

    @property
    def own(self) -> Index | None:
        """
        The hosted index whose own pages are this index's pages of the
        projects it holds (the index's sole hosted source, first, nothing
        filtered, the same links and advisories), unless an upstream merges
        them (L{merges}); L{None} for any other index. Its projects are
        served from its kept pages at once, with no composition: the hot
        path of a hosted index, the default one's among them.
        """
        return self._own

    def merges(self, project: str) -> bool:
        """Whether an upstream of the chain merges its files into the hosted C{project}."""
        found = self._merged.get(project)
        if found is None:
            if len(self._merged) >= MAX_NAMES:
                self._merged.clear()  # (names come from clients: bounded)
            found = self._merged[project] = self._upstream and bool(
                asked(self.order, project, True))
        return found

    @property
    def bytes(self) -> int:
        """What the kept compositions count (at most the budget)."""
        return self._kept.bytes

    @property
    def kept_projects(self) -> int:
        """How many projects' compositions are kept."""
        return len(self._kept)

    def page(self, project: str, kind: str, now: float) -> Page | None:
        """
        The page of the normalized C{project} (C{kind} C{"html"} or
        C{"json"}), or L{None} when the index does not list it (no source
        knows it, or the view's globs leave it out).
        """
        if not self._open and not self._admits(project):
            return None
        kept = self._kept.get(project)
        valid = kept is not None and self._still(kept, project, now)
        if valid:
            assert kept is not None
            if kept.delegate is not None:
                return kept.delegated(project, kind)
            page = kept.pages.get(kind)
            if page is not None:
                return page
        composition = compose(self.order, project, self.filters, now, self.file_url)
        if not composition.found:
            self._kept.pop(project)
            return None
        # (another kind of a page still valid: the same composition)
        pages = kept.pages if valid and kept is not None else {}
        delegate = composition.delegate
        policy = self.advisories
        advised = policy.affects(project)
        hosted = delegate.hosted if delegate is not None else None
        if delegate is not None and (advised or (
                hosted is not None and hosted.rendered.advisories.affects(project))):
            # (the delegate's own page would not show the index's decisions)
            delegate = None
        spaces = self.namespaces
        if delegate is not None and self._other_namespaces(project, hosted):
            # (nor its namespaces: those of another index, or none)
            delegate = None
        # (is not None: an Index with no live file is falsy, it has a length)
        own = (delegate.hosted.project(project)
               if delegate is not None and delegate.hosted is not None else None)
        kept = _Kept(composition.held, composition.changes, composition.consulted,
                     composition.recheck_at, delegate, own, pages,
                     policy.stamp if advised else None)
        kept.spaces = self._spaces_stamp(kept)
        if delegate is not None:
            pages.clear()
            self._kept.put(project, kept, ENTRY_COST)
            return kept.delegated(project, kind)
        page = pages[kind] = render_page(project, [f for f, _ in composition.files],
                                         self.file_url, kind, composition.status,
                                         policy if advised else None, self.provenance_url,
                                         spaces)
        self._kept.put(project, kept, ENTRY_COST + sum(page_bytes(p) for p in pages.values()))
        return page

    def _spaces_stamp(self, kept: _Kept) -> tuple[int, int]:
        """The namespace serials a composition L{kept} holds while they hold."""
        mine = self.namespaces
        delegate = kept.delegate
        theirs = (delegate.hosted.rendered.namespaces
                  if delegate is not None and delegate.hosted is not None else None)
        return (mine.serial if mine is not None else 0,
                theirs.serial if theirs is not None else 0)

    def _other_namespaces(self, project: str, hosted: Index | None) -> bool:
        """
        Whether a delegate's own page (of C{hosted}, or an upstream's) would
        show other namespaces of C{project} than this index does.
        """
        mine = served(self.namespaces)
        if hosted is None:
            # (an upstream's own page: at API 1.4, in no namespace)
            return mine is not None
        theirs = served(hosted.rendered.namespaces)
        if mine is theirs:
            return False
        if mine is None or theirs is None:
            return True  # (one page at API 1.4, the other at 1.5)
        return mine.matching(project) != theirs.matching(project)

    def hidden_page(self, project: str, kind: str, now: float) -> Page | None:
        """
        The JSON page of C{project} with the hidden namespace grants it
        falls in, for their owners (L{IndexNamespaces.hides}; the page
        everyone gets otherwise): composed at each call, never kept (only
        they ask).
        """
        spaces = self.namespaces
        if kind == HTML or spaces is None or not spaces.hides(project):
            return self.page(project, kind, now)
        if not self._open and not self._admits(project):
            return None
        return self._composed(project, kind, now, reveal=False)

    def admits(self, project: str) -> bool:
        """Whether the view's globs admit the normalized C{project} (remembered)."""
        return self._open or self._admits(project)

    def hosts(self, project: str) -> bool:
        """Whether a hosted source holds the normalized C{project} and the view lists it."""
        if not self._open and not self._admits(project):
            return False
        return any(lookup(project) is not None for lookup in self._lookups)

    def quarantined(self, project: str) -> bool:
        """Whether a hosted source quarantines the normalized C{project} (PEP 792)."""
        for index in self._hosted:
            if index.statuses.quarantined(project):
                return True
        return False

    def full_page(self, project: str, kind: str, now: float) -> Page | None:
        """
        The page of a project a hosted source quarantines with its files
        all the same, for its admins: composed at each call, never kept
        (admins alone ask).
        """
        return self._composed(project, kind, now, reveal=True)

    def _composed(self, project: str, kind: str, now: float, reveal: bool) -> Page | None:
        """
        The page of C{project} composed now, never kept, with every
        namespace it falls in (hidden ones too): a quarantined project's
        files when C{reveal} (L{full_page}), as listed otherwise
        (L{hidden_page}).
        """
        composition = compose(self.order, project, self.filters, now, self.file_url,
                              reveal=reveal)
        if not composition.found:
            return None
        return render_page(project, [f for f, _ in composition.files], self.file_url, kind,
                           composition.status, self.advisories, self.provenance_url,
                           self.namespaces, hidden=True)

    def upstreams(self, project: str) -> list[ChainSource]:
        """
        The upstreams a page of the normalized C{project} reads (L{asked}),
        so that the web side may bring their cached pages up to date
        before it asks for the page; none when the view leaves it out.
        """
        if not self._upstream or (not self._open and not self._admits(project)):
            return []
        hosted = any(lookup(project) is not None for lookup in self._lookups)
        return asked(self.order, project, hosted)

    def listing(self, project: str, now: float) -> Composition | None:
        """
        What the index lists of the normalized C{project} now, file by file
        with its source (for C{/NAME/files/}: a file is served from the
        source that lists it, and only if listed); L{None} when it lists
        no such project.
        """
        if not self._open and not self._admits(project):
            return None
        composition = compose(self.order, project, self.filters, now)
        return composition if composition.found else None

    def root_page(self, kind: str) -> Page:
        """
        The C{/NAME/simple/} page: every project of the hosted sources (the
        upstreams list none, as today), those the view's globs admit, each
        named as its first source spells it.
        """
        if self._open and len(self._hosted) == 1:
            # (one hosted source, every project admitted: its own root page)
            return self._hosted[0].rendered.root_page(kind)
        serials = tuple(index.rendered.listing_serial for index in self._hosted)
        kept = self._root.get(kind)
        if kept is not None and kept[0] == serials:
            return kept[1]
        names: dict[str, str] = {}
        for index in self._hosted:
            for p in index.projects():
                if p.name not in names and (self._open or self._admits(p.name)):
                    names[p.name] = p.display_name
        pairs = sorted(names.items())
        body = (render.root_html(pairs) if kind == HTML
                else render.root_json(pairs, served(self.namespaces) is not None))
        page = Page.of(body, CONTENT_TYPES[kind])
        self._root[kind] = (serials, page)
        return page

    def _still(self, kept: _Kept, project: str, now: float) -> bool:
        """
        Whether what C{kept} was composed of is unchanged (its stamp holds):
        a dict lookup and two comparisons a hosted source, a lookup an
        upstream consulted, and the time when a cooldown hid a file. With
        three hosted sources, 0.45 us (timeit); the whole of L{page} for a
        delegated page 1.0 us against 0.3 us for the base's own page
        object, of the some 50 us it takes to serve one.
        """
        held, changes = kept.held, kept.changes
        i = 0
        for lookup in self._lookups:
            found = lookup(project)
            if found is not held[i] or (found is not None and found.changes != changes[i]):
                return False
            i += 1
        for side, token in kept.consulted:
            cached = side.cached(project)
            if (cached[0] if cached is not None else None) is not token:
                return False
        if kept.advised is not None or self.advisories.affects(project):
            # (named by the advisories now or then: as long as they and the rules are)
            if kept.advised != self.advisories.stamp:
                return False
        if self.namespaces is not None and kept.spaces != self._spaces_stamp(kept):
            return False
        return kept.recheck_at is None or now < kept.recheck_at

    def _admits(self, project: str) -> bool:
        """L{Filters.admits_project}, remembered by name (2 us a call with globs)."""
        found = self._admitted.get(project)
        if found is None:
            if len(self._admitted) >= MAX_NAMES:
                self._admitted.clear()  # (names come from clients: bounded)
            found = self._admitted[project] = self.filters.admits_project(project)
        return found
