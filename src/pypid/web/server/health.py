"""
C{/health}: whether the server is ready and its storage up, for load balancers and
supervisors. It needs no credentials, so it says nothing of the index (its counts and serial
would tell anyone when a private project was uploaded): they are in C{/metrics}.

Ready means the index answers with every stored file (L{pypid.daemon.readiness}: after a
crash, a file uploaded a moment before answers C{404} for some 120 ms); a storage that answers
may still be full (every upload fails): either is a C{503}, with what is wrong in the JSON.

While the advisories are being read (the first seconds after a start), or could not be read,
the JSON says so (C{"advisories": "reading"} or C{"failed"}); when an index hides or denies,
that is a C{503} too (C{starting}, with C{Retry-After}, or C{degraded}): such an index serves
none of the releases the advisories might cover until they are read, so a balancer had better
send its clients elsewhere. An index that only warns serves as ever: C{200}.

Probes that come while the storage is asked share its answer, each waiting at most
L{CHECK_WAIT}, so that a slow store makes it C{"down"} at once: a balancer whose checks of every
server timed out together would send no client anywhere, though each still serves its pages
from memory. No answer is kept for later probes: the next one sees a store come or go.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from pypid.core.security.advisories import READING
from pypid.storage.base.interface import IStorage, StorageState
from pypid.web.server.routes import answer_errors, send_json

#: the seconds a probe is told to wait (C{Retry-After}) while the server starts
RETRY_STARTING = 1
#: the longest a probe waits for the storage's answer before it says "down" (s)
CHECK_WAIT = 2.0


@attrs.define
class StorageProbe:
    """The storage's state for C{/health}: one check at a time, shared by the probes meanwhile."""

    _storage: IStorage
    _clock: IReactorTime
    _running: bool = attrs.field(default=False, init=False)
    _waiting: list[tuple[Deferred[StorageState], IDelayedCall]] = attrs.field(
        factory=list, init=False)

    def state(self) -> Deferred[StorageState]:
        """The storage's state, as its check answers within the wait; else down."""
        d: Deferred[StorageState] = Deferred()
        timer = self._clock.callLater(CHECK_WAIT, self._too_slow, d)
        self._waiting.append((d, timer))
        if not self._running:
            self._running = True
            self._storage.check().addBoth(self._answered)
        return d

    def _too_slow(self, d: Deferred[StorageState]) -> None:
        self._waiting = [(w, t) for w, t in self._waiting if w is not d]
        d.callback("down")

    def _answered(self, result: StorageState | Failure) -> None:
        self._running = False
        state: StorageState = "down" if isinstance(result, Failure) else result
        waiting, self._waiting = self._waiting, []
        for d, timer in waiting:
            timer.cancel()
            d.callback(state)


@attrs.define(slots=False)
class Health:
    """
    @ivar _advisories: C{unread() -> (state, fails closed) | None}: while the advisories are
        still to be read, their state and whether an index fails closed meanwhile.
    @ivar _workers: in a worker of a machine, C{workers() -> (this worker's number, how many
        run, of how many)}; a worker starting again leaves the machine answering, so it is
        said, not counted against the status.
    """

    _storage: IStorage
    _ready: Callable[[], bool] | None = None
    _advisories: Callable[[], tuple[str, bool] | None] | None = None
    _clock: IReactorTime = attrs.field(kw_only=True, alias="clock")
    _workers: Callable[[], tuple[int, int, int]] | None = attrs.field(
        default=None, kw_only=True, alias="workers")
    _probe: StorageProbe = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._probe = StorageProbe(self._storage, self._clock)

    app = Klein()
    answer_errors(app)

    @app.route("/health", methods=["GET", "HEAD"])
    async def health(self, request: IRequest) -> bytes:
        """Whether the server is ready and its storage answers with room to write."""
        storage = await self._probe.state()
        ready = self._ready() if self._ready is not None else True
        unread = self._advisories() if self._advisories is not None else None
        closed = unread is not None and unread[1]
        if not ready or (closed and unread is not None and unread[0] == READING):
            status = "starting"
            request.setHeader(b"retry-after", b"%d" % RETRY_STARTING)
        else:
            status = "ok" if storage == "ok" and not closed else "degraded"
        if status != "ok":
            request.setResponseCode(503)
        answer: dict[str, object] = {"status": status, "storage": storage}
        if unread is not None:
            answer["advisories"] = unread[0]
        if self._workers is not None:
            number, up, count = self._workers()
            answer["workers"] = {"up": up, "of": count, "answered_by": number}
        return send_json(request, answer)
