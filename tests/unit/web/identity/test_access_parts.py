"""
Tests of the gate's parts, each on its own: L{pypid.auth.reader}
(what an identity may do), L{pypid.web.identity.identification} (who is asking,
and the check again as a change commits) and L{pypid.web.changes.change_checks}
(the checks every change to one index shares). The gate they make up,
L{pypid.web.identity.gates.Gates}, is tested route by route in
C{tests.unit.web.identity.test_access_table}.
"""

import base64

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from pypid.auth.hashes import hash_password
from pypid.auth.policy import AccessModel
from pypid.auth.reader import NO_FIELDS, OWNER_FIELDS, Rules
from pypid.auth.tokens import Token, TokenBook
from pypid.auth.verifier import Identity, PasswordVerifier
from pypid.core.access.access_rules import IndexGrants, parse_rule
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.util.http_errors import Forbidden, NotFound, Unauthorized, Unavailable
from pypid.storage.base.interface import FilenameDeleted, StorageError
from pypid.web.changes.change_checks import NO_SUCH_RELEASE, ChangeChecks, storage_call
from pypid.web.identity.gates import UPLOAD_LOGIN, Gates
from pypid.web.identity.identification import REVOKED, Identification
from pypid.web.identity.request_auth import IRequestAuth
from tests.harness.fakes import FAST, run_in_pool_now

USERS = {"alice": hash_password("secret", FAST), "bob": hash_password("bob's", FAST)}


def model(read="everyone", **indexes):
    """
    Everyone reads C{release}; the group C{dev} (alice) reads and uploads
    to C{staging}, and to the other C{indexes} given.
    """
    dev = IndexGrants(frozenset({"group:dev"}), frozenset({"group:dev"}))
    return AccessModel(
        read=read, groups={"dev": frozenset({"alice"})}, admins=frozenset({"alice"}),
        indexes={"release": IndexGrants(frozenset({"everyone"}), frozenset({"group:dev"})),
                 "staging": dev, **{name: dev for name in indexes}})


def token(user, indexes=(), actions=("read", "upload"), projects=()):
    """A token of C{user}'s, kept to C{indexes} (empty: every index)."""
    return Token("t1", "digest", user, frozenset(actions), indexes=tuple(indexes),
                 projects=tuple(projects))


def request(user=None, password=None):
    """A request, with Basic credentials when C{user} is given."""
    made = Request(DummyChannel())
    if user is not None:
        basic = base64.b64encode(f"{user}:{password}".encode())
        made.requestHeaders.setRawHeaders(b"authorization", [b"Basic " + basic])
    return made


def verifier(users=USERS):
    """A password verifier over C{users} that hashes at once."""
    return PasswordVerifier(users, Clock(), None, run_in_pool=run_in_pool_now)


class ReaderTests(SynchronousTestCase):
    """L{Rules} and L{Reader}: one model's rules, asked for one identity at a time."""

    def test_anonymous_reads_worked_out(self):
        """What anonymous clients read and enter is worked out once, per index."""
        rules = Rules(model())
        self.assertTrue(rules.open(DEFAULT_INDEX))
        self.assertTrue(rules.open("release"))
        self.assertFalse(rules.open("staging"))
        self.assertTrue(rules.anonymous.enters("release"))
        self.assertFalse(rules.anonymous.enters("staging"))
        self.assertIs(rules.reader(None), rules.anonymous)
        self.assertTrue(rules.hidden_from_anonymous)
        closed = Rules(model(read="authenticated"))
        self.assertFalse(closed.open(DEFAULT_INDEX))

    def test_index_kept_token(self):
        """
        A token kept to other indexes enters no index hidden from anyone
        (one anyone may enter, it enters as anyone: credentials never give
        less than none); a minted one enters every index and may upload to
        any, and reads only what anyone reads (its one action is upload).
        """
        rules = Rules(model(read="authenticated"))
        kept = rules.reader(Identity("alice", token("alice", indexes=["staging"])))
        self.assertTrue(rules.reader(Identity("alice")).enters("staging"))
        self.assertTrue(kept.enters("staging"))
        self.assertFalse(kept.enters(DEFAULT_INDEX))
        self.assertTrue(kept.enters("release"))
        self.assertTrue(kept.reads("acme-lib", "release"))
        self.assertFalse(kept.reads("acme-lib", DEFAULT_INDEX))
        minted = rules.reader(Identity("publisher:ci", token("publisher:ci", actions=("upload",),
                                                             indexes=["staging"])))
        self.assertTrue(minted.enters(DEFAULT_INDEX))
        self.assertTrue(minted.uploads_to(DEFAULT_INDEX))
        self.assertFalse(minted.reads("acme-lib", "staging"))
        self.assertFalse(minted.reads_all("staging"))
        self.assertTrue(minted.reads_all("release"))

    def test_scoped_token_reads_what_anyone_reads(self):
        """A token kept to some projects reads no other, but what anyone reads."""
        rules = Rules(model())
        scoped = rules.reader(Identity("alice", token("alice", projects=["acme-*"])))
        self.assertTrue(scoped.reads("other", "release"))
        self.assertFalse(scoped.reads("other", "staging"))
        self.assertTrue(scoped.reads("acme-lib", "staging"))
        self.assertFalse(scoped.reads_all("staging"))
        self.assertTrue(rules.reader(Identity("alice")).reads_all("staging"))

    def test_token_reads_all_within_its_scope(self):
        """
        A token reads a whole index its person reads whole only where its
        scope lets it read: the index among its indexes (or none named),
        C{read} among its actions.
        """
        rules = Rules(model())
        self.assertEqual(
            [rules.reader(Identity("alice", made)).reads_all("staging") for made in (
                token("alice"), token("alice", indexes=["staging"]),
                token("alice", indexes=["release"]), token("alice", actions=("upload",)))],
            [True, True, False, False])

    def test_tokens_never_admins(self):
        """An admin with a password is one; with a token, never."""
        rules = Rules(model())
        self.assertTrue(rules.reader(Identity("alice")).is_admin)
        self.assertFalse(rules.reader(Identity("alice", token("alice"))).is_admin)
        self.assertFalse(rules.anonymous.is_admin)

    def test_minted(self):
        """
        A token trusted publishing minted is a trusted publisher's; a
        person's token, a password and anonymous are not, nor a publisher's
        name without a token.
        """
        rules = Rules(model())
        name = "publisher:github:acme/widgets"
        self.assertTrue(rules.reader(Identity(name, token(name, actions=("upload",)))).minted)
        self.assertEqual([rules.reader(Identity("alice", token("alice"))).minted,
                          rules.reader(Identity("alice")).minted,
                          rules.reader(Identity(name)).minted, rules.anonymous.minted],
                         [False] * 4)

    def test_upload_refusal_of_the_user(self):
        """
        Within a token's scope its user is named; outside it (another
        project, or no C{upload} action) the token is; anonymous, as such
        (more: C{tests.unit.auth.test_tokens.TokenRefusalTests}).
        """
        rules = Rules(model())
        scoped = rules.reader(Identity("bob", token("bob", projects=["widget"])))
        self.assertEqual(scoped.upload_refusal("widget", "widget", "staging"),
                         "bob may not upload to widget")
        self.assertEqual(scoped.upload_refusal("gadget", "gadget", "staging"),
                         "token t1 may not upload to gadget (it is kept to widget)")
        reading = rules.reader(Identity("bob", token("bob", actions=("read",))))
        self.assertEqual(reading.upload_refusal("staging", index="staging"),
                         "token t1 may not upload to staging")
        self.assertEqual(rules.anonymous.upload_refusal("staging", index="staging"),
                         "anonymous may not upload to staging")

    def test_persons_and_tokens(self):
        """
        A person (a password) is one and uploads; a token is none, and
        uploads when C{upload} is one of its actions; anonymous does neither.
        """
        rules = Rules(model())
        alice = rules.reader(Identity("alice"))
        self.assertEqual((alice.is_person, alice.uploads), (True, True))
        reading = rules.reader(Identity("alice", token("alice", actions=("read",))))
        self.assertEqual((reading.is_person, reading.uploads), (False, False))
        self.assertTrue(rules.reader(Identity("alice", token("alice"))).uploads)
        self.assertEqual((rules.anonymous.is_person, rules.anonymous.uploads), (False, False))

    def test_audit_fields(self):
        """
        An admin reads every field of the audit entries; a person who owns
        the project named, an owner's; anyone else, and a token, none.
        """
        rules = Rules(AccessModel(admins=frozenset({"alice"}),
                                  rules=(parse_rule("widget", "user:bob rw", 0),)))
        self.assertIsNone(rules.reader(Identity("alice")).audit_fields("", ""))
        bob = rules.reader(Identity("bob"))
        self.assertEqual(bob.audit_fields("Widget", DEFAULT_INDEX), OWNER_FIELDS)
        refused = [bob.audit_fields("", DEFAULT_INDEX), bob.audit_fields("widget", "nowhere"),
                   bob.audit_fields("no name!", DEFAULT_INDEX),
                   rules.reader(Identity("carol")).audit_fields("widget", DEFAULT_INDEX),
                   rules.reader(Identity("bob", token("bob"))).audit_fields("widget",
                                                                            DEFAULT_INDEX),
                   rules.anonymous.audit_fields("widget", DEFAULT_INDEX)]
        self.assertEqual(refused, [NO_FIELDS] * 6)

    def test_who_may_revoke(self):
        """A person revokes their own token, an admin anyone's; a namesake's, or a token, none."""
        book = TokenBook(Clock())
        _, bobs = book.issue("bob", ["read"])
        rules = Rules(model())
        self.assertTrue(rules.reader(Identity("bob")).may_revoke(bobs, book))
        self.assertTrue(rules.reader(Identity("alice")).may_revoke(bobs, book))
        self.assertFalse(rules.reader(Identity("carol")).may_revoke(bobs, book))
        self.assertFalse(rules.reader(Identity("bob", bobs)).may_revoke(bobs, book))
        # (an admin's own token is no admin: it revokes nothing)
        _, alices = book.issue("alice", ["read"])
        self.assertFalse(rules.reader(Identity("alice", alices)).may_revoke(bobs, book))
        self.assertFalse(rules.anonymous.may_revoke(bobs, book))

    def test_reload_takes_new_permissions_whole(self):
        """L{Gates.reconfigure} takes the new model's rules, anonymous reads included."""
        access = Gates(model(), verifier())
        self.assertIsNone(access.gate_read(request()))
        access.reconfigure(model(read="authenticated"), verifier(), None)
        self.assertEqual(access.model.read, "authenticated")
        failure = self.failureResultOf(access.gate_read(request()), Unauthorized)
        self.assertIn("authentication is required to read", str(failure.value))


class KeptReaderTests(SynchronousTestCase):
    """L{Gates.reader}: the one reader of a request, made by its gate and kept on it."""

    def test_confirm_keeps_the_reader_of_now(self):
        """
        A request reads on with the reader its gate made; a change checked
        again as it commits (L{Gates.confirm}) gets one of the rules in force then.
        """
        access = Gates(model(), verifier())
        sent = request("bob", "bob's")
        identity = self.successResultOf(access.gate_upload(sent, index=None))
        kept = access.reader(sent)
        self.assertFalse(kept.is_admin)
        self.assertIs(access.reader(sent), kept)
        access.reconfigure(AccessModel(admins=frozenset({"bob"})), verifier(), None)
        self.assertIs(access.reader(sent), kept)
        self.successResultOf(ensureDeferred(access.confirm(sent, identity)))
        self.assertTrue(access.reader(sent).is_admin)

    def test_identified_reader_not_kept(self):
        """
        L{Gates.identified_reader} checks the credentials where no gate did
        (wrong ones refused), and keeps nothing on the request.
        """
        access = Gates(model(), verifier())
        sent = request("alice", "secret")
        self.assertTrue(self.successResultOf(access.identified_reader(sent)).is_admin)
        self.assertIs(access.reader(sent), access.anonymous)
        self.failureResultOf(access.identified_reader(request("alice", "wrong")), Unauthorized)


class IdentificationTests(SynchronousTestCase):
    """L{Identification}: who is asking, and whether that still holds as a change commits."""

    def test_change_marks_generation(self):
        """A change's check keeps the generation it began in on the request."""
        identification = Identification(verifier())
        identification.reconfigure(verifier(), None)
        sent = request("alice", "secret")
        identity = self.successResultOf(identification.identify_for_change(sent))
        self.assertEqual(identity.name, "alice")
        self.assertEqual(IRequestAuth(sent).generation, 1)
        # (no reload since: trusted as it is, without a second check)
        self.assertIs(self.successResultOf(ensureDeferred(
            identification.confirm(sent, identity))), identity)

    def test_removed_user_refused_at_commit(self):
        """A user removed by a reload while the change was under way is refused as it commits."""
        identification = Identification(verifier())
        sent = request("alice", "secret")
        identity = self.successResultOf(identification.identify_for_change(sent))
        identification.reconfigure(verifier({"bob": USERS["bob"]}), None)
        failure = self.failureResultOf(ensureDeferred(identification.confirm(sent, identity)),
                                       Unauthorized)
        self.assertEqual(str(failure.value), REVOKED)

    def test_anonymous_and_wrong(self):
        """No credentials identify no one; wrong ones are refused."""
        identification = Identification(verifier())
        self.assertIsNone(self.successResultOf(identification.identify(request())))
        self.failureResultOf(identification.identify(request("alice", "wrong")), Unauthorized)


class ChangeChecksTests(SynchronousTestCase):
    """L{ChangeChecks}: the answers every change to one index shares."""

    def test_upload_grant(self):
        """Without the index's upload grant: 401 in the default index, 403 in a named one."""
        access = Gates(model(default=True), verifier())
        rules = Rules(access.model)
        bob = rules.reader(Identity("bob"))
        e = self.assertRaises(Unauthorized, ChangeChecks(access, "default").may_upload_here, bob)
        self.assertEqual(str(e), UPLOAD_LOGIN)
        e = self.assertRaises(Forbidden, ChangeChecks(access, "staging").may_upload_here, bob)
        self.assertEqual(str(e), "bob may not upload to staging")
        ChangeChecks(access, "staging").may_upload_here(rules.reader(Identity("alice")))

    def test_only_uploads_by_a_minted_token(self):
        """
        A trusted publisher's token is refused any change but an upload; a
        person and a person's token go on to the project's checks.
        """
        rules = Rules(model())
        name = "publisher:github:acme/widgets"
        minted = rules.reader(Identity(name, token(name, actions=("upload",))))
        e = self.assertRaises(Forbidden, ChangeChecks.may_change_files, minted)
        self.assertEqual(str(e), "a trusted publisher's token may only upload")
        for identity in (Identity("alice"), Identity("alice", token("alice"))):
            self.assertIsNone(ChangeChecks.may_change_files(rules.reader(identity)))

    def test_upload_to_a_project(self):
        """
        L{ChangeChecks.may_upload}: who may change the project uploads to
        it; anyone else is refused, naming the token whose scope refuses.
        """
        checks = ChangeChecks(Gates(model(), verifier()), "staging")
        rules = Rules(model())
        self.assertIsNone(checks.may_upload(rules.reader(Identity("alice")), "widget"))
        e = self.assertRaises(Forbidden, checks.may_upload, rules.reader(Identity("bob")),
                              "widget")
        self.assertEqual(str(e), "bob may not upload to widget")
        scoped = rules.reader(Identity("alice", token("alice", projects=["acme-*"])))
        e = self.assertRaises(Forbidden, checks.may_upload, scoped, "widget")
        self.assertEqual(str(e), "token t1 may not upload to widget (it is kept to acme-*)")

    def test_untouchable_as_missing(self):
        """A project one may neither see nor change answers as a missing one."""
        checks = ChangeChecks(Gates(model(), verifier()), "staging")
        bob, alice = (Rules(model()).reader(Identity(name)) for name in ("bob", "alice"))
        e = self.assertRaises(NotFound, checks.may_touch, bob, "widget")
        self.assertEqual(str(e), NO_SUCH_RELEASE)
        self.assertRaises(NotFound, checks.may_touch, alice, None)
        checks.may_touch(alice, "widget")

    def test_storage_call_answers(self):
        """A file deleted meanwhile answers 404; a failing storage 503."""
        record = FileRecord(filename="widget-1.0.tar.gz", project="widget", name="widget",
                            version="1.0", packagetype="sdist", path=None, size=1,
                            sha256="0" * 64, upload_time=0.0)

        async def deleted(record):
            raise FilenameDeleted(record.filename)

        async def broken(record):
            raise StorageError("disk on fire")

        failure = self.failureResultOf(ensureDeferred(storage_call(deleted, record)), NotFound)
        self.assertEqual(str(failure.value), "no such file: widget-1.0.tar.gz")
        failure = self.failureResultOf(ensureDeferred(storage_call(broken, record)), Unavailable)
        self.assertIn("disk on fire", str(failure.value))
