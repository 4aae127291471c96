"""
What a project lists in an index composed of others: a hosted index with
bases, or a read-only view with filters.

A named index lists a project's files from its chain of I{sources}
(L{pypid.core.indexes.index_names.resolve_order}). L{compose} gives the
hosted sources' files first, in order, then the upstreams', a file whose
filename or distribution (L{filename_key}) is listed already hiding a later
one; a project hosted anywhere in the chain gets no upstream's files unless
that upstream merges it (against dependency confusion); then the view's
L{Filters} apply.

A project quarantined (PEP 792) in any hosted source lists no file at all,
and its page carries that status; otherwise the page carries the first
hosted source's status, or else the first upstream's whose cached page
gives one (an upstream that quarantines the project offers none of its
files; the hosted sources' files stand).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from operator import itemgetter
from typing import Protocol

import attrs

from pypid.core.dists.names import filename_key, normalize
from pypid.core.dists.version_order import is_prerelease, page_order
from pypid.core.indexes.index import Index
from pypid.core.indexes.project import Project
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.indexes.render import ComposedFile, Page


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
        C{(token, files)}: the files its cached page of C{project} shows now,
        in page order, and a token that stays the same object exactly as
        long as those files do; L{None} when nothing is cached.
        """

    def status(self, project: str) -> ProjectStatus | None:
        """The status its cached page gives C{project}; for a quarantine L{cached} gives no file."""

    def file_url(self, f: ComposedFile) -> str:
        """The link its own pages give C{f}."""

    def page(self, project: str, kind: str) -> Page:
        """Its own rendered page of the files L{cached} gives (for delegation)."""


@attrs.frozen
class ChainSource:
    """One element of an index's resolved order, named as a base names it."""

    name: str
    hosted: Index | None = None
    upstream: UpstreamSide | None = None

    def __attrs_post_init__(self) -> None:
        if (self.hosted is None) == (self.upstream is None):
            raise ValueError(f"source {self.name!r}: a hosted index or an upstream, not both")


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


@attrs.frozen
class Filters:
    """
    What a view leaves out (C{[index:NAME]} of a view).

    @ivar min_age: seconds an upstream file (of unknown upload time: any)
        must have been published before it is listed; hosted files never are.
    @ivar as_of: a POSIX time: only files uploaded strictly before it are
        listed (uv's C{--exclude-newer}), a file of unknown upload time not.
    @ivar include: project name globs (normalized) a project must match.
    @ivar hide_prereleases: leave out pre-releases (and versions packaging
        cannot read, as L{is_prerelease} counts them).
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

    @ivar files: C{(file, source)} pairs, in the pages' order.
    @ivar found: whether any source knows the project (hosted, or a cached upstream page).
    @ivar hosted: whether a hosted source holds it (files or tombstones).
    @ivar held: per hosted source, in order: its L{Project}, or L{None}.
    @ivar changes: per hosted source: its project's L{Project.changes} (0 when absent).
    @ivar consulted: C{(upstream, token)} of each upstream asked (L{UpstreamSide.cached}).
    @ivar recheck_at: when a file the cooldown hid comes of age, or L{None}.
    @ivar delegate: the source whose own page is this one, or L{None}.
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
    any hosted source, else the first hosted source's status, or L{None}.
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
    """The status the first C{consulted} upstream's cached page gives C{project}, or L{None}."""
    for side, token in consulted:
        if token is not None:
            status = side.status(project)
            if status is not None:
                return status
    return None


@attrs.define(init=False)
class _Gathering:
    """
    What L{compose} gathers of a project along a chain (a L{Composition}'s
    fields, as lists): each step a method called once a call, each file's
    work inline (no call a file: this is the path of every page composed).

    @ivar taken: C{(file, source)} pairs offered and not shadowed, in order.
    @ivar names: the filenames taken; C{keys}, their distribution keys.
    @ivar counts: per source: C{(source, files offered, files given)}.
    @ivar filtered: whether the view's date or filters left a file out.
    @ivar files: the files that passed the filters (L{filter}).
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
        # (by an earlier source's file only: one source's own files all
        # stand, as an upstream page's .tar.gz and .zip of one release do)
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
        # (each source's files come in this order already: a page of one
        # source's, the usual view of one upstream, parses no version again)
        if sum(1 for _, _, given in self.counts if given) > 1:
            files[:] = page_order(files, itemgetter(0))


def compose(order: Sequence[ChainSource], project: str, filters: Filters, now: float,
            file_url: Callable[[ComposedFile], str] | None = None,
            reveal: bool = False) -> Composition:
    """
    The files the normalized C{project} lists in an index of this resolved
    C{order}, with the view's C{filters} at C{now}.

    Shadowing comes before the filters: a view hides what it filters, it
    does not let a later source's file of that name through (a yanked file
    in C{staging} does not bring back C{release}'s). A tombstone or a
    binned file hides nothing. A dated view's date is the exception: what
    arrived in a source on or after it (uploaded or promoted) is left out
    before anything shadows, so the view's answer for its date never changes.

    @param file_url: the links the view gives files; with it, the
        composition names its L{Composition.delegate}.
    @param reveal: list the files of a project quarantined in a hosted
        source all the same (what its admins see).
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
    The hosted C{files} uploaded or promoted into C{index} strictly before
    C{as_of} (a promotion keeps the upload time; a dated view promises what
    each index held at its date).
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
    chain, only those that merge it (against dependency confusion).
    """
    return [source for source in order if source.upstream is not None
            and (decision := source.upstream.decide(project, hosted)).allowed
            and (not hosted or decision.merge)]


def _delegate(counts: Sequence[tuple[ChainSource, int, int]],
              files: Sequence[tuple[ComposedFile, ChainSource]],
              file_url: Callable[[ComposedFile], str]) -> ChainSource | None:
    """
    The source whose own page lists exactly C{files} with the same links:
    the only one that gave files, and all it offered; with no file at all,
    the first that offered none (a project of tombstones only).
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
