"""
A client's IP address read from text, as every rule that tells clients
apart reads it (the login throttle, trusted proxies, C{/metrics}): an IPv6
zone (C{fe80::1%eth0}) is dropped, and an IPv4-mapped address
(C{::ffff:192.0.2.7}) is its IPv4 one, so one client is never two by the
socket it came through.
"""

from __future__ import annotations

import ipaddress

#: Bits of an IPv6 address that make one client (a host is given a /64):
#: the default of C{[auth] throttle_ipv6_prefix}.
IPV6_PREFIX = 64

#: An IP address, either version.
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_ip(text: str) -> Address | None:
    """C{text} as a client's IP address, or L{None} when it is not one."""
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


#: Bits of a network one party may hold (an IPv4 /24, an IPv6 /48), for
#: bounds that must not let a party with many addresses push out the rest.
IPV4_NETWORK, IPV6_NETWORK = 24, 48


def network_of(client: str) -> str:
    """
    The IPv4 /24 or IPv6 /48 of a client as
    L{pypid.auth.throttle.counted_client} names it; anything else (a Unix
    socket's peer, none) as it is.
    """
    try:
        network = ipaddress.ip_network(client, strict=False)
    except ValueError:
        return client
    bits = IPV4_NETWORK if network.version == 4 else IPV6_NETWORK
    if network.prefixlen > bits:
        network = network.supernet(new_prefix=bits)
    return str(network)


def is_public_address(text: str) -> bool:
    """
    Whether C{text} is an IP address of the public internet (not loopback,
    private, link-local as cloud metadata's C{169.254.169.254}, shared,
    reserved, multicast or unspecified, nor such an address inside IPv6),
    so that a file host an upstream's page names cannot lead pypid into the
    network it runs in.
    """
    address = client_ip(text)
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        # (forms that Python 3.11's is_global still counts)
        if address.is_site_local or any(address in network for network in _NOT_GLOBAL):
            return False
        # 6to4, Teredo and NAT64 carry an IPv4 address that is where they lead.
        inner = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if inner is None and address in _NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None and not _global(inner):
            return False
    return _global(address)


#: The well-known prefix of NAT64 (RFC 6052), whose last 32 bits are an IPv4 address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

#: IPv6 networks that lead nowhere public though older Pythons call them
#: global: IPv4-compatible (C{::127.0.0.1}, RFC 4291), IPv4-translated
#: (RFC 2765) and local-use NAT64 (RFC 8215).
_NOT_GLOBAL = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("::ffff:0:0:0/96"),
               ipaddress.IPv6Network("64:ff9b:1::/48"))


def _global(address: Address) -> bool:
    return address.is_global and not address.is_multicast
