"""
The changes this server makes to its files in the bucket: an upload, its
provenance, a yank or a binning, a delete, a tombstone carried over; what
to write, and in which order.

A new file is written with C{If-None-Match: *}, so of two servers
uploading one filename exactly one wins; yanks and deletes are marker
objects, a delete's tombstone written first (it is the delete). Each
change is preceded by an intent marker and followed by its entry in the
journal (L{pypid.storage.bucket.markers.BucketChanges}), so the others
learn of it even when this server is killed in between.
"""

from __future__ import annotations

import hashlib
import json

import attrs
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.dists.model import FileRecord
from pypid.jobs.run import Run
from pypid.storage.base.disk import remove_file
from pypid.storage.base.interface import AlreadyBinned, FileExists, FilenameDeleted, StorageError
from pypid.storage.bucket.file_states import FileStates
from pypid.storage.bucket.imports import Importer
from pypid.storage.bucket.layout import Layout, binned_body, user_metadata, yank_body
from pypid.storage.bucket.markers import BucketChanges
from pypid.storage.bucket.object_writes import ObjectWriter
from pypid.storage.bucket.store import ObjectStore

log = Logger()


@attrs.define
class FileWrites:
    """Writes files and their state under a prefix."""

    _client: ObjectStore
    _layout: Layout
    _writer: ObjectWriter
    _imports: Importer
    _changes: BucketChanges
    _states: FileStates
    _run: Run
    _clock: IReactorTime

    async def publish(self, temp_path: str, record: FileRecord, metadata: bytes | None,
                      details: bytes | None, provenance: bytes | None = None) -> FileRecord:
        """
        Write the provenance (under its digest), the file, conditionally,
        then its metadata and details; the spooled file is removed either way.
        """
        layout, client = self._layout, self._client
        key = layout.file_key(record.path)
        try:
            # (first: a record the store cannot keep is refused before any write)
            metadata_fields = user_metadata(record)
            # (the intent marker beside the tombstone check, in one round
            # trip: one written for a name deleted before has the others
            # read a state that is already theirs)
            intended = ensureDeferred(self._changes.intend(record.filename))
            try:
                tombstone = await client.head(layout.deleted_key(record.filename))
            finally:
                await intended
            if tombstone is not None:
                raise FilenameDeleted(record.filename)
            if provenance is not None and record.provenance_sha256 is not None:
                # (named by its digest: never over another file's, and there
                # before the file whose headers name it)
                await client.put(layout.provenance_key(record.filename,
                                                       record.provenance_sha256),
                                 provenance, "application/json")
            written = await client.put_file(key, temp_path, record.size, record.sha256,
                                            "application/octet-stream", metadata_fields)
            if not written:
                existing = await client.head(key)
                sha256 = existing.metadata.get("sha256") if existing is not None else None
                if sha256 != record.sha256:
                    raise FileExists(record.filename, sha256)
            await self._keep_beside(key, written, record, metadata, details)
            if not written:
                # The same bytes are stored: answer with their state as the
                # bucket holds it (a yank made elsewhere is kept).
                current = await self._states.read(record.filename, record.path)
                raise FileExists(record.filename, record.sha256, current.record)
            self._imports.remember(record)
            await self._changes.tell(record.filename)
            return record
        finally:
            await self._run(remove_file, temp_path)

    async def _keep_beside(self, key: str, written: bool, record: FileRecord,
                           metadata: bytes | None, details: bytes | None) -> None:
        """
        Write an upload's metadata and details; the file C{written} is
        removed again when that fails, or the name was deleted meanwhile.
        """
        client, layout = self._client, self._layout
        try:
            # Written again for the same bytes too: they may be this
            # upload's own first attempt, whose answer was lost before
            # its metadata was written (the content is the same).
            await self._writer.keep_beside(record, metadata, details)
            # A delete through another server may have come between the
            # first tombstone check and the write: the name stays dead.
            if written and await client.head(layout.deleted_key(record.filename)):
                await self._writer.forget(key)
                raise FilenameDeleted(record.filename)
        except StorageError:
            if written:
                await self._writer.forget(key)
            raise

    async def keep_provenance(self, record: FileRecord, provenance: bytes) -> FileRecord:
        """
        Keep a stored file's provenance under its digest; the record naming it
        is the index's (the file's own headers are written once: a scan, or
        another instance, does not learn it).
        """
        if await self._client.head(self._layout.file_key(record.path)) is None:
            raise FileNotFoundError(record.path)
        digest = hashlib.sha256(provenance).hexdigest()
        await self._client.put(self._layout.provenance_key(record.filename, digest),
                               provenance, "application/json")
        return record.replace(provenance_sha256=digest)

    async def update(self, record: FileRecord) -> None:
        """Write a file's yank and bin markers (never after a delete), or L{AlreadyBinned}."""
        layout, client = self._layout, self._client
        if await client.head(layout.deleted_key(record.filename)) is not None:
            raise FilenameDeleted(record.filename)
        json_type = "application/json"
        await self._changes.intend(record.filename)
        if record.yanked is not None:
            await client.put(layout.yanked_key(record.filename), yank_body(record.yanked),
                             json_type)
        else:
            await client.delete(layout.yanked_key(record.filename))
        if record.binned is not None:
            # (one server bins a file: two applying retention rules at once,
            # or deleting it, write one marker, and one audit entry)
            written = await client.put(layout.binned_key(record.filename),
                                       binned_body(record.binned), json_type,
                                       if_none_match=True)
            if not written:
                raise AlreadyBinned(record.filename)
        else:
            await client.delete(layout.binned_key(record.filename))
        await self._changes.tell(record.filename)

    async def delete(self, record: FileRecord) -> None:
        """
        Keep a tombstone, then remove the file's objects; L{FilenameDeleted}
        when another server deleted it already.
        """
        layout, client = self._layout, self._client
        tombstone = dict(record.to_json(), deleted=True, deleted_at=self._clock.seconds())
        await self._changes.intend(record.filename)
        written = await client.put(layout.deleted_key(record.filename),
                                   json.dumps(tombstone, sort_keys=True).encode("utf-8"),
                                   "application/json", if_none_match=True)
        if not written:
            # (another server deleted it first: a purge of the recycle bin
            # both ran, say; its tombstone stands, and the delete is its)
            raise FilenameDeleted(record.filename)
        # The tombstone is the delete: from here on the file is not served
        # by any server. The objects go next; one that cannot be removed now
        # is hidden by the tombstone, and removed by the next full check.
        await self._changes.tell(record.filename)
        for key in (layout.file_key(record.path), layout.metadata_key(record.path),
                    layout.details_key(record.filename), layout.yanked_key(record.filename),
                    layout.binned_key(record.filename), layout.promoted_key(record.filename),
                    *layout.provenance_keys(record)):
            try:
                await client.delete(key)
            except StorageError as e:
                log.warn("Deleted {filename}, but cannot remove {key} yet: {error}",
                         filename=record.filename, key=key, error=str(e))

    async def add_tombstone(self, filename: str) -> None:
        """Keep a tombstone (a marker, as a delete's) for a name no stored file has."""
        layout, client = self._layout, self._client
        if await client.head(layout.deleted_key(filename)) is not None:
            return
        for path in {filename, self._imports.path_of(filename)}:
            existing = await client.head(layout.file_key(path))
            if existing is not None:
                raise FileExists(filename, existing.metadata.get("sha256"))
        tombstone = {"filename": filename, "deleted": True, "deleted_at": self._clock.seconds()}
        await self._changes.intend(filename)
        await client.put(layout.deleted_key(filename),
                         json.dumps(tombstone, sort_keys=True).encode("utf-8"),
                         "application/json")
        await self._changes.tell(filename)
