"""
What every small Klein app of L{pypid.web} shares: errors answered in one way (each area's
C{app = Klein()} calls L{answer_errors}), and the few ways a route reads its request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import werkzeug.exceptions
from klein import Klein
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from pypid.core.dists.names import InvalidName, canonical_version
from pypid.core.util.http_errors import BadRequest, HTTPError, NotFound, TooLarge
from pypid.web.server.respond import send_error, wrong_method_error

_F = TypeVar("_F", bound=Callable[..., Any])


def answer_errors(app: Klein) -> None:
    """Make C{app} answer every L{HTTPError}, and a path or method it has no route for, in text."""

    # (self: the area whose app it is, as Klein calls a method's handlers)
    @app.handle_errors(HTTPError)
    def http_error(self: object, request: IRequest, failure: Failure) -> bytes:
        return send_error(request, failure.value)

    @app.handle_errors(werkzeug.exceptions.NotFound)
    def no_route(self: object, request: IRequest, failure: Failure) -> bytes:
        return send_error(request, NotFound("no such page"))

    @app.handle_errors(werkzeug.exceptions.MethodNotAllowed)
    def wrong_method(self: object, request: IRequest, failure: Failure) -> bytes:
        return send_error(request, wrong_method_error(request, failure.value.valid_methods))


def route_each(app: Klein, paths: Iterable[bytes], **kwargs: Any) -> Callable[[_F], _F]:
    """
    Route each of C{paths} (bytes, as the site compares them with a request's: L{UPLOAD_PATHS})
    to the decorated function of C{app}: one definition of a set of paths serves both.
    """

    def decorate(f: _F) -> _F:
        for path in sorted(paths):
            app.route(path.decode("ascii"), **kwargs)(f)
        return f

    return decorate


def send_json(request: IRequest, value: Any) -> bytes:
    """Answer C{value} as JSON that no cache keeps (it is about now, or a secret)."""
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(value).encode("utf-8")


def bounded_body(request: IRequest, limit: int) -> bytes:
    """The request's body if it holds at most C{limit} bytes (no more is read); else L{TooLarge}."""
    content = request.content
    content.seek(0)
    body: bytes = content.read(limit + 1)
    if len(body) > limit:
        raise TooLarge(f"the request body is larger than {limit >> 10} KiB")
    return body


def json_object(request: IRequest, limit: int) -> dict[str, Any]:
    """The request's body as a JSON object (empty: C{{}}) of at most C{limit} bytes, else 400."""
    try:
        data = json.loads(bounded_body(request, limit) or b"{}")
    except TooLarge:
        raise BadRequest(f"the body is larger than {limit} bytes")
    except (ValueError, RecursionError):
        raise BadRequest("the body is not JSON")
    if not isinstance(data, dict):
        raise BadRequest("the body is not a JSON object")
    return data


def is_form(request: IRequest) -> bool:
    """Whether the request's body is a urlencoded form (the console's)."""
    kind = request.getHeader(b"content-type") or b""
    return kind.split(b";")[0].strip().lower() == b"application/x-www-form-urlencoded"


def form_field(request: IRequest, name: str) -> str:
    """A form field (urlencoded body or query) as text, or C{""}."""
    values = request.args.get(name.encode("ascii"))
    if not values:
        return ""
    try:
        return values[0].decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadRequest(f"{name}: not valid UTF-8")


def requested_version(text: str) -> str:
    """The normalized form of a version from a request (C{1.00} finds C{1.0})."""
    try:
        return canonical_version(text)
    except InvalidName:
        raise NotFound(f"no such version: {text!r} is not a valid version")
