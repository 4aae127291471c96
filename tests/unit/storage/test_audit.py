"""
Tests of the audit log: the entry, its chain and the check of it (pure);
one contract for the three logs (in memory, local files, S3 on moto's
server); the buffer in front of their writes; what the web layer records
and C{GET /api/audit}, through L{treq.testing.StubTreq}.
"""

import argparse
import base64
import contextlib
import fcntl
import hashlib
import io
import json
import os
from functools import partial
from itertools import pairwise
from urllib.parse import urlencode

import attrs
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import LogLevel, capturedLogs
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from pypid.auth.hashes import hash_password
from pypid.auth.policy import AccessModel
from pypid.auth.throttle import LoginThrottle
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.core.records import audit_chain as audit
from pypid.core.records import audit_query
from pypid.core.records.audit_chain import AuditError, Entry, chain, format_time, verify_lines
from pypid.core.records.audit_query import make_query, select
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.records.login_failures import LoginFailures
from pypid.http.client import make_http
from pypid.storage.base.interface import StorageError
from pypid.storage.base.journal import IJournal, JournalWriter, PartlyWritten, retry_policy
from pypid.storage.bucket.bucket_journal import BucketJournal
from pypid.storage.bucket.bucket_records import BucketRecords
from pypid.storage.bucket.layout import Layout
from pypid.storage.folder.journal_files import LocalJournal, MemoryJournal
from pypid.storage.s3.api import S3Client
from pypid.storage.s3.credentials import CredentialSource
from pypid.storage.s3.sign import Bucket, Credentials
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.web_inputs import SiteServices, SiteSettings
from tests.harness import s3server
from tests.harness.distributions import make_wheel
from tests.harness.fakes import (
    FAST,
    multipart_body,
    one_index,
    run_in_pool_now,
    run_now,
    site_treq,
    twine_fields,
)
from tests.harness.memory_storage import MemoryStorage

#: 2026-01-01T00:00:00Z
T0 = 1767225600.0
SHA = "ab" * 32


def entry(offset=0.0, event="upload", **fields):
    """An entry at C{T0 + offset}."""
    fields.setdefault("user", "alice")
    return Entry(time=format_time(T0 + offset), event=event, **fields)


def entries_time(offset):
    """The time of an entry at C{T0 + offset}."""
    return format_time(T0 + offset)


def lines_of(entries, head=None):
    """The bytes of a file holding C{entries}."""
    lines, _ = chain(entries, head)
    return b"".join(line + b"\n" for line in lines)


# -- pure --------------------------------------------------------------------------------------


class EntryTests(SynchronousTestCase):
    """The entry: its JSON, its limits, what is refused."""

    def test_round_trip(self):
        """An entry read back from its line is the entry written, its link set."""
        written = entry(project="holy-grail", version="1.0", filename="f.whl", sha256=SHA,
                        token="abc", address="192.0.2.1", detail="why", count=3)
        line = audit.encode(written)
        self.assertEqual(audit.decode(line), written)
        data = json.loads(line)
        self.assertEqual(data["time"], "2026-01-01T00:00:00.000000Z")
        self.assertIsNone(data["prev"])
        self.assertNotIn("target", data)

    def test_index(self):
        """
        An entry may name its index (issue 26); one that names none is
        written byte for byte as before indexes existed, so the chains of
        old logs verify as they did.
        """
        named = entry(index="release", project="holy-grail", filename="f.whl")
        self.assertEqual(audit.decode(audit.encode(named)), named)
        self.assertEqual(json.loads(audit.encode(named))["index"], "release")
        plain = audit.encode(entry(project="holy-grail", filename="f.whl"))
        self.assertEqual(plain, b'{"event":"upload","filename":"f.whl","outcome":"ok",'
                                b'"prev":null,"project":"holy-grail",'
                                b'"time":"2026-01-01T00:00:00.000000Z","user":"alice"}')
        self.assertIn("promote", set(ChangeKind))

    def test_line_is_stable_ascii(self):
        """A line is ASCII with sorted keys, whatever the text it holds."""
        line = audit.encode(entry(user="jürgen", detail="ünïcode ☃"))
        line.decode("ascii")
        self.assertEqual(list(json.loads(line)), sorted(json.loads(line)))
        self.assertEqual(audit.decode(line).user, "jürgen")

    def test_long_text_cut(self):
        """Text a client chose (a user name, a reason) is cut, so a line stays small."""
        long = entry(user="u" * 10000, detail="d" * 10000)
        self.assertLessEqual(len(long.user.encode()), audit.FIELD_BYTES)
        self.assertLess(len(audit.encode(long)), 1000)

    def test_refused(self):
        """Data that is not an entry is refused with the field named."""
        good = entry().to_json()
        for change, field in (({"time": "yesterday"}, "time"), ({"event": "dance"}, "event"),
                              ({"outcome": "maybe"}, "outcome"), ({"user": 3}, "user"),
                              ({"count": 0}, "count"), ({"prev": "x"}, "prev")):
            with self.assertRaises(AuditError) as caught:
                Entry.from_json(dict(good, **change))
            self.assertIn(field, str(caught.exception))
        self.assertRaises(AuditError, audit.decode, b"[1, 2]")
        self.assertRaises(AuditError, audit.decode, b"{not json")


class ChainTests(SynchronousTestCase):
    """The chain of a file, and what its check finds."""

    def setUp(self):
        self.data = lines_of([entry(i, filename=f"f{i}.whl") for i in range(5)])
        self.lines = self.data.splitlines()

    def check(self, lines, head=None):
        """The broken links of a file of C{lines}, as text."""
        data = b"".join(line + b"\n" for line in lines)
        return [str(b) for b in verify_lines("day.jsonl", data, head).broken]

    def test_intact(self):
        """An untouched file checks clean, and its entries are read back in order."""
        checked = verify_lines("day.jsonl", self.data)
        self.assertEqual(checked.broken, [])
        self.assertEqual([e.filename for e in checked.entries],
                         [f"f{i}.whl" for i in range(5)])
        self.assertEqual(checked.head, audit.link(self.lines[-1]))

    def test_links(self):
        """Each line carries the SHA-256 of the line before; the first none."""
        prevs = [json.loads(line)["prev"] for line in self.lines]
        self.assertIsNone(prevs[0])
        for before, prev in zip(self.lines, prevs[1:], strict=False):
            self.assertEqual(prev, audit.link(before))

    def test_line_removed(self):
        """A removed line breaks the link of the line after it, which is named."""
        del self.lines[2]
        self.assertEqual(self.check(self.lines), [
            "day.jsonl: line 3: does not follow line 2: line 2 was edited, or entries "
            "between them were removed, or entries were moved"])

    def test_line_edited(self):
        """An edited line is named through the broken link after it."""
        self.lines[1] = self.lines[1].replace(b"f1.whl", b"evil.whl")
        self.assertEqual(len(self.check(self.lines)), 1)
        self.assertIn("line 3: does not follow line 2: line 2 was edited",
                      self.check(self.lines)[0])

    def test_lines_reordered(self):
        """Lines swapped break links."""
        self.lines[1], self.lines[2] = self.lines[2], self.lines[1]
        self.assertEqual([b.split(":")[1] for b in self.check(self.lines)],
                         [" line 2", " line 3", " line 4"])

    def test_first_line_removed(self):
        """A file that starts past its first entry says so."""
        self.assertIn("line 1: the first entry of the file names an entry before it",
                      self.check(self.lines[1:])[0])

    def test_last_line_cut(self):
        """A line a crash cut short is reported, once."""
        data = self.data[:-7]
        broken = [str(b) for b in verify_lines("day.jsonl", data).broken]
        self.assertEqual(len(broken), 2)
        self.assertIn("line 5: not an audit entry", broken[0])
        self.assertIn("line 5: the last line is cut short", broken[1])

    def test_garbage_line_reported_once(self):
        """A line that is not an entry is one report: the chain goes on from its bytes."""
        lines = self.lines[:2] + [b"garbage"]
        tail, _ = chain([entry(9)], audit.link(b"garbage"))
        self.assertEqual(len(self.check(lines + tail)), 1)

    def test_continued_chain(self):
        """An object continuing a chain checks against the last link before it."""
        head = audit.link(self.lines[-1])
        more = lines_of([entry(10), entry(11)], head)
        self.assertEqual(verify_lines("next", more, head).broken, [])
        self.assertIn("does not follow the object before it",
                      str(verify_lines("next", more, audit.link(b"other")).broken[0]))
        self.assertIn("the first entry of the file names an entry before it",
                      str(verify_lines("next", more).broken[0]))


class ImportedChainTests(SynchronousTestCase):
    """L{audit.verify_writers}: another server's files, as a bundle carries them."""

    def lines(self, *entries, head=None):
        lines, _ = audit.chain(list(entries), head)
        return b"".join(line + b"\n" for line in lines)

    def test_local_days(self):
        """A local log's day files are one chain; an edited line breaks it."""
        first = self.lines(entry(0, filename="a"), entry(1, filename="b"))
        second = self.lines(entry(86400, filename="c"),
                            head=audit.link(first.splitlines()[-1]))
        report = audit.verify_writers([("2026-01-02.jsonl", second),
                                       ("2026-01-01.jsonl", first)])
        self.assertEqual((report.entries, report.broken), (3, []))
        report = audit.verify_writers([("2026-01-01.jsonl", first.replace(b'"a"', b'"x"')),
                                       ("2026-01-02.jsonl", second)])
        self.assertEqual(len(report.broken), 1)

    def test_s3_instances(self):
        """An S3 log's batches are one chain per instance, in day and number order."""
        one = self.lines(entry(0, filename="a"))
        two = self.lines(entry(1, filename="b"), head=audit.link(one.rstrip(b"\n")))
        other = self.lines(entry(2, filename="c"))
        report = audit.verify_writers([("2026-01-01/bbb/000000.jsonl", other),
                                       ("2026-01-01/aaa/000001.jsonl", two),
                                       ("2026-01-01/aaa/000000.jsonl", one)])
        self.assertEqual((report.entries, report.broken), (3, []))
        report = audit.verify_writers([("2026-01-01/aaa/000001.jsonl", two)])
        self.assertEqual(report.broken, [])
        self.assertEqual(len(report.notes), 1)  # (its first batch: not kept)


class QueryTests(SynchronousTestCase):
    """Query values, and the selection of entries."""

    def test_values_checked(self):
        """A value that cannot be used is refused, naming its parameter."""
        for values, name in (({"since": "last tuesday"}, "since:"),
                             ({"limit": "many"}, "limit:"), ({"limit": "0"}, "limit:"),
                             ({"limit": "100001"}, "limit:"), ({"event": "dance"}, "event:"),
                             ({"index": "Re_lease"}, "index:")):
            with self.assertRaises(AuditError) as caught:
                make_query(**values)
            self.assertTrue(str(caught.exception).startswith(name), caught.exception)

    def test_values(self):
        """Times are UTC (an offset converted), projects normalized."""
        query = make_query(since="2026-01-01T01:00:00+01:00", project="Holy.Grail",
                           user="alice", limit="5")
        self.assertEqual(query, audit_query.Query(since="2026-01-01T00:00:00.000000Z",
                                            project="holy-grail", user="alice", limit=5))
        self.assertEqual(make_query(since="2026-01-02").since, "2026-01-02T00:00:00.000000Z")

    def test_index_selected(self):
        """C{index} keeps an index's entries; C{default} those that name none."""
        release = entry(index="release", filename="a")
        default = entry(filename="b")
        self.assertTrue(make_query(index="release").wants(release))
        self.assertFalse(make_query(index="release").wants(default))
        self.assertTrue(make_query(index="default").wants(default))
        self.assertFalse(make_query(index="default").wants(release))
        self.assertTrue(make_query().wants(release))

    def test_pages(self):
        """With C{since}: oldest first, C{limit} at a time, ties kept together, none missed."""
        entries = [entry(i // 2, filename=f"f{i}") for i in range(9)]  # pairs share a time
        days = {"2026-01-01": list(reversed(entries))}
        seen, since = [], format_time(T0)
        while since is not None:
            page = select(make_query(since=since, limit="3"), days, days.get)
            self.assertLessEqual(len(page.entries), 4)
            seen += page.entries
            since = page.next
        self.assertEqual([e.time for e in seen], [e.time for e in entries])
        self.assertEqual(sorted(e.filename for e in seen), [e.filename for e in entries])

    def test_newest(self):
        """Without C{since}: the newest, oldest first, reading days newest first."""
        days = {"2026-01-02": [entry(86400 + i, filename=f"b{i}") for i in range(3)],
                "2026-01-01": [entry(i, filename=f"a{i}") for i in range(3)]}
        page = select(make_query(limit="4"), days, days.get)
        self.assertEqual([e.filename for e in page.entries], ["a2", "b0", "b1", "b2"])
        self.assertIsNone(page.next)
        self.assertEqual(page.before, entries_time(2))
        older = select(make_query(limit="4", before=page.before), days, days.get)
        self.assertEqual([e.filename for e in older.entries], ["a0", "a1"])
        self.assertIsNone(older.before)

    def test_filters(self):
        """Project, user and event keep only the entries that name them."""
        entries = [entry(0, project="a"), entry(1, project="b", user="bob"),
                   entry(2, project="b", event="yank")]
        days = {"2026-01-01": entries}
        def pick(**q):
            return [e.time for e in select(make_query(**q), days, days.get).entries]
        self.assertEqual(pick(project="B"), [entries[1].time, entries[2].time])
        self.assertEqual(pick(user="bob"), [entries[1].time])
        self.assertEqual(pick(event="yank"), [entries[2].time])


class TimeValueTests(SynchronousTestCase):
    """C{since} and C{before} values out of the range of entries are refused, not crashes."""

    def test_out_of_range(self):
        """
        Years before 1970, and times an offset moves past year 1 or 9999,
        are refused naming the value, where they raised OverflowError (a
        500) or matched nothing (C{0999}: a three-digit year).
        """
        for text in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0999-01-01",
                     "1969-12-31T23:59:59Z", "0001-01-01"):
            for name in ("since", "before"):
                with self.assertRaises(AuditError) as caught:
                    make_query(**{name: text})
                self.assertEqual(str(caught.exception),
                                 f"{name}: expected a time from 1970 to 9999, not {text!r}")

    def test_edges(self):
        """1970 and 9999 are taken, written with four-digit years."""
        self.assertEqual(make_query(since="1970-01-01").since, "1970-01-01T00:00:00.000000Z")
        self.assertEqual(make_query(since="9999-12-31T23:59:59Z").since,
                         "9999-12-31T23:59:59.000000Z")


class DayChainTests(SynchronousTestCase):
    """The chain through a writer's daily files, checked by L{verify_files}."""

    def setUp(self):
        self.days = []
        head = None
        for day in range(3):
            lines, head = chain([entry(day * 86400 + i, filename=f"d{day}-{i}")
                                 for i in range(2)], head)
            self.days.append((f"2026-01-0{day + 1}.jsonl",
                              b"".join(line + b"\n" for line in lines)))

    def check(self, files):
        """The broken links and notes of C{files}, as text."""
        report = audit.verify_files(files)
        return [str(b) for b in report.broken], [str(n) for n in report.notes]

    def test_intact(self):
        """A day's first entry links to the last of the day before; all checks clean."""
        self.assertEqual(self.check(self.days), ([], []))
        self.assertEqual(audit.first_entry(self.days[1][1]).prev,
                         audit.link(self.days[0][1].splitlines()[-1]))

    def test_middle_day_removed(self):
        """A day's file removed from the middle breaks the next day's first link."""
        self.assertEqual(self.check([self.days[0], self.days[2]]), ([
            "2026-01-03.jsonl: line 1: does not follow the last entry of 2026-01-01.jsonl: "
            "entries at its end were removed or edited, or what came between them was "
            "removed"], []))

    def test_end_of_day_cut_or_edited(self):
        """The last line of a day, cut or edited, breaks the next day's first link."""
        name, data = self.days[0]
        lines = data.splitlines(keepends=True)
        for changed in (lines[0], lines[0] + lines[1].replace(b"d0-1", b"xx-1")):
            broken, _ = self.check([(name, changed)] + self.days[1:])
            self.assertEqual(len(broken), 1)
            self.assertTrue(broken[0].startswith("2026-01-02.jsonl: line 1: does not follow "
                                                 "the last entry of 2026-01-01.jsonl"), broken)

    def test_oldest_pruned(self):
        """The oldest days removed are a note (their link cannot be checked), not an error."""
        self.assertEqual(self.check(self.days[1:]), ([], [
            "2026-01-02.jsonl: entries before 2026-01-02T00:00:00.000000Z are not kept "
            "(pruned)"]))


class SelectionBoundTests(SynchronousTestCase):
    """A query reads a bounded number of days and entries, and says where to go on."""

    def setUp(self):
        # 40 days of one entry each, from 2026-01-01
        self.days = {format_time(T0 + d * 86400)[:10]: [entry(d * 86400, filename=f"f{d}")]
                     for d in range(40)}
        self.reads = []

    def entries_of(self, day):
        """A day's entries, counting the reads."""
        self.reads.append(day)
        return self.days[day]

    def test_nothing_matches_since(self):
        """With C{since}, a filter matching nothing reads 31 days, then gives C{next}."""
        page = select(make_query(since="2026-01-01", project="nothing"), self.days,
                      self.entries_of)
        self.assertEqual((page.entries, page.next), ([], "2026-02-01T00:00:00.000000Z"))
        self.assertEqual(len(self.reads), audit_query.MAX_DAYS_READ)
        page = select(make_query(since=page.next, project="nothing"), self.days,
                      self.entries_of)
        self.assertEqual((page.entries, page.next), ([], None))
        self.assertEqual(len(self.reads), 40)

    def test_nothing_matches_newest(self):
        """Without C{since}, the same, newest first, with C{before}."""
        page = select(make_query(project="nothing"), self.days, self.entries_of)
        self.assertEqual((page.entries, page.before), ([], "2026-01-10T00:00:00.000000Z"))
        page = select(make_query(project="nothing", before=page.before), self.days,
                      self.entries_of)
        self.assertEqual((page.entries, page.before), ([], None))
        self.assertEqual(sorted(self.reads), sorted(self.days))

    def test_found_across_the_bound(self):
        """What the bound cut off is in the following pages: every entry, once."""
        wanted = [e for d in self.days.values() for e in d]
        seen, since = [], "2026-01-01"
        while since is not None:
            page = select(make_query(since=since, limit="100"), self.days, self.days.get)
            seen += page.entries
            since = page.next
        self.assertEqual(seen, wanted)

    def test_entries_bound(self):
        """Past the entries bound, reading stops after the day that passed it."""
        selection = audit_query.Selection(make_query(since="2026-01-01", project="nothing"),
                                    max_entries=5)
        self.assertTrue(selection.take("2026-01-01", [entry(i) for i in range(6)]))
        self.assertEqual(selection.result(more=True).next, "2026-01-02T00:00:00.000000Z")

    def test_limit_reached_at_a_day_end(self):
        """A page that fills exactly at a day's end still leads to the days after it."""
        page = select(make_query(since="2026-01-01", limit="2"), self.days, self.days.get)
        self.assertEqual([e.filename for e in page.entries], ["f0", "f1"])
        self.assertEqual(page.next, "2026-01-03T00:00:00.000000Z")


class LoginFailuresTests(SynchronousTestCase):
    """Failed logins folded, so a flood is a bounded number of entries."""

    def test_first_at_once_repeats_counted(self):
        """The first failure is an entry at once; its repeats one entry when the minute ends."""
        folded = LoginFailures()
        first = folded.add(T0, "login-failed", "alice", "192.0.2.1")
        self.assertEqual([(e.user, e.address, e.count, e.outcome) for e in first],
                         [("alice", "192.0.2.1", 1, "refused")])
        for i in range(500):
            self.assertEqual(folded.add(T0 + 1 + i / 100, "login-failed", "alice",
                                        "192.0.2.1"), [])
        self.assertEqual(folded.due(T0 + 59), [])
        due = folded.due(T0 + 60)
        # (timed when written, like every entry: a writer's entries come in order)
        self.assertEqual([(e.user, e.count, e.time) for e in due],
                         [("alice", 500, format_time(T0 + 60))])
        self.assertIsNone(folded.ends_at())

    def test_flood_bounded(self):
        """Ten thousand made-up users in a minute write at most 2 x keys + 2 entries."""
        folded = LoginFailures(max_keys=50)
        written = []
        for i in range(10000):
            written += folded.add(T0 + i / 1000, "login-failed", f"user{i % 3000}",
                                  f"198.51.100.{i % 7}")
        written += folded.drain(T0 + 10)
        self.assertLessEqual(len(written), 102)
        self.assertEqual(sum(e.count for e in written), 10000)
        overflow = [e for e in written if e.user is None]
        self.assertEqual(len(overflow), 1)
        self.assertIn("more than 50", overflow[0].detail)

    def test_windows(self):
        """A failure in a new minute is an entry at once again."""
        folded = LoginFailures()
        folded.add(T0, "login-failed", "alice", "a")
        self.assertEqual(len(folded.add(T0 + 61, "login-failed", "alice", "a")), 1)


# -- the buffer --------------------------------------------------------------------------------


class BufferTests(SynchronousTestCase):
    """The buffer: writes soon, in order, and keeps what fails until it is written."""

    def setUp(self):
        self.clock = Clock()
        self.log = MemoryJournal(self.clock, retry_policy(lambda: 0.0))

    def written(self):
        """The entries in the log's files."""
        return [e for data in self.log.files.values() for e in verify_lines("", data).entries]

    def test_written_soon(self):
        """An append is written within the flush delay, with those that follow it."""
        self.log.queue(entry(0))
        self.clock.advance(0.2)
        self.log.queue(entry(1))
        self.assertEqual(self.written(), [])
        self.clock.advance(0.5)
        self.assertEqual(len(self.written()), 2)
        self.assertEqual(self.log.pending, 0)

    def test_failure_retried_not_lost(self):
        """A failed write is logged as an error and tried again; nothing is lost or reordered."""
        self.log.fail = True
        with capturedLogs() as events:
            self.log.queue(entry(0))
            self.clock.advance(1)
            self.log.queue(entry(1))
            self.clock.advance(1)
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn("Cannot write 1 journal entries", errors[0]["log_format"].format(**errors[0]))
        self.assertEqual(self.log.pending, 2)
        self.log.fail = False
        self.clock.advance(2)
        self.assertEqual([e.time for e in self.written()],
                         [format_time(T0), format_time(T0 + 1)])
        self.assertEqual(self.log.verify().result.broken, ())

    def test_close_writes(self):
        """The stop writes what waits, and what comes after it is logged as lost."""
        self.log.queue(entry(0))
        self.assertTrue(self.successResultOf(self.log.close()))
        self.assertEqual(len(self.written()), 1)
        with capturedLogs() as events:
            self.log.queue(entry(1))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.error])

    def test_bounded(self):
        """Past its bound, a failing log counts what it refuses as lost, with an error."""
        self.log.max_pending = 3
        with capturedLogs() as events:
            for i in range(5):
                self.log.queue(entry(i))
        self.assertEqual((self.log.pending, self.log.lost), (3, 2))
        self.assertEqual(len([e for e in events if e["log_level"] == LogLevel.error]), 1)


class _GatedLog(JournalWriter):
    """
    A buffered log whose writes end when the test says: each batch's
    L{Deferred} is kept in C{gates}, to fire (written) or fail.
    """

    def __init__(self, clock):
        super().__init__(clock, retry_policy(lambda: 0.0))
        self.batches = []
        self.gates = []
        self.next = 2

    def _write_batch(self, entries):
        self.batches.append([e.filename for e in entries])
        self.gates.append(Deferred())

        def written(_):
            numbered = audit.number(entries, self.next)
            self.next += len(entries)
            return numbered
        return self.gates[-1].addCallback(written)


class DurableWriteTests(SynchronousTestCase):
    """
    L{IJournal.write}: a change's entry is written at once, and its
    L{Deferred} fires when that attempt ends; writes stay batched.
    """

    def setUp(self):
        self.clock = Clock()
        self.log = _GatedLog(self.clock)

    def test_written_at_once(self):
        """A written entry does not wait for the flush delay; an appended one does."""
        self.log.queue(entry(0, filename="appended"))
        self.assertEqual(self.log.batches, [])
        done = self.log.append([entry(1, filename="written")])
        self.assertEqual(self.log.batches, [["appended", "written"]])
        self.assertNoResult(done)
        self.assertEqual(self.log.pending, 2)
        self.log.gates[0].callback(None)
        self.assertEqual(self.successResultOf(done), 3)
        self.assertEqual((self.log.pending, self.log.written, self.log.write_failures),
                         (0, 2, 0))

    def test_batched_during_a_write(self):
        """Entries arriving during a write are the next write, one for all of them."""
        first = self.log.append([entry(0, filename="a")])
        later = [self.log.append([entry(1, filename="b")]), self.log.append([entry(2, filename="c")])]
        self.log.queue(entry(3, filename="d"))
        self.assertEqual(self.log.batches, [["a"]])
        self.log.gates[0].callback(None)
        self.assertEqual(self.successResultOf(first), 2)
        self.assertEqual(self.log.batches, [["a"], ["b", "c", "d"]])
        for done in later:
            self.assertNoResult(done)
        self.log.gates[1].callback(None)
        self.assertEqual([self.successResultOf(d) for d in later], [3, 4])
        self.assertEqual((self.log.pending, self.log.written), (0, 4))

    def test_failed_attempt_answers_and_keeps_the_entry(self):
        """
        A failed first attempt fires with L{None} (nobody waits for the
        retries), is logged, and the entry stays queued and is retried.
        """
        done = self.log.append([entry(0, filename="a")])
        with capturedLogs() as events:
            self.log.gates[0].errback(StorageError("the disk is full"))
        self.assertIsNone(self.successResultOf(done))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.error])
        self.assertEqual((self.log.pending, self.log.written, self.log.write_failures),
                         (1, 0, 1))
        self.clock.advance(2)
        self.assertEqual(self.log.batches, [["a"], ["a"]])
        self.log.gates[1].callback(None)
        self.assertEqual((self.log.pending, self.log.written), (0, 1))

    def test_partly_written(self):
        """A write that failed after a first part requeues the rest only."""
        for name in "abc":
            self.log.queue(entry(0, filename=name))
        done = self.log.flush()
        with capturedLogs():
            self.log.gates[0].errback(PartlyWritten(
                audit.number([entry(0, filename=n) for n in "ab"], 2), StorageError("down")))
        self.assertFalse(self.successResultOf(done))
        self.assertEqual((self.log.pending, self.log.written), (1, 2))
        self.clock.advance(2)
        self.assertEqual(self.log.batches, [["a", "b", "c"], ["c"]])

    def test_lost_counted(self):
        """Entries past the bound, after the stop, and unwritten at the stop count as lost."""
        self.log.max_pending = 2
        with capturedLogs():
            for i in range(3):
                self.log.queue(entry(i))
            closing = self.log.close()
            self.log.gates[0].errback(StorageError("down"))
            self.log.queue(entry(9))
        self.assertFalse(self.successResultOf(closing))
        self.assertEqual((self.log.pending, self.log.written, self.log.lost), (0, 0, 4))
        self.assertEqual(self.clock.getDelayedCalls(), [])


# -- the contract ------------------------------------------------------------------------------


class AuditLogContractMixin:
    """
    What every audit log does. A test case provides L{make_log} (a new, empty
    log), L{files} (C{{name: bytes}} of what it keeps) and L{put} (replace
    or, with L{None}, remove a file behind its back).
    """

    def make_log(self):
        """A new, empty log."""
        raise NotImplementedError()

    def make_other_log(self):
        """A new, empty log of another storage (another folder, another prefix)."""
        return self.make_log()

    async def files(self, log):
        """C{{name: bytes}} of every file (or object) the log keeps."""
        raise NotImplementedError()

    async def put(self, log, name, data):
        """Replace the file C{name} with C{data} (L{None}: remove it)."""
        raise NotImplementedError()

    async def written(self, log, *entries):
        """Append C{entries} and flush them."""
        for one in entries:
            log.queue(one)
        self.assertTrue(await log.flush())

    async def test_interface(self):
        """The log provides L{IJournal}."""
        self.assertTrue(verifyObject(IJournal, self.make_log()))

    async def test_empty(self):
        """A new log reads and checks empty."""
        log = self.make_log()
        self.assertEqual(await log.read(make_query()), audit_query.EntryPage([]))
        self.assertEqual((await log.verify()).broken, ())

    async def test_read_back(self):
        """Entries written in batches are read back whole, oldest first."""
        log = self.make_log()
        first = entry(0, project="holy-grail", version="1.0", filename="a.whl", sha256=SHA,
                      token="t1", address="192.0.2.7")
        await self.written(log, first, entry(1, event="yank", detail="broken"))
        await self.written(log, entry(2, event="delete"))
        page = await log.read(make_query(since="2026-01-01"))
        entries, following = page.entries, page.next
        self.assertEqual([e.event for e in entries], ["upload", "yank", "delete"])
        self.assertEqual(attrs.evolve(entries[0], prev=None, serial=None, id=None), first)
        self.assertEqual([e.serial for e in entries], [2, 3, 4])
        self.assertIsNone(following)
        checked = await log.verify()
        self.assertEqual((checked.entries, checked.broken), (3, ()))

    async def test_stored_files_and_imported(self):
        """
        The stored files, as they are, carry to another log whose chain, check
        and queries never see them; the same file kept twice is written once.
        """
        log = self.make_log()
        await self.written(log, entry(0, filename="day1"), entry(86400, filename="day2"))
        stored = await log.stored_files()
        self.assertEqual(len(stored), 2)
        self.assertEqual([n for n, _ in stored], sorted(n for n, _ in stored))
        self.assertTrue(all(data.endswith(b"\n") for _, data in stored))
        checked = audit.verify_writers(stored)
        self.assertEqual((checked.entries, checked.broken), (2, []))
        other = self.make_other_log()
        await self.written(other, entry(5, filename="own"))
        for name, data in stored:
            self.assertTrue(await other.keep_imported(f"abc/{name}", data))
        self.assertFalse(await other.keep_imported(f"abc/{stored[0][0]}", stored[0][1]))
        checked = await other.verify()
        self.assertEqual((checked.entries, checked.broken), (1, ()))
        self.assertEqual([e.filename for e in (await other.read(make_query())).entries],
                         ["own"])
        self.assertEqual(len(await other.stored_files()), 1)
        with self.assertRaises(ValueError):
            await other.keep_imported("../escape.jsonl", b"")

    async def test_days(self):
        """Each day has files of its own; queries read the days they need."""
        log = self.make_log()
        await self.written(log, entry(0, filename="day1"), entry(86400, filename="day2"),
                           entry(2 * 86400 + 5, filename="day3"))
        names = sorted(await self.files(log))
        self.assertEqual([name.count("2026-01-0") for name in names], [1, 1, 1])
        for day, name in zip(("2026-01-01", "2026-01-02", "2026-01-03"), names, strict=True):
            self.assertIn(day, name)
        entries = (await log.read(make_query(since="2026-01-02"))).entries
        self.assertEqual([e.filename for e in entries], ["day2", "day3"])
        newest = (await log.read(make_query(limit="1"))).entries
        self.assertEqual([e.filename for e in newest], ["day3"])
        self.assertEqual((await log.verify()).files, 3)

    async def test_query(self):
        """Filters and pages are the query's."""
        log = self.make_log()
        await self.written(log, *[entry(i, project="a" if i % 2 else "b", user=f"u{i % 3}")
                                  for i in range(10)])
        page = await log.read(make_query(since="2026-01-01", limit="2", project="a"))
        entries, following = page.entries, page.next
        self.assertEqual([e.time for e in entries], [format_time(T0 + 1), format_time(T0 + 3)])
        self.assertEqual(following, "2026-01-01T00:00:03.000001Z")
        entries = (await log.read(make_query(user="u0"))).entries
        self.assertEqual(len(entries), 4)

    async def test_chain_across_batches(self):
        """A later batch links to the earlier one's last entry."""
        log = self.make_log()
        await self.written(log, entry(0))
        await self.written(log, entry(1))
        heads = [json.loads(line)["prev"]
                 for data in (await self.files(log)).values() for line in data.splitlines()]
        self.assertIsNone(heads[0])
        self.assertIsNotNone(heads[1])
        self.assertEqual((await log.verify()).broken, ())

    async def tampered(self, change):
        """Write five entries, change the file with C{change(lines)}; the report."""
        log = self.make_log()
        await self.written(log, *[entry(i, filename=f"f{i}.whl") for i in range(5)])
        [(name, data)] = (await self.files(log)).items()
        lines = data.splitlines()
        change(lines)
        await self.put(log, name, b"".join(line + b"\n" for line in lines))
        checked = await log.verify()
        return name, [str(b) for b in checked.broken]

    async def test_line_deleted(self):
        """A deleted line is found, naming the file and the line."""
        name, broken = await self.tampered(lambda lines: lines.pop(2))
        self.assertEqual(len(broken), 1)
        self.assertTrue(broken[0].startswith(f"{name}: line 3: does not follow line 2"),
                        broken)

    async def test_line_edited(self):
        """An edited line is found."""
        def edit(lines):
            lines[1] = lines[1].replace(b"f1.whl", b"other.whl")
        name, broken = await self.tampered(edit)
        self.assertEqual(broken, [f"{name}: line 3: does not follow line 2: line 2 was "
                                  "edited, or entries between them were removed, or entries "
                                  "were moved"])

    async def test_lines_reordered(self):
        """Reordered lines are found."""
        def swap(lines):
            lines[3], lines[4] = lines[4], lines[3]
        _, broken = await self.tampered(swap)
        self.assertEqual(len(broken), 2)


class AppendedFileMixin:
    """What a log of appended files (not S3's objects) does too."""

    async def test_tail_cut_while_running(self):
        """
        The newest entry cut behind the running server's back: it warns
        before it appends, and links the next entry to the one it wrote, so
        verify reports the cut.
        """
        log = self.make_log()
        await self.written(log, entry(0), entry(1))
        [(name, data)] = (await self.files(log)).items()
        await self.put(log, name, data.splitlines(keepends=True)[0])
        with capturedLogs() as events:
            await self.written(log, entry(2))
        [warning] = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertIn("was changed behind the server's back", warning["log_format"])
        self.assertEqual([str(b) for b in (await log.verify()).broken], [
            f"{name}: line 2: does not follow line 1: line 1 was edited, or entries between "
            "them were removed, or entries were moved"])

    async def test_tail_edited_while_running(self):
        """The newest entry edited (same length) behind its back is reported the same way."""
        log = self.make_log()
        await self.written(log, entry(0, user="alice"))
        [(name, data)] = (await self.files(log)).items()
        await self.put(log, name, data.replace(b'"alice"', b'"mally"'))
        with capturedLogs():
            await self.written(log, entry(1))
        self.assertEqual(len((await log.verify()).broken), 1)

    async def test_appended_by_another_writer(self):
        """
        Lines another writer chained after this writer's go on: the next
        batch follows them, and nothing is reported.
        """
        log = self.make_log()
        await self.written(log, entry(0))
        [(name, data)] = (await self.files(log)).items()
        more = lines_of([entry(1, user="other")], audit.link(data.splitlines()[-1]))
        await self.put(log, name, data + more)
        with capturedLogs() as events:
            await self.written(log, entry(2))
        self.assertEqual([e for e in events if e["log_level"] >= LogLevel.warn], [])
        checked = await log.verify()
        self.assertEqual((checked.entries, checked.broken), (3, ()))


    async def three_days(self, log):
        """Write two entries a day for three days; the names of the files, oldest first."""
        for day in range(3):
            await self.written(log, *[entry(day * 86400 + i, filename=f"d{day}-{i}")
                                      for i in range(2)])
        return sorted(await self.files(log))

    async def test_chain_across_days(self):
        """A day's first entry links to the last entry of the day before."""
        log = self.make_log()
        names = await self.three_days(log)
        files = await self.files(log)
        for before, name in pairwise(names):
            self.assertEqual(audit.first_entry(files[name]).prev,
                             audit.link(files[before].splitlines()[-1]))
        checked = await log.verify()
        self.assertEqual((checked.files, checked.entries, checked.broken, checked.notes),
                         (3, 6, (), ()))

    async def test_middle_day_removed(self):
        """A whole day's file removed from the middle is reported."""
        log = self.make_log()
        names = await self.three_days(log)
        await self.put(log, names[1], None)
        self.assertEqual([str(b) for b in (await log.verify()).broken], [
            f"{names[2]}: line 1: does not follow the last entry of {names[0]}: entries at its "
            "end were removed or edited, or what came between them was removed"])

    async def test_last_line_of_a_day(self):
        """The last line of a day (not the newest) edited, or cut, is reported."""
        log = self.make_log()
        names = await self.three_days(log)
        data = (await self.files(log))[names[0]]
        for changed in (data.replace(b"d0-1", b"dX-1"), data.splitlines(keepends=True)[0]):
            await self.put(log, names[0], changed)
            broken = [str(b) for b in (await log.verify()).broken]
            self.assertEqual(len(broken), 1, broken)
            self.assertTrue(broken[0].startswith(f"{names[1]}: line 1: does not follow the "
                                                 f"last entry of {names[0]}"), broken)

    async def test_oldest_days_pruned(self):
        """The oldest days removed (retention) are a note, and the chain checks clean."""
        log = self.make_log()
        names = await self.three_days(log)
        await self.put(log, names[0], None)
        checked = await log.verify()
        self.assertEqual(checked.broken, ())
        self.assertEqual([str(n) for n in checked.notes], [
            f"{names[1]}: entries before 2026-01-02T00:00:00.000000Z are not kept (pruned)"])

    async def test_newest_day_removed_while_running(self):
        """
        The newest day's file removed behind the running server's back: it
        warns, and its next entry still links to the last one it wrote.
        """
        log = self.make_log()
        names = await self.three_days(log)
        await self.put(log, names[2], None)
        with capturedLogs() as events:
            await self.written(log, entry(3 * 86400, filename="d3-0"))
        self.assertEqual(len([e for e in events if e["log_level"] == LogLevel.warn]), 1)
        broken = [str(b) for b in (await log.verify()).broken]
        self.assertEqual(len(broken), 1)
        self.assertIn("line 1: does not follow the last entry of", broken[0])

    async def test_partial_write_not_repeated(self):
        """
        A batch across midnight whose second day cannot be written: the
        first day's part, written, is not written again (/tmp/review/t5.py).
        """
        log = self.make_log()
        await self.written(log, entry(-0.9, filename="start"))
        block = self.block_file(log, "2026-01-01.jsonl")
        for i, offset in enumerate((-0.5, -0.1, 0.5)):
            log.queue(entry(offset, filename=f"f{i}"))
        with capturedLogs():
            self.assertFalse(await log.flush())
        block()
        self.assertTrue(await log.flush())
        entries = (await log.read(make_query(since="2025-12-31"))).entries
        self.assertEqual([e.filename for e in entries], ["start", "f0", "f1", "f2"])
        self.assertEqual((await log.verify()).broken, ())
        self.assertEqual((log.pending, log.written, log.write_failures), (0, 4, 1))

    async def test_clock_set_back(self):
        """An entry of a day before the newest written goes on in the newest day's file."""
        log = self.make_log()
        await self.written(log, entry(86400, filename="tomorrow"))
        await self.written(log, entry(0, filename="today"))
        names = sorted(await self.files(log))
        self.assertEqual(len(names), 1)
        self.assertIn("2026-01-02", names[0])
        self.assertEqual((await log.verify()).broken, ())


class MemoryJournalTests(AuditLogContractMixin, AppendedFileMixin, TestCase):
    """The contract, in memory."""

    def make_log(self):
        """A log in memory."""
        return MemoryJournal(Clock())

    async def files(self, log):
        """Its files."""
        return dict(log.files)

    async def put(self, log, name, data):
        """Change its files."""
        if data is None:
            del log.files[name]
        else:
            log.files[name] = data

    def block_file(self, log, name):
        """Make appends to the file C{name} fail; return what unblocks it."""
        log.fail_files.add(name)
        return lambda: log.fail_files.discard(name)


class LocalJournalTests(AuditLogContractMixin, AppendedFileMixin, TestCase):
    """The contract, in daily files of a folder, written in a real thread pool."""

    def setUp(self):
        pool = ThreadPool(minthreads=1, maxthreads=2, name="test-audit")
        pool.start()
        self.addCleanup(pool.stop)
        self.run_in_pool = partial(deferToThreadPool, reactor, pool)

    def make_log(self):
        """A log in a new folder."""
        return LocalJournal(os.path.abspath(self.mktemp()), self.run_in_pool, Clock())

    async def test_writers_at_once(self):
        """
        Two writers of one folder (a machine's workers): an entry of a day
        another writer has ended (its next day's file begun) goes on in the
        newest day, so the chain goes through every entry; and so it does
        with both appending at once, in two threads, across a day's end.
        """
        from pypid.jobs.gather import gather
        log = self.make_log()
        other = LocalJournal(log.folder, self.run_in_pool, Clock())
        await self.written(log, entry(0))
        await self.written(other, entry(1, user="other"))
        await self.written(log, entry(86400))
        await self.written(other, entry(2, user="other"))
        checked = await log.verify()
        self.assertEqual((checked.files, checked.entries, checked.broken), (2, 4, ()))
        batches = [self.written(writer, *[entry(day * 86400 + n, user=f"w{i}-{n}")
                                          for n in range(3)])
                   for day in range(1, 3) for i, writer in enumerate((log, other))
                   for _ in range(5)]
        await gather([ensureDeferred(batch) for batch in batches])
        checked = await other.verify()
        self.assertEqual((checked.files, checked.entries, checked.broken), (3, 64, ()))

    async def files(self, log):
        """Its files, by path."""
        if not os.path.isdir(log.folder):
            return {}
        found = {}
        for name in os.listdir(log.folder):
            with open(os.path.join(log.folder, name), "rb") as f:
                found[os.path.join(log.folder, name)] = f.read()
        return found

    async def put(self, log, name, data):
        """Change a file."""
        if data is None:
            os.unlink(name)
        else:
            with open(name, "wb") as f:
                f.write(data)

    def block_file(self, log, name):
        """Put a folder where the file C{name} would be; return what removes it."""
        path = os.path.join(log.folder, name)
        os.makedirs(path)
        return lambda: os.rmdir(path)

    async def test_restart_goes_on(self):
        """A server started again goes on with the chain of the newest file, across days."""
        log = self.make_log()
        await self.written(log, entry(0))
        again = LocalJournal(log.folder, self.run_in_pool, Clock())
        await self.written(again, entry(86400))
        checked = await again.verify()
        self.assertEqual((checked.files, checked.broken, checked.notes), (2, (), ()))

    async def test_verify_waits_for_an_append(self):
        """
        Verify reads a file under a shared lock: an append under way (the
        writer's exclusive lock) is read whole, not as a cut-short line.
        """
        log = self.make_log()
        await self.written(log, entry(0))
        path = os.path.join(log.folder, "2026-01-01.jsonl")
        with open(path, "rb") as f:
            head = audit.link(f.read().splitlines()[-1])
        more = lines_of([entry(1)], head)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, more[:20])
            verifying = log.verify()
            await deferLater(reactor, 0.2, lambda: None)
            self.assertFalse(verifying.called)
            os.write(fd, more[20:])
        finally:
            os.close(fd)
        checked = await verifying
        self.assertEqual((checked.entries, checked.broken), (2, ()))

    async def test_file_names(self):
        """The files are <folder>/YYYY-MM-DD.jsonl, appended to."""
        log = self.make_log()
        await self.written(log, entry(0))
        await self.written(log, entry(1))
        self.assertEqual(os.listdir(log.folder), ["2026-01-01.jsonl"])
        with open(os.path.join(log.folder, "2026-01-01.jsonl"), "rb") as f:
            self.assertEqual(len(f.read().splitlines()), 2)

    async def test_torn_line(self):
        """After a line a crash cut short, the next batch starts a line of its own."""
        log = self.make_log()
        await self.written(log, entry(0))
        path = os.path.join(log.folder, "2026-01-01.jsonl")
        with open(path, "ab") as f:
            f.write(b'{"time": "2026-01')
        log2 = LocalJournal(log.folder, self.run_in_pool, Clock())
        await self.written(log2, entry(2))
        broken = [str(b) for b in (await log2.verify()).broken]
        self.assertEqual(len(broken), 1)
        self.assertIn("line 2: not an audit entry", broken[0])
        entries = (await log2.read(make_query(since="2026-01-01"))).entries
        self.assertEqual(len(entries), 2)

    async def test_verify_command(self):
        """C{audit verify}'s check: a line per broken link, and status 1."""
        from io import StringIO

        from pypid.cli.admin_audit import check

        log = self.make_log()
        await self.written(log, *[entry(i) for i in range(3)])
        path = os.path.join(log.folder, "2026-01-01.jsonl")
        with open(path, "rb") as f:
            lines = f.read().splitlines(keepends=True)
        with open(path, "wb") as f:
            f.write(lines[0] + lines[2])
        out, err = StringIO(), StringIO()
        self.assertEqual(await check(log, out, err), 1)
        self.assertEqual(out.getvalue().splitlines(), [
            f"{path}: line 2: does not follow line 1: line 1 was edited, or entries between "
            "them were removed, or entries were moved"])
        self.assertEqual(err.getvalue(),
                         "pypid-admin: audit verify: 1 file, 2 entries: 1 broken link\n")

    async def test_verify_command_notes_pruning(self):
        """C{audit verify} says where the kept chain begins, and exits 0: pruning is no error."""
        from io import StringIO

        from pypid.cli.admin_audit import check

        log = self.make_log()
        names = await self.three_days(log)
        os.unlink(names[0])
        out, err = StringIO(), StringIO()
        self.assertEqual(await check(log, out, err), 0)
        self.assertEqual(out.getvalue().splitlines(), [
            f"note: {names[1]}: entries before 2026-01-02T00:00:00.000000Z are not kept "
            "(pruned)", "2 files, 4 entries: every chain is intact"])

    async def test_write_failure(self):
        """A folder that cannot be written fails the flush, which is tried again."""
        log = self.make_log()
        with open(log.folder, "w"):
            pass  # a file where the folder should be
        log.queue(entry(0))
        with capturedLogs() as events:
            self.assertFalse(await log.flush())
        self.assertEqual(log.pending, 1)
        self.assertTrue([e for e in events if e["log_level"] == LogLevel.error])
        os.unlink(log.folder)
        self.assertTrue(await log.flush())
        self.assertEqual(log.pending, 0)


class BucketJournalTests(AuditLogContractMixin, TestCase):
    """The contract, in batch objects of a bucket on moto's S3 server."""

    prefix = "pkgs/"

    def setUp(self):
        self.pool = ThreadPool(minthreads=1, maxthreads=2, name="test-audit-s3")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.bucket = s3server.new_bucket()

    def client(self):
        """A client of the test's bucket."""
        http, pool = make_http(reactor, 10.0)
        self.addCleanup(pool.closeCachedConnections)
        credentials = CredentialSource(Credentials(s3server.ACCESS_KEY, s3server.SECRET_KEY),
                                       partial(deferToThreadPool, reactor, self.pool), reactor)
        return S3Client(Bucket(s3server.endpoint(), self.bucket, s3server.REGION),
                        credentials, http, reactor, 10.0,
                        run=partial(deferToThreadPool, reactor, self.pool))

    def make_log(self, prefix=None):
        """A journal of the bucket, as a server makes it."""
        client = self.client()
        prefix = self.prefix if prefix is None else prefix
        return BucketJournal(BucketRecords(client, prefix + ".pypid/journal/"), client, prefix,
                             Clock())

    def make_other_log(self):
        """A journal of another storage in the same bucket (another prefix)."""
        return self.make_log("other/")

    async def files(self, log):
        """Every batch object, by key."""
        client = s3server.client()
        listed = client.list_objects_v2(Bucket=self.bucket,
                                        Prefix=log.records._prefix + "entries/")
        return {item["Key"]: client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                for item in listed.get("Contents", ())}

    async def put(self, log, name, data):
        """Change an object behind the log's back."""
        if data is None:
            s3server.client().delete_object(Bucket=self.bucket, Key=name)
        else:
            s3server.client().put_object(Bucket=self.bucket, Key=name, Body=data)

    def key(self, serial):
        """The key of the batch that begins at C{serial}."""
        return f"{self.prefix}.pypid/journal/entries/{serial:012d}.jsonl"

    async def test_keys(self):
        """Keys are <prefix>.pypid/journal/entries/<first serial>.jsonl, unseen by scans."""
        log = self.make_log()
        await self.written(log, entry(0), entry(1))
        await self.written(log, entry(2))
        keys = sorted(await self.files(log))
        self.assertEqual(keys, [self.key(2), self.key(4)])
        layout = Layout(self.prefix)
        for key in keys + [f"{self.prefix}.pypid/journal/days/2026-01-01"]:
            self.assertIsNone(layout.path_of(key))
            self.assertLess(key, layout.files_start_after)

    async def test_servers_share_the_journal(self):
        """Two servers write one journal: reads merge them in one order, one chain."""
        one, two = self.make_log(), self.make_log()
        await self.written(one, entry(0, user="one"))
        await self.written(two, entry(1, user="two"))
        await self.written(one, entry(2, user="one"))
        entries = (await one.read(make_query(since="2026-01-01"))).entries
        self.assertEqual([(e.user, e.serial) for e in entries],
                         [("one", 2), ("two", 3), ("one", 4)])
        checked = await two.verify()
        self.assertEqual((checked.files, checked.entries, checked.broken), (3, 3, ()))

    async def test_batch_removed(self):
        """A batch removed from the middle is named by its serials."""
        log = self.make_log()
        for i in range(3):
            await self.written(log, entry(i))
        await self.put(log, self.key(3), None)
        broken = [str(b) for b in (await log.verify()).broken]
        self.assertEqual(broken, [
            f"{self.key(4)}: missing: serials 3 to 3 were removed",
            f"{self.key(4)}: line 1: does not follow the last entry of {self.key(2)}: "
            "entries at its end were removed or edited, or what came between them was "
            "removed"])

    async def test_days(self):
        """Each day's first batch is noted; queries read the days they need."""
        log = self.make_log()
        await self.written(log, entry(0, filename="day1"), entry(86400, filename="day2"),
                           entry(2 * 86400 + 5, filename="day3"))
        entries = (await log.read(make_query(since="2026-01-02"))).entries
        self.assertEqual([e.filename for e in entries], ["day2", "day3"])
        newest = (await log.read(make_query(limit="1"))).entries
        self.assertEqual([e.filename for e in newest], ["day3"])

    async def test_oldest_pruned(self):
        """The oldest batches removed (retention) are a note, not an error."""
        log = self.make_log()
        for offset in (0, 1, 86400):
            await self.written(log, entry(offset))
        await self.put(log, self.key(2), None)
        checked = await log.verify()
        self.assertEqual(checked.broken, ())
        self.assertEqual([str(n) for n in checked.notes], [
            f"{self.key(3)}: entries before 2026-01-01T00:00:01.000000Z are not kept "
            "(pruned)"])

    async def test_before_the_journal(self):
        """
        The audit log a bucket kept before the journal (a chain per server's
        start) is read and checked with it, and carried in a bundle.
        """
        older = f"{self.prefix}.pypid/audit/2026-01-01/abc/000000.jsonl"
        await self.put(None, older, lines_of([entry(0, filename="before")]))
        log = self.make_log()
        await self.written(log, entry(5, filename="after"))
        entries = (await log.read(make_query(since="2026-01-01"))).entries
        self.assertEqual([e.filename for e in entries], ["before", "after"])
        checked = await log.verify()
        self.assertEqual((checked.files, checked.entries, checked.broken), (2, 2, ()))
        self.assertEqual([name for name, _ in await log.stored_files()],
                         ["2026-01-01/abc/000000.jsonl", "journal/000000000002.jsonl"])

    async def test_from_configuration(self):
        """The server's bucket journal, as the configuration makes it, and C{audit verify}'s check."""
        from io import StringIO

        from pypid.cli.admin_audit import check
        from pypid.config import load_config
        from pypid.storage.factory import make_journal

        settings = {("storage", "backend"): "s3", ("s3", "bucket"): self.bucket,
                    ("s3", "prefix"): "packages/", ("s3", "endpoint_url"): s3server.endpoint(),
                    ("s3", "access_key"): s3server.ACCESS_KEY,
                    ("s3", "secret_key"): s3server.SECRET_KEY}
        config = load_config(None, [(*name, value) for name, value in settings.items()])
        log = make_journal(config, partial(deferToThreadPool, reactor, self.pool), reactor)
        await self.written(log, entry(0), entry(1))
        [key] = await self.files(log)
        self.assertEqual(key, "packages/.pypid/journal/entries/000000000002.jsonl")
        out, err = StringIO(), StringIO()
        self.assertEqual(await check(log, out, err), 0)
        self.assertEqual(out.getvalue(), "1 file, 2 entries: every chain is intact\n")

    async def test_store_down(self):
        """A store that cannot be reached fails the flush; the entries wait."""
        http, pool = make_http(reactor, 1.0)
        self.addCleanup(pool.closeCachedConnections)
        credentials = CredentialSource(Credentials("k", "s"), run_now, reactor)
        client = S3Client(Bucket("http://127.0.0.1:9", self.bucket, s3server.REGION),
                          credentials, http, reactor, 1.0, run=run_now)
        log = BucketJournal(BucketRecords(client, "pkgs/.pypid/journal/"), client, self.prefix,
                            Clock())
        log.queue(entry(0))
        with capturedLogs():
            self.assertFalse(await log.flush())
        self.assertEqual(log.pending, 1)


# -- the web layer -----------------------------------------------------------------------------

PASSWORD = "correct horse"
ORIGIN = "http://pypi.test"


def basic(user, password=PASSWORD):
    """An Authorization header value."""
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


class _WebCase(SynchronousTestCase):
    """The real resource tree, with an audit log in memory, and its requests."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        users = {name: hash_password(PASSWORD, FAST) for name in ("admin", "alice")}
        verifier = PasswordVerifier(users, self.clock, None, run_in_pool=run_in_pool_now)
        self.log = MemoryJournal(self.clock)
        self.trail = AuditTrail(self.log, self.clock)
        self.tokens = TokenBook(self.clock)
        self.access = Gates(AccessModel(admins=frozenset({"admin"})), verifier,
                             LoginThrottle(self.clock), self.tokens, audit=self.trail)
        storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)
        self.successResultOf(storage.prepare())
        self.index = Index(file_url_for(None))
        web = build_web(one_index(self.index, storage, self.clock), self.access, run_now,
                        self.clock,
                        SiteSettings(max_upload_size=10 << 20),
                        SiteServices(audit=self.trail))
        self.client = site_treq(web.site)

    def request(self, method, path, user=None, password=PASSWORD, **kwargs):
        """Make a request; C{(response, body)}."""
        headers = kwargs.pop("headers", {})
        if user is not None:
            headers["Authorization"] = basic(user, password)
        response = self.successResultOf(self.client.request(
            method, ORIGIN + path, headers=headers, allow_redirects=False, **kwargs))
        return response, self.successResultOf(response.content())

    def upload(self, name="holy-grail", version="1.0", user="alice"):
        """Upload a wheel; C{(response, filename, bytes)}."""
        filename, data = make_wheel(name, version)
        ctype, body = multipart_body(twine_fields(name, version, data),
                                     [("content", filename, data)])
        response, _ = self.request("POST", "/legacy/", user, headers={"Content-Type": ctype},
                                   data=body)
        return response, filename, data

    def audit(self, **query):
        """C{GET /api/audit} as the admin; the entries."""
        response, body = self.request("GET", "/api/audit?" + urlencode(query), "admin")
        self.assertEqual(response.code, 200, body)
        return json.loads(body)["entries"]


class WebAuditTests(_WebCase):
    """What requests record, and C{GET /api/audit}, through the real resource tree."""

    def test_changes_recorded(self):
        """Uploads, yanks, unyanks, deletes and tokens are recorded with who, what and where."""
        response, filename, data = self.upload()
        self.assertEqual(response.code, 200)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        for method, path, body in (("POST", f"/api/files/{filename}/yank", b"reason=broken"),
                                   ("POST", f"/api/files/{filename}/unyank", b""),
                                   ("DELETE", f"/api/files/{filename}", b"")):
            response, _ = self.request(method, path, "alice", headers=form, data=body)
            self.assertEqual(response.code, 200)
        response, body = self.request("POST", "/api/tokens", "admin", headers=form,
                                      data=b"actions=upload")
        token_id = json.loads(body)["id"]
        self.request("DELETE", f"/api/tokens/{token_id}", "admin")
        entries = self.audit()
        self.assertEqual([(e["event"], e["outcome"]) for e in entries], [
            ("upload", "ok"), ("yank", "ok"), ("unyank", "ok"), ("delete", "ok"),
            ("token-issued", "ok"), ("token-revoked", "ok")])
        upload = entries[0]
        self.assertEqual(upload, {
            "time": "2026-01-01T00:00:00.000000Z", "event": "upload", "outcome": "ok",
            "user": "alice", "login": "password", "address": "127.0.0.1",
            "project": "holy-grail", "version": "1.0", "serial": 2,
            "id": "evt_1767225600000_2",
            "filename": filename, "sha256": hashlib.sha256(data).hexdigest()})
        self.assertEqual([e["serial"] for e in entries], list(range(2, 8)))
        self.assertEqual(entries[1]["detail"], "broken")
        self.assertEqual(entries[4]["target"], token_id)
        self.assertEqual(entries[4]["detail"], "upload on every project")
        self.assertEqual(entries[5]["target"], token_id)
        self.assertEqual(entries[5]["user"], "admin")

    def test_token_used(self):
        """A change made with a token names the token and the user it acts for."""
        text, token = self.tokens.issue("alice", {"upload"})
        filename, data = make_wheel("holy-grail", "2.0")
        ctype, body = multipart_body(twine_fields("holy-grail", "2.0", data),
                                     [("content", filename, data)])
        response, _ = self.request("POST", "/legacy/", "__token__", text,
                                   headers={"Content-Type": ctype}, data=body)
        self.assertEqual(response.code, 200)
        [upload] = self.audit(event="upload")
        self.assertEqual((upload["user"], upload["token"]), ("alice", token.id))

    def test_refusals_recorded(self):
        """A change refused to a user who logged in is recorded with the reason."""
        self.upload()
        _, filename, _ = self.upload()  # the same bytes again: no change, no entry
        other_name, other = make_wheel("holy-grail", "1.0", module_text="different = 1\n")
        ctype, body = multipart_body(twine_fields("holy-grail", "1.0", other),
                                     [("content", other_name, other)])
        response, _ = self.request("POST", "/legacy/", "alice",
                                   headers={"Content-Type": ctype}, data=body)
        self.assertEqual(response.code, 400)
        response, _ = self.request("DELETE", "/api/files/nothing-1.0-py3-none-any.whl", "alice")
        self.assertEqual(response.code, 404)
        entries = self.audit()
        self.assertEqual([(e["event"], e["outcome"]) for e in entries],
                         [("upload", "ok"), ("upload", "refused"), ("delete", "refused")])
        self.assertIn("File already exists", entries[1]["detail"])
        self.assertEqual(entries[1]["filename"], other_name)
        self.assertEqual(entries[2]["filename"], "nothing-1.0-py3-none-any.whl")

    def test_failed_logins(self):
        """Failed logins are recorded without the password, a name only when it is a user's."""
        for user, password in (("alice", "wrong"), ("hunter2-typed-as-a-name", "x"),
                               ("__token__", "pypid-nosuchid-secret")):
            response, _ = self.request("DELETE", "/api/files/x-1.0-py3-none-any.whl", user,
                                       password)
            self.assertEqual(response.code, 401)
        text, token = self.tokens.issue("alice", {"read"})
        self.tokens.revoke(token.id)
        self.tokens.tokens[token.id] = token  # (known id, wrong secret)
        self.request("DELETE", "/api/files/x", "__token__", text[:-3] + "xyz")
        entries = self.audit(event="login-failed")
        self.assertEqual([(e.get("user"), e.get("token"), e["outcome"]) for e in entries], [
            ("alice", None, "refused"), (None, None, "refused"), ("__token__", None, "refused"),
            ("__token__", token.id, "refused")])
        everything = json.dumps(self.log.files and {k: v.decode() for k, v
                                                     in self.log.files.items()})
        for secret in ("wrong", "hunter2", "secret", text[-10:]):
            self.assertNotIn(secret, everything)

    def test_throttled_logins_folded(self):
        """A flood of wrong passwords is a few entries: the first, and the repeats counted."""
        for _ in range(40):
            self.request("DELETE", "/api/files/x", "alice", "wrong")
        self.clock.advance(60)
        entries = self.audit()
        self.assertEqual([(e["event"], e.get("count", 1)) for e in entries],
                         [("login-failed", 1), ("login-throttled", 1), ("login-failed", 9),
                          ("login-throttled", 29)])

    def test_admins_only(self):
        """
        A user who is not an admin gets 403; no credentials get 401, saying
        what for (not "to upload").
        """
        self.assertEqual(self.request("GET", "/api/audit", "alice")[0].code, 403)
        response, body = self.request("GET", "/api/audit")
        self.assertEqual((response.code, body),
                         (401, b"authentication is required to read the audit log\n"))

    def test_bad_values(self):
        """A query value that cannot be used is a 400 naming its parameter."""
        for query, name in (("since=soon", b"since:"), ("limit=-1", b"limit:"),
                            ("event=dance", b"event:"),
                            ("since=0001-01-01T00:00:00%2B01:00", b"since:"),
                            ("since=9999-12-31T23:59:59-01:00", b"since:"),
                            ("since=0999-01-01", b"since:"), ("before=1969-01-01", b"before:")):
            response, body = self.request("GET", "/api/audit?" + query, "admin")
            self.assertEqual(response.code, 400)
            self.assertTrue(body.startswith(name), body)

    def test_pages(self):
        """C{next} leads through every entry; project and user filter."""
        for version in ("1.0", "2.0", "3.0"):
            self.upload(version=version)
            self.clock.advance(1)
        self.upload(name="other")
        response, body = self.request("GET", "/api/audit?since=2026-01-01&limit=2&"
                                      "project=Holy_Grail", "admin")
        page = json.loads(body)
        self.assertEqual([e["version"] for e in page["entries"]], ["1.0", "2.0"])
        response, body = self.request(
            "GET", "/api/audit?" + urlencode({"since": page["next"], "project": "holy-grail"}),
            "admin")
        page = json.loads(body)
        self.assertEqual([e["version"] for e in page["entries"]], ["3.0"])
        self.assertIsNone(page["next"])
        self.assertEqual(len(self.audit(user="alice")), 4)
        self.assertEqual(self.audit(user="nobody"), [])

    def test_storage_failure_does_not_fail_upload(self):
        """An audit log that cannot be written never fails the upload already stored."""
        self.log.fail = True
        with capturedLogs():
            response, filename, _ = self.upload()
            self.clock.advance(1)
        self.assertEqual(response.code, 200)
        self.assertIsNotNone(self.index.get_file(filename))
        self.assertEqual((self.log.pending, self.log.written, self.log.write_failures),
                         (1, 0, 1))
        self.log.fail = False
        self.clock.advance(5)
        self.assertEqual([e["event"] for e in self.audit()], ["upload"])

    def written(self):
        """The entries in the log's files now."""
        return [e for data in self.log.files.values() for e in verify_lines("", data).entries]

    def test_answered_once_written(self):
        """
        A change is answered once its entry is written, with no delay to
        wait for: a crash right after the answer cannot lose it.
        """
        response, filename, _ = self.upload()
        self.assertEqual(response.code, 200)
        self.assertEqual([(e.event, e.filename) for e in self.written()],
                         [("upload", filename)])
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        response, _ = self.request("POST", f"/api/files/{filename}/yank", "alice",
                                   headers=form, data=b"reason=broken")
        self.assertEqual(response.code, 200)
        response, _ = self.request("POST", "/api/tokens", "admin", headers=form,
                                   data=b"actions=upload")
        self.assertEqual(response.code, 200)
        self.assertEqual([e.event for e in self.written()],
                         ["upload", "yank", "token-issued"])

    def test_answer_waits_for_the_write(self):
        """
        The answer waits for the entry's write attempt; when it fails, the
        change is still answered as done, and the entry waits for a retry.
        """
        gated = self.trail.log = _GatedLog(self.clock)
        filename, data = make_wheel("holy-grail", "1.0")
        ctype, body = multipart_body(twine_fields("holy-grail", "1.0", data),
                                     [("content", filename, data)])
        answered = self.client.post(ORIGIN + "/legacy/", data=body, headers={
            "Content-Type": ctype, "Authorization": basic("alice")})
        self.assertEqual(gated.batches, [[filename]])
        self.assertNoResult(answered)
        with capturedLogs():
            gated.gates[0].errback(StorageError("the disk is full"))
        self.client.flush()
        self.assertEqual(self.successResultOf(answered).code, 200)
        self.assertEqual((gated.pending, gated.write_failures), (1, 1))

    def test_refusals_named(self):
        """
        A refused upload or yank names the project and version its
        filename (or the form) names, so C{?project=} finds it; a yank
        refused for a reason that is not UTF-8 is recorded too.
        """
        self.upload()
        other_name, other = make_wheel("holy-grail", "1.0", module_text="different = 1\n")
        ctype, body = multipart_body(twine_fields("Holy_Grail", "1.0", other),
                                     [("content", other_name, other)])
        response, _ = self.request("POST", "/legacy/", "alice",
                                   headers={"Content-Type": ctype}, data=body)
        self.assertEqual(response.code, 400)
        response, body = self.request(
            "POST", f"/api/files/{other_name}/yank", "alice", data=b"reason=%FF",
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((response.code, body), (400, b"reason: not valid UTF-8\n"))
        response, _ = self.request("POST", "/api/files/nothing-2.0.tar.gz/yank", "alice")
        self.assertEqual(response.code, 404)
        refused = self.audit(project="Holy.Grail", since="2026-01-01")[1:]
        self.assertEqual([(e["event"], e["outcome"], e["project"], e["version"])
                          for e in refused],
                         [("upload", "refused", "holy-grail", "1.0"),
                          ("yank", "refused", "holy-grail", "1.0")])
        self.assertEqual(refused[1]["detail"], "reason: not valid UTF-8")
        [nothing] = self.audit(project="nothing")
        self.assertEqual((nothing["version"], nothing["filename"]), ("2.0", "nothing-2.0.tar.gz"))

    def test_form_names_a_bad_filename(self):
        """An upload refused for its filename names the form's project and version."""
        ctype, body = multipart_body(twine_fields("Holy_Grail", "3.0", b"x"),
                                     [("content", "not-a-distribution.txt", b"x")])
        response, _ = self.request("POST", "/legacy/", "alice",
                                   headers={"Content-Type": ctype}, data=body)
        self.assertEqual(response.code, 400)
        [refused] = self.audit(project="holy-grail")
        self.assertEqual((refused["outcome"], refused["version"]), ("refused", "3.0"))

    def test_bounded_read(self):
        """
        A filter that matches nothing reads at most 31 days a request, and
        answers the cursor of the rest.
        """
        for day in range(40):
            self.log.queue(entry(day * 86400))
        response, body = self.request("GET", "/api/audit?since=2026-01-01&user=nobody",
                                      "admin")
        self.assertEqual(json.loads(body), {"entries": [], "before": None,
                                            "next": "2026-02-01T00:00:00.000000Z"})
        response, body = self.request("GET", "/api/audit?user=nobody", "admin")
        self.assertEqual(json.loads(body), {"entries": [], "next": None,
                                            "before": "2026-01-10T00:00:00.000000Z"})

    def test_close_writes_the_minute(self):
        """At the stop, the failed logins counted this minute are written too."""
        for _ in range(3):
            self.request("DELETE", "/api/files/x", "alice", "wrong")
        self.successResultOf(self.trail.close())
        counted = [e for data in self.log.files.values()
                   for e in verify_lines("", data).entries]
        self.assertEqual([e.count for e in counted], [1, 2])


class _ApiServer:
    """
    C{pypid-admin}'s blocking server, answered by the real web resource in
    memory (a SynchronousTestCase's requests complete at once).
    """

    def __init__(self, case, client):
        self._case = case
        self._client = client
        self.paths = []

    def request(self, method, path, headers=None):
        """Make the request as the admin; a response to read."""
        self.paths.append(path)
        response = self._case.successResultOf(self._client.request(
            method, ORIGIN + "/" + path, headers={"Authorization": basic("admin")}))
        self._case.assertEqual(response.code, 200)
        return contextlib.nullcontext(io.BytesIO(
            self._case.successResultOf(response.content())))


class CommandTests(_WebCase):
    """C{pypid-admin audit}: what it prints, and the values it refuses."""

    def options(self, **values):
        """The parsed options of C{pypid-admin audit} with C{values}."""
        defaults = {"action": "show", "since": None, "project": None, "audit_user": None,
                    "event": None, "limit": None, "json": False, "index": None}
        return argparse.Namespace(**dict(defaults, **values))

    def show(self, **values):
        """Run C{audit} against the server in memory; C{(status, printed lines, paths)}."""
        from pypid.cli.admin_audit import run

        server = _ApiServer(self, self.client)
        out, err = io.StringIO(), io.StringIO()
        status = run(self.options(**values), lambda options: server, None, out, err)
        return status, out.getvalue().splitlines(), server.paths

    def test_client_text_escaped(self):
        """
        Text a client chose (a yank reason) cannot forge a line or send an
        escape sequence: controls, DEL, C1, U+2028/2029 and the backslash are
        shown escaped.
        """
        from pypid.cli.admin_audit import format_entry

        reason = "broken\n2026-01-01T00:00:00.000000Z  delete  ok  mallory\x1b[2J\x7f\x9b\u2028\\"
        line = format_entry(entry(0, event="yank", detail=reason).public())
        self.assertEqual(line.splitlines(), [line])
        self.assertTrue(line.endswith("(broken\\n2026-01-01T00:00:00.000000Z  delete  ok  "
                                      "mallory\\x1b[2J\\x7f\\x9b\\u2028\\\\)"), line)
        self.assertEqual(format_entry(entry(0, user="jürgen").public()).split("  ")[3],
                         "jürgen")

    def test_bad_since(self):
        """A C{--since} that cannot be used is one line and status 2, not a traceback."""
        from pypid.cli.admin import main

        for since, why in (("999999999d", "999999999d ago is before 1970"),
                           ("0999-01-01", "expected a time from 1970 to 9999")):
            out, err = io.StringIO(), io.StringIO()
            status = main(["--server", "http://127.0.0.1:9/", "audit", "--since", since],
                          out, err)
            self.assertEqual(status, 2)
            [line] = err.getvalue().splitlines()
            self.assertTrue(line.startswith("pypid-admin: audit: --since: "), line)
            self.assertIn(why, line)

    def test_newest_across_the_read_bound(self):
        """
        Without C{--since}, the newest C{--limit} entries, even when one
        request reads fewer days than they span (it follows C{before}).
        """
        for day in range(40):
            self.log.queue(entry(day * 86400, filename=f"f{day}"))
        status, lines, paths = self.show(limit=35)
        self.assertEqual(status, 0)
        self.assertEqual([line.split("  ")[5] for line in lines],
                         [f"f{day}" for day in range(5, 40)])
        self.assertEqual(len(paths), 2)

    def test_since_across_the_read_bound(self):
        """With C{--since}, every entry from then on, page after page."""
        for day in range(40):
            self.log.queue(entry(day * 86400, filename=f"f{day}"))
        status, lines, _ = self.show(since="2026-01-01")
        self.assertEqual(len(lines), 40)
        status, lines, _ = self.show(since="2026-01-01", limit=33)
        self.assertEqual(len(lines), 33)


class StorageErrorTests(SynchronousTestCase):
    """Reads of a log that fails answer 503."""

    def test_read_failure(self):
        """A storage failure while reading is a 503, not a traceback."""
        from twisted.internet.defer import fail

        clock = Clock()
        log = MemoryJournal(clock)
        log.read = lambda query: fail(StorageError("down"))
        users = {"admin": hash_password(PASSWORD, FAST)}
        verifier = PasswordVerifier(users, clock, None, run_in_pool=run_in_pool_now)
        access = Gates(AccessModel(admins=frozenset({"admin"})), verifier)
        storage = MemoryStorage(os.path.abspath(self.mktemp()), clock)
        web = build_web(one_index(Index(file_url_for(None)), storage, clock), access, run_now,
                        clock,
                        SiteSettings(max_upload_size=1 << 20),
                        SiteServices(audit=AuditTrail(log, clock)))
        client = site_treq(web.site)
        with capturedLogs():
            response = self.successResultOf(client.get(
                ORIGIN + "/api/audit", headers={"Authorization": basic("admin")}))
        self.assertEqual(response.code, 503)


class ServiceTests(SynchronousTestCase):
    """The server's audit log, as L{pypid.tap.makeService} wires it."""

    def test_written_at_stop(self):
        """
        An entry still in the buffer when the server stops is written to
        C{<storage>/.pypid/audit/} before the thread pools stop.
        """
        from twisted.internet.testing import MemoryReactorClock

        from pypid.tap import Options, makeService
        from tests.harness.tap import fake_pools, site_of

        folder = os.path.abspath(self.mktemp())
        options = Options()
        options.parseOptions(["--set", f"storage.path={folder}/packages",
                              "--set", f"pypid.snapshot={folder}/index.json",
                              "--listen", "tcp:8081"])
        clock = MemoryReactorClock()
        clock.advance(T0)
        service = makeService(options, reactor=clock, pools=fake_pools(),
                              check_port=lambda port, interface: None)
        service.startService()
        self.successResultOf(service.ready)
        response = self.successResultOf(site_treq(site_of(service)).delete(
            ORIGIN + "/api/files/x", headers={"Authorization": basic("__token__", "pypid-a-b")}))
        self.assertEqual(response.code, 401)
        folder = os.path.join(folder, "packages", ".pypid", "audit")
        self.assertFalse(os.path.exists(folder))  # (not yet: buffered)
        self.successResultOf(service.stopService())
        with open(os.path.join(folder, "2026-01-01.jsonl"), "rb") as f:
            [line] = f.read().splitlines()
        self.assertEqual((audit.decode(line).event, audit.decode(line).user),
                         ("login-failed", "__token__"))
        self.assertEqual(clock.getDelayedCalls(), [])


@attrs.define
class _Upstream:
    """An upstream cache that answers at once, for the cache's own routes."""

    mode: str = "cache"

    @property
    def upkeep(self):
        """Its refreshes and pre-caching: the fake itself."""
        return self

    def decide(self, name):
        """Every name but C{private} is the upstream's."""
        return attrs.make_class("Decision", ["allowed"])(name != "private")

    async def refresh(self, project):
        """A page of two files, fetched now."""
        page = attrs.make_class("Page", ["project", "files", "status"])(project, ["a", "b"], None)
        return attrs.make_class("Entry", ["page", "fetched_at"])(page, T0)

    def quarantine(self, project):
        """No quarantine is remembered."""
        return None

    async def precache(self, pins):
        """Every pin cached."""
        return [{"project": pin.project, "status": "cached"} for pin in pins]


class CacheAuditTests(SynchronousTestCase):
    """Refreshes and pre-caching of the upstream cache are recorded."""

    def test_refresh_and_precache(self):
        """A refresh names the project and its files; a refused one the reason."""
        clock = Clock()
        clock.advance(T0)
        log = MemoryJournal(clock)
        users = {"alice": hash_password(PASSWORD, FAST)}
        verifier = PasswordVerifier(users, clock, None, run_in_pool=run_in_pool_now)
        access = Gates(AccessModel(), verifier)
        storage = MemoryStorage(os.path.abspath(self.mktemp()), clock)
        web = build_web(one_index(Index(file_url_for(None)), storage, clock), access, run_now,
                        clock,
                        SiteSettings(max_upload_size=1 << 20),
                        SiteServices(upstream=_Upstream(), audit=AuditTrail(log, clock)))
        client = site_treq(web.site)
        auth = {"Authorization": basic("alice")}
        for path, code in (("/api/upstream/Some.Thing/refresh", 200),
                           ("/api/upstream/private/refresh", 404)):
            response = self.successResultOf(client.post(ORIGIN + path, headers=auth))
            self.assertEqual(response.code, code)
        response = self.successResultOf(client.post(
            ORIGIN + "/requirements.txt", data=b"attrs==24.2.0\nidna==3.10\n", headers=auth))
        self.assertEqual(response.code, 200)
        self.successResultOf(log.flush())
        entries = self.successResultOf(log.read(make_query())).entries
        self.assertEqual([(e.event, e.outcome, e.project, e.detail) for e in entries], [
            ("refresh", "ok", "some-thing", "2 files"),
            ("refresh", "refused", "private", "not an upstream project here"),
            ("precache", "ok", None, "2 cached")])
        self.assertEqual({e.user for e in entries}, {"alice"})
