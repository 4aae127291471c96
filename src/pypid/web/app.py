"""
The Klein application: everything but the hot path.

Uploads (the legacy API that twine and C{uv publish} speak), the legacy
JSON API, health, yank/unyank/delete, and the pages for people. Routes are
methods of an attrs object holding its collaborators; errors are
L{pypid.core.errors.HTTPError}s, answered in one place.
"""

import html
import json
from urllib.parse import quote

import attrs
import werkzeug.exceptions
from klein import Klein
from twisted.internet.defer import DeferredLock, ensureDeferred
from twisted.logger import Logger

from pypid.core.distribution import inspect
from pypid.core.errors import (
    BadGateway,
    BadRequest,
    Forbidden,
    HTTPError,
    MethodNotAllowed,
    NotFound,
    TooLarge,
    Unavailable,
)
from pypid.core.metadata import InvalidDistribution, parse_metadata
from pypid.web.multipart import (
    FormSink,
    MultipartError,
    UploadTooLarge,
    boundary_from_content_type,
)
from pypid.web.locks import KeyedLock
from pypid.core.names import (
    InvalidName,
    canonical_version,
    distribution_key,
    filename_key,
    is_valid_name,
    normalize,
    parse_filename,
)
from pypid.core import render
from pypid.storage.interface import FileExists, FilenameDeleted, StorageError
from pypid.auth import tokens
from pypid.config import parse_duration
from pypid.core.upload import validate_upload
from pypid.upstream import requirements
from pypid.upstream.fetch import UpstreamError
from pypid.upstream.cache import Offline
from pypid.service import file_url_for
from pypid.web.respond import (
    RETRY_AFTER,
    send_error,
    send_page,
    send_text,
    storage_unavailable,
)
from pypid.web.site import SECURITY_HEADERS, too_large_message
from pypid.web.body import ThreadedSink
from pypid.core.index import Page

log = Logger()


def _exists_message(filename, sha256):
    # twine's --skip-existing (up to 6.1) looks for a 400 whose reason starts
    # with "File already exists": keep these words first.
    return f"File already exists ('{filename}', with sha256 hash '{sha256}')."


@attrs.define(slots=False)
class PypidApp:
    """
    The routes of the server other than C{/simple/} and C{/files/}.

    @ivar _index: the L{pypid.core.index.Index}.
    @ivar _storage: the L{pypid.storage.interface.IStorage}.
    @ivar _access: the L{pypid.web.access.Access} gate.
    @ivar _run: C{run(f, *args) -> Deferred} for blocking work.
    @ivar _clock: provides C{seconds()}.
    @ivar _max_upload_size: bytes.
    @ivar _base_url: the configured public URL, or L{None}.
    """

    _index: object
    _storage: object
    _access: object
    _run: object
    _clock: object
    _max_upload_size: int
    _base_url: str | None = None
    #: the L{pypid.upstream.proxy.UpstreamProxy}, or L{None}
    _upstream: object = None
    _landing: tuple | None = attrs.field(default=None, init=False)
    _locks: KeyedLock = attrs.field(init=False)
    _token_writes: DeferredLock = attrs.field(init=False, factory=DeferredLock)
    # Absolute file links (the JSON API and pages for people are not under
    # /simple/<project>/, so the index's relative links would not do).
    _file_url: object = attrs.field(init=False)

    @_file_url.default
    def _make_file_url(self):
        return file_url_for(self._base_url or "/")

    @_locks.default
    def _make_locks(self):
        return KeyedLock(self._clock)

    def busy_since(self):
        """
        Since when a change to the stored files has been under way, or
        L{None}: a snapshot taken now stands for storage as of then.
        """
        return self._locks.oldest()

    app = Klein()

    def resource(self):
        """The Twisted resource of these routes."""
        return self.app.resource()

    @app.handle_errors(HTTPError)
    def _http_error(self, request, failure):
        return send_error(request, failure.value)

    @app.handle_errors(werkzeug.exceptions.NotFound)
    def _no_route(self, request, failure):
        return send_error(request, NotFound("no such page"))

    @app.handle_errors(werkzeug.exceptions.MethodNotAllowed)
    def _wrong_method(self, request, failure):
        allowed = ", ".join(failure.value.valid_methods or ())
        return send_error(request, MethodNotAllowed(
            f"this URL does not take {request.method.decode('ascii', 'replace')}; "
            f"it takes {allowed}", [(b"allow", allowed.encode("ascii"))]))

    # -- pages for people ----------------------------------------------------

    @app.route("/", methods=["GET", "HEAD"])
    def landing(self, request):
        """A page saying what this server is and how to use it."""
        return ensureDeferred(self._human_page(request, self._landing_page))

    @app.route("/project/<string:name>/", methods=["GET", "HEAD"])
    def project_page(self, request, name):
        """A page for people about one project: its releases and files."""
        return ensureDeferred(self._human_page(request,
                                               lambda: self._project_page(request, name)))

    async def _human_page(self, request, make):
        # (set by the site for every answer too; here for any other server)
        for name, value in SECURITY_HEADERS:
            request.responseHeaders.setRawHeaders(name, value)
        gate = self._access.gate_read(request)
        if gate is not None:
            await gate
        return send_page(request, await make())

    async def _kept_page(self, project, key, render_page):
        """
        The page C{key} about C{project}: rendered by C{render_page()} (a
        coroutine) once, then kept with the project's index pages until the
        project changes. A page rendered while the index changed is not kept.
        """
        page = self._index.extra_page(project, key)
        if page is None:
            serial = self._index.serial
            page = await render_page()
            if self._index.serial == serial:
                self._index.keep_page(project, key, page)
        return page

    async def _landing_page(self):
        serial = self._index.serial
        if self._landing is None or self._landing[0] != serial:
            body = _LANDING.format(
                base=html.escape(self._base_url or "http://<this server>/"),
                projects=len(self._index.projects()),
                files=len(self._index),
            ).encode("utf-8")
            self._landing = (serial, Page.of(body, _HTML))
        return self._landing[1]

    async def _project_page(self, request, name):
        if not is_valid_name(name) or not self._access.may_read(request, name):
            raise NotFound("no such project")
        project = self._index.project(normalize(name))
        if project is None:
            raise NotFound("no such project")
        return await self._kept_page(project, ("people",), lambda: self._render_project(project))

    async def _render_project(self, project):
        rows = []
        for record in reversed(project.sorted_files()):
            yanked = (f' <em>yanked{": " + html.escape(record.yanked) if record.yanked else ""}</em>'
                      if record.yanked is not None else "")
            rows.append(
                f'<tr><td>{html.escape(record.version)}</td>'
                f'<td><a href="{html.escape(self._file_url(record))}">'
                f'{html.escape(record.filename)}</a>{yanked}</td>'
                f'<td>{record.size}</td><td>{html.escape(record.upload_time_iso[:19])}</td>'
                f'<td><code>{record.sha256}</code></td></tr>'
            )
        body = _PROJECT.format(
            name=html.escape(project.display_name),
            normalized=html.escape(project.name),
            base=html.escape(self._base_url or "http://<this server>/"),
            rows="\n".join(rows) or '<tr><td colspan="5">No files.</td></tr>',
        ).encode("utf-8")
        return Page.of(body, _HTML)

    # -- uploads ---------------------------------------------------------------

    @app.route("/", methods=["POST"])
    @app.route("/legacy", methods=["POST"])
    @app.route("/legacy/", methods=["POST"])
    def upload(self, request):
        """Take a twine upload (C{:action=file_upload}) or a pypiserver C{remove_pkg}."""
        return ensureDeferred(self._upload(request))

    async def _upload(self, request):
        content = request.content
        if not isinstance(content, (FormSink, ThreadedSink)):
            content = self._spool(request)
        try:
            form = content.finish()
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
            # the body (PypidRequest); otherwise verified here.
            check = getattr(request, "upload_check", None)
            if check is not None:
                identity = await check
            else:
                identity = await self._access.gate_upload(
                    request, getattr(request, "upload_credentials", None))
            if form.get(":action") == "remove_pkg":
                return await self._remove_release(request, form, identity)
            upload = validate_upload(form)
            return await self._store(request, upload, identity)
        finally:
            form.discard()

    def _spool(self, request):
        """
        Parse a body that a plain Twisted request kept (in memory or in its
        own temporary file), for requests not made by L{PypidRequest}.
        """
        ctype = request.requestHeaders.getRawHeaders(b"content-type", [b""])[0]
        try:
            sink = FormSink(boundary_from_content_type(ctype), self._storage.temp_dir,
                            max_file_size=self._max_upload_size)
        except MultipartError:
            raise BadRequest("Content-Type: expected multipart/form-data with a boundary")
        request.content.seek(0)
        while chunk := request.content.read(1 << 16):
            sink.write(chunk)
        return sink

    async def _store(self, request, upload, identity):
        # One distribution at a time: the checks below and the work in the
        # storage thread must not interleave with another upload of the same
        # distribution (any spelling) or with a yank or delete of it.
        project = _project_of(upload.filename)
        if project is not None and not self._access.may_write(identity, project):
            raise Forbidden(f"{identity.name} may not upload to {project}")
        key = filename_key(upload.filename) or upload.filename
        return await self._locks.run(key, self._store_locked, request, upload, identity)

    async def _store_locked(self, request, upload, identity):
        part = upload.part
        existing = self._index.get_file(upload.filename)
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
        try:
            record, metadata = await self._run(
                inspect, part.path, upload.filename, upload.filename, self._clock.seconds(),
                (part.size, part.sha256, part.blake2_256, part.md5),
            )
        except InvalidDistribution as e:
            raise BadRequest(f"content: {e}")
        try:
            stored = await self._storage.publish(part.path, record, metadata)
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
            log.error("Upload of {filename} failed: {error}", filename=upload.filename, error=str(e))
            raise storage_unavailable(e)
        self._index.add(stored)
        log.info("{user} uploaded {filename} ({size} bytes)",
                 user=identity.name, filename=stored.filename, size=stored.size)
        return send_text(request, 200, "OK")

    @staticmethod
    def _same_or_conflict(request, sha256, upload):
        if sha256 == upload.part.sha256:
            return send_text(request, 200, "OK: this file was already uploaded with the same content")
        raise BadRequest(_exists_message(upload.filename, sha256))

    async def _remove_release(self, request, form, identity):
        name, version = (form.get("name") or "").strip(), (form.get("version") or "").strip()
        if not is_valid_name(name):
            raise BadRequest("name: a valid project name is required")
        filenames = self._release(name, version)
        await self._apply(filenames, self._delete, None, identity)
        return send_text(request, 200, f"Removed {len(filenames)} files of {name} {version}")

    # -- yank, unyank, delete ------------------------------------------------------

    @app.route("/api/files/<string:filename>/yank", methods=["POST"])
    def yank_file(self, request, filename):
        """Yank one file (PEP 592), with an optional C{reason} form field."""
        return ensureDeferred(self._change(request, lambda: [filename], self._yank,
                                           _reason(request)))

    @app.route("/api/files/<string:filename>/unyank", methods=["POST"])
    def unyank_file(self, request, filename):
        """Undo a yank of one file."""
        return ensureDeferred(self._change(request, lambda: [filename], self._yank, None))

    @app.route("/api/files/<string:filename>", methods=["DELETE"])
    def delete_file(self, request, filename):
        """Delete one file for good; its name can never be used again."""
        return ensureDeferred(self._change(request, lambda: [filename], self._delete, None))

    @app.route("/api/projects/<string:project>/<string:version>/yank", methods=["POST"])
    def yank_release(self, request, project, version):
        """Yank every file of a release, as the public index does."""
        return ensureDeferred(self._change(request, lambda: self._release(project, version),
                                           self._yank, _reason(request)))

    @app.route("/api/projects/<string:project>/<string:version>/unyank", methods=["POST"])
    def unyank_release(self, request, project, version):
        """Undo the yank of a release."""
        return ensureDeferred(self._change(request, lambda: self._release(project, version),
                                           self._yank, None))

    @app.route("/api/projects/<string:project>/<string:version>", methods=["DELETE"])
    def delete_release(self, request, project, version):
        """Delete every file of a release."""
        return ensureDeferred(self._change(request, lambda: self._release(project, version),
                                           self._delete, None))

    def _release(self, project, version):
        version = _version(version)
        entry = self._index.project(normalize(project)) if is_valid_name(project) else None
        files = [r.filename for r in (entry.files.values() if entry else ()) if r.version == version]
        if not files:
            raise NotFound(_NO_SUCH_RELEASE)
        return files

    async def _change(self, request, filenames, change, argument):
        """
        Authenticate, then apply C{change} to the files C{filenames()} names:
        what exists is looked up only for those allowed to change it.
        """
        identity = await self._access.gate_upload(request)
        await self._apply(filenames(), change, argument, identity)
        return send_text(request, 200, "OK")

    async def _apply(self, filenames, change, argument, identity):
        for filename in filenames:
            record = self._index.get_file(filename)
            if record is None or not self._access.identity_may_read(identity, record.project):
                # (one answer whether it exists or may not be seen)
                raise NotFound(_NO_SUCH_RELEASE)
            if not self._access.may_write(identity, record.project):
                raise Forbidden(f"{identity.name} may not change {record.project}")
            key = distribution_key(record.project, record.version, record.packagetype,
                                   record.filename)
            await self._locks.run(key, self._apply_locked, filename, change, argument, identity)

    async def _apply_locked(self, filename, change, argument, identity):
        # Looked up again: a change that held the lock before may have
        # deleted the file meanwhile.
        record = self._index.get_file(filename)
        if record is None:
            raise NotFound(f"no such file: {filename}")
        await change(record, argument, identity)

    async def _storage_call(self, operation, record):
        try:
            return await operation(record)
        except FilenameDeleted:
            raise NotFound(f"no such file: {record.filename}")
        except StorageError as e:
            log.error("Storage failed on {filename}: {error}", filename=record.filename,
                      error=str(e))
            raise storage_unavailable(e)

    async def _yank(self, record, reason, identity):
        changed = attrs.evolve(record, yanked=reason)
        if changed == record:
            return
        await self._storage_call(self._storage.update, changed)
        self._index.add(changed)
        log.info("{user} {action} {filename}", user=identity.name,
                 action="yanked" if reason is not None else "unyanked", filename=record.filename)

    async def _delete(self, record, _argument, identity):
        await self._storage_call(self._storage.delete, record)
        self._index.remove(record.filename)
        log.info("{user} deleted {filename}", user=identity.name, filename=record.filename)

    # -- API tokens -------------------------------------------------------------------

    @app.route("/api/tokens", methods=["POST"])
    def issue_token(self, request):
        """
        Issue a token (admins only). Form fields: C{actions} (C{read},
        C{upload}, or both, space-separated), C{projects} (names or globs,
        space-separated; none for all), C{expires} (a duration such as
        C{90d}; none for never), C{description}. Answers the token once.
        """
        return ensureDeferred(self._issue_token(request))

    async def _issue_token(self, request):
        identity = await self._admin(request)
        fields = _form_fields(request)
        try:
            lifetime = parse_duration(fields["expires"]) if fields.get("expires") else None
            text, token = self._tokens().issue(
                identity.name, fields.get("actions", "").split(),
                fields.get("projects", "").split(), lifetime, fields.get("description", ""))
        except ValueError as e:
            raise BadRequest(str(e))
        await self._save_tokens()
        log.info("{user} issued token {id} ({actions} on {projects})", user=identity.name,
                 id=token.id, actions=" ".join(sorted(token.actions)),
                 projects=" ".join(token.projects) or "every project")
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(dict(token.public(), token=text)).encode("utf-8")

    @app.route("/api/tokens", methods=["GET"])
    def list_tokens(self, request):
        """List the tokens, without their secrets (admins only)."""
        return ensureDeferred(self._list_tokens(request))

    async def _list_tokens(self, request):
        await self._admin(request)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps({"tokens": self._tokens().listing()}).encode("utf-8")

    @app.route("/api/tokens/<string:token_id>", methods=["DELETE"])
    def revoke_token(self, request, token_id):
        """Revoke a token at once (admins only)."""
        return ensureDeferred(self._revoke_token(request, token_id))

    async def _revoke_token(self, request, token_id):
        identity = await self._admin(request)
        if not self._tokens().revoke(token_id):
            raise NotFound(f"no such token: {token_id}")
        await self._save_tokens()
        log.info("{user} revoked token {id}", user=identity.name, id=token_id)
        return send_text(request, 200, "OK: revoked")

    async def _uploader(self, request):
        """A user who may upload: with a password, or a token that may upload."""
        identity = await self._access.gate_upload(request)
        if identity.token is not None and "upload" not in identity.token.actions:
            raise Forbidden("this token may not upload")
        return identity

    async def _admin(self, request):
        identity = await self._access.gate_upload(request)
        if not self._access.is_admin(identity):
            raise Forbidden(f"{identity.name} is not an admin")
        return identity

    def _tokens(self):
        if self._access.tokens is None:
            raise NotFound("tokens are not enabled")
        return self._access.tokens

    async def _save_tokens(self):
        book = self._tokens()
        if book.path is not None:
            try:
                # One write at a time, each of the state as it is when it
                # starts: an older state never lands after a newer one.
                await self._token_writes.run(
                    lambda: self._run(tokens.write_file, book.path, book.dumps()))
            except OSError as e:
                log.error("Cannot keep the tokens in {path}: {error}", path=book.path,
                          error=e.strerror)
                raise Unavailable("the tokens cannot be saved now",
                                  [(b"retry-after", RETRY_AFTER)])

    # -- the upstream cache ------------------------------------------------------------

    @app.route("/requirements.txt", methods=["POST"])
    def precache(self, request):
        """
        Pre-cache what a requirements file (or, with C{Content-Type:
        application/toml}, a C{pylock.toml}) pins: every selected upstream
        file is fetched, checked and kept. Answers a JSON report.
        """
        return ensureDeferred(self._precache(request))

    async def _precache(self, request):
        identity = await self._uploader(request)
        proxy = self._cache_mode()
        ctype = request.requestHeaders.getRawHeaders(b"content-type", [b""])[0].lower()
        try:
            text = request.content.read().decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the requirements are not UTF-8 text")
        try:
            if b"toml" in ctype:
                pins = requirements.parse_pylock(text)
            else:
                pins = requirements.parse_requirements(text)
        except requirements.RequirementsError as e:
            raise BadRequest(f"requirements: {e}")
        allowed = [pin for pin in pins if self._access.identity_may_read(identity, pin.project)]
        report = [{"project": pin.project, "status": "refused",
                   "reason": "not an upstream project here"}
                  for pin in pins if pin not in allowed]
        report += await proxy.precache(allowed)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps({"files": report}).encode("utf-8")

    @app.route("/api/upstream/<string:name>/refresh", methods=["POST"])
    def refresh_upstream(self, request, name):
        """Fetch an upstream project's page again now."""
        return ensureDeferred(self._refresh(request, name))

    async def _refresh(self, request, name):
        identity = await self._uploader(request)
        proxy = self._cache_mode()
        if not is_valid_name(name) or not self._access.identity_may_read(identity, name):
            raise NotFound("not an upstream project here")
        if not proxy.decide(name).allowed:
            raise NotFound("not an upstream project here")
        try:
            entry = await proxy.refresh(normalize(name))
        except UpstreamError as e:
            raise BadGateway(f"the upstream index failed: {e}")
        except Offline:
            raise Unavailable("the server is offline: nothing is fetched")
        if entry.page is None:
            raise NotFound("the upstream has no such project")
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps({"project": entry.page.project, "files": len(entry.page.files),
                           "fetched_at": entry.fetched_at}).encode("utf-8")

    def _cache_mode(self):
        if self._upstream is None or self._upstream.mode != "cache":
            raise NotFound("no upstream cache is configured ([upstream] mode = cache)")
        return self._upstream

    # -- the legacy JSON API ------------------------------------------------------

    @app.route("/pypi/<string:name>/json", methods=["GET", "HEAD"])
    def project_json(self, request, name):
        """C{/pypi/<project>/json}: the latest release, and every release."""
        return ensureDeferred(self._pypi_json(request, name, None))

    @app.route("/pypi/<string:name>/<string:version>/json", methods=["GET", "HEAD"])
    def release_json(self, request, name, version):
        """C{/pypi/<project>/<version>/json}: one release."""
        return ensureDeferred(self._pypi_json(request, name, version))

    async def _pypi_json(self, request, name, version):
        gate = self._access.gate_read(request)
        if gate is not None:
            await gate
        if not is_valid_name(name) or not self._access.may_read(request, name):
            raise NotFound("no such project")
        project = self._index.project(normalize(name))
        if project is None or not project.files:
            raise NotFound("no such project")
        shown = _version(version) if version is not None else None
        if project.name != name or shown != version:
            # Built from the normalized name and version only: no client text.
            suffix = f"{quote(shown)}/json" if shown is not None else "json"
            request.setResponseCode(301)
            request.setHeader(b"location", f"{self._prefix()}pypi/{project.name}/{suffix}".encode())
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Moved\n"
        page = await self._kept_page(project, ("pypi-json", shown),
                                     lambda: self._render_pypi_json(project, shown))
        return send_page(request, page)

    async def _render_pypi_json(self, project, version):
        """Render the legacy JSON of a release (the latest, when C{version} is L{None})."""
        releases = {}
        for record in project.sorted_files():
            releases.setdefault(record.version, []).append((record, self._file_url(record)))
        shown = version if version is not None else project.latest_version()
        if shown not in releases:
            raise NotFound("no such version")
        info = await self._info(releases[shown])
        body = render.pypi_json(project.display_name, project.name, info, releases, shown,
                                self._index.serial, include_releases=version is None,
                                base_url=(self._base_url or "/").rstrip("/"))
        return Page.of(body, b"application/json")

    async def _info(self, files):
        """
        The release's metadata, read from its stored .metadata (wheels
        first); a file whose metadata is missing is passed over.
        """
        for record, _url in sorted(files, key=lambda f: not f[0].is_wheel):
            if record.metadata_sha256 is None:
                continue
            try:
                raw = await self._storage.read_metadata(record)
            except FileNotFoundError:
                log.warn("The stored metadata of {filename} is missing", filename=record.filename)
                continue
            except StorageError as e:
                log.error("Cannot read the metadata of {filename}: {error}",
                          filename=record.filename, error=str(e))
                raise storage_unavailable(e)
            return parse_metadata(raw).to_json_info()
        record = files[0][0]
        return {"requires_python": record.requires_python}

    def _prefix(self):
        return self._base_url or "/"

    # -- health ----------------------------------------------------------------------

    @app.route("/health", methods=["GET", "HEAD"])
    def health(self, request):
        """Whether the server is up, and what it serves (no secrets)."""
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return ensureDeferred(self._health(request))

    async def _health(self, request):
        storage_ok = await self._storage.check()
        if not storage_ok:
            request.setResponseCode(503)
        return json.dumps({
            "status": "ok" if storage_ok else "degraded",
            "storage": "ok" if storage_ok else "down",
            "projects": len(self._index.projects()),
            "files": len(self._index),
            "serial": self._index.serial,
        }).encode("utf-8")


_NO_SUCH_RELEASE = "no such file or release"


def _project_of(filename):
    """The normalized project a distribution filename names, or L{None}."""
    try:
        return parse_filename(filename, legacy=True).project
    except InvalidName:
        return None


def _deleted(filename):
    return BadRequest(
        f"File already exists ('{filename}'): this filename was previously "
        "used by a file that has since been deleted"
    )


def _version(text):
    """The normalized form of a version from a request (C{1.00} finds C{1.0})."""
    try:
        return canonical_version(text)
    except InvalidName:
        raise NotFound(f"no such version: {text!r} is not a valid version")


def _field(request, name):
    """A form field (urlencoded body or query) as text, or C{""}."""
    values = request.args.get(name.encode("ascii"))
    if not values:
        return ""
    try:
        return values[0].decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadRequest(f"{name}: not valid UTF-8")


def _reason(request):
    return _field(request, "reason")


def _form_fields(request):
    """The fields of a token request."""
    return {name: _field(request, name)
            for name in ("actions", "projects", "expires", "description")}


_HTML = b"text/html; charset=utf-8"

_PROJECT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{name} - pypid</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{padding:.2em .6em;text-align:left;border-bottom:1px solid #ddd}}
code{{font-size:.8em}}pre{{background:#f4f4f4;padding:.6em}}</style></head>
<body><p><a href="../../">pypid</a></p><h1>{name}</h1>
<pre>pip install --index-url {base}simple/ {normalized}</pre>
<table><tr><th>version</th><th>file</th><th>bytes</th><th>uploaded (UTC)</th><th>sha256</th></tr>
{rows}
</table></body></html>
"""

_LANDING = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pypid package index</title>
<style>body{{font-family:sans-serif;max-width:46em;margin:2em auto;padding:0 1em;line-height:1.5}}
pre{{background:#f4f4f4;padding:.6em;overflow-x:auto}}</style></head>
<body><h1>pypid</h1>
<p>This is a private Python package index: {projects} projects, {files} files.
Browse the <a href="simple/">simple index</a>.</p>
<h2>Install with pip or uv</h2>
<pre>pip install --index-url {base}simple/ PROJECT
uv pip install --index-url {base}simple/ PROJECT</pre>
<h2>Publish with twine or uv</h2>
<pre>twine upload --repository-url {base} dist/*
uv publish --publish-url {base} --check-url {base}simple/ dist/*</pre>
</body></html>
"""
