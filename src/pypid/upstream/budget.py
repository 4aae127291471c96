"""
How often one client address may make pypid ask the upstream.

A request for a project or file the cache does not hold costs an upstream
request, and the names are the client's to choose: without a limit, one
anonymous client could send the upstream as many requests as it sends
pypid (and, before "no such project" answers were kept apart, push every
cached page out). Each address has a budget of C{[upstream]
max_misses_per_address} such requests a minute, refilled steadily, so a
burst of that size (a cold C{pip install} of a large lock file) passes at
once. Requests the cache answers cost nothing.

Pure bookkeeping: the time is passed in.
"""

from __future__ import annotations

from pypid.core.util.bounded import put_newest

#: The most addresses remembered; past it the oldest are forgotten (which
#: only gives them a full budget again).
MAX_ADDRESSES = 10000

#: The budget is refilled over this many seconds.
PERIOD = 60.0


class MissBudget:
    """
    A token bucket per client address.

    @ivar refused: requests refused, for C{/metrics}.
    """

    def __init__(self, per_minute: int) -> None:
        self._size = float(per_minute)
        self._rate = per_minute / PERIOD
        # address -> (tokens, when counted), least recently charged first
        self._buckets: dict[str | None, tuple[float, float]] = {}
        self.refused = 0

    def charge(self, address: str | None, now: float) -> float | None:
        """
        Take one request from C{address}'s budget at C{now} (seconds).

        @return: L{None} when it may go on, otherwise the seconds until it may.
        """
        tokens, then = self._buckets.pop(address, (self._size, now))
        tokens = min(self._size, tokens + max(now - then, 0.0) * self._rate)
        if tokens < 1.0:
            self._buckets[address] = (tokens, now)
            self.refused += 1
            return (1.0 - tokens) / self._rate
        put_newest(self._buckets, address, (tokens - 1.0, now), MAX_ADDRESSES)
        return None
