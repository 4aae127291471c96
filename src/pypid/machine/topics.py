"""
What the workers of one machine tell each other on the ring (the topics of
L{pypid.machine.topic_table}), and each worker's one reader and writer of
it (L{Hub}). The ring is a doorbell: a worker that wrote the journal rings
it (L{Topic.JOURNAL}), and every other reads the journal before its next
answer (L{pypid.state.catch_up.CatchUp}). The rest of what the workers
share travels on the same ring, a topic each, all in the one table, so
that a new one is a line there and not a new prefix that every reader
must know to skip. The topics of L{LANED} travel on a second ring, the
lane, that nothing else fills. A server of one process has the lone hub
(L{LONE}), which tells nobody and hears nothing, so no module asks
whether there is a ring.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import attrs
from twisted.logger import Logger

from pypid.machine.ring import ChangeRing
from pypid.machine.topic_table import LANED, Topic, decode, tell

log = Logger()

#: Seconds between two reads of the ring by a worker that answers nothing
#: meanwhile, so that it never falls a whole ring behind (2,048
#: announcements in that time: far more than a machine's requests make).
TAKE_EVERY = 0.1

#: C{handler(fields, worker)}: one announcement of another worker's.
Handler = Callable[[Sequence[bytes], int], None]


def _none_yet() -> int:
    """The last announcement of a server of one process: none, ever."""
    return 0


#: One announcement decoded: its topic, its fields, its worker.
_Decoded = tuple[Topic, list[bytes], int]


@attrs.define(eq=False)
class _Cursor:
    """
    One ring as a hub reads it.

    @ivar seen: the last announcement handed to the handlers.
    @ivar born: the last announcement made before the hub was (L{Hub.on}'s C{past}).
    """

    ring: ChangeRing
    seen: int
    born: int
    #: the announcements before the hub, decoded once for every handler of
    #: the past (a ring's whole length: 11 ms a walk), until the first read
    _before: list[_Decoded] | None = None

    @classmethod
    def of(cls, ring: ChangeRing) -> _Cursor:
        """A cursor from the ring's last announcement on."""
        latest = ring.latest()
        return cls(ring, latest, latest)

    def past(self) -> list[_Decoded]:
        """What the ring still keeps of before the hub, decoded."""
        if self._before is None:
            self._before = [(*decoded, announcement.worker)
                            for announcement in self.ring.kept(self.born)
                            if (decoded := decode(announcement.payload)) is not None]
        return self._before

    def look(self) -> list[_Decoded] | None:
        """The other workers' announcements since the last look; L{None}: a whole ring behind."""
        self._before = None
        found, self.seen = self.ring.look(self.seen)
        if found is None:
            return None
        return [(*decoded, announcement.worker) for announcement in found
                if announcement.worker != self.ring.worker
                and (decoded := decode(announcement.payload)) is not None]


@attrs.define(eq=False)
class Hub:
    """One worker's side of the machine's ring (see the module); L{LONE} for one process."""

    _ring: ChangeRing | None
    #: the ring of the topics of L{LANED} (L{None}: they travel on the
    #: ring, as a supervisor of before the lane has it)
    _lane: ChangeRing | None = None
    _handlers: dict[Topic, list[Handler]] = attrs.field(init=False, factory=dict)
    _lost: list[Callable[[], None]] = attrs.field(init=False, factory=list)
    _cursors: dict[ChangeRing, _Cursor] = attrs.field(init=False, factory=dict)
    #: C{latest() -> int}: the number of the machine's last announcement
    #: (one read of memory; alone, 0). The ring's own reader, not a method
    #: that asks it: a worker asks before each request.
    latest: Callable[[], int] = attrs.field(init=False)
    #: the first and last number of this worker's latest run of announcements
    #: on the ring with no other's between them (L{others_since})
    _own: tuple[int, int] = attrs.field(init=False, default=(0, 0))

    def __attrs_post_init__(self) -> None:
        self.latest = self._ring.latest if self._ring is not None else _none_yet
        # (the lane first: a throttle's look takes in its news before the ring's)
        self._cursors = {ring: _Cursor.of(ring) for ring in (self._lane, self._ring)
                         if ring is not None}

    @property
    def alone(self) -> bool:
        """Whether this is a server of one process: nothing is shared."""
        return self._ring is None

    @property
    def worker(self) -> int:
        """This worker's number (from 1; 0: the supervisor, or a server of one process)."""
        return self._ring.worker if self._ring is not None else 0

    @property
    def runs_once(self) -> bool:
        """
        Whether this process runs what a machine runs once (the snapshot's
        saves, evictions, folding the counts): alone, or the first worker.
        """
        return self._ring is None or self._ring.worker == 1

    @property
    def room(self) -> int:
        """The most bytes an announcement may have (no bound when alone)."""
        return self._ring.room if self._ring is not None else sys.maxsize

    def workers(self) -> tuple[int, int]:
        """How many workers run now, of how many (alone: one of one)."""
        return self._ring.workers() if self._ring is not None else (1, 1)

    def restarts(self) -> int:
        """How many times a worker of the machine was started again."""
        return self.watched()[0]

    def watched(self) -> tuple[int, int, int]:
        """The machine's L{pypid.machine.ring.ChangeRing.watched}; alone, none."""
        return self._ring.watched() if self._ring is not None else (0, 0, 0)

    def admit(self, key: bytes, day: int, limit: int) -> bool:
        """The machine's tally (L{pypid.machine.ring.ChangeRing.admit}); alone, always."""
        return self._ring.admit(key, day, limit) if self._ring is not None else True

    def _carrier(self, topic: Topic) -> ChangeRing | None:
        """The ring C{topic} travels on: the lane's topics on the lane, when there is one."""
        return self._lane if topic in LANED and self._lane is not None else self._ring

    def held(self, topic: Topic) -> AbstractContextManager[None]:
        """
        The ring of C{topic} held for a block (L{pypid.machine.ring.ChangeRing.held}):
        what this worker takes in and tells there, no other comes between.
        """
        ring = self._carrier(topic)
        return ring.held() if ring is not None else nullcontext()

    def publish(self, topic: Topic, *fields: bytes) -> None:
        """
        Tell the machine's other workers (alone: nobody).

        @raise pypid.machine.ring.RingError: when it does not fit in a slot.
        """
        ring = self._carrier(topic)
        if ring is None:
            return
        number = tell(ring, topic, *fields)
        if ring is self._ring:
            first, last = self._own
            self._own = (first, number) if number == last + 1 else (number, number)

    def others_since(self, seen: int) -> bool:
        """
        Whether another worker announced on the ring after number C{seen}
        (one read of memory): not when every announcement since is this
        worker's own, told in a row (a worker's own journal writes ring the
        doorbell too, and need no look at the journal).
        """
        latest = self.latest()
        if latest == seen:
            return False
        first, last = self._own
        return not (latest == last and first <= seen + 1)

    def on(self, topic: Topic, handler: Handler, *, past: bool = False) -> None:
        """
        Hand each of the other workers' announcements of C{topic} to C{handler}.

        @param past: hand it at once, too, those the ring still keeps from
            before this process started, its own number's included (a
            worker started again is a new process under the old number):
            for state that lives longer than a worker's start (a login
            begun while this worker started finishes on it).
        """
        ring = self._carrier(topic)
        if ring is None:
            return
        self._handlers.setdefault(topic, []).append(handler)
        for told, fields, worker in self._cursors[ring].past() if past else ():
            if told is topic:
                self._hand_one(handler, topic, fields, worker)

    def lost(self, handler: Callable[[], None]) -> None:
        """
        Call C{handler()} when a read fell a whole ring behind: what it
        missed cannot be known (the storage is compared instead).
        """
        if self._ring is not None:
            self._lost.append(handler)

    def forget(self, *handlers: Callable[..., None]) -> None:
        """Hand nothing more to C{handlers} (their reader is gone: a file replaced at a reload)."""
        for topic, listed in self._handlers.items():
            self._handlers[topic] = [h for h in listed if h not in handlers]
        self._lost = [h for h in self._lost if h not in handlers]

    def take(self) -> None:
        """
        Hand what the other workers announced since the last read to the
        handlers of each topic, in order (no system call when nothing was).
        """
        for cursor in self._cursors.values():
            behind = cursor.ring.latest() - cursor.seen
            found = cursor.look()
            if found is None and cursor.ring is self._lane:
                log.error("Fell {behind} announcements behind the other workers' throttle "
                          "events (logins, token exchanges), more than the machine keeps "
                          "({slots}): some of their failures are not counted here",
                          behind=behind, slots=cursor.ring.slots)
            for handler in self._lost if found is None and cursor.ring is self._ring else ():
                handler()
            for decoded in found or ():
                self._hand(*decoded)

    def _hand(self, topic: Topic, fields: list[bytes], worker: int) -> None:
        for handle in self._handlers.get(topic, ()):
            self._hand_one(handle, topic, fields, worker)

    @staticmethod
    def _hand_one(handle: Handler, topic: Topic, fields: list[bytes], worker: int) -> None:
        try:
            handle(fields, worker)
        except Exception:
            # (one handler's failure leaves the others' announcements taken
            # in, and a worker's start goes on past one it cannot read)
            log.failure("Cannot take in {topic} of worker {worker}", topic=topic.name,
                        worker=worker)


#: The hub of a server of one process: it tells nobody and hears nothing.
LONE = Hub(None)
