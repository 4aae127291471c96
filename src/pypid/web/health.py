"""
C{/health}: whether the server is ready and its storage up, for load
balancers and supervisors. It needs no credentials, so it says nothing of
the index: its counts and serial told anyone what private projects were
uploaded (an upload moved them); they are in C{/metrics}, under its access
rules.

Ready means the index answers with every stored file
(L{pypid.daemon.readiness}): after a crash, a file uploaded a moment
before answered C{404} for 116-142 ms while this said C{ok}. And a storage
that answers may still be full: a full disk failed every upload while this
said C{ok}. Either is a C{503} now, with what is wrong in the JSON.

While the security advisories are still being read (the first seconds
after a start: issue 43), or could not be read, the JSON says so
(C{"advisories": "reading"} or C{"failed"}); when an index hides or
denies, that is a C{503} too (C{starting}, with C{Retry-After}, or
C{degraded}): such an index serves none of the releases the advisories
might cover until they are read, so a balancer had better send its
clients elsewhere. An index that only warns serves as ever: C{200}.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from pypid.core.advisories import READING
from pypid.storage.interface import IStorage
from pypid.web.routes import answer_errors, send_json

#: the seconds a probe is told to wait (C{Retry-After}) while the server starts
RETRY_STARTING = 1


def _always() -> bool:
    return True


@attrs.define(slots=False)
class Health:
    """
    @ivar _storage: the L{pypid.storage.interface.IStorage}.
    @ivar _ready: C{ready() -> bool}, whether the index answers with every
        stored file (L{pypid.daemon.readiness.Readiness.ready}).
    @ivar _advisories: C{unread() -> (state, fails closed) | None}: while
        the advisories are still to be read, their state and whether an
        index fails closed meanwhile
        (L{pypid.state.indexes.IndexRegistry.unread_advisories}).
    """

    _storage: IStorage
    _ready: Callable[[], bool] | None = None
    _advisories: Callable[[], tuple[str, bool] | None] | None = None

    app = Klein()
    answer_errors(app)

    @app.route("/health", methods=["GET", "HEAD"])
    async def health(self, request: IRequest) -> bytes:
        """Whether the server is ready and its storage answers with room to write."""
        storage = await self._storage.check()
        ready = (self._ready or _always)()
        unread = self._advisories() if self._advisories is not None else None
        closed = unread is not None and unread[1]
        if not ready or (closed and unread is not None and unread[0] == READING):
            status = "starting"
            request.setHeader(b"retry-after", b"%d" % RETRY_STARTING)
        else:
            status = "ok" if storage == "ok" and not closed else "degraded"
        if status != "ok":
            request.setResponseCode(503)
        answer = {"status": status, "storage": storage}
        if unread is not None:
            answer["advisories"] = unread[0]
        return send_json(request, answer)
