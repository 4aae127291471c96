"""
Tests for L{pypid.auth.verifier}: Basic credential parsing, argon2id hashes, the
password verifier and its cache, and the access policy.
"""

import base64
import dataclasses

from argon2 import PasswordHasher, Type
from twisted.internet.defer import CancelledError, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pypid.auth import basic as credentials
from pypid.auth import hashes
from pypid.auth import verifier as auth
from pypid.auth.basic import (
    MAX_PASSWORD_BYTES,
    MalformedCredentials,
    parse_basic,
    www_authenticate_header,
)
from pypid.auth.hashes import hash_password
from pypid.auth.policy import AccessModel
from pypid.auth.verifier import Identity, PasswordVerifier
from pypid.core.access.access_rules import AUTHENTICATED, EVERYONE, READ, WRITE
from pypid.core.access.credential_syntax import parse_hash
from tests.harness.fakes import FAST, PendingPool, SynchronousPool

ALICE_PASSWORD = "correct horse battery staple"
BOB_PASSWORD = "hunter2:with:colons"
CAROL_PASSWORD = "caról"
USERS = {
    "alice": hash_password(ALICE_PASSWORD, FAST),
    "bob": hash_password(BOB_PASSWORD, FAST),
    "carol": hash_password(CAROL_PASSWORD, FAST),
}


def basic(raw, scheme=b"Basic"):
    """Return an Authorization header value for the raw C{user:password} bytes."""
    return scheme + b" " + base64.b64encode(raw)


class ParseBasicTests(SynchronousTestCase):
    """Tests for L{parse_basic}."""

    def test_no_header(self):
        """A missing header means no credentials, not an error."""
        self.assertIsNone(parse_basic(None))

    def test_valid(self):
        """A well-formed header gives the user name and the password."""
        self.assertEqual(parse_basic(basic(b"alice:secret")), ("alice", "secret"))

    def test_lowercase_scheme_and_spaces(self):
        """The scheme is case-insensitive and surrounding spaces are tolerated."""
        header = b"  bAsIc   " + base64.b64encode(b"alice:secret") + b"  "
        self.assertEqual(parse_basic(header), ("alice", "secret"))

    def test_password_with_colons(self):
        """Only the first colon separates the user from the password."""
        self.assertEqual(parse_basic(basic(b"bob:a:b:c")), ("bob", "a:b:c"))

    def test_empty_password(self):
        """An empty password parses (and will simply not verify)."""
        self.assertEqual(parse_basic(basic(b"alice:")), ("alice", ""))

    def test_utf8(self):
        """User names and passwords are decoded as UTF-8."""
        raw = "jörg:pässwörd".encode()
        self.assertEqual(parse_basic(basic(raw)), ("jörg", "pässwörd"))

    def test_latin1_password(self):
        """A password that is not UTF-8 is decoded as latin-1."""
        self.assertEqual(parse_basic(basic(b"alice:p\xe4ss")), ("alice", "p\xe4ss"))

    def assert_malformed(self, header, secret=b"secret"):
        """Assert that C{header} is refused without echoing C{secret}."""
        e = self.assertRaises(MalformedCredentials, parse_basic, header)
        self.assertNotIn(secret.decode("latin-1"), str(e))
        self.assertTrue(str(e))
        return e

    def test_scheme_only(self):
        """A scheme without credentials is malformed."""
        self.assert_malformed(b"Basic")

    def test_empty_header(self):
        """An empty header is malformed."""
        self.assert_malformed(b"  ")

    def test_wrong_scheme(self):
        """Any scheme but Basic is refused."""
        self.assert_malformed(b"Bearer secret")
        self.assert_malformed(basic(b"alice:secret", scheme=b"Digest"))

    def test_bad_base64(self):
        """Base64 is decoded strictly: stray characters are refused."""
        self.assert_malformed(b"Basic YWxpY2U6c2VjcmV0!")
        self.assert_malformed(b"Basic YWxp Y2U6c2VjcmV0")
        self.assert_malformed(b"Basic YWxpY2U6c2VjcmV")

    def test_no_colon(self):
        """Decoded credentials without a colon are refused."""
        self.assert_malformed(basic(b"alicesecret"), secret=b"alicesecret")

    def test_empty_user(self):
        """An empty user name is refused."""
        self.assert_malformed(basic(b":secret"))

    def test_user_not_utf8(self):
        """A user name that is not UTF-8 is refused."""
        self.assert_malformed(basic(b"al\xffce:secret"))

    def test_user_control_characters(self):
        """A user name with control characters (log forging) is refused."""
        self.assert_malformed(basic(b"alice\nINFO forged:secret"))
        self.assert_malformed(basic(b"alice\x00:secret"))

    def test_long_password(self):
        """A password over the limit is refused before any hashing."""
        self.assertEqual(
            parse_basic(basic(b"alice:" + b"x" * MAX_PASSWORD_BYTES))[1],
            "x" * MAX_PASSWORD_BYTES,
        )
        e = self.assert_malformed(basic(b"alice:" + b"x" * (MAX_PASSWORD_BYTES + 1)))
        self.assertIn("password too long", str(e))

    def test_long_user(self):
        """A user name over the limit is refused."""
        self.assert_malformed(basic(b"u" * (credentials.MAX_USER_BYTES + 1) + b":secret"))

    def test_huge_token(self):
        """A header far over the limits is refused without decoding it."""
        self.assert_malformed(b"Basic " + b"A" * 1_000_000)


class HashTests(SynchronousTestCase):
    """Tests for L{hash_password} and L{parse_hash}."""

    def test_round_trip(self):
        """A hash verifies its own password and no other."""
        hashed = hash_password("s3cret", FAST)
        self.assertTrue(PasswordHasher().verify(hashed, "s3cret"))
        self.assertEqual(hashes.verify_hash(hashed, "s3cret"), hashes.MATCH)
        self.assertEqual(hashes.verify_hash(hashed, "S3cret"), hashes.MISMATCH)

    def test_salted(self):
        """Two hashes of the same password differ."""
        self.assertNotEqual(hash_password("same", FAST), hash_password("same", FAST))

    def test_default_cost(self):
        """By default hashes use argon2id with OWASP's recommended cost."""
        hashed = hash_password("s3cret")
        self.assertTrue(hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$"))
        parse_hash(hashed)

    def test_refuses_empty_and_long(self):
        """Empty and over-long passwords are not hashed."""
        self.assertRaises(ValueError, hash_password, "", FAST)
        self.assertRaises(ValueError, hash_password, "é" * MAX_PASSWORD_BYTES, FAST)

    def test_refuses_other_types(self):
        """Only argon2id hashes are made."""
        self.assertRaises(ValueError, hash_password, "x", dataclasses.replace(FAST, type=Type.I))

    def test_accepts_argon2id(self):
        """A hash made by L{hash_password} passes the format check."""
        parse_hash(USERS["alice"])

    def assert_refused(self, value, *words):
        """Assert C{value} is refused with a message containing C{words}."""
        e = self.assertRaises(ValueError, parse_hash, value)
        message = str(e)
        self.assertIn("pypid-passwd", message)
        for word in words:
            self.assertIn(word, message)
        if value:
            self.assertNotIn(value, message)

    def test_refuses_plaintext(self):
        """A plaintext password is refused, with advice to use pypid-passwd."""
        self.assert_refused("hunter2", "plaintext")

    def test_refuses_empty(self):
        """An empty value is refused."""
        self.assert_refused("", "argon2id")

    def test_refuses_bcrypt(self):
        """A bcrypt hash is refused, saying argon2id is required."""
        self.assert_refused(
            "$2b$12$GhvMmNVjRW29ulnudl.LbuAnUtN/LRfe1JsBm1Xu6LE3059z5Tr8m", "argon2id"
        )

    def test_refuses_argon2i_and_argon2d(self):
        """Argon2 variants other than argon2id are refused."""
        for variant in (Type.I, Type.D):
            other = PasswordHasher.from_parameters(dataclasses.replace(FAST, type=variant))
            self.assert_refused(other.hash("x"), "argon2id")

    def test_refuses_garbage(self):
        """Malformed argon2id strings are refused."""
        good = USERS["alice"]
        for value in (
            "$argon2id$garbage",
            "$argon2id$v=19$m=8,t=1,p=1$",
            good + "\n",
            good[:-1] + "!",
            good.replace("v=19", "v=16"),
            good.replace("m=8,", "m=4,"),
            good.replace("t=1,", "t=0,"),
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
        ):
            self.assert_refused(value, "argon2id")


def make_verifier(test, users=USERS, **kwargs):
    """Return a verifier on a L{Clock}, with a L{SynchronousPool}, and both."""
    clock = Clock()
    pool = kwargs.pop("run_in_pool", None) or SynchronousPool()
    verifier = PasswordVerifier(users, clock, object(), run_in_pool=pool, **kwargs)
    return verifier, clock, pool


class PasswordVerifierTests(SynchronousTestCase):
    """Tests for L{PasswordVerifier}, with its thread pool replaced."""

    def verify(self, verifier, user, password):
        """Return the result of a verification that has completed."""
        return self.successResultOf(verifier.verify(user, password))

    def test_busy(self):
        """
        Past C{max_pending} distinct verifications under way, a new one fails
        at once with L{auth.Busy}; the same credentials still share theirs.
        """
        pool = PendingPool()
        verifier, clock, _ = make_verifier(self, run_in_pool=pool, max_pending=2)
        first = verifier.verify("alice", "guess 1")
        verifier.verify("alice", "guess 2")
        self.failureResultOf(verifier.verify("alice", "guess 3"), auth.Busy)
        again = verifier.verify("alice", "guess 1")
        self.assertEqual(len(pool.pending), 2)
        pool.finish()
        self.assertIs(self.successResultOf(first), False)
        self.assertIs(self.successResultOf(again), False)
        right = verifier.verify("alice", ALICE_PASSWORD)
        pool.finish()
        self.assertIs(self.successResultOf(right), True)

    def test_right_password(self):
        """The right password verifies."""
        verifier, clock, pool = make_verifier(self)
        self.assertIs(self.verify(verifier, "alice", ALICE_PASSWORD), True)
        self.assertIs(self.verify(verifier, "carol", CAROL_PASSWORD), True)

    def test_wrong_password(self):
        """A wrong password does not verify."""
        verifier, clock, pool = make_verifier(self)
        self.assertIs(self.verify(verifier, "alice", BOB_PASSWORD), False)
        self.assertIs(self.verify(verifier, "alice", ""), False)

    def test_runs_in_pool(self):
        """The hash verification goes through the pool, with the user's hash."""
        verifier, clock, pool = make_verifier(self)
        self.verify(verifier, "alice", ALICE_PASSWORD)
        self.assertEqual(pool.calls, [(USERS["alice"], ALICE_PASSWORD)])

    def test_unknown_user(self):
        """An unknown user fails after a full verification against a dummy hash."""
        verifier, clock, pool = make_verifier(self)
        self.assertIs(self.verify(verifier, "mallory", ALICE_PASSWORD), False)
        [(dummy, password)] = pool.calls
        self.assertNotIn(dummy, USERS.values())
        parse_hash(dummy)
        self.assertEqual(parse_hash(dummy), parse_hash(USERS["alice"]))
        self.assertEqual(hashes.verify_hash(dummy, password), hashes.MISMATCH)

    def test_unknown_user_default_cost(self):
        """With no users, the dummy hash has the default cost."""
        verifier, clock, pool = make_verifier(self, users={})
        self.assertIs(self.verify(verifier, "mallory", "x"), False)
        [(dummy, password)] = pool.calls
        self.assertTrue(dummy.startswith("$argon2id$v=19$m=19456,t=2,p=1$"))

    def test_unknown_user_not_cached(self):
        """Every attempt for an unknown user costs a verification."""
        verifier, clock, pool = make_verifier(self)
        self.verify(verifier, "mallory", "x")
        self.verify(verifier, "mallory", "x")
        self.assertEqual(len(pool.calls), 2)

    def test_refuses_bad_hashes(self):
        """A verifier is not built over a plaintext password; the error names the user."""
        e = self.assertRaises(
            ValueError, PasswordVerifier, {"alice": "hunter2"}, Clock(), object()
        )
        self.assertIn("alice", str(e))
        self.assertNotIn("hunter2", str(e))

    def test_cache_hit(self):
        """A second verification of the same credentials does not hash again."""
        verifier, clock, pool = make_verifier(self)
        for _ in range(50):
            self.assertIs(self.verify(verifier, "alice", ALICE_PASSWORD), True)
        self.assertEqual(len(pool.calls), 1)

    def test_cache_expiry(self):
        """A cached success is forgotten once the TTL has passed."""
        verifier, clock, pool = make_verifier(self, cache_ttl=300)
        self.verify(verifier, "alice", ALICE_PASSWORD)
        clock.advance(299)
        self.verify(verifier, "alice", ALICE_PASSWORD)
        self.assertEqual(len(pool.calls), 1)
        clock.advance(1)
        self.assertIs(self.verify(verifier, "alice", ALICE_PASSWORD), True)
        self.assertEqual(len(pool.calls), 2)

    def test_cache_not_extended_by_hits(self):
        """Hits do not push back the expiry of a cached success."""
        verifier, clock, pool = make_verifier(self, cache_ttl=10)
        self.verify(verifier, "alice", ALICE_PASSWORD)
        for _ in range(5):
            clock.advance(2)
            self.verify(verifier, "alice", ALICE_PASSWORD)
        self.assertEqual(len(pool.calls), 2)

    def test_cache_bounded(self):
        """The cache keeps at most C{cache_size} entries, dropping the oldest."""
        verifier, clock, pool = make_verifier(self, cache_size=2)
        self.verify(verifier, "alice", ALICE_PASSWORD)
        clock.advance(1)
        self.verify(verifier, "bob", BOB_PASSWORD)
        clock.advance(1)
        self.verify(verifier, "carol", CAROL_PASSWORD)
        self.assertEqual(len(verifier._cache), 2)
        self.assertEqual(len(pool.calls), 3)
        self.verify(verifier, "carol", CAROL_PASSWORD)
        self.verify(verifier, "bob", BOB_PASSWORD)
        self.assertEqual(len(pool.calls), 3)
        self.verify(verifier, "alice", ALICE_PASSWORD)
        self.assertEqual(len(pool.calls), 4)

    def test_cache_disabled(self):
        """A TTL of zero turns the cache off."""
        verifier, clock, pool = make_verifier(self, cache_ttl=0)
        self.verify(verifier, "alice", ALICE_PASSWORD)
        self.verify(verifier, "alice", ALICE_PASSWORD)
        self.assertEqual(len(pool.calls), 2)
        self.assertEqual(len(verifier._cache), 0)

    def test_negative_settings_refused(self):
        """A negative TTL or size is a configuration error."""
        self.assertRaises(ValueError, PasswordVerifier, USERS, Clock(), object(), -1)
        self.assertRaises(ValueError, PasswordVerifier, USERS, Clock(), object(), 1, -1)

    def test_wrong_after_right(self):
        """A cached right password does not let a wrong one through."""
        verifier, clock, pool = make_verifier(self)
        self.assertIs(self.verify(verifier, "alice", ALICE_PASSWORD), True)
        self.assertIs(self.verify(verifier, "alice", ALICE_PASSWORD + "x"), False)
        self.assertIs(self.verify(verifier, "bob", ALICE_PASSWORD), False)
        self.assertEqual(len(pool.calls), 3)

    def test_failure_not_cached(self):
        """Wrong passwords are verified every time."""
        verifier, clock, pool = make_verifier(self)
        self.verify(verifier, "alice", "wrong")
        self.verify(verifier, "alice", "wrong")
        self.assertEqual(len(pool.calls), 2)
        self.assertEqual(len(verifier._cache), 0)

    def test_no_plaintext_kept(self):
        """The cache and the verifier's repr hold neither passwords nor hashes."""
        verifier, clock, pool = make_verifier(self)
        for user, password in [("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)]:
            self.verify(verifier, user, password)
        self.assertEqual(len(verifier._cache), 2)
        for key, expiry in verifier._cache.items():
            self.assertIsInstance(key, bytes)
            self.assertEqual(len(key), 32)
            self.assertIsInstance(expiry, float)
            for secret in (ALICE_PASSWORD, BOB_PASSWORD):
                self.assertNotIn(secret.encode("utf-8"), key)
        text = repr(verifier)
        for secret in (ALICE_PASSWORD, BOB_PASSWORD, USERS["alice"]):
            self.assertNotIn(secret, text)

    def test_new_verifier_starts_empty(self):
        """A new verifier (a reloaded configuration) does not share the cache."""
        clock = Clock()
        pool = SynchronousPool()
        first = PasswordVerifier(USERS, clock, object(), run_in_pool=pool)
        self.successResultOf(first.verify("alice", ALICE_PASSWORD))
        second = PasswordVerifier(USERS, clock, object(), run_in_pool=pool)
        self.successResultOf(second.verify("alice", ALICE_PASSWORD))
        self.assertEqual(len(pool.calls), 2)
        self.assertNotEqual(first._cache_key, second._cache_key)

    def test_removed_user(self):
        """A user removed from a new configuration no longer verifies."""
        clock = Clock()
        pool = SynchronousPool()
        first = PasswordVerifier(USERS, clock, object(), run_in_pool=pool)
        self.assertTrue(self.successResultOf(first.verify("alice", ALICE_PASSWORD)))
        rest = {k: v for k, v in USERS.items() if k != "alice"}
        second = PasswordVerifier(rest, clock, object(), run_in_pool=pool)
        self.assertFalse(self.successResultOf(second.verify("alice", ALICE_PASSWORD)))

    def test_in_flight_shared(self):
        """Concurrent verifications of the same credentials share one hash."""
        pool = PendingPool()
        verifier, clock, _ = make_verifier(self, run_in_pool=pool)
        first = verifier.verify("alice", ALICE_PASSWORD)
        second = verifier.verify("alice", ALICE_PASSWORD)
        other = verifier.verify("alice", "wrong")
        self.assertNoResult(first)
        self.assertNoResult(second)
        self.assertEqual(len(pool.pending), 2)
        pool.finish()
        self.assertIs(self.successResultOf(first), True)
        self.assertIs(self.successResultOf(second), True)
        self.assertIs(self.successResultOf(other), False)
        self.assertEqual(verifier._in_flight, {})

    def test_needs_new_check(self):
        """
        Credentials need a new check (the login throttle's business) unless
        the same ones are being checked or were verified lately; a distinct
        password of the same user always does.
        """
        pool = PendingPool()
        verifier, clock, _ = make_verifier(self, run_in_pool=pool, cache_ttl=300)
        self.assertTrue(verifier.needs_new_check("alice", ALICE_PASSWORD))
        burst = [verifier.verify("alice", ALICE_PASSWORD) for _ in range(50)]
        self.assertFalse(verifier.needs_new_check("alice", ALICE_PASSWORD))
        self.assertTrue(verifier.needs_new_check("alice", ALICE_PASSWORD + "x"))
        self.assertTrue(verifier.needs_new_check("bob", ALICE_PASSWORD))
        self.assertEqual(len(pool.pending), 1)
        pool.finish()
        self.assertEqual([self.successResultOf(d) for d in burst], [True] * 50)
        self.assertFalse(verifier.needs_new_check("alice", ALICE_PASSWORD))
        clock.advance(300)
        self.assertTrue(verifier.needs_new_check("alice", ALICE_PASSWORD))
        verifier.verify("alice", "wrong")
        pool.finish()
        self.assertTrue(verifier.needs_new_check("alice", "wrong"))

    def test_cancel_one_waiter(self):
        """Cancelling one waiting request does not disturb the others."""
        pool = PendingPool()
        verifier, clock, _ = make_verifier(self, run_in_pool=pool)
        first = verifier.verify("alice", ALICE_PASSWORD)
        second = verifier.verify("alice", ALICE_PASSWORD)
        first.cancel()
        self.failureResultOf(first, CancelledError)
        pool.finish()
        self.assertIs(self.successResultOf(second), True)

    def test_pool_failure(self):
        """An unexpected failure reaches every waiter and is not cached."""
        verifier, clock, _ = make_verifier(
            self, run_in_pool=lambda *args: fail(RuntimeError("pool broke"))
        )
        self.failureResultOf(verifier.verify("alice", ALICE_PASSWORD), RuntimeError)
        self.assertEqual(verifier._in_flight, {})
        self.assertEqual(len(verifier._cache), 0)

    def test_unusable_hash(self):
        """A hash argon2 cannot use gives False and an error log without secrets."""
        verifier, clock, _ = make_verifier(
            self, run_in_pool=lambda *args: succeed(hashes.BROKEN)
        )
        with capturedLogs() as events:
            self.assertIs(self.verify(verifier, "alice", ALICE_PASSWORD), False)
        self.assertEqual(len(verifier._cache), 0)
        [event] = events
        text = formatEvent(event)
        self.assertIn("alice", text)
        self.assertNotIn(ALICE_PASSWORD, text)
        self.assertEqual(hashes.verify_hash("$argon2id$garbage", "x"), hashes.BROKEN)

    def test_logs_have_no_secrets(self):
        """Failed attempts are logged without the password or an unknown name."""
        verifier, clock, pool = make_verifier(self)
        with capturedLogs() as events:
            self.verify(verifier, "alice", "wrong-password")
            self.verify(verifier, "oops-my-password", "x")
        texts = [formatEvent(event) for event in events]
        self.assertEqual(len(texts), 2)
        self.assertIn("alice", texts[0])
        for text in texts:
            self.assertNotIn("wrong-password", text)
            self.assertNotIn("oops-my-password", text)

    def test_authenticate(self):
        """L{PasswordVerifier.authenticate} gives an L{Identity} or L{None}."""
        verifier, clock, pool = make_verifier(self)
        self.assertEqual(
            self.successResultOf(verifier.authenticate("alice", ALICE_PASSWORD)),
            Identity("alice"),
        )
        self.assertIsNone(self.successResultOf(verifier.authenticate("alice", "x")))
        self.assertIsNone(self.successResultOf(verifier.authenticate("nobody", "x")))


class PasswordVerifierThreadTests(TestCase):
    """Tests for L{PasswordVerifier} with a real thread pool and reactor."""

    def setUp(self):
        from twisted.internet import reactor

        pool = ThreadPool(minthreads=1, maxthreads=2, name="test-auth")
        pool.start()
        self.addCleanup(pool.stop)
        self.verifier = PasswordVerifier(USERS, reactor, pool)

    async def test_verify_in_threads(self):
        """Right, wrong and unknown credentials verify correctly in real threads."""
        self.assertIs(await self.verifier.verify("alice", ALICE_PASSWORD), True)
        self.assertIs(await self.verifier.verify("alice", "wrong"), False)
        self.assertIs(await self.verifier.verify("nobody", ALICE_PASSWORD), False)
        self.assertIs(await self.verifier.verify("alice", ALICE_PASSWORD), True)


class EnterTests(SynchronousTestCase):
    """Tests for L{AccessModel.may_enter} (the C{[auth]} defaults) and the challenge header."""

    def test_default(self):
        """By default anyone may read and only an authenticated user may upload."""
        model = AccessModel()
        self.assertTrue(model.may_enter(None, READ))
        self.assertFalse(model.may_enter(None, WRITE))
        self.assertTrue(model.may_enter(Identity("alice"), WRITE))

    def test_private_read(self):
        """With C{read = authenticated} anonymous reads are refused."""
        model = AccessModel(read=AUTHENTICATED)
        self.assertFalse(model.may_enter(None, READ))
        self.assertTrue(model.may_enter(Identity("alice"), READ))

    def test_invalid_values(self):
        """Values other than the documented ones are refused."""
        self.assertRaises(ValueError, AccessModel, read="nobody")
        self.assertRaises(ValueError, AccessModel, upload=EVERYONE)

    def test_www_authenticate(self):
        """The challenge asks for Basic credentials in the pypid realm."""
        self.assertEqual(www_authenticate_header(), b'Basic realm="pypid"')
