"""Tests of L{pypid.auth.tokens}: issuing, verifying, scoping, revoking and keeping tokens."""

import os
import stat

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.tokens import TokenBook, TokenError, read_file, write_file


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
        from pypid.core.http_errors import Unauthorized
        from pypid.web.access import Access

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
        access = Access(AccessModel(), verifier, tokens=book)
        identity = self.successResultOf(access.identify(Request(text)))
        self.assertEqual((identity.name, identity.token.user), ("alice", "alice"))
        verifier.users = set()
        self.failureResultOf(access.identify(Request(text)), Unauthorized)
