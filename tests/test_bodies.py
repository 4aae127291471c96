"""Tests of L{pypid.http.bodies}: reading other servers' answers within limits."""

from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss

from pypid.http.bodies import BodyCutShort, BodyStalled, BodyTooLarge, read_body


class _Transport:
    """Records what the reader asks of the connection."""

    def __init__(self):
        self.stopped = False

    def stopProducing(self):
        self.stopped = True


class _Response:
    """A response whose body the test delivers by hand."""

    def deliverBody(self, protocol):
        self.protocol = protocol
        self.transport = _Transport()
        protocol.makeConnection(self.transport)

    def end(self, reason=ResponseDone):
        error = reason([]) if reason is ResponseFailed else reason()
        self.protocol.connectionLost(Failure(error))


class ReadBodyTests(SynchronousTestCase):
    """L{read_body}."""

    def test_whole(self):
        """A body delivered in pieces and ended cleanly is joined."""
        response = _Response()
        d = read_body(response, 10)
        response.protocol.dataReceived(b"abc")
        response.protocol.dataReceived(b"def")
        response.end()
        self.assertEqual(self.successResultOf(d), b"abcdef")

    def test_no_length(self):
        """A body ended by the connection closing (no length given) is accepted."""
        response = _Response()
        d = read_body(response, 10)
        response.protocol.dataReceived(b"abc")
        response.end(PotentialDataLoss)
        self.assertEqual(self.successResultOf(d), b"abc")

    def test_too_large(self):
        """Past the limit the transfer is stopped and the read fails."""
        response = _Response()
        d = read_body(response, 4)
        response.protocol.dataReceived(b"abc")
        response.protocol.dataReceived(b"de")
        self.assertTrue(response.transport.stopped)
        response.end(ResponseFailed)
        self.failureResultOf(d, BodyTooLarge)

    def test_cut_short(self):
        """A connection lost midway fails the read."""
        response = _Response()
        d = read_body(response, 10)
        response.protocol.dataReceived(b"abc")
        response.end(ResponseFailed)
        self.failureResultOf(d, BodyCutShort)

    def test_stalled(self):
        """Nothing for the idle deadline: the transfer is stopped, the read fails."""
        clock = Clock()
        response = _Response()
        d = read_body(response, 10, clock, idle=5)
        clock.advance(4)
        response.protocol.dataReceived(b"abc")
        clock.advance(4)
        self.assertFalse(response.transport.stopped)
        clock.advance(2)
        self.assertTrue(response.transport.stopped)
        response.end(ResponseFailed)
        self.failureResultOf(d, BodyStalled)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_cancel(self):
        """Cancelling the read stops the transfer and leaves no timer."""
        clock = Clock()
        response = _Response()
        d = read_body(response, 10, clock, idle=5)
        d.cancel()
        self.assertTrue(response.transport.stopped)
        self.failureResultOf(d)
        self.assertEqual(clock.getDelayedCalls(), [])
