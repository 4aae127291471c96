"""
Files of a storage folder that have no usable record (a pypiserver folder,
files copied in by hand): each is described like an upload, and what was
learnt is kept beside it, so the next scan is cheap and gives the same
record. Also the rendering of details, left to the background or to a
person's first view. The only part of the folder that reads and renders
whole files, and keeps state between calls (metadata not written yet).
Blocking.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.logger import Logger

from pypid.core.dists.distribution import inspect
from pypid.core.dists.metadata import InvalidDistribution
from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import InvalidName
from pypid.core.dists.readme import Renderer, render_description
from pypid.core.dists.version_order import latest_per_project
from pypid.core.indexes.pending import DELETED, PendingFile
from pypid.core.util.units import counted
from pypid.storage.folder.sidecars import Sidecars, is_tombstone, storage_error, storage_errors

#: (the namespace these lines always had, before the module moved: log filters keep matching)
log = Logger(namespace="pypid.storage.folder_imports")

#: An imported file: its record, its metadata, and its record sidecar as the
#: scan read it, which the background write compares with what is there then.
Imported = tuple[FileRecord, bytes | None, dict[str, Any] | None]


@attrs.define(eq=False)
class FolderImports:
    """
    Describes the files of a folder that have no usable record, and renders
    stored files' details.

    @ivar _unwritten: metadata of imported files whose sidecars are not
        written yet, served from here until they are (for good after a scan
        that does not persist).
    """

    _sidecars: Sidecars
    _render: Renderer = render_description
    _unwritten: dict[str, bytes] = attrs.field(factory=dict, init=False)

    def unwritten(self, filename: str) -> bytes | None:
        """The metadata of C{filename} kept in memory until its sidecar is written."""
        return self._unwritten.get(filename)

    def import_file(self, path: str, filename: str, key: str, mtime: float,
                    seen: dict[str, Any] | None, imported: list[Imported]) -> FileRecord | str:
        """
        Describe a file without a usable record: its record (added to
        C{imported} with C{seen}, the sidecar as read), or why it is not served.
        """
        try:
            inspected = inspect(path, filename, key, mtime, legacy=True)
        except (InvalidName, InvalidDistribution) as e:
            return str(e)
        except OSError as e:
            return f"cannot read: {e.strerror}"
        # Kept beside the file (later), so the next scan is cheap and the
        # upload time stays what it was today.
        record: FileRecord = inspected.record
        metadata: bytes | None = inspected.metadata
        if metadata is not None:
            self._unwritten[filename] = metadata
        imported.append((record, metadata, seen))
        return record

    def describe_pending(self, pending: Sequence[PendingFile],
                         persist: bool) -> list[tuple[PendingFile, FileRecord | str]]:
        """Describe files a scan left pending; see L{IBackfillStorage.describe_pending}."""
        results: list[tuple[PendingFile, FileRecord | str]] = []
        imported: list[Imported] = []
        for item in pending:
            path = self._sidecars.file_path(item.key)
            size: int | None
            try:
                if item.recorded or item.mtime is None:
                    stat = os.stat(path)
                    size, mtime = stat.st_size, stat.st_mtime
                else:
                    size, mtime = item.size, item.mtime
            except OSError as e:
                results.append((item, f"cannot read: {e.strerror}"))
                continue
            seen = None
            if item.recorded:
                seen = self._sidecars.read_record(item.filename)
                if is_tombstone(seen):
                    results.append((item, DELETED))
                    continue
                if seen is not None:
                    try:
                        record = FileRecord.from_json(seen)
                    except ValueError:
                        record = None
                    if record is not None and record.size == size:
                        results.append((item, record.replace(path=item.key)
                                        if record.path != item.key else record))
                        continue
            results.append((item, self.import_file(path, item.filename, item.key, mtime, seen,
                                                   imported)))
        if persist and imported:
            # (no details: a README takes 1 to 3 ms to render, more than the
            # rest of describing a file; a person's first view renders it)
            self.write_imported(imported, quiet=True, details=False)
        return results

    def write_imported(self, imported: list[Imported], quiet: bool = False,
                       details: bool = True) -> None:
        """
        Keep imported records and metadata beside their files, and the
        details of each project's latest file (with C{details}), rendered
        here rather than in the scan: a README takes milliseconds, and a
        folder of thousands would hold start-up for minutes. The others are
        described at their first view (L{describe}).
        """
        sidecars = self._sidecars
        described = (latest_per_project(record for record, _, _ in imported)
                     if details else ())
        for record, metadata, seen in imported:
            rendered = None
            if record.filename in described:
                # (no rest after it: the daemon renders in its sandbox, and a
                # rest would hold an I/O thread as long again)
                try:
                    rendered = self._details_of(record)
                except OSError as e:
                    # (described on its first view instead)
                    log.warn("Cannot describe {filename}: {error}",
                             filename=record.filename, error=e.strerror)
            try:
                with sidecars.lock:
                    current = sidecars.read_record(record.filename)
                    deleted = is_tombstone(current)
                    if metadata is not None and not deleted:
                        sidecars.write_metadata(record.filename, metadata, durable=False)
                    # A sidecar that changed since the scan read it holds a yank
                    # or a delete stored meanwhile: newer than what the scan knew.
                    if current == seen:
                        sidecars.write_record(record.filename, record, durable=False)
                    if rendered is not None and not deleted:
                        sidecars.write_details(record.filename, rendered)
            except OSError as e:
                log.warn("Cannot keep the record of {filename}: {error}",
                         filename=record.filename, error=e.strerror)
            finally:
                self._unwritten.pop(record.filename, None)
        if not quiet:
            log.info("Kept the records of {files}",
                     files=counted(len(imported), "imported file"))

    def describe(self, record: FileRecord) -> bytes | None:
        """Render a file's details from the file and keep them in their sidecar."""
        try:
            details = self._details_of(record)
        except FileNotFoundError:
            return None  # (deleted meanwhile)
        except OSError as e:
            raise storage_error(e)
        if details is not None:
            sidecars = self._sidecars
            with storage_errors(), sidecars.lock:
                if is_tombstone(sidecars.read_record(record.filename)):
                    return None
                sidecars.write_details(record.filename, details)
        return details

    def _details_of(self, record: FileRecord) -> bytes | None:
        """The details of a stored file, or L{None}: not a distribution; L{OSError}: unreadable."""
        try:
            details: bytes | None = inspect(
                self._sidecars.file_path(record.path), record.filename, record.path,
                record.upload_time, (record.size, record.sha256, record.blake2_256, record.md5),
                legacy=True, details=self._render).details
        except (InvalidName, InvalidDistribution) as e:
            log.warn("Cannot describe {filename}: {error}", filename=record.filename,
                     error=str(e))
            return None
        return details
