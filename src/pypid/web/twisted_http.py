"""
What pypid reads and sets inside Twisted's HTTP server that Twisted does not
make public.

A request's body is chosen in C{gotLength}, before Twisted hands the
request to a resource; at that moment the request line is known only to
the channel, as private attributes. Whether a body follows the headers,
how many bytes of a request's head the channel has counted, and whether
the channel still handles a request, are private too, and so is the
switch that makes Twisted parse a form body into C{request.args}. This
module is the one place that touches them (checked with Twisted 24.7 to
26.10); the rest of L{pypid.web} calls these functions.
"""

from __future__ import annotations

from twisted.web.http import HTTPChannel, Request


def request_line(channel: HTTPChannel, default_method: bytes | None = None,
                 default_target: bytes = b"") -> tuple[bytes | None, bytes]:
    """
    The method and target of the request whose headers C{channel} has just
    read, before the request itself knows them.
    """
    return (getattr(channel, "_command", default_method),
            getattr(channel, "_path", default_target))


def request_version(channel: HTTPChannel) -> bytes | None:
    """The HTTP version of the request whose headers C{channel} has just read."""
    return getattr(channel, "_version", None)


def head_bytes(channel: HTTPChannel) -> int:
    """How many bytes of the current request line and headers C{channel} has counted."""
    return channel._receivedHeaderSize


class BadRequestHook(HTTPChannel):
    """
    An C{HTTPChannel} to subclass: Twisted's answer to a request
    head it cannot take (too large in all, a malformed line, too many
    headers, a bad length or chunk) is a private method, a bare C{400}
    with no reason; this makes it call the subclass's C{bad_request()}.
    """

    def _respondToBadRequestAndDisconnect(self) -> None:
        self.bad_request()

    def bad_request(self) -> None:
        """Answer a request head Twisted refused, and close."""
        raise NotImplementedError


def body_follows(channel: HTTPChannel) -> bool:
    """Whether a body follows the headers just read: a length, or chunks."""
    return bool(channel.length) or (channel.length is None
                                    and channel._transferDecoder is not None)


def handling_request(channel: HTTPChannel) -> bool:
    """Whether C{channel} is still answering a request."""
    return channel._handlingRequest


def parse_form_body(request: Request, parse: bool) -> None:
    """Whether Twisted parses C{request}'s form body into C{request.args}."""
    request._parsePOSTFormSubmission = parse
