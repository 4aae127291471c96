"""
A login throttle's counts across the workers of a machine (L{ThrottleShare}):
each worker announces on the machine's lane (a ring no other announcement
fills) every check of credentials it begins, how each ended, and a password
reset's forgiveness; every other worker takes them into its own counts before
its next answer and at each of its reads of the lane meanwhile, never queued
for a look an idle worker may not make. So a password spray spread over the
workers meets the limits one process sets.

A check another worker began counts as under way until that worker says how it
ended, or for L{PENDING_TTL} seconds at most. A worker that starts takes in
first what the lane still keeps of the others' events, each at its time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import attrs

from pypid.machine.topics import Hub, Topic

#: Seconds a check another worker began counts as under way without news.
PENDING_TTL = 120.0

#: The events: a check began, failed, succeeded, was abandoned; users forgiven.
STARTED, FAILED, SUCCEEDED, ABANDONED, FORGIVEN = "s", "f", "g", "a", "r"
_KINDS = frozenset({STARTED, FAILED, SUCCEEDED, ABANDONED, FORGIVEN})

#: The longest user name (and client) an announcement carries as it is, in
#: bytes as its JSON writes it: two, and the rest of an event, fit a slot
#: of the lane (L{pypid.machine.topic_table.LANE_SLOT_SIZE}).
_LONGEST_NAME = 400


@attrs.frozen
class Event:
    """
    One event of another worker's throttle.

    @ivar kind: L{STARTED}, L{FAILED}, L{SUCCEEDED}, L{ABANDONED} or L{FORGIVEN}.
    @ivar user: the user (a name, a token's id, L{None}; L{FORGIVEN}: a
        user whose password was set again).
    @ivar at: when it happened (POSIX time); L{None}: not told.
    """

    worker: int
    kind: str
    user: str | None
    client: str | None
    guessable: bool
    at: float | None = None


def counted_user(user: str | None) -> str | None:
    """
    The name a throttle counts C{user} (or a client) by: itself, or its digest
    past L{_LONGEST_NAME} bytes of JSON (a control character takes six), so
    every worker counts a long name alike.
    """
    if user is None:
        return None
    data = user.encode("utf-8", "surrogatepass")
    if len(data) <= _LONGEST_NAME // 6 or len(_json(user)) <= _LONGEST_NAME:
        return user
    return "#" + hashlib.sha256(data).hexdigest()


def _json(value: object) -> bytes:
    """C{value} as an announcement writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass")


@attrs.define(eq=False)
class ThrottleShare:
    """One throttle's events, told to and taken from the other workers."""

    _hub: Hub
    _name: bytes

    def heard_by(self, take: Callable[[Event], None]) -> None:
        """
        Hand each of the other workers' events of this throttle to
        C{take(event)} as the lane is read: at once those it still keeps from
        before this process, then every later read's, so none waits in memory
        for a look and none falls off while the worker answers nothing. Called
        once, by the throttle the share is of.
        """
        def heard(fields: Sequence[bytes], worker: int) -> None:
            if fields[0] != self._name:
                return
            try:
                kind, user, client, guessable, *rest = json.loads(fields[1])
                at = float(rest[0]) if rest else None
            except (ValueError, TypeError):
                return
            # (what no worker of this code tells is not counted)
            if kind in _KINDS and isinstance(user, str | None) \
                    and isinstance(client, str | None):
                take(Event(worker, kind, user, client, bool(guessable), at))
        self._hub.on(Topic.THROTTLE, heard, past=True)

    def held(self) -> AbstractContextManager[None]:
        """The lane held: a look at the others' events, then this worker's, with none between."""
        return self._hub.held(Topic.THROTTLE)

    def tell(self, kind: str, user: str | None, client: str | None, guessable: bool,
             at: float) -> None:
        """Announce one event of this worker's, which happened at C{at}."""
        self._hub.publish(Topic.THROTTLE, self._name,
                          _json([kind, user, client, guessable, round(at, 3)]))

    def look(self) -> None:
        """Read the lane now: what the other workers told since is handed on (L{heard_by})."""
        self._hub.take()
