"""
Storage in memory: the reference implementation of L{IStorage}, and the
backend of fast tests of the web layer.

It keeps what any backend keeps (each file's bytes under its key, its record,
its core metadata, the tombstones of deleted filenames) in dicts, and does
every operation at once on the calling thread, so each Deferred it returns
has fired before the call returns: a test needs neither a thread pool nor a
reactor. The only disk it touches is the spool folder it is given, where the
web layer writes an upload before L{MemoryStorage.publish} reads it back.

Its semantics are the local backend's (the contract in C{tests/unit/storage/test_storage.py}
runs against both, and against S3), without what only a disk needs: no
folder lock, no fsync, no records written in the background after a scan.
A scan with C{persist=False} changes none of the dicts below: what it reads
of objects without a record stays in a dict of its own, as the local
backend's does in memory.
A promotion into it (L{MemoryStorage.adopt}) keeps the very bytes object
the source storage holds, as the local backend keeps one inode under two
names.
Nothing in the server imports this module, so it costs production nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Callable, Iterable, Sequence

import attrs
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from pypid.core.dists.distribution import Inspected, inspect
from pypid.core.dists.metadata import InvalidDistribution
from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import InvalidName
from pypid.core.dists.readme import render_description
from pypid.core.indexes.promotion import Promotion
from pypid.storage.base.capabilities import (
    IAdoptingStorage,
    IEvictingStorage,
    IServerDocuments,
    IUsageStorage,
    document_name,
)
from pypid.storage.base.disk import remove_file
from pypid.storage.base.interface import (
    FileExists,
    FilenameDeleted,
    IStorage,
    MemoryFile,
    RemoteBytes,
    ScanResult,
    StorageError,
    StorageState,
    checked_provenance,
)
from tests.harness.memory_sidecars import MemorySidecars

# -- small objects kept by name: the promotion journals and project statuses,
# which a disk keeps as small files under .pypid/ and a bucket as small
# objects (the seams of the bucket's JournalObjects and StatusObjects); in
# memory they differ in nothing but their names


@attrs.define(eq=False)
class NamedBlobs:
    """Bytes by name; the Deferreds are the storage's, which does everything at once."""

    _kept: dict[str, bytes] = attrs.field(factory=dict, init=False)

    def keep(self, name: str, data: bytes) -> None:
        """Keep C{data} under C{name}, over what was kept there."""
        self._kept[name] = data

    def drop(self, names: Iterable[str]) -> None:
        """Forget C{names} (missing ones are no error)."""
        for name in names:
            self._kept.pop(name, None)

    def all(self) -> dict[str, bytes]:
        """Everything kept, by name (a copy: the caller may change it)."""
        return dict(self._kept)


@attrs.frozen
class HeldFile:
    """
    A file as the in-memory backend holds it, for a promotion into another
    (L{MemoryStorage.copy_source}): its bytes and what is kept beside them.
    """

    data: bytes
    metadata: bytes | None
    details: bytes | None
    provenance: bytes | None


def _missing(name: str) -> Callable[[], Deferred[bytes]]:
    """A C{read()} for L{RemoteBytes} that fails as a missing file on disk does."""
    return lambda: fail(FileNotFoundError(name))


def _hidden(key: str) -> bool:
    """Whether a key is outside what a scan reads (a dot name, as on disk)."""
    return any(part.startswith(".") for part in key.split("/"))


@implementer(IStorage, IAdoptingStorage, IEvictingStorage, IUsageStorage, IServerDocuments)
@attrs.define(eq=False)
class MemoryStorage:
    """
    Files in dicts, for tests and as the reference backend; see the module.

    @ivar temp_dir: the local folder where uploads are spooled before
        L{publish}; L{prepare} creates it and sweeps it.
    @ivar _clock: provides C{seconds()}: when each change happened (which
        L{scan}'s C{since} is compared with) and the upload time of files
        found by a scan.
    @ivar objects: the stored bytes by key (the path relative to the root),
        this backend's folder. Putting bytes there directly is what copying a
        file into a package folder is on disk: no record, and the next scan
        reads the file and describes it (a test seeds a storage this way).
    """

    temp_dir: str
    _clock: IReactorTime
    objects: dict[str, bytes] = attrs.field(factory=dict)
    # What the local backend keeps beside each file (sidecars on disk).
    _sidecars: MemorySidecars = attrs.field(factory=MemorySidecars, init=False)
    # The journals of promotions under way (.pypid/promotions/ on disk).
    _journals: NamedBlobs = attrs.field(factory=NamedBlobs, init=False)
    # The projects' statuses (.pypid/projects/ on disk).
    _statuses: NamedBlobs = attrs.field(factory=NamedBlobs, init=False)
    # The usage records (.pypid/usage/ on disk), by name: a test seeds and
    # reads them here, as it does the files in objects.
    usage: dict[str, bytes] = attrs.field(factory=dict, init=False)
    # The advisory waivers' document (.pypid/waivers.json on disk).
    _documents: dict[str, bytes] = attrs.field(factory=dict, init=False)
    # The data lives as long as this object: a snapshot of another storage
    # (another process, or another test) must never be taken for this one's.
    _name: str = attrs.field(factory=lambda: uuid.uuid4().hex, init=False)

    # -- the interface ---------------------------------------------------------------

    def prepare(self) -> Deferred[None]:
        """Create the spool folder and remove the files a crash left in it."""
        return maybeDeferred(self._prepare_sync)

    def close(self) -> None:
        """Nothing to release: no lock is held and no connection is open."""

    def check(self) -> Deferred[StorageState]:
        """Memory always answers (and has no disk to fill)."""
        return succeed("ok")

    def identity(self) -> str:
        """A name of this object's data alone, since nothing outlives it."""
        return f"memory:{self._name}"

    def publish(self, temp_path: str, record: FileRecord, metadata: bytes | None,
                details: bytes | None = None, provenance: bytes | None = None,
                ) -> Deferred[FileRecord]:
        """Keep the spooled upload's bytes under C{record.path}, never over anything stored."""
        return maybeDeferred(self._publish_sync, temp_path, record, metadata, details,
                             provenance)

    def keep_provenance(self, record: FileRecord, provenance: bytes) -> Deferred[FileRecord]:
        """Keep a stored file's provenance, then its record saying so; see L{IStorage}."""
        stored = self._sidecars.records.get(record.filename)
        if stored is None or record.filename in self._sidecars.tombstones:
            return fail(FileNotFoundError(record.path))
        self._sidecars.provenance[record.filename] = provenance
        kept = stored.replace(provenance_sha256=hashlib.sha256(provenance).hexdigest())
        self._sidecars.records[record.filename] = kept
        self._sidecars.changed[record.filename] = self._clock.seconds()
        return succeed(kept)

    def read_provenance(self, record: FileRecord) -> Deferred[bytes | None]:
        """A file's provenance, when what is kept is the one its record names."""
        return succeed(checked_provenance(record, self._sidecars.provenance.get(record.filename)))

    def update(self, record: FileRecord) -> Deferred[None]:
        """Replace a file's record (a yank or an unyank); never after a delete."""
        return maybeDeferred(self._update_sync, record)

    def delete(self, record: FileRecord) -> Deferred[None]:
        """Remove a file, its metadata and details, keeping a tombstone for its name."""
        return maybeDeferred(self._delete_sync, record)

    def add_tombstone(self, filename: str) -> Deferred[None]:
        """Keep a tombstone for a name no stored file has; see L{IStorage.add_tombstone}."""
        return maybeDeferred(self._add_tombstone_sync, filename)

    def adopt(self, source: IStorage, record: FileRecord,
              promotion: Promotion) -> Deferred[FileRecord]:
        """Keep C{source}'s very bytes (shared) and sidecars; see L{IAdoptingStorage.adopt}."""
        return maybeDeferred(self._adopt_sync, source, record, promotion)

    def evict(self, records: Sequence[FileRecord]) -> Deferred[None]:
        """Forget cached files, keeping no tombstone; see L{IEvictingStorage.evict}."""
        def evict_all() -> None:
            for record in records:
                self._discard_adopted_sync(record)
        return maybeDeferred(evict_all)

    def discard_adopted(self, record: FileRecord) -> Deferred[None]:
        """Forget an adopted file, keeping no tombstone; see L{IAdoptingStorage.discard_adopted}."""
        return maybeDeferred(self._discard_adopted_sync, record)

    def keep_status(self, project: str, data: bytes | None) -> Deferred[None]:
        """Keep or remove a project's status; see L{IStorage.keep_status}."""
        if data is None:
            self._statuses.drop([project])
        else:
            self._statuses.keep(project, data)
        return succeed(None)

    def statuses(self) -> Deferred[dict[str, bytes]]:
        """The projects' statuses kept; see L{IStorage.statuses}."""
        return succeed(self._statuses.all())

    def keep_document(self, name: str, data: bytes) -> Deferred[None]:
        """Keep a server document; see L{IServerDocuments.keep_document}."""
        self._documents[document_name(name)] = bytes(data)
        return succeed(None)

    def document(self, name: str) -> Deferred[bytes | None]:
        """A server document kept; see L{IServerDocuments.document}."""
        return succeed(self._documents.get(document_name(name)))

    def add_usage(self, name: str, data: bytes) -> Deferred[None]:
        """Keep a usage record; see L{IUsageStorage.add_usage}."""
        self.usage[name] = data
        return succeed(None)

    def usage_records(self) -> Deferred[dict[str, bytes]]:
        """The usage records kept; see L{IUsageStorage.usage_records}."""
        return succeed(dict(self.usage))

    def usage_record(self, name: str) -> Deferred[bytes | None]:
        """One usage record; see L{IUsageStorage.usage_record}."""
        return succeed(self.usage.get(name))

    def drop_usage(self, names: Sequence[str]) -> Deferred[None]:
        """Remove usage records; see L{IUsageStorage.drop_usage}."""
        for name in names:
            self.usage.pop(name, None)
        return succeed(None)

    def keep_journal(self, name: str, data: bytes) -> Deferred[None]:
        """Keep a promotion's journal; see L{IAdoptingStorage.keep_journal}."""
        self._journals.keep(name, data)
        return succeed(None)

    def drop_journal(self, name: str) -> Deferred[None]:
        """Remove a promotion's journal; see L{IAdoptingStorage.drop_journal}."""
        self._journals.drop([name])
        return succeed(None)

    def journals(self) -> Deferred[dict[str, bytes]]:
        """The journals kept; see L{IAdoptingStorage.journals}."""
        return succeed(self._journals.all())

    def scan(self, known: dict[str, FileRecord] | None = None, since: float = 0.0,
             tombstones: Iterable[str] = (), persist: bool = True) -> Deferred[ScanResult]:
        """
        What the storage holds, reading objects put there directly; see
        L{IStorage.scan}. Its own tombstones are always exact, so the
        snapshot's are not needed.
        """
        return maybeDeferred(self._scan_sync, known or {}, since, persist)

    def locate(self, record: FileRecord) -> MemoryFile | RemoteBytes:
        """
        Files are sent from memory; one whose bytes are gone is read as a
        missing file (a 404, as on disk).
        """
        data = self.objects.get(record.path)
        if data is None:
            return RemoteBytes(_missing(record.path))
        return MemoryFile(data)

    def locate_metadata(self, record: FileRecord) -> MemoryFile | RemoteBytes:
        """Metadata is sent from memory, or read as a missing file when there is none."""
        data = self._sidecars.metadata_of(record.filename)
        if data is None:
            return RemoteBytes(_missing(record.path + ".metadata"))
        return MemoryFile(data)

    def read_metadata(self, record: FileRecord) -> Deferred[bytes]:
        """A file's metadata, or L{FileNotFoundError} when none is kept."""
        data = self._sidecars.metadata_of(record.filename)
        if data is None:
            return fail(FileNotFoundError(record.path + ".metadata"))
        return succeed(data)

    def copy_source(self, record: FileRecord) -> HeldFile:
        """
        What a promotion from this storage takes of C{record}'s file (the
        very bytes object, shared); L{FileNotFoundError} when none is held.
        """
        data = self.objects.get(record.path)
        if data is None:
            raise FileNotFoundError(record.path)
        return HeldFile(data, self._sidecars.metadata_of(record.filename),
                        self._sidecars.details.get(record.filename),
                        self._sidecars.provenance.get(record.filename))

    def read_details(self, record: FileRecord) -> Deferred[bytes | None]:
        """A file's details, or L{None} when none are kept."""
        return succeed(self._sidecars.details.get(record.filename))

    def describe(self, record: FileRecord) -> Deferred[bytes | None]:
        """Render and keep a file's details from its bytes."""
        data = self.objects.get(record.path)
        if data is None or record.filename not in self._sidecars.records:
            return succeed(None)
        inspected = inspect_bytes(data, record.filename, record.path, record.upload_time)
        if isinstance(inspected, str):
            return succeed(None)
        self._sidecars.details[record.filename] = inspected.details
        return succeed(inspected.details)

    # -- the work, done at once --------------------------------------------------------

    def _prepare_sync(self) -> None:
        """Make the spool folder and sweep its files (folders a person put there stay)."""
        try:
            os.makedirs(self.temp_dir, exist_ok=True)
            for entry in os.scandir(self.temp_dir):
                if entry.is_file(follow_symlinks=False):
                    remove_file(entry.path)
        except OSError as e:
            raise StorageError(f"cannot use {self.temp_dir} as the spool folder: {e.strerror}")

    def _publish_sync(self, temp_path: str, record: FileRecord, metadata: bytes | None,
                      details: bytes | None, provenance: bytes | None = None) -> FileRecord:
        """Take the spooled bytes in, consuming the spooled file whatever happens."""
        try:
            if record.filename in self._sidecars.tombstones:
                raise FilenameDeleted(record.filename)
            self._refuse_taken(record)
            with open(temp_path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise StorageError(f"cannot read the spooled upload: {e.strerror}")
        finally:
            remove_file(temp_path)
        self.objects[record.path] = data
        self._sidecars.keep(record.filename, metadata, details)
        if provenance is not None:
            self._sidecars.provenance[record.filename] = provenance
        self._sidecars.records[record.filename] = record
        self._sidecars.changed[record.filename] = self._clock.seconds()
        return record

    def _refuse_taken(self, record: FileRecord) -> None:
        """
        Raise L{FileExists} when C{record.path} holds bytes, or when the
        filename is stored under another key: publishing would overwrite a
        file or the record of another.
        """
        stored = self._sidecars.records.get(record.filename)
        key = record.path
        if key not in self.objects:
            if stored is None or stored.path not in self.objects:
                return
            key = stored.path
        data = self.objects[key]
        if stored is not None and stored.path == key and stored.size == len(data):
            raise FileExists(record.filename, stored.sha256, stored)
        # Bytes put there directly and not read by a scan yet: no record.
        raise FileExists(record.filename, hashlib.sha256(data).hexdigest())

    def _adopt_sync(self, source: IStorage, record: FileRecord,
                    promotion: Promotion) -> FileRecord:
        """Take the source's bytes object in, unless the name is taken or dead."""
        if not isinstance(source, MemoryStorage):
            raise StorageError("a file can be promoted only from a storage of the same kind")
        held = source.copy_source(record)
        adopted = record.replace(path=record.filename)
        if adopted.filename in self._sidecars.tombstones:
            raise FilenameDeleted(adopted.filename)
        try:
            self._refuse_taken(adopted)
        except FileExists as e:
            if e.sha256 != record.sha256:
                raise
            # There already, with these bytes: nothing changes.
            return e.record if e.record is not None else adopted
        self.objects[adopted.path] = held.data
        self._sidecars.keep(adopted.filename, held.metadata, held.details)
        if held.provenance is not None:
            self._sidecars.provenance[adopted.filename] = held.provenance
        self._sidecars.promotions[adopted.filename] = promotion
        self._sidecars.records[adopted.filename] = adopted
        self._sidecars.changed[adopted.filename] = self._clock.seconds()
        return adopted

    def _discard_adopted_sync(self, record: FileRecord) -> None:
        """Forget the file and what is kept beside it, unless other bytes hold the name."""
        stored = self._sidecars.records.get(record.filename)
        if stored is not None and stored.sha256 != record.sha256:
            return
        key = stored.path if stored is not None else record.filename
        data = self.objects.get(key)
        if data is not None and stored is None and (
                hashlib.sha256(data).hexdigest() != record.sha256):
            return
        self.objects.pop(key, None)
        self._sidecars.forget(record.filename)
        self._sidecars.changed[record.filename] = self._clock.seconds()

    def _update_sync(self, record: FileRecord) -> None:
        """Keep a new record, unless its name is a tombstone (a delete is final)."""
        if record.filename in self._sidecars.tombstones:
            raise FilenameDeleted(record.filename)
        self._sidecars.records[record.filename] = record
        self._sidecars.changed[record.filename] = self._clock.seconds()

    def _delete_sync(self, record: FileRecord) -> None:
        """Keep the tombstone, then forget the bytes, metadata and record."""
        now = self._clock.seconds()
        self._sidecars.tombstones[record.filename] = now
        self._sidecars.changed[record.filename] = now
        self.objects.pop(record.path, None)
        self._sidecars.forget(record.filename)

    def _add_tombstone_sync(self, filename: str) -> None:
        """
        Keep the tombstone, unless bytes of that name are held (with a
        record or put there directly, under any key).
        """
        if filename in self._sidecars.tombstones:
            return
        for key, data in self.objects.items():
            if not _hidden(key) and key.rpartition("/")[2] == filename:
                stored = self._sidecars.records.get(filename)
                raise FileExists(filename, stored.sha256 if stored is not None
                                 else hashlib.sha256(data).hexdigest(), stored)
        now = self._clock.seconds()
        self._sidecars.tombstones[filename] = now
        self._sidecars.changed[filename] = now
        self._sidecars.records.pop(filename, None)

    def _scan_sync(self, known: dict[str, FileRecord], since: float,
                   persist: bool = True) -> ScanResult:
        """List every object once, under the name a tombstone does not hide."""
        now = self._clock.seconds()
        since = since if since <= now else 0.0  # (from the future: the clock went back)
        records: dict[str, FileRecord] = {}
        skipped: list[tuple[str, str]] = []
        for key in sorted(self.objects, key=self._listing_order):
            if _hidden(key):
                continue
            filename = key.rpartition("/")[2]
            if filename in self._sidecars.tombstones:
                continue
            if filename in records:
                skipped.append((key, f"another file named {filename} is already listed"))
                continue
            record = self._record_for(key, filename, known, since, now, persist)
            if isinstance(record, str):
                skipped.append((key, record))
            else:
                records[filename] = record
        promotions = {filename: self._sidecars.promotions[filename] for filename in records
                      if filename in self._sidecars.promotions}
        return ScanResult(records=records, tombstones=frozenset(self._sidecars.tombstones),
                          skipped=tuple(skipped), promotions=promotions)

    def _listing_order(self, key: str) -> tuple[bool, str]:
        """Keys in order, but a stored record's own key before another of its name."""
        stored = self._sidecars.records.get(key.rpartition("/")[2])
        return (stored is None or stored.path != key, key)

    def _record_for(self, key: str, filename: str, known: dict[str, FileRecord], since: float,
                    now: float, persist: bool = True) -> FileRecord | str:
        """
        The record of the bytes under C{key}: C{known}'s when the name did not
        change since C{since}, else the stored one, else what the bytes say
        (kept when C{persist}, so the next scan gives the same record); or why
        they are skipped. A record whose size is not the bytes' describes
        other bytes.
        """
        size = len(self.objects[key])
        previous = known.get(filename)
        changed = self._sidecars.changed.get(filename)
        if (previous is not None and changed is not None and changed < since
                and previous.path == key and previous.size == size):
            return previous
        stored = self._sidecars.records.get(filename)
        if stored is not None and stored.size == size:
            return stored if stored.path == key else stored.replace(path=key)
        return self._import(key, filename, now, persist)

    def _import(self, key: str, filename: str, now: float,
                persist: bool = True) -> FileRecord | str:
        """
        Describe bytes put there directly, with the time they were found as
        upload time; without C{persist}, only their metadata is kept, aside
        (and no details are rendered).
        """
        inspected = inspect_bytes(self.objects[key], filename, key, now, details=persist)
        if isinstance(inspected, str):
            return inspected
        return self._sidecars.imported(filename, inspected, now, persist)


# -- bytes held without a record (put into objects directly, as a file is
# copied into a folder by hand): the pure half of the scan and of describe,
# as storage.folder.folder_imports is the local backend's


def _digests(data: bytes) -> tuple[int, str, str, str]:
    """C{(size, sha256, blake2_256, md5)} of C{data}, as L{inspect} takes them."""
    return (len(data), hashlib.sha256(data).hexdigest(),
            hashlib.blake2b(data, digest_size=32).hexdigest(),
            hashlib.md5(data, usedforsecurity=False).hexdigest())


def inspect_bytes(data: bytes, filename: str, key: str, now: float,
                  details: bool = True) -> Inspected | str:
    """
    What the bytes under C{key} are, found at C{now} (their upload time),
    with their details rendered when C{details}; or why they are not served.
    """
    try:
        return inspect(io.BytesIO(data), filename, key, now, _digests(data), legacy=True,
                       details=render_description if details else None)
    except (InvalidName, InvalidDistribution) as e:
        return str(e)

