"""
Tests of L{pypid.auth.throttle} and its use by L{pypid.web.identity.gates.Gates}:
guessers are held back, a burst of the right password never is.

The gate is tested with the real L{PasswordVerifier}, its hashing pool
replaced by one the test completes when it chooses (so checks are seen
while under way, and hashes counted), on a L{Clock}.
"""

import base64
import ipaddress
import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers

from pypid.auth import throttle as throttling
from pypid.auth.hashes import hash_password
from pypid.auth.policy import AccessModel
from pypid.auth.throttle import LoginThrottle
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import Identity, PasswordVerifier
from pypid.core.access.forwarded import NO_PROXIES, TrustedProxies
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.util.http_errors import TooManyRequests, Unauthorized, Unavailable
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.web_inputs import SiteSettings
from tests.harness.distributions import make_wheel
from tests.harness.fakes import (
    FAST,
    PendingPool,
    SynchronousPool,
    multipart_body,
    one_index,
    run_now,
    site_treq,
    twine_fields,
)
from tests.harness.memory_storage import MemoryStorage

PASSWORD = "correct horse"
USERS = {"alice": hash_password(PASSWORD, FAST), "bob": hash_password("bob's", FAST)}
ORIGIN = "http://pypi.test"


class ThrottleTests(SynchronousTestCase):
    """Counting failures, and checks under way, per user and address."""

    def setUp(self):
        self.clock = Clock()
        self.throttle = LoginThrottle(self.clock, max_failures=3, window=60)

    def test_throttled_after_failures(self):
        """Past the allowed failures the pair waits; others do not."""
        for _ in range(3):
            self.assertEqual(self.throttle.wait("alice", "10.0.0.1"), 0)
            self.throttle.started("alice", "10.0.0.1")
            self.throttle.failed("alice", "10.0.0.1")
        self.assertEqual(self.throttle.wait("alice", "10.0.0.1"), 60)
        self.assertEqual(self.throttle.wait("alice", "10.0.0.2"), 0)
        self.assertEqual(self.throttle.wait("bob", "10.0.0.1"), 0)

    def test_window_passes(self):
        """Old failures stop counting."""
        for _ in range(3):
            self.throttle.started("alice", "a")
            self.throttle.failed("alice", "a")
            self.clock.advance(10)
        self.assertEqual(self.throttle.wait("alice", "a"), 30)
        self.clock.advance(30)
        self.assertEqual(self.throttle.wait("alice", "a"), 0)

    def test_concurrent_guesses(self):
        """
        Distinct checks under way hold back another one before any fails, for
        a second only (they may all succeed); an abandoned check frees its place.
        """
        for _ in range(3):
            self.assertEqual(self.throttle.wait("alice", "a"), 0)
            self.throttle.started("alice", "a")
        self.assertEqual(self.throttle.wait("alice", "a"), throttling.PENDING_WAIT)
        self.throttle.abandoned("alice", "a")
        self.assertEqual(self.throttle.wait("alice", "a"), 0)

    def test_checks_under_way_are_not_failures(self):
        """Checks that end well leave nothing behind: only failed checks count."""
        for _ in range(3):
            self.throttle.started("alice", "a")
        for _ in range(3):
            self.throttle.succeeded("alice", "a")
        self.assertEqual(self.throttle.wait("alice", "a"), 0)
        for _ in range(2):
            self.throttle.started("alice", "a")
            self.throttle.failed("alice", "a")
        self.assertEqual(self.throttle.wait("alice", "a"), 0)
        self.assertEqual(self.throttle._pending, {})

    def test_last_place_under_way(self):
        """With the last allowed failure under way the wait is short; once it fails, a window."""
        for _ in range(2):
            self.throttle.started("alice", "a")
            self.throttle.failed("alice", "a")
        self.throttle.started("alice", "a")
        self.assertEqual(self.throttle.wait("alice", "a"), throttling.PENDING_WAIT)
        self.clock.advance(5)
        self.throttle.failed("alice", "a")
        self.assertEqual(self.throttle.wait("alice", "a"), 55)

    def test_spraying(self):
        """One address failing for many users is held back as a whole."""
        throttle = LoginThrottle(self.clock, max_failures=3, window=60,
                                 max_address_failures=5)
        for number in range(5):
            throttle.started(f"user{number}", "a")
            throttle.failed(f"user{number}", "a")
        self.assertGreater(throttle.wait("someone-else", "a"), 0)
        self.assertEqual(throttle.wait("someone-else", "b"), 0)

    def test_spraying_at_once(self):
        """Checks under way for many users from one address are bounded before any fails."""
        throttle = LoginThrottle(self.clock, max_failures=3, window=60,
                                 max_address_failures=5)
        admitted = 0
        for number in range(1000):
            if throttle.wait(f"user{number}", "a") == 0:
                throttle.started(f"user{number}", "a")
                admitted += 1
        self.assertEqual(admitted, 5)
        self.assertEqual(throttle.wait("someone-else", "b"), 0)

    def test_success_clears(self):
        """A good login forgets the failures."""
        for _ in range(2):
            self.throttle.started("alice", "a")
            self.throttle.failed("alice", "a")
        self.throttle.started("alice", "a")
        self.throttle.succeeded("alice", "a")
        self.throttle.started("alice", "a")
        self.throttle.failed("alice", "a")
        self.assertEqual(self.throttle.wait("alice", "a"), 0)


    def test_forgive(self):
        """
        Forgiving a user (an admin set their password again) ends their
        lock-out from every client, their name's bucket too (rule 6); other
        users' stay, and so do the clients' own counts.
        """
        throttle = LoginThrottle(self.clock, max_failures=3, window=60,
                                 max_address_failures=5, max_identity_failures=4)
        for user, client in (("alice", "a"), ("alice", "a"), ("alice", "a"), ("alice", "b"),
                             ("bob", "a"), ("bob", "a")):
            throttle.started(user, client)
            throttle.failed(user, client)
        # (4 failures of alice's: her name's bucket holds back clients "b" and "c" too)
        self.assertEqual([throttle.wait("alice", c) for c in ("a", "b", "c")], [60, 15, 15])
        # (of those whose password was set, only those with failures are
        # said forgiven: a user just made has none)
        self.assertEqual(throttle.forgive(["alice", "dave"]), ["alice"])
        self.assertEqual([throttle.wait("alice", c) for c in ("b", "c")], [0, 0])
        # (the client "a" made 5 failures in all: its own cap, for every name)
        self.assertEqual(throttle.wait("alice", "a"), 60)
        self.assertEqual(throttle.wait("carol", "a"), 60)
        self.assertEqual(sorted(key for key in throttle._failures if key[0] is not None),
                         [("bob", "a")])
        self.assertEqual(throttle.forgive([]), [])
        self.assertEqual(throttle.wait("alice", "b"), 0)


class _Peer:
    host = "10.0.0.9"

    def __init__(self, host=None):
        if host is not None:
            self.host = host


class _Request:
    """Just enough of a request: its Authorization header and address."""

    def __init__(self, password, user="alice", host=None):
        token = base64.b64encode(f"{user}:{password}".encode())
        self.requestHeaders = Headers({b"authorization": [b"Basic " + token]})
        self._peer = _Peer(host)

    def getClientAddress(self):
        return self._peer


class AccessThrottleTests(SynchronousTestCase):
    """The gate: guessers get 429, bursts of the right credentials are one check."""

    def gate(self, pool, **throttle_args):
        """An L{Gates} over the real verifier (hashing through C{pool}) and a throttle."""
        max_pending = throttle_args.pop("max_pending", 64)
        self.clock = Clock()
        self.throttle = LoginThrottle(self.clock, **throttle_args)
        verifier = PasswordVerifier(USERS, self.clock, object(), run_in_pool=pool,
                                    max_pending=max_pending)
        self.tokens = TokenBook(self.clock)
        return Gates(AccessModel(), verifier, self.throttle, self.tokens)

    def test_429(self):
        """Wrong passwords: 401s, then 429 without even checking the password."""
        pool = SynchronousPool()
        access = self.gate(pool, max_failures=2, window=60)
        for _ in range(2):
            self.failureResultOf(access.identify(_Request("wrong")), Unauthorized)
        failure = self.failureResultOf(access.identify(_Request(PASSWORD)), TooManyRequests)
        self.assertEqual(dict(failure.value.headers)[b"retry-after"], b"60")
        self.assertEqual(len(pool.calls), 2)

    def test_known_client_not_locked_out(self):
        """A client whose password was verified lately is not held back by others' guesses."""
        pool = SynchronousPool()
        access = self.gate(pool, max_failures=2, window=60)
        self.successResultOf(access.identify(_Request(PASSWORD)))
        for _ in range(3):
            self.failureResultOf(access.identify(_Request("wrong")))
        self.assertEqual(self.successResultOf(access.identify(_Request(PASSWORD))),
                         Identity("alice"))

    def test_burst_of_right_credentials_on_cold_verifier(self):
        """Fifty identical right credentials at once on a cold verifier: one hash, no 429, fifty identities."""
        pool = PendingPool()
        access = self.gate(pool)
        burst = [access.identify(_Request(PASSWORD)) for _ in range(50)]
        self.assertEqual(len(pool.pending), 1)
        for d in burst:
            self.assertNoResult(d)
        pool.finish()
        self.assertEqual([self.successResultOf(d) for d in burst], [Identity("alice")] * 50)
        self.assertEqual(self.throttle._pending, {})
        self.assertEqual(self.throttle._failures, {})

    def test_burst_joins_check_under_guesses(self):
        """
        Once the right password is being checked, more requests with it join
        that check even while guesses from the same address fill the
        throttle's places: identical right credentials are never refused.
        """
        pool = PendingPool()
        access = self.gate(pool, max_failures=3, window=60)
        first = access.identify(_Request(PASSWORD))
        guesses = [access.identify(_Request(f"guess {n}")) for n in range(2)]
        self.failureResultOf(access.identify(_Request("guess 3")), TooManyRequests)
        burst = [access.identify(_Request(PASSWORD)) for _ in range(20)]
        self.assertEqual(len(pool.pending), 3)
        pool.finish()
        for d in [first, *burst]:
            self.assertEqual(self.successResultOf(d), Identity("alice"))
        for d in guesses:
            self.failureResultOf(d, Unauthorized)

    def test_burst_of_one_wrong_password_is_one_failure(self):
        """The same wrong password sent fifty times at once is one check and one failure."""
        pool = PendingPool()
        access = self.gate(pool, max_failures=2, window=60)
        burst = [access.identify(_Request("wrong")) for _ in range(50)]
        self.assertEqual(len(pool.pending), 1)
        pool.finish()
        for d in burst:
            self.failureResultOf(d, Unauthorized)
        self.assertEqual(self.throttle.wait("alice", _Peer.host), 0)
        again = access.identify(_Request("wrong"))
        pool.finish()
        self.failureResultOf(again, Unauthorized)
        self.failureResultOf(access.identify(_Request(PASSWORD)), TooManyRequests)

    def test_distinct_guesses_at_once_are_bounded(self):
        """
        A thousand distinct passwords sent at once: only C{max_failures} are
        hashed, the rest get 429 (Retry-After 1 while those are under way);
        once they fail, the user is throttled from that address for the
        window, the right password included, and other users are not.
        """
        pool = PendingPool()
        access = self.gate(pool)
        guesses = [access.identify(_Request(f"guess {n}")) for n in range(1000)]
        self.assertEqual(len(pool.pending), throttling.MAX_FAILURES)
        held = [self.failureResultOf(d, TooManyRequests) for d in guesses[throttling.MAX_FAILURES:]]
        self.assertEqual({dict(f.value.headers)[b"retry-after"] for f in held}, {b"1"})
        pool.finish()
        for d in guesses[:throttling.MAX_FAILURES]:
            self.failureResultOf(d, Unauthorized)
        self.clock.advance(1)
        refused = self.failureResultOf(access.identify(_Request(PASSWORD)), TooManyRequests)
        self.assertEqual(dict(refused.value.headers)[b"retry-after"], b"299")
        self.failureResultOf(access.identify(_Request("guess 1000")), TooManyRequests)
        self.assertEqual(pool.pending, [])
        bob = access.identify(_Request("bob's", user="bob"))
        pool.finish()
        self.assertEqual(self.successResultOf(bob), Identity("bob"))

    def test_busy_counts_for_nothing(self):
        """A check refused as busy (503) takes no place and records no failure."""
        pool = PendingPool()
        access = self.gate(pool, max_failures=2, window=60, max_pending=1)
        first = access.identify(_Request("guess 1", user="bob"))
        self.failureResultOf(access.identify(_Request("guess 2")), Unavailable)
        self.assertEqual(self.throttle.wait("alice", _Peer.host), 0)
        right = access.identify(_Request(PASSWORD))
        self.failureResultOf(right, Unavailable)
        pool.finish()
        self.failureResultOf(first, Unauthorized)
        right = access.identify(_Request(PASSWORD))
        pool.finish()
        self.assertEqual(self.successResultOf(right), Identity("alice"))

    def test_password_set_again(self):
        """
        A password an admin set again (its hash changed at a reload) works
        at once, however many wrong ones came before (it was refused with
        429 until the window ended); a reload that changes no password
        forgives nobody.
        """
        access = self.gate(SynchronousPool(), max_failures=2, window=60)
        for user, wrong in (("alice", "wrong"), ("alice", "wronger"), ("bob", "x"),
                            ("bob", "y")):
            self.failureResultOf(access.identify(_Request(wrong, user=user)), Unauthorized)
        self.failureResultOf(access.identify(_Request(PASSWORD)), TooManyRequests)

        def reload(users):
            access.reconfigure(AccessModel(), PasswordVerifier(
                users, self.clock, object(), run_in_pool=SynchronousPool()), self.tokens)
        reload(USERS)
        self.failureResultOf(access.identify(_Request(PASSWORD)), TooManyRequests)
        reload({**USERS, "alice": hash_password("new horse", FAST)})
        self.assertEqual(self.successResultOf(access.identify(_Request("new horse"))),
                         Identity("alice"))
        self.failureResultOf(access.identify(_Request("bob's", user="bob")), TooManyRequests)

    def test_password_set_again_at_reload(self):
        """The identity part's reload (C{SIGHUP}) forgives the user whose password changed."""
        from pypid.config import load_config
        from pypid.storage.folder.journal_files import MemoryJournal
        from pypid.web.identity.identity_part import IdentityPart
        from pypid.web.server.audit_trail import AuditTrail
        from tests.harness.tap import AtOncePool, ThreadedReactor

        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)

        def config(password):
            path = os.path.join(folder, "pypid.ini")
            with open(path, "w", encoding="utf-8") as f:
                f.write(f"[pypid]\nsnapshot = {folder}/index.json\n[users]\n"
                        f"alice = {hash_password(password, FAST)}\n")
            return load_config(path)
        reactor = ThreadedReactor()
        part = IdentityPart(config(PASSWORD), reactor, AtOncePool(),
                            AuditTrail(MemoryJournal(reactor), reactor), run_now)
        for n in range(throttling.MAX_FAILURES):
            self.failureResultOf(part.access.identify(_Request(f"guess {n}")), Unauthorized)
        self.failureResultOf(part.access.identify(_Request(PASSWORD)), TooManyRequests)
        part.prepare_reload(config("new horse"))()
        self.assertEqual(self.successResultOf(part.access.identify(_Request("new horse"))),
                         Identity("alice"))

    def test_token_failures_throttled(self):
        """
        Wrong API tokens never hold back a good one from the same address
        (issue 15, 5): a token is checked before the throttle is asked, so a
        right one always passes; a wrong one counts for its id (issued or
        not) and for the address, as every failure does (issue 25, 4).
        """
        access = self.gate(SynchronousPool(), max_failures=2, window=60,
                           max_address_failures=5)
        good, _ = self.tokens.issue("alice", {"read"})
        stale, _ = self.tokens.issue("alice", {"read"})
        codes = [self.failureResultOf(access.identify(
            _Request("pypid-wrong", user="__token__"))).value.code for _ in range(3)]
        self.assertEqual(codes, [401, 401, 429])
        self.assertEqual(self.successResultOf(access.identify(
            _Request(good, user="__token__"))).name, "alice")
        wrong = stale[:-4] + ("aaaa" if not stale.endswith("aaaa") else "bbbb")
        for _ in range(2):
            self.failureResultOf(access.identify(_Request(wrong, user="__token__")),
                                 Unauthorized)
        self.failureResultOf(access.identify(_Request(wrong, user="__token__")),
                             TooManyRequests)
        self.assertEqual(self.successResultOf(access.identify(
            _Request(good, user="__token__"))).name, "alice")
        # Made-up tokens are held back by address, past its own ceiling.
        self.failureResultOf(access.identify(_Request("pypid-other", user="__token__")),
                             Unauthorized)
        self.failureResultOf(access.identify(_Request("pypid-third", user="__token__")),
                             TooManyRequests)
        self.assertEqual(self.successResultOf(access.identify(
            _Request(good, user="__token__"))).name, "alice")

    def test_known_user_held_back_by_sprayed_names_alike(self):
        """
        An address that sprayed made-up user names is held back for a user
        of the server's own too (issue 25, 4: the answer tells nothing),
        unless that user's credentials were verified lately.
        """
        pool = SynchronousPool()
        access = self.gate(pool, max_failures=2, window=60, max_address_failures=3)
        self.successResultOf(access.identify(_Request("bob's", user="bob")))
        for number in range(3):
            self.failureResultOf(access.identify(_Request("x", user=f"nobody{number}")),
                                 Unauthorized)
        self.failureResultOf(access.identify(_Request("x", user="nobody9")), TooManyRequests)
        self.failureResultOf(access.identify(_Request(PASSWORD)), TooManyRequests)
        self.assertEqual(self.successResultOf(access.identify(_Request("bob's", user="bob"))),
                         Identity("bob"))


class WebBurstTests(SynchronousTestCase):
    """Bursts through the whole web side (L{build_web}), with the server's throttle."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1767225600)
        self.storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)
        self.successResultOf(self.storage.prepare())
        self.index = Index(file_url_for(None))
        self.pool = PendingPool()
        verifier = PasswordVerifier(USERS, self.clock, None, run_in_pool=self.pool)
        access = Gates(AccessModel(read="authenticated"), verifier, LoginThrottle(self.clock))
        web = build_web(one_index(self.index, self.storage, self.clock), access, run_now,
                        self.clock,
                        SiteSettings(max_upload_size=10 << 20))
        self.client = site_treq(web.site)

    def start_upload(self, number, password=PASSWORD):
        """Begin uploading a distinct wheel as alice; return the response's L{Deferred}."""
        filename, data = make_wheel(f"burst-{number}", "1.0")
        ctype, body = multipart_body(twine_fields(f"burst-{number}", "1.0", data),
                                     [("content", filename, data)])
        token = base64.b64encode(f"alice:{password}".encode())
        return self.client.request("POST", ORIGIN + "/legacy/", data=body,
                                   headers={"Content-Type": ctype,
                                            "Authorization": b"Basic " + token})

    def codes(self, requests):
        """The statuses of finished responses."""
        self.client.flush()
        responses = [self.successResultOf(d) for d in requests]
        for response in responses:
            self.successResultOf(response.content())
        return [response.code for response in responses]

    def test_twenty_simultaneous_uploads(self):
        """Twenty uploads by one user at once on a cold server: one hash, and all twenty stored."""
        uploads = [self.start_upload(number) for number in range(20)]
        self.client.flush()
        self.assertEqual(len(self.pool.pending), 1)
        self.pool.finish()
        self.assertEqual(self.codes(uploads), [200] * 20)
        self.assertEqual(len(self.index), 20)

    def test_parallel_distinct_wrong_passwords(self):
        """Twenty uploads with distinct wrong passwords at once: ten are checked (401), ten get 429."""
        uploads = [self.start_upload(number, f"guess {number}") for number in range(20)]
        self.client.flush()
        self.assertEqual(len(self.pool.pending), throttling.MAX_FAILURES)
        self.pool.finish()
        self.assertEqual(sorted(self.codes(uploads)), [401] * 10 + [429] * 10)
        self.assertEqual(len(self.index), 0)

    def test_fifty_reads_of_private_index(self):
        """Fifty authenticated reads of a private index at once on a cold server: one hash, fifty 200s."""
        token = base64.b64encode(f"alice:{PASSWORD}".encode())
        reads = [self.client.get(ORIGIN + "/simple/", headers={"Authorization": b"Basic " + token})
                 for _ in range(50)]
        self.client.flush()
        self.assertEqual(len(self.pool.pending), 1)
        self.pool.finish()
        self.assertEqual(self.codes(reads), [200] * 50)


def _guesses(throttle, user, addresses, clock=None, step=0.0):
    """
    One wrong password for C{user} from each of C{addresses}, as the gate
    makes them; the waits asked (0 for a check made), in order.
    """
    waits = []
    for address in addresses:
        wait = throttle.wait(user, address)
        waits.append(wait)
        if not wait:
            throttle.started(user, address)
            throttle.failed(user, address)
        if clock is not None:
            clock.advance(step)
    return waits


class ClientCountingTests(SynchronousTestCase):
    """
    Issue 25, defect 3: an IPv6 client counts by its /64, and a user name is
    capped across every client without locking its real user out.
    """

    def setUp(self):
        self.clock = Clock()
        self.throttle = LoginThrottle(self.clock)

    def test_rotation_within_a_64(self):
        """300 wrong passwords for admin from 300 addresses of one /64: 290 get 429."""
        addresses = [f"2001:db8:1:2::{n:x}" for n in range(1, 301)]
        waits = _guesses(self.throttle, "admin", addresses)
        self.assertEqual(sum(1 for wait in waits if wait), 290)
        # Another /64 is another client.
        self.assertEqual(self.throttle.wait("admin", "2001:db8:1:3::1"), 0)

    def test_ipv4_mapped_counts_as_ipv4(self):
        """An IPv4 client seen through an IPv6 socket is the same client as its IPv4 address."""
        addresses = ["::ffff:192.0.2.7", "192.0.2.7"] * 5
        _guesses(self.throttle, "admin", addresses)
        self.assertGreater(self.throttle.wait("admin", "192.0.2.7"), 0)
        self.assertGreater(self.throttle.wait("admin", "::ffff:192.0.2.7"), 0)

    def test_prefix_is_configurable(self):
        """With C{ipv6_prefix=56}, the /64s of one /56 are one client; with 128, each address."""
        wide = LoginThrottle(self.clock, ipv6_prefix=56)
        _guesses(wide, "admin", [f"2001:db8:1:{n:x}::1" for n in range(10)])
        self.assertGreater(wide.wait("admin", "2001:db8:1:ff::1"), 0)
        self.assertEqual(wide.wait("admin", "2001:db8:2::1"), 0)
        narrow = LoginThrottle(self.clock, ipv6_prefix=128)
        _guesses(narrow, "admin", [f"2001:db8:1:2::{n:x}" for n in range(1, 11)])
        self.assertEqual(narrow.wait("admin", "2001:db8:1:2::ff"), 0)

    def test_rotation_across_networks(self):
        """
        1,000 wrong passwords for admin, each from a /64 of its own: past
        300, 429 with a Retry-After of a second; the name then gets one check
        a second, as its bucket empties.
        """
        addresses = [f"2001:db8:{n:x}::1" for n in range(1000)]
        waits = _guesses(self.throttle, "admin", addresses)
        held = [wait for wait in waits if wait]
        self.assertEqual(len(held), 700)
        self.assertEqual(set(held), {1.0})
        # Another name is not held back.
        self.assertEqual(self.throttle.wait("carol", "2001:db8:ffff::1"), 0)
        # Over a minute, one check a second goes through.
        more = _guesses(self.throttle, "admin",
                        [f"2001:db9:{n:x}::1" for n in range(600)], self.clock, 0.1)
        self.assertEqual(sum(1 for wait in more if not wait), 60)

    def test_unknown_names_alike(self):
        """The cap across clients holds for a made-up name as for a real one (nothing told)."""
        for user in ("admin", "no-such-user"):
            waits = _guesses(self.throttle, user, [f"2001:db8:{n:x}::1" for n in range(400)])
            self.assertEqual(sum(1 for wait in waits if wait), 100, user)

    def test_real_user_gets_in_during_attack(self):
        """
        During a rotation attack on alice, alice from a network she logged
        in from this week is checked at once; from a new network she waits a
        second at most, and then gets a check.
        """
        self.throttle.started("alice", "2001:db8:aaaa:1::5")
        self.throttle.succeeded("alice", "2001:db8:aaaa:1::5")
        self.clock.advance(86400)
        _guesses(self.throttle, "alice", [f"2001:db8:{n:x}::1" for n in range(1000)])
        self.assertEqual(self.throttle.wait("alice", "2001:db8:aaaa:1::77"), 0)
        self.assertEqual(self.throttle.wait("alice", "198.51.100.4"), 1.0)
        self.clock.advance(1)
        self.assertEqual(self.throttle.wait("alice", "198.51.100.4"), 0)
        # A week after her last login, that network is like any other.
        self.clock.advance(7 * 86400)
        _guesses(self.throttle, "alice", [f"2001:db9:{n:x}::1" for n in range(400)])
        self.assertGreater(self.throttle.wait("alice", "2001:db8:aaaa:1::77"), 0)

    def test_checks_under_way_count_across_clients(self):
        """A thousand guesses at once from a thousand networks: 300 are checked."""
        admitted = 0
        for n in range(1000):
            address = f"2001:db8:{n:x}::1"
            if self.throttle.wait("admin", address) == 0:
                self.throttle.started("admin", address)
                admitted += 1
        self.assertEqual(admitted, 300)

    def test_tokens_not_counted_across_clients(self):
        """A token's id is counted per client only: its secret cannot be guessed."""
        for n in range(400):
            address = f"2001:db8:{n:x}::1"
            self.assertEqual(self.throttle.wait("__token__:1a2b", address, False), 0)
            self.throttle.started("__token__:1a2b", address, False)
            self.throttle.failed("__token__:1a2b", address, False)
        self.assertEqual(self.throttle._identities, {})


class KnownAndUnknownTests(SynchronousTestCase):
    """
    Issue 25, defect 4: a known user's failures count against the client
    too, and past the client's cap every name gets the same answer.
    """

    def gate(self, users, **throttle_args):
        self.clock = Clock()
        self.throttle = LoginThrottle(self.clock, **throttle_args)
        verifier = PasswordVerifier(users, self.clock, object(), run_in_pool=SynchronousPool())
        self.tokens = TokenBook(self.clock)
        return Gates(AccessModel(), verifier, self.throttle, self.tokens)

    def answer(self, d):
        """C{(status, message, Retry-After)} of a refused identification."""
        failure = self.failureResultOf(d)
        return (failure.value.code, failure.value.message,
                dict(failure.value.headers).get(b"retry-after"))

    def test_alike_after_client_cap(self):
        """
        After 100 failures from one address (made-up names), a real name and
        a made-up one both get 429, with the same Retry-After and message
        but for the name (before: 401 for the real one).
        """
        access = self.gate(USERS)
        for number in range(100):
            self.failureResultOf(access.identify(_Request("x", user=f"nobody{number // 10}")),
                                 Unauthorized)
        known = self.answer(access.identify(_Request("wrong")))
        unknown = self.answer(access.identify(_Request("wrong", user="mallory")))
        self.assertEqual(known[0], 429)
        self.assertEqual(unknown[0], 429)
        self.assertEqual(known[2], unknown[2])
        self.assertEqual(known[1].replace("'alice'", "'mallory'"), unknown[1])

    def test_spraying_known_users(self):
        """One wrong password sprayed over the real users from one address is held back."""
        users = {f"user{n}": USERS["bob"] for n in range(6)}
        access = self.gate(users, max_address_failures=5)
        codes = [self.answer(access.identify(_Request("guess", user=f"user{n}")))[0]
                 for n in range(6)]
        self.assertEqual(codes, [401] * 5 + [429])

    def test_unknown_and_stale_tokens_alike(self):
        """
        A wrong secret for a token the server issued, and a token it never
        issued, are counted alike (per token id and per client); a right
        token is never held back, whatever was tried from its address.
        """
        access = self.gate(USERS, max_failures=2, max_address_failures=5)
        good, _ = self.tokens.issue("alice", {"read"})
        stale, _ = self.tokens.issue("alice", {"read"})
        wrong = stale[:-4] + ("aaaa" if not stale.endswith("aaaa") else "bbbb")
        made_up = "pypid-0000abcd-" + "a" * 40
        codes = {}
        for name, token in (("issued", wrong), ("made-up", made_up)):
            codes[name] = [self.answer(access.identify(_Request(token, user="__token__")))[0]
                           for _ in range(3)]
        self.assertEqual(codes, {"issued": [401, 401, 429], "made-up": [401, 401, 429]})
        for number in range(5):
            access.identify(_Request("x", user=f"nobody{number}")).addErrback(lambda _: None)
        self.assertEqual(self.successResultOf(access.identify(
            _Request(good, user="__token__"))).name, "alice")


def _proxies(*networks):
    return TrustedProxies(tuple(ipaddress.ip_network(n) for n in networks))


class ForwardedForTests(SynchronousTestCase):
    """L{TrustedProxies.client}: the client a trusted proxy names, and nothing else."""

    proxies = _proxies("127.0.0.1", "10.1.0.0/16", "2001:db8:ff::/48")

    def test_untrusted_peer(self):
        """A peer that is not a listed proxy is the client, whatever it sends."""
        self.assertEqual(self.proxies.client("192.0.2.7", [b"127.0.0.1"]), ("192.0.2.7", False))
        self.assertEqual(NO_PROXIES.client("127.0.0.1", [b"192.0.2.7"]), ("127.0.0.1", False))

    def test_trusted_peer(self):
        """From a listed proxy, the rightmost address that is not a proxy is the client."""
        self.assertEqual(self.proxies.client("127.0.0.1", [b"192.0.2.7"]), ("192.0.2.7", False))
        self.assertEqual(self.proxies.client("::ffff:127.0.0.1", [b"192.0.2.7, 10.1.2.3"]),
                         ("192.0.2.7", False))
        self.assertEqual(self.proxies.client("2001:db8:ff::1", [b"2001:db8:1::9"]),
                         ("2001:db8:1::9", False))
        # No header: the proxy itself (a health check, say).
        self.assertEqual(self.proxies.client("127.0.0.1", []), ("127.0.0.1", False))

    def test_spoofed_leftmost_entries(self):
        """What the client wrote before the proxy's entry is never read, however it looks."""
        for sent in ([b"127.0.0.1, 198.51.100.9"], [b"garbage", b"198.51.100.9"],
                     [b"10.1.0.1,198.51.100.9"]):
            self.assertEqual(self.proxies.client("127.0.0.1", sent), ("198.51.100.9", False),
                             sent)

    def test_every_entry_a_proxy(self):
        """A chain of proxies only: the leftmost is the client."""
        self.assertEqual(self.proxies.client("127.0.0.1", [b"10.1.0.1, 10.1.0.2"]),
                         ("10.1.0.1", False))

    def test_malformed(self):
        """An entry that must be read and is not an address: the proxy is the client."""
        for sent in ([b"198.51.100.9:4711"], [b"unknown"], [b""], [b"192.0.2.7,"],
                     [b"\xff\xfe"]):
            self.assertEqual(self.proxies.client("127.0.0.1", sent), ("127.0.0.1", True), sent)


class _Recorder:
    """An audit trail that keeps the failed logins it is told of."""

    def __init__(self):
        self.failed = []

    def login_failed(self, user, address, token=None, throttled=False):
        self.failed.append((user, address, throttled))


class ProxiedSiteTests(SynchronousTestCase):
    """
    The whole web side behind a proxy (the peer is StubTreq's 127.0.0.1):
    with C{trusted_proxies} the throttle and the audit log count the client
    the proxy names; without, every client is the proxy.
    """

    def client(self, proxies):
        self.clock = Clock()
        self.clock.advance(1767225600)
        storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)
        self.successResultOf(storage.prepare())
        verifier = PasswordVerifier(USERS, self.clock, None, run_in_pool=SynchronousPool())
        self.audit = _Recorder()
        access = Gates(AccessModel(read="authenticated"), verifier,
                        LoginThrottle(self.clock, max_failures=3), audit=self.audit)
        web = build_web(one_index(Index(file_url_for(None)), storage, self.clock), access, run_now,
                        self.clock,
                        SiteSettings(max_upload_size=10 << 20, trusted_proxies=proxies))
        return site_treq(web.site)

    def codes(self, client, forwarded, password="wrong"):
        """The statuses of reads as alice from the clients of C{forwarded}."""
        token = base64.b64encode(f"alice:{password}".encode())
        codes = []
        for value in forwarded:
            d = client.get(ORIGIN + "/simple/", headers={"Authorization": b"Basic " + token,
                                                         "X-Forwarded-For": value})
            client.flush()
            response = self.successResultOf(d)
            self.successResultOf(response.content())
            codes.append(response.code)
        return codes

    def test_per_client_behind_trusted_proxy(self):
        """Each client the proxy names has its own count; a spoofed entry changes nothing."""
        client = self.client(_proxies("127.0.0.1"))
        self.assertEqual(self.codes(client, ["192.0.2.1"] * 4), [401, 401, 401, 429])
        # 192.0.2.1 posing as 192.0.2.2 (the proxy appends the real address),
        # and 192.0.2.2 posing as 192.0.2.1.
        self.assertEqual(self.codes(client, ["192.0.2.2, 192.0.2.1", "192.0.2.1, 192.0.2.2"]),
                         [429, 401])
        self.assertEqual([address for _, address, _ in self.audit.failed],
                         ["192.0.2.1"] * 5 + ["192.0.2.2"])

    def test_headers_ignored_without_trusted_proxies(self):
        """Without C{trusted_proxies} a forwarded address is ignored: every client is the peer."""
        client = self.client(NO_PROXIES)
        self.assertEqual(self.codes(client, ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]),
                         [401, 401, 401, 429])
        self.assertEqual({address for _, address, _ in self.audit.failed}, {"127.0.0.1"})
