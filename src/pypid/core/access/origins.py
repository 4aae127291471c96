"""
The origin a client reached the server by, from its C{Host} header: what
the pages put in install snippets, and the legacy JSON API in absolute
URLs, when C{[pypid] base_url} is not set. The header is the client's: it
is taken only when it is a host, is always escaped where written, and a
page made from it is kept per origin, so it never reaches another client.
"""

from __future__ import annotations

import re

#: A C{Host} header worth writing into a page: a name, an IPv4 address or a
#: bracketed IPv6 address, and an optional port.
HOST = re.compile(rb"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]{1,253})(:[0-9]{1,5})?\Z")


def origin_of(host: bytes | None, secure: bool) -> str | None:
    """C{http(s)://host[:port]} of a request's C{Host} header, or L{None} when not a host."""
    if not host or not HOST.match(host):
        return None
    return ("https://" if secure else "http://") + host.decode("ascii").lower()
