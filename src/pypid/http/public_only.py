"""
Connections that reach a host only at public addresses: the upstream's
file hosts that no one named (L{pypid.upstream.fetch.FileHosts}).

The name is resolved once, every address it gives is checked (one private
address refuses the host: a name that answers both is a DNS rebinding
attempt or a split horizon, and neither is a file host to trust), and the
connection is made to exactly the addresses checked, with Twisted's own
L{HostnameEndpoint} (happy eyeballs and all), so no later lookup can move
it. Hosts that are named are connected to as the standard agent does.

Which hosts are named can change while connections are kept for reuse
(C{[upstream] hosts} at C{SIGHUP}), so the rule is asked at every request,
not only at connect time: L{PublicOnlyPool} keeps a connection made to a
named host apart from one made at public addresses only, and gives the
former only to a request whose host is still named. (One made at public
addresses stays good under any rule: being public belongs to the address.)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import (
    IAddress,
    IHostnameResolver,
    IHostResolution,
    IProtocol,
    IProtocolFactory,
    IReactorPluggableNameResolver,
    IResolutionReceiver,
    IStreamClientEndpoint,
)
from twisted.python.failure import Failure
from twisted.web.client import HTTP11ClientProtocol, HTTPConnectionPool
from zope.interface import implementer

from pypid.core.access.addresses import is_public_address

#: Whether a host (of a scheme, on a port) is named by the operator:
#: C{(scheme, host, port) -> bool}.
Named = Callable[[str, str, int], bool]


class NotPublic(ConnectError):
    """A host that no one named resolved to an address that is not public."""

    def __init__(self, host: str, address: str) -> None:
        self.host = host
        self.address = address
        super().__init__(string=str(self))

    def __str__(self) -> str:
        if self.host.strip("[]") == self.address:
            return f"{self.address} is not a public address"
        return f"{self.host} resolves to {self.address}, not a public address"


@implementer(IResolutionReceiver)
class _Checked:
    """
    Passes on the addresses of one resolution only if all of them are
    public; otherwise none, and remembers the first that is not.
    """

    def __init__(self, receiver: IResolutionReceiver) -> None:
        self._receiver = receiver
        self._addresses: list[IAddress] = []
        self.refused: str | None = None

    def resolutionBegan(self, resolution: IHostResolution) -> None:
        self._receiver.resolutionBegan(resolution)

    def addressResolved(self, address: IAddress) -> None:
        self._addresses.append(address)
        if self.refused is None and not (isinstance(address, (IPv4Address, IPv6Address))
                                         and is_public_address(address.host)):
            self.refused = getattr(address, "host", str(address))

    def resolutionComplete(self) -> None:
        if self.refused is None:
            for address in self._addresses:
                self._receiver.addressResolved(address)
        self._receiver.resolutionComplete()


@implementer(IHostnameResolver)
class _CheckingResolver:
    """The reactor's resolver, each resolution passed through a L{_Checked}."""

    def __init__(self, resolver: IHostnameResolver) -> None:
        self._resolver = resolver
        self.checked: list[_Checked] = []

    def resolveHostName(self, resolutionReceiver: IResolutionReceiver, hostName: str,
                        portNumber: int = 0, addressTypes: Sequence[type[IAddress]] | None = None,
                        transportSemantics: str = "TCP") -> IHostResolution:
        checked = _Checked(resolutionReceiver)
        self.checked.append(checked)
        return self._resolver.resolveHostName(checked, hostName, portNumber, addressTypes,
                                              transportSemantics)


@implementer(IReactorPluggableNameResolver)
class _ResolvingThrough:
    """The reactor, but for its name resolver: what L{HostnameEndpoint} is given."""

    def __init__(self, reactor: Any, resolver: IHostnameResolver) -> None:
        self._reactor = reactor
        self.nameResolver = resolver

    def installNameResolver(self, resolver: IHostnameResolver) -> IHostnameResolver:
        raise NotImplementedError("a checking resolver is not replaced")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


@implementer(IStreamClientEndpoint)
class PublicOnlyEndpoint:
    """Connects to C{host} on C{port} at its public addresses only (see the module)."""

    def __init__(self, reactor: Any, host: str, port: int, timeout: float) -> None:
        self._reactor = reactor
        self._host = host
        self._port = port
        self._timeout = timeout

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        resolver = _CheckingResolver(self._reactor.nameResolver)
        endpoint = HostnameEndpoint(_ResolvingThrough(self._reactor, resolver), self._host,
                                    self._port, timeout=self._timeout)

        def refused(failure: Failure) -> Failure:
            for checked in resolver.checked:
                if checked.refused is not None:
                    return Failure(NotPublic(self._host, checked.refused))
            return failure
        return endpoint.connect(protocolFactory).addErrback(refused)


class PublicOnlyPool(HTTPConnectionPool):
    """
    A pool of persistent connections that gives a request only one made
    under the rule in force for its host (see the module). The check costs
    about 1 us a request (measured with five entries), nothing beside the
    fetch it precedes.
    """

    def __init__(self, reactor: Any, named: Named) -> None:
        super().__init__(reactor, persistent=True)
        self._named = named

    def getConnection(self, key: Hashable,
                      endpoint: IStreamClientEndpoint) -> Deferred[HTTP11ClientProtocol]:
        """A connection for the agent's C{(scheme, host, port)}, apart by whether it is named."""
        scheme, host, port = cast(tuple[bytes, bytes, int], key)
        named = self._named(scheme.decode("ascii"), host.decode("ascii"), port)
        return super().getConnection((key, named), endpoint)
