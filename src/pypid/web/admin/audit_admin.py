"""
C{GET /api/audit} and C{GET /api/audit/verify}, for admins (L{AuditAdmin}):
the audit log that L{pypid.web.server.audit_trail.AuditTrail} writes, read.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.auth.verifier import Identity
from pypid.core.dists.names import is_valid_name, normalize
from pypid.core.formats.admin_answers import AuditCheck, AuditPage
from pypid.core.records.audit_chain import AuditError
from pypid.core.records.audit_query import Query, make_query
from pypid.core.util.http_errors import BadRequest, Forbidden
from pypid.storage.interface import StorageError
from pypid.web.identity.gates import Gates, not_an_admin
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.server.respond import storage_unavailable
from pypid.web.server.routes import answer_errors, form_field, send_json

#: (the namespace these lines always had, in the audit trail's module: log filters keep matching)
log = Logger(namespace="pypid.web.admin.audit_trail")

#: The fields of an entry a project's owner reads (not an admin): never
#: the addresses and tokens of others, nor the index a promotion came
#: from (one that may be hidden from them).
OWNER_FIELDS = frozenset({"time", "event", "outcome", "user", "index", "project", "version", "id",
                          "filename", "sha256", "detail", "count"})

#: What C{GET /api/audit} answers without credentials.
AUDIT_LOGIN = "authentication is required to read the audit log"


@attrs.define(slots=False)
class AuditAdmin:
    """
    C{GET /api/audit} (admins only).

    @ivar _access: the L{pypid.web.identity.gates.Gates}.
    @ivar _trail: the L{AuditTrail}.
    """

    _access: Gates
    _trail: AuditTrail

    app = Klein()
    answer_errors(app)

    @app.route("/api/audit", methods=["GET", "HEAD"])
    async def audit(self, request: IRequest) -> bytes:
        """
        The audit entries, oldest first, as JSON: C{since} (a date or time,
        ISO 8601, UTC unless it says otherwise) gives the entries from then
        on, at most C{limit} (default 1000, at most 10000), and C{next}, the
        C{since} of the following page; without C{since}, the newest
        C{limit} (before C{before}, if given), and C{before}, the C{before}
        of the page of older ones. C{project}, C{user}, C{event} and
        C{index} keep only the entries that name them (C{index=default}:
        those that name no index); C{id}, those of a webhook event. One request reads at most
        L{pypid.core.records.audit_query.MAX_DAYS_READ} days: past them, it answers what
        it found, and the cursor of the rest.
        """
        identity = await self._access.gate_upload(request, needed=AUDIT_LOGIN, index=None)
        project, index = form_field(request, "project"), form_field(request, "index")
        # (refused before the query is read)
        shown = None if self._may_read_all(identity, project, index) else OWNER_FIELDS
        query = audit_query({name: form_field(request, name) or None
                             for name in ("since", "before", "project", "user", "event",
                                          "limit", "index", "id")})
        return send_json(request, await self._page(query, shown))

    async def entries(self, identity: Identity, query: Query, project: str,
                      index: str) -> AuditPage:
        """
        The page of entries C{query} asks for, for C{identity}: an admin
        reads any; one who may change a project, that project's, when the
        query names the project and its index (C{index=default} for the
        default one), and only the fields an owner reads.

        @raise Forbidden: anyone else, and a token.
        """
        shown = None if self._may_read_all(identity, project, index) else OWNER_FIELDS
        return await self._page(query, shown)

    async def _page(self, query: Query, shown: frozenset[str] | None) -> AuditPage:
        """The page of entries C{query} asks for, each with the fields C{shown} (all: L{None})."""
        audit_log = self._trail.log
        # What was recorded a moment ago is shown too.
        await audit_log.flush()
        try:
            page = await audit_log.read(query)
        except (StorageError, OSError) as e:
            log.error("Cannot read the audit log: {error}", error=str(e))
            raise storage_unavailable(e)
        return {"entries": [e.public() if shown is None
                            else {k: v for k, v in e.public().items() if k in shown}
                            for e in page.entries],
                "next": page.next, "before": page.before}

    def _may_read_all(self, identity: Identity, project: str, index: str) -> bool:
        """
        True for an admin, False for whoever may change the C{project} of
        C{index} named (they read an owner's fields).

        @raise Forbidden: anyone else, and a token.
        """
        reader = self._access.reader_of(identity)
        if reader.is_admin:
            return True
        # (an index that does not exist, or hidden from them, is refused
        # alike: the answer never tells a hidden index apart)
        if identity.token is None and project and is_valid_name(project) \
                and reader.owns(normalize(project), index):
            return False
        if identity.token is not None:
            raise Forbidden("a token never acts as an admin: log in with a password")
        raise Forbidden(not_an_admin(identity.name))

    @app.route("/api/audit/verify", methods=["GET", "HEAD"])
    async def verify(self, request: IRequest) -> bytes:
        """
        Check every chain of the log (what C{pypid-admin audit verify}
        does with the configuration): C{files}, C{entries}, C{intact}, the
        C{broken} links and the C{notes} (where a chain's kept part begins),
        as text. It reads the whole log: an admin's question, not a probe's.
        """
        await self._access.admin(request, AUDIT_LOGIN)
        return send_json(request, await self.check())

    async def check(self) -> AuditCheck:
        """What checking every chain of the log finds now (see L{verify})."""
        audit_log = self._trail.log
        await audit_log.flush()
        try:
            check = await audit_log.verify()
        except (StorageError, OSError) as e:
            log.error("Cannot read the audit log: {error}", error=str(e))
            raise storage_unavailable(e)
        return {"files": check.files, "entries": check.entries, "intact": check.intact,
                "broken": [str(b) for b in check.broken], "notes": [str(n) for n in check.notes]}


def audit_query(fields: Mapping[str, str | None]) -> Query:
    """The query of the audit log C{fields} ask for (L{make_query}'s); 400 saying why not."""
    try:
        return make_query(**fields)
    except AuditError as e:
        raise BadRequest(str(e))
