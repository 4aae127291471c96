"""
Which requests a browser sent on behalf of another site.

Once a browser has credentials for pypid, any page on another site can
submit a form to pypid (an upload, a yank, a delete) taken as the
logged-in person's. Twine, uv and pip send neither header read here;
browsers send at least one on every request that changes something:

  - C{Sec-Fetch-Site}: C{same-origin} (pypid's own pages) and C{none} (typed
    or bookmarked) are taken; C{same-site} and C{cross-site} are refused (a
    sibling host of the same site is another application).
  - C{Origin} (on any method but C{GET} and C{HEAD}): refused unless it is
    this server's origin, as C{Host} or C{[server] base_url} (behind a
    proxy that rewrites C{Host}) names it; C{null} is refused.

A request with neither header, and C{GET}, C{HEAD} and C{OPTIONS}, which
change nothing, are taken.
"""

from __future__ import annotations

from urllib.parse import urlsplit

#: Methods that change nothing on this server.
SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})

#: C{Sec-Fetch-Site} values of a request this server's pages (or the
#: person, at the address bar) made.
_OWN = frozenset({b"same-origin", b"none"})

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: The answer's reason, after the header that told.
_REFUSED = ("a browser sent this request for another site; changes are taken from this "
            "server's own pages and from clients such as twine and uv")


def cross_site_refusal(method: bytes, fetch_site: bytes | None, origin: bytes | None,
                       host: bytes | None, base_url: str | None) -> str | None:
    """Why a request must be refused as sent for another site, or L{None} to take it."""
    if method in SAFE_METHODS:
        return None
    if fetch_site is not None:
        if fetch_site.strip().lower() in _OWN:
            return None
        return f"Sec-Fetch-Site: {_REFUSED}"
    if origin is None:
        return None
    sent = _url_origin(origin.decode("ascii", "replace").strip())
    if sent is not None and (_is_host(sent, host) or sent == _url_origin(base_url)):
        return None
    return f"Origin: {_REFUSED}"


def _url_origin(url: str | None) -> tuple[str, str, int] | None:
    """C{(scheme, host, port)} of a URL or an C{Origin}; L{None} for C{null} or nonsense."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    default = _DEFAULT_PORTS.get(scheme)
    if not parts.hostname or default is None:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else default


def _is_host(origin: tuple[str, str, int], host: bytes | None) -> bool:
    """Whether an origin names the server C{Host} does (no port: the scheme's default)."""
    if not host:
        return False
    scheme, name, port = origin
    parsed = _url_origin(scheme + "://" + host.decode("ascii", "replace").strip())
    return parsed == (scheme, name, port)
