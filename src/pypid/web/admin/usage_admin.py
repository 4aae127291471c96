"""
C{GET /api/usage} (admins): an index's files, the most (or least)
downloaded first, over the last C{days} days, with when each was last
downloaded; what C{pypid-admin usage} prints. With C{project}, one
project's downloads by release and by day instead (the console's chart),
for admins and those who may change the project.

Arguments: C{index} (default: C{default}), C{order} (C{most} or
C{least}: what a cleanup looks at), C{days} (1 to
L{pypid.core.records.usage.WINDOW_DAYS}, default 30), C{limit} (1 to
10,000, default 20). A file never downloaded (as far as the counts kept
go) has 0 and no last time.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from pypid.auth.reader import Reader
from pypid.core.dists.model import format_upload_time
from pypid.core.dists.names import is_valid_name, normalize
from pypid.core.dists.version_order import version_key
from pypid.core.formats.admin_answers import ProjectUsage
from pypid.core.indexes.index import Index
from pypid.core.records.usage import WINDOW_DAYS, date_of
from pypid.core.util.http_errors import BadRequest, NotFound
from pypid.state.usage_log import UsageLog
from pypid.web.identity.gates import Gates
from pypid.web.server.routes import answer_errors, form_field, send_json

#: What C{GET /api/usage} answers without credentials.
USAGE_LOGIN = "authentication is required to read the download counts"

#: The most rows one answer gives.
MAX_LIMIT = 10_000


class CountedIndexes(Protocol):
    """What the answer reads of the server's indexes (L{pypid.state.indexes.IndexRegistry})."""

    def usage(self, name: str) -> tuple[Index, UsageLog] | None:
        """The index C{name} and its download counts, or L{None} (no such hosted index)."""


def _number(request: IRequest, name: str, default: int, most: int) -> int:
    text = form_field(request, name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise BadRequest(f"{name}: a whole number from 1 to {most}")
    return value


@attrs.define(slots=False)
class UsageAdmin:
    """C{GET /api/usage}."""

    _access: Gates
    _indexes: CountedIndexes

    app = Klein()
    answer_errors(app)

    @app.route("/api/usage", methods=["GET", "HEAD"])
    async def ranked(self, request: IRequest) -> bytes:
        """An index's files ranked by their downloads (see the module docstring)."""
        project = form_field(request, "project")
        if project:
            return await self._project(request, project)
        await self._access.admin(request, USAGE_LOGIN)
        name = form_field(request, "index") or "default"
        order = (form_field(request, "order") or "most").strip().lower()
        if order not in ("most", "least"):
            raise BadRequest("order: most or least")
        days = _number(request, "days", 30, WINDOW_DAYS)
        limit = _number(request, "limit", 20, MAX_LIMIT)
        found = self._indexes.usage(name)
        if found is None:
            raise NotFound(f"index: no hosted index {name!r} counts downloads")
        index, usage = found
        records = {record.filename: record for project in index.projects()
                   for record in project.files.values()}
        rows = usage.book.ranked(records, days, usage.today, most=order == "most")[:limit]
        files: list[dict[str, Any]] = [
            {"filename": filename, "project": records[filename].project,
             "version": records[filename].version, "size": records[filename].size,
             "downloads": downloads,
             "last_downloaded": None if last is None else format_upload_time(last)}
            for filename, downloads, last in rows]
        return send_json(request, {"index": name, "order": order, "days": days,
                                   "files": files})

    async def _project(self, request: IRequest, project: str) -> bytes:
        """One project's downloads (L{of_project}), for the person asking."""
        await self._access.person(request, USAGE_LOGIN, "reads a project's downloads")
        return send_json(request, self.of_project(
            self._access.reader(request), form_field(request, "index") or "default", project,
            _number(request, "days", 30, WINDOW_DAYS)))

    def of_project(self, reader: Reader, name: str, project: str,
                   days: int) -> ProjectUsage:
        """
        One project's downloads a day by release, oldest first, for an
        admin or one who may change it (to others, as if it did not exist).
        """
        found = self._indexes.usage(name)
        normalized = normalize(project) if is_valid_name(project) else None
        hosted = found[0].project(normalized) if found is not None and normalized else None
        allowed = normalized is not None and (reader.is_admin or reader.owns(normalized, name))
        if not allowed or found is None or hosted is None or normalized is None:
            # (one refusal, whether the index or project exists or not)
            raise NotFound(f"no such project in {name}: {project}")
        _, usage = found
        today = usage.today
        by_version: dict[str, list[str]] = {}
        for record in hosted.files.values():
            by_version.setdefault(record.version, []).append(record.filename)
        return {"index": name, "project": normalized, "days": days,
                "first_day": date_of(today - days + 1),
                "releases": {version: usage.book.daily(filenames, days, today)
                             for version, filenames in sorted(
                                 by_version.items(), key=lambda item: version_key(item[0]))}}
