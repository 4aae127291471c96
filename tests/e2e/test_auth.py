"""
End-to-end tests of authentication: who may upload, yank and delete, and
a private index whose every read needs credentials.
"""

import datetime
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from urllib.parse import urlencode

from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
    PASSWORD,
    USER,
    DaemonTestCase,
    clean_env,
    files_by_name,
    form,
    http,
    installed,
    upload,
)

CHALLENGE = 'Basic realm="pypid"'


class UploadAuthTests(DaemonTestCase):
    """Who may upload: HTTP Basic on the upload URL."""

    def test_upload_without_credentials_is_401(self):
        """An anonymous upload answers 401 with a Basic challenge and stores nothing."""
        wheel = make_wheel("anonymous", "1.0")
        for path in ("", "legacy/"):
            resp = upload(self.daemon, *wheel, auth=None, path=path)
            self.assertEqual(resp.status, 401, path)
            self.assertEqual(resp.header("WWW-Authenticate"), CHALLENGE)
        self.assertEqual(http("GET", self.daemon.index_url + "anonymous/").status, 404)
        self.assertNotIn(wheel[0], self.daemon.stored_names())
        self.assertEqual(self.daemon.temp_files(), [])

    def test_upload_with_wrong_password_is_401(self):
        """A wrong password or an unknown user answers 401, and twine reports the failure."""
        wheel = make_wheel("wrong-password", "1.0")
        for auth in ((USER, PASSWORD + "x"), ("nobody", PASSWORD)):
            resp = upload(self.daemon, *wheel, auth=auth)
            self.assertEqual(resp.status, 401, auth)
            self.assertEqual(resp.header("WWW-Authenticate"), CHALLENGE)
        done = self.clients.twine_upload(self.daemon, self.dist_dir(wheel),
                                         password="not-the-password", check=False)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("401", done.output)
        self.assertEqual(http("GET", self.daemon.index_url + "wrong-password/").status, 404)
        self.assertNotIn(wheel[0], self.daemon.stored_names())
        self.assertEqual(self.daemon.temp_files(), [])
        log = self.daemon.log_text()
        for secret in (PASSWORD, PASSWORD + "x", "not-the-password"):
            self.assertNotIn(secret, log)

    def test_yank_and_delete_need_credentials(self):
        """Yank and delete answer 401 to anonymous requests and wrong passwords, and change nothing."""
        wheel = make_wheel("guarded", "1.0")
        self.assertEqual(upload(self.daemon, *wheel).status, 200)
        base = f"{self.daemon.url}api/files/{wheel[0]}"
        for auth in (None, (USER, "wrong")):
            for method, url in (("POST", base + "/yank"), ("DELETE", base),
                                ("POST", f"{self.daemon.url}api/projects/guarded/1.0/yank")):
                resp = http(method, url, auth=auth)
                self.assertEqual(resp.status, 401, (method, url, auth))
                self.assertEqual(resp.header("WWW-Authenticate"), CHALLENGE)
        entry = files_by_name(self.daemon, "guarded")[wheel[0]]
        self.assertIs(entry["yanked"], False)
        self.assertEqual(http("GET", f"{self.daemon.url}files/guarded/{wheel[0]}").body, wheel[1])


class PrivateIndexTests(DaemonTestCase):
    """An index with C{[auth] read = authenticated}."""

    settings = {"auth.read": "authenticated"}
    WHEEL = make_wheel("private-pkg", "1.0")

    def prepare(self, daemon):
        resp = upload(daemon, *self.WHEEL)
        self.assertEqual(resp.status, 200, resp.body)

    def read_urls(self):
        """Every kind of read URL of the hosted file."""
        url, name = self.daemon.url, self.WHEEL[0]
        return [
            url + "simple/",
            url + "simple/private-pkg/",
            f"{url}files/private-pkg/{name}",
            f"{url}files/private-pkg/{name}.metadata",
            url + "pypi/private-pkg/json",
        ]

    def test_anonymous_reads_are_401(self):
        """Every read without credentials, or with wrong ones, answers 401 with a Basic challenge."""
        for url in self.read_urls():
            for auth in (None, (USER, "wrong"), ("nobody", PASSWORD)):
                resp = http("GET", url, auth=auth)
                self.assertEqual(resp.status, 401, (url, auth))
                self.assertEqual(resp.header("WWW-Authenticate"), CHALLENGE, url)
                self.assertNotIn(b"private-pkg", resp.body)
        # Unknown names are not told apart from known ones.
        resp = http("GET", self.daemon.url + "simple/no-such-project/")
        self.assertEqual(resp.status, 401)

    def test_reads_with_credentials(self):
        """Every read with the right credentials answers 200."""
        for url in self.read_urls():
            resp = http("GET", url, auth=(USER, PASSWORD))
            self.assertEqual(resp.status, 200, url)
        got = http("GET", f"{self.daemon.url}files/private-pkg/{self.WHEEL[0]}",
                   auth=(USER, PASSWORD))
        self.assertEqual(got.body, self.WHEEL[1])

    def test_pip_install_with_credentials_in_url(self):
        """pip installs from the private index with credentials in the index URL, and fails without them."""
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.daemon.authed_index_url(), "private-pkg")
        self.assertEqual(installed(target), {"private-pkg": "1.0"})
        refused = self.clients.pip_install(os.path.abspath(self.mktemp()),
                                           self.daemon.index_url, "private-pkg", check=False)
        self.assertNotEqual(refused.returncode, 0)

    def test_uv_install_with_credentials_in_url(self):
        """uv installs from the private index with credentials in the index URL."""
        target = os.path.abspath(self.mktemp())
        self.clients.uv_install(target, self.daemon.authed_index_url(), "private-pkg")
        self.assertEqual(installed(target), {"private-pkg": "1.0"})

    def test_health_is_open(self):
        """C{/health} answers without credentials, for probes."""
        resp = http("GET", self.daemon.url + "health")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json()["status"], "ok")


class OpenIndexCredentialTests(DaemonTestCase):
    """
    An index anyone reads still checks the credentials that are sent:
    wrong ones get 401, so a client learns that its password or token went
    bad rather than reading on as anonymous.
    """

    users = {USER: PASSWORD, "root": "root-pw"}
    settings = {"auth.admins": "root", "auth.read": "everyone"}
    WHEEL = make_wheel("open-pkg", "1.0")

    def prepare(self, daemon):
        resp = upload(daemon, *self.WHEEL)
        self.assertEqual(resp.status, 200, resp.body)

    def wrong_credentials(self):
        """A revoked token, a made-up one, a wrong password and an unknown user."""
        headers, body = form(actions="read")
        issued = http("POST", self.daemon.url + "api/tokens", headers, body,
                      auth=("root", "root-pw")).json()
        gone = http("DELETE", self.daemon.url + f"api/tokens/{issued['id']}",
                    auth=("root", "root-pw"))
        self.assertEqual(gone.status, 200, gone.body)
        return [("__token__", issued["token"]), ("__token__", "pypid-made-up"),
                (USER, PASSWORD + "x"), ("nobody", PASSWORD)]

    def test_wrong_credentials_are_401(self):
        """Each kind of wrong credentials gets 401 on every read; none gets 200; good ones do."""
        url, name = self.daemon.url, self.WHEEL[0]
        reads = [url + "simple/", url + "simple/open-pkg/", f"{url}files/open-pkg/{name}",
                 url + "pypi/open-pkg/json", url]
        for auth in self.wrong_credentials():
            for read in reads:
                resp = http("GET", read, auth=auth)
                self.assertEqual(resp.status, 401, (read, auth))
                self.assertEqual(resp.header("WWW-Authenticate"), CHALLENGE, read)
        for read in reads:
            self.assertEqual(http("GET", read).status, 200, read)
            self.assertEqual(http("GET", read, auth=(USER, PASSWORD)).status, 200, read)

    def test_pip_and_uv_learn_of_it(self):
        """pip and uv fail with the 401 when the credentials in the index URL are wrong."""
        bad = self.daemon.authed_index_url(USER, "not-the-password")
        done = self.clients.pip_install(os.path.abspath(self.mktemp()), bad, "open-pkg",
                                        check=False)
        self.assertNotEqual(done.returncode, 0, done.output)
        self.assertIn("401", done.output)
        done = self.clients.uv_install(os.path.abspath(self.mktemp()), bad, "open-pkg",
                                       check=False)
        self.assertNotEqual(done.returncode, 0, done.output)
        self.assertIn("401", done.output)
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.daemon.authed_index_url(), "open-pkg")
        self.assertEqual(installed(target), {"open-pkg": "1.0"})


class ThrottleTests(DaemonTestCase):
    """Repeated failed logins for one user from one address are throttled."""

    users = {USER: PASSWORD, "other": "other-password"}

    def test_throttled_after_failures(self):
        """Ten wrong passwords, then 429 with Retry-After for that user only."""
        wheel = make_wheel("throttled", "1.0")
        for attempt in range(10):
            self.assertEqual(upload(self.daemon, *wheel, auth=(USER, "guess")).status, 401,
                             attempt)
        answer = upload(self.daemon, *wheel, auth=(USER, PASSWORD))
        self.assertEqual(answer.status, 429)
        self.assertTrue(int(answer.header("retry-after")) > 0)
        other = upload(self.daemon, *wheel, auth=("other", "other-password"))
        self.assertEqual(other.status, 200)
        self.assertNotIn("guess", self.daemon.log_text())

    def test_password_reset_ends_the_lock_out(self):
        """
        An admin's reset (pypid-passwd, the hash in the file, SIGHUP) lets
        the user in at once with the new password: it was refused with 429
        until the lock-out window ended.
        """
        daemon = self.new_daemon()
        for attempt in range(10):
            self.assertEqual(http("GET", daemon.url + "api/tokens",
                                  auth=(USER, f"guess {attempt}")).status, 401, attempt)
        self.assertEqual(http("GET", daemon.url + "api/tokens", auth=(USER, PASSWORD)).status,
                         429)
        made = subprocess.run([sys.executable, "-m", "pypid.cli.passwd"], cwd=daemon.directory,
                              env=clean_env(daemon.home, **daemon.environ),
                              input="a new horse\n", capture_output=True, text=True,
                              timeout=60, check=True)
        with open(daemon.config_path, encoding="utf-8") as f:
            text = f.read()
        old_line = next(line for line in text.splitlines() if line.startswith(f"{USER} = "))
        with open(daemon.config_path, "w", encoding="utf-8") as f:
            f.write(text.replace(old_line, f"{USER} = {made.stdout.strip()}"))
        os.kill(daemon.pid, signal.SIGHUP)
        daemon.wait_for_log(b"Reloaded the configuration")
        wheel = make_wheel("reset-then-upload", "1.0")
        self.assertEqual(upload(daemon, *wheel, auth=(USER, "a new horse")).status, 200)
        self.assertIn(f"Failed logins forgotten for {USER}: their password was set again",
                      daemon.log_since_start().decode())
        self.assertEqual(http("GET", daemon.url + "api/tokens", auth=(USER, PASSWORD)).status,
                         401)


class BehindProxyThrottleTests(DaemonTestCase):
    """
    Behind a reverse proxy on this machine (C{[pypid] trusted_proxies =
    127.0.0.1}; the test plays the proxy, appending each client's address to
    C{X-Forwarded-For}): each client has its own cap, an IPv6 client is its
    /64, and the audit log records the client (issue 25, 3 and 4).
    """

    users = {USER: PASSWORD, "auditor": "auditor-password"}
    settings = {"pypid.trusted_proxies": "127.0.0.1", "auth.read": "authenticated",
                "auth.admins": "auditor"}

    def read(self, client, password, forwarded=None):
        """Read the index as USER from C{client} through the proxy; the status."""
        value = client if forwarded is None else forwarded
        return http("GET", self.daemon.index_url, headers={"X-Forwarded-For": value},
                    auth=(USER, password)).status

    def test_cap_per_client(self):
        """
        Ten wrong passwords from one client, then 429 for it alone (without
        C{trusted_proxies} every client is the proxy's 127.0.0.1, and the
        next client got 429 too: measured); a client rotating over one /64
        is held back after ten; a client writing another's address in the
        header is still itself.
        """
        codes = [self.read("198.51.100.5", f"guess {n}") for n in range(10)]
        self.assertEqual(codes, [401] * 10)
        self.assertEqual(self.read("198.51.100.5", PASSWORD), 429)
        self.assertEqual(self.read("198.51.100.6", PASSWORD), 200)
        # 198.51.100.5 posing as 198.51.100.6 (the proxy appends the real address).
        self.assertEqual(self.read("", "guess", forwarded="198.51.100.6, 198.51.100.5"), 429)
        rotated = [self.read(f"2001:db8:5:6::{n + 1:x}", f"guess {n}") for n in range(11)]
        self.assertEqual(rotated, [401] * 10 + [429])
        self.assertEqual(self.read("2001:db8:5:7::1", "guess"), 401)
        audit = http("GET", self.daemon.url + "api/audit?event=login-failed",
                     auth=("auditor", "auditor-password"))
        self.assertEqual(audit.status, 200, audit.body)
        addresses = {entry["address"] for entry in audit.json()["entries"]}
        self.assertEqual(addresses, {"198.51.100.5", "2001:db8:5:7::1"}
                         | {f"2001:db8:5:6::{n + 1:x}" for n in range(10)})


class AccessControlTests(DaemonTestCase):
    """Groups, admins and per-project rules ([groups], [auth] admins, [acl])."""

    users = {USER: PASSWORD, "alice": "alice-pw", "bob": "bob-pw", "ci": "ci-pw",
             "root": "root-pw"}

    def prepare(self, daemon):
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write("[groups]\ndev = alice\n[acl]\nacme-* = group:dev rw, user:ci r\n")
        daemon.settings["auth.admins"] = "root"
        daemon.restart()
        answer = upload(daemon, *make_wheel("acme-tools", "1.0"), auth=("alice", "alice-pw"))
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(upload(daemon, *make_wheel("open-tool", "1.0")).status, 200)

    def test_upload_rights(self):
        """The rule decides who writes acme-*: others get 403 naming them, anonymous 401."""
        wheel = make_wheel("acme-tools", "2.0")
        answer = upload(self.daemon, *wheel, auth=("bob", "bob-pw"))
        self.assertEqual(answer.status, 403)
        self.assertIn("bob", answer.reason)
        self.assertIn("acme-tools", answer.reason)
        self.assertEqual(upload(self.daemon, *wheel, auth=None).status, 401)
        self.assertEqual(upload(self.daemon, *wheel, auth=("ci", "ci-pw")).status, 403)
        self.assertEqual(upload(self.daemon, *wheel, auth=("root", "root-pw")).status, 200)
        self.assertEqual(upload(self.daemon, *make_wheel("bob-tool", "1.0"),
                                auth=("bob", "bob-pw")).status, 200, "other projects: defaults")

    def test_read_rights(self):
        """Those the rule does not name see no acme-* project: 404, and not in the list."""
        for auth in (None, ("bob", "bob-pw")):
            self.assertEqual(http("GET", self.daemon.index_url + "acme-tools/", auth=auth).status,
                             404)
            listing = http("GET", self.daemon.index_url, auth=auth).body
            self.assertNotIn(b"acme-tools", listing)
            self.assertIn(b"open-tool", listing)
            self.assertEqual(http("GET", self.daemon.url + "files/acme-tools/"
                                  "acme_tools-1.0-py3-none-any.whl", auth=auth).status, 404)
        for auth in (("ci", "ci-pw"), ("alice", "alice-pw"), ("root", "root-pw")):
            self.assertEqual(http("GET", self.daemon.index_url + "acme-tools/", auth=auth).status,
                             200, auth)
            self.assertIn(b"acme-tools", http("GET", self.daemon.index_url, auth=auth).body)

    def test_nothing_given_away(self):
        """Release deletes and slash-less URLs answer alike whether a hidden project exists."""
        for path in ("api/projects/acme-tools/1.0", "api/projects/acme-nothing/1.0"):
            answer = http("DELETE", self.daemon.url + path, auth=("bob", "bob-pw"))
            self.assertEqual((answer.status, answer.body), (404, b"no such file or release\n"))
        self.assertEqual(http("GET", self.daemon.index_url + "acme-tools").status, 404)
        self.assertEqual(http("GET", self.daemon.index_url + "open-tool").status, 301)

    def test_pip_with_rights(self):
        """pip installs a restricted project with the credentials of a user who may read it."""
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.daemon.authed_index_url("ci", "ci-pw"),
                                 "acme-tools")
        self.assertEqual(installed(target), {"acme-tools": "1.0"})


class TokenTests(DaemonTestCase):
    """API tokens: issued by an admin, used as __token__, scoped, revoked at once."""

    users = {USER: PASSWORD, "root": "root-pw"}
    settings = {"auth.admins": "root", "auth.read": "authenticated"}

    def issue(self, **fields):
        """Issue a token as the admin; return its JSON."""
        headers, body = form(**fields)
        answer = http("POST", self.daemon.url + "api/tokens", headers, body,
                      auth=("root", "root-pw"))
        self.assertEqual(answer.status, 200, answer.body)
        return answer.json()

    def test_revocations_race_reloads(self):
        """
        Revocations racing SIGHUPs stay revoked, in memory, in the listing
        and after a restart (before issue 25's fix, 6 of 40 came back: the
        reload read the token file while the revocation was writing it).
        """
        import signal
        import threading
        import time
        tokens = [self.issue(actions="read", description=f"race {i}") for i in range(40)]
        revoking = threading.Event()

        def hang_up():  # reloads all along, a few milliseconds apart
            while not revoking.is_set():
                os.kill(self.daemon.pid, signal.SIGHUP)
                time.sleep(0.003)
        reloads = threading.Thread(target=hang_up)
        reloads.start()
        try:
            for token in tokens:
                answer = http("DELETE", self.daemon.url + f"api/tokens/{token['id']}",
                              auth=("root", "root-pw"))
                self.assertEqual(answer.status, 200, answer.body)
        finally:
            revoking.set()
            reloads.join()
        time.sleep(1)  # (the last reloads taken)

        def back():
            listed = {t["id"] for t in http("GET", self.daemon.url + "api/tokens",
                                             auth=("root", "root-pw")).json()["tokens"]}
            return [t["id"] for t in tokens
                    if t["id"] in listed or http("GET", self.daemon.index_url,
                                                 auth=("__token__", t["token"])).status != 401]
        self.assertEqual(back(), [])
        self.daemon.restart(clean=False)
        self.assertEqual(back(), [])

    def test_scoped_upload_then_revoked(self):
        """A token for uploads to ci-* works with twine for ci-* only, until revoked."""
        token = self.issue(actions="upload", projects="ci-*", expires="1d",
                           description="CI")
        self.assertTrue(token["token"].startswith("pypid-"))
        done = self.clients.twine_upload(self.daemon, self.dist_dir(make_wheel("ci-app", "1.0")),
                                         user="__token__", password=token["token"])
        self.assertEqual(done.returncode, 0, done.output)
        other = upload(self.daemon, *make_wheel("not-ci", "1.0"),
                       auth=("__token__", token["token"]))
        self.assertEqual(other.status, 403)
        listed = http("GET", self.daemon.url + "api/tokens", auth=("root", "root-pw")).json()
        self.assertIn(token["id"], [t["id"] for t in listed["tokens"]])
        self.assertNotIn(token["token"], json.dumps(listed))
        answer = http("DELETE", self.daemon.url + f"api/tokens/{token['id']}",
                      auth=("root", "root-pw"))
        self.assertEqual(answer.status, 200)
        again = upload(self.daemon, *make_wheel("ci-app", "2.0"),
                       auth=("__token__", token["token"]))
        self.assertEqual(again.status, 401)
        path = os.path.join(self.daemon.directory, "var", "tokens.json")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertNotIn(token["token"], open(path).read())
        self.assertNotIn(token["token"], self.daemon.log_text())

    def test_scoped_tokens_see_their_own_lists(self):
        """Two tokens of one admin, scoped to different projects, see different lists."""
        for name in ("scope-a", "scope-b"):
            self.assertEqual(upload(self.daemon, *make_wheel(name, "1.0")).status, 200)
        first = self.issue(actions="read", projects="scope-a")["token"]
        second = self.issue(actions="read", projects="scope-b")["token"]
        one = http("GET", self.daemon.index_url, auth=("__token__", first)).body
        two = http("GET", self.daemon.index_url, auth=("__token__", second)).body
        self.assertIn(b"scope-a", one)
        self.assertNotIn(b"scope-b", one)
        self.assertIn(b"scope-b", two)
        self.assertNotIn(b"scope-a", two)
        upload_only = self.issue(actions="upload")["token"]
        self.assertEqual(http("GET", self.daemon.index_url + "scope-a/",
                              auth=("__token__", upload_only)).status, 404)

    def test_people_issue_their_own(self):
        """
        A user who is not an admin issues tokens of their own and sees
        only those (issue 44); bad fields get 400.
        """
        headers, body = form(actions="upload")
        answer = http("POST", self.daemon.url + "api/tokens", headers, body,
                      auth=(USER, PASSWORD))
        self.assertEqual(answer.status, 200, answer.body)
        mine = json.loads(answer.body)
        self.assertEqual(mine["user"], USER)
        listed = http("GET", self.daemon.url + "api/tokens", auth=(USER, PASSWORD))
        self.assertEqual({t["user"] for t in json.loads(listed.body)["tokens"]}, {USER})
        gone = http("DELETE", self.daemon.url + f"api/tokens/{mine['id']}",
                    auth=(USER, PASSWORD))
        self.assertEqual(gone.status, 200, gone.body)
        headers, body = form(actions="delete")
        bad = http("POST", self.daemon.url + "api/tokens", headers, body,
                   auth=("root", "root-pw"))
        self.assertEqual(bad.status, 400)

    def test_read_token_with_pip(self):
        """A read token lets pip install from a private index."""
        self.assertEqual(upload(self.daemon, *make_wheel("tok-lib", "1.0")).status, 200)
        token = self.issue(actions="read")
        self.assertEqual(http("GET", self.daemon.index_url + "tok-lib/").status, 401)
        self.assertEqual(http("GET", self.daemon.index_url + "tok-lib/",
                              auth=("__token__", token["token"])).status, 200)
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.daemon.authed_index_url("__token__",
                                                                      token["token"]), "tok-lib")
        self.assertEqual(installed(target), {"tok-lib": "1.0"})


class TokenCliTests(DaemonTestCase):
    """pypid-token drives the token endpoints."""

    users = {USER: PASSWORD, "root": "root-pw"}
    settings = {"auth.admins": "root"}

    def cli(self, *args):
        """Run pypid-token as the admin; return (status, out, err)."""
        import subprocess
        import sys
        env = dict(os.environ, PYPID_PASSWORD="root-pw")
        done = subprocess.run([sys.executable, "-m", "pypid.cli.token", "--server", self.daemon.url,
                               "--user", "root", *args], capture_output=True, text=True,
                              env=env, timeout=60)
        return done.returncode, done.stdout, done.stderr

    def test_issue_list_revoke(self):
        """Issue prints the token once; list shows it without the secret; revoke stops it."""
        status, out, err = self.cli("issue", "--actions", "upload", "--projects", "cli-*",
                                    "--expires", "1d", "--description", "ci")
        self.assertEqual(status, 0, err)
        token = out.strip()
        self.assertEqual(upload(self.daemon, *make_wheel("cli-app", "1.0"),
                                auth=("__token__", token)).status, 200)
        status, out, err = self.cli("list")
        self.assertEqual(status, 0, err)
        token_id = token.split("-")[1]
        self.assertIn(token_id, out)
        self.assertNotIn(token, out)
        # (the expiry as a date in UTC, a day from now: it was a raw POSIX time)
        (line,) = [line for line in out.splitlines() if line.startswith(token_id)]
        expires = re.search(r"expires=(\d{4}-\d\d-\d\d \d\d:\d\d) UTC ", line)
        self.assertIsNotNone(expires, line)
        when = datetime.datetime.strptime(expires.group(1), "%Y-%m-%d %H:%M").replace(
            tzinfo=datetime.UTC)
        self.assertLess(abs(when.timestamp() - (time.time() + 86400)), 600)
        status, out, err = self.cli("revoke", token_id)
        self.assertEqual(status, 0, err)
        self.assertEqual(upload(self.daemon, *make_wheel("cli-app", "2.0"),
                                auth=("__token__", token)).status, 401)
        status, out, err = self.cli("revoke", token_id)
        self.assertEqual(status, 1)
        self.assertIn("404", err)


class HtpasswdTests(DaemonTestCase):
    """Users from pypiserver's htpasswd file."""

    def test_bcrypt_user_uploads(self):
        """A bcrypt user of an htpasswd file uploads with twine."""
        import bcrypt
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        path = os.path.join(folder, "users.htpasswd")
        with open(path, "w") as f:
            f.write("pete:" + bcrypt.hashpw(b"pete-pw", bcrypt.gensalt(4)).decode() + "\n")
        daemon = self.new_daemon(settings={"auth.htpasswd": path})
        done = self.clients.twine_upload(daemon, self.dist_dir(make_wheel("pete-pkg", "1.0")),
                                         user="pete", password="pete-pw")
        self.assertEqual(done.returncode, 0, done.output)

    def test_weak_entry_stops_startup(self):
        """A weak entry stops start-up with the file and line named."""
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        path = os.path.join(folder, "users.htpasswd")
        with open(path, "w") as f:
            f.write("old:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
        import subprocess
        daemon = self.new_daemon(settings={"auth.htpasswd": path}, start=False)
        done = subprocess.run(daemon.command(0), capture_output=True, text=True,
                              cwd=daemon.directory, timeout=60)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn(f"{path}:1: user 'old': SHA-1 hashes are too weak", done.stdout + done.stderr)
        self.assertNotIn("W6ph5Mm5", done.stdout + done.stderr)


class AdminCliTests(DaemonTestCase):
    """pypid-admin lists and changes packages over the HTTP API."""

    def cli(self, *args, user=USER, password=PASSWORD):
        """Run pypid-admin; return (status, out, err)."""
        import subprocess
        import sys
        env = dict(os.environ, PYPID_PASSWORD=password)
        done = subprocess.run([sys.executable, "-m", "pypid.cli.admin", "--server",
                               self.daemon.url, "--user", user, *args], capture_output=True,
                              text=True, env=env, timeout=60)
        return done.returncode, done.stdout, done.stderr

    def prepare(self, daemon):
        for version in ("1.0", "2.0"):
            self.assertEqual(upload(daemon, *make_wheel("admin-app", version)).status, 200)

    def test_list_yank_unyank_delete(self):
        """Projects and files are listed; a file yanked with its reason, unyanked, deleted."""
        status, out, err = self.cli("projects")
        self.assertEqual((status, out), (0, "admin-app\n"), err)
        wheel = "admin_app-1.0-py3-none-any.whl"
        status, out, err = self.cli("yank", wheel, "--reason", "broken build")
        self.assertEqual(status, 0, err)
        status, out, err = self.cli("files", "admin-app")
        self.assertEqual(status, 0, err)
        lines = out.splitlines()
        self.assertEqual(len(lines), 2)
        self.assertTrue(lines[0].startswith(wheel + "  1.0  "), lines[0])
        self.assertTrue(lines[0].endswith("yanked: broken build"), lines[0])
        self.assertNotIn("yanked", lines[1])
        self.assertEqual(self.cli("unyank", wheel)[0], 0)
        self.assertNotIn("yanked", self.cli("files", "admin-app")[1])
        status, out, err = self.cli("delete", "admin-app", "2.0")
        self.assertEqual(status, 2)
        self.assertIn("--yes", err)
        status, out, err = self.cli("delete", "admin-app", "2.0", "--yes")
        self.assertEqual(status, 0, err)
        self.assertEqual(len(self.cli("files", "admin-app")[1].splitlines()), 1)

    def test_hostile_reason_escaped(self):
        """
        A yank reason with an escape sequence, a line break and a bidi
        override is printed escaped by C{files}: one line, nothing raw.
        """
        wheel = "admin_app-2.0-py3-none-any.whl"
        reason = "\x1b]0;owned\x07\x1b[2J\nfake line \u202eevil"
        answer = http("POST", f"{self.daemon.url}api/files/{wheel}/yank",
                      {"Content-Type": "application/x-www-form-urlencoded"},
                      urlencode({"reason": reason}).encode(), auth=(USER, PASSWORD))
        self.assertEqual(answer.status, 200, answer.body)
        status, out, err = self.cli("files", "admin-app")
        self.assertEqual(status, 0, err)
        line = [line for line in out.splitlines() if line.startswith(wheel)]
        self.assertEqual(len(line), 1, out)
        self.assertTrue(line[0].endswith("yanked: \\x1b]0;owned\\x07\\x1b[2J\\nfake line "
                                         "\\u202eevil"), line[0])
        for raw in ("\x1b", "\x07", "\u202e"):
            self.assertNotIn(raw, out)
        self.assertEqual(self.cli("unyank", wheel)[0], 0)

    def test_refused(self):
        """A wrong password, or a file that is not there: one line, exit 1."""
        status, out, err = self.cli("yank", "nothing-1.0-py3-none-any.whl")
        self.assertEqual(status, 1)
        self.assertTrue(err.startswith("pypid-admin: POST "), err)
        self.assertIn("404", err)
        status, out, err = self.cli("yank", "admin_app-1.0-py3-none-any.whl", password="nope")
        self.assertEqual(status, 1)
        self.assertIn("401", err)

