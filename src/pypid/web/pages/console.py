"""
The console: what a person logged in to the pages manages
there, in their browser session, with plain HTML forms.

Every action is its API's own code path: the console's routes check the
browser session and the form's CSRF token (beside the site's cross-site
checks, L{pypid.core.access.cross_site}), then call the very method the API's
route calls (L{pypid.web.admin.token_admin.TokenAdmin.issue_token} and its
siblings), which identifies the person through the session (the pages
mark the request, L{pypid.web.identity.request_auth.for_people}), refuses exactly
as the API refuses, and records the audit entry with the person's name.
What the API answers as JSON, the console shows as a page; what it
refuses, the console shows with the same status and reason.

The console takes a browser session only: a request carrying credentials
(an C{Authorization} header) is refused, as a form of the pages never
sends one, and a browser without a session is sent to the login form.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

import attrs
from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.auth.verifier import Identity
from pypid.core.access.sessions import Session
from pypid.core.dists.names import is_valid_name, normalize, project_of_filename
from pypid.core.dists.version_order import version_key
from pypid.core.formats import charts, console_pages, pages
from pypid.core.formats.admin_answers import ProjectAdvisories
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.indexes.model import FileRecord
from pypid.core.records.audit_chain import REFUSED
from pypid.core.util.http_errors import BadRequest, Forbidden, HTTPError, NotFound, Unauthorized
from pypid.web.admin.advisory_admin import ADVISORIES_LOGIN, AdvisoryAdmin
from pypid.web.admin.audit_trail import AuditAdmin, AuditTrail, audit_query
from pypid.web.admin.groups_admin import GROUPS_LOGIN, GroupsAdmin
from pypid.web.admin.indexes_admin import INDEXES_LOGIN, IndexesAdmin
from pypid.web.admin.recycle_admin import BIN_LOGIN, RecycleAdmin
from pypid.web.admin.retention_admin import RETENTION_LOGIN, RetentionAdmin, apply_body
from pypid.web.admin.token_admin import TokenAdmin
from pypid.web.admin.usage_admin import UsageAdmin
from pypid.web.changes.promote import Promote, form_fields, promote_request
from pypid.web.changes.publish import Publish
from pypid.web.identity.access import Access, not_an_admin
from pypid.web.pages.browser_login import HOST, body_fields, no_store, send_html
from pypid.web.pages.people import people_headers
from pypid.web.server.routes import answer_errors, form_field, is_form
from pypid.web.serving.index_root import ServedIndex
from pypid.web.serving.respond import see_other, send_error

log = Logger()

_A = TypeVar("_A")

#: What a console request with credentials is told.
SESSION_ONLY = ("the console works in a browser session: log in through the login page, "
                "without an Authorization header")


@attrs.define(slots=False)
class Console:
    """
    The console's area (C{/console/...}).

    @ivar _access: the access gate, with the browser sessions.
    @ivar _tokens: the token routes' code, which the console calls.
    @ivar _chrome: the chrome of the site's pages.
    @ivar _audit: where a form refused for its CSRF token is recorded.
    @ivar _served: the index of a name as served now (its uploads and
        changes, which the project page calls), or L{None}.
    @ivar _promote: promotion between the indexes (its route's code, which
        the project page's form calls), or L{None} without a registry.
    @ivar _retention: the retention rules' routes (the retention page
        calls them), or L{None} without a registry.
    @ivar _audit_admin: the audit log's routes (the audit page calls them).
    @ivar _usage: the download counts' route (the project page's chart calls it).
    @ivar _recycle: the recycle bin's route (the recycle bin's page calls it).
    @ivar _advisories: the advisories' route (the advisories' page calls it).
    @ivar _groups: the groups' route (the groups' page calls it).
    @ivar _indexes: the indexes' route (the indexes' page calls it).
    """

    _access: Access
    _tokens: TokenAdmin
    _chrome: pages.Chrome
    _audit: AuditTrail
    _served: Callable[[str], ServedIndex | None]
    _promote: Promote | None = None
    _retention: RetentionAdmin | None = None
    _audit_admin: AuditAdmin | None = None
    _usage: UsageAdmin | None = None
    _recycle: RecycleAdmin | None = None
    _advisories: AdvisoryAdmin | None = None
    _groups: GroupsAdmin | None = None
    _indexes: IndexesAdmin | None = None

    app = Klein()
    answer_errors(app)

    @app.route("/console/", methods=["GET", "HEAD"])
    async def home(self, request: IRequest) -> bytes:
        """What the person can manage here."""
        session = self._session(request)
        if isinstance(session, bytes):
            return session
        identity = await self._access.person(request)
        chrome = attrs.evolve(self._chrome, person=identity.name)
        return send_html(request, 200, console_pages.console_page(
            chrome, identity.name, root=root_of(request),
            admin=self._access.is_admin(identity)))

    @app.route("/console", methods=["GET", "HEAD"])
    def home_slash(self, request: IRequest) -> bytes:
        """The console's home is C{/console/}."""
        return see_other(request, "console/", "See /console/\n")

    @app.route("/console/tokens", methods=["GET", "HEAD"])
    async def tokens(self, request: IRequest) -> bytes:
        """The person's tokens and the form that issues one."""
        session = self._session(request)
        if isinstance(session, bytes):
            return session
        return await self._tokens_page(request, session, 200)

    @app.route("/console/tokens", methods=["POST"])
    async def issue(self, request: IRequest) -> bytes:
        """Issue a token (C{POST /api/tokens}'s path); the page shows it once."""
        session = self._form_session(request, "token-issued")
        if isinstance(session, bytes):
            return session
        # (to fill the form in again: as sent, never refused here, so that
        # what the API refuses is refused there, and audited)
        fields = {name: shown_field(request, name)
                  for name in ("description", "actions", "projects", "indexes", "expires")}
        try:
            text, token = await self._tokens.issue_token(request)
        except HTTPError as e:
            return await self._tokens_page(request, session, e.code, error=e.detail,
                                           fields=fields)
        return await self._tokens_page(request, session, 200, issued=(text, token.public()))

    @app.route("/console/tokens/<string:token_id>/revoke", methods=["POST"])
    async def revoke(self, request: IRequest, token_id: str) -> bytes:
        """Revoke a token (C{DELETE /api/tokens/<id>}'s path), then the page again."""
        session = self._form_session(request, "token-revoked", token_id)
        if isinstance(session, bytes):
            return session
        try:
            await self._tokens.revoke_token(request, token_id)
        except HTTPError as e:
            return await self._tokens_page(request, session, e.code, error=e.detail)
        return see_other(request, "../../tokens", f"Revoked {token_id}\n")

    # -- retention (admins) ------------------------------------------------------------------

    @app.route("/console/retention", methods=["GET", "HEAD"])
    async def retention(self, request: IRequest) -> bytes:
        """Each hosted index's retention plan (C{GET /api/retention}'s), with Apply buttons."""
        session = self._session(request)
        if isinstance(session, bytes):
            return session
        return await self._retention_page(request, session, 200)

    @app.route("/console/retention/apply", methods=["POST"])
    async def apply_retention(self, request: IRequest) -> bytes:
        """Apply one index's plan as shown: C{POST /api/retention/apply}'s path."""
        session = self._form_session(request, "retention")
        if isinstance(session, bytes):
            return session
        retention = self._retention
        if retention is None:
            return send_error(request, NotFound("no such page"))
        try:
            applied = await retention.apply_as(request, lambda: apply_body(request))
        except HTTPError as e:
            return await self._retention_page(request, session, e.code, error=e.detail)
        return await self._retention_page(request, session, 200, applied=applied)

    async def _retention_page(self, request: IRequest, session: Session, code: int,
                              **shown: Any) -> bytes:
        retention = self._retention
        if retention is None:
            return send_error(request, NotFound("no such page"))
        try:
            await self._access.admin(request, RETENTION_LOGIN)
            # (the plans as the API makes them now: for every index, not the
            # index a form named)
            plans = retention.plans_of(None)["indexes"]
        except HTTPError as e:
            return send_error(request, e)
        identity = await self._access.person(request)
        chrome = attrs.evolve(self._chrome, person=identity.name)
        return send_html(request, code, console_pages.retention_page(
            chrome, identity.name, session.csrf, plans, root=root_of(request), **shown))

    # -- the advisories (admins) --------------------------------------------------------------

    @app.route("/console/advisories", methods=["GET", "HEAD"])
    def advisories(self, request: IRequest) -> Awaitable[bytes]:
        """What the advisories do to each index (C{GET /api/advisories}'s), or a dry run."""
        area = self._advisories
        return self._read_page(
            request, ADVISORIES_LOGIN, None if area is None else lambda: area.report(
                shown_field(request, "index") or None, shown_field(request, "mode")),
            lambda chrome, person, session, report: console_pages.advisories_page(
                chrome, person, report, root=root_of(request),
                mode=shown_field(request, "mode")))

    # -- the recycle bin (admins) -------------------------------------------------------------

    @app.route("/console/recycle-bin", methods=["GET", "HEAD"])
    def recycle_bin(self, request: IRequest) -> Awaitable[bytes]:
        """An index's files in the recycle bin (C{GET /api/recycle-bin}'s), each restorable."""
        area = self._recycle
        return self._read_page(
            request, BIN_LOGIN, None if area is None else lambda: area.listing(
                shown_field(request, "index") or "default"),
            lambda chrome, person, session, listed: console_pages.recycle_bin_page(
                chrome, person, session.csrf, listed, root=root_of(request)))

    @app.route("/console/groups", methods=["GET", "HEAD"])
    def groups(self, request: IRequest) -> Awaitable[bytes]:
        """Who is in which group, as configured (C{GET /api/groups}'s)."""
        area = self._groups
        return self._read_page(
            request, GROUPS_LOGIN, None if area is None else area.listing,
            lambda chrome, person, session, groups: console_pages.groups_page(
                chrome, person, groups, root=root_of(request)))

    @app.route("/console/indexes", methods=["GET", "HEAD"])
    def indexes(self, request: IRequest) -> Awaitable[bytes]:
        """The indexes and the upstream caches (C{GET /api/indexes}'s)."""
        area = self._indexes
        return self._read_page(
            request, INDEXES_LOGIN, None if area is None else area.listing,
            lambda chrome, person, session, found: console_pages.indexes_page(
                chrome, person, found, root=root_of(request)))

    async def _read_page(self, request: IRequest, login: str, read: Callable[[], _A] | None,
                         draw: Callable[[pages.Chrome, str, Session, _A], bytes]) -> bytes:
        """
        A page, for an admin, of what an API's C{read} answers (its own
        code, its refusals; C{login}: what it tells a request without
        credentials): C{draw(chrome, person, session, answer)}; 404 without it.
        """
        session = self._session(request)
        if isinstance(session, bytes):
            return session
        if read is None:
            return send_error(request, NotFound("no such page"))
        try:
            await self._access.admin(request, login)
            answer = read()
        except HTTPError as e:
            return send_error(request, e)
        identity = await self._access.person(request)
        chrome = attrs.evolve(self._chrome, person=identity.name)
        return send_html(request, 200, draw(chrome, identity.name, session, answer))

    # -- the audit log (admins) ---------------------------------------------------------------

    @app.route("/console/audit", methods=["GET", "HEAD"])
    async def audit(self, request: IRequest) -> bytes:
        """
        The audit log's entries (C{GET /api/audit}'s, with its filters and
        pages), and with C{verify=1} what checking its chains found (C{GET
        /api/audit/verify}'s).
        """
        session = self._session(request)
        if isinstance(session, bytes):
            return session
        admin = self._audit_admin
        if admin is None:
            return send_error(request, NotFound("no such page"))
        identity = await self._access.person(request)
        if not self._access.is_admin(identity):
            # (a project's owner reads its trail on its page: this one is the admins')
            return send_error(request, Forbidden(not_an_admin(identity.name)))
        filters = {name: shown_field(request, name) for name, _ in console_pages.AUDIT_FILTERS}
        try:
            check = await admin.check() if shown_field(request, "verify") else None
            page = await admin.entries(identity, audit_query({
                name: form_field(request, name) or None
                for name in ("since", "before", "limit", *filters)}), "", "")
        except HTTPError as e:
            return send_error(request, e)
        chrome = attrs.evolve(self._chrome, person=identity.name)
        return send_html(request, 200, console_pages.audit_page(
            chrome, identity.name, page, filters, root=root_of(request), check=check))

    # -- a project -------------------------------------------------------------------------

    @app.route("/console/project", methods=["GET", "HEAD"])
    def find_project(self, request: IRequest) -> bytes:
        """The home's form (C{?name=&index=}): 303 to the project's page."""
        name = shown_field(request, "name")
        if len(name) > 200 or not is_valid_name(name):
            return send_error(request, BadRequest("name: not a project name"))
        index = shown_field(request, "index")
        query = "?index=" + quote(index, safe="") if index and index != DEFAULT else ""
        return see_other(request, f"project/{normalize(name)}/{query}",
                         "To the project's page\n")

    @app.route("/console/project/<string:project>/", methods=["GET", "HEAD"])
    async def project(self, request: IRequest, project: str) -> bytes:
        """A project's files and status, with the actions its person may take."""
        session = self._session(request)
        if isinstance(session, bytes):
            return session
        return await self._guarded(request, lambda: self._project_page(request, session,
                                                                        project, 200))

    @app.route("/console/project/<string:project>/files/<string:filename>/<string:verb>",
               methods=["POST"])
    async def change_file(self, request: IRequest, project: str, filename: str,
                          verb: str) -> bytes:
        """
        Yank, unyank, delete or restore one file: the API's own routes
        (C{POST /api/files/<f>/yank} ...), then the project's page again.
        """
        session = self._form_session(request, verb if verb in FILE_VERBS else "change",
                                     filename)
        if isinstance(session, bytes):
            return session
        if verb not in FILE_VERBS:
            return send_error(request, NotFound("no such page"))
        found = await self._guarded(request, lambda: self._project_of(request, project))
        if isinstance(found, bytes):
            return found
        name, publish = found
        if project_of_filename(filename) != name:
            # (a file of another project: what the page is about decides)
            return send_error(request, NotFound(f"no such file of {name}: {filename}"))
        route = {"yank": publish.yank_file, "unyank": publish.unyank_file,
                 "delete": publish.delete_file, "restore": publish.restore_file}[verb]
        return await self._then_project(request, session, name,
                                        lambda: route(request, filename))

    @app.route("/console/project/<string:project>/status", methods=["POST"])
    async def set_status(self, request: IRequest, project: str) -> bytes:
        """Set the project's status (admins): C{POST /api/projects/<p>/status}'s path."""
        session = self._form_session(request, "status", project)
        if isinstance(session, bytes):
            return session
        found = await self._guarded(request, lambda: self._project_of(request, project))
        if isinstance(found, bytes):
            return found
        name, publish = found
        return await self._then_project(request, session, name,
                                        lambda: publish.set_status(request, name))

    @app.route("/console/project/<string:project>/promote", methods=["POST"])
    async def promote(self, request: IRequest, project: str) -> bytes:
        """
        Promote a release of the project to another index: C{POST
        /api/promote}'s own path, from the form's C{version}, C{to} (and an
        admin's C{allow_denied}); the page says what was promoted.
        """
        promote = self._promote
        found = await self._project_form(request, project, "promote", promote)
        if isinstance(found, bytes):
            return found
        assert promote is not None
        session, name = found
        # (the page's index and project are what the promotion is from and
        # of: never fields of the form, which the page does not send)
        fields = form_fields({field: value for field in ("to", "version", "allow_denied")
                              if (value := shown_field(request, field))})
        fields.update({"from": _index_name(request), "project": name})
        try:
            identity = await self._access.person(request)
            answer = await promote.promote_as(request, identity,
                                              lambda: promote_request(fields), fields)
        except HTTPError as e:
            code, message = e.code, e.detail
        else:
            done = answer["promoted"]
            return await self._guarded(request, lambda: self._project_page(
                request, session, name, 200, notice=(
                    f"Promoted {name} {answer['version']} to {answer['to']}: "
                    + (f"{len(done)} file{'s' if len(done) != 1 else ''}" if done
                       else "every file was there already") + ".")))
        return await self._guarded(request, lambda: self._project_page(
            request, session, name, code, error=message))

    @app.route("/console/project/<string:project>/waive", methods=["POST"])
    def waive(self, request: IRequest, project: str) -> Awaitable[bytes]:
        """Waive an advisory for the project (admins): C{POST /api/advisories/waivers}'s path."""
        return self._waiver(request, project, "advisory-waive", remove=False)

    @app.route("/console/project/<string:project>/unwaive", methods=["POST"])
    def unwaive(self, request: IRequest, project: str) -> Awaitable[bytes]:
        """Remove a waiver of the project (admins): C{DELETE /api/advisories/waivers}'s path."""
        return self._waiver(request, project, "advisory-unwaive", remove=True)

    async def _waiver(self, request: IRequest, project: str, event: str, remove: bool) -> bytes:
        """
        Keep or remove a waiver of the page's project in the page's index,
        from the form's C{advisory} (or C{version}) and C{reason}.
        """
        area = self._advisories
        found = await self._project_form(request, project, event, area)
        if isinstance(found, bytes):
            return found
        assert area is not None
        session, name = found
        fields = {field: value for field in ("advisory", "version", "reason")
                  if (value := form_field(request, field))}
        # (the page's index and project: never fields of the form)
        fields.update(index=_index_name(request), project=name)
        if remove:
            fields.pop("reason", None)
        return await self._then_project(request, session, name, lambda: (
            area.unwaive_as(request, fields) if remove else area.waive_as(request, lambda: fields)))

    async def _project_form(self, request: IRequest, project: str, event: str,
                            area: object) -> tuple[Session, str] | bytes:
        """
        C{(session, normalized project)} of a project page's form that
        calls the API's C{area} (audited as C{event} when its CSRF token is
        wrong), for a person who may change the project; else the answer:
        404 without the area, 400 for a body that is not the page's form
        (a JSON body would name its own index and project).
        """
        session = self._form_session(request, event, project)
        if isinstance(session, bytes):
            return session
        if area is None:
            return send_error(request, NotFound("no such page"))
        if not is_form(request):
            return send_error(request, BadRequest("the console takes its own forms only"))
        found = await self._guarded(request, lambda: self._project_of(request, project))
        if isinstance(found, bytes):
            return found
        return session, found[0]

    async def _then_project(self, request: IRequest, session: Session, project: str,
                            change: Callable[[], Awaitable[object]]) -> bytes:
        """Make C{change}, then 303 back to the project's page; its refusal on the page."""
        try:
            await change()
        except HTTPError as e:
            code, message = e.code, e.detail
        else:
            back = (root_of(request) + f"console/project/{quote(project, safe='')}/"
                    + _index_query(request))
            return see_other(request, back, "Done\n")
        return await self._guarded(request, lambda: self._project_page(
            request, session, project, code, error=message))

    async def _project_of(self, request: IRequest, project: str) -> tuple[str, Publish]:
        """
        C{(normalized name, its index's uploads and changes)} of the
        project a request names, for a person who may change it; one
        refusal, C{404 no such project}, for a project, or an index
        (C{?index=}), that does not exist, is a view, or that the person may
        not see (a hidden index answers as a missing one); C{403}
        for one they may only read.
        """
        identity = await self._access.person(request)
        index_name = _index_name(request)
        served = self._served(index_name)
        publish = served.publish if served is not None else None
        name = normalize(project) if is_valid_name(project) else None
        if publish is None or name is None or (
                index_name != DEFAULT and not self._access.index_shown(identity, index_name)):
            raise NotFound("no such project")
        checks = publish.checks
        if not checks.may_read(identity, name) or publish.index.project(name) is None:
            raise NotFound("no such project")
        if not checks.may_write(identity, name):
            raise Forbidden(f"{identity.name} may not change {name}")
        return name, publish

    async def _project_page(self, request: IRequest, session: Session, project: str,
                            code: int, error: str | None = None,
                            notice: str | None = None) -> bytes:
        name, publish = await self._project_of(request, project)
        identity = await self._access.person(request)
        index = publish.index
        targets = (self._promote.targets(identity, _index_name(request))
                   if self._promote is not None else [])
        chart = self._chart(request, identity, name)
        trail = await self._trail(request, identity, name)
        advisories = self._advisories_of(request, identity, name)
        found = index.project(name)
        assert found is not None
        by_version: dict[str, list[FileRecord]] = {}
        for record in found.files.values():
            by_version.setdefault(record.version, []).append(record)
        releases = [(version, sorted(by_version[version], key=lambda r: r.filename))
                    for version in sorted(by_version, key=version_key, reverse=True)]
        binned = [record for record in index.binned() if record.project == name]
        chrome = attrs.evolve(self._chrome, person=identity.name)
        return send_html(request, code, console_pages.project_page(
            chrome, identity.name, session.csrf, name, found.display_name, releases, binned,
            index=_index_name(request), status=index.status(name),
            admin=self._access.is_admin(identity), recycles=publish.recycles,
            root=root_of(request), error=error, notice=notice, targets=targets,
            chart=chart, trail=trail, advisories=advisories))

    def _advisories_of(self, request: IRequest, identity: Identity,
                       name: str) -> ProjectAdvisories | None:
        """
        The advisories affecting the project's releases in its index and
        the waivers kept (C{GET /api/advisories/project/<p>}'s); L{None}
        when they cannot be read now.
        """
        area = self._advisories
        if area is None:
            return None
        try:
            return area.of_project(identity, _index_name(request), name)
        except HTTPError:
            return None

    async def _trail(self, request: IRequest, identity: Identity,
                     name: str) -> list[dict[str, Any]] | None:
        """
        The project's newest audit entries in its index (C{GET
        /api/audit}'s: whoever may change the project reads them); L{None}
        when they cannot be read now.
        """
        admin = self._audit_admin
        if admin is None:
            return None
        index = _index_name(request)
        query: dict[str, str | None] = {"project": name, "index": index, "limit": "20"}
        entries: list[dict[str, Any]] = []
        try:
            # (one read covers the log's newest days that have entries: older
            # pages until 20 entries, a few reads at most)
            for _ in range(TRAIL_READS):
                page = await admin.entries(identity, audit_query(query), name, index)
                entries = page["entries"] + entries
                if len(entries) >= 20 or not page["before"]:
                    break
                query["before"] = page["before"]
            return entries[-20:]
        except HTTPError:
            return None

    def _chart(self, request: IRequest, identity: Identity, name: str) -> str | None:
        """
        The project's downloads chart (C{GET /api/usage?project=}'s
        numbers); L{None} when its index counts no downloads.
        """
        usage = self._usage
        if usage is None:
            return None
        try:
            data = usage.of_project(identity, _index_name(request), name, 30)
        except HTTPError:
            return None
        releases = data["releases"]
        newest = sorted(releases, key=version_key, reverse=True)
        return charts.downloads_chart(releases, data["first_day"], newest)

    # -- helpers ----------------------------------------------------------------------------

    def _session(self, request: IRequest) -> Session | bytes:
        """
        The browser session of a console page's request; else the answer:
        a browser is sent to the login form, a client with credentials
        refused.
        """
        people_headers(request)
        no_store(request)
        if request.requestHeaders.hasHeader(b"authorization"):
            return send_error(request, BadRequest(SESSION_ONLY))
        sessions = self._access.sessions
        found = sessions.of(request) if sessions is not None else None
        if found is None:
            return send_error(request, Unauthorized("log in to use the console"))
        return found[1]

    def _form_session(self, request: IRequest, event: str,
                      target: str | None = None) -> Session | bytes:
        """
        L{_session}, for a form whose CSRF token must be the session's: a
        form without it is refused, and audited as C{event} refused (its
        C{target}, if any) for the session's person.
        """
        session = self._session(request)
        if isinstance(session, bytes):
            return session
        sessions = self._access.sessions
        assert sessions is not None
        # (from the body only: a token in the URL would be in logs and histories)
        sent = body_fields(request).get(b"csrf")
        if not sessions.book.csrf_matches(
                session, sent.decode("utf-8", "replace") if sent else None):
            self._audit.record(request, Identity(session.user, groups=session.groups), event,
                               REFUSED, target=target, detail="csrf")
            return send_error(request, Forbidden("csrf: the form's token is not this "
                                                 "session's; reload the page and try again"))
        return session

    async def _tokens_page(self, request: IRequest, session: Session, code: int,
                           **shown: Any) -> bytes:
        listed = await self._guarded(request, lambda: self._tokens.tokens_of(request))
        if isinstance(listed, bytes):
            return listed
        identity = await self._access.person(request)
        admin = self._access.is_admin(identity)
        chrome = attrs.evolve(self._chrome, person=identity.name)
        outside = identity.login.outside
        return send_html(request, code, console_pages.tokens_page(
            chrome, identity.name, session.csrf, listed, admin=admin, outside=outside,
            index_url=self._index_url(request), root=root_of(request), **shown))

    def _index_url(self, request: IRequest) -> str:
        """
        The simple index's URL, without its scheme, for the page's example:
        under C{[pypid] base_url}, else this request's C{Host} (when it is
        a host name), else empty (the page says "this server").
        """
        base = self._chrome.base_url
        if base:
            return base.split("://", 1)[-1] + "simple/"
        host = request.getHeader(b"host") or b""
        return host.decode("ascii") + "/simple/" if HOST.match(host) else ""

    async def _guarded(self, request: IRequest,
                       action: Callable[[], Awaitable[Any]]) -> Any:
        """C{action()}'s result, or its refusal's answer (bytes)."""
        try:
            return await action()
        except HTTPError as e:
            return send_error(request, e)


def root_of(request: IRequest) -> str:
    """The way back to the site's root from C{request}'s page (C{../} from C{/console/x})."""
    return "../" * (request.path.count(b"/") - 1)


def shown_field(request: IRequest, name: str) -> str:
    """A form field as sent, to show again (bytes that are not UTF-8 replaced)."""
    values = request.args.get(name.encode("ascii"))
    return values[0].decode("utf-8", "replace").strip() if values else ""


#: The most reads of the audit log a project's trail takes.
TRAIL_READS = 6

#: What the project page's buttons do to a file, as the API names them.
FILE_VERBS = frozenset({"yank", "unyank", "delete", "restore"})


def _index_name(request: IRequest) -> str:
    """The index a project page is of: C{?index=NAME}, the default without."""
    return shown_field(request, "index") or DEFAULT


def _index_query(request: IRequest) -> str:
    name = _index_name(request)
    return "" if name == DEFAULT else "?index=" + quote(name, safe="")
