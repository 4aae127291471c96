"""
The pages of an index composed of others (a hosted index with bases, or a
read-only view with filters), composed by L{pypid.core.indexes.composition},
rendered and kept here.

Each page is kept with a I{stamp} of what it was made of (the hosted
sources' project objects and counts of changes, the upstreams' cached
entries, when a file the cooldown hid comes of age), checked with a dict
lookup a source. A page the same as one source's own is not kept twice: the
view serves that source's kept page (I{delegation}), at no memory and with
the same ETag.

The index's own L{AdvisoryPolicy} applies to the pages it composes,
whatever its sources' policies. A page of a project the policy names is
stamped with the policy's stamp, and one composed while it named none is
stale once it does; such a page is never delegated, nor one whose
delegate's own pages apply advisories to the project (they would show the
source's decisions, not the index's).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from pypid.core.indexes import links, render
from pypid.core.indexes.composition import (
    ChainSource,
    Composition,
    Filters,
    UpstreamSide,
    asked,
    compose,
)
from pypid.core.indexes.index import Index
from pypid.core.indexes.namespace_api import IndexNamespaces, served
from pypid.core.indexes.project import Project
from pypid.core.indexes.render import CONTENT_TYPES, HTML, ComposedFile, Page
from pypid.core.indexes.rendered_pages import page_bytes, render_page, serial_over
from pypid.core.security.advisories import AdvisoryPolicy, no_advisories
from pypid.core.util.bounded import remember
from pypid.core.util.lru import ByteLRU

#: The default budget of the pages the views compose, together.
COMPOSED_CACHE_SIZE = 64 << 20

#: What a kept composition costs besides its pages, counted so that the
#: budget bounds the delegated entries too, which keep no page. Measured with
#: tracemalloc (tests/bench/bench_views.py --memory): 418 bytes an entry for a
#: chain of three hosted sources and an upstream.
ENTRY_COST = 420

#: The most project names whose admission by a view's globs (or merging) is remembered.
MAX_NAMES = 1 << 16


@attrs.define(eq=False)
class _Kept:
    """A composition kept by an L{ComposedIndex}: its stamp, and its pages or its delegate."""

    held: tuple[Project | None, ...]
    changes: tuple[int, ...]
    consulted: tuple[tuple[UpstreamSide, object], ...]
    recheck_at: float | None
    #: the source whose own page this is, and its project if hosted
    delegate: ChainSource | None
    own: Project | None
    pages: dict[str, Page]
    #: the index's L{AdvisoryPolicy.stamp} when its policy named the project
    advised: tuple[int, int] | None = None
    #: the L{IndexNamespaces.serial}s of the index and of its delegate's
    #: hosted index (a delegate whose grants change may no longer show the index's)
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
class ComposedIndex:
    """
    The pages of one named index (hosted with bases, or a view), composed
    of its sources and kept within a budget of bytes.

    @ivar order: its sources, resolved (L{pypid.core.indexes.index_names.resolve_order}).
    @ivar filters: what it leaves out (none for a hosted index).
    """

    name: str
    order: tuple[ChainSource, ...]
    filters: Filters
    file_url: Callable[[ComposedFile], str]
    #: normalized project -> its stamp and pages, counted with L{ENTRY_COST}
    _kept: ByteLRU[str, _Kept] = attrs.field(alias="max_bytes", default=COMPOSED_CACHE_SIZE,
                                             converter=_table)
    #: kind -> (the hosted sources' listing serials, the root page)
    _root: dict[str, tuple[tuple[int, ...], Page]] = attrs.field(factory=dict, init=False)
    _hosted: tuple[Index, ...] = attrs.field(init=False)
    #: each hosted source's C{project(name)}, bound once
    _lookups: tuple[Callable[[str], Project | None], ...] = attrs.field(init=False)
    _open: bool = attrs.field(init=False)
    #: whether an upstream is among its sources
    _upstream: bool = attrs.field(init=False)
    #: project name -> whether the view's globs admit it (L{MAX_NAMES} at
    #: most, as below: names come from clients)
    _admitted: dict[str, bool] = attrs.field(factory=dict, init=False)
    #: hosted project name -> whether an upstream of the chain merges it
    _merged: dict[str, bool] = attrs.field(factory=dict, init=False)
    #: the hosted index whose own pages are this index's (L{own}), or L{None}
    _own: Index | None = attrs.field(default=None, init=False)
    advisories: AdvisoryPolicy = attrs.field(factory=no_advisories, kw_only=True)
    #: the link its pages give a file's provenance (PEP 740)
    provenance_url: links.ProvenanceURL = attrs.field(
        factory=lambda: links.provenance_url_for(None), kw_only=True)
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
        projects it holds (its sole hosted source, first, nothing filtered,
        the same links and advisories), unless an upstream merges them
        (L{merges}); else L{None}. The hot path of a hosted index: its kept
        pages, with no composition.
        """
        return self._own

    def merges(self, project: str) -> bool:
        """Whether an upstream of the chain merges its files into the hosted C{project}."""
        found = self._merged.get(project)
        if found is None:
            found = remember(self._merged, project,
                             self._upstream and bool(asked(self.order, project, True)), MAX_NAMES)
        return found

    @property
    def bytes(self) -> int:
        """What the kept compositions count (at most the budget)."""
        return self._kept.bytes

    def page(self, project: str, kind: str, now: float) -> Page | None:
        """
        The page of the normalized C{project}, or L{None} when the index does
        not list it (no source knows it, or the view's globs leave it out).
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
                                         spaces, serial=self.serial_of(project))
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
        The JSON page of C{project} with the hidden namespace grants it falls
        in, for their owners: composed at each call, never kept (only they ask).
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
        # (a loop, not any() over a generator: every request for a file
        # asks, and the generator's frames were a measurable part of it)
        for index in self._hosted:
            if index.statuses.quarantined(project):
                return True
        return False

    def full_page(self, project: str, kind: str, now: float) -> Page | None:
        """
        The page of a project a hosted source quarantines with its files all
        the same, for its admins: composed at each call, never kept.
        """
        return self._composed(project, kind, now, reveal=True)

    def _composed(self, project: str, kind: str, now: float, reveal: bool) -> Page | None:
        """
        The page of C{project} composed now, with every namespace it falls
        in; a quarantined project's files when C{reveal}.
        """
        composition = compose(self.order, project, self.filters, now, self.file_url,
                              reveal=reveal)
        if not composition.found:
            return None
        return render_page(project, [f for f, _ in composition.files], self.file_url, kind,
                           composition.status, self.advisories, self.provenance_url,
                           self.namespaces, hidden=True, serial=self.serial_of(project))

    def upstreams(self, project: str) -> list[ChainSource]:
        """
        The upstreams a page of the normalized C{project} reads (L{asked}),
        for the web side to bring up to date first; none when the view leaves it out.
        """
        if not self._upstream or (not self._open and not self._admits(project)):
            return []
        hosted = any(lookup(project) is not None for lookup in self._lookups)
        return asked(self.order, project, hosted)

    def listing(self, project: str, now: float, reveal: bool = False) -> Composition | None:
        """
        What the index lists of the normalized C{project} now, file by file
        with its source (a file is served from the source that lists it,
        and only if listed), or L{None}; C{reveal} as L{full_page}.
        """
        if not self._open and not self._admits(project):
            return None
        composition = compose(self.order, project, self.filters, now, reveal=reveal)
        return composition if composition.found else None

    def root_page(self, kind: str) -> Page:
        """
        The C{/NAME/simple/} page: the hosted sources' projects the view's
        globs admit, each named as its first source spells it.
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
        page = self.root_of(sorted(names.items()), kind)
        self._root[kind] = (serials, page)
        return page

    def root_of(self, pairs: list[tuple[str, str]], kind: str) -> Page:
        """
        The project list of C{pairs} (C{(name, display name)}), with each
        project's serial (L{serial_of}) and the last of the hosted sources'.
        """
        sources = [of for index in self._hosted if (of := index.rendered.serials) is not None]
        last = max((of.last for of in sources), default=None)

        def serial(project: str) -> int:
            return serial_over(sources, project) or 0
        body = (render.root_html(pairs) if kind == HTML
                else render.root_json(pairs, served(self.namespaces) is not None,
                                      serial if sources else None, last))
        return Page.of(body, CONTENT_TYPES[kind], serial=last)

    def serial_of(self, project: str) -> int | None:
        """The serial C{project}'s pages carry: the last of its hosted sources', or L{None}."""
        return serial_over((index.rendered.serials for index in self._hosted), project)

    def _still(self, kept: _Kept, project: str, now: float) -> bool:
        """
        Whether C{kept}'s stamp holds: about 1% of serving a page, with
        three hosted sources.
        """
        held, changes = kept.held, kept.changes
        for i, lookup in enumerate(self._lookups):
            found = lookup(project)
            if found is not held[i] or (found is not None and found.changes != changes[i]):
                return False
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
            found = remember(self._admitted, project, self.filters.admits_project(project),
                             MAX_NAMES)
        return found
