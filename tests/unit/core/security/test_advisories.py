"""
Tests for L{pypid.core.security.advisories} (issue 27 section 3): which releases an
advisory affects under PEP 440, what an index's rules act on, the verdicts
worked out once per database (never per request), and what the warnings
look like on the pages for people and in the legacy JSON API.
"""

import json

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.version_order import release_key
from pypid.core.formats import legacy_info, pages, project_page
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.security.advisories import (
    Advisory,
    AdvisoryBoard,
    AdvisoryDB,
    AdvisoryPolicy,
    AdvisoryRules,
    InvalidRules,
    no_advisories,
    vulnerability_json,
)
from pypid.core.security.affected_releases import Affected, Span
from tests.harness.records import make_record


def _advisory(id="PYSEC-2026-1", project="widget", spans=(), versions=(), severity="high",
              **kwargs):
    return Advisory(id, severity=severity, affected=(Affected(
        project, tuple(spans), frozenset(release_key(v) for v in versions)),), **kwargs)


def _span(introduced=None, end=None, included=False):
    return Span(Version(introduced) if introduced else None, Version(end) if end else None,
                included)


class MatchTests(SynchronousTestCase):
    """Ranges and version lists under PEP 440."""

    def test_spans(self):
        """C{fixed} is excluded, C{last_affected} included, no introduced from the first."""
        fixed = Affected("widget", (_span("1.0", "1.2"),))
        self.assertEqual([fixed.affects(v) for v in ["0.9", "1.0", "1.1.post1", "1.2", "2"]],
                         [False, True, True, False, False])
        last = Affected("widget", (_span(None, "1.2", included=True),))
        self.assertEqual([last.affects(v) for v in ["0.1", "1.2", "1.2.0", "1.2.1"]],
                         [True, True, True, False])
        self.assertTrue(Affected("widget", (_span("3"),)).affects("9.0rc1"))

    def test_many_versions(self):
        """A long version list is kept sorted, each once, and searched by bisection."""
        many = [f"1.{i}" for i in range(5000)] + ["1.7", "Weird One"]
        affected = Affected("widget", (), (release_key(v) for v in many))
        self.assertEqual(list(affected.versions), sorted(set(map(release_key, many))))
        for version, expected in [("1.0", True), ("1.4999", True), ("1.5000", False),
                                  ("1.7.0", True), ("weird one", True), ("0.1", False)]:
            self.assertEqual(affected.affects(version), expected, version)

    def test_versions(self):
        """A listed version matches its PEP 440 equals; an unreadable one, its text."""
        affected = Affected("widget", (), frozenset(release_key(v)
                                                    for v in ["1.0", "Dev-Build"]))
        self.assertEqual([affected.affects(v) for v in ["1.0.0", "1.0", "v1.0", "1.0.1",
                                                         "dev-build"]],
                         [True, True, True, False, True])
        self.assertFalse(Affected("widget", (_span("1"),)).affects("not a version"))

    def test_local_build_of_listed_version(self):
        """
        A listed version covers its local builds (PEP 440: C{==1.0} matches
        C{1.0+corp1}); a listed local build covers itself alone.
        """
        affected = Affected("foo-bar", (), frozenset(release_key(v)
                                                     for v in ["1.0", "2.0+corp1"]))
        self.assertEqual([affected.affects(v) for v in [
            "1.0+corp1", "1.0.0+corp.1", "1.0+CORP-1", "1.0.1+corp1", "1.0.post1+corp1",
            "2.0+corp1", "2.0.0+CORP1", "2.0+corp2", "2.0"]],
            [True, True, True, False, False, True, True, False, False])

    def test_local_build_in_span(self):
        """
        A range compares a local build by its public version when the bound
        has no local label (PEP 440): the local build of a C{last_affected}
        version is affected, that of a C{fixed} one is not; a bound with a
        local label compares the whole version.
        """
        last = Affected("widget", (_span("1.0", "1.2", included=True),))
        self.assertEqual([last.affects(v) for v in ["1.2+corp1", "1.0+corp1", "0.9+corp1",
                                                     "1.2.1+corp1"]],
                         [True, True, False, False])
        fixed = Affected("widget", (_span("1.0", "1.2"),))
        self.assertEqual([fixed.affects(v) for v in ["1.1+corp1", "1.2+corp1"]], [True, False])
        local_end = Affected("widget", (_span("1.0", "1.2+corp2"),))
        self.assertEqual([local_end.affects(v) for v in ["1.2+corp1", "1.2+corp2", "1.2"]],
                         [True, False, True])

    @settings(max_examples=300, deadline=None)
    @given(release=st.lists(st.integers(0, 30), min_size=1, max_size=4),
           suffix=st.sampled_from(["", "a1", "rc2", ".post3", ".dev4", "b1.post2"]),
           local=st.lists(st.from_regex(r"\A[a-zA-Z0-9]{1,8}\Z"), min_size=1, max_size=3),
           separator=st.sampled_from([".", "-", "_"]),
           spelled=st.sampled_from(["", ".0", ".0.0"]))
    def test_local_build_denied(self, release, suffix, local, separator, spelled):
        """
        For any version an advisory lists (or a range covers), any local
        build of it is denied too, however either is spelt.
        """
        version = ".".join(map(str, release)) + suffix
        built = ".".join(map(str, release)) + spelled + suffix + "+" + separator.join(local)
        board = AdvisoryBoard(AdvisoryDB.of([
            _advisory("PYSEC-2026-9", project="foo-bar", versions=[version]),
            _advisory("PYSEC-2026-8", project="in-range", spans=[
                _span(version, version, included=True)])]))
        policy = AdvisoryPolicy(AdvisoryRules.parse("deny"), board)
        for project, ident in (("foo-bar", "PYSEC-2026-9"), ("in-range", "PYSEC-2026-8")):
            self.assertIsNotNone(policy.denied(project, version), (project, version))
            verdict = policy.denied(project, built)
            self.assertIsNotNone(verdict, (project, built))
            self.assertEqual(verdict.ids, (ident,))

    def test_db(self):
        """The database finds a project's advisories by name, and which affect a version."""
        a = _advisory(spans=[_span("1.0", "2.0")])
        b = _advisory("GHSA-aaaa-bbbb-cccc", versions=["1.5"])
        db = AdvisoryDB.of([a, b, _advisory("PYSEC-2", project="other", versions=["1"])])
        self.assertEqual(len(db), 3)
        self.assertEqual(db.projects(), {"widget", "other"})
        self.assertEqual(db.affecting("widget", "1.5"), (a, b))
        self.assertEqual(db.affecting("widget", "2.0"), ())
        self.assertEqual(db.affecting("nothing", "1.0"), ())


class RulesTests(SynchronousTestCase):
    """What an index's settings act on."""

    def test_severity(self):
        """Below the lowest severity, ignored; an unknown severity only with no minimum."""
        rules = AdvisoryRules.parse("hide", "high")
        self.assertTrue(rules.acts_on(_advisory(severity="critical")))
        self.assertFalse(rules.acts_on(_advisory(severity="medium")))
        self.assertFalse(rules.acts_on(_advisory(severity=None)))
        self.assertTrue(AdvisoryRules.parse("hide").acts_on(_advisory(severity=None)))

    def test_waived_identifier(self):
        """A waived identifier, any alias in any case, is not acted on."""
        rules = AdvisoryRules.parse("deny", "", ["ghsa-aaaa-bbbb-cccc"])
        self.assertFalse(rules.acts_on(_advisory(aliases=("GHSA-AAAA-BBBB-CCCC",))))
        self.assertTrue(rules.acts_on(_advisory()))

    def test_refused(self):
        """Each bad value names its key."""
        for args, start in [(("block",), "advisories:"), (("hide", "urgent"), "advisory_severity:"),
                            (("hide", "", ["a>=1"]), "advisory_waive:"),
                            (("hide", "", ["==1"]), "advisory_waive:")]:
            with self.assertRaises(InvalidRules) as caught:
                AdvisoryRules.parse(*args)
            self.assertTrue(str(caught.exception).startswith(start), caught.exception)


class PolicyTests(SynchronousTestCase):
    """An index's verdicts, worked out once per database and rules."""

    def setUp(self):
        self.board = AdvisoryBoard()
        self.advisory = _advisory(spans=[_span("1.0", "1.2")])
        self.board.replace(AdvisoryDB.of([self.advisory]))
        self.calls = 0
        real = AdvisoryDB.affecting

        def counted(db, project, version):
            self.calls += 1
            return real(db, project, version)

        self.patch(AdvisoryDB, "affecting", counted)

    def test_modes(self):
        """Each mode's verdict: off none, warn a warning, hide and deny hide, deny refuses."""
        for mode, hidden, denied in [("warn", False, False), ("hide", True, False),
                                     ("deny", True, True)]:
            policy = AdvisoryPolicy(AdvisoryRules.parse(mode), self.board)
            verdict = policy.verdict("widget", "1.1")
            self.assertEqual((verdict.action, verdict.ids), (mode, ("PYSEC-2026-1",)))
            self.assertEqual((policy.hidden("widget", "1.1"),
                              policy.denied("widget", "1.1") is not None), (hidden, denied))
            self.assertIsNone(policy.verdict("widget", "1.2"))
        self.assertIsNone(AdvisoryPolicy(AdvisoryRules(), self.board).verdict("widget", "1.1"))
        self.assertIsNone(no_advisories().verdict("widget", "1.1"))

    def test_waived_release(self):
        """A waived release gets no verdict; another of the project still does."""
        policy = AdvisoryPolicy(AdvisoryRules.parse("deny", "", ["Widget==1.1.0"]), self.board)
        self.assertIsNone(policy.verdict("widget", "1.1"))
        self.assertIsNotNone(policy.verdict("widget", "1.0"))
        # (a local build is another release to a waiver: it needs its own entry)
        self.assertIsNotNone(policy.verdict("widget", "1.1+corp1"))

    def test_once_per_database(self):
        """
        Asking again costs no matching; a new database or new rules are
        matched again, once; a project no advisory names is never matched.
        """
        policy = AdvisoryPolicy(AdvisoryRules.parse("hide"), self.board)
        for _ in range(1000):
            policy.hidden("widget", "1.1")
            policy.hidden("unnamed", "1.1")
        self.assertEqual(self.calls, 1)
        self.assertFalse(policy.affects("unnamed"))
        stamp = policy.stamp
        self.board.replace(AdvisoryDB.of([self.advisory]))
        policy.hidden("widget", "1.1")
        policy.hidden("widget", "1.1")
        self.assertEqual(self.calls, 2)
        self.assertNotEqual(policy.stamp, stamp)
        self.assertFalse(policy.take_rules(AdvisoryRules.parse("hide")))
        self.assertTrue(policy.take_rules(AdvisoryRules.parse("warn")))
        self.assertFalse(policy.hidden("widget", "1.1"))
        self.assertEqual(self.calls, 3)

    def test_memo_bounded(self):
        """Made-up versions asked for cannot grow the verdicts past their cap."""
        from pypid.core.security import advisories
        self.patch(advisories, "MAX_VERDICTS", 10)
        policy = AdvisoryPolicy(AdvisoryRules.parse("deny"), self.board)
        for i in range(100):
            policy.denied("widget", f"1.{i}")
        self.assertEqual(len(policy._verdicts), 10)
        self.assertIsNotNone(policy.denied("widget", "1.1"))

    def test_unread(self):
        """
        Until the advisories are read, every project may be named: an index
        that hides or denies has no verdict but a 503 with Retry-After (its
        message says whether they are being read or could not be), one that
        warns has nothing to say, one that ignores them nothing either;
        nothing of it is kept once they are read.
        """
        from pypid.core.security.advisories import FAILED, READING, AdvisoriesUnread
        self.board.replace(AdvisoryDB.unread_yet())
        self.assertEqual(self.board.unread, READING)
        self.assertEqual((self.board.db.projects(), len(self.board.db)), (frozenset(), 0))
        for mode in ("hide", "deny"):
            policy = AdvisoryPolicy(AdvisoryRules.parse(mode), self.board)
            self.assertTrue(policy.affects("any-project"))
            for ask in (policy.verdict, policy.hidden, policy.denied):
                with self.assertRaises(AdvisoriesUnread) as caught:
                    ask("any-project", "1.0")
            self.assertEqual((caught.exception.code, caught.exception.headers),
                             (503, ((b"retry-after", b"5"),)))
            self.assertIn("still being read", str(caught.exception))
        warn = AdvisoryPolicy(AdvisoryRules.parse("warn"), self.board)
        self.assertIsNone(warn.verdict("widget", "1.1"))
        off = AdvisoryPolicy(AdvisoryRules(), self.board)
        self.assertFalse(off.affects("widget"))
        self.board.replace(AdvisoryDB.unread_yet(FAILED))
        with self.assertRaises(AdvisoriesUnread) as caught:
            AdvisoryPolicy(AdvisoryRules.parse("deny"), self.board).verdict("widget", "1.1")
        self.assertIn("could not be read", str(caught.exception))
        self.assertEqual(caught.exception.headers, ((b"retry-after", b"60"),))
        deny = AdvisoryPolicy(AdvisoryRules.parse("deny"), self.board)
        self.board.replace(AdvisoryDB.of([self.advisory]))
        self.assertIsNone(self.board.unread)
        self.assertEqual(deny.verdict("widget", "1.1").ids, ("PYSEC-2026-1",))
        self.assertIsNone(warn.verdict("widget", "1.2"))
        self.assertEqual(warn.verdict("widget", "1.1").action, "warn")
        self.assertFalse(deny.affects("unnamed"))

    def test_listeners(self):
        """The board tells its listeners what was and what is in force."""
        seen = []
        self.board.listen(lambda before, after: seen.append((before, after)))
        old = self.board.db
        new = AdvisoryDB.of([])
        self.board.replace(new)
        self.assertEqual(seen, [(old, new)])


class WarningTests(SynchronousTestCase):
    """What people and the legacy JSON API are shown of a release's advisories."""

    def setUp(self):
        self.advisory = _advisory(
            aliases=("CVE-2026-0001", "GHSA-aaaa-bbbb-cccc"), summary="Widgets <leak>",
            details="Long text.", fixed_in=("1.2",), link="https://advisories.example/1",
            spans=[_span("1.0", "1.2")])
        self.board = AdvisoryBoard(AdvisoryDB.of([self.advisory]))
        self.index = Index(file_url_for(None))
        for version in ["1.1", "1.2"]:
            self.index.add(make_record("widget", version))
        self.project = self.index.project("widget")

    def test_vulnerability_json(self):
        """The public JSON API's fields."""
        self.assertEqual(vulnerability_json(self.advisory), {
            "aliases": ["CVE-2026-0001", "GHSA-aaaa-bbbb-cccc"], "details": "Long text.",
            "summary": "Widgets <leak>", "fixed_in": ["1.2"], "id": "PYSEC-2026-1",
            "link": "https://advisories.example/1", "source": "osv", "withdrawn": None})

    def test_legacy_json(self):
        """C{vulnerabilities} lists the shown release's advisories, none for a clean one."""
        policy = AdvisoryPolicy(AdvisoryRules.parse("warn"), self.board)
        found = legacy_info.releases(self.project, file_url_for(None))
        for shown, ids in [("1.1", ["PYSEC-2026-1"]), ("1.2", [])]:
            body = json.loads(legacy_info.render_json(
                self.project, found, shown, {}, 1, True, None,
                policy.verdict("widget", shown)))
            self.assertEqual([v["id"] for v in body["vulnerabilities"]], ids)

    def test_people_page(self):
        """The release's page names its advisories and what the index does; history marks it."""
        chrome = pages.Chrome(css="a.css", js="a.js", icon="a.svg")
        files = self.project.sorted_files()
        for mode, action in [("warn", b""), ("deny", b"refuses to serve them")]:
            policy = AdvisoryPolicy(AdvisoryRules.parse(mode), self.board)
            view = attrs.evolve(project_page.project_view("widget", "widget", files, "1.1"),
                                advisories={"1.1": policy.verdict("widget", "1.1")})
            body = project_page.project_page(chrome, view, "../../../")
            self.assertIn(b"Known vulnerabilities in 1.1", body)
            self.assertIn(b'<a href="https://advisories.example/1"', body)
            self.assertIn(b"Widgets &lt;leak&gt;", body)
            self.assertIn(b"Fixed in 1.2.", body)
            self.assertIn(b"vulnerable: PYSEC-2026-1", body)
            self.assertIn(action, body)
        clean = project_page.project_page(
            chrome, project_page.project_view("widget", "widget", files, "1.2"), "../../../")
        self.assertNotIn(b"Known vulnerabilities", clean)
