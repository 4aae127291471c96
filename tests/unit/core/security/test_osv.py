"""
Tests for L{pypid.core.security.osv}: OSV records read into advisories (issue 27):
ranges under PEP 440, version lists, withdrawn records, aliases merged,
severities from CVSS vectors and from the database's word, bad records
skipped and counted.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.security.osv import (
    MAX_AFFECTED,
    MAX_EVENTS,
    MAX_RANGES,
    MAX_VERSIONS,
    read_records,
    severity_of,
)
from tests.harness.osv_records import CRITICAL, LOW, osv_record


def _db(*records, raw=()):
    result = read_records([json.dumps(r).encode() for r in records] + list(raw))
    return result


class RangeTests(SynchronousTestCase):
    """What an C{ECOSYSTEM} range affects."""

    def affected(self, events, versions):
        db = _db(osv_record("PYSEC-1", "Widget_Lib", events=events)).db
        return [bool(db.affecting("widget-lib", v)) for v in versions]

    def test_introduced_fixed(self):
        """From introduced (included) to fixed (excluded); the name normalized."""
        self.assertEqual(self.affected([{"introduced": "1.0"}, {"fixed": "1.2"}],
                                       ["0.9", "1.0", "1.1", "1.2", "2.0"]),
                         [False, True, True, False, False])

    def test_zero_and_last_affected(self):
        """C{introduced: "0"} from the first version; last_affected included."""
        self.assertEqual(self.affected([{"introduced": "0"}, {"last_affected": "1.1"}],
                                       ["0.0.1", "1.1", "1.1.1"]), [True, True, False])

    def test_several_introduced_unsorted(self):
        """Events in any order are sorted by version: two spans, and an open one."""
        events = [{"fixed": "2.1"}, {"introduced": "3.0"}, {"introduced": "2.0"},
                  {"fixed": "1.5"}, {"introduced": "1.0"}]
        self.assertEqual(self.affected(events, ["1.2", "1.6", "2.0.5", "2.1", "3.5"]),
                         [True, False, True, False, True])

    def test_bad_event_version(self):
        """
        A range with an event of no PEP 440 version is left out whole (its
        end lost, it would affect every later release), and counted; the
        record's other ranges stand.
        """
        result = _db(osv_record("PYSEC-1", "widget", ranges=[
            {"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "not a version"}]},
            {"type": "ECOSYSTEM", "events": [{"introduced": "3.0"}, {"fixed": "3.1"}]}]))
        self.assertEqual(result.bad_events, 1)
        self.assertFalse(result.db.affecting("widget", "1.5"))
        self.assertFalse(result.db.affecting("widget", "9.0"))
        self.assertTrue(result.db.affecting("widget", "3.0"))

    def test_versions_and_other_ranges(self):
        """A version list matches; GIT and SEMVER ranges and other ecosystems say nothing."""
        db = _db(osv_record("PYSEC-1", "widget", versions=["1.0", "1.0.1"], ranges=[
            {"type": "GIT", "repo": "https://code.example/w", "events": [{"introduced": "0"}]},
            {"type": "SEMVER", "events": [{"introduced": "0"}]}]),
            osv_record("GHSA-npm0-0000-0000", "widget", ecosystem="npm",
                       events=[{"introduced": "0"}])).db
        self.assertEqual([bool(db.affecting("widget", v)) for v in ["1.0.0", "1.0.1", "1.1"]],
                         [True, True, False])
        self.assertEqual(len(db), 1)


class MergeTests(SynchronousTestCase):
    """Withdrawn records, aliases, severities."""

    def test_withdrawn(self):
        """A withdrawn record is no advisory, and is counted."""
        result = _db(osv_record("PYSEC-1", "widget", versions=["1"], withdrawn="2026-01-01T00:00:00Z"))
        self.assertEqual((len(result.db), result.withdrawn), (0, 1))

    def test_aliases_merged(self):
        """
        Records sharing an identifier, transitively, are one advisory: its id
        the PYSEC one, the others aliases; what they affect together; the
        highest severity; the fixes of both.
        """
        db = _db(osv_record("GHSA-aaaa-bbbb-cccc", "widget", aliases=["CVE-2026-1"],
                            events=[{"introduced": "1.0"}, {"fixed": "1.2"}], severity="MODERATE"),
                 osv_record("PYSEC-2026-5", "widget", aliases=["CVE-2026-1"],
                            events=[{"introduced": "2.0"}, {"fixed": "2.1"}], cvss=CRITICAL),
                 osv_record("PYSEC-2026-6", "widget", versions=["9"])).db
        self.assertEqual(len(db), 2)
        [merged] = db.affecting("widget", "1.1")
        self.assertEqual(merged.id, "PYSEC-2026-5")
        self.assertEqual(merged.aliases, ("CVE-2026-1", "GHSA-aaaa-bbbb-cccc"))
        self.assertEqual(db.affecting("widget", "2.0"), (merged,))
        self.assertEqual((merged.severity, merged.score), ("critical", 9.8))
        self.assertEqual(merged.fixed_in, ("1.2", "2.1"))
        self.assertEqual(merged.link, "https://advisories.example/PYSEC-2026-5")

    def test_severity(self):
        """A CVSS vector's band first, then the database's word; none readable: unknown."""
        db = _db(osv_record("PYSEC-1", "a", versions=["1"], cvss=LOW, severity="CRITICAL"),
                 osv_record("PYSEC-2", "b", versions=["1"], severity="Moderate"),
                 osv_record("PYSEC-3", "c", versions=["1"], cvss="CVSS:3.1/nonsense")).db
        self.assertEqual([db.affecting(p, "1")[0].severity for p in "abc"],
                         ["low", "medium", None])
        self.assertEqual([severity_of(s) for s in (0.0, 3.9, 4.0, 6.9, 7.0, 8.9, 9.0, 10.0)],
                         ["low", "low", "medium", "medium", "high", "high", "critical",
                          "critical"])


class BadRecordTests(SynchronousTestCase):
    """A record that cannot be read is skipped and counted; the others stand."""

    def test_skipped(self):
        good = osv_record("PYSEC-1", "widget", versions=["1"])
        deep = b"[" * 100_000 + b"]" * 100_000
        result = _db(good, {"id": "../../etc", "affected": []}, {"affected": []},
                     osv_record("PYSEC-2", "w", events=[{"introduced": "1", "fixed": "2"}]),
                     {"id": "PYSEC-3", "affected": "everything"},
                     raw=[b"{not json", deep, b"[1, 2]"])
        self.assertEqual(len(result.db), 1)
        self.assertEqual(result.records, 8)
        self.assertEqual(result.skipped, {
            "no usable id": 2, "a range event is not one key": 1, "affected is not a list": 1,
            "not JSON": 1, "nested too deep": 1, "not a JSON object": 1})
        self.assertIn("2 no usable id", result.summary())

    def test_control_characters(self):
        """A summary's escape sequences and bells are spaces (it reaches terminals)."""
        record = osv_record("PYSEC-1", "widget", versions=["1"],
                            summary="evil \x1b]0;pwned\x07\x1b[2J text \u202e")
        [advisory] = _db(record).db.affecting("widget", "1")
        self.assertTrue(advisory.summary.isprintable(), repr(advisory.summary))
        self.assertTrue(advisory.summary.startswith("evil ]0;pwned [2J text"))

    def test_texts_bounded(self):
        """A huge summary or details is cut; a link that is no http(s) URL is not kept."""
        record = osv_record("PYSEC-1", "widget", versions=["1"], summary="x" * 10_000)
        record["details"] = "y" * 100_000
        record["references"] = [{"type": "ADVISORY", "url": "javascript:alert(1)"}]
        [advisory] = _db(record).db.affecting("widget", "1")
        self.assertEqual((len(advisory.summary), len(advisory.details)), (300, 2000))
        self.assertIsNone(advisory.link)


class TooLongTests(SynchronousTestCase):
    """
    A list that decides what is affected is never read in part (issue 45):
    a record past a bound is refused whole, named, and counted, so the
    load's warning says which record was left out.
    """

    def refused(self, record):
        result = _db(osv_record("PYSEC-9", "other", versions=["1"]), record)
        self.assertEqual(len(result.db), 1, "only the good record is read")
        [(reason, count)] = result.skipped.items()
        self.assertEqual(count, 1)
        self.assertTrue(reason.startswith(record["id"] + ": more than "), reason)
        self.assertIn(reason, result.summary())
        return reason

    def test_events(self):
        """An C{introduced} past the thousandth event is not dropped: the record is refused."""
        events = [{"introduced": f"0.{i}"} for i in range(MAX_EVENTS)] + [{"introduced": "9"}]
        record = osv_record("PYSEC-1", "widget", events=events)
        self.assertIn("events in a range", self.refused(record))

    def test_versions(self):
        """A version past the bound of a list is not dropped."""
        versions = [f"0.{i}" for i in range(MAX_VERSIONS)] + ["9"]
        record = osv_record("PYSEC-1", "widget", versions=versions)
        self.assertIn("versions in an affected entry", self.refused(record))

    def test_affected(self):
        """A package past the bound of affected entries is not dropped."""
        record = osv_record("PYSEC-1", "widget", versions=["1"])
        record["affected"] = record["affected"] * (MAX_AFFECTED + 1)
        self.assertIn("affected entries", self.refused(record))

    def test_ranges(self):
        """A range past the bound of an entry's ranges is not dropped."""
        record = osv_record("PYSEC-1", "widget", events=[{"introduced": "1"}])
        record["affected"][0]["ranges"] *= MAX_RANGES + 1
        self.assertIn("ranges in an affected entry", self.refused(record))

    def test_at_the_bound(self):
        """A list at its bound is read whole; its last item counts."""
        versions = [f"0.{i}" for i in range(MAX_VERSIONS - 1)] + ["9"]
        db = _db(osv_record("PYSEC-1", "widget", versions=versions)).db
        self.assertTrue(db.affecting("widget", "9"))


class AffectedSeverityTests(SynchronousTestCase):
    """The database's word may be said of an affected package rather than the record."""

    def test_affected_database_specific(self):
        """C{affected[].database_specific.severity} is read; the highest word wins."""
        record = osv_record("PYSEC-1", "a", versions=["1"])
        record["affected"][0]["database_specific"] = {"severity": "HIGH"}
        other = osv_record("PYSEC-2", "b", versions=["1"], severity="LOW")
        other["affected"][0]["database_specific"] = {"severity": "critical"}
        db = _db(record, other).db
        self.assertEqual([db.affecting(p, "1")[0].severity for p in "ab"], ["high", "critical"])

    def test_vector_versions(self):
        """CVSS v2 and v4 vectors are scored too (the record's or the affected entry's)."""
        v2 = osv_record("PYSEC-1", "a", versions=["1"])
        v2["severity"] = [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:C/I:C/A:C"}]
        v4 = osv_record("PYSEC-2", "b", versions=["1"], severity="LOW")
        v4["affected"][0]["severity"] = [{"type": "CVSS_V4", "score": (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N")}]
        db = _db(v2, v4).db
        self.assertEqual([db.affecting(p, "1")[0].severity for p in "ab"], ["critical", "critical"])
