"""
The journal's contract (L{tests.harness.journal_contract}) in memory (as
day files, and as records), and in a folder written by two processes' worth
of writers; the bucket's runs against each cloud's server
(C{test_s3_store}, C{test_azure_store}, C{test_gcs_store}).
"""

import os
from functools import partial

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import TestCase

from pypid.storage.base.interface import StorageError
from pypid.storage.base.journal import BEGINNING, retry_policy
from pypid.storage.base.journal_records import ENTRIES, RecordJournal, batch_name
from pypid.storage.folder.journal_files import LocalJournal, MemoryJournal
from tests.harness.journal_contract import JournalContractMixin, change
from tests.harness.memory_records import MemoryRecords


class MemoryJournalTests(JournalContractMixin, TestCase):
    """Day files in memory; two writers share the files."""

    def make_journal(self):
        return MemoryJournal(Clock())

    def writer_of(self, journal):
        other = MemoryJournal(Clock())
        other.files = journal.files
        return other


class LocalJournalTests(JournalContractMixin, TestCase):
    """Day files in a folder, each writer with a thread pool of its own."""

    def pool(self):
        pool = ThreadPool(minthreads=1, maxthreads=2, name="test-journal")
        pool.start()
        self.addCleanup(pool.stop)
        return partial(deferToThreadPool, reactor, pool)

    def make_journal(self):
        return LocalJournal(os.path.abspath(self.mktemp()), self.pool(), Clock())

    def writer_of(self, journal):
        return LocalJournal(journal.folder, self.pool(), Clock())

    async def test_nothing_new_read_once(self):
        """
        A reader that finds nothing after its serial (a worker's look once a
        second) starts after the lines it passed the next time: the day's
        file is not read again from its start, which cost two workers five
        times one's CPU an install once the day held a few thousand entries.
        """
        from pypid.storage.folder import journal_files

        journal = self.make_journal()
        reader = self.writer_of(journal)
        head = await journal.append([change(n) for n in range(50)])
        self.assertEqual(await reader.since(head), [])
        decoded = []
        real = journal_files.decode
        self.patch(journal_files, "decode", lambda line: (decoded.append(line), real(line))[1])
        self.assertEqual(await reader.since(head), [])
        self.assertEqual(decoded, [])
        await journal.append([change(50)])
        self.assertEqual([e.filename for e in await reader.since(head)], ["f50.whl"])
        self.assertEqual(len(decoded), 1)
        # (and a reader further back still reads every entry after its serial)
        self.assertEqual(len(await reader.since(head - 10)), 11)

    async def test_readers_asking_together_share_a_read(self):
        """
        Readers that ask before a read began in the pool share it, each given
        what it asked for (a worker's look asks for each index and for the
        serials at once); one that asks once it began waits for a read of its
        own, which sees what was written since; a failure reaches each.
        """
        held = []

        def run(f, *args):
            held.append((f, args, Deferred()))
            return held[-1][2]

        def begin():
            # (the pool's thread reads now; the answer reaches the reactor later)
            f, args, d = held.pop(0)
            read = f(*args)
            return lambda: d.callback(read)

        journal = self.make_journal()
        head = await journal.append([change(n) for n in range(6)])
        reader = LocalJournal(journal.folder, run, Clock())
        first = reader.since(head - 2)
        second = reader.since(head - 5, 2)
        self.assertEqual(len(held), 1)
        end = begin()
        late = reader.since(head)
        self.assertEqual(len(held), 1)
        await journal.append([change(6)])
        end()
        self.assertEqual([e.serial for e in self.successResultOf(first)], [head - 1, head])
        self.assertEqual([e.serial for e in self.successResultOf(second)],
                         [head - 4, head - 3])
        self.assertNoResult(late)
        begin()()
        self.assertEqual([e.filename for e in self.successResultOf(late)], ["f6.whl"])
        broken = [reader.since(head), reader.since(head - 1)]
        f, args, d = held.pop()
        self.patch(reader, "_since_sync", lambda *_: 1 / 0)
        try:
            f(*args)
        except ZeroDivisionError:
            d.errback()
        for answer in broken:
            self.failureResultOf(answer, ZeroDivisionError)

    async def test_reader_far_behind_reads_alone(self):
        """
        A reader far behind the others (a subscription's cursor from long
        ago) does not share their read: a shared read would decode every
        entry between them for readers that want the tail. Readers near
        each other still share one.
        """
        held = []

        def run(f, *args):
            held.append((f, args, Deferred()))
            return held[-1][2]

        journal = self.make_journal()
        head = await journal.append([change(n) for n in range(12)])
        reader = LocalJournal(journal.folder, run, Clock())
        tail = reader.since(head - 1, 2)
        old = reader.since(BEGINNING, 2)
        near = reader.since(head - 2, 2)
        self.assertEqual(len(held), 2)
        read = []
        for f, args, d in held:
            read.append(f(*args))
            d.callback(read[-1])
        self.assertEqual([len(entries) for entries in read], [2, 2])
        self.assertEqual([e.serial for e in self.successResultOf(tail)], [head])
        self.assertEqual([e.serial for e in self.successResultOf(old)],
                         [BEGINNING + 1, BEGINNING + 2])
        self.assertEqual([e.serial for e in self.successResultOf(near)], [head - 1, head])

    async def test_history_before_the_journal(self):
        """
        Lines written before the journal (no serials) are its history: the
        first entry after them has the serial after the beginning, and the
        chain goes on from their last line.
        """
        from pypid.core.records.audit_chain import chain

        journal = self.make_journal()
        os.makedirs(journal.folder)
        lines, _ = chain([change(0, filename="old")], None)
        with open(os.path.join(journal.folder, "2026-01-01.jsonl"), "wb") as f:
            f.write(lines[0] + b"\n")
        self.assertEqual(await journal.head(), BEGINNING)
        self.assertEqual(await journal.append([change(5)]), BEGINNING + 1)
        self.assertEqual([e.filename for e in await self.writer_of(journal).since(0)],
                         ["f5.whl"])
        checked = await journal.verify()
        self.assertEqual((checked.entries, checked.broken), (2, ()))


class _FailingAfter(MemoryRecords):
    """Records whose C{put_new}s fail once C{allowed} of them were written."""

    allowed = 1 << 30

    def put_new(self, name, data):
        if self.allowed <= 0:
            return fail(StorageError("the bucket is down"))
        self.allowed -= 1
        return super().put_new(name, data)


class RecordJournalTests(JournalContractMixin, TestCase):
    """Batch records in memory, claimed as a bucket claims them."""

    def make_journal(self):
        return RecordJournal(_FailingAfter(), Clock(), retry=retry_policy(lambda: 0.0))

    def writer_of(self, journal):
        return RecordJournal(journal.records, Clock())

    async def test_batch_names(self):
        """A batch is C{entries/<its first serial>.jsonl}; the day's first is noted."""
        journal = self.make_journal()
        await journal.append([change(0), change(1)])
        await journal.append([change(2)])
        records = journal.records.records
        self.assertEqual(sorted(name for name in records if name.startswith(ENTRIES)), [
            f"{ENTRIES}/{batch_name(BEGINNING + 1)}", f"{ENTRIES}/{batch_name(BEGINNING + 3)}"])
        self.assertEqual(records["days/2026-01-01"], b"%d" % (BEGINNING + 1))

    async def test_partly_written(self):
        """A write of several batches that fails after the first writes the rest only, later."""
        from pypid.storage.base import journal_records

        self.patch(journal_records, "BATCH_ENTRIES", 2)
        journal = self.make_journal()
        journal.records.allowed = 2  # (the first batch and its day's note)
        for i in range(5):
            journal.queue(change(i))
        self.assertFalse(await journal.flush())
        self.assertEqual((journal.written, journal.pending), (2, 3))
        journal.records.allowed = 1 << 30
        self.assertTrue(await journal.flush())
        found = await journal.since(0)
        self.assertEqual([e.filename for e in found], [f"f{i}.whl" for i in range(5)])
        self.assertEqual((await journal.verify()).broken, ())

    async def test_lost_answer(self):
        """A batch an attempt wrote whose answer was lost is not written twice."""
        journal = self.make_journal()
        entries = [change(0)]
        await journal.append(entries)
        journal._next, journal._head = BEGINNING + 1, None
        self.assertEqual(await journal.append(entries), BEGINNING + 1)
        self.assertEqual(len(await journal.since(0)), 1)

    async def test_hint_of_the_end(self):
        """A new writer finds the end from the head record, listing only after it."""
        from pypid.storage.base import journal_records

        self.patch(journal_records, "HEAD_EVERY", 2)
        journal = self.make_journal()
        for i in range(4):
            await journal.append([change(i)])
        self.assertEqual(journal.records.records["head"], b"%d" % (BEGINNING + 4))
        later = self.writer_of(journal)
        self.assertEqual(await later.append([change(9)]), BEGINNING + 5)
        self.assertEqual((await later.verify()).broken, ())
