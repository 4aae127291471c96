"""
What the index asks of a storage backend.

Storage is the source of truth: every file the index lists, what cannot be
read back from the file (upload time, yank state, tombstones) and each
project's status that is not the default (PEP 792). The in-memory index and
its snapshot are caches that L{IStorage.scan} can always rebuild.

Every method that touches the backend returns a Deferred, so the network
and local backends are interchangeable; each fails with L{StorageError}
when the backend does. Optional capabilities are in
L{pypid.storage.base.capabilities}.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any, Literal, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import Attribute, Interface

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.pending import PendingFile
from pypid.core.indexes.promotion import Promotion

#: (the namespace these lines always had, before the module moved: log filters keep matching)
log = Logger(namespace="pypid.storage.interface")


def checked_provenance(record: FileRecord, data: bytes | None) -> bytes | None:
    """
    C{data} when it is the provenance C{record} names (its sha256), else
    L{None}, logged: only the provenance verified at upload is ever served.
    """
    wanted = record.provenance_sha256
    if wanted is None or data is None:
        if wanted is not None:
            log.warn("The provenance of {filename} is missing from the storage",
                     filename=record.filename)
        return None
    if hashlib.sha256(data).hexdigest() != wanted:
        log.warn("The stored provenance of {filename} does not match its record: not served",
                 filename=record.filename)
        return None
    return data


class StorageError(Exception):
    """The backend failed; the server answers 503 and indexes nothing."""


class FileExists(Exception):
    """
    A file with this name is already stored (perhaps by a concurrent
    upload); it was not overwritten.

    @ivar record: the stored file's L{FileRecord} as storage holds it now,
        when the backend read it (a shared one: another server may have
        yanked it).
    """

    def __init__(self, filename: str, sha256: str | None = None,
                 record: FileRecord | None = None) -> None:
        super().__init__(filename)
        self.filename = filename
        self.sha256 = sha256
        self.record = record


class RecordRefused(Exception):
    """
    The backend cannot keep this file's record (S3's 2 KB of user
    metadata): nothing was stored, and the upload is refused (400).
    """


class FilenameDeleted(Exception):
    """The filename belonged to a file that was deleted; it is never reused."""


class AlreadyBinned(Exception):
    """
    Another server on a shared storage binned the file first: this
    binning is neither made nor recorded again.
    """


@attrs.frozen
class ScanResult:
    """
    What a backend holds: the live files and the deleted filenames.

    @ivar skipped: C{(path, reason)} for files that are not valid distributions.
    @ivar settled: L{None}, or a L{Deferred} firing when the work the scan
        left running (keeping what it learnt of imported files) is done.
    @ivar current: whether the scan found, reading nothing, that storage is
        as the given snapshot says: it need not be written again (after a
        scan that read anything it is, dated now, so the next start need
        not read them).
    """

    records: dict[str, FileRecord]
    tombstones: frozenset[str]
    skipped: tuple[tuple[str, str], ...] = ()
    settled: Deferred[Any] | None = None
    current: bool = False
    #: files without a record, left to describe later (a scan with C{later})
    pending: tuple[PendingFile, ...] = ()
    #: the L{Promotion}s of the promoted files, by filename; L{None} when the
    #: scan read nothing to know them from (it trusted the snapshot or the
    #: journal): then they are as the caller last knew them
    promotions: dict[str, Promotion] | None = attrs.field(factory=dict)
    #: every project's status object, read after the files by a shared
    #: storage's full check (so a quarantine kept before a file is never
    #: missed); L{None} when not read (a scan: see L{IStorage.statuses})
    statuses: dict[str, bytes] | None = None


@attrs.frozen
class LocalFile:
    """A stored object that the server can send from the local filesystem."""

    path: str


@attrs.frozen
class MemoryFile:
    """A stored object that the server holds in memory (briefly, after an import)."""

    data: bytes


@attrs.frozen
class Redirect:
    """A stored object the client fetches from a presigned or public URL (302)."""

    url: str


class Deliverable(Protocol):
    """A body that is delivered to a protocol (a L{twisted.web.iweb.IResponse})."""

    def deliverBody(self, protocol: Any) -> None:
        """Deliver the body to C{protocol}."""
        ...


@attrs.frozen
class RemoteFile:
    """
    A stored object that the server relays from a remote store as it arrives.

    @ivar size: from the record, so ranges, C{HEAD} and C{304} need no request.
    @ivar fetch: C{fetch(start, length) -> Deferred} of a L{Deliverable} of
        exactly those bytes; fails with L{StorageError}, or
        L{FileNotFoundError} when the object is missing.
    """

    size: int
    fetch: Callable[[int, int], Deferred[Deliverable]]


@attrs.frozen
class RemoteBytes:
    """
    A small stored object (core metadata) fetched whole before answering:
    C{read() -> Deferred} of its bytes, failing like L{RemoteFile.fetch}.
    """

    read: Callable[[], Deferred[bytes]]


#: How a stored object is sent to a client (L{IStorage.locate}).
Location = LocalFile | MemoryFile | Redirect | RemoteFile | RemoteBytes


#: what L{IStorage.check} finds: the storage answers (C{"ok"}), does not
#: (C{"down"}), or answers with less room than C{[storage] min_free} (C{"full"})
StorageState = Literal["ok", "down", "full"]


class IStorage(Interface):
    """A place that keeps distribution files and what is known about them."""

    temp_dir = Attribute("A local directory where uploads are spooled before publish().")

    def prepare() -> Deferred[None]:
        """Make the backend ready and remove what a crash left; once, at start-up."""

    def close() -> Deferred[Any] | None:
        """Release what L{prepare} took (locks, connections); called on stop."""

    def check() -> Deferred[StorageState]:
        """Whether the backend answers now, for C{/health} (see L{StorageState})."""

    def publish(temp_path: str, record: FileRecord, metadata: bytes | None,
                details: bytes | None = None, provenance: bytes | None = None,
                ) -> Deferred[FileRecord]:
        """
        Store the spooled file at C{temp_path} under C{record.path}, with its
        record, core metadata, details (L{pypid.core.dists.details.Details}
        bytes) and provenance (PEP 740), each optional, durably and never
        over anything; the provenance is kept before the file is visible.
        The temporary file is consumed either way. Fails with L{FileExists}
        or L{FilenameDeleted}.
        """

    def keep_provenance(record: FileRecord, provenance: bytes) -> Deferred[FileRecord]:
        """
        Keep the provenance of a stored file (an upstream's, fetched after
        it), then its record naming its digest: the new record, or
        L{FileNotFoundError} when the file is gone.
        """

    def read_provenance(record: FileRecord) -> Deferred[bytes | None]:
        """A stored file's provenance if it matches the record's digest, else L{None}."""

    def update(record: FileRecord) -> Deferred[None]:
        """
        Replace a stored file's yank and recycle-bin state. Fails with
        L{FilenameDeleted}, or L{AlreadyBinned} (a shared storage).
        """

    def delete(record: FileRecord) -> Deferred[None]:
        """
        Remove a stored file and all kept beside it, behind a tombstone so the
        name is never reused; L{FilenameDeleted} when another server deleted
        it first.
        """

    def add_tombstone(filename: str) -> Deferred[None]:
        """
        Keep a tombstone for a filename no stored file has (a delete carried
        over by C{pypid-admin import}); one there already is no error, a
        stored file of that name is L{FileExists}.
        """

    def keep_status(project: str, data: bytes | None) -> Deferred[None]:
        """
        Keep, durably, the status of the normalized C{project} (a
        L{pypid.core.indexes.project_status.ProjectStatus}'s bytes), or remove
        it (L{None}). A shared storage has told the other servers when it
        fires: their next poll reports it, never after a file kept later.
        """

    def statuses() -> Deferred[dict[str, bytes]]:
        """Every status L{keep_status} kept, by project: read at a start, after the files."""

    def identity() -> str:
        """Names this backend's data, so a snapshot of other data is never used."""

    def scan(known: dict[str, FileRecord] | None, since: float, tombstones: Iterable[str],
             persist: bool = True) -> Deferred[ScanResult]:
        """
        List what the backend holds, trusting the snapshot's C{known} records
        and C{tombstones} where nothing changed since C{since} (0: no
        snapshot). A file found without a record is described, and by
        default what was learnt is kept beside it, so the next scan is cheap.

        @param persist: L{False} for a reader that must not disturb the
            storage (C{pypid-export} beside a running daemon, perhaps on a
            read-only mount): nothing at all is written (an unprepared
            backend is read as it is); the records are a persisting scan's,
            the metadata of files read is served from memory from then on,
            their details and C{settled} are L{None}.
        """

    def locate(record: FileRecord) -> Location:
        """Say how to send a stored file to a client."""

    def locate_metadata(record: FileRecord) -> Location:
        """Say how to send a stored file's core metadata (PEP 658): never a L{RemoteFile}."""

    def read_metadata(record: FileRecord) -> Deferred[bytes]:
        """Read a stored file's core metadata (for the JSON API), or L{FileNotFoundError}."""

    def read_details(record: FileRecord) -> Deferred[bytes | None]:
        """
        A stored file's details (for the pages for people), or L{None}: an
        imported file has them once L{ScanResult.settled}.
        """

    def describe(record: FileRecord) -> Deferred[bytes | None]:
        """
        Render a stored file's details from the file and keep them (slow: a
        worker thread reads and renders it); L{None} when it cannot be
        described (gone, or not a distribution).
        """
