"""
Reading what an export is made of from the server's storage, without
disturbing a server that runs on it: the records (the daemon's snapshot as
what is known, then a scan of the storage, as the daemon starts), each
file's bytes, its core metadata and its details.

Nothing here calls C{storage.prepare()}: on a local folder it takes the
lock the running daemon holds, and it sweeps the daemon's spool folder; on
a bucket it writes a probe object. The scan does not persist (see
L{pypid.storage.interface.IStorage.scan}): a daemon's scan keeps what it
learns of files copied in without a record beside them (C{.pypid/} files,
a bucket's metadata objects and copies), which here would write into a
storage that may be read-only, owned by the daemon's user, or changing
under the daemon; the export keeps their metadata in memory instead, and
leaves their details to the daemon. The snapshot is read as bytes, not with
L{pypid.storage.snapshot.read}, which sweeps the daemon's temporary files
beside it and moves a damaged snapshot aside.
"""

import hashlib

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from pypid.export.plan import BINARY_TYPE
from pypid.export.target import FileMismatch
from pypid.storage import snapshot as snapshots
from pypid.storage.disk import read_if_present, remove_file
from pypid.storage.interface import (
    ISharedStorage,
    LocalFile,
    MemoryFile,
    RemoteBytes,
    RemoteFile,
    StorageError,
)

log = Logger()


class FileUnavailable(Exception):
    """A stored file cannot be taken into the export; the message says why."""


def read_snapshot(path):
    """
    The daemon's snapshot at C{path}, or L{None} when there is none or it
    cannot be used (said in a warning: the scan then reads everything).
    Blocking.
    """
    if not path:
        return None
    try:
        data = read_if_present(path)
    except OSError as e:
        log.warn("Not using the snapshot {path}: {error}", path=path, error=e.strerror)
        return None
    if data is None:
        return None
    try:
        return snapshots.decode(data)
    except snapshots.SnapshotError as e:
        log.warn("Not using the snapshot {path}: {error}", path=path, error=str(e))
        return None


async def load_records(storage, snapshot_path, run):
    """
    What the storage holds now, as the daemon learns it at start-up: its
    snapshot's records as the known ones (a snapshot of other data is not
    used), then a scan, which reads again only what changed since and
    writes nothing.

    @param run: C{run(f, *args) -> Deferred} for blocking work.
    @rtype: L{pypid.storage.interface.ScanResult}
    """
    snap = await run(read_snapshot, snapshot_path)
    if snap is not None and snap.storage not in (None, storage.identity()):
        log.warn("The snapshot {path} describes {other}, not {this}: reading the storage",
                 path=snapshot_path, other=snap.storage, this=storage.identity())
        snap = None
    if snap is None and ISharedStorage.providedBy(storage):
        try:
            data = await storage.load_snapshot()
            snap = await run(snapshots.decode, data) if data is not None else None
        except (StorageError, snapshots.SnapshotError) as e:
            log.warn("Not using the snapshot kept in the storage: {error}", error=str(e))
            snap = None
    if snap is None:
        known, since, tombstones = {}, 0.0, ()
    else:
        known, since, tombstones = snap.records, snap.saved_at, snap.tombstones
    # (persist=False, positional: so a wrapping storage passing *args along works)
    result = await storage.scan(known, since, tombstones, False)
    for path, reason in result.skipped:
        log.warn("Not exporting {path}: {error}", path=path, error=reason)
    return result


class _Spool(Protocol):
    """Writes a body to a file, hashing it; C{done} fires with the hex sha256."""

    def __init__(self, out):
        self._out = out
        self._digest = hashlib.sha256()
        self.done = Deferred()

    def dataReceived(self, data):
        self._digest.update(data)
        self._out.write(data)

    def connectionLost(self, reason):
        from twisted.web.client import ResponseDone
        if reason.check(ResponseDone):
            self.done.callback(self._digest.hexdigest())
        else:
            self.done.errback(StorageError(
                f"a download from the storage was cut short: {reason.getErrorMessage()}"))


def _check(data, record):
    digest = hashlib.sha256(data).hexdigest()
    if digest != record.sha256:
        raise FileMismatch(f"its bytes have sha256 {digest}, not {record.sha256}")
    return data


async def put_file(storage, record, target, path):
    """
    Put a stored file into the target at C{path}: linked or copied from a
    local folder, written from memory, or downloaded to the target's spool
    first; bytes the export reads are checked against the record's sha256.

    @raise FileUnavailable: the storage does not hold it, or holds other bytes.
    @raise StorageError: the storage failed (the export stops).
    """
    location = storage.locate(record)
    try:
        if isinstance(location, LocalFile):
            await target.put_file(path, location.path, record.sha256, False, record.size)
        elif isinstance(location, MemoryFile):
            await target.write(path, _check(location.data, record), BINARY_TYPE)
        elif isinstance(location, RemoteBytes):
            data = _check(await location.read(), record)
            await target.write(path, data, BINARY_TYPE)
        elif isinstance(location, RemoteFile):
            spool = target.spool()
            try:
                with open(spool, "wb") as out:
                    body = await location.fetch(0, location.size)
                    receiver = _Spool(out)
                    body.deliverBody(receiver)
                    digest = await receiver.done
                if digest != record.sha256:
                    raise FileMismatch(f"its bytes have sha256 {digest}, not {record.sha256}")
            except BaseException:
                remove_file(spool)
                raise
            await target.put_file(path, spool, record.sha256, True)
        else:
            raise FileUnavailable("the storage only offers a redirect to it")
    except FileNotFoundError:
        raise FileUnavailable("the storage does not hold it")
    except FileMismatch as e:
        raise FileUnavailable(str(e))


async def read_metadata(storage, record):
    """
    A file's core metadata, when the record announces some and the storage
    holds exactly those bytes; L{None} otherwise (said in a warning).

    @raise StorageError: the storage failed.
    """
    if record.metadata_sha256 is None:
        return None
    try:
        data = await storage.read_metadata(record)
    except FileNotFoundError:
        log.warn("The metadata of {filename} is missing from the storage: not exported",
                 filename=record.filename)
        return None
    if hashlib.sha256(data).hexdigest() != record.metadata_sha256:
        log.warn("The stored metadata of {filename} does not match its record: "
                 "not exported", filename=record.filename)
        return None
    return data
