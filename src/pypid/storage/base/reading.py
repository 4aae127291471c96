"""
Reading a server's storage without disturbing a server that runs on it:
the records (the daemon's snapshot as what is known, then a scan of the
storage, as the daemon starts), each file's bytes, its core metadata and
its details. The static export (L{pypid.export}) and the bundles
(L{pypid.bundle}) both read a storage so; this module is theirs, below
both, so that neither imports the other.

Nothing here calls C{storage.prepare()}: on a local folder it takes the
lock the running daemon holds, and it sweeps the daemon's spool folder; on
a bucket it writes a probe object. The scan does not persist (see
L{pypid.storage.base.interface.IStorage.scan}): a daemon's scan keeps what it
learns of files copied in without a record beside them (C{.pypid/} files,
a bucket's metadata objects and copies), which here would write into a
storage that may be read-only, owned by the daemon's user, or changing
under the daemon; the export keeps their metadata in memory instead, and
leaves their details to the daemon. The snapshot is read as bytes, not with
L{pypid.storage.base.snapshot_reading.read}, which sweeps the daemon's temporary files
beside it and moves a damaged snapshot aside.

A named index is read as its pages list it: L{load_index}
reads each hosted source of its order (itself, then its hosted bases,
each its own storage and snapshot) and composes them with
L{pypid.core.indexes.composition.compose}, the earlier source's file of a name or a
distribution winning; upstreams are not read (their files are not the
server's). L{IndexRecords.storage_of} then says which storage holds each
file.

A file's bytes go to a L{FileSink}: an export's target or a bundle's
writer, each defined above this module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Sequence
from typing import IO, Protocol, cast

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol as ByteReceiver
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.composition import ChainSource, Filters, compose
from pypid.core.indexes.index import Index
from pypid.core.indexes.project_status import InvalidStatus, ProjectStatus
from pypid.jobs.run import Run
from pypid.storage.base import snapshot as snapshots
from pypid.storage.base import snapshot_reading
from pypid.storage.base.capabilities import ISharedStorage
from pypid.storage.base.disk import read_if_present, remove_file
from pypid.storage.base.interface import (
    IStorage,
    LocalFile,
    MemoryFile,
    RemoteBytes,
    RemoteFile,
    ScanResult,
    StorageError,
)

#: (the namespace these lines always had, before the module moved: log filters keep matching)
log = Logger(namespace="pypid.storage.reading")

#: The Content-Type of a distribution file and of its core metadata.
BINARY_TYPE = "application/octet-stream"


class FileUnavailable(Exception):
    """A stored file cannot be taken; the message says why."""


class FileMismatch(Exception):
    """A file's bytes are not those its record's sha256 names."""


class FileSink(Protocol):
    """Where L{put_file} puts a stored file's bytes."""

    def spool(self) -> str:
        """A new local path where bytes fetched from elsewhere may be put for L{put_file}."""

    def write(self, path: str, data: bytes, content_type: str) -> Awaitable[object]:
        """Replace C{path} with C{data}, all at once (what it fires with is ignored)."""

    def put_file(self, path: str, source: str, sha256: str, consume: bool,
                 size: int | None = None) -> Awaitable[object]:
        """
        Replace C{path} with the bytes of the local file C{source}, all at
        once; L{FileMismatch} when the sink reads them and they are not
        C{sha256}. C{consume}: C{source} is a L{spool} file, which the sink
        takes; otherwise it is the storage's, never changed.
        """


def read_snapshot(path: str | None) -> snapshots.Snapshot | None:
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
        return snapshot_reading.decode(data)
    except snapshots.SnapshotError as e:
        log.warn("Not using the snapshot {path}: {error}", path=path, error=str(e))
        return None


async def load_records(storage: IStorage, snapshot_path: str | None, run: Run) -> ScanResult:
    """
    What the storage holds now, as the daemon learns it at start-up: its
    snapshot's records as the known ones (a snapshot of other data is not
    used), then a scan, which reads again only what changed since and
    writes nothing.
    """
    snap = await run(read_snapshot, snapshot_path)
    if snap is not None and snap.storage not in (None, storage.identity()):
        log.warn("The snapshot {path} describes {other}, not {this}: reading the storage",
                 path=snapshot_path, other=snap.storage, this=storage.identity())
        snap = None
    if snap is None and ISharedStorage.providedBy(storage):
        try:
            data = await storage.load_snapshot()
            snap = await run(snapshot_reading.decode, data) if data is not None else None
        except (StorageError, snapshots.SnapshotError) as e:
            log.warn("Not using the snapshot kept in the storage: {error}", error=str(e))
            snap = None
    known: dict[str, FileRecord]
    tombstones: tuple[str, ...] | frozenset[str]
    if snap is None:
        known, since, tombstones = {}, 0.0, ()
    else:
        known, since, tombstones = snap.records, snap.saved_at, snap.tombstones
    # (persist=False, positional: so a wrapping storage passing *args along works)
    result: ScanResult = await storage.scan(known, since, tombstones, False)
    for path, reason in result.skipped:
        log.warn("Not exporting {path}: {error}", path=path, error=reason)
    return result


async def read_statuses(storage: IStorage) -> dict[str, ProjectStatus]:
    """
    The projects' statuses C{storage} keeps (PEP 792), by normalized name,
    as the daemon reads them at a start (L{pypid.state.loader.IndexLoader}):
    one that cannot be read is logged and left out (the daemon then serves
    the project as active too, until an admin sets it again).

    @raise StorageError: the storage failed.
    """
    statuses: dict[str, ProjectStatus] = {}
    for name, data in sorted((await storage.statuses()).items()):
        status = decode_status(name, data)
        if status is not None:
            statuses[name] = status
    return statuses


def decode_status(name: str, data: bytes | None) -> ProjectStatus | None:
    """
    The status of the project C{name} a status object holds (L{None}: no
    object, or active); one that cannot be read is logged and taken as
    active, at a start (L{read_statuses}) and at a shared storage's poll alike.
    """
    if data is None:
        return None
    try:
        return ProjectStatus.from_bytes(data)
    except InvalidStatus as e:
        log.error("Unreadable status of the project {project}, left out: {error}",
                  project=name, error=str(e))
        return None


@attrs.frozen
class StoredSource:
    """One hosted source of an index's order: its name, storage and snapshot file."""

    name: str
    storage: IStorage
    snapshot_path: str | None


@attrs.frozen
class IndexRecords:
    """
    What an index lists, read from its hosted sources (L{load_index}).

    @ivar result: the composed records and tombstones, as a scan gives them
        (a quarantined project's files among them: see L{statuses}).
    @ivar holders: filename -> the storage that holds the listed file.
    @ivar statuses: each project's status in the index
        (L{pypid.core.indexes.composition.chain_status}: a quarantine in any hosted
        source, else the first source's status), for those that have one.
    """

    result: ScanResult
    holders: dict[str, IStorage]
    statuses: dict[str, ProjectStatus] = attrs.field(factory=dict)

    def storage_of(self, record: FileRecord) -> IStorage:
        """The storage that holds C{record}'s file."""
        return self.holders[record.filename]


def _no_url(record: object) -> str:
    return ""


async def load_index(parts: Sequence[StoredSource], filters: Filters, now: float,
                     run: Run) -> IndexRecords:
    """
    The files an index of the hosted sources C{parts} (in its resolved
    order) lists at C{now} through C{filters} (L{pypid.core.indexes.composition.compose});
    its tombstones are its sources' deleted names that no listed file has.
    Each source's statuses are read as the daemon reads them: a project
    quarantined in the chain keeps its files here (composed as its admins
    see them), with its status in L{IndexRecords.statuses}, so that the
    caller renders its pages as the daemon does and writes none of them.
    """
    chain: list[ChainSource] = []
    storages: dict[str, IStorage] = {}
    tombstones: set[str] = set()
    skipped: list[tuple[str, str]] = []
    for part in parts:
        scanned = await load_records(part.storage, part.snapshot_path, run)
        index = Index(_no_url)
        index.load(sorted(scanned.records.values(), key=lambda r: (r.upload_time, r.filename)),
                   scanned.tombstones)
        index.statuses.take(await read_statuses(part.storage))
        chain.append(ChainSource(part.name, hosted=index))
        storages[part.name] = part.storage
        tombstones |= scanned.tombstones
        skipped.extend(scanned.skipped)
    names: set[str] = set()
    for source in chain:
        assert source.hosted is not None  # (hosted sources only)
        names.update(project.name for project in source.hosted.projects()
                     if filters.admits_project(project.name))
    records: dict[str, FileRecord] = {}
    holders: dict[str, IStorage] = {}
    statuses: dict[str, ProjectStatus] = {}
    for name in sorted(names):
        composition = compose(chain, name, filters, now, reveal=True)
        if composition.status is not None:
            statuses[name] = composition.status
        for f, source in composition.files:
            record = cast(FileRecord, f)
            records[record.filename] = record
            holders[record.filename] = storages[source.name]
    return IndexRecords(ScanResult(records, frozenset(tombstones - set(records)),
                                   tuple(skipped)), holders, statuses)


class _Spool(ByteReceiver):
    """Writes a body to a file, hashing it; C{done} fires with the hex sha256."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._digest = hashlib.sha256()
        self.done: Deferred[str] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self._digest.update(data)
        self._out.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        from twisted.web.client import ResponseDone
        if reason.check(ResponseDone):
            self.done.callback(self._digest.hexdigest())
        else:
            self.done.errback(StorageError(
                f"a download from the storage was cut short: {reason.getErrorMessage()}"))


def _check(data: bytes, record: FileRecord) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != record.sha256:
        raise FileMismatch(f"its bytes have sha256 {digest}, not {record.sha256}")
    return data


async def put_file(storage: IStorage, record: FileRecord, target: FileSink,
                   path: str) -> None:
    """
    Put a stored file into the target at C{path}: linked or copied from a
    local folder, written from memory, or downloaded to the target's spool
    first; bytes read here are checked against the record's sha256 (a
    local file's by the target, which reads them anyway).

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


async def read_metadata(storage: IStorage, record: FileRecord) -> bytes | None:
    """
    A file's core metadata, when the record announces some and the storage
    holds exactly those bytes; L{None} otherwise (said in a warning).

    @raise StorageError: the storage failed.
    """
    if record.metadata_sha256 is None:
        return None
    try:
        data: bytes = await storage.read_metadata(record)
    except FileNotFoundError:
        log.warn("The metadata of {filename} is missing from the storage: not exported",
                 filename=record.filename)
        return None
    if hashlib.sha256(data).hexdigest() != record.metadata_sha256:
        log.warn("The stored metadata of {filename} does not match its record: "
                 "not exported", filename=record.filename)
        return None
    return data
