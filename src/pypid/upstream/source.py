"""
One upstream index as pypid holds it, whichever indexes read it: its page
cache, its client (with its credentials), its files fetched and kept, its
budget of requests per address, its state in the snapshot and its numbers
for C{/metrics}.

Apart from L{pypid.upstream.proxy.UpstreamProxy} because several indexes
may name one upstream among their bases: what the upstream said, and the
bytes of a file, are the same whoever asks, so they are kept once; what a
client of one index is shown (which names are hosted there, the links of
its pages) is the proxy's, one per index. A page is cached inside one
source only, so a page fetched from one upstream is never served as another's.

The budget (L{MissBudget}): a request the cache cannot answer costs an
upstream request, and the names are the client's to choose, so without a
limit one anonymous client could send the upstream as many requests as it
sends pypid. Each address may make C{[upstream] max_misses_per_address}
such requests a minute, refilled steadily, so a burst of that size (a cold
C{pip install} of a large lock file) passes at once.

L{SourceSide} is a source as L{pypid.core.indexes.composition.compose} reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.config.upstream_settings import UpstreamConfig
from pypid.core.dists.model import FileRecord
from pypid.core.dists.readme import Renderer, render_description
from pypid.core.indexes.composition import ComposedFile
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.indexes.render import Page
from pypid.core.records.metrics import Family, by_label, counter, gauge, timing_families
from pypid.core.util.bounded import put_newest
from pypid.core.util.units import counted
from pypid.jobs.run import Run
from pypid.storage.base.interface import IStorage
from pypid.upstream.cache import PageCache
from pypid.upstream.confusion import Decision, UpstreamPolicy
from pypid.upstream.downloads import UpstreamFiles
from pypid.upstream.fetch import UpstreamClient
from pypid.upstream.kept import KeptFiles
from pypid.upstream.machine_share import MachineShare, News
from pypid.upstream.page_model import UpstreamFile, UpstreamPage
from pypid.upstream.page_view import FileUrl, PageView
from pypid.upstream.takedowns import Takedown, Takedowns

log = Logger()

#: The name of C{[upstream]} (C{upstream:default} to an index's C{bases}).
DEFAULT_UPSTREAM = "default"

#: The most addresses whose budget is remembered; past it the oldest are
#: forgotten (which only gives them a full budget again).
MAX_ADDRESSES = 10000

#: A budget is refilled over this many seconds.
BUDGET_PERIOD = 60.0


@attrs.define
class _Views:
    """
    The pages of a source as each index that reads it shows them: what the
    files side asks (a file is fetched only when some index's page lists
    it) and tells (a file was kept).
    """

    _pages: PageCache
    _views: list[PageView] = attrs.field(factory=list)

    def add(self, view: PageView) -> None:
        """One more index reads the source."""
        self._views.append(view)

    def listed(self, project: str, filename: str) -> UpstreamFile | None:
        """The file C{filename} if a cached page of C{project} shows it to some index."""
        for view in self._views:
            found = view.listed(project, filename)
            if found is not None:
                return found
        return None

    def would_fetch(self, project: str) -> bool:
        """Whether showing C{project}'s page now would ask the upstream."""
        return self._pages.would_fetch(project)

    def file_kept(self, record: FileRecord) -> None:
        """A file was kept: its page is kept past every other, and shows it in every index."""
        self._pages.pin(record.project)
        for view in self._views:
            view.file_kept(record)

    def file_evicted(self, record: FileRecord) -> None:
        """A file was evicted: every index's page shows the upstream's listing of it again."""
        for view in self._views:
            view.file_evicted(record)


@attrs.define
class UpstreamSource:
    """
    One upstream, shared by every index that reads it.

    @ivar name: C{default} for C{[upstream]}, C{NAME} for C{[upstream:NAME]}.
    @ivar labelled: whether its families on C{/metrics} carry an
        C{upstream} label (only once named upstreams exist, so that
        C{/metrics} of a server with C{[upstream]} alone is as it was).
    """

    name: str
    labelled: bool
    settings: UpstreamConfig
    policy: UpstreamPolicy
    #: its cached pages (by project name, its own)
    pages: PageCache
    client: UpstreamClient
    files: UpstreamFiles
    kept: KeptFiles
    _views: _Views
    _misses: MissBudget
    clock: IReactorTime
    _on_close: Callable[[], object] | None = None
    #: in a worker of a machine, the cache shared with the others
    machine: MachineShare | None = None
    # how many files were kept at the last snapshot
    _saved_changes: int = attrs.field(init=False, default=0)
    #: the files the upstream took down, and those who hear of each
    takedowns: Takedowns = attrs.field(init=False, factory=Takedowns)
    _takedown_listeners: list[Callable[[Takedown, bool], object]] = attrs.field(
        init=False, factory=list)
    #: the takedowns seen since the start, for C{/metrics}
    _taken_down: int = attrs.field(init=False, default=0)

    @classmethod
    def create(cls, config: UpstreamConfig, policy: UpstreamPolicy, pages: PageCache,
               client: UpstreamClient, storage: IStorage, run: Run, clock: IReactorTime,
               name: str = DEFAULT_UPSTREAM, labelled: bool = False,
               on_close: Callable[[], object] | None = None,
               render: Renderer = render_description,
               share: MachineShare | None = None) -> UpstreamSource:
        """
        The source, complete (no index reads it yet: L{UpstreamProxy.create}).

        @param pages: the cache of its pages; its C{on_change} is called when
            a file was kept too, so that the snapshot is saved soon.
        @param share: in a worker of a machine, the cache shared with the
            others (the one C{pages} shares its pages through).
        """
        kept = KeptFiles()
        views = _Views(pages)
        files = UpstreamFiles(config, views, client, storage, run, clock, kept, pages.on_change,
                              render, share)
        source = cls(name, labelled, config, policy, pages, client, files, kept, views,
                     MissBudget(config.max_misses_per_address), clock, on_close, share)
        pages.on_loaded(source._page_loaded)
        if share is not None:
            share.on_news(source._took_in)
        return source

    # -- takedowns -------------------------------------------------------

    def on_takedown(self, listener: Callable[[Takedown, bool], object]) -> None:
        """
        Call C{listener(takedown, True)} for each kept file the upstream stops
        listing from now on, C{listener(takedown, False)} when it lists one again.
        """
        self._takedown_listeners.append(listener)

    def _page_loaded(self, project: str, page: UpstreamPage | None) -> None:
        """
        A page of C{project} was fetched: the kept files it no longer lists
        are taken down, those it lists again back (a quarantined page
        withholds them all already, and says so).
        """
        down, back = self._taken(project, page)
        keep = self.settings.keep_removed
        for takedown in down:
            self._taken_down += 1
            log.warn("The upstream {upstream} no longer lists {filename}: "
                     + ("still served (keep_removed)" if keep else "not served from now on"),
                     upstream=self.name, filename=takedown.filename)
        for takedown in back:
            log.info("The upstream {upstream} lists {filename} again: served again",
                     upstream=self.name, filename=takedown.filename)
        for listener in list(self._takedown_listeners):
            for takedown in down:
                listener(takedown, True)
            for takedown in back:
                listener(takedown, False)

    def _taken(self, project: str, page: UpstreamPage | None) -> tuple[list[Takedown],
                                                                       list[Takedown]]:
        """The kept files of C{project} C{page} takes down, and those it lists again."""
        if page is not None and page.quarantined:
            return [], []
        kept = self.kept.of_project(project)
        # (a variant wheel whose data is not read is still listed upstream)
        listed = ([f.filename for f in (*page.files, *page.variant_wheels)]
                  if page is not None else None)
        return self.takedowns.seen(project, kept, listed, self.clock.seconds())

    def _took_in(self, news: News) -> None:
        """
        What the machine's other workers did to the cache, taken in: files
        first (a page of a file kept shows it), then pages (their takedowns
        counted without a word: the fetching worker said them).
        """
        self.files.learn(news)
        for project, (entry, held) in news.pages.items():
            self.pages.adopt(project, entry, held)
            self._taken(project, entry.page)

    def withheld(self) -> list[Takedown]:
        """The kept files the upstream took down, the oldest seen first."""
        return [t for t in self.takedowns.all() if t.filename in self.kept]

    def _withheld_count(self) -> int:
        """How many L{withheld} files there are, counted without sorting them (C{/metrics})."""
        return sum(1 for name in self.takedowns.filenames() if name in self.kept)

    # -- what the indexes that read it share --------------------------------------

    @property
    def mode(self) -> str:
        """C{none}, C{redirect} or C{cache}."""
        return self.settings.mode

    def watch(self, view: PageView) -> None:
        """An index reads the source through C{view}: it is told of every file kept."""
        self._views.add(view)

    def charge(self, address: str | None) -> float | None:
        """Charge C{address} for one request to the upstream: L{None}, or the seconds to wait."""
        return self._misses.charge(address, self.clock.seconds())

    # -- its life: the snapshot, the numbers, the end ------------------------------

    async def load(self, state: object = None, since: float = 0.0) -> None:
        """
        Learn what the cache storage holds, starting from the records and
        pages of a snapshot's C{state} (what changed since C{since} is read again).
        """
        known: dict[str, FileRecord] = {}
        if isinstance(state, dict):
            for data in state.get("files") or ():
                try:
                    record = FileRecord.from_json(data)
                except (TypeError, ValueError):
                    continue
                known[record.filename] = record
                # (before the pages: those of kept files are kept last)
                self.pages.pin(record.project)
            pinned = state.get("pinned")
            if isinstance(pinned, list):
                self.kept.take_pins(name for name in pinned if isinstance(name, str))
            self.pages.load_json(state.get("pages"), state.get("quarantines"))
            self.takedowns.load_json(state.get("takedowns"))
        if self.machine is not None:
            # (what the others fetched since the snapshot, newer than its pages)
            self._took_in(News(await self.machine.pages_since(since)))
        await self.files.rescan(known, since)
        log.info("Upstream cache{of}: {files} kept", of=f" of {self.name}" if self.labelled else "",
                 files=counted(len(self.kept), "file"))

    def state(self) -> dict[str, Any]:
        """The cached pages and files, JSON-ready, for the snapshot."""
        self.pages.changed = False
        self._saved_changes = self.kept.changes
        # (the files the least recently downloaded first: the order of
        # eviction, which a start takes back)
        state: dict[str, Any] = {"pages": self.pages.to_json(),
                                 "files": [record.to_json() for record in self.kept],
                                 "takedowns": self.takedowns.to_json()}
        self.takedowns.changed = False
        if pinned := self.kept.pinned():
            state["pinned"] = pinned
        if len(self.pages.quarantines):
            state["quarantines"] = self.pages.quarantines.to_json()
        return state

    def state_changed(self) -> bool:
        """Whether pages or files were fetched (or files evicted) since the last L{state}."""
        return (self.pages.changed or self.kept.changes != self._saved_changes
                or self.takedowns.changed)

    def state_unsaved(self) -> None:
        """The last L{state} could not be saved: it counts as changed until one is."""
        self.pages.changed = True

    def metric_families(self) -> Iterator[Family]:
        """The pages', files' and fetches' numbers; with an C{upstream} label when L{labelled}."""
        pages, files = self.pages, self.files
        families = [
            by_label("pypid_upstream_pages", "Upstream project pages asked for, by how they "
                     "were served (hit, stale, miss, unavailable).", "result", pages.served),
            by_label("pypid_upstream_files", "Upstream files asked for, by how they were "
                     "served (hit: kept already, miss: fetched, unavailable: offline).",
                     "result", files.served),
            gauge("pypid_upstream_cached_pages", "Upstream project pages cached.",
                  len(pages.entries)),
            gauge("pypid_upstream_cached_files", "Upstream files kept.", len(self.kept)),
            *timing_families(("pypid_upstream_fetches", "pypid_upstream_fetch_errors",
                              "pypid_upstream_fetch_duration_seconds"),
                             "Fetches from the upstream", ("kind",),
                             [((), pages.timings), ((), files.timings)]),
            gauge("pypid_upstream_cached_bytes", "Bytes of the upstream files kept.",
                  self.kept.size),
            counter("pypid_upstream_evicted_files_total", "Upstream files evicted to keep "
                    "the cache under [upstream] max_cache_size.", files.evicted),
            counter("pypid_upstream_takedowns_total", "Kept upstream files seen no longer "
                    "listed by the upstream since the start.", self._taken_down),
            gauge("pypid_upstream_withheld_files", "Kept upstream files the upstream no "
                  "longer lists (not served, unless keep_removed).", self._withheld_count())]
        for family in families:
            yield labelled(family, self.name) if self.labelled else family

    def report(self) -> dict[str, Any]:
        """What C{GET /api/indexes} says of the cache (the numbers of L{metric_families})."""
        pages, files, config = self.pages, self.files, self.settings
        return {"name": self.name, "mode": config.mode,
                "pages": {"cached": len(pages.entries), "served": dict(pages.served)},
                "files": {"kept": len(self.kept), "bytes": self.kept.size,
                          "max_bytes": config.max_cache_size, "served": dict(files.served),
                          "evicted": files.evicted, "taken_down": self._withheld_count()}}

    def close(self) -> None:
        """
        Drop the connections to the upstream kept for reuse (at the end, and
        when its hosts change); new ones are made as requests need them.
        """
        if self._on_close is not None:
            self._on_close()


def labelled(family: Family, upstream: str) -> Family:
    """C{family} with an C{upstream} label first, of value C{upstream}."""
    return attrs.evolve(family, labels=("upstream", *family.labels),
                        samples=tuple(((upstream, *values), sample)
                                      for values, sample in family.samples))


class MissBudget:
    """
    A token bucket per client address (the time is passed in).

    @ivar refused: requests refused, for C{/metrics}.
    """

    def __init__(self, per_minute: int) -> None:
        self._size = float(per_minute)
        self._rate = per_minute / BUDGET_PERIOD
        # address -> (tokens, when counted), least recently charged first
        self._buckets: dict[str | None, tuple[float, float]] = {}
        self.refused = 0

    def charge(self, address: str | None, now: float) -> float | None:
        """Take one request from C{address}'s budget at C{now}: L{None}, or the seconds to wait."""
        tokens, then = self._buckets.pop(address, (self._size, now))
        tokens = min(self._size, tokens + max(now - then, 0.0) * self._rate)
        if tokens < 1.0:
            self._buckets[address] = (tokens, now)
            self.refused += 1
            return (1.0 - tokens) / self._rate
        put_newest(self._buckets, address, (tokens - 1.0, now), MAX_ADDRESSES)
        return None


@attrs.frozen
class SourceSide:
    """
    A source as an index's composed pages read it (L{pypid.core.indexes.composition.UpstreamSide}):
    the decision per project, and what its cached page shows now, without
    I/O; the page a composed page delegates to is its default proxy's.

    @ivar name: as a base names it (C{upstream:NAME}).
    @ivar _view: a view over an index that hosts nothing: the chain's own
        confusion rules are applied by the composition.
    """

    name: str
    source: UpstreamSource
    _view: PageView

    @classmethod
    def of(cls, source: UpstreamSource, file_url: FileUrl) -> SourceSide:
        """The side of C{source}, its own pages linking files with C{file_url}."""
        view = PageView(source.policy, source.pages, _NOTHING_HOSTED, file_url, source.clock,
                        source.kept)
        source.watch(view)
        return cls(f"upstream:{source.name}", source, view)

    def decide(self, project: str, hosted: bool) -> Decision:
        """May the upstream be asked about C{project}, C{hosted} in the chain?"""
        return self.source.policy.decide(project, hosted)

    def cached(self, project: str) -> tuple[object, Sequence[ComposedFile]] | None:
        """
        C{(token, files)}: what the cached page of C{project} shows now
        (cooldown applied, kept files' hashes), and the page entry's shown
        files as the token (the same object as long as the files are).
        """
        if self.source.mode != "cache":
            return None
        entry = self.source.pages.entries.get(project)
        if entry is None or entry.page is None:
            return None
        files = self._view.shown(project, entry)
        return files, tuple(files.values())

    def status(self, project: str) -> ProjectStatus | None:
        """The status its cached page gives C{project} (L{None}: active, or nothing cached)."""
        if self.source.mode != "cache":
            return None
        return self._view.status(project)

    def file_url(self, f: ComposedFile) -> str:
        """The link its own pages give C{f} (one of its page's files)."""
        return self._view.link(cast(UpstreamFile, f))

    def page(self, project: str, kind: str) -> Page:
        """Its own rendered page of what L{cached} gives."""
        entry = self.source.pages.entries.get(project)
        if entry is None or entry.page is None:
            raise KeyError(project)
        return self._view.rendered(project, entry, kind)


@attrs.frozen
class _NoMergedPages:
    """
    The pages of an index that hosts nothing: no namespace (a view that
    serves namespaces composes its own, L{pypid.core.indexes.composed}).
    """

    namespaces: None = None


@attrs.frozen
class _NothingHosted:
    """An index that hosts nothing (the chain's own rules are the composition's)."""

    rendered: _NoMergedPages = _NoMergedPages()

    def project(self, name: str) -> None:
        """Nothing is hosted."""
        return None

    def status(self, name: str) -> None:
        """Nothing hosted has a status."""
        return None


_NOTHING_HOSTED = _NothingHosted()

