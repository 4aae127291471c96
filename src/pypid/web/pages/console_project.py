"""
A project's page in the console: its releases and files, its status,
its downloads, its advisories and its audit trail, with the actions its
person may take (yank, delete, restore, status, promote, waive), each
through the API's own code and refusals, then the page again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from pypid.auth.reader import Reader
from pypid.core.access.sessions import Session
from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import is_valid_name, normalize, project_of_filename
from pypid.core.dists.version_order import version_key
from pypid.core.formats import console_project_page
from pypid.core.formats.admin_answers import ProjectAdvisories
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import BadRequest, Forbidden, HTTPError, NotFound
from pypid.web.admin.advisory_admin import AdvisoryAdmin
from pypid.web.admin.audit_admin import AuditAdmin, audit_query
from pypid.web.admin.usage_admin import UsageAdmin
from pypid.web.changes.promote import Promote, promote_request, promotion_form
from pypid.web.changes.publish import Publish
from pypid.web.pages.browser_login import send_html
from pypid.web.pages.console import ConsoleGate, index_name, index_query, shown_field
from pypid.web.server.respond import root_of, see_other
from pypid.web.server.routes import answer_errors, form_field, is_form
from pypid.web.serving.index_root import ServedIndex

#: The most reads of the audit log a project's trail takes.
TRAIL_READS = 6

#: What the project page's buttons do to a file, as the API names them.
FILE_VERBS = frozenset({"yank", "unyank", "delete", "restore"})


@attrs.define(slots=False)
class ConsoleProject:
    """
    C{/console/project/...}: a project's page and its forms (each area
    L{None} without it).

    @ivar _served: the index of a name as served now (its uploads and
        changes, which the page calls), or L{None}.
    """

    _gate: ConsoleGate
    _served: Callable[[str], ServedIndex | None]
    _promote: Promote | None = None
    _audit_admin: AuditAdmin | None = None
    _usage: UsageAdmin | None = None
    _advisories: AdvisoryAdmin | None = None

    app = Klein()
    answer_errors(app)

    @app.route("/console/project", methods=["GET", "HEAD"])
    def find_project(self, request: IRequest) -> bytes:
        """The home's form (C{?name=&index=}): 303 to the project's page."""
        name = shown_field(request, "name")
        if len(name) > 200 or not is_valid_name(name):
            raise BadRequest("name: not a project name")
        return see_other(request, f"project/{normalize(name)}/{index_query(request)}",
                         "To the project's page\n")

    @app.route("/console/project/<string:project>/", methods=["GET", "HEAD"])
    async def project(self, request: IRequest, project: str) -> bytes:
        """A project's files and status, with the actions its person may take."""
        return await self._project_page(request, self._gate.session(request), project, 200)

    @app.route("/console/project/<string:project>/files/<string:filename>/<string:verb>",
               methods=["POST"])
    async def change_file(self, request: IRequest, project: str, filename: str,
                          verb: str) -> bytes:
        """
        Yank, unyank, delete or restore one file: the API's own routes
        (C{POST /api/files/<f>/yank} ...), then the project's page again.
        """
        session = self._gate.form_session(
            request, ChangeKind(verb) if verb in FILE_VERBS else None, filename)
        if verb not in FILE_VERBS:
            raise NotFound("no such page")
        name, publish = await self._project_of(request, project)
        if project_of_filename(filename) != name:
            # (a file of another project: what the page is about decides)
            raise NotFound(f"no such file of {name}: {filename}")
        route = {"yank": publish.yank_file, "unyank": publish.unyank_file,
                 "delete": publish.delete_file, "restore": publish.restore_file}[verb]
        return await self._then_project(request, session, name,
                                        lambda: route(request, filename))

    @app.route("/console/project/<string:project>/status", methods=["POST"])
    async def set_status(self, request: IRequest, project: str) -> bytes:
        """Set the project's status (admins): C{POST /api/projects/<p>/status}'s path."""
        session = self._gate.form_session(request, ChangeKind.STATUS, project)
        name, publish = await self._project_of(request, project)
        return await self._then_project(request, session, name,
                                        lambda: publish.set_status(request, name))

    @app.route("/console/project/<string:project>/promote", methods=["POST"])
    async def promote(self, request: IRequest, project: str) -> bytes:
        """
        Promote a release of the project to another index (C{POST
        /api/promote}'s path) from the form's C{version}, C{to} and
        C{allow_denied}; the page says what was promoted.
        """
        promote = self._promote
        session, name = await self._project_form(request, project, ChangeKind.PROMOTE, promote)
        assert promote is not None
        # (the page's index and project are what the promotion is from and
        # of: never fields of the form, which the page does not send)
        fields = promotion_form(request) | {"from": index_name(request), "project": name}
        try:
            identity = await self._gate.access.person(request)
            answer = await promote.promote_as(request, identity,
                                              lambda: promote_request(fields), fields)
        except HTTPError as e:
            return await self._project_page(request, session, name, e.code, error=e.detail)
        done = answer["promoted"]
        return await self._project_page(request, session, name, 200, notice=(
            f"Promoted {name} {answer['version']} to {answer['to']}: "
            + (f"{len(done)} file{'s' if len(done) != 1 else ''}" if done
               else "every file was there already") + "."))

    @app.route("/console/project/<string:project>/waive", methods=["POST"])
    def waive(self, request: IRequest, project: str) -> Awaitable[bytes]:
        """Waive an advisory for the project (admins): C{POST /api/advisories/waivers}'s path."""
        return self._waiver(request, project, ChangeKind.ADVISORY_WAIVE, remove=False)

    @app.route("/console/project/<string:project>/unwaive", methods=["POST"])
    def unwaive(self, request: IRequest, project: str) -> Awaitable[bytes]:
        """Remove a waiver of the project (admins): C{DELETE /api/advisories/waivers}'s path."""
        return self._waiver(request, project, ChangeKind.ADVISORY_UNWAIVE, remove=True)

    async def _waiver(self, request: IRequest, project: str, event: ChangeKind,
                      remove: bool) -> bytes:
        """
        Keep or remove a waiver of the page's project in the page's index,
        from the form's C{advisory} (or C{version}) and C{reason}.
        """
        area = self._advisories
        session, name = await self._project_form(request, project, event, area)
        assert area is not None
        def fields() -> dict[str, str]:
            # (read as the API reads them, within its audited change; the
            # page's index and project, never fields of the form)
            named = ("advisory", "version") if remove else ("advisory", "version", "reason")
            return {field: value for field in named if (value := form_field(request, field))
                    } | {"index": index_name(request), "project": name}
        change = area.unwaive_as if remove else area.waive_as
        return await self._then_project(request, session, name, lambda: change(request, fields))

    async def _project_form(self, request: IRequest, project: str, event: ChangeKind,
                            area: object) -> tuple[Session, str]:
        """
        C{(session, normalized project)} of a project page's form that
        calls the API's C{area} (audited as C{event} when its CSRF token is
        wrong), for a person who may change the project; else the refusal:
        404 without the area, 400 for a body that is not the page's form
        (a JSON body would name its own index and project).
        """
        session = self._gate.form_session(request, event, project)
        if area is None:
            raise NotFound("no such page")
        if not is_form(request):
            raise BadRequest("the console takes its own forms only")
        name, _ = await self._project_of(request, project)
        return session, name

    async def _then_project(self, request: IRequest, session: Session, project: str,
                            change: Callable[[], Awaitable[object]]) -> bytes:
        """Make C{change}, then 303 back to the project's page; its refusal on the page."""
        try:
            await change()
        except HTTPError as e:
            return await self._project_page(request, session, project, e.code, error=e.detail)
        return see_other(request, root_of(request) + f"console/project/{quote(project, safe='')}/"
                         + index_query(request), "Done\n")

    async def _project_of(self, request: IRequest, project: str) -> tuple[str, Publish]:
        """
        C{(normalized name, its index's uploads and changes)} of the
        project a request names, for a person who may change it; one
        refusal, 404, for a project or index (C{?index=}) that does not
        exist, is a view, or that the person may not see; 403 for one they
        may only read.
        """
        identity = await self._gate.access.person(request)
        reader = self._gate.access.reader(request)
        wanted = index_name(request)
        served = self._served(wanted)
        publish = served.publish if served is not None else None
        name = normalize(project) if is_valid_name(project) else None
        if publish is None or name is None or (wanted != DEFAULT and not reader.enters(wanted)) \
                or not reader.reads(name, wanted) or publish.index.project(name) is None:
            raise NotFound("no such project")
        if not reader.writes(name, wanted):
            raise Forbidden(f"{identity.name} may not change {name}")
        return name, publish

    async def _project_page(self, request: IRequest, session: Session, project: str,
                            code: int, error: str | None = None,
                            notice: str | None = None) -> bytes:
        name, publish = await self._project_of(request, project)
        identity = await self._gate.access.person(request)
        reader = self._gate.access.reader(request)
        index = publish.index
        targets = (self._promote.targets(reader, index_name(request))
                   if self._promote is not None else [])
        chart = self._chart(request, reader, name)
        trail = await self._trail(request, reader, name)
        advisories = self._advisories_of(request, reader, name)
        found = index.project(name)
        assert found is not None
        by_version: dict[str, list[FileRecord]] = {}
        for record in found.files.values():
            by_version.setdefault(record.version, []).append(record)
        releases = [(version, sorted(by_version[version], key=lambda r: r.filename))
                    for version in sorted(by_version, key=version_key, reverse=True)]
        binned = [record for record in index.binned() if record.project == name]
        view = console_project_page.ConsoleProjectView(
            name, found.display_name, index_name(request), releases, binned,
            index.status(name), publish.recycles, targets, chart, trail, advisories)
        return send_html(request, code, console_project_page.project_page(
            self._gate.chrome_of(identity), identity.name, session.csrf, view,
            admin=reader.is_admin, root=root_of(request), error=error,
            notice=notice))

    def _advisories_of(self, request: IRequest, reader: Reader,
                       name: str) -> ProjectAdvisories | None:
        """
        The advisories of the project's releases in its index, and the
        waivers kept (C{GET /api/advisories/project/<p>}'s); L{None} when
        they cannot be read now.
        """
        area = self._advisories
        if area is None:
            return None
        try:
            return area.of_project(reader, index_name(request), name)
        except HTTPError:
            return None

    async def _trail(self, request: IRequest, reader: Reader,
                     name: str) -> list[dict[str, Any]] | None:
        """
        The project's newest audit entries in its index (C{GET
        /api/audit}'s); L{None} when they cannot be read now.
        """
        admin = self._audit_admin
        if admin is None:
            return None
        index = index_name(request)
        query: dict[str, str | None] = {"project": name, "index": index, "limit": "20"}
        entries: list[dict[str, Any]] = []
        try:
            # (one read covers the log's newest days that have entries: older
            # pages until 20 entries, a few reads at most)
            for _ in range(TRAIL_READS):
                page = await admin.entries(reader, audit_query(query), name, index)
                entries = page["entries"] + entries
                if len(entries) >= 20 or not page["before"]:
                    break
                query["before"] = page["before"]
            return entries[-20:]
        except HTTPError:
            return None

    def _chart(self, request: IRequest, reader: Reader, name: str) -> str | None:
        """The project's downloads chart (C{GET /api/usage?project=}'s); L{None} without counts."""
        usage = self._usage
        if usage is None:
            return None
        try:
            data = usage.of_project(reader, index_name(request), name, 30)
        except HTTPError:
            return None
        releases = data["releases"]
        newest = sorted(releases, key=version_key, reverse=True)
        return console_project_page.downloads_chart(releases, data["first_day"], newest)

