"""
The listening sockets of a machine's workers: the supervisor opens each
line of C{[pypid] listen} (L{open_for_workers}: TCP, C{https:},
C{http-redirect:}, a Unix socket or one systemd passed), never accepts on
them itself, and passes their descriptors on; each worker accepts on the
same sockets (L{adopted}: Twisted's adopted endpoints), so the kernel
hands each connection to one worker.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

import attrs
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.endpoints import AdoptedStreamServerEndpoint
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorSocket,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Factory, Protocol

from pypid.config import Config
from pypid.config.server_settings import parse_listen_address
from pypid.daemon.listeners import IListeningReactor, endpoint_of


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
    """The supervisor's side of its sockets: it never accepts on them."""


def _family(port: IListeningPort) -> int:
    host = port.getHost()
    if isinstance(host, IPv6Address):
        return socket.AF_INET6
    if isinstance(host, UNIXAddress):
        return socket.AF_UNIX
    assert isinstance(host, IPv4Address), host
    return socket.AF_INET


async def open_for_workers(config: Config,
                           reactor: IListeningReactor) -> list[tuple[Inherited, IListeningPort]]:
    """
    Open every line of C{[pypid] listen} for the workers, and stop reading
    each (the supervisor's reactor never accepts on them); each socket, and
    its port (to close at the supervisor's stop).

    @raise StartupError: for an endpoint Twisted cannot use.
    """
    opened = []
    for description in config.server.listen:
        endpoint = endpoint_of(config, reactor, parse_listen_address(description))
        port = await endpoint.listen(Factory.forProtocol(_Unused))
        port.stopReading()  # type: ignore[attr-defined]  # (a listening port of the reactor's)
        opened.append((Inherited(description, port.fileno(), _family(port)),  # type: ignore[attr-defined]
                       port))
    return opened


def adopted(reactor: IReactorSocket,
            sockets: list[Inherited]) -> Mapping[str, IStreamServerEndpoint]:
    """The endpoints a worker accepts on, by their line of C{[pypid] listen}."""
    return {inherited.description: AdoptedStreamServerEndpoint(
                reactor, inherited.fileno, inherited.family)
            for inherited in sockets}
