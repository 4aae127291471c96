"""
The upstream cache's own routes: pre-caching what a requirements file (or a
C{pylock.toml}) pins, and refreshing a project's page now, open to users who
may upload; releasing a remembered quarantine, checking the upstreams, and
listing the files every cache withholds as its upstream took them down, to
admins.

The upstream's modules are imported only once a cache is found configured
(they are loaded already then): without C{[upstream]}, the requirements
parser, C{tomllib} and C{packaging.requirements} would cost every start
24 ms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import attrs
from klein import Klein
from twisted.web.server import Request

from pypid.core.dists.names import is_valid_name, normalize
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import BadRequest, Conflict, NotFound, Unavailable
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.server.routes import answer_errors, form_field, send_json
from pypid.web.serving.upstream_files import upstream_failed

#: The audit event of a remembered upstream quarantine released.
RELEASE = ChangeKind.UPSTREAM_RELEASE
#: What a release answers without credentials.
RELEASE_LOGIN = "authentication is required to release an upstream quarantine"
#: What the list of takedowns answers without credentials.
TAKEDOWNS_LOGIN = "authentication is required to read the upstream takedowns"
#: What a check of the upstreams answers without credentials.
CHECK_LOGIN = "authentication is required to check the upstreams"

if TYPE_CHECKING:
    # (types only: the upstream's modules load with a configured upstream)
    from pypid.upstream.proxy import UpstreamProxy
    from pypid.upstream.source import UpstreamSource


@attrs.define(slots=False)
class CacheAdmin:
    """
    @ivar _audit: where refreshes and pre-caching are recorded.
    """

    _access: Gates
    _upstream: UpstreamProxy | None = None
    _audit: AuditTrail = attrs.field(kw_only=True)
    #: every upstream cache of the server (the named ones too), now
    _sources: Callable[[], Sequence[UpstreamSource]] = attrs.field(
        kw_only=True, default=lambda: [])

    app = Klein()
    answer_errors(app)

    @app.route("/api/upstream/takedowns", methods=["GET", "HEAD"])
    async def takedowns(self, request: Request) -> bytes:
        """
        Each upstream cache's kept files its upstream no longer lists, the
        oldest seen first (admins); what C{pypid-upstream takedowns} prints.
        """
        await self._access.admin(request, TAKEDOWNS_LOGIN)
        return send_json(request, {"upstreams": [
            {"name": source.name, "keep_removed": source.settings.keep_removed,
             "files": [t.to_json() for t in source.withheld()]}
            for source in self._sources()]})

    @app.route("/api/upstream/check", methods=["POST"])
    async def check(self, request: Request) -> bytes:
        """
        Each upstream cache asked for the page of C{?project=} (C{pip} when
        not given) and its smallest file, through its own client, nothing
        kept (admins); what C{pypid-upstream check} prints.
        """
        await self._access.admin(request, CHECK_LOGIN)
        sources = self._sources()
        if not sources:
            raise NotFound("no upstream cache is configured ([upstream] mode = cache)")
        from pypid.upstream.check import DEFAULT_PROJECT, check
        from pypid.upstream.source import DEFAULT_UPSTREAM
        project = form_field(request, "project") or DEFAULT_PROJECT
        if not is_valid_name(project):
            raise BadRequest(f"project: {project!r} is not a project name")
        found = [await check(source.client, source.name,
                             "upstream" if source.name == DEFAULT_UPSTREAM
                             else f"upstream:{source.name}",
                             normalize(project), source.settings.max_file_size)
                 for source in sources]
        return send_json(request, {"upstreams": [c.to_json() for c in found]})

    @app.route("/requirements.txt", methods=["POST"])
    def precache(self, request: Request) -> Awaitable[bytes]:
        """
        Pre-cache what a requirements file (or, with C{Content-Type:
        application/toml}, a C{pylock.toml}) pins; answers a JSON report.
        """
        return self._audit.recorded(request, ChangeKind.PRECACHE, self._precache(request))

    async def _precache(self, request: Request) -> bytes:
        identity = await self._access.uploader(request)
        proxy = self._cache_mode()
        from pypid.upstream import requirements
        ctype = request.requestHeaders.getRawHeaders(b"content-type", [b""])[0].lower()
        body = request.content
        assert body is not None  # (read whole before the route runs)
        try:
            text = body.read().decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the requirements are not UTF-8 text")
        try:
            pins = (requirements.parse_pylock if b"toml" in ctype
                    else requirements.parse_requirements)(text)
        except requirements.RequirementsError as e:
            raise BadRequest(f"requirements: {e}")
        reader = self._access.reader(request)
        allowed = [pin for pin in pins if reader.reads(pin.project)]
        report = [{"project": pin.project, "status": "refused",
                   "reason": "not an upstream project here"}
                  for pin in pins if pin not in allowed]
        report += await proxy.precache(allowed)
        statuses = Counter(str(item.get("status")) for item in report)
        self._audit.record(request, identity, ChangeKind.PRECACHE, detail=", ".join(
            f"{count} {status}" for status, count in sorted(statuses.items())) or "nothing")
        return send_json(request, {"files": report})

    @app.route("/api/upstream/<string:name>/refresh", methods=["POST"])
    def refresh(self, request: Request, name: str) -> Awaitable[bytes]:
        """
        Fetch an upstream project's page again now: its files and its status
        (PEP 792) are what pypid serves from this moment, so a quarantine
        upstream withholds the kept files at once (and a lifted one brings
        them back).
        """
        return self._audit.recorded(request, ChangeKind.REFRESH, self._refresh(request, name),
                                    project=name)

    async def _refresh(self, request: Request, name: str) -> bytes:
        identity = await self._access.uploader(request)
        proxy = self._cache_mode()
        from pypid.upstream.cache import Offline
        from pypid.upstream.fetch import UpstreamError
        if not (is_valid_name(name) and self._access.reader(request).reads(name)
                and proxy.decide(name).allowed):
            raise NotFound("not an upstream project here")
        try:
            entry = await proxy.refresh(normalize(name))
        except UpstreamError as e:
            raise upstream_failed(e)
        except Offline:
            raise Unavailable("the server is offline: nothing is fetched")
        if entry.page is None:
            raise NotFound("the upstream has no such project")
        status = entry.page.status
        self._audit.record(request, identity, ChangeKind.REFRESH, project=entry.page.project,
                           detail=f"{len(entry.page.files)} files"
                           + (f", {status.status}" if status is not None else ""))
        answer = {"project": entry.page.project, "files": len(entry.page.files),
                  "fetched_at": entry.fetched_at,
                  "status": "active" if status is None else status.status,
                  "reason": None if status is None else status.reason}
        remembered = proxy.quarantine(entry.page.project)
        if remembered is not None and remembered.removed:
            # (the upstream removed it since: the quarantine is pypid's memory)
            answer["removed"] = True
        return send_json(request, answer)

    @app.route("/api/upstream/<string:name>/release", methods=["POST"])
    def release(self, request: Request, name: str) -> Awaitable[bytes]:
        """
        Release the quarantine pypid remembers of a project the upstream
        removed after quarantining it (L{pypid.upstream.quarantines}), for
        admins. Its kept files are served again only if the page the next
        request fetches lists them.
        """
        return self._audit.recorded(request, RELEASE, self._release(request, name),
                                    project=name)

    async def _release(self, request: Request, name: str) -> bytes:
        identity = await self._access.admin(request, RELEASE_LOGIN)
        proxy = self._cache_mode()
        from pypid.upstream.quarantines import StillQuarantined
        if not is_valid_name(name) or not proxy.decide(name).allowed:
            raise NotFound("not an upstream project here")
        project = normalize(name)
        try:
            released = proxy.release(project)
        except StillQuarantined:
            raise Conflict(f"the upstream quarantines {project} on its latest page: only the "
                           "upstream lifts that (POST /api/upstream/<project>/refresh to ask "
                           "it again)")
        if released is None:
            raise NotFound(f"no quarantine of {project} is remembered")
        status = released.page.status
        assert status is not None  # (a quarantine)
        self._audit.record(request, identity, RELEASE, project=project,
                           detail=f"{status.status}: {status.reason}" if status.reason
                           else status.status)
        return send_json(request, {"project": project, "released": status.status,
                                   "reason": status.reason})

    def _cache_mode(self) -> UpstreamProxy:
        if self._upstream is None or self._upstream.mode != "cache":
            raise NotFound("no upstream cache is configured ([upstream] mode = cache)")
        return self._upstream
