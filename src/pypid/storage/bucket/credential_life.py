"""
The life of a store client's credentials, alike on every cloud: a refresh
ahead of their expiry (tried again every 30 s after a failure, logged),
and the starts and stops of several storages sharing one client.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

#: How long after a failed refresh it is tried again, and the least delay
#: before any refresh.
RETRY = 30.0


class AheadRefresh:
    """
    Calls C{refresh} again C{ahead} seconds before the expiry it was
    L{schedule}d for, until L{stop}ped; C{what} names it in the log.
    """

    def __init__(self, clock: IReactorTime, refresh: Callable[[], Coroutine[Any, Any, None]],
                 ahead: float, what: str) -> None:
        self._clock = clock
        self._refresh = refresh
        self._ahead = ahead
        self._what = what
        self._timer: IDelayedCall | None = None
        self.stopped = False

    def schedule(self, expiry: float | None) -> None:
        """Refresh ahead of C{expiry} (POSIX time; L{None}: never)."""
        if expiry is None or self.stopped:
            return
        delay = max(expiry - self._ahead - self._clock.seconds(), RETRY)
        self._timer = self._clock.callLater(delay, self._due)

    def stop(self) -> None:
        """No more refreshes (one under way schedules no other)."""
        self.stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def restart(self) -> None:
        """Refresh again from now on (after a L{stop}: a storage started again)."""
        self.stop()
        self.stopped = False

    def _due(self) -> None:
        self._timer = None

        def failed(failure: Failure) -> None:
            log.warn("Cannot refresh {what}: {error}; retrying in 30 s", what=self._what,
                     error=failure.getErrorMessage())
            if not self.stopped:
                self._timer = self._clock.callLater(RETRY, self._due)
        ensureDeferred(self._refresh()).addErrback(failed)


class Startable(Protocol):
    """A client's credentials, which a client starts and stops."""

    async def start(self) -> None:
        """Find the credentials."""

    def stop(self) -> None:
        """Stop refreshing them."""


class SharedStarts:
    """
    The starts and stops of one client's credentials: when C{shared} by
    several storages (the indexes on one bucket), the first start finds them
    and the last stop ends their refresh, so one index stopping first leaves
    the others signing with fresh ones.
    """

    def __init__(self, credentials: Startable, shared: bool) -> None:
        self._credentials = credentials
        self._shared = shared
        self._users = 0

    async def start(self) -> None:
        """Find the credentials (once, when shared)."""
        self._users += 1
        if self._shared and self._users > 1:
            return
        try:
            await self._credentials.start()
        except BaseException:
            self._users -= 1
            raise

    def stop(self) -> None:
        """Stop refreshing them (after the last user, when shared)."""
        self._users = max(self._users - 1, 0)
        if not self._shared or not self._users:
            self._credentials.stop()
