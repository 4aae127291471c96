"""
The one table of what travels on a machine's ring (L{Topic}), and how an
announcement is written and read (L{encode}, L{decode}): the standard
library alone, so that the supervisor's lean process
(L{pypid.daemon.lean}) tells the workers who started and ended without
importing a worker's code. Each worker reads it through its hub
(L{pypid.machine.topics}).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol


class Announcing(Protocol):
    """What L{tell} uses of a ring: L{pypid.machine.ring.ChangeRing.announce}."""

    def announce(self, payload: bytes) -> int:
        """Announce C{payload}; its number."""


class Topic(enum.Enum):
    """
    Each kind of announcement, by the bytes that begin it (kept as they
    were: a worker started again after an upgrade reads what the others,
    still running, wrote). The fields follow, each after a space;
    L{FIELDS} says how many, the last one free to hold spaces.
    """

    #: The doorbell: this worker wrote entries to the journal.
    JOURNAL = b"j"
    #: The supervisor's: worker C{<number>} ended, perhaps between a change
    #: of a file and its announcement (a shared folder is read whole).
    WORKER_ENDED = b"w"
    #: The first worker put other advisories in force (the others read them).
    ADVISORIES = b"a"
    #: A login of single sign-on begun (C{s <JSON>}) or taken (C{t <JSON>}).
    SSO = b"o"
    #: A login throttle's event: C{<throttle> <JSON>}.
    THROTTLE = b"x"
    #: A usage record written: C{<storage key> <name>}.
    USAGE = b"u"
    #: An upstream page kept: C{<cache key> <project>}.
    PAGE = b"p"
    #: A file pinned by pre-caching: C{<cache key> <filename>}.
    PIN = b"P"
    #: A file whose bytes proved wrong: C{<cache key> <filename> <when> <reason>}.
    FAILED = b"F"
    #: A small shared file (tokens, sessions) written: C{<key> <name>}.
    FILE = b"k"
    #: The supervisor's: worker C{<number>} is ready (the others ask their
    #: kept-alive connections to reconnect, so that some reach it).
    WORKER_READY = b"r"


#: How many fields each topic's announcements carry.
FIELDS = {
    Topic.JOURNAL: 0, Topic.WORKER_ENDED: 1, Topic.ADVISORIES: 0, Topic.SSO: 2,
    Topic.THROTTLE: 2, Topic.USAGE: 2, Topic.PAGE: 2, Topic.PIN: 2, Topic.FAILED: 4,
    Topic.FILE: 2, Topic.WORKER_READY: 1,
}


#: The topics that travel on the machine's lane (L{pypid.machine.topics.Hub}),
#: a ring of their own: state that lives longer than a look at the ring
#: (a failure counts for the throttle's whole window), which no flood of
#: the others' announcements (uploads, tokens, pages) may take round it
#: unread, even past a worker stopped for a while.
LANED = frozenset({Topic.THROTTLE})

#: The lane's slots and their size (a throttle's event is at most two
#: names of 400 bytes and a few more): 8 MiB of the machine's memory, the
#: events of 4,096 checks of credentials. A password's check is a hash
#: made slow on purpose (two workers on two cores made 35 a second: two
#: minutes of them, where a stopped worker is killed after [pypid]
#: worker_timeout, 30 s); a wrong token's or ID token's is not, so a spray
#: of those goes round the lane faster.
LANE_SLOTS = 8192
LANE_SLOT_SIZE = 1024

_BY_CODE = {topic.value: topic for topic in Topic}


def encode(topic: Topic, fields: Sequence[bytes]) -> bytes:
    """An announcement's payload: the topic's code, then its fields, each after a space."""
    if len(fields) != FIELDS[topic]:
        raise ValueError(f"{topic.name} has {FIELDS[topic]} fields, not {len(fields)}")
    return b" ".join((topic.value, *fields))


def tell(ring: Announcing, topic: Topic, *fields: bytes) -> int:
    """
    Announce C{topic} on C{ring} (for a hub, and the lean supervisor, which
    has none); its number on the ring.

    @raise pypid.machine.ring.RingError: it does not fit in a slot.
    """
    return ring.announce(encode(topic, fields))


def decode(payload: bytes) -> tuple[Topic, list[bytes]] | None:
    """An announcement's topic and fields; L{None} for one of no topic known here."""
    code, _, rest = payload.partition(b" ")
    topic = _BY_CODE.get(code)
    if topic is None:
        return None
    count = FIELDS[topic]
    fields = rest.split(b" ", count - 1) if count else []
    if len(fields) != count or (not count and rest):
        return None
    return topic, fields
