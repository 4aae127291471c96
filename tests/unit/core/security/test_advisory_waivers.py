"""
Tests for the advisory waivers admins keep (issue 44): their document
(L{pypid.core.security.advisory_waivers}), what an index's policy does with them
(L{pypid.core.security.advisories.AdvisoryPolicy.take_waivers}), and their keeper
(L{pypid.state.waiver_keeper.WaiverKeeper}) between a storage and the
indexes, two servers sharing one storage.
"""

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.version_order import release_key
from pypid.core.security.advisories import (
    ACTED,
    BELOW,
    CONFIGURED,
    WAIVED,
    Advisory,
    AdvisoryBoard,
    AdvisoryDB,
    AdvisoryPolicy,
    AdvisoryRules,
)
from pypid.core.security.advisory_waivers import (
    MAX_DOCUMENT,
    MAX_WAIVERS,
    InvalidWaiver,
    TooManyWaivers,
    Waivers,
    parse_waiver,
)
from pypid.core.security.affected_releases import Affected
from pypid.state.waiver_keeper import WaiverKeeper
from pypid.storage.base.capabilities import WAIVERS
from pypid.storage.base.interface import StorageError
from tests.harness.memory_storage import MemoryStorage

HIGH = Advisory("GHSA-aaaa-0000-0001", aliases=("CVE-2026-1",), severity="high",
                affected=(Affected("widget", (), frozenset({release_key("2.0")})),))
LOW = Advisory("PYSEC-2026-2", severity="low",
               affected=(Affected("widget", (), frozenset({release_key("2.0")})),))


def waiver(project="widget", advisory=None, version=None, index="default"):
    return parse_waiver({k: v for k, v in {"index": index, "project": project,
                                            "advisory": advisory,
                                            "version": version}.items() if v})


class DocumentTests(SynchronousTestCase):
    """The waivers' document: parsed, kept, read back; every refusal names its field."""

    def test_round_trip(self):
        """What is kept reads back the same, replacements counted once."""
        waivers = Waivers().adding(waiver(advisory="cve-2026-1")).adding(
            waiver(version="2.0")).adding(attrs.evolve(waiver(version="2"), reason="again"))
        self.assertEqual(len(waivers), 2)
        self.assertEqual(Waivers.from_bytes(waivers.to_bytes()), waivers)
        self.assertEqual(waivers.of_index("default").releases, {("widget", "2")})
        self.assertEqual(waivers.of_index("default").advisories, {("widget", "CVE-2026-1")})
        self.assertEqual(waivers.of_index("other").projects, frozenset())

    def test_removing(self):
        """A waiver is removed by its key; none to remove changes nothing."""
        waivers = Waivers().adding(waiver(version="2.0"))
        after, removed = waivers.removing(waiver(version="2.0.0").key)
        self.assertEqual((len(after), removed.version), (0, "2.0"))
        self.assertEqual(after.removing(waiver(version="2").key), (after, None))

    def test_bounded_bytes(self):
        """
        The document stays under L{MAX_DOCUMENT} bytes (every storage reads
        it back whole), whatever the reasons' characters; a project's
        name is bounded too.
        """
        waivers = Waivers()
        reason = "\u0436" * 200
        with self.assertRaises(TooManyWaivers) as caught:
            for n in range(MAX_WAIVERS):
                waivers = waivers.adding(attrs.evolve(
                    waiver(project="p" + "x" * 190 + str(n), advisory=f"X-{n}"), reason=reason))
        self.assertIn("KiB", str(caught.exception))
        self.assertLessEqual(len(waivers.to_bytes()), MAX_DOCUMENT)
        self.assertEqual(Waivers.from_bytes(waivers.to_bytes()), waivers)
        self.assertRaises(InvalidWaiver, waiver, project="p" * 201, advisory="X-1")

    def test_bounded(self):
        """At most L{MAX_WAIVERS}: one more is refused, a replacement is not."""
        waivers = Waivers(tuple(waiver(advisory=f"X-{n}") for n in range(MAX_WAIVERS)))
        self.assertRaises(TooManyWaivers, waivers.adding, waiver(advisory="Y-1"))
        self.assertEqual(len(waivers.adding(waiver(advisory="X-1"))), MAX_WAIVERS)

    def test_unreadable(self):
        """A document that is not one is refused, naming why."""
        for data, said in [(b"{", "not JSON"), (b"[]", "waivers: a list is required"),
                           (b'{"waivers": [1]}', "waivers: each must be an object"),
                           (b'{"waivers": [{"index": "default", "project": "w"}]}',
                            "advisory or version: exactly one is required"),
                           (b'{"waivers": [{"index": "d", "project": "w", "version": "1",'
                            b' "at": "noon"}]}', "waivers: by must be text and at a number"),
                           (b'{"waivers": [{"index": "d", "project": "w", "version": "1",'
                            b' "at": 1' + b"0" * 400 + b'}]}', "at must be a time"),
                           (b'{"waivers": [{"index": "d", "project": "w", "version": "1",'
                            b' "at": NaN}]}', "at must be a time"),
                           (b" " * (2 * MAX_DOCUMENT + 1), "larger than")]:
            with self.assertRaises(InvalidWaiver) as caught:
                Waivers.from_bytes(data)
            self.assertIn(said, str(caught.exception))

    @settings(max_examples=200, deadline=None)
    @given(st.dictionaries(st.sampled_from(["index", "project", "advisory", "version",
                                            "reason", "other"]), st.text(max_size=30)))
    def test_any_fields(self, fields):
        """Any fields give a waiver or L{InvalidWaiver}, never another error."""
        try:
            found = parse_waiver(fields)
        except InvalidWaiver:
            return
        self.assertEqual(Waivers.from_bytes(Waivers((found,)).to_bytes()).entries, (found,))

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200))
    def test_any_bytes(self, data):
        """Any bytes read as a document or L{InvalidWaiver}, never another error."""
        try:
            Waivers.from_bytes(data)
        except InvalidWaiver:
            pass


class PolicyTests(SynchronousTestCase):
    """An index's policy with waivers kept: verdicts, stamps, standings."""

    def setUp(self):
        self.board = AdvisoryBoard()
        self.board.replace(AdvisoryDB.of([HIGH, LOW]))
        self.policy = AdvisoryPolicy(AdvisoryRules.parse("deny", "medium"), self.board)

    def test_advisory_waived(self):
        """An advisory waived (by an alias) for the project lets its release through."""
        self.assertEqual(self.policy.verdict("widget", "2.0").ids, ("GHSA-aaaa-0000-0001",))
        stamp = self.policy.stamp
        waived = Waivers((waiver(advisory="cve-2026-1"),)).of_index("default")
        self.assertTrue(self.policy.take_waivers(waived))
        self.assertFalse(self.policy.take_waivers(waived), "the same: no change")
        self.assertNotEqual(self.policy.stamp, stamp)
        self.assertIsNone(self.policy.verdict("widget", "2.0"))
        self.assertEqual(self.policy.standing("widget", "2.0", HIGH), WAIVED)
        self.assertEqual(self.policy.standing("widget", "2.0", LOW), BELOW)

    def test_another_project(self):
        """A waiver of one project does not reach another's release of the same advisory."""
        self.policy.take_waivers(Waivers((waiver(project="gadget",
                                                 advisory="CVE-2026-1"),)).of_index("default"))
        self.assertEqual(self.policy.standing("widget", "2.0", HIGH), ACTED)
        self.assertIsNotNone(self.policy.verdict("widget", "2.0"))

    def test_configured_first(self):
        """A waiver of the configuration is said to be the configuration's."""
        policy = AdvisoryPolicy(AdvisoryRules.parse("deny", "", ["widget==2"]), self.board)
        policy.take_waivers(Waivers((waiver(version="2.0"),)).of_index("default"))
        self.assertEqual(policy.standing("widget", "2.0", HIGH), CONFIGURED)
        self.assertEqual(policy.standing("widget", "2.0", LOW), CONFIGURED)


class _FailingStorage:
    """A storage whose waivers cannot be read."""

    def document(self, name):
        return fail(StorageError("the disk is gone"))


class KeeperTests(SynchronousTestCase):
    """Two servers' keepers over one storage, as on a shared bucket."""

    def setUp(self):
        self.clock = Clock()
        self.storage = MemoryStorage(self.mktemp(), self.clock)
        self.told = {"a": [], "b": []}
        self.a = self.keeper("a")
        self.b = self.keeper("b")

    def keeper(self, name):
        keeper = WaiverKeeper(self.storage, self.clock)
        keeper.listen(lambda waivers: self.told[name].append(waivers) or [name])
        self.successResultOf(keeper.startService())
        self.addCleanup(keeper.stopService)
        return keeper

    def test_another_servers_change(self):
        """One server's change reaches the other at its next read, not before."""
        added = waiver(advisory="CVE-2026-1")
        self.assertEqual(self.successResultOf(
            self.a.change(lambda w: (w.adding(added), added))), added)
        self.assertEqual(len(self.a.current), 1)
        self.assertEqual(len(self.b.current), 0)
        self.clock.advance(self.b.interval)
        self.assertEqual(len(self.b.current), 1)
        self.assertEqual(len(self.told["b"]), 1)
        # (each reads the document first: the other's waiver is kept)
        other = waiver(version="1.0")
        self.successResultOf(self.b.change(lambda w: (w.adding(other), other)))
        self.clock.advance(self.a.interval)
        self.assertEqual(len(self.a.current), 2)

    def test_nothing_to_change(self):
        """An edit that changes nothing keeps nothing and tells no one."""
        self.assertIsNone(self.successResultOf(self.a.change(lambda w: w.removing(
            waiver(version="1.0").key))))
        self.assertIsNone(self.successResultOf(self.storage.document(WAIVERS)))
        self.assertEqual(self.told["a"], [])

    def test_unreadable_document(self):
        """A document another tool broke is not taken: the waivers in force stay."""
        added = waiver(advisory="CVE-2026-1")
        self.successResultOf(self.a.change(lambda w: (w.adding(added), added)))
        self.successResultOf(self.storage.keep_document(WAIVERS, b"{broken"))
        self.clock.advance(self.a.interval)
        self.assertEqual(len(self.a.current), 1)
        failure = self.failureResultOf(self.a.change(lambda w: (w, added)))
        self.assertIsInstance(failure.value, InvalidWaiver)

    def test_unreadable_at_the_start(self):
        """An unreadable document at the start: none in force, and the read said failed."""
        self.successResultOf(self.storage.keep_document(WAIVERS, b'{"waivers": [2]}'))
        keeper = self.keeper("a")
        self.assertIs(keeper.read_ok, False)
        self.clock.advance(keeper.interval)
        self.assertIs(keeper.read_ok, False, "the same bytes: as unreadable")
        self.successResultOf(self.storage.keep_document(WAIVERS, b'{"waivers": []}'))
        self.clock.advance(keeper.interval)
        self.assertIs(keeper.read_ok, True)

    def test_storage_down(self):
        """A storage that fails at the start: no waiver in force, and the read said failed."""
        keeper = WaiverKeeper(_FailingStorage(), self.clock)
        self.successResultOf(keeper.startService())
        self.addCleanup(keeper.stopService)
        self.assertIs(keeper.read_ok, False)
        self.assertEqual(len(keeper.current), 0)
