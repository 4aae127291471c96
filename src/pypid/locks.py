"""
Serialising work per key (a distribution): one L{DeferredLock} per key in
use, dropped as soon as nobody holds or waits for it, so the table stays as
small as the work in flight.
"""

from twisted.internet.defer import DeferredLock


class KeyedLock:
    """Runs coroutines one at a time per key, and concurrently across keys."""

    def __init__(self):
        self._locks = {}

    def __len__(self):
        return len(self._locks)

    async def run(self, key, f, *args):
        """
        Await C{f(*args)} once no other call with the same key is running.

        @return: what C{f(*args)} returned.
        """
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = DeferredLock()
        await lock.acquire()
        try:
            return await f(*args)
        finally:
            lock.release()
            # A waiter may have run to its end inside release() and dropped
            # the lock already, or a new one may stand under the key.
            if not lock.locked and not lock.waiting and self._locks.get(key) is lock:
                del self._locks[key]
