"""
Turns for the downloads of upstream files: at most so many at once, and at
most so many bytes reserved by them together.

A download writes to a temporary file in the cache storage's folder until
its bytes are checked, so the downloads under way decide how much disk the
cache may take beyond what it keeps: four requests for files whose pages
claimed a terabyte once put 4 GB in that folder. Each download reserves,
before it starts, the most it may write (the size its page gives, or
C{[upstream] max_file_size} when the page gives none), and waits its turn
while the reservations would pass C{[upstream] download_space} or the
downloads would pass C{[upstream] max_downloads}. Turns are given in the
order asked, so a large file is not overtaken for ever by small ones.

Pure bookkeeping over Deferreds: no clock, no I/O.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred, succeed


class Admission:
    """
    Counts downloads and their reserved bytes.

    @ivar running: the downloads holding a turn.
    @ivar reserved: the bytes they reserved, together.
    """

    def __init__(self, count: int, space: int) -> None:
        """
        @param count: the most downloads at once.
        @param space: the most bytes reserved at once; a single reservation
            larger than this is refused by the caller beforehand
            (C{max_file_size} is at most C{download_space}, checked when the
            configuration is read).
        """
        self._count = count
        self._space = space
        self._waiting: deque[tuple[Deferred[None], int]] = deque()
        self.running = 0
        self.reserved = 0

    @property
    def waiting(self) -> int:
        """How many downloads wait for a turn."""
        return len(self._waiting)

    def acquire(self, size: int) -> Deferred[None]:
        """
        A turn for a download that may write C{size} bytes.

        @return: a L{Deferred} firing (with L{None}) once the turn is given;
            cancelling it gives up the place in the queue.
        """
        size = min(size, self._space)
        if not self._waiting and self._fits(size):
            self._take(size)
            return succeed(None)

        def cancel(d: Deferred[None]) -> None:
            try:
                self._waiting.remove((d, size))
            except ValueError:
                pass
        d: Deferred[None] = Deferred(cancel)
        self._waiting.append((d, size))
        return d

    def release(self, size: int) -> None:
        """A download that held a turn for C{size} bytes ended."""
        self.running -= 1
        self.reserved -= min(size, self._space)
        while self._waiting and self._fits(self._waiting[0][1]):
            d, size = self._waiting.popleft()
            self._take(size)
            d.callback(None)

    def _fits(self, size: int) -> bool:
        return self.running < self._count and self.reserved + size <= self._space

    def _take(self, size: int) -> None:
        self.running += 1
        self.reserved += size
