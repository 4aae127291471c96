"""
The open connections of a site (L{ConnectionCounter}), its L{PypidChannel}s: counted, swept,
and asked to reconnect when another worker of the machine came up.
"""

from __future__ import annotations

from typing import Protocol, cast

from twisted.internet.interfaces import IAddress
from twisted.logger import Logger

from pypid.auth.throttle import counted_client
from pypid.core.util.repeats import Repeats
from pypid.machine.topics import LONE, Hub, Topic

log = Logger()

#: Connections one client address may hold at once.
MAX_PER_ADDRESS = 128


class Counted(Protocol):
    """What the counter uses of a channel (L{pypid.web.server.channel.PypidChannel})."""

    counter: ConnectionCounter
    counted_host: str | None
    waiting_since: float | None
    leaving: bool
    requests: list[object]

    def check(self, now: float) -> None:
        """Close the connection if its headers are overdue or its answer stalled."""


class ConnectionCounter:
    """
    The open connections of a site: counted per client (an IPv4 address, an IPv6 /64),
    refused past a limit, and swept (L{sweep}) for overdue request headers and stalled
    answers. A client's refusals are logged once a minute: the first at once, the rest as a count.
    """

    def __init__(self, limit: int = MAX_PER_ADDRESS, hub: Hub = LONE) -> None:
        """
        @param hub: in a worker of a machine, its hub: when another worker is (back) up, every
            open connection is asked to reconnect (L{leave_all}).
        """
        self.limit = limit
        hub.on(Topic.WORKER_READY, lambda fields, worker: self._up(hub.worker, fields[0]))
        self._open: dict[str, int] = {}
        self._channels: set[Counted] = set()
        #: connections refused for their address's limit (for C{/metrics})
        self.refused = 0
        self._refusals = Repeats()

    @property
    def open(self) -> int:
        """How many connections are open now."""
        return len(self._channels)

    def sweep(self, now: float) -> None:
        """Close the connections whose headers are overdue or answer stalled; log refusals."""
        for channel in list(self._channels):
            channel.check(now)
        for repeated in self._refusals.due(now):
            log.warn("Refused {count} more connections from {host} over the per-address limit "
                     "of {limit} in the last {seconds:.0f} s", count=repeated.count,
                     host=repeated.key, limit=self.limit, seconds=repeated.seconds)

    def opened(self, channel: Counted, addr: IAddress | None, now: float) -> bool:
        """Count a new connection from C{addr} at C{now}; whether it may stay."""
        host = getattr(addr, "host", None)
        if host is not None:
            if ":" in host:  # (an IPv4 address is counted as Twisted spells it)
                host = cast(str, counted_client(host))
            count = self._open.get(host, 0)
            if count >= self.limit:
                self.refused += 1
                if self._refusals.add(host, now):
                    log.warn("Refusing a connection from {host}: it holds {count} already "
                             "(more refusals from it are logged once a minute)", host=host,
                             count=count)
                return False
            self._open[host] = count + 1
            channel.counted_host = host
        self._channels.add(channel)
        channel.counter = self
        return True

    def leave_all(self) -> int:
        """
        Have every open connection end after its next answer (another worker is back up, and
        the kept-alive connections stayed with the survivor of its restart); how many.
        """
        for channel in self._channels:
            channel.leaving = True
        return len(self._channels)

    def _up(self, own: int, ready: bytes) -> None:
        if ready != b"%d" % own:
            asked = self.leave_all()
            if asked:
                log.info("Worker {number} is up: {count} kept-alive connections asked to "
                         "reconnect", number=ready.decode("ascii", "replace"), count=asked)

    def in_flight(self, now: float, grace: float = 1.0) -> int:
        """
        How many connections have a request under way, or may be about to send one: opened, or
        answered, less than C{grace} seconds before C{now} (a client connects, then writes).
        """
        return sum(1 for channel in self._channels
                   if channel.requests or (channel.waiting_since is not None
                                           and now - channel.waiting_since < grace))

    def closed(self, channel: Counted) -> None:
        """A counted connection ended."""
        self._channels.discard(channel)
        host = getattr(channel, "counted_host", None)
        if host is None:
            return
        count = self._open.get(host, 0) - 1
        if count > 0:
            self._open[host] = count
        else:
            self._open.pop(host, None)
        channel.counted_host = None
