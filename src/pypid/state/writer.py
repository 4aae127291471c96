"""
Saving the index's snapshot: when, and what it stands for.

The snapshot is only a cache of the index, so that a restart is instant; what
makes it trustworthy is the time it stands for, which a start compares with
storage's. This module decides both:

  - B{when} to save: at each tick of L{SnapshotTimer} if the index, a shared
    storage's or the upstream cache's state changed, or storage changed
    behind the index (L{SnapshotWriter.want_save}); within seconds when the
    upstream cache learnt something (L{SnapshotWriter.soon}); once more as
    the server stops; never while the index lacks stored files (L{SnapshotWriter.hold}).
  - B{what time} a save stands for: now, or earlier while a change to
    storage is under way, since a shared storage's changes were last taken
    in, or while storage is checked against the snapshot loaded
    (L{SnapshotWriter.checking}); with a reading of the boot's clock that
    never steps, to show a wall clock gone back (L{pypid.core.util.clock_steps}).

Only the loader (L{pypid.state.loader}) tells the writer what it found.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import index_in_log
from pypid.core.parts import IMetricsSource
from pypid.core.records.metrics import Family, counter, gauge
from pypid.core.records.serials import ProjectSerials
from pypid.core.util.clock_steps import ClockReading
from pypid.core.util.notice import Notice
from pypid.core.util.units import counted
from pypid.jobs.periodic import Periodic
from pypid.jobs.run import Run
from pypid.storage.base.capabilities import ISharedStorage
from pypid.storage.base.snapshot import encode, lines, write

if TYPE_CHECKING:
    # (the upstream's modules load only with [upstream]: they cost start-up time)
    from pypid.upstream.proxy import UpstreamProxy

log = Logger()

#: The soonest a save that L{SnapshotWriter.soon} asks for is made.
SOON = 5.0

_BOOT_ID = "/proc/sys/kernel/random/boot_id"


@functools.cache
def _boot_id() -> str | None:
    """This boot's id (it does not change while the process lives), or L{None}."""
    try:
        with open(_BOOT_ID, encoding="ascii") as f:
            return f.read().strip() or None
    except (OSError, ValueError):
        return None


def read_boot_clock() -> tuple[str, float] | None:
    """
    The clock that never steps, kept with each snapshot: C{(boot id, seconds
    since boot)} of Linux's C{CLOCK_BOOTTIME}; L{None} elsewhere.
    """
    boot = _boot_id() if sys.platform == "linux" else None
    return (boot, time.clock_gettime(time.CLOCK_BOOTTIME)) if boot is not None else None


@implementer(IMetricsSource)
class SnapshotWriter(Service):
    """
    Saves the index when it changed since the last save; as a part of the
    daemon, it takes the last snapshot as the server stops (after the
    requests in flight finished, before the audit log and the storage close).

    @ivar saved_at: when the last save finished, L{None} before one.
    @ivar duration: how long the last save took (encoding and writing).
    """

    def __init__(self, index: Index, path: str, run: Run, clock: IReactorTime,
                 storage: str | None = None,
                 busy_since: Callable[[], float | None] | None = None,
                 shared: ISharedStorage | None = None, upstream: UpstreamProxy | None = None,
                 learnt: Notice | None = None,
                 boot_clock: Callable[[], tuple[str, float] | None] = read_boot_clock,
                 name: str | None = None, serials: ProjectSerials | None = None) -> None:
        """
        @param storage: the storage's identity, kept in the snapshot so that
            it is never used for other data.
        @param busy_since: since when a change to storage has been under way.
        @param shared: a shared storage, whose state goes into the snapshot
            and which keeps a copy of it (without that state).
        @param learnt: what the upstream cache learnt: each is saved L{soon}.
        @param name: the index's name in the log lines; L{None} on a server
            of one index.
        @param serials: the journal's serials the server took in (the default
            index's snapshot keeps them); L{None}: none.
        """
        self._index = index
        self._serials = serials
        self.path = path
        self._run = run
        self._clock = clock
        self._storage = storage
        self._busy_since = busy_since
        self._shared = shared
        self._upstream = upstream
        self._boot_clock = boot_clock
        self._of = index_in_log(name)
        self._saved_serial = -1
        self._wanted = False
        self._saving: Deferred[None] | None = None
        self._soon: IDelayedCall | None = None
        self._unchecked_since: float | None = None
        self._held = False
        self.saved_at: float | None = None
        self.duration: float | None = None
        self.saves = 0
        self.failures = 0
        if learnt is not None:
            learnt.listen(self.soon)

    def saved_up_to_now(self) -> bool:
        """Whether the last save holds the index as it is now (its serial)."""
        return self._saved_serial == self._index.serial

    def views_judged_again(self, judge: Callable[[], None]) -> None:
        """
        Run C{judge}, which moves the serial without changing what a snapshot
        holds (a reload judging kept pages again): a save up to now stays one.
        """
        saved = self.saved_up_to_now()
        judge()
        if saved:
            self._saved_serial = self._index.serial

    # -- what the loader found -------------------------------------------------

    def loaded_as_saved(self) -> None:
        """Loaded from a snapshot of this format: save again only when something changes."""
        self._saved_serial = self._index.serial

    def checking(self, since: float) -> None:
        """
        Storage is checked against the snapshot of C{since} loaded: until
        L{checked}, a save stands for no later, so a start after it checks
        again.
        """
        self._unchecked_since = since

    def checked(self) -> None:
        """The check of storage against the snapshot ended (L{checking})."""
        self._unchecked_since = None

    def hold(self) -> None:
        """The index lacks stored files yet: save nothing, even at a stop, until L{release}."""
        self._held = True

    def release(self) -> Deferred[None]:
        """Every stored file is in the index again (L{hold}): save now, not at the next tick."""
        self._held = False
        self.want_save()
        return self.save_if_changed()

    def want_save(self) -> None:
        """Save at the next tick even if the index did not change (storage did)."""
        self._wanted = True

    # -- saving --------------------------------------------------------------------

    def soon(self) -> None:
        """
        Save within L{SOON} seconds (or ten times the last save's time): the
        upstream cache learnt something a crash should not lose. Calls while
        one is due are folded into it.
        """
        if self._soon is not None:
            return
        delay = max(SOON, 10 * (self.duration or 0.0))

        def due() -> None:
            self._soon = None
            if self._saving is not None:
                # (a save under way took its state before this change)
                self._saving.addBoth(again)
                return
            self.save_if_changed()

        def again(result: object) -> object:
            self.soon()
            return result
        self._soon = self._clock.callLater(delay, due)

    def save_if_changed(self, final: bool = False) -> Deferred[None]:
        """
        Save when the serial moved; never raises (a failed save is logged and
        retried at the next tick), so the timer loop keeps running.

        While projects loaded later wait for their records, a tick waits for
        the next rather than make them all at once, which would hold the
        reactor (seconds, at a million files); a C{final} save does not wait.
        """
        if self._saving is not None:
            return self._saving
        if self._held or (not final and self._index.later.waiting):
            return succeed(None)
        serial, shared, upstream = self._index.serial, self._shared, self._upstream
        if (serial == self._saved_serial and not self._wanted
                and not (shared is not None and shared.state_changed())
                and not (upstream is not None and upstream.source.state_changed())):
            return succeed(None)
        # Only URLs were signed: the copy for other servers is unchanged;
        # none is built where none is kept (the encoding of the whole index
        # again, at each save of a machine's first worker).
        keep_copy = ((serial != self._saved_serial or self._wanted)
                     and shared is not None and shared.keeps_snapshot)
        self._wanted = False
        records = self._index.records()
        tombstones = self._index.tombstones()
        # (a line only when files were promoted)
        promotions = self._index.live_promotions()
        binned = self._index.binned()
        as_of = self._stands_for()
        state = shared.state() if shared is not None else None
        upstream_state = upstream.source.state() if upstream is not None else None
        identity = self._storage
        clock = self._reading()
        journal = self._serials.to_json() if self._serials is not None else None
        changes = shared.changes_read() if shared is not None else None

        def save() -> bytes | None:
            write(self.path, lines(records, tombstones, as_of, serial, identity, state,
                                   upstream_state, clock, promotions, binned, journal,
                                   changes))
            if not keep_copy:
                return None
            # (the copy for other instances leaves out this one's state)
            return encode(records, tombstones, as_of, serial, identity,
                          promotions=promotions, binned=binned, journal=journal,
                          changes=changes)

        started = self._clock.seconds()

        def saved(copy: bytes | None) -> None:
            self._saved_serial = serial
            self.saved_at = now = self._clock.seconds()
            self.duration = now - started
            self.saves += 1
            log.debug("Snapshot{of} saved: {files}", of=self._of,
                      files=counted(len(records), "file"))
            if copy is not None:
                assert shared is not None  # (save makes a copy for a shared storage only)
                # (for other servers to start from)
                kept = shared.keep_snapshot(copy)
                if kept is not None:
                    kept.addErrback(lambda f: log.warn(
                        "Cannot keep the snapshot in the storage: {error}",
                        error=f.getErrorMessage()))

        def failed(failure: Failure) -> None:
            self.failures += 1
            log.failure("Cannot save the snapshot to {path}", failure, path=self.path)

        def done(_: object) -> None:
            self._saving = None

        # Set before the callbacks: a run that finishes at once must still
        # clear it, or no save would ever start again.
        d: Deferred[Any] = self._run(save)
        self._saving = d
        d.addCallbacks(saved, failed)
        d.addBoth(done)
        return d

    def _reading(self) -> ClockReading | None:
        """The clock's time and the boot's clock, read together, if the system has the latter."""
        boot = self._boot_clock()
        return ClockReading(self._clock.seconds(), *boot) if boot is not None else None

    def _stands_for(self) -> float:
        """
        The time a save made now stands for: the earliest of now, the start of
        the oldest change under way (it may have written storage and not
        reached the index yet), a shared storage's last look at the others'
        changes, and the snapshot storage is still checked against.
        """
        busy = self._busy_since() if self._busy_since is not None else None
        synced = self._shared.synced_at() if self._shared is not None else None
        return min(t for t in (self._clock.seconds(), busy, synced, self._unchecked_since)
                   if t is not None)

    # -- as a part -------------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """Take the last snapshot, whatever the index waits for."""
        Service.stopService(self)
        if self._soon is not None and self._soon.active():
            self._soon.cancel()
        self._soon = None
        return self.save_if_changed(final=True)

    def metric_families(self) -> Iterator[Family]:
        """The snapshot's age, the last save's time, saves and failures."""
        # (both are set by each save)
        if self.saved_at is not None and self.duration is not None:
            yield gauge("pypid_snapshot_age_seconds",
                        "Seconds since the index snapshot was last saved.",
                        max(self._clock.seconds() - self.saved_at, 0.0))
            yield gauge("pypid_snapshot_duration_seconds", "How long the last snapshot save took.",
                        self.duration)
        yield counter("pypid_snapshot_saves", "Index snapshots saved.", self.saves)
        yield counter("pypid_snapshot_failures", "Index snapshot saves that failed.",
                      self.failures)


class SnapshotTimer(Periodic):
    """Saves the snapshot every interval while the server listens, the first as it starts."""

    def __init__(self, writer: SnapshotWriter, interval: float, clock: IReactorTime) -> None:
        Periodic.__init__(self, writer.save_if_changed, interval, clock,
                          what="The snapshot's save", first=0)
