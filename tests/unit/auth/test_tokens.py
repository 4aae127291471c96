"""Tests of L{pypid.auth.tokens}: issuing, verifying, scoping, revoking and keeping tokens."""

import os
import stat

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.tokens import TokenBook, TokenError, write_file
from pypid.storage.base.disk import read_if_present as read_file


class TokenBookTests(SynchronousTestCase):
    """The tokens in memory."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.book = TokenBook(self.clock)

    def test_issue_and_verify(self):
        """An issued token verifies; the stored record has no secret."""
        text, token = self.book.issue("alice", {"upload"}, ["acme-*"], 3600, "CI")
        self.assertTrue(text.startswith("pypid-" + token.id + "-"))
        self.assertEqual(self.book.verify(text), token)
        secret = text.split("-", 2)[2]  # (the secret itself may hold "-")
        self.assertGreater(len(secret), 40)
        self.assertNotIn(secret, self.book.dumps().decode())
        self.assertNotIn("digest", self.book.listing()[0])

    def test_index_scope(self):
        """
        A token may be kept to some indexes (issue 26): it covers nothing
        elsewhere; the record says so only when scoped, so the records of
        other tokens are written as before; a name that is no index of the
        server is refused naming the field.
        """
        from pypid.auth.tokens import Token, TokenError
        text, token = self.book.make("alice", {"upload"}, ["acme-*"], indexes=["staging"],
                                     known_indexes={"default", "staging"})
        self.assertEqual(token.indexes, ("staging",))
        self.assertTrue(token.covers("upload", "acme-x", "staging"))
        self.assertFalse(token.covers("upload", "acme-x", "default"))
        self.assertTrue(token.covers("upload", "acme-x"))  # (no index asked: the scope of old)
        self.assertEqual(Token.from_json(token.to_json()), token)
        _, everywhere = self.book.make("alice", {"upload"})
        self.assertNotIn("indexes", everywhere.to_json())
        self.assertTrue(everywhere.covers("upload", "x", "staging"))
        e = self.assertRaises(TokenError, self.book.make, "alice", {"read"},
                              indexes=["stagign"], known_indexes={"default", "staging"})
        self.assertEqual(str(e), "indexes: 'stagign' is not an index of this server you "
                                 "may use (yours are default, staging)")
        self.assertRaises(TokenError, self.book.make, "alice", {"read"}, indexes=["Bad_Name"])
        bad = dict(token.to_json(), indexes=["../x"])
        self.assertRaises(TokenError, Token.from_json, bad)

    def test_wrong_secret(self):
        """Another secret, a made-up id or another form: not a token."""
        text, token = self.book.issue("alice", {"read"})
        self.assertIsNone(self.book.verify(text[:-1] + ("A" if text[-1] != "A" else "B")))
        self.assertIsNone(self.book.verify("pypid-000000000000-x"))
        self.assertIsNone(self.book.verify("not a token"))
        self.assertIsNone(self.book.verify("pypid-" + token.id))

    def test_expiry(self):
        """A token stops working when it expires."""
        text, _ = self.book.issue("alice", {"read"}, lifetime=60)
        self.clock.advance(59)
        self.assertIsNotNone(self.book.verify(text))
        self.clock.advance(1)
        self.assertIsNone(self.book.verify(text))

    def test_revoke(self):
        """A revoked token stops working at once."""
        text, token = self.book.issue("alice", {"read"})
        self.assertTrue(self.book.revoke(token.id))
        self.assertIsNone(self.book.verify(text))
        self.assertFalse(self.book.revoke(token.id))

    def test_scope(self):
        """Actions and project patterns limit what a token covers."""
        _, token = self.book.issue("alice", {"upload"}, ["Acme_*", "tool"])
        self.assertTrue(token.covers("upload", "acme-x"))
        self.assertTrue(token.covers("upload", "Tool"))
        self.assertFalse(token.covers("upload", "other"))
        self.assertFalse(token.covers("read", "acme-x"))
        _, everywhere = self.book.issue("alice", {"read", "upload"})
        self.assertTrue(everywhere.covers("read", "anything"))

    def test_refused(self):
        """Unknown actions, bad patterns and non-positive lifetimes are refused."""
        for args in (({"delete"},), (set(),), ({"read"}, ["a b"]), ({"read"}, (), 0)):
            self.assertRaises(TokenError, self.book.issue, "alice", *args)

    def test_file_round_trip(self):
        """The file keeps every token; its mode is 0600."""
        text, token = self.book.issue("alice", {"upload"}, ["acme-*"], 3600, "CI")
        path = os.path.join(self.mktemp(), "tokens.json")
        write_file(path, self.book.dumps())
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        other = TokenBook(self.clock)
        other.loads(read_file(path))
        self.assertEqual(other.verify(text), token)
        self.assertIsNone(read_file(path + ".missing"))
        self.assertRaises(TokenError, other.loads, b"{}")


    def test_hand_edited_times_refused(self):
        """
        A token file whose expiry or creation time is not a finite number
        (edited by hand) is refused at load, naming the token and its line:
        it was taken, and every use of the token answered 500.
        """
        import json
        self.book.issue("alice", {"upload"}, ["acme-*"], 3600, "CI")
        text, token = self.book.issue("bob", {"read"}, [], 3600, "other")
        for field, value in (("expires", "soon"), ("expires", "NaN"), ("expires", True),
                             ("created", "yesterday"), ("expires", float("inf"))):
            data = json.loads(self.book.dumps())
            [record] = [r for r in data["tokens"] if r["id"] == token.id]
            record[field] = value if value != "NaN" else float("nan")
            body = json.dumps(data, indent=1, sort_keys=True).encode()
            other = TokenBook(self.clock)
            with self.assertRaises(TokenError) as caught:
                other.loads(body)
            message = str(caught.exception)
            self.assertIn(field, message)
            self.assertIn(token.id, message)
            line = next(n for n, text_line in enumerate(body.decode().splitlines(), 1)
                        if f'"id": "{token.id}"' in text_line)
            self.assertIn(f"line {line}", message)
            self.assertEqual(other.tokens, {})


class TokenAccessTests(SynchronousTestCase):
    """Tokens at the gate: __token__ with a token acts for its issuer while they exist."""

    def test_issuer_must_exist(self):
        """A token of a user who is no longer a user is refused."""
        import base64

        from twisted.web.http_headers import Headers

        from pypid.auth.policy import AccessModel
        from pypid.core.util.http_errors import Unauthorized
        from pypid.web.identity.gates import Gates

        class Verifier:
            users = {"alice"}

            def knows(self, user):
                return user in self.users

        class Request:
            def __init__(self, token):
                value = base64.b64encode(f"__token__:{token}".encode())
                self.requestHeaders = Headers({b"authorization": [b"Basic " + value]})

        book = TokenBook(Clock())
        text, _ = book.issue("alice", {"read"})
        verifier = Verifier()
        access = Gates(AccessModel(), verifier, tokens=book)
        identity = self.successResultOf(access.identify(Request(text)))
        self.assertEqual((identity.name, identity.token.user), ("alice", "alice"))
        verifier.users = set()
        self.failureResultOf(access.identify(Request(text)), Unauthorized)


class TokenFileTests(SynchronousTestCase):
    """
    The token file and the book in memory agree whatever the writes and
    reloads do (issue 25): a change is written first and taken after, and
    a reload keeps the book rather than read a file a change may be writing.
    """

    def setUp(self):
        import json

        from pypid.auth.hashes import hash_password
        from pypid.auth.policy import AccessModel
        from pypid.auth.throttle import LoginThrottle
        from pypid.auth.verifier import PasswordVerifier
        from pypid.core.indexes.index import Index
        from pypid.core.indexes.links import file_url_for
        from pypid.storage.folder.journal_files import MemoryJournal
        from pypid.web.app import build_web
        from pypid.web.identity.gates import Gates
        from pypid.web.server.audit_trail import AuditTrail
        from pypid.web.web_inputs import SiteServices, SiteSettings
        from tests.harness.fakes import FAST, one_index, run_in_pool_now, run_now, site_treq
        from tests.harness.memory_storage import MemoryStorage

        self.json = json
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.path = os.path.join(os.path.abspath(self.mktemp()), "tokens.json")
        self.book = TokenBook(self.clock, path=self.path)
        self.text, self.token = self.book.issue("admin", {"upload"}, [], None, "CI")
        write_file(self.path, self.book.dumps())
        self.hashing = run_in_pool_now
        verifier = PasswordVerifier({"admin": hash_password("pw", FAST)}, self.clock, None,
                                    run_in_pool=lambda *args: self.hashing(*args))
        trail = AuditTrail(MemoryJournal(self.clock), self.clock)
        self.access = access = Gates(AccessModel(admins=frozenset({"admin"})), verifier,
                        LoginThrottle(self.clock), self.book, audit=trail)
        self.failing = False

        def run(f, *args):
            if f is write_file and self.failing:
                from twisted.internet.defer import fail
                return fail(OSError(28, "No space left on device"))
            return run_now(f, *args)
        storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)
        self.successResultOf(storage.prepare())
        web = build_web(one_index(Index(file_url_for(None)), storage, self.clock), access, run,
                        self.clock,
                        SiteSettings(max_upload_size=1 << 20),
                        SiteServices(audit=trail))
        self.client = site_treq(web.site)

    def request(self, method, path, data=None):
        import base64
        headers = {"Authorization": b"Basic " + base64.b64encode(b"admin:pw"),
                   "Content-Type": "application/x-www-form-urlencoded"}
        response = self.successResultOf(self.client.request(
            method, "http://pypi.test" + path, headers=headers, data=data))
        return response.code, self.successResultOf(response.content())

    def on_disk(self):
        return {t["id"] for t in self.json.loads(read_file(self.path))["tokens"]}

    def test_failed_revocation_changes_nothing(self):
        """
        A revocation whose write fails answers 503 and leaves the token as
        it was, live and listed, so a retry revokes it (it answered "no
        such token", and the token came back at the next start).
        """
        self.failing = True
        code, _ = self.request("DELETE", f"/api/tokens/{self.token.id}")
        self.assertEqual(code, 503)
        self.assertEqual(self.book.verify(self.text), self.token)
        self.assertEqual(self.on_disk(), {self.token.id})
        self.failing = False
        self.assertEqual(self.request("DELETE", f"/api/tokens/{self.token.id}")[0], 200)
        self.assertIsNone(self.book.verify(self.text))
        self.assertEqual(self.on_disk(), set())

    def test_issue_scoped_to_indexes(self):
        """C{POST /api/tokens} with C{indexes}: kept to those; an unknown one is a 400."""
        code, body = self.request("POST", "/api/tokens", b"actions=upload&indexes=default")
        self.assertEqual(code, 200, body)
        self.assertEqual(self.json.loads(body)["indexes"], ["default"])
        code, body = self.request("POST", "/api/tokens", b"actions=upload&indexes=staging")
        self.assertEqual((code, body), (400, b"indexes: 'staging' is not an index of this "
                                             b"server you may use (yours are default)\n"))

    def test_admin_removed_during_check(self):
        """
        A revocation by an admin removed (by a reload) while its password
        was checked changes nothing: the admin is checked again as the
        change commits (issue 25, defect 7).
        """
        from pypid.auth.policy import AccessModel
        from pypid.auth.verifier import PasswordVerifier
        from tests.harness.fakes import PendingPool, run_in_pool_now

        self.hashing = pool = PendingPool()
        import base64
        revoking = self.client.request(
            "DELETE", f"http://pypi.test/api/tokens/{self.token.id}",
            headers={"Authorization": b"Basic " + base64.b64encode(b"admin:pw")})
        self.access.reconfigure(AccessModel(admins=frozenset({"admin"})), PasswordVerifier(
            {}, self.clock, None, run_in_pool=run_in_pool_now), self.book)
        pool.finish()
        self.client.flush()
        response = self.successResultOf(revoking)
        self.assertEqual(response.code, 401, self.successResultOf(response.content()))
        self.assertEqual(self.book.verify(self.text), self.token)
        self.assertEqual(self.on_disk(), {self.token.id})

    def test_failed_issue_leaves_no_token(self):
        """An issue whose write fails answers 503 and leaves no live, unseen token behind."""
        self.failing = True
        code, _ = self.request("POST", "/api/tokens", b"actions=upload")
        self.assertEqual(code, 503)
        self.assertEqual(set(self.book.tokens), {self.token.id})
        self.failing = False
        code, body = self.request("POST", "/api/tokens", b"actions=upload")
        self.assertEqual(code, 200)
        self.assertEqual(set(self.book.tokens), self.on_disk())
        self.assertEqual(len(self.book.tokens), 2)

    def test_reload_keeps_the_book(self):
        """
        A reload with the same token file keeps the book in memory: it read
        the file while a revocation was writing it, and the revoked token
        came back (6 of 40 revocations raced a reload). A new path is read.
        """
        from pypid.storage.folder.journal_files import MemoryJournal
        from pypid.tap import Options
        from pypid.web.identity.identity_part import IdentityPart
        from pypid.web.server.audit_trail import AuditTrail
        from tests.harness.fakes import run_now
        from tests.harness.tap import AtOncePool, ThreadedReactor
        from tests.harness.web import USERS

        def config(path):
            options = Options()
            options.parseOptions(["--set", f"auth.tokens={path}",
                                  "--set", f"users.admin={USERS['alice']}"])
            return options["config_obj"]
        reactor = ThreadedReactor()
        part = IdentityPart(config(self.path), reactor, AtOncePool(),
                          AuditTrail(MemoryJournal(reactor), reactor), run_now)
        book = part.access.tokens
        self.assertEqual(set(book.tokens), {self.token.id})
        # a revocation taken in memory while the file still says otherwise
        # (its write under way): the reload must not bring the token back
        book.tokens = {}
        part.prepare_reload(config(self.path))()
        self.assertIs(part.access.tokens, book)
        self.assertIsNone(part.access.tokens.verify(self.text))
        other = os.path.join(os.path.dirname(self.path), "other.json")
        write_file(other, self.book.dumps())
        part.prepare_reload(config(other))()
        # (the token made before accounts had ids takes admin's account)
        self.assertEqual(part.access.tokens.verify(self.text),
                         attrs.evolve(self.token, person=part.access.tokens.accounts["admin"]))


    def test_reload_forgets_the_old_file(self):
        """
        In a worker of a machine, a reload that moves the token file stops
        following the old one: its handlers leave the hub (one more set of
        them at each such reload, before).
        """
        from pypid.machine.ring import ChangeRing
        from pypid.machine.topics import Hub
        from pypid.storage.folder.journal_files import MemoryJournal
        from pypid.tap import Options
        from pypid.web.identity.identity_part import IdentityPart
        from pypid.web.server.audit_trail import AuditTrail
        from tests.harness.fakes import run_now
        from tests.harness.tap import AtOncePool, ThreadedReactor
        from tests.harness.web import USERS

        def config(path):
            options = Options()
            options.parseOptions(["--set", f"auth.tokens={path}",
                                  "--set", f"users.admin={USERS['alice']}"])
            return options["config_obj"]
        ring = ChangeRing.create(slots=8, slot_size=128)
        self.addCleanup(ring.close)
        worker = ChangeRing.attach(ring.fileno(), 1)
        self.addCleanup(worker.close)
        hub = Hub(worker)
        reactor = ThreadedReactor()
        part = IdentityPart(config(self.path), reactor, AtOncePool(),
                            AuditTrail(MemoryJournal(reactor), reactor), run_now, hub=hub)

        def handlers():
            return sum(len(listed) for listed in hub._handlers.values()), len(hub._lost)
        before = handlers()
        other = os.path.join(os.path.dirname(self.path), "other.json")
        write_file(other, self.book.dumps())
        part.prepare_reload(config(other))()
        self.assertIsNot(part.access.tokens.shared, None)
        self.assertEqual(handlers(), before)


class TokenRefusalTests(SynchronousTestCase):
    """
    Issue 60: a token used outside its scope is named in the refusal, not
    its user (it said "admin may not upload to six", and admin may).
    """

    def test_names_the_token(self):
        """L{Reader.upload_refusal} names the token its scope refuses, else the user."""
        from twisted.internet.task import Clock

        from pypid.auth.policy import AccessModel
        from pypid.auth.reader import Rules
        from pypid.auth.verifier import Identity
        book = TokenBook(Clock())
        _, token = book.make("admin", ["upload"], ["acme-*"], indexes=["staging"])
        rules = Rules(AccessModel())
        reader = rules.reader(Identity("admin", token))
        self.assertEqual(reader.upload_refusal("six", "six", "staging"),
                         f"token {token.id} may not upload to six (it is kept to acme-*)")
        self.assertEqual(reader.upload_refusal("prod", index="prod"),
                         f"token {token.id} may not upload to prod (it is kept to staging)")
        # (within its scope, the user's own rights refused it)
        self.assertEqual(reader.upload_refusal("acme-x", "acme-x", "staging"),
                         "admin may not upload to acme-x")
        self.assertEqual(rules.reader(Identity("bob")).upload_refusal("six", "six", "staging"),
                         "bob may not upload to six")


class TokenUploadRefusalTests(SynchronousTestCase):
    """The refusal an upload of a token kept to other projects gets, on the site."""

    def test_site(self):
        from tests.harness.web import NoCookieJar

        class Site(NoCookieJar, SynchronousTestCase):
            def token_book(self):
                self.book = TokenBook(self.clock)
                self.text, self.token = self.book.issue("alice", {"upload"}, ["acme-*"])
                return self.book

            def runTest(self):
                pass
        site = Site()
        site.setUp()
        self.addCleanup(site.doCleanups)
        from tests.harness.web import basic
        response, body = site.upload(auth=basic("__token__", site.text))
        self.assertEqual(response.code, 403, body)
        self.assertIn(f"token {site.token.id} may not upload to holy-grail".encode(), body)
