"""
How trusted publishing's bounded tables (live minted tokens, remembered
C{jti}s) are shared between publishers, and how fast one may mint.

A full table refuses everyone, so without a share one repository minting
from eleven branches took all 10,000 places in 29 to 49 s, and every other
publisher had 503 for fifteen minutes. L{TableShares} refuses the heaviest
holders first: a publisher may take a place only while it holds fewer
than the places still free. Alone it stops at half the table; n together
leave about C{limit / (n + 1)} free, so a publisher holding nothing gets a
place until the table is really full. L{MintRate} bounds how fast one
publisher mints, which no table does once tokens are burned as soon as
used (uv does): each mint is an audit entry written to disk.
"""

from __future__ import annotations

import attrs

from pypid.core.util.bounded import put_newest


@attrs.define
class TableShares:
    """
    Who holds the places of a bounded table, counted by owner.

    @ivar limit: the table's places.
    @ivar per_owner: the most places one owner may hold, whatever is free.
    """

    limit: int
    per_owner: int
    _held: dict[str, int] = attrs.field(factory=dict)
    #: the places held, all owners together
    total: int = 0

    def held(self, owner: str) -> int:
        """How many places C{owner} holds."""
        return self._held.get(owner, 0)

    @property
    def full(self) -> bool:
        """Whether no place is free."""
        return self.total >= self.limit

    def over_share(self, owner: str) -> bool:
        """Whether C{owner} may not take a place: it holds C{per_owner}, or as many as are free."""
        held = self.held(owner)
        return held >= self.per_owner or held >= self.limit - self.total

    def take(self, owner: str) -> None:
        """Count one more place held by C{owner} (the caller checked there is room)."""
        self._held[owner] = self._held.get(owner, 0) + 1
        self.total += 1

    def give_back(self, owner: str) -> None:
        """Count one place of C{owner}'s freed."""
        held = self._held.pop(owner, 0)
        if held:
            if held > 1:
                self._held[owner] = held - 1
            self.total -= 1

    def clear(self) -> None:
        """Every place freed."""
        self._held.clear()
        self.total = 0


#: The most publishers whose rate is remembered; past it the one that minted
#: longest ago is forgotten (which only gives it its whole burst again).
MAX_RATED = 10_000


@attrs.define
class MintRate:
    """A token bucket per publisher: C{burst} mints at once, then one every C{every} seconds."""

    burst: float
    every: float
    # owner -> (mints left, when counted), the one charged longest ago first
    _buckets: dict[str, tuple[float, float]] = attrs.field(factory=dict)

    def _left(self, owner: str, now: float) -> float:
        left, then = self._buckets.get(owner, (self.burst, now))
        return min(self.burst, left + max(now - then, 0.0) / self.every)

    def wait(self, owner: str, now: float) -> float:
        """The seconds until C{owner} may mint (0: it may now)."""
        left = self._left(owner, now)
        return 0.0 if left >= 1.0 else (1.0 - left) * self.every

    def charge(self, owner: str, now: float) -> None:
        """Count one mint of C{owner} (the caller checked L{wait})."""
        put_newest(self._buckets, owner, (self._left(owner, now) - 1.0, now), MAX_RATED)
