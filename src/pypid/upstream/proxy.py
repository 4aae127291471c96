"""
Serving projects that are not hosted here from the upstream index.

In C{cache} mode an upstream project's page is fetched (through the
L{PageCache}: one request per miss, stale pages while refreshing), shown
as pypid's own page in both forms with file links to pypid, and a file is
fetched on its first download, checked against the page's sha256 (and
size), kept in the cache storage, and served from there ever after. What
may be asked upstream at all is decided by L{pypid.upstream.confusion}.

L{UpstreamProxy} is what the rest of the daemon holds: the rules, the
budget of upstream requests per address, the snapshot's state, the
numbers for C{/metrics}; and its three sides, each in a module of its own:
what clients see of the pages (L{pypid.upstream.page_view}), the files and
their downloads (L{pypid.upstream.downloads}), and the cache's upkeep
(L{pypid.upstream.upkeep}).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime

from pypid.core.metrics import Family, by_label, gauge, timing_families
from pypid.core.model import FileRecord
from pypid.storage.interface import IStorage, Run
from pypid.upstream.budget import MissBudget
from pypid.upstream.cache import CachedPage, PageCache
from pypid.upstream.confusion import Decision, UpstreamPolicy
from pypid.upstream.contracts import ProxySettings
from pypid.upstream.downloads import UpstreamFiles
from pypid.upstream.fetch import UpstreamClient
from pypid.upstream.kept import KeptFiles
from pypid.upstream.page_view import FileUrl, PageView
from pypid.upstream.parser import UpstreamFile
from pypid.upstream.project_rules import HostedIndex, ProjectRules
from pypid.upstream.upkeep import CacheUpkeep


@attrs.define
class UpstreamProxy:
    """
    The upstream side of the index.

    @ivar _rules: what may be asked upstream, against what is hosted.
    @ivar _pages: the cached upstream pages.
    @ivar _view: what clients see of them.
    @ivar _files: the files, fetched and kept.
    @ivar _upkeep: refreshes, pre-caching and the snapshot's state.
    @ivar _kept: the records of the files kept.
    @ivar _misses: the per-address budget of requests that ask the upstream.
    @ivar _client: the upstream (its index root, for C{redirect} mode).
    @ivar _clock: the time, for the budget.
    @ivar _on_close: drops the connections to the upstream, or L{None}.
    """

    _rules: ProjectRules
    _pages: PageCache
    _view: PageView
    _files: UpstreamFiles
    _upkeep: CacheUpkeep
    _kept: KeptFiles
    _misses: MissBudget
    _client: UpstreamClient
    _clock: IReactorTime
    _on_close: Callable[[], object] | None = None

    @classmethod
    def create(cls, config: ProxySettings, policy: UpstreamPolicy, pages: PageCache,
               client: UpstreamClient, storage: IStorage, index: HostedIndex,
               file_url: FileUrl, run: Run, clock: IReactorTime,
               on_close: Callable[[], object] | None = None,
               on_change: Callable[[], None] | None = None) -> UpstreamProxy:
        """
        The proxy and its sides, complete.

        @param pages: the cache of upstream pages.
        @param storage: where fetched files are kept (an L{IStorage} of its own).
        @param index: the hosted index (what is hosted is never asked upstream).
        @param file_url: C{file_url(file) -> str}, as for hosted files.
        @param on_close: drops the connections to the upstream.
        @param on_change: called (without arguments) when a file was kept,
            so that the snapshot is saved soon (the L{PageCache} is given
            the same).
        """
        kept = KeptFiles()
        rules = ProjectRules(config.mode, policy, index)
        view = PageView(policy, pages, index, file_url, clock, kept)
        files = UpstreamFiles(config, view, client, storage, run, clock, kept, on_change)
        upkeep = CacheUpkeep(rules, pages, view, files, kept)
        return cls(rules, pages, view, files, upkeep, kept,
                   MissBudget(config.max_misses_per_address), client, clock, on_close)

    # -- the three sides ---------------------------------------------------------

    @property
    def pages(self) -> PageView:
        """What clients see of the cached pages."""
        return self._view

    @property
    def files(self) -> UpstreamFiles:
        """The files: fetched on their first download, checked, kept."""
        return self._files

    @property
    def upkeep(self) -> CacheUpkeep:
        """Refreshes and pre-caching (the administrators' routes)."""
        return self._upkeep

    # -- the rules -----------------------------------------------------------------

    @property
    def mode(self) -> str:
        """C{none}, C{redirect} or C{cache}."""
        return self._rules.mode

    def decide(self, name: str) -> Decision:
        """May the upstream be asked about C{name}?"""
        return self._rules.decide(name)

    def merges(self, project: str) -> bool:
        """Whether the hosted C{project} shows upstream files too (C{merge})."""
        return self._rules.merges(project)

    def may_serve(self, record: FileRecord) -> bool:
        """
        Whether a kept upstream file may be served now: its project is not
        hosted, or merges upstream files and no hosted file shadows it.
        """
        return self._rules.may_serve(record)

    def redirect_url(self, project: str) -> str:
        """Where C{redirect} mode sends a client for C{project}'s page."""
        return f"{self._client.index_url}{project}/"

    def known(self, project: str) -> tuple[CachedPage, tuple[UpstreamFile, ...]] | None:
        """
        What the cache knows of an upstream project, without asking the
        upstream (for the pages for people): C{(entry, files)}, the files
        clients are shown of the cached page, or L{None} (always, but in
        C{cache} mode).
        """
        if self._rules.mode != "cache":
            return None
        return self._view.known(project)

    def charge(self, address: str | None, project: str, filename: str | None = None,
               metadata: bool = False) -> float | None:
        """
        Charge C{address} for a request about C{project} (or its file
        C{filename}, or that file's C{metadata}) if answering it means
        asking the upstream now (L{pypid.upstream.budget}).

        @return: L{None}, or the seconds to wait before asking again.
        """
        if filename is None:
            asks = self._view.would_fetch(project)
        else:
            asks = self._files.would_fetch(project, filename, metadata)
        return self._misses.charge(address, self._clock.seconds()) if asks else None

    # -- the part's life: the snapshot, the numbers, the end -----------------------

    async def load(self, state: object = None, since: float = 0.0) -> None:
        """
        Prepare the cache storage and learn what it holds, starting from the
        records and pages of a snapshot's C{state} (storage stays the truth:
        what changed since C{since} is read again).
        """
        await self._upkeep.load(state, since)

    def state(self) -> dict[str, Any]:
        """The cached pages and files, JSON-ready, for the snapshot."""
        return self._upkeep.state()

    def state_changed(self) -> bool:
        """Whether pages or files were fetched since the last L{state}."""
        return self._upkeep.state_changed()

    def metric_families(self) -> Iterator[Family]:
        """Pages and files asked for and how they were served, what is kept, and the fetches."""
        pages, files = self._pages, self._files
        yield by_label("pypid_upstream_pages", "Upstream project pages asked for, by how they "
                       "were served (hit, stale, miss, unavailable).", "result",
                       pages.served)
        yield by_label("pypid_upstream_files", "Upstream files asked for, by how they were "
                       "served (hit: kept already, miss: fetched, unavailable: offline).",
                       "result", files.served)
        yield gauge("pypid_upstream_cached_pages", "Upstream project pages cached.",
                    len(pages.entries))
        yield gauge("pypid_upstream_cached_files", "Upstream files kept.", len(self._kept))
        yield from timing_families(("pypid_upstream_fetches", "pypid_upstream_fetch_errors",
                                    "pypid_upstream_fetch_duration_seconds"),
                                   "Fetches from the upstream", ("kind",),
                                   [((), pages.timings), ((), files.timings)])

    def close(self) -> None:
        """Drop the connections to the upstream (at the end of the service's life)."""
        if self._on_close is not None:
            self._on_close()
