"""
A job run once at a time for any number of callers (L{Coalesced}): a
caller waits for a run that began after its call, so that what was there
when it asked is seen; callers that come during a run share the next one.
A worker's catch-up with its machine's changes and the look at an upstream
cache the workers share both need this: a burst of requests costs one look.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, maybeDeferred


class Coalesced:
    """C{job()} run once at a time; each call fires after a run begun after it."""

    def __init__(self, job: Callable[[], Deferred[object]]) -> None:
        """@param job: C{job() -> Deferred}; what it fires with, or fails with, is not kept."""
        self._job = job
        self._busy = False
        self._waiting: list[Deferred[None]] = []

    def __call__(self) -> Deferred[None]:
        """Fire (with L{None}, never failing) once a run begun after now has ended."""
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        if not self._busy:
            self._start()
        return d

    def _start(self) -> None:
        waiting, self._waiting = self._waiting, []
        self._busy = True

        def done(_: object) -> None:
            self._busy = False
            for d in waiting:
                d.callback(None)
            if self._waiting:
                self._start()
        # (a job that raises at once ends its run as one that fails)
        maybeDeferred(self._job).addBoth(done)
