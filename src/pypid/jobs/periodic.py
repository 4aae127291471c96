"""
One periodic job (L{Periodic}): the loop eight parts wrote by hand, written
once, with the promises each needs and some lacked:

  - one run at a time: a run longer than the interval delays the next,
    never overlaps it (a save or a purge is not started twice);
  - a failure is logged, with what the job is, and the loop goes on (a
    storage out of reach for a while does not end the saves);
  - stopping cancels what is to come and waits for the run in flight, so
    that what the job writes is written before the storage closes;
  - the first run comes after C{first} seconds: at once (C{0}), after an
    interval (L{None}, the default), or after its own delay.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

log = Logger()


class Periodic(Service):
    """
    Runs C{job} every C{interval} seconds while the part runs.

    @ivar what: what the job is, for the log (C{"The snapshot's save"}).
    @ivar runs: how many runs ended, failed ones included.
    """

    def __init__(self, job: Callable[[], object], interval: float, clock: IReactorTime,
                 what: str, first: float | None = None) -> None:
        """
        @param job: C{job()}, which may return a L{Deferred} or a coroutine
            (then its run ends when that does: a coroutine function is a job).
        @param interval: seconds from the start of a run to the start of the
            next (or its end, when it took longer).
        @param first: seconds from the start of the part to the first run;
            L{None}: C{interval}.
        """
        if not interval > 0:
            raise ValueError(f"{what}: the interval must be greater than 0")
        self._job = job
        self.interval = interval
        self.clock = clock
        self.what = what
        self._first = interval if first is None else first
        self._next: IDelayedCall | None = None
        self._running: Deferred[None] | None = None
        self.runs = 0

    def startService(self) -> None:
        """Begin: the first run now (C{first} of 0), or later."""
        Service.startService(self)
        if self._first:
            self._schedule(self._first)
        else:
            self._start_run()

    def stopService(self) -> Deferred[None]:
        """Cancel the next run; fire once the run in flight (if any) ended."""
        Service.stopService(self)
        self._cancel_next()
        if self._running is None:
            return succeed(None)
        return self._chain(self._running)

    def run_now(self) -> Deferred[None]:
        """
        Run the job now (or join the run under way); the next comes an
        interval after this one's start. Fires when it ended; never fails.
        """
        return self._chain(self._start_run())

    def _start_run(self) -> Deferred[None]:
        """The run under way, or a new one (L{run_now}); fires with L{None} as it ends."""
        if self._running is not None:
            return self._running
        self._cancel_next()
        started = self.clock.seconds()
        # (a job may raise, return a Deferred or a coroutine, or return at once)
        d: Deferred[object] = maybeDeferred(self._job)
        running = self._running = Deferred()
        d.addErrback(lambda f: log.failure("{what} failed", f, what=self.what))
        d.addBoth(lambda _: self._ended(started, running))
        return running

    def _chain(self, running: Deferred[None]) -> Deferred[None]:
        """A L{Deferred} that fires with L{None} when C{running} does."""
        done: Deferred[None] = Deferred()

        def fire(result: object) -> object:
            done.callback(None)
            return result
        running.addBoth(fire)
        return done

    def _ended(self, started: float, running: Deferred[None]) -> None:
        self._running = None
        self.runs += 1
        if self.running:
            self._schedule(max(0.0, started + self.interval - self.clock.seconds()))
        running.callback(None)

    def _cancel_next(self) -> None:
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None

    def _schedule(self, delay: float) -> None:
        def due() -> None:
            self._next = None
            self._start_run()
        self._next = self.clock.callLater(delay, due)
