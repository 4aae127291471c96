"""
What pypid reads and sets inside Twisted's HTTP server that Twisted does not make public: the
request line while the body is chosen (in C{gotLength}, only the channel knows it), whether a
body follows, the bytes of a head counted, whether the channel still handles a request, the
switch that parses a form body into C{request.args}, the parser's state between requests
(which the express lane reads and keeps as Twisted would), what a TCP transport holds
unsent, a write to its socket at once, and a wait for it to be writable again. This module
is the one place that touches them (checked with Twisted 24.7 to 26.10).
"""

from __future__ import annotations

import fcntl
import struct
import termios
from typing import cast

from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IPushProducer, ITransport
from twisted.internet.tcp import Connection
from twisted.protocols.policies import ProtocolWrapper
from twisted.web.http import HTTPChannel, Request


def request_line(channel: HTTPChannel, default_method: bytes | None = None,
                 default_target: bytes = b"") -> tuple[bytes | None, bytes]:
    """The method and target of the request whose headers C{channel} has just read."""
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
    An C{HTTPChannel} to subclass: Twisted's answer to a request head it cannot take (too
    large, malformed, a bad length or chunk) is a private method, a bare C{400} with no
    reason; this makes it call the subclass's C{bad_request()}.
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
    Whether C{channel} is between requests, its parser holding nothing: no request under way
    or queued, no partial line, no body, kept alive, no answer waiting for the transport.
    """
    return bool(not channel.requests and not channel._buffer and channel.line_mode
            and channel.persistent and not channel._waitingForTransport)


def waiting_for_transport(channel: HTTPChannel) -> bool:
    """Whether C{channel}'s transport paused it: its buffer is full, an answer still leaving."""
    return channel._waitingForTransport


def write_between_requests(channel: HTTPChannel, data: bytes) -> None:
    """
    Write a whole answer to a request the parser never saw (the express lane's), leaving
    C{channel} as Twisted leaves it after a request it parsed. The write happens as if the
    request were under way: a transport whose buffer fills only marks the channel as waiting,
    rather than pausing the reading of the connection. And the parser's count of empty lines
    before a request line starts again, as at the end of any request.
    """
    channel._handlingRequest = True
    try:
        write_now(channel.transport, data)
    finally:
        channel._handlingRequest = False
    channel._HTTPChannel__first_line = 1  # type: ignore[attr-defined]


def write_now(transport: ITransport | None, data: bytes) -> None:
    """
    Write C{data} to C{transport}: into its socket at once when it is a plain TCP (or Unix)
    connection that holds nothing unsent, as nginx writes. Twisted's C{write} only buffers and
    has the reactor watch the socket until it is writable: two C{epoll_ctl} calls and a turn of
    the loop more for each answer, a fifth of the reactor's busy time on a kept page
    (docs/performance.rst, "The hot path per core").
    What the socket does not take at once (a full buffer, an error) is written the usual way.
    """
    connection = plain_socket(transport)
    if connection is not None and len(data) <= connection.SEND_LIMIT:
        try:
            sent = connection.socket.send(data)
        except OSError:
            sent = 0  # (EAGAIN, EINTR, a reset: the usual write finds out)
        if sent == len(data):
            return
        data = data[sent:]
    assert transport is not None
    transport.write(data)


def plain_socket(transport: ITransport | None, drained: bool = True) -> Connection | None:
    """
    C{transport} when it is a plain TCP (or Unix) connection whose socket may be written to
    directly (no TLS over it, open, and with C{drained}, nothing of its own unsent), else
    L{None}.
    """
    if (isinstance(transport, Connection) and not transport.TLS and transport.connected
            and not transport.disconnecting and not transport._writeDisconnected
            and not getattr(transport, "_aborting", False)
            and not (drained and (transport.dataBuffer or transport._tempDataBuffer))):
        return transport
    return None


def wait_until_writable(connection: Connection) -> None:
    """
    Have the connection's producer (its channel) paused until its socket takes bytes again,
    as when Twisted's own buffer is full: the channel then watches the answer's progress
    (its C{send_timeout}) and pauses the request's producer, and resumes both once the
    socket is writable. For a producer that writes to the socket itself (L{os.sendfile}).
    """
    if connection.producer is not None and not connection.producerPaused:
        connection.producerPaused = True
        cast(IPushProducer, connection.producer).pauseProducing()
    connection.startWriting()


def parse_form_body(request: Request, parse: bool) -> None:
    """Whether Twisted parses C{request}'s form body into C{request.args}."""
    request._parsePOSTFormSubmission = parse


def unsent_bytes(transport: ITransport | None) -> int | None:
    """
    How many bytes C{transport} holds that the kernel has not taken yet: a TCP (or Unix)
    transport's buffer, through the layers over one (TLS, PROXY); L{None} for another kind.
    Twisted tells a producer only when that buffer is full and when it is empty again; a
    client that reads slowly drains it a little at a time, which only this shows.
    """
    transport = _innermost(transport)
    if not isinstance(transport, FileDescriptor):
        return None
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def queued_in_kernel(transport: ITransport | None) -> int:
    """
    How many bytes the kernel holds unsent on C{transport}'s socket (Linux's C{SIOCOUTQ}), 0
    where it cannot say. An answer the kernel sends from a file (L{os.sendfile}) fills the
    socket's buffer, which reads writable again only once a third of it left: a client that
    reads slowly takes bytes all the while, and only this shows it.
    """
    sock = getattr(_innermost(transport), "socket", None)
    if sock is None:
        return 0
    try:
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):
        return 0
    return int(struct.unpack("i", queued)[0])


def _innermost(transport: ITransport | None) -> ITransport | None:
    """The transport under every layer over it (TLS, PROXY): the connection itself."""
    while isinstance(transport, ProtocolWrapper):
        transport = transport.transport
    return transport
