"""
Tests of how trusted publishing's tables are shared between publishers
(issue 45, item 4): a publisher is the C{[publishers]} entry its token
matched and the repository it ran in, not its C{sub}, so one repository
minting from many branches is one publisher, and two repositories sharing
a C{sub} are two; one publisher cannot take the room the others need (of
the live minted tokens nor of the remembered C{jti}s); a publisher over
its share, or minting faster than its rate, gets 429 with C{Retry-After},
the others go on.

On a L{Clock}, with L{tests.harness.oidc_issuer}'s issuers in memory.
"""

import json

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.oidc_errors import OverShare, TooMany
from pypid.auth.publisher_tokens import PublisherTokens, ReplayCache
from pypid.core.access.publishers import PublishingSettings, parse_publishers, publisher_name
from tests.harness.oidc import GITHUB, GITLAB, NOW, RULES, MintSiteMixin, _IssuerMixin

#: acme/widgets' documentation workflow publishes widget-docs from any
#: branch or environment: each is another C{sub}, one publisher.
DOCS = parse_publishers("widget-docs", "issuer:github repository:acme/widgets", 2)

#: Any repository of the acme organisation in its release environment
#: publishes acme-*; their C{sub} names the owner only (GitHub lets an
#: organisation choose the claims its C{sub} is made of).
ORGANISATION = parse_publishers("acme-*", "issuer:github repository_owner:acme "
                                "environment:release")

#: Such a C{sub}, the same for every repository of the organisation.
OWNER_SUB = "repository_owner:acme:environment:release"


class PublisherNameTests(SynchronousTestCase):
    """The name a minted token acts as, uploads and is audited by."""

    def test_repository(self):
        """A token naming its repository (GitHub's, GitLab's claim) is named by it."""
        self.assertEqual(publisher_name("github", {"repository": "acme/widgets",
                                                   "sub": "repo:acme/widgets:ref:x"}, DOCS[0]),
                         "publisher:github:acme/widgets")
        self.assertEqual(publisher_name("gitlab", {"project_path": "acme/tools", "sub": "s"}),
                         "publisher:gitlab:acme/tools")

    def test_no_repository(self):
        """
        A token of an issuer that names no repository is named by the claims
        of the publisher it matched, never by its C{sub}; without one (a
        refusal), by its C{sub}.
        """
        rule = parse_publishers("x", "issuer:corp team:build env:prod")[0]
        claims = {"team": "build", "env": "prod", "sub": "job-123"}
        self.assertEqual(publisher_name("corp", claims, rule), "publisher:corp:team=build,env=prod")
        self.assertEqual(publisher_name("corp", claims), "publisher:corp:sub=job-123")
        # (a repository claim that is no short printable text is not used)
        self.assertEqual(publisher_name("corp", dict(claims, repository="a b\n"), rule),
                         "publisher:corp:team=build,env=prod")


class TableShareTests(SynchronousTestCase):
    """The live minted tokens and the remembered jtis: nobody takes the room of the others."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)

    def test_minted_tokens_fair_share(self):
        """
        A publisher holding as many tokens as the table has room left is
        refused (L{OverShare}, saying when its first token expires); another
        still gets one.
        """
        minted = PublisherTokens(self.clock, limit=20, per_publisher=20)
        taken = 0
        with self.assertRaises(TooMany) as caught:
            for i in range(20):
                minted.issue("publisher:a", ["acme-*"], 900, f"a {i}")
                taken += 1
                self.clock.advance(1)
        self.assertEqual(taken, 10)
        self.assertIsInstance(caught.exception, OverShare)
        self.assertEqual(caught.exception.retry_after, 900 - 10)
        for i in range(5):
            minted.issue("publisher:b", ["tool"], 900, f"b {i}")
        self.assertEqual(len(minted), 15)

    def test_full_table_only_by_many(self):
        """Only many publishers together fill the table: then it is 503 for all (L{TooMany})."""
        minted = PublisherTokens(self.clock, limit=4, per_publisher=4)
        for name in "abcd":
            minted.issue(f"publisher:{name}", ["x"], 900, "")
        error = self.assertRaises(TooMany, minted.issue, "publisher:e", ["x"], 900, "")
        self.assertNotIsInstance(error, OverShare)

    def test_room_given_back(self):
        """A revoked (burned) token gives its room back; so does the revocation of all."""
        minted = PublisherTokens(self.clock, limit=4, per_publisher=4)
        _, first = minted.issue("publisher:a", ["x"], 900, "")
        minted.issue("publisher:a", ["x"], 900, "")
        self.assertRaises(OverShare, minted.issue, "publisher:a", ["x"], 900, "")
        self.assertTrue(minted.revoke(first.id))
        self.assertFalse(minted.revoke(first.id))
        minted.issue("publisher:a", ["x"], 900, "")
        self.assertEqual(minted.revoke_all(), 2)
        for _ in range(2):
            minted.issue("publisher:a", ["x"], 900, "")
        # Tokens burned as soon as minted leave no trace behind.
        for _ in range(1000):
            minted.revoke(minted.issue("publisher:b", ["x"], 900, "")[1].id)
            self.clock.advance(1)
        self.assertEqual(len(minted), 0)
        self.assertLessEqual(len(minted._expiry), 100)

    def test_mint_rate(self):
        """
        Past its burst, a publisher mints at its rate (burned tokens free no
        rate): the refusal says when the next one may be; others go on.
        """
        minted = PublisherTokens(self.clock, burst=3, every=60)
        for _ in range(3):
            _, token = minted.issue("publisher:a", ["x"], 900, "")
            minted.revoke(token.id)
        error = self.assertRaises(OverShare, minted.issue, "publisher:a", ["x"], 900, "")
        self.assertEqual(error.retry_after, 60)
        self.assertIn("mints at most 3 tokens at once, then one every 60 s", str(error))
        minted.issue("publisher:b", ["x"], 900, "")
        self.clock.advance(59)
        self.assertRaises(OverShare, minted.issue, "publisher:a", ["x"], 900, "")
        self.clock.advance(1)
        minted.issue("publisher:a", ["x"], 900, "")

    def test_replays_fair_share(self):
        """
        The remembered jtis are shared alike: one publisher minting (and
        burning) fast cannot fill the memory every exchange needs.
        """
        replays = ReplayCache(limit=10)
        added = 0
        with self.assertRaises(OverShare):
            for i in range(10):
                replays.add(("https://ci.example", f"a{i}"), NOW + 300, NOW, "publisher:a")
                added += 1
        self.assertEqual(added, 5)
        replays.add(("https://ci.example", "b0"), NOW + 300, NOW, "publisher:b")
        self.assertEqual(len(replays), 6)
        replays.add(("https://ci.example", "a5"), NOW + 600, NOW + 300, "publisher:a")
        self.assertEqual(len(replays), 1)


class PublisherIdentityTests(_IssuerMixin, SynchronousTestCase):
    """Tokens of real (in-memory) issuers: what a publisher is, for its cap and its name."""

    settings = PublishingSettings(issuers=(("github", GITHUB), ("gitlab", GITLAB)),
                                  rules=tuple(RULES) + tuple(DOCS), leeway=60)

    def mint(self, text):
        verified = self.verify(text)
        self.assertNotIsInstance(verified, Exception)
        return self.publishing.mint(verified)

    def test_many_subs_one_publisher(self):
        """
        One repository minting from eleven branches (eleven C{sub}s) is one
        publisher with one cap: it cannot fill the server's table, and
        another publisher still gets a token (it took the whole table,
        then every other publisher had 503).
        """
        tokens = self.publishing.tokens
        tokens.limit, tokens.per_publisher = 100, 10
        names = set()
        refused = 0
        for branch in range(11):
            for _ in range(10):
                text = self.github.github_token(ref=f"refs/heads/b{branch}", environment=None)
                try:
                    names.add(self.mint(text).publisher)
                except OverShare:
                    refused += 1
        self.assertEqual(names, {"publisher:github:acme/widgets"})
        self.assertEqual((len(tokens), refused), (10, 100))
        minted = self.mint(self.gitlab.gitlab_token(project_path="acme/tools"))
        self.assertEqual(minted.publisher, "publisher:gitlab:acme/tools")

    def test_repositories_sharing_a_sub(self):
        """Two repositories whose tokens have one C{sub} have two names and two caps."""
        self.publishing.reconfigure(PublishingSettings(
            issuers=self.settings.issuers, rules=tuple(ORGANISATION), leeway=60))
        self.publishing.tokens.per_publisher = 3

        def token(repository, repository_id):
            return self.github.github_token(repository=repository, repository_id=repository_id,
                                            sub=OWNER_SUB)
        widgets = [self.mint(token("acme/widgets", "1")) for _ in range(3)]
        self.assertRaises(OverShare, self.mint, token("acme/widgets", "1"))
        gadgets = [self.mint(token("acme/gadgets", "2")) for _ in range(3)]
        self.assertEqual({m.publisher for m in widgets}, {"publisher:github:acme/widgets"})
        self.assertEqual({m.publisher for m in gadgets}, {"publisher:github:acme/gadgets"})
        self.assertEqual({m.token.user for m in gadgets}, {"publisher:github:acme/gadgets"})

    def test_refused_exchange_spends_nothing(self):
        """An ID token refused for its publisher's share is not spent: it mints once there is room."""
        self.publishing.tokens.per_publisher = 1
        first = self.mint(self.github.github_token())
        text = self.github.github_token()
        self.assertRaises(OverShare, self.mint, text)
        self.publishing.tokens.revoke(first.token.id)
        self.assertEqual(self.mint(text).publisher, "publisher:github:acme/widgets")


class OverShareRouteTests(MintSiteMixin, SynchronousTestCase):
    """Through the real site: 429 to the publisher over its share, 200 to the others."""

    def test_429_with_retry_after(self):
        """
        The publisher over its share gets 429 with C{Retry-After} (when its
        first token expires), which the address's throttle does not count:
        another publisher behind the same address (a CI's shared runners)
        still mints.
        """
        self.publishing.tokens.per_publisher = 2
        for _ in range(2):
            self.assertEqual(self.mint(self.github.github_token())[0].code, 200)
        self.clock.advance(100)
        text = self.github.github_token()
        for _ in range(150):
            response, body = self.mint(text)
            self.assertEqual(response.code, 429, body)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"800"])
        self.assertIn(b"publisher:github:acme/widgets has 2 live tokens", body)
        response, body = self.request(
            "POST", "/_/oidc/mint-token", data=json.dumps({"token": text}).encode())
        self.assertEqual((response.code, json.loads(body)["errors"][0]["code"]),
                         (429, "rate-limited"))
        response, body = self.mint(self.gitlab.gitlab_token(project_path="acme/tools"))
        self.assertEqual(response.code, 200, body)
        refused = [e for e in self.entries() if e.outcome != "ok"]
        self.assertEqual({e.user for e in refused}, {"publisher:github:acme/widgets"})

    def test_publisher_without_repository(self):
        """
        A token naming no repository is the publisher it matched, whatever
        its C{sub}: one cap, and the refusal (429) audited under that name.
        """
        self.publishing.reconfigure(PublishingSettings(
            issuers=self.settings.issuers, rules=tuple(ORGANISATION), leeway=60))
        self.publishing.tokens.per_publisher = 1
        codes = []
        for sub in ("job-1", "job-2"):
            claims = self.github.github_claims(sub=sub)
            del claims["repository"]
            codes.append(self.mint(self.github.sign(claims))[0].code)
        self.assertEqual(codes, [200, 429])
        name = "publisher:github:repository_owner=acme,environment=release"
        self.assertEqual([(e.outcome, e.user) for e in self.entries()],
                         [("ok", name), ("refused", name)])
