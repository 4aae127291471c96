"""
Tests for promotion (issue 26, stage 6): C{POST /api/promote}
(L{pypid.web.changes.promote}), its journal and the roll-back at start-up
(L{pypid.state.loader.roll_back_promotions}), the index's promotions and
C{pypid-admin promote}.

The area is served in process through C{StubTreq} over its Klein app,
with two hosted indexes (C{staging} based on C{release}) and a view
(C{prod}) in an L{IndexRegistry} of small stacks: memory storages for
the statuses, local folders on disk for the journal and its roll-back.
"""

import base64
import contextlib
import hashlib
import io
import json
import os
import time
from functools import partial

import attrs
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.hashes import hash_password
from pypid.auth.policy import AccessModel
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.cli import admin
from pypid.core.access.access_rules import IndexGrants, parse_rule
from pypid.core.dists.names import filename_key
from pypid.core.dists.version_order import release_key
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.indexes.promotion import Promotion, PromotionJournal
from pypid.core.records.audit_query import make_query
from pypid.core.security.advisories import (
    Advisory,
    AdvisoryBoard,
    AdvisoryDB,
    AdvisoryPolicy,
    AdvisoryRules,
)
from pypid.core.security.affected_releases import Affected
from pypid.state.indexes import IndexRegistry
from pypid.state.loader import IndexLoader
from pypid.state.promotion_rollback import roll_back_promotions
from pypid.state.writer import SnapshotWriter
from pypid.storage.base.interface import StorageError
from pypid.storage.base.locks import KeyedLock
from pypid.storage.base.measured import MeasuredStorage
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.storage.folder.local import LocalStorage
from pypid.web.changes.promote import Promote
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail
from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.fakes import FAST, run_in_pool_now, run_now
from tests.harness.indexes import Stack
from tests.harness.memory_storage import MemoryStorage

PASSWORD = "correct horse"
T0 = 1767225600.0

#: the indexes' sources in order, as L{IndexRegistry} resolves them
ORDERS = {"default": ("default",), "release": ("release",),
          "staging": ("staging", "release"), "prod": ("staging", "release")}


def basic(user):
    """An Authorization header for C{user}."""
    return b"Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode())


def model():
    """
    release: everyone reads, group rm (bob) uploads; staging: dev (alice)
    and rm read, dev uploads; prod: a view; carol is in no group.
    """
    return AccessModel(
        groups={"dev": frozenset({"alice"}), "rm": frozenset({"bob"})},
        admins=frozenset({"root"}),
        indexes={"release": IndexGrants(frozenset({"everyone"}), frozenset({"group:rm"})),
                 "staging": IndexGrants(frozenset({"group:dev", "group:rm"}),
                                        frozenset({"group:dev"})),
                 "prod": IndexGrants(frozenset({"authenticated"}), frozenset())})


class _PromoteCase(SynchronousTestCase):
    """A server's promotion area over two hosted indexes and a view."""

    def storage(self, name):
        """A prepared storage for the index C{name}."""
        storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)
        self.successResultOf(storage.prepare())
        return storage

    #: each index's advisory rules (L{None}: none, as a registry without policies)
    advisory_rules = None

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        users = {name: hash_password(PASSWORD, FAST) for name in ("alice", "bob", "carol", "root")}
        verifier = PasswordVerifier(users, self.clock, None, run_in_pool=run_in_pool_now)
        self.tokens = TokenBook(self.clock)
        self.verifier = verifier
        self.access = Gates(model(), verifier, tokens=self.tokens)
        self.log = MemoryJournal(self.clock)
        self.trail = AuditTrail(self.log, self.clock)
        self.stacks = {name: Stack(name, Index(file_url_for(None)), self.storage(name),
                                   KeyedLock(self.clock))
                       for name in ("default", "release", "staging")}
        self.board = AdvisoryBoard()
        policies = {name: AdvisoryPolicy(AdvisoryRules.parse(mode), self.board)
                    for name, mode in (self.advisory_rules or {}).items()}
        registry = IndexRegistry(self.stacks, ORDERS, {}, board=self.board, policies=policies)
        self.area = Promote(registry, self.access, audit=self.trail, clock=self.clock)
        self.client = StubTreq(self.area.app.resource())

    def host(self, index, files):
        """Store C{files} (C{(filename, bytes)}) in C{index}, as uploads would, and index them."""
        stack = self.stacks[index]
        for filename, data in files:
            stack.stored.objects[filename] = data
        scanned = self.successResultOf(stack.stored.scan())
        stack.index.load(scanned.records.values(), scanned.tombstones)

    def promote(self, user="bob", body=None, **asked):
        """C{(status, body)} of a promotion C{asked} (from staging to release by default)."""
        fields = {"from": "staging", "to": "release", "project": "widget", "version": "1.2"}
        fields.update(asked)
        headers = {b"content-type": [b"application/json"]}
        if user is not None:
            headers[b"authorization"] = [basic(user)]
        response = self.successResultOf(self.client.post(
            "http://127.0.0.1/api/promote", data=body if body is not None else json.dumps(fields),
            headers=headers))
        return response.code, self.successResultOf(response.content()).decode().strip()

    def set_status(self, index, status, reason=None, project="widget"):
        """Give C{project} a status in C{index}, as C{POST .../status} does."""
        self.stacks[index].index.statuses.set(project, ProjectStatus(status, reason))

    def entries(self, event="promote"):
        """The audit log's entries of C{event}."""
        self.successResultOf(self.log.flush())
        page = self.successResultOf(self.log.read(make_query(event=event)))
        return page.entries


WHEEL = make_wheel("widget", "1.2")
SDIST = make_sdist("widget", "1.2")


def fail_second_adopt(case, index="release"):
    """
    Make the second adopt into C{index} fail (through the timed storage
    the server has); the names it was asked for are listed in the result.
    """
    stack = case.stacks[index]
    measured = MeasuredStorage(stack.stored, time.monotonic)
    real = stack.stored.adopt
    calls = []

    def adopt(source, record, promotion):
        calls.append(record.filename)
        if len(calls) == 2:
            raise StorageError("the disk went away")
        return real(source, record, promotion)
    measured.adopt = adopt
    case.stacks[index] = attrs.evolve(stack, stored=measured)
    return calls


class StatusTests(_PromoteCase):
    """The statuses, in the order the checks come."""

    def setUp(self):
        super().setUp()
        self.host("staging", [WHEEL, SDIST])

    def test_promoted(self):
        """
        The release's files go to the target: the source's very records,
        listed in the answer, with who promoted them and when, one audit
        entry each.
        """
        code, body = self.promote()
        self.assertEqual(code, 200, body)
        answer = json.loads(body)
        self.assertEqual(sorted(answer["promoted"]), sorted([WHEEL[0], SDIST[0]]))
        self.assertEqual(answer["skipped"], [])
        source, target = self.stacks["staging"].index, self.stacks["release"].index
        for filename, _ in (WHEEL, SDIST):
            self.assertIs(target.get_file(filename), source.get_file(filename))
            self.assertEqual(target.promotions.get(filename), Promotion("staging", "bob", T0))
            self.assertIs(self.stacks["release"].stored.objects[filename],
                          self.stacks["staging"].stored.objects[filename])
        entries = self.entries()
        self.assertEqual(sorted(e.filename for e in entries), sorted([WHEEL[0], SDIST[0]]))
        self.assertEqual({(e.index, e.target, e.user, e.outcome) for e in entries},
                         {("release", "staging", "bob", "ok")})
        self.assertEqual(self.successResultOf(self.stacks["release"].stored.journals()), {})

    def test_again_skipped(self):
        """A release promoted already is skipped, file by file: promoting is idempotent."""
        self.assertEqual(self.promote()[0], 200)
        serial = self.stacks["release"].index.serial
        code, body = self.promote()
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body)["promoted"], [])
        self.assertEqual(sorted(json.loads(body)["skipped"]), sorted([WHEEL[0], SDIST[0]]))
        self.assertEqual(self.stacks["release"].index.serial, serial)
        self.assertEqual(len(self.entries()), 2)

    def test_anonymous(self):
        """Without credentials: 401, whatever is asked."""
        self.assertEqual(self.promote(user=None)[0], 401)
        self.assertEqual(self.promote(user=None, to="nowhere")[0], 401)

    def test_unknown_or_hidden_index(self):
        """An unknown index is a 404 naming the field; one the user may not read answers alike."""
        code, body = self.promote(to="nowhere")
        self.assertEqual((code, body), (404, "to: no such index: nowhere"))
        code, body = self.promote(user="carol")
        self.assertEqual((code, body), (404, "from: no such index: staging"))

    def test_view(self):
        """A view takes no files: 405."""
        code, body = self.promote(to="prod")
        self.assertEqual(code, 405)
        self.assertIn("to: prod is a view", body)

    def test_forbidden(self):
        """No upload on the project in the target, or no read in the source: 403; nothing moves."""
        code, body = self.promote(user="alice")
        self.assertEqual((code, body), (403, "alice may not upload widget to release"))
        self.assertEqual(len(self.stacks["release"].index), 0)
        self.assertEqual([e.outcome for e in self.entries()], ["refused"])

    def test_token_scope(self):
        """A token kept to the source index may not upload to the target: 403."""
        text, token = self.tokens.make("bob", ["read", "upload"], [], None, "", ["staging"],
                                       known_indexes={"default", "release", "staging", "prod"})
        self.tokens.tokens = {**self.tokens.tokens, token.id: token}
        response = self.successResultOf(self.client.post(
            "http://127.0.0.1/api/promote",
            data=json.dumps({"from": "staging", "to": "release", "project": "widget",
                             "version": "1.2"}),
            headers={b"authorization": [b"Basic " + base64.b64encode(
                f"__token__:{text}".encode())]}))
        self.assertEqual(response.code, 403)
        self.assertEqual(self.successResultOf(response.content()),
                         b"bob may not upload widget to release\n")

    def test_missing_release(self):
        """A release with no files in the source is a 404; one it inherits names its index."""
        self.assertEqual(self.promote(version="9.9"),
                         (404, "no such release: widget 9.9 in staging"))
        self.host("release", [make_wheel("widget", "1.0")])
        code, body = self.promote(version="1.0")
        self.assertEqual(code, 404)
        self.assertEqual(body, "no files of widget 1.0 in staging: release holds them; "
                               "promote from release")

    def test_other_bytes(self):
        """A filename the target holds with other bytes is a 409 naming it; nothing moves."""
        other = make_wheel("widget", "1.2", module_text="x = 2\n")
        self.assertEqual(other[0], WHEEL[0])
        self.host("release", [other])
        code, body = self.promote()
        self.assertEqual(code, 409)
        self.assertIn(WHEEL[0], body)
        self.assertIsNone(self.stacks["release"].index.get_file(SDIST[0]))
        self.assertNotIn(SDIST[0], self.stacks["release"].stored.objects)

    def test_tombstone(self):
        """A filename deleted from the target is a 409 naming it."""
        self.host("release", [WHEEL])
        release = self.stacks["release"]
        self.successResultOf(release.stored.delete(release.index.get_file(WHEEL[0])))
        release.index.remove(WHEEL[0])
        code, body = self.promote()
        self.assertEqual(code, 409)
        self.assertIn(f"{WHEEL[0]}: a file of that name was deleted from release", body)

    def test_same_distribution(self):
        """The same distribution under another spelling in the target is a 409 naming both."""
        other = make_sdist("Widget", "1.2")
        self.host("release", [("Widget-1.2.tar.gz", other[1])])
        code, body = self.promote()
        self.assertEqual(code, 409, body)
        self.assertIn("Widget-1.2.tar.gz", body)

    def test_bad_body(self):
        """A body that is not the JSON of a promotion is a 400 naming the field."""
        self.assertEqual(self.promote(body="[]")[0], 400)
        code, body = self.promote(version="")
        self.assertEqual((code, body), (400, "version: missing, or not text"))
        code, body = self.promote(project="no/such")
        self.assertEqual(code, 400)
        self.assertIn("project:", body)
        code, body = self.promote(version="not a version")
        self.assertEqual(code, 400)
        self.assertIn("version:", body)

    def test_failure_part_way(self):
        """
        The second adopt fails: the first is taken back, the target's index
        and storage are as they were (no journal either), and the answer
        is a 503.
        """
        release = self.stacks["release"].stored
        calls = fail_second_adopt(self)
        code, body = self.promote()
        self.assertEqual(code, 503, body)
        self.assertEqual(len(calls), 2)
        self.assertEqual(len(self.stacks["release"].index), 0)
        self.assertEqual(release.objects, {})
        self.assertEqual(self.successResultOf(release.scan()).records, {})
        self.assertEqual(self.successResultOf(release.journals()), {})
        self.assertEqual([e.outcome for e in self.entries()], ["failed"])


class ClosedProjectTests(_PromoteCase):
    """
    Issue 45: a project quarantined or archived in the source (or
    quarantined through its bases), or closed in the target, or
    quarantined through the target's bases, is never promoted, by anyone.
    """

    def setUp(self):
        super().setUp()
        self.host("staging", [WHEEL, SDIST])
        self.host("default", [WHEEL, SDIST])

    def assert_nothing_promoted(self):
        self.assertEqual(len(self.stacks["release"].index), 0)
        self.assertEqual(self.stacks["release"].stored.objects, {})

    def test_quarantined_in_source(self):
        """A plain uploader and an admin alike: 409 naming the status and the index."""
        self.set_status("staging", "quarantined", "malware reported")
        for user in ("bob", "root"):
            code, body = self.promote(user)
            self.assertEqual((code, body), (
                409, "project widget is quarantined in index staging (malware reported): "
                     "its files are not promoted"), user)
        self.assert_nothing_promoted()
        self.assertEqual([(e.outcome, e.user) for e in self.entries()],
                         [("refused", "bob"), ("refused", "root")])

    def test_archived_in_source(self):
        """An archived project's files are not promoted either."""
        self.set_status("staging", "archived")
        self.assertEqual(self.promote(), (409, "project widget is archived in index staging: "
                                               "its files are not promoted"))
        self.assert_nothing_promoted()

    def test_deprecated_promoted(self):
        """A deprecated project (files still offered) is promoted as an active one."""
        self.set_status("staging", "deprecated", "use gadget")
        self.assertEqual(self.promote()[0], 200)

    def test_quarantined_in_target(self):
        """
        Into an index where the project is quarantined (so its files are
        not offered there, until the quarantine is lifted): 409, from any source.
        """
        self.set_status("release", "quarantined")
        for source in ("default", "staging"):
            code, body = self.promote("root", **{"from": source})
            self.assertEqual(code, 409, source)
            self.assertIn("project widget is quarantined in index release", body)
        self.assert_nothing_promoted()

    def test_archived_in_target(self):
        """An archived project takes no promoted files, as it takes no uploads."""
        self.set_status("release", "archived")
        self.assertEqual(self.promote("root", **{"from": "default"}), (
            409, "project widget is archived in index release: it takes no promoted files"))
        self.assert_nothing_promoted()

    def test_quarantined_in_a_base_of_the_source(self):
        """
        staging lists no file of a project release (its base) quarantines:
        promoting staging's own files elsewhere is refused too.
        """
        newer = make_wheel("widget", "1.3")
        self.host("staging", [newer])
        self.set_status("release", "quarantined")
        code, body = self.promote("root", to="default", version="1.3")
        self.assertEqual(code, 409, body)
        self.assertIn("project widget is quarantined in index release", body)
        self.assertIsNone(self.stacks["default"].index.get_file(newer[0]))
        self.assertEqual([e.outcome for e in self.entries()], ["refused"])

    def test_status_set_while_waiting(self):
        """
        The status is read under the locks: a quarantine set while the
        promotion waited for them is honoured.
        """
        gate = Deferred()
        staging = self.stacks["staging"]
        held = ensureDeferred(staging.locks.run(filename_key(WHEEL[0]), lambda: gate))
        response = self.client.post("http://127.0.0.1/api/promote", data=json.dumps(
            {"from": "staging", "to": "release", "project": "widget", "version": "1.2"}),
            headers={b"authorization": [basic("bob")]})
        self.assertNoResult(response)
        self.set_status("staging", "quarantined")
        gate.callback(None)
        self.successResultOf(held)
        self.client.flush()
        self.assertEqual(self.successResultOf(response).code, 409)
        self.assert_nothing_promoted()


#: widget 1.2 is affected (a critical advisory known by two identifiers)
WIDGET_ADVISORY = Advisory("GHSA-wdgt-0000-0012", aliases=("CVE-2026-0012",),
                           summary="widget 1.2 runs what it reads", severity="critical",
                           affected=(Affected("widget", (), frozenset({release_key("1.2")})),))


class _DeniedCase(_PromoteCase):
    """widget 1.2 hosted in staging, an advisory covering it."""

    def setUp(self):
        super().setUp()
        self.board.replace(AdvisoryDB.of([WIDGET_ADVISORY]))
        self.host("staging", [WHEEL, SDIST])


class DeniedInSourceTests(_DeniedCase):
    """
    Issue 45: a release the source's advisories deny is promoted only by an
    admin who asks for it (C{allow_denied}), and the audit log says so.
    """

    advisory_rules = {"staging": "deny", "release": "off"}

    def test_refused_without_override(self):
        """Anyone, an admin too, gets a 409 naming the advisory and how to override it."""
        for user in ("bob", "root"):
            code, body = self.promote(user)
            self.assertEqual((code, body), (
                409, "widget 1.2 is denied by the advisories of index staging "
                     "(GHSA-wdgt-0000-0012): only an admin may promote it, with "
                     "allow_denied"), user)
        self.assertEqual(len(self.stacks["release"].index), 0)

    def test_override_not_an_admin(self):
        """C{allow_denied} from a plain uploader is a 403; nothing moves."""
        code, body = self.promote("bob", allow_denied=True)
        self.assertEqual((code, body), (
            403, "allow_denied: only an admin may promote a release the advisories deny"))
        self.assertEqual(len(self.stacks["release"].index), 0)

    def test_admin_override(self):
        """
        An admin with C{allow_denied} promotes it; each file's audit entry
        records the override and the advisories.
        """
        code, body = self.promote("root", allow_denied=True)
        self.assertEqual(code, 200, body)
        self.assertEqual(len(json.loads(body)["promoted"]), 2)
        entries = self.entries()
        self.assertEqual(len(entries), 2)
        for entry in entries:
            self.assertEqual((entry.user, entry.outcome, entry.detail), (
                "root", "ok", "allow_denied: denied by staging (GHSA-wdgt-0000-0012)"))

    def test_override_of_a_clean_release(self):
        """C{allow_denied} on a release nothing denies changes nothing, and records nothing."""
        self.host("staging", [make_wheel("widget", "1.3")])
        code, body = self.promote("root", version="1.3", allow_denied=True)
        self.assertEqual(code, 200, body)
        self.assertEqual([e.detail for e in self.entries()], [None])

    def test_bad_override(self):
        """C{allow_denied} is JSON true or false: anything else is a 400 naming it."""
        for value in ("yes", 1, None):
            self.assertEqual(self.promote("root", allow_denied=value),
                             (400, "allow_denied: true or false"), value)

    def test_local_build(self):
        """A local build of the denied release is denied as it is (item 6)."""
        self.host("staging", [make_wheel("widget", "1.2+corp1")])
        code, body = self.promote("bob", version="1.2+corp1")
        self.assertEqual(code, 409, body)
        self.assertIn("GHSA-wdgt-0000-0012", body)

    def test_unread(self):
        """While the advisories are still read, a promotion the source might deny is a 503."""
        self.board.replace(AdvisoryDB.unread_yet())
        code, body = self.promote("root", allow_denied=True)
        self.assertEqual(code, 503, body)
        self.assertEqual(len(self.stacks["release"].index), 0)


class DeniedInTargetTests(_DeniedCase):
    """The target's advisories count as the source's do."""

    advisory_rules = {"staging": "warn", "release": "deny"}

    def test_refused_and_overridden(self):
        """A 409 naming the target; an admin's override lands it, recorded."""
        code, body = self.promote("bob")
        self.assertEqual(code, 409, body)
        self.assertIn("denied by the advisories of index release", body)
        code, body = self.promote("root", allow_denied=True)
        self.assertEqual(code, 200, body)
        self.assertEqual({e.detail for e in self.entries() if e.outcome == "ok"},
                         {"allow_denied: denied by release (GHSA-wdgt-0000-0012)"})

    def test_hidden_not_denied(self):
        """
        An index that only hides the release does not stop its promotion,
        nor while the advisories are still read.
        """
        self.area._registry.policies["release"].take_rules(AdvisoryRules.parse("hide"))
        self.board.replace(AdvisoryDB.unread_yet())
        self.assertEqual(self.promote("bob")[0], 200)


class _LocalCase(_PromoteCase):
    """The same area over local folders on disk."""

    def storage(self, name):
        storage = LocalStorage(os.path.abspath(os.path.join(self.folder(), name)), run_now,
                               self.clock, 0)
        self.successResultOf(storage.prepare())
        self.addCleanup(storage.close)
        return storage

    def folder(self):
        if not hasattr(self, "_folder"):
            self._folder = os.path.abspath(self.mktemp())
        return self._folder

    def host(self, index, files):
        stack = self.stacks[index]
        for filename, data in files:
            with open(os.path.join(stack.stored.root, filename), "wb") as f:
                f.write(data)
        scanned = self.successResultOf(stack.stored.scan())
        if scanned.settled is not None:
            self.successResultOf(scanned.settled)
        stack.index.load(scanned.records.values(), scanned.tombstones)


def tree(root):
    """Every file under C{root} but the folder's lock and spool, relative."""
    found = []
    for path, _folders, files in os.walk(root):
        found += [os.path.relpath(os.path.join(path, f), root) for f in files]
    return sorted(f for f in found if not f.startswith(os.path.join(".pypid", "tmp"))
                  and not f.endswith("lock"))


class LocalTests(_LocalCase):
    """Promotion between folders: links, failure part-way, the journal and its roll-back."""

    def test_linked(self):
        """A promoted file is the source's inode under a second name; the journal is gone."""
        self.host("staging", [WHEEL, SDIST])
        code, body = self.promote()
        self.assertEqual(code, 200, body)
        release = self.stacks["release"].stored.root
        self.assertEqual(os.stat(os.path.join(release, WHEEL[0])).st_nlink, 2)
        self.assertEqual(os.listdir(os.path.join(release, ".pypid", "promotions")), [])

    def test_failure_part_way_on_disk(self):
        """The second adopt fails: nothing is left in the target's folder."""
        self.host("staging", [WHEEL, SDIST])
        release = self.stacks["release"].stored
        before = tree(release.root)
        calls = fail_second_adopt(self)
        self.assertEqual(self.promote()[0], 503)
        self.assertEqual(len(calls), 2)
        self.assertEqual(tree(release.root), before)
        self.assertEqual(len(self.stacks["release"].index), 0)

    def test_crash_between_adopts_rolled_back(self):
        """
        A crash after the journal and one adopted file: the next start's
        loader takes the promotion back before the index is loaded, and
        the files of the release can be promoted again.
        """
        self.host("staging", [WHEEL, SDIST])
        staging, release = self.stacks["staging"], self.stacks["release"]
        before = tree(release.stored.root)
        records = sorted(staging.index.records(), key=lambda r: r.filename)
        journal = PromotionJournal("crashed", "staging",
                                   tuple(r.replace(path=r.filename) for r in records))
        self.successResultOf(release.stored.keep_journal(journal.name, journal.to_bytes()))
        self.successResultOf(release.stored.adopt(staging.stored, records[0],
                                                  Promotion("staging", "bob", T0)))
        # (the start after the crash: a new storage over the folder, its loader)
        release.stored.close()
        restarted = LocalStorage(release.stored.root, run_now, self.clock, 0)
        self.successResultOf(restarted.prepare())
        self.addCleanup(restarted.close)
        index = Index(file_url_for(None))
        loader = IndexLoader(index, restarted, os.path.join(self.folder(), "release.json"),
                             run_now, self.clock,
                             recover=partial(roll_back_promotions, restarted))
        self.successResultOf(ensureDeferred(
            loader.load()))
        self.assertEqual(len(index), 0)
        self.assertEqual(tree(restarted.root), before)
        self.assertEqual(self.successResultOf(restarted.journals()), {})
        self.assertEqual(os.stat(os.path.join(staging.stored.root, records[0].filename)).st_nlink,
                         1)

    def test_unreadable_journal_kept(self):
        """A journal that cannot be read is left where it is, with the files it may name."""
        release = self.stacks["release"].stored
        self.successResultOf(release.keep_journal("bad", b"{not json"))
        self.assertEqual(self.successResultOf(
            ensureDeferred(
                roll_back_promotions(release))), 0)
        self.assertEqual(self.successResultOf(release.journals()), {"bad": b"{not json"})

    def test_promotions_scanned(self):
        """After a restart that scans the folder, the index knows who promoted what."""
        self.host("staging", [WHEEL])
        self.assertEqual(self.promote()[0], 200)
        release = self.stacks["release"].stored
        index = Index(file_url_for(None))
        loader = IndexLoader(index, release, os.path.join(self.folder(), "none.json"),
                             run_now, self.clock)
        self.successResultOf(ensureDeferred(
            loader.load()))
        self.assertEqual(index.live_promotions(), {WHEEL[0]: Promotion("staging", "bob", T0)})

    def test_promotions_in_snapshot(self):
        """
        A start from the snapshot saved after a promotion knows who promoted
        what before storage is read (the check after the start trusts an
        unchanged folder, and reads no promotion either); the default
        index's snapshot, with no promotion, has no line of them.
        """
        self.host("staging", [WHEEL])
        self.assertEqual(self.promote()[0], 200)
        path = os.path.join(self.folder(), "release.json")
        self.successResultOf(SnapshotWriter(self.stacks["release"].index, path, run_now,
                                            self.clock).save_if_changed())
        index = Index(file_url_for(None))
        loader = IndexLoader(index, self.stacks["release"].stored, path, run_now, self.clock)
        self.successResultOf(ensureDeferred(loader.load()))
        self.assertEqual(index.live_promotions(), {WHEEL[0]: Promotion("staging", "bob", T0)})
        default = os.path.join(self.folder(), "index.json")
        self.successResultOf(SnapshotWriter(self.stacks["default"].index, default, run_now,
                                            self.clock).save_if_changed())
        with open(default, "rb") as f:
            self.assertNotIn(b"promotions", f.read())

    def test_ten_files_measured(self):
        """A release of 10 files promoted on local disk (the time is printed, for the docs)."""
        files = [make_wheel("widget", "1.2", tag=f"py3-none-linux_{i}") for i in range(9)]
        self.host("staging", [*files, SDIST])
        started = time.perf_counter()
        code, body = self.promote()
        took = time.perf_counter() - started
        self.assertEqual(code, 200, body)
        self.assertEqual(len(json.loads(body)["promoted"]), 10)
        print(f"\n10-file promotion on local disk: {took * 1000:.1f} ms")


@attrs.define
class _FakeServer:
    """A server that answers one promotion."""

    answer: dict
    asked: list = attrs.Factory(list)

    @contextlib.contextmanager
    def request(self, method, path, headers=None, body=None):
        self.asked.append((method, path, headers, json.loads(body)))
        yield io.BytesIO(json.dumps(self.answer).encode())


class CommandTests(SynchronousTestCase):
    """C{pypid-admin promote FROM TO PROJECT==VERSION}."""

    def test_promote(self):
        """The command posts the promotion and prints one line a file."""
        server = _FakeServer({"to": "release", "promoted": ["a.whl"], "skipped": ["b.tar.gz"]})
        self.patch(admin, "server_from", lambda options: server)
        out, err = io.StringIO(), io.StringIO()
        status = admin.main(["promote", "staging", "release", "widget==1.2"], out, err)
        self.assertEqual(status, 0, err.getvalue())
        self.assertEqual(server.asked, [("POST", "api/promote",
                                         {"Content-Type": "application/json"},
                                         {"from": "staging", "to": "release",
                                          "project": "widget", "version": "1.2"})])
        self.assertEqual(out.getvalue(), "promoted a.whl to release\n"
                                         "skipped b.tar.gz: release holds it already\n")

    def test_allow_denied(self):
        """C{--allow-denied} asks for the admin's override of advisories that deny the release."""
        server = _FakeServer({"to": "release", "promoted": ["a.whl"], "skipped": []})
        self.patch(admin, "server_from", lambda options: server)
        out, err = io.StringIO(), io.StringIO()
        status = admin.main(["promote", "--allow-denied", "staging", "release", "widget==1.2"],
                            out, err)
        self.assertEqual(status, 0, err.getvalue())
        self.assertEqual(server.asked[0][3], {"from": "staging", "to": "release",
                                              "project": "widget", "version": "1.2",
                                              "allow_denied": True})

    def test_bad_release(self):
        """A release not spelt PROJECT==VERSION is refused before any request."""
        err = io.StringIO()
        self.patch(admin.sys, "stderr", err)
        with self.assertRaises(SystemExit) as raised:
            admin.main(["promote", "staging", "release", "widget-1.2"], io.StringIO(), err)
        self.assertEqual(raised.exception.code, 2)


class HiddenHashTests(_PromoteCase):
    """
    Issue 41, defect 7: a promoter who may write a project in the target
    but not read it there learns of a conflict, not the target's sha256.
    """

    def setUp(self):
        super().setUp()
        self.access.reconfigure(attrs.evolve(model(), rules=(
            parse_rule("release/widget", "user:bob w", 0),)), self.verifier, self.tokens)
        self.host("staging", [WHEEL])
        self.other = make_wheel("widget", "1.2", module_text="other bytes")
        self.host("release", [self.other])

    def test_write_only_promoter(self):
        code, body = self.promote("bob")
        self.assertEqual(code, 409, body)
        self.assertIn("holds a file of that name with other bytes", body)
        self.assertNotIn(hashlib.sha256(self.other[1]).hexdigest(), body)

    def test_reader_told_the_hash(self):
        code, body = self.promote("root")
        self.assertEqual(code, 409, body)
        self.assertIn(hashlib.sha256(self.other[1]).hexdigest(), body)


class DeleteRaceTests(_PromoteCase):
    """
    Issue 41, defect 7: a promotion and a delete of the same release in
    the source come one after the other, in the order they reach the
    source's locks; a promotion never lands a release deleted while it
    waited.
    """

    def setUp(self):
        super().setUp()
        self.host("staging", [WHEEL, SDIST])
        self.keys = sorted({filename_key(name) for name, _ in (WHEEL, SDIST)})

    def start_promote(self):
        """The Deferred of a promotion's response, bob's, from staging to release."""
        body = json.dumps({"from": "staging", "to": "release", "project": "widget",
                           "version": "1.2"})
        return self.client.post("http://127.0.0.1/api/promote", data=body, headers={
            b"content-type": [b"application/json"], b"authorization": [basic("bob")]})

    def delete_under_locks(self, gate):
        """
        Delete the release from staging as the publishing area does (under
        staging's locks of its distributions), once C{gate} fires.
        """
        staging = self.stacks["staging"]

        async def delete():
            await gate
            for filename, _ in (WHEEL, SDIST):
                record = staging.index.get_file(filename)
                await staging.stored.delete(record)
                staging.index.remove(filename)
        async def under(keys):
            if not keys:
                return await delete()
            return await staging.locks.run(keys[0], under, keys[1:])
        return ensureDeferred(under(self.keys))

    def test_delete_first(self):
        """A delete holds the source's locks: the promotion waits, then finds nothing (404)."""
        gate = Deferred()
        deleted = self.delete_under_locks(gate)
        response = self.start_promote()
        self.assertNoResult(response)
        gate.callback(None)
        self.successResultOf(deleted)
        self.client.flush()
        response = self.successResultOf(response)
        body = self.successResultOf(response.content()).decode()
        self.assertEqual(response.code, 404, body)
        self.assertIn("deleted meanwhile", body)
        self.assertEqual(len(self.stacks["release"].index), 0)
        self.assertEqual(self.stacks["release"].stored.objects, {})

    def test_promotion_first(self):
        """
        A promotion under way (its adopts not done) holds the source's
        locks: the delete waits for it, and takes the source's copy only.
        """
        stack = self.stacks["release"]
        measured = MeasuredStorage(stack.stored, time.monotonic)
        held = []
        real = stack.stored.adopt

        def adopt(source, record, promotion):
            d = Deferred()
            held.append(d)
            return d.addCallback(lambda _: real(source, record, promotion))
        measured.adopt = adopt
        self.stacks["release"] = attrs.evolve(stack, stored=measured)
        response = self.start_promote()
        self.assertEqual(len(held), 1)
        deleted = self.delete_under_locks(succeed(None))
        self.assertNoResult(deleted)
        self.assertIsNotNone(self.stacks["staging"].index.get_file(WHEEL[0]))
        while held:
            held.pop().callback(None)
        self.client.flush()
        response = self.successResultOf(response)
        self.assertEqual(response.code, 200, self.successResultOf(response.content()))
        self.successResultOf(deleted)
        self.assertIsNone(self.stacks["staging"].index.get_file(WHEEL[0]))
        for filename, _ in (WHEEL, SDIST):
            self.assertIsNotNone(self.stacks["release"].index.get_file(filename))
