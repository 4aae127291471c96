"""
Who the client is behind a reverse proxy: the address a trusted proxy
appended to C{X-Forwarded-For}.

Behind a proxy every connection comes from the proxy, so the per-client
limits would count every client as one. What is to the left of the
address a proxy appended may be anything, so the header is read only on a
connection from a listed proxy (C{[pypid] trusted_proxies}), from the
right, skipping listed proxies: the first other address is the client,
and what it wrote to its left (a spoofed C{127.0.0.1}) is never read. A
header that cannot be read up to the client is ignored: the client is
then the proxy, the safe side.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import attrs

from pypid.core.access.addresses import Address, client_ip

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class TrustedProxies:
    """The reverse proxies (addresses and networks) whose C{X-Forwarded-For} is believed."""

    networks: tuple[_Network, ...] = ()

    def trusts(self, address: Address | None) -> bool:
        """Whether C{address} is one of the proxies."""
        return address is not None and any(
            address.version == network.version and address in network
            for network in self.networks)

    def client(self, peer: str | None, forwarded_for: Sequence[bytes]) -> tuple[str | None, bool]:
        """
        C{(address, malformed)}: the client's address, and whether the
        header was ignored for an entry that is not an IP address (the
        caller logs it; the address is then the peer's).

        @param peer: the connection's peer host (L{None}: not an IP peer).
        @param forwarded_for: every C{X-Forwarded-For} header's value, in order.
        """
        if not self.networks or not forwarded_for or not self.trusts(client_ip(peer or "")):
            return peer, False
        entries = b",".join(forwarded_for).decode("latin-1").split(",")
        for entry in reversed(entries):
            address = client_ip(entry.strip().removeprefix("[").removesuffix("]"))
            if address is None:
                return peer, True
            if not self.trusts(address):
                return str(address), False
        # Every entry is a proxy: the request came from one of them (a health check).
        return str(client_ip(entries[0].strip().removeprefix("[").removesuffix("]"))), False


#: No proxy trusted: every client is its connection's peer (the default).
NO_PROXIES = TrustedProxies()
