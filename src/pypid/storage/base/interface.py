"""
What the index asks of a storage backend.

Storage is the source of truth: every file the index lists, and everything
the index knows about it that cannot be read back from the file (upload time,
yank state, tombstones of deleted filenames), is kept there; so is each
project's status (PEP 792) that is not the default, one small object a
project (L{IStorage.keep_status}). The in-memory
index and its snapshot are caches that can always be rebuilt with L{scan}.

All methods that touch the backend return Deferreds, so a network backend
(S3) and the local one are interchangeable behind this interface; each
fails with L{StorageError} when the backend does, besides the failures its
docstring names.

What a backend may provide besides this (sharing, adopting, evicting, usage
records, the server's documents) is in L{pypid.storage.base.capabilities}.
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
    C{data}, the provenance kept beside C{record}'s file, when it is the one
    the record names (its sha256); L{None} otherwise, logged when there was
    something else (a provenance is never served unless it is exactly the
    one verified at upload or checked from the upstream).
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
    A file with this name is already stored (possibly just now, by a
    concurrent upload); it was not overwritten.

    @ivar sha256: the stored file's digest, when known.
    @ivar record: the stored file's L{FileRecord} as storage holds it now,
        when the backend read it (a shared one does: another server may have
        yanked it); L{None} otherwise.
    """

    def __init__(self, filename: str, sha256: str | None = None,
                 record: FileRecord | None = None) -> None:
        super().__init__(filename)
        self.filename = filename
        self.sha256 = sha256
        self.record = record


class RecordRefused(Exception):
    """
    The backend cannot keep this file's record as it is (S3's 2 KB of an
    object's user metadata): nothing was stored, and the upload is refused
    (400) with the reason, rather than failing as the store would.
    """


class FilenameDeleted(Exception):
    """The filename belonged to a file that was deleted; it is never reused."""


class AlreadyBinned(Exception):
    """
    Another server on a shared storage put the file in the recycle bin
    first (its marker was there): this server's binning is not made, nor
    recorded, again.
    """


@attrs.frozen
class ScanResult:
    """
    What a backend holds: the live files and the deleted filenames.

    @ivar records: L{FileRecord}s by filename.
    @ivar tombstones: filenames that were deleted and may not be reused.
    @ivar skipped: C{(path, reason)} for files that are not valid distributions.
    @ivar settled: L{None}, or a L{Deferred} that fires when work the scan
        left running (keeping what it learnt beside imported files) is done.
    @ivar current: whether the scan found, without reading anything, that
        storage is as the snapshot it was given describes it: that snapshot
        need not be written again. (After a scan that read anything, even
        records equal to the snapshot's, it is written again, dated now, so
        that the next start need not read them.)
    """

    records: dict[str, FileRecord]
    tombstones: frozenset[str]
    skipped: tuple[tuple[str, str], ...] = ()
    settled: Deferred[Any] | None = None
    current: bool = False
    #: L{pypid.core.indexes.pending.PendingFile}s: files without a record, left to
    #: describe later, when the scan was asked to (C{later})
    pending: tuple[PendingFile, ...] = ()
    #: the L{Promotion}s of the listed files that were promoted into this
    #: storage (L{pypid.storage.base.capabilities.IAdoptingStorage.adopt}), by
    #: filename; L{None} when the scan read nothing to know them from (it
    #: trusted the snapshot, or brought a shared storage up to date from its
    #: change markers): then they are as the caller last knew them
    promotions: dict[str, Promotion] | None = attrs.field(factory=dict)
    #: every project's status object, by normalized name, read after the
    #: files (a shared storage's full check,
    #: L{pypid.storage.base.capabilities.ISharedStorage.reconcile}: a quarantine
    #: kept before a file it found is never missed); L{None} when not read
    #: (a scan: the start reads them, L{IStorage.statuses})
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
    """
    A stored object that the client fetches from elsewhere: a presigned URL
    of the bucket, or a public URL (a CDN). The server answers 302.
    """

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

    @ivar size: the object's size in bytes (from the record), so that ranges,
        C{HEAD} and C{304} are answered without asking the store.
    @ivar fetch: C{fetch(start, length) -> Deferred} firing with an object
        that has C{deliverBody(protocol)} (a L{twisted.web.iweb.IResponse})
        and delivers exactly those bytes; it fails with L{StorageError} when
        the store is unavailable and L{FileNotFoundError} when the object is
        missing.
    """

    size: int
    fetch: Callable[[int, int], Deferred[Deliverable]]


@attrs.frozen
class RemoteBytes:
    """
    A small stored object (core metadata) that the server fetches whole from
    a remote store before answering.

    @ivar read: C{read() -> Deferred} firing with the bytes, or failing like
        L{RemoteFile.fetch}.
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
        """
        Make the backend ready and remove what a crash left behind (temporary
        files). Called once at start-up.
        """

    def close() -> Deferred[Any] | None:
        """Release what L{prepare} took (locks, connections); called on stop."""

    def check() -> Deferred[StorageState]:
        """
        Whether the backend answers now, for C{/health}: C{"ok"}, C{"down"},
        or C{"full"} (it answers, but has too little room for uploads).
        """

    def publish(temp_path: str, record: FileRecord, metadata: bytes | None,
                details: bytes | None = None, provenance: bytes | None = None,
                ) -> Deferred[FileRecord]:
        """
        Store the spooled file at C{temp_path} under C{record.path}, with its
        record, its core metadata bytes (or L{None}), its details for the
        pages for people (L{pypid.core.dists.details.Details} bytes, or L{None})
        and its provenance object (PEP 740, whose sha256 is the record's
        C{provenance_sha256}; or L{None}), durably and without overwriting
        anything: the provenance is kept before the file is visible. The
        temporary file is consumed either way. Fails with L{FileExists} or
        L{FilenameDeleted}.
        """

    def keep_provenance(record: FileRecord, provenance: bytes) -> Deferred[FileRecord]:
        """
        Keep the provenance object C{provenance} of a stored file (one
        cached from the upstream, whose provenance is fetched after it),
        then its record with C{provenance_sha256} set to its digest: the
        new record, or L{FileNotFoundError} when the file is gone.
        """

    def read_provenance(record: FileRecord) -> Deferred[bytes | None]:
        """
        Read a stored file's provenance object, checked against the
        record's C{provenance_sha256}: L{None} when the record has none, or
        what is kept does not match it (never served).
        """

    def update(record: FileRecord) -> Deferred[None]:
        """
        Replace what is kept beside a stored file (its yank state, whether
        it is in the recycle bin). Fails with L{FilenameDeleted}, or, on a
        shared storage, L{AlreadyBinned} when C{record} is binned and
        another server binned it first.
        """

    def delete(record: FileRecord) -> Deferred[None]:
        """
        Remove a stored file, its metadata, details and provenance, and keep a
        tombstone so the filename is never reused. Fails with
        L{FilenameDeleted} when a shared storage finds another server
        deleted it first.
        """

    def add_tombstone(filename: str) -> Deferred[None]:
        """
        Keep a tombstone for a filename that no stored file has (a delete
        made on another server, carried over by C{pypid-admin import}), so
        that the name is never used. A tombstone already there is no error;
        a file of that name stored is L{FileExists} (it stays).
        """

    def keep_status(project: str, data: bytes | None) -> Deferred[None]:
        """
        Keep, durably, the status of the normalized C{project} (the bytes
        of a L{pypid.core.indexes.project_status.ProjectStatus}), or remove it
        (L{None}: the project is active again; none kept is no error).
        A shared storage (L{pypid.storage.base.capabilities.ISharedStorage}) has
        also told the other servers when it fires: their next
        L{pypid.storage.base.capabilities.ISharedStorage.poll} reports it, and a
        file kept after it is never reported before it.
        """

    def statuses() -> Deferred[dict[str, bytes]]:
        """
        Every status L{keep_status} kept, by normalized project: read at a
        start, after the files.
        """

    def identity() -> str:
        """
        A string naming this backend's data (a folder, a bucket and prefix),
        kept in the snapshot so a snapshot of other data is never used.
        """

    def scan(known: dict[str, FileRecord] | None, since: float, tombstones: Iterable[str],
             persist: bool = True) -> Deferred[ScanResult]:
        """
        List what the backend holds.

        A file found without a record (copied in by other means) is read and
        described; by default what was learnt is kept beside it, so that the
        next scan is cheap and gives the same record.

        @param known: L{FileRecord}s by filename from a snapshot; a backend may
            trust an entry whose file is unchanged instead of reading it again.
        @param since: POSIX time the snapshot was taken (0 without one);
            what changed after it is read again.
        @param tombstones: the snapshot's deleted filenames, which a backend
            may return as they are when it can tell nothing changed.
        @param persist: L{False} for a reader that must not disturb the
            storage (C{pypid-export}, beside a running daemon, perhaps on a
            read-only mount): the backend then writes nothing at all (no
            folders, records, metadata or details, no objects, in the
            background neither), and serves the metadata of the files it
            read through L{read_metadata} and L{locate_metadata} from memory
            for the rest of its life; their details are not rendered, so
            L{read_details} gives L{None} for them. A backend that was never
            prepared is read as it is (no folder of records: no records).
            The records are those a persisting scan gives (the daemon keeps
            them when it next scans), and C{settled} is L{None}.
        """

    def locate(record: FileRecord) -> Location:
        """Say how to send a stored file to a client."""

    def locate_metadata(record: FileRecord) -> Location:
        """Say how to send a stored file's core metadata (PEP 658): never a L{RemoteFile}."""

    def read_metadata(record: FileRecord) -> Deferred[bytes]:
        """Read a stored file's core metadata (for the JSON API), or L{FileNotFoundError}."""

    def read_details(record: FileRecord) -> Deferred[bytes | None]:
        """
        Read a stored file's details (for the pages for people). A file
        imported from a folder has them once the import's background work
        has rendered them (see L{ScanResult.settled}); L{None} when none are
        kept.
        """

    def describe(record: FileRecord) -> Deferred[bytes | None]:
        """
        Render a stored file's details from the file itself and keep them
        (for a file stored before details were kept, or whose import has
        not got to it yet). Slow: the file is read and its description
        rendered, in a worker thread. L{None} when the file cannot be
        described (it is gone, or not a distribution any more).
        """
