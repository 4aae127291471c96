"""
Serialising changes to stored files per key (a distribution): one
L{DeferredLock} per key in use, dropped as soon as nobody holds or waits for
it, so the table stays as small as the work in flight. Since when the oldest
change has been under way (L{KeyedLock.oldest}) is what the snapshot writer
dates a save by, so one lock table is given to both the publishing area and
the writer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from twisted.internet.defer import DeferredLock
from twisted.internet.interfaces import IReactorTime

_T = TypeVar("_T")


class KeyedLock:
    """
    Runs coroutines one at a time per key, and concurrently across keys.

    @ivar _clock: provides C{seconds()}: when each call began is kept, so
        L{oldest} can say since when work has been under way.
    """

    def __init__(self, clock: IReactorTime | None = None) -> None:
        self._locks: dict[Hashable, DeferredLock] = {}
        self._clock = clock
        self._begun: dict[object, float] = {}

    def __len__(self) -> int:
        return len(self._locks)

    def oldest(self) -> float | None:
        """When the oldest call still waiting or running began, or L{None}."""
        return min(self._begun.values(), default=None)

    async def run(self, key: Hashable, f: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """
        Await C{f(*args)} once no other call with the same key is running.

        @return: what C{f(*args)} returned.
        """
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = DeferredLock()
        token = object()
        if self._clock is not None:
            self._begun[token] = self._clock.seconds()
        try:
            await lock.acquire()
        except BaseException:
            self._begun.pop(token, None)
            raise
        try:
            return await f(*args)
        finally:
            self._begun.pop(token, None)
            lock.release()
            # A waiter may have run to its end inside release() and dropped
            # the lock already, or a new one may stand under the key.
            if not lock.locked and not lock.waiting and self._locks.get(key) is lock:
                del self._locks[key]
