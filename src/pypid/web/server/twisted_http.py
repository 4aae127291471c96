"""
What pypid reads and sets inside Twisted's HTTP server that Twisted does not
make public.

A request's body is chosen in C{gotLength}, before Twisted hands the
request to a resource; at that moment the request line is known only to
the channel, as private attributes. Whether a body follows the headers,
how many bytes of a request's head the channel has counted, and whether
the channel still handles a request, are private too, and so is the
switch that makes Twisted parse a form body into C{request.args}; and so
is the parser's state between requests, which the express lane reads and
keeps as Twisted would when it answers a request from its bytes; and so
is how much of an answer a TCP transport still holds unsent. This
module is the one place that touches them (checked with Twisted 24.7 to
26.10); the rest of L{pypid.web} calls these functions.
"""

from __future__ import annotations

from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import ITransport
from twisted.protocols.policies import ProtocolWrapper
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


def between_requests(channel: HTTPChannel) -> bool:
    """
    Whether C{channel} is between requests, its parser holding nothing: no
    request under way or queued, no partial line buffered, not reading a
    body, the connection kept alive, and no answer waiting for the
    transport to drain.
    """
    return bool(not channel.requests and not channel._buffer and channel.line_mode
            and channel.persistent and not channel._waitingForTransport)


def waiting_for_transport(channel: HTTPChannel) -> bool:
    """Whether C{channel}'s transport paused it: its buffer is full, an answer still leaving."""
    return channel._waitingForTransport


def write_between_requests(channel: HTTPChannel, data: bytes) -> None:
    """
    Write a whole answer to a request the parser never saw (read from its
    bytes by the express lane), leaving C{channel} as Twisted leaves it
    after answering a request it parsed.

    The write happens as if the request were under way: a transport whose
    buffer fills then only marks the channel as waiting for it, as during
    any answer, rather than pausing the reading of the connection
    (L{HTTPChannel.pauseProducing}). And the parser's count of empty lines
    skipped before a request line starts again, as at the end of any
    request (L{HTTPChannel.allContentReceived}).
    """
    channel._handlingRequest = True
    try:
        channel.write(data)
    finally:
        channel._handlingRequest = False
    channel._HTTPChannel__first_line = 1  # type: ignore[attr-defined]


def parse_form_body(request: Request, parse: bool) -> None:
    """Whether Twisted parses C{request}'s form body into C{request.args}."""
    request._parsePOSTFormSubmission = parse


def unsent_bytes(transport: ITransport | None) -> int | None:
    """
    How many bytes C{transport} holds that the kernel has not taken yet: a
    TCP (or Unix) transport's buffer, seen through the layers over one (TLS,
    the PROXY protocol's); L{None} for a transport of another kind. Twisted tells a producer only
    when that buffer is full and when it is empty again; a client that
    reads slowly drains it a little at a time, which only this shows.
    """
    while isinstance(transport, ProtocolWrapper):
        transport = transport.transport
    if not isinstance(transport, FileDescriptor):
        return None
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
