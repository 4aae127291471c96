"""
The console (issue 44), in memory: "My tokens" in a browser session, each
action the API's own path (the same refusals, the same audit entries with
the person's name), behind the session's CSRF token.
"""

import json
import re

import attrs
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.core.access.access_rules import IndexGrants, parse_rule
from pypid.core.access.outside_logins import OutsideLogins
from pypid.core.formats import console_project_page
from pypid.state.recycle_bin import RecycleBin
from pypid.state.usage_log import UsageLog
from pypid.storage.base.locks import KeyedLock
from tests.harness.fakes import run_in_pool_now
from tests.harness.indexes import Server, entries
from tests.harness.ldap import DIRECTORY_KEY, MemoryDirectory
from tests.harness.retention import RetainedIndex
from tests.harness.web import PASSWORD, USERS, WHEEL_NAME, NoCookieJar, basic

DOCUMENT = {"Sec-Fetch-Dest": "document"}


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

    def test_examples_fit_the_token(self):
        """
        The issued token's examples use the scheme and host the browser used
        (plain HTTP here), and fit its rights: install commands for a read
        token, upload commands for an upload token.
        """
        cookie, csrf = self.log_in()
        examples = re.compile(rb'<pre class="example"><code>([^<]+)</code></pre>')
        read = [e.decode() for e in examples.findall(self.issue(cookie, csrf, actions="read"))]
        self.assertEqual(read, [
            "pip install --index-url http://__token__:&lt;token&gt;@pypi.test/simple/ "
            "&lt;project&gt;",
            "uv pip install --index-url http://__token__:&lt;token&gt;@pypi.test/simple/ "
            "&lt;project&gt;"])
        up = [e.decode() for e in examples.findall(self.issue(cookie, csrf, actions="upload"))]
        self.assertEqual(up, [
            "twine upload --repository-url http://pypi.test/ -u __token__ -p &lt;token&gt; dist/*",
            "uv publish --publish-url http://pypi.test/ --token &lt;token&gt; dist/*"])

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


class HiddenIndexTokenTests(_Console, SynchronousTestCase):
    """
    Issue 59, finding 5: a token's indexes name only those its person may
    see; a hidden one answers as a missing one, and is never named.
    """

    def access_model(self):
        return AccessModel(read="everyone", admins=frozenset({"dave"}), indexes={
            "payroll-secret": IndexGrants(frozenset({"user:dave"}), frozenset({"user:dave"}))})

    def test_hidden_as_missing(self):
        cookie, csrf = self.log_in()
        hidden = self.issue(cookie, csrf, 400, indexes="payroll-secret")
        missing = self.issue(cookie, csrf, 400, indexes="nosuch")
        self.assertEqual(hidden.replace(b"payroll-secret", b"nosuch"), missing)
        self.assertNotIn(b"payroll", missing)
        self.assertIn(b"yours are default", missing)
        response, body = self.request("POST", "/api/tokens", auth=basic("alice"),
                                      data={"actions": "read", "indexes": "payroll-secret"})
        self.assertEqual((response.code, body), (400, b"indexes: 'payroll-secret' is not an "
                                                       b"index of this server you may use "
                                                       b"(yours are default)\n"))
        self.assertEqual(self.access.tokens.tokens, {})
        # (its reader may keep a token to it)
        response, body = self.request("POST", "/api/tokens", auth=basic("dave"),
                                      data={"actions": "read", "indexes": "payroll-secret"})
        self.assertEqual(response.code, 200, body)


class ProjectPageTests(_Console, SynchronousTestCase):
    """
    A project's page in the console: yank, unyank, delete into the bin and
    restore, and (admins) its status; each the API's own route, audited as
    the person, refused as the API refuses.
    """

    def setUp(self):
        self.locks = KeyedLock()
        super().setUp()

    def recycle_bin(self):
        self.bin = RecycleBin(self.index, self.storage, self.locks, self.clock, 7 * 86400)
        return self.bin

    def access_model(self):
        return AccessModel(read="everyone", admins=frozenset({"dave"}),
                           rules=(parse_rule("holy-grail", "user:alice rw, user:eve r", 0),))

    def page(self, cookie, code=200):
        response, body = self.get("/console/project/holy-grail/", headers=cookie)
        self.assertEqual(response.code, code, body)
        return body

    def post(self, cookie, csrf, path, code=303, **fields):
        response, body = self.request("POST", "/console/project/holy-grail/" + path,
                                      headers=cookie, data={"csrf": csrf, **fields})
        self.assertEqual(response.code, code, body)
        return response, body

    def test_yank_delete_restore(self):
        cookie, csrf = self.log_in()
        body = self.page(cookie)
        self.assertIn(WHEEL_NAME.encode(), body)
        self.assertIn(f'aria-label="Yank {WHEEL_NAME}"'.encode(), body)
        self.assertNotIn(b"Set the status", body)
        response, _ = self.post(cookie, csrf, f"files/{WHEEL_NAME}/yank", reason="broken build")
        self.assertEqual(self.header(response, "Location"),
                         b"../../../../../console/project/holy-grail/")
        self.assertEqual(self.index.get_file(WHEEL_NAME).yanked, "broken build")
        self.assertIn(b"yanked: broken build", self.page(cookie))
        self.post(cookie, csrf, f"files/{WHEEL_NAME}/unyank")
        self.assertIsNone(self.index.get_file(WHEEL_NAME).yanked)
        self.post(cookie, csrf, f"files/{WHEEL_NAME}/delete")
        self.assertIsNotNone(self.index.binned_file(WHEEL_NAME))
        body = self.page(cookie)
        self.assertIn(f'aria-label="Restore {WHEEL_NAME}"'.encode(), body)
        self.post(cookie, csrf, f"files/{WHEEL_NAME}/restore")
        self.assertIsNotNone(self.index.get_file(WHEEL_NAME))
        events = [(e["event"], e["outcome"], e["user"]) for e in self.events()
                  if e["event"] in ("yank", "unyank", "delete", "restore")]
        self.assertEqual(events, [("yank", "ok", "alice"), ("unyank", "ok", "alice"),
                                  ("delete", "ok", "alice"), ("restore", "ok", "alice")])

    def test_status_admins_only(self):
        cookie, csrf = self.log_in("dave")
        self.assertIn(b"Set the status", self.page(cookie))
        self.post(cookie, csrf, "status", status="archived", reason="moved elsewhere")
        self.assertEqual(self.index.status("holy-grail").status, "archived")
        self.assertIn(b"archived: moved elsewhere", self.page(cookie))
        cookie, csrf = self.log_in("alice")
        _, body = self.post(cookie, csrf, "status", code=403, status="active")
        self.assertIn(b"alice is not an admin", body)
        self.assertEqual(self.index.status("holy-grail").status, "archived")

    def test_who_may(self):
        """A reader who may not change it: 403; one who may not read it: as if none."""
        cookie, csrf = self.log_in("eve")
        self.page(cookie, 403)
        self.post(cookie, csrf, f"files/{WHEEL_NAME}/yank", code=403)
        self.assertIsNone(self.index.get_file(WHEEL_NAME).yanked)
        self.access.reconfigure(AccessModel(read="authenticated", rules=(
            parse_rule("holy-grail", "user:alice rw", 0),)), self.access_verifier(),
            self.access.tokens, OutsideLogins(directory=DIRECTORY_KEY))
        cookie, csrf = self.log_in("eve")
        self.page(cookie, 404)
        self.assertEqual(self.get("/console/project/nope/", headers=cookie)[0].code, 404)
        self.assertEqual(self.get("/console/project/holy-grail/?index=nope",
                                  headers=cookie)[0].code, 404)

    def test_find_a_project(self):
        """The home's form leads to the project's page, by its normalized name."""
        response, _ = self.get("/console/project?name=Holy_Grail")
        self.assertEqual((response.code, self.header(response, "Location")),
                         (303, b"project/holy-grail/"))
        response, _ = self.get("/console/project?name=Holy.Grail&index=prod")
        self.assertEqual(self.header(response, "Location"), b"project/holy-grail/?index=prod")
        self.assertEqual(self.get("/console/project?name=%20-x")[0].code, 400)
        cookie, _ = self.log_in()
        self.assertIn(b'action="../console/project"', self.get("/console/", headers=cookie)[1])

    def test_csrf(self):
        cookie, csrf = self.log_in()
        for verb in ("yank", "delete"):
            self.request("POST", f"/console/project/holy-grail/files/{WHEEL_NAME}/{verb}",
                         headers=cookie, data={"csrf": "x"})
        self.assertIsNone(self.index.get_file(WHEEL_NAME).yanked)
        self.assertIsNone(self.index.binned_file(WHEEL_NAME))
        self.post(cookie, csrf, f"files/{WHEEL_NAME}/burn", code=404)

    def access_verifier(self):
        return PasswordVerifier(USERS, self.clock, None, run_in_pool=run_in_pool_now,
                                directory=self.directory)


class _NamedIndexes:
    """The named indexes' server, carol's C{widget} in the hidden C{secret}, alice's C{gadget}."""

    def setUp(self):
        self.s = Server(self)
        code, _, body = self.s.upload("/secret/", "widget", "1.0", auth=basic("carol"))
        self.assertEqual(code, 200, body)
        code, _, body = self.s.upload("/release/", "gadget", "1.0")
        self.assertEqual(code, 200, body)

    def login(self, user):
        code, headers, body = self.s.request("POST", "/login", data={"user": user,
                                                                     "password": PASSWORD})
        self.assertEqual(code, 303, body)
        cookie = {"Cookie": headers.getRawHeaders(b"set-cookie")[0].decode().split(";")[0]}
        _, _, page = self.s.request("GET", "/console/tokens", headers=cookie)
        return cookie, re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()


class NamedIndexProjectTests(_NamedIndexes, SynchronousTestCase):
    """
    The project page of a named index (C{?index=}): its own files, through
    its own routes; a hidden index, a view, an unknown one, a name that is
    no index name, and a file of another project all answer as nothing.
    """

    def test_a_named_index(self):
        cookie, csrf = self.login("alice")
        code, _, page = self.s.request("GET", "/console/project/gadget/?index=release",
                                       headers=cookie)
        self.assertEqual(code, 200, page)
        self.assertIn(b'action="../../../console/project/gadget/files/gadget-1.0-py3-none-any'
                      b'.whl/yank?index=release"', page)
        code, headers, body = self.s.request(
            "POST", "/console/project/Gadget/files/gadget-1.0-py3-none-any.whl/yank"
            "?index=release", headers=cookie, data={"csrf": csrf, "reason": "bad"})
        self.assertEqual(code, 303, body)
        self.assertEqual(headers.getRawHeaders(b"location"),
                         [b"../../../../../console/project/gadget/?index=release"])
        (entry,) = [e for e in entries(self.s.log) if e["event"] == "yank"]
        self.assertEqual((entry["user"], entry["index"], entry["outcome"]),
                         ("alice", "release", "ok"))

    def test_nothing_to_see(self):
        """Each of these answers 404 no such project, alike: never a 500."""
        cookie, csrf = self.login("alice")
        for index in ("secret", "nosuch", "prod", "%C3%A9", "%FF", "Release", "-x"):
            for method, path in (
                    ("GET", "/console/project/widget/"),
                    ("POST", "/console/project/widget/files/widget-1.0-py3-none-any.whl/yank"),
                    ("POST", "/console/project/widget/status")):
                code, _, body = self.s.request(method, f"{path}?index={index}", headers=cookie,
                                               data={"csrf": csrf, "status": "archived"})
                self.assertEqual((code, body), (404, b"no such project\n"), (index, path))
        self.assertEqual([e for e in entries(self.s.log) if e["event"] in ("yank", "status")],
                         [])

    def test_file_of_another_project(self):
        cookie, csrf = self.login("alice")
        code, _, body = self.s.request(
            "POST", "/console/project/whatever%3Fx=1/files/gadget-1.0-py3-none-any.whl/yank"
            "?index=release", headers=cookie, data={"csrf": csrf})
        self.assertEqual(code, 404, body)
        code, _, body = self.s.request(
            "POST", "/console/project/gadget/files/widget-1.0-py3-none-any.whl/yank"
            "?index=release", headers=cookie, data={"csrf": csrf})
        self.assertEqual(code, 404, body)
        self.assertIn(b"no such file of gadget", body)


class PromoteTests(SynchronousTestCase):
    """A release promoted from the project's page: POST /api/promote's own path."""

    def setUp(self):
        self.s = Server(self, registry=True)
        code, _, body = self.s.upload("/staging/", "gadget", "1.0")
        self.assertEqual(code, 200, body)

    login = _NamedIndexes.login

    def test_promote(self):
        cookie, csrf = self.login("alice")
        code, _, page = self.s.request("GET", "/console/project/gadget/?index=staging",
                                       headers=cookie)
        self.assertEqual(code, 200, page)
        self.assertIn(b'<option value="default" selected>default</option>'
                      b'<option value="release">release</option></select>', page)
        self.assertNotIn(b'value="secret"', page)
        self.assertNotIn(b"allow_denied", page)
        code, _, page = self.s.request(
            "POST", "/console/project/gadget/promote?index=staging", headers=cookie,
            data={"csrf": csrf, "version": "1.0", "to": "release",
                  # (the page's index and project decide, not such fields)
                  "from": "secret", "project": "widget"})
        self.assertEqual(code, 200, page)
        self.assertIn(b"Promoted gadget 1.0 to release: 1 file.", page)
        code, _, body = self.s.request("GET", "/release/simple/gadget/")
        self.assertIn(b"gadget-1.0-py3-none-any.whl", body)
        (entry,) = [e for e in entries(self.s.log) if e["event"] == "promote"]
        self.assertEqual((entry["user"], entry["index"], entry["target"], entry["outcome"]),
                         ("alice", "release", "staging", "ok"))
        # again: nothing more to promote, said so
        code, _, page = self.s.request(
            "POST", "/console/project/gadget/promote?index=staging", headers=cookie,
            data={"csrf": csrf, "version": "1.0", "to": "release"})
        self.assertIn(b"every file was there already", page)

    def test_refused_as_the_api(self):
        cookie, csrf = self.login("alice")
        for fields, code, words in (
                ({"version": "1.0", "to": "secret"}, 404, b"to: no such index: secret"),
                ({"version": "9.9", "to": "release"}, 404, b"9.9"),
                ({"version": "1.0", "to": "prod"}, 405, b"prod is a view"),
                ({"version": "1.0"}, 400, b"to: missing"),
                ({"version": "1.0", "to": "release", "allow_denied": "maybe"}, 400,
                 b"allow_denied: true or false")):
            status, _, page = self.s.request(
                "POST", "/console/project/gadget/promote?index=staging", headers=cookie,
                data={"csrf": csrf, **fields})
            self.assertEqual(status, code, page)
            self.assertIn(words, page)
        self.assertEqual(self.s.request("GET", "/release/simple/gadget/")[0], 404)

    def test_csrf(self):
        cookie, _ = self.login("alice")
        code, _, _ = self.s.request("POST", "/console/project/gadget/promote?index=staging",
                                    headers=cookie, data={"version": "1.0", "to": "release"})
        self.assertEqual(code, 403)
        self.assertEqual(self.s.request("GET", "/release/simple/gadget/")[0], 404)


class RetentionPageTests(RetainedIndex, _Console, SynchronousTestCase):
    """The retention plan as a dry run, then applied: the API's own path, admins only."""

    def test_dry_run_then_apply(self):
        old = self.upload_version("0.9")
        cookie, csrf = self.log_in("dave")
        _, home = self.get("/console/", headers=cookie)
        self.assertIn(b'href="../console/retention">Retention</a>', home)
        response, page = self.get("/console/retention", headers=cookie)
        self.assertEqual(response.code, 200, page)
        self.assertIn(b"not among the newest 1 release", page)
        self.assertIn(f'name="files" value="{old}"'.encode(), page)
        self.assertIsNotNone(self.index.get_file(old))  # (a plan changes nothing)
        newer = self.upload_version("2.0")
        # the plan as shown: a file the plan now adds is not taken along
        response, page = self.request("POST", "/console/retention/apply", headers=cookie,
                                      data={"csrf": csrf, "index": "default",
                                            "files": [old]})
        self.assertEqual(response.code, 200, page)
        self.assertIn(b"default: 1 file moved to the recycle bin", page)
        self.assertIsNotNone(self.index.binned_file(old))
        self.assertIsNotNone(self.index.get_file(newer))
        self.assertIsNotNone(self.index.get_file(WHEEL_NAME))
        self.assertEqual([(e["event"], e["user"], e["filename"]) for e in self.events()
                          if e["event"] == "retention"], [("retention", "dave", old)])

    def test_admins_only(self):
        cookie, csrf = self.log_in("alice")
        self.assertNotIn(b"console/retention", self.get("/console/", headers=cookie)[1])
        response, body = self.get("/console/retention", headers=cookie)
        self.assertEqual(response.code, 403, body)
        self.assertIn(b"alice is not an admin", body)
        old = self.upload_version("0.9")
        response, _ = self.request("POST", "/console/retention/apply", headers=cookie,
                                   data={"csrf": csrf, "index": "default", "files": [old]})
        self.assertEqual(response.code, 403)
        self.assertIsNotNone(self.index.get_file(old))


class AuditPageTests(_Console, SynchronousTestCase):
    """The audit log in the console (admins): GET /api/audit's entries, and its chains checked."""

    def test_entries_and_chains(self):
        cookie, csrf = self.log_in("dave")
        self.assertIn(b'href="../console/audit">Audit log</a>',
                      self.get("/console/", headers=cookie)[1])
        self.issue(cookie, csrf, description="for the audit page")
        response, page = self.get("/console/audit?event=token-issued", headers=cookie)
        self.assertEqual(response.code, 200, page)
        self.assertIn(b"<td>token-issued</td><td>ok</td><td>dave</td>", page)
        self.assertNotIn(b"<td>upload</td>", page)
        self.assertIn(b'value="token-issued"', page)
        response, page = self.get("/console/audit?verify=1", headers=cookie)
        self.assertEqual(response.code, 200, page)
        self.assertIn(b"every chain is intact.", page)
        self.assertIn(b"<td>upload</td>", page)

    def test_api_verify(self):
        response, body = self.get("/api/audit/verify", auth=basic("dave"))
        self.assertEqual(response.code, 200, body)
        check = json.loads(body)
        self.assertEqual((check["intact"], check["broken"]), (True, []))
        self.assertGreaterEqual(check["entries"], 1)
        self.assertEqual(self.get("/api/audit/verify", auth=basic("alice"))[0].code, 403)
        self.assertEqual(self.get("/api/audit/verify")[0].code, 401)

    def test_admins_only(self):
        cookie, _ = self.log_in("alice")
        response, body = self.get("/console/audit", headers=cookie)
        self.assertEqual(response.code, 403, body)
        self.assertNotIn(b"console/audit", self.get("/console/", headers=cookie)[1])


class ChartTests(SynchronousTestCase):
    """The downloads chart: pure SVG, one row a release, its numbers beside it."""

    def test_rows_and_numbers(self):
        releases = {f"{n}.0": [0] * 28 + [n, 2 * n] for n in range(1, 13)}
        newest = sorted(releases, key=lambda v: int(v.split(".")[0]), reverse=True)
        svg = console_project_page.downloads_chart(releases, "2026-01-01", newest)
        self.assertIn('<title id="chart-title">Downloads per release and per day, 2026-01-01 '
                      'to 2026-01-30</title>', svg)
        self.assertIn("<title>12.0, 2026-01-30: 24</title>", svg)
        # the two oldest releases summed as "older": 1+2 and 2+4
        self.assertIn("<title>older, 2026-01-29: 3</title>", svg)
        self.assertIn("<tr><td>older</td><td>9</td><td>9</td></tr>", svg)
        self.assertNotIn(">1.0<", svg)
        self.assertEqual(svg.count('class="bar"'), 11 * 2)

    def test_escaped_and_empty(self):
        svg = console_project_page.downloads_chart({"1.0<b>": [1]}, "2026-01-01", ["1.0<b>"])
        self.assertIn("1.0&lt;b&gt;", svg)
        self.assertNotIn("<b>", svg)
        self.assertIn("No downloads counted.",
                      console_project_page.downloads_chart({}, "2026-01-01", []))


class DownloadsTests(SynchronousTestCase):
    """A project's downloads by release and day: for admins and those who may change it."""

    def setUp(self):
        self.s = Server(self, registry=True, rules=(
            parse_rule("gadget", "user:alice rw, user:carol r", 0),))
        self.usage = UsageLog(self.s.stacks["default"].storage, self.s.clock, interval=10,
                              writer="web")
        self.s.web.app.usage._indexes.stacks["default"] = attrs.evolve(
            self.s.web.app.usage._indexes.stacks["default"], usage=self.usage)
        code, _, body = self.s.upload("/", "gadget", "1.0")
        self.assertEqual(code, 200, body)
        self.usage.startService()
        self.addCleanup(lambda: self.usage.running and self.usage.stopService())
        self.usage.count("gadget-1.0-py3-none-any.whl", "192.0.2.1")
        self.usage.count("gadget-1.0-py3-none-any.whl", "192.0.2.2")
        self.s.clock.advance(10)

    login = _NamedIndexes.login

    def test_api(self):
        code, _, body = self.s.request("GET", "/api/usage?project=Gadget", auth=basic("alice"))
        self.assertEqual(code, 200, body)
        data = json.loads(body)
        self.assertEqual((data["project"], data["days"], data["releases"]["1.0"][-1]),
                         ("gadget", 30, 2))
        self.assertEqual(len(data["releases"]["1.0"]), 30)
        self.assertEqual(self.s.request("GET", "/api/usage?project=gadget",
                                        auth=basic("root"))[0], 200)
        for user, code in (("carol", 404), (None, 401)):
            auth = basic(user) if user else None
            self.assertEqual(self.s.request("GET", "/api/usage?project=gadget",
                                            auth=auth)[0], code, user)
        self.assertEqual(self.s.request("GET", "/api/usage?project=nope",
                                        auth=basic("root"))[0], 404)

    def test_chart_on_the_page(self):
        cookie, _ = self.login("alice")
        code, _, page = self.s.request("GET", "/console/project/gadget/", headers=cookie)
        self.assertEqual(code, 200, page)
        self.assertIn(b"<h2>Downloads</h2>", page)
        self.assertIn(b"<tr><td>1.0</td><td>2</td><td>2</td></tr>", page)


class ProjectTrailTests(_NamedIndexes, SynchronousTestCase):
    """A project's audit trail: for whoever may change it, on its page and from the API."""

    def test_owner_reads_its_trail(self):
        code, _, body = self.s.request(
            "GET", "/api/audit?project=gadget&index=release", auth=basic("alice"))
        self.assertEqual(code, 200, body)
        self.assertEqual({(e["event"], e["project"]) for e in json.loads(body)["entries"]},
                         {("upload", "gadget")})
        for query in ("project=gadget", "index=release", "project=widget&index=secret",
                      "project=gadget&index=nosuch", "project=gadget&index=secret"):
            code, _, body = self.s.request("GET", f"/api/audit?{query}", auth=basic("alice"))
            self.assertEqual((code, body), (403, b"alice is not an admin (the admins are named in [auth] admins)\n"), query)
        code, _, _ = self.s.request("GET", "/api/audit?project=gadget&index=release",
                                    auth=self.s.scoped)
        self.assertEqual(code, 403)

    def test_on_the_page(self):
        cookie, csrf = self.login("alice")
        self.s.request("POST", "/console/project/gadget/files/gadget-1.0-py3-none-any.whl/"
                       "yank?index=release", headers=cookie,
                       data={"csrf": csrf, "reason": "oops"})
        code, _, page = self.s.request("GET", "/console/project/gadget/?index=release",
                                       headers=cookie)
        self.assertEqual(code, 200, page)
        self.assertIn(b"<h2>Audit trail</h2>", page)
        self.assertIn(b"<td>yank</td><td>ok</td><td>alice</td>", page)
        self.assertIn(b"<td>upload</td><td>ok</td><td>alice</td>", page)


class OwnersReadOnlyTheirsTests(_NamedIndexes, SynchronousTestCase):
    """After a hostile review: what owners read of their projects, and nothing more."""

    def test_trail_fields(self):
        """An owner's trail has no one's address, token or source index; an admin's has."""
        code, _, body = self.s.request("GET", "/api/audit?project=gadget&index=release",
                                       auth=basic("alice"))
        (entry,) = json.loads(body)["entries"]
        self.assertNotIn("address", entry)
        self.assertNotIn("target", entry)
        code, _, body = self.s.request("GET", "/api/audit?project=gadget&index=release",
                                       auth=basic("root"))
        self.assertIn("address", json.loads(body)["entries"][0])

    def test_write_without_read(self):
        """Who may change a project but not read it reads neither its trail nor its downloads."""
        s = Server(self, registry=True, default_read=("user:carol",))
        code, _, body = s.upload("/", "widget", "1.0", auth=basic("carol"))
        self.assertEqual(code, 200, body)
        for path in ("/api/audit?project=widget&index=default",
                     "/api/usage?project=widget"):
            code, _, body = s.request("GET", path, auth=basic("alice"))
            self.assertIn(code, (403, 404), (path, body))
        code, _, _ = s.request("GET", "/api/usage?project=widget&index=secret",
                               auth=basic("alice"))
        self.assertEqual(code, 404)

    def test_console_forms_only(self):
        cookie, csrf = self.login("alice")
        # a JSON body naming its own index and project: refused
        code, _, body = self.s.request(
            "POST", f"/console/project/gadget/promote?index=release&csrf={csrf}",
            headers={**cookie, "Content-Type": "application/json"},
            data=json.dumps({"from": "secret", "to": "staging", "project": "widget",
                             "version": "1.0"}).encode())
        self.assertEqual(code, 403, body)
        # the CSRF token is read from the body alone, never the URL
        code, _, body = self.s.request(
            "POST", f"/console/project/gadget/files/gadget-1.0-py3-none-any.whl/yank"
            f"?index=release&csrf={csrf}", headers=cookie, data={"reason": "x"})
        self.assertEqual(code, 403, body)
        code, _, body = self.s.request(
            "POST", "/console/project/gadget/promote?index=release",
            headers={**cookie, "Content-Type": "application/json"},
            data=json.dumps({"csrf": csrf}).encode())
        self.assertEqual(code, 403, body)

    def test_admin_audit_page(self):
        cookie, _ = self.login("alice")
        code, _, body = self.s.request("GET", "/console/audit?project=gadget&index=release",
                                       headers=cookie)
        self.assertEqual((code, body), (403, b"alice is not an admin (the admins are named in [auth] admins)\n"))


class StrictFormsTests(RetainedIndex, _Console, SynchronousTestCase):
    """A form is held to what its JSON would be."""

    def test_retention_form_lists_its_files(self):
        cookie, csrf = self.log_in("dave")
        old = self.upload_version("0.9")
        for fields, words in (({"index": "default"}, b"files: a form lists the files"),
                              ({"files": [old]}, b"index: the name of a hosted index")):
            response, body = self.request("POST", "/console/retention/apply", headers=cookie,
                                          data={"csrf": csrf, **fields})
            self.assertEqual(response.code, 400, body)
            self.assertIn(words, body)
        self.assertIsNotNone(self.index.get_file(old))


class RecycleBinPageTests(RetainedIndex, _Console, SynchronousTestCase):
    """The recycle bin in the console (admins): GET /api/recycle-bin's files, each restorable."""

    def test_listed_and_restored(self):
        old = self.upload_version("0.9")
        response, body = self.request("DELETE", f"/api/files/{old}", auth=basic("dave"))
        self.assertEqual(response.code, 200, body)
        cookie, csrf = self.log_in("dave")
        response, page = self.get("/console/recycle-bin", headers=cookie)
        self.assertEqual(response.code, 200, page)
        self.assertIn(f"<code>{old}</code>".encode(), page)
        action = re.search(rb'action="([^"]*/restore)"', page).group(1).decode()
        self.assertEqual(action, f"../console/project/holy-grail/files/{old}/restore")
        response, _ = self.request("POST", "/console/" + action[len("../console/"):],
                                   headers=cookie, data={"csrf": csrf})
        self.assertEqual(response.code, 303)
        self.assertIsNotNone(self.index.get_file(old))
        self.assertIn(b"The recycle bin is empty.",
                      self.get("/console/recycle-bin", headers=cookie)[1])

    def test_refusals(self):
        cookie, _ = self.log_in("alice")
        self.assertEqual(self.get("/console/recycle-bin", headers=cookie)[0].code, 403)
        cookie, _ = self.log_in("dave")
        response, body = self.get("/console/recycle-bin?index=nope", headers=cookie)
        self.assertEqual(response.code, 404, body)


class GroupsPageTests(_Console, SynchronousTestCase):
    """Who is in which group, as configured: GET /api/groups and the console's page (admins)."""

    def access_model(self):
        return AccessModel(read="everyone", admins=frozenset({"dave"}),
                           admin_groups=frozenset({"pypi-admins"}),
                           groups={"qa": frozenset({"alice", "eve"})},
                           rules=(parse_rule("holy-grail", "group:qa rw, group:dev r", 0),))

    def test_api(self):
        response, body = self.get("/api/groups", auth=basic("dave"))
        self.assertEqual(response.code, 200, body)
        self.assertEqual(json.loads(body), {
            "groups": {"qa": ["alice", "eve"]}, "admins": ["dave"],
            "admin_groups": ["pypi-admins"], "outside_groups": ["dev", "pypi-admins"]})
        self.assertEqual(self.get("/api/groups", auth=basic("alice"))[0].code, 403)
        self.assertEqual(self.get("/api/groups")[0].code, 401)

    def test_page(self):
        cookie, _ = self.log_in("dave")
        response, page = self.get("/console/groups", headers=cookie)
        self.assertEqual(response.code, 200, page)
        self.assertIn(b"<td>qa</td><td>alice, eve</td>", page)
        self.assertIn(b"<p>dave, group:pypi-admins</p>", page)
        self.assertIn(b"fill at each login: dev, pypi-admins.", page)
        cookie, _ = self.log_in("alice")
        self.assertEqual(self.get("/console/groups", headers=cookie)[0].code, 403)


class DirectoryDemotionTests(_Console, SynchronousTestCase):
    """
    Issue 59, finding 6: a directory admin demoted in the directory kept
    admin in the console for the session's life; now a directory user's
    session reads their groups again once the directory's C{cache_ttl}
    passed, and ends when the directory no longer has them.
    """

    def access_model(self):
        return AccessModel(read="everyone", admins=frozenset({"dave"}),
                           admin_groups=frozenset({"pypi-admins"}))

    def test_rights_follow_the_directory(self):
        self.directory.people["zed", "zed-pw"] = frozenset({"pypi-admins"})
        cookie, _ = self.log_in("zed", "zed-pw")
        self.assertEqual(self.get("/console/groups", headers=cookie)[0].code, 200)
        self.directory.people["zed", "zed-pw"] = frozenset({"dev"})
        self.clock.advance(self.directory.cache_ttl - 1)
        self.assertEqual(self.get("/console/groups", headers=cookie)[0].code, 200)
        self.clock.advance(1)
        self.assertEqual(self.get("/console/groups", headers=cookie)[0].code, 403)
        (session,) = self.sessions.book.sessions.values()
        self.assertEqual(session.groups, {"dev"})
        # (while the directory cannot be asked: no directory group at all)
        self.directory.people["zed", "zed-pw"] = frozenset({"pypi-admins"})
        self.directory.down = True
        self.clock.advance(self.directory.cache_ttl)
        self.assertEqual(self.get("/console/groups", headers=cookie)[0].code, 403)
        self.directory.down = False
        self.assertEqual(self.get("/console/groups", headers=cookie)[0].code, 200)
        # (gone from the directory: the session ends)
        del self.directory.people["zed", "zed-pw"]
        self.clock.advance(self.directory.cache_ttl)
        response, _ = self.get("/console/groups", headers=cookie)
        self.assertNotEqual(response.code, 200)
        self.assertEqual(self.sessions.book.sessions, {})
