"""Tests of L{pypid.auth.throttle} and its use by L{pypid.web.access.Access}."""

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.auth.throttle import LoginThrottle
from pypid.core.errors import TooManyRequests, Unauthorized
from pypid.web.access import Access


class ThrottleTests(SynchronousTestCase):
    """Counting failures per user and address."""

    def setUp(self):
        self.clock = Clock()
        self.throttle = LoginThrottle(self.clock, max_failures=3, window=60)

    def test_throttled_after_failures(self):
        """Past the allowed failures the pair waits; others do not."""
        for _ in range(3):
            self.assertEqual(self.throttle.wait("alice", "10.0.0.1"), 0)
            self.throttle.failed("alice", "10.0.0.1")
        self.assertEqual(self.throttle.wait("alice", "10.0.0.1"), 60)
        self.assertEqual(self.throttle.wait("alice", "10.0.0.2"), 0)
        self.assertEqual(self.throttle.wait("bob", "10.0.0.1"), 0)

    def test_window_passes(self):
        """Old failures stop counting."""
        for _ in range(3):
            self.throttle.failed("alice", "a")
            self.clock.advance(10)
        self.assertEqual(self.throttle.wait("alice", "a"), 30)
        self.clock.advance(30)
        self.assertEqual(self.throttle.wait("alice", "a"), 0)

    def test_concurrent_guesses(self):
        """Checks under way count: a burst of guesses is held back before any fails."""
        for _ in range(3):
            self.assertEqual(self.throttle.wait("alice", "a"), 0)
            self.throttle.started("alice", "a")
        self.assertGreater(self.throttle.wait("alice", "a"), 0)
        self.throttle.abandoned("alice", "a")
        self.assertEqual(self.throttle.wait("alice", "a"), 0)

    def test_spraying(self):
        """One address failing for many users is held back as a whole."""
        throttle = LoginThrottle(self.clock, max_failures=3, window=60,
                                 max_address_failures=5)
        for number in range(5):
            throttle.started(f"user{number}", "a")
            throttle.failed(f"user{number}", "a")
        self.assertGreater(throttle.wait("someone-else", "a"), 0)
        self.assertEqual(throttle.wait("someone-else", "b"), 0)

    def test_success_clears(self):
        """A good login forgets the failures."""
        for _ in range(2):
            self.throttle.failed("alice", "a")
        self.throttle.succeeded("alice", "a")
        self.throttle.failed("alice", "a")
        self.assertEqual(self.throttle.wait("alice", "a"), 0)


class _Verifier:
    """Knows one password."""

    def __init__(self):
        self.calls = 0

    def authenticate(self, user, password):
        self.calls += 1
        return succeed(object() if password == "right" else None)


class _RememberingVerifier(_Verifier):
    """Has verified the right password lately (it is in its cache)."""

    def remembers(self, user, password):
        return password == "right"


class _Peer:
    host = "10.0.0.9"


class _Request:
    """Just enough of a request: its Authorization header and address."""

    def __init__(self, password):
        import base64

        from twisted.web.http_headers import Headers
        token = base64.b64encode(f"alice:{password}".encode())
        self.requestHeaders = Headers({b"authorization": [b"Basic " + token]})

    def getClientAddress(self):
        return _Peer()


class AccessThrottleTests(SynchronousTestCase):
    """The gate answers 429 once a user guessed wrong too often from one address."""

    def test_429(self):
        """Wrong passwords: 401s, then 429 without even checking the password."""
        verifier = _Verifier()
        access = Access(AccessModel(), verifier, LoginThrottle(Clock(), max_failures=2, window=60))
        for _ in range(2):
            self.failureResultOf(access.identify(_Request("wrong")), Unauthorized)
        failure = self.failureResultOf(access.identify(_Request("right")), TooManyRequests)
        self.assertEqual(dict(failure.value.headers)[b"retry-after"], b"60")
        self.assertEqual(verifier.calls, 2)

    def test_known_client_not_locked_out(self):
        """A client whose password was verified lately is not held back by others' guesses."""
        verifier = _RememberingVerifier()
        access = Access(AccessModel(), verifier, LoginThrottle(Clock(), max_failures=2, window=60))
        for _ in range(3):
            self.failureResultOf(access.identify(_Request("wrong")))
        self.assertIsNotNone(self.successResultOf(access.identify(_Request("right"))))
