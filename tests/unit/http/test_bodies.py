"""Tests of L{pypid.http.bodies}: reading other servers' answers within limits."""

import gzip

from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import UNKNOWN_LENGTH

from pypid.http.bodies import (
    DRAIN_LIMIT,
    BodyCutShort,
    BodyError,
    BodyStalled,
    BodyTooLarge,
    describe,
    discard,
    read_body,
)


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


class DiscardTests(SynchronousTestCase):
    """L{discard}: a short body is drained so its connection is reused; others are cut."""

    def make(self, length):
        response = _Response()
        response.length = length
        return response

    def test_short_drained(self):
        """
        A short body of known length is read to its end: its connection
        (back in the pool already) is not closed under the next request.
        """
        response = self.make(9)
        discard(response, Clock(), 5.0)
        response.protocol.dataReceived(b"not found")
        response.end()
        self.assertFalse(response.transport.stopped)

    def test_short_stalled(self):
        """A short body that never comes is stopped at the idle deadline."""
        clock = Clock()
        response = self.make(9)
        discard(response, clock, 5.0)
        clock.advance(5)
        self.assertTrue(response.transport.stopped)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_long_or_unknown_cut(self):
        """A long body, one of unknown length, or no clock: the transfer is stopped."""
        for length, clock in ((DRAIN_LIMIT + 1, Clock()), (UNKNOWN_LENGTH, Clock()),
                              (9, None)):
            response = self.make(length)
            discard(response, clock, 5.0)
            self.assertTrue(response.transport.stopped, length)


class GzipTests(SynchronousTestCase):
    """L{read_body} with C{gzipped}: inflated a piece at a time, within the limit."""

    def test_inflated(self):
        data = b"holy grail " * 1000
        response = _Response()
        d = read_body(response, 1 << 20, gzipped=True)
        packed = gzip.compress(data)
        for i in range(0, len(packed), 100):
            response.protocol.dataReceived(packed[i:i + 100])
        response.end()
        self.assertEqual(self.successResultOf(d), data)

    def test_bomb(self):
        """
        100 MiB of zeros in 100 KiB of gzip, with a 1 MiB limit: stopped,
        and no piece inflated past the limit (each was 64 MiB at once).
        """
        packed = gzip.compress(b"\0" * (100 << 20))
        response = _Response()
        d = read_body(response, 1 << 20, gzipped=True)
        sizes = []
        real = response.protocol._take
        response.protocol._take = lambda out: (sizes.append(len(out)), real(out))
        response.protocol.dataReceived(packed)
        self.assertTrue(response.transport.stopped)
        response.end(ResponseFailed)
        self.failureResultOf(d, BodyTooLarge)
        self.assertLessEqual(max(sizes), (1 << 20) + 1)

    def test_broken(self):
        """Bytes that are not gzip, or a gzip stream cut before its end, fail."""
        response = _Response()
        d = read_body(response, 1 << 20, gzipped=True)
        response.protocol.dataReceived(b"not gzip at all")
        self.assertTrue(response.transport.stopped)
        response.end(ResponseFailed)
        self.failureResultOf(d, BodyError)
        response = _Response()
        d = read_body(response, 1 << 20, gzipped=True)
        response.protocol.dataReceived(gzip.compress(b"x" * 1000)[:-8])
        response.end()
        self.failureResultOf(d, BodyCutShort)


class DescribeTests(SynchronousTestCase):
    """L{describe}: a failed request's reason, never empty."""

    def test_reasons(self):
        from twisted.internet.defer import CancelledError
        from twisted.internet.error import ConnectionRefusedError
        from twisted.web._newclient import ResponseNeverReceived
        error = ResponseNeverReceived([Failure(CancelledError()),
                                       Failure(ConnectionRefusedError("refused"))])
        self.assertEqual(describe(error), "CancelledError; Connection was refused by other "
                                          "side: refused.")
        self.assertEqual(describe(TimeoutError()), "TimeoutError")
        self.assertEqual(describe(ValueError("bad")), "bad")

