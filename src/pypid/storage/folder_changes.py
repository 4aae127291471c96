"""
The changes the server makes to a storage folder: publishing an upload,
rewriting a record (a yank), deleting a file behind a tombstone, and
keeping a tombstone for a name no file has. Blocking: for a worker thread.

Publication is race-free: the spooled upload is fsynced, then hard-linked to
its final name, which fails rather than overwrites when the name exists, so of
two concurrent uploads under one name exactly one wins and a reader never sees
a half-written file. The record is written after the link and the directory
fsynced before the upload is acknowledged; a crash in between leaves a file
without a record, which the next scan rebuilds from the file itself.
"""

from __future__ import annotations

import os
import time
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime

from pypid.core.distribution import file_digests
from pypid.core.model import FileRecord
from pypid.storage.disk import fsync_folder, remove_file
from pypid.storage.interface import FileExists, FilenameDeleted, StorageError
from pypid.storage.sidecars import Sidecars, is_tombstone, storage_error, storage_errors


@attrs.define(eq=False)
class FolderChanges:
    """
    Writes to the files of a folder and their sidecars.

    @ivar _sidecars: the folder's L{Sidecars}.
    @ivar _clock: provides C{seconds()}, for the time of a delete (wall-clock
        time without one).
    """

    _sidecars: Sidecars
    _clock: IReactorTime | None

    def _now(self) -> float:
        return self._clock.seconds() if self._clock is not None else time.time()

    def publish(self, temp_path: str, record: FileRecord, metadata: bytes | None,
                details: bytes | None) -> FileRecord:
        """Link the spooled upload into place without overwriting; see the module."""
        sidecars = self._sidecars
        try:
            final = sidecars.file_path(record.path)
            self._refuse_deleted(record.filename, final)
            with open(temp_path, "rb+") as f:
                os.fsync(f.fileno())
            try:
                os.link(temp_path, final)
            except FileExistsError:
                raise FileExists(record.filename, self._existing_sha256(record, final))
            try:
                if metadata is not None:
                    sidecars.write_metadata(record.filename, metadata)
                if details is not None:
                    # (derived from the file: the directory's fsync below is enough)
                    sidecars.write_details(record.filename, details)
                # The tombstone check was made before the link, and the app
                # changes one distribution at a time: no second read here.
                with sidecars.lock:
                    sidecars.write_record(record.filename, record)
                fsync_folder(sidecars.files_dir)
                fsync_folder(os.path.dirname(final))
            except BaseException:
                # Not published after all: take the file back, so a retry
                # publishes it again rather than finding it half there.
                remove_file(final)
                sidecars.remove_derived(record.filename)
                raise
            return record
        except (FileExists, FilenameDeleted, StorageError):
            raise
        except OSError as e:
            raise storage_error(e)
        finally:
            remove_file(temp_path)

    def _refuse_deleted(self, filename: str, final: str) -> None:
        """
        Raise L{FilenameDeleted} when C{filename} was deleted: its record is
        a tombstone, or is damaged and no file is at C{final} (a tombstone
        that cannot be read is a tombstone still: L{Sidecars.load_record}).
        """
        # (a record that cannot be opened now is a storage error, retried:
        # not known damaged, so not taken for a tombstone)
        current, damaged = self._sidecars.load_record(filename, strict=True)
        if is_tombstone(current) or (damaged and not os.path.lexists(final)):
            raise FilenameDeleted(filename)

    def _existing_sha256(self, record: FileRecord, final: str) -> str:
        sidecar = self._sidecars.read_record(record.filename)
        if sidecar and sidecar.get("sha256"):
            return str(sidecar["sha256"])
        return str(file_digests(final)[1])

    def write_record(self, record: FileRecord) -> None:
        """Write a file's record; never over a tombstone (a delete is final)."""
        sidecars = self._sidecars
        with storage_errors(), sidecars.lock:
            self._refuse_deleted(record.filename, sidecars.file_path(record.path))
            sidecars.write_record(record.filename, record)
            fsync_folder(sidecars.files_dir)

    def delete(self, record: FileRecord) -> None:
        """Remove a file, its metadata and details, behind a tombstone for its name."""
        sidecars = self._sidecars
        tombstone = dict(record.to_json(), deleted=True, deleted_at=self._now())
        with storage_errors(), sidecars.lock:
            sidecars.write_record(record.filename, tombstone)
            remove_file(sidecars.file_path(record.path))
            sidecars.remove_derived(record.filename)
            fsync_folder(sidecars.files_dir)

    def add_tombstone(self, filename: str) -> None:
        """
        Write a tombstone sidecar (the name and the time, without a record:
        there is none here), unless a file of that name is stored, with a
        record or copied in without one.
        """
        sidecars = self._sidecars
        with storage_errors(), sidecars.lock:
            current = sidecars.read_record(filename)
            if is_tombstone(current):
                return
            paths = {sidecars.file_path(filename)}
            if current is not None and isinstance(current.get("path"), str):
                paths.add(sidecars.file_path(current["path"]))
            if any(os.path.exists(path) for path in paths):
                raise FileExists(filename, (current or {}).get("sha256"))
            tombstone: dict[str, Any] = {"filename": filename, "deleted": True,
                                         "deleted_at": self._now()}
            sidecars.write_record(filename, tombstone)
            fsync_folder(sidecars.files_dir)
