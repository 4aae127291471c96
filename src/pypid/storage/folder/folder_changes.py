"""
The changes the server makes to a storage folder: publishing, rewriting a
record (a yank), deleting behind a tombstone, and keeping a tombstone for
a name no file has. Blocking.

Publication is race-free: the spooled upload is fsynced, then hard-linked
to its final name, which fails rather than overwrites, so of two uploads
under one name exactly one wins and a reader never sees half a file. The
record is written after the link, and the directory fsynced before the
upload is acknowledged; a crash in between leaves a file without a record,
which the next scan rebuilds from the file.

A promotion (L{FolderChanges.adopt}) links another folder's file instead,
then its sidecars (links too: a sidecar is replaced by a rename, never
written in place, so the folders never see each other's later changes),
its promotion and its record. Across file systems (C{EXDEV}) it is
refused rather than copied.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime

from pypid.core.dists.distribution import file_digests
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.promotion import Promotion
from pypid.storage.base.disk import fsync_file, fsync_folder, remove_file, thread_temp_name
from pypid.storage.base.interface import FileExists, FilenameDeleted, StorageError
from pypid.storage.folder.sidecars import Sidecars, is_tombstone, storage_error, storage_errors


@attrs.define(eq=False)
class FolderChanges:
    """Writes to a folder's files and sidecars; C{_clock} (or the wall clock) dates deletes."""

    _sidecars: Sidecars
    _clock: IReactorTime | None

    def _now(self) -> float:
        return self._clock.seconds() if self._clock is not None else time.time()

    def publish(self, temp_path: str, record: FileRecord, metadata: bytes | None,
                details: bytes | None, provenance: bytes | None = None) -> FileRecord:
        """Link the spooled upload into place without overwriting; see the module."""
        sidecars = self._sidecars
        try:
            final = sidecars.file_path(record.path)
            self._refuse_deleted(record.filename, final)
            fsync_file(temp_path)
            try:
                os.link(temp_path, final)
            except FileExistsError:
                raise FileExists(record.filename, self._existing_sha256(record, final))
            def derived() -> None:
                if metadata is not None:
                    sidecars.write_metadata(record.filename, metadata)
                if provenance is not None:
                    sidecars.write_provenance(record.filename, provenance)
                if details is not None:
                    # (derived from the file: the directory's fsync is enough)
                    sidecars.write_details(record.filename, details)
            # (the app changes one distribution at a time: no second tombstone
            # check; a failure takes the file back, so a retry publishes anew)
            self._commit(record, final, derived, linked=True)
            return record
        except (FileExists, FilenameDeleted, StorageError):
            raise
        except OSError as e:
            raise storage_error(e)
        finally:
            remove_file(temp_path)

    def adopt(self, source: Sidecars, record: FileRecord, promotion: Promotion) -> FileRecord:
        """Link C{source}'s file in under its filename, never over one, with its sidecars."""
        sidecars = self._sidecars
        adopted = record.replace(path=record.filename)
        final = sidecars.file_path(adopted.path)
        try:
            self._refuse_deleted(adopted.filename, final)
            try:
                os.link(source.file_path(record.path), final)
            except FileExistsError:
                sha256 = self._existing_sha256(adopted, final)
                if sha256 != record.sha256:
                    raise FileExists(adopted.filename, sha256)
                stored = sidecars.read_record(adopted.filename)
                if stored is not None:
                    # There already, with these bytes: nothing changes.
                    try:
                        return FileRecord.from_json(stored)
                    except ValueError:
                        pass
                # (linked by an attempt that crashed before its record:
                # finished now, and kept should this one fail too)
                self._keep_adopted(source, record, adopted, promotion, final, linked=False)
                return adopted
            except OSError as e:
                if e.errno == errno.EXDEV:
                    raise StorageError(
                        f"cannot promote {record.filename}: the two indexes' folders are "
                        "on different file systems, and a promotion links, never copies")
                raise
            self._keep_adopted(source, record, adopted, promotion, final, linked=True)
            return adopted
        except (FileExists, FilenameDeleted, StorageError, FileNotFoundError):
            raise
        except OSError as e:
            raise storage_error(e)

    def _keep_adopted(self, source: Sidecars, record: FileRecord, adopted: FileRecord,
                      promotion: Promotion, final: str, linked: bool) -> None:
        """Keep an adopted file's sidecars and record, as L{_commit} does."""
        sidecars = self._sidecars

        def derived() -> None:
            for there, here in ((source.metadata_path(record.filename),
                                 sidecars.metadata_path(adopted.filename)),
                                (source.details_path(record.filename),
                                 sidecars.details_path(adopted.filename)),
                                (source.provenance_path(record.filename),
                                 sidecars.provenance_path(adopted.filename))):
                self._link_over(there, here)
            sidecars.write_promotion(adopted.filename, promotion)
        self._commit(adopted, final, derived, linked)

    def _commit(self, record: FileRecord, final: str, derived: Callable[[], None],
                linked: bool) -> None:
        """
        Keep a file's sidecars (C{derived()}), then its record, durably, as an
        upload and a promotion end; a failure takes back the sidecars, and
        the file at C{final} when the caller C{linked} it.
        """
        sidecars = self._sidecars
        try:
            derived()
            with sidecars.lock:
                sidecars.write_record(record.filename, record)
            fsync_folder(sidecars.files_dir)
            fsync_folder(os.path.dirname(final))
        except BaseException:
            if linked:
                remove_file(final)
            sidecars.remove_derived(record.filename)
            raise

    def _link_over(self, there: str, here: str) -> None:
        """
        Make C{here} a hard link of C{there} through a renamed temporary link
        (a reader never sees it missing), or remove it when there is no C{there}.
        """
        temp = thread_temp_name(self._sidecars.temp_dir, "l")
        remove_file(temp)
        try:
            os.link(there, temp)
        except FileNotFoundError:
            remove_file(here)
            return
        try:
            os.replace(temp, here)
        except BaseException:
            remove_file(temp)
            raise

    def discard_adopted(self, record: FileRecord) -> None:
        """Remove an adopted file and sidecars (no tombstone) unless other bytes hold its name."""
        self._discard(record, durable=True)

    def evict(self, records: Sequence[FileRecord]) -> None:
        """
        Remove cached files as L{discard_adopted} does, without waiting for
        the disk (a crash that undoes one leaves it cached): the two folder
        syncs a file, under the lock the fetches' writes take, made each
        fetch past the cap some 1.5 ms slower
        (L{tests.bench.bench_upstream_cap}).
        """
        for record in records:
            self._discard(record, durable=False)

    def _discard(self, record: FileRecord, durable: bool) -> None:
        sidecars = self._sidecars
        final = sidecars.file_path(record.filename)
        with storage_errors(), sidecars.lock:
            stored = sidecars.read_record(record.filename)
            if is_tombstone(stored):
                return
            if stored is not None and stored.get("sha256") != record.sha256:
                return
            if stored is None and os.path.exists(final) and (
                    file_digests(final)[1] != record.sha256):
                return
            # The file first: a crash after it leaves a record without a
            # file, which no scan lists (the other way round, a scan would
            # describe the file again, as found in the folder).
            remove_file(final)
            sidecars.remove_derived(record.filename)
            remove_file(sidecars.record_path(record.filename))
            if durable:
                fsync_folder(sidecars.files_dir)
                fsync_folder(os.path.dirname(final))

    def _refuse_deleted(self, filename: str, final: str) -> None:
        """
        Raise L{FilenameDeleted} when C{filename}'s record is a tombstone, or
        damaged with no file at C{final} (L{Sidecars.load_record}).
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

    def keep_provenance(self, record: FileRecord, provenance: bytes) -> FileRecord:
        """
        Keep a stored file's provenance, then its stored record naming it (a
        yank meanwhile stays); L{FileNotFoundError} when it is not stored.
        """
        sidecars = self._sidecars
        kept: FileRecord | None = None
        with storage_errors(), sidecars.lock:
            stored = sidecars.read_record(record.filename)
            if stored is not None and not is_tombstone(stored) \
                    and os.path.exists(sidecars.file_path(record.path)):
                try:
                    current = FileRecord.from_json(stored)
                except ValueError:
                    current = None
                if current is not None:
                    sidecars.write_provenance(record.filename, provenance)
                    kept = current.replace(
                        provenance_sha256=hashlib.sha256(provenance).hexdigest())
                    sidecars.write_record(record.filename, kept)
                    fsync_folder(sidecars.files_dir)
        if kept is None:
            # (out of storage_errors: a file not stored is no storage failure)
            raise FileNotFoundError(record.path)
        return kept

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
        """Write a tombstone (the name and time), unless a file of that name is stored."""
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
