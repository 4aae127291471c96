"""
A TCP transport in memory with Twisted's own buffer and flow control
(L{FileDescriptor}'s, as a real connection has): the kernel takes only as
much as the test lets the client read (L{MemorySocket.take}). The tests of
the channel's send timeout and of the TLS layer's closes drive it with a
L{twisted.internet.task.Clock}, with a large answer streamed through it
(L{Stream}), and TLS records moved between the two (L{pump}).
"""

from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from tests.harness.tls import PEER


class MemorySocket(FileDescriptor):
    """
    A TCP transport in memory: the kernel (L{writeSomeData}) takes only as
    much as the client has read (L{take}), and hands it to C{peer} when
    there is one.

    @ivar aborted: whether the connection was aborted (a reset).
    @ivar closed: whether it was closed in order, its buffer sent (a FIN).
    """

    def __init__(self, clock, peer=None):
        FileDescriptor.__init__(self, clock)
        self.connected = True
        self.peer = peer
        self.room = 0
        self.writing = False
        self.aborted = False
        self.closed = False

    def writeSomeData(self, data):
        taken = min(len(data), self.room)
        self.room -= taken
        if taken and self.peer is not None:
            self.peer(bytes(data[:taken]))
        return taken

    def take(self, size):
        """
        The client reads C{size} bytes: the kernel takes that many more, as
        a reactor would, writing while there is room and something to write.
        """
        self.room += size
        while self.writing and self.room:
            self.doWrite()

    def unsent(self):
        """How many bytes Twisted's buffer holds that the kernel has not taken."""
        return len(self.dataBuffer) - self.offset + self._tempDataLen

    def _postLoseConnection(self):
        """The buffer is sent and a close was asked for: the FIN goes out."""
        self.closed = True
        return FileDescriptor._postLoseConnection(self)

    def startWriting(self):
        """There is something to write (the test's L{take} writes it)."""
        self.writing = True

    def stopWriting(self):
        """Nothing left to write."""
        self.writing = False

    def startReading(self):
        """(no reactor)"""

    def stopReading(self):
        """(no reactor)"""

    def abortConnection(self):
        self.aborted = True

    def setTcpNoDelay(self, enabled):
        """(asked by the channel through the TLS layer)"""

    def getPeer(self):
        return PEER

    def getHost(self):
        return IPv4Address("TCP", "127.0.0.1", 8080)


@implementer(IPushProducer)
class Stream:
    """
    A large answer of C{size} bytes written as fast as the transport takes
    it, as a stored file is; stopped, it writes no more.
    """

    def __init__(self, request, size):
        self.request = request
        self.left = size
        self.paused = False
        self.stopped = False

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        while self.left and not self.paused:
            chunk = min(self.left, 1 << 16)
            self.left -= chunk
            self.request.write(b"f" * chunk)
        if not self.left and not self.paused and not self.stopped:
            self.request.unregisterProducer()
            self.request.finish()

    def stopProducing(self):
        self.stopped = True
        self.left = 0


def pump(clock, client_io, server, socket):
    """
    Move what the client wrote (into C{client_io}, a string transport) to
    the C{server} protocol, and what the kernel took (C{socket}'s room) to
    the client, until neither moves.
    """
    for _ in range(20):
        clock.advance(0)  # (the TLS layer writes small pieces at the next turn)
        data = client_io.value()
        client_io.clear()
        if data:
            server.dataReceived(data)
        socket.take(0)
        if not data and not client_io.value():
            return
