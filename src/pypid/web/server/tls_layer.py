"""
The TLS layer of the C{https:} listeners: Twisted's (over pyOpenSSL, each connection's context
from L{pypid.tls.ServerTLS}), except that a connection whose client ends the TLS session in the
middle of an answer ends at once.

When a client's bytes end the session (a record OpenSSL refuses, or its close_notify),
Twisted's layer sends its alert or close_notify and asks the TCP transport to close once its
buffer is sent. Mid-answer that buffer holds part of it and the channel is the transport's
producer: the transport waits for a client that may never read it, and once the buffer drains
it resumes the paused channel rather than closing, while the layer throws away what the
channel writes. The connection stayed open until the channel's next deadline: 30 s after the
answer for a client that read, the send timeout for one that did not. Here, once the
handshake is done:

  - a record OpenSSL refuses aborts the connection (the client is broken or hostile);
  - the client's close_notify with nothing unsent gets Twisted's close, at once (this side's
    close_notify, then the FIN); with part of an answer unsent, it aborts the connection, as
    a client's FIN ends an answer on plain HTTP.

A handshake that fails keeps Twisted's close, whose alert (a version or suite refused) tells
the client why, and holds no answer.
"""

from __future__ import annotations

from typing import cast

from OpenSSL import SSL
from twisted.internet.interfaces import ITCPTransport
from twisted.logger import Logger
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory

from pypid.web.server.twisted_http import unsent_bytes

log = Logger()


class ClosingTLSTransport(BufferingTLSTransport):
    """
    Twisted's TLS layer, aborting a connection whose client ended the TLS session mid-answer.
    It reads two attributes Twisted documents but does not make public (checked with Twisted
    26.10; L{tests.unit.test_tls_layer} fails if they change): C{_handshakeDone}, and
    C{_lostTLSConnection}, set when the client's bytes ended the session.
    """

    def dataReceived(self, data: bytes) -> None:
        """The client's bytes, through Twisted's layer; then the abort the module describes."""
        if not self._handshakeDone or self._lostTLSConnection:
            super().dataReceived(data)
            return
        unsent = unsent_bytes(self.transport) or 0
        super().dataReceived(data)
        if not self._lostTLSConnection:
            return
        closed = bool(self.getHandle().get_shutdown() & SSL.RECEIVED_SHUTDOWN)
        if closed and not unsent:
            return
        if closed:
            log.info("Dropping a TLS connection its client closed with {unsent} bytes of its "
                     "answer unsent", unsent=unsent)
        else:
            log.info("Dropping a TLS connection whose client sent a record TLS refused")
        cast(ITCPTransport, self.transport).abortConnection()


class ClosingTLSFactory(TLSMemoryBIOFactory):
    """Twisted's TLS factory, whose connections are L{ClosingTLSTransport}s."""

    protocol = ClosingTLSTransport
