"""
What a storage backend may provide besides L{IStorage}, each capability an
interface the composition asks for by providing it. As there, each
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
    A file's state after another server's change: its record now (L{None}:
    not stored), whether its name is a tombstone, and its promotion (a
    dated view judges a promoted file by its promotion's time).
    """

    filename: str
    record: FileRecord | None
    deleted: bool
    promotion: Promotion | None = None


@attrs.frozen
class Polled:
    """
    What one look at a shared storage found changed (L{ISharedStorage.poll}).

    @ivar statuses: the status object now (L{None}: active) of each project
        whose status or one of whose files changed. Read after the files,
        so a quarantine kept before a file is here whenever the file is;
        take them in first.
    """

    files: list[Changed] = attrs.field(factory=list)
    statuses: dict[str, bytes | None] = attrs.field(factory=dict)


class ISharedStorage(Interface):
    """A storage several servers use at once, keeping state of its own in the snapshot."""

    sync_interval = Attribute("Seconds between two looks for other servers' changes.")
    checked_after_start = Attribute(
        "Whether a start from a snapshot naming its journal serial serves it (with the later "
        "changes) and checks the storage once it listens (a machine's folder); otherwise the "
        "storage is read before the server answers (a bucket's listing).")
    keeps_snapshot = Attribute(
        "Whether L{keep_snapshot} keeps a copy: where it does not (a machine's folder, a "
        "bucket without C{bucket_snapshot}), no copy is built at each save.")

    def poll() -> Deferred[Polled]:
        """The changes other servers made to files and statuses since the last call."""

    def reconcile_due() -> bool:
        """
        Whether the journal alone cannot tell the changes (a start from a
        snapshot, a worker ended, the journal lost entries): L{reconcile}.
        """

    def synced_at() -> float | None:
        """
        When this server last took in every other's change, or L{None}; a
        snapshot stands for no later a time.
        """

    def changes_read() -> int | None:
        """The journal's serial up to which the changes are taken in (L{None}: unknown)."""

    def resume(serial: int) -> None:
        """The index's snapshot took in the changes up to C{serial}: read those after it."""

    def reconcile(known: dict[str, FileRecord],
                  tombstones: Iterable[str]) -> Deferred[ScanResult]:
        """Compare the whole storage with the index's records, then read the statuses."""

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
    A storage whose scan (C{later=True}) may leave files without a record in
    L{ScanResult.pending}, for the backfill (L{pypid.state.backfill}): the
    server answers at once from their names.
    """

    def describe_pending(pending: Sequence[PendingFile], persist: bool = True,
                         ) -> Deferred[list[tuple[PendingFile, FileRecord | str]]]:
        """
        Describe files a scan left pending, keeping their records (with
        C{persist}): C{[(PendingFile, FileRecord or reason)]}.
        """


class IUsageStorage(Interface):
    """
    A storage keeping usage records (L{pypid.core.records.usage}): small
    objects each written once by one instance under its own name, so
    instances sharing a storage never overwrite each other's.
    """

    def add_usage(name: str, data: bytes) -> Deferred[None]:
        """Keep the usage record C{name}, durably (a name is written once)."""

    def usage_records() -> Deferred[dict[str, bytes]]:
        """Every usage record kept, by name."""

    def usage_record(name: str) -> Deferred[bytes | None]:
        """The usage record C{name}, or L{None} (folded since)."""

    def drop_usage(names: Sequence[str]) -> Deferred[None]:
        """Remove the usage records C{names} (folded; missing ones are no error)."""


class IEvictingStorage(Interface):
    """
    A storage whose files may go without a tombstone: the upstream cache's
    (C{[upstream] max_cache_size}), which fetches them again when asked.
    """

    def evict(records: Sequence[FileRecord]) -> Deferred[None]:
        """
        Remove kept files and all beside them, without a tombstone, as
        L{IAdoptingStorage.discard_adopted} does but without waiting for the
        disk (a removal a crash undoes leaves a file cached). A file of that
        name with other bytes stays; on a failure, those before it are gone.
        """


class IAdoptingStorage(Interface):
    """
    A storage that takes in a file another storage of the same backend
    holds, its bytes never through pypid: the storage half of a promotion
    (C{docs/architecture.rst}, "storage"). A name in use is refused as for
    an upload, but a file of that name with the same bytes is success,
    changing nothing. A promotion of several files keeps a journal in the
    target meanwhile: a start that finds one (L{journals}) takes that
    promotion back before the index serves (L{pypid.core.indexes.promotion}).
    """

    def adopt(source: IStorage, record: FileRecord,
              promotion: Promotion) -> Deferred[FileRecord]:
        """
        Store the file C{source} (of the same backend, else L{StorageError})
        holds under C{record}, with its metadata and details, under its
        filename, and C{promotion} beside it; the record last, as durably as
        an upload's. Fires with the stored L{FileRecord}, or fails with
        L{FileExists}, L{FilenameDeleted}, L{FileNotFoundError} (not in C{source}).
        """

    def discard_adopted(record: FileRecord) -> Deferred[None]:
        """
        Remove a file L{adopt} stored and all beside it, without a
        tombstone, taking back a failed promotion; a file of that name with
        other bytes (an upload since) stays.
        """

    def keep_journal(name: str, data: bytes) -> Deferred[None]:
        """Keep, durably, the journal of a promotion under way under the unique C{name}."""

    def drop_journal(name: str) -> Deferred[None]:
        """Remove the journal C{name} (its promotion ended); none is no error."""

    def journals() -> Deferred[dict[str, bytes]]:
        """The journals kept and not dropped, by name: promotions a crash interrupted."""


#: The server's small documents an L{IServerDocuments} keeps: the advisory
#: waivers (L{pypid.core.security.advisory_waivers}) and the namespace grants'
#: ledger (L{pypid.core.indexes.grant_ledger}).
WAIVERS = "waivers"
GRANT_LEDGER = "namespaces"
DOCUMENTS = frozenset({WAIVERS, GRANT_LEDGER})


class IServerDocuments(Interface):
    """
    The default index's storage, keeping the server's L{DOCUMENTS}, each
    whole under its name (C{.pypid/NAME.json}), read by every server on it.
    """

    def keep_document(name: str, data: bytes) -> Deferred[None]:
        """
        Replace the document C{name}, durably and whole: a reader sees the
        old or the new one, never part.

        @raise ValueError: C{name} is not one of L{DOCUMENTS}.
        """

    def document(name: str) -> Deferred[bytes | None]:
        """The document C{name} last kept, or L{None}; L{ValueError} for another name."""


def document_name(name: str) -> str:
    """C{name}, checked to be one of L{DOCUMENTS} (a path or key is made of it)."""
    if name not in DOCUMENTS:
        raise ValueError(f"no such server document: {name!r}")
    return name
