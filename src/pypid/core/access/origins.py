"""
The origin a client reached the server by, from its C{Host} header: what
the pages for people put in their install snippets, and the legacy JSON
API in its absolute URLs, when C{[pypid] base_url} is not set.

The header is the client's: it is taken only when it is a host name, an
IPv4 address or a bracketed IPv6 address, with an optional port, and it
is always escaped where it is written; a page made from it is kept apart
per origin, so one client's header never reaches another's page.
"""

from __future__ import annotations

import re

#: A C{Host} header worth writing into a page: a name, an IPv4 address or a
#: bracketed IPv6 address, and an optional port.
HOST = re.compile(rb"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]{1,253})(:[0-9]{1,5})?\Z")


def origin_of(host: bytes | None, secure: bool) -> str | None:
    """
    C{http(s)://host[:port]} of a request's C{Host} header and whether its
    connection is TLS; L{None} when the header is missing or not a host.
    """
    if not host or not HOST.match(host):
        return None
    return ("https://" if secure else "http://") + host.decode("ascii").lower()
