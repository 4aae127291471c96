"""
The errors the HTTP layer turns into responses, one type per status.

Handlers raise these; one place (L{pypid.web.server.respond.send_error})
writes the status, the reason phrase and a plain-text body. twine shows
the reason phrase alone (the body only with C{--verbose}), so the message
goes there, reduced to printable ASCII (client-supplied text never reaches
a status line or header raw) and cut at L{REASON_LIMIT} characters. A
C{remedy} ends it, the message cut short before it when both do not fit,
so that neither pushes the other out; the body holds the whole.
"""

from __future__ import annotations

from collections.abc import Iterable


class HTTPError(Exception):
    """An error answer: C{code} and a short message for a person."""

    code = 500

    def __init__(self, message: str, headers: Iterable[tuple[bytes, bytes]] = (), *,
                 remedy: str | None = None) -> None:
        """@param remedy: what the person can do about it, as a clause; or L{None}."""
        super().__init__(message)
        self.message = message
        self.headers = tuple(headers)
        self.remedy = remedy

    @property
    def detail(self) -> str:
        """The whole answer's text: the message, then the remedy."""
        return self.message if self.remedy is None else f"{self.message}; {self.remedy}"

    @property
    def reason(self) -> bytes:
        """
        The reason phrase: the message, then the remedy; the message cut
        short when both do not fit (to no less than L{_LEAST_MESSAGE}).
        """
        if self.remedy is None:
            return reason_phrase(self.message)
        tail = f"; {self.remedy}"
        room = max(REASON_LIMIT - len(tail), _LEAST_MESSAGE)
        message = self.message
        if len(message) > room:
            message = message[: room - 3] + "..."
        return reason_phrase(message + tail)


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


#: The longest reason phrase pypid sends.
REASON_LIMIT = 200

#: The least of a message a reason keeps before its remedy.
_LEAST_MESSAGE = 80


def reason_phrase(message: str, limit: int = REASON_LIMIT) -> bytes:
    """A message as a status line may hold it: printable ASCII, at most C{limit} characters."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in message)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 3] + "..."
    return cleaned.encode("ascii")
