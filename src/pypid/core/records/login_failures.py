"""
Failed logins, and other refusals anyone can cause without credentials,
folded into a bounded number of audit entries a minute (L{LoginFailures}),
so that a flood cannot fill the disk.
"""

from __future__ import annotations

import attrs

from pypid.core.records.audit_chain import REFUSED, Entry, format_time, text
from pypid.core.records.change_kinds import ChangeKind

LOGIN_WINDOW = 60.0

#: The most distinct keys written one by one in a window; failures past it
#: are folded into one entry per event and outcome.
MAX_LOGIN_KEYS = 50

#: What a folded entry's C{detail} starts with.
REPEATS = "repeats within the minute"


#: What failed logins are folded by: C{(event, outcome, user, token, address, detail)}.
_LoginKey = tuple[str, str, str | None, str | None, str | None, str | None]


@attrs.define
class LoginFailures:
    """
    Folds failed and throttled logins, and the token exchange's refusals.

    In each minute, the first failure of a key is an entry at once, and its
    repeats one more entry with their C{count} when the minute ends; past
    L{MAX_LOGIN_KEYS} keys, further failures are one entry per event and
    outcome. So a minute writes at most C{2 * max_keys + k} entries (C{k}
    the pairs of event and outcome folded), whatever arrives.

    A folded entry's time is when it is made (the minute's end, or the
    stop), so a writer's entries come in the order of their times, and a
    day's file holds that day's entries.
    """

    window: float = LOGIN_WINDOW
    max_keys: int = MAX_LOGIN_KEYS
    _start: float | None = None
    # key -> repeats
    _repeats: dict[_LoginKey, int] = attrs.field(factory=dict)
    # (event, outcome) -> count
    _overflow: dict[tuple[str, str], int] = attrs.field(factory=dict)

    def add(self, now: float, event: ChangeKind, user: str | None, address: str | None,
            token: str | None = None, outcome: str = REFUSED,
            detail: str | None = None) -> list[Entry]:
        """
        Count one failure at C{now}; C{detail} is its reason, if any. Returns
        the entries to write now (a window's that ended, a key's first).
        """
        due = self.due(now)
        if self._start is None:
            self._start = now - now % self.window
        # (cut as the entry would cut it: a reason longer than a field is one key)
        detail = text(detail)
        key = (event, outcome, user, token, address, detail)
        repeats = self._repeats.get(key)
        if repeats is not None:
            self._repeats[key] = repeats + 1
        elif len(self._repeats) < self.max_keys:
            self._repeats[key] = 0
            due.append(Entry(time=format_time(now), event=event, outcome=outcome, user=user,
                             token=token, address=address, detail=detail))
        else:
            self._overflow[event, outcome] = self._overflow.get((event, outcome), 0) + 1
        return due

    def ends_at(self) -> float | None:
        """When the current window ends, or L{None} when nothing is counted."""
        return self._start + self.window if self._start is not None else None

    def due(self, now: float) -> list[Entry]:
        """The entries of the window, if it ended by C{now} (and it is forgotten)."""
        end = self.ends_at()
        if end is None or now < end:
            return []
        return self.drain(now)

    def drain(self, now: float) -> list[Entry]:
        """The entries of the window at C{now}, ended early (at a stop) or on time."""
        entries: list[Entry] = []
        when = format_time(now)
        for (event, outcome, user, token, address, detail), repeats in self._repeats.items():
            if repeats:
                entries.append(Entry(time=when, event=event, outcome=outcome, user=user,
                                     token=token, address=address, count=repeats,
                                     detail=f"{REPEATS}: {detail}" if detail else REPEATS))
        for (event, outcome), count in self._overflow.items():
            entries.append(Entry(time=when, event=event, outcome=outcome, count=count,
                                 detail=f"more than {self.max_keys} distinct users and "
                                        "addresses within the minute"))
        self._start = None
        self._repeats.clear()
        self._overflow.clear()
        return entries
