"""
Unit tests of the upstream download path: L{pypid.upstream.transfer.ToFile}
(writing a fetched body to disk with back-pressure and deadlines) and the
client tee of L{pypid.web.serving.upstream_files}, with a clock and fake transports.
"""

import io

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone, ResponseFailed

from pypid.upstream.fetch import UpstreamError
from pypid.upstream.transfer import ToFile, VerifyError
from tests.harness.fakes import FakeBodyTransport, run_now


class Tee:
    """Records what a download gives the client that started it."""

    def __init__(self):
        self.written = []
        self.events = []

    def start(self, transfer):
        self.transfer = transfer
        self.events.append("start")

    def write(self, data):
        self.written.append(data)

    def abort(self):
        self.events.append("abort")


class ToFileTests(SynchronousTestCase):
    """Writing a download to disk."""

    def setUp(self):
        self.clock = Clock()
        self.file = io.BytesIO()
        self.done = Deferred()
        self.transport = FakeBodyTransport()

    def make(self, limit=100, high=10, tee=None):
        """A connected writer."""
        writer = ToFile(self.file, run_now, self.clock, 5.0, limit, self.done, high=high,
                         tee=tee)
        writer.makeConnection(self.transport)
        return writer

    def test_whole(self):
        """A body delivered and ended cleanly is in the file; the size is the result."""
        writer = self.make()
        writer.dataReceived(b"abc")
        writer.dataReceived(b"def")
        writer.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.successResultOf(self.done), 6)
        self.assertEqual(self.file.getvalue(), b"abcdef")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_too_long(self):
        """More than the page's size stops the transfer: a VerifyError."""
        writer = self.make(limit=4)
        writer.dataReceived(b"abcde")
        self.assertIn("stop", self.transport.calls)
        writer.connectionLost(Failure(ResponseFailed([])))
        self.failureResultOf(self.done, VerifyError)

    def test_cut_short(self):
        """A connection lost midway is an UpstreamError."""
        writer = self.make()
        writer.dataReceived(b"abc")
        writer.connectionLost(Failure(ResponseFailed([Failure(ConnectionError("gone"))])))
        failure = self.failureResultOf(self.done, UpstreamError)
        self.assertIn("cut short", str(failure.value))

    def test_stalled(self):
        """Nothing for the idle deadline stops the transfer."""
        writer = self.make()
        self.clock.advance(5)
        self.assertEqual(self.transport.calls, ["stop"])
        writer.connectionLost(Failure(ResponseFailed([])))
        failure = self.failureResultOf(self.done, UpstreamError)
        self.assertIn("nothing for 5 s", str(failure.value))

    def test_slow_disk_pauses(self):
        """While writes lag (more than C{high} bytes queued) the transfer pauses."""
        pending = []

        def slow_run(f, *args):
            d = Deferred()
            pending.append((d, f, args))
            return d
        writer = ToFile(self.file, slow_run, self.clock, 5.0, 100, self.done, high=4)
        writer.makeConnection(self.transport)
        writer.dataReceived(b"abcdef")
        self.assertEqual(self.transport.calls, ["pause"])
        d, f, args = pending.pop(0)
        d.callback(f(*args))
        self.assertEqual(self.transport.calls, ["pause", "resume"])

    def test_tee_fed(self):
        """The client that started the download gets every byte as it arrives."""
        tee = Tee()
        writer = self.make(tee=tee)
        writer.dataReceived(b"abc")
        writer.dataReceived(b"def")
        self.assertEqual(tee.events, ["start"])
        self.assertEqual(tee.written, [b"abc", b"def"])

    def test_slow_client_holds_then_dropped(self):
        """A client that stops reading holds the transfer, then is dropped and it goes on."""
        tee = Tee()
        writer = self.make(tee=tee)
        writer.hold("client")
        self.assertEqual(self.transport.calls, ["pause"])
        self.clock.advance(4)
        writer.release("client")
        self.assertEqual(self.transport.calls, ["pause", "resume"])
        writer.hold("client")
        self.clock.advance(5)
        self.assertEqual(tee.events, ["start", "abort"])
        self.assertEqual(self.transport.calls, ["pause", "resume", "pause", "resume"])
        writer.dataReceived(b"rest")
        self.assertEqual(tee.written, [], "a dropped client gets nothing more")
        writer.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.successResultOf(self.done), 4)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_holds_combine(self):
        """The disk and the client each hold the transfer; it resumes when both let go."""
        writer = self.make()
        writer.hold("disk")
        writer.hold("client")
        writer.release("disk")
        self.assertEqual(self.transport.calls, ["pause"])
        writer.release("client")
        self.assertEqual(self.transport.calls, ["pause", "resume"])
