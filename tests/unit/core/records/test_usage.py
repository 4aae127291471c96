"""
Tests for download counts (issue 29, part 1): L{pypid.core.records.usage} (the
counter, the records, the book of counts) and L{pypid.state.usage_log}
(counted downloads written every interval as records of their writer,
summed across writers at a start, closed days folded without counting
twice, a failed write kept for the next), on memory, local and S3
storage's L{IUsageStorage}, and the download path counting files.
"""

import json
import os

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.records.usage import (
    DAY,
    MAX_PER_ADDRESS,
    WINDOW_DAYS,
    UsageBook,
    UsageCounter,
    UsageInvalid,
    UsageRecord,
    day_of,
    merge,
    parse_name,
    record_name,
)
from pypid.machine.topics import Topic
from pypid.state.usage_log import UsageLog
from pypid.storage.base.capabilities import IUsageStorage
from pypid.storage.base.interface import StorageError
from pypid.storage.folder.local import LocalStorage
from tests.harness.fakes import run_now
from tests.harness.memory_storage import MemoryStorage
from tests.harness.web import WHEEL_NAME, _ServerMixin

NOW = 1767225600.0 + 3600  # 2026-01-01T01:00Z
TODAY = day_of(NOW)
WHEEL = "holy_grail-1.0-py3-none-any.whl"
SDIST = "holy_grail-1.0.tar.gz"


class RecordTests(SynchronousTestCase):
    """The records: their names, bytes, and what a book sums of them."""

    def test_counter(self):
        """Downloads are counted by file and day, and taken as one record a day."""
        counter = UsageCounter()
        self.assertFalse(counter)
        counter.count(WHEEL, NOW - DAY)
        counter.count(WHEEL, NOW)
        counter.count(WHEEL, NOW + 5)
        counter.count(SDIST, NOW + 1)
        records = counter.take()
        self.assertEqual([(r.day, dict(r.counts)) for r in records], [
            (TODAY - 1, {WHEEL: (1, NOW - DAY)}),
            (TODAY, {WHEEL: (2, NOW + 5), SDIST: (1, NOW + 1)})])
        self.assertFalse(counter)
        counter.give_back(records)
        self.assertEqual([dict(r.counts) for r in counter.take()], [
            {WHEEL: (1, NOW - DAY)}, {WHEEL: (2, NOW + 5), SDIST: (1, NOW + 1)}])

    def test_bytes(self):
        record = UsageRecord(TODAY, {WHEEL: (3, NOW)}, ("a",))
        self.assertEqual(UsageRecord.from_bytes(record.to_bytes()), record)
        for data in (b"{", b"[]", b'{"day": "x", "files": {}}',
                     b'{"day": 1, "files": {"a": [-1, 0]}}',
                     b'{"day": 1, "files": {"a": [1, "x"]}}', b'{"day": 1, "files": {"a": 1}}'):
            self.assertRaises(UsageInvalid, UsageRecord.from_bytes, data)

    def test_names(self):
        self.assertEqual(parse_name(record_name(TODAY, "abc123", 7)), (TODAY, "abc123", 7))
        self.assertEqual(parse_name(record_name(TODAY, "all", None)), (TODAY, "all", None))
        for name in ("x", "1-ABC-1", "1-a-b", "../1-a-1"):
            self.assertIsNone(parse_name(name))

    def test_book(self):
        """
        The book sums records, leaves out those another replaces, keeps the
        last time, and answers over a number of days.
        """
        old = UsageRecord(TODAY - 40, {WHEEL: (5, NOW - 40 * DAY)})
        a = UsageRecord(TODAY - 3, {WHEEL: (2, NOW - 3 * DAY)})
        b = UsageRecord(TODAY - 3, {WHEEL: (1, NOW - 3 * DAY + 9)})
        folded = merge([a, b], TODAY - 3, ("a", "b"))
        today = UsageRecord(TODAY, {WHEEL: (1, NOW), SDIST: (4, NOW - 1)})
        book = UsageBook()
        book.load({"a": a, "b": b, "f": folded, "o": old, "t": today}, TODAY)
        self.assertEqual(book.downloads([WHEEL], 1, TODAY), 1)
        self.assertEqual(book.downloads([WHEEL], 7, TODAY), 4)
        self.assertEqual(book.downloads([WHEEL], 30, TODAY), 4)
        self.assertEqual(book.downloads([WHEEL, SDIST], 90, TODAY), 13)
        self.assertEqual(book.last_downloaded(WHEEL), NOW)
        self.assertIsNone(book.last_downloaded("other.whl"))
        self.assertEqual(book.ranked([WHEEL, SDIST, "other.whl"], 30, TODAY), [
            (WHEEL, 4, NOW), (SDIST, 4, NOW - 1), ("other.whl", 0, None)])
        self.assertEqual(book.ranked([WHEEL, SDIST, "other.whl"], 30, TODAY, most=False)[0],
                         ("other.whl", 0, None))

    def test_outside_the_window(self):
        """A record older than the window counts for the last time only."""
        book = UsageBook()
        book.load({"o": UsageRecord(TODAY - WINDOW_DAYS - 5, {WHEEL: (5, 1.0)})}, TODAY)
        self.assertEqual(book.downloads([WHEEL], WINDOW_DAYS + 10, TODAY), 0)
        self.assertEqual(book.last_downloaded(WHEEL), 1.0)


    def test_a_year_running(self):
        """
        Issue 69: a book fed every day for a year keeps the window's days
        of each file, and forgets the files downloaded before it (deleted
        ones too), as a restart would; before, it kept every day of every
        file it was ever told of.
        """
        book = UsageBook()
        book.load({}, TODAY)
        for day in range(TODAY, TODAY + 365):
            counts = {WHEEL: (1, day * DAY), f"gone-{day}.whl": (2, day * DAY)}
            book.add(UsageRecord(day, counts), day)
        today = TODAY + 364
        self.assertEqual(len(book.of(WHEEL).days), WINDOW_DAYS)
        self.assertEqual(book.downloads([WHEEL], WINDOW_DAYS, today), WINDOW_DAYS)
        self.assertEqual(book.last_downloaded(WHEEL), today * DAY)
        self.assertEqual(book.total(WINDOW_DAYS, today), 3 * WINDOW_DAYS)
        self.assertIsNone(book.of(f"gone-{TODAY}.whl"))
        self.assertIsNone(book.of(f"gone-{today - WINDOW_DAYS}.whl"))
        self.assertEqual(book.of(f"gone-{today - WINDOW_DAYS + 1}.whl").days,
                         {today - WINDOW_DAYS + 1: 2})

class FailingOnce:
    """A storage whose first C{add_usage} fails."""

    def __init__(self, inner):
        self.inner = inner
        self.failures = 1

    def add_usage(self, name, data):
        if self.failures:
            self.failures -= 1
            return fail(StorageError("the disk is full"))
        return self.inner.add_usage(name, data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class SlowRecords:
    """A storage whose records are read once C{reading} fires."""

    def __init__(self, inner, reading):
        self.inner = inner
        self.reading = reading

    def usage_records(self):
        return self.reading.addCallback(lambda _: self.inner.usage_records())

    def __getattr__(self, name):
        return getattr(self.inner, name)


class FailingRecords:
    """A storage whose records cannot be read."""

    def __init__(self, inner):
        self.inner = inner

    def usage_records(self):
        return fail(StorageError("the store is down"))

    def __getattr__(self, name):
        return getattr(self.inner, name)


class UsageLogTests(SynchronousTestCase):
    """L{UsageLog} over a memory storage and a clock."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)

    def log(self, writer, storage=None):
        log = UsageLog(storage or self.storage, self.clock, interval=10, writer=writer)
        log.startService()
        self.addCleanup(lambda: log.running and log.stopService())
        return log

    def test_written_each_interval(self):
        """Counts are written as one record of the writer at the next interval, then summed."""
        log = self.log("one")
        for _ in range(3):
            log.count(WHEEL)
        self.assertEqual(self.storage.usage, {})
        self.clock.advance(10)
        [name] = self.storage.usage
        self.assertEqual(parse_name(name), (TODAY, "one", 1))
        self.assertEqual(log.book.downloads([WHEEL], 1, TODAY), 3)
        self.clock.advance(10)
        self.assertEqual(len(self.storage.usage), 1, "nothing counted, nothing written")

    def test_start_waits_for_the_records(self):
        """
        The part's start ends once the records are read, so a server opens
        its listeners on whole counts (issue 61: a restart answered 0).
        """
        self.log("one").count(WHEEL)
        self.clock.advance(10)
        reading = Deferred()
        later = UsageLog(SlowRecords(self.storage, reading), self.clock, interval=10,
                         writer="two")
        started = later.startService()
        self.addCleanup(later.stopService)
        self.assertNoResult(started)
        self.assertFalse(later.loaded)
        reading.callback(None)
        self.successResultOf(started)
        self.assertEqual(later.book.downloads([WHEEL], 1, TODAY), 1)

    def test_failed_read_does_not_stop_the_start(self):
        """A read that fails is logged; the start goes on without the counts."""
        log = UsageLog(FailingRecords(self.storage), self.clock, interval=10, writer="one")
        self.successResultOf(log.startService())
        self.addCleanup(log.stopService)
        self.assertFalse(log.loaded)
        self.assertEqual(len(self.flushLoggedErrors(StorageError)), 1)

    def test_stop_writes(self):
        log = self.log("one")
        log.count(WHEEL)
        self.successResultOf(log.stopService())
        self.assertEqual(len(self.storage.usage), 1)

    def test_writers_add_up(self):
        """Two instances' counts (their own records) add up for each, at a start."""
        one, two = self.log("one"), self.log("two")
        one.count(WHEEL)
        two.count(WHEEL)
        two.count(WHEEL)
        self.clock.advance(10)
        third = self.log("three")
        self.assertEqual(third.book.downloads([WHEEL], 1, TODAY), 3)

    def test_failed_write_kept(self):
        """A write that fails keeps its counts for the next interval; none lost, none twice."""
        log = self.log("one", FailingOnce(self.storage))
        log.count(WHEEL)
        self.clock.advance(10)
        self.assertEqual(self.storage.usage, {})
        self.assertEqual(len(self.flushLoggedErrors()), 0)
        log.count(WHEEL)
        self.clock.advance(10)
        self.assertEqual(len(self.storage.usage), 1)
        self.assertEqual(log.book.downloads([WHEEL], 1, TODAY), 2)

    def test_closed_days_folded(self):
        """
        A closed day's records are folded into one that replaces them, and
        the old ones dropped; the counts stay the same.
        """
        day = TODAY - 3
        for i, writer in enumerate(("one", "two", "two")):
            self.storage.usage[record_name(day, writer, i)] = UsageRecord(
                day, {WHEEL: (1, NOW - 3 * DAY)}).to_bytes()
        # (yesterday's are not folded yet: a late write may still come)
        for i in range(2):
            self.storage.usage[record_name(TODAY - 1, "one", i + 10)] = UsageRecord(
                TODAY - 1, {WHEEL: (1, NOW - DAY)}).to_bytes()
        log = self.log("three")
        self.assertEqual(sorted(self.storage.usage), sorted(
            [record_name(day, "all", None), record_name(TODAY - 1, "one", 10),
             record_name(TODAY - 1, "one", 11)]))
        self.assertEqual(log.book.downloads([WHEEL], 7, TODAY), 5)
        again = self.log("four")
        self.assertEqual(again.book.downloads([WHEEL], 7, TODAY), 5)

    def test_fold_interrupted(self):
        """A fold written but its records not dropped yet (a crash) counts nothing twice."""
        day = TODAY - 3
        names = [record_name(day, "one", i) for i in range(2)]
        for name in names:
            self.storage.usage[name] = UsageRecord(day, {WHEEL: (1, NOW)}).to_bytes()
        self.storage.usage[record_name(day, "all", None)] = merge(
            [UsageRecord(day, {WHEEL: (2, NOW)})], day, tuple(names)).to_bytes()
        log = self.log("two")
        self.assertEqual(log.book.downloads([WHEEL], 7, TODAY), 2)
        self.assertEqual(list(self.storage.usage), [record_name(day, "all", None)])

    def test_old_days_dropped(self):
        self.storage.usage[record_name(TODAY - WINDOW_DAYS - 2, "one", 1)] = UsageRecord(
            TODAY - WINDOW_DAYS - 2, {WHEEL: (1, 1.0)}).to_bytes()
        self.storage.usage["not-a-record"] = b"kept as it is"
        self.log("two")
        self.assertEqual(list(self.storage.usage), ["not-a-record"])

    def test_bad_record_skipped(self):
        self.storage.usage[record_name(TODAY, "one", 1)] = b"{"
        self.storage.usage[record_name(TODAY, "one", 2)] = UsageRecord(
            TODAY, {WHEEL: (2, NOW)}).to_bytes()
        log = self.log("two")
        self.assertEqual(log.book.downloads([WHEEL], 1, TODAY), 2)


class SharedBoundTests(SynchronousTestCase):
    """L{ClientBound} over a machine's tally."""

    def test_refusal_remembered(self):
        """A pair the tally refused is not asked of it again that day (a loop costs nothing)."""
        from pypid.core.records.usage import ClientBound
        asked = []

        def tally(key, day, limit):
            asked.append((key, day))
            return len(asked) <= limit
        bound = ClientBound(limit=2, shared=tally)
        self.assertEqual([bound.admits("192.0.2.1", WHEEL, NOW, False) for _ in range(5)],
                         [True, True, False, False, False])
        self.assertEqual(len(asked), 3)
        self.assertFalse(bound.admits("192.0.2.1", WHEEL, NOW + 86400, False),
                         "a new day asks the tally again")
        self.assertEqual(len(asked), 4)


class WorkersTests(SynchronousTestCase):
    """Two workers' download counts over one storage (a machine's), told on its ring."""

    def setUp(self):
        from pypid.machine.ring import ChangeRing
        from pypid.machine.topics import Hub
        from pypid.state.usage_log import UsageShare
        self.clock = Clock()
        self.clock.advance(NOW)
        self.storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)
        ring = ChangeRing.create(slots=8, slot_size=256, tally=64)
        self.addCleanup(ring.close)
        self.logs = []
        for number in (1, 2):
            worker = ChangeRing.attach(ring.fileno(), number)
            self.addCleanup(worker.close)
            log = UsageLog(self.storage, self.clock, interval=10, writer=f"w{number}",
                           share=UsageShare(Hub(worker), b"0123456789abcdef"), fold=number == 1)
            log.startService()
            self.addCleanup(lambda log=log: log.running and log.stopService())
            self.logs.append(log)

    def test_counts_of_the_machine(self):
        """
        Each worker's counts, once written, are in the other's book at its
        next interval (the first worker's retention rules read them);
        none is counted twice.
        """
        one, two = self.logs
        one.count(WHEEL, "192.0.2.1")
        two.count(WHEEL, "192.0.2.2")
        two.count(WHEEL, "192.0.2.3")
        self.clock.advance(10)
        self.clock.advance(10)
        for log in self.logs:
            self.assertEqual(log.book.downloads([WHEEL], 1, TODAY), 3)
        self.clock.advance(10)
        for log in self.logs:
            self.assertEqual(log.book.downloads([WHEEL], 1, TODAY), 3)

    def test_bound_of_the_machine(self):
        """A client's downloads of a file count at most L{MAX_PER_ADDRESS}, on any worker."""
        one, two = self.logs
        for _ in range(MAX_PER_ADDRESS):
            one.count(WHEEL, "192.0.2.1")
            two.count(WHEEL, "192.0.2.1")
        self.clock.advance(10)
        self.clock.advance(10)
        for log in self.logs:
            self.assertEqual(log.book.downloads([WHEEL], 1, TODAY), MAX_PER_ADDRESS)

    def test_lapped(self):
        """A look a whole ring behind reads every record again."""
        one, two = self.logs
        one.count(WHEEL, "192.0.2.1")
        self.clock.advance(10)
        for number in range(20):
            one._share.hub.publish(Topic.FILE, b"0123456789abcdef", b"x-%d.whl" % number)
        self.clock.advance(10)
        self.assertEqual(two.book.downloads([WHEEL], 1, TODAY), 1)


class StorageTests(SynchronousTestCase):
    """Every storage keeps usage records (the S3 one: tests.unit.storage.s3.test_s3.S3StorageTests)."""

    def check(self, storage):
        self.assertTrue(IUsageStorage.providedBy(storage))
        self.successResultOf(storage.prepare())
        self.assertEqual(self.successResultOf(storage.usage_records()), {})
        self.successResultOf(storage.add_usage("1-a-1", b"one"))
        self.successResultOf(storage.add_usage("1-b-1", b"two"))
        self.assertEqual(self.successResultOf(storage.usage_records()),
                         {"1-a-1": b"one", "1-b-1": b"two"})
        self.assertEqual(self.successResultOf(storage.usage_record("1-a-1")), b"one")
        self.successResultOf(storage.drop_usage(["1-a-1", "1-c-1"]))
        self.assertEqual(self.successResultOf(storage.usage_records()), {"1-b-1": b"two"})
        self.assertIsNone(self.successResultOf(storage.usage_record("1-a-1")))

    def test_memory(self):
        self.check(MemoryStorage(os.path.abspath(self.mktemp()), Clock()))

    def test_local(self):
        """On disk: the counts outlive the process (a new storage over the folder reads them)."""
        root = os.path.abspath(self.mktemp())
        self.check(LocalStorage(root, run_now, Clock()))
        again = LocalStorage(root, run_now, Clock())
        self.assertEqual(self.successResultOf(again.usage_records()), {"1-b-1": b"two"})


class DownloadPathTests(_ServerMixin, SynchronousTestCase):
    """The download path counts files served (their metadata not), written each interval."""

    def usage_log(self):
        self.usage = UsageLog(self.storage, self.clock, interval=10, writer="web")
        self.usage.startService()
        return self.usage

    def test_counted(self):
        self.uploaded()
        path = f"/files/holy-grail/{WHEEL_NAME}"
        for _ in range(3):
            self.assertEqual(self.get(path)[0].code, 200)
        self.assertEqual(self.get(path + ".metadata")[0].code, 200)
        self.assertEqual(self.get("/files/holy-grail/nothing-1.0.tar.gz")[0].code, 404)
        self.clock.advance(10)
        today = day_of(self.clock.seconds())
        self.assertEqual(self.usage.book.downloads([WHEEL_NAME], 1, today), 3)
        self.assertEqual(self.usage.book.downloads([WHEEL_NAME + ".metadata"], 1, today), 0)
        self.assertEqual(len(self.storage.usage), 1)

    def counted(self):
        """The downloads of the wheel counted today, once written."""
        self.clock.advance(10)
        return self.usage.book.downloads([WHEEL_NAME], 1, day_of(self.clock.seconds()))

    def test_nothing_sent_nothing_counted(self):
        """
        Issue 41, defect 4: a HEAD, a 304 and a range that stops short of
        the end transfer no download, and count none.
        """
        self.uploaded()
        path = f"/files/holy-grail/{WHEEL_NAME}"
        etag = self.header(self.get(path)[0], "etag")
        self.assertEqual(self.request("HEAD", path)[0].code, 200)
        self.assertEqual(self.get(path, headers={"If-None-Match": etag})[0].code, 304)
        for _ in range(3):
            response = self.get(path, headers={"Range": "bytes=0-0"})[0]
            self.assertEqual(response.code, 206)
        self.assertEqual(self.counted(), 1)

    def test_ranged_client_counted_once(self):
        """A client fetching a file in ranges is counted once, by the range reaching its end."""
        self.uploaded()
        path = f"/files/holy-grail/{WHEEL_NAME}"
        size = len(WHEEL)
        for start in range(0, size, 100):
            end = min(start + 99, size - 1)
            response = self.get(path, headers={"Range": f"bytes={start}-{end}"})[0]
            self.assertEqual(response.code, 206)
        for _ in range(2):
            self.get(path, headers={"Range": "bytes=-10"})
        self.assertEqual(self.counted(), 1)

    def test_one_address_bounded(self):
        """One client address adds at most MAX_PER_ADDRESS downloads of a file a day."""
        self.uploaded()
        path = f"/files/holy-grail/{WHEEL_NAME}"
        for _ in range(MAX_PER_ADDRESS + 5):
            self.assertEqual(self.get(path)[0].code, 200)
        self.assertEqual(self.counted(), MAX_PER_ADDRESS)
        self.clock.advance(DAY)
        self.assertEqual(self.get(path)[0].code, 200)
        self.assertEqual(self.counted(), 1)

    def test_legacy_json(self):
        """C{/pypi/<p>/json} gives the project's downloads as the public API did, kept up to date."""
        self.uploaded()
        info = json.loads(self.get("/pypi/holy-grail/json")[1])["info"]
        self.assertEqual(info["downloads"], {"last_day": 0, "last_week": 0, "last_month": 0})
        for _ in range(2):
            self.get(f"/files/holy-grail/{WHEEL_NAME}")
        self.clock.advance(10)
        info = json.loads(self.get("/pypi/holy-grail/json")[1])["info"]
        self.assertEqual(info["downloads"], {"last_day": 2, "last_week": 2, "last_month": 2})
        self.clock.advance(2 * DAY)
        info = json.loads(self.get("/pypi/holy-grail/json")[1])["info"]
        self.assertEqual(info["downloads"], {"last_day": 0, "last_week": 2, "last_month": 2})

    def test_legacy_json_kept_once(self):
        """
        Issue 69: the legacy JSON kept while the counts move takes one place
        a project, not one each time they move (a soak filled the page
        budget with pages no request would ask for again).
        """
        self.uploaded()
        project = self.index.project("holy-grail")
        self.get("/pypi/holy-grail/json")
        one = self.index.rendered.bytes
        for downloads in range(1, 21):
            self.get(f"/files/holy-grail/{WHEEL_NAME}")
            self.clock.advance(10)
            info = json.loads(self.get("/pypi/holy-grail/json")[1])["info"]
            self.assertEqual(info["downloads"]["last_day"], min(downloads, MAX_PER_ADDRESS))
        self.assertEqual(len(project.rendered), 1)
        self.assertLessEqual(self.index.rendered.bytes, one + 64)

    def test_people_page(self):
        """The project's page for people gives the release's and each file's last 30 days."""
        self.uploaded()
        self.get(f"/files/holy-grail/{WHEEL_NAME}")
        self.clock.advance(10)
        body = self.get("/project/holy-grail/")[1]
        self.assertIn(b"Downloaded <strong>1</strong> time in the last 30 days", body)
        self.assertIn(WHEEL_NAME.encode() + b": 1", body)
        for _ in range(2):
            self.get(f"/files/holy-grail/{WHEEL_NAME}")
        self.clock.advance(10)
        self.assertIn(b"Downloaded <strong>3</strong> times", self.get("/project/holy-grail/")[1])
