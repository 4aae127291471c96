"""
Single sign-on (C{[sso]}, issue 44), in memory: the pure parts of the
code flow (L{pypid.core.access.sso_flow}), the section, and C{/login/sso} and its
callback on the site built as the server builds it, against a provider
played by a Twisted resource over L{treq.testing.StubTreq} (its discovery
document, JWKS, token endpoint checking the client's secret, the code and
the PKCE verifier, and userinfo; ID tokens signed with real keys by
L{tests.harness.oidc_issuer.Issuer}), with the hostile cases a provider or an
attacker could bring. The real provider and Chromium are in
L{tests.e2e.test_sso}.
"""

import base64
import hashlib
import json
import os
import re
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import attrs
import treq
from hypothesis import given, settings
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from pypid.auth.factory import make_sso
from pypid.auth.policy import AccessModel
from pypid.auth.sso import ProviderUnavailable, SingleSignOn
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.config import load_config
from pypid.config.errors import ConfigError, StartupError
from pypid.config.sso_settings import SSOConfig
from pypid.core.access.addresses import network_of
from pypid.core.access.outside_logins import DIRECTORY, PROVIDER, LoginSource, OutsideLogins
from pypid.core.access.sessions import Session, SessionBook
from pypid.core.access.sso_flow import (
    MAX_PENDING,
    MAX_PENDING_PER_NETWORK,
    ClaimMapping,
    LoginRefused,
    PendingLogins,
    authorization_url,
    check_id_claims,
    group_names,
    map_claims,
    pkce_challenge,
    provider_key,
)
from pypid.web.identity.browser_sessions import PLAIN_BINDING, PLAIN_COOKIE
from pypid.web.identity.identity_part import name_held, still_a_user
from tests.harness.fakes import run_in_pool_now, site_agent
from tests.harness.ldap import DIRECTORY_KEY, MemoryDirectory
from tests.harness.oidc_issuer import Issuer, compact
from tests.harness.web import USERS, NoCookieJar, basic, randomness

ISSUER = "https://login.corp.example/realms/acme"
CLIENT_ID = "pypid"
SECRET = "s3cret:with/odd&chars"
T0 = 1_767_225_600.0
#: Seconds the provider has to answer, in these tests.
PROVIDER_TIMEOUT = 7.0


# -- the pure parts --------------------------------------------------------------------


class PendingLoginsTests(SynchronousTestCase):
    """Logins under way: used once, by the browser that began them, for a while."""

    def setUp(self):
        self.pending = PendingLogins(ttl=600, limit=3)
        self.random = randomness(3)

    def start(self, now=T0):
        return self.pending.start("https://pypi.test/login/sso/callback", "/x", now,
                                  self.random)

    def test_taken_once(self):
        login, binding = self.start()
        self.assertEqual(self.pending.take(login.state, binding, T0 + 1), login)
        with self.assertRaises(LoginRefused) as caught:
            self.pending.take(login.state, binding, T0 + 2)
        self.assertIn("already used", str(caught.exception))

    def test_other_browser(self):
        """Another browser's cookie, or none, takes nothing (and leaves the login be)."""
        login, binding = self.start()
        for other in (None, "", binding + "x", self.start()[1]):
            with self.assertRaises(LoginRefused) as caught:
                self.pending.take(login.state, other, T0 + 1)
            self.assertIn("another browser", str(caught.exception))
        self.assertEqual(self.pending.take(login.state, binding, T0 + 1).state, login.state)

    def test_too_old(self):
        login, binding = self.start()
        with self.assertRaises(LoginRefused):
            self.pending.take(login.state, binding, T0 + 600)

    def test_per_client(self):
        """One client's flood of starts pushes out its own logins, not another's."""
        mine, binding = self.pending.start("u", "/", T0, self.random, "192.0.2.1")
        pending = PendingLogins(limit=100, per_client=5)
        mine, binding = pending.start("u", "/", T0, self.random, "192.0.2.1")
        for _ in range(50):
            pending.start("u", "/", T0, self.random, "198.51.100.7")
        self.assertEqual(len(pending), 6)
        self.assertEqual(pending.take(mine.state, binding, T0).client, "192.0.2.1")
        first, _ = pending.start("u", "/", T0, self.random, "198.51.100.7")
        with self.assertRaises(LoginRefused):
            for _ in range(5):
                pending.start("u", "/", T0, self.random, "198.51.100.7")
            pending.take(first.state, binding, T0)

    def test_per_network(self):
        """
        Issue 59, finding 8: some 500 addresses, or one IPv6 /48, pushed out
        everybody's logins under way; now a network holds at most its share,
        and a full book forgets the oldest of the network with the most.
        """
        pending = PendingLogins()
        mine, binding = pending.start("u", "/", T0, self.random, "192.0.2.1")
        for i in range(600):
            for _ in range(20):
                pending.start("u", "/", T0, self.random, f"10.{i // 200}.{i % 200}.1")
        self.assertEqual(len(pending), MAX_PENDING)
        theirs, their_binding = pending.start("u", "/", T0, self.random, "2001:db8:9::1")
        for k in range(1000):
            pending.start("u", "/", T0, self.random, f"2001:db8:1:{k:x}::1")
        self.assertEqual(len(pending), MAX_PENDING)
        self.assertEqual(pending.take(mine.state, binding, T0).client, "192.0.2.1")
        self.assertEqual(pending.take(theirs.state, their_binding, T0).client, "2001:db8:9::1")
        self.assertLessEqual(sum(1 for p in pending._pending.values()
                                 if p.client.startswith("2001:db8:1:")), MAX_PENDING_PER_NETWORK)

    def test_neighbours_kept(self):
        """
        (Found by a review.) Ten addresses of one /24, each within its own
        cap, pushed out a neighbour's login: the network's cap takes from
        the busiest client.
        """
        pending = PendingLogins()
        mine, binding = pending.start("u", "/", T0, self.random, "198.51.100.77")
        for n in range(10):
            for _ in range(20):
                pending.start("u", "/", T0, self.random, f"198.51.100.{n}")
        self.assertEqual(len(pending), MAX_PENDING_PER_NETWORK)
        self.assertEqual(pending.take(mine.state, binding, T0).client, "198.51.100.77")

    def test_network_of(self):
        for client, network in (("192.0.2.77", "192.0.2.0/24"),
                                ("2001:db8:1:2::/64", "2001:db8:1::/48"),
                                ("", ""), ("unix-peer", "unix-peer")):
            self.assertEqual(network_of(client), network)

    def test_bounded(self):
        """Past the limit, the oldest are forgotten."""
        first, binding = self.start()
        for _ in range(3):
            self.start()
        self.assertEqual(len(self.pending), 3)
        with self.assertRaises(LoginRefused):
            self.pending.take(first.state, binding, T0)

    def test_values(self):
        """Distinct random values; the cookie's value is not kept, only its digest."""
        login, binding = self.start()
        values = {login.state, login.nonce, login.verifier, binding}
        self.assertEqual(len(values), 4)
        self.assertTrue(all(len(v) == 43 for v in values))
        self.assertNotIn(binding, repr(login))

    def test_authorization_url(self):
        login, _ = self.start()
        url = authorization_url(ISSUER + "/auth?x=1", CLIENT_ID, ("openid", "email"), login)
        self.assertTrue(url.startswith(ISSUER + "/auth?x=1&"))
        query = parse_qs(urlsplit(url).query)
        self.assertEqual({k: v[0] for k, v in query.items()}, {
            "x": "1", "response_type": "code", "client_id": CLIENT_ID,
            "redirect_uri": "https://pypi.test/login/sso/callback", "scope": "openid email",
            "state": login.state, "nonce": login.nonce,
            "code_challenge": pkce_challenge(login.verifier), "code_challenge_method": "S256"})
        self.assertIn("scope=openid%20email", url)


def claims(**changes):
    base = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "u-1", "iat": T0, "exp": T0 + 300,
            "nonce": "n-1"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


class IDClaimsTests(SynchronousTestCase):
    """OpenID Connect Core 3.1.3.7, refused by name."""

    def check(self, now=T0 + 1, **changes):
        check_id_claims(claims(**changes), ISSUER, CLIENT_ID, "n-1", now, 60)

    def refused(self, now=T0 + 1, **changes):
        with self.assertRaises(LoginRefused) as caught:
            self.check(now, **changes)
        return str(caught.exception)

    def test_good(self):
        self.check()
        self.check(aud=[CLIENT_ID])
        self.check(aud=[CLIENT_ID, "api"], azp=CLIENT_ID)
        self.check(now=T0 + 300 + 59)

    def test_refused(self):
        for changes, words in (
                ({"iss": ISSUER + "/"}, "another issuer"),
                ({"iss": None}, "another issuer"),
                ({"aud": "other-app"}, "another application"),
                ({"aud": ["other-app"]}, "another application"),
                ({"aud": None}, "another application"),
                ({"aud": 7}, "another application"),
                ({"aud": [CLIENT_ID, "other-app"]}, "azp"),
                ({"azp": "other-app"}, "azp"),
                ({"exp": None}, "times"),
                ({"exp": "soon"}, "times"),
                ({"iat": True}, "times"),
                ({"exp": T0 - 120}, "expired"),
                ({"iat": T0 + 120, "exp": T0 + 400}, "not valid yet"),
                ({"nbf": T0 + 120}, "not valid yet"),
                ({"nbf": "x"}, "not valid yet"),
                ({"iat": T0 - 3600, "exp": T0 + 300}, "too long ago"),
                ({"sub": None}, "subject"),
                ({"sub": ""}, "subject"),
                ({"nonce": "n-2"}, "nonce"),
                ({"nonce": None}, "nonce"),
                ({"nonce": 1}, "nonce"),
                ({"exp": float("nan")}, "times"),
                ({"iat": float("nan")}, "times"),
                ({"nbf": float("inf")}, "not valid yet")):
            self.assertIn(words, self.refused(**changes), changes)


class MapClaimsTests(SynchronousTestCase):
    def test_name_and_groups(self):
        found = map_claims({"preferred_username": "carol", "groups": ["/platform", "qa", "a b",
                                                                      7, "/x/y"]},
                           ClaimMapping())
        self.assertEqual(found, ("carol", frozenset({"platform", "qa"})))
        self.assertEqual(map_claims({"preferred_username": "c", "groups": "ops"},
                                    ClaimMapping())[1], {"ops"})
        self.assertEqual(map_claims({"preferred_username": "c", "groups": ["ops"]},
                                    ClaimMapping(groups_claim=""))[1], frozenset())

    def test_email(self):
        mapping = ClaimMapping(user_claim="email")
        self.assertEqual(map_claims({"email": "c@corp.example", "email_verified": True},
                                    mapping)[0], "c@corp.example")
        for verified in (False, None, "true"):
            with self.assertRaises(LoginRefused) as caught:
                map_claims({"email": "c@corp.example", "email_verified": verified}, mapping)
            self.assertIn("email_verified", str(caught.exception))

    def test_unusable_names(self):
        for value in (None, "", "a b", "x" * 65, "-lead", "__token__", "é", 5, ["a"]):
            with self.assertRaises(LoginRefused):
                map_claims({"preferred_username": value}, ClaimMapping())

    def test_allow(self):
        mapping = ClaimMapping(allow=("carol", "group:platform"))
        self.assertEqual(map_claims({"preferred_username": "carol"}, mapping)[0], "carol")
        self.assertEqual(map_claims({"preferred_username": "zed", "groups": ["platform"]},
                                    mapping)[0], "zed")
        with self.assertRaises(LoginRefused) as caught:
            map_claims({"preferred_username": "zed", "groups": ["qa"]}, mapping)
        self.assertIn("[sso] allow", str(caught.exception))

    def test_group_names_bounded(self):
        self.assertEqual(len(group_names([f"g{n}" for n in range(1000)])), 200)


# -- the section -------------------------------------------------------------------------


class ConfigTests(SynchronousTestCase):
    def load(self, text, environ=None):
        folder = self.mktemp()
        os.makedirs(folder)
        path = os.path.join(folder, "pypid.ini")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return load_config(path, environ=environ or {})

    def refusal(self, text, environ=None):
        with self.assertRaises(ConfigError) as caught:
            self.load(text, environ)
        return str(caught.exception).split(": ", 1)[1]

    def test_none_by_default(self):
        self.assertIsNone(self.load("").sso.issuer)

    def test_full(self):
        sso = self.load(f"[sso]\nissuer = {ISSUER}\nclient_id = pypid\nlabel = Acme  login\n"
                        "scopes = openid groups openid\nallow = group:eng carol\n"
                        "groups_claim =\n",
                        {"PYPID_SSO_CLIENT_SECRET": "s"}).sso
        self.assertEqual((sso.issuer, sso.client_id, sso.client_secret, sso.label, sso.scopes,
                          sso.allow, sso.groups_claim),
                         (ISSUER, "pypid", "s", "Acme login", ("openid", "groups"),
                          ("group:eng", "carol"), ""))
        self.assertNotIn("'s'", repr(sso))

    def test_refused(self):
        good = f"[sso]\nissuer = {ISSUER}\nclient_id = pypid\nclient_secret = s\n"
        for text, words in (
                ("[sso]\nclient_id = pypid\n", "[sso] client_id: set, but [sso] issuer is empty"),
                ("[sso]\nissuer = http://login.corp.example\n", "[sso] issuer: "),
                (f"[sso]\nissuer = {ISSUER}?x=1\n", "with no query"),
                (f"[sso]\nissuer = {ISSUER}\nclient_secret = s\n",
                 "[sso] client_id: required with [sso] issuer"),
                (f"[sso]\nissuer = {ISSUER}\nclient_id = pypid\n",
                 "[sso] client_secret_file: give the client secret once"),
                (good + "client_secret_file = /x\n", "give the client secret once"),
                (good + "scopes = profile email\n", "openid among them"),
                (good + "allow = group:\n", "[sso] allow: "),
                (good + "allow =\n", "[sso] allow: expected *"),
                (good + "user_claim =\n", "[sso] user_claim: "),
                (good + "leeway = 10m\n", "at most 300"),
                (good + "label = " + "x" * 61 + "\n", "[sso] label: ")):
            self.assertIn(words, self.refusal(text), text)

    def test_secret_file(self):
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        path = os.path.join(folder, "secret")
        with open(path, "w") as f:
            f.write("  file-secret\n")
        text = f"[sso]\nissuer = {ISSUER}\nclient_id = pypid\nclient_secret_file = {path}\n"
        sso = make_sso(self.load(text), Clock())
        self.assertEqual(sso.secret, "file-secret")
        self.assertTrue(sso.enabled)
        with open(path, "w") as f:
            f.write("\n")
        with self.assertRaises(StartupError) as caught:
            make_sso(self.load(text), Clock())
        self.assertIn("[sso] client_secret_file: ", str(caught.exception))
        self.assertIn("is empty", str(caught.exception))
        os.remove(path)
        with self.assertRaises(StartupError) as caught:
            make_sso(self.load(text), Clock())
        self.assertIn("cannot read", str(caught.exception))


class StillAUserTests(SynchronousTestCase):
    """At SIGHUP, a session of single sign-on ends when its grounds change."""

    def setUp(self):
        self.book = SessionBook.new(1800, 3600, randomness(1))
        self.session = Session("carol", frozenset({"platform"}), "sso", T0, T0, "c",
                               self.book.stamp_of(provider_key(ISSUER, CLIENT_ID)))

    def still(self, users=USERS, **sso):
        settings = dict(issuer=ISSUER, client_id=CLIENT_ID, client_secret="s")
        settings.update(sso)
        config = attrs.evolve(load_config(None, environ={}), sso=SSOConfig(**settings))
        verifier = PasswordVerifier(users, None, None)
        return still_a_user(self.session, verifier, config, self.book)

    def test_grounds(self):
        self.assertTrue(self.still())
        self.assertTrue(self.still(allow=("group:platform",)))
        self.assertFalse(self.still(allow=("group:qa",)))
        self.assertFalse(self.still(issuer=None, client_id="", client_secret=""))
        self.assertFalse(self.still(issuer=ISSUER + "/other"))
        self.assertFalse(self.still(client_id="another"))
        self.assertFalse(self.still(users={**USERS, "carol": USERS["alice"]}))


# -- a provider ---------------------------------------------------------------------------


class Provider(Resource):
    """
    An OpenID provider at L{ISSUER}, as a resource: codes are made by
    L{authorize} (what the provider does once its person logged in), traded
    once at C{/token} by the client with its secret and PKCE verifier.

    @ivar changes: claims laid over the next ID tokens (C{None} drops one).
    @ivar sign: C{sign(claims) -> token}, how ID tokens are signed.
    @ivar down: when true, every request answers 503.
    @ivar hang: when true, no request is ever answered.
    @ivar methods: the client authentications its discovery document lists.
    @ivar userinfo: claims of the userinfo endpoint beside C{sub}.
    """

    isLeaf = True

    def __init__(self, issuer):
        Resource.__init__(self)
        self.issuer = issuer
        self.codes = {}
        self.changes = {}
        self.sign = issuer.sign
        self.down = False
        self.hang = False
        self.methods = ["client_secret_basic", "client_secret_post"]
        self.userinfo = {}
        self.requests = []
        self.token_requests = []
        self._serial = 0

    def discovery(self):
        return dict(self.issuer.discovery(), authorization_endpoint=ISSUER + "/auth",
                    token_endpoint=ISSUER + "/token", userinfo_endpoint=ISSUER + "/userinfo",
                    token_endpoint_auth_methods_supported=self.methods,
                    response_types_supported=["code"])

    def authorize(self, url, person):
        """The code the provider sends the browser back with, for C{person}'s claims."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert url.startswith(ISSUER + "/auth?"), url
        assert query["response_type"] == "code" and query["client_id"] == CLIENT_ID, query
        assert query["code_challenge_method"] == "S256", query
        self._serial += 1
        code = f"code-{self._serial}"
        self.codes[code] = (query, person)
        return query, code

    def render(self, request):
        path = request.path.decode()
        self.requests.append(path)
        if self.hang:
            return NOT_DONE_YET
        if self.down:
            request.setResponseCode(503)
            return b"down"
        if path == "/realms/acme/.well-known/openid-configuration":
            return self.json(request, 200, self.discovery())
        if path == "/realms/acme/jwks":
            return self.json(request, 200, self.issuer.jwks())
        if path == "/realms/acme/token" and request.method == b"POST":
            return self.token(request)
        if path == "/realms/acme/userinfo":
            token = request.getHeader("authorization") or ""
            if not token.startswith("Bearer at-"):
                return self.json(request, 401, {"error": "invalid_token"})
            person = json.loads(base64.urlsafe_b64decode(token[len("Bearer at-"):]))
            return self.json(request, 200, {"sub": person["sub"], **self.userinfo})
        return self.json(request, 404, {"error": "not found"})

    def json(self, request, code, value):
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(value).encode()

    def token(self, request):
        form = {k.decode(): v[0].decode() for k, v in request.args.items()}
        self.token_requests.append(form)
        authorization = request.getHeader("authorization")
        if authorization is not None:
            client, _, secret = base64.b64decode(authorization.split()[1]).decode().partition(":")
            client, secret = unquote(client), unquote(secret)
        else:
            client, secret = form.get("client_id"), form.get("client_secret")
        if (client, secret) != (CLIENT_ID, SECRET):
            return self.json(request, 401, {"error": "invalid_client"})
        found = self.codes.pop(form.get("code"), None)
        if found is None:
            return self.json(request, 400, {"error": "invalid_grant"})
        query, person = found
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(form["code_verifier"].encode()).digest()).rstrip(b"=").decode()
        if challenge != query["code_challenge"] or form["redirect_uri"] != query["redirect_uri"] \
                or form["grant_type"] != "authorization_code":
            return self.json(request, 400, {"error": "invalid_grant"})
        now = int(self.issuer.now())
        token_claims = {"iss": ISSUER, "aud": CLIENT_ID, "sub": person["sub"], "iat": now,
                        "exp": now + 300, "nonce": query["nonce"], **person}
        token_claims.update(self.changes)
        token_claims = {k: v for k, v in token_claims.items() if v is not None}
        access = "at-" + base64.urlsafe_b64encode(json.dumps(person).encode()).decode()
        return self.json(request, 200, {"access_token": access, "token_type": "Bearer",
                                        "expires_in": 300, "id_token": self.sign(token_claims)})


CAROL = {"sub": "u-carol", "preferred_username": "carol", "groups": ["platform"]}


class _SSOSite(NoCookieJar):
    """The site with single sign-on through L{Provider}."""

    sso_settings = {}

    def single_sign_on(self):
        self.issuer = Issuer(ISSUER, now=self.clock.seconds)
        self.provider = Provider(self.issuer)
        self.provider_client = StubTreq(self.provider)
        # (the provider's deadline is the test's own, not the default)
        config = SSOConfig(issuer=ISSUER, client_id=CLIENT_ID, client_secret=SECRET,
                           label="Acme login", timeout=PROVIDER_TIMEOUT, **self.sso_settings)
        self.sso = SingleSignOn(config, SECRET, self.provider_client, self.clock, randomness(9))
        return self.sso

    def begin(self, next_page=None):
        """C{GET /login/sso}: C{(response, provider URL, binding cookie header)}."""
        query = "?" + urlencode({"next": next_page}) if next_page is not None else ""
        response, body = self.get("/login/sso" + query)
        self.assertEqual(response.code, 303, body)
        location = self.header(response, "Location").decode()
        name, value = set_cookies(response)[0][:2]
        self.assertEqual(name, PLAIN_BINDING.decode())
        return response, location, {"Cookie": f"{name}={value}"}

    def sign_in(self, person=CAROL, next_page=None, code=303):
        """The whole login: C{(callback response, body, callback path, binding headers)}."""
        _, location, binding = self.begin(next_page)
        query, grant = self.provider.authorize(location, person)
        path = "/login/sso/callback?" + urlencode({"state": query["state"], "code": grant})
        response, body = self.get(path, headers=binding)
        self.assertEqual(response.code, code, body)
        return response, body, path, binding

    def session_cookie(self, response):
        for name, value, _ in set_cookies(response):
            if name == PLAIN_COOKIE.decode() and value:
                return {"Cookie": f"{name}={value}"}
        raise AssertionError("no session cookie")

    def events(self):
        return [json.loads(line) for data in self.audit_trail.log.files.values()
                for line in data.splitlines()]

    def reason(self, body):
        found = re.search(rb'role="alert" id="login-error">([^<]*)<', body)
        return found.group(1).decode() if found else body.decode()[:300]


def set_cookies(response):
    """C{[(name, value, attributes)]} of the response's Set-Cookie headers."""
    found = []
    for raw in response.headers.getRawHeaders(b"set-cookie") or []:
        pair, _, attributes = raw.decode().partition("; ")
        name, _, value = pair.partition("=")
        found.append((name, value, attributes))
    return found


class SingleSignOnTests(_SSOSite, SynchronousTestCase):
    """A person logs in through the provider; every refusal a page with its reason."""

    def test_button(self):
        """The form offers the provider; its link keeps where the person was going."""
        _, body = self.get("/login?next=/project/x/")
        self.assertIn(b'<a class="button" href="login/sso?next=/project/x/">Log in with Acme '
                      b'login</a>', body)

    def test_login(self):
        """The code flow, ending in a session with the provider's groups."""
        response, location, binding = self.begin("/project/holy-grail/")
        self.assertEqual(self.header(response, "Cache-Control"), b"no-store")
        name, value, attributes = set_cookies(response)[0]
        self.assertEqual(attributes, "Max-Age=600; Path=/; HttpOnly; SameSite=Lax")
        query, grant = self.provider.authorize(location, CAROL)
        self.assertEqual(query["redirect_uri"], "http://pypi.test/login/sso/callback")
        response, body = self.get("/login/sso/callback?" + urlencode(
            {"state": query["state"], "code": grant}), headers=binding)
        self.assertEqual(response.code, 303, body)
        self.assertEqual(self.header(response, "Location"), b"../../project/holy-grail/")
        cookies = {name: (value, attributes) for name, value, attributes in
                   set_cookies(response)}
        self.assertEqual(cookies[PLAIN_BINDING.decode()][0], "")
        (session,) = self.sessions.book.sessions.values()
        self.assertEqual((session.user, session.groups, session.source),
                         ("carol", {"platform"}, "sso"))
        _, body = self.get("/", headers=self.session_cookie(response))
        self.assertIn(b'<span class="person">carol</span>', body)
        (event,) = [e for e in self.events() if e["event"] == "session-opened"]
        self.assertEqual((event["user"], event["detail"]), ("carol", "sso"))
        # (the client authenticated with HTTP Basic, sent its verifier)
        (form,) = self.provider.token_requests
        self.assertNotIn("client_secret", form)
        self.assertEqual(pkce_challenge(form["code_verifier"]), query["code_challenge"])

    def test_client_secret_post(self):
        """A provider that takes the secret only in the form gets it there."""
        self.provider.methods = ["client_secret_post"]
        self.sign_in()
        self.assertEqual(self.provider.token_requests[0]["client_secret"], SECRET)

    def test_replayed_callback(self):
        """The same callback again (a replayed code and state) opens nothing."""
        _, _, path, binding = self.sign_in()
        response, body = self.get(path, headers=binding)
        self.assertEqual(response.code, 400)
        self.assertIn("already used", self.reason(body))
        self.assertEqual(len(self.sessions.book.sessions), 1)

    def test_replayed_code(self):
        """An old code with a new login's state: the provider refuses it, the page says so."""
        _, _, path, _ = self.sign_in()
        old_code = parse_qs(urlsplit(path).query)["code"][0]
        _, location, binding = self.begin()
        state = parse_qs(urlsplit(location).query)["state"][0]
        response, body = self.get("/login/sso/callback?" + urlencode(
            {"state": state, "code": old_code}), headers=binding)
        self.assertEqual(response.code, 400)
        self.assertIn("invalid_grant", self.reason(body))

    def test_wrong_state(self):
        _, _, binding = self.begin()
        response, body = self.get("/login/sso/callback?state=forged&code=x", headers=binding)
        self.assertEqual(response.code, 400)
        self.assertIn("not one this server started", self.reason(body))
        self.assertEqual(self.provider.token_requests, [])

    def test_other_browser(self):
        """A login begun in one browser cannot be finished in another (login CSRF)."""
        _, location, _ = self.begin()
        query, grant = self.provider.authorize(location, CAROL)
        path = "/login/sso/callback?" + urlencode({"state": query["state"], "code": grant})
        _, _, other = self.begin()
        for headers in ({}, other):
            response, body = self.get(path, headers=headers)
            self.assertEqual(response.code, 400)
            self.assertIn("another browser", self.reason(body))
        self.assertEqual(self.provider.token_requests, [])

    def test_hostile_id_tokens(self):
        """Tokens the provider's keys did not sign for this login, or not for pypid."""
        issuer = self.issuer
        cases = [
            ({"aud": "other-app"}, None, "meant for another application"),
            ({"aud": [CLIENT_ID, "other-app"]}, None, "azp"),
            ({"azp": "other-app"}, None, "azp"),
            ({"nonce": "not-this-one"}, None, "nonce"),
            ({"nonce": None}, None, "nonce"),
            ({"iss": "https://evil.example"}, None, "another issuer"),
            ({"exp": T0 - 3600, "iat": T0 - 3900}, None, "expired"),
            ({}, lambda c: issuer.forged(c), "does not publish"),
            ({}, lambda c: issuer.unsigned(c), "alg none"),
            ({}, lambda c: issuer.hmac_with_public_key(c), "shared secret"),
            ({}, lambda c: issuer.with_embedded_key(c), "ID token was refused"),
            ({}, lambda c: compact({"alg": "RS256", "kid": issuer.signing.kid}, c, b"x"),
             "signature is not valid"),
            ({}, lambda c: "not.a.jwt", "not a JSON Web Token"),
        ]
        for changes, sign, words in cases:
            self.provider.changes = changes
            self.provider.sign = sign or issuer.sign
            response, body, _, _ = self.sign_in(code=400)
            self.assertIn(words, self.reason(body), changes)
        self.assertEqual(self.sessions.book.sessions, {})

    def test_local_name(self):
        """The provider cannot speak for a local user of pypid."""
        response, body, _, _ = self.sign_in({"sub": "u-9", "preferred_username": "alice"},
                                            code=403)
        self.assertIn("alice is the name of a user of this server", self.reason(body))
        self.assertEqual(self.sessions.book.sessions, {})
        self.assertIn(("session-opened", "failed"),
                      [(e["event"], e["outcome"]) for e in self.events()])

    def test_unusable_person(self):
        for person, words in (({"sub": "u-1"}, "gave no preferred_username"),
                              ({"sub": "u-1", "preferred_username": "a b"}, "not a name")):
            _, body, _, _ = self.sign_in(person, code=400)
            self.assertIn(words, self.reason(body))

    def test_userinfo(self):
        """Claims the ID token lacks are read from userinfo, for the same sub only."""
        self.provider.userinfo = {"groups": ["qa"], "preferred_username": "ignored"}
        self.sign_in({"sub": "u-carol", "preferred_username": "carol"})
        (session,) = self.sessions.book.sessions.values()
        self.assertEqual((session.user, session.groups), ("carol", {"qa"}))
        self.provider.userinfo = {"sub": "u-other", "groups": ["qa"]}
        _, body, _, _ = self.sign_in({"sub": "u-carol", "preferred_username": "carol"},
                                     code=400)
        self.assertIn("another person", self.reason(body))

    def test_provider_says_no(self):
        """The provider's own refusal is shown, and ends the login."""
        _, location, binding = self.begin()
        state = parse_qs(urlsplit(location).query)["state"][0]
        response, body = self.get("/login/sso/callback?" + urlencode(
            {"state": state, "error": "access_denied", "error_description": "No <b>way</b>"}),
            headers=binding)
        self.assertEqual(response.code, 403)
        self.assertIn("did not sign you in (access_denied)", self.reason(body))
        # (the description is anyone's text: never shown on the site's page)
        self.assertNotIn("way", self.reason(body))
        self.assertEqual(len(self.sso.pending), 0)
        response, body = self.get("/login/sso/callback?" + urlencode(
            {"state": state, "error": "Call 555-0100 now"}))
        self.assertEqual(response.code, 400)
        self.assertIn("(an error)", self.reason(body))

    def test_provider_down(self):
        """A provider that cannot be reached: a page saying so, 503, never a 500."""
        self.provider.down = True
        response, body = self.get("/login/sso")
        self.assertEqual(response.code, 503)
        self.assertIn("cannot be reached now", self.reason(body))
        self.assertEqual(self.header(response, "Retry-After"), b"30")
        self.assertIn(b'action="../login"', body)
        self.assertIn(b'<a class="brand" href="../">', body)

    def test_provider_down_at_the_callback(self):
        _, location, binding = self.begin()
        query, grant = self.provider.authorize(location, CAROL)
        self.provider.down = True
        response, body = self.get("/login/sso/callback?" + urlencode(
            {"state": query["state"], "code": grant}), headers=binding)
        self.assertEqual(response.code, 503)
        self.assertIn(b'action="../../login"', body)

    def test_provider_hangs(self):
        self.provider.hang = True
        d = self.client.request("GET", "http://pypi.test/login/sso")
        self.assertNoResult(d)
        self.clock.advance(PROVIDER_TIMEOUT)
        self.client.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 503)

    def test_host_header(self):
        """Without base_url the callback comes from Host: one that is no host name is a 400."""
        for host, code in ((b"pypi_test:8080", 303), (b"[::1]:8080", 303),
                           (b"a" * 300, 400), (b"x y", 400), (b"\xc3\xa9.example", 400),
                           (b"pypi.test:8080/evil", 400)):
            response, body = self.raw_get("/login/sso", host)
            self.assertEqual(response.code, code, (host, body[:300]))
            # (every Klein area's routing reads Host: never a 500)
            for other in ("/login", "/health", "/api/tokens"):
                self.assertIn(self.raw_get(other, host)[0].code, (200, 400, 401), (other, host))
        response, _ = self.raw_get("/login/sso", b"pypi_test:8080")
        location = self.header(response, "Location").decode()
        self.assertIn(urlencode({"redirect_uri": "http://pypi_test:8080/login/sso/callback"}),
                      location)

    def raw_get(self, path, host):
        agent = site_agent(self.web.site)
        response = self.successResultOf(agent.request(
            b"GET", b"http://pypi.test" + path.encode(), Headers({b"host": [host]})))
        return response, self.successResultOf(treq.content(response))

    def test_starts_bounded_per_client(self):
        """A client's starts beyond its share push out its own oldest logins."""
        _, location, binding = self.begin()
        for _ in range(30):
            self.get("/login/sso")
        self.assertEqual(len(self.sso.pending), 20)
        query, grant = self.provider.authorize(location, CAROL)
        self.get("/login/sso/callback?" + urlencode(
            {"state": query["state"], "code": grant}), headers=binding)
        self.assertEqual(self.sessions.book.sessions, {})

    def test_reload_removes_sso_during_the_callback(self):
        """[sso] taken away while the code is traded: a 503 page, never a 500."""
        _, location, binding = self.begin()
        query, grant = self.provider.authorize(location, CAROL)
        self.provider.hang = True
        d = self.client.request("GET", "http://pypi.test/login/sso/callback?" + urlencode(
            {"state": query["state"], "code": grant}), headers=binding)
        self.sso.reconfigure(SSOConfig(), "", None)
        self.clock.advance(PROVIDER_TIMEOUT)
        self.client.flush()
        self.assertEqual(self.successResultOf(d).code, 503)

    def test_email_from_userinfo(self):
        """An address read from userinfo is taken when userinfo says it is verified."""
        self.sso.config = attrs.evolve(self.sso.config, user_claim="email")
        self.provider.userinfo = {"email": "carol@corp.example", "email_verified": True}
        self.sign_in({"sub": "u-carol"})
        self.provider.userinfo = {"email": "carol@corp.example"}
        _, body, _, _ = self.sign_in({"sub": "u-carol"}, code=400)
        self.assertIn("email_verified", self.reason(body))

    def test_name_with_a_line_break(self):
        """alice followed by a line break is no name: not a way around the local user."""
        for name in ("alice\n", "carol\n", "carol\r\n"):
            _, body, _, _ = self.sign_in({"sub": "u-x", "preferred_username": name}, code=400)
            self.assertIn("not a name", self.reason(body))
        self.assertEqual(self.sessions.book.sessions, {})

    def test_wrong_client_secret(self):
        self.sso.secret = "wrong"
        _, body, _, _ = self.sign_in(code=503)
        self.assertIn("cannot be reached now", self.reason(body))

    def test_reload_during_login(self):
        """A login that began with another provider or client opens nothing."""
        _, location, binding = self.begin()
        query, grant = self.provider.authorize(location, CAROL)
        self.sso.reconfigure(attrs.evolve(self.sso.config, client_id="another"), SECRET, None)
        response, body = self.get("/login/sso/callback?" + urlencode(
            {"state": query["state"], "code": grant}), headers=binding)
        self.assertEqual(response.code, 400)
        self.assertEqual(self.sessions.book.sessions, {})

    def test_never_the_apis(self):
        """A session of single sign-on, like any, is never used by the simple API."""
        self.access.reconfigure(AccessModel(read="authenticated"), self.access_verifier(), None)
        response, _, _, _ = self.sign_in()
        cookie = self.session_cookie(response)
        self.assertEqual(self.get("/", headers=cookie)[0].code, 200)
        self.assertEqual(self.get("/simple/", headers=cookie)[0].code, 401)

    def access_verifier(self):
        return PasswordVerifier(USERS, self.clock, None)

    @settings(max_examples=100, deadline=None)
    @given(st.dictionaries(st.sampled_from(["state", "code", "error", "error_description",
                                            "next"]),
                           st.text(max_size=300) | st.binary(max_size=50).map(
                               lambda b: b.decode("latin-1"))))
    def test_hostile_callbacks(self, query):
        """Whatever comes back to the callback: never a 500, never a session."""
        _, _, binding = self.begin()
        for headers in ({}, binding, {"Cookie": "pypid-sso=\x7f\xff"}):
            response, _ = self.get("/login/sso/callback?" + urlencode(query), headers=headers)
            self.assertIn(response.code, (400, 403), query)
        self.assertEqual(self.sessions.book.sessions, {})


class NoSSOTests(NoCookieJar, SynchronousTestCase):
    def test_not_offered(self):
        self.assertNotIn(b"login/sso", self.get("/login")[1])
        self.assertEqual(self.get("/login/sso")[0].code, 404)
        self.assertEqual(self.get("/login/sso/callback?state=x&code=y")[0].code, 404)


class AllowTests(_SSOSite, SynchronousTestCase):
    sso_settings = {"allow": ("group:platform",)}

    def test_allow(self):
        self.sign_in()
        _, body, _, _ = self.sign_in({"sub": "u-zed", "preferred_username": "zed",
                                      "groups": ["qa"]}, code=400)
        self.assertIn("[sso] allow", self.reason(body))


class ConnectionRefusedTests(SynchronousTestCase):
    def test_refused(self):
        class Refusing:
            def request(self, *args, **kwargs):
                return fail(ConnectionRefusedError("127.0.0.1"))
        sso = SingleSignOn(SSOConfig(issuer=ISSUER, client_id="p", client_secret="s"), "s",
                           Refusing(), Clock())
        d = ensureDeferred(sso.begin("https://pypi.test/login/sso/callback", "/"))
        self.assertIn("Connection was refused",
                      str(self.failureResultOf(d, ProviderUnavailable).value))



class OneNameTests(_SSOSite, SynchronousTestCase):
    """
    Issue 59, finding 4: one name is one person. A person of single sign-on
    named like the directory's user was taken as that user (their tokens
    seen and revoked, their uploads and audit entries one); now the second
    source to bring a name is refused, in both directions.
    """

    def setUp(self):
        super().setUp()
        self.directory = MemoryDirectory({("carol", "dir-pw"): frozenset({"dev"})})
        verifier = PasswordVerifier(
            USERS, self.clock, None, run_in_pool=run_in_pool_now, directory=self.directory,
            held=lambda user: name_held(self.access, self.clock.seconds(), user))
        self.access.reconfigure(self.access.model, verifier, TokenBook(self.clock),
                                OutsideLogins(directory=DIRECTORY_KEY, provider=self.sso.provider,
                                              mapping=self.sso.config.mapping))

    def directory_login(self, code):
        response, body = self.request("POST", "/login", data={"user": "carol",
                                                               "password": "dir-pw"})
        self.assertEqual(response.code, code, body)
        return body

    def test_directory_first(self):
        """The provider's carol is refused while the directory has a carol."""
        _, body, _, _ = self.sign_in(code=403)
        self.assertIn("carol is the name of a user of this server&#x27;s directory",
                      self.reason(body))
        self.assertEqual(self.sessions.book.sessions, {})
        self.directory.down = True
        self.sign_in(code=503)
        self.assertEqual(self.sessions.book.sessions, {})
        # (the directory's carol logs in as before)
        self.directory.down = False
        self.directory_login(303)

    def test_provider_first(self):
        """
        The provider's carol logged in before the directory had a carol: the
        directory's carol is refused (the form and HTTP Basic alike) while a
        session or token of the provider's stands, and logs in once none does.
        """
        del self.directory.people["carol", "dir-pw"]
        response, _, _, _ = self.sign_in()
        self.directory.people["carol", "dir-pw"] = frozenset({"dev"})
        body = self.directory_login(403)
        self.assertIn(b"carol is a person of single sign-on on this server", body)
        response, body = self.request("GET", "/api/tokens", auth=basic("carol", "dir-pw"))
        self.assertEqual(response.code, 403, body)
        # (a token of the provider's carol holds the name too)
        self.sessions.revoke(lambda session: True)
        book = self.access.tokens
        _, token = book.make("carol", ["read"], lifetime=3600.0, login=LoginSource(
            PROVIDER, frozenset({"platform"}), self.sso.provider))
        book.tokens[token.id] = token
        self.directory_login(403)
        # (expired, it holds nothing: the directory's carol logs in)
        self.clock.advance(3601)
        self.directory_login(303)

    def test_directory_token_outlives_the_entry(self):
        """
        (Found by a review.) A directory user's token outlives their entry
        in the directory (90 days at most): while it stands, the provider's
        person of that name is refused too, and then let in.
        """
        book = self.access.tokens
        _, token = book.make("carol", ["read"], lifetime=3600.0, login=LoginSource(
            DIRECTORY, frozenset({"dev"}), DIRECTORY_KEY))
        book.tokens[token.id] = token
        del self.directory.people["carol", "dir-pw"]
        _, body, _, _ = self.sign_in(code=403)
        self.assertIn("carol is a user of the directory on this server", self.reason(body))
        self.clock.advance(3601)
        self.sign_in()


class WorkersTests(SynchronousTestCase):
    """Two workers' single sign-on on one ring: a login begun on one finishes on the other."""

    def setUp(self):
        from pypid.machine.ring import ChangeRing
        from pypid.machine.topics import Hub
        self.clock = Clock()
        self.clock.advance(T0)
        self.issuer = Issuer(ISSUER, now=self.clock.seconds)
        self.provider = Provider(self.issuer)
        ring = ChangeRing.create(slots=16, slot_size=4096)
        self.addCleanup(ring.close)
        config = SSOConfig(issuer=ISSUER, client_id=CLIENT_ID, client_secret=SECRET,
                           label="Acme login", timeout=PROVIDER_TIMEOUT)

        def worker(number):
            attached = ChangeRing.attach(ring.fileno(), number)
            self.addCleanup(attached.close)
            return SingleSignOn(config, SECRET, StubTreq(self.provider), self.clock,
                                randomness(number), hub=Hub(attached))
        self.workers = [worker(1), worker(2)]
        self.worker = worker

    def test_begun_before_the_other_started(self):
        """
        A login begun on one worker while the other (re)started finishes
        on the new one; one taken before it started is not taken again.
        """
        one, two = self.workers
        begun = [self.successResultOf(ensureDeferred(one.begin(
            "http://pypi.test/login/sso/callback", "/", "192.0.2.7"))) for _ in range(2)]
        (taken_url, taken_binding), (url, binding) = begun
        taken_query, taken_code = self.provider.authorize(taken_url, CAROL)
        self.successResultOf(ensureDeferred(one.finish(taken_query["state"], taken_code,
                                                       taken_binding)))
        again = self.worker(2)
        query, code = self.provider.authorize(url, CAROL)
        self.assertEqual(self.successResultOf(ensureDeferred(
            again.finish(query["state"], code, binding))).user, "carol")
        failure = self.failureResultOf(ensureDeferred(
            again.finish(taken_query["state"], taken_code, taken_binding)))
        self.assertIn("already used", str(failure.value))

    def test_begun_on_one_finished_on_the_other(self):
        """
        The other worker takes the login in before its next answer, and
        finishes it; then neither takes it again (a state is used once).
        """
        one, two = self.workers
        url, binding = self.successResultOf(ensureDeferred(one.begin(
            "http://pypi.test/login/sso/callback", "/project/x/", "192.0.2.7")))
        query, code = self.provider.authorize(url, CAROL)
        self.assertEqual(len(two.pending), 0)
        self.successResultOf(two.sync())
        self.assertEqual(len(two.pending), 1)
        signed = self.successResultOf(ensureDeferred(two.finish(query["state"], code, binding)))
        self.assertEqual((signed.user, signed.next_path), ("carol", "/project/x/"))
        self.successResultOf(one.sync())
        for worker in (one, two):
            failure = self.failureResultOf(ensureDeferred(
                worker.finish(query["state"], code, binding)))
            self.assertIn("already used", str(failure.value))

    def test_abandoned_everywhere(self):
        """A login the browser abandoned on one worker is gone from the other too."""
        one, two = self.workers
        url, binding = self.successResultOf(ensureDeferred(one.begin(
            "http://pypi.test/login/sso/callback", "/", "192.0.2.7")))
        state = parse_qs(urlsplit(url).query)["state"][0]
        self.successResultOf(two.sync())
        one.abandon(state, binding)
        self.successResultOf(two.sync())
        self.assertEqual(len(two.pending), 0)

    def test_long_page(self):
        """A page to come back to too long to tell the others is the landing page."""
        one, two = self.workers
        url, binding = self.successResultOf(ensureDeferred(one.begin(
            "http://pypi.test/login/sso/callback", "/" + "é" * 1990, "192.0.2.7")))
        self.successResultOf(two.sync())
        query, code = self.provider.authorize(url, CAROL)
        signed = self.successResultOf(ensureDeferred(two.finish(query["state"], code, binding)))
        self.assertEqual(signed.next_path, "./")

    def test_told_logins_read_back(self):
        """A login told to another worker reads back as it was; anything else is refused."""
        from pypid.core.access.sso_flow import PendingLogin
        one, _ = self.workers
        self.successResultOf(ensureDeferred(one.begin(
            "http://pypi.test/login/sso/callback", "/", "192.0.2.7")))
        (pending,) = one.pending._pending.values()
        self.assertEqual(PendingLogin.from_json(json.loads(json.dumps(pending.to_json()))),
                         pending)
        for bad in (None, [], ["a"] * 8, [*pending.to_json()[:6], "now", ""]):
            self.assertRaises(ValueError, PendingLogin.from_json, bad)
