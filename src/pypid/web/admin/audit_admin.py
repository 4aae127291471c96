"""
C{GET /api/audit} and C{GET /api/audit/verify}, for admins (L{AuditAdmin}):
the audit log that L{pypid.web.server.audit_trail.AuditTrail} writes, read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import attrs
from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.auth.reader import NO_FIELDS, Reader
from pypid.core.formats.admin_answers import AuditCheck, AuditPage
from pypid.core.records.audit_chain import AuditError
from pypid.core.records.audit_query import Query, make_query
from pypid.core.util.http_errors import BadRequest, Forbidden
from pypid.storage.base.interface import StorageError
from pypid.storage.base.journal import IJournal
from pypid.web.identity.gates import Gates, not_an_admin
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.server.respond import storage_unavailable
from pypid.web.server.routes import answer_errors, form_field, send_json

#: (the namespace these lines always had, in the audit trail's module: log filters keep matching)
log = Logger(namespace="pypid.web.admin.audit_trail")

#: What C{GET /api/audit} answers without credentials.
AUDIT_LOGIN = "authentication is required to read the audit log"

_T = TypeVar("_T")


@attrs.define(slots=False)
class AuditAdmin:
    """C{GET /api/audit} and C{GET /api/audit/verify}."""

    _access: Gates
    _trail: AuditTrail

    app = Klein()
    answer_errors(app)

    @app.route("/api/audit", methods=["GET", "HEAD"])
    async def audit(self, request: IRequest) -> bytes:
        """
        The audit entries, oldest first: C{since} (ISO 8601, UTC unless it
        says otherwise) gives those from then on, at most C{limit} (default
        1000, at most 10000), and C{next}, the C{since} of the following
        page; without C{since}, the newest C{limit} (before C{before}), and
        the C{before} of the older page. C{project}, C{user}, C{event},
        C{index} (C{default}: none named) and C{id} (a webhook event's)
        filter. One request reads at most
        L{pypid.core.records.audit_query.MAX_DAYS_READ} days, then answers
        what it found and the cursor of the rest.
        """
        await self._access.gate_upload(request, needed=AUDIT_LOGIN, index=None)
        project, index = form_field(request, "project"), form_field(request, "index")
        # (refused before the query is read)
        shown = _shown(self._access.reader(request), project, index)
        query = audit_query({name: form_field(request, name) or None
                             for name in ("since", "before", "project", "user", "event",
                                          "limit", "index", "id")})
        return send_json(request, await self._page(query, shown))

    async def entries(self, reader: Reader, query: Query, project: str,
                      index: str) -> AuditPage:
        """
        The page of entries C{query} asks for, for C{reader}: an admin
        reads any; one who may change a project, that project's, when the
        query names it and its index, and only the fields an owner reads;
        L{Forbidden} to anyone else, and a token.
        """
        return await self._page(query, _shown(reader, project, index))

    async def _page(self, query: Query, shown: frozenset[str] | None) -> AuditPage:
        """The page of entries C{query} asks for, each with the fields C{shown} (all: L{None})."""
        page = await self._read(lambda audit_log: audit_log.read(query))
        return {"entries": [e.public() if shown is None
                            else {k: v for k, v in e.public().items() if k in shown}
                            for e in page.entries],
                "next": page.next, "before": page.before}

    @app.route("/api/audit/verify", methods=["GET", "HEAD"])
    async def verify(self, request: IRequest) -> bytes:
        """
        Check every chain of the log (as C{pypid-admin audit verify} does):
        C{files}, C{entries}, C{intact}, the C{broken} links and the
        C{notes}. It reads the whole log: an admin's question, not a probe's.
        """
        await self._access.admin(request, AUDIT_LOGIN)
        return send_json(request, await self.check())

    async def check(self) -> AuditCheck:
        """What checking every chain of the log finds now (see L{verify})."""
        check = await self._read(lambda audit_log: audit_log.verify())
        return {"files": check.files, "entries": check.entries, "intact": check.intact,
                "broken": [str(b) for b in check.broken], "notes": [str(n) for n in check.notes]}

    async def _read(self, read: Callable[[IJournal], Awaitable[_T]]) -> _T:
        """C{read(log)}, once what was recorded a moment ago is in it; 503 if it fails."""
        audit_log = self._trail.log
        await audit_log.flush()
        try:
            return await read(audit_log)
        except (StorageError, OSError) as e:
            log.error("Cannot read the audit log: {error}", error=str(e))
            raise storage_unavailable(e)


def audit_query(fields: Mapping[str, str | None]) -> Query:
    """The query of the audit log C{fields} ask for (L{make_query}'s); 400 saying why not."""
    try:
        return make_query(**fields)
    except AuditError as e:
        raise BadRequest(str(e))


def _shown(reader: Reader, project: str, index: str) -> frozenset[str] | None:
    """The fields of the entries C{reader} reads (L{None}: all); L{Forbidden} for none."""
    shown = reader.audit_fields(project, index)
    if shown == NO_FIELDS:
        raise Forbidden(not_an_admin(reader))
    return shown
