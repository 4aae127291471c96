"""
One table of entries kept within a budget of bytes, the least recently
used forgotten first: the bookkeeping of every memory that keeps what it
can afford and renders or fetches the rest again (rendered pages, the
upstream's pages and metadata). A lookup is on the hot path of
C{/simple/<project>/} (L{ByteLRU.touch}, L{ByteLRU.get}): a dict lookup and
an C{OrderedDict.move_to_end}, O(1), and nothing allocated.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import attrs

K = TypeVar("K")
V = TypeVar("V")

# (what L{ByteLRU._shrink} spares when nothing is to be spared)
_NOTHING = object()


def _budget(_instance: object, _attribute: object, value: int) -> None:
    """Refuse a negative budget (0 keeps nothing)."""
    if value < 0:
        raise ValueError(f"a budget must be 0 bytes or more, not {value}")


@attrs.define(eq=False)
class ByteLRU(Generic[K, V]):
    """
    Values by key, each with its cost in bytes, within C{max_bytes} in all
    (and C{max_entries} entries, if given): past either, the entries least
    recently used go first, each told to C{on_evict}.

    Entries are kept in C{tiers} orders: an entry of a later tier goes only
    after every entry of the earlier ones (the upstream cache keeps the
    pages of projects whose files it holds past every other page).

    L{put}, L{get} and L{touch} mark an entry used; L{peek} does not, for
    a table that forgets its oldest written rather than used.

    @ivar max_entries: the most entries kept, or L{None} for no count cap.
    @ivar on_evict: C{on_evict(key, value)}, called for every entry the
        budget evicts (not for one L{pop}ped or replaced); or L{None}.
    @ivar tiers: how many orders of eviction there are (1 and up).
    """

    _max_bytes: int = attrs.field(validator=_budget, alias="max_bytes")
    max_entries: int | None = attrs.field(default=None, kw_only=True)
    on_evict: Callable[[K, V], object] | None = attrs.field(default=None, kw_only=True)
    tiers: int = attrs.field(default=1, kw_only=True, validator=attrs.validators.ge(1))
    # one OrderedDict per tier, least recently used first: key -> (value, cost)
    _orders: tuple[OrderedDict[K, tuple[V, int]], ...] = attrs.field(init=False)
    _bytes: int = attrs.field(default=0, init=False)

    @_orders.default
    def _make_orders(self) -> tuple[OrderedDict[K, tuple[V, int]], ...]:
        return tuple(OrderedDict() for _ in range(self.tiers))

    # -- reading -------------------------------------------------------------

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value kept under C{key}, marked used, or C{default}."""
        for order in self._orders:
            kept = order.get(key)
            if kept is not None:
                order.move_to_end(key)
                return kept[0]
        return default

    def peek(self, key: K, default: V | None = None) -> V | None:
        """The value kept under C{key}, or C{default}, without marking it used."""
        for order in self._orders:
            kept = order.get(key)
            if kept is not None:
                return kept[0]
        return default

    def touch(self, key: K) -> bool:
        """Mark C{key} used (if kept); whether it is kept."""
        orders = self._orders
        try:
            # (the first tier at once: the hot path, where there is only one)
            orders[0].move_to_end(key)
            return True
        except KeyError:
            pass
        for order in orders[1:]:
            if key in order:
                order.move_to_end(key)
                return True
        return False

    def __len__(self) -> int:
        orders = self._orders
        return len(orders[0]) if len(orders) == 1 else sum(len(order) for order in orders)

    def __contains__(self, key: object) -> bool:
        return any(key in order for order in self._orders)

    def __iter__(self) -> Iterator[K]:
        """The keys, the next to be evicted first (tier by tier)."""
        return itertools.chain.from_iterable(self._orders)

    def items(self) -> Iterator[tuple[K, V]]:
        """The keys and values, the next to be evicted first (tier by tier)."""
        return ((key, value) for order in self._orders for key, (value, _) in order.items())

    @property
    def bytes(self) -> int:
        """The cost of every entry kept, together (within L{max_bytes} but for a kept one)."""
        return self._bytes

    @property
    def max_bytes(self) -> int:
        """The budget; setting it (a reload) evicts down to it at once."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, size: int) -> None:
        _budget(self, None, size)
        self._max_bytes = size
        self._shrink(_NOTHING)

    # -- changing ------------------------------------------------------------

    def put(self, key: K, value: V, cost: int, *, tier: int = 0, keep: bool = False,
            move: bool = True) -> None:
        """
        Keep C{value} under C{key}, counted C{cost} bytes (in place of what
        was kept under C{key}), then evict until within the budget.

        @param keep: never evict this entry now, however much it costs
            (its caller is about to serve it); without it, an entry that
            alone costs more than the whole budget is evicted at once (told
            to C{on_evict}), and no other is.
        @param move: whether an entry already kept in C{tier} becomes the
            most recently used; without it, it keeps its place.
        """
        if cost < 0:
            raise ValueError(f"a cost must be 0 bytes or more, not {cost}")
        order = self._orders[tier]
        for found in self._orders:
            kept = found.get(key)
            if kept is not None:
                self._bytes -= kept[1]
                if move or found is not order:
                    del found[key]
                break
        if cost > self._max_bytes and not keep:
            order.pop(key, None)
            if self.on_evict is not None:
                self.on_evict(key, value)
            return
        order[key] = (value, cost)
        self._bytes += cost
        self._shrink(key if keep else _NOTHING)

    def retier(self, key: K, tier: int) -> None:
        """Move C{key} (if kept in another tier) to the end of C{tier}: used last there."""
        order = self._orders[tier]
        if key in order:
            return
        for found in self._orders:
            kept = found.pop(key, None)
            if kept is not None:
                order[key] = kept
                return

    def pop(self, key: K, default: V | None = None) -> V | None:
        """Forget C{key} (not an eviction: C{on_evict} is not told); its value, or C{default}."""
        for order in self._orders:
            kept = order.pop(key, None)
            if kept is not None:
                self._bytes -= kept[1]
                return kept[0]
        return default

    def clear(self) -> None:
        """Forget every entry (not evictions: C{on_evict} is not told)."""
        for order in self._orders:
            order.clear()
        self._bytes = 0

    def _shrink(self, spared: object) -> None:
        """Evict the least recently used entries, never C{spared}, until within the caps."""
        limit = self.max_entries
        while self._bytes > self._max_bytes or (limit is not None and len(self) > limit):
            victim = self._oldest(spared)
            if victim is None:
                return
            value, cost = victim[0].pop(victim[1])
            self._bytes -= cost
            if self.on_evict is not None:
                self.on_evict(victim[1], value)

    def _oldest(self, spared: object) -> tuple[OrderedDict[K, tuple[V, int]], K] | None:
        """The order and key of the entry to evict first, other than C{spared}."""
        for order in self._orders:
            for key in order:
                if key is not spared and key != spared:
                    return order, key
                # (at most two looks an order: only one key is spared)
        return None
