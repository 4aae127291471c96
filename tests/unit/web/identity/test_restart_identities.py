"""
Issue 59: a person is a source and a name, and a restart means what a
reload means. Browser sessions kept through a restart meet the
configuration it brought (findings 1 and 2); what a session stands for,
and what its person issues, is the source it came from, never the one the
configuration in force would infer.
"""

import os
import shutil

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from pypid.auth.verifier import Identity
from pypid.core.access.outside_logins import DIRECTORY, LOCAL, PASSWORD, PROVIDER, LoginSource
from pypid.core.access.sso_flow import provider_key
from pypid.web.identity.identification import Identification
from pypid.web.identity.request_auth import IRequestAuth
from tests.harness.tap import ThreadedReactor, identity_part, part_config
from tests.harness.web import USERS, randomness

ISSUER = "https://login.corp.example/realms/acme"
OTHER_ISSUER = "https://login.corp.example/realms/other"
LDAP = "[ldap]\nurl = ldap://127.0.0.1:1\nuser_base = ou=people,dc=example,dc=test\n"


def sso(issuer=ISSUER, allow=""):
    return (f"[sso]\nissuer = {issuer}\nclient_id = pypid\nclient_secret = s\n"
            + (f"allow = {allow}\n" if allow else ""))


def users(*names, hashes=USERS):
    return "[users]\n" + "".join(f"{name} = {hashes[name]}\n" for name in names)


def page_request(cookie_name, value):
    """A request of a page for people, carrying the cookie C{cookie_name}."""
    request = Request(DummyChannel())
    request.received_cookies = {cookie_name: value.encode()}
    IRequestAuth(request).for_people = True
    return request


class RestartTests(SynchronousTestCase):
    """Each daemon start reads the sessions file; what it keeps, the configuration decides."""

    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())
        os.makedirs(self.folder)
        self.reactor = ThreadedReactor()
        self.reactor.advance(1_767_225_600)

    def config(self, text):
        return part_config(self.folder, text)

    def start(self, text):
        """A daemon's identity part started on the configuration C{text} (a restart)."""
        return identity_part(self.folder, self.reactor, text)

    def opened(self, part, user, source, stamp, groups=()):
        """Open a session in C{part}, as a login does, and keep the file: its cookie's value."""
        value, _ = part.sessions.book.open(user, groups, source, self.reactor.seconds(),
                                           randomness(len(part.sessions.book.sessions)),
                                           stamp)
        self.successResultOf(part.sessions.save())
        return value

    def users_of(self, part):
        return sorted((s.user, s.source) for s in part.sessions.book.sessions.values())

    def test_password_user_removed_or_changed(self):
        """
        A user removed from C{[users]}, or whose hash changed, before a
        restart has no session after it (it lived until its lifetime, and
        with C{[ldap]} configured issued directory tokens).
        """
        part = self.start(users("alice", "dave", "eve"))
        for name in ("alice", "dave", "eve"):
            self.opened(part, name, PASSWORD, USERS[name])
        changed = {**USERS, "dave": USERS["alice"]}
        after = self.start(users("alice", "dave", hashes=changed) + LDAP)
        self.assertEqual(self.users_of(after), [("alice", PASSWORD)])
        # (and the file says so: a later start keeps only alice's)
        again = self.start(users("alice", "dave", "eve"))
        self.assertEqual(self.users_of(again), [("alice", PASSWORD)])

    def test_single_sign_on_narrowed_removed_or_elsewhere(self):
        """A restart that narrows C{allow}, removes C{[sso]} or changes the provider ends its sessions."""
        key = provider_key(ISSUER, "pypid")
        for changed in (sso(allow="group:qa"), "", sso(OTHER_ISSUER),
                        users("carol", hashes={"carol": USERS["alice"]}) + sso()):
            with self.subTest(changed=changed):
                shutil.rmtree(os.path.join(self.folder, "var"), ignore_errors=True)
                part = self.start(sso())
                self.opened(part, "carol", PROVIDER, key, groups={"platform"})
                self.assertEqual(self.start(sso()).sessions.book.sessions.keys(),
                                 part.sessions.book.sessions.keys())
                after = self.start(changed)
                self.assertEqual(self.users_of(after), [])

    def test_carol_in_users_when_added(self):
        hashes = {**USERS, "carol": USERS["alice"]}
        part = self.start(sso())
        self.opened(part, "carol", PROVIDER, provider_key(ISSUER, "pypid"))
        self.assertEqual(self.users_of(self.start(users("carol", hashes=hashes) + sso())), [])

    def test_names_read_otherwise(self):
        """
        (Found by a review.) Names read from another claim, or found by
        another filter or attribute, may be other people: their sessions end.
        """
        part = self.start(sso())
        self.opened(part, "carol", PROVIDER, provider_key(ISSUER, "pypid"))
        self.assertEqual(self.users_of(self.start(sso() + "groups_claim = roles\n")), [])
        part = self.start(sso())
        self.opened(part, "carol", PROVIDER, provider_key(ISSUER, "pypid"))
        self.assertEqual(self.users_of(self.start(sso() + "user_claim = email\n")), [])
        part = self.start(LDAP)
        self.opened(part, "bob", DIRECTORY, self.config(LDAP).ldap.key)
        self.assertEqual(self.users_of(self.start(LDAP)), [("bob", DIRECTORY)])
        for other in ("user_filter = (cn={user})\n", "user_name_attribute = cn\n"):
            part = self.start(LDAP)
            self.opened(part, "bob", DIRECTORY, self.config(LDAP).ldap.key)
            self.assertEqual(self.users_of(self.start(LDAP + other)), [], other)

    def test_directory_elsewhere(self):
        part = self.start(LDAP)
        self.opened(part, "bob", DIRECTORY, self.config(LDAP).ldap.key, groups={"platform"})
        self.assertEqual(self.users_of(self.start(LDAP)), [("bob", DIRECTORY)])
        elsewhere = LDAP.replace("127.0.0.1:1", "127.0.0.1:2")
        self.assertEqual(self.users_of(self.start(elsewhere)), [])


class SessionSourceTests(SynchronousTestCase):
    """A session's identity carries the source it came from, checked at every use."""

    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())
        os.makedirs(self.folder)
        self.reactor = ThreadedReactor()
        self.reactor.advance(1_767_225_600)

    def part(self, text):
        return identity_part(self.folder, self.reactor, text)

    def identity(self, part, value):
        identification: Identification = part.access._identification
        return self.successResultOf(
            identification._session_identity(page_request(b"pypid-session", value)))

    def test_source_kept(self):
        """
        A password user's session is a password login, whatever C{[ldap]}
        says; a directory user's, the directory's with the directory's key.
        """
        part = self.part(users("alice") + LDAP)
        book = part.sessions.book
        value, _ = book.open("alice", (), PASSWORD, self.reactor.seconds(), randomness(1),
                             USERS["alice"])
        self.assertEqual(self.identity(part, value), Identity("alice", login=LOCAL))
        key = part._config.ldap.key
        value, _ = book.open("bob", {"platform"}, DIRECTORY, self.reactor.seconds(),
                             randomness(2), key)
        self.assertEqual(self.identity(part, value).login,
                         LoginSource(DIRECTORY, frozenset({"platform"}), key))

    def test_no_longer_vouched_for(self):
        """
        A session its source no longer vouches for stands for nobody, and
        ends, even when no reload ended it first (alice's hash is not the
        one she logged in with; bob's stamp names another directory).
        """
        part = self.part(users("alice") + LDAP)
        book = part.sessions.book
        value, _ = book.open("alice", (), PASSWORD, self.reactor.seconds(), randomness(1),
                             USERS["dave"])
        self.assertIsNone(self.identity(part, value))
        self.assertEqual(book.sessions, {})
        value, _ = book.open("bob", (), DIRECTORY, self.reactor.seconds(), randomness(2),
                             "ldap elsewhere")
        # (used a while after its login: the book holds a newer value of it)
        self.reactor.advance(60)
        self.assertIsNone(self.identity(part, value))
        self.assertEqual(book.sessions, {})
