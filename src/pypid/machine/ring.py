"""
What the workers of one machine announce to each other, in shared memory
(L{ChangeRing}): a worker that acknowledges a change (an upload, a yank, a
token revoked) announces it before it answers; every other worker reads
the last sequence number (eight bytes of shared memory, no system call)
before it answers a request, and catches up first when it moved. So a
change one worker acknowledged is in every other worker's next answer.

The ring is a memory file the supervisor makes (C{memfd_create}) and hands
to each worker by its descriptor: the header (L{_HEADER}: C{MAGIC}, the
last number announced, the slots' number and size, the workers running
and of how many, the tally's size, the restarts, silences and hangs), the
slots (announcement C{n} in slot C{n % slots}) and the tally
(L{ChangeRing.admit}). An announcement is written under an exclusive
C{flock} of the file, slot first, then the sequence number; a reader that
saw the number move takes a shared C{flock} before it reads the slots, so
what it reads was written whole (the lock is the barrier a weakly ordered
processor needs, too). Each L{ChangeRing} opens the file anew
(C{/proc/self/fd}): C{flock} excludes open files, not processes, and a
descriptor passed to a child shares its parent's open file.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import attrs

#: The first bytes of a ring, and of its layout's version.
MAGIC = b"pypidrg2"

_HEADER = struct.Struct("<8sQII8xI12x")
_COUNTS = struct.Struct("<III")
_ENTRY = struct.Struct("<QII")
_WORKERS = struct.Struct("<II")
_LATEST = struct.Struct("<Q")
_SLOT_HEAD = struct.Struct("<QHH")

#: Bytes before the first slot.
HEADER = _HEADER.size

#: The slots of a ring by default, and their size: 8 MiB (the memory of
#: the machine, not of each worker) for a few seconds of the busiest bulk
#: import, and the largest payload, a single sign-on under way (its page
#: to come back to is up to 2000 characters).
SLOTS = 2048
SLOT_SIZE = 4096

#: The entries of the tally by default (16 bytes each: 1 MiB), as many as
#: the pairs of client and file one process remembers a day.
TALLY = 1 << 16

#: Entries of the tally a key may take, from the one its digest names.
_PROBES = 8


class RingError(Exception):
    """A descriptor that holds no ring, or a payload that does not fit in a slot."""


@attrs.frozen
class Announcement:
    """
    One change a worker announced.

    @ivar sequence: its number, from 1, one more than the one before.
    @ivar worker: the number of the worker that announced it.
    """

    sequence: int
    worker: int
    payload: bytes


@attrs.define(eq=False)
class ChangeRing:
    """
    A machine's ring of announced changes, as one process (the supervisor
    or one worker) sees it.

    @ivar worker: this process's number in the announcements it makes.
    @ivar slot_size: the bytes of a slot, its head included.
    """

    _fd: int = attrs.field(repr=False)
    _map: mmap.mmap = attrs.field(repr=False)
    worker: int
    slots: int
    slot_size: int
    tally: int = 0
    #: whether this process holds the ring now (L{held})
    _holding: bool = attrs.field(default=False, init=False, repr=False)

    @contextmanager
    def held(self) -> Iterator[None]:
        """
        Hold the ring for the block: what this process reads and announces
        in it no other process comes between (a check of what the others
        announced, then the announcement it allows). Microseconds: no
        waiting on anything else in the block.
        """
        if self._holding:
            yield
            return
        with flocked(self._fd, fcntl.LOCK_EX):
            self._holding = True
            try:
                yield
            finally:
                self._holding = False

    def _locked(self, how: int) -> AbstractContextManager[None]:
        """The machine's lock for one read or write, unless L{held} already."""
        return nullcontext() if self._holding else flocked(self._fd, how)

    @classmethod
    def create(cls, slots: int = SLOTS, slot_size: int = SLOT_SIZE,
               tally: int = TALLY) -> ChangeRing:
        """
        A new, empty ring in a new memory file, for the supervisor (worker
        0); its L{fileno} is what a worker is given to L{attach}.
        """
        if slots < 1 or slot_size <= _SLOT_HEAD.size or slot_size > 0xFFFF or tally < 1:
            raise ValueError(f"a ring of {slots} slots of {slot_size} bytes, {tally} counts")
        fd = os.memfd_create("pypid-changes", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, HEADER + slots * slot_size + tally * _ENTRY.size)
            os.pwrite(fd, _HEADER.pack(MAGIC, 0, slots, slot_size, tally), 0)
            return cls.attach(fd, 0)
        finally:
            os.close(fd)

    @classmethod
    def attach(cls, fd: int, worker: int) -> ChangeRing:
        """
        The ring held by the memory file of C{fd} (given by the supervisor),
        opened anew for this process, which announces as C{worker}.

        @raise RingError: when C{fd} holds no ring.
        """
        own = os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_CLOEXEC)
        try:
            size = os.fstat(own).st_size
            if size < HEADER:
                raise RingError(f"descriptor {fd} holds no ring of changes ({size} bytes)")
            mapped = mmap.mmap(own, size)
        except BaseException:
            os.close(own)
            raise
        magic, _, slots, slot_size, tally = _HEADER.unpack_from(mapped, 0)
        if magic != MAGIC or size != HEADER + slots * slot_size + tally * _ENTRY.size \
                or slot_size <= _SLOT_HEAD.size or tally < 1:
            mapped.close()
            os.close(own)
            raise RingError(f"descriptor {fd} holds no ring of changes")
        return cls(own, mapped, worker, slots, slot_size, tally)

    def fileno(self) -> int:
        """This process's descriptor of the ring's memory file."""
        return self._fd

    def latest(self) -> int:
        """
        The number of the last announcement (0 before the first): the
        read every request makes, without a system call.
        """
        latest: int = _LATEST.unpack_from(self._map, 8)[0]
        return latest

    def set_workers(self, running: int, count: int, restarts: int = 0, silences: int = 0,
                    hangs: int = 0) -> None:
        """
        How many workers run now, of how many, and how many times one was
        started again, went silent and was found hung (the supervisor's).
        """
        _WORKERS.pack_into(self._map, 24, running, count)
        _COUNTS.pack_into(self._map, 36, restarts, silences, hangs)

    def watched(self) -> tuple[int, int, int]:
        """How many times a worker was started again, went silent, was found hung."""
        restarts, silences, hangs = _COUNTS.unpack_from(self._map, 36)
        return restarts, silences, hangs

    def workers(self) -> tuple[int, int]:
        """How many workers run now, of how many the machine runs."""
        running, count = _WORKERS.unpack_from(self._map, 24)
        return running, count

    def admit(self, key: bytes, day: int, limit: int) -> bool:
        """
        Count one more of C{key} on C{day} unless it counted C{limit}
        already: the machine's tally, shared by its workers (a client's
        downloads of a file, L{pypid.core.records.usage.ClientBound}).
        Each key has a few entries of a table to land in; when all hold
        other keys of the day, the first is forgotten (a key then counts
        anew, as a process forgets its oldest pairs).
        """
        digest = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") or 1
        base = HEADER + self.slots * self.slot_size
        first = digest % self.tally
        with self._locked(fcntl.LOCK_EX):
            free = None
            for probe in range(_PROBES):
                at = base + (first + probe) % self.tally * _ENTRY.size
                kept, kept_day, count = _ENTRY.unpack_from(self._map, at)
                if kept == digest and kept_day == day:
                    if count >= limit:
                        return False
                    _ENTRY.pack_into(self._map, at, digest, day, count + 1)
                    return True
                if free is None and kept_day != day:
                    free = at
            _ENTRY.pack_into(self._map, base + first * _ENTRY.size if free is None else free,
                             digest, day, 1)
            return True

    @property
    def room(self) -> int:
        """The most bytes an announcement's payload may have."""
        return self.slot_size - _SLOT_HEAD.size

    def announce(self, payload: bytes) -> int:
        """
        Announce a change; its number (or L{RingError}: C{payload} does not
        fit in a slot). Blocks while another process announces (microseconds).
        """
        room = self.room
        if len(payload) > room:
            raise RingError(f"an announcement of {len(payload)} bytes; a slot holds {room}")
        with self._locked(fcntl.LOCK_EX):
            sequence = self.latest() + 1
            at = HEADER + (sequence % self.slots) * self.slot_size
            _SLOT_HEAD.pack_into(self._map, at, sequence, self.worker, len(payload))
            self._map[at + _SLOT_HEAD.size:at + _SLOT_HEAD.size + len(payload)] = payload
            _LATEST.pack_into(self._map, 8, sequence)
        return sequence

    def since(self, sequence: int) -> list[Announcement] | None:
        """
        Every announcement after number C{sequence}, in order, or L{None}
        when some of them were overwritten already (the reader fell a whole
        ring behind: it must compare with the storage instead).
        """
        with self._locked(fcntl.LOCK_SH):
            latest = self.latest()
            if latest - sequence > self.slots:
                return None
            return self._read(range(sequence + 1, latest + 1))

    def _read(self, numbers: range) -> list[Announcement] | None:
        """The announcements C{numbers} (under a lock); L{None} when one was overwritten."""
        found = []
        for number in numbers:
            at = HEADER + (number % self.slots) * self.slot_size
            kept, worker, length = _SLOT_HEAD.unpack_from(self._map, at)
            if kept != number:
                return None
            start = at + _SLOT_HEAD.size
            found.append(Announcement(number, worker, bytes(self._map[start:start + length])))
        return found

    def kept(self, upto: int) -> list[Announcement]:
        """Every announcement up to number C{upto} that the ring still keeps, in order."""
        with self._locked(fcntl.LOCK_SH):
            latest = self.latest()
            return self._read(range(max(0, latest - self.slots) + 1, min(upto, latest) + 1)) or []

    def look(self, seen: int) -> tuple[list[Announcement] | None, int]:
        """
        What a reader that took in every announcement up to C{seen} has to
        take in now (none, without a system call, when nothing was
        announced; L{None}: L{since}'s), and the number to look from next.
        """
        if self.latest() == seen:
            return [], seen
        found = self.since(seen)
        if found is None:
            return None, self.latest()
        return found, found[-1].sequence if found else seen

    def close(self) -> None:
        """Let go of the ring (the memory file lives while any process holds it)."""
        if not self._map.closed:
            self._map.close()
            os.close(self._fd)


@contextmanager
def flocked(fd: int, how: int) -> Iterator[None]:
    """Hold C{flock(fd, how)} for the block (the machine's files' lock)."""
    fcntl.flock(fd, how)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)

