"""
Publishing: uploads (the legacy API that twine and C{uv publish} speak, and
pypiserver's C{remove_pkg}), yank, unyank and delete of files and
releases, and a project's status (PEP 792: an archived or quarantined
project refuses uploads; admins set it).

Every change to one distribution (a filename, and every other spelling of
it) holds that distribution's lock from its checks to its last write, so an
upload never interleaves with another upload, a yank or a delete of it.

Every change, and every change refused to a user who logged in, is recorded
in the audit log (L{pypid.web.audit_trail.AuditTrail}), after the change is
stored; the answer waits for the entry's first write attempt (so an
acknowledged change has its entry on disk), but an entry that cannot be
written never fails the change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, Unpack, cast

import attrs
from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.auth.attestations import AttestationRefused
from pypid.auth.oidc import is_publisher
from pypid.auth.verifier import Identity
from pypid.core.distribution import inspect
from pypid.core.http_errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from pypid.core.index import Index
from pypid.core.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.metadata import InvalidDistribution
from pypid.core.metrics import UPLOAD_PATHS
from pypid.core.model import UPLOADER_BYTES, YANK_REASON_BYTES, FileRecord, cut_text
from pypid.core.names import (
    InvalidName,
    distribution_key,
    filename_key,
    is_valid_name,
    normalize,
    parse_filename,
)
from pypid.core.project_status import ACTIVE, InvalidStatus, ProjectStatus, parse_status
from pypid.core.readme import Renderer, render_description
from pypid.core.units import format_duration
from pypid.core.upload import UploadRequest, check_form, validate_upload
from pypid.state.recycle_bin import NotInBin, RecycleBin, RestoreConflict
from pypid.storage.interface import (
    AlreadyBinned,
    FileExists,
    FilenameDeleted,
    IStorage,
    Run,
    StorageError,
)
from pypid.storage.locks import KeyedLock
from pypid.web.access import UPLOAD_LOGIN, Access, IRequestAuth
from pypid.web.audit_trail import AuditTrail, Named, facts_of
from pypid.web.multipart import FilePart, Form, MultipartError, UploadTooLarge
from pypid.web.respond import RETRY_AFTER, send_text, storage_unavailable
from pypid.web.routes import (
    answer_errors,
    bounded_body,
    form_field,
    requested_version,
    route_each,
)
from pypid.web.site import too_large_message

log = Logger()

_NO_SUCH_RELEASE = "no such file or release"

#: The largest body of a status change: a status and a short reason.
_MAX_STATUS_BODY = 4096


class AttestationCheck(Protocol):
    """
    What checks an upload's attestations (PEP 740): the server's
    L{pypid.auth.attestations.AttestationChecker}.
    """

    def required(self, project: str) -> bool:
        """Whether uploads to C{project} must come with attestations."""

    async def check(self, *, filename: str, sha256: str, project: str, field: str | None,
                    identity: Identity) -> bytes | None:
        """
        The provenance object of the file's verified attestations
        (C{field}), L{None} when none were sent and none are needed.

        @raise AttestationRefused: whose text is the 400's reason.
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
                    identity: Identity) -> bytes | None:
        """L{None} without attestations; a refusal with them."""
        if field is not None:
            raise AttestationRefused("attestations: this index cannot verify attestations; "
                                     "upload without them (uv publish --no-attestations; "
                                     "twine without --attestations)")
        return None


#: A change to one file: C{change(request, record, argument, identity)}.
_Change = Callable[[IRequest, FileRecord, Any, Identity], Awaitable[None]]


@attrs.define(slots=False)
class Publish:
    """
    Uploads, yanks and deletes.

    @ivar _index: the L{pypid.core.index.Index}.
    @ivar _storage: the L{pypid.storage.interface.IStorage}.
    @ivar _access: the L{pypid.web.access.Access} gate.
    @ivar _run: C{run(f, *args) -> Deferred} for blocking work.
    @ivar _clock: provides C{seconds()}.
    @ivar _max_upload_size: bytes.
    @ivar _audit: the L{pypid.web.audit_trail.AuditTrail}.
    @ivar _locks: the L{KeyedLock} every change to one distribution holds
        (shared with the snapshot writer, which dates a save by its oldest
        change under way).
    """

    _index: Index
    _storage: IStorage
    _access: Access
    _run: Run
    _clock: IReactorTime
    _max_upload_size: int
    _audit: AuditTrail = attrs.field(kw_only=True)
    _locks: KeyedLock = attrs.field(kw_only=True)
    #: the index these routes change (C{default}: today's, at C{/})
    _name: str = attrs.field(kw_only=True, default=DEFAULT_INDEX)
    #: checks the attestations uploads come with (PEP 740)
    _attestations: AttestationCheck = attrs.field(kw_only=True, factory=NoAttestations)
    #: where a deleted file waits before it is purged (issue 29); L{None}:
    #: none, a deletion deletes at once
    _bin: RecycleBin | None = attrs.field(kw_only=True, default=None)
    _render: Renderer = attrs.field(kw_only=True, default=render_description)
    #: what its audit entries say of the index: nothing for the default's,
    #: whose lines stay as they were
    _audit_index: str | None = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._audit_index = None if self._name == DEFAULT_INDEX else self._name

    app = Klein()
    answer_errors(app)

    # -- uploads ---------------------------------------------------------------

    @route_each(app, UPLOAD_PATHS, methods=["POST"])
    async def upload(self, request: IRequest) -> bytes:
        """Take a twine upload (C{:action=file_upload}) or a pypiserver C{remove_pkg}."""
        try:
            form = request.content.form()
        except UploadTooLarge:
            raise TooLarge(too_large_message(self._max_upload_size))
        except MultipartError as e:
            raise BadRequest(str(e))
        except OSError as e:
            log.error("Cannot spool an upload: {error}", error=e.strerror)
            raise Unavailable("cannot receive the upload now: the spool folder is unavailable",
                              [(b"retry-after", RETRY_AFTER)])
        try:
            # Verified already when the site checked the credentials before
            # the body; otherwise verified here.
            auth = IRequestAuth(request)
            if auth.verified is not None:
                identity = await auth.verified
            else:
                identity = await self._access.gate_upload(request, auth.credentials,
                                                          index=None)
            self._may_upload_here(identity)
            if form.get(":action") == "remove_pkg":
                return await self._audit.recorded(
                    request, "delete", self._remove_release(request, form, identity),
                    identity=identity, project=_named(form.get("name") or ""),
                    version=form.get("version"), index=self._audit_index)
            part = form.files.get("content")
            return await self._audit.recorded(
                request, "upload", self._upload(request, form, identity), identity=identity,
                filename=part.filename if part is not None else None,
                project=form.get("name"), version=form.get("version"), index=self._audit_index)
        finally:
            form.discard()

    async def _upload(self, request: IRequest, form: Form, identity: Identity) -> bytes:
        upload = validate_upload(form)
        return await self._store(request, upload, identity)

    async def _store(self, request: IRequest, upload: UploadRequest, identity: Identity,
                     ) -> bytes:
        # One distribution at a time: the checks below and the work in the
        # storage thread must not interleave with another upload of the same
        # distribution (any spelling) or with a yank or delete of it.
        project = _project_of(upload.filename)
        if project is not None and not self._access.may_write(identity, project, self._name):
            raise Forbidden(f"{identity.name} may not upload to {project}")
        key = filename_key(upload.filename) or upload.filename
        return await self._locks.run(key, self._store_locked, request, upload, identity)

    async def _store_locked(self, request: IRequest, upload: UploadRequest,
                            identity: Identity) -> bytes:
        part = _part_of(upload)
        self._refuse_closed(_project_of(upload.filename))
        # (looked for in its own project: while the projects a start loaded
        # later wait, one not found there does not make them all; a file of
        # that name stored under another project is the storage's to refuse)
        existing = self._index.get_file(upload.filename, _project_of(upload.filename))
        if existing is not None:
            return self._same_or_conflict(request, existing.sha256, upload)
        other = self._index.same_distribution(upload.filename)
        if other is not None:
            raise BadRequest(
                f"File already exists ('{other}'): it names the same distribution as "
                f"'{upload.filename}'; a release may have one sdist, and one file per wheel tag"
            )
        if self._index.is_deleted(upload.filename):
            raise _deleted(upload.filename)
        if self._index.binned_file(upload.filename) is not None:
            raise BadRequest(
                f"File already exists ('{upload.filename}'): it was deleted and is in the "
                "recycle bin; restore it rather than upload it again"
            )
        try:
            inspected = await self._run(
                inspect, part.path, upload.filename, upload.filename, self._clock.seconds(),
                (part.size, part.sha256, part.blake2_256, part.md5), False, self._render,
            )
        except InvalidDistribution as e:
            raise BadRequest(f"content: {e}")
        record = inspected.record.replace(
                              uploader=cut_text(identity.name, UPLOADER_BYTES))
        provenance = await self._attested(upload, record, identity)
        if provenance is not None:
            record = record.replace(provenance_sha256=hashlib.sha256(provenance).hexdigest())
        # (the credentials, and the rights, as they are now: a revocation or
        # a reload may have come while the body arrived or was inspected;
        # so may a status change)
        identity = await self._confirmed(request, identity, record.project)
        self._refuse_closed(record.project)
        try:
            stored = await self._storage.publish(part.path, record, inspected.metadata,
                                                 inspected.details, provenance)
        except FileExists as e:
            if e.sha256 != part.sha256:
                raise BadRequest(_exists_message(upload.filename, e.sha256))
            if e.record is not None:
                # Stored through another server: index it as storage has it.
                stored = e.record
            else:
                # The same bytes are stored but not indexed (put there by hand
                # while the server ran): keep their record, then index them.
                stored = record
                await self._storage_call(self._storage.update, record)
        except FilenameDeleted:
            raise _deleted(upload.filename)
        except StorageError as e:
            log.error("Upload of {filename} failed: {error}", filename=upload.filename,
                      error=str(e))
            raise storage_unavailable(e)
        self._index.add(stored)
        self._audit.record(request, identity, "upload", index=self._audit_index,
                           **facts_of(stored))
        log.info("{user} uploaded {filename} ({size} bytes)",
                 user=identity.name, filename=stored.filename, size=stored.size)
        return send_text(request, 200, "OK")

    async def _attested(self, upload: UploadRequest, record: FileRecord,
                        identity: Identity) -> bytes | None:
        """
        The provenance object of the upload's verified attestations, or
        L{None} without any (where none are required).

        @raise BadRequest: they do not verify (or are missing where required).
        """
        try:
            return await self._attestations.check(
                filename=record.filename, sha256=record.sha256, project=record.project,
                field=upload.attestations, identity=identity)
        except AttestationRefused as e:
            raise BadRequest(str(e))

    def _refuse_closed(self, project: str | None) -> None:
        """Refuse an upload to a project whose status takes none (archived, quarantined)."""
        status = self._index.statuses.get(project) if project is not None else None
        if status is not None and status.closed:
            because = f" ({status.reason})" if status.reason else ""
            raise BadRequest(f"project {project} is {status.status}{because}: "
                             "it takes no new uploads")

    @staticmethod
    def _same_or_conflict(request: IRequest, sha256: str, upload: UploadRequest) -> bytes:
        if sha256 == _part_of(upload).sha256:
            return send_text(request, 200,
                             "OK: this file was already uploaded with the same content")
        raise BadRequest(_exists_message(upload.filename, sha256))

    async def _remove_release(self, request: IRequest, form: Form, identity: Identity,
                              ) -> bytes:
        # The form rules first, as validate_upload applies them to uploads:
        # which copy of a repeated :action, name or version is read must
        # not matter.
        check_form(form)
        name, version = form.get("name") or "", form.get("version") or ""
        if not is_valid_name(name):
            raise BadRequest("name: a valid project name is required")
        project = normalize(name)
        self._may_touch(identity, project)
        filenames = self._release(name, version)
        await self._apply(request, project, filenames, self._delete, None, identity)
        return send_text(request, 200, f"Removed {len(filenames)} files of {name} {version}")

    # -- yank, unyank, delete ------------------------------------------------------

    @app.route("/api/files/<string:filename>/yank", methods=["POST"])
    def yank_file(self, request: IRequest, filename: str) -> Coroutine[Any, Any, bytes]:
        """Yank one file (PEP 592), with an optional C{reason} form field."""
        return self._change(request, "yank", _project_of(filename), lambda: [filename],
                            self._yank, lambda: _reason(request), filename=filename)

    @app.route("/api/files/<string:filename>/unyank", methods=["POST"])
    def unyank_file(self, request: IRequest, filename: str) -> Coroutine[Any, Any, bytes]:
        """Undo a yank of one file."""
        return self._change(request, "unyank", _project_of(filename), lambda: [filename],
                            self._yank, filename=filename)

    @app.route("/api/files/<string:filename>", methods=["DELETE"])
    def delete_file(self, request: IRequest, filename: str) -> Coroutine[Any, Any, bytes]:
        """
        Delete one file: into the recycle bin when the index has one, else
        for good; either way its name can never be used for other bytes.
        """
        return self._change(request, "delete", _project_of(filename), lambda: [filename],
                            self._delete, filename=filename)

    @app.route("/api/files/<string:filename>/restore", methods=["POST"])
    async def restore_file(self, request: IRequest, filename: str) -> bytes:
        """
        Take a deleted file out of the recycle bin (issue 29): listed and
        served again, as it was. Whoever may delete it may restore it.
        """
        identity = await self._access.gate_upload(request, index=None)
        self._may_upload_here(identity)

        async def apply() -> bytes:
            project = _project_of(filename)
            self._may_touch(identity, project)
            if is_publisher(identity.name):
                raise Forbidden("a trusted publisher's token may only upload")
            record = self._index.binned_file(filename) if self._bin is not None else None
            if record is None or record.project != project:
                raise NotFound(f"no such file in the recycle bin: {filename}")
            identity_now = await self._confirmed(request, identity, record.project)
            restored = await self._restore(record)
            self._audit.record(request, identity_now, "restore", index=self._audit_index,
                               **facts_of(restored))
            log.info("{user} restored {filename} from the recycle bin",
                     user=identity_now.name, filename=filename)
            return send_text(request, 200, f"Restored {filename}")
        return await self._audit.recorded(request, "restore", apply(), identity=identity,
                                          filename=filename, index=self._audit_index)

    async def _restore(self, record: FileRecord) -> FileRecord:
        """C{record}'s file out of the bin, with the answers a failure gets."""
        assert self._bin is not None
        try:
            return await self._bin.restore(record.filename)
        except NotInBin:
            raise NotFound(f"no such file in the recycle bin: {record.filename}")
        except RestoreConflict as e:
            raise Conflict(f"{record.filename} cannot be restored: {e.args[0]} is the same "
                           "distribution, uploaded since; delete it first")
        except FilenameDeleted:
            raise NotFound(f"no such file in the recycle bin: {record.filename}")
        except StorageError as e:
            log.error("Storage failed on {filename}: {error}", filename=record.filename,
                      error=str(e))
            raise storage_unavailable(e)

    @app.route("/api/projects/<string:project>/<string:version>/yank", methods=["POST"])
    def yank_release(self, request: IRequest, project: str, version: str,
                     ) -> Coroutine[Any, Any, bytes]:
        """Yank every file of a release, as the public index does."""
        return self._change(request, "yank", _normalized(project),
                            lambda: self._release(project, version), self._yank,
                            lambda: _reason(request), project=_named(project), version=version)

    @app.route("/api/projects/<string:project>/<string:version>/unyank", methods=["POST"])
    def unyank_release(self, request: IRequest, project: str, version: str,
                       ) -> Coroutine[Any, Any, bytes]:
        """Undo the yank of a release."""
        return self._change(request, "unyank", _normalized(project),
                            lambda: self._release(project, version), self._yank,
                            project=_named(project), version=version)

    @app.route("/api/projects/<string:project>/<string:version>", methods=["DELETE"])
    def delete_release(self, request: IRequest, project: str, version: str,
                       ) -> Coroutine[Any, Any, bytes]:
        """Delete every file of a release."""
        return self._change(request, "delete", _normalized(project),
                            lambda: self._release(project, version), self._delete,
                            project=_named(project), version=version)

    @app.route("/api/projects/<string:project>/status", methods=["POST"])
    async def set_status(self, request: IRequest, project: str) -> bytes:
        """
        Set a hosted project's status (PEP 792), admins only: a JSON body
        C{{"status": ..., "reason": ...}} (or those form fields).
        """
        async def apply() -> bytes:
            # (refused to a user who logged in: recorded, as other changes are)
            identity = await self._access.admin(request)
            status = _requested_status(request)
            name = _normalized(project)
            if name is None or self._index.project(name) is None:
                raise NotFound("no such project")
            await self._keep_status(request, name, status, identity)
            return send_text(request, 200, f"{name} is {_status_text(status)}")
        return await self._audit.recorded(request, "status", apply(),
                                          project=_named(project), index=self._audit_index)

    async def _keep_status(self, request: IRequest, name: str, status: ProjectStatus | None,
                           identity: Identity) -> None:
        """Store C{name}'s status, then index it and record it."""
        try:
            await self._storage.keep_status(name, status.to_bytes() if status else None)
        except StorageError as e:
            log.error("Cannot keep the status of {project}: {error}", project=name,
                      error=str(e))
            raise storage_unavailable(e)
        self._index.statuses.set(name, status)
        self._audit.record(request, identity, "status", project=name,
                           detail=_status_text(status), index=self._audit_index)
        log.info("{user} set {project} {status}", user=identity.name, project=name,
                 status=_status_text(status))

    def _may_upload_here(self, identity: Identity) -> None:
        """
        Refuse an identity without this index's C{upload} grant, and no
        other's (issue 41): a named index's with 403 (its gate showed the
        index to this identity), the default index's with 401, as the
        site's check before the body does.
        """
        if not self._access.may_upload_to(identity, self._name):
            if self._name == DEFAULT_INDEX:
                raise Unauthorized(UPLOAD_LOGIN)
            raise Forbidden(f"{identity.name} may not upload to {self._name}")

    def _may_touch(self, identity: Identity, project: str | None) -> None:
        """
        Refuse, as if nothing were there, an identity that may neither see
        nor change C{project} (a normalized name, or L{None} for a name that
        is not a project's): before anything is looked up, so that the
        refusal takes as long whether the file or release exists or not.
        """
        if project is None or not (self._access.may_write(identity, project, self._name)
                                   or self._access.identity_may_read(identity, project,
                                                                     self._name)):
            raise NotFound(_NO_SUCH_RELEASE)

    def _release(self, project: str, version: str) -> list[str]:
        version = requested_version(version)
        entry = self._index.project(normalize(project)) if is_valid_name(project) else None
        files = [r.filename for r in (entry.files.values() if entry else ())
                 if r.version == version]
        if not files:
            raise NotFound(_NO_SUCH_RELEASE)
        return files

    async def _change(self, request: IRequest, event: str, scope: str | None,
                      filenames: Callable[[], list[str]], change: _Change,
                      argument: Callable[[], str] | None = None, **facts: Unpack[Named],
                      ) -> bytes:
        """
        Authenticate, then apply C{change} to the files C{filenames()} names,
        with C{argument()} (the yank reason; L{None}: none): what exists is
        looked up only for those who may see or change C{scope} (the
        normalized project the URL gives, L{None} for none). A refusal, a bad
        reason too, is recorded as C{event} with C{facts}: what the request
        named.
        """
        identity = await self._access.gate_upload(request, index=None)
        self._may_upload_here(identity)

        async def apply() -> None:
            self._may_touch(identity, scope)
            await self._apply(request, scope, filenames(), change,
                              argument() if argument is not None else None, identity)
        facts["index"] = self._audit_index
        await self._audit.recorded(request, event, apply(), identity=identity, **facts)
        return send_text(request, 200, "OK")

    async def _apply(self, request: IRequest, project: str | None, filenames: list[str],
                     change: _Change, argument: str | None, identity: Identity) -> None:
        if is_publisher(identity.name):
            # (its grant, [publishers], is to publish: a release stays as CI made it)
            raise Forbidden("a trusted publisher's token may only upload")
        for filename in filenames:
            # (in the project the URL names, as uploads look: a miss while
            # the projects a start loaded later wait makes none of theirs)
            record = self._index.get_file(filename, project)
            # A write grant is enough to change a file, without read (w:
            # upload, yank, unyank, delete): such a writer learns whether
            # what it names exists. Whoever may do neither gets the one
            # answer whether it exists or not.
            writes = record is not None and self._access.may_write(identity, record.project,
                                                                   self._name)
            if record is None or not (writes or self._access.identity_may_read(
                    identity, record.project, self._name)):
                raise NotFound(_NO_SUCH_RELEASE)
            if not writes:
                raise Forbidden(f"{identity.name} may not change {record.project}")
            key = distribution_key(record.project, record.version, record.packagetype,
                                   record.filename)
            await self._locks.run(key, self._apply_locked, request, filename, change, argument,
                                  identity)

    async def _apply_locked(self, request: IRequest, filename: str, change: _Change,
                            argument: str | None, identity: Identity) -> None:
        # Looked up again: a change that held the lock before may have
        # deleted the file meanwhile.
        record = self._index.get_file(filename)
        if record is None:
            raise NotFound(f"no such file: {filename}")
        identity = await self._confirmed(request, identity, record.project)
        await change(request, record, argument, identity)

    async def _confirmed(self, request: IRequest, identity: Identity, project: str,
                         ) -> Identity:
        """
        C{identity} checked again as a change to C{project} commits
        (L{pypid.web.access.Access.confirm}), with the rules in force now.
        """
        identity = await self._access.confirm(request, identity)
        if not self._access.may_write(identity, project, self._name):
            raise Forbidden(f"{identity.name} may not change {project}")
        return identity

    async def _storage_call(self, operation: Callable[[FileRecord], Awaitable[Any]],
                            record: FileRecord) -> Any:
        try:
            return await operation(record)
        except (FilenameDeleted, AlreadyBinned):
            # (deleted, or put in the bin, by another server meanwhile)
            raise NotFound(f"no such file: {record.filename}")
        except StorageError as e:
            log.error("Storage failed on {filename}: {error}", filename=record.filename,
                      error=str(e))
            raise storage_unavailable(e)

    async def _yank(self, request: IRequest, record: FileRecord, reason: str | None,
                    identity: Identity) -> None:
        changed = record.replace(yanked=reason)
        if changed == record:
            return
        await self._storage_call(self._storage.update, changed)
        self._index.add(changed)
        self._audit.record(request, identity, "yank" if reason is not None else "unyank",
                           detail=reason or None, index=self._audit_index, **facts_of(record))
        log.info("{user} {action} {filename}", user=identity.name,
                 action="yanked" if reason is not None else "unyanked", filename=record.filename)

    async def _delete(self, request: IRequest, record: FileRecord, _argument: None,
                      identity: Identity) -> None:
        bin = self._bin
        if bin is None or not bin.enabled:
            await self._storage_call(self._storage.delete, record)
            self._index.remove(record.filename)
            detail = None
        else:
            await self._storage_call(bin.put, record)
            detail = f"to the recycle bin, kept {format_duration(bin.keep_for)}"
        self._audit.record(request, identity, "delete", index=self._audit_index,
                           detail=detail, **facts_of(record))
        log.info("{user} deleted {filename}{where}", user=identity.name,
                 filename=record.filename, where=" (to the recycle bin)" if detail else "")


def _part_of(upload: UploadRequest) -> FilePart:
    """The spooled file part of an upload (L{UploadRequest.part} is untyped in core)."""
    return cast(FilePart, upload.part)


def _normalized(project: str) -> str | None:
    """The normalized name a URL's project segment gives, or L{None}."""
    return normalize(project) if is_valid_name(project) else None


def _named(project: str) -> str:
    """A project name from a request, normalized when it is valid (as entries keep it)."""
    return _normalized(project) or project


def _project_of(filename: str) -> str | None:
    """The normalized project a distribution filename names, or L{None}."""
    try:
        return parse_filename(filename, legacy=True).project
    except InvalidName:
        return None


def _exists_message(filename: str, sha256: str | None) -> str:
    # twine's --skip-existing (up to 6.1) looks for a 400 whose reason starts
    # with "File already exists": keep these words first.
    return f"File already exists ('{filename}', with sha256 hash '{sha256}')."


def _deleted(filename: str) -> BadRequest:
    return BadRequest(
        f"File already exists ('{filename}'): this filename was previously "
        "used by a file that has since been deleted"
    )


def _requested_status(request: IRequest) -> ProjectStatus | None:
    """
    The status a request's body asks for: a JSON object, or the form
    fields C{status} and C{reason}; 400 naming the field that is wrong.
    """
    kind = request.getHeader(b"content-type") or b""
    if kind.split(b";")[0].strip().lower() == b"application/json":
        try:
            body = bounded_body(request, _MAX_STATUS_BODY)
        except TooLarge:
            raise BadRequest(f"the body is larger than {_MAX_STATUS_BODY} bytes")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise BadRequest("the body is not JSON")
    else:
        data = {"status": form_field(request, "status")}
        reason = form_field(request, "reason")
        if reason:
            data["reason"] = reason
    try:
        return parse_status(data)
    except InvalidStatus as e:
        raise BadRequest(str(e))


def _status_text(status: ProjectStatus | None) -> str:
    """A status as an answer and an audit entry say it: C{archived: why}."""
    if status is None:
        return ACTIVE
    return f"{status.status}: {status.reason}" if status.reason else status.status


def _reason(request: IRequest) -> str:
    reason = form_field(request, "reason")
    if len(reason.encode("utf-8")) > YANK_REASON_BYTES:
        raise BadRequest(f"reason: longer than {YANK_REASON_BYTES} bytes")
    return reason
