"""
Publishing: uploads (the legacy API that twine and C{uv publish} speak, and
pypiserver's C{remove_pkg}), yank, unyank and delete of files and
releases, and a project's status (PEP 792: an archived or quarantined
project refuses uploads; admins set it).

Every change to one distribution (a filename, and every other spelling of
it) holds that distribution's lock from its checks to its last write, so an
upload never interleaves with another upload, a yank or a delete of it.

Every change, and every change refused to a user who logged in, is audited
(L{pypid.web.server.audit_trail.AuditTrail}) after it is stored; the answer
waits for the entry's first write attempt (so an acknowledged change has
its entry on disk), but an entry that cannot be written never fails the
change.

The routes read and check a request and audit it; storing an upload is
L{pypid.web.changes.upload_store}'s, changing stored files
L{pypid.web.changes.file_changes}'s.
"""


from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, Unpack

import attrs
from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.auth.verifier import Identity
from pypid.core.access.upload_rules import IndexUploadRules
from pypid.core.dists.model import YANK_REASON_BYTES
from pypid.core.dists.names import is_valid_name, normalize, project_of_filename
from pypid.core.dists.readme import Renderer, render_description
from pypid.core.dists.upload import validate_upload
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.indexes.project_status import ACTIVE, InvalidStatus, ProjectStatus, parse_status
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.records.metrics import UPLOAD_PATHS
from pypid.core.util.http_errors import BadRequest, NotFound, TooLarge, Unavailable
from pypid.jobs.run import Run
from pypid.state.recycle_bin import RecycleBin
from pypid.storage.base.interface import IStorage, StorageError
from pypid.storage.base.locks import KeyedLock
from pypid.web.changes.change_checks import ChangeChecks
from pypid.web.changes.file_changes import FileChange, FileChanges
from pypid.web.changes.upload_store import AttestationCheck, NoAttestations, UploadStore
from pypid.web.identity.gates import Gates
from pypid.web.identity.request_auth import IRequestAuth
from pypid.web.server.audit_trail import AuditTrail, Named
from pypid.web.server.body import too_large_message
from pypid.web.server.respond import RETRY_AFTER, send_text, storage_unavailable
from pypid.web.server.routes import answer_errors, bounded_body, form_field, route_each
from pypid.web.server.upload_form import Form, MultipartError, UploadTooLarge

log = Logger()

#: The largest body of a status change: a status and a short reason.
_MAX_STATUS_BODY = 4096


@attrs.define(slots=False)
class Publish:
    """
    Uploads, yanks and deletes.

    @ivar _run: C{run(f, *args) -> Deferred} for blocking work.
    @ivar _locks: the lock every change to one distribution holds (shared
        with the snapshot writer, which dates a save by its oldest change
        under way).
    """

    #: the hosted index these routes change (the console lists its files);
    #: fixed, as the upload store and the file changes took it at the start
    index: Index = attrs.field(on_setattr=attrs.setters.frozen)
    _storage: IStorage
    _access: Gates
    _run: Run
    _clock: IReactorTime
    _max_upload_size: int
    _audit: AuditTrail = attrs.field(kw_only=True)
    _locks: KeyedLock = attrs.field(kw_only=True)
    #: the index these routes change (C{default}: today's, at C{/})
    _name: str = attrs.field(kw_only=True, default=DEFAULT_INDEX)
    _attestations: AttestationCheck = attrs.field(kw_only=True, factory=NoAttestations)
    #: where a deleted file waits before it is purged; L{None}: none
    _bin: RecycleBin | None = attrs.field(kw_only=True, default=None)
    _render: Renderer = attrs.field(kw_only=True, default=render_description)
    #: what its uploads let through that its checks would refuse
    _uploads_allowed: IndexUploadRules = attrs.field(kw_only=True, factory=IndexUploadRules,
                                                     alias="uploads")
    #: what its audit entries say of the index: nothing for the default's
    _audit_index: str | None = attrs.field(init=False)
    _checks: ChangeChecks = attrs.field(init=False)
    _uploads: UploadStore = attrs.field(init=False)
    _changes: FileChanges = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._audit_index = None if self._name == DEFAULT_INDEX else self._name
        self._checks = ChangeChecks(self._access, self._name)
        self._uploads = UploadStore(self.index, self._storage, self._checks, self._run,
                                    self._clock, self._audit, self._locks,
                                    self._attestations, self._render, self._audit_index,
                                    self._uploads_allowed)
        self._changes = FileChanges(self.index, self._storage, self._checks, self._audit,
                                    self._locks, self._bin, self._audit_index)

    app = Klein()
    answer_errors(app)

    @property
    def recycles(self) -> bool:
        """Whether a deleted file waits in a recycle bin, to be restored."""
        return self._bin is not None

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
            # (verified already when the site checked them before the body)
            auth = IRequestAuth(request)
            if auth.verified is not None:
                identity = await auth.verified
            else:
                identity = await self._access.gate_upload(request, auth.credentials,
                                                          index=None)
            self._checks.may_upload_here(self._access.reader(request))
            if form.get(":action") == "remove_pkg":
                return await self._audit.recorded(
                    request, ChangeKind.DELETE,
                    self._changes.remove_release(request, form, identity), identity=identity,
                    project=form.get("name") or "", version=form.get("version"),
                    index=self._audit_index)
            part = form.files.get("content")
            return await self._audit.recorded(
                request, ChangeKind.UPLOAD, self._upload(request, form, identity),
                identity=identity, filename=part.filename if part is not None else None,
                project=form.get("name"), version=form.get("version"), index=self._audit_index)
        finally:
            form.discard()

    async def _upload(self, request: IRequest, form: Form, identity: Identity) -> bytes:
        upload = validate_upload(form)
        return await self._uploads.store(request, upload, identity)

    @app.route("/api/files/<string:filename>/yank", methods=["POST"])
    def yank_file(self, request: IRequest, filename: str) -> Coroutine[Any, Any, bytes]:
        """Yank one file (PEP 592), with an optional C{reason} form field."""
        return self._change(request, ChangeKind.YANK, project_of_filename(filename),
                            lambda: [filename],
                            self._changes.yank, lambda: _reason(request), filename=filename)

    @app.route("/api/files/<string:filename>/unyank", methods=["POST"])
    def unyank_file(self, request: IRequest, filename: str) -> Coroutine[Any, Any, bytes]:
        """Undo a yank of one file."""
        return self._change(request, ChangeKind.UNYANK, project_of_filename(filename),
                            lambda: [filename],
                            self._changes.yank, filename=filename)

    @app.route("/api/files/<string:filename>", methods=["DELETE"])
    def delete_file(self, request: IRequest, filename: str) -> Coroutine[Any, Any, bytes]:
        """
        Delete one file: into the recycle bin when the index has one, else
        for good; either way its name can never be used for other bytes.
        """
        return self._change(request, ChangeKind.DELETE, project_of_filename(filename),
                            lambda: [filename],
                            self._changes.delete, filename=filename)

    @app.route("/api/files/<string:filename>/restore", methods=["POST"])
    async def restore_file(self, request: IRequest, filename: str) -> bytes:
        """
        Take a deleted file out of the recycle bin: listed and
        served again, as it was. Whoever may delete it may restore it.
        """
        identity = await self._access.gate_upload(request, index=None)
        self._checks.may_upload_here(self._access.reader(request))
        return await self._audit.recorded(
            request, ChangeKind.RESTORE, self._changes.restore(request, filename, identity),
            identity=identity, filename=filename, index=self._audit_index)

    @app.route("/api/projects/<string:project>/<string:version>/yank", methods=["POST"])
    def yank_release(self, request: IRequest, project: str, version: str,
                     ) -> Coroutine[Any, Any, bytes]:
        """Yank every file of a release, as the public index does."""
        return self._change(request, ChangeKind.YANK, _normalized(project),
                            lambda: self._changes.release(project, version), self._changes.yank,
                            lambda: _reason(request), project=project, version=version)

    @app.route("/api/projects/<string:project>/<string:version>/unyank", methods=["POST"])
    def unyank_release(self, request: IRequest, project: str, version: str,
                       ) -> Coroutine[Any, Any, bytes]:
        """Undo the yank of a release."""
        return self._change(request, ChangeKind.UNYANK, _normalized(project),
                            lambda: self._changes.release(project, version), self._changes.yank,
                            project=project, version=version)

    @app.route("/api/projects/<string:project>/<string:version>", methods=["DELETE"])
    def delete_release(self, request: IRequest, project: str, version: str,
                       ) -> Coroutine[Any, Any, bytes]:
        """Delete every file of a release."""
        return self._change(request, ChangeKind.DELETE, _normalized(project),
                            lambda: self._changes.release(project, version),
                            self._changes.delete, project=project, version=version)

    async def _change(self, request: IRequest, event: ChangeKind, scope: str | None,
                      filenames: Callable[[], list[str]], change: FileChange,
                      argument: Callable[[], str] | None = None, **facts: Unpack[Named],
                      ) -> bytes:
        """
        Authenticate, then apply C{change} to the files C{filenames()} names,
        with C{argument()} (the yank reason): what exists is looked up only
        for those who may see or change C{scope} (the normalized project the
        URL gives, L{None} for none). A refusal, a bad reason too, is
        audited as C{event} with C{facts}: what the request named.
        """
        identity = await self._access.gate_upload(request, index=None)
        self._checks.may_upload_here(self._access.reader(request))

        async def apply() -> None:
            self._checks.may_touch(self._access.reader(request), scope)
            await self._changes.apply(request, scope, filenames(), change,
                                      argument() if argument is not None else None, identity)
        facts["index"] = self._audit_index
        await self._audit.recorded(request, event, apply(), identity=identity, **facts)
        return send_text(request, 200, "OK")

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
            if name is None or self.index.project(name) is None:
                raise NotFound("no such project")
            await self._keep_status(request, name, status, identity)
            return send_text(request, 200, f"{name} is {_status_text(status)}")
        return await self._audit.recorded(request, ChangeKind.STATUS, apply(),
                                          project=project, index=self._audit_index)

    async def _keep_status(self, request: IRequest, name: str, status: ProjectStatus | None,
                           identity: Identity) -> None:
        """Store C{name}'s status, then index it and record it."""
        try:
            await self._storage.keep_status(name, status.to_bytes() if status else None)
        except StorageError as e:
            log.error("Cannot keep the status of {project}: {error}", project=name,
                      error=str(e))
            raise storage_unavailable(e)
        self.index.statuses.set(name, status)
        self._audit.record(request, identity, ChangeKind.STATUS, project=name,
                           detail=_status_text(status), index=self._audit_index)
        log.info("{user} set {project} {status}", user=identity.name, project=name,
                 status=_status_text(status))


def _normalized(project: str) -> str | None:
    """The normalized name a URL's project segment gives, or L{None}."""
    return normalize(project) if is_valid_name(project) else None


def _requested_status(request: IRequest) -> ProjectStatus | None:
    """The status a JSON body, or the form's C{status} and C{reason}, asks for; 400 naming why."""
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
