"""
The listening sockets of a machine's workers (L{WorkerSockets}): the
supervisor opens each line of C{[pypid] listen} and never accepts on them;
each worker accepts on the sockets it is given (L{adopted}).

A TCP line is a group of sockets, one per worker, bound to one address
with C{SO_REUSEPORT}: the kernel spreads the connections over them evenly
and wakes only the worker whose socket a connection came to (the busiest
of 4 workers took 0.30 of 64 kept-alive connections, against 0.58 on one
shared socket). Any other line is one socket all the workers accept on.

The kernel gives a group's socket its share from the moment it listens,
so a worker's socket, bound by the supervisor, listens only once the
worker accepts, its indexes loaded (a restarted worker held half of the
new connections 5.7-13 s while it loaded); a group's first socket, or one
opened when none of its group listens, listens at once, so that the
first connections wait rather than be refused. A worker that ended has
its socket closed; a silent one has it shut down (L{Sockets.silent}), out
of the group until the worker runs and listens again.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from contextlib import suppress

import attrs
from twisted.internet import tcp
from twisted.internet.abstract import isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.endpoints import (
    AdoptedStreamServerEndpoint,
    TCP4ServerEndpoint,
    TCP6ServerEndpoint,
)
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorSocket,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.haproxy import proxyEndpoint
from twisted.python.failure import Failure
from zope.interface import implementer

from pypid.config import Config
from pypid.config.server_settings import parse_listen_address
from pypid.core.util.startup import StartupError
from pypid.daemon.listeners import IListeningReactor, endpoint_of, tcp_address
from pypid.daemon.socket_groups import CannotListen, Group, Inherited, Sockets, listens


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
class WorkerSockets:
    """
    Opens the sockets of every line of C{[pypid] listen} for a machine's
    workers (see the module), held in L{held} until the hand-over.
    """

    _config: Config
    _reactor: IListeningReactor
    _count: int
    held: Sockets = attrs.field(init=False)
    _ports: list[IListeningPort] = attrs.field(factory=list, init=False)

    @held.default
    def _nothing_yet(self) -> Sockets:
        return Sockets(list(self._config.server.listen))

    async def open(self) -> None:
        """Open every line's sockets, in order (or L{StartupError})."""
        for description in self._config.server.listen:
            address = parse_listen_address(description)
            endpoint = endpoint_of(self._config, self._reactor, address)
            bound = tcp_address(endpoint)
            if bound is not None:
                assert isinstance(endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint))
                port, interface = bound
                # (Twisted's tcp: endpoint, and an https: line's, is TCP4's,
                # whose port takes an IPv6 interface as listenTCP does)
                six = isinstance(endpoint, TCP6ServerEndpoint) or isIPv6Address(interface)
                group = Group(description, socket.AF_INET6 if six else socket.AF_INET,
                              interface or ("::" if six else ""), port, endpoint._backlog)
                self.held.groups.append(group)
                try:
                    for number in range(1, self._count + 1):
                        group.member(number)
                except CannotListen as e:
                    raise StartupError(str(e))
                continue
            shared = await endpoint.listen(Factory.forProtocol(_Unused))
            shared.stopReading()  # type: ignore[attr-defined]  # (a port of the reactor's)
            self._ports.append(shared)
            self.held.shared.append(Inherited(description, shared.fileno(),  # type: ignore[attr-defined]
                                              _family(shared)))

    def close(self) -> Deferred[list[None]]:
        """
        Close every socket (a start that failed before the hand-over);
        fires when the shared ports have stopped (a Unix socket's file is gone).
        """
        self.held.close()
        stopped = [done for port in self._ports if (done := port.stopListening()) is not None]
        self._ports.clear()
        return gatherResults(stopped)


class _Rejoining(tcp.Port):
    """
    A worker's port on its own socket of a TCP line. The supervisor shuts
    that socket down while the worker is silent (L{Sockets.silent});
    the worker's reactor then finds it closed (C{EPOLLHUP}, or readable
    and not listening) once it runs again, and this port listens again on
    its address rather than end: back in its group.
    """

    backlog: int

    def doRead(self) -> None:
        """Accept, or listen again if the socket was shut down meanwhile."""
        if listens(self.socket) or not self._rejoined():
            super().doRead()

    def connectionLost(self, reason: Failure) -> None:
        """Listen again, unless the worker stops listening itself."""
        if self.disconnecting or not self._rejoined():
            super().connectionLost(reason)

    def _rejoined(self) -> bool:
        """Listen again on the same address: whether it does."""
        if self.disconnecting:
            return False
        before = self.socket.getsockname()
        try:
            self.socket.listen(self.backlog)
        except OSError:
            return False
        if self.socket.getsockname() != before:
            return False  # (its port given up: not in its group any more)
        self.startReading()
        return True


@implementer(IStreamServerEndpoint)
@attrs.frozen
class _Joining:
    """
    A worker's own socket of a TCP line, bound: it listens, and so joins
    its group, when the worker accepts on it (see the module).
    """

    reactor: IReactorSocket
    inherited: Inherited

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        """Listen, then accept as an adopted port does (C{adoptStreamPort})."""
        inherited = self.inherited
        # (a copy of the descriptor: the same socket; the one given is closed
        # either way, as the adopted endpoint closes it)
        with socket.fromfd(inherited.fileno, inherited.family, socket.SOCK_STREAM) as sock:
            os.close(inherited.fileno)
            try:
                sock.listen(inherited.backlog)
                port = _Rejoining._fromListeningDescriptor(
                    self.reactor, sock.fileno(), inherited.family, protocolFactory)
                port.backlog = inherited.backlog
                port.startListening()
            except BaseException as e:
                # (out of its group again: nothing accepts on it here)
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                return fail(CannotListenError(None, inherited.description, e))
        return succeed(port)


def adopted(reactor: IReactorSocket,
            sockets: list[Inherited]) -> Mapping[str, IStreamServerEndpoint]:
    """
    The endpoints a worker accepts on, by their line of C{[pypid] listen}:
    a C{haproxy:} line's reads the PROXY header first, as its line's own
    endpoint does.
    """
    endpoints: dict[str, IStreamServerEndpoint] = {}
    for inherited in sockets:
        endpoint: IStreamServerEndpoint = (
            _Joining(reactor, inherited) if inherited.backlog else
            AdoptedStreamServerEndpoint(reactor, inherited.fileno, inherited.family))
        if inherited.description.strip().lower().startswith("haproxy:"):
            endpoint = proxyEndpoint(endpoint)
        endpoints[inherited.description] = endpoint
    return endpoints
