"""
Talking to the upstream index: its project pages and its files.

Every request has a deadline for the answer's headers and an idle deadline
for its body, and pages are read up to a size cap: a slow, stalled or
hostile upstream costs a bounded wait and bounded memory. Files are fetched
only from the configured hosts, so pypid never becomes an open proxy (which
URL may be fetched at all is decided by the cache: only URLs its pages
listed). Redirects are followed by hand, a few at most, and only to allowed
hosts. Parsing is in L{pypid.upstream.parser}, which does no I/O.
"""

from urllib.parse import urljoin, urlsplit

from twisted.internet.defer import CancelledError
from twisted.logger import Logger

from pypid.http import bodies
from pypid.upstream.parser import UpstreamPageError, parse_page

log = Logger()

#: What pypid asks the upstream for: PEP 691 JSON first, HTML accepted.
ACCEPT = ("application/vnd.pypi.simple.v1+json, "
          "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1")

_REDIRECTS = (301, 302, 303, 307, 308)


class UpstreamError(Exception):
    """The upstream could not give an answer (pypid answers 502 with the message)."""


class UpstreamNotFound(Exception):
    """The upstream has no such project (or file)."""


_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_allowed(url, hosts):
    """
    Whether C{url} is an http(s) URL, without credentials, on one of
    C{hosts} (C{"host:port"}, or C{"host"} for the scheme's default port,
    as C{[upstream] hosts} documents).
    """
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username:
        return False
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return False
    host = parts.hostname.lower()
    for entry in hosts:
        name, sep, wanted = entry.lower().partition(":")
        if name == host and (wanted == str(port) if sep
                             else port == _DEFAULT_PORTS[parts.scheme]):
            return True
    return False


class UpstreamClient:
    """
    Fetches from one upstream index.

    @ivar index_url: the upstream's simple index root, with a trailing slash.
    @ivar hosts: where files (and redirects) may lead.
    """

    def __init__(self, http, clock, index_url, hosts, timeout=10.0, max_page_size=20 << 20,
                 run=None):
        self._run = run
        self._http = http
        self._clock = clock
        self.index_url = index_url
        self.hosts = tuple(hosts)
        self._timeout = timeout
        self._max_page_size = max_page_size

    async def page(self, project):
        """
        The upstream's page of a (normalized) project.

        @rtype: L{pypid.upstream.parser.UpstreamPage}
        @raise UpstreamNotFound: the upstream answered 404 (or 410).
        @raise UpstreamError: for anything else that is not a usable page.
        """
        url = self.index_url + project + "/"
        response, final = await self.get(url, {"Accept": ACCEPT})
        if response.code in (404, 410):
            bodies.discard(response)
            raise UpstreamNotFound(project)
        if response.code != 200:
            bodies.discard(response)
            raise UpstreamError(f"the upstream answered {response.code} for {project}")
        try:
            body = await bodies.read_body(response, self._max_page_size, self._clock,
                                          self._timeout)
        except bodies.BodyError as e:
            raise UpstreamError(f"the upstream's page of {project} was {e}")
        content_type = _header(response, b"content-type") or ""
        serial = _header(response, b"x-pypi-last-serial")
        try:
            if self._run is not None:
                # A large page takes a while to parse: not on the reactor thread.
                return await self._run(parse_page, body, content_type, final, project, serial)
            return parse_page(body, content_type, final, project, serial)
        except UpstreamPageError as e:
            raise UpstreamError(f"the upstream's page of {project} is unusable: {e}")

    async def open(self, url):
        """
        Start downloading a file: the response, status 200, body unread (the
        caller reads it under its own idle deadline).

        @raise UpstreamNotFound: 404 or 410.
        @raise UpstreamError: a host not allowed, or any other failure.
        """
        response, _ = await self.get(url, {"Accept-Encoding": "identity"})
        if response.code in (404, 410):
            bodies.discard(response)
            raise UpstreamNotFound(url)
        if response.code != 200:
            bodies.discard(response)
            raise UpstreamError(f"the upstream answered {response.code} for a file")
        return response

    async def get(self, url, headers):
        """
        GET C{url}, following a few redirects within the allowed hosts.

        @return: C{(response, final URL)}, the body unread.
        """
        for _ in range(4):
            if not host_allowed(url, self.hosts):
                raise UpstreamError(f"{_host(url)} is not an upstream host pypid may use")
            response = await self._request(url, headers)
            if response.code not in _REDIRECTS:
                return response, url
            location = _header(response, b"location")
            bodies.discard(response)
            if not location:
                raise UpstreamError(f"the upstream answered {response.code} with no Location")
            target = urljoin(url, location)
            if url.startswith("https:") and not target.startswith("https:"):
                raise UpstreamError("the upstream redirected from https to plain http")
            url = target
        raise UpstreamError("the upstream redirected too many times")

    async def _request(self, url, headers):
        d = self._http.request("GET", url, headers=headers,
                               allow_redirects=False, unbuffered=True)
        timer = self._clock.callLater(self._timeout, d.cancel)
        try:
            return await d
        except CancelledError:
            if timer.called:
                raise UpstreamError(
                    f"the upstream did not answer within {self._timeout:g} s")
            raise
        except Exception as e:
            raise UpstreamError(f"cannot reach the upstream at {_host(url)}: "
                                f"{bodies.describe(e)}")
        finally:
            if timer.active():
                timer.cancel()


def _host(url):
    return urlsplit(url).netloc or url


def _header(response, name):
    values = response.headers.getRawHeaders(name)
    return values[0].decode("latin-1") if values else None
