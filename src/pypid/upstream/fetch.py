"""
Talking to the upstream index: its project pages and its files.

Every request has a deadline for the answer's headers and an idle deadline
for its body, and pages are read up to a size cap: a slow, stalled or
hostile upstream costs a bounded wait and bounded memory.

pypid fetches only URLs the upstream's pages listed, and only from the
hosts C{[upstream] hosts} allows (L{FileHosts}), following a few redirects
by hand under the same rule: it never becomes an open proxy. An index
commonly serves its files from another host than its pages (a CDN), so the
entry L{ANY_PUBLIC} (C{*}, the default) lets a listed URL lead to any host,
reached then only at public addresses (L{pypid.http.public_only}, checked at
connect time so that DNS cannot move a name into the network pypid runs
in). A host named in C{hosts}, and the host of C{url}, is the operator's
word and is reached at whatever address it has. The rules in force decide
at each request and redirect, so a change at C{SIGHUP} applies to the next.
A host refused is logged once (until the next change) with the entry to set.

C{Authorization} (Basic, or Bearer for a token) is sent only to the origin
(scheme, host and port) of the upstream's C{url}: never to the other
C{hosts}, nor after a redirect to another origin, so a file host or a
redirect target never learns the secret; no message names the header.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from urllib.parse import quote, urljoin, urlsplit

import attrs
from twisted.internet.defer import CancelledError, DeferredSemaphore, ensureDeferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse

from pypid.config.upstream_settings import ANY_PUBLIC, UpstreamCredentials
from pypid.core.dists.wheel_variants import MAX_VARIANT_JSON, InvalidVariant, VariantMetadata
from pypid.http import bodies
from pypid.http.public_only import NotPublic
from pypid.jobs.run import Run
from pypid.upstream.page_model import UpstreamFile, UpstreamPage, UpstreamPageError, quoted
from pypid.upstream.parser import MAX_PAGE_ENTRIES, parse_page
from pypid.upstream.variant_data import completed, read_index_level, to_read

log = Logger()

#: What pypid asks the upstream for: PEP 691 JSON first, HTML accepted.
ACCEPT = ("application/vnd.pypi.simple.v1+json, "
          "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1")

_REDIRECTS = (301, 302, 303, 307, 308)

#: Pages and metadata files read from the upstream at once; more wait: each
#: holds up to C{max_page_size} while read, and a page ten times that decoded.
MAX_READS = 8

#: Hosts remembered as logged refused (an upstream's pages could name any
#: number of them; past this, the memory starts again).
_REFUSALS_KEPT = 1024


class UpstreamError(Exception):
    """The upstream could not give an answer (pypid answers 502 with the message)."""


class TransferFailed(UpstreamError):
    """
    The upstream could not be reached, or an answer did not arrive whole in
    time: a file that failed so is not remembered as failed, so that a
    client's retries can succeed.
    """


class HostRefused(UpstreamError):
    """
    A URL whose host the rules in force refuse (not in C{hosts}, or not at
    a public address): not remembered as a failed file, so that a change of
    C{hosts} applies at the next request.

    @ivar advice: the line of C{hosts} to write, kept apart for a status
        line to keep it whole (a 502's remedy).
    """

    def __init__(self, why: str, advice: str) -> None:
        UpstreamError.__init__(self, f"{why}; {advice}")
        self.why = why
        self.advice = advice


class AccessRefused(UpstreamError):
    """
    The upstream refused pypid (C{401} or C{403}).

    @ivar advice: what the operator may set, naming the section's keys.
    """

    def __init__(self, message: str, advice: str) -> None:
        UpstreamError.__init__(self, message)
        self.advice = advice


def access_advice(section: str, credentials_set: bool) -> str:
    """What to set when an upstream refuses pypid, naming C{section}'s keys."""
    if credentials_set:
        return (f"check [{section}] username and password_file (or token_file): "
                "the upstream refused them")
    return (f"if it wants to know who asks, set [{section}] username with "
            "password_file, or token_file")


class UpstreamNotFound(Exception):
    """The upstream has no such project (or file)."""


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int] | None:
    """C{(scheme, host, port)} of C{url}; L{None} when it has none (not http(s), or malformed)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme]


def _names(entry: str, scheme: str, host: str, port: int) -> bool:
    """Whether one C{host} or C{host:port} entry names C{host} on C{port}."""
    name, sep, wanted = entry.lower().partition(":")
    return name == host and (wanted == str(port) if sep else port == _DEFAULT_PORTS[scheme])


@attrs.frozen
class FileHosts:
    """
    The hosts of one upstream: C{entries} as C{[upstream] hosts} resolves
    them (the host of C{url} first, then C{host}, C{host:port} or L{ANY_PUBLIC}).
    """

    entries: tuple[str, ...]

    @property
    def any_public(self) -> bool:
        """Whether hosts not named may be used at public addresses."""
        return ANY_PUBLIC in self.entries

    def allows(self, url: str) -> bool:
        """
        Whether C{url} may be fetched: an http(s) URL, without credentials, on
        a named host, or on any host when L{any_public}.
        """
        found = origin(url)
        # (an empty user name, as in http://:pw@host/, is still credentials)
        if found is None or "@" in urlsplit(url).netloc:
            return False
        return self.any_public or self.names(*found)

    def names(self, scheme: str, host: str, port: int) -> bool:
        """
        Whether C{host} on C{port} (of a C{scheme} URL) is named: reached
        at any address. A host that is not is reached only at public ones.
        """
        if scheme not in _DEFAULT_PORTS:
            return False
        host = host.lower().strip("[]")
        return any(_names(entry, scheme, host, port)
                   for entry in self.entries if entry != ANY_PUBLIC)


def _entry_of(url: str) -> str:
    """The C{hosts} entry that would name the host of C{url}: C{host}, or C{host:port}."""
    found = origin(url)
    if found is None:
        return _host(url)
    scheme, host, port = found
    return host if port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"


def authorization(credentials: UpstreamCredentials) -> bytes:
    """The C{Authorization} header's value for C{credentials}: Basic, or Bearer for a token."""
    if credentials.username is None:
        return b"Bearer " + credentials.secret.encode("utf-8")
    return b"Basic " + base64.b64encode(f"{credentials.username}:{credentials.secret}".encode())


class UpstreamClient:
    """
    Fetches from one upstream index.

    @ivar index_url: the upstream's simple index root, with a trailing slash.
    """

    def __init__(self, agent: IAgent, clock: IReactorTime, index_url: str, hosts: Iterable[str],
                 timeout: float = 10.0, max_page_size: int = 20 << 20,
                 run: Run | None = None, deadline: float = 600.0,
                 max_entries: int = MAX_PAGE_ENTRIES,
                 credentials: UpstreamCredentials | None = None,
                 section: str = "upstream") -> None:
        """
        @param agent: no cookie jar (an index needs none, and treq's kept
            every cookie an upstream set); redirects are followed here.
        @param timeout: the deadline for the headers of an answer, and the
            longest its body may be silent.
        @param deadline: the longest one fetch may take in all, however
            steadily its body trickles in.
        @param section: the configuration's section of this upstream, named
            in the log's advice.
        """
        self._run = run
        self._section = section
        self._refused: set[str] = set()
        # (the status of the upstream's last refusal of pypid, logged once)
        self._access_logged: int | None = None
        self._agent = agent
        self._clock = clock
        self.index_url = index_url
        self.timeout = timeout
        self.deadline = deadline
        self._max_page_size = max_page_size
        self._max_entries = max_entries
        self._turns = DeferredSemaphore(MAX_READS)
        self._origin = origin(index_url)
        self.credentials: UpstreamCredentials | None = None
        self.reconfigure(hosts, credentials)

    def reconfigure(self, hosts: Iterable[str], credentials: UpstreamCredentials | None) -> None:
        """
        Take the hosts and the credentials of a configuration read again
        (C{SIGHUP}: a rotated password), for the fetches that begin from now on.
        """
        self.file_hosts = FileHosts(tuple(hosts))
        # (the advice logged may differ now: each host is logged again once)
        self._refused.clear()
        if credentials != self.credentials:
            self._access_logged = None
        self.credentials = credentials
        self._authorization = None if credentials is None else authorization(credentials)

    def _refusal(self, host: str, why: str, advice: str) -> HostRefused:
        """The error of a host refused, logged once a host (a thousand files on it: one line)."""
        if host not in self._refused:
            if len(self._refused) >= _REFUSALS_KEPT:
                self._refused.clear()
            self._refused.add(host)
            log.warn("Not fetching from {host}: {why}; {advice}", host=host, why=why, advice=advice)
        return HostRefused(why, advice)

    def _naming_advice(self, url: str) -> str:
        """What to set so that pypid fetches C{url} from a host at an address that is not public."""
        line = self._hosts_line(url)
        if line is None:
            return f"[{self._section}] hosts names host names and IPv4 addresses only"
        return f"if it is a file host you trust, set {line}"

    def _hosts_line(self, url: str) -> str | None:
        """
        The whole line of C{hosts} to write so that the host of C{url} is
        named: the entries in force (C{*} among them: a line of the new
        host alone drops the public file hosts), then its entry, without
        the upstream's own host (always named); L{None} for no http(s)
        URL, or an IPv6 address, which no entry names.
        """
        found = origin(url)
        if found is None or ":" in found[1]:
            return None
        entry, own = _entry_of(url), urlsplit(self.index_url).netloc.lower()
        kept = [e for e in self.file_hosts.entries if e not in (own, entry)]
        return f"[{self._section}] hosts = {' '.join([*kept, entry])}"

    def _access_refused(self, project: str, code: int) -> AccessRefused:
        """
        The error of the upstream refusing pypid, logged for the operator (never
        the secret) once until a page comes or the credentials change.
        """
        advice = access_advice(self._section, self.credentials is not None)
        if self._access_logged != code:
            self._access_logged = code
            log.warn("The upstream {url} answered {code} for {project}: {advice}",
                     url=self.index_url, code=code, project=project, advice=advice)
        return AccessRefused(f"the upstream answered {code} for {project}", advice)

    async def page(self, project: str, previous: UpstreamPage | None = None) -> UpstreamPage:
        """
        The upstream's page of a (normalized) project, its variant wheels
        given their data (PEP 825), taken over from C{previous} where unchanged.

        @raise UpstreamNotFound: the upstream answered 404 (or 410).
        @raise UpstreamError: for anything else that is not a usable page.
        """
        page = await self._turns.run(self._page, project)
        if page.variant_wheels and not page.quarantined:
            # (a quarantined page shows no file: nothing is read for it)
            page = await self._with_variant_data(page, previous)
        return page

    async def _with_variant_data(self, page: UpstreamPage,
                                 previous: UpstreamPage | None) -> UpstreamPage:
        """
        C{page} with its variant wheels' data, taken over from C{previous} or
        read from its index-level files; a file that cannot be read leaves its
        wheels out, logged, until a later refresh.
        """
        read: dict[str, VariantMetadata] = {}
        failed: dict[str, str] = {}

        async def one(entry: UpstreamFile) -> None:
            try:
                # (the reason is given after the file's name: L{completed})
                data = await self.small(entry.url, MAX_VARIANT_JSON, "the file")
                read[entry.sha256] = read_index_level(entry, data)
            except UpstreamNotFound:
                failed[entry.sha256] = "the upstream has no such file"
            except (UpstreamError, InvalidVariant) as e:
                failed[entry.sha256] = str(e)

        wanted = to_read(page, previous)
        if wanted:
            await gatherResults([ensureDeferred(one(entry)) for entry in wanted])
        done, waiting = completed(page, previous, read, failed)
        if waiting:
            log.warn("The upstream's page of {project} lists {count} variant wheels (PEP 825) "
                     "whose data pypid could not read; not listing them, such as: {examples}",
                     project=page.project, count=len(waiting), examples="; ".join(
                         f"{name}: {reason}" for name, reason in list(waiting.items())[:3]))
        return done

    async def small(self, url: str, limit: int, what: str) -> bytes:
        """
        A small file whole (a file's core metadata), up to C{limit} bytes,
        taking a turn as pages do.

        @raise UpstreamNotFound: 404 or 410.
        @raise UpstreamError: naming C{what}.
        """
        return await self._turns.run(self._small, url, limit, what)

    async def _small(self, url: str, limit: int, what: str) -> bytes:
        started = self._clock.seconds()
        return await self.read(await self.open(url), limit, started, what)

    async def _page(self, project: str) -> UpstreamPage:
        started = self._clock.seconds()
        url = self.index_url + project + "/"
        response, final = await self.get(url, {b"accept": [ACCEPT.encode("ascii")],
                                               b"accept-encoding": [b"gzip"]})
        if response.code != 200:
            bodies.discard(response, self._clock, self.timeout)
            if response.code in (404, 410):
                raise UpstreamNotFound(project)
            if response.code in (401, 403):
                raise self._access_refused(project, response.code)
            raise UpstreamError(f"the upstream answered {response.code} for {project}")
        self._access_logged = None
        body = await self.read(response, self._max_page_size, started,
                               f"the upstream's page of {project}")
        content_type = _header(response, b"content-type") or ""
        serial = _header(response, b"x-pypi-last-serial")
        refusal = None
        try:
            if self._run is not None:
                # A large page takes a while to parse: not on the reactor thread.
                parsed = self._run(parse_page, body, content_type, final, project, serial,
                                   self._max_entries)
                page = await parsed.addErrback(_refusal_without_frames)
            else:
                page = parse_page(body, content_type, final, project, serial, self._max_entries)
        except UpstreamPageError as e:
            refusal = f"the upstream's page of {project} is unusable: {e}"
        except Exception:
            # (a defect of the parser: logged in full once, answered 502 and
            # remembered like any failure, rather than a 500 at every request)
            log.failure("Reading the upstream's page of {project} failed", project=project)
            refusal = f"the upstream's page of {project} could not be read"
        # Raised out here, with the page's bytes let go of: raised in a
        # handler, the error would keep the parser's (its context), whose
        # frames hold the page in reference cycles only the cyclic collector
        # frees: refused pages of many megabytes stayed in memory a while.
        del body
        if refusal is not None:
            raise UpstreamError(refusal)
        if page.refused:
            log.info("The upstream's page of {project} has {count} entries pypid does not "
                     "pass on, such as: {examples}", project=project, count=page.refused,
                     examples="; ".join(f"{label}: {reason}" for label, reason in page.skipped[:3]))
        return page

    async def read(self, response: IResponse, limit: int, started: float, what: str) -> bytes:
        """
        Read a body whole, up to C{limit} bytes, with the idle deadline and
        what is left of the whole fetch's (from C{started}); errors name C{what}.
        """
        left = max(self.deadline - (self._clock.seconds() - started), 0.0)
        encoding = (_header(response, b"content-encoding") or "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            bodies.discard(response, self._clock, self.timeout)
            raise UpstreamError(f"{what} came in an encoding pypid did not ask for "
                                f"({quoted(encoding)})")
        d = bodies.read_body(response, limit, self._clock, self.timeout, gzipped=encoding == "gzip")
        timer = self._clock.callLater(left, d.cancel)
        try:
            return await d
        except CancelledError:
            raise TransferFailed(f"{what} took longer than {self.deadline:g} s "
                                 "([upstream] fetch_deadline)")
        except bodies.BodyTooLarge as e:
            raise UpstreamError(f"{what} was {e}")
        except bodies.BodyError as e:
            raise TransferFailed(f"{what} was {e}")
        finally:
            if timer.active():
                timer.cancel()

    async def open(self, url: str) -> IResponse:
        """
        Start downloading a file: the response, status 200, body unread. The
        file is asked for as it is: its bytes are checked against the page's hash.

        @raise UpstreamNotFound: 404 or 410.
        @raise UpstreamError: a host not allowed, or any other failure.
        """
        response, _ = await self.get(url, {b"accept-encoding": [b"identity"]})
        if response.code != 200:
            bodies.discard(response, self._clock, self.timeout)
            if response.code in (404, 410):
                raise UpstreamNotFound(url)
            kind = TransferFailed if response.code >= 500 else UpstreamError
            raise kind(f"the upstream answered {response.code} for a file")
        return response

    async def get(self, url: str, headers: dict[bytes, list[bytes]]) -> tuple[IResponse, str]:
        """C{(response, final URL)} of C{url}, a few redirects followed within the allowed hosts."""
        for _ in range(4):
            if not self.file_hosts.allows(url):
                host, line = _host(url), self._hosts_line(url)
                raise self._refusal(
                    host, f"{host} is not an upstream host pypid may use",
                    (f"set {line}" if line else f"name it in [{self._section}] hosts")
                    + f" (or add {ANY_PUBLIC}: any host at a public address)")
            response = await self._request(url, headers)
            if response.code not in _REDIRECTS:
                return response, url
            location = _header(response, b"location")
            bodies.discard(response, self._clock, self.timeout)
            if not location:
                raise UpstreamError(f"the upstream answered {response.code} with no Location")
            try:
                target = urljoin(url, location)
                _ = urlsplit(target).port  # (raises ValueError for a malformed one)
            except ValueError:
                raise UpstreamError("the upstream redirected to a malformed URL "
                                    f"{quoted(location)}")
            if url.startswith("https:") and not target.startswith("https:"):
                raise UpstreamError("the upstream redirected from https to plain http")
            url = target
        raise UpstreamError("the upstream redirected too many times")

    async def _request(self, url: str, headers: dict[bytes, list[bytes]]) -> IResponse:
        # (characters a URL may not hold, as a page or a redirect may give
        # them, are percent-encoded as treq did: the agent refuses them)
        target = quote(url, safe=_URL_SAFE).encode("ascii")
        if self._authorization is not None and origin(url) == self._origin:
            headers = {**headers, b"authorization": [self._authorization]}
        try:
            d = self._agent.request(b"GET", target, Headers(headers), None)
        except ValueError as e:
            raise UpstreamError(f"the URL {quoted(url)} cannot be fetched: {e}")
        timer = self._clock.callLater(self.timeout, d.cancel)
        try:
            return await d
        except Exception as e:
            if not timer.active():  # (it fired: it is cancelled only below)
                # (the agent wraps the cancellation: ResponseNeverReceived,
                # ConnectingCancelledError)
                raise TransferFailed(f"the upstream did not answer within {self.timeout:g} s")
            if isinstance(e, CancelledError):
                raise
            if isinstance(e, NotPublic):
                raise self._refusal(_entry_of(url), str(e), self._naming_advice(url))
            raise TransferFailed(f"cannot reach the upstream at {_host(url)}: "
                                 f"{bodies.describe(e)}")
        finally:
            if timer.active():
                timer.cancel()


#: What L{quote} leaves of a URL: its delimiters, and escapes already made.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"


def _refusal_without_frames(failure: Failure) -> Failure:
    """
    A page's refusal by the parser, without the frames of its traceback:
    they hold the page's bytes, in a reference cycle (with the awaited
    L{Deferred}) only the cyclic collector frees. Any other failure keeps
    them, to be logged in full.
    """
    if failure.check(UpstreamPageError):
        failure.cleanFailure()
    return failure


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _header(response: IResponse, name: bytes) -> str | None:
    values = response.headers.getRawHeaders(name)
    return values[0].decode("latin-1") if values else None
