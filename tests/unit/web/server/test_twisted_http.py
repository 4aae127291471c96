"""
L{pypid.web.server.twisted_http.write_now}: a whole answer goes into the socket at once, and
what the socket cannot take goes the usual way, in order.
"""

import socket

from twisted.internet.protocol import Protocol
from twisted.internet.tcp import Connection
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from pypid.web.server.twisted_http import write_now


class WriteNowTests(SynchronousTestCase):
    """L{write_now} on a real socket pair, the reactor in memory."""

    def setUp(self) -> None:
        ours, self.peer = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(self.peer.close)
        self.peer.setblocking(False)
        self.reactor = MemoryReactor()
        self.connection = Connection(ours, Protocol(), self.reactor)
        self.connection.connected = 1

    def received(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = self.peer.recv(1 << 16)
            except BlockingIOError:
                return b"".join(chunks)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def test_sent_at_once(self) -> None:
        """With nothing unsent, the answer is in the socket and the reactor watches nothing."""
        write_now(self.connection, b"HTTP/1.1 200 OK\r\n\r\nhello")
        self.assertEqual(self.received(), b"HTTP/1.1 200 OK\r\n\r\nhello")
        self.assertEqual(self.reactor.getWriters(), [])
        self.assertEqual(self.connection._tempDataLen, 0)

    def test_behind_unsent(self) -> None:
        """Behind bytes the connection still holds, the answer waits its turn in the buffer."""
        self.connection.write(b"first ")
        write_now(self.connection, b"second")
        self.assertEqual(self.received(), b"")
        self.connection.doWrite()
        self.assertEqual(self.received(), b"first second")

    def test_full_socket(self) -> None:
        """What a full socket does not take is buffered, and sent when it is writable."""
        self.connection.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        data = bytes(range(256)) * 400
        write_now(self.connection, data)
        self.assertIn(self.connection, self.reactor.getWriters())
        self.assertGreater(self.connection._tempDataLen, 0)
        got = self.received()
        self.assertLess(len(got), len(data))
        while len(got) < len(data):
            self.connection.doWrite()
            got += self.received()
        self.assertEqual(got, data)

    def test_closed_peer(self) -> None:
        """A send that fails leaves the bytes to the usual write, which finds the loss."""
        self.peer.close()
        write_now(self.connection, b"x" * 100)
        self.assertIn(self.connection, self.reactor.getWriters())

    def test_other_transport(self) -> None:
        """A transport that is not a plain connection (TLS, a test's) is written as usual."""
        transport = StringTransport()
        write_now(transport, b"answer")
        self.assertEqual(transport.value(), b"answer")
