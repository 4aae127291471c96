"""
The console (issue 44), in memory: "My tokens" in a browser session, each
action the API's own path (the same refusals, the same audit entries with
the person's name), behind the session's CSRF token.
"""

import json
import re

from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.core.outside_logins import OutsideLogins
from tests.fakes import run_in_pool_now
from tests.harness_ldap import MemoryDirectory
from tests.harness_web import PASSWORD, USERS, NoCookieJar, basic

DOCUMENT = {"Sec-Fetch-Dest": "document"}
DIRECTORY_KEY = "ldap ldaps://ldap.corp.example:636 ou=people,dc=corp,dc=example"


class _Console(NoCookieJar):
    """alice (local) and zed (the directory's) log in through the form; dave is an admin."""

    def setUp(self):
        super().setUp()
        self.directory = MemoryDirectory({("zed", "zed-pw"): frozenset({"dev"})})
        verifier = PasswordVerifier(USERS, self.clock, None, run_in_pool=run_in_pool_now,
                                    directory=self.directory)
        self.access.reconfigure(self.access.model, verifier, self.access.tokens,
                                OutsideLogins(directory=DIRECTORY_KEY))
        self.uploaded()

    def access_model(self):
        return AccessModel(read="everyone", admins=frozenset({"dave"}))

    def token_book(self):
        return TokenBook(self.clock)

    def log_in(self, user="alice", password=PASSWORD):
        response, body = self.request("POST", "/login", data={"user": user,
                                                               "password": password})
        self.assertEqual(response.code, 303, body)
        raw = response.headers.getRawHeaders(b"set-cookie")[0].decode()
        cookie = {"Cookie": raw.split(";")[0]}
        _, page = self.get("/console/tokens", headers=cookie)
        csrf = re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()
        return cookie, csrf

    def issue(self, cookie, csrf, code=200, **fields):
        fields.setdefault("actions", "read")
        response, body = self.request("POST", "/console/tokens", headers=cookie,
                                      data={"csrf": csrf, **fields})
        self.assertEqual(response.code, code, body)
        return body

    def events(self):
        return [json.loads(line) for data in self.audit_trail.log.files.values()
                for line in data.splitlines()]


class MyTokensTests(_Console, SynchronousTestCase):
    def test_to_the_login_form(self):
        response, _ = self.get("/console/tokens", headers=DOCUMENT)
        self.assertEqual((response.code, self.header(response, "Location")),
                         (303, b"../login?next=/console/tokens"))
        self.assertEqual(self.get("/console/tokens")[0].code, 401)
        self.assertEqual(self.get("/console/", headers=DOCUMENT)[0].code, 303)
        self.assertEqual(self.get("/console")[0].code, 303)

    def test_credentials_refused(self):
        """A password or token never drives the console: it is the session's."""
        response, body = self.get("/console/tokens", auth=True)
        self.assertEqual(response.code, 400)
        self.assertIn(b"browser session", body)

    def test_issue_list_revoke(self):
        cookie, csrf = self.log_in()
        response, body = self.get("/console/tokens", headers=cookie)
        self.assertEqual(response.code, 200)
        self.assertEqual(self.header(response, "Cache-Control"), b"no-store")
        self.assertIn(b"default-src 'none'", self.header(response, "Content-Security-Policy"))
        self.assertIn(b"You have no tokens.", body)
        self.assertIn(b'<span class="person">alice</span>', body)
        body = self.issue(cookie, csrf, description="laptop", projects="holy-grail",
                          expires="7d")
        text = re.search(rb'<code class="secret" id="new-token">([^<]+)</code>', body)
        self.assertIsNotNone(text, body)
        (token,) = self.access.tokens.tokens.values()
        self.assertEqual((token.user, token.projects, token.description),
                         ("alice", ("holy-grail",), "laptop"))
        self.assertEqual(self.access.tokens.verify(text.group(1).decode()), token)
        # the secret is shown once: the page again lists the token without it
        _, again = self.get("/console/tokens", headers=cookie)
        self.assertNotIn(text.group(1), again)
        self.assertIn(token.id.encode(), again)
        # the same audit entry as the API's, with the person's name
        (issued,) = [e for e in self.events() if e["event"] == "token-issued"]
        self.assertEqual((issued["user"], issued["target"]), ("alice", token.id))
        response, _ = self.request("POST", f"/console/tokens/{token.id}/revoke",
                                   headers=cookie, data={"csrf": csrf})
        self.assertEqual((response.code, self.header(response, "Location")),
                         (303, b"../../tokens"))
        self.assertEqual(self.access.tokens.tokens, {})
        (revoked,) = [e for e in self.events() if e["event"] == "token-revoked"]
        self.assertEqual(revoked["user"], "alice")

    def test_csrf(self):
        """A form without the session's token changes nothing."""
        cookie, csrf = self.log_in()
        for sent in ({}, {"csrf": ""}, {"csrf": csrf + "x"}):
            response, body = self.request("POST", "/console/tokens", headers=cookie,
                                          data={"actions": "read", **sent})
            self.assertEqual(response.code, 403, body)
        self.assertEqual(self.access.tokens.tokens, {})

    def test_refused_as_the_api_refuses(self):
        """The API's refusals, on the page with their status and reason."""
        cookie, csrf = self.log_in()
        body = self.issue(cookie, csrf, 400, actions="delete")
        self.assertIn(b"actions: expected read, upload or both", body)
        self.assertIn(b'role="alert"', body)
        body = self.issue(cookie, csrf, 400, indexes="nope")
        self.assertIn(b"indexes: &#x27;nope&#x27; is not an index of this server", body)
        _, other = self.access.tokens.make("dave", ["read"])
        self.access.tokens.tokens[other.id] = other
        response, body = self.request("POST", f"/console/tokens/{other.id}/revoke",
                                      headers=cookie, data={"csrf": csrf})
        self.assertEqual(response.code, 404)
        self.assertIn(other.id, self.access.tokens.tokens)

    def test_links_from_every_depth(self):
        """The page links back to the site's root from wherever it is answered."""
        cookie, csrf = self.log_in()
        _, page = self.get("/console/tokens", headers=cookie)
        self.assertIn(b'action="../console/tokens"', page)
        self.assertIn(b'href="../static/', page)
        response, page = self.request("POST", "/console/tokens/nosuchid/revoke",
                                      headers=cookie, data={"csrf": csrf})
        self.assertEqual(response.code, 404)
        self.assertIn(b'action="../../../console/tokens"', page)
        self.assertIn(b'href="../../../static/', page)
        _, page = self.get("/console/", headers=cookie)
        self.assertIn(b'href="../console/tokens"', page)

    def test_refusals_audited(self):
        """A form refused for its CSRF token, or its fields, is in the audit log."""
        cookie, csrf = self.log_in()
        self.request("POST", "/console/tokens", headers=cookie, data={"actions": "read"})
        self.request("POST", "/console/tokens", headers={
            **cookie, "Content-Type": "application/x-www-form-urlencoded"},
            data=b"csrf=" + csrf.encode() + b"&actions=read&description=%ff")
        refused = [(e["event"], e["outcome"], e["user"], e.get("detail"))
                   for e in self.events() if e["outcome"] != "ok"]
        self.assertEqual(refused[0], ("token-issued", "refused", "alice", "csrf"))
        self.assertEqual(refused[1][:3], ("token-issued", "refused", "alice"))

    def test_directory_user(self):
        """A directory user's token must expire: "never" is not offered, and refused."""
        cookie, csrf = self.log_in("zed", "zed-pw")
        _, page = self.get("/console/tokens", headers=cookie)
        self.assertNotIn(b'value="">never', page)
        self.assertNotIn(b"1 year", page)
        body = self.issue(cookie, csrf, 400, expires="")
        self.assertIn(b"zed logs in through the directory", body)
        self.issue(cookie, csrf, expires="30d")
        (token,) = self.access.tokens.tokens.values()
        self.assertEqual((token.user, token.source, token.groups), ("zed", "ldap", ("dev",)))

    def test_admin_sees_everyone(self):
        _, alices = self.access.tokens.make("alice", ["read"])
        self.access.tokens.tokens[alices.id] = alices
        cookie, csrf = self.log_in("dave")
        _, page = self.get("/console/tokens", headers=cookie)
        self.assertIn(alices.id.encode(), page)
        self.assertIn(b'<th scope="col">User</th>', page)
        response, _ = self.request("POST", f"/console/tokens/{alices.id}/revoke",
                                   headers=cookie, data={"csrf": csrf})
        self.assertEqual(response.code, 303)
        self.assertEqual(self.access.tokens.tokens, {})

    def test_cross_site(self):
        """Another site's form is refused before anything, as every change is."""
        cookie, csrf = self.log_in()
        response, _ = self.request("POST", "/console/tokens",
                                   headers={**cookie, "Sec-Fetch-Site": "cross-site"},
                                   data={"csrf": csrf, "actions": "read"})
        self.assertEqual(response.code, 403)
        self.assertEqual(self.access.tokens.tokens, {})

    def test_api_takes_no_cookie(self):
        """The API beside it never takes the session."""
        cookie, _ = self.log_in()
        self.assertEqual(self.request("GET", "/api/tokens", headers=cookie)[0].code, 401)
        self.assertEqual(self.request("POST", "/api/tokens", headers=cookie,
                                      data={"actions": "read"})[0].code, 401)
        self.assertEqual(self.get("/api/tokens", auth=basic("alice"))[0].code, 200)
