"""
Browser sessions (issue 44): the book of sessions (pure, with a stateful
model), its file, and C{/login} and C{/logout} on the site built as the
server builds it, in memory.
"""

import json
import os
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.factory import directory_key
from pypid.auth.policy import AccessModel
from pypid.auth.verifier import PasswordVerifier
from pypid.config import load_config
from pypid.config.errors import ConfigError, StartupError
from pypid.core.access.access_rules import parse_rule
from pypid.core.access.sessions import (
    ID_BYTES,
    MAX_PER_USER,
    Session,
    SessionBook,
    SessionFileError,
)
from pypid.web.identity.browser_sessions import (
    PLAIN_COOKIE,
    SECURE_COOKIE,
    BrowserSessions,
    load_book,
)
from pypid.web.identity.identity_part import make_sessions, sessions_path, still_a_user
from pypid.web.pages.browser_login import next_path
from tests.harness.fakes import run_now, site_treq
from tests.harness.web import (
    ORIGIN,
    PASSWORD,
    SESSION_IDLE,
    SESSION_LIFETIME,
    USERS,
    WHEEL,
    WHEEL_NAME,
    NoCookieJar,
    basic,
    randomness,
)

T0 = 1_767_225_600.0
HOUR = 3600.0


def book(idle=1800.0, lifetime=12 * HOUR, seed=0):
    return SessionBook.new(idle, lifetime, randomness(seed))


class SessionBookTests(SynchronousTestCase):
    """The book: cookies' values, timeouts, ends, and its file's bytes."""

    def test_open_and_find(self):
        """A value names its session; the book keeps its id's digest, not the id."""
        b = book()
        value, session = b.open("alice", {"ops"}, "ldap", T0, randomness(1))
        session_id, mac = value.split(".")
        self.assertEqual(len(session_id), 43)
        digest, found = b.find(value, T0 + 1)
        self.assertEqual(found, session)
        self.assertEqual((found.user, found.groups, found.source), ("alice", {"ops"}, "ldap"))
        self.assertNotIn(session_id, b.dumps().decode())
        self.assertNotIn(mac, b.dumps().decode())
        self.assertIn(digest, b.dumps().decode())

    def test_forged_values(self):
        """A value the book did not issue names nothing: no lookup is even tried."""
        b, other = book(seed=1), book(seed=2)
        value, _ = b.open("alice", (), "password", T0, randomness(3))
        session_id, mac = value.split(".")
        forged_mac = other._mac(session_id)
        for bad in ("", ".", value + "x", session_id, session_id + "." + forged_mac,
                    session_id + "." + mac[:-1], "A" * 43 + "." + mac, value.upper(),
                    "é" * 43 + "." + mac, value + "." + mac, "x" * 300):
            self.assertIsNone(b.find(bad, T0), bad)
        # (a book with another key issues values this one refuses, and the other way)
        value2, _ = other.open("alice", (), "password", T0, randomness(3))
        self.assertIsNone(b.find(value2, T0))

    def test_idle_and_lifetime(self):
        """Unused for C{idle} it ends; used, it lasts until C{lifetime}, never longer."""
        b = book(idle=100, lifetime=250)
        value, _ = b.open("alice", (), "password", T0, randomness())
        self.assertIsNotNone(b.find(value, T0 + 99))
        self.assertIsNone(b.find(value, T0 + 100))
        self.assertEqual(b.sessions, {})  # (closed when found timed out)
        value, _ = b.open("alice", (), "password", T0, randomness(1))
        for t in (90, 180):
            digest, _ = b.find(value, T0 + t)
            b.touch(digest, T0 + t)
        self.assertIsNotNone(b.find(value, T0 + 249))
        self.assertIsNone(b.find(value, T0 + 250))

    def test_close_revoke_sweep(self):
        b = book(idle=100, lifetime=1000)
        alice, _ = b.open("alice", (), "password", T0, randomness(1))
        bob, _ = b.open("bob", (), "ldap", T0, randomness(2))
        carol, _ = b.open("carol", (), "password", T0 + 50, randomness(3))
        digest, _ = b.find(alice, T0)
        self.assertTrue(b.close(digest))
        self.assertFalse(b.close(digest))
        self.assertIsNone(b.find(alice, T0))
        self.assertEqual(b.revoke(lambda s: s.source == "ldap"), 1)
        self.assertIsNone(b.find(bob, T0))
        self.assertEqual(b.sweep(T0 + 149), 0)
        self.assertEqual(b.sweep(T0 + 150), 1)
        self.assertIsNone(b.find(carol, T0))

    def test_per_user_cap_and_replacing(self):
        """
        A login past L{MAX_PER_USER} ends the user's least recently used
        session (logins in a loop do not grow the book); a login from a
        browser that had a session ends that one.
        """
        b = book()
        values = [b.open("alice", (), "password", T0 + i, randomness(i))[0]
                  for i in range(MAX_PER_USER + 3)]
        self.assertEqual(len(b.sessions), MAX_PER_USER)
        self.assertEqual([b.find(v, T0 + 30) is not None for v in values],
                         [False] * 3 + [True] * MAX_PER_USER)
        b.open("bob", (), "password", T0, randomness(99))
        self.assertEqual(len(b.sessions), MAX_PER_USER + 1)
        digest, _ = b.find(values[-1], T0 + 30)
        newer, _ = b.open("alice", (), "password", T0 + 31, randomness(100), replacing=digest)
        self.assertIsNone(b.find(values[-1], T0 + 31))
        self.assertIsNotNone(b.find(newer, T0 + 31))

    def test_stamp(self):
        """A password user's session keeps a stamp of their password's hash, never the hash."""
        b = book()
        _, session = b.open("alice", (), "password", T0, randomness(), stored="$argon2id$x")
        self.assertEqual(session.stamp, b.stamp_of("$argon2id$x"))
        self.assertNotEqual(session.stamp, b.stamp_of("$argon2id$y"))
        self.assertNotIn("argon2id", b.dumps().decode())
        self.assertEqual(b.stamp_of(None), "")

    def test_csrf(self):
        """A form's token matches its own session only, compared in constant time."""
        b = book()
        _, alice = b.open("alice", (), "password", T0, randomness(1))
        _, bob = b.open("alice", (), "password", T0, randomness(2))
        self.assertNotEqual(alice.csrf, bob.csrf)
        self.assertTrue(b.csrf_matches(alice, alice.csrf))
        for presented in (None, "", bob.csrf, alice.csrf[:-1], alice.csrf + "x", "é"):
            self.assertFalse(b.csrf_matches(alice, presented), presented)

    def test_unknown_source(self):
        self.assertRaises(ValueError, book().open, "alice", (), "token", T0, randomness())

    def test_file_round_trip(self):
        """The file brings back every session that has not timed out, and the key."""
        b = book(idle=100, lifetime=1000)
        kept, _ = b.open("alice", {"a", "b"}, "ldap", T0, randomness(1))
        gone, _ = b.open("bob", (), "password", T0 - 200, randomness(2))
        again = SessionBook.loads(b.dumps(), 100, 1000, T0 + 10)
        self.assertEqual(again.key, b.key)
        self.assertIsNotNone(again.find(kept, T0 + 10))
        self.assertIsNone(again.find(gone, T0 + 10))
        self.assertEqual(len(again.sessions), 1)
        # (a directory user's groups read again, and when: issue 59)
        digest, _ = again.find(kept, T0 + 10)
        self.assertEqual(again.regroup(digest, {"c"}, T0 + 5).groups_read, T0 + 5)
        third = SessionBook.loads(again.dumps(), 100, 1000, T0 + 10)
        self.assertEqual(third.sessions[digest].groups, {"c"})
        self.assertEqual(third.sessions[digest].checked, T0 + 5)
        self.assertIsNone(third.regroup("0" * 64, (), T0))

    def test_bad_files(self):
        """A file that cannot be used is refused naming what is wrong, never half read."""
        b = book()
        b.open("alice", (), "password", T0, randomness(1))
        good = json.loads(b.dumps())
        record = good["sessions"][0]

        def with_(**changes):
            doc = json.loads(json.dumps(good))
            doc["sessions"][0].update(changes)
            return json.dumps(doc).encode()
        cases = [
            (b"", "not JSON"), (b"[]", "format"), (b'{"format": "other"}', "format"),
            (json.dumps({**good, "key": "short"}).encode(), "key"),
            (json.dumps({**good, "sessions": {}}).encode(), "sessions"),
            (json.dumps({**good, "sessions": [7]}).encode(), "session 1: a session"),
            (with_(digest="zz"), "digest"), (with_(user=""), "user"),
            (with_(source="token"), "source"), (with_(csrf=5), "csrf"),
            (with_(groups="ops"), "groups"), (with_(created="soon"), "created"),
            (with_(seen=-1), "seen"), (with_(seen=True), "seen"),
            (b"\xff\xfe", "not JSON"),
        ]
        for data, why in cases:
            e = self.assertRaises(SessionFileError, SessionBook.loads, data, 1, 1, T0)
            self.assertIn(why, str(e), data)
        self.assertEqual(Session.from_json(record)[0], record["digest"])

    def test_body_fields(self):
        """A form body's fields come back as the bytes sent: UTF-8, latin-1 or neither."""
        from io import BytesIO

        from twisted.web.test.requesthelper import DummyRequest

        from pypid.web.pages.browser_login import body_fields
        request = DummyRequest([b""])
        request.content = BytesIO(b"user=al%C3%A4ce&password=p%E4ss+w%2Bord&user=second&x")
        self.assertEqual(body_fields(request), {b"user": "aläce".encode(),
                                                b"password": b"p\xe4ss w+ord", b"x": b""})

    def test_next_path(self):
        """After logging in, a browser goes to a page of this site, never elsewhere."""
        for ok in ("/", "/project/x/", "/staging/search?q=a"):
            self.assertEqual(next_path(ok), ok)
        for bad in ("", "//evil.example/", "https://evil.example/", "/\\evil.example",
                    "/a\r\nSet-Cookie: x=1", "javascript:alert(1)", "/" + "a" * 3000,
                    "/a b"):
            self.assertEqual(next_path(bad), "./", bad)


class SessionModel(RuleBasedStateMachine):
    """
    The book against a model: whatever the order of logins, uses, logouts,
    revocations, sweeps, restarts (through the file) and time passing, a
    value finds its session exactly while the model says it is open.
    """

    IDLE, LIFETIME = 100.0, 350.0

    @initialize()
    def start(self):
        self.now = T0
        self.random = randomness(7)
        self.book = SessionBook.new(self.IDLE, self.LIFETIME, self.random)
        #: value -> [user, created, seen, open]
        self.model = {}

    def _alive(self, entry):
        return entry[3] and self.now - entry[2] < self.IDLE and self.now - entry[1] < self.LIFETIME

    @rule(user=st.sampled_from(["alice", "bob", "carol"]))
    def log_in(self, user):
        # (past MAX_PER_USER, a login ends the user's least recently used
        # session the book holds; the model once forgot it and failed at
        # the seventeenth login in a row)
        held = sorted((entry[2], self.book._digest_of(value), value)
                      for value, entry in self.model.items()
                      if entry[0] == user and self.book._digest_of(value) in self.book.sessions)
        for _, _, value in held[:max(0, len(held) - MAX_PER_USER + 1)]:
            self.model[value][3] = False
        value, _ = self.book.open(user, (), "password", self.now, self.random)
        self.model[value] = [user, self.now, self.now, True]

    @rule(seconds=st.floats(0, 200))
    def wait(self, seconds):
        self.now += seconds

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def use(self, data):
        value = data.draw(st.sampled_from(sorted(self.model)))
        entry = self.model[value]
        found = self.book.find(value, self.now)
        alive = self._alive(entry)
        assert (found is not None) == alive, (entry, self.now)
        if found is not None:
            self.book.touch(found[0], self.now)
            entry[2] = self.now
        else:
            entry[3] = False

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def log_out(self, data):
        value = data.draw(st.sampled_from(sorted(self.model)))
        found = self.book.find(value, self.now)
        if found is not None:
            self.book.close(found[0])
        self.model[value][3] = False

    @rule(user=st.sampled_from(["alice", "bob", "carol"]))
    def remove_user(self, user):
        self.book.revoke(lambda s: s.user == user)
        for entry in self.model.values():
            if entry[0] == user:
                entry[3] = False

    @rule()
    def sweep(self):
        self.book.sweep(self.now)

    @rule()
    def restart(self):
        self.book = SessionBook.loads(self.book.dumps(), self.IDLE, self.LIFETIME, self.now)

    @invariant()
    def agrees(self):
        if not hasattr(self, "model"):
            return
        live = sum(1 for entry in self.model.values() if self._alive(entry))
        # (the book may still hold a timed-out session nobody used or swept)
        assert live <= len(self.book.sessions)
        for value, entry in self.model.items():
            if self._alive(entry):
                digest = self.book._digest_of(value)
                assert digest in self.book.sessions


class SessionModelTests(SynchronousTestCase):
    """The model above, run (trial runs no C{runTest} of its own)."""

    def test_model(self):
        case = SessionModel.TestCase
        case.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
        case(methodName="runTest").runTest()


class SessionFileTests(SynchronousTestCase):
    """The file beside the snapshot: written at once on logout, read back at start-up."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.folder = self.mktemp()
        os.makedirs(self.folder)
        self.path = os.path.join(self.folder, "sessions.json")

    def sessions(self):
        b = load_book(self.path, 1800, 12 * HOUR, self.clock.seconds())
        return BrowserSessions(b, self.path, self.clock, run_now)

    def test_no_file(self):
        """No file: an empty book with a new key, and no file written until a session."""
        s = self.sessions()
        self.assertEqual(s.book.sessions, {})
        self.assertEqual(len(s.book.key), ID_BYTES)
        self.successResultOf(s.tick())
        self.assertFalse(os.path.exists(self.path))

    def test_survives_restart(self):
        """A session opened before a restart is open after it; one closed stays closed."""
        s = self.sessions()
        value, _ = s.book.open("alice", (), "password", T0, os.urandom)
        self.successResultOf(s.save())
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)
        again = self.sessions()
        digest, _ = again.book.find(value, T0)
        again.book.close(digest)
        self.successResultOf(again.save())
        self.assertIsNone(self.sessions().book.find(value, T0))

    def test_unusable_file(self):
        with open(self.path, "wb") as f:
            f.write(b"{}")
        e = self.assertRaises(SessionFileError, self.sessions)
        self.assertIn(self.path, str(e))
        self.assertIn("format", str(e))

    def test_writes_coalesce(self):
        """Logins while a write is under way share the next write: never a queue of them."""
        from twisted.internet.defer import Deferred
        held = []

        def run(f, *args):
            d = Deferred()
            held.append((d, f, args))
            return d
        s = BrowserSessions(load_book(self.path, 1800, 12 * HOUR, T0), self.path, self.clock, run)
        firsts = [s.save()]
        later = [s.save() for _ in range(50)]
        self.assertEqual(len(held), 1)
        d, f, args = held.pop()
        f(*args)
        d.callback(None)
        self.assertEqual([self.successResultOf(x) for x in firsts], [None])
        self.assertEqual(len(held), 1)
        d, f, args = held.pop()
        f(*args)
        d.callback(None)
        self.assertEqual([self.successResultOf(x) for x in later], [None] * 50)
        self.assertEqual(held, [])

    def test_failed_write_retried(self):
        """A write that failed fails its waiters (a logout answers so), and the tick tries again."""
        s = self.sessions()
        real = s.path
        s.path = os.path.join(self.folder, "missing", "\0", "sessions.json")
        s.book.open("alice", (), "password", T0, os.urandom)
        self.failureResultOf(s.save())
        s.path = real
        self.successResultOf(s.tick())
        self.assertEqual(len(self.sessions().book.sessions), 1)

    def test_tick(self):
        """Every minute: the sessions that timed out are swept, and their use written."""
        s = self.sessions()
        value, _ = s.book.open("alice", (), "password", T0, os.urandom)
        self.successResultOf(s.save())
        self.clock.advance(1800)
        self.successResultOf(s.tick())
        self.assertEqual(self.sessions().book.sessions, {})


class SharedSessionsTests(SynchronousTestCase):
    """Two workers' browser sessions over one file (a machine's)."""

    def setUp(self):
        from pypid.machine.ring import ChangeRing
        from pypid.machine.topics import Hub
        from pypid.storage.folder.shared_file import SharedFile
        self.clock = Clock()
        self.clock.advance(T0)
        self.path = os.path.join(os.path.abspath(self.mktemp()), "sessions.json")
        ring = ChangeRing.create(slots=16, slot_size=128)
        self.addCleanup(ring.close)
        self.workers = []
        for number in (1, 2):
            worker = ChangeRing.attach(ring.fileno(), number)
            self.addCleanup(worker.close)
            shared = SharedFile(self.path, Hub(worker), run_now, ".sessions-")
            shared.change_now(lambda current: current if current is not None
                              else SessionBook.new(1800, 12 * HOUR, os.urandom).dumps())
            self.workers.append(BrowserSessions(
                load_book(self.path, 1800, 12 * HOUR, T0), self.path, self.clock, run_now,
                shared=shared))

    def login(self, sessions, user):
        """Open a session through C{sessions}; the cookie's value."""
        from twisted.web.test.requesthelper import DummyRequest
        request = DummyRequest([b""])
        request.getCookie = lambda name: None
        request.isSecure = lambda: False
        self.successResultOf(sessions.open(request, user, frozenset(), "password"))
        cookie = request.responseHeaders.getRawHeaders(b"set-cookie")[0]
        return cookie.split(b"=", 1)[1].split(b";", 1)[0].decode()

    def test_one_key(self):
        """Every worker's cookies are of the first's key: the file's."""
        one, two = self.workers
        self.assertEqual(one.book.key, two.book.key)

    def test_opened_and_closed_elsewhere(self):
        """
        A session opened on one worker is found on the other after its
        look; each write starts from the file (neither loses the other's);
        one closed on the other is gone from the first after its look.
        """
        one, two = self.workers
        alice = self.login(one, "alice")
        self.assertIsNone(two.book.find(alice, T0))
        self.successResultOf(two.sync())
        self.assertIsNotNone(two.book.find(alice, T0))
        bob = self.login(two, "bob")
        self.successResultOf(one.sync())
        self.assertIsNotNone(one.book.find(bob, T0))
        digest, _ = two.book.find(alice, T0)
        two.end(digest)
        self.successResultOf(one.sync())
        self.assertIsNone(one.book.find(alice, T0))
        self.assertIsNotNone(one.book.find(bob, T0))

    def test_use_shared(self):
        """
        A session used on one worker only is not swept by another whose
        own view of it went idle: each write keeps its latest use.
        """
        one, two = self.workers
        alice = self.login(one, "alice")
        self.successResultOf(two.sync())
        self.clock.advance(1000)
        one.book.touch(one.book.find(alice, self.clock.seconds())[0], self.clock.seconds())
        one._used = True
        self.successResultOf(one.tick())
        self.clock.advance(1000)
        self.successResultOf(two.tick())
        self.successResultOf(one.sync())
        self.assertIsNotNone(one.book.find(alice, self.clock.seconds()))
        self.successResultOf(two.sync())
        self.assertIsNotNone(two.book.find(alice, self.clock.seconds()))


class ConfigTests(SynchronousTestCase):
    """C{[auth] sessions}, C{session_idle}, C{session_lifetime}; who stays at a reload."""

    def config(self, text):
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        path = os.path.join(folder, "pypid.ini")
        with open(path, "w") as f:
            f.write(f"[pypid]\nsnapshot = {folder}/var/index.json\n" + text)
        return load_config(path)

    def test_defaults(self):
        config = self.config("")
        self.assertEqual((config.auth.session_idle, config.auth.session_lifetime),
                         (1800.0, 12 * HOUR))
        self.assertEqual(sessions_path(config),
                         os.path.join(os.path.dirname(config.server.snapshot), "sessions.json"))
        config = self.config("[auth]\nsessions = /tmp/else.json\nsession_idle = 5m\n"
                             "session_lifetime = 1d\n")
        self.assertEqual(sessions_path(config), "/tmp/else.json")
        self.assertEqual((config.auth.session_idle, config.auth.session_lifetime),
                         (300.0, 86400.0))

    def test_bad_values(self):
        for line, key in (("session_idle = soon", "session_idle"),
                          ("session_lifetime = 0", "session_lifetime")):
            e = self.assertRaises(ConfigError, self.config, f"[auth]\n{line}\n")
            self.assertIn(key, str(e))

    def test_unusable_file_at_start(self):
        """A session file that cannot be used stops the start, naming it."""
        config = self.config("")
        path = sessions_path(config)
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.write("nonsense")
        clock = Clock()
        e = self.assertRaises(StartupError, make_sessions, config, clock, None)
        self.assertIn("[auth] sessions", str(e))
        self.assertIn(path, str(e))

    def test_still_a_user(self):
        """At a reload, a session ends once its user is gone from the configuration."""
        verifier = PasswordVerifier({"alice": USERS["alice"]}, Clock(), None)
        plain = self.config("")
        directory = self.config("[ldap]\nurl = ldap://127.0.0.1:1\n"
                                "user_base = ou=people,dc=example,dc=test\n")

        b = book()

        def session(user, source, stored=None):
            return Session(user, frozenset(), source, T0, T0, "c", b.stamp_of(stored))
        alice = session("alice", "password", USERS["alice"])
        self.assertTrue(still_a_user(alice, verifier, plain, b))
        self.assertFalse(still_a_user(session("bob", "password"), verifier, plain, b))
        key = directory_key(directory)
        self.assertFalse(still_a_user(session("bob", "ldap", key), verifier, plain, b))
        self.assertTrue(still_a_user(session("bob", "ldap", key), verifier, directory, b))
        # (another directory, with other users: its bob is another person)
        elsewhere = self.config("[ldap]\nurl = ldap://127.0.0.1:2\n"
                                "user_base = ou=people,dc=example,dc=test\n")
        self.assertFalse(still_a_user(session("bob", "ldap", key), verifier, elsewhere, b))
        self.assertFalse(still_a_user(session("bob", "ldap"), verifier, directory, b))
        # (a local user who took a directory user's name is another person)
        self.assertFalse(still_a_user(session("alice", "ldap", key), verifier, directory, b))
        # (a changed password ends the session)
        changed = PasswordVerifier({"alice": USERS["dave"]}, Clock(), None)
        self.assertFalse(still_a_user(alice, changed, plain, b))


class _LoggedIn(NoCookieJar):
    """A wheel uploaded, and alice logged in through the form: C{self.cookie}."""

    def setUp(self):
        super().setUp()
        self.uploaded()
        response, _ = self.request("POST", "/login", data={"user": "alice",
                                                           "password": PASSWORD})
        name, value, _ = cookie_of(response)
        self.cookie = {"Cookie": f"{name}={value}"}


def cookie_of(response):
    """C{(name, value, attributes)} of the response's one Set-Cookie."""
    values = response.headers.getRawHeaders(b"set-cookie")
    assert values is not None and len(values) == 1, values
    first, *attributes = values[0].decode().split("; ")
    name, _, value = first.partition("=")
    return name, value, attributes


class LoginTests(NoCookieJar, SynchronousTestCase):
    """C{/login} and C{/logout} on the site, over plain HTTP, reads for anyone."""

    def log_in(self, user="alice", password=PASSWORD, next_page=None, code=303):
        form = {"user": user, "password": password}
        if next_page is not None:
            form["next"] = next_page
        response, body = self.request("POST", "/login", data=form)
        self.assertEqual(response.code, code, body)
        return response, body

    def cookie(self, **kwargs):
        response, _ = self.log_in(**kwargs)
        name, value, _ = cookie_of(response)
        return {"Cookie": f"{name}={value}"}

    def events(self):
        return [json.loads(line)["event"] for data in self.audit_trail.log.files.values()
                for line in data.splitlines()]

    def test_form(self):
        """A form, never a password prompt; not kept by any cache."""
        response, body = self.get("/login")
        self.assertEqual(response.code, 200)
        self.assertIsNone(self.header(response, "WWW-Authenticate"))
        self.assertEqual(self.header(response, "Cache-Control"), b"no-store")
        self.assertIn(b"default-src 'none'", self.header(response, "Content-Security-Policy"))
        self.assertIn(b'<form class="account-form" method="post" action="login">', body)
        self.assertIn(b'autocomplete="current-password"', body)
        _, body = self.get("/login?next=/project/x/")
        self.assertIn(b'name="next" value="/project/x/"', body)

    def test_log_in_and_out(self):
        """A right password opens a session; its form logs it out, and the cookie then fails."""
        response, body = self.log_in()
        self.assertEqual(self.header(response, "Location"), b"./")
        self.assertEqual(body, b"Logged in as alice\n")
        name, value, attributes = cookie_of(response)
        self.assertEqual(name, PLAIN_COOKIE.decode())
        self.assertEqual(attributes, [f"Max-Age={int(SESSION_LIFETIME)}", "Path=/", "HttpOnly",
                                      "SameSite=Lax"])
        cookie = {"Cookie": f"{name}={value}"}
        response, body = self.get("/login", headers=cookie)
        self.assertEqual(response.code, 200)
        self.assertIn(b"logged in as <strong>alice</strong>", body)
        csrf = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
        response, _ = self.request("POST", "/logout", headers=cookie, data={"csrf": "wrong"})
        self.assertEqual(response.code, 403)
        response, _ = self.request("POST", "/logout", headers=cookie, data={})
        self.assertEqual(response.code, 403)
        response, _ = self.request("POST", "/logout", headers=cookie, data={"csrf": csrf})
        self.assertEqual(response.code, 303)
        self.assertEqual(cookie_of(response)[1:], ("", ["Max-Age=0", "Path=/", "HttpOnly",
                                                        "SameSite=Lax"]))
        response, body = self.get("/login", headers=cookie)
        self.assertIn(b'action="login"', body)
        self.assertEqual(self.sessions.book.sessions, {})
        self.assertEqual(self.events(), ["session-opened", "session-closed"])

    def test_wrong_password(self):
        """The form again, 401 with no challenge, the name kept; the failure audited."""
        response, body = self.log_in(password="nope", code=401)
        self.assertIsNone(self.header(response, "WWW-Authenticate"))
        self.assertIsNone(response.headers.getRawHeaders(b"set-cookie"))
        self.assertIn(b"The user name or password is not right.", body)
        self.assertIn(b'value="alice"', body)
        self.log_in(user="nobody", code=401)
        self.log_in(user="", code=400)
        self.assertEqual(self.sessions.book.sessions, {})

    def test_password_kept_as_typed(self):
        """The password is checked as typed (its blanks are part of it)."""
        self.log_in(password=" " + PASSWORD, code=401)
        self.log_in(password=PASSWORD + " ", code=401)

    def test_fields_from_the_body_only(self):
        """A password in the URL (kept by logs and histories) logs nobody in."""
        response, _ = self.request("POST", f"/login?user=alice&password={PASSWORD}")
        self.assertEqual(response.code, 400)
        self.assertEqual(self.sessions.book.sessions, {})

    def test_malformed_credentials(self):
        """What no user could have is refused as Basic credentials are, and no check runs."""
        for user, password, why in (("a" * 300, PASSWORD, b"user name too long"),
                                    ("al\x01ice", PASSWORD, b"control characters"),
                                    ("alice", "p" * 5000, b"password too long")):
            response, body = self.request("POST", "/login",
                                          data={"user": user, "password": password})
            self.assertEqual(response.code, 400, user)
            self.assertIn(why, body)

    def test_one_session_per_browser(self):
        """Logging in again from the same browser ends the session it had."""
        cookie = self.cookie()
        response, _ = self.request("POST", "/login", headers=cookie,
                                   data={"user": "alice", "password": PASSWORD})
        self.assertEqual(response.code, 303)
        self.assertEqual(len(self.sessions.book.sessions), 1)
        self.assertNotIn(b"logged in as", self.get("/login", headers=cookie)[1])

    def test_logout_not_saved(self):
        """A logout whose write fails says so (503); the session is ended all the same."""
        cookie = self.cookie()
        _, body = self.get("/login", headers=cookie)
        csrf = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
        self.sessions.path = os.path.join(self.mktemp(), "\0", "sessions.json")
        response, body = self.request("POST", "/logout", headers=cookie, data={"csrf": csrf})
        self.assertEqual(response.code, 503)
        self.assertIn(b"could not save", body)
        self.assertEqual(self.sessions.book.sessions, {})

    def test_no_token_logs_in(self):
        """An API token never opens a session."""
        self.log_in(user="__token__", password="pypid-abc-def", code=400)
        self.assertEqual(self.sessions.book.sessions, {})

    def test_next(self):
        """Once logged in, on to the page asked for, on this site only."""
        response, _ = self.log_in(next_page="/project/holy-grail/")
        self.assertEqual(self.header(response, "Location"), b"./project/holy-grail/")
        response, _ = self.log_in(next_page="//evil.example/")
        self.assertEqual(self.header(response, "Location"), b"./")

    def test_basic_credentials_as_before(self):
        """A client sending Basic credentials to C{GET /login} is sent home, no session opened."""
        response, body = self.get("/login", auth=True)
        self.assertEqual((response.code, body), (303, b"Logged in as alice\n"))
        self.assertIsNone(response.headers.getRawHeaders(b"set-cookie"))
        self.assertEqual(self.get("/login", auth=basic(password="nope"))[0].code, 401)

    def test_idle_and_lifetime(self):
        cookie = self.cookie()
        self.clock.advance(SESSION_IDLE - 1)
        self.assertIn(b"logged in as", self.get("/login", headers=cookie)[1])
        self.clock.advance(SESSION_IDLE - 1)
        self.assertIn(b"logged in as", self.get("/login", headers=cookie)[1])
        self.clock.advance(SESSION_IDLE)
        self.assertNotIn(b"logged in as", self.get("/login", headers=cookie)[1])

    def test_logout_page(self):
        """C{GET /logout}: the form with the session's token, or home without a session."""
        response, _ = self.get("/logout")
        self.assertEqual((response.code, self.header(response, "Location")), (303, b"./"))
        cookie = self.cookie()
        response, body = self.get("/logout", headers=cookie)
        self.assertIn(b'action="logout"', body)
        response, _ = self.request("POST", "/logout", data={"csrf": "x"})
        self.assertEqual(response.code, 303)

    def test_foreign_site(self):
        """Logging in or out from another site's page is refused before anything."""
        cookie = self.cookie()
        for path in ("/login", "/logout"):
            response, _ = self.request("POST", path, data={"user": "alice",
                                                           "password": PASSWORD},
                                       headers={**cookie, "Sec-Fetch-Site": "cross-site"})
            self.assertEqual(response.code, 403, path)
        self.assertEqual(len(self.sessions.book.sessions), 1)


class HostileFormTests(NoCookieJar, SynchronousTestCase):
    """Whatever a client sends to the login and logout forms: a 4xx or a 303, never a 500."""

    @settings(max_examples=200, deadline=None)
    @given(body=st.binary(max_size=600) | st.builds(
               lambda user, password, extra: b"&".join(
                   [b"user=" + user, b"password=" + password, extra]),
               st.binary(max_size=300), st.binary(max_size=300), st.binary(max_size=50)),
           cookie=st.none() | st.binary(max_size=200).map(
               lambda v: PLAIN_COOKIE + b"=" + v.replace(b";", b"").replace(b"\r", b"")
               .replace(b"\n", b"")),
           path=st.sampled_from(["/login", "/logout", "/login?next=%2F%2Fx"]),
           ctype=st.sampled_from(["application/x-www-form-urlencoded", "text/plain",
                                  "multipart/form-data; boundary=x"]))
    def test_never_500(self, body, cookie, path, ctype):
        headers = {"Content-Type": ctype}
        if cookie is not None:
            headers["Cookie"] = cookie.decode("latin-1")
        for method in ("POST", "GET"):
            response, _ = self.request(method, path, headers=headers,
                                       data=body if method == "POST" else None)
            self.assertIn(response.code, (200, 303, 400, 401, 403, 413), (method, path, body))
        self.assertEqual(self.sessions.book.sessions, {})
        self.assertEqual(self.flushLoggedErrors(), [])


class HeaderTests(_LoggedIn, SynchronousTestCase):
    """
    Reads for everyone, one project for alice alone: the header names the
    person a session stands for and offers to log out; caches keep each
    reader's page apart.
    """

    def access_model(self):
        return AccessModel(read="everyone", rules=(parse_rule("holy-*", "user:alice rw"),))

    def test_person_in_the_header(self):
        for path in ("/", "/search?q=grail", "/project/holy-grail/"):
            for _ in range(2):  # (the second from the kept page)
                _, body = self.get(path, headers=self.cookie)
                self.assertIn(b'<span class="person">alice</span><a href="', body, path)
                self.assertIn(b'logout">Log out</a>', body, path)
                # (the console, one click away: issue 60)
                self.assertIn(b'console/">Console</a>', body, path)
                self.assertNotIn(b">Log in<", body, path)
        _, body = self.get("/")
        self.assertNotIn(b">Console<", body)
        _, body = self.get("/login", headers=self.cookie)
        self.assertIn(b'<span class="person">alice</span>', body)

    def test_readers_kept_apart(self):
        """Anonymous readers, alice by Basic and alice by session: each their own page."""
        anonymous = self.get("/")[1]
        self.assertIn(b"0 projects", anonymous)
        with_session = self.get("/", headers=self.cookie)[1]
        self.assertIn(b"1 project,", with_session)
        with_basic = self.get("/", auth=True)[1]
        self.assertIn(b"1 project,", with_basic)
        self.assertNotIn(b"person", with_basic)
        self.assertEqual(self.get("/")[1], anonymous)
        self.assertEqual(self.get("/project/holy-grail/")[0].code, 404)
        self.assertEqual(self.get("/project/holy-grail/", headers=self.cookie)[0].code, 200)
        self.assertNotIn(b"person", self.get("/project/holy-grail/", auth=True)[1])


class ReloadDuringLoginTests(NoCookieJar, SynchronousTestCase):
    """A reload while a login's password is hashed: that check was the old users'."""

    def hashing_pool(self):
        self.held = []

        def hold(reactor, pool, f, *args):
            d = Deferred()
            self.held.append((d, f, args))
            return d
        return hold

    def test_log_in_again(self):
        self.client = site_treq(self.web.site)
        answer = self.client.request("POST", ORIGIN + "/login", allow_redirects=False,
                                     data={"user": "alice", "password": PASSWORD})
        self.assertNoResult(answer)
        self.access.reconfigure(self.access.model, PasswordVerifier({}, self.clock, None), None)
        while self.held:
            d, f, args = self.held.pop(0)
            d.callback(f(*args))
        self.client.flush()
        response = self.successResultOf(answer)
        self.assertEqual(response.code, 503)
        self.assertIn(b"reloaded", self.successResultOf(response.content()))
        self.assertEqual(self.sessions.book.sessions, {})


class ClosedIndexTests(_LoggedIn, SynchronousTestCase):
    """
    Reads for authenticated users only: a session stands for its person on
    the pages for people, never on the simple API, the files, uploads or
    the JSON API.
    """

    read = "authenticated"

    def test_pages_for_people(self):
        for path in ("/", "/search?q=grail", "/project/holy-grail/", "/api/search?q=grail"):
            self.assertEqual(self.get(path)[0].code, 401, path)
            self.assertEqual(self.get(path, headers=self.cookie)[0].code, 200, path)

    def test_browser_sent_to_the_form(self):
        """
        A person opening a page without a session is sent to the form (and
        back once logged in); a tool gets the 401 and its challenge.
        """
        document = {"Sec-Fetch-Dest": "document"}
        for path, location in (("/", "login?next=/"),
                               ("/project/holy-grail/", "../../login?next=/project/holy-grail/"),
                               ("/search?q=a%20b", "login?next=/search%3Fq%3Da%2520b")):
            response, _ = self.get(path, headers=document)
            self.assertEqual((response.code, self.header(response, "Location")),
                             (303, location.encode()), path)
            self.assertIsNone(self.header(response, "WWW-Authenticate"))
            response, _ = self.get(path)
            self.assertEqual(response.code, 401)
            self.assertIsNotNone(self.header(response, "WWW-Authenticate"))
        # (wrong credentials a browser sent are answered as they always were)
        response, _ = self.get("/", headers={**document, "Authorization": basic(password="x")})
        self.assertEqual(response.code, 401)
        # (never the simple API: pip and uv send no Sec-Fetch-Dest, but a browser would)
        self.assertEqual(self.get("/simple/", headers=document)[0].code, 401)

    def test_private_pages(self):
        """A page read through a session is the person's: no shared cache keeps it."""
        response, _ = self.get("/project/holy-grail/", headers=self.cookie)
        self.assertEqual(self.header(response, "Cache-Control"),
                         b"private, max-age=0, must-revalidate")
        self.assertIn(b"Cookie", self.header(response, "Vary"))
        response, _ = self.get("/project/holy-grail/", auth=True)
        self.assertNotIn(b"private", self.header(response, "Cache-Control"))

    def test_never_the_apis(self):
        for path in ("/simple/", "/simple/holy-grail/", f"/files/holy-grail/{WHEEL_NAME}",
                     "/pypi/holy-grail/json", "/api/tokens", "/api/audit"):
            self.assertEqual(self.get(path, headers=self.cookie)[0].code, 401, path)
        response, _ = self.upload_with(self.cookie)
        self.assertEqual(response.code, 401)

    def upload_with(self, headers):
        from tests.harness.fakes import multipart_body, twine_fields
        fields = twine_fields("Holy.Grail", "1.1", WHEEL)
        ctype, body = multipart_body(fields, [("content", WHEEL_NAME, WHEEL)])
        return self.request("POST", "/legacy/", headers={"Content-Type": ctype, **headers},
                            data=body)

    def test_logged_out_session_reads_nothing(self):
        _, body = self.get("/login", headers=self.cookie)
        csrf = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
        self.request("POST", "/logout", headers=self.cookie, data={"csrf": csrf})
        self.assertEqual(self.get("/", headers=self.cookie)[0].code, 401)

    def test_removed_user(self):
        """A session whose user a reload removed reads nothing more."""
        self.sessions.revoke(lambda s: s.user == "alice")
        self.assertEqual(self.get("/", headers=self.cookie)[0].code, 401)


class SecureCookieTests(NoCookieJar, SynchronousTestCase):
    """Behind HTTPS (C{base_url} https): the C{__Host-} cookie, C{Secure}."""

    base_url = "https://pypi.internal.example/"

    def test_secure(self):
        response, _ = self.request("POST", "/login", data={"user": "alice",
                                                           "password": PASSWORD})
        name, value, attributes = cookie_of(response)
        self.assertEqual(name, SECURE_COOKIE.decode())
        self.assertIn("Secure", attributes)
        self.assertIn("Path=/", attributes)
        self.assertFalse(any(a.startswith("Domain") for a in attributes))
        # (the plain cookie's name is not read here)
        response, body = self.get("/login", headers={"Cookie": f"{PLAIN_COOKIE.decode()}={value}"})
        self.assertNotIn(b"logged in as", body)
        response, body = self.get("/login", headers={"Cookie": f"{name}={value}"})
        self.assertIn(b"logged in as", body)


class NamedIndexTests(SynchronousTestCase):
    """A session stands for its person on a named index's pages, never its simple pages."""

    def test_hidden_index(self):
        from tests.harness.indexes import Server
        server = Server(self)
        server.client = site_treq(server.web.site)
        code, headers, _ = server.request("POST", "/login", data={"user": "carol",
                                                                   "password": PASSWORD})
        self.assertEqual(code, 303)
        first = headers.getRawHeaders(b"set-cookie")[0].decode().split(";")[0]
        cookie = {"Cookie": first}
        for path in ("/secret/", "/secret/search?q=x", "/secret/api/search?q=x"):
            server.client = site_treq(server.web.site)
            self.assertEqual(server.request("GET", path, headers=cookie)[0], 200, path)
            server.client = site_treq(server.web.site)
            code, headers, _ = server.request("GET", path,
                                              headers={"Sec-Fetch-Dest": "document"})
            self.assertEqual(code, 303, path)
            self.assertTrue(headers.getRawHeaders(b"location")[0].startswith(b"../"), path)
        for path in ("/secret/simple/", "/secret/files/x/x-1.0.tar.gz"):
            server.client = site_treq(server.web.site)
            self.assertEqual(server.request("GET", path, headers=cookie)[0], 401, path)
