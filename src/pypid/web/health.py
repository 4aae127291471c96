"""
C{/health}: whether the server and its storage are up, for load balancers
and supervisors. It needs no credentials, so it says nothing of the index:
its counts and serial told anyone what private projects were uploaded (an
upload moved them); they are in C{/metrics}, under its access rules.
"""

from __future__ import annotations

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from pypid.storage.interface import IStorage
from pypid.web.routes import answer_errors, send_json


@attrs.define(slots=False)
class Health:
    """
    @ivar _storage: the L{pypid.storage.interface.IStorage}.
    """

    _storage: IStorage

    app = Klein()
    answer_errors(app)

    @app.route("/health", methods=["GET", "HEAD"])
    async def health(self, request: IRequest) -> bytes:
        """Whether the server and its storage are up."""
        storage_ok = await self._storage.check()
        if not storage_ok:
            request.setResponseCode(503)
        return send_json(request, {
            "status": "ok" if storage_ok else "degraded",
            "storage": "ok" if storage_ok else "down",
        })
