"""
Writing answers: pre-rendered pages, and errors. These run on every request, so they only set
headers and pick bytes prepared earlier. Conditional requests (C{If-None-Match}) and
compression (pre-compressed pages) are handled here, once; a stored object's answer is
L{pypid.web.serving.stored_objects}'s. An answer that comes later (a relay, an object fetched
first, a read gate) is completed by L{finish_later}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast
from urllib.parse import quote

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from pypid.auth.basic import www_authenticate_header
from pypid.core.access.origins import origin_of
from pypid.core.formats.negotiate import accepts_gzip, choose
from pypid.core.indexes.render import Page
from pypid.core.util.http_errors import (
    HTTPError,
    MethodNotAllowed,
    NotAcceptable,
    Unauthorized,
    Unavailable,
    reason_phrase,
)
from pypid.web.identity.gates import Gates
from pypid.web.identity.request_auth import IRequestAuth

#: (the namespace these lines always had, before the module moved: log filters keep matching)
log = Logger(namespace="pypid.web.serving.respond")

#: What C{render} returns: the body, or L{NOT_DONE_YET} (an L{int}) when finished later.
Rendered = bytes | int

#: An answer that may come later: what C{render} returns, or a L{Deferred} of it.
Answer = bytes | int | Deferred[Any]

NOT_ACCEPTABLE = (
    "Accept: none of the requested media types can be served; this index serves "
    "text/html, application/vnd.pypi.simple.v1+html and application/vnd.pypi.simple.v1+json"
)

PAGE_CACHE_CONTROL = b"max-age=0, must-revalidate"
TEXT = b"text/plain; charset=utf-8"

#: Seconds a client should wait before retrying when the storage is down.
RETRY_AFTER = b"30"


def etag_matches(header_values: Sequence[bytes], etag: bytes) -> bool:
    """Whether an C{If-None-Match} header matches C{etag} (weak comparison, as RFC 9110 asks)."""
    for value in header_values:
        for candidate in value.split(b","):
            candidate = candidate.strip()
            if candidate.startswith((b"W/", b"w/")):
                candidate = candidate[2:]
            if candidate == etag or candidate == b"*":
                return True
    return False


def send_page(request: IRequest, page: Page) -> bytes:
    """Answer with a pre-rendered L{Page}: gzip when the client takes it, 304 when it has it."""
    headers = request.responseHeaders
    gz = page.gzipped is not None and accepts_gzip(
        request.requestHeaders.getRawHeaders(b"accept-encoding", (None,))[0])
    # (a page has a gzip_etag whenever it has a gzipped body)
    etag: bytes = page.gzip_etag if gz else page.etag  # type: ignore[assignment]
    headers.setRawHeaders(b"content-type", [page.content_type])
    headers.setRawHeaders(b"etag", [etag])
    if page.serial is not None:
        # (as the public index: mirrors refuse a page older than its listing)
        headers.setRawHeaders(b"x-pypi-last-serial", [b"%d" % page.serial])
    if getattr(request, "received_cookies", None) and _for_a_session(request):
        # (a page of a person's view, by their session: no shared cache keeps it)
        headers.setRawHeaders(b"cache-control", [b"private, " + PAGE_CACHE_CONTROL])
        headers.setRawHeaders(b"vary", [b"Accept, Accept-Encoding, Cookie"])
    else:
        headers.setRawHeaders(b"cache-control", [PAGE_CACHE_CONTROL])
        headers.setRawHeaders(b"vary", [b"Accept, Accept-Encoding"])
    inm = request.requestHeaders.getRawHeaders(b"if-none-match")
    if inm and etag_matches(inm, etag):
        request.setResponseCode(304)
        return b""
    if gz:
        headers.setRawHeaders(b"content-encoding", [b"gzip"])
        return page.gzipped  # type: ignore[return-value]  # (not None: gz says so)
    return page.body


def _for_a_session(request: IRequest) -> bool:
    """Whether a browser session stood for the reader of C{request}."""
    auth = IRequestAuth(request, None)
    return auth is not None and auth.session is not None


def send_text(request: IRequest, code: int, message: str,
              headers: Iterable[tuple[bytes, bytes]] = (), reason: bytes | None = None) -> bytes:
    """
    Answer with a short plain-text message, C{headers} of the server's own making, and an
    error's C{reason} phrase (by default the message's).
    """
    request.setResponseCode(code, (reason or reason_phrase(message)) if code >= 400 else None)
    request.responseHeaders.setRawHeaders(b"content-type", [TEXT])
    request.responseHeaders.setRawHeaders(b"cache-control", [b"no-store"])
    for name, value in headers:
        request.responseHeaders.setRawHeaders(name, [value])
    return message.encode("utf-8") + b"\n"


def send_error(request: IRequest, error: HTTPError) -> bytes:
    """
    Answer with an L{HTTPError}: its status, reason phrase and message; a 401 with its
    challenge, but to a person's browser opening a page for people, a 303 to the login form.
    """
    headers = list(error.headers)
    if isinstance(error, Unauthorized):
        if wants_login_form(request):
            return send_to_login(request)
        headers.append((b"www-authenticate", www_authenticate_header()))
    return send_text(request, error.code, error.detail, headers, reason=error.reason)


def wants_login_form(request: IRequest) -> bool:
    """
    Whether a refused anonymous request is a person opening a page for people in a browser
    (a C{GET} or C{HEAD} with C{Sec-Fetch-Dest: document}, no credentials): sent to the login
    form, rather than a challenge that makes the browser ask for a password in its own dialog.
    Tools send no C{Sec-Fetch-Dest}: they get the 401 and its challenge.
    """
    headers = request.requestHeaders
    auth = IRequestAuth(request, None)
    return (auth is not None and auth.for_people and request.method in (b"GET", b"HEAD")
            and headers.getRawHeaders(b"sec-fetch-dest", (None,))[0] == b"document"
            and not headers.hasHeader(b"authorization"))


def send_to_login(request: IRequest) -> bytes:
    """
    A 303 to the login form, which sends the browser back to this page once logged in;
    relative, so a proxy that serves pypid under a path of its own keeps it.
    """
    target = quote(request.uri.decode("utf-8", "replace"), safe="/")
    return see_other(request, f"{root_of(request)}login?next={target}",
                     "Log in to read this page\n")


def root_of(request: IRequest) -> str:
    """The way back to the site's root from C{request}'s page (C{../} from C{/console/x})."""
    return "../" * (request.path.count(b"/") - 1)


def see_other(request: IRequest, location: str, text: str) -> bytes:
    """A 303 to C{location} (its unsafe characters escaped), kept by no cache, with C{text}."""
    request.setResponseCode(303)
    headers = request.responseHeaders
    headers.setRawHeaders(b"location", [quote(location, safe="/?=&%.~-_:").encode("ascii")])
    headers.setRawHeaders(b"cache-control", [b"no-store"])
    headers.setRawHeaders(b"content-type", [TEXT])
    return text.encode("utf-8")


def storage_unavailable(error: BaseException) -> Unavailable:
    """The answer to a L{StorageError}: 503, and when to try again."""
    return Unavailable(f"the storage is unavailable: {error}", [(b"retry-after", RETRY_AFTER)])


def finish_later(request: Request, answer: Deferred[Any]) -> int:
    """
    Complete an answer that comes later: C{answer} fires with the body, or with L{NOT_DONE_YET}
    when its maker finishes the request itself, or fails with an L{HTTPError}, answered as
    usual. Nothing is written once the client has gone. L{NOT_DONE_YET}, for C{render}.
    """
    answer.addErrback(_error_answer, request)
    answer.addCallback(_write_answer, request)
    answer.addErrback(_answer_failed, request)
    return NOT_DONE_YET


def wrong_method_error(request: IRequest, allowed: Iterable[str] | None) -> MethodNotAllowed:
    """The L{MethodNotAllowed} for C{request}, naming the methods C{allowed}."""
    allowed = ", ".join(allowed or ())
    return MethodNotAllowed(
        f"this URL does not take {request.method.decode('ascii', 'replace')}; "
        f"it takes {allowed}", [(b"allow", allowed.encode("ascii"))])


def simple_post_error(request: IRequest, base: str) -> MethodNotAllowed:
    """
    The 405 of a C{POST} to an index's simple pages (the index at C{base}): an upload client
    given the URL pip reads (C{twine --repository-url .../simple/}) is told the URL that takes
    uploads, as uv hints itself. (The method is named, not read: the site answers a large one
    before its request line is set on the request.)
    """
    return MethodNotAllowed("this URL does not take POST; it takes GET, HEAD",
                            [(b"allow", b"GET, HEAD")],
                            remedy=f"uploads go to the index's root URL, "
                                   f"{absolute_url(request, base)}")


def absolute_url(request: IRequest, path: str) -> str:
    """
    C{path} (one of ours, from C{/}) as the client reached the server, under its C{Host} and
    scheme; C{path} itself when a URL already (under a base URL) or C{Host} is no host name.
    """
    if "://" in path:
        return path
    origin = origin_of(request.getHeader(b"host"), request.isSecure())
    return path if origin is None else origin + path


class ReadResource(Resource):
    """
    A leaf resource that is only read: C{GET} and C{HEAD} go to C{render_GET}, anything else
    gets a plain-text 405 like every other error of pypid's (Twisted's would be HTML).
    """

    isLeaf = True

    def render(self, request: Request) -> Rendered:
        """Dispatch by method."""
        if request.method in (b"GET", b"HEAD"):
            return self.render_GET(request)
        return send_error(request, wrong_method_error(request, ["GET", "HEAD"]))

    def render_GET(self, request: Request) -> Rendered:
        """Answer a C{GET} or a C{HEAD}."""
        raise NotImplementedError


def answer_gated(access: Gates, request: Request,
                 answer: Callable[[Request], Answer], index: str) -> Rendered:
    """
    Run C{answer(request)} once the read gate of C{index} allows it, turning L{HTTPError}s into
    answers; an answer that comes later finishes the request when it fires.
    """
    gate = access.gate_read(request, index)
    if gate is None:
        try:
            body = answer(request)
        except HTTPError as e:
            return send_error(request, e)
        if isinstance(body, Deferred):
            return finish_later(request, body)
        return body
    return finish_later(request, gate.addCallback(lambda _: answer(request)))


def connected(request: IRequest) -> bool:
    """Whether the client is still there: Twisted drops a lost request's channel."""
    return getattr(request, "channel", True) is not None


def _error_answer(failure: Failure, request: IRequest) -> bytes:
    failure.trap(HTTPError)
    return send_error(request, failure.value)


def _write_answer(body: Rendered, request: Request) -> None:
    if body is NOT_DONE_YET or not connected(request):
        return
    data = cast(bytes, body)  # (NOT_DONE_YET, the one int, is out)
    # (a 304 has no body of its own, so no length to give)
    if request.code != 304 and not request.responseHeaders.hasHeader(b"content-length"):
        request.setHeader(b"content-length", b"%d" % len(data))
    request.write(data)
    request.finish()


def _answer_failed(failure: Failure, request: Request) -> None:
    if not connected(request):
        log.failure("Failed to answer {uri}, whose client has gone", failure, uri=request.uri)
        return
    request.processingFailed(failure)


def asked_kind(request: IRequest) -> str | None:
    """The page kind (HTML, JSON) C{Accept} or C{?format=} asks for; L{None}: none served."""
    fmt = (request.args or {}).get(b"format")  # (its "+" arrives decoded as a space)
    return choose(request.requestHeaders.getRawHeaders(b"accept", (None,))[0],
                  fmt[0].replace(b" ", b"+") if fmt else None)


def page_kind(request: IRequest) -> str:
    """L{asked_kind}, or L{NotAcceptable} if none."""
    if (kind := asked_kind(request)) is None:
        raise NotAcceptable(NOT_ACCEPTABLE)
    return kind


def send_moved(request: IRequest, base: str, path: str) -> bytes:
    """
    A permanent redirect to one of our own paths (C{base} + C{path}; a normalized name only
    ever holds [a-z0-9-]), keeping the query (C{?format=}).
    """
    target = base + path
    query = request.uri.partition(b"?")[2]
    location = target.encode("ascii") + (b"?" + query if query else b"")
    request.setResponseCode(301)
    request.responseHeaders.setRawHeaders(b"location", [location])
    request.responseHeaders.setRawHeaders(b"content-type", [b"text/plain; charset=utf-8"])
    return b"Moved to " + target.encode("ascii") + b"\n"
