"""
Single sign-on end to end (issue 44): the real daemon, a real OpenID
provider (Django with django-oidc-provider over HTTPS,
L{tests.harness.oidc_provider}), and a person in real Chromium who clicks "Log in
with Corp", signs in at the provider's own form, and comes back to pypid
logged in, with the provider's groups applied by C{[acl]}. Then the
hostile cases, each against the real provider: a forged C{state}, a
replayed callback and a replayed code, ID tokens the provider signs for
another audience, with another nonce or already expired, a local user's
name, an idle session that ends, a reload that no longer lets a group
in, and a provider that is down.

The browser trusts the provider's test certificate without checking it
(C{ignore_https_errors}); pypid checks it, with C{[sso] ca_bundle}.
"""

import atexit
import json
import os
import signal
import time
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

from tests.harness.browser import BrowserTestCase, artifacts_dir
from tests.harness.console import audit_events, token_round_trip
from tests.harness.distributions import make_wheel
from tests.harness.e2e import PASSWORD as USER_PASSWORD
from tests.harness.e2e import USER, DaemonTestCase, free_port, http, upload
from tests.harness.e2e import with_cookie as get
from tests.harness.oidc_provider import CLIENT_ID, CLIENT_SECRET, PASSWORD, OpenIDProvider

PRIVATE = make_wheel("platform-lib", "1.0")
OPEN = make_wheel("open-lib", "1.0")

_started = []


def provider():
    """The provider, started once for the process (stopped at exit)."""
    if not _started:
        started = OpenIDProvider(os.path.abspath("sso-provider")).start()
        atexit.register(started.stop)
        _started.append(started)
    return _started[0]


def sso_section(op, secret_path, allow="*"):
    """The C{[sso]} section for C{op}, its secret in C{secret_path}."""
    with open(secret_path, "w", encoding="utf-8") as f:
        f.write(CLIENT_SECRET + "\n")
    return (f"[sso]\nissuer = {op.issuer}\nclient_id = {CLIENT_ID}\n"
            f"client_secret_file = {secret_path}\nca_bundle = {op.ca_path}\n"
            f"label = Corp\nscopes = openid profile email groups\nallow = {allow}\n")


class _SSO(BrowserTestCase, DaemonTestCase):
    """A daemon of authenticated reads whose people log in through the provider."""

    acl = ("[acl]\nplatform-lib = group:platform r, user:uploader rw\n"
           "open-lib = group:platform rw, authenticated r, user:uploader rw\n")
    allow = "*"
    idle = "30m"
    #: more settings of the daemon (a machine of several workers)
    machine = {}

    def start_daemon(self, allow=None):
        op = provider()
        daemon = self.new_daemon(settings={"auth.read": "authenticated",
                                           "auth.session_idle": self.idle,
                                           "auth.admins": USER,
                                           "retention.recycle_bin": "7d", **self.machine},
                                 start=False)
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write(self.acl + sso_section(op, os.path.join(daemon.directory, "sso-secret"),
                                           allow or self.allow))
        daemon.start()
        op.register([daemon.url + "login/sso/callback"])
        for wheel in (PRIVATE, OPEN):
            self.assertEqual(upload(daemon, *wheel).status, 200)
        return daemon

    def person(self):
        """A new browser (its own cookies: another person)."""
        return self.open_page(ignore_https_errors=True)

    def sign_in(self, page, daemon, name, start="project/platform-lib/"):
        """
        Open C{start} as a person would, follow pypid to the provider, sign
        in there as C{name} (unless the provider remembers them); return
        the callback's URL and status.
        """
        seen = []

        def callback(response):
            if "/login/sso/callback" in response.url:
                seen.append((response.url, response.status))
        page.page.on("response", callback)
        try:
            page.goto(daemon.url + start)
            with page.page.expect_navigation():
                page.page.get_by_role("link", name="Log in with Corp").click()
            if "/accounts/login/" in page.page.url:
                page.page.fill("#id_username", name)
                page.page.fill("#id_password", PASSWORD)
                with page.page.expect_navigation():
                    page.page.click("button[type=submit]")
        finally:
            page.page.remove_listener("response", callback)
        return seen[-1] if seen else (None, None)

    def session_cookie(self, page):
        found = [f"{c['name']}={c['value']}" for c in page.page.context.cookies()
                 if c["name"] == "pypid-session"]
        return found[0] if found else None

    def reason(self, page):
        return page.page.inner_text("#login-error")


class LoginTests(_SSO):
    """Logging in, the groups, logging out; refusals that are the provider's or ours."""

    def test_login_groups_logout(self):
        daemon = self.start_daemon()
        alice = self.person()
        url, status = self.sign_in(alice, daemon, "alice")
        self.assertEqual(status, 303)
        self.assertEqual(alice.page.url, daemon.url + "project/platform-lib/")
        self.assertIn("platform-lib", alice.page.title())
        self.assertEqual(alice.page.inner_text("header .person"), "alice")
        cookies = {c["name"]: c for c in alice.page.context.cookies()}
        session = cookies["pypid-session"]
        self.assertEqual((session["httpOnly"], session["sameSite"], session["path"]),
                         (True, "Lax", "/"))
        self.assertNotIn("pypid-sso", cookies)
        cookie = self.session_cookie(alice)
        self.assertEqual(get(daemon.url + "project/platform-lib/", cookie)[0], 200)
        self.assertEqual(get(daemon.url + "simple/platform-lib/", cookie)[0], 401)
        daemon.wait_for_log(b"alice logged in to the pages through single sign-on")
        # bob is staff, not platform: [acl] hides the project from him
        bob = self.person()
        self.sign_in(bob, daemon, "bob", start="project/open-lib/")
        self.assertEqual(bob.page.inner_text("header .person"), "bob")
        self.assertEqual(get(daemon.url + "project/open-lib/", self.session_cookie(bob))[0],
                         200)
        self.assertEqual(get(daemon.url + "project/platform-lib/",
                             self.session_cookie(bob))[0], 404)
        # alice logs out through the header's link
        alice.page.get_by_role("link", name="Log out").click()
        alice.page.wait_for_url(daemon.url + "logout")
        alice.page.click("button[type=submit]")
        alice.page.wait_for_url(lambda url: not url.endswith("/logout"))
        self.assertIsNone(self.session_cookie(alice))
        self.assertEqual(get(daemon.url + "project/platform-lib/", cookie)[0], 401)
        self.assert_clean(alice, allow=("401",))

    def test_forged_state_and_replays(self):
        daemon = self.start_daemon()
        page = self.person()
        # a callback pypid never started
        response = page.goto(daemon.url + "login/sso/callback?state=forged&code=x")
        self.assertEqual(response.status, 400)
        self.assertIn("not one this server started", self.reason(page))
        # the same callback twice: the second is refused
        url, status = self.sign_in(page, daemon, "alice")
        self.assertEqual(status, 303)
        replay = self.person()
        response = replay.goto(url)
        self.assertEqual(response.status, 400)
        self.assertIn("not one this server started, or it was already used",
                      self.reason(replay))
        response = page.goto(url)
        self.assertEqual(response.status, 400)
        # the old code with a new login's state: the provider refuses it
        old_code = parse_qs(urlsplit(url).query)["code"][0]
        fresh = self.person()
        fresh.goto(daemon.url + "login/sso")
        self.assertIn("/accounts/login/", fresh.page.url)
        authorize = parse_qs(urlsplit(fresh.page.url).query)["next"][0]
        state = parse_qs(urlsplit(authorize).query)["state"][0]
        response = fresh.goto(daemon.url + "login/sso/callback?" + urlencode(
            {"state": state, "code": old_code}))
        self.assertEqual(response.status, 400)
        self.assertIn("invalid_grant", self.reason(fresh))
        self.assertIsNone(self.session_cookie(fresh))
        self.assert_clean(fresh, allow=("400",))

    def test_hostile_provider(self):
        """ID tokens the real provider signs, but not for this login or not for pypid."""
        daemon = self.start_daemon()
        op = provider()
        page = self.person()
        try:
            for mode, words in (("audience", "meant for another application"),
                                ("nonce", "not for this sign-in"),
                                ("expired", "expired")):
                op.misbehave(mode)
                _, status = self.sign_in(page, daemon, "alice")
                self.assertEqual(status, 400, mode)
                self.assertIn(words, self.reason(page), mode)
                self.assertIsNone(self.session_cookie(page), mode)
        finally:
            op.misbehave("")
        _, status = self.sign_in(page, daemon, "alice")
        self.assertEqual(status, 303)

    def test_local_name(self):
        """The provider's person named like pypid's own user is refused."""
        daemon = self.start_daemon()
        page = self.person()
        _, status = self.sign_in(page, daemon, USER)
        self.assertEqual(status, 403)
        self.assertIn(f"{USER} is the name of a user of this server", self.reason(page))
        self.assertIsNone(self.session_cookie(page))


class WorkersTests(_SSO):
    """A machine of two workers: a login begun on one finishes on the other, once."""

    machine = {"pypid.workers": "2"}

    def test_across_workers(self):
        """
        Each sign-in's callback comes on a new connection (to either
        worker, about half of the times not the one that began it): every
        one logs in, its session valid on both, and a callback sent again
        is refused by both.
        """
        daemon = self.start_daemon()
        for attempt in range(6):
            page = self.person()
            callbacks = []
            page.page.route("**/accounts/login/**", _callback_caught(page.page, callbacks))
            self.sign_in(page, daemon, "alice")
            [callback] = callbacks
            binding = [f"{c['name']}={c['value']}" for c in page.page.context.cookies()
                       if c["name"] == "pypid-sso"]
            answer = http("GET", callback, {"Cookie": binding[0]})
            self.assertEqual(answer.status, 303, (attempt, answer.body[:300]))
            [cookie] = [value.split(";")[0] for value in answer.headers.get_all("Set-Cookie")
                        if value.startswith("pypid-session=")]
            for _ in range(4):
                self.assertEqual(get(daemon.url + "project/platform-lib/", cookie)[0], 200)
            for _ in range(4):
                again = http("GET", callback, {"Cookie": binding[0]})
                self.assertEqual(again.status, 400, attempt)


def _callback_caught(page, callbacks):
    """
    A route of the provider's login form: once sent, its redirects are
    followed here up to pypid's callback, whose URL is kept in
    C{callbacks}; the browser is not sent there.
    """
    def catch(route):
        if route.request.method != "POST":
            route.continue_()
            return
        response = route.fetch(max_redirects=0)
        url = route.request.url
        while "/login/sso/callback" not in response.headers.get("location", url):
            url = urljoin(url, response.headers["location"])
            response = page.context.request.get(url, max_redirects=0)
        callbacks.append(urljoin(url, response.headers["location"]))
        route.fulfill(status=200, body="caught")
    return catch


class ConsoleTests(_SSO):
    """A person of single sign-on manages their tokens in the console."""

    def test_tokens(self):
        daemon = self.start_daemon()
        alice = self.person()
        self.sign_in(alice, daemon, "alice", start="project/open-lib/")
        token_round_trip(self, alice, daemon, "alice", (USER, USER_PASSWORD),
                         "simple/platform-lib/", screenshot="console-tokens")
        # (the provider's own pages ask for a favicon it does not have)
        self.assert_clean(alice, allow=("401", "favicon.ico"))


class ConsoleProjectTests(_SSO):
    """A person of single sign-on yanks, deletes and restores a file in the console."""

    def test_yank_delete_restore(self):
        daemon = self.start_daemon()
        alice = self.person()
        self.sign_in(alice, daemon, "alice", start="project/open-lib/")
        filename = OPEN[0]
        alice.goto(daemon.url + "console/")
        alice.page.fill("#project", "Open_Lib")
        with alice.page.expect_navigation():
            alice.page.get_by_role("button", name="Manage").click()
        self.assertTrue(alice.page.url.endswith("/console/project/open-lib/"), alice.page.url)
        alice.page.fill(f"#reason-{filename.replace('.', chr(92) + '.')}", "broken build")
        with alice.page.expect_navigation():
            alice.page.get_by_role("button", name=f"Yank {filename}").click()
        self.assertIn("yanked: broken build", alice.page.inner_text("main"))
        self.screenshot(alice, "console-project")
        admin = (USER, USER_PASSWORD)
        files = json.loads(http("GET", daemon.url + "pypi/open-lib/json", auth=admin).body)
        self.assertEqual([(f["yanked"], f["yanked_reason"]) for f in files["urls"]],
                         [(True, "broken build")])
        with alice.page.expect_navigation():
            alice.page.get_by_role("button", name=f"Delete {filename}").click()
        self.assertEqual(http("GET", daemon.url + "simple/open-lib/", auth=admin).body.count(
            filename.encode()), 0)
        with alice.page.expect_navigation():
            alice.page.get_by_role("button", name=f"Restore {filename}").click()
        self.assertIn(filename.encode(),
                      http("GET", daemon.url + "simple/open-lib/", auth=admin).body)
        events = audit_events(daemon, admin, "yank") + audit_events(daemon, admin, "delete") \
            + audit_events(daemon, admin, "restore")
        self.assertEqual(sorted((e["event"], e["user"], e["outcome"]) for e in events),
                         [("delete", "alice", "ok"), ("restore", "alice", "ok"),
                          ("yank", "alice", "ok")])
        self.assert_clean(alice, allow=("401", "favicon.ico"))

    def screenshot(self, page, name):
        for scheme in ("light", "dark"):
            page.page.emulate_media(color_scheme=scheme)
            page.page.screenshot(path=f"{artifacts_dir()}/{name}-{scheme}.png", full_page=True)
        page.page.emulate_media(color_scheme="light")


class ReloadTests(_SSO):
    """At SIGHUP, a group that [sso] allow no longer names loses its sessions."""

    def test_group_leaves(self):
        daemon = self.start_daemon(allow="group:staff")
        cookies = {}
        for name in ("alice", "bob"):
            page = self.person()
            self.sign_in(page, daemon, name, start="project/open-lib/")
            cookies[name] = self.session_cookie(page)
        eve = self.person()
        self.sign_in(eve, daemon, "eve", start="project/open-lib/")
        self.assertIn("[sso] allow", self.reason(eve))
        with open(daemon.config_path, encoding="utf-8") as f:
            text = f.read()
        with open(daemon.config_path, "w", encoding="utf-8") as f:
            f.write(text.replace("allow = group:staff", "allow = group:platform"))
        os.kill(daemon.pid, signal.SIGHUP)
        daemon.wait_for_log(b"1 browser session ended")
        self.assertEqual(get(daemon.url, cookies["alice"])[0], 200)
        self.assertEqual(get(daemon.url, cookies["bob"])[0], 401)


class IdleTests(_SSO):
    """A session of single sign-on ends when unused for [auth] session_idle."""

    idle = "4s"

    def test_idle(self):
        daemon = self.start_daemon()
        page = self.person()
        self.sign_in(page, daemon, "alice", start="project/open-lib/")
        used = time.monotonic()
        cookie = self.session_cookie(page)
        self.assertIsNotNone(cookie)
        time.sleep(max(0.0, used + 5 - time.monotonic()))
        self.assertEqual(get(daemon.url, cookie)[0], 401)
        # the browser is sent to log in again
        page.goto(daemon.url + "project/open-lib/")
        self.assertTrue(page.page.url.startswith(daemon.url + "login?next="))


class ProviderDownTests(BrowserTestCase, DaemonTestCase):
    """A provider nobody answers for: a page that says so, never a 500."""

    def test_down(self):
        op = provider()
        daemon = self.new_daemon(start=False)
        port = free_port()
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write(sso_section(op, os.path.join(daemon.directory, "sso-secret")).replace(
                op.issuer, f"https://127.0.0.1:{port}/openid"))
        daemon.start()
        page = self.open_page(daemon.url + "login")
        page.page.get_by_role("link", name="Log in with Corp").click()
        page.page.wait_for_selector("#login-error")
        self.assertIn("/login/sso", page.page.url)
        self.assertIn("cannot be reached now", page.page.inner_text("#login-error"))
        response = page.goto(daemon.url + "login/sso")
        self.assertEqual(response.status, 503)
        # the password form on that page still logs in
        self.assertTrue(page.page.is_visible("#password"))
        self.assertNotIn(b"Traceback", daemon.log_since_start())
