"""
C{/health}: whether the server and its storage are up, for load balancers
and supervisors (no secrets).
"""

import attrs
from klein import Klein

from pypid.web.routes import answer_errors, send_json


@attrs.define(slots=False)
class Health:
    """
    @ivar _index: the L{pypid.core.index.Index}.
    @ivar _storage: the L{pypid.storage.interface.IStorage}.
    """

    _index: object
    _storage: object

    app = Klein()
    answer_errors(app)

    @app.route("/health", methods=["GET", "HEAD"])
    async def health(self, request):
        """Whether the server is up, and what it serves."""
        storage_ok = await self._storage.check()
        if not storage_ok:
            request.setResponseCode(503)
        return send_json(request, {
            "status": "ok" if storage_ok else "degraded",
            "storage": "ok" if storage_ok else "down",
            "projects": len(self._index.projects()),
            "files": len(self._index),
            "serial": self._index.serial,
        })
