"""
Tokens of people (issue 44): every person issues, lists and revokes their
own API tokens over C{/api/tokens}, an admin everyone's; a token never
manages tokens. A directory user's token must expire, acts with the groups
they had, and only while C{[ldap]} is configured and no local user has the
name; a single sign-on person's, while C{[sso]} names the same provider
and its C{allow} lets them in (L{pypid.core.access.outside_logins}).
"""

import base64
import json

from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook, TokenError
from pypid.auth.verifier import PasswordVerifier
from pypid.core.access.access_rules import parse_rule
from pypid.core.access.outside_logins import DIRECTORY, PROVIDER, LoginSource, OutsideLogins
from pypid.core.access.sso_flow import ClaimMapping
from tests.harness.fakes import run_in_pool_now
from tests.harness.ldap import DIRECTORY_KEY, MemoryDirectory
from tests.harness.web import USERS, NoCookieJar, basic

DAY = 86400.0
PROVIDER_KEY = "sso https://login.corp.example/realms/acme pypid"


def token_auth(text):
    return b"Basic " + base64.b64encode(f"__token__:{text}".encode())


class _People(NoCookieJar):
    """alice and dave are local users (dave an admin); zed is the directory's, in dev."""

    def setUp(self):
        super().setUp()
        self.directory = MemoryDirectory({("zed", "zed-pw"): frozenset({"dev"})})
        self.reconfigure(OutsideLogins(directory=DIRECTORY_KEY))
        self.uploaded()

    def access_model(self):
        return AccessModel(read="authenticated", admins=frozenset({"dave"}),
                           rules=(parse_rule("holy-grail", "group:dev r, user:alice rw", 0),))

    def token_book(self):
        return TokenBook(self.clock)

    def reconfigure(self, outside):
        verifier = PasswordVerifier(USERS, self.clock, None, run_in_pool=run_in_pool_now,
                                    directory=self.directory)
        self.access.reconfigure(self.access.model, verifier, self.access.tokens, outside)

    def issue(self, who, code=200, **fields):
        response, body = self.request("POST", "/api/tokens", auth=who, data=fields)
        self.assertEqual(response.code, code, body)
        return json.loads(body) if code == 200 else body.decode()

    def listing(self, who):
        response, body = self.request("GET", "/api/tokens", auth=who)
        self.assertEqual(response.code, 200, body)
        return {t["id"] for t in json.loads(body)["tokens"]}


class PeopleTokensTests(_People, SynchronousTestCase):
    def test_own_tokens(self):
        """A person issues, lists and revokes their own; an admin sees and revokes all."""
        alice = basic("alice")
        dave = basic("dave")
        mine = self.issue(alice, actions="read")
        theirs = self.issue(dave, actions="upload")
        self.assertEqual(mine["user"], "alice")
        self.assertNotIn("source", mine)
        self.assertEqual(self.listing(alice), {mine["id"]})
        self.assertEqual(self.listing(dave), {mine["id"], theirs["id"]})
        # another's token is none of a person's business: as if none
        response, body = self.request("DELETE", f"/api/tokens/{theirs['id']}", auth=alice)
        self.assertEqual(response.code, 404, body)
        self.assertEqual(self.request("DELETE", f"/api/tokens/{mine['id']}",
                                      auth=alice)[0].code, 200)
        self.assertEqual(self.request("DELETE", f"/api/tokens/{theirs['id']}",
                                      auth=dave)[0].code, 200)
        self.assertEqual(self.listing(dave), set())

    def test_bounds(self):
        """At most 100 patterns a token (repeats once), 100 tokens a person."""
        alice = basic("alice")
        many = " ".join(f"p{n}" for n in range(101))
        self.assertIn("at most 100 names or globs",
                      self.issue(alice, 400, actions="read", projects=many))
        token = self.issue(alice, actions="read", projects="a " * 500 + "b")
        self.assertEqual(token["projects"], ["a", "b"])
        for _ in range(99):
            self.issue(alice, actions="read")
        self.assertIn("alice has 100 tokens, the most one keeps",
                      self.issue(alice, 400, actions="read"))
        self.issue(basic("dave"), actions="read")

    def test_admin_removed_while_waiting(self):
        """A revocation that waited for another change is checked again with the lock."""
        mine = self.issue(basic("alice"), actions="read")
        writes = self.access.tokens._writes
        self.successResultOf(writes.acquire())
        d = self.client.request("DELETE", f"http://pypi.test/api/tokens/{mine['id']}",
                                headers={"Authorization": basic("dave")})
        self.access.reconfigure(AccessModel(read="authenticated"),
                                PasswordVerifier(USERS, self.clock, None,
                                                 run_in_pool=run_in_pool_now,
                                                 directory=self.directory),
                                self.access.tokens, OutsideLogins(directory=DIRECTORY_KEY))
        writes.release()
        self.client.flush()
        self.assertEqual(self.successResultOf(d).code, 404)
        self.assertIn(mine["id"], self.access.tokens.tokens)

    def test_token_never_manages_tokens(self):
        mine = self.issue(basic("alice"), actions="read upload")
        for method, path in (("POST", "/api/tokens"), ("GET", "/api/tokens"),
                             ("DELETE", f"/api/tokens/{mine['id']}")):
            response, body = self.request(method, path, auth=token_auth(mine["token"]),
                                          data={"actions": "read"})
            self.assertEqual(response.code, 403, (method, body))
            self.assertIn(b"a token never manages tokens", body)

    def test_directory_user(self):
        """A directory user's token expires, acts with their groups, and ends with [ldap]."""
        zed = b"Basic " + base64.b64encode(b"zed:zed-pw")
        refused = self.issue(zed, 400, actions="read")
        self.assertIn("zed logs in through the directory, whose tokens expire within 90 "
                      "days", refused)
        self.assertIn("expire within 90", self.issue(zed, 400, actions="read", expires="91d"))
        token = self.issue(zed, actions="read", expires="30d")
        self.assertEqual((token["source"], token["groups"], token["provider"]),
                         ("ldap", ["dev"], DIRECTORY_KEY))
        auth = token_auth(token["token"])
        # (its groups reach the rules: dev reads holy-grail)
        self.assertEqual(self.request("GET", "/simple/holy-grail/", auth=auth)[0].code, 200)
        self.reconfigure(OutsideLogins())
        self.assertEqual(self.request("GET", "/simple/holy-grail/", auth=auth)[0].code, 401)
        # (another directory: its zed is another person)
        self.reconfigure(OutsideLogins(directory=DIRECTORY_KEY + "-elsewhere"))
        self.assertEqual(self.request("GET", "/simple/holy-grail/", auth=auth)[0].code, 401)
        self.reconfigure(OutsideLogins(directory=DIRECTORY_KEY))
        self.assertEqual(self.request("GET", "/simple/holy-grail/", auth=auth)[0].code, 200)
        self.clock.advance(30 * DAY)
        self.assertEqual(self.request("GET", "/simple/holy-grail/", auth=auth)[0].code, 401)

    def test_written_and_read_back(self):
        """The file keeps where a token's person logged in; a local user's record is as before."""
        book = self.access.tokens
        _, local = book.make("alice", ["read"])
        _, outside = book.make("zed", ["read"], lifetime=DAY,
                               login=LoginSource(PROVIDER, frozenset({"dev"}), PROVIDER_KEY))
        data = book.dumps({local.id: local, outside.id: outside})
        records = {r["user"]: r for r in json.loads(data)["tokens"]}
        self.assertNotIn("source", records["alice"])
        self.assertEqual((records["zed"]["source"], records["zed"]["groups"],
                          records["zed"]["provider"]), ("sso", ["dev"], PROVIDER_KEY))
        again = TokenBook(self.clock)
        again.loads(data)
        self.assertEqual(again.tokens[outside.id], outside)
        for bad in ({"source": "x"}, {"groups": [1]}, {"provider": 5}):
            record = dict(records["zed"], **bad)
            with self.assertRaises(TokenError):
                again.loads(json.dumps({"tokens": [record]}).encode())


class OutsideLoginsTests(SynchronousTestCase):
    """What a session or token of a person from outside stands for, as configured."""

    def test_admits(self):
        sso = OutsideLogins(provider=PROVIDER_KEY, mapping=ClaimMapping(allow=("group:dev",)))
        self.assertTrue(sso.admits(PROVIDER, "zed", {"dev"}, PROVIDER_KEY))
        self.assertFalse(sso.admits(PROVIDER, "zed", {"qa"}, PROVIDER_KEY))
        self.assertFalse(sso.admits(PROVIDER, "zed", {"dev"}, PROVIDER_KEY + "x"))
        self.assertFalse(sso.admits(DIRECTORY, "zed", {"dev"}, ""))
        self.assertFalse(OutsideLogins().admits(PROVIDER, "zed", {"dev"}, PROVIDER_KEY))
        ldap = OutsideLogins(directory=DIRECTORY_KEY)
        self.assertTrue(ldap.admits(DIRECTORY, "zed", (), DIRECTORY_KEY))
        self.assertFalse(ldap.admits(DIRECTORY, "zed", (), DIRECTORY_KEY + "x"))
        self.assertFalse(ldap.admits(DIRECTORY, "zed", (), ""))
        self.assertFalse(ldap.admits("password", "zed", (), DIRECTORY_KEY))



