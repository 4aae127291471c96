"""
A token belongs to a person, not to a name: it acts, is listed and is
revoked for the person who made it only, and a token whose person is gone
ends for good, marked so in the token file, at the start or the reload
that saw them go. Each case is tried by a restart (a new daemon's access
part on the same files) and by a reload (C{SIGHUP}: the part's
C{prepare_reload}, then its commit).
"""

import json
import os

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.access.outside_logins import PASSWORD, PROVIDER, LoginSource
from pypid.core.access.sso_flow import provider_key
from tests.harness.tap import ThreadedReactor, identity_part, part_config
from tests.harness.web import USERS

ISSUER = "https://login.corp.example/realms/acme"
OTHER_ISSUER = "https://login.corp.example/realms/other"
DAY = 86400.0


def users(**hashes):
    return "[users]\n" + "".join(f"{name} = {value}\n" for name, value in hashes.items())


def sso(issuer=ISSUER, allow=""):
    return (f"[sso]\nissuer = {issuer}\nclient_id = pypid\nclient_secret = s\n"
            + (f"allow = {allow}\n" if allow else ""))


class _Daemon:
    """An access part over files in a folder, restarted or reloaded with new text."""

    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())
        os.makedirs(self.folder)
        self.reactor = ThreadedReactor()
        self.reactor.advance(1_767_225_600)
        self.part = None

    def start(self, text):
        """A new daemon's identity part on the configuration C{text} (a restart)."""
        self.part = identity_part(self.folder, self.reactor, text)
        return self.part

    def reload(self, text):
        """The running part takes the configuration C{text} (C{SIGHUP})."""
        commit = self.part.prepare_reload(part_config(self.folder, text))
        commit()
        return self.part

    def change(self, how, text):
        return self.start(text) if how == "restart" else self.reload(text)

    @property
    def book(self):
        return self.part.access.tokens

    def issue(self, user, login, lifetime=None):
        """Issue C{user} a token as the token routes do, written to the file: its text."""
        text, token = self.book.make(user, {"read", "upload"}, lifetime=lifetime, login=login)
        self.successResultOf(self.book.change(lambda kept: {**kept, token.id: token},
                                              self.part._run))
        return text, token

    def acts_for(self, text):
        """Who the token C{text} acts for now (the name of its identity), or L{None}."""
        identity = self.part.access._identification._token_identity(text)
        return None if identity is None else identity.name

    def on_disk(self, token_id):
        """The record of C{token_id} in the token file."""
        with open(os.path.join(self.folder, "tokens.json")) as f:
            records = json.load(f)["tokens"]
        return next(record for record in records if record["id"] == token_id)


class LocalAccountTests(_Daemon, SynchronousTestCase):
    """A local account has an id of its own: a name added again is a new person."""

    def test_name_removed_and_added_again(self):
        """
        carol's token ends when carol is removed, and stays ended when an
        account of her name comes back with another password: the newcomer
        neither uses nor sees it; the file and the admin's listing say why.
        """
        for how in ("restart", "reload"):
            with self.subTest(how=how):
                self.start(users(carol=USERS["alice"], dave=USERS["dave"]))
                text, token = self.issue("carol", LoginSource(PASSWORD))
                self.assertEqual(self.acts_for(text), "carol")
                self.change(how, users(dave=USERS["dave"]))
                self.assertIsNone(self.acts_for(text))
                self.change(how, users(carol=USERS["eve"], dave=USERS["dave"]))
                self.assertIsNone(self.acts_for(text))
                self.assertIsNone(self.book.verify(text))
                self.assertEqual(self.book.listing("carol", LoginSource(PASSWORD)), [])
                self.assertFalse(self.book.belongs(self.book.tokens[token.id], "carol",
                                                   LoginSource(PASSWORD)))
                (listed,) = [t for t in self.book.listing() if t["id"] == token.id]
                self.assertEqual(listed["ended"]["reason"], "the account carol was removed")
                self.assertEqual(self.on_disk(token.id)["ended"]["reason"],
                                 "the account carol was removed")
                # the newcomer's own token is theirs alone
                mine, new = self.issue("carol", LoginSource(PASSWORD))
                self.assertEqual(self.acts_for(mine), "carol")
                self.assertNotEqual(new.person, token.person)
                self.assertEqual([t["id"] for t in self.book.listing("carol", LoginSource())],
                                 [new.id])
                os.remove(os.path.join(self.folder, "tokens.json"))

    def test_kept_account_kept_token(self):
        """A restart or reload that keeps the account keeps its id and its tokens."""
        self.start(users(carol=USERS["alice"]))
        text, token = self.issue("carol", LoginSource(PASSWORD))
        account = self.book.accounts["carol"]
        self.reload(users(carol=USERS["eve"], dave=USERS["dave"]))
        self.start(users(carol=USERS["eve"]))
        self.assertEqual(self.book.accounts["carol"], account)
        self.assertEqual(self.acts_for(text), "carol")
        self.assertNotIn("ended", self.on_disk(token.id))

    def test_token_made_before_ids(self):
        """
        A token of a file written before accounts had ids takes its user's
        account at the first start; one of a user no longer there ends.
        """
        from pypid.auth.tokens import TokenBook, write_file
        old = TokenBook(self.reactor)
        kept, _ = old.issue("carol", {"read"})
        gone, gone_token = old.issue("zoe", {"read"})
        write_file(os.path.join(self.folder, "tokens.json"), old.dumps())
        self.start(users(carol=USERS["alice"]))
        self.assertEqual(self.acts_for(kept), "carol")
        self.assertIsNone(self.acts_for(gone))
        self.assertEqual(self.on_disk(gone_token.id)["ended"]["reason"],
                         "the account zoe was removed")


class SingleSignOnTests(_Daemon, SynchronousTestCase):
    """A provider's person is the provider and their subject, not their name."""

    def eve(self, issuer=ISSUER, subject="s-eve"):
        return LoginSource(PROVIDER, frozenset(), provider_key(issuer, "pypid"), subject)

    def test_new_provider_namesake(self):
        """
        eve's token ends when C{[sso]} is switched to another provider; the
        new provider's eve neither uses, sees nor revokes it, and switching
        back revives nothing.
        """
        for how in ("restart", "reload"):
            with self.subTest(how=how):
                self.start(sso())
                text, token = self.issue("eve", self.eve(), lifetime=30 * DAY)
                self.assertEqual(self.acts_for(text), "eve")
                self.change(how, sso(OTHER_ISSUER))
                self.assertIsNone(self.acts_for(text))
                namesake = self.eve(OTHER_ISSUER, "s-other")
                self.assertEqual(self.book.listing("eve", namesake), [])
                self.assertFalse(self.book.belongs(self.book.tokens[token.id], "eve", namesake))
                self.change(how, sso())
                self.assertIsNone(self.acts_for(text))
                self.assertEqual(self.on_disk(token.id)["ended"]["reason"],
                                 "single sign-on is no longer the one eve came through")
                # still hers to see, with why it ended
                (listed,) = self.book.listing("eve", self.eve())
                self.assertIsNotNone(listed["ended"])
                os.remove(os.path.join(self.folder, "tokens.json"))

    def test_same_provider_other_subject(self):
        """Another subject the provider maps to the same name is another person."""
        self.start(sso())
        _, token = self.issue("eve", self.eve(), lifetime=30 * DAY)
        self.assertEqual(self.book.listing("eve", self.eve(subject="s-2")), [])
        self.assertEqual([t["id"] for t in self.book.listing("eve", self.eve())], [token.id])

    def test_allow_narrowed_then_widened(self):
        """A token of a person C{allow} stopped letting in stays ended when it lets them in again."""
        for how in ("restart", "reload"):
            with self.subTest(how=how):
                self.start(sso())
                text, token = self.issue("eve", self.eve(), lifetime=30 * DAY)
                self.change(how, sso(allow="group:qa"))
                self.assertIsNone(self.acts_for(text))
                self.change(how, sso())
                self.assertIsNone(self.acts_for(text))
                self.assertEqual(self.on_disk(token.id)["ended"]["reason"],
                                 "[sso] allow no longer lets eve in")
                os.remove(os.path.join(self.folder, "tokens.json"))

    def test_local_account_takes_the_name(self):
        """An account of eve's name ends her token, and removing it again revives nothing."""
        self.start(sso())
        text, token = self.issue("eve", self.eve(), lifetime=30 * DAY)
        self.reload(users(eve=USERS["eve"]) + sso())
        self.reload(sso())
        self.assertIsNone(self.acts_for(text))
        self.assertEqual(self.on_disk(token.id)["ended"]["reason"],
                         "eve of single sign-on: a local account now has the name")
