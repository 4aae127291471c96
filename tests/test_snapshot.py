"""
Tests for L{pypid.storage.snapshot}: the snapshot's bytes, reading and atomic
writing, the writer that saves only what changed, and the periodic service.
"""

import json
import os

from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.index import Index
from pypid.core.model import FileRecord
from pypid.storage import snapshot
from pypid.storage.snapshot import (
    FORMAT,
    Snapshot,
    SnapshotError,
    SnapshotService,
    SnapshotWriter,
    decode,
    encode,
    read,
    write,
)
from tests.fakes import QueuedRun, read_file, run_now, write_file


def make_record(version="1.0", **kwargs):
    """Return a record of a wheel of C{holy-grail}."""
    filename = f"holy_grail-{version}-py3-none-any.whl"
    values = dict(filename=filename, project="holy-grail", name="Holy.Grail", version=version,
                  packagetype="bdist_wheel", path=filename, size=10, sha256="a" * 64,
                  upload_time=1767225600.5)
    values.update(kwargs)
    return FileRecord(**values)


class EncodingTests(SynchronousTestCase):
    """Tests for L{encode} and L{decode}."""

    def test_round_trip(self):
        """Records, tombstones and the time survive encoding and decoding."""
        records = [make_record(), make_record("2.0", yanked="", metadata_sha256="b" * 64)]
        data = encode(records, ["gone-1.0.tar.gz"], 1767225700.0)
        self.assertIsInstance(data, bytes)
        self.assertEqual(decode(data), Snapshot(
            saved_at=1767225700.0,
            records={r.filename: r for r in records},
            tombstones=("gone-1.0.tar.gz",),
        ))

    def test_serial_and_storage(self):
        """The serial and the storage the snapshot describes survive encoding."""
        decoded = decode(encode([], [], 1.0, serial=7, storage="local:/srv/packages"))
        self.assertEqual((decoded.serial, decoded.storage), (7, "local:/srv/packages"))

    def test_empty(self):
        """An empty index round-trips."""
        self.assertEqual(decode(encode([], [], 0)), Snapshot(0.0, {}, ()))

    def test_format(self):
        """The bytes are compact JSON carrying the format number."""
        obj = json.loads(encode([make_record()], [], 5))
        self.assertEqual(obj["format"], FORMAT)
        self.assertEqual(obj["files"], [make_record().to_json()])
        self.assertNotIn(b" ", encode([], [], 5))

    def test_decode_errors(self):
        """Anything but a snapshot of this format raises L{SnapshotError}."""
        good = json.loads(encode([make_record()], [], 5))
        cases = [
            b"",
            b"{not json",
            b"\xff\xfe",
            b"[]",
            b"null",
            json.dumps(dict(good, format=2)).encode(),
            json.dumps({k: v for k, v in good.items() if k != "format"}).encode(),
            json.dumps({k: v for k, v in good.items() if k != "files"}).encode(),
            json.dumps({k: v for k, v in good.items() if k != "tombstones"}).encode(),
            json.dumps(dict(good, saved_at="yesterday")).encode(),
            json.dumps(dict(good, files=[{"filename": "x"}])).encode(),
            json.dumps(dict(good, files=[dict(good["files"][0], packagetype="egg")])).encode(),
            json.dumps(dict(good, files=[42])).encode(),
            json.dumps(dict(good, files=None)).encode(),
        ]
        for data in cases:
            self.assertRaises(SnapshotError, decode, data)

    def test_unknown_format_named(self):
        """A snapshot from another format says which format it is."""
        e = self.assertRaises(SnapshotError, decode, b'{"format": 99}')
        self.assertIn("99", str(e))


class ReadWriteTests(SynchronousTestCase):
    """Tests for L{read} and L{write}."""

    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())
        self.path = os.path.join(self.folder, "index.json")

    def test_missing(self):
        """A snapshot that does not exist reads as L{None}."""
        self.assertIsNone(read(self.path))

    def test_write_read(self):
        """What is written is read back, and the folder is created."""
        data = encode([make_record()], ["x-1.0.tar.gz"], 3.0)
        write(self.path, data)
        self.assertEqual(read_file(self.path), data)
        self.assertEqual(read(self.path), decode(data))

    def test_write_atomic(self):
        """Writing replaces the file and leaves no temporary file behind."""
        write(self.path, b"first")
        write(self.path, b"second")
        self.assertEqual(read_file(self.path), b"second")
        self.assertEqual(os.listdir(self.folder), ["index.json"])

    def test_write_failure_cleans_up(self):
        """A write that fails midway leaves the old snapshot and no temporary file."""
        write(self.path, b"old")
        self.patch(snapshot.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(28, "full")))
        self.assertRaises(OSError, write, self.path, b"new")
        self.assertEqual(read_file(self.path), b"old")
        self.assertEqual(os.listdir(self.folder), ["index.json"])

    def test_corrupt(self):
        """A corrupt snapshot raises L{SnapshotError} and is moved to C{.bad}."""
        write_file(self.path, b"{half a snap")
        e = self.assertRaises(SnapshotError, read, self.path)
        self.assertIn(self.path + ".bad", str(e))
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(read_file(self.path + ".bad"), b"{half a snap")
        self.assertIsNone(read(self.path))

    def test_unreadable(self):
        """A snapshot path that cannot be read (a folder) raises L{SnapshotError}."""
        os.makedirs(self.path)
        self.assertRaises(SnapshotError, read, self.path)


class SnapshotWriterTests(SynchronousTestCase):
    """Tests for L{SnapshotWriter}."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.index = Index(lambda r: r.filename)
        self.path = os.path.join(os.path.abspath(self.mktemp()), "index.json")

    def writer(self, run=run_now):
        """Return a writer of this test's index."""
        return SnapshotWriter(self.index, self.path, run, self.clock)

    def test_dated_back_to_work_under_way(self):
        """A snapshot taken while a change is under way is dated when that change began."""
        writer = SnapshotWriter(self.index, self.path, run_now, self.clock, "local:/x",
                                lambda: 400.0)
        self.index.add(make_record())
        self.successResultOf(writer.save_if_changed())
        saved = read(self.path)
        self.assertEqual((saved.saved_at, saved.storage), (400.0, "local:/x"))

    def test_wanted_save(self):
        """L{SnapshotWriter.want_save} saves once more even when the index did not change."""
        writer = self.writer()
        self.successResultOf(writer.save_if_changed())
        os.unlink(self.path)
        self.successResultOf(writer.save_if_changed())
        self.assertFalse(os.path.exists(self.path))
        writer.want_save()
        self.successResultOf(writer.save_if_changed())
        self.assertTrue(os.path.exists(self.path))

    def test_saves_when_changed(self):
        """A changed index is saved with the time and serial of the call."""
        writer = self.writer()
        self.index.add(make_record())
        self.successResultOf(writer.save_if_changed())
        saved = read(self.path)
        self.assertEqual(saved.records, {make_record().filename: make_record()})
        self.assertEqual(saved.saved_at, 1000)
        self.assertEqual(writer.saved_serial, self.index.serial)

    def test_not_when_unchanged(self):
        """Nothing is written when the serial has not moved since the last save."""
        writer = self.writer()
        self.index.add(make_record())
        self.successResultOf(writer.save_if_changed())
        os.unlink(self.path)
        self.successResultOf(writer.save_if_changed())
        self.assertFalse(os.path.exists(self.path))

    def test_saves_again_after_change(self):
        """Each later change is saved by the next call."""
        writer = self.writer()
        self.index.add(make_record())
        self.successResultOf(writer.save_if_changed())
        self.index.add(make_record("2.0"))
        self.clock.advance(5)
        self.successResultOf(writer.save_if_changed())
        saved = read(self.path)
        self.assertEqual(len(saved.records), 2)
        self.assertEqual(saved.saved_at, 1005)
        self.index.remove(make_record().filename)
        self.successResultOf(writer.save_if_changed())
        self.assertEqual(read(self.path).tombstones, (make_record().filename,))

    def test_failure_logged_not_raised(self):
        """A failed save is logged, its Deferred succeeds, and a later call saves."""
        calls = []

        def flaky(f, *args):
            calls.append(f)
            if len(calls) == 1:
                return fail(OSError(28, "No space left on device"))
            return run_now(f, *args)

        writer = self.writer(flaky)
        self.index.add(make_record())
        with capturedLogs() as events:
            self.assertIsNone(self.successResultOf(writer.save_if_changed()))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertTrue(any("Cannot save the snapshot" in e.get("log_format", "")
                            for e in events))
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(writer.saved_serial, -1)
        self.successResultOf(writer.save_if_changed())
        self.assertEqual(len(read(self.path).records), 1)

    def test_real_write_failure(self):
        """A save that cannot write the file (its folder is a file) does not fail the caller."""
        write_file(os.path.dirname(self.path), b"in the way")
        writer = self.writer()
        self.index.add(make_record())
        self.successResultOf(writer.save_if_changed())
        self.assertTrue(self.flushLoggedErrors(OSError))
        self.assertEqual(writer.saved_serial, -1)

    def test_one_save_at_a_time(self):
        """A call while a save is under way gets that save rather than starting another."""
        run = QueuedRun()
        writer = self.writer(run)
        self.index.add(make_record())
        first = writer.save_if_changed()
        self.index.add(make_record("2.0"))
        second = writer.save_if_changed()
        self.assertIs(second, first)
        self.assertEqual(len(run.pending), 1)
        run.run_all()
        self.successResultOf(first)
        self.assertEqual(len(read(self.path).records), 1)
        third = writer.save_if_changed()
        self.assertEqual(len(run.pending), 1)
        run.run_all()
        self.successResultOf(third)
        self.assertEqual(len(read(self.path).records), 2)

    def test_records_taken_before_write(self):
        """The save writes the index as it was when called, not as it is when the write runs."""
        run = QueuedRun()
        writer = self.writer(run)
        self.index.add(make_record())
        d = writer.save_if_changed()
        self.index.add(make_record("2.0"))
        run.run_all()
        self.successResultOf(d)
        self.assertEqual(list(read(self.path).records), [make_record().filename])
        self.assertNotEqual(writer.saved_serial, self.index.serial)


class SnapshotServiceTests(SynchronousTestCase):
    """Tests for L{SnapshotService}."""

    def setUp(self):
        self.clock = Clock()
        self.index = Index(lambda r: r.filename)
        self.path = os.path.join(os.path.abspath(self.mktemp()), "index.json")
        self.writer = SnapshotWriter(self.index, self.path, run_now, self.clock)
        self.service = SnapshotService(self.writer, 30, self.clock)

    def test_periodic(self):
        """The service saves on every tick at which the index changed."""
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.index.add(make_record())
        self.clock.advance(30)
        self.assertEqual(len(read(self.path).records), 1)
        self.index.add(make_record("2.0"))
        self.clock.advance(29)
        self.assertEqual(len(read(self.path).records), 1)
        self.clock.advance(1)
        self.assertEqual(len(read(self.path).records), 2)

    def test_survives_failure(self):
        """A failed save does not stop the timer: the next tick saves."""
        broken = [True]

        def run(f, *args):
            if broken[0]:
                return fail(OSError(5, "I/O error"))
            return run_now(f, *args)

        self.writer = SnapshotWriter(self.index, self.path, run, self.clock)
        self.service = SnapshotService(self.writer, 30, self.clock)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.index.add(make_record())
        self.clock.advance(30)
        self.flushLoggedErrors(OSError)
        self.assertIsNone(read(self.path))
        broken[0] = False
        self.clock.advance(30)
        self.assertEqual(len(read(self.path).records), 1)

    def test_saves_on_stop(self):
        """Stopping the service saves what changed since the last tick."""
        self.service.startService()
        self.clock.advance(30)
        self.index.add(make_record())
        self.successResultOf(self.service.stopService())
        self.assertEqual(len(read(self.path).records), 1)
        self.assertFalse(self.service.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_during_save(self):
        """Stopping while a save is under way waits for it, then saves the later changes."""
        run = QueuedRun()
        self.writer = SnapshotWriter(self.index, self.path, run, self.clock)
        self.service = SnapshotService(self.writer, 30, self.clock)
        self.service.startService()
        run.run_all()
        self.index.add(make_record())
        self.clock.advance(30)
        self.assertEqual(len(run.pending), 1)
        self.index.add(make_record("2.0"))
        d = self.service.stopService()
        self.assertNoResult(d)
        run.run()
        self.assertNoResult(d)
        self.assertEqual(len(read(self.path).records), 1)
        run.run_all()
        self.successResultOf(d)
        self.assertEqual(len(read(self.path).records), 2)
        self.assertEqual(self.writer.saved_serial, self.index.serial)
