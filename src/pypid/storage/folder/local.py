"""
Storage on the local filesystem: the embedded default, which needs no setup.

Layout under the root folder::

    <filename>                       distribution files, flat (pypiserver's layout;
                                     nested folders of an existing tree are read too)
    .pypid/files/<filename>.*        its record, or tombstone, and the sidecars
                                     (L{pypid.storage.folder.sidecars})
    .pypid/tmp/                      uploads being received (L{spool_name}); swept at start
    .pypid/promotions/<name>.json    the journal of a promotion under way
    .pypid/projects/<project>.status a project's status that is not active (PEP 792)

An upload or a promotion is a hard link that fails rather than overwrites,
its record written after it (L{pypid.storage.folder.folder_changes}).
L{LocalStorage} is a thin Deferred front over collaborators doing the
blocking work in its thread pool. A folder may be writable yet full:
L{LocalStorage.check} compares its free space (C{statvfs}, 3 us) with
C{[storage] min_free} too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from pypid.core.dists.model import FileRecord
from pypid.core.dists.readme import Renderer, render_description
from pypid.core.indexes.pending import PendingFile
from pypid.core.indexes.promotion import Promotion
from pypid.core.parts import IMetricsSource
from pypid.core.records.metrics import Family, gauge
from pypid.core.util.units import counted
from pypid.jobs.run import Run
from pypid.storage.base.capabilities import (
    IAdoptingStorage,
    IBackfillStorage,
    IEvictingStorage,
    IServerDocuments,
    IUsageStorage,
    document_name,
)
from pypid.storage.base.disk import (
    exclusive_lock,
    fsync_folder,
    read_if_present,
    remove_file,
    sweep_files,
    write_atomically,
)
from pypid.storage.base.interface import (
    IStorage,
    LocalFile,
    MemoryFile,
    ScanResult,
    StorageError,
    StorageState,
    checked_provenance,
)
from pypid.storage.folder.folder_changes import FolderChanges
from pypid.storage.folder.folder_imports import FolderImports, Imported
from pypid.storage.folder.folder_scan import FolderScan
from pypid.storage.folder.sidecars import (
    META_DIR,
    WORKER_SPOOL,
    Sidecars,
    spool_name,
    storage_errors,
)

#: (the namespace these lines always had, before the module moved: log filters keep matching)
log = Logger(namespace="pypid.storage.local")
#: (the namespace the folder's preparation has always logged under)
_lock_log = Logger(namespace="pypid.storage.folder_lock")

#: The suffix of a project's status file in C{.pypid/projects/}.
_STATUS = ".status"


#: the default of C{[storage] min_free}: below it the storage is full
MIN_FREE = 1 << 30


@implementer(IStorage, IAdoptingStorage, IBackfillStorage, IEvictingStorage, IMetricsSource,
             IUsageStorage, IServerDocuments)
@attrs.define
class LocalStorage:
    """
    Files in a folder on local disk.

    @ivar root: the storage folder (absolute).
    @ivar _min_free: the bytes free below which L{check} says C{"full"}.
    @ivar _render: renders a description (the daemon's sandbox).
    """

    root: str
    _run: Run
    _clock: IReactorTime | None = None
    _min_free: int = MIN_FREE
    _statvfs: Callable[[str], os.statvfs_result] = os.statvfs
    _render: Renderer = attrs.field(default=render_description, kw_only=True)
    #: the machine's worker this process is (their supervisor holds the
    #: lock); 0: a server of one process, or the supervisor
    _worker: int = attrs.field(default=0, kw_only=True)
    _sidecars: Sidecars = attrs.field(init=False, repr=False, eq=False)
    _lock: FolderLock = attrs.field(init=False, repr=False, eq=False)
    _changes: FolderChanges = attrs.field(init=False, repr=False, eq=False)
    _imports: FolderImports = attrs.field(init=False, repr=False, eq=False)
    _scanner: FolderScan = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        self._sidecars = Sidecars(self.root, spool_name(self._worker))
        self._lock = FolderLock(self._sidecars, self._worker > 0)
        self._changes = FolderChanges(self._sidecars, self._clock)
        self._imports = FolderImports(self._sidecars, self._render)
        self._scanner = FolderScan(self._sidecars, self._imports)

    @property
    def temp_dir(self) -> str:
        """Where uploads are spooled: on the same filesystem, so link() works."""
        return self._sidecars.temp_dir

    # -- the interface -------------------------------------------------------

    def prepare(self) -> Deferred[None]:
        """Create the folders, take the folder's lock and sweep what a crash left."""
        return self._run(self._lock.prepare)

    def lock_descriptor(self) -> int | None:
        """The folder lock's descriptor, which the supervisor's lean process inherits."""
        return self._lock.fd

    def close(self) -> None:
        """Release the folder (at the end of the service's life)."""
        self._lock.close()

    def check(self) -> Deferred[StorageState]:
        """Whether the folder can be written to now, and has C{min_free} bytes free."""
        return self._run(self._check_sync)

    def _check_sync(self) -> StorageState:
        if not os.access(self.root, os.W_OK):
            return "down"
        free = self._free_bytes()
        if free is None:
            return "down"
        return "full" if free < self._min_free else "ok"

    def _free_bytes(self) -> int | None:
        """The bytes an unprivileged writer may use on the folder's file system, or L{None}."""
        try:
            stat = self._statvfs(self.root)
        except OSError:
            return None
        return stat.f_bavail * stat.f_frsize

    def metric_families(self) -> Iterator[Family]:
        """The free bytes of the folder's file system (one C{statvfs}, 3 us, in the reactor)."""
        free = self._free_bytes()
        if free is not None:
            yield gauge("pypid_storage_free_bytes",
                        "Bytes free for the storage folder on its file system; below "
                        "[storage] min_free, /health says the storage is full.", free)

    def publish(self, temp_path: str, record: FileRecord, metadata: bytes | None,
                details: bytes | None = None, provenance: bytes | None = None,
                ) -> Deferred[FileRecord]:
        """Link the spooled upload into place without overwriting; see the module."""
        return self._run(self._changes.publish, temp_path, record, metadata, details,
                         provenance)

    def keep_provenance(self, record: FileRecord, provenance: bytes) -> Deferred[FileRecord]:
        """Keep a stored file's provenance, then its record naming it; see L{IStorage}."""
        return self._run(self._changes.keep_provenance, record, provenance)

    def read_provenance(self, record: FileRecord) -> Deferred[bytes | None]:
        """A file's provenance from its sidecar, when it is the one its record names."""
        if record.provenance_sha256 is None:
            return succeed(None)
        return self._run(self._sidecars.read_provenance, record.filename).addCallback(
            lambda data: checked_provenance(record, data))

    def update(self, record: FileRecord) -> Deferred[None]:
        """Rewrite a file's record (a yank or an unyank)."""
        return self._run(self._changes.write_record, record)

    def delete(self, record: FileRecord) -> Deferred[None]:
        """Remove a file, keeping a tombstone for its name."""
        return self._run(self._changes.delete, record)

    def add_tombstone(self, filename: str) -> Deferred[None]:
        """Keep a tombstone for a name no stored file has; see L{IStorage.add_tombstone}."""
        return self._run(self._changes.add_tombstone, filename)

    def adopt(self, source: IStorage, record: FileRecord,
              promotion: Promotion) -> Deferred[FileRecord]:
        """Hard-link another folder's file and sidecars in, never over anything nor copying."""
        if not isinstance(source, LocalStorage):
            return fail(StorageError(
                "a file can be promoted only from a storage of the same kind"))
        return self._run(self._changes.adopt, source.copy_source(record), record, promotion)

    def copy_source(self, record: FileRecord) -> Sidecars:
        """
        Where a promotion out of this folder links C{record}'s file and
        sidecars from: the adopting storage reads no other's private state.
        """
        return self._sidecars

    def evict(self, records: Sequence[FileRecord]) -> Deferred[None]:
        """Remove cached files, without tombstones, in one call of the I/O pool."""
        return self._run(self._changes.evict, list(records))

    def discard_adopted(self, record: FileRecord) -> Deferred[None]:
        """Remove an adopted file, keeping no tombstone; see L{IAdoptingStorage.discard_adopted}."""
        return self._run(self._changes.discard_adopted, record)

    def keep_journal(self, name: str, data: bytes) -> Deferred[None]:
        """Keep a promotion's journal, durably; see L{IAdoptingStorage.keep_journal}."""
        return self._run(_keep_named, self._journal_dir, name, data)

    def drop_journal(self, name: str) -> Deferred[None]:
        """Remove a promotion's journal; see L{IAdoptingStorage.drop_journal}."""
        return self._run(_drop_named, self._journal_dir, [name])

    def journals(self) -> Deferred[dict[str, bytes]]:
        """The journals kept; see L{IAdoptingStorage.journals}."""
        return self._run(_named, self._journal_dir)

    def add_usage(self, name: str, data: bytes) -> Deferred[None]:
        """Keep a usage record, durably; see L{IUsageStorage.add_usage}."""
        return self._run(_keep_named, self._usage_dir, name, data)

    def usage_records(self) -> Deferred[dict[str, bytes]]:
        """The usage records kept; see L{IUsageStorage.usage_records}."""
        return self._run(_named, self._usage_dir)

    def usage_record(self, name: str) -> Deferred[bytes | None]:
        """One usage record; see L{IUsageStorage.usage_record}."""
        return self._run(_read_named, self._usage_dir, name)

    def drop_usage(self, names: Sequence[str]) -> Deferred[None]:
        """Remove usage records; see L{IUsageStorage.drop_usage}."""
        return self._run(_drop_named, self._usage_dir, list(names))

    @property
    def _usage_dir(self) -> str:
        return os.path.join(self.root, ".pypid", "usage")

    @property
    def _journal_dir(self) -> str:
        return os.path.join(self.root, ".pypid", "promotions")

    def keep_status(self, project: str, data: bytes | None) -> Deferred[None]:
        """Keep or remove a project's status, durably; see L{IStorage.keep_status}."""
        return self._run(self._keep_status_sync, project, data)

    def statuses(self) -> Deferred[dict[str, bytes]]:
        """The projects' statuses kept; see L{IStorage.statuses}."""
        # (no folder of statuses, or no .pypid/ folder at all: a folder read
        # where none could be made holds none)
        return self._run(_named, self._status_dir, _STATUS, NotADirectoryError)

    @property
    def _status_dir(self) -> str:
        return os.path.join(self.root, ".pypid", "projects")

    def _keep_status_sync(self, project: str, data: bytes | None) -> None:
        path = os.path.join(self._status_dir, project + _STATUS)
        with storage_errors():
            if data is None:
                remove_file(path)
            else:
                write_atomically(path, data)
            if os.path.isdir(self._status_dir):
                fsync_folder(self._status_dir)

    def keep_document(self, name: str, data: bytes) -> Deferred[None]:
        """Keep a server document, durably; see L{IServerDocuments.keep_document}."""
        return self._run(_keep_named, os.path.join(self.root, ".pypid"), document_name(name),
                         data)

    def document(self, name: str) -> Deferred[bytes | None]:
        """A server document kept; see L{IServerDocuments.document}."""
        return self._run(self._document_sync,
                         os.path.join(self.root, ".pypid", document_name(name) + ".json"))

    @staticmethod
    def _document_sync(path: str) -> bytes | None:
        with storage_errors():
            try:
                return read_if_present(path)
            except NotADirectoryError:
                return None

    def identity(self) -> str:
        """The folder's path: a snapshot of another folder is not used."""
        return f"local:{self.root}"

    def scan(self, known: dict[str, FileRecord] | None = None, since: float = 0.0,
             tombstones: Iterable[str] = (), persist: bool = True,
             later: bool = False) -> Deferred[ScanResult]:
        """
        Walk the folder; see L{IStorage.scan}. What was learnt of files
        without a record is written in the background, not holding up
        start-up; C{later}, they are left in C{pending} and only folders are
        read (0.5 s rather than 40 s for a bare folder of 100,000 files).
        """
        d: Deferred[tuple[ScanResult, list[Imported]]] = self._run(
            self._scanner.scan, known or {}, since, frozenset(tombstones), persist, later)
        if persist:
            return d.addCallback(self._persist_imported)
        return d.addCallback(lambda scanned: scanned[0])

    def _persist_imported(self, scanned: tuple[ScanResult, list[Imported]]) -> ScanResult:
        result, imported = scanned
        if imported:
            done: Deferred[None] = self._run(self._imports.write_imported, imported)
            done.addErrback(lambda f: log.failure("Cannot keep imported records", f))
            result = attrs.evolve(result, settled=done)
        return result

    def describe_pending(self, pending: Sequence[PendingFile],
                         persist: bool = True,
                         ) -> Deferred[list[tuple[PendingFile, FileRecord | str]]]:
        """Describe files a scan left pending; see L{IBackfillStorage.describe_pending}."""
        return self._run(self._imports.describe_pending, pending, persist)

    def locate(self, record: FileRecord) -> LocalFile:
        """Files are sent straight from the folder."""
        return LocalFile(self._sidecars.file_path(record.path))

    def locate_metadata(self, record: FileRecord) -> LocalFile | MemoryFile:
        """From the sidecar, or memory after an import or a scan that did not persist."""
        data = self._imports.unwritten(record.filename)
        if data is not None:
            return MemoryFile(data)
        return LocalFile(self._sidecars.metadata_path(record.filename))

    def read_metadata(self, record: FileRecord) -> Deferred[bytes]:
        """A file's metadata, from memory as L{locate_metadata}, else its sidecar."""
        data = self._imports.unwritten(record.filename)
        if data is not None:
            return succeed(data)
        return self._run(self._sidecars.read_metadata, record.filename)

    def read_details(self, record: FileRecord) -> Deferred[bytes | None]:
        """A file's details from their sidecar, or L{None} when there is none (yet)."""
        return self._run(self._sidecars.read_details, record.filename)

    def describe(self, record: FileRecord) -> Deferred[bytes | None]:
        """Render a file's details from the file and keep them in their sidecar."""
        return self._run(self._imports.describe, record)


# -- the folder made ready for one server ------------------------------------------


@attrs.define(eq=False)
class FolderLock:
    """
    Prepares a folder and holds its lock for the life of the process (in
    C{fd}): two servers on one folder would each miss the other's uploads.
    Blocking. In a C{shared} folder the supervisor took the lock and swept
    every spool; a worker sweeps its own only.
    """

    _sidecars: Sidecars
    shared: bool = False
    fd: int | None = attrs.field(default=None, init=False, repr=False)

    def prepare(self) -> None:
        """Create the folders, take the lock and sweep temporary files left by a crash."""
        sidecars = self._sidecars
        try:
            for d in (sidecars.root, sidecars.files_dir, sidecars.temp_dir):
                os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise StorageError(
                f"cannot use {sidecars.root} as the storage folder: {e.strerror}")
        spools = [sidecars.temp_dir]
        if not self.shared:
            self._lock()
            # (and the workers' of the machine that ran here last)
            meta = os.path.join(sidecars.root, META_DIR)
            spools += [entry.path for entry in os.scandir(meta)
                       if entry.name.startswith(WORKER_SPOOL) and entry.is_dir()]
        swept = sum(map(sweep_files, spools))
        if swept:
            _lock_log.info("Removed {files} left by an earlier run",
                           files=counted(swept, "temporary file"))

    def _lock(self) -> None:
        """Take the folder's exclusive lock, unless held already."""
        if self.fd is not None:
            return
        root = self._sidecars.root
        fd = exclusive_lock(os.path.join(root, META_DIR, "lock"))
        if fd is None:
            raise StorageError(f"{root} is in use by another pypid process")
        self.fd = fd

    def close(self) -> None:
        """Release the folder (at the end of the service's life)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


# -- small files by name: the usage records, the promotions' journals, the projects'
# statuses, the server documents


def _keep_named(folder: str, name: str, data: bytes) -> None:
    """Write C{<folder>/<name>.json} atomically and durably."""
    with storage_errors():
        write_atomically(os.path.join(folder, name + ".json"), data)
        fsync_folder(folder)


def _read_named(folder: str, name: str) -> bytes | None:
    """C{<folder>/<name>.json}, or L{None} when there is none."""
    with storage_errors():
        return read_if_present(os.path.join(folder, name + ".json"))


def _named(folder: str, suffix: str = ".json",
           missing: type[OSError] = FileNotFoundError) -> dict[str, bytes]:
    """Every C{<name><suffix>} of C{folder}, by name (none if opening it fails with C{missing})."""
    found: dict[str, bytes] = {}
    with storage_errors():
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, missing):
            return found
        for entry in entries:
            if entry.name.endswith(suffix) and not entry.name.startswith("."):
                data = read_if_present(entry.path)
                if data is not None:
                    found[entry.name[:-len(suffix)]] = data
    return found


def _drop_named(folder: str, names: Iterable[str]) -> None:
    """Remove C{<folder>/<name>.json} of each name (those not there are gone already)."""
    with storage_errors():
        for name in names:
            remove_file(os.path.join(folder, name + ".json"))
        fsync_folder(folder)
