"""
A storage into a bundle (C{pypid-admin export}), beside a daemon that may
be running on it.

The storage is read as C{pypid-export} reads it (L{pypid.storage.base.reading}):
the daemon's snapshot, then a scan that writes nothing, takes no lock and
sweeps nothing. The bundle is the storage as that scan found it, each
file's bytes checked against its record's sha256 as they are copied, so a
copy is never half of an upload or another file's bytes. What a daemon
uploads or yanks after the scan is not in the bundle; a file it deletes
before it is copied is left out and reported (the run then exits 1, and a
second run gives the bundle as it is then).

A file in the recycle bin is not carried, but its name is, as a tombstone,
so that the server a bundle is imported into keeps the name closed (no
other bytes, and no upstream, under it); restore a file to carry it.

The projects' statuses (PEP 792) go in C{statuses.json} as storage keeps
them, with who set each and when, from the last C{status} entry of the
audit log that set it (none when the log does not say). A quarantined
project's files are carried like any other, its status with them.

Members are written file by file (each file, its metadata and details),
then the statuses, the records, the tombstones and the manifest. Named
indexes are packed the same way, each from its own storage and snapshot,
under C{indexes/NAME/}, with C{indexes.json}.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import TypeVar

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.bundle.archive import BundleWriter
from pypid.bundle.manifest import (
    AUDIT,
    INDEXES_JSON,
    BundledIndex,
    BundledStatus,
    BundleManifest,
    Digest,
    classify,
    details_member,
    file_member,
    indexes_bytes,
    metadata_member,
    provenance_member,
    records_bytes,
    records_member,
    statuses_bytes,
    statuses_member,
    tombstones_bytes,
    tombstones_member,
)
from pypid.core.dists.model import FileRecord, format_upload_time
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.records.audit_chain import OK, AuditError, decode, split_lines
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.units import counted
from pypid.storage.base.disk import remove_file
from pypid.storage.base.interface import IStorage
from pypid.storage.base.journal import IJournal
from pypid.storage.base.reading import (
    BINARY_TYPE,
    FileUnavailable,
    Run,
    load_records,
    put_file,
    read_metadata,
    read_statuses,
)

log = Logger()

T = TypeVar("T")


@attrs.define
class PackReport:
    """
    What packing a bundle wrote.

    @ivar problems: C{(filename, why)} of the files left out.
    """

    files: int = 0
    bytes: int = 0
    metadata: int = 0
    details: int = 0
    tombstones: int = 0
    audit: int = 0
    statuses: int = 0
    problems: list[tuple[str, str]] = attrs.field(factory=list)

    def summary(self, where: str) -> str:
        """One line for people."""
        statuses = (f"{counted(self.statuses, 'project status', 'project statuses')}, "
                    if self.statuses else "")
        return (f"Exported {counted(self.files, 'file')} ({counted(self.bytes, 'byte')}), "
                f"{self.metadata} metadata, {counted(self.details, 'detail')}, {statuses}"
                f"{counted(self.tombstones, 'tombstone')} and "
                f"{counted(self.audit, 'audit log file')} to {where}")


@attrs.frozen
class _WriterTarget:
    """A L{pypid.storage.base.reading.FileSink} over a bundle writer."""

    _writer: BundleWriter
    _run: Run
    _spool_dir: str

    def spool(self) -> str:
        """A new path in the export's own spool folder."""
        fd, path = tempfile.mkstemp(dir=self._spool_dir, prefix="file-")
        os.close(fd)
        return path

    def write(self, path: str, data: bytes,
              content_type: str = BINARY_TYPE) -> Deferred[Digest]:
        """Add C{data} as the member C{path}; fire with its L{Digest}."""
        return self._run(self._writer.add_bytes, path, data)

    def put_file(self, path: str, source: str, sha256: str, consume: bool,
                 size: int | None = None) -> Deferred[Digest]:
        """
        Add the local file C{source} as the member C{path}; fire with its
        L{Digest}. A spooled one was checked as it was fetched, a storage
        file is checked here.
        """
        d: Deferred[Digest] = self._run(self._writer.add_file, path, source,
                                        None if consume else sha256)
        if consume:
            def removed(result: T) -> T:
                remove_file(source)
                return result
            d.addBoth(removed)
        return d


@attrs.frozen
class PackedIndex:
    """
    A named index to pack: its storage (L{pypid.storage.factory.index_settings}),
    its snapshot (L{pypid.storage.factory.index_snapshot_path}) and how
    C{indexes.json} describes it.
    """

    index: BundledIndex
    storage: IStorage
    snapshot_path: str | None


async def pack_bundle(storage: IStorage | None, writer: BundleWriter,
                      snapshot_path: str | None, run: Run, clock: IReactorTime,
                      audit: IJournal | None = None,
                      indexes: Sequence[PackedIndex] = ()) -> PackReport:
    """
    Write the storage's files, records, metadata, details, tombstones and
    audit log into C{writer} (L{pypid.bundle.archive.open_writer}), then its
    manifest, even when a file was left out: what was taken makes a
    consistent bundle.

    @param clock: for the manifest's date.
    @param audit: the storage's journal, whose files go under C{audit/} as
        they are stored (so their chains can still be checked), or L{None}.
        Reading them takes each file's shared lock for a moment, never the
        daemon's.
    @param storage: the default index's storage, or L{None} to leave it
        out (its records and tombstones are then empty).
    @raise pypid.storage.base.interface.StorageError: the storage failed.
    """
    report = PackReport()
    spool_dir = await run(tempfile.mkdtemp, None, "pypid-bundle-")
    target = _WriterTarget(writer, run, spool_dir)
    try:
        # (in the order of the bundles before named indexes: the default's
        # files, the audit log, its records and tombstones; so that a
        # bundle of the default index only has the same bytes)
        logged = await audit.stored_files() if audit is not None else []
        own: tuple[list[FileRecord], frozenset[str]] = ([], frozenset())
        if storage is not None:
            own = await _pack_files(storage, snapshot_path, DEFAULT, target, run, report)
        for packed in indexes:
            taken, tombstones = await _pack_files(packed.storage, packed.snapshot_path,
                                                  packed.index.name, target, run, report)
            await _pack_statuses(packed.storage, packed.index.name, logged, target, report)
            await _pack_records(packed.index.name, taken, tombstones, target, report)
        for name, data in logged:
            await target.write(AUDIT + name, data)
            report.audit += 1
        if storage is not None:
            await _pack_statuses(storage, DEFAULT, logged, target, report)
        await _pack_records(DEFAULT, *own, target, report)
        if indexes:
            await target.write(INDEXES_JSON, indexes_bytes(p.index for p in indexes))
    finally:
        await run(shutil.rmtree, spool_dir, True)  # (ignore_errors: a spool left is no failure)
    files: dict[str, Digest] = {}
    members: dict[str, Digest] = {}
    for name, digest in writer.entries.items():
        member = classify(name)
        if member.kind == "file" and member.filename is not None and member.index is None:
            files[member.filename] = digest
        else:
            members[name] = digest
    source = storage if storage is not None else (indexes[0].storage if indexes else None)
    manifest = BundleManifest(files, members, format_upload_time(clock.seconds()),
                              source.identity() if source is not None else None)
    await run(writer.finish, manifest.to_bytes())
    return report


async def _pack_files(storage: IStorage, snapshot_path: str | None, index: str,
                      target: _WriterTarget, run: Run, report: PackReport
                      ) -> tuple[list[FileRecord], frozenset[str]]:
    """Write one index's files, metadata and details; return their records and its tombstones."""
    scanned = await load_records(storage, snapshot_path, run)
    taken: list[FileRecord] = []
    binned: set[str] = set()
    for filename in sorted(scanned.records):
        record = scanned.records[filename]
        if record.binned is not None:
            # (deleted, in the recycle bin until its purge: not a file the
            # index serves, so not one a bundle carries; its name travels
            # as a tombstone, so that an import keeps it closed)
            binned.add(filename)
            continue
        metadata = await read_metadata(storage, record)
        details = await storage.read_details(record)
        provenance = await storage.read_provenance(record)
        if provenance is None and record.provenance_sha256 is not None:
            # (not kept, or not the one its record names: the record says none)
            record = record.replace(provenance_sha256=None)
        try:
            await put_file(storage, record, target, file_member(filename, index))
        except FileUnavailable as e:
            log.warn("Not exporting {filename}: {error}", filename=filename, error=str(e))
            report.problems.append((filename if index == DEFAULT else f"{index}/{filename}",
                                    str(e)))
            continue
        if metadata is not None:
            await target.write(metadata_member(filename, index), metadata)
        if details is not None:
            await target.write(details_member(filename, index), details)
        if provenance is not None:
            await target.write(provenance_member(filename, index), provenance)
        taken.append(record)
        report.files += 1
        report.bytes += record.size
        report.metadata += metadata is not None
        report.details += details is not None
    return taken, scanned.tombstones | binned


def status_setters(logged: Sequence[tuple[str, bytes]], index: str
                   ) -> dict[str, tuple[str | None, str, str | None]]:
    """
    C{(user, time, detail)} of the last C{status} entry that set each
    project's status in the index C{index}, from the audit log's files
    (C{(name, bytes)}); a line that is no entry is passed over
    (C{pypid-admin audit verify} checks the log).
    """
    found: dict[str, tuple[str | None, str, str | None]] = {}
    wanted = None if index == DEFAULT else index
    for _name, data in logged:
        for line in split_lines(data):
            if b'"status"' not in line:
                continue
            try:
                entry = decode(line)
            except AuditError:
                continue
            if (entry.event != ChangeKind.STATUS or entry.outcome != OK or entry.project is None
                    or entry.index != wanted):
                continue
            last = found.get(entry.project)
            if last is None or entry.time >= last[1]:
                found[entry.project] = (entry.user, entry.time, entry.detail)
    return found


async def _pack_statuses(storage: IStorage, index: str, logged: Sequence[tuple[str, bytes]],
                         target: _WriterTarget, report: PackReport) -> None:
    """
    Write one index's projects' statuses, if any, with who set each and when
    (L{status_setters}: the last entry that set it, when its detail names
    the status storage keeps).
    """
    statuses = await read_statuses(storage)
    if not statuses:
        return
    setters = status_setters(logged, index) if logged else {}
    bundled: dict[str, BundledStatus] = {}
    for name, status in statuses.items():
        who, when, detail = setters.get(name, (None, None, None))
        if detail is None or detail.split(":", 1)[0] != status.status:
            # (the log does not say who set this status: none is claimed)
            who = when = None
        bundled[name] = BundledStatus(status, who, when)
    await target.write(statuses_member(index), statuses_bytes(bundled))
    report.statuses += len(bundled)


async def _pack_records(index: str, taken: list[FileRecord],
                        tombstones: frozenset[str],
                        target: _WriterTarget, report: PackReport) -> None:
    """Write one index's records and tombstones."""
    await target.write(records_member(index), records_bytes(taken))
    await target.write(tombstones_member(index), tombstones_bytes(tombstones))
    report.tombstones += len(tombstones)
