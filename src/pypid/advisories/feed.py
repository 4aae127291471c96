"""
The part that keeps the server's security advisories in force: it reads the
OSV records of C{[advisories] path} (a folder or a zip) and of the archive
fetched from C{url}, at start-up, every C{refresh} and at C{SIGHUP}, and puts
the result on the L{pypid.core.security.advisories.AdvisoryBoard} that every
index's policy reads.

  - the start does not wait for them (20,000 records held the listeners 4.5
    to 9 s and kept 75 MiB): before the listeners open, a path that does not
    exist or is over C{max_size} is a start-up error (who wrote it believes
    it is in force), and, when there is something to read, the I{unread}
    database goes in force, under which an index that hides or denies
    serves none of the releases they might cover (503 with C{Retry-After});
    L{FirstRead} reads once the listeners are open. A first read that fails
    leaves that database in force, failed, until a later read succeeds;
  - the export is compiled once per version, in a child, into the compact
    cache beside the snapshot (L{pypid.advisories.compact_cache}) that every
    start reads (0.6 to 0.9 s and 33 MiB for 20,000 records, against 4 s
    and 75 MiB);
  - the URL is never waited for (the server starts without a network): the
    last good archive, C{<snapshot>.d/advisories.zip}, is read at start-up
    like the path and fetched again in the background, conditionally; an
    answer replaces it only once read whole within the bounds (a hostile
    one kept would fail every later read);
  - a read that fails or is refused keeps what is in force (one error
    line); the records in force read again (their digest) change nothing
    (tests/bench/bench_advisories.py --daemon: docs/performance.rst).
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IAgent
from zope.interface import implementer

from pypid.advisories.archive_fetch import FETCH_TIMEOUT, ArchiveFetch, kept_copy
from pypid.advisories.compact_cache import (
    Cached,
    CacheUnusable,
    Compiled,
    Compiler,
    CompileTask,
    LocalCompiler,
    cache_key,
    cache_path,
    compile_sources,
    read_cache,
)
from pypid.advisories.osv_archive import (
    ArchiveLimits,
    ArchiveRefused,
    check_source,
    signature,
)
from pypid.config import Config
from pypid.config.advisory_settings import AdvisoriesConfig
from pypid.core.parts import IMetricsSource, IReloadable
from pypid.core.records.metrics import Family, by_label, gauge
from pypid.core.security.advisories import FAILED, AdvisoryBoard, AdvisoryDB
from pypid.core.util.startup import StartupError
from pypid.core.util.units import counted
from pypid.jobs.periodic import Periodic
from pypid.jobs.run import Run
from pypid.machine.topics import LONE, Hub, Topic

log = Logger()

_T = TypeVar("_T")

#: Seconds between two looks of a machine's worker (but the first) at the
#: advisories the first put in force.
FOLLOW_INTERVAL = 1.0

class LoadFailed(Exception):
    """A read that put nothing in force; the message is one line."""


def saved_path(snapshot: str) -> str:
    """Where the archive fetched from the URL is kept: beside the snapshot."""
    return f"{snapshot}.d/advisories.zip"


class FirstRead(Service):
    """The part that begins the first read, after the listeners: the server answers meanwhile."""

    def __init__(self, feed: AdvisoryFeed) -> None:
        self._feed = feed

    def startService(self) -> None:
        """Begin the first read."""
        Service.startService(self)
        self._feed.read_first()


@implementer(IReloadable, IMetricsSource)
class AdvisoryFeed(Service):
    """The advisories' part, which fills C{board}."""

    def __init__(self, board: AdvisoryBoard, settings: AdvisoriesConfig, run: Run,
                 clock: IReactorTime, snapshot: str,
                 agent: Callable[[], IAgent] | None = None,
                 limits: ArchiveLimits | None = None,
                 compiler: Compiler | None = None, hub: Hub = LONE) -> None:
        """
        @param snapshot: the snapshot's path (the URL's archive and the
            compact cache are kept beside it).
        @param agent: makes the HTTP agent when one is first needed (L{None}:
            the URL is never fetched).
        @param compiler: by default, reads the sources in the pool's thread.
        @param hub: in a worker of a machine, its hub: the first worker
            alone fetches and refreshes, and announces each database it
            puts in force; the others read it again then (L{sync}).
        """
        self._hub = hub
        # (whether the first worker put other advisories in force since the last read)
        self._told = False
        hub.on(Topic.ADVISORIES, lambda fields, worker: self._follow(worker == 1))
        hub.lost(lambda: self._follow(True))
        self.board = board
        self._settings = settings
        self._run = run
        self._clock = clock
        self._saved = saved_path(snapshot)
        self._cache = cache_path(snapshot)
        self._compiler: Compiler = compiler if compiler is not None else LocalCompiler()
        self.first_read = FirstRead(self)
        self._fetching = ArchiveFetch(run, clock, self._saved, agent, self._count)
        self._limits = limits or ArchiveLimits()
        self._timer: Periodic | None = None
        self._first_fetch: IDelayedCall | None = None
        self._stopped = False
        self._loading: Deferred[None] | None = None
        self._again = False
        self._results: dict[str, int] = {}
        self._loaded_at: float | None = None
        # (the sources, their limit and signature at the last read)
        self._seen: tuple[object, ...] | None = None

    @classmethod
    def from_config(cls, config: Config, board: AdvisoryBoard, run: Run,
                    clock: IReactorTime, hub: Hub = LONE) -> AdvisoryFeed:
        """
        The part of a configuration, with an HTTPS agent verified as the
        server's other outbound calls are, made when the URL is first fetched
        (a server without C{url} never loads the HTTP client, which would
        delay its readiness).

        @raise StartupError: with C{url}, when C{[pypid] ca_bundle} cannot
            be used.
        """
        if config.advisories.url is not None:
            from pypid.http.client import outbound_policy
            outbound_policy(config)  # (checked at start-up, as the upstream's is)

        def agent() -> IAgent:
            from pypid.http.client import make_agent, outbound_policy
            return make_agent(clock, FETCH_TIMEOUT, connections=2,
                              policy=outbound_policy(config))[0]

        from pypid.advisories.compile_child import ChildCompiler
        return cls(board, config.advisories, run, clock, config.server.snapshot,
                   agent if hub.runs_once else None, compiler=ChildCompiler(), hub=hub)

    # -- the service -------------------------------------------------------------

    def startService(self) -> Deferred[None]:
        """
        Before the listeners open: check the path, and put the unread
        database in force when there is something to read, so that the
        indexes that hide or deny fail closed until the first read is done.
        """
        Service.startService(self)
        settings = self._settings
        if settings.path is not None:
            try:
                check_source(settings.path, limits_of(settings, self._limits))
            except ArchiveRefused as e:
                return fail(StartupError(f"[advisories] path: {e}"))
        if settings.path is not None or (settings.url is not None
                                         and kept_copy(self._saved, settings.url) is not None):
            self.board.replace(AdvisoryDB.unread_yet())
        return succeed(None)

    def read_first(self) -> Deferred[None]:
        """Begin the first read, then keep the advisories fresh; fires once it ended, however."""
        return ensureDeferred(self._first())

    async def _first(self) -> None:
        if self._loading is not None:
            # (a SIGHUP came first: its read is the first)
            await self._loading
        elif self._settings.configured:
            d = self._loading = ensureDeferred(self._read(self._settings))
            d.addBoth(self._read_done)
            await d
        settings = self._settings
        if self._stopped or not settings.configured:
            return
        self._schedule(settings)
        if settings.url is not None:
            self._first_fetch = self._clock.callLater(0, self.refresh)

    async def _read(self, settings: AdvisoriesConfig) -> None:
        """Read the sources (L{_load}); a failure is L{_not_read}'s."""
        try:
            await self._load(settings)
        except LoadFailed as e:
            self._not_read(str(e))
        except Exception as e:
            self._count("failed")
            log.failure("Cannot read the advisories")
            self._not_read(f"cannot read the advisories: {e}")

    def _not_read(self, error: str) -> None:
        """
        A read failed: with advisories in force, they stay; while none is, the
        unread database stays in force, failed (the indexes that hide or deny
        fail closed).
        """
        if self.board.unread is None:
            log.error("Keeping the advisories in force: {error}", error=error)
            return
        log.error("Cannot read the advisories: {error}; until they are read, the indexes "
                  "that hide or deny serve none of the releases they might cover (the next "
                  "refresh or a SIGHUP tries again)", error=error)
        if self.board.unread != FAILED and not self._stopped:
            self.board.replace(AdvisoryDB.unread_yet(FAILED))

    def stopService(self) -> None:
        """Stop refreshing; a read in flight ends without putting anything in force."""
        Service.stopService(self)
        if self._timer is not None and self._timer.running:
            self._timer.stopService()
        self._timer = None
        if self._first_fetch is not None and self._first_fetch.active():
            self._first_fetch.cancel()
        self._again = False
        self._stopped = True
        self._compiler.stop()

    def _schedule(self, settings: AdvisoriesConfig) -> None:
        """Refresh every C{settings.refresh} (a reload may change it), or never (0)."""
        if self._timer is not None and self._timer.running:
            self._timer.stopService()
        self._timer = None
        if not self._hub.runs_once:
            # (the first worker refreshes; this one follows its announcements)
            self._timer = Periodic(self.sync, FOLLOW_INTERVAL, self._clock,
                                   what="The advisories' follow of the first worker")
            self._timer.startService()
            return
        if settings.refresh and (settings.path is not None or settings.url is not None):
            self._timer = Periodic(self.refresh, settings.refresh, self._clock,
                                   what="The advisories' refresh")
            self._timer.startService()

    # -- reading -----------------------------------------------------------------

    def refresh(self) -> Deferred[None]:
        """Fetch the URL (if any) and read every source again; one at a time."""
        if self._stopped:
            return succeed(None)
        if self._loading is not None:
            self._again = True
            return self._loading
        d = self._loading = ensureDeferred(self._refresh())
        d.addBoth(self._read_done)
        return d

    def _read_done(self, result: _T) -> _T:
        """A read ended: the next may start; one asked for meanwhile starts now."""
        self._loading = None
        if self._again and not self._stopped:
            self._again = False
            self.refresh()
        return result

    async def _refresh(self) -> None:
        try:
            await self._refresh_once()
        except Exception:
            # (whatever failed, the timer goes on: the next refresh tries again)
            self._count("failed")
            log.failure("Cannot refresh the advisories; keeping those in force")

    async def _refresh_once(self) -> None:
        settings = self._settings
        if settings.url is not None:
            await self._fetching.fetch(settings.url, settings.max_size,
                                       limits_of(settings, self._limits))
        try:
            await self._load(settings)
        except LoadFailed as e:
            self._not_read(str(e))

    async def _load(self, settings: AdvisoriesConfig) -> None:
        """
        Read the sources (their compact cache when it is theirs, else the
        sources themselves, into the cache); put what they hold in force.

        @raise LoadFailed: when nothing was put in force.
        """
        self._hub.take()  # (what the first worker announced so far, this read takes in)
        self._told = False
        kept = None if settings.url is None else await self._run(kept_copy, self._saved,
                                                                  settings.url)
        saved = self._saved if kept is not None else None
        if settings.path is None and saved is None:
            self._nothing_to_read()
            return
        sources = [p for p in (settings.path, saved) if p is not None]
        found = await self._run(signature, sources)
        seen = (sources, settings.max_size, found)
        if seen == self._seen and self.board.db.digest:  # (nothing changed since the last read)
            self._count("unchanged")
            self._loaded_at = self._clock.seconds()
            return
        started = time.monotonic()
        limits = limits_of(settings, self._limits)
        key = cache_key(sources, found, limits)
        cached = await self._cached(key)
        exported = cached is None
        if cached is None:
            compiled = await self._compile(CompileTask(settings.path, saved, self._cache, key,
                                                       limits))
            if compiled.header is None:  # (the kept copy refused, and no path)
                self._nothing_to_read()
                return
            if compiled.skipped:
                log.warn("Skipped in the advisories: {skipped}", skipped=compiled.skipped)
            cached = await self._cached(key)
            if cached is None:
                self._count("failed")
                raise LoadFailed(f"the advisories' cache {self._cache} just written cannot "
                                 "be read")
        took = time.monotonic() - started
        self._loaded_at = self._clock.seconds()
        self._seen = seen
        if self._stopped:
            return   # (stopped meanwhile: nothing more is put in force)
        db = cached.db
        if db is None or db.digest == self.board.db.digest:
            self._count("unchanged")
            return
        self._count("loaded")
        self.board.replace(db)
        if self._hub.runs_once:
            self._hub.publish(Topic.ADVISORIES)
        # (the database lives until the next load, and makes no cycle: out
        # of the collector's sight, a full collection of the process took
        # 177 ms with it in sight and none without)
        gc.freeze()
        log.info("Loaded {advisories} for {projects} from {source} in "
                 "{took:.1f} s ({withdrawn} ignored; {how})",
                 advisories=counted(len(db), "advisory", "advisories"),
                 projects=counted(len(db.by_project), "project"), source=db.source, took=took,
                 withdrawn=counted(cached.header.withdrawn, "withdrawn record"),
                 how="the export read" if exported else "from its compact cache")

    def sync(self) -> Deferred[None]:
        """
        In a worker of a machine but the first: once the first put other
        advisories in force, read them too (from the compact cache it wrote).
        """
        if self._hub.runs_once:
            return succeed(None)
        self._hub.take()
        if self._told:
            self._told = False
            self.refresh()
        return succeed(None)

    def _follow(self, told: bool) -> None:
        self._told = self._told or told

    def _nothing_to_read(self) -> None:
        """No source to read (a URL not fetched yet): no advisory is in force, none is awaited."""
        if self.board.unread is not None and not self._stopped:
            self.board.replace(AdvisoryDB())

    async def _cached(self, key: str) -> Cached | None:
        """The compact cache of C{key}, or L{None} (none, stale, or not as written: logged)."""
        try:
            cached: Cached | None = await self._run(read_cache, self._cache, key,
                                                    self.board.db.digest)
        except CacheUnusable as e:
            log.warn("Not reading the advisories' cache {path}: {error}; reading the "
                     "advisories themselves", path=self._cache, error=str(e))
            return None
        return cached

    async def _compile(self, task: CompileTask) -> Compiled:
        """
        Read the sources into the cache, in the pool; a kept copy refused is a warning.

        @raise LoadFailed: when the path is refused, or the reading failed.
        """
        try:
            compiled: Compiled = await self._run(self._compiler.compile, task)
        except Exception as e:
            self._count("failed")
            log.failure("Cannot read the advisories")
            raise LoadFailed(f"cannot read the advisories: {e}")
        if compiled.copy_refused is not None:
            self._count("refused")
            self._fetching.forget()
            log.warn("Not reading the kept copy of [advisories] url: {error}",
                     error=compiled.copy_refused)
        if compiled.refused is not None:
            self._count("refused")
            raise LoadFailed(compiled.refused)
        return compiled

    def _count(self, result: str) -> None:
        self._results[result] = self._results.get(result, 0) + 1

    # -- reload and metrics ------------------------------------------------------

    def prepare_reload(self, config: Config | None) -> Callable[[], str | None] | None:
        """At C{SIGHUP}: take C{[advisories]} as it is now, and read the advisories again."""
        settings = config.advisories if config is not None else self._settings
        if settings.path is None and settings.url is None and self.board.db.digest == "" \
                and self._settings.path is None and self._settings.url is None:
            if settings == self._settings:
                return None

            def take() -> None:
                # (nothing to read, before or after: the keys are kept, as a
                # restart would have them, for the reload that names a source)
                self._settings = settings
            return take

        def commit() -> str:
            changed = settings != self._settings
            self._settings = settings
            if changed:
                self._schedule(settings)
            if settings.path is None and settings.url is None:
                self.board.replace(AdvisoryDB())
                return "advisories none"
            self.refresh()
            return "advisories read again"
        return commit

    def metric_families(self) -> Iterator[Family]:
        """The advisories in force, when they were read, and the reads by result."""
        db = self.board.db
        if not (self._settings.path or self._settings.url or db.by_project or self._results):
            # (a server without [advisories] shows none of these: its
            # /metrics is as before advisories)
            return
        yield gauge("pypid_advisories", "Security advisories in force.", len(db))
        yield gauge("pypid_advisory_projects", "Projects some advisory in force names.",
                    len(db.by_project))
        if self._loaded_at is not None:
            yield gauge("pypid_advisories_read_timestamp_seconds",
                        "When the advisories were last read (Unix time).", self._loaded_at)
        if self._results:
            yield by_label("pypid_advisory_reads", "Reads of the advisories, by result.",
                           "result", self._results)


@attrs.frozen
class InForce:
    """The advisories L{read_in_force} read, and what a person must hear of them, a line each."""

    db: AdvisoryDB
    warnings: tuple[str, ...] = ()


def limits_of(settings: AdvisoriesConfig, base: ArchiveLimits | None = None) -> ArchiveLimits:
    """
    The archives' limits under C{settings}, the daemon's and the export's
    alike (the export reuses the daemon's compact cache only when they agree).
    """
    return attrs.evolve(base or ArchiveLimits(), max_size=settings.max_size)


def read_in_force(settings: AdvisoriesConfig, snapshot: str) -> InForce:
    """
    The advisories a daemon of C{settings} puts in force at its start, read
    without a network and without writing beside its snapshot (for the
    static export, which runs beside a daemon): from the daemon's compact
    cache when it is theirs, else read within the same bounds as the
    daemon's first read (into a temporary folder). Blocking.

    @raise LoadFailed: when they cannot be read: an index that hides or
        denies serves none of the releases they might cover until they are,
        and the caller must not pretend otherwise.
    """
    limits = limits_of(settings)
    warnings: list[str] = []
    saved = saved_path(snapshot) if settings.url is not None else None
    if settings.url is not None and kept_copy(saved_path(snapshot), settings.url) is None:
        warnings.append(f"[advisories] url was never fetched here (no copy kept at "
                        f"{saved}): its advisories are not applied")
        saved = None
    sources = [p for p in (settings.path, saved) if p is not None]
    if not sources:
        return InForce(AdvisoryDB(), tuple(warnings))
    if settings.path is not None:
        try:
            check_source(settings.path, limits)
        except ArchiveRefused as e:
            raise LoadFailed(f"[advisories] path: {e}")
    key = cache_key(sources, signature(sources), limits)
    try:
        cached = read_cache(cache_path(snapshot), key)
    except CacheUnusable:
        cached = None
    if cached is None or cached.db is None:
        with tempfile.TemporaryDirectory(prefix="pypid-advisories-") as scratch:
            cache = os.path.join(scratch, "advisories.cache")
            try:
                compiled = compile_sources(CompileTask(settings.path, saved, cache, key, limits))
            except Exception as e:
                raise LoadFailed(f"cannot read the advisories: {e}")
            if compiled.copy_refused is not None:
                warnings.append(f"the kept copy of [advisories] url is refused, its "
                                f"advisories not applied: {compiled.copy_refused}")
            if compiled.refused is not None:
                raise LoadFailed(compiled.refused)
            if compiled.header is None:
                # (only the kept copy to read, and it is refused)
                return InForce(AdvisoryDB(), tuple(warnings))
            try:
                cached = read_cache(cache, key)
            except CacheUnusable as e:
                raise LoadFailed(f"cannot read the advisories: {e}")
    if cached is None or cached.db is None:
        raise LoadFailed("cannot read the advisories: their cache was not written")
    return InForce(cached.db, tuple(warnings))
