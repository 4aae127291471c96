"""
Tests of trusted publishing: C{[oidc]} and C{[publishers]}
(L{pypid.config.oidc_settings}), the rules, the ID token checks and the issuers'
keys (L{pypid.auth.oidc}), and C{POST /api/oidc/mint-token} with the uploads
its tokens make (L{pypid.web.changes.token_exchange}, L{pypid.web.identity.gates}).

The issuers are L{tests.harness.oidc_issuer}'s, served in memory through
L{treq.testing.StubTreq}, on a L{Clock}: real HTTP bytes, real signatures,
no sockets.
"""

import hashlib
import json
import os

from twisted.internet.defer import ensureDeferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.hashes import hash_password
from pypid.auth.issuer_keys import import_jwks
from pypid.auth.oidc import TrustedPublishing, matching_rules
from pypid.auth.oidc_errors import IssuerUnavailable, NoPublisher, OverShare, TooMany
from pypid.auth.policy import AccessModel
from pypid.auth.publisher_tokens import ReplayCache
from pypid.auth.reader import Rules
from pypid.auth.verifier import Identity, PasswordVerifier
from pypid.config import ConfigError, load_config
from pypid.core.access.access_rules import IndexGrants, RuleError, parse_rule
from pypid.core.access.publishers import PublishingSettings, parse_issuers, parse_publishers
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.web_inputs import SiteServices, SiteSettings
from tests import CHECKOUT
from tests.harness.fakes import (
    FAST,
    one_index,
    run_in_pool_now,
    run_now,
    site_treq,
)
from tests.harness.memory_storage import MemoryStorage
from tests.harness.oidc import (
    BASE,
    GITHUB,
    GITLAB,
    NOW,
    OTHER,
    OTHER_NAME,
    RULES,
    WHEEL_NAME,
    MintSiteMixin,
    _IssuerMixin,
)
from tests.harness.oidc_issuer import Issuers, compact


def match_publishers(rules, issuer, claims):
    """The projects the rules matching C{claims} name, as minting takes them."""
    return tuple(dict.fromkeys(rule.pattern for rule in matching_rules(rules, issuer, claims)))


def write_config(case, text):
    """Write a configuration file in a test's folder; return its path."""
    folder = case.mktemp()
    os.makedirs(folder)
    path = os.path.join(folder, "pypid.ini")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class ConfigTests(SynchronousTestCase):
    """C{[oidc]} and C{[publishers]} as the configuration reads them."""

    ISSUERS = (f"[oidc]\nissuers =\n  github {GITHUB}\n  gitlab {GITLAB}\n")

    def load(self, text):
        return load_config(write_config(self, text))

    def refused(self, text):
        with self.assertRaises(ConfigError) as caught:
            self.load(text)
        return str(caught.exception)

    def test_defaults(self):
        """Without the sections: audience pypid, no issuer, no publisher."""
        config = self.load("")
        self.assertEqual(config.oidc.audience, "pypid")
        self.assertEqual(config.oidc.issuers, ())
        self.assertEqual((config.oidc.leeway, config.oidc.lifetime, config.oidc.jwks_ttl,
                          config.oidc.jwks_min_refresh), (60, 900, 3600, 30))
        self.assertEqual(config.publishers, ())

    def test_sections(self):
        """Issuers in file order; one rule per line, globs normalized like [acl]'s."""
        config = self.load(
            self.ISSUERS + "audience = pypi.corp.example\nleeway = 0\nlifetime = 5m\n"
            "[publishers]\n"
            "Acme_* = issuer:github repository:acme/widgets\n"
            "   environment:\"prod east\"\n"
            "   issuer:gitlab project_path:acme/widgets\n"
            "tool = issuer:gitlab project_path:acme/tools\n")
        self.assertEqual(config.oidc.issuers, (("github", GITHUB), ("gitlab", GITLAB)))
        self.assertEqual((config.oidc.audience, config.oidc.leeway, config.oidc.lifetime),
                         ("pypi.corp.example", 0, 300))
        self.assertEqual([(r.pattern, r.issuer, r.claims) for r in config.publishers], [
            ("acme-*", "github", (("repository", "acme/widgets"), ("environment", "prod east"))),
            ("acme-*", "gitlab", (("project_path", "acme/widgets"),)),
            ("tool", "gitlab", (("project_path", "acme/tools"),))])

    def test_unknown_issuer(self):
        """A rule naming an issuer [oidc] does not have stops start-up, naming the key."""
        message = self.refused(self.ISSUERS + "[publishers]\nacme-* = issuer:gh repository:x\n")
        self.assertIn("[publishers] acme-*: issuer:gh: not an issuer of [oidc] issuers "
                      "(the issuers: github, gitlab)", message)
        message = self.refused("[publishers]\nacme-* = issuer:gh repository:x\n")
        self.assertIn("(the issuers: none)", message)

    def test_bad_rules(self):
        """Each malformed rule is refused with the key and the reason."""
        cases = {
            "repository:acme/widgets": "a publisher starts with issuer:NAME",
            "issuer:github": "needs at least one CLAIM:VALUE",
            "issuer:github aud:pypid": "aud: pypid checks that claim itself",
            "issuer:github ref:a ref:b": "ref: the claim is named twice",
            "issuer:github repository": "'repository': expected issuer:NAME or CLAIM:VALUE",
            'issuer:github environment:"prod': "No closing quotation",
            "issuer:github issuer:gitlab ref:a": "issuer:github: a publisher needs at least one",
            "ref:a issuer:github": "'ref:a': a publisher starts with issuer:NAME",
        }
        for value, reason in cases.items():
            message = self.refused(self.ISSUERS + f"[publishers]\nacme-x = {value}\n")
            self.assertIn("[publishers] acme-x: ", message)
            self.assertIn(reason, message)
        message = self.refused(self.ISSUERS + "[publishers]\nacme x = issuer:github ref:a\n")
        self.assertIn("is not a project name or glob", message)

    def test_bad_oidc_keys(self):
        """Issuers must be https URLs with unique names; leeway and lifetime are bounded."""
        cases = {
            "issuers = github http://ci.example": "an issuer is an https:// URL",
            "issuers = github": "expected a name and the issuer's URL",
            f"issuers =\n  a {GITHUB}\n  a {GITLAB}": "'a' names two issuers",
            f"issuers =\n  a {GITHUB}\n  b {GITHUB}": "is given twice (a and b)",
            f"issuers = a {GITHUB}?x=1": "with no query",
            "issuers = a/b https://ci.example": "an issuer name is",
            "audience = two words": "expected one word",
            "leeway = 10m": "at most 300 seconds",
            "lifetime = 2d": "at most 86400 seconds",
            "jwks_ttl = soon": "expected a duration",
        }
        for line, reason in cases.items():
            key = line.partition(" ")[0]
            message = self.refused(f"[oidc]\n{line}\n")
            self.assertIn(f"[oidc] {key}: ", message)
            self.assertIn(reason, message)


class RuleTests(SynchronousTestCase):
    """Which projects a token's claims may publish to."""

    def claims(self, **changes):
        claims = {"repository": "acme/widgets", "environment": "release",
                  "job_workflow_ref": "acme/widgets/.github/workflows/release.yml@refs/heads/main",
                  "project_path": "acme/tools", "ref": "main", "run_number": 7}
        claims.update(changes)
        return claims

    def test_match(self):
        """Every claim of a rule must equal the token's; matching rules' projects add up."""
        rules = RULES + parse_publishers("widget-docs", "issuer:github repository:acme/widgets",
                                         2)
        self.assertEqual(match_publishers(rules, "github", self.claims()),
                         ("acme-*", "widget-docs"))
        self.assertEqual(match_publishers(rules, "gitlab", self.claims()), ("tool",))
        self.assertEqual(match_publishers(rules, "github", self.claims(environment="dev")),
                         ("widget-docs",))

    def test_exact(self):
        """Equality is exact: case, prefixes and suffixes all differ; numbers are their digits."""
        for repository in ("Acme/Widgets", "acme/widgets-evil", "acme/widget", " acme/widgets"):
            with self.assertRaises(NoPublisher):
                match_publishers(RULES, "github", self.claims(repository=repository))
        rule = parse_publishers("x", "issuer:github run_number:7")
        self.assertEqual(match_publishers(rule, "github", self.claims()), ("x",))
        self.assertRaises(NoPublisher, match_publishers, rule, "github",
                          self.claims(run_number=True))
        self.assertRaises(NoPublisher, match_publishers, rule, "github",
                          self.claims(run_number=["7"]))

    def test_refusal_says_which_claim(self):
        """The refusal names the claims that differ, and the token's values, never the rule's."""
        with self.assertRaises(NoPublisher) as caught:
            match_publishers(RULES, "github", self.claims(repository="evil/widgets"))
        message = str(caught.exception)
        self.assertIn("its repository is 'evil/widgets', not the one the rule names", message)
        self.assertNotIn("acme/widgets'", message)
        with self.assertRaises(NoPublisher) as caught:
            match_publishers(RULES, "github", self.claims(environment=None))
        self.assertIn("the token has no environment claim", str(caught.exception))
        with self.assertRaises(NoPublisher) as caught:
            match_publishers(RULES, "other", self.claims())
        self.assertIn("no [publishers] rule names the issuer other", str(caught.exception))

    def test_glob_like_acl(self):
        """A publisher's glob is normalized as an [acl] glob is, and covers the same names."""
        rule = parse_publishers("Acme_*", "issuer:github ref:x")[0]
        acl = parse_rule("Acme_*", "user:ci rw")
        self.assertEqual(rule.pattern, acl.pattern)
        self.assertTrue(rule.covers("ACME.Widgets"))
        self.assertFalse(rule.covers("widgets"))
        self.assertRaises(RuleError, parse_publishers, "acme x", "issuer:github ref:x")

    def test_issuers(self):
        """C{[oidc] issuers}: one name and URL per line, blank lines skipped."""
        self.assertEqual(parse_issuers(f"\n github {GITHUB}\n\ngitlab {GITLAB}/\n"),
                         (("github", GITHUB), ("gitlab", GITLAB + "/")))


class ReplayCacheTests(SynchronousTestCase):
    """The jtis already exchanged."""

    def test_until_expiry(self):
        """A jti is seen until its token's expiry, then forgotten."""
        cache = ReplayCache()
        cache.add(("github", "a"), NOW + 60, NOW)
        self.assertTrue(cache.seen(("github", "a"), NOW + 59))
        self.assertFalse(cache.seen(("gitlab", "a"), NOW))
        self.assertFalse(cache.seen(("github", "a"), NOW + 60))
        cache.add(("github", "b"), NOW + 200, NOW + 100)
        self.assertEqual(len(cache), 1)

    def test_limit(self):
        """Past its limit, new jtis are refused rather than live ones forgotten."""
        cache = ReplayCache(limit=2)
        cache.add(("i", "a"), NOW + 60, NOW, "publisher:i:a")
        cache.add(("i", "b"), NOW + 60, NOW, "publisher:i:b")
        self.assertRaises(TooMany, cache.add, ("i", "c"), NOW + 60, NOW, "publisher:i:c")
        cache.add(("i", "c"), NOW + 120, NOW + 60, "publisher:i:c")
        self.assertTrue(cache.seen(("i", "c"), NOW + 60))


class JWKSTests(SynchronousTestCase):
    """Which keys of a JWKS are used."""

    def test_only_signature_keys(self):
        """Shared secrets, encryption keys, keys without kid and weak RSA keys are left out."""
        issuers = Issuers(BASE)
        issuer = issuers.add("github")
        good = issuer.signing.public_jwk()
        from joserfc.jwk import RSAKey
        weak = dict(RSAKey.generate_key(1024, auto_kid=False).as_dict(private=False), kid="weak")
        document = {"keys": [good, {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
                             dict(good, kid="enc", use="enc"), {k: v for k, v in good.items()
                                                                if k != "kid"},
                             weak, "junk", {"kty": "RSA", "kid": "broken", "n": "x"}]}
        self.assertEqual(list(import_jwks(document)), [good["kid"]])
        self.assertRaises(ValueError, import_jwks, {"keys": "none"})
        self.assertRaises(ValueError, import_jwks, [])


class VerifyTests(_IssuerMixin, SynchronousTestCase):
    """ID tokens checked: the good ones minted, every forgery and mistake refused."""

    def test_github_token(self):
        """A GitHub Actions-like token of the release workflow mints an upload token of acme-*."""
        verified = self.verify(self.github.github_token())
        self.assertEqual(verified.issuer, "github")
        self.assertEqual(verified.publisher,
                         "publisher:github:acme/widgets")
        minted = self.publishing.mint(verified)
        self.assertEqual(minted.projects, ("acme-*",))
        token = self.publishing.tokens.verify(minted.text)
        self.assertEqual(token, minted.token)
        self.assertEqual(token.user, minted.publisher)
        self.assertEqual(token.actions, frozenset({"upload"}))
        self.assertEqual(token.expires, NOW + 900)
        self.assertTrue(token.covers("upload", "Acme.Widgets"))
        self.assertFalse(token.covers("upload", "tool"))
        self.assertFalse(token.covers("read", "acme-widgets"))
        self.clock.advance(900)
        self.assertIsNone(self.publishing.tokens.verify(minted.text))

    def test_gitlab_token(self):
        """A GitLab CI-like token (ES256 here) of acme/tools on main mints a token of tool."""
        verified = self.verify(self.gitlab.gitlab_token(project_path="acme/tools"))
        self.assertEqual(self.publishing.mint(verified).projects, ("tool",))
        self.assertEqual(verified.publisher,
                         "publisher:gitlab:acme/tools")

    def test_other_algorithms(self):
        """RS512, PS256 and EdDSA keys verify too."""
        for kind, alg in (("rsa", "RS512"), ("rsa", "PS256"), ("ed25519", "EdDSA")):
            key = self.github.rotate(kind)
            key.alg = alg
            self.clock.advance(30)
            self.assertEqual(self.verify(self.github.github_token()).issuer, "github", alg)

    def test_keys_fetched_once(self):
        """The discovery document and JWKS are fetched once, then kept."""
        for _ in range(3):
            self.verify(self.github.github_token())
        self.assertEqual(self.issuers.requests, ["/github/.well-known/openid-configuration",
                                                 "/github/jwks"])
        self.clock.advance(3600)
        self.verify(self.github.github_token())
        self.assertEqual(self.issuers.count("/jwks"), 2)

    # -- forgeries ----------------------------------------------------------------

    def test_alg_none(self):
        """An unsigned token (alg none, any spelling) is refused before any key is fetched."""
        claims = self.github.github_claims()
        self.assertEqual(self.refusal(self.github.unsigned(claims)),
                         "unsigned tokens (alg none) are refused")
        token = compact({"alg": "None", "kid": self.github.signing.kid}, claims)
        self.assertIn("(alg none) are refused", self.refusal(token))
        self.assertEqual(self.issuers.requests, [])

    def test_hmac_with_public_key(self):
        """HS256/384/512 keyed with the issuer's public key: refused by name."""
        claims = self.github.github_claims()
        for alg in ("HS256", "HS384", "HS512"):
            message = self.refusal(self.github.hmac_with_public_key(claims, alg))
            self.assertEqual(message, f"tokens signed with a shared secret (alg {alg}) are "
                             "refused: only an issuer's public-key signatures are accepted")
        self.assertEqual(self.issuers.requests, [])

    def test_hmac_cannot_meet_a_public_key(self):
        """
        Even past the name check, joserfc will not verify an HMAC with an RSA
        key: the check is the library's as well as pypid's.
        """
        from joserfc import errors, jwt
        self.verify(self.github.github_token())
        key = self.publishing.issuers[GITHUB].keys[self.github.signing.kid]
        forged = self.github.hmac_with_public_key(self.github.github_claims())
        self.assertRaises(errors.InvalidKeyTypeError, jwt.decode, forged, key,
                          algorithms=["HS256"])

    def test_unknown_algorithm(self):
        """Any other algorithm is refused, naming the accepted ones."""
        token = compact({"alg": "RSA-OAEP", "kid": "x"}, self.github.github_claims())
        self.assertIn("the algorithm RSA-OAEP is not accepted (accepted: RS256",
                      self.refusal(token))
        token = compact({"kid": "x"}, self.github.github_claims())
        self.assertEqual(self.refusal(token), "the token names no algorithm (alg)")

    def test_unknown_key(self):
        """A token signed by a key the issuer does not publish is refused, after one refetch."""
        self.verify(self.github.github_token())
        self.clock.advance(30)
        self.assertEqual(self.refusal(self.github.forged(self.github.github_claims())),
                         "the token is signed with a key ('stranger') that the issuer github "
                         "does not publish")
        self.assertEqual(self.issuers.count("/jwks"), 2)

    def test_forged_with_a_real_kid(self):
        """A forger's signature under the kid of a real key does not verify."""
        claims = self.github.github_claims()
        forged = self.github.forged(claims, kid=self.github.signing.kid)
        self.assertEqual(self.refusal(forged), "the token's signature is not valid")
        head, payload, signature = self.github.github_token().split(".")
        changed = compact({}, dict(self.github.github_claims(), repository="acme/widgets"))
        self.assertEqual(self.refusal(f"{head}.{changed.split('.')[1]}.{signature}"),
                         "the token's signature is not valid")

    def test_embedded_key_ignored(self):
        """A key carried in the header (jwk, jku) is never used."""
        token = self.gitlab.with_embedded_key(self.gitlab.gitlab_claims(
            project_path="acme/tools"))
        self.assertEqual(self.refusal(token), "the token's signature is not valid")
        self.assertNotIn("/gitlab/evil-jwks", self.issuers.requests)

    def test_key_of_another_type(self):
        """An ES256 header naming an RSA key is refused: the key must fit the algorithm."""
        self.verify(self.github.github_token())
        claims = self.github.github_claims()
        token = self.gitlab.sign(claims, header={"kid": self.github.signing.kid})
        self.assertIn(f"the key '{self.github.signing.kid}' cannot check an ES256 signature",
                      self.refusal(token))

    def test_unknown_issuer(self):
        """A token of an issuer not configured is refused without fetching anything."""
        other = Issuers("https://elsewhere.example").add("github")
        self.assertEqual(self.refusal(other.github_token()),
                         "the token's issuer https://elsewhere.example/github is not one of "
                         "this index's trusted issuers")
        token = self.github.sign({k: v for k, v in self.github.github_claims().items()
                                  if k != "iss"})
        self.assertEqual(self.refusal(token), "the token names no issuer (iss)")
        self.assertEqual(self.issuers.requests, [])

    def test_issuer_is_exact(self):
        """The iss must be the configured URL exactly: no trailing slash, no case change."""
        for iss in (GITHUB + "/", GITHUB.upper(), GITHUB + "/../github"):
            token = self.github.sign(self.github.github_claims(iss=iss))
            self.assertIn("is not one of this index's trusted issuers", self.refusal(token))

    def test_not_a_token(self):
        """Text that is not a compact JWS is refused as such."""
        for text in ("", "abc", "a.b", "a.b.c.d", "é.b.c", "x" * 20000 + ".a.b",
                     "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln"):
            self.assertIn("not a JSON Web Token", self.refusal(text))

    # -- claims -----------------------------------------------------------------

    def test_wrong_audience(self):
        """A token for another audience is refused, saying the one accepted."""
        token = self.github.github_token(audience="https://pypi.example")
        self.assertEqual(self.refusal(token), "the token is meant for another audience "
                         "(https://pypi.example); this index accepts 'pypid'")
        token = self.github.github_token(audience=["sigstore", "pypid"])
        self.assertEqual(self.verify(token).issuer, "github")

    def test_expired(self):
        """A token past its exp (and the leeway) is refused, with the time."""
        token = self.github.github_token(exp=NOW - 61)
        self.assertEqual(self.refusal(token), "the token expired at 2027-01-15T07:58:59Z")
        self.assertEqual(self.verify(self.github.github_token(exp=NOW - 59)).issuer, "github")

    def test_not_yet_valid(self):
        """A token whose nbf is in the future (past the leeway) is refused."""
        token = self.github.github_token(nbf=NOW + 120)
        self.assertEqual(self.refusal(token),
                         "the token is not valid before 2027-01-15T08:02:00Z")
        self.assertEqual(self.verify(self.github.github_token(nbf=NOW + 50)).issuer, "github")
        token = self.github.github_token(iat=NOW + 3600, nbf=NOW)
        self.assertIn("the token says it was issued in the future", self.refusal(token))

    def test_long_lived_or_old(self):
        """
        A token valid for more than two hours, or issued more than two hours
        ago, is refused: the replay cache is one process's, so this bounds a
        stolen token's use after a restart or on another instance.
        """
        token = self.github.github_token(iat=NOW - 60, exp=NOW + 365 * 86400)
        self.assertIn("pypid takes ID tokens valid for 7200 s at most", self.refusal(token))
        token = self.github.github_token(iat=NOW - 8000, exp=NOW + 60)
        self.assertIn("the token is valid for 8060 s", self.refusal(token))
        token = self.github.github_token(iat=NOW - 7300, exp=NOW - 7300 + 7200)
        self.assertIn("more than 7200 s ago", self.refusal(token))
        token = self.github.github_token(iat=NOW - 3600, exp=NOW + 3600)
        self.assertEqual(self.verify(token).issuer, "github")

    def test_required_claims(self):
        """A token without exp, iat, jti or sub is refused, naming it."""
        messages = {"exp": "the token has no expiry (exp)",
                    "iat": "the token does not say when it was issued (iat)",
                    "jti": "the token has no jti claim (pypid needs it to refuse replays)",
                    "sub": "the token has no sub claim", "aud": "the token names no audience"}
        for claim, message in messages.items():
            claims = self.github.github_claims()
            del claims[claim]
            self.assertIn(message, self.refusal(self.github.sign(claims)))
        token = self.github.github_token(jti=42)
        self.assertEqual(self.refusal(token), "the token's jti claim is not a text")
        token = self.github.github_token(exp="tomorrow")
        self.assertEqual(self.refusal(token), "the token's exp claim is not valid")

    def test_wrong_repository(self):
        """A genuine token of another repository is refused (403), naming the claim."""
        token = self.github.github_token(repository="evil/widgets")
        message = self.refusal(token, NoPublisher)
        self.assertIn("its repository is 'evil/widgets', not the one the rule names", message)

    def test_wrong_workflow(self):
        """A genuine token of another workflow of the right repository is refused (403)."""
        token = self.github.github_token(workflow="evil.yml")
        message = self.refusal(token, NoPublisher)
        self.assertIn("its job_workflow_ref is 'acme/widgets/.github/workflows/evil.yml"
                      "@refs/heads/main', not the one the rule names", message)
        message = self.refusal(self.github.github_token(environment=None), NoPublisher)
        self.assertIn("the token has no environment claim", message)

    def test_replay(self):
        """A token exchanged once is refused the second time, until it expires."""
        token = self.github.github_token()
        self.publishing.mint(self.verify(token))
        self.assertEqual(self.refusal(token), "this token was already exchanged (its jti was "
                         "seen before): ask the CI system for a new one")
        other = self.gitlab.gitlab_token(project_path="acme/tools", jti="same")
        self.publishing.mint(self.verify(other))
        self.publishing.mint(self.verify(self.github.github_token(jti="same")))

    def test_replay_after_issuer_renamed(self):
        """
        The memory of exchanged tokens is keyed by the issuer's URL and kept
        across a reload: renaming the issuer (same URL) does not let a used
        token mint again (issue 45).
        """
        token = self.github.github_token()
        self.publishing.mint(self.verify(token))
        renamed = PublishingSettings(
            issuers=(("actions", GITHUB), ("gitlab", GITLAB)), leeway=60,
            rules=tuple(parse_publishers("acme-*", "issuer:actions repository:acme/widgets")))
        self.publishing.reconfigure(renamed)
        self.assertEqual(self.refusal(token), "this token was already exchanged (its jti was "
                         "seen before): ask the CI system for a new one")
        self.assertEqual(self.publishing.mint(self.verify(self.github.github_token())).publisher,
                         "publisher:actions:acme/widgets")

    def test_refused_token_not_remembered(self):
        """A genuine token no rule matches is not kept in the replay cache."""
        self.refusal(self.github.github_token(repository="evil/widgets"), NoPublisher)
        self.assertEqual(len(self.publishing.replays), 0)

    # -- the issuer's keys ----------------------------------------------------------

    def test_key_rotation(self):
        """A token signed by a new key is verified once the JWKS lists it."""
        self.verify(self.github.github_token())
        self.github.rotate()
        self.clock.advance(30)
        self.assertEqual(self.verify(self.github.github_token()).issuer, "github")
        self.github.retire("rsa-key-1")
        self.clock.advance(3600)
        self.assertEqual(self.verify(self.github.github_token()).issuer, "github")
        self.assertEqual(list(self.publishing.issuers[GITHUB].keys), ["rsa-key-2"])

    def test_unknown_kid_flood(self):
        """
        A flood of made-up kids fetches the JWKS at most once per
        jwks_min_refresh: the issuer is never hammered.
        """
        self.verify(self.github.github_token())
        claims = self.github.github_claims()
        for second in range(91):
            for n in range(10):
                self.refusal(self.github.forged(claims, kid=f"made-up-{second}-{n}"))
            self.clock.advance(1)
        self.assertEqual(self.issuers.count("/jwks"), 1 + 3)

    def test_rotation_within_the_interval(self):
        """A key rotated in just after a fetch is found once the interval has passed."""
        self.verify(self.github.github_token())
        self.github.rotate()
        token = self.github.github_token()
        self.assertIn("does not publish", self.refusal(token))
        self.clock.advance(30)
        self.assertEqual(self.verify(token).issuer, "github")

    def test_concurrent_fetches_shared(self):
        """Requests that need the keys while they are being fetched share that one fetch."""
        self.resource.hang = True
        pending = [ensureDeferred(self.publishing.verify(self.github.github_token()))
                   for _ in range(5)]
        self.stub.flush()
        self.assertEqual(len(self.issuers.requests), 1)
        self.clock.advance(10)
        for d in pending:
            self.assertIn("did not answer within 10 s", str(self.failureResultOf(d).value))

    def test_issuer_down(self):
        """An issuer that cannot be reached is unavailable, and tried again after the interval."""
        self.issuers.fail = True
        error = self.refusal(self.github.github_token(), IssuerUnavailable)
        self.assertEqual(error, "the discovery document of the issuer github answered 500")
        self.refusal(self.github.github_token(), IssuerUnavailable)
        self.assertEqual(len(self.issuers.requests), 1)
        self.issuers.fail = False
        self.clock.advance(30)
        self.assertEqual(self.verify(self.github.github_token()).issuer, "github")

    def test_connection_refused(self):
        """A refused connection is IssuerUnavailable, saying so."""
        class Refusing:
            def request(self, *args, **kwargs):
                return fail(ConnectionRefusedError("127.0.0.1"))
        publishing = TrustedPublishing(self.settings, Refusing(), self.clock)
        d = ensureDeferred(publishing.verify(self.github.github_token()))
        error = self.failureResultOf(d, IssuerUnavailable).value
        self.assertIn("cannot reach the discovery document of the issuer github: Connection "
                      "was refused", str(error))

    def test_stale_keys_used_when_down(self):
        """Keys past their cache time are still used while the issuer is down."""
        self.verify(self.github.github_token())
        self.issuers.fail = True
        self.clock.advance(3600)
        self.assertEqual(self.verify(self.github.github_token()).issuer, "github")
        self.assertEqual(self.issuers.count("/jwks"), 1)

    def test_hung_issuer(self):
        """An issuer that never answers is given up after the timeout."""
        self.resource.hang = True
        d = ensureDeferred(self.publishing.verify(self.github.github_token()))
        self.stub.flush()
        self.assertNoResult(d)
        self.clock.advance(10)
        self.assertEqual(str(self.failureResultOf(d, IssuerUnavailable).value),
                         "the discovery document of the issuer github did not answer within "
                         "10 s")

    def test_oversized_jwks(self):
        """A JWKS larger than the bound is not read whole."""
        self.issuers.padding = 300 << 10
        error = self.refusal(self.github.github_token(), IssuerUnavailable)
        self.assertEqual(error, "the JWKS of the issuer github could not be read: more than "
                         "262144 bytes")

    def test_discovery_of_another_issuer(self):
        """A discovery document naming another issuer, or no https jwks_uri, is refused."""
        self.github.url = GITHUB + "-impostor"
        error = self.refusal(self.gitlab.sign(self.gitlab.gitlab_claims(iss=GITHUB)),
                             IssuerUnavailable)
        self.assertIn("names another issuer", error)
        self.github.url = GITHUB
        self.github.discovery = lambda: {"issuer": GITHUB, "jwks_uri": "http://ci.example/k"}
        self.clock.advance(30)
        error = self.refusal(self.github.github_token(), IssuerUnavailable)
        self.assertIn("has no https jwks_uri", error)
        # Its keys must be on its own host: a document cannot send pypid to
        # any address it likes.
        self.github.discovery = lambda: {"issuer": GITHUB,
                                         "jwks_uri": "https://169.254.169.254/latest/meta-data"}
        self.clock.advance(30)
        error = self.refusal(self.github.github_token(), IssuerUnavailable)
        self.assertIn("is not on its host", error)

    def test_too_many_live_tokens(self):
        """Past the limit of live minted tokens, minting says to try later, to everyone."""
        self.publishing.tokens.limit = 2
        self.publishing.mint(self.verify(self.github.github_token()))
        self.publishing.mint(self.verify(self.gitlab.gitlab_token(project_path="acme/tools")))
        error = self.assertRaises(TooMany, self.publishing.mint,
                                  self.verify(self.github.github_token()))
        self.assertNotIsInstance(error, OverShare)
        self.clock.advance(900)
        self.publishing.mint(self.verify(self.github.github_token()))

    def test_replay_cache_full(self):
        """A full replay cache refuses the exchange and mints nothing; the token may come again."""
        self.publishing.replays.limit = 1
        self.publishing.mint(self.verify(self.github.github_token()))
        token = self.github.github_token(exp=NOW + 3600)
        self.assertRaises(TooMany, self.publishing.mint, self.verify(token))
        self.assertEqual(len(self.publishing.tokens), 1)
        self.clock.advance(300 + 60)
        self.publishing.mint(self.verify(token))

    def test_reconfigure(self):
        """A reload that changes the rules revokes minted tokens; one that does not keeps them."""
        minted = self.publishing.mint(self.verify(self.github.github_token()))
        keys = self.publishing.issuers[GITHUB]
        self.assertEqual(self.publishing.reconfigure(self.settings), 0)
        self.assertIs(self.publishing.issuers[GITHUB], keys)
        self.assertIsNotNone(self.publishing.tokens.verify(minted.text))
        changed = PublishingSettings(issuers=self.settings.issuers, rules=tuple(RULES[1:]))
        self.assertEqual(self.publishing.reconfigure(changed), 1)
        self.assertIsNone(self.publishing.tokens.verify(minted.text))
        self.assertIsInstance(self.refusal(self.github.github_token(), NoPublisher), str)


class MintRouteTests(MintSiteMixin, SynchronousTestCase):
    """C{POST /api/oidc/mint-token} and the uploads its tokens make, through the real site."""

    def test_mint_and_upload(self):
        """The minted token uploads with twine's form; the audit log names the publisher."""
        response, body = self.mint(self.github.github_token())
        self.assertEqual(response.code, 200, body)
        self.assertEqual(response.headers.getRawHeaders(b"cache-control"), [b"no-store"])
        answer = json.loads(body)
        self.assertEqual(answer["projects"], ["acme-*"])
        self.assertEqual(answer["expires"], "2027-01-15T08:15:00Z")
        response, body = self.upload(answer["token"])
        self.assertEqual(response.code, 200, body)
        self.assertEqual(self.index.get_file(WHEEL_NAME).uploader,
                         "publisher:github:acme/widgets")
        minted, uploaded = self.entries()
        publisher = "publisher:github:acme/widgets"
        token_id = answer["token"].split("-")[1]
        self.assertEqual((minted.event, minted.outcome, minted.user, minted.target),
                         ("token-issued", "ok", publisher, token_id))
        self.assertIn("upload to acme-* until 2027-01-15T08:15:00Z", minted.detail)
        self.assertEqual((uploaded.event, uploaded.user, uploaded.token, uploaded.project),
                         ("upload", publisher, token_id, "acme-widgets"))

    def test_token_scope(self):
        """The token uploads nowhere else, reads nothing, and stops at its expiry."""
        answer = json.loads(self.mint(self.github.github_token())[1])
        response, body = self.upload(answer["token"], OTHER_NAME, OTHER, "other")
        self.assertEqual(response.code, 403, body)
        response, _ = self.request("GET", "/simple/acme-widgets/",
                                   auth=("__token__", answer["token"]))
        self.assertEqual(response.code, 404)
        self.clock.advance(900)
        response, body = self.upload(answer["token"])
        self.assertEqual(response.code, 401, body)

    def test_refusals_answered_and_audited(self):
        """Each refusal is a 4xx with its reason in plain text, and an audit entry."""
        cases = [
            (self.github.github_token(audience="other"), 401, "another audience"),
            (self.github.unsigned(self.github.github_claims()), 401, "(alg none) are refused"),
            (self.github.github_token(repository="evil/widgets"), 403, "its repository is"),
        ]
        for token, code, reason in cases:
            response, body = self.mint(token)
            self.assertEqual(response.code, code, body)
            self.assertIn(reason, body.decode())
            self.assertEqual(response.headers.getRawHeaders(b"content-type"),
                             [b"text/plain; charset=utf-8"])
        self.assertEqual(self.mint(cases[0][0])[0].headers.getRawHeaders(b"www-authenticate"),
                         [b'Bearer realm="pypid", error="invalid_token"'])
        # (the repeat of the first is counted when the minute ends)
        entries = self.entries()
        self.assertEqual([(e.event, e.outcome) for e in entries], [("token-issued", "refused")] * 3)
        self.assertIn("another audience", entries[0].detail)
        self.assertIsNone(entries[0].user)
        self.assertEqual(entries[2].user, "publisher:github:evil/widgets")

    def test_issuer_down_is_503(self):
        """An issuer that cannot be reached answers 503 with Retry-After, audited as failed."""
        self.issuers.fail = True
        with capturedLogs() as events:
            response, body = self.mint(self.github.github_token())
        self.assertEqual(response.code, 503, body)
        # (what went wrong is in the log, not in the answer)
        self.assertIn(b"the token cannot be verified now: its issuer cannot be reached, or its keys cannot be used", body)
        self.assertNotIn(b"500", body)
        self.assertIn("Cannot verify an ID token now: the discovery document of the issuer "
                      "github answered 500", [formatEvent(e) for e in events])
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"30"])
        self.assertEqual(self.entries()[0].outcome, "failed")

    def test_bad_requests(self):
        """Bodies that are not the JSON asked for are 400s naming the field; large ones 413."""
        cases = [(b"", 400, 'expected a JSON object: {"token": "<OIDC ID token>"}'),
                 (b"[1]", 400, "expected a JSON object"),
                 (b'{"id_token": "x"}', 400, "token: missing"),
                 (b'{"token": 5}', 400, "token: expected the OIDC ID token as a string"),
                 (b'{"token": "' + b"x" * (70 << 10) + b'"}', 413, "larger than 64 KiB")]
        for data, code, reason in cases:
            response, body = self.request("POST", "/api/oidc/mint-token", data=data)
            self.assertEqual(response.code, code, body)
            self.assertIn(reason, body.decode())
        response, _ = self.request("GET", "/api/oidc/mint-token")
        self.assertEqual(response.code, 405)

    def test_refusals_folded(self):
        """
        Refusals are folded per minute, genuine tokens' too: the first of a
        kind at once, its repeats counted at the minute's end; never a
        C{login-failed} entry.
        """
        junk, no_publisher = "garbage", self.github.github_token(repository="evil/widgets")
        for _ in range(20):
            self.assertEqual(self.mint(junk)[0].code, 401)
            self.assertEqual(self.mint(no_publisher)[0].code, 403)
        self.assertEqual([e.count for e in self.entries()], [1, 1])
        self.clock.advance(60)
        entries = self.entries()
        self.assertEqual([(e.event, e.count) for e in entries[2:]],
                         [("token-issued", 19), ("token-issued", 19)])
        self.assertEqual([e.user for e in entries[2:]],
                         [None, "publisher:github:evil/widgets"])

    def test_not_configured(self):
        """Without issuers, the route answers 404 saying so."""
        self.publishing.reconfigure(PublishingSettings())
        response, body = self.mint(self.github.github_token())
        self.assertEqual(response.code, 404)
        self.assertIn(b"trusted publishing is not configured", body)


class ReloadTests(SynchronousTestCase):
    """The server's wiring: the access gate knows minted tokens, and C{SIGHUP} revokes them."""

    def test_reload_revokes_on_change(self):
        """A reload that keeps the publishers keeps minted tokens; one that changes them revokes."""
        from twisted.internet.testing import MemoryReactorClock

        from pypid.daemon.server import build_service
        from tests.harness.tap import fake_pools, site_of

        folder = os.path.abspath(self.mktemp())
        base = (f"[pypid]\nsnapshot = {folder}/index.json\n[storage]\npath = {folder}/p\n"
                f"[oidc]\nissuers = github {GITHUB}\n")
        before = write_config(self, base + "[publishers]\nacme-* = issuer:github ref:main\n")
        after = write_config(self, base + "[publishers]\nacme-* = issuer:github ref:other\n")
        current = [before]
        service = build_service(load_config(before), MemoryReactorClock(), pools=fake_pools(),
                                load_config=lambda: load_config(current[0]))
        access = site_of(service).access
        text, token = access.publishers.issue("publisher:github:x", ["acme-*"], 900, "")
        from twisted.web.test.requesthelper import DummyRequest
        identity = self.successResultOf(access.identify(DummyRequest([b""]),
                                                        ("__token__", text)))
        self.assertEqual(identity.name, "publisher:github:x")
        self.assertTrue(Rules(access.model).reader(identity).writes("acme-widgets"))
        self.assertFalse(Rules(access.model).reader(identity).writes("other"))
        service.reload()
        self.assertIsNotNone(access.publishers.verify(text))
        current[0] = after
        service.reload()
        self.assertIsNone(access.publishers.verify(text))


def _documented_publishers():
    """The C{[publishers]} example of docs/configuration.rst, parsed as pypid reads it."""
    import configparser
    import re
    docs = os.path.join(CHECKOUT, "docs",
                        "configuration.rst")
    with open(docs, encoding="utf-8") as f:
        text = f.read()
    [block] = re.findall(r"\.\. code-block:: ini\n\n((?:   \[publishers\]\n)(?:   .*\n|\n)*?)\n\S",
                         text)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string("\n".join(line[3:] for line in block.splitlines()))
    rules = []
    for order, (pattern, value) in enumerate(parser.items("publishers")):
        rules += parse_publishers(pattern, value, order)
    return tuple(rules)


class DocumentedPublishersTests(_IssuerMixin, SynchronousTestCase):
    """
    The documented C{[publishers]} example, minted against: as in C{[acl]},
    the most specific entry naming a project decides (before issue 25's
    fix, acme/widgets' token matched C{acme-*} and uploaded to
    C{acme-tools}, which an exact entry gives to acme/tools).
    """

    settings = PublishingSettings(issuers=(("github", GITHUB), ("gitlab", GITLAB)),
                        rules=_documented_publishers(), leeway=60, jwks_min_refresh=30,
                        timeout=10)

    def minted(self, text):
        verified = self.verify(text)
        self.assertNotIsInstance(verified, Exception)
        return self.publishing.mint(verified).token

    def test_exact_entry_wins_over_glob(self):
        """acme/widgets publishes acme-* but acme-tools; acme/tools publishes acme-tools only."""
        self.assertEqual({rule.pattern for rule in self.settings.rules},
                         {"acme-*", "acme-tools"})
        widgets = self.minted(self.github.github_token())
        self.assertEqual([widgets.covers("upload", name) for name in
                          ("acme-widgets", "Acme.New_Thing", "acme-tools", "ACME_Tools", "other")],
                         [True, True, False, False, False])
        tools = self.minted(self.github.github_token(
            repository="acme/tools", job_workflow_ref="acme/tools/.github/workflows/r.yml@x",
            jti="tools-1"))
        self.assertEqual([tools.covers("upload", name) for name in
                          ("acme-tools", "acme-widgets", "acme-new")], [True, False, False])


class MintedTokenLimitTests(SynchronousTestCase):
    """
    One publisher cannot take the room of the others (issue 25: one filled
    the cap in 44 s; issue 45 and L{tests.unit.auth.test_publisher_shares}: nor when
    it mints from many branches).
    """

    def test_cap_per_publisher(self):
        """A publisher stops at its own cap; another still gets tokens; expiry frees room."""
        from pypid.auth.oidc_errors import TooMany
        from pypid.auth.publisher_tokens import PublisherTokens
        clock = Clock()
        clock.advance(NOW)
        minted = PublisherTokens(clock, limit=100, per_publisher=10)
        for i in range(10):
            minted.issue("publisher:a", ["acme-*"], 900, f"a {i}")
        error = self.assertRaises(TooMany, minted.issue, "publisher:a", ["acme-*"], 900, "a")
        self.assertIn("10 live tokens", str(error))
        text, token = minted.issue("publisher:b", ["tool"], 900, "b")
        self.assertEqual(minted.verify(text), token)
        clock.advance(901)
        minted.issue("publisher:a", ["acme-*"], 900, "a again")


class MintedTokenAdminTests(_IssuerMixin, SynchronousTestCase):
    """An admin lists the live minted tokens and revokes one at once."""

    request = MintRouteTests.request
    mint = MintRouteTests.mint
    upload = MintRouteTests.upload

    def setUp(self):
        _IssuerMixin.setUp(self)
        storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)
        self.successResultOf(storage.prepare())
        verifier = PasswordVerifier({"alice": hash_password("pw", FAST)}, self.clock, None,
                                    run_in_pool=run_in_pool_now)
        model = AccessModel(read="authenticated", admins=frozenset({"alice"}))
        audit = AuditTrail(MemoryJournal(self.clock), self.clock)
        self.access = Gates(model, verifier, audit=audit, publishers=self.publishing.tokens)
        web = build_web(one_index(Index(file_url_for(None)), storage, self.clock), self.access,
                        run_now, self.clock,
                        SiteSettings(max_upload_size=10 << 20),
                        SiteServices(audit=audit, publishing=self.publishing))
        self.client = site_treq(web.site)

    def test_list_and_revoke(self):
        """The listing shows the minted token (not its secret); a revocation stops it at once."""
        answer = json.loads(self.mint(self.github.github_token())[1])
        token_id = answer["token"].split("-")[1]
        response, body = self.request("GET", "/api/tokens", auth=("alice", "pw"))
        self.assertEqual(response.code, 200, body)
        [listed] = json.loads(body)["tokens"]
        self.assertEqual((listed["id"], listed["minted"], listed["projects"]),
                         (token_id, True, ["acme-*"]))
        self.assertNotIn(answer["token"], body.decode())
        response, body = self.request("DELETE", f"/api/tokens/{token_id}", auth=("alice", "pw"))
        self.assertEqual(response.code, 200, body)
        self.assertEqual(self.upload(answer["token"])[0].code, 401)
        response, body = self.request("GET", "/api/tokens", auth=("alice", "pw"))
        self.assertEqual(json.loads(body)["tokens"], [])
        self.assertEqual(self.request("DELETE", f"/api/tokens/{token_id}",
                                      auth=("alice", "pw"))[0].code, 404)


class ClientRouteTests(MintSiteMixin, SynchronousTestCase):
    """
    The exchange where twine, uv and the publishing action call it, with
    the bodies they read (issue 27): C{/_/oidc/audience}, C{/_/oidc/mint-token}
    (C{expires} an integer, refusals as JSON C{errors}), and the draft's
    discovery, C{/.well-known/pytp/<sha256 of the upload path>}.
    """

    def client_mint(self, token, headers=None):
        return self.request("POST", "/_/oidc/mint-token",
                            data=json.dumps({"token": token}).encode(),
                            headers={"Content-Type": "application/json", **(headers or {})})

    def test_audience(self):
        """The audience is [oidc] audience, as JSON."""
        response, body = self.request("GET", "/_/oidc/audience")
        self.assertEqual((response.code, json.loads(body)),
                         (200, {"audience": self.publishing.settings.audience}))

    def test_mint_and_upload(self):
        """The token minted uploads; C{expires} is its Unix time, an integer."""
        response, body = self.client_mint(self.github.github_token())
        self.assertEqual(response.code, 200, body)
        answer = json.loads(body)
        self.assertEqual(set(answer), {"token", "expires"})
        self.assertEqual(answer["expires"], int(self.clock.seconds()) + 900)
        self.assertEqual(self.upload(answer["token"])[0].code, 200)
        self.assertEqual(self.entries()[0].event, "token-issued")

    def test_refusals_as_json(self):
        """A refusal keeps its status and headers; its reason is the JSON errors' description."""
        cases = [
            (self.github.github_token(audience="other"), 401, "invalid-token",
             "another audience"),
            (self.github.github_token(repository="evil/widgets"), 403, "invalid-publisher",
             "its repository is"),
            ("", 400, "invalid-payload", "token: expected"),
        ]
        for token, code, error, reason in cases:
            response, body = self.client_mint(token)
            self.assertEqual(response.code, code, body)
            self.assertEqual(response.headers.getRawHeaders(b"content-type"),
                             [b"application/json"])
            answer = json.loads(body)
            self.assertEqual(answer["errors"][0]["code"], error)
            self.assertIn(reason, answer["errors"][0]["description"])
            self.assertEqual(answer["message"], answer["errors"][0]["description"])
        response, _ = self.client_mint(cases[0][0])
        self.assertEqual(response.headers.getRawHeaders(b"www-authenticate"),
                         [b'Bearer realm="pypid", error="invalid_token"'])
        response, body = self.request("POST", "/_/oidc/mint-token", data=b"junk")
        self.assertEqual((response.code, json.loads(body)["errors"][0]["code"]),
                         (400, "invalid-payload"))

    def test_not_acceptable(self):
        """An Accept the draft does not allow is 406; none, JSON or */* are answered."""
        for accept, code in (("text/html", 406), ("*/*", 200),
                             ("application/vnd.pypi.pytp.v1+json", 200)):
            response, body = self.request("GET", "/_/oidc/audience", headers={"Accept": accept})
            self.assertEqual(response.code, code, (accept, body))

    def test_discovery(self):
        """An upload path's key names the two endpoints on the host asked; another is 404."""
        for path in ("/legacy/", "/", ""):
            key = hashlib.sha256(path.encode()).hexdigest()
            response, body = self.request("GET", f"/.well-known/pytp/{key}")
            self.assertEqual(response.code, 200, path)
            self.assertEqual(json.loads(body), {
                "audience-endpoint": "http://pypi.test/_/oidc/audience",
                "mint-token-endpoint": "http://pypi.test/_/oidc/mint-token"})
        key = hashlib.sha256(b"/simple/").hexdigest()
        response, body = self.request("GET", f"/.well-known/pytp/{key}")
        self.assertEqual((response.code, body), (404, b""))

    def test_burn(self):
        """
        uv's revocation: the minted token presented is revoked at once
        (audited); an unknown one is answered alike; junk is a 400.
        """
        token = json.loads(self.client_mint(self.github.github_token())[1])["token"]
        for presented in (token, token, "pypid-000000000000-nothing"):
            response, body = self.request("POST", "/_/oidc/burn-token",
                                          data=json.dumps({"token": presented}).encode())
            self.assertEqual((response.code, json.loads(body)), (200, {}))
        self.assertEqual(self.upload(token)[0].code, 401)
        revoked = [e for e in self.entries() if e.event == "token-revoked"]
        self.assertEqual([(e.user, e.detail) for e in revoked], [
            ("publisher:github:acme/widgets", "revoked by its holder")])
        response, body = self.request("POST", "/_/oidc/burn-token", data=b"[]")
        self.assertEqual((response.code, json.loads(body)["errors"][0]["description"]),
                         (400, 'expected a JSON object: {"token": "<upload token>"}'))

    def test_old_route_unchanged(self):
        """C{/api/oidc/mint-token} answers as it did: an ISO date, and its projects."""
        answer = json.loads(self.mint(self.github.github_token())[1])
        self.assertEqual(answer["expires"], "2027-01-15T08:15:00Z")
        self.assertEqual(answer["projects"], ["acme-*"])


class ClientRouteOffTests(SynchronousTestCase):
    """Without [oidc] issuers, the client routes are 404s (the draft's discovery without a body)."""

    def test_off(self):
        clock = Clock()
        storage = MemoryStorage(os.path.abspath(self.mktemp()), clock)
        self.successResultOf(storage.prepare())
        verifier = PasswordVerifier({}, clock, None, run_in_pool=run_in_pool_now)
        access = Gates(AccessModel(read="everyone"), verifier)
        web = build_web(one_index(Index(file_url_for(None)), storage, clock), access, run_now,
                        clock,
                        SiteSettings(max_upload_size=1 << 20))
        client = site_treq(web.site)
        key = hashlib.sha256(b"/legacy/").hexdigest()
        for method, path in (("GET", "/_/oidc/audience"), ("POST", "/_/oidc/mint-token"),
                             ("GET", f"/.well-known/pytp/{key}")):
            response = self.successResultOf(client.request(method, "http://pypi.test" + path))
            body = self.successResultOf(client.content(response))
            self.assertEqual(response.code, 404, path)
            if path.startswith("/_/"):
                self.assertEqual(json.loads(body)["errors"][0]["code"], "not-enabled")


class PublisherInIndexesTests(MintSiteMixin, SynchronousTestCase):
    """
    With several indexes, a minted token's scope is what [publishers]
    grants, whichever index the upload goes to (issue 27): an index whose
    read and upload grants name only a group still takes its upload.
    """

    def test_index_grants_do_not_apply(self):
        model = AccessModel(read="authenticated", indexes={
            "release": IndexGrants(frozenset({"group:dev"}), frozenset({"group:rm"}))})
        verifier = PasswordVerifier({"alice": hash_password("pw", FAST)}, self.clock, None,
                                    run_in_pool=run_in_pool_now)
        access = Gates(model, verifier, publishers=self.publishing.tokens)
        token = json.loads(self.mint(self.github.github_token())[1])["token"]
        minted = Identity("publisher:github:acme/widgets",
                          self.publishing.tokens.verify(token))
        reader = Rules(access.model).reader(minted)
        self.assertTrue(reader.enters("release"))
        self.assertTrue(reader.uploads_to("release"))
        self.assertTrue(reader.writes("acme-widgets", "release"))
        self.assertFalse(reader.writes("other", "release"))
        # (a user of that name without a minted token has no such grant)
        alice = Rules(access.model).reader(Identity("alice"))
        self.assertFalse(alice.uploads_to("release"))
        self.assertFalse(alice.enters("release"))
