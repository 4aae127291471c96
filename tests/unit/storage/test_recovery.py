"""
Tests of start-up after a crash under faults (issue 25, defect 8): an
acknowledged change to a local storage folder is never reverted by a step
of the wall clock back, and a filename once used stays used when its
tombstone can no longer be read and the snapshot is lost.

In process, against L{pypid.storage.folder.local.LocalStorage} on real files in a
temporary folder (storage compares the snapshot's time with the files'
change times, which only the real clock gives them).
"""

import os
import time
import types

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.indexes.index import Index
from pypid.core.util.clock_steps import ClockReading, stepped_back
from pypid.state.loader import IndexLoader
from pypid.state.writer import SnapshotWriter
from pypid.storage.base import snapshot, snapshot_reading
from pypid.storage.base.interface import FilenameDeleted
from pypid.storage.folder.local import LocalStorage
from tests.harness.distributions import make_wheel
from tests.harness.fakes import run_now, write_file

#: the wall clock, as the daemon's reactor gives it
WALL = types.SimpleNamespace(seconds=time.time)


class BootClock:
    """A boot's clock that never steps: seconds since boot, set by the test."""

    def __init__(self, boot: str = "boot-1", since_boot: float = 1000.0) -> None:
        self.boot = boot
        self.since_boot = since_boot

    def __call__(self) -> tuple[str, float]:
        return self.boot, self.since_boot


class Folder:
    """A storage folder holding one wheel, and where its snapshot goes."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.root = os.path.abspath(case.mktemp())
        os.makedirs(self.root)
        self.filename, data = make_wheel("holy-grail", "1.0")
        write_file(os.path.join(self.root, self.filename), data)
        self.path = os.path.join(os.path.abspath(case.mktemp()), "index.json")
        self.case = case

    def start(self, boot_clock: BootClock) -> tuple[Index, SnapshotWriter, LocalStorage]:
        """Load the index as start-up does, then run the check of storage that follows."""
        index = Index(lambda r: r.filename)
        writer = SnapshotWriter(index, self.path, run_now, WALL, boot_clock=boot_clock)
        storage = LocalStorage(self.root, run_now, WALL)
        self.case.successResultOf(storage.prepare())
        loader = IndexLoader(index, storage, self.path, run_now, WALL, writer,
                             boot_clock=boot_clock)
        self.case.successResultOf(loader.load())
        loader.follow_up()
        if loader.checked is not None:
            self.case.successResultOf(loader.checked)
        self.case.addCleanup(storage.close)
        return index, writer, storage

    def crash(self, storage: LocalStorage) -> None:
        """The server is killed: no snapshot is saved, the folder's lock goes."""
        storage.close()


class ClockStepBackTests(SynchronousTestCase):
    """A yank stamped before the snapshot's time by a clock stepped back is not reverted."""

    def yanked_after_step(self, boot_clock: BootClock) -> tuple[Folder, float]:
        """
        A folder whose snapshot was saved (clock ahead) before a yank made
        after the clock stepped back, so that the yank's record is older
        than the snapshot's time; then a crash. Return the folder and the
        step.
        """
        folder = Folder(self)
        index, writer, storage = folder.start(boot_clock)
        self.successResultOf(writer.save_if_changed(final=True))
        record = index.get_file(folder.filename)
        # The yank, acknowledged: in storage, then in the index.
        yanked = record.replace(yanked="broken")
        self.successResultOf(storage.update(yanked))
        index.add(yanked)
        folder.crash(storage)
        # The snapshot the server had saved before the yank, when its
        # clock was ahead: dated a little after the yank's record. Ten
        # seconds of the boot passed since; the wall clock shows only a
        # tenth of one, as it went back by 9.9 s.
        written = os.stat(os.path.join(folder.root, ".pypid", "files",
                                       folder.filename + ".json")).st_ctime
        saved_at = written + 0.05
        before = snapshot_reading.read(folder.path)
        reading = ClockReading(saved_at, boot_clock.boot, boot_clock.since_boot)
        snapshot.write(folder.path, snapshot.lines(
            before.records.values(), before.tombstones, saved_at, before.serial,
            before.storage, clock=reading))
        while time.time() < saved_at + 0.1:
            time.sleep(0.02)
        boot_clock.since_boot += 10.0
        return folder, 9.9

    def test_yank_kept(self):
        """
        After the clock stepped back, a yank, a crash and a restart, the
        index holds the file yanked, as its record on disk says; the start
        says the clock went back.
        """
        boot_clock = BootClock()
        folder, step = self.yanked_after_step(boot_clock)
        with capturedLogs() as events:
            index, _, _ = folder.start(boot_clock)
        self.assertEqual(index.get_file(folder.filename).yanked, "broken")
        said = [e for e in events if "went back" in str(e.get("log_format"))]
        self.assertEqual(len(said), 1)
        self.assertLess(abs(said[0]["step"] - step), 0.5)

    def test_saved_again_yanked(self):
        """The snapshot the start saves holds the yank, so that the next start needs no reading."""
        boot_clock = BootClock()
        folder, _ = self.yanked_after_step(boot_clock)
        index, writer, storage = folder.start(boot_clock)
        self.successResultOf(writer.save_if_changed())
        self.assertEqual(snapshot_reading.read(folder.path).records[folder.filename].yanked, "broken")
        folder.crash(storage)
        index, _, _ = folder.start(boot_clock)
        self.assertEqual(index.get_file(folder.filename).yanked, "broken")


class SteppedBackTests(SynchronousTestCase):
    """How far the wall clock went back between two readings (L{stepped_back})."""

    def test_no_step(self):
        """A wall clock that moved as the boot's did went back by nothing."""
        self.assertEqual(stepped_back(ClockReading(100.0, "b", 5.0),
                                      ClockReading(160.0, "b", 65.0)), 0.0)

    def test_back(self):
        """A wall clock that moved less than the boot's went back by the difference."""
        self.assertAlmostEqual(stepped_back(ClockReading(100.0, "b", 5.0),
                                            ClockReading(100.0, "b", 65.0)), 60.0)

    def test_forward(self):
        """A wall clock that moved more than the boot's (stepped forward) went back by nothing."""
        self.assertEqual(stepped_back(ClockReading(100.0, "b", 5.0),
                                      ClockReading(400.0, "b", 65.0)), 0.0)

    def test_jitter(self):
        """A difference below L{pypid.core.util.clock_steps.TOLERANCE} is not a step."""
        self.assertEqual(stepped_back(ClockReading(100.0, "b", 5.0),
                                      ClockReading(159.99, "b", 65.0)), 0.0)

    def test_other_boot(self):
        """Readings of two boots, or a missing one, tell nothing."""
        self.assertIsNone(stepped_back(ClockReading(100.0, "b", 5.0),
                                       ClockReading(100.0, "c", 65.0)))
        self.assertIsNone(stepped_back(None, ClockReading(100.0, "c", 65.0)))
        self.assertIsNone(stepped_back(ClockReading(100.0, "b", 5.0), None))


class UnreadableTombstoneTests(SynchronousTestCase):
    """A tombstone that cannot be read still keeps its filename used."""

    def deleted_then_damaged(self, damage: bytes) -> Folder:
        """
        A folder whose one file was deleted, its tombstone then overwritten
        with C{damage}, and its snapshot lost.
        """
        folder = Folder(self)
        index, writer, storage = folder.start(BootClock())
        record = index.get_file(folder.filename)
        self.successResultOf(storage.delete(record))
        index.remove(folder.filename)
        self.successResultOf(writer.save_if_changed(final=True))
        folder.crash(storage)
        tombstone = os.path.join(folder.root, ".pypid", "files", folder.filename + ".json")
        with open(tombstone, "wb") as f:
            f.write(damage)
        os.unlink(folder.path)
        return folder

    def check_still_used(self, damage: bytes) -> None:
        """
        After the damage and a start without a snapshot, the name is deleted
        in the index (the path logged), and storage refuses other bytes
        under it.
        """
        folder = self.deleted_then_damaged(damage)
        with capturedLogs() as events:
            index, _, storage = folder.start(BootClock())
        self.assertTrue(index.is_deleted(folder.filename))
        self.assertIsNone(index.get_file(folder.filename))
        logged = " ".join(
            str(e.get("path", "")) for e in events
            if "tombstone" in str(e.get("log_format")))
        self.assertIn(folder.filename + ".json", logged)
        # And storage refuses the name on its own.
        spooled = os.path.join(storage.temp_dir, "upload")
        write_file(spooled, b"other bytes")
        self.assertIsInstance(
            self.failureResultOf(storage.publish(spooled, self.other_record(folder), None))
            .value, FilenameDeleted)

    def other_record(self, folder: Folder):
        """A record of other bytes under the deleted filename."""
        from pypid.core.dists.model import FileRecord

        return FileRecord(filename=folder.filename, project="holy-grail", name="holy-grail",
                          version="1.0", packagetype="bdist_wheel", path=folder.filename,
                          size=11, sha256="b" * 64, upload_time=time.time())

    def test_truncated(self):
        """A tombstone cut short still keeps its filename used."""
        self.check_still_used(b'{"deleted": tr')

    def test_empty(self):
        """An empty tombstone still keeps its filename used."""
        self.check_still_used(b"")

    def test_garbage(self):
        """A tombstone of garbage (or a JSON value that is not an object) keeps its filename used."""
        self.check_still_used(b"\x00\xff garbage")
        self.check_still_used(b"[1, 2]")

    def test_record_that_cannot_be_opened_now(self):
        """
        A new name whose record cannot be opened for a moment (too many
        open files, an I/O error: nothing read, so nothing known damaged)
        fails the upload as a storage error to retry (503), never as a
        deleted name: that 400 starts with "File already exists", which
        twine --skip-existing takes for an upload done (before the fix:
        L{FilenameDeleted}).
        """
        import builtins
        import errno

        from pypid.storage.base.interface import StorageError
        from pypid.storage.folder import sidecars

        folder = Folder(self)
        _, _, storage = folder.start(BootClock())
        record = self.other_record(folder).replace(filename="holy_grail-2.0-py3-none-any.whl",
                                                   version="2.0",
                                                   path="holy_grail-2.0-py3-none-any.whl")

        def open_(path, *args, **kwargs):
            if str(path).endswith(record.filename + ".json"):
                raise OSError(errno.EMFILE, "Too many open files", path)
            return builtins.open(path, *args, **kwargs)
        sidecars.open = builtins.open  # type: ignore[attr-defined]  (so that it can be patched)
        self.addCleanup(delattr, sidecars, "open")
        self.patch(sidecars, "open", open_)
        spooled = os.path.join(storage.temp_dir, "upload")
        write_file(spooled, b"other bytes")
        failure = self.failureResultOf(storage.publish(spooled, record, None))
        self.assertNotIsInstance(failure.value, FilenameDeleted)
        self.assertIsInstance(failure.value, StorageError)
        self.flushLoggedErrors()

    def test_damaged_record_of_a_file_served(self):
        """A damaged record beside a file still there is not a tombstone: the file is served."""
        folder = Folder(self)
        index, writer, storage = folder.start(BootClock())
        folder.crash(storage)
        with open(os.path.join(folder.root, ".pypid", "files", folder.filename + ".json"),
                  "wb") as f:
            f.write(b'{"sha')
        if os.path.exists(folder.path):
            os.unlink(folder.path)
        index, _, _ = folder.start(BootClock())
        self.assertFalse(index.is_deleted(folder.filename))
        self.assertIsNotNone(index.get_file(folder.filename))


class BootClockTests(SynchronousTestCase):
    """The daemon's writer keeps the boot's clock with each snapshot, as built by default."""

    def test_kept_by_default(self):
        """On Linux, a snapshot saved by a writer built without a boot clock holds this boot's."""
        import sys

        from pypid.state.writer import read_boot_clock

        if sys.platform != "linux":
            raise self.skipTest("the boot's clock is read on Linux only")
        path = os.path.join(os.path.abspath(self.mktemp()), "index.json")
        writer = SnapshotWriter(Index(lambda r: r.filename), path, run_now, WALL)
        self.successResultOf(writer.save_if_changed(final=True))
        kept = snapshot_reading.read(path).clock
        now = read_boot_clock()
        self.assertIsNotNone(kept)
        self.assertEqual(kept.boot, now[0])
        self.assertLessEqual(kept.since_boot, now[1])
        self.assertEqual(stepped_back(kept, ClockReading(time.time(), *read_boot_clock())), 0.0)
