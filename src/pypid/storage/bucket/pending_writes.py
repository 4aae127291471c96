"""
The writes a storage leaves running in the background, which a clean stop
waits for: one lost is a change the others learn late, or a start that
lists the whole bucket.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import attrs
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred

_T = TypeVar("_T")


@attrs.define
class PendingWrites:
    """The background writes not finished yet."""

    _pending: set[Deferred[Any]] = attrs.field(factory=set, init=False)

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Deferred[Any]:
        """Run C{coroutine}, waited for by L{settle}; its Deferred fires with L{None}."""
        d = ensureDeferred(coroutine)
        self._pending.add(d)
        d.addBoth(lambda _: self._pending.discard(d))
        return d

    def track(self, d: Deferred[_T]) -> Deferred[_T]:
        """Have L{settle} wait for C{d}, whose result (or failure) is passed on."""
        self._pending.add(d)

        def done(result: Any) -> Any:
            self._pending.discard(d)
            return result
        return d.addBoth(done)

    def settle(self) -> Deferred[Any]:
        """A L{Deferred} that fires once the writes under way now are done."""
        return DeferredList(list(self._pending))
