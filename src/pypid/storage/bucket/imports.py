"""
Objects in the bucket that pypid did not write (C{aws s3 cp}, a migration),
listed without the record pypid keeps in user metadata: each is read once
and described like an upload (the record copied onto the object in place),
so the next listing finds it like any other; a reader that does not
persist keeps what it learnt in memory. Where each file lives below the
prefix is kept too. The only part reading whole files into memory, so its
bounds (L{Importer._max_size}, one import at a time) are here.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from collections.abc import Awaitable, Callable

import attrs
from twisted.internet.defer import Deferred, DeferredLock, ensureDeferred
from twisted.logger import Logger

from pypid.core.dists.distribution import Digests, Inspected, inspect
from pypid.core.dists.metadata import InvalidDistribution
from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import InvalidName
from pypid.core.dists.readme import Renderer, render_description
from pypid.jobs.gather import gather
from pypid.jobs.run import Run
from pypid.storage.base.disk import remove_file
from pypid.storage.base.interface import RecordRefused, StorageError
from pypid.storage.bucket.layout import (
    Layout,
    record_from_metadata,
    user_metadata,
)
from pypid.storage.bucket.store import Listed, ObjectStore

log = Logger()


def _write_new(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def _inspect_bytes(data: bytes, filename: str, path: str, upload_time: float) -> Inspected:
    """
    L{inspect} a file from memory (a reader that does not persist may have
    no spool folder), without rendering its details.
    """
    digests = (len(data), hashlib.sha256(data).hexdigest(),
               hashlib.blake2b(data, digest_size=32).hexdigest(),
               hashlib.md5(data, usedforsecurity=False).hexdigest())
    return inspect(io.BytesIO(data), filename, path, upload_time, digests, True, None)


@attrs.define
class Importer:
    """
    Reads the listed objects that carry no record, and describes them.

    @ivar _keep_beside: writes a file's sibling and details, as an upload's.
    @ivar _max_size: the largest object read whole (the largest upload).
    @ivar _paths: filename -> path, of files below the prefix's top.
    """

    _client: ObjectStore
    _layout: Layout
    _run: Run
    _temp_dir: str
    _keep_beside: Callable[..., Awaitable[None]]
    _max_size: int = 1 << 30
    _render: Renderer = render_description
    _paths: dict[str, str] = attrs.field(factory=dict, init=False)
    _unwritten: dict[str, bytes] = attrs.field(factory=dict, init=False)

    def path_of(self, filename: str) -> str:
        """Where C{filename} is stored under the prefix, as far as known."""
        return self._paths.get(filename, filename)

    def remember(self, record: FileRecord) -> None:
        """Keep where C{record}'s file is stored (for L{path_of})."""
        if record.path != record.filename:
            self._paths[record.filename] = record.path
        else:
            self._paths.pop(record.filename, None)

    def unwritten(self, filename: str) -> bytes | None:
        """The metadata of C{filename} kept in memory by a scan that did not persist."""
        return self._unwritten.get(filename)

    async def read_all(self, to_read: list[tuple[str, str, Listed]], persist: bool = True,
                       client: ObjectStore | None = None) -> list[FileRecord | str]:
        """
        The records of listed objects C{(filename, path, listed item)}, from
        their user metadata or an import, or why one is not served; reads
        within the client's limit, imports one at a time.
        """
        client = client or self._client
        limit = client.limit
        # (one import at a time: each holds a file in memory)
        imports = DeferredLock()

        async def read(filename: str, path: str, item: Listed) -> FileRecord | str:
            head = await client.head(self._layout.file_key(path))
            if head is None:
                return "removed while the bucket was listed"
            record = record_from_metadata(path, item.size, head.metadata)
            if record is not None:
                return record
            return await imports.run(self._import, filename, path, item, persist, client)

        def start(args: tuple[str, str, Listed]) -> Deferred[FileRecord | str]:
            return ensureDeferred(read(*args))

        return await gather([limit.run(start, args) for args in to_read])

    async def _import(self, filename: str, path: str, item: Listed, persist: bool = True,
                      client: ObjectStore | None = None) -> FileRecord | str:
        """
        Describe a file another tool put in the bucket, and keep what was
        learnt (its sibling, and the record copied in place only if the
        object did not change meanwhile); without C{persist}, only its
        metadata, in memory.
        """
        client = client or self._client
        if item.size > self._max_size:
            return f"larger than the largest upload ({item.size} bytes)"
        try:
            data = await client.get(self._layout.file_key(path),
                                    limit=self._max_size, expect=item.size)
        except StorageError as e:
            return f"cannot read it from the bucket now: {e}"
        if data is None:
            return "removed while the bucket was listed"
        if not persist:
            try:
                inspected = await self._run(_inspect_bytes, data, filename, path,
                                            item.modified)
            except (InvalidName, InvalidDistribution) as e:
                return str(e)
            if inspected.metadata is not None:
                self._unwritten[filename] = inspected.metadata
            return inspected.record
        try:
            inspected = await self._inspect("import", data, filename, path, item.modified, None)
        except (InvalidName, InvalidDistribution) as e:
            return str(e)
        record = inspected.record
        try:
            await self._keep_beside(record, inspected.metadata, inspected.details, client)
            if not await client.set_metadata(self._layout.file_key(path), user_metadata(record),
                                             "application/octet-stream", item.etag):
                log.info("{path} changed while it was read: its record is read again "
                         "at the next listing", path=path)
        except (StorageError, RecordRefused) as e:
            log.warn("Cannot keep the record of {path} in the bucket: {error}",
                     path=path, error=str(e))
        return record

    async def describe(self, record: FileRecord) -> bytes | None:
        """
        Fetch a stored file, render its details in a worker thread and keep
        them; L{None} when it cannot be (too large, gone, not a
        distribution, or deleted meanwhile).
        """
        if record.size > self._max_size:
            return None  # (read whole, as an import reads a file: bounded alike)
        data = await self._client.get(self._layout.file_key(record.path),
                                      limit=self._max_size, expect=record.size)
        if data is None:
            return None
        try:
            details = (await self._inspect(
                "describe", data, record.filename, record.path, record.upload_time,
                (record.size, record.sha256, record.blake2_256, record.md5))).details
        except (InvalidName, InvalidDistribution):
            return None
        if details is None or await self._client.head(
                self._layout.deleted_key(record.filename)) is not None:
            return None  # (none, or deleted meanwhile: no details left behind for it)
        await self._client.put(self._layout.details_key(record.filename), details,
                               "application/json")
        return details

    async def _inspect(self, what: str, data: bytes, filename: str, path: str,
                       upload_time: float, digests: Digests | None) -> Inspected:
        """L{inspect} C{data}, written to a temporary file of the spool meanwhile."""
        temp = os.path.join(self._temp_dir, f"{what}-{secrets.token_hex(8)}")
        await self._run(_write_new, temp, data)
        try:
            return await self._run(inspect, temp, filename, path, upload_time, digests, True,
                                   self._render)
        finally:
            await self._run(remove_file, temp)
