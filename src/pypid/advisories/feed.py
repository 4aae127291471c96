"""
The part that keeps the server's security advisories in force (issue 27):
it reads the OSV records of C{[advisories] path} (a folder or a zip) and
of the archive fetched from C{url}, at start-up, every C{refresh} and at
C{SIGHUP}, and puts the result on the server's
L{pypid.core.advisories.AdvisoryBoard}, which every index's policy reads.

Why so:
  - start-up waits for the first read, so that an index that denies does
    so from the first request; a C{path} that cannot be read or is
    refused is a start-up error (one line): an administrator who wrote it
    believes it is in force;
  - the URL is never waited for: the server must start and serve without
    a network. The last good archive fetched is kept beside the snapshot
    (C{<snapshot>.d/advisories.zip}), read at start-up like the path, and
    fetched again in the background (a conditional request:
    C{If-None-Match}/C{If-Modified-Since}; after a restart, the kept
    copy's date, which is its answer's C{Last-Modified}). An answer replaces the kept
    copy only once it has been read whole within the bounds (written
    beside it, checked, then renamed over it): a hostile or broken answer
    kept unchecked would fail every later read and, at the next start,
    stop the server. A kept copy that no longer reads (damaged, or over a
    smaller C{max_size}) is a warning: the path's advisories are read
    without it;
  - reading and parsing run in the thread pool (tens of thousands of
    records take seconds), never on the reactor's thread;
  - a read that fails or is refused (a hostile archive: see
    L{pypid.advisories.osv_archive}) keeps the advisories in force, with one
    error line; a read whose records are those in force changes nothing
    (their digest); any other replaces the board's database, with one
    line saying how many, from where, in how long.

Measured (tests/bench_advisories.py: a synthetic export of 40,000 records
of 9,500 projects, 36 MB zipped; 2 shared cores): a load takes 6 to 8 s
in the thread pool, its peak 137 MiB (tracemalloc), the database then
keeping 69 MiB; matching 100,000 files against it, 3.5 us a file the
first time, 0.5 us once the verdicts are remembered.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate, parsedate_to_datetime
from typing import Any, TypeVar

import attrs
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.web.client import ResponseFailed
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent
from zope.interface import implementer

from pypid.advisories.osv_archive import (
    ArchiveLimits,
    ArchiveRefused,
    Tally,
    records,
    signature,
)
from pypid.config import Config
from pypid.config.advisory_settings import AdvisoriesConfig
from pypid.core.advisories import AdvisoryBoard
from pypid.core.metrics import Family, by_label, gauge
from pypid.core.osv import ReadResult, TooManyItems, read_records
from pypid.core.parts import IMetricsSource, IReloadable
from pypid.core.startup import StartupError
from pypid.http.bodies import BodyError, describe, discard, read_body
from pypid.jobs.periodic import Periodic

log = Logger()

_T = TypeVar("_T")

#: C{run(f, *args) -> Deferred}: blocking work in the thread pool.
Run = Callable[..., Deferred[Any]]

#: Seconds an answer of the URL may take to start, and its body may be silent.
FETCH_TIMEOUT = 60.0

#: Seconds one fetch of the URL may take in all, however steadily it trickles.
FETCH_DEADLINE = 600.0


class LoadFailed(Exception):
    """A read that put nothing in force; the message is one line."""


class CopyRefused(ArchiveRefused):
    """The URL's kept copy is refused (the path may still be read without it)."""


def saved_path(snapshot: str) -> str:
    """Where the archive fetched from the URL is kept: beside the snapshot."""
    return f"{snapshot}.d/advisories.zip"


def read_sources(path: str | None, saved: str | None, limits: ArchiveLimits) -> ReadResult:
    """
    Read the records of C{path} and of C{saved} (the URL's last archive)
    into one database (in the thread pool).

    @raise ArchiveRefused: when one of them is refused (L{CopyRefused}
        when it is C{saved}).
    """
    tally = Tally()
    sources = [source for source in (path, saved) if source is not None]

    def documents() -> Iterator[bytes]:
        if path is not None:
            yield from records(path, limits, tally)
        if saved is not None:
            try:
                yield from records(saved, limits, tally)
            except ArchiveRefused as e:
                raise CopyRefused(str(e)) from None

    try:
        result = read_records(documents(), " + ".join(sources))
    except TooManyItems as e:
        raise ArchiveRefused(f"{' + '.join(sources)}: {e}") from None
    # (what the archive skipped, and the digest of what it read: known
    # only once the records were read)
    for reason, count in tally.skipped.items():
        result.skipped[reason] = result.skipped.get(reason, 0) + count
    result.db = attrs.evolve(result.db, digest=tally.digest)
    return result


@implementer(IReloadable, IMetricsSource)
class AdvisoryFeed(Service):
    """
    The advisories' part.

    @ivar board: the board it fills.
    """

    def __init__(self, board: AdvisoryBoard, settings: AdvisoriesConfig, run: Run,
                 clock: IReactorTime, snapshot: str,
                 agent: Callable[[], IAgent] | None = None,
                 limits: ArchiveLimits | None = None) -> None:
        """
        @param snapshot: the snapshot's path (the URL's archive is kept beside it).
        @param agent: makes the HTTP agent the URL is fetched with, when
            one is first needed (L{None}: the URL is never fetched).
        """
        self.board = board
        self._settings = settings
        self._run = run
        self._clock = clock
        self._saved = saved_path(snapshot)
        self._make_agent = agent
        self._agent: IAgent | None = None
        self._limits = limits or ArchiveLimits()
        self._timer: Periodic | None = None
        #: the validators of the kept copy's answer; L{None} until one is
        #: fetched (the kept copy's date is then its C{If-Modified-Since})
        self._validators: dict[str, str] | None = None
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
                    clock: IReactorTime) -> AdvisoryFeed:
        """
        The part of a configuration: its C{[advisories]}, the snapshot's
        path, and an HTTPS agent verified as the server's other outbound
        calls are (C{[pypid] ca_bundle}), made when the URL is first fetched
        (a server without C{url} never loads the HTTP client: issue 14's
        time to readiness).

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

        return cls(board, config.advisories, run, clock, config.server.snapshot, agent)

    def _limits_of(self, settings: AdvisoriesConfig) -> ArchiveLimits:
        return attrs.evolve(self._limits, max_size=settings.max_size)

    # -- the service -------------------------------------------------------------

    def startService(self) -> Deferred[None]:
        """Read the advisories (the start waits), then keep them fresh."""
        Service.startService(self)
        # (a SIGHUP while the first read runs waits for it, then reads again:
        # the first read, finishing last, must not undo what the reload took)
        d = self._loading = ensureDeferred(self._start())
        d.addBoth(self._read_done)
        return d

    async def _start(self) -> None:
        settings = self._settings
        if settings.path is None and settings.url is None:
            return
        try:
            await self._load(settings)
        except LoadFailed as e:
            raise StartupError(f"[advisories] path: {e}")
        self._schedule(settings)
        if settings.url is not None:
            self._first_fetch = self._clock.callLater(0, self.refresh)

    def stopService(self) -> None:
        """
        Stop refreshing: the timer, the first fetch if still to come; a
        read in flight ends without putting anything in force.
        """
        Service.stopService(self)
        if self._timer is not None and self._timer.running:
            self._timer.stopService()
        self._timer = None
        if self._first_fetch is not None and self._first_fetch.active():
            self._first_fetch.cancel()
        self._again = False
        self._stopped = True

    def _schedule(self, settings: AdvisoriesConfig) -> None:
        """Refresh every C{settings.refresh} (a reload may change it), or never (0)."""
        if self._timer is not None and self._timer.running:
            self._timer.stopService()
        self._timer = None
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
            await self._fetch(settings.url, settings)
        try:
            await self._load(settings)
        except LoadFailed as e:
            log.error("Keeping the advisories in force: {error}", error=str(e))

    async def _load(self, settings: AdvisoriesConfig) -> None:
        """
        Read the sources; put what they hold in force unless it is already.

        @raise LoadFailed: when nothing was put in force (at start-up, the
            caller makes it a start-up error; later, a log line).
        """
        kept = None if settings.url is None else await self._run(kept_copy, self._saved,
                                                                  settings.url)
        saved = self._saved if kept is not None else None
        if settings.path is None and saved is None:
            return
        sources = [p for p in (settings.path, saved) if p is not None]
        seen = (sources, settings.max_size, await self._run(signature, sources))
        if seen == self._seen and self.board.db.digest:
            # (nothing changed since the last read: nothing is read)
            self._count("unchanged")
            self._loaded_at = self._clock.seconds()
            return
        started = time.monotonic()
        try:
            result = await self._read(settings.path, saved, settings)
        except CopyRefused as e:
            self._count("refused")
            self._validators = {}   # (the next fetch takes the URL's archive whole)
            log.warn("Not reading the kept copy of [advisories] url: {error}", error=str(e))
            if settings.path is None:
                return
            result = await self._read(settings.path, None, settings)
        took = time.monotonic() - started
        self._loaded_at = self._clock.seconds()
        self._seen = seen
        if result.summary():
            log.warn("Skipped in the advisories: {skipped}", skipped=result.summary())
        if self._stopped:
            return   # (stopped meanwhile: nothing more is put in force)
        if result.db.digest == self.board.db.digest:
            self._count("unchanged")
            return
        self._count("loaded")
        self.board.replace(result.db)
        # (the database lives until the next load, and makes no cycle: out
        # of the collector's sight, a full collection of the process took
        # 177 ms with it in sight and none without)
        gc.freeze()
        log.info("Loaded {advisories} advisories for {projects} projects from {source} in "
                 "{took:.1f} s ({withdrawn} withdrawn records ignored)",
                 advisories=len(result.db), projects=len(result.db.by_project),
                 source=result.db.source, took=took, withdrawn=result.withdrawn)

    async def _read(self, path: str | None, saved: str | None,
                    settings: AdvisoriesConfig) -> ReadResult:
        """
        L{read_sources} in the pool.

        @raise CopyRefused: when C{saved} is refused.
        @raise LoadFailed: when C{path} is refused or cannot be read.
        """
        try:
            result: ReadResult = await self._run(read_sources, path, saved,
                                                 self._limits_of(settings))
        except CopyRefused:
            raise
        except ArchiveRefused as e:
            self._count("refused")
            raise LoadFailed(str(e))
        except Exception as e:
            self._count("failed")
            log.failure("Cannot read the advisories")
            raise LoadFailed(f"cannot read the advisories: {e}")
        return result

    async def _fetch(self, url: str, settings: AdvisoriesConfig) -> None:
        """Fetch the URL's archive if it changed, and keep it beside the snapshot."""
        if self._agent is None:
            if self._make_agent is None:
                return
            self._agent = self._make_agent()
        headers = Headers({b"user-agent": [b"pypid"]})
        validators = self._validators
        kept = await self._run(kept_copy, self._saved, url)
        if kept is None:
            # (a copy of another URL's, or none: this one's is fetched whole)
            validators = {}
        elif validators is None:
            # (after a restart: the kept copy is dated by its answer's Last-Modified)
            validators = {"modified": formatdate(kept, usegmt=True)}
        if validators:
            for name, key in ((b"if-none-match", "etag"), (b"if-modified-since", "modified")):
                if key in validators:
                    headers.setRawHeaders(name, [validators[key].encode("latin-1")])
        request = self._agent.request(b"GET", url.encode("ascii"), headers)
        timeout = self._clock.callLater(FETCH_TIMEOUT, request.cancel)
        # (a server that trickles its answer is cut off at the deadline:
        # while a fetch runs, every other read waits)
        deadline = self._clock.seconds() + FETCH_DEADLINE
        try:
            response = await request
        except Exception as e:
            self._count("unreachable")
            log.warn("Cannot fetch the advisories from {url}: {error}", url=url,
                     error=describe(e) if isinstance(e, (BodyError, ResponseFailed)) else str(e))
            return
        finally:
            if timeout.active():
                timeout.cancel()
        if response.code == 304:
            return
        if response.code != 200:
            self._count("unreachable")
            log.warn("Cannot fetch the advisories from {url}: {code}", url=url,
                     code=response.code)
            discard(response, self._clock, FETCH_TIMEOUT)
            return
        reading = read_body(response, settings.max_size, self._clock, FETCH_TIMEOUT)
        cutoff = self._clock.callLater(max(deadline - self._clock.seconds(), 0), reading.cancel)
        try:
            body = await reading
        except CancelledError:
            self._count("unreachable")
            log.warn("Cannot fetch the advisories from {url}: no answer whole within "
                     "{deadline:g} s", url=url, deadline=FETCH_DEADLINE)
            return
        except BodyError as e:
            self._count("refused")
            log.error("Not taking the advisories of {url}: {error}", url=url, error=describe(e))
            return
        finally:
            if cutoff.active():
                cutoff.cancel()
        validators = {}
        for name, key in ((b"etag", "etag"), (b"last-modified", "modified")):
            value = response.headers.getRawHeaders(name, [None])[0]
            if value is not None and len(value) < 200:
                validators[key] = value.decode("latin-1")
        try:
            await self._run(_keep_checked, self._saved, body, self._limits_of(settings),
                            _date(validators.get("modified")), url)
        except ArchiveRefused as e:
            self._count("refused")
            log.error("Not taking the advisories of {url}: {error}", url=url, error=str(e))
            return
        self._validators = validators

    def _count(self, result: str) -> None:
        self._results[result] = self._results.get(result, 0) + 1

    # -- reload and metrics ------------------------------------------------------

    def prepare_reload(self, config: Config | None) -> Callable[[], str | None] | None:
        """At C{SIGHUP}: take C{[advisories]} as it is now, and read the advisories again."""
        settings = config.advisories if config is not None else self._settings
        if settings.path is None and settings.url is None and self.board.db.digest == "" \
                and self._settings.path is None and self._settings.url is None:
            return None

        def commit() -> str:
            changed = settings != self._settings
            self._settings = settings
            if changed:
                self._schedule(settings)
            if settings.path is None and settings.url is None:
                from pypid.core.advisories import AdvisoryDB
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


def _date(header: str | None) -> float | None:
    """The Unix time of an HTTP date, or L{None}."""
    if header is None:
        return None
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when.timestamp() if when.tzinfo is not None else None


def _keep_checked(path: str, data: bytes, limits: ArchiveLimits,
                  modified: float | None, url: str) -> None:
    """
    Write the archive C{data} to C{path} whole or not at all, and only if
    it is read within C{limits} (in the thread pool), dated C{modified}
    (its answer's C{Last-Modified}: a restart asks from that date).

    @raise ArchiveRefused: when it is not; C{path} is left as it was.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.part"
    try:
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            for _ in records(temporary, limits, Tally()):
                pass
        except ArchiveRefused as e:
            raise ArchiveRefused(f"the answer is refused: {str(e).replace(temporary, 'it')}")
        if modified is not None:
            os.utime(temporary, (modified, modified))
        os.replace(temporary, path)
        # (which URL the copy is of: a copy of another is never read for
        # this one; written after the copy, so a crash between leaves a
        # copy that is fetched again whole)
        _replace_small(f"{path}.url", url.encode("utf-8"))
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _replace_small(path: str, data: bytes) -> None:
    """Write a small file whole or not at all."""
    temporary = f"{path}.part"
    with open(temporary, "wb") as f:
        f.write(data)
    os.replace(temporary, path)


def kept_copy(saved: str, url: str) -> float | None:
    """
    The time of the kept copy C{saved} when it is C{url}'s (the URL it was
    fetched from is kept beside it), or L{None}: none, or another URL's
    (in the thread pool).
    """
    try:
        with open(f"{saved}.url", "rb") as f:
            if f.read(4096).decode("utf-8", "replace") != url:
                return None
        return os.stat(saved).st_mtime
    except OSError:
        return None

