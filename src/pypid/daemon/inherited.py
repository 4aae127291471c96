"""
The listening sockets of a machine's workers (L{WorkerSockets}): the
supervisor opens each line of C{[pypid] listen} and never accepts on them;
each worker accepts on the sockets it is given (L{adopted}: Twisted's
adopted endpoints).

A TCP line (C{tcp:}, C{tcp6:}, C{https:}, C{http-redirect:}) is a group of
sockets, one per worker, bound to one address with C{SO_REUSEPORT}: the
kernel spreads the connections over them by their addresses, evenly, and
wakes only the worker whose socket a connection came to. Measured on 2
cores (10 runs of 64 kept-alive connections): the busiest of 4 workers
took 0.30 of the connections this way, against 0.58 on one shared socket,
where the first worker to wake takes what is queued and one worker served
nothing in 9 of the 10 runs (each worker's accepts capped to one a wakeup:
0.48, and 11 % fewer requests a second with C{Connection: close}). A
worker that ended has its group's socket closed at once, so that the
connections the kernel would queue for it go to the others meanwhile, and
a new one opened when it starts again.

Any other line (a Unix socket, one systemd passed, C{haproxy:}) is one
socket all the workers accept on.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

import attrs
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import (
    AdoptedStreamServerEndpoint,
    TCP4ServerEndpoint,
    TCP6ServerEndpoint,
)
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorSocket,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.haproxy import proxyEndpoint

from pypid.config import Config
from pypid.config.server_settings import parse_listen_address
from pypid.core.util.startup import StartupError
from pypid.daemon.listeners import IListeningReactor, endpoint_of, tcp_address


@attrs.frozen
class Inherited:
    """
    One listening socket the supervisor opened for its workers.

    @ivar description: its line of C{[pypid] listen}.
    @ivar fileno: its descriptor, in the supervisor (and, passed on, in a worker).
    @ivar family: its address family (C{AF_INET}, C{AF_INET6}, C{AF_UNIX}).
    """

    description: str
    fileno: int
    family: int


class _Unused(Protocol):
    """The supervisor's side of a shared socket: it never accepts on it."""


def _family(port: IListeningPort) -> int:
    host = port.getHost()
    if isinstance(host, IPv6Address):
        return socket.AF_INET6
    if isinstance(host, UNIXAddress):
        return socket.AF_UNIX
    assert isinstance(host, IPv4Address), host
    return socket.AF_INET


@attrs.define(eq=False)
class _Group:
    """A TCP line's sockets, one per worker, on one address (C{SO_REUSEPORT})."""

    description: str
    family: int
    interface: str
    port: int
    backlog: int
    members: dict[int, socket.socket] = attrs.field(factory=dict)

    def member(self, number: int) -> socket.socket:
        """Worker C{number}'s socket, opened anew if it was closed."""
        sock = self.members.get(number)
        if sock is None:
            sock = socket.socket(self.family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((self.interface, self.port))
                sock.listen(self.backlog)
            except OSError as e:
                sock.close()
                raise StartupError(f"Cannot listen on {self.description}: {e.strerror}")
            sock.setblocking(False)
            # (a line that asked for any port: every member on the first's)
            self.port = sock.getsockname()[1]
            self.members[number] = sock
        return sock

    def close(self, number: int | None = None) -> None:
        """Close worker C{number}'s socket, or every one."""
        for each in [number] if number is not None else list(self.members):
            sock = self.members.pop(each, None)
            if sock is not None:
                sock.close()


@attrs.define(eq=False)
class WorkerSockets:
    """
    The sockets of every line of C{[pypid] listen}, as the supervisor
    holds them for its workers (see the module).
    """

    _config: Config
    _reactor: IListeningReactor
    _count: int
    _groups: list[_Group] = attrs.field(factory=list, init=False)
    _shared: list[tuple[Inherited, IListeningPort]] = attrs.field(factory=list, init=False)

    async def open(self) -> None:
        """
        Open every line's sockets, in order.

        @raise StartupError: for a line that cannot be listened on.
        """
        for description in self._config.server.listen:
            address = parse_listen_address(description)
            endpoint = endpoint_of(self._config, self._reactor, address)
            bound = tcp_address(endpoint)
            if bound is not None:
                assert isinstance(endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint))
                port, interface = bound
                six = isinstance(endpoint, TCP6ServerEndpoint)
                group = _Group(description, socket.AF_INET6 if six else socket.AF_INET,
                               interface or ("::" if six else ""), port, endpoint._backlog)
                self._groups.append(group)
                for number in range(1, self._count + 1):
                    group.member(number)
                continue
            shared = await endpoint.listen(Factory.forProtocol(_Unused))
            shared.stopReading()  # type: ignore[attr-defined]  # (a port of the reactor's)
            self._shared.append((Inherited(description, shared.fileno(),  # type: ignore[attr-defined]
                                           _family(shared)), shared))

    def for_worker(self, number: int) -> list[Inherited]:
        """
        Worker C{number}'s sockets, a line's each: its own of a TCP line
        (opened anew after it ended), the shared one of any other.

        @raise StartupError: when a closed socket cannot be opened again.
        """
        own = {group.description: Inherited(group.description, group.member(number).fileno(),
                                            group.family)
               for group in self._groups}
        shared = {inherited.description: inherited for inherited, _ in self._shared}
        return [own.get(description) or shared[description]
                for description in self._config.server.listen]

    def ended(self, number: int) -> None:
        """Worker C{number} ended: its own sockets are closed until it starts again."""
        for group in self._groups:
            group.close(number)

    def ports(self) -> list[int]:
        """The TCP port of each TCP line (for a line that asked for any port: the one it got)."""
        return [group.port for group in self._groups]

    def close(self) -> Deferred[list[None]]:
        """
        Close every socket (the supervisor's stop, after its workers'); fires
        when the shared ports have stopped (a Unix socket's file is gone).
        """
        for group in self._groups:
            group.close()
        stopped: list[Deferred[None]] = []
        for _, port in self._shared:
            done = port.stopListening()
            if done is not None:
                stopped.append(done)
        self._shared.clear()
        return gatherResults(stopped)


def adopted(reactor: IReactorSocket,
            sockets: list[Inherited]) -> Mapping[str, IStreamServerEndpoint]:
    """
    The endpoints a worker accepts on, by their line of C{[pypid] listen}:
    a C{haproxy:} line's reads the PROXY header first, as its line's own
    endpoint does.
    """
    endpoints: dict[str, IStreamServerEndpoint] = {}
    for inherited in sockets:
        endpoint: IStreamServerEndpoint = AdoptedStreamServerEndpoint(
            reactor, inherited.fileno, inherited.family)
        if inherited.description.strip().lower().startswith("haproxy:"):
            endpoint = proxyEndpoint(endpoint)
        endpoints[inherited.description] = endpoint
    return endpoints
