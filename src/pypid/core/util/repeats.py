"""
Events a client can cause by the thousand, told in a bounded number of
log lines: the first of a key (a client's address) at once, its repeats
as one count a window (a minute) later.
"""

from __future__ import annotations

import attrs

#: Seconds between two lines of one key.
REPEATS_WINDOW = 60.0


@attrs.frozen
class Summary:
    """The repeats of one key over a window, to be told in one line."""

    key: str
    #: events since the key's last line
    count: int
    #: seconds since the key's last line
    seconds: float


@attrs.define
class Repeats:
    """
    Counts events by key: L{add} says whether an event is to be told at
    once (the key's first in a window), L{due} gives what is to be told of
    the rest once the window has passed. A key with no event in a whole
    window is forgotten, so only the keys of recent events are kept.
    """

    window: float = REPEATS_WINDOW
    # key -> (when its last line was told, events since)
    _keys: dict[str, tuple[float, int]] = attrs.field(factory=dict, init=False)

    def add(self, key: str, now: float) -> bool:
        """Count an event of C{key} at C{now}; whether it is to be told at once."""
        seen = self._keys.get(key)
        if seen is None:
            self._keys[key] = (now, 0)
            return True
        self._keys[key] = (seen[0], seen[1] + 1)
        return False

    def due(self, now: float) -> list[Summary]:
        """
        The keys whose window has passed by C{now} with events in it, each
        to be told in one line (a window starts for each then); the keys
        whose window passed with none are forgotten.
        """
        summaries = []
        for key, (since, count) in list(self._keys.items()):
            if now - since < self.window:
                continue
            if count:
                summaries.append(Summary(key, count, now - since))
                self._keys[key] = (now, 0)
            else:
                del self._keys[key]
        return summaries
