"""
The storage half of a promotion in a bucket (L{IAdoptingStorage}), and the
removal without a tombstone that taking one back shares with the upstream
cache's eviction (L{IEvictingStorage}).

A file is copied from another prefix of the same store on its side, never
over an object, with its metadata, details and provenance, and its
promotion kept under C{.pypid/promoted/}. The other servers learn of it
from the journal; but while a promotion's journal is kept, the files it
names are not told as they are adopted (the syncs would take them in one
by one, and keep a failed promotion's until read again): they are told
together as the journal is dropped (L{JournalObjects}).
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any

import attrs
from twisted.logger import Logger

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.promotion import Promotion, PromotionJournal
from pypid.storage.base.interface import FileExists, FilenameDeleted, StorageError
from pypid.storage.bucket.file_states import FileStates
from pypid.storage.bucket.imports import Importer
from pypid.storage.bucket.layout import Layout, user_metadata
from pypid.storage.bucket.markers import BucketChanges
from pypid.storage.bucket.object_writes import CopySources, ObjectWriter
from pypid.storage.bucket.store import ObjectStore, read_all

log = Logger()


@attrs.define
class JournalObjects:
    """The journal objects under a prefix, and the filenames each holds back until dropped."""

    _client: ObjectStore
    _layout: Layout
    _changes: BucketChanges
    # journal name -> the files of a promotion under way, told at its end
    _journaled: dict[str, frozenset[str]] = attrs.field(factory=dict, init=False)

    def holds(self, filename: str) -> bool:
        """Whether a promotion under way holds back C{filename}'s change marker."""
        return any(filename in names for names in self._journaled.values())

    async def keep(self, name: str, data: bytes) -> None:
        """
        Keep the journal C{data} under C{name}, holding back its files' telling
        from now (an adoption may run during the write); a failed write
        holds nothing back.
        """
        try:
            names = frozenset(r.filename for r in PromotionJournal.from_bytes(data).records)
        except ValueError:
            names = frozenset()
        self._journaled[name] = names
        try:
            await self._client.put(self._layout.journal_key(name), data)
        except BaseException:
            self._journaled.pop(name, None)
            raise

    async def drop(self, name: str) -> None:
        """Remove the journal C{name}, then tell the files it named."""
        try:
            await self._client.delete(self._layout.journal_key(name))
        finally:
            # (the promotion ended either way: its files' markers go out,
            # and the next adoption of those names tells itself)
            await self._changes.tell(*sorted(self._journaled.pop(name, ())))

    async def all(self) -> dict[str, bytes]:
        """The journals kept and not dropped: promotions a crash interrupted."""
        return await read_all(self._client, self._layout.journal_key(""))


@attrs.define
class ObjectAdoption:
    """Adopts files into the prefix of C{_layout}, and removes them again."""

    _client: ObjectStore
    _layout: Layout
    _writer: ObjectWriter
    _imports: Importer
    _changes: BucketChanges
    _states: FileStates
    _journals: JournalObjects

    async def adopt(self, source: CopySources, record: FileRecord,
                    promotion: Promotion) -> FileRecord:
        """Copy C{record}'s file from C{source} here; see L{IAdoptingStorage.adopt}."""
        if source.file.store != self._client.ref("").store:
            raise StorageError("a file can be promoted only from a storage of the same store")
        layout, client = self._layout, self._client
        adopted = record.replace(path=record.filename)
        key = layout.file_key(adopted.path)
        metadata = user_metadata(adopted)
        if await client.head(layout.deleted_key(adopted.filename)) is not None:
            raise FilenameDeleted(adopted.filename)
        written = await client.copy(key, source.file, adopted.size, if_none_match=True,
                                    metadata=metadata, content_type="application/octet-stream")
        if not written:
            existing = await client.head(key)
            sha256 = existing.metadata.get("sha256") if existing is not None else None
            if sha256 != record.sha256:
                raise FileExists(adopted.filename, sha256)
            # There already, with these bytes: nothing changes.
            current = await self._states.read(adopted.filename, adopted.path)
            return current.record if current.record is not None else adopted
        try:
            await self._writer.copy_beside(source, adopted.filename, [
                client.put(layout.promoted_key(adopted.filename), promotion.to_bytes(),
                           "application/json"),
                *(self._copy_provenance(source, record, adopted.filename))])
            # A delete through another server may have come between the
            # tombstone check and the copy: the name stays dead.
            if await client.head(layout.deleted_key(adopted.filename)):
                raise FilenameDeleted(adopted.filename)
        except (StorageError, FilenameDeleted):
            await self._forget(adopted)
            raise
        self._imports.remember(adopted)
        if not self._journals.holds(adopted.filename):
            await self._changes.tell(adopted.filename)
        # (else its telling waits for the end of its promotion: drop_journal)
        return adopted

    def _copy_provenance(self, source: CopySources, record: FileRecord,
                         filename: str) -> list[Coroutine[Any, Any, Any]]:
        """The copy of a promoted file's provenance object, if its record names one."""
        digest, copied = record.provenance_sha256, source.provenance
        if digest is None or copied is None:
            return []

        async def copy() -> None:
            try:
                await self._client.copy(self._layout.provenance_key(filename, digest), copied)
            except FileNotFoundError:
                log.warn("The provenance of {filename} is missing from its index: not promoted",
                         filename=record.filename)
        return [copy()]

    async def evict(self, records: Sequence[FileRecord]) -> None:
        """Remove cached files' objects, one after another; see L{IEvictingStorage.evict}."""
        for record in records:
            await self.discard(record)

    async def discard(self, record: FileRecord) -> None:
        """Remove an adopted file's objects; see L{IAdoptingStorage.discard_adopted}."""
        key = self._layout.file_key(record.filename)
        existing = await self._client.head(key)
        if existing is not None and existing.metadata.get("sha256") != record.sha256:
            return
        await self._forget(record.replace(path=record.filename), strict=True)
        await self._changes.tell(record.filename)

    async def _forget(self, record: FileRecord, strict: bool = False) -> None:
        """Remove an adopted file's objects, the file first (a failure logged, unless C{strict})."""
        layout = self._layout
        for key in (layout.file_key(record.path), layout.metadata_key(record.path),
                    layout.details_key(record.filename),
                    layout.promoted_key(record.filename), *layout.provenance_keys(record)):
            try:
                await self._client.delete(key)
            except StorageError as e:
                if strict:
                    raise
                log.warn("Cannot remove {key} after a failed promotion: {error}",
                         key=key, error=str(e))
