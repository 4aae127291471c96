"""
The retention rules over HTTP, admins only: what C{pypid-admin retention
plan} and C{apply} call.

C{GET /api/retention} (C{index}: one hosted index; default: every one):
per index, the releases the rules remove now, why, and the bytes it
frees; a dry run. C{POST /api/retention/apply}, a JSON body C{{"index":
"default", "files": [...]}} (or a urlencoded form, the console's):
removes, into the index's recycle bin, the files listed that a plan made
now still lists (without C{files}, the plan made now, whole), one
C{retention} audit entry per file.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from pypid.core.formats.admin_answers import RetentionApplied, RetentionPlans
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import BadRequest, NotFound, Unavailable
from pypid.state.cleanup import CountsNotRead, IndexCleanup
from pypid.storage.base.interface import StorageError
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail, facts_of
from pypid.web.server.respond import storage_unavailable
from pypid.web.server.routes import answer_errors, form_field, is_form, json_object, send_json

#: What the routes answer without credentials.
RETENTION_LOGIN = "authentication is required to apply the retention rules"

#: The most bytes of an apply's body (some 100,000 filenames).
MAX_BODY = 16 << 20

#: Seconds to wait while the download counts are being read.
COUNTS_RETRY_AFTER = b"5"


class CleanedIndexes(Protocol):
    """What the routes read of the server's indexes (L{pypid.state.indexes.IndexRegistry})."""

    def cleanups(self) -> dict[str, IndexCleanup]:
        """The hosted indexes' retention rules by name."""


def _counts_not_read(name: str) -> Unavailable:
    return Unavailable(f"{name}: the download counts are still being read, and keep_downloaded "
                       "needs them; try again in a few seconds",
                       [(b"retry-after", COUNTS_RETRY_AFTER)])


@attrs.define(slots=False)
class RetentionAdmin:
    """C{GET /api/retention} and C{POST /api/retention/apply}."""

    _access: Gates
    _indexes: CleanedIndexes
    _audit: AuditTrail

    app = Klein()
    answer_errors(app)

    def _chosen(self, name: str | None) -> dict[str, IndexCleanup]:
        cleanups = self._indexes.cleanups()
        if name is None:
            return cleanups
        if name not in cleanups:
            raise NotFound(f"index: no hosted index {name!r}")
        return {name: cleanups[name]}

    @app.route("/api/retention", methods=["GET", "HEAD"])
    async def plans(self, request: IRequest) -> bytes:
        """Each index's plan (see the module docstring)."""
        await self._access.admin(request, RETENTION_LOGIN)
        return send_json(request, self.plans_of(form_field(request, "index") or None))

    def plans_of(self, name: str | None) -> RetentionPlans:
        """The plan of the hosted index C{name} (L{None}: of each), made now."""
        plans: list[dict[str, Any]] = []
        for index, cleanup in self._chosen(name).items():
            try:
                plan = cleanup.plan()
            except CountsNotRead:
                raise _counts_not_read(index)
            plans.append(dict(plan.to_json(), rules=cleanup.rules.to_json(),
                              recycle_bin=cleanup.bin.keep_for))
        return {"indexes": plans}

    @app.route("/api/retention/apply", methods=["POST"])
    async def apply(self, request: IRequest) -> bytes:
        """Apply one index's rules to the files given (see the module docstring)."""
        return send_json(request, await self.apply_as(request, lambda: apply_body(request)))

    def apply_as(self, request: IRequest, asked: Callable[[], tuple[str, list[str] | None]],
                 ) -> Awaitable[RetentionApplied]:
        """
        Apply the rules of the index C{asked()} names to the files it
        lists (L{None}: the whole plan made now), for the admin of
        C{request}; each refusal audited, that of C{asked()} too.
        """
        async def work() -> RetentionApplied:
            identity = await self._access.admin(request, RETENTION_LOGIN)
            name, files = asked()
            cleanup = self._chosen(name)[name]

            def removed(record: Any, reason: str) -> None:
                self._audit.record(request, identity, ChangeKind.RETENTION, detail=reason,
                                   index=None if name == "default" else name,
                                   **facts_of(record))
            try:
                applied = await cleanup.apply(files, removed)
            except CountsNotRead:
                raise _counts_not_read(name)
            except StorageError as e:
                raise storage_unavailable(e)
            return {"index": name, "bytes": applied.size,
                    "removed": [{"filename": r.filename, "size": r.size, "reason": why}
                                for r, why in applied.removed],
                    "skipped": [{"filename": f, "reason": why} for f, why in applied.skipped]}
        return self._audit.recorded(request, ChangeKind.RETENTION, work())


def apply_body(request: IRequest) -> tuple[str, list[str] | None]:
    """
    C{(index, files)} of an apply's JSON body, or of a urlencoded form
    (each file a field); 400 naming the field that is wrong.
    """
    if is_form(request):
        # (a form always lists its files, the plan as shown: none is a
        # mistake, never "the whole plan made now")
        try:
            name = form_field(request, "index")
            listed = [value.decode("utf-8") for value in request.args.get(b"files", [])]
        except UnicodeDecodeError:
            raise BadRequest("files: not valid UTF-8")
        if not name:
            raise BadRequest("index: the name of a hosted index")
        if not listed:
            raise BadRequest("files: a form lists the files to remove")
        return name, listed
    data = json_object(request, MAX_BODY)
    name = data.get("index", "default")
    if not isinstance(name, str) or not name:
        raise BadRequest("index: the name of a hosted index")
    files = data.get("files")
    if files is not None and (not isinstance(files, list)
                              or not all(isinstance(f, str) for f in files)):
        raise BadRequest("files: a list of filenames")
    return name, files
