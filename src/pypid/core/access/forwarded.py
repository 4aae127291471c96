"""
Who the client is behind a reverse proxy: the address a trusted proxy
appended to C{X-Forwarded-For}.

Behind a proxy every connection comes from the proxy, so the login
throttle, the audit log and the other per-client limits would count every
client as one (and 100 junk logins from anyone would hold back every
directory user). A proxy writes the address it received the request from
at the end of C{X-Forwarded-For}; what is to the left of that was sent by
the client, or by proxies further away, and may be anything. So the header
is read only when the connection comes from a proxy the administrator
listed (C{[pypid] trusted_proxies}), from the right, skipping the listed
proxies: the first address that is not one of them is the client, and
whatever the client wrote to the left of it (a spoofed C{127.0.0.1}, say)
is never read. A header that cannot be read up to the client (an entry
that is not an IP address) is ignored: the client is then the proxy, the
safe side (the proxy's address is held back, not an address the client
chose).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import attrs

from pypid.core.access.addresses import Address, client_ip

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class TrustedProxies:
    """
    The reverse proxies whose C{X-Forwarded-For} is believed.

    @ivar networks: the proxies' addresses and networks; none by default,
        and then every header is ignored.
    """

    networks: tuple[_Network, ...] = ()

    def trusts(self, address: Address | None) -> bool:
        """Whether C{address} is one of the proxies."""
        return address is not None and any(
            address.version == network.version and address in network
            for network in self.networks)

    def client(self, peer: str | None, forwarded_for: Sequence[bytes]) -> tuple[str | None, bool]:
        """
        C{(address, malformed)}: the client's address, and whether the
        header was ignored because an entry that had to be read is not an
        IP address (the caller logs it; the address is then the peer's).

        @param peer: the connection's peer host (L{None}: not an IP peer,
            such as a Unix socket's).
        @param forwarded_for: the values of every C{X-Forwarded-For} header,
            in order (several headers are one list, as HTTP says).
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
