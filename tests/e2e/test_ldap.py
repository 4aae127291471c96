"""
Directory users against a real OpenLDAP server (C{tests/harness/slapd.py}: Debian's
slapd, configured and started by the tests on loopback, StartTLS and
ldaps from a test CA): first L{pypid.auth.ldap.Directory} alone on the real
reactor, then the real daemon with real pip and twine: logins, groups in
C{[acl]} and C{[auth] admins}, a user removed from a group, injection
attempts in the user name, and the directory stopped mid-run.
"""

import json
import os
import shutil
import time

from twisted.internet import reactor
from twisted.logger import capturedLogs, formatEvent
from twisted.python import log
from twisted.trial.unittest import TestCase

from pypid.auth.ldap import make_directory
from pypid.auth.verifier import DirectoryUnavailable
from pypid.config.ldap_settings import LDAPConfig
from pypid.core.access.ldap_syntax import parse_ldap_url
from tests.harness.console import token_round_trip
from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
    PASSWORD,
    USER,
    DaemonTestCase,
    E2EFailure,
    form,
    form_login,
    free_port,
    http,
    installed,
    upload,
    wait_for,
    with_cookie,
)
from tests.harness.ldap import INJECTIONS
from tests.harness.shared import class_shared
from tests.harness.slapd import GROUPS, PEOPLE, PEOPLE_ENTRIES, SERVICE, SERVICE_PASSWORD, Slapd


def password_of(uid):
    """The directory password of a test person."""
    return PEOPLE_ENTRIES[uid][0]


class _SharedSlapd:
    """One slapd per test class (in each process), started on first use."""

    def slapd(self):
        """The class's slapd (see L{tests.harness.shared})."""
        return class_shared(self, "slapd", self._start_slapd, Slapd.stop)

    def _start_slapd(self):
        folder = os.path.abspath(os.path.join("ldap-shared", type(self).__name__))
        shutil.rmtree(folder, ignore_errors=True)
        return Slapd(folder).start()


class DirectoryTests(_SharedSlapd, TestCase):
    """L{pypid.auth.ldap.Directory} on the real reactor against slapd."""

    def setUp(self):
        self.server = self.slapd()

    def directory(self, *urls, **kwargs):
        kwargs.setdefault("bind_dn", SERVICE)
        kwargs.setdefault("bind_password", SERVICE_PASSWORD)
        kwargs.setdefault("group_base", GROUPS)
        kwargs.setdefault("ca_bundle", self.server.ca.root_path)
        settings = LDAPConfig(url=tuple(parse_ldap_url(u) for u in urls or [self.server.url]),
                              user_base=PEOPLE, timeout=5.0, **kwargs)
        return make_directory(settings, reactor)

    async def test_starttls_users_and_groups(self):
        """Over StartTLS: right passwords give the groups (member and uniqueMember)."""
        directory = self.directory()
        self.assertEqual(await directory.check("alice", password_of("alice")), {"dev"})
        self.assertEqual(await directory.check("dave", password_of("dave")), {"qa"})
        self.assertEqual(await directory.check("carol", password_of("carol")), set())
        self.assertEqual(await directory.check("zoë", password_of("zoë")), {"dev"})
        # every character a filter must escape, in a real user's name
        self.assertEqual(await directory.check("o*(brien)\\", password_of("o*(brien)\\")),
                         {"dev"})
        self.assertIsNone(await directory.check("alice", "wrong"))
        self.assertIsNone(await directory.check("nobody", "x"))
        self.assertIsNone(await directory.check("alice", ""))

    async def test_knows(self):
        """
        Issue 59: whether the directory has a user, by the service account's
        search alone (its own spelling only; a filter's characters escaped).
        """
        directory = self.directory()
        for user, known in (("alice", True), ("o*(brien)\\", True), ("zoë", True),
                            ("ALICE", False), ("nobody", False), ("*", False),
                            ("alice)(uid=*", False)):
            self.assertEqual(await directory.knows(user), known, user)

    async def test_groups_of(self):
        """Issue 59: a user's groups read again without their password; L{None}: no such user."""
        directory = self.directory()
        self.assertEqual(await directory.groups_of("alice"), {"dev"})
        self.assertEqual(await directory.groups_of("carol"), set())
        self.assertEqual(await directory.groups_of("o*(brien)\\"), {"dev"})
        self.assertIsNone(await directory.groups_of("nobody"))
        self.assertIsNone(await directory.groups_of("ALICE"))
        self.assertEqual(await self.directory(group_base=None).groups_of("alice"), set())

    async def test_ldaps_and_anonymous_search(self):
        """ldaps:// works, and so does an anonymous search (no bind_dn)."""
        directory = self.directory(self.server.tls_url, bind_dn=None, bind_password="")
        self.assertEqual(await directory.check("bob", password_of("bob")), {"pypi-admins"})

    async def test_extensible_group_filter(self):
        """An extensible-match group filter (as Active Directory's nested one) is understood."""
        directory = self.directory(group_filter="(member:distinguishedNameMatch:={dn})")
        self.assertEqual(await directory.check("alice", password_of("alice")), {"dev"})

    async def test_injection_attempts(self):
        """Names with filter syntax match no one, even with a real user's password."""
        directory = self.directory()
        for name in INJECTIONS:
            self.assertIsNone(await directory.check(name, password_of("alice")), name)
        self.assertEqual(await directory.check("alice", password_of("alice")), {"dev"})

    async def test_untrusted_certificate(self):
        """A server certificate the CA bundle does not vouch for: unavailable, not refused."""
        other = os.path.abspath(self.mktemp())
        from tests.harness.tlsca import TestCA
        directory = self.directory(ca_bundle=TestCA(other).root_path)
        with capturedLogs() as events:
            failure = await self.assertFailure(directory.check("alice", password_of("alice")),
                                               DirectoryUnavailable)
        self.assertEqual(failure.retry_after, 5)
        text = "\n".join(formatEvent(e) for e in events)
        self.assertIn("TLS failed", text)

    async def test_host_name_mismatch(self):
        """A certificate for another host: unavailable, logged as such, without a traceback."""
        from pypid.auth.ldap import Directory, tls_creators
        settings = LDAPConfig(url=(parse_ldap_url(self.server.tls_url),), user_base=PEOPLE,
                              timeout=5.0, bind_dn=SERVICE, bind_password=SERVICE_PASSWORD)
        tls = tls_creators(self.server.ca.root_path)
        directory = Directory(settings, reactor, lambda host, port: tls("wrong.example", port))
        with capturedLogs() as events:
            await self.assertFailure(directory.check("alice", password_of("alice")),
                                     DirectoryUnavailable)
        self.assertIn("TLS failed: the certificate is not for 127.0.0.1",
                      "\n".join(formatEvent(e) for e in events))
        self.assertFalse([e for e in events if "log_failure" in e])

    async def test_wrong_service_password(self):
        """A service account the server refuses makes the directory unavailable."""
        directory = self.directory(bind_password="wrong")
        with capturedLogs() as events:
            await self.assertFailure(directory.check("alice", password_of("alice")),
                                     DirectoryUnavailable)
        self.assertIn("service account", "\n".join(formatEvent(e) for e in events))

    async def test_next_url_when_first_down(self):
        """The URLs are tried in order: a refused first one, then the one that answers."""
        directory = self.directory(f"ldap://127.0.0.1:{free_port()}", self.server.url)
        self.assertEqual(await directory.check("alice", password_of("alice")), {"dev"})


class _LDAPDaemonTestCase(_SharedSlapd, DaemonTestCase):
    """A shared daemon whose [ldap] is the class's slapd."""

    cache_ttl = "2s"

    @property
    def settings(self):
        slapd = self.slapd()
        return {
            "ldap.url": slapd.url,
            "ldap.bind_dn": SERVICE,
            "ldap.bind_password": SERVICE_PASSWORD,
            "ldap.user_base": PEOPLE,
            "ldap.group_base": GROUPS,
            "ldap.ca_bundle": slapd.ca.root_path,
            "ldap.cache_ttl": self.cache_ttl,
            "auth.read": "authenticated",
            "auth.admins": f"group:pypi-admins {USER}",
            "acl.acme-*": "group:dev rw, group:qa r",
        }

    def get(self, path, user, password):
        return http("GET", self.daemon.url + path, auth=(user, password))


class LDAPDaemonTests(_LDAPDaemonTestCase):
    """The daemon with directory users and groups."""

    #: long enough that a request soon after a login is still answered
    #: from the cache on a loaded machine (see
    #: L{test_removed_from_group_after_cache_ttl})
    cache_ttl = "5s"

    def prepare(self, daemon):
        # bob is an admin by his directory group: he may write anywhere
        for name in ("acme-lib", "open-lib"):
            response = upload(daemon, *make_wheel(name, "1.0"), auth=("bob", password_of("bob")))
            if response.status != 200:
                raise E2EFailure(f"bob could not upload {name}: {response.status} "
                                 f"{response.body!r}")

    def index_url(self, uid):
        return self.daemon.authed_index_url(uid, password_of(uid))

    def test_pip_install_by_group(self):
        """pip installs what the directory groups let a user read, and nothing else."""
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.index_url("alice"), "acme-lib", "open-lib")
        self.assertEqual(installed(target), {"acme-lib": "1.0", "open-lib": "1.0"})
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.index_url("dave"), "acme-lib")
        self.assertEqual(installed(target), {"acme-lib": "1.0"})
        carol = ("carol", password_of("carol"))
        self.assertEqual(self.get("simple/acme-lib/", *carol).status, 404)
        self.assertEqual(self.get("simple/open-lib/", *carol).status, 200)
        self.assertNotIn(b"acme-lib", self.get("simple/", *carol).body)
        self.assertIn(b"acme-lib", self.get("simple/", "dave", password_of("dave")).body)

    def test_twine_upload_by_group(self):
        """twine uploads for a user of a group with w; a group with only r gets 403."""
        paths = self.dist_dir(make_wheel("acme-lib", "2.0"))
        self.clients.twine_upload(self.daemon, paths, user="alice", password=password_of("alice"))
        paths = self.dist_dir(make_wheel("acme-lib", "3.0"))
        done = self.clients.twine_upload(self.daemon, paths, user="dave",
                                         password=password_of("dave"), check=False)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("403", done.output)
        self.assertIn("dave", done.output)

    def test_wrong_password_and_unknown_user(self):
        """Wrong passwords, unknown users and empty passwords get 401; local users still work."""
        for user, password in [("alice", "wrong"), ("nobody", "whatever"), ("alice", ""),
                               ("carol", password_of("alice"))]:
            response = self.get("simple/", user, password)
            self.assertEqual(response.status, 401, (user, password))
            self.assertEqual(response.header("WWW-Authenticate"), 'Basic realm="pypid"')
        self.assertEqual(self.get("simple/", USER, PASSWORD).status, 200)
        self.assertEqual(self.get("simple/", "alice", password_of("alice")).status, 200)

    def test_admin_by_directory_group(self):
        """[auth] admins = group:pypi-admins makes bob, of that directory group, an admin."""
        self.assertEqual(self.get("api/audit", "bob", password_of("bob")).status, 200)
        response = self.get("api/audit", "alice", password_of("alice"))
        self.assertEqual(response.status, 403)
        self.assertIn(b"alice is not an admin", response.body)

    def test_directory_user_token(self):
        """
        A directory user's token must expire, and acts with their groups:
        alice (dev) uploads acme-by-token with it.
        """
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        refused = http("POST", self.daemon.url + "api/tokens", form, b"actions=upload",
                       auth=("alice", password_of("alice")))
        self.assertEqual(refused.status, 400, refused.body)
        self.assertIn(b"alice logs in through the directory", refused.body)
        issued = http("POST", self.daemon.url + "api/tokens", form,
                      b"actions=upload&projects=acme-by-token&expires=30d",
                      auth=("alice", password_of("alice")))
        self.assertEqual(issued.status, 200, issued.body)
        record = json.loads(issued.body)
        self.assertEqual((record["source"], record["groups"]), ("ldap", ["dev"]))
        paths = self.dist_dir(make_wheel("acme-by-token", "1.0"))
        self.clients.twine_upload(self.daemon, paths, user="__token__",
                                  password=record["token"])

    def test_console_tokens(self):
        """dave, of the directory, issues and revokes a token in the console (Chromium)."""
        from tests.harness.browser import shared_browser
        page = shared_browser().new_page()
        self.addCleanup(page.close)
        page.goto(self.daemon.url + "login?next=/console/tokens")
        page.page.fill("#user", "dave")
        page.page.fill("#password", password_of("dave"))
        with page.page.expect_navigation():
            page.page.click("button[type=submit]")
        token_round_trip(self, page, self.daemon, "dave", (USER, PASSWORD),
                         "simple/acme-lib/")

    def test_browser_session_by_group(self):
        """
        A directory user logs in through the pages' form (issue 44): their
        directory groups apply on the pages, and the session never stands
        for them on the simple API.
        """
        dave = form_login(self.daemon.url, "dave", password_of("dave"))
        carol = form_login(self.daemon.url, "carol", password_of("carol"))
        self.assertEqual(with_cookie(self.daemon.url + "project/acme-lib/", dave)[0], 200)
        self.assertEqual(with_cookie(self.daemon.url + "project/acme-lib/", carol)[0], 404)
        self.assertEqual(with_cookie(self.daemon.url + "project/open-lib/", carol)[0], 200)
        status, body = with_cookie(self.daemon.url, dave)
        self.assertEqual(status, 200)
        self.assertIn(b'<span class="person">dave</span>', body)
        self.assertEqual(with_cookie(self.daemon.url + "simple/acme-lib/", dave)[0], 401)
        response = http("POST", self.daemon.url + "login",
                        {"Content-Type": "application/x-www-form-urlencoded"},
                        b"user=dave&password=wrong")
        self.assertEqual(response.status, 401)
        self.assertIsNone(response.header("WWW-Authenticate"))

    def test_injection_attempts(self):
        """Names with filter syntax never log in as someone else; odd real names do."""
        for name in INJECTIONS:
            self.assertEqual(self.get("simple/", name, password_of("alice")).status, 401, name)
        for uid in ("o*(brien)\\", "zoë"):
            self.assertEqual(self.get("simple/acme-lib/", uid, password_of(uid)).status, 200, uid)
        self.assertTrue(self.daemon.running())

    def test_removed_from_group_after_cache_ttl(self):
        """
        A user taken out of a group keeps its rights while its login is
        cached (checked when the test is truly within cache_ttl of it), then
        loses them (within cache_ttl, and some room for a loaded machine).
        """
        ttl = 5.0
        self.assertEqual(self.cache_ttl, f"{ttl:g}s")
        slapd = self.slapd()
        erin = ("erin", password_of("erin"))  # (logged in by no other test)
        cached_from = time.monotonic()  # (the login is cached no sooner)
        self.assertEqual(self.get("simple/acme-lib/", *erin).status, 200)
        slapd.remove_member("dev", "erin")
        self.addCleanup(slapd.add_member, "dev", "erin")
        removed = time.monotonic()
        still = self.get("simple/acme-lib/", *erin).status
        since_login = time.monotonic() - cached_from
        if since_login < ttl:
            self.assertEqual(still, 200, f"erin lost the rights {since_login:.1f} s after "
                             f"logging in, within cache_ttl")
        else:
            log.msg(f"(too slow to see the cache: {since_login:.1f} s since the login)")
        wait_for(lambda: self.get("simple/acme-lib/", *erin).status == 404, ttl + 20,
                 "erin kept the rights of group dev after cache_ttl", interval=0.2)
        self.assertLess(time.monotonic() - removed, ttl + 20)
        # (and still logs in: only the group is gone)
        self.assertEqual(self.get("simple/open-lib/", *erin).status, 200)


class DirectoryDownTests(_LDAPDaemonTestCase):
    """The directory stopped mid-run: 503 for those who need it, nobody else hindered."""

    cache_ttl = "1m"

    def test_directory_stopped(self):
        """Directory users get 503 with Retry-After; local users and tokens keep working."""
        slapd = self.slapd()
        daemon = self.daemon
        headers, body = form(actions="read")
        token = http("POST", daemon.url + "api/tokens", headers, body,
                     auth=(USER, PASSWORD)).json()["token"]
        alice = ("alice", password_of("alice"))
        self.assertEqual(self.get("simple/", *alice).status, 200)
        slapd.stop()
        try:
            for uid in ("carol", "bob"):
                response = self.get("simple/", uid, password_of(uid))
                self.assertEqual(response.status, 503, uid)
                self.assertIn(int(response.header("Retry-After")), range(1, 6))
                self.assertIn(b"directory", response.body)
                self.assertIsNone(response.header("WWW-Authenticate"))
            # (an upload is refused before its body, with the same answer)
            response = upload(daemon, *make_wheel("dir-down", "1.0"),
                              auth=("dave", password_of("dave")))
            self.assertEqual(response.status, 503)
            self.assertIn(int(response.header("Retry-After")), range(1, 6))
            self.assertEqual(upload(daemon, *make_wheel("dir-down", "1.0")).status, 200)
            self.assertEqual(self.get("simple/", USER, PASSWORD).status, 200)
            self.assertEqual(self.get("simple/", "__token__", token).status, 200)
            # (a directory user checked lately is remembered: not held back either)
            self.assertEqual(self.get("simple/", *alice).status, 200)
        finally:
            slapd.start()
        carol = ("carol", password_of("carol"))
        wait_for(lambda: self.get("simple/", *carol).status == 200, 10,
                 "carol could not log in once the directory was back", interval=0.25)
        self.assertIn("LDAP server ldap://127.0.0.1:", daemon.log_text())
