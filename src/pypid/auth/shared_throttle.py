"""
A login throttle's counts across the workers of a machine
(L{ThrottleShare}): each worker announces on the machine's lane
(L{pypid.machine.topic_table.LANED}: a ring that no other announcement
fills) every check of credentials it begins
and how each ended (failed, succeeded, abandoned), and a password reset's
forgiveness; every other worker takes them into its own counts before its
next answer (L{pypid.auth.throttle.LoginThrottle.sync}). So a password
spray spread over the workers meets the limits one process sets: the
failures are the machine's, and so are the checks under way, which each
hold one of the failures still allowed.

A check another worker began counts as under way until that worker says
how it ended, or for L{PENDING_TTL} seconds at most (a worker that ended
in the middle of it says nothing more).

A worker that starts (at the machine's start after the first, or again
after a crash) takes in first what the lane still keeps of the others'
events, and of its own number's before it: the failures made before it
ran count on it too, each at the time it was made.

An announcement names the throttle (the logins', the token exchange's),
then C{[event, user, client, guessable, time]}
with the client as counted (its IPv6 prefix taken); a user name too long
for a slot is counted by its digest, in every worker alike.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager

import attrs

from pypid.machine.topic_table import LANE_SLOTS
from pypid.machine.topics import Hub, Topic

#: Seconds a check another worker began counts as under way without news.
PENDING_TTL = 120.0

#: The events: a check began, failed, succeeded, was abandoned; users forgiven.
STARTED, FAILED, SUCCEEDED, ABANDONED, FORGIVEN = "s", "f", "g", "a", "r"

#: The longest user name (and client) an announcement carries as it is, in
#: bytes as its JSON writes it: two, and the rest of an event, fit a slot
#: of the lane (L{pypid.machine.topic_table.LANE_SLOT_SIZE}).
_LONGEST_NAME = 400


@attrs.frozen
class Event:
    """
    One event of another worker's throttle.

    @ivar worker: the worker's number.
    @ivar kind: L{STARTED}, L{FAILED}, L{SUCCEEDED}, L{ABANDONED} or L{FORGIVEN}.
    @ivar user: the user (a name, a token's id, L{None}; L{FORGIVEN}: a
        user whose password was set again).
    @ivar client: the client as counted, or L{None}.
    @ivar guessable: whether the credentials were a password.
    @ivar at: when it happened (POSIX time); L{None} from a worker of
        before the time was told.
    """

    worker: int
    kind: str
    user: str | None
    client: str | None
    guessable: bool
    at: float | None = None


def counted_user(user: str | None) -> str | None:
    """
    The name a throttle counts C{user} (or a client) by: itself, or (past
    L{_LONGEST_NAME} bytes, as an announcement's JSON writes it: a control
    character takes six) its digest, so that every worker counts a long
    name alike.
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
    """
    One throttle's events, told to and taken from the other workers.
    """

    _hub: Hub
    _name: bytes
    # (events no look took in, as many as the lane holds: a look that fell
    # further behind loses the oldest, as a restart would lose them)
    _told: deque[Event] = attrs.field(init=False, factory=lambda: deque(maxlen=LANE_SLOTS))

    def __attrs_post_init__(self) -> None:
        self._hub.on(Topic.THROTTLE, self._heard, past=True)

    def _heard(self, fields: Sequence[bytes], worker: int) -> None:
        if fields[0] != self._name:
            return
        try:
            kind, user, client, guessable, *rest = json.loads(fields[1])
            at = float(rest[0]) if rest else None
        except (ValueError, TypeError):
            return
        self._told.append(Event(worker, kind, user, client, bool(guessable), at))

    def held(self) -> AbstractContextManager[None]:
        """The lane held: a look at the others' events, then this worker's, with none between."""
        return self._hub.held(Topic.THROTTLE)

    def tell(self, kind: str, user: str | None, client: str | None, guessable: bool,
             at: float) -> None:
        """Announce one event of this worker's, which happened at C{at}."""
        self._hub.publish(Topic.THROTTLE, self._name,
                          _json([kind, user, client, guessable, round(at, 3)]))

    def taken(self) -> Iterator[Event]:
        """The other workers' events of this throttle since the last look, in order."""
        self._hub.take()
        while self._told:
            yield self._told.popleft()
