"""
Tests of the audit log: the entry, its chain and the check of it (pure);
one contract for the three logs (in memory, local files, S3 on moto's
server); the buffer in front of their writes; what the web layer records
and C{GET /api/audit}, through L{treq.testing.StubTreq}.
"""

import base64
import hashlib
import json
import os
from functools import partial
from urllib.parse import urlencode

import attrs
from twisted.internet import reactor
from twisted.internet.task import Clock
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
from pypid.core import audit
from pypid.core.audit import (
    AuditError,
    Entry,
    LoginFailures,
    chain,
    format_time,
    make_query,
    select,
    verify_lines,
)
from pypid.core.index import Index
from pypid.core.render import file_url_for
from pypid.http.client import make_http
from pypid.storage.audit import (
    AuditBuffer,
    IAuditLog,
    LocalAuditLog,
    MemoryAuditLog,
    S3AuditLog,
)
from pypid.storage.interface import StorageError
from pypid.storage.memory import MemoryStorage
from pypid.storage.s3.client import S3Client
from pypid.storage.s3.credentials import CredentialSource
from pypid.storage.s3.layout import Layout
from pypid.storage.s3.sign import Bucket, Credentials
from pypid.web.access import Access
from pypid.web.app import build_web
from pypid.web.audit import AuditTrail
from tests import s3server
from tests.distributions import make_wheel
from tests.fakes import FAST, multipart_body, run_in_pool_now, run_now, site_treq, twine_fields

#: 2026-01-01T00:00:00Z
T0 = 1767225600.0
SHA = "ab" * 32


def entry(offset=0.0, event="upload", **fields):
    """An entry at C{T0 + offset}."""
    fields.setdefault("user", "alice")
    return Entry(time=format_time(T0 + offset), event=event, **fields)


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
        for before, prev in zip(self.lines, prevs[1:]):
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


class QueryTests(SynchronousTestCase):
    """Query values, and the selection of entries."""

    def test_values_checked(self):
        """A value that cannot be used is refused, naming its parameter."""
        for values, name in (({"since": "last tuesday"}, "since:"),
                             ({"limit": "many"}, "limit:"), ({"limit": "0"}, "limit:"),
                             ({"limit": "100001"}, "limit:"), ({"event": "dance"}, "event:")):
            with self.assertRaises(AuditError) as caught:
                make_query(**values)
            self.assertTrue(str(caught.exception).startswith(name), caught.exception)

    def test_values(self):
        """Times are UTC (an offset converted), projects normalized."""
        query = make_query(since="2026-01-01T01:00:00+01:00", project="Holy.Grail",
                           user="alice", limit="5")
        self.assertEqual(query, audit.Query(since="2026-01-01T00:00:00.000000Z",
                                            project="holy-grail", user="alice", limit=5))
        self.assertEqual(make_query(since="2026-01-02").since, "2026-01-02T00:00:00.000000Z")

    def test_pages(self):
        """With C{since}: oldest first, C{limit} at a time, ties kept together, none missed."""
        entries = [entry(i // 2, filename=f"f{i}") for i in range(9)]  # pairs share a time
        days = [("2026-01-01", list(reversed(entries)))]
        seen, since = [], format_time(T0)
        while since is not None:
            page, since = select(make_query(since=since, limit="3"), days)
            self.assertLessEqual(len(page), 4)
            seen += page
        self.assertEqual([e.time for e in seen], [e.time for e in entries])
        self.assertEqual(sorted(e.filename for e in seen), [e.filename for e in entries])

    def test_newest(self):
        """Without C{since}: the newest, oldest first, reading days newest first."""
        days = [("2026-01-02", [entry(86400 + i, filename=f"b{i}") for i in range(3)]),
                ("2026-01-01", [entry(i, filename=f"a{i}") for i in range(3)])]
        page, following = select(make_query(limit="4"), days)
        self.assertEqual([e.filename for e in page], ["a2", "b0", "b1", "b2"])
        self.assertIsNone(following)

    def test_filters(self):
        """Project, user and event keep only the entries that name them."""
        entries = [entry(0, project="a"), entry(1, project="b", user="bob"),
                   entry(2, project="b", event="yank")]
        pick = lambda **q: [e.time for e in select(make_query(**q), [("d", entries)])[0]]
        self.assertEqual(pick(project="B"), [entries[1].time, entries[2].time])
        self.assertEqual(pick(user="bob"), [entries[1].time])
        self.assertEqual(pick(event="yank"), [entries[2].time])


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
        self.assertEqual([(e.user, e.count, e.time) for e in due],
                         [("alice", 500, format_time(T0 + 1))])
        self.assertIsNone(folded.ends_at())

    def test_flood_bounded(self):
        """Ten thousand made-up users in a minute write at most 2 x keys + 2 entries."""
        folded = LoginFailures(max_keys=50)
        written = []
        for i in range(10000):
            written += folded.add(T0 + i / 1000, "login-failed", f"user{i % 3000}",
                                  f"198.51.100.{i % 7}")
        written += folded.drain()
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
        self.log = MemoryAuditLog(self.clock)

    def written(self):
        """The entries in the log's files."""
        return [e for data in self.log.files.values() for e in verify_lines("", data).entries]

    def test_written_soon(self):
        """An append is written within the flush delay, with those that follow it."""
        self.log.append(entry(0))
        self.clock.advance(0.2)
        self.log.append(entry(1))
        self.assertEqual(self.written(), [])
        self.clock.advance(0.5)
        self.assertEqual(len(self.written()), 2)
        self.assertEqual(self.log.pending(), 0)

    def test_failure_retried_not_lost(self):
        """A failed write is logged as an error and tried again; nothing is lost or reordered."""
        self.log.fail = True
        with capturedLogs() as events:
            self.log.append(entry(0))
            self.clock.advance(1)
            self.log.append(entry(1))
            self.clock.advance(1)
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn("Cannot write 1 audit entries", errors[0]["log_format"].format(**errors[0]))
        self.assertEqual(self.log.pending(), 2)
        self.log.fail = False
        self.clock.advance(2)
        self.assertEqual([e.time for e in self.written()],
                         [format_time(T0), format_time(T0 + 1)])
        self.assertEqual(self.log.verify().result.broken, ())

    def test_close_writes(self):
        """The stop writes what waits, and what comes after it is logged as lost."""
        self.log.append(entry(0))
        self.assertTrue(self.successResultOf(self.log.close()))
        self.assertEqual(len(self.written()), 1)
        with capturedLogs() as events:
            self.log.append(entry(1))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.error])

    def test_bounded(self):
        """Past its bound, a failing log counts what it refuses, with an error."""
        buffer = AuditBuffer(lambda entries: None, self.clock, max_pending=3)
        with capturedLogs() as events:
            for i in range(5):
                buffer.append(entry(i))
        self.assertEqual(buffer.pending(), 3)
        self.assertEqual(len([e for e in events if e["log_level"] == LogLevel.error]), 1)


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

    async def files(self, log):
        """C{{name: bytes}} of every file (or object) the log keeps."""
        raise NotImplementedError()

    async def put(self, log, name, data):
        """Replace the file C{name} with C{data} (L{None}: remove it)."""
        raise NotImplementedError()

    async def written(self, log, *entries):
        """Append C{entries} and flush them."""
        for one in entries:
            log.append(one)
        self.assertTrue(await log.flush())

    async def test_interface(self):
        """The log provides L{IAuditLog}."""
        self.assertTrue(verifyObject(IAuditLog, self.make_log()))

    async def test_empty(self):
        """A new log reads and checks empty."""
        log = self.make_log()
        self.assertEqual(await log.read(make_query()), ([], None))
        self.assertEqual((await log.verify()).broken, ())

    async def test_read_back(self):
        """Entries written in batches are read back whole, oldest first."""
        log = self.make_log()
        first = entry(0, project="holy-grail", version="1.0", filename="a.whl", sha256=SHA,
                      token="t1", address="192.0.2.7")
        await self.written(log, first, entry(1, event="yank", detail="broken"))
        await self.written(log, entry(2, event="delete"))
        entries, following = await log.read(make_query(since="2026-01-01"))
        self.assertEqual([e.event for e in entries], ["upload", "yank", "delete"])
        self.assertEqual(attrs.evolve(entries[0], prev=None), first)
        self.assertIsNone(following)
        checked = await log.verify()
        self.assertEqual((checked.entries, checked.broken), (3, ()))

    async def test_days(self):
        """Each day has files of its own; queries read the days they need."""
        log = self.make_log()
        await self.written(log, entry(0, filename="day1"), entry(86400, filename="day2"),
                           entry(2 * 86400 + 5, filename="day3"))
        names = sorted(await self.files(log))
        self.assertEqual([name.count("2026-01-0") for name in names], [1, 1, 1])
        for day, name in zip(("2026-01-01", "2026-01-02", "2026-01-03"), names):
            self.assertIn(day, name)
        entries, _ = await log.read(make_query(since="2026-01-02"))
        self.assertEqual([e.filename for e in entries], ["day2", "day3"])
        newest, _ = await log.read(make_query(limit="1"))
        self.assertEqual([e.filename for e in newest], ["day3"])
        self.assertEqual((await log.verify()).files, 3)

    async def test_query(self):
        """Filters and pages are the query's."""
        log = self.make_log()
        await self.written(log, *[entry(i, project="a" if i % 2 else "b", user=f"u{i % 3}")
                                  for i in range(10)])
        entries, following = await log.read(make_query(since="2026-01-01", limit="2",
                                                        project="a"))
        self.assertEqual([e.time for e in entries], [format_time(T0 + 1), format_time(T0 + 3)])
        self.assertEqual(following, "2026-01-01T00:00:03.000001Z")
        entries, _ = await log.read(make_query(user="u0"))
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

    async def test_goes_on_after_tampering(self):
        """
        A log whose file was changed behind its back goes on from what is
        there: the entries it writes next link to the file's last line.
        """
        log = self.make_log()
        await self.written(log, entry(0), entry(1))
        [(name, data)] = (await self.files(log)).items()
        await self.put(log, name, data.splitlines(keepends=True)[0])
        await self.written(log, entry(2))
        self.assertEqual((await log.verify()).broken, ())


class MemoryAuditLogTests(AuditLogContractMixin, AppendedFileMixin, TestCase):
    """The contract, in memory."""

    def make_log(self):
        """A log in memory."""
        return MemoryAuditLog(Clock())

    async def files(self, log):
        """Its files."""
        return dict(log.files)

    async def put(self, log, name, data):
        """Change its files."""
        if data is None:
            del log.files[name]
        else:
            log.files[name] = data


class LocalAuditLogTests(AuditLogContractMixin, AppendedFileMixin, TestCase):
    """The contract, in daily files of a folder, written in a real thread pool."""

    def setUp(self):
        pool = ThreadPool(minthreads=1, maxthreads=2, name="test-audit")
        pool.start()
        self.addCleanup(pool.stop)
        self.run_in_pool = partial(deferToThreadPool, reactor, pool)

    def make_log(self):
        """A log in a new folder."""
        return LocalAuditLog(os.path.abspath(self.mktemp()), self.run_in_pool, Clock())

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
        log2 = LocalAuditLog(log.folder, self.run_in_pool, Clock())
        await self.written(log2, entry(2))
        broken = [str(b) for b in (await log2.verify()).broken]
        self.assertEqual(len(broken), 1)
        self.assertIn("line 2: not an audit entry", broken[0])
        entries, _ = await log2.read(make_query(since="2026-01-01"))
        self.assertEqual(len(entries), 2)

    async def test_verify_command(self):
        """C{audit verify}'s check: a line per broken link, and status 1."""
        from io import StringIO

        from pypid.cli.audit import check

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
                         "pypid-admin: audit verify: 1 files, 2 entries: 1 broken links\n")

    async def test_write_failure(self):
        """A folder that cannot be written fails the flush, which is tried again."""
        log = self.make_log()
        with open(log.folder, "w"):
            pass  # a file where the folder should be
        log.append(entry(0))
        with capturedLogs() as events:
            self.assertFalse(await log.flush())
        self.assertEqual(log.pending(), 1)
        self.assertTrue([e for e in events if e["log_level"] == LogLevel.error])
        os.unlink(log.folder)
        self.assertTrue(await log.flush())
        self.assertEqual(log.pending(), 0)


class S3AuditLogTests(AuditLogContractMixin, TestCase):
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
                        credentials, http, reactor, 10.0)

    def make_log(self, instance=None):
        """A log writing batches of its own in the bucket."""
        return S3AuditLog(self.client(), self.prefix, Clock(), instance=instance)

    async def files(self, log):
        """Every audit object, by key."""
        client = s3server.client()
        listed = client.list_objects_v2(Bucket=self.bucket, Prefix=log.folder)
        return {item["Key"]: client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                for item in listed.get("Contents", ())}

    async def put(self, log, name, data):
        """Change an object behind the log's back."""
        if data is None:
            s3server.client().delete_object(Bucket=self.bucket, Key=name)
        else:
            s3server.client().put_object(Bucket=self.bucket, Key=name, Body=data)

    async def test_keys(self):
        """Keys are <prefix>.pypid/audit/<day>/<instance>/<n>.jsonl, unseen by scans."""
        log = self.make_log(instance="abc123")
        await self.written(log, entry(0))
        await self.written(log, entry(1))
        keys = sorted(await self.files(log))
        self.assertEqual(keys, ["pkgs/.pypid/audit/2026-01-01/abc123/000000.jsonl",
                                "pkgs/.pypid/audit/2026-01-01/abc123/000001.jsonl"])
        layout = Layout(self.prefix)
        for key in keys:
            self.assertIsNone(layout.path_of(key))
            self.assertLess(key, layout.files_start_after)

    async def test_instances_share_the_bucket(self):
        """Two servers write keys of their own; reads merge them, each chain checks."""
        one, two = self.make_log(), self.make_log()
        await self.written(one, entry(0, user="one"))
        await self.written(two, entry(1, user="two"))
        await self.written(one, entry(2, user="one"))
        entries, _ = await one.read(make_query(since="2026-01-01"))
        self.assertEqual([e.user for e in entries], ["one", "two", "one"])
        checked = await two.verify()
        self.assertEqual((checked.files, checked.entries, checked.broken), (3, 3, ()))

    async def test_batch_removed(self):
        """A batch removed from the middle of a server's day is named."""
        log = self.make_log(instance="abc")
        for i in range(3):
            await self.written(log, entry(i))
        await self.put(log, log.key("2026-01-01", "abc", 1), None)
        broken = [str(b) for b in (await log.verify()).broken]
        self.assertEqual(broken, ["pkgs/.pypid/audit/2026-01-01/abc/000001.jsonl: missing: "
                                  "this batch was removed"])

    async def test_lost_answer(self):
        """A batch written by an attempt whose answer was lost is not written twice."""
        log = self.make_log(instance="abc")
        await self.written(log, entry(0))
        # The same batch again, as if the first answer had been lost.
        log._heads["2026-01-01"] = (0, None)
        await self.written(log, entry(0), entry(1))
        entries, _ = await log.read(make_query(since="2026-01-01"))
        self.assertEqual(len(entries), 2)
        self.assertEqual((await log.verify()).broken, ())

    async def test_from_configuration(self):
        """The server's S3 log, as the configuration makes it, and C{audit verify}'s check."""
        from io import StringIO

        from pypid.cli.audit import check
        from pypid.config import load_config
        from pypid.tap import make_audit_log

        settings = {("storage", "backend"): "s3", ("s3", "bucket"): self.bucket,
                    ("s3", "prefix"): "packages/", ("s3", "endpoint_url"): s3server.endpoint(),
                    ("s3", "access_key"): s3server.ACCESS_KEY,
                    ("s3", "secret_key"): s3server.SECRET_KEY}
        config = load_config(None, [(*name, value) for name, value in settings.items()])
        log = make_audit_log(config, partial(deferToThreadPool, reactor, self.pool), reactor)
        await self.written(log, entry(0), entry(1))
        [key] = await self.files(log)
        self.assertTrue(key.startswith("packages/.pypid/audit/2026-01-01/"), key)
        out, err = StringIO(), StringIO()
        self.assertEqual(await check(log, out, err), 0)
        self.assertEqual(out.getvalue(), "1 files, 2 entries: every chain is intact\n")

    async def test_store_down(self):
        """A store that cannot be reached fails the flush; the entries wait."""
        http, pool = make_http(reactor, 1.0)
        self.addCleanup(pool.closeCachedConnections)
        credentials = CredentialSource(Credentials("k", "s"), run_now, reactor)
        client = S3Client(Bucket("http://127.0.0.1:9", self.bucket, s3server.REGION),
                          credentials, http, reactor, 1.0)
        log = S3AuditLog(client, self.prefix, Clock())
        log.append(entry(0))
        with capturedLogs():
            self.assertFalse(await log.flush())
        self.assertEqual(log.pending(), 1)


# -- the web layer -----------------------------------------------------------------------------

PASSWORD = "correct horse"
ORIGIN = "http://pypi.test"


def basic(user, password=PASSWORD):
    """An Authorization header value."""
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


class WebAuditTests(SynchronousTestCase):
    """What requests record, and C{GET /api/audit}, through the real resource tree."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        users = {name: hash_password(PASSWORD, FAST) for name in ("admin", "alice")}
        verifier = PasswordVerifier(users, self.clock, None, run_in_pool=run_in_pool_now)
        self.log = MemoryAuditLog(self.clock)
        self.trail = AuditTrail(self.log, self.clock)
        self.tokens = TokenBook(self.clock)
        self.access = Access(AccessModel(admins=frozenset({"admin"})), verifier,
                             LoginThrottle(self.clock), self.tokens, audit=self.trail)
        storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)
        self.successResultOf(storage.prepare())
        self.index = Index(file_url_for(None))
        web = build_web(self.index, storage, self.access, run_now, self.clock,
                        max_upload_size=10 << 20, audit=self.trail)
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
            "user": "alice", "address": "127.0.0.1", "project": "holy-grail", "version": "1.0",
            "filename": filename, "sha256": hashlib.sha256(data).hexdigest()})
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
        """A user who is not an admin gets 403; no credentials get 401."""
        self.assertEqual(self.request("GET", "/api/audit", "alice")[0].code, 403)
        self.assertEqual(self.request("GET", "/api/audit")[0].code, 401)

    def test_bad_values(self):
        """A query value that cannot be used is a 400 naming its parameter."""
        for query, name in (("since=soon", b"since:"), ("limit=-1", b"limit:"),
                            ("event=dance", b"event:")):
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
        self.assertEqual(self.log.pending(), 1)
        self.log.fail = False
        self.clock.advance(5)
        self.assertEqual([e["event"] for e in self.audit()], ["upload"])

    def test_close_writes_the_minute(self):
        """At the stop, the failed logins counted this minute are written too."""
        for _ in range(3):
            self.request("DELETE", "/api/files/x", "alice", "wrong")
        self.successResultOf(self.trail.close())
        counted = [e for data in self.log.files.values()
                   for e in verify_lines("", data).entries]
        self.assertEqual([e.count for e in counted], [1, 2])


class StorageErrorTests(SynchronousTestCase):
    """Reads of a log that fails answer 503."""

    def test_read_failure(self):
        """A storage failure while reading is a 503, not a traceback."""
        from twisted.internet.defer import fail

        clock = Clock()
        log = MemoryAuditLog(clock)
        log.read = lambda query: fail(StorageError("down"))
        users = {"admin": hash_password(PASSWORD, FAST)}
        verifier = PasswordVerifier(users, clock, None, run_in_pool=run_in_pool_now)
        access = Access(AccessModel(admins=frozenset({"admin"})), verifier)
        storage = MemoryStorage(os.path.abspath(self.mktemp()), clock)
        web = build_web(Index(file_url_for(None)), storage, access, run_now, clock,
                        max_upload_size=1 << 20, audit=AuditTrail(log, clock))
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
        from tests.test_tap import fake_pools

        folder = os.path.abspath(self.mktemp())
        options = Options()
        options.parseOptions(["--set", f"storage.path={folder}/packages",
                              "--set", f"pypid.snapshot={folder}/index.json",
                              "--listen", "tcp:8081"])
        clock = MemoryReactorClock()
        clock.advance(T0)
        service = makeService(options, reactor=clock, pools=fake_pools())
        service.startService()
        self.successResultOf(service.ready)
        response = self.successResultOf(site_treq(service.site).delete(
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

    def decide(self, name):
        """Every name but C{private} is the upstream's."""
        return attrs.make_class("Decision", ["allowed"])(name != "private")

    async def refresh(self, project):
        """A page of two files, fetched now."""
        page = attrs.make_class("Page", ["project", "files"])(project, ["a", "b"])
        return attrs.make_class("Entry", ["page", "fetched_at"])(page, T0)

    async def precache(self, pins):
        """Every pin cached."""
        return [{"project": pin.project, "status": "cached"} for pin in pins]


class CacheAuditTests(SynchronousTestCase):
    """Refreshes and pre-caching of the upstream cache are recorded."""

    def test_refresh_and_precache(self):
        """A refresh names the project and its files; a refused one the reason."""
        clock = Clock()
        clock.advance(T0)
        log = MemoryAuditLog(clock)
        users = {"alice": hash_password(PASSWORD, FAST)}
        verifier = PasswordVerifier(users, clock, None, run_in_pool=run_in_pool_now)
        access = Access(AccessModel(), verifier)
        storage = MemoryStorage(os.path.abspath(self.mktemp()), clock)
        web = build_web(Index(file_url_for(None)), storage, access, run_now, clock,
                        max_upload_size=1 << 20, upstream=_Upstream(),
                        audit=AuditTrail(log, clock))
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
        entries, _ = self.successResultOf(log.read(make_query()))
        self.assertEqual([(e.event, e.outcome, e.project, e.detail) for e in entries], [
            ("refresh", "ok", "some-thing", "2 files"),
            ("refresh", "refused", "private", "not an upstream project here"),
            ("precache", "ok", None, "2 cached")])
        self.assertEqual({e.user for e in entries}, {"alice"})
