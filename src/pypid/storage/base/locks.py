"""
Serialising changes to stored files per key (a distribution): one
L{DeferredLock} per key in use, dropped once nobody holds or waits for it.
The snapshot writer dates a save by L{KeyedLock.oldest}, so the publishing
area and the writer share one table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from twisted.internet.defer import DeferredLock
from twisted.internet.interfaces import IReactorTime

_T = TypeVar("_T")


class KeyedLock:
    """
    Runs coroutines one at a time per key, and concurrently across keys;
    with a C{clock}, when each began is kept for L{oldest}.
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
        """Await C{f(*args)} once no other call with the same key is running."""
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
