"""
A notice: something happened, told to whoever asked to hear of it.

It breaks a cycle of construction: the upstream cache tells that it learnt
something and the snapshot writer saves soon, yet neither is built knowing
the other. The composition gives one L{Notice} to both.
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
