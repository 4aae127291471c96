"""
One delivery (L{pypid.webhooks.sender}) to the real receiver on loopback
(L{tests.harness.webhook_receiver}), which checks every signature with
the C{standardwebhooks} package: what is sent, what each answer comes
to, and the bounds (no redirect followed, a timeout, connections per
receiver).
"""

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.trial.unittest import TestCase

from pypid.core.records.webhook_events import WebhookEvent
from pypid.webhooks.sender import Sender
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

    async def test_international_url(self):
        """A URL of characters beyond ASCII is sent percent-encoded, as browsers do."""
        wanted = subscription(url=self.server.url + "/caf\u00e9?team=\u00fc")
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
