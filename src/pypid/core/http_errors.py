"""
The errors the HTTP layer turns into responses, one type per status.

Handlers raise these; one place (L{pypid.web.respond.send_error}) writes the
status, the reason phrase and a plain-text body. twine shows the reason
phrase to its user, so the message goes there too, reduced to printable
ASCII: client-supplied text never reaches a status line or header raw.
"""

from __future__ import annotations

from collections.abc import Iterable


class HTTPError(Exception):
    """An error answer: C{code} and a short message for a person."""

    code = 500

    def __init__(self, message: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.headers = tuple(headers)


class BadRequest(HTTPError):
    """The request is malformed or its content refused (400)."""

    code = 400


class Unauthorized(HTTPError):
    """No credentials, or wrong ones (401, with a Basic challenge)."""

    code = 401


class Forbidden(HTTPError):
    """Known user, no right to do this (403)."""

    code = 403


class NotFound(HTTPError):
    """No such project, file or page (404)."""

    code = 404


class MethodNotAllowed(HTTPError):
    """This URL does not take that method (405)."""

    code = 405


class Conflict(HTTPError):
    """The change would clash with what is there (409): a promoted filename taken."""

    code = 409


class NotAcceptable(HTTPError):
    """None of the media types in Accept can be served (406)."""

    code = 406


class Gone(HTTPError):
    """The file existed and was deleted (410)."""

    code = 410


class TooLarge(HTTPError):
    """The upload is over the configured size (413)."""

    code = 413


class TooManyRequests(HTTPError):
    """Too many failed attempts; wait (429, with Retry-After)."""

    code = 429


class BadGateway(HTTPError):
    """The upstream index failed, or sent what its page did not promise (502)."""

    code = 502


class Unavailable(HTTPError):
    """The storage cannot take the request now; try again later (503)."""

    code = 503


def reason_phrase(message: str, limit: int = 200) -> bytes:
    """
    Reduce a message to what may stand in an HTTP status line: printable
    ASCII, no CR or LF, at most C{limit} characters.
    """
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in message)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 3] + "..."
    return cleaned.encode("ascii")
