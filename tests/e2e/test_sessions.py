"""
Browser sessions in real Chromium against the real daemon (issue 44): a
person logs in through the form of a closed index, reads its pages, and
logs out; the cookie is what the issue asks; the session survives a
restart; and it never stands for anyone on the simple API.
"""

import os
import signal

from tests.harness.browser import BrowserTestCase
from tests.harness.distributions import make_wheel
from tests.harness.e2e import PASSWORD, USER, DaemonTestCase, form_login, password_hash, upload
from tests.harness.e2e import with_cookie as get

WHEEL = make_wheel("internal-pkg", "1.0")


class ReloadTests(DaemonTestCase):
    """At SIGHUP, the sessions of a removed user, or of a changed password, end."""

    def test_removed_and_changed(self):
        users = {USER: PASSWORD, "bob": "bob-pw", "carol": "carol-pw"}
        daemon = self.new_daemon(settings={"auth.read": "authenticated"}, users=users)
        cookies = {name: form_login(daemon.url, name, password)
                   for name, password in users.items()}
        for cookie in cookies.values():
            self.assertEqual(get(daemon.url, cookie)[0], 200)
        with open(daemon.config_path) as f:
            text = f.read()
        text = text.replace(f"bob = {text.split('bob = ')[1].splitlines()[0]}\n", "")
        carol = text.split("carol = ")[1].splitlines()[0]
        text = text.replace(carol, password_hash("carol-new"))
        with open(daemon.config_path, "w") as f:
            f.write(text)
        os.kill(daemon.pid, signal.SIGHUP)
        daemon.wait_for_log(b"2 browser sessions ended")
        self.assertEqual(get(daemon.url, cookies[USER])[0], 200)
        self.assertEqual(get(daemon.url, cookies["bob"])[0], 401)
        self.assertEqual(get(daemon.url, cookies["carol"])[0], 401)


class SessionTests(BrowserTestCase, DaemonTestCase):
    """Reads for authenticated users only: the form is the way in for a person."""

    settings = {"auth.read": "authenticated"}

    def prepare(self, daemon):
        self.assertEqual(upload(daemon, *WHEEL).status, 200)

    def log_in(self, page, password=PASSWORD):
        page.goto(self.daemon.url + "login?next=/project/internal-pkg/")
        page.page.fill("#user", USER)
        page.page.fill("#password", password)
        page.page.click("button[type=submit]")

    def test_log_in_read_log_out(self):
        page = self.open_page()
        self.log_in(page)
        page.page.wait_for_url(self.daemon.url + "project/internal-pkg/")
        self.assertIn("internal-pkg", page.page.title())
        cookies = page.page.context.cookies()
        self.assertEqual([(c["name"], c["httpOnly"], c["sameSite"], c["path"]) for c in cookies],
                         [("pypid-session", True, "Lax", "/")])
        cookie = f"{cookies[0]['name']}={cookies[0]['value']}"
        # The pages read as the person; the simple API never takes the cookie.
        self.assertEqual(get(self.daemon.url, cookie)[0], 200)
        self.assertEqual(get(self.daemon.url)[0], 401)
        self.assertEqual(get(self.daemon.url + "simple/", cookie)[0], 401)
        # The header names the person, and its link leads to the logout form.
        self.assertEqual(page.page.inner_text("header .person"), USER)
        page.page.get_by_role("link", name="Log out").click()
        page.page.wait_for_url(self.daemon.url + "logout")
        self.assertIn(f"logged in as {USER}", page.page.inner_text("main"))
        page.page.click("button[type=submit]")
        page.page.wait_for_url(lambda url: not url.endswith("/logout"))
        self.assertEqual(page.page.context.cookies(), [])
        self.assertEqual(get(self.daemon.url, cookie)[0], 401)
        self.assert_clean(page, allow=("401",))

    def test_wrong_password(self):
        """The form again, with why, and no prompt of the browser's own."""
        page = self.open_page()
        self.log_in(page, password="nope")
        page.page.wait_for_selector("#login-error")
        self.assertIn("not right", page.page.inner_text("#login-error"))
        self.assertEqual(page.page.input_value("#user"), USER)
        self.assertEqual(page.page.context.cookies(), [])

    def test_survives_restart(self):
        """A session opened before a restart is still open after it."""
        daemon = self.new_daemon(settings={"auth.read": "authenticated"})
        page = self.open_page()
        page.goto(daemon.url + "login")
        page.page.fill("#user", USER)
        page.page.fill("#password", PASSWORD)
        page.page.click("button[type=submit]")
        page.page.wait_for_url(daemon.url)
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.page.context.cookies())
        daemon.stop()
        daemon.start()
        self.assertEqual(get(daemon.url, cookie)[0], 200)
