"""
Reading a server's storage without disturbing a daemon that runs on it:
the records (its snapshot, then a scan), each file's bytes, core metadata
and details; for the static export (L{pypid.export}) and the bundles
(L{pypid.bundle}), below both so neither imports the other.

Nothing here calls C{storage.prepare()}: on a folder it takes the lock the
daemon holds and sweeps its spool; on a bucket it writes a probe. The scan
does not persist: what it learns of files copied in without a record would
be written into a storage that may be read-only, the daemon's, or changing
under it. The snapshot is read as bytes, not with
L{pypid.storage.base.snapshot_reading.read}, which sweeps the daemon's
temporary files and moves a damaged snapshot aside.

A named index is read as its pages list it: L{load_index} composes each
hosted source of its order (L{pypid.core.indexes.composition.compose}),
upstreams left out (their files are not the server's).
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
    cannot be used (warned: the scan then reads everything). Blocking.
    """
    if not path:
        return None
    try:
        data = read_if_present(path)
        return None if data is None else snapshot_reading.decode(data)
    except OSError as e:
        error = e.strerror
    except snapshots.SnapshotError as e:
        error = str(e)
    log.warn("Not using the snapshot {path}: {error}", path=path, error=error)
    return None


async def load_records(storage: IStorage, snapshot_path: str | None, run: Run) -> ScanResult:
    """
    What the storage holds now, as the daemon learns it at start-up: its
    snapshot's records, then a scan that reads again only what changed
    since, and writes nothing.
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
    The projects' statuses C{storage} keeps (PEP 792), as the daemon reads
    them at a start: one unreadable is logged and left out (active).
    """
    statuses: dict[str, ProjectStatus] = {}
    for name, data in sorted((await storage.statuses()).items()):
        status = decode_status(name, data)
        if status is not None:
            statuses[name] = status
    return statuses


def decode_status(name: str, data: bytes | None) -> ProjectStatus | None:
    """
    The status a project's status object holds (L{None}: active); one that
    cannot be read is logged and taken as active, at a start and a poll alike.
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
    What an index lists, read from its hosted sources (L{load_index}): the
    composed C{result}, each file's storage (C{holders}), and each
    project's status in the index, where it has one
    (L{pypid.core.indexes.composition.chain_status}).
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
    The files an index of the hosted sources C{parts} (in order) lists at
    C{now} through C{filters}; its tombstones are its sources' deleted names
    no listed file has. A quarantined project keeps its files here (as its
    admins see them), with its status, so the caller renders its pages as
    the daemon does.
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
    Put a stored file into the target at C{path}: from a local folder, from
    memory, or downloaded to the target's spool; the bytes are checked
    against the record's sha256 (a local file's by the target).

    @raise FileUnavailable: the storage does not hold it, or holds other bytes.
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
    """A file's core metadata when the storage holds the bytes its record names; else L{None}."""
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
