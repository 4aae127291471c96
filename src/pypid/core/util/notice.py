"""
A notice: something happened, told to whoever asked to hear of it.

It breaks a cycle of construction without completing an object from
outside: the upstream cache tells that it learnt something (a page fetched,
a file kept) and the snapshot writer saves soon, yet neither is built
knowing the other. The composition makes one L{Notice} and gives it to
both: the cache calls it, the writer listens to it from its own
constructor.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs


@attrs.define
class Notice:
    """Calls every listener, in the order they listened, when called."""

    _listeners: list[Callable[[], None]] = attrs.field(factory=list)

    def listen(self, listener: Callable[[], None]) -> None:
        """Call C{listener()} at every notice from now on."""
        self._listeners.append(listener)

    def __call__(self) -> None:
        """Tell every listener."""
        for listener in self._listeners:
            listener()
