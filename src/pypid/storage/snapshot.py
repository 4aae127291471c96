"""
The JSON snapshot of the index, so that a restart is instant.

The snapshot is only a cache: storage stays the source of truth, and start-up
reconciles the two. Saving is atomic (temporary file, fsync, rename); the
serialisation and the write happen in a worker thread, from an immutable
list of records taken on the reactor thread.

It is written with orjson, read with the standard library. A serialiser
holds Python's lock for the whole document, during which the reactor
answers nothing: for 100,001 files, encoding took 0.96 s with
C{json.dumps} and 0.30 s with orjson, most of it now in making each
record's dict (Python code, which lets the reactor in every few
milliseconds). For reading, orjson was not faster enough to be worth a
second reader (0.35-0.68 s against 0.49-0.71 s). The bytes are the same
JSON either way (UTF-8 rather than C{\\u} escapes for non-ASCII text,
which both read).
"""

import json
import os

import orjson

import attrs
from twisted.application.internet import TimerService
from twisted.internet.defer import succeed
from twisted.logger import Logger

from pypid.core.model import FileRecord
from pypid.storage.disk import read_if_present, write_atomically

FORMAT = 1

log = Logger()


class SnapshotError(Exception):
    """The snapshot cannot be used; the index is rebuilt from storage."""


@attrs.frozen
class Snapshot:
    """
    A saved index.

    @ivar saved_at: POSIX time the records were taken.
    @ivar records: L{FileRecord}s by filename.
    @ivar tombstones: deleted filenames.
    """

    saved_at: float
    records: dict
    tombstones: tuple
    serial: int = 0
    storage: str | None = None
    storage_state: object = None
    upstream_state: object = None


def encode(records, tombstones, saved_at, serial=0, storage=None, storage_state=None,
           upstream_state=None):
    """
    Serialise an index to the snapshot's bytes.

    @param storage_state: what the storage backend keeps in the snapshot
        (JSON-ready; S3's presigned URL cache), or L{None}.
    """
    data = {
        "format": FORMAT,
        "saved_at": saved_at,
        "serial": serial,
        "storage": storage,
        "files": [r.to_json() for r in records],
        "tombstones": list(tombstones),
    }
    if storage_state is not None:
        data["storage_state"] = storage_state
    if upstream_state is not None:
        data["upstream_state"] = upstream_state
    return orjson.dumps(data)


def decode(data):
    """
    Parse a snapshot's bytes.

    @rtype: L{Snapshot}
    @raise SnapshotError: when the bytes are not a snapshot this version reads.
    """
    try:
        obj = json.loads(data)
        if obj.get("format") != FORMAT:
            raise SnapshotError(f"unknown snapshot format {obj.get('format')!r}")
        records = {}
        for item in obj["files"]:
            record = FileRecord.from_json(item)
            records[record.filename] = record
        serial = obj.get("serial", 0)
        if not isinstance(serial, int):
            raise SnapshotError("the serial is not a whole number")
        storage = obj.get("storage")
        if storage is not None and not isinstance(storage, str):
            raise SnapshotError("the storage is not a string")
        return Snapshot(float(obj["saved_at"]), records, tuple(obj["tombstones"]), serial,
                        storage, obj.get("storage_state"), obj.get("upstream_state"))
    except SnapshotError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SnapshotError(f"not a valid snapshot: {e}")


def sweep(path):
    """Remove temporary files that a crash during a save left beside the snapshot."""
    folder = os.path.dirname(path) or "."
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.startswith(".index-") and name.endswith(".tmp"):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def read(path):
    """
    Read the snapshot at C{path}, or return L{None} when there is none.

    An unreadable one is moved aside (C{<path>.bad}) and reported with
    L{SnapshotError}, so that it is kept for a person to look at and the
    next start does not trip over it again.
    """
    sweep(path)
    try:
        data = read_if_present(path)
    except OSError as e:
        raise SnapshotError(f"cannot read {path}: {e.strerror}")
    if data is None:
        return None
    try:
        return decode(data)
    except SnapshotError as e:
        aside = path + ".bad"
        try:
            os.replace(path, aside)
        except OSError:
            aside = path
        raise SnapshotError(f"{e}; kept as {aside}")


def write(path, data):
    """Write the snapshot bytes atomically (see L{write_atomically})."""
    write_atomically(path, data, prefix=".index-")


@attrs.define
class SnapshotWriter:
    """
    Saves the index when it changed since the last save.

    @ivar _index: the L{pypid.core.index.Index}.
    @ivar path: where the snapshot lives.
    @ivar _run: C{run(f, *args) -> Deferred} running blocking work in a thread.
    @ivar _clock: provides C{seconds()}.
    @ivar storage: the storage's identity, kept in the snapshot so that it is
        never used for other data.
    @ivar _busy_since: C{busy_since() -> float | None}: since when a change
        to storage has been under way, if one is.
    """

    _index: object
    path: str
    _run: object
    _clock: object
    storage: str | None = None
    _busy_since: object = None
    #: an L{pypid.storage.interface.ISharedStorage}, whose state goes into the
    #: snapshot and which keeps a copy of it (without that state), or L{None}
    _shared: object = None
    #: the L{pypid.upstream.proxy.UpstreamProxy}, whose cached pages go into
    #: the snapshot, or L{None}
    _upstream: object = None
    saved_serial: int = -1
    _wanted: bool = False
    _saving: object = None
    #: when the last save finished (the clock's time), L{None} before one
    saved_at: float | None = None
    #: how long the last save took, in seconds (encoding and writing)
    duration: float | None = None
    #: saves made, and saves that failed (for C{/metrics})
    saves: int = 0
    failures: int = 0

    def want_save(self):
        """Save at the next tick even if the index did not change (storage did)."""
        self._wanted = True

    def save_if_changed(self):
        """
        Save when the serial moved; never raises (a failed save is logged and
        retried at the next tick), so the timer loop keeps running.
        """
        if self._saving is not None:
            return self._saving
        serial = self._index.serial
        shared = self._shared
        upstream = self._upstream
        if (serial == self.saved_serial and not self._wanted
                and not (shared is not None and shared.state_changed())
                and not (upstream is not None and upstream.state_changed())):
            return succeed(None)
        # Only URLs were signed: the copy for other servers is unchanged.
        keep_copy = serial != self.saved_serial or self._wanted
        self._wanted = False
        records = self._index.records()
        tombstones = self._index.tombstones()
        # The snapshot stands for storage as of the start of the oldest change
        # still under way: such a change may have written storage already and
        # not reached the index yet, so start-up must look at it again.
        as_of = self._clock.seconds()
        busy = self._busy_since() if self._busy_since is not None else None
        if busy is not None:
            as_of = min(as_of, busy)
        # With a shared storage the index holds other servers' changes only
        # up to its last look at them.
        synced = self._shared.synced_at() if self._shared is not None else None
        if synced is not None:
            as_of = min(as_of, synced)

        state = shared.state() if shared is not None else None
        upstream_state = upstream.state() if upstream is not None else None

        def save():
            data = encode(records, tombstones, as_of, serial, self.storage, state,
                          upstream_state)
            write(self.path, data)
            if shared is None or not keep_copy:
                return None
            # The copy for other instances leaves out this one's state.
            return data if state is None else encode(records, tombstones, as_of, serial,
                                                     self.storage)

        started = self._clock.seconds()

        def saved(copy):
            self.saved_serial = serial
            self.saved_at = now = self._clock.seconds()
            self.duration = now - started
            self.saves += 1
            log.debug("Snapshot saved: {count} files", count=len(records))
            if copy is not None:
                kept = shared.keep_snapshot(copy)
                if kept is not None:
                    kept.addErrback(lambda f: log.warn(
                        "Cannot keep the snapshot in the storage: {error}",
                        error=f.getErrorMessage()))

        def failed(failure):
            self.failures += 1
            log.failure("Cannot save the snapshot to {path}", failure, path=self.path)

        def done(_):
            self._saving = None

        # Set before the callbacks: a run that finishes at once (the Deferred
        # has already fired) must still clear it, or no save would ever start again.
        d = self._saving = self._run(save)
        d.addCallbacks(saved, failed)
        d.addBoth(done)
        return d


class SnapshotService(TimerService):
    """Saves the snapshot every interval, and once more on a clean stop."""

    def __init__(self, writer, interval, clock):
        TimerService.__init__(self, interval, writer.save_if_changed)
        self.clock = clock
        self._writer = writer

    def stopService(self):
        """Stop the timer, then save what changed since the last tick."""
        d = TimerService.stopService(self) or succeed(None)
        d.addCallback(lambda _: self._writer.save_if_changed())
        return d
