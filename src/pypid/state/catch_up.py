"""
A worker's catching up with the changes the machine's other workers announced
(L{CatchUp}), asked before each answer (one read of shared memory): when the
ring moved, every index's look at its shared folder runs, and the answer waits.

Requests that find the worker behind wait for the same catching up; one that
finds it behind again when that ends starts the next. A request waits unread
(L{CatchUp.holds}): its first bytes are given back to it once caught up, as if
they arrived then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IPushProducer, ITransport

from pypid.jobs.coalesced import Coalesced
from pypid.machine.topics import Hub


class Looks(Protocol):
    """A look at a shared storage that never fails (L{pypid.state.sync.SyncService})."""

    def sync(self) -> Deferred[None]:
        """Take in what the others changed."""


class Connection(Protocol):
    """What a held request's connection is (L{pypid.web.server.channel.PypidChannel})."""

    transport: ITransport | None
    #: whether it ended
    lost: bool

    def dataReceived(self, data: bytes) -> None:
        """Take bytes from the client."""


class CatchUp:
    """Takes in the announced changes before a worker answers (up to C{seen}, by every look)."""

    def __init__(self, hub: Hub, looks: Sequence[Looks]) -> None:
        """@param looks: every shared folder's look (one an index)."""
        self._hub = hub
        self._looks = list(looks)
        self.seen = hub.latest()
        self._catching_up = Coalesced(self._look)
        self._held: dict[Connection, list[bytes]] = {}

    def behind(self) -> bool:
        """Whether another worker announced a change not yet taken in here (the hot path)."""
        return self._hub.others_since(self.seen)

    def holds(self, connection: Connection, data: bytes) -> bool:
        """
        Whether C{data}, the first bytes of a request on C{connection} (between
        requests: the transport is the connection's to pause), waits, unread,
        until the worker caught up, to be given back to it then.
        """
        held = self._held.get(connection)
        if held is not None:
            held.append(data)
            return True
        if not self.behind():
            return False
        self._held[connection] = [data]
        cast(IPushProducer, connection.transport).pauseProducing()
        self.caught_up().addCallback(lambda _: self._release(connection))
        return True

    def _release(self, connection: Connection) -> None:
        held = self._held.pop(connection)
        if not connection.lost:
            cast(IPushProducer, connection.transport).resumeProducing()
            connection.dataReceived(b"".join(held))

    def caught_up(self) -> Deferred[None]:
        """Fires once every change announced before the call is taken in."""
        return self._catching_up()

    def _look(self) -> Deferred[object]:
        latest = self._hub.latest()
        self._hub.take()

        def done(_: object) -> None:
            self.seen = max(self.seen, latest)
        return DeferredList([look.sync() for look in self._looks]).addCallback(done)
