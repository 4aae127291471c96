"""
The scan of a storage folder: its records and files, trusting a snapshot
for what did not change since. Blocking. Apart because it is what start-up
measures (100,000 files in well under a second from a snapshot), and the
comments saying why each step is as it is belong together.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import attrs
from twisted.logger import Logger

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.pending import PendingFile
from pypid.core.indexes.promotion import Promotion
from pypid.storage.base.interface import ScanResult
from pypid.storage.folder.folder_imports import FolderImports, Imported
from pypid.storage.folder.sidecars import PROMOTION, RECORD, Sidecars, is_tombstone

#: (the namespace these lines always had, before the module moved: log filters keep matching)
log = Logger(namespace="pypid.storage.folder_scan")

#: Linux's C{CLOCK_REALTIME_COARSE} (C{time} does not name it).
_CLOCK_REALTIME_COARSE = 5

#: How much earlier than the snapshot's time a change time may be and still
#: count as after it. The kernel stamps files by its coarse clock, a tick
#: (1 to 10 ms) behind C{time.time()} when ticks come on time; on a busy
#: virtual machine they come late: a yank's record written 5 to 9 ms after
#: a snapshot's time was stamped 4.6 ms before it (both cores under
#: stress-ng, 4 ms ticks), was taken as older than the snapshot, and the
#: acknowledged yank was lost at the start after a kill -9. A second of
#: margin costs a check the records changed in the second before the
#: snapshot, read again. (Whole-second filesystems such as FAT are not
#: supported.)
CHANGE_TIME_MARGIN = max(1.0, time.clock_getres(_CLOCK_REALTIME_COARSE)
                         if sys.platform == "linux" else 0.01)


@attrs.define(eq=False)
class _Findings:
    """What one scan found so far, filled in step by step (L{FolderScan.scan})."""

    records: dict[str, FileRecord] = attrs.field(factory=dict)
    tombstones: set[str] = attrs.field(factory=set)
    skipped: list[tuple[str, str]] = attrs.field(factory=list)
    #: files left to describe later, by filename
    pending: dict[str, PendingFile] = attrs.field(factory=dict)
    #: the files imported on the way, whose records are not kept yet
    imported: list[Imported] = attrs.field(factory=list)
    #: the records read, by filename: a record, a dict that is not one, or L{None}
    fresh: dict[str, FileRecord | dict[str, Any] | None] = attrs.field(factory=dict)
    #: the records found damaged: a tombstone each, unless a file of its
    #: name is there (then described from the file, its record rewritten)
    damaged: set[str] = attrs.field(factory=set)


@attrs.define(eq=False)
class FolderScan:
    """Lists a folder's files and their records; C{_imports} describes those without."""

    _sidecars: Sidecars
    _imports: FolderImports

    def scan(self, known: dict[str, FileRecord], since: float,
             known_tombstones: frozenset[str] = frozenset(), persist: bool = True,
             later: bool = False) -> tuple[ScanResult, list[Imported]]:
        """
        What the folder holds (L{pypid.storage.base.interface.IStorage.scan}),
        and the files imported on the way, their records not kept yet.
        """
        since = self._trusted_since(since, persist)
        if since and known and self._unchanged_since(since) and self._same_sizes(known):
            # (promotions: L{None}, as the snapshot has them)
            return ScanResult(records=dict(known), tombstones=known_tombstones,
                              current=True, promotions=None), []
        listed, promoted = self._list_records()
        found = _Findings()
        # (a later scan reads now only the records of known files, below)
        self._read_records(listed if not later else listed & known.keys(), known, since, found)
        self._find_files(known, listed, later, found)
        if later:
            # The records no file has the name of: tombstones (read now, so
            # that a deleted name is never served or taken again), or left
            # behind.
            self._read_tombstones(listed - known.keys() - found.records.keys()
                                  - found.pending.keys(), found)
        self._bury_damaged(found)
        result = ScanResult(records=found.records, tombstones=frozenset(found.tombstones),
                            skipped=tuple(found.skipped), pending=tuple(found.pending.values()),
                            promotions=self._promotions(promoted, found))
        return result, found.imported

    def _trusted_since(self, since: float, persist: bool) -> float:
        """Make the records' folders (with C{persist}); from when C{since} is trusted (0: never)."""
        sidecars = self._sidecars
        # Wall-clock time, on purpose: it is compared with the times the
        # filesystem gives files, not with the reactor's (or a test's) clock.
        started = time.time()
        if persist:
            os.makedirs(sidecars.files_dir, exist_ok=True)
            # Sidecars of files read during the scan are written through it.
            os.makedirs(sidecars.temp_dir, exist_ok=True)
        # A snapshot from the future means the clock went back: trust no time.
        if since > started:
            return 0.0
        if since:
            # (a change stamped up to a tick early counts as after C{since})
            return since - CHANGE_TIME_MARGIN
        return since

    def _list_records(self) -> tuple[set[str], list[str]]:
        """The filenames with a record sidecar, and those with a promotion sidecar."""
        # The names only, in one comprehension: DirEntry objects (three a
        # file) held 60 MB more at 100,000 files, and took 0.3 s, not 0.11.
        names: list[str] | tuple[()]
        try:
            names = os.listdir(self._sidecars.files_dir)
        except (FileNotFoundError, NotADirectoryError):
            names = ()  # (not made: a scan that does not persist makes none)
        cut = -len(RECORD)
        listed = {name[:cut] for name in names if name.endswith(RECORD)}
        # The promoted files: a second pass, 50 to 70 ms at 100,000 files on a
        # busy two-core machine where the first took 120 ms; only their
        # sidecars are read, at the end.
        promoted = [name[:-len(PROMOTION)] for name in names if name.endswith(PROMOTION)]
        return listed, promoted

    def _read_records(self, filenames: Iterable[str], known: dict[str, FileRecord],
                      since: float, found: _Findings) -> None:
        """
        Read into C{found} the records of C{filenames} changed since C{since}
        or unknown to the snapshot, noting tombstones and damaged ones.
        """
        sidecars = self._sidecars
        fresh, tombstones, damaged = found.fresh, found.tombstones, found.damaged
        folder = sidecars.files_dir + os.sep
        for filename in filenames:
            path = folder + filename + RECORD
            # ctime, not mtime: a restore or touch can set mtime back.
            if filename in known:
                try:
                    if os.stat(path).st_ctime < since:
                        continue
                except OSError:
                    continue
            data, unreadable = sidecars.load_record(filename, path)
            if unreadable:
                damaged.add(filename)
            if is_tombstone(data):
                tombstones.add(filename)
            elif data is not None:
                # Kept as the record, not the dict it was read from: 100,000
                # of those held at once made the records' start peak at 540
                # MiB.
                try:
                    fresh[filename] = FileRecord.from_json(data)
                    continue
                except ValueError:
                    pass
            fresh[filename] = data

    def _find_files(self, known: dict[str, FileRecord], listed: set[str], later: bool,
                    found: _Findings) -> None:
        """Walk the tree and find each file's record (or why it is skipped, or pending)."""
        records, tombstones, pending = found.records, found.tombstones, found.pending
        skipped, damaged = found.skipped, found.damaged
        for key, filename, entry in self._walk():
            damaged.discard(filename)
            if filename in records or filename in tombstones or filename in pending:
                if filename in records or filename in pending:
                    skipped.append((key, f"another file named {filename} is already listed"))
                continue
            record = self._record_for(key, filename, entry, known, found.fresh,
                                      found.imported, later, filename in listed)
            if isinstance(record, str):
                skipped.append((key, record))
            elif isinstance(record, PendingFile):
                pending[filename] = record
            else:
                records[filename] = record

    def _read_tombstones(self, filenames: Iterable[str], found: _Findings) -> None:
        """Read the records of C{filenames}, no file's, for the tombstones among them."""
        for filename in filenames:
            data, unreadable = self._sidecars.load_record(filename)
            if unreadable:
                found.damaged.add(filename)
            elif is_tombstone(data):
                found.tombstones.add(filename)

    def _bury_damaged(self, found: _Findings) -> None:
        """Take each damaged record that no file there has the name of for a tombstone."""
        # (a file there but not served, not a distribution, is there all the same)
        found.damaged.difference_update(key.rpartition("/")[2] for key, _ in found.skipped)
        for filename in found.damaged:
            # A name once used stays used: only damage leaves a record
            # unreadable (each is written whole, through a rename).
            log.warn("Taking the unreadable record {path} for a tombstone of {filename}: "
                     "no file of that name is stored",
                     path=self._sidecars.record_path(filename), filename=filename)
            found.tombstones.add(filename)

    def _promotions(self, promoted: list[str], found: _Findings) -> dict[str, Promotion]:
        """The promotions of the files found, from the sidecars of C{promoted}."""
        promotions = {}
        for filename in promoted:
            if filename in found.records or filename in found.pending:
                promotion = self._sidecars.read_promotion(filename)
                if promotion is not None:
                    promotions[filename] = promotion
        return promotions

    def _walk(self) -> Iterator[tuple[str, str, os.DirEntry[str]]]:
        """Yield C{(key, filename, DirEntry)} for every regular file outside .pypid."""
        stack = [("", self._sidecars.root)]
        while stack:
            prefix, folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as e:
                log.warn("Cannot list {folder}: {error}", folder=folder, error=e.strerror)
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((prefix + entry.name + "/", entry.path))
                elif entry.is_file():
                    yield prefix + entry.name, entry.name, entry

    def _same_sizes(self, known: dict[str, FileRecord]) -> bool:
        """Whether every known file is still where it was, with its size."""
        for record in known.values():
            try:
                if os.stat(self._sidecars.file_path(record.path)).st_size != record.size:
                    return False
            except OSError:
                return False
        return True

    def _unchanged_since(self, since: float) -> bool:
        """
        Whether no folder of the tree changed after C{since}, so no file need
        be looked at: every change, pypid's or by hand, renames or links in
        a folder. By the folders' ctime, which neither a restore nor C{touch}
        sets back, with L{CHANGE_TIME_MARGIN}.
        """
        try:
            if os.stat(self._sidecars.files_dir).st_ctime >= since:
                return False
            stack = [self._sidecars.root]
            while stack:
                folder = stack.pop()
                if os.stat(folder).st_ctime >= since:
                    return False
                for entry in os.scandir(folder):
                    if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            return False
        return True

    def _record_for(self, key: str, filename: str, entry: os.DirEntry[str],
                    known: dict[str, FileRecord],
                    fresh: dict[str, FileRecord | dict[str, Any] | None],
                    imported: list[Imported], later: bool = False,
                    listed: bool = True) -> FileRecord | PendingFile | str:
        """
        The record of one file: the snapshot's when neither it nor its sidecar
        changed, else its sidecar's, else the file's (C{later}: a L{PendingFile}).

        @param listed: whether the records' folder holds a sidecar for it;
            none is looked for otherwise (a failed open costs 10 us, 1 s for
            a bare folder of 100,000 files).
        """
        previous = known.get(filename)
        if later and previous is None and filename not in fresh:
            # (nothing to compare: the file, and its record, are looked at
            # when described)
            return PendingFile(filename, key, recorded=listed)
        stat = entry.stat()
        if (previous is not None and filename not in fresh and previous.path == key
                and previous.size == stat.st_size):
            return previous
        data = fresh.get(filename)
        if data is None and filename not in fresh and listed:
            data = self._sidecars.read_record(filename)
        if isinstance(data, FileRecord):
            if data.size == stat.st_size:
                return data.replace(path=key) if data.path != key else data
            data = data.to_json()  # (as read: the sidecar an import may replace)
        elif data is not None:
            if not data.get("deleted"):
                try:
                    record = FileRecord.from_json(data)
                except ValueError:
                    record = None
                if record is not None and record.size == stat.st_size:
                    return record.replace(path=key) if record.path != key else record
        if later and data is None:
            return PendingFile(filename, key, stat.st_size, stat.st_mtime)
        return self._imports.import_file(entry.path, filename, key, stat.st_mtime, data,
                                         imported)
