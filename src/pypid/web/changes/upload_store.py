"""
Storing an upload that was read and checked (L{pypid.web.changes.publish.Publish.upload}):
the uploader's rights on its project, the distribution's lock, the index's
refusals (a file of that name, another of the same distribution, a deleted
name, a closed project), the archive inspected in the pool, its
attestations verified (PEP 740), the credentials checked again, then the
file published into the storage, indexed and audited.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, cast

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.auth.attestations import AttestationRefused
from pypid.auth.reader import Reader
from pypid.auth.verifier import Identity
from pypid.core.access.upload_rules import IndexUploadRules
from pypid.core.dists.distribution import inspect
from pypid.core.dists.metadata import InvalidDistribution
from pypid.core.dists.model import UPLOADER_BYTES, FileRecord, cut_text
from pypid.core.dists.names import filename_key, project_of_filename, variant_release
from pypid.core.dists.readme import Renderer
from pypid.core.dists.upload import UploadRequest
from pypid.core.dists.wheel_variants import InvalidVariant, check_joins
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import index_section
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import BadRequest
from pypid.jobs.run import Run
from pypid.storage.base.interface import (
    FileExists,
    FilenameDeleted,
    IStorage,
    RecordRefused,
    StorageError,
)
from pypid.storage.base.locks import KeyedLock
from pypid.web.changes.change_checks import ChangeChecks, storage_call
from pypid.web.server.audit_trail import AuditTrail, facts_of
from pypid.web.server.respond import send_text, storage_unavailable
from pypid.web.server.upload_form import FilePart

#: (the namespace the publish routes always logged under: log filters keep matching)
log = Logger(namespace="pypid.web.changes.publish")


class AttestationCheck(Protocol):
    """What checks an upload's attestations (L{pypid.auth.attestations.AttestationChecker})."""

    def required(self, project: str) -> bool:
        """Whether uploads to C{project} must come with attestations."""

    async def check(self, *, filename: str, sha256: str, project: str, field: str | None,
                    reader: Reader) -> bytes | None:
        """
        The provenance object of the file's verified attestations
        (C{field}), L{None} when none were sent and none are needed
        (whether C{reader} is a trusted publisher's decides who may sign);
        L{AttestationRefused}, whose text is the 400's reason.
        """


@attrs.frozen
class NoAttestations:
    """
    An index that cannot verify attestations: it refuses uploads that send
    them, as PEP 740 says an index must when it cannot verify them.
    """

    def required(self, project: str) -> bool:
        """None are required."""
        return False

    async def check(self, *, filename: str, sha256: str, project: str, field: str | None,
                    reader: Reader) -> bytes | None:
        """L{None} without attestations; a refusal with them."""
        if field is not None:
            raise AttestationRefused("attestations: this index cannot verify attestations; "
                                     "upload without them (uv publish --no-attestations; "
                                     "twine without --attestations)")
        return None


@attrs.define
class UploadStore:
    """
    Stores the uploads to one hosted index.

    @ivar _run: C{run(f, *args) -> Deferred} for the inspection.
    @ivar _locks: the lock every change to one distribution holds.
    @ivar _audit_index: what its audit entries say of the index (L{None}
        for the default's).
    @ivar _allowed: what the index lets through that its checks would
        refuse (C{allow_tag_mismatch}), as it is now.
    """

    _index: Index
    _storage: IStorage
    _checks: ChangeChecks
    _run: Run
    _clock: IReactorTime
    _audit: AuditTrail
    _locks: KeyedLock
    _attestations: AttestationCheck
    _render: Renderer
    _audit_index: str | None
    _allowed: IndexUploadRules = attrs.field(factory=IndexUploadRules)

    async def store(self, request: IRequest, upload: UploadRequest, identity: Identity,
                    ) -> bytes:
        """Store C{upload}, sent by C{identity}, and answer the request."""
        # (one distribution at a time: the checks and the storage's work must
        # not interleave with another change of it, in any spelling)
        project = project_of_filename(upload.filename)
        if project is not None:
            self._checks.may_upload(self._checks.reader(request), project)
        key = filename_key(upload.filename) or upload.filename
        release = variant_release(upload.filename)
        if release is not None:
            # (a variant wheel's data must agree with its release's other
            # variant wheels': the release's uploads of them one at a time)
            return await self._locks.run(release, self._locks.run, key, self._store_locked,
                                         request, upload, identity)
        return await self._locks.run(key, self._store_locked, request, upload, identity)

    async def _store_locked(self, request: IRequest, upload: UploadRequest,
                            identity: Identity) -> bytes:
        part = cast(FilePart, upload.part)  # (untyped in core)
        project = project_of_filename(upload.filename)
        self._refuse_closed(project)
        self._refuse_foreign(request, project)
        # (looked for in its own project: while the projects a start loaded
        # later wait, one not found there does not make them all; a file of
        # that name stored under another project is the storage's to refuse)
        existing = self._index.get_file(upload.filename, project)
        if existing is not None:
            if existing.sha256 != part.sha256:
                raise _exists(upload.filename, existing.sha256)
            return send_text(request, 200,
                             "OK: this file was already uploaded with the same content")
        self._refuse_taken(upload.filename)
        allowed = project is not None and self._allowed.current.allows_tag_mismatch(project)
        try:
            inspected = await self._run(
                inspect, part.path, upload.filename, upload.filename, self._clock.seconds(),
                (part.size, part.sha256, part.blake2_256, part.md5), False, self._render,
                "note" if allowed else "refuse",
            )
        except InvalidDistribution as e:
            if e.tag_mismatch:
                raise BadRequest(str(e), remedy=tag_mismatch_hint(self._audit_index, project))
            raise BadRequest(str(e))
        record = inspected.record.replace(uploader=cut_text(identity.name, UPLOADER_BYTES))
        self._refuse_inconsistent(record)
        provenance = await self._attested(upload, record, self._checks.reader(request))
        if provenance is not None:
            record = record.replace(provenance_sha256=hashlib.sha256(provenance).hexdigest())
        # (the credentials, and the rights, as they are now: a revocation or
        # a reload may have come while the body arrived or was inspected;
        # so may a status change)
        identity = await self._checks.confirmed(request, identity, record.project)
        self._refuse_closed(record.project)
        self._refuse_foreign(request, record.project)
        try:
            stored = await self._storage.publish(part.path, record, inspected.metadata,
                                                 inspected.details, provenance)
        except FileExists as e:
            if e.sha256 != part.sha256:
                raise _exists(upload.filename, e.sha256)
            if e.record is not None:
                # (stored through another server: indexed as storage has it)
                stored = e.record
            else:
                # (the same bytes stored but not indexed, put there by hand
                # while the server ran: their record kept, then indexed)
                stored = record
                await storage_call(self._storage.update, record)
        except FilenameDeleted:
            raise _deleted(upload.filename)
        except RecordRefused as e:
            raise BadRequest(str(e)) from None
        except StorageError as e:
            log.error("Upload of {filename} failed: {error}", filename=upload.filename,
                      error=str(e))
            raise storage_unavailable(e)
        self._index.add(stored)
        mismatch = inspected.tag_mismatch
        self._audit.record(request, identity, ChangeKind.UPLOAD, index=self._audit_index,
                           detail=(f"accepted by allow_tag_mismatch: {mismatch}"
                                   if mismatch else None),
                           **facts_of(stored))
        log.info("{user} uploaded {filename} ({size} bytes)",
                 user=identity.name, filename=stored.filename, size=stored.size)
        if mismatch:
            return send_text(request, 200, f"OK, accepted although {mismatch}: "
                             "allow_tag_mismatch names this project")
        return send_text(request, 200, "OK")

    def _refuse_foreign(self, request: IRequest, project: str | None) -> None:
        """Refuse (409) a new project in a namespace reserved for others (PEP 752)."""
        if project is not None:
            self._checks.may_create(self._checks.reader(request), project, self._index)

    def _refuse_inconsistent(self, record: FileRecord) -> None:
        """
        Refuse (400) a variant wheel whose C{variant.json} disagrees with
        the release's other variant wheels (PEP 825, "Metadata
        consistency": a label means one set of properties, and the
        priority lists are prefixes of one another).
        """
        if record.variant is None:
            return
        try:
            check_joins(record.variant,
                        self._index.release_variants(record.project, record.version))
        except InvalidVariant as e:
            raise BadRequest(str(e)) from None

    def _refuse_taken(self, filename: str) -> None:
        """
        Refuse a filename the index holds otherwise than as a live file of
        its own: another file of the same distribution, a deleted name, a
        file in the recycle bin.
        """
        other = self._index.same_distribution(filename)
        if other is not None:
            raise BadRequest(
                f"File already exists ('{other}'): it names the same distribution as "
                f"'{filename}'; a release may have one sdist, and one file per wheel tag"
            )
        if self._index.is_deleted(filename):
            raise _deleted(filename)
        if self._index.binned_file(filename) is not None:
            raise BadRequest(
                f"File already exists ('{filename}'): it was deleted and is in the "
                "recycle bin", remedy="restore it rather than upload it again"
            )

    async def _attested(self, upload: UploadRequest, record: FileRecord,
                        reader: Reader) -> bytes | None:
        """
        The provenance object of the upload's verified attestations, or
        L{None} without any (where none are required); 400 when they do not
        verify (or are missing where required).
        """
        try:
            return await self._attestations.check(
                filename=record.filename, sha256=record.sha256, project=record.project,
                field=upload.attestations, reader=reader)
        except AttestationRefused as e:
            raise BadRequest(str(e))

    def _refuse_closed(self, project: str | None) -> None:
        """Refuse an upload to a project whose status takes none (archived, quarantined)."""
        status = self._index.status(project) if project is not None else None
        if status is not None and status.closed:
            because = f" ({status.reason})" if status.reason else ""
            raise BadRequest(f"project {project} is {status.status}{because}: "
                             "it takes no new uploads")


def tag_mismatch_hint(index: str | None, project: str | None) -> str:
    """What a refusal of a wheel for its tags says to do: name the key that allows it."""
    return (f"to take it, name {project or 'the project'} in {index_section(index)} "
            "allow_tag_mismatch")


def _exists(filename: str, sha256: str | None) -> BadRequest:
    # twine's --skip-existing (up to 6.1) looks for a 400 whose reason starts
    # with "File already exists": keep these words first.
    return BadRequest(f"File already exists ('{filename}', with sha256 hash '{sha256}')",
                      remedy="upload changed files under a new version")


def _deleted(filename: str) -> BadRequest:
    # (a deleted filename is never taken again, whatever its bytes: installers
    # may hold the old file's hashes; a remedy, so a long filename cannot
    # push it out of twine's status line)
    return BadRequest(
        f"File already exists ('{filename}'): this filename was previously "
        "used by a file that has since been deleted",
        remedy="upload it under a new version"
    )
