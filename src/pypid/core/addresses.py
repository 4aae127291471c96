"""
A client's IP address read from text, as every rule that tells clients
apart reads it (the login throttle, the reverse proxies trusted, who may
scrape C{/metrics}): an IPv6 zone (C{fe80::1%eth0}) is dropped, and an
IPv4 client seen through an IPv6 socket (C{::ffff:192.0.2.7}) is its IPv4
address, so one client is never two by the socket it came through.
"""

from __future__ import annotations

import ipaddress

#: Bits of an IPv6 address that make one client (a host is given a /64):
#: the login throttle counts failures per client, and the configuration
#: offers it as the default of C{[auth] throttle_ipv6_prefix}.
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
