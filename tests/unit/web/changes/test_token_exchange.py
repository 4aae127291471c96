"""
Tests of C{POST /api/oidc/mint-token} under a flood (L{pypid.web.changes.token_exchange}):
its refusals are folded in the audit log like failed logins, whatever is
sent; an address whose exchanges keep being refused is held back (429)
before any verification; exchanges waiting for an issuer are bounded; and
genuine exchanges of other publishers go on meanwhile.

Through the real site, in memory, on a L{Clock} (L{tests.harness.oidc.MintSiteMixin}).
"""

import json

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.issuer_keys import MAX_WAITERS
from pypid.auth.shared_throttle import ThrottleShare
from pypid.core.access.publishers import PublishingSettings
from pypid.core.records.login_failures import MAX_LOGIN_KEYS
from pypid.machine.ring import ChangeRing
from pypid.machine.topics import Hub
from pypid.web.changes import token_exchange
from tests.harness.fakes import multipart_body, twine_fields
from tests.harness.oidc import BASE, OTHER, OTHER_NAME, RULES, MintSiteMixin
from tests.harness.oidc_issuer import compact

#: A configured issuer nobody serves (the in-memory issuers answer 404).
DOWN = BASE + "/down"

#: The kinds of refused exchange a flood sends.
KINDS = ("no-publisher", "replay", "unreachable", "forged")


class ExchangeFloodTests(MintSiteMixin, SynchronousTestCase):
    """Refused exchanges, sent as fast as a client can, from one address or many."""

    settings = PublishingSettings(issuers=(("github", BASE + "/github"), ("gitlab", BASE + "/gitlab"),
                                 ("down", DOWN)),
                        rules=tuple(RULES), leeway=60, jwks_min_refresh=30, timeout=10)

    def setUp(self):
        MintSiteMixin.setUp(self)
        #: the address the exchange sees (L{None}: the real one)
        self.address = None
        real = token_exchange.client_address
        self.patch(token_exchange, "client_address",
                   lambda request: self.address if self.address is not None else real(request))

    def token(self, kind):
        """An ID token the exchange refuses, of C{kind} (see L{KINDS})."""
        if kind == "no-publisher":
            return self.github.github_token(repository="evil/widgets")
        if kind == "replay":
            token = self.github.github_token()
            self.assertEqual(self.mint(token)[0].code, 200)
            return token
        if kind == "unreachable":
            return compact({"alg": "RS256", "kid": "k1"},
                           {"iss": DOWN, "aud": "pypid", "sub": "x", "jti": "j"}, b"junk")
        return self.github.forged(self.github.github_claims())

    def written(self):
        """The audit entries written once the minute has ended."""
        self.clock.advance(61)
        self.clock.advance(1)
        return self.entries()

    def test_flood_from_one_address_folded(self):
        """
        Six hundred refused exchanges of each kind in a minute from one
        address are held back (429) past the first hundred (an unreachable
        issuer's 503s too), and at most four entries (the refusal and the
        429, each at once and then counted), whose counts add up to what
        was sent.
        """
        for kind in KINDS:
            self.address = f"192.0.2.{KINDS.index(kind) + 1}"
            token = self.token(kind)
            self.clock.advance(60 - self.clock.seconds() % 60)  # (a minute begins)
            self.audit_log.files.clear()
            codes = []
            for _ in range(600):
                codes.append(self.mint(token)[0].code)
                self.clock.advance(0.1)
            self.assertEqual(codes[100:], [429] * 500, kind)
            self.assertIn(codes[0], (401, 403, 503), kind)
            entries = [e for e in self.written() if e.outcome != "ok"]
            self.assertLessEqual(len(entries), 4, (kind, len(entries)))
            self.assertEqual(sum(e.count for e in entries), 600, kind)
            self.assertEqual({e.event for e in entries}, {"token-issued"}, kind)
            self.assertEqual({e.address for e in entries}, {self.address}, kind)

    def test_entries_keep_their_meaning(self):
        """A folded refusal names the publisher of a genuine token, and the reason."""
        self.address = "192.0.2.9"
        token = self.token("no-publisher")
        for _ in range(3):
            self.mint(token)
        first, repeats = self.written()
        publisher = "publisher:github:evil/widgets"
        self.assertEqual((first.event, first.outcome, first.user, first.count),
                         ("token-issued", "refused", publisher, 1))
        self.assertIn("its repository is 'evil/widgets'", first.detail)
        self.assertEqual((repeats.user, repeats.count), (publisher, 2))
        self.assertTrue(repeats.detail.startswith("repeats within the minute: no [publishers]"))

    def test_flood_from_many_addresses_bounded(self):
        """
        Five thousand refused exchanges from as many addresses in a minute
        write at most C{2 * MAX_LOGIN_KEYS + 2} entries.
        """
        tokens = {kind: self.token(kind) for kind in KINDS}
        self.audit_log.files.clear()
        for i in range(5000):
            self.address = f"10.0.{i // 256}.{i % 256}"
            self.mint(tokens[KINDS[i % 4]])
            self.clock.advance(0.01)
        entries = self.written()
        self.assertLessEqual(len(entries), 2 * MAX_LOGIN_KEYS + 2)
        self.assertEqual(sum(e.count for e in entries), 5000)

    def test_refusals_do_not_wait_for_the_disk(self):
        """A refused exchange answers without waiting for its entry's write; a minted one waits."""
        writes = []

        def append(entries):
            writes.extend(entries)
            return Deferred()
        self.patch(self.audit_log, "append", append)
        response, body = self.mint(self.token("forged"))
        self.assertEqual(response.code, 401, body)
        self.assertEqual(writes, [])
        d = self.client.request("POST", "http://pypi.test/api/oidc/mint-token",
                                data=json.dumps({"token": self.github.github_token()}).encode())
        self.client.flush()
        self.stub.flush()
        self.client.flush()
        self.assertNoResult(d)
        self.assertEqual([(e.event, e.outcome) for e in writes], [("token-issued", "ok")])

    def test_address_throttled_before_any_work(self):
        """
        Past the refusals allowed, an address gets 429 with Retry-After,
        before any verification: no fetch of keys, a genuine token's C{jti}
        not spent. Other addresses, and the password logins of the same
        address, go on.
        """
        refused = self.token("forged")
        for _ in range(100):
            self.assertEqual(self.mint(refused)[0].code, 401)
        response, body = self.mint(refused)
        self.assertEqual(response.code, 429, body)
        self.assertIn(b"too many refused token exchanges from this address", body)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"300"])
        # A kid the issuer does not publish would fetch its keys again (past
        # jwks_min_refresh), a genuine token would be minted: neither is tried.
        self.clock.advance(31)
        fetched = list(self.issuers.requests)
        unknown_kid = self.github.forged(self.github.github_claims(), kid="rotated")
        genuine = self.github.github_token()
        for token in (unknown_kid, genuine):
            self.assertEqual(self.mint(token)[0].code, 429)
        self.assertEqual(self.issuers.requests, fetched)
        self.address = "203.0.113.5"
        self.assertEqual(self.mint(genuine)[0].code, 200)
        # (the password logins of the throttled address are another throttle's)
        self.address = None
        ctype, body = _other_upload()
        response, _ = self.request("POST", "/legacy/", data=body,
                                   headers={"Content-Type": ctype}, auth=("alice", "pw"))
        self.assertEqual(response.code, 200)

    def test_waiting_for_an_issuer_bounded(self):
        """
        Exchanges waiting for a hung issuer's keys are at most
        C{MAX_WAITERS}; the others are refused at once (503, Retry-After),
        and a publisher of another issuer still exchanges its tokens.
        """
        self.assertEqual(self.mint(self.gitlab.gitlab_token(project_path="acme/tools"))[0].code,
                         200)
        self.resource.hang = True
        waiting = []
        for i in range(MAX_WAITERS + 20):
            self.address = f"10.1.{i // 256}.{i % 256}"
            waiting.append(self.client.request(
                "POST", "http://pypi.test/api/oidc/mint-token",
                data=json.dumps({"token": self.github.github_token()}).encode()))
        self.client.flush()
        self.stub.flush()
        self.client.flush()
        for d in waiting[:MAX_WAITERS]:
            self.assertNoResult(d)
        for d in waiting[MAX_WAITERS:]:
            response = self.successResultOf(d)
            self.assertEqual(response.code, 503)
            self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"30"])
        self.assertEqual(self.issuers.count("openid-configuration"), 2)  # (gitlab's, github's)
        self.address = "203.0.113.6"
        self.assertEqual(self.mint(self.gitlab.gitlab_token(project_path="acme/tools"))[0].code,
                         200)
        self.clock.advance(10)
        self.client.flush()
        for d in waiting[:MAX_WAITERS]:
            self.assertEqual(self.successResultOf(d).code, 503)

    def test_genuine_exchanges_during_a_flood(self):
        """While one client floods the exchange, the other publishers' exchanges are minted."""
        tokens = [self.token(kind) for kind in KINDS]
        for i in range(2000):
            self.address = "198.51.100.66"
            self.mint(tokens[i % 4])
            if i % 100 == 0:
                self.address = "203.0.113.7"
                response, body = self.mint(self.gitlab.gitlab_token(project_path="acme/tools"))
                self.assertEqual(response.code, 200, body)
            self.clock.advance(0.05)


def _other_upload():
    """The multipart body of an upload of C{other} 1.0."""
    return multipart_body(twine_fields("other", "1.0", OTHER), [("content", OTHER_NAME, OTHER)])


class ExchangeAcrossWorkersTests(MintSiteMixin, SynchronousTestCase):
    """The exchange's refusals are the machine's: another worker's count here at once."""

    def site_services(self):
        self.ring = ChangeRing.create(slots=16, slot_size=256)
        self.lane = ChangeRing.create(slots=256, slot_size=1024, tally=1)
        self.attached = [ChangeRing.attach(made.fileno(), number)
                         for number in (1, 2) for made in (self.ring, self.lane)]
        for ring in (self.ring, self.lane, *self.attached):
            self.addCleanup(ring.close)
        return {"hub": Hub(*self.attached[:2])}

    def test_other_workers_refusals(self):
        """
        A hundred exchanges refused on another worker, which tells the lane
        alone (no change moves the ring, so nothing has this worker catch
        up): this worker's next exchange from that address is held back
        (429), before any verification.
        """
        other = token_exchange.exchange_throttle(
            self.clock, share=ThrottleShare(Hub(*self.attached[2:]), b"exchange"))
        for _ in range(100):
            self.assertEqual(other.reserve(None, "127.0.0.1"), 0.0)
            other.failed(None, "127.0.0.1")
        self.assertEqual(self.ring.latest(), 0)
        response, body = self.mint(self.github.github_token())
        self.assertEqual(response.code, 429, body)

