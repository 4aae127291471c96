"""
The cache of upstream project pages: time to live, one upstream request per
miss however many clients ask at once, stale pages served while a refresh
runs in the background (or while the upstream is down), offline serving,
and the cached pages handed to the snapshot. The fetch and the clock are
passed in: the cache does no I/O of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.core.records.metrics import Timings
from pypid.core.util.bounded import put_newest
from pypid.core.util.lru import ByteLRU
from pypid.upstream.cached_page import CachedPage, entry_from_json, entry_to_json
from pypid.upstream.fetch import UpstreamError, UpstreamNotFound
from pypid.upstream.page_model import UpstreamPage
from pypid.upstream.quarantines import CONFIRM_GONE, HeldRemovals, Quarantine, Quarantines

log = Logger()


class Offline(Exception):
    """The project is not cached and the server is offline (C{offline = true})."""


#: The most projects whose pages are kept (the oldest fetched go first):
#: names are chosen by clients, so the cache must not grow with whatever
#: they ask for. The same cap bounds the failures remembered: past it they
#: are all forgotten, which only means asking the upstream again.
MAX_ENTRIES = 20000

#: The most "no such project" answers kept, apart from the pages: a client
#: asking for names that exist nowhere fills only these, and never pushes
#: a cached page out (20,001 such requests once emptied the whole cache,
#: so that the next upstream outage served nothing).
MAX_MISSING = 10000

#: The longest a "no such project" answer is kept (at most C{ttl}): a name
#: published upstream shows up this soon.
MISSING_TTL = 300.0

#: After a failed fetch of a project that is not cached, answer the same
#: failure at once for this long rather than wait for the upstream again.
FAILURE_MEMORY = 15.0

#: What one file of a cached page costs in memory, besides its strings
#: (its object, its slots, its tuple entry), and one page besides its files;
#: measured with tracemalloc on pages of 1,000 to 50,000 files (850 to
#: 1,300 bytes a file in all, with its strings).
FILE_COST = 620
PAGE_COST = 2000


#: A failure as L{remembered} keeps it: its type and arguments.
Remembered = tuple[type[BaseException], tuple[Any, ...]]


def remembered(error: BaseException) -> Remembered:
    """
    What is kept of a failure to answer again: not the exception, whose
    traceback holds the frames it went through (and with them the refused
    page's bytes: 15 to 19 MB a failure, measured).
    """
    return type(error), error.args


def again(kept: Remembered) -> BaseException:
    """A new exception like the one L{remembered} kept."""
    return kept[0](*kept[1])


def recent(then: float, now: float) -> bool:
    """Whether a failure at C{then} is still remembered at C{now} (L{FAILURE_MEMORY})."""
    return 0 <= now - then < FAILURE_MEMORY


#: The most upstream files whose failed fetch is remembered (L{RecentFailures});
#: past it the oldest are forgotten.
MAX_FAILED_FILES = 2000

T = TypeVar("T")


@attrs.define
class RecentFailures(Generic[T]):
    """
    C{filename -> (when, what)} of the upstream files whose fetch failed
    lately (a download whose bytes were wrong, a provenance that could not
    be had or was refused), the oldest first: such a file is asked for
    again only once the failure is no longer L{recent}, not at every
    request (each would fetch the wrong bytes again).
    """

    _clock: IReactorTime
    _failed: dict[str, tuple[float, T]] = attrs.field(init=False, factory=dict)

    def remember(self, filename: str, what: T, at: float | None = None) -> None:
        """
        The fetch of C{filename} failed now (or at C{at}, when another worker
        of the machine's fetch did), with C{what}.
        """
        put_newest(self._failed, filename, (self._clock.seconds() if at is None else at, what),
                   MAX_FAILED_FILES)

    def lately(self, filename: str) -> T | None:
        """What the fetch of C{filename} failed with, if still remembered; else L{None}."""
        failed = self._failed.get(filename)
        if failed is not None and recent(failed[0], self._clock.seconds()):
            return failed[1]
        return None

    def __len__(self) -> int:
        return len(self._failed)


def page_cost(page: UpstreamPage) -> int:
    """An estimate of the memory a cached L{UpstreamPage} holds, in bytes."""
    reason = page.status.reason if page.status is not None else None
    return PAGE_COST + len(page.name) + len(reason or "") + sum(
        FILE_COST + len(f.filename) + len(f.url) + 64
        + len(f.requires_python or "") + len(f.yanked or "") + len(f.variant or "")
        for files in (page.files, page.variants, page.variant_wheels) for f in files
    ) + 64 * len(page.variants_failed) + 128 * len(page.variants_unusable)


class PageShare(Protocol):
    """A machine's cache of pages shared by its workers (L{pypid.upstream.machine_share})."""

    def page_kept(self, project: str, entry: CachedPage, held: object) -> Deferred[None]:
        """Give the others the page fetched here, and what it holds back; fires once told."""

    async def turn(self, name: str) -> Callable[[], None]:
        """Hold the machine's lock of C{name}'s fetch, the others' news taken in; its release."""


def page_lock(project: str) -> str:
    """The name of a page's lock among the machine's, apart from every file's."""
    return project + "/"


class PageCache:
    """
    Upstream project pages, by normalized name.

    Pages are bounded by count and by their estimated memory. The oldest
    fetched go first, but the pages of projects whose files are kept on disk
    (L{pin}) only after every other: those are the pages that serve kept
    files while the upstream is down. "No such project" answers are kept
    apart (L{MAX_MISSING}).

    Every answer fetched goes through the L{Quarantines} first, which keep
    a quarantine past the project's removal.

    @ivar entries: C{{project: CachedPage}} of the pages, oldest first.
    @ivar on_change: called when a page was fetched, so that the snapshot
        is saved soon; or L{None}.
    """

    def __init__(self, fetch: Callable[[str, UpstreamPage | None], Deferred[UpstreamPage]],
                 clock: IReactorTime, ttl: float, offline: bool = False, max_bytes: int = 256 << 20,
                 on_change: Callable[[], None] | None = None,
                 confirm_gone: float = CONFIRM_GONE,
                 share: PageShare | None = None) -> None:
        """
        @param fetch: C{fetch(project, previous)}, given the page held of
            the project, so that what was read for it need not be read again.
        @param share: a machine's, told of each page fetched (and what it holds
            back) before it is kept and its requests answered; a page is
            fetched in the machine's turn of it, so once per machine.
        """
        self._share = share
        #: the machine's locks of the pages fetched here now
        self._turns: dict[str, Callable[[], None]] = {}
        self._fetch = fetch
        #: what fetches said is gone, until a later fetch confirms it
        self._held = HeldRemovals(confirm_gone, MAX_ENTRIES)
        #: the projects an administrator asked to fetch again (L{refresh}):
        #: their next fetch is taken as it is
        self._final: set[str] = set()
        self._clock = clock
        self._ttl = ttl
        self._offline = offline
        self.entries: dict[str, CachedPage] = {}
        # the pages' order of eviction, oldest fetched first, and their
        # costs: pages not pinned (tier 0) before pinned ones (tier 1)
        self._order: ByteLRU[str, CachedPage] = ByteLRU(
            max_bytes, max_entries=MAX_ENTRIES, tiers=2, on_evict=self._evicted)
        self._missing: dict[str, CachedPage] = {}
        self._pinned: set[str] = set()
        self._inflight: dict[str, list[Deferred[CachedPage]]] = {}
        self._failures: dict[str, tuple[float, Remembered]] = {}
        self.quarantines = Quarantines()
        self.changed = False
        self.on_change = on_change
        self._drop_listeners: list[Callable[[str], object]] = []
        self._load_listeners: list[Callable[[str, UpstreamPage | None], object]] = []
        #: how pages were served, for C{/metrics}: C{hit} (fresh from the
        #: cache), C{stale} (the cached page while a refresh runs, the
        #: upstream fails, or offline), C{miss} (fetched while the client
        #: waited), C{unavailable} (not cached, and no upstream to ask)
        self.served = {"hit": 0, "stale": 0, "miss": 0, "unavailable": 0}
        #: the upstream fetches of pages: count, failures, latency
        self.timings = Timings()

    def on_dropped(self, listener: Callable[[str], object]) -> None:
        """Call C{listener(project)} whenever a page is forgotten from now on."""
        self._drop_listeners.append(listener)

    def on_loaded(self, listener: Callable[[str, UpstreamPage | None], object]) -> None:
        """
        Call C{listener(project, page)} with each page fetched from now on
        (L{None}: the upstream has no such project), once it is kept.
        """
        self._load_listeners.append(listener)

    def _note_change(self) -> None:
        """The pages changed: the snapshot is to be saved soon."""
        self.changed = True
        if self.on_change is not None:
            self.on_change()

    def pin(self, project: str) -> None:
        """Keep C{project}'s page past every unpinned one: files of it are kept on disk."""
        self._pinned.add(project)
        self._order.retier(project, 1)

    def cached(self, project: str) -> CachedPage | None:
        """What is known of C{project} without asking (a page, or a "no such project")."""
        return self._kept(project)[0]

    def would_fetch(self, project: str) -> bool:
        """Whether a request for C{project} now would ask the upstream while the client waits."""
        if self._offline or project in self._inflight or self.cached(project) is not None:
            return False
        failed = self._failures.get(project)
        return failed is None or not recent(failed[0], self._clock.seconds())

    def hit(self, project: str) -> CachedPage | None:
        """
        The entry of C{project} when L{get} would serve it fresh now, without
        counting it (the express lane counts it once it answers); else L{None}.
        """
        if self._offline:
            return None
        entry, ttl = self._kept(project)
        if entry is not None and entry.fresh(self._clock.seconds(), ttl):
            return entry
        return None

    def _kept(self, project: str) -> tuple[CachedPage | None, float]:
        """What is kept of C{project} (a page, or a "no such project"), and how long it is fresh."""
        entry = self.entries.get(project)
        if entry is not None:
            return entry, self._ttl
        return self._missing.get(project), min(self._ttl, MISSING_TTL)

    def count_hit(self) -> None:
        """Count a page served fresh from the cache without L{get} (see L{hit})."""
        self.served["hit"] += 1

    async def get(self, project: str) -> tuple[CachedPage, bool]:
        """
        The entry of C{project}: fresh, or stale while a refresh runs (or
        while the upstream fails), or fetched now.

        @return: C{(entry, stale)}.
        @raise UpstreamError: not cached, and the upstream failed.
        @raise Offline: not cached, and the server is offline.
        """
        entry, ttl = self._kept(project)
        now = self._clock.seconds()
        served = self.served
        if entry is not None and (self._offline or entry.fresh(now, ttl)):
            stale = not entry.fresh(now, ttl)
            served["stale" if stale else "hit"] += 1
            return entry, stale
        if self._offline:
            served["unavailable"] += 1
            raise Offline(project)
        failed = self._failures.get(project)
        if entry is None and failed is not None and recent(failed[0], now):
            served["unavailable"] += 1
            raise again(failed[1])
        if entry is not None:
            # (the refresh goes on behind; a failure of it leaves this entry)
            served["stale"] += 1
            self._refresh(project).addErrback(lambda _: None)
            return entry, True
        served["miss"] += 1
        return await self._refresh(project), False

    def refresh(self, project: str) -> Deferred[CachedPage]:
        """
        Fetch C{project} again now (an administrator asked), sharing a fetch
        under way; what it says is taken at once, not held for a second
        fetch to confirm a removal.
        """
        if self._offline:
            raise Offline(project)
        self._final.add(project)
        return self._refresh(project)

    def _refresh(self, project: str) -> Deferred[CachedPage]:
        """One fetch per project at a time; every caller gets its result."""
        d: Deferred[CachedPage] = Deferred()
        waiting = self._inflight.get(project)
        if waiting is not None:
            waiting.append(d)
            return d
        self._inflight[project] = [d]
        # (a fetch may answer at once: the waiter is registered before it starts)
        ensureDeferred(self._load(project)).addBoth(self._loaded, project)
        return d

    async def _load(self, project: str) -> CachedPage | _Adopted:
        if self._share is not None:
            asked = self._clock.seconds()
            self._turns[project] = await self._share.turn(page_lock(project))
            kept = self.entries.get(project)
            if kept is not None and kept.fetched_at > asked:
                # (another worker fetched it while this one waited its turn;
                # a page of this very instant proves no such fetch)
                return _Adopted(kept)
        # (the fetch's time, not the wait for the machine's turn)
        started = self._clock.seconds()
        page: UpstreamPage | None
        try:
            kept = self.entries.get(project)
            page = await self._fetch(project, kept.page if kept is not None else None)
        except UpstreamNotFound:
            page = None
        except BaseException:
            self.timings.record("page", self._clock.seconds() - started, failed=True)
            raise
        now = self._clock.seconds()
        self.timings.record("page", now - started)
        return CachedPage(page, now)

    def release(self, project: str) -> Quarantine | None:
        """
        Forget the quarantine remembered of C{project} (an admin asked),
        and the page kept for it: the next request asks the upstream again.

        @return: the quarantine released, or L{None} when none is remembered.
        @raise pypid.upstream.quarantines.StillQuarantined: the upstream's
            latest page quarantines it.
        """
        released = self.quarantines.release(project)
        if released is not None:
            self._drop(project)
            self._note_change()
        return released

    def _loaded(self, result: CachedPage | _Adopted | Failure, project: str) -> None:
        if isinstance(result, _Adopted):
            self._answer(project, result.entry)
            return
        if not isinstance(result, CachedPage):
            self._failed(result, project)
            return
        # (steady first: a quarantine lifted on one fetch alone is not
        # lifted, nor forgotten where the quarantines remember it)
        if project in self._final:
            self._final.discard(project)
            self._held.forget(project)
        else:
            result = self._held.steady(project, self.entries.get(project), result)
        page = self.quarantines.seen(project, result.page, result.fetched_at)
        if page is not result.page:
            result = CachedPage(page, result.fetched_at)
        self._failures.pop(project, None)
        # (a "no such project" is shared only where it takes a page away)
        if self._share is None or (page is None and project not in self.entries):
            self._took(project, result)
            return
        # The others hold the page (and what it holds back) before it is
        # kept here, so before any client, here or there, is shown it; a
        # request for it meanwhile waits with the fetch's.
        taken = self._share.page_kept(project, result, self._held.of(project))
        taken.addBoth(lambda _: self._took(project, result))

    def _took(self, project: str, result: CachedPage) -> None:
        """Keep a page fetched (and shared, on a machine), and answer who waited for it."""
        self._keep(project, result)
        for listener in self._load_listeners:
            listener(project, result.page)
        if result.page is not None:  # ("no such project" answers are not saved)
            self._note_change()
        self._answer(project, result)

    def _answer(self, project: str, result: CachedPage) -> None:
        """Let go of the machine's turn (the page is told), and answer who waited for it."""
        self._turns.pop(project, _nothing)()
        for d in self._inflight.pop(project):
            d.callback(result)

    def _failed(self, result: Failure, project: str) -> None:
        """A fetch failed: remembered a while; who waited for it gets the failure."""
        self._turns.pop(project, _nothing)()
        waiting = self._inflight.pop(project)
        self._final.discard(project)
        if result.check(UpstreamError):
            self._failures[project] = (self._clock.seconds(), remembered(result.value))
            if len(self._failures) > MAX_ENTRIES:
                self._failures.clear()
        else:
            log.failure("Fetching {project} from the upstream failed", result, project=project)
        if self.cached(project) is not None:
            log.warn("Serving the cached page of {project}: {error}",
                     project=project, error=result.getErrorMessage())
        for d in waiting:
            d.errback(result)

    def adopt(self, project: str, entry: CachedPage, held: object = None) -> None:
        """
        Keep the page another worker of the machine fetched and kept (or its
        "no such project", which took a page away), as fetched here: its
        rules were applied there, and what it holds back is held here too.
        """
        current = self.cached(project)
        if current is not None and current.fetched_at > entry.fetched_at:
            return
        self.quarantines.seen(project, entry.page, entry.fetched_at)
        self._failures.pop(project, None)
        self._held.take(project, held)
        self._keep(project, entry)
        if entry.page is not None:
            self._note_change()

    def _keep(self, project: str, entry: CachedPage) -> None:
        """
        Keep a fetched entry, the newest, within the caps (never forgetting
        this one, which its request is about to serve and list files from).
        """
        self._drop(project)
        if entry.page is None:
            put_newest(self._missing, project, entry, MAX_MISSING)
            return
        self.entries[project] = entry
        self._order.put(project, entry, page_cost(entry.page),
                        tier=int(project in self._pinned), keep=True)

    def _drop(self, project: str) -> None:
        self._missing.pop(project, None)
        if self.entries.get(project) is not None:
            self._order.pop(project)
            self._evicted(project)

    def _evicted(self, project: str, _entry: CachedPage | None = None) -> None:
        """Forget C{project}'s page (its own or evicted by the caps), and say so."""
        del self.entries[project]
        for listener in self._drop_listeners:
            listener(project)

    # -- the snapshot ---------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The cached pages (not the "no such project" answers), JSON-ready, for the snapshot."""
        return {project: entry_to_json(entry) for project, entry in self.entries.items()}

    def load_json(self, data: object, quarantines: object = None) -> None:
        """
        Take back the pages of a snapshot (unreadable entries are skipped),
        and the C{quarantines} remembered; a quarantined page of a save from
        before they were kept is remembered as such.
        """
        self.quarantines.load_json(quarantines)
        if not isinstance(data, dict):
            return
        for project, value in data.items():
            try:
                entry = entry_from_json(value)
            except (KeyError, TypeError, ValueError) as e:
                log.warn("Ignoring the cached upstream page of {project}: {error}",
                         project=project, error=str(e))
                continue
            if entry.page is not None:
                if entry.page.quarantined and self.quarantines.get(project) is None:
                    self.quarantines.seen(project, entry.page, entry.fetched_at)
                self._keep(project, entry)


@attrs.frozen
class _Adopted:
    """A page another worker fetched while this one waited its turn: kept already."""

    entry: CachedPage


def _nothing() -> None:
    """No turn to let go of (a cache of one process)."""
