"""
What a storage backend may provide besides L{IStorage}, each capability an
interface of its own that the composition asks for by providing it: shared
by several servers (L{ISharedStorage}), describing files later
(L{IBackfillStorage}), keeping usage records (L{IUsageStorage}), evicting
cached files (L{IEvictingStorage}), adopting files of another storage
(L{IAdoptingStorage}) and keeping the server's documents
(L{IServerDocuments}). Apart from L{pypid.storage.base.interface}, which holds
what every backend gives, and the values it answers with. As there, each
L{Deferred} fails with L{StorageError} when the backend does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.pending import PendingFile
from pypid.core.indexes.promotion import Promotion
from pypid.storage.base.interface import IStorage, ScanResult


@attrs.frozen
class Changed:
    """
    A file's state after a change by another server: its record now (L{None}
    when it is not stored), whether its name is a tombstone, and who
    promoted it there and when (a dated view judges a promoted file by
    its promotion's time, not its upload's).
    """

    filename: str
    record: FileRecord | None
    deleted: bool
    promotion: Promotion | None = None


@attrs.frozen
class Polled:
    """
    What one look at a shared storage found changed (L{ISharedStorage.poll}).

    @ivar files: each changed file's state now.
    @ivar statuses: each project whose status changed, or one of whose
        files did, by normalized name: its status object now (L{None}:
        active). Read after the files, so a quarantine kept before a file
        (as an import keeps it) is here whenever the file is; take them in
        first.
    """

    files: list[Changed] = attrs.field(factory=list)
    statuses: dict[str, bytes | None] = attrs.field(factory=dict)


class ISharedStorage(Interface):
    """
    A storage that several servers may use at once (S3), and that keeps
    state of its own in the snapshot.
    """

    sync_interval = Attribute("Seconds between two looks for other servers' changes.")
    checked_after_start = Attribute(
        "Whether a start from a snapshot that names the journal's serial it took in serves it, "
        "the journal's changes after it taken in, and checks the storage once it listens, as a "
        "server's own folder is (a machine's folder: the check is a scan of the local disk); "
        "otherwise the storage is read before the server answers (a bucket's listing).")

    def poll() -> Deferred[Polled]:
        """
        The changes other servers made since the last call: to files, and
        to projects' statuses (L{IStorage.keep_status}).
        """

    def reconcile_due() -> bool:
        """
        Whether the changes cannot be known from the journal alone (the
        index came from a snapshot, and what changed behind pypid's back is
        not in it; a worker ended; the journal lost entries), so that
        L{reconcile} is needed.
        """

    def synced_at() -> float | None:
        """
        When this server last took in every change made through others (POSIX
        time), or L{None}; a snapshot stands for no later a time than this.
        """

    def changes_read() -> int | None:
        """
        The journal's serial up to which this server took in the storage's
        changes (L{None}: not known yet), kept in the snapshot.
        """

    def resume(serial: int) -> None:
        """
        The index comes from a snapshot that took in the changes up to the
        journal's C{serial} (L{changes_read}): the start reads those after it.
        """

    def reconcile(known: dict[str, FileRecord],
                  tombstones: Iterable[str]) -> Deferred[ScanResult]:
        """
        Compare the whole storage with the index's records; the projects'
        statuses are read after the files (L{ScanResult.statuses}).
        """

    def state() -> Any:
        """What this backend keeps in the local snapshot (JSON-ready), or L{None}."""

    def state_changed() -> bool:
        """Whether L{state} changed since it was last taken."""

    def restore_state(state: Any) -> None:
        """Take back what L{state} gave, from the snapshot, after C{prepare()}."""

    def keep_snapshot(data: bytes) -> Deferred[None] | None:
        """Keep a copy of the snapshot's bytes where a new server finds it (L{None}: none kept)."""

    def load_snapshot() -> Deferred[bytes | None]:
        """The snapshot copy kept by L{keep_snapshot}, or L{None}."""


class IBackfillStorage(Interface):
    """
    A storage of this server's own whose scan may leave the files it found
    without a record to be described later (C{scan(..., later=True)} fills
    L{ScanResult.pending}), by the backfill (L{pypid.state.backfill}), so
    that the server answers at once from their names.
    """

    def describe_pending(pending: Sequence[PendingFile], persist: bool = True,
                         ) -> Deferred[list[tuple[PendingFile, FileRecord | str]]]:
        """
        Describe files a scan left pending (L{pypid.core.indexes.pending.PendingFile}s),
        and keep their records beside them (with C{persist}).

        @return: a L{Deferred} of C{[(PendingFile, FileRecord or reason)]},
            a reason (text) for a file that is not served.
        """


class IUsageStorage(Interface):
    """
    A storage that keeps the usage records of its files (download counts,
    L{pypid.core.records.usage}): small immutable objects, each written once by one
    instance under a name of its own, so instances sharing a storage never
    overwrite each other's.
    """

    def add_usage(name: str, data: bytes) -> Deferred[None]:
        """Keep the usage record C{name}, durably (a name is written once)."""

    def usage_records() -> Deferred[dict[str, bytes]]:
        """Every usage record kept, by name."""

    def usage_record(name: str) -> Deferred[bytes | None]:
        """
        The usage record C{name} (another worker of the machine wrote it),
        or L{None} when there is none (folded since).
        """

    def drop_usage(names: Sequence[str]) -> Deferred[None]:
        """
        Remove the usage records C{names} (folded into another: missing
        ones are no error).
        """


class IEvictingStorage(Interface):
    """
    A storage whose files may go without a tombstone: the upstream cache's
    (C{[upstream] max_cache_size}), whose evicted files are
    fetched again when asked for, under the same name and bytes.
    """

    def evict(records: Sequence[FileRecord]) -> Deferred[None]:
        """
        Remove kept files, each with its metadata, details and provenance,
        and keep no tombstone: a name may be kept again. A file of that name
        with other bytes stays. (The removal of
        L{IAdoptingStorage.discard_adopted}, for another reason, and without
        waiting for the disk: a removal a crash undoes leaves a file cached.)
        On a failure, the files before the failing one are gone.
        """


class IAdoptingStorage(Interface):
    """
    A storage that can take in a file another storage of the same backend
    holds, without its bytes going through pypid: the storage half of a
    promotion (C{docs/architecture.rst}, "storage").

    The adopted file keeps its record (bytes, hashes, upload time,
    uploader), its core metadata and its details; its path in the target
    is its filename, as an upload's is. Who promoted it and when is a
    L{Promotion} kept beside it, which the target's L{IStorage.scan} gives
    back in L{ScanResult.promotions}.

    A name used in the target is refused as an upload's would be: a file
    of that name with other bytes (L{FileExists}), a tombstone
    (L{FilenameDeleted}). A file of that name with the same bytes is there
    already: that is success, and nothing is changed (its promotion, or
    its upload, stays as it was). Whether the name spells a distribution
    the target holds under another spelling is the index's question
    (L{pypid.core.indexes.index.Index.same_distribution}), asked before, as for an
    upload.

    A promotion of several files keeps a journal in the target while it
    adopts them (L{keep_journal}, L{drop_journal}): a start that finds one
    (L{journals}) takes that promotion back before the index serves
    (L{pypid.core.indexes.promotion}).
    """

    def adopt(source: IStorage, record: FileRecord,
              promotion: Promotion) -> Deferred[FileRecord]:
        """
        Store the file C{source} holds under C{record}, with its metadata
        and details, under C{record.filename}, and C{promotion} beside it;
        the record is written last, with the durability of an upload.

        @param source: a storage of the same backend (the same class, the
            same file system or endpoint); another is refused with
            L{StorageError}.
        @return: the stored L{FileRecord} (the file there already, when it
            was); or a failure: L{FileExists}, L{FilenameDeleted},
            L{FileNotFoundError} (C{source} does not hold the file).
        """

    def discard_adopted(record: FileRecord) -> Deferred[None]:
        """
        Remove a file L{adopt} stored, with its metadata, details and
        promotion, and keep no tombstone: to take back a promotion that
        failed part-way, so the name stays free. A file of that name with
        other bytes (an upload that took the name since) stays.
        """

    def keep_journal(name: str, data: bytes) -> Deferred[None]:
        """
        Keep the journal C{data} of a promotion under way under C{name}
        (unique), durably, where L{journals} finds it (C{.pypid/promotions/}).
        """

    def drop_journal(name: str) -> Deferred[None]:
        """Remove the journal C{name} (its promotion ended); none is no error."""

    def journals() -> Deferred[dict[str, bytes]]:
        """The journals kept and not dropped, by name: promotions a crash interrupted."""


#: The server's small documents an L{IServerDocuments} keeps, by name: the
#: advisory waivers admins decide (L{pypid.core.security.advisory_waivers})
#: and when each namespace grant came into force
#: (L{pypid.core.indexes.grant_ledger}).
WAIVERS = "waivers"
GRANT_LEDGER = "namespaces"
DOCUMENTS = frozenset({WAIVERS, GRANT_LEDGER})


class IServerDocuments(Interface):
    """
    A storage that keeps the server's few small documents (L{DOCUMENTS}):
    the default index's storage's, which every server on a shared storage
    reads, each document kept whole under its name (C{.pypid/NAME.json}).
    """

    def keep_document(name: str, data: bytes) -> Deferred[None]:
        """
        Keep, durably and whole, the document C{name} (one of
        L{DOCUMENTS}) as C{data}, in place of the one kept before: a
        reader sees the old one or the new one, never part.

        @raise ValueError: C{name} is not one of L{DOCUMENTS}.
        """

    def document(name: str) -> Deferred[bytes | None]:
        """
        The document C{name} last kept (L{None}: none ever was).

        @raise ValueError: C{name} is not one of L{DOCUMENTS}.
        """


def document_name(name: str) -> str:
    """C{name}, checked to be one of L{DOCUMENTS} (a path or key is made of it)."""
    if name not in DOCUMENTS:
        raise ValueError(f"no such server document: {name!r}")
    return name
