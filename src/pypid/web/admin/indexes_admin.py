"""
C{GET /api/indexes} (admins): the server's indexes as they run now, each
with its sources (its bases, resolved), and for a hosted one what it holds
(projects, files, bytes), its recycle bin and its downloads over 30 days;
then each upstream cache with what it keeps, how it served them and the
files it evicted since the start. What the console's "Indexes" page shows.

Why these numbers and no others: each is kept already, so the answer
costs a walk of the indexes, never of their files (a recycle bin's files
are few). A view's projects are its bases' through its filters: counting
them would compose every page, so a view shows its sources only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from pypid.core.formats.admin_answers import IndexesListing
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.security.advisories import AdvisoryPolicy
from pypid.web.identity.gates import Gates
from pypid.web.server.routes import answer_errors, send_json

if TYPE_CHECKING:
    from pypid.state.recycle_bin import RecycleBin
    from pypid.state.usage_log import UsageLog
    from pypid.upstream.source import UpstreamSource

#: What the route answers without credentials.
INDEXES_LOGIN = "authentication is required to read the indexes"

#: The days the downloads are summed over.
DOWNLOAD_DAYS = 30


class RunningIndexes(Protocol):
    """What the route reads of the server's indexes (L{pypid.state.indexes.IndexRegistry})."""

    @property
    def orders(self) -> Mapping[str, Sequence[str]]: ...

    @property
    def policies(self) -> Mapping[str, AdvisoryPolicy]: ...

    def sizes(self, name: str) -> tuple[int, int, int | None] | None:
        """C{(projects, files, bytes)} of a hosted index, or L{None}."""

    def usage(self, name: str) -> tuple[Index, UsageLog] | None:
        """A hosted index and its download counts, or L{None}."""

    def bin(self, name: str) -> RecycleBin | None:
        """A hosted index's recycle bin, or L{None}."""

    def upstream_sources(self) -> list[UpstreamSource]:
        """The upstream caches."""


@attrs.define(slots=False)
class IndexesAdmin:
    """C{GET /api/indexes}."""

    _access: Gates
    _indexes: RunningIndexes

    app = Klein()
    answer_errors(app)

    @app.route("/api/indexes", methods=["GET", "HEAD"])
    async def indexes(self, request: IRequest) -> bytes:
        """C{{"indexes": [...], "upstreams": [...]}}: see the module docstring."""
        await self._access.admin(request, INDEXES_LOGIN)
        return send_json(request, self.listing())

    def listing(self) -> IndexesListing:
        """The indexes and the upstream caches as they run now."""
        running = self._indexes
        return {"indexes": [self._index(name, order) for name, order in running.orders.items()],
                "upstreams": [source.report() for source in running.upstream_sources()]}

    def _index(self, name: str, order: Sequence[str]) -> dict[str, Any]:
        running = self._indexes
        sizes = running.sizes(name)
        policy = running.policies.get(name)
        found: dict[str, Any] = {
            "name": name, "kind": "view" if sizes is None else "hosted",
            "path": "/" if name == DEFAULT else f"/{name}/",
            "sources": [source for source in order if source != name],
            "advisories": policy.rules.mode if policy is not None else None}
        if sizes is None:
            return found
        projects, files, size = sizes
        found.update(projects=projects, files=files, bytes=size)
        bin = running.bin(name)
        if bin is not None and bin.enabled:
            binned = bin.index.binned()
            found["recycle_bin"] = {"files": len(binned),
                                    "bytes": sum(record.size for record in binned)}
        counted = running.usage(name)
        if counted is not None:
            usage = counted[1]
            found["downloads"] = {"days": DOWNLOAD_DAYS,
                                  "total": usage.book.total(DOWNLOAD_DAYS, usage.today)}
        return found
