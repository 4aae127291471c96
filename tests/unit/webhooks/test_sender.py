"""
One delivery (L{pypid.webhooks.sender}) to the real receiver on loopback
(L{tests.harness.webhook_receiver}), which checks every signature with
the C{standardwebhooks} package: what is sent, what each answer comes
to, and the bounds (no redirect followed, a timeout, connections per
receiver).
"""

import re

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, gatherResults, succeed
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pypid.core.records.webhook_events import WebhookEvent
from pypid.webhooks import receivers
from pypid.webhooks.sender import SHOWN, Sender
from tests.harness.tls import loaded, rsa_server, shared_ca
from tests.harness.webhook_receiver import start_in_reactor
from tests.harness.webhooks import SECRET, subscription

EVENT = WebhookEvent("evt_1790000000000_00ff", "upload", "2026-11-28T01:00:00.000000Z",
              {"project": "widget", "files": [{"filename": "w.whl", "sha256": "ab" * 32}]})


class SenderTests(TestCase):
    """Deliveries to a real receiver."""

    async def setUp(self):
        self.server = await start_in_reactor(SECRET, reactor)
        self.addCleanup(self.server.stop)
        self.receiver = self.server.resource
        self.sender = Sender(reactor, None)
        self.addCleanup(self.sender.close)

    def subscription(self, **kwargs):
        # (the tests' receiver is on loopback: a private address)
        kwargs.setdefault("allow_private", True)
        return subscription(url=self.server.url, **kwargs)

    async def test_delivered_and_verified(self):
        """A 2xx is delivered; the reference implementation verifies the signature."""
        attempt = await self.sender.send(self.subscription(), EVENT)
        self.assertTrue(attempt.delivered)
        self.assertEqual(attempt.status, 200)
        [received] = self.receiver.received
        self.assertTrue(received.verified, received.error)
        self.assertEqual(received.id, EVENT.id)
        self.assertEqual(received.event["data"]["project"], "widget")
        self.assertEqual(received.headers["content-type"], "application/json")
        # (nothing of pypid's but the event and its signature)
        self.assertNotIn("authorization", received.headers)
        self.assertNotIn("cookie", received.headers)

    async def test_private_address_refused(self):
        """
        A receiver at an address that is not public (loopback here, as
        C{localhost}, C{2130706433} or C{0177.0.0.1} lead too) is not
        reached unless the subscription allows it: the failure says how.
        """
        port = self.server.port
        for host in ("127.0.0.1", "localhost", "2130706433"):
            attempt = await self.sender.send(
                subscription(url=f"http://{host}:{port}/hooks"), EVENT)
            self.assertFalse(attempt.delivered, host)
            self.assertIn("not a public address; set allow_private = yes to send to it",
                          attempt.error)
        self.assertEqual(self.receiver.received, [])

    async def test_ipv6_literal(self):
        """A receiver's URL with an IPv6 literal host is delivered to (no IDNA of it)."""
        server = await start_in_reactor(SECRET, reactor, interface="::1")
        self.addCleanup(server.stop)
        attempt = await self.sender.send(
            subscription(url=f"http://[::1]:{server.port}/hooks/caf\u00e9", allow_private=True),
            EVENT)
        self.assertTrue(attempt.delivered, attempt.error)
        [received] = server.resource.received
        self.assertTrue(received.verified, received.error)

    async def test_international_url(self):
        """A URL of characters beyond ASCII is sent percent-encoded, as browsers do."""
        wanted = subscription(url=self.server.url + "/caf\u00e9?team=\u00fc", allow_private=True)
        attempt = await self.sender.send(wanted, EVENT)
        self.assertTrue(attempt.delivered, attempt.error)
        [received] = self.receiver.received
        self.assertEqual(received.path, "/hooks/pypid/caf%C3%A9")
        self.assertTrue(received.verified, received.error)

    async def test_wrong_secret_not_verified(self):
        """Signed with another key, the receiver's check fails (the check is real)."""
        other = self.subscription(key=b"\1" * 32)
        await self.sender.send(other, EVENT)
        self.assertFalse(self.receiver.received[0].verified)

    async def test_failures_named(self):
        """A 500 or a 4xx is a failure naming the status and the start of the answer."""
        self.receiver.answer(status=500)
        attempt = await self.sender.send(self.subscription(), EVENT)
        self.assertFalse(attempt.delivered)
        self.assertEqual(attempt.error, "HTTP 500 (failed): answered 500")
        self.receiver.answer(status=410)
        attempt = await self.sender.send(self.subscription(), EVENT)
        self.assertEqual(attempt.error, "HTTP 410 (refused): answered 410")

    async def test_retry_after(self):
        """A 429's Retry-After is read."""
        self.receiver.answer(status=429, retry_after="7")
        attempt = await self.sender.send(self.subscription(), EVENT)
        self.assertEqual((attempt.status, attempt.retry_after), (429, 7.0))

    async def test_retry_after_of_a_2xx(self):
        """A 2xx is delivered, whatever its Retry-After says."""
        self.receiver.answer(status=200, retry_after="9" * 400)
        attempt = await self.sender.send(self.subscription(), EVENT)
        self.assertTrue(attempt.delivered)

    async def test_no_redirect_followed(self):
        """A redirect is a failure; where it points is never asked."""
        self.receiver.answer(status=307, location=self.server.url + "/elsewhere")
        attempt = await self.sender.send(self.subscription(), EVENT)
        self.assertIn("a redirect, which deliveries never follow", attempt.error)
        self.assertEqual(len(self.receiver.received), 1)

    async def test_timeout(self):
        """A receiver slower than the timeout: the delivery ends, failed, on time."""
        self.receiver.answer(delay=5.0)
        attempt = await self.sender.send(self.subscription(timeout=0.3), EVENT)
        self.assertEqual(attempt.error, "no answer within 0.3 s")
        self.assertLess(attempt.seconds, 3.0)

    async def test_down(self):
        """A receiver not listening: a failure naming the receiver."""
        await self.server.stop()
        attempt = await self.sender.send(self.subscription(), EVENT)
        self.assertEqual(attempt.status, 0)
        self.assertIn(f"cannot reach http://127.0.0.1:{self.server.port}", attempt.error)

    async def test_connections_bounded(self):
        """Deliveries to one receiver beyond its max_connections wait their turn."""
        self.receiver.answer(delay=0.2)
        wanted = self.subscription(max_connections=2)
        attempts = await gatherResults([self.sender.send(wanted, EVENT) for _ in range(5)])
        self.assertTrue(all(a.delivered for a in attempts))
        self.assertEqual(self.receiver.most_at_once, 2)


class ScriptedReceiver(Protocol):
    """
    A receiver of raw bytes: each request read whole (its head, then
    C{Content-Length} bytes) is answered with the factory's next answer;
    C{None} closes the connection instead, C{b"...", "close"} answers and
    closes.
    """

    def connectionMade(self):
        self.factory.connections += 1
        self.factory.open += 1
        self.buffer = b""

    def dataReceived(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.factory.requests.append(head)
            answer = self.factory.answers.pop(0) if self.factory.answers else OK
            if answer is None:
                self.transport.loseConnection()
                return
            if isinstance(answer, tuple):
                self.transport.write(answer[0])
                self.transport.loseConnection()
                return
            self.transport.write(answer)

    def connectionLost(self, reason):
        self.factory.open -= 1


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class AnswerTests(TestCase):
    """What the sender makes of answers as a receiver writes them, and its kept connections."""

    def setUp(self):
        self.factory = Factory.forProtocol(ScriptedReceiver)
        self.factory.answers, self.factory.requests = [], []
        self.factory.connections = self.factory.open = 0
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.sender = Sender(reactor, None)
        self.addCleanup(self.sender.close)
        self.wanted = subscription(url=f"http://127.0.0.1:{self.port.getHost().port}/hook",
                                   allow_private=True)

    async def send(self, *answers):
        self.factory.answers.extend(answers)
        return await self.sender.send(self.wanted, EVENT)

    async def test_connection_kept(self):
        """Deliveries one after another go on one kept connection."""
        for _ in range(3):
            self.assertTrue((await self.send(OK)).delivered)
        self.assertEqual((self.factory.connections, len(self.factory.requests)), (1, 3))
        head = self.factory.requests[0]
        self.assertTrue(head.startswith(b"POST /hook HTTP/1.1\r\nHost: 127.0.0.1:"), head)

    async def test_answer_ended_by_close(self):
        """An answer without a length ends with its connection, which is not kept."""
        attempt = await self.send((b"HTTP/1.1 503 Busy\r\n\r\nbusy now", "close"))
        self.assertEqual(attempt.error, "HTTP 503 (failed): busy now")
        self.assertTrue((await self.send(OK)).delivered)
        self.assertEqual(self.factory.connections, 2)

    async def test_informational_answer_skipped(self):
        """A 1xx is not the answer: the one after it is."""
        attempt = await self.send(b"HTTP/1.1 100 Continue\r\n\r\n"
                                  b"HTTP/1.1 204 No Content\r\n\r\n")
        self.assertEqual((attempt.status, attempt.error), (204, None))

    async def test_not_http(self):
        """An answer that is not HTTP is a failure, named; its connection goes."""
        attempt = await self.send(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        self.assertEqual(attempt.status, 0)
        self.assertIn("an answer that is not HTTP/1.1", attempt.error)
        self.assertTrue((await self.send(OK)).delivered)
        self.assertEqual(self.factory.connections, 2)

    async def test_long_answer_cut(self):
        """Of a long answer the start is read, and its connection is not kept."""
        length = receivers.ANSWER_LIMIT * 4
        attempt = await self.send(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % length
                                  + b"x" * length)
        self.assertEqual(attempt.error, "HTTP 500 (failed): " + "x" * SHOWN)
        self.assertTrue((await self.send(OK)).delivered)
        self.assertEqual(self.factory.connections, 2)

    async def test_second_answer_ends_the_connection(self):
        """Two answers to one request: the first is taken, the connection is not kept."""
        attempt = await self.send(OK + OK)
        self.assertTrue(attempt.delivered)
        self.assertTrue((await self.send(OK)).delivered)
        self.assertEqual(self.factory.connections, 2)

    async def test_retry_after_read(self):
        """A 429's Retry-After, among other headers, is read."""
        attempt = await self.send(b"HTTP/1.1 429 Slow down\r\nX-Other: 1\r\nretry-after: 12\r\n"
                                  b"Content-Length: 0\r\n\r\n")
        self.assertEqual((attempt.status, attempt.retry_after), (429, 12.0))

    async def test_kept_connection_closed_before_answering(self):
        """
        A kept connection the receiver closes on a request it did not answer
        is given up for a new one, once: the event is delivered.
        """
        self.assertTrue((await self.send(OK)).delivered)
        attempt = await self.send(None, OK)
        self.assertTrue(attempt.delivered, attempt.error)
        self.assertEqual((self.factory.connections, len(self.factory.requests)), (2, 3))

    async def test_kept_connection_closed_while_idle(self):
        """A receiver that closes a kept connection between deliveries costs none of them."""
        self.assertTrue((await self.send((OK, "close"))).delivered)
        await deferLater(reactor, 0.05)
        self.assertTrue((await self.send(OK)).delivered)
        self.assertEqual(self.factory.connections, 2)

    async def test_answer_cut_in_its_head(self):
        """A connection that ends within the answer's head is a failure, not an answer."""
        attempt = await self.send((b"HTTP/1.1 200 OK\r\nContent-Ty", "close"))
        self.assertEqual(attempt.status, 0)
        self.assertFalse(attempt.delivered)

    async def test_closed_sender_keeps_nothing(self):
        """A delivery under way when the sender closes: answered, then its connection closed."""
        sending = self.sender.send(self.wanted, EVENT)
        await self.sender.close()
        attempt = await sending
        self.assertTrue(attempt.delivered, attempt.error)
        for _ in range(200):
            if not self.factory.open:
                break
            await deferLater(reactor, 0.05)
        self.assertEqual(self.factory.open, 0)

    async def test_new_connection_closed_before_answering(self):
        """A new connection closed without an answer is a failure (tried again later)."""
        attempt = await self.send(None)
        self.assertEqual(attempt.status, 0)
        self.assertIn("closed the connection before it answered", attempt.error)

    async def test_idle_connection_closed(self):
        """A kept connection unused for IDLE seconds is closed."""
        self.patch(receivers, "IDLE", 0.05)
        self.assertTrue((await self.send(OK)).delivered)
        self.assertEqual(self.factory.open, 1)
        for _ in range(200):
            await deferLater(reactor, 0.05)
            if not self.factory.open:
                break
        self.assertEqual(self.factory.open, 0)


class _NeverConnects:
    """An endpoint whose connection never comes (a name never resolved, say)."""

    def __init__(self):
        self.attempts = []

    def connect(self, factory):
        self.attempts.append(Deferred())
        return self.attempts[-1]


class _Connects:
    """An endpoint whose connections come at once, each over a L{StringTransport}."""

    def __init__(self):
        self.protocols = []

    def connect(self, factory):
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        self.protocols.append(protocol)
        return succeed(protocol)


class BoundTests(SynchronousTestCase):
    """A receiver's deadline and bound, on a clock."""

    def setUp(self):
        self.clock = Clock()
        self.endpoint = _NeverConnects()
        self.receiver = receivers.Receiver(self.clock, self.endpoint, 1)

    def test_connecting_counts_in_the_deadline(self):
        """A connection that does not come by the deadline: a time-out, the attempt dropped."""
        answer = self.receiver.exchange(b"POST / HTTP/1.1\r\n\r\n", 5.0)
        self.clock.advance(4.9)
        self.assertNoResult(answer)
        self.clock.advance(0.1)
        self.failureResultOf(answer, TimeoutError)
        self.assertTrue(self.endpoint.attempts[0].called)  # (cancelled)
        self.assertFalse(self.clock.getDelayedCalls())

    def test_cancelled_while_connecting(self):
        """Cancelled while it connects: cancelled (not a time-out), its timer gone."""
        answer = self.receiver.exchange(b"POST / HTTP/1.1\r\n\r\n", 5.0)
        answer.cancel()
        self.failureResultOf(answer, CancelledError)
        self.assertFalse(self.clock.getDelayedCalls())

    def test_kept_connection_times_out(self):
        """
        An answer that does not come by the deadline on a kept connection:
        a time-out, the connection dropped, the next delivery on a new one.
        """
        endpoint = _Connects()
        receiver = receivers.Receiver(self.clock, endpoint, 1)
        first = receiver.exchange(b"POST / HTTP/1.1\r\n\r\n", 10.0)
        [kept] = endpoint.protocols
        kept.dataReceived(OK)
        self.assertEqual(self.successResultOf(first)[0], 200)
        second = receiver.exchange(b"POST / HTTP/1.1\r\n\r\n", 20.0)
        self.assertEqual(endpoint.protocols, [kept])
        self.clock.advance(19.9)
        self.assertNoResult(second)
        self.clock.advance(0.1)
        self.failureResultOf(second, TimeoutError)
        self.assertTrue(kept.transport.disconnecting)
        receiver.exchange(b"POST / HTTP/1.1\r\n\r\n", 40.0)
        self.assertEqual(len(endpoint.protocols), 2)

    def test_cancelled_while_waiting_its_turn(self):
        """Work cancelled while it waits for a turn is never called, and takes no turn."""
        first = Deferred()
        called = []
        self.receiver.bounded(lambda: first)
        second = self.receiver.bounded(lambda: succeed(called.append(2)))
        second.cancel()
        self.failureResultOf(second, CancelledError)
        first.callback(None)
        self.assertEqual(called, [])
        self.assertEqual(self.successResultOf(self.receiver.bounded(lambda: succeed(3))), 3)

    def test_work_that_raises_gives_its_turn_back(self):
        """Work that raises at once fails, and the next work still gets its turn."""
        def broken():
            raise ValueError("not JSON")
        self.failureResultOf(self.receiver.bounded(broken), ValueError)
        self.assertEqual(self.successResultOf(self.receiver.bounded(lambda: succeed(1))), 1)

    def test_turns_in_order(self):
        """Past the bound, work waits and runs in its order, each as a turn comes back."""
        first = Deferred()
        ran = []
        self.receiver.bounded(lambda: first)
        for n in (1, 2):
            self.receiver.bounded(lambda n=n: succeed(ran.append(n)))
        self.assertEqual(ran, [])
        first.callback(None)
        self.assertEqual(ran, [1, 2])


class HTTPSTests(TestCase):
    """Deliveries over TLS, checked against the subscription's CA bundle."""

    def setUp(self):
        self.factory = Factory.forProtocol(ScriptedReceiver)
        self.factory.answers, self.factory.requests = [], []
        self.factory.connections = self.factory.open = 0
        tls = TLSMemoryBIOFactory(loaded(rsa_server()), False, self.factory, reactor)
        self.port = reactor.listenTCP(0, tls, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.sender = Sender(reactor, None)
        self.addCleanup(self.sender.close)
        self.url = f"https://localhost:{self.port.getHost().port}/hook"

    async def test_delivered_over_tls_on_a_kept_connection(self):
        """A receiver whose certificate the bundle's CA signed: delivered, on one connection."""
        wanted = subscription(url=self.url, ca_bundle=shared_ca().root_path, allow_private=True)
        for _ in range(2):
            attempt = await self.sender.send(wanted, EVENT)
            self.assertTrue(attempt.delivered, attempt.error)
        self.assertEqual((self.factory.connections, len(self.factory.requests)), (1, 2))

    async def test_unknown_certificate_refused(self):
        """A certificate no trusted CA signed: nothing is sent."""
        attempt = await self.sender.send(subscription(url=self.url, allow_private=True), EVENT)
        self.assertEqual(attempt.status, 0)
        self.assertIn(f"cannot reach https://localhost:{self.port.getHost().port}", attempt.error)
        self.assertEqual(self.factory.requests, [])
