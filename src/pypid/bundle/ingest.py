"""
Files from any source into a storage (C{pypid-admin import}), each taken as
an upload is, with a report of what happened to each. Whatever the source
(L{pypid.bundle.sources}), each L{Arrival} is:

  1. checked against what is stored: the same bytes under its name are
     I{already there}; other bytes, or a name deleted here (a tombstone),
     are a I{conflict}: nothing is ever overwritten;
  2. copied into the storage's spool folder, hashed and bounded by
     C{[pypid] max_upload_size}; bytes other than the sha256 or size the
     source gives are I{refused};
  3. inspected as an upload is (L{pypid.core.dists.distribution.inspect}):
     what is no distribution, or a broken or hostile archive, is I{refused}
     with the reason. The record and metadata come from the file itself;
     only the upload time, uploader and yank state from the source;
  4. published (L{IStorage.publish}, which never overwrites: a file that
     arrived meanwhile is a conflict too), then yanked if the source says so.

Tombstones are kept unless a file of that name is stored here (a conflict).
The projects' statuses (PEP 792) are kept first (L{Ingest.take_statuses}),
so a quarantined project's files never arrive active, even when the import
stops half-way; a quarantine replaces another status kept here, another
that differs is a conflict. A storage failure stops the import; run
again, it takes up where it stopped.

Files are taken four at a time (L{Ingest.take_all}) so that publications
(fsyncs, requests to a bucket) overlap. 10,001 small wheels into a folder
on 2 cores: 112 s one at a time, 64 s four, 55 s eight (inspection holds
the GIL).
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, cast

import attrs
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    DeferredLock,
    DeferredSemaphore,
    ensureDeferred,
)
from twisted.python.failure import Failure

from pypid.bundle.archive import SourceTooLarge
from pypid.bundle.import_report import ImportReport
from pypid.bundle.manifest import AUDIT, BundledStatus
from pypid.core.access.upload_rules import UploadRules
from pypid.core.dists.distribution import inspect
from pypid.core.dists.metadata import InvalidDistribution
from pypid.core.dists.model import (
    UPLOADER_BYTES,
    FileRecord,
    cut_reason,
    cut_text,
    format_upload_time,
)
from pypid.core.dists.names import InvalidName, parse_filename, project_of_filename
from pypid.core.dists.provenance import ProvenanceInvalid, read_provenance
from pypid.core.dists.readme import Renderer, render_description
from pypid.core.dists.version_order import release_key
from pypid.core.dists.wheel_variants import InvalidVariant, check_joins
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.records.audit_chain import Entry, verify_writers
from pypid.core.records.change_kinds import ChangeKind
from pypid.jobs.run import Run
from pypid.storage.base.disk import remove_file
from pypid.storage.base.interface import FileExists, FilenameDeleted, IStorage, RecordRefused
from pypid.storage.base.journal import IMPORTED, IJournal

#: How many files an import takes at once (see L{Ingest.take_all}).
PARALLEL = 4

#: C{(size, sha256, blake2_256, md5)} of a file's bytes, as
#: L{pypid.core.dists.distribution.inspect} takes them.
Digests = tuple[int, str, str, str]
#: C{fetch(path, limit)}: see L{Arrival.fetch}.
Fetch = Callable[[str, int], Deferred[Digests]]
#: C{opener()}: a member's bytes, as a file object to close.
Opener = Callable[[], IO[bytes]]


class SourceUnavailable(Exception):
    """A source cannot give a file's bytes; the message says why."""


@attrs.frozen
class Arrival:
    """
    One file a source offers.

    @ivar filename: the name it is to be served under.
    @ivar origin: where it is in the source, for the report.
    @ivar fetch: C{fetch(path, limit)} copies the bytes to a new file at
        C{path} and fires with L{Digests}; it fails with
        L{pypid.bundle.archive.SourceTooLarge} past C{limit} bytes, and with
        L{SourceUnavailable} or L{OSError} when it cannot.
    @ivar sha256: the hex digest the source gives for the bytes (and
        C{upload_time}, C{size}, C{uploader}, as it keeps them), or L{None}.
    @ivar yanked: the yank state (L{None}, or the reason), when
        C{yank_known}: devpi, pypiserver and pypicloud keep none.
    @ivar refused: why the source itself cannot offer the file (a bundle's
        member that does not match its manifest), or L{None}.
    @ivar provenance: C{provenance()} reads the file's provenance object
        (PEP 740, of sha256 C{provenance_sha256}), or L{None} for none.
    """

    filename: str
    origin: str
    fetch: Fetch | None
    upload_time: float
    sha256: str | None = None
    size: int | None = None
    uploader: str | None = None
    yanked: str | None = None
    yank_known: bool = False
    refused: str | None = None
    provenance: Callable[[], Deferred[bytes]] | None = None
    provenance_sha256: str | None = None


def _provenance_problem(data: bytes, arrival: Arrival, filename: str,
                        sha256: str) -> str | None:
    """Why a file's provenance from a source cannot be kept with it, or L{None}."""
    if hashlib.sha256(data).hexdigest() != arrival.provenance_sha256:
        return "its provenance is not the one its record names"
    try:
        read_provenance(data, filename, sha256)
    except ProvenanceInvalid as e:
        return f"its provenance is not one of this file: {e}"
    return None


def _valid_time(when: object) -> bool:
    """Whether C{when} is a POSIX time an index can show (PEP 700)."""
    if not isinstance(when, (int, float)) or isinstance(when, bool) or not math.isfinite(when):
        return False
    try:
        format_upload_time(when)
    except (ValueError, OverflowError, OSError):
        return False
    return True


# Copies, which the ingest adds to (mypy's attrs plugin takes no dict or set converter).
def _own_records(records: Mapping[str, FileRecord]) -> dict[str, FileRecord]:
    return dict(records)


def _own_statuses(statuses: Mapping[str, ProjectStatus]) -> dict[str, ProjectStatus]:
    return dict(statuses)


def _own_names(names: Iterable[str]) -> set[str]:
    return set(names)


@attrs.define
class Ingest:
    """
    Takes L{Arrival}s and tombstones into a storage; see the module.

    @ivar records: L{FileRecord}s by filename: what the storage holds (a
        scan's), and what this import published.
    @ivar _tombstones: the storage's deleted filenames.
    @ivar _render: renders the descriptions of the files taken (the
        command's L{pypid.sandbox.readme_sandbox}).
    """

    _storage: IStorage
    _run: Run
    _max_size: int
    records: dict[str, FileRecord] = attrs.field(converter=_own_records)
    _tombstones: set[str] = attrs.field(converter=_own_names)
    _render: Renderer = attrs.field(default=render_description, kw_only=True)
    #: what the index's uploads let through that its checks would refuse:
    #: an import applies the same rule to each wheel's tags
    _allowed: UploadRules = attrs.field(factory=UploadRules, kw_only=True, alias="uploads")
    #: the statuses the storage keeps, by project (L{take_statuses} adds to them)
    _statuses: dict[str, ProjectStatus] = attrs.field(factory=dict, kw_only=True,
                                                      converter=_own_statuses)
    report: ImportReport = attrs.field(factory=ImportReport)
    #: filename -> where in the source each file taken (or found) came
    #: from: for the report of a second file of that name, and the audit log
    origins: dict[str, str] = attrs.field(factory=dict)
    # Held while a source is read: one file's bytes at a time, in the order
    # the source offers them (a compressed tar file is read front to back).
    _reading: DeferredLock = attrs.field(factory=DeferredLock)
    #: (project, release) -> its variant wheels' variant.json held here
    #: (PEP 825), made at the first variant wheel (L{_inconsistent})
    _variants: dict[tuple[str, str], list[str]] | None = attrs.field(default=None, init=False)

    async def take_all(self, arrivals: Iterable[Arrival], parallel: int = PARALLEL) -> None:
        """
        Take every file of a source, C{parallel} at a time: the source is
        read one file at a time, in order, but inspections and publications
        overlap. Files of one name are taken in the source's order, so the
        report says what a one-by-one import would. When one fails (the
        storage failed), no more are begun, those under way finish, and the
        first failure is raised.
        """
        by_name: dict[str, list[Arrival]] = {}
        for arrival in arrivals:
            by_name.setdefault(arrival.filename, []).append(arrival)
        limit = DeferredSemaphore(parallel)
        failed: list[bool] = []

        async def take_each(group: list[Arrival]) -> None:
            for arrival in group:
                if failed:
                    return  # (the import stops: take no more)
                try:
                    await self.take(arrival)
                except BaseException:
                    failed.append(True)
                    raise
        results = await DeferredList([
            limit.run(lambda group: ensureDeferred(take_each(group)), group)
            for group in by_name.values()
        ], consumeErrors=True)
        for succeeded, value in results:
            if not succeeded:
                # (Twisted types a failed result as the Deferred's own type)
                cast(Failure, value).raiseException()

    async def take(self, arrival: Arrival) -> None:
        """Take one file in, or say in the report why not."""
        report, filename = self.report, arrival.filename
        if arrival.refused is not None:
            report.refused.append((arrival.origin, arrival.refused))
            return
        try:
            parse_filename(filename, legacy=True)
        except InvalidName as e:
            report.refused.append((arrival.origin, f"not a distribution: {e}"))
            return
        if not _valid_time(arrival.upload_time):
            report.refused.append((arrival.origin,
                                   f"its upload time {arrival.upload_time!r} is not a time"))
            return
        if filename in self._tombstones:
            report.conflicts.append((filename, "it was deleted here, and a deleted "
                                               "filename is never used again"))
            return
        if arrival.size is not None and arrival.size > self._max_size:
            report.refused.append((arrival.origin, f"it has {arrival.size} bytes, more than "
                                                   f"{self._max_size} ([pypid] max_upload_size)"))
            return
        existing = self.records.get(filename)
        if existing is not None and arrival.sha256 is not None:
            self._compare(arrival, existing, arrival.sha256)
            return
        spool = os.path.join(self._storage.temp_dir, f"import-{secrets.token_hex(8)}")
        try:
            await self._take_spooled(arrival, existing, spool)
        finally:
            await self._run(remove_file, spool)

    def _compare(self, arrival: Arrival, existing: FileRecord, sha256: str) -> None:
        """Report a file whose name is taken: the same bytes, or a conflict."""
        report, filename = self.report, arrival.filename
        first = self.origins.get(filename)
        if sha256 != existing.sha256:
            where = f" (from {first})" if first is not None else " here"
            report.conflicts.append((filename, f"another file of that name is stored{where}, "
                                               f"sha256 {existing.sha256}; this one, from "
                                               f"{arrival.origin}, has {sha256}"))
        elif arrival.yank_known and arrival.yanked != existing.yanked and first is None:
            report.conflicts.append((filename, f"already here, but {_yank_text(existing)} "
                                               f"here and {_yank_text(arrival)} in the source: "
                                               "this server's state is kept"))
        else:
            report.present.append(filename)

    async def _fetched(self, arrival: Arrival, spool: str) -> Digests | None:
        """
        The digests of the arrival's bytes, spooled to C{spool} and checked
        against what the source says of them; L{None} once refused (and reported).
        """
        report, fetch = self.report, arrival.fetch
        assert fetch is not None, "an arrival the source refused has nothing to fetch"
        try:
            digests = await self._reading.run(fetch, spool, self._max_size)
        except Exception as e:
            if isinstance(e, SourceTooLarge):
                why = f"{e} ([pypid] max_upload_size)"
            elif isinstance(e, OSError):
                why = f"cannot read it: {e.strerror or e}"
            elif isinstance(e, SourceUnavailable):
                why = str(e)
            else:
                raise
            report.refused.append((arrival.origin, why))
            return None
        size, sha256 = digests[0], digests[1]
        if arrival.sha256 is not None and sha256 != arrival.sha256:
            report.refused.append((arrival.origin, f"its bytes have sha256 {sha256}, but the "
                                                   f"source says {arrival.sha256}"))
            return None
        if arrival.size is not None and size != arrival.size:
            report.refused.append((arrival.origin, f"it has {size} bytes, but the source "
                                                   f"says {arrival.size}"))
            return None
        return digests

    async def _take_spooled(self, arrival: Arrival, existing: FileRecord | None,
                            spool: str) -> None:
        report, filename, run = self.report, arrival.filename, self._run
        digests = await self._fetched(arrival, spool)
        if digests is None:
            return
        sha256 = digests[1]
        if existing is not None:
            self._compare(arrival, existing, sha256)
            return
        project = project_of_filename(filename)
        allowed = project is not None and self._allowed.allows_tag_mismatch(project)
        try:
            # (what an old folder holds is read leniently, but a wheel's
            # tags as an upload's)
            inspected = await run(inspect, spool, filename, filename, arrival.upload_time,
                                  digests, True, self._render, "note" if allowed else "refuse")
        except (InvalidName, InvalidDistribution) as e:
            hint = ("; name the project in allow_tag_mismatch to take it"
                    if isinstance(e, InvalidDistribution) and e.tag_mismatch else "")
            report.refused.append((arrival.origin, str(e) + hint))
            return
        problem = self._inconsistent(inspected.record)
        if problem is not None:
            report.refused.append((arrival.origin, problem))
            return
        if inspected.tag_mismatch is not None:
            report.tag_mismatches.append((filename, inspected.tag_mismatch))
        record = inspected.record.replace(
            uploader=cut_text(arrival.uploader, UPLOADER_BYTES),
            yanked=cut_reason(arrival.yanked) if arrival.yank_known else None)
        provenance = None
        if arrival.provenance is not None:
            # (read now, checked: the digest its record names, and a provenance
            # of these very bytes; one that is not refuses the file)
            provenance = await arrival.provenance()
            problem = _provenance_problem(provenance, arrival, filename, sha256)
            if problem is not None:
                report.refused.append((arrival.origin, problem))
                return
            record = record.replace(provenance_sha256=arrival.provenance_sha256)
        try:
            stored = await self._storage.publish(spool, record, inspected.metadata,
                                                 inspected.details, provenance)
        except FileExists as e:
            # (stored meanwhile, by a daemon on a shared bucket, say)
            if e.sha256 == sha256:
                report.present.append(filename)
            else:
                report.conflicts.append((filename, f"another file of that name was stored "
                                                   f"meanwhile, sha256 {e.sha256}"))
            return
        except FilenameDeleted:
            report.conflicts.append((filename, "it was deleted here meanwhile, and a deleted "
                                               "filename is never used again"))
            return
        except RecordRefused as e:
            report.refused.append((arrival.origin, str(e)))
            return
        if record.yanked is not None:
            await self._storage.update(record)
        self.records[filename] = stored if stored is not None else record
        self.origins[filename] = arrival.origin
        report.imported.append(filename)

    def _inconsistent(self, record: FileRecord) -> str | None:
        """
        Why a variant wheel (PEP 825) disagrees with the variant wheels of
        its release held here (those of the storage and those imported so
        far), as an upload of it would be refused; L{None} when it agrees.
        """
        if record.variant is None:
            return None
        if self._variants is None:
            self._variants = {}
            for held in self.records.values():
                if held.variant is not None:
                    self._variants.setdefault(
                        (held.project, release_key(held.version)), []).append(held.variant)
        others = self._variants.setdefault((record.project, release_key(record.version)), [])
        try:
            check_joins(record.variant, others)
        except InvalidVariant as e:
            return str(e)
        others.append(record.variant)
        return None

    async def take_statuses(self, statuses: Mapping[str, BundledStatus]) -> None:
        """
        Keep the projects' statuses of a source (before its files: see the
        module), or say in the report why not.

        @raise pypid.storage.base.interface.StorageError: the storage failed
            (the import stops before any file is taken).
        """
        report = self.report
        for name, bundled in sorted(statuses.items()):
            status, here = bundled.status, self._statuses.get(name)
            if here == status:
                report.statuses_present += 1
                continue
            if here is not None and not status.quarantined:
                report.conflicts.append((name, f"its status is {_status_text(here)} here and "
                                               f"{_status_text(status)} in the source: this "
                                               "server's is kept"))
                continue
            await self._storage.keep_status(name, status.to_bytes())
            self._statuses[name] = status
            what = _status_text(status)
            if bundled.set_by is not None or bundled.set_at is not None:
                what += (f" (set by {bundled.set_by or 'someone'} at "
                         f"{bundled.set_at or 'a time not known'})")
            if here is not None:
                what += f", was {_status_text(here)} here"
            report.statuses.append((name, what))

    async def bury(self, filename: str) -> None:
        """Keep a tombstone the source has, or say in the report why not."""
        report = self.report
        if filename in self._tombstones:
            report.buried_present += 1
            return
        if filename in self.records:
            report.conflicts.append((filename, "deleted in the source, but a file of that name "
                                               "is stored here: it stays"))
            return
        try:
            await self._storage.add_tombstone(filename)
        except FileExists:
            report.conflicts.append((filename, "deleted in the source, but a file of that name "
                                               "is stored here: it stays"))
            return
        self._tombstones.add(filename)
        report.buried.append(filename)


async def carry_audit(audit: IJournal, members: Sequence[tuple[str, Opener]],
                      report: ImportReport, run: Run) -> None:
    """
    Keep a bundle's audit log files (checked against its manifest already)
    as they are, under the destination log's C{imported/<digest>/}, where
    its own chain never looks. Their chains are checked: one the source's
    server broke is reported, not refused (it is evidence as it came).
    C{<digest>} names the set by its content, so a bundle imported twice
    keeps it once.

    @param members: C{(name, opener)} of the bundle's C{audit/} members.
    """
    if not members:
        return
    files: list[tuple[str, bytes]] = []
    digest = hashlib.sha256()
    for name, opener in sorted(members):
        data = await run(_read_member, opener)
        files.append((name[len(AUDIT):], data))
        digest.update(b"%d:%s%d:" % (len(name), name.encode("utf-8"), len(data)) + data)
    checked = verify_writers(files)
    stamp = digest.hexdigest()[:16]
    written = [await audit.keep_imported(f"{stamp}/{name}", data) for name, data in files]
    report.audit_new = any(written)
    report.audit_kept = f"{IMPORTED}{stamp}/"
    report.audit_files = len(files)
    report.audit_entries = checked.entries
    report.audit_broken = [str(broken) for broken in checked.broken]
    report.audit_notes = [str(note) for note in checked.notes]


def _read_member(opener: Opener) -> bytes:
    with opener() as f:
        return f.read()


def import_entries(ingest: Ingest, when: str, who: str) -> list[Entry]:
    """
    The destination's audit entries of an import: one per file published,
    tombstone added and status kept, and one for the source's audit log,
    each naming who ran it (the account of C{pypid-admin}: no pypid user is
    involved).

    @param when: the entries' time (L{pypid.core.records.audit_chain.format_time}).
    """
    report = ingest.report
    entries: list[Entry] = []
    for filename in report.imported:
        record = ingest.records[filename]
        entries.append(Entry(time=when, event=ChangeKind.IMPORT, project=record.project,
                             version=record.version, filename=filename, sha256=record.sha256,
                             detail=f"from {ingest.origins.get(filename, '?')}, by {who}"))
    for filename in report.buried:
        entries.append(Entry(time=when, event=ChangeKind.IMPORT, filename=filename,
                             detail=f"a tombstone, by {who}"))
    for project, what in report.statuses:
        # (the status first, as the daemon's own entries have it)
        entries.append(Entry(time=when, event=ChangeKind.STATUS, project=project,
                             detail=f"{what}; imported, by {who}"))
    if report.audit_new:
        entries.append(Entry(time=when, event=ChangeKind.IMPORT, target=report.audit_kept,
                             detail=f"the source's audit log: {report.audit_files} files, "
                                    f"{report.audit_entries} entries, "
                                    f"{len(report.audit_broken)} broken links, by {who}"))
    return entries


def _status_text(status: ProjectStatus) -> str:
    """A status as the daemon's answers and audit entries say it: C{archived: why}."""
    return f"{status.status}: {status.reason}" if status.reason else status.status


def _yank_text(holder: Arrival | FileRecord) -> str:
    if holder.yanked is None:
        return "not yanked"
    return f"yanked ({holder.yanked})" if holder.yanked else "yanked"
