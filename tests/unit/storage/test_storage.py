"""
Tests for the storage backends: one contract that every L{IStorage} passes
(L{StorageContractMixin}), run here against L{LocalStorage} and
L{MemoryStorage}, plus what only the local backend promises (hard links,
sidecar files) and what only the memory one does (no disk but the spool);
and the contract of an L{IBackfillStorage} (L{BackfillStorageContractMixin}),
run against L{LocalStorage}.
"""

import ast
import errno
import hashlib
import json
import os
import time

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

import pypid
from pypid.core.dists.distribution import inspect
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.promotion import Promotion
from pypid.storage.base.capabilities import IBackfillStorage
from pypid.storage.base.interface import (
    FileExists,
    LocalFile,
    MemoryFile,
    RemoteBytes,
    ScanResult,
    StorageError,
)
from pypid.storage.folder import folder_changes, folder_imports, folder_scan
from pypid.storage.folder.local import LocalStorage
from pypid.storage.folder.sidecars import Sidecars
from tests.harness.distributions import (
    make_sdist,
    make_wheel,
)
from tests.harness.fakes import QueuedRun, read_file, run_now, write_file
from tests.harness.memory_storage import MemoryStorage
from tests.harness.storage import (
    UPLOAD_TIME,
    AdoptionContractMixin,
    StorageContractMixin,
    folder_state,
)


class BackfillStorageContractMixin:
    """
    What a storage that provides L{IBackfillStorage} must do: a C{later}
    scan answers from the files' names and reads none, leaving the files
    without a record in C{pending}; L{IBackfillStorage.describe_pending}
    then describes them, and (with C{persist}) keeps their records beside
    them, so that the next scan finds them recorded.

    A test case mixing this in provides L{make_storage} and L{put_foreign},
    as for L{StorageContractMixin}.
    """

    def make_storage(self):
        """Return a new, empty storage, not yet prepared."""
        raise NotImplementedError()

    def put_foreign(self, storage, key, data):
        """Store C{data} under C{key} behind the storage's back."""
        raise NotImplementedError()

    async def copied_in(self):
        """
        A prepared storage holding a wheel, an sdist and a file that is no
        distribution, all put there behind its back; and the two
        distributions' C{(filename, bytes)}.
        """
        storage = self.make_storage()
        await storage.prepare()
        wheel, sdist = make_wheel("alpha", "1.0"), make_sdist("beta", "2.0")
        for key, data in (wheel, sdist, ("notes.txt", b"not a distribution")):
            self.put_foreign(storage, key, data)
        return storage, wheel, sdist

    async def later(self, storage):
        """The pending files of a C{later} scan, by filename (no record is given)."""
        result = await storage.scan({}, 0.0, (), later=True)
        self.assertEqual(result.records, {})
        return {item.filename: item for item in result.pending}

    async def test_provides(self):
        """The backend says it provides L{IBackfillStorage}."""
        self.assertTrue(IBackfillStorage.providedBy(self.make_storage()))

    async def test_later_leaves_pending(self):
        """A later scan gives no record, and leaves every file without one pending."""
        storage, wheel, sdist = await self.copied_in()
        pending = await self.later(storage)
        self.assertEqual(sorted(pending), sorted([wheel[0], sdist[0], "notes.txt"]))
        self.assertFalse(any(item.recorded for item in pending.values()))

    async def test_describe_pending(self):
        """Pending distributions are described into records; any other file gets a reason."""
        storage, wheel, sdist = await self.copied_in()
        pending = await self.later(storage)
        described = {item.filename: outcome
                     for item, outcome in await storage.describe_pending(list(pending.values()))}
        self.assertEqual((described[wheel[0]].project, described[wheel[0]].version),
                         ("alpha", "1.0"))
        self.assertEqual(described[wheel[0]].sha256, hashlib.sha256(wheel[1]).hexdigest())
        self.assertEqual((described[sdist[0]].project, described[sdist[0]].version),
                         ("beta", "2.0"))
        self.assertIsInstance(described["notes.txt"], str)

    async def test_persist_keeps_records(self):
        """Described with persist, the records are kept: the next later scan finds them, the same."""
        storage, wheel, sdist = await self.copied_in()
        first = {item.filename: outcome for item, outcome in
                 await storage.describe_pending(list((await self.later(storage)).values()))}
        again = await self.later(storage)
        self.assertEqual({name: item.recorded for name, item in again.items()},
                         {wheel[0]: True, sdist[0]: True, "notes.txt": False})
        read_back = {item.filename: outcome for item, outcome in await storage.describe_pending(
            [item for item in again.values() if item.recorded])}
        self.assertEqual(read_back, {wheel[0]: first[wheel[0]], sdist[0]: first[sdist[0]]})

    async def test_without_persist_nothing_kept(self):
        """Described without persist, no record is kept: the next later scan finds none."""
        storage, wheel, sdist = await self.copied_in()
        await storage.describe_pending(list((await self.later(storage)).values()),
                                       persist=False)
        again = await self.later(storage)
        self.assertFalse(any(item.recorded for item in again.values()))


class LocalBackfillStorageTests(BackfillStorageContractMixin, TestCase):
    """The backfill contract, for L{LocalStorage}; and what only it promises."""

    def make_storage(self):
        """A L{LocalStorage} in a new folder, running its work synchronously."""
        return LocalStorage(os.path.abspath(self.mktemp()), run_now, Clock())

    def put_foreign(self, storage, key, data):
        """Write a file into the folder, as an existing pypiserver tree holds it."""
        write_file(os.path.join(storage.root, *key.split("/")), data)

    async def test_later_reads_no_file(self):
        """A later scan only lists: it gives no size, and inspects no file."""
        storage, wheel, sdist = await self.copied_in()
        self.patch(folder_imports, "inspect", lambda *a, **k: self.fail("a file inspected"))
        pending = await self.later(storage)
        self.assertEqual({(item.key, item.size) for item in pending.values()},
                         {(wheel[0], None), (sdist[0], None), ("notes.txt", None)})

    async def test_recorded_not_inspected(self):
        """A pending file with a record kept beside it is read from the record, not inspected."""
        storage, wheel, sdist = await self.copied_in()
        await storage.describe_pending(list((await self.later(storage)).values()))
        again = await self.later(storage)
        self.patch(folder_imports, "inspect",
                   lambda *a, **k: self.fail("a recorded file inspected"))
        read_back = await storage.describe_pending(
            [item for item in again.values() if item.recorded])
        self.assertEqual(sorted(item.filename for item, _ in read_back),
                         sorted([wheel[0], sdist[0]]))


class LocalStorageTests(AdoptionContractMixin, StorageContractMixin, TestCase):
    """The storage contract and the local extras, for L{LocalStorage}."""

    # Synchronous helpers for the local extras: the local backend's Deferreds
    # have fired when its calls return (its "thread pool" runs at once).

    def prepared(self):
        """Return a new storage, prepared."""
        storage = self.make_storage()
        self.assertIsNone(self.successResultOf(storage.prepare()))
        return storage

    def publish(self, storage, filename, data):
        """Publish C{data} as C{filename} and return the stored record and the metadata."""
        temp, record, metadata = self.describe(storage, filename, data)
        stored = self.successResultOf(storage.publish(temp, record, metadata))
        return stored, metadata

    def scan(self, storage, known=None, since=0.0):
        """Return the storage's L{ScanResult}."""
        result = self.successResultOf(storage.scan(known or {}, since))
        self.assertIsInstance(result, ScanResult)
        return result

    def read_located(self, location):
        """Return the bytes of a L{LocalFile} or L{MemoryFile}."""
        if isinstance(location, MemoryFile):
            return location.data
        self.assertIsInstance(location, LocalFile)
        return read_file(location.path)

    def setUp(self):
        # (the contract's scans pass 10 ms, not the production margin of a
        # second: test_change_within_margin is the margin's own test)
        self.patch(folder_scan, "CHANGE_TIME_MARGIN", 0.005)
        self.clock = Clock()
        self.clock.advance(1767225700)

    def make_storage(self):
        """A L{LocalStorage} in a new folder, running its work synchronously."""
        return LocalStorage(os.path.abspath(self.mktemp()), run_now, self.clock)

    async def reopen(self, storage):
        """A L{LocalStorage} made anew on the same folder, as after a restart."""
        return LocalStorage(storage.root, run_now, self.clock)

    def test_private_whatever_the_umask(self):
        """
        Under a umask of 022 the files kept beside a published file (its
        record, its metadata) are 0600, as the docs say the server's are.
        """
        old = os.umask(0o022)
        self.addCleanup(os.umask, old)
        storage = self.prepared()
        stored, _ = self.publish(storage, "private-1.0-py3-none-any.whl",
                                 make_wheel("private", "1.0")[1])
        kept = os.path.join(storage.root, ".pypid", "files")
        modes = {name: oct(os.stat(os.path.join(kept, name)).st_mode & 0o777)
                 for name in os.listdir(kept)}
        self.assertLessEqual({stored.filename + suffix for suffix in (".json", ".metadata")},
                             set(modes))
        self.assertEqual(set(modes.values()), {oct(0o600)})

    async def test_adopt_links(self):
        """
        A promotion copies nothing: the adopted file is a hard link of the
        source's (two names, one inode), and so are its metadata and details.
        """
        source, target, record, _, _ = await self.source_and_target()
        adopted = await target.adopt(source, record, self.PROMOTION)
        there, here = source.locate(record).path, target.locate(adopted).path
        self.assertEqual(os.stat(here).st_nlink, 2)
        self.assertTrue(os.path.samefile(there, here))
        self.assertTrue(os.path.samefile(source.locate_metadata(record).path,
                                         target.locate_metadata(adopted).path))
        promotion = os.path.join(target.root, ".pypid", "files",
                                 record.filename + ".promotion")
        self.assertEqual(Promotion.from_bytes(read_file(promotion)), self.PROMOTION)

    async def test_adopt_across_file_systems(self):
        """
        Across file systems (C{EXDEV} from the link) a promotion is refused
        with a L{StorageError} that says why, and nothing is copied or left.
        """
        source, target, record, _, _ = await self.source_and_target()
        link = os.link

        def cross(there, here):
            if there == source.locate(record).path:
                raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
            return link(there, here)
        self.patch(folder_changes.os, "link", cross)
        with self.assertRaises(StorageError) as raised:
            await target.adopt(source, record, self.PROMOTION)
        self.assertIn("different file systems", str(raised.exception))
        self.assertEqual(sorted(os.listdir(target.root)), [".pypid"])
        self.assertEqual(os.listdir(os.path.join(target.root, ".pypid", "files")), [])

    async def test_adopt_after_crash(self):
        """
        A file a crashed promotion linked but gave no record yet is
        finished by the next promotion of it: record, sidecars, promotion.
        """
        source, target, record, metadata, _ = await self.source_and_target()
        os.link(source.locate(record).path, os.path.join(target.root, record.filename))
        adopted = await target.adopt(source, record, self.PROMOTION)
        self.assertEqual(adopted, record.replace(path=record.filename))
        self.assertEqual(await target.read_metadata(adopted), metadata)
        scanned = await self.scanned(await self.reopen(target))
        self.assertEqual((scanned.records, scanned.promotions),
                         ({adopted.filename: adopted}, {adopted.filename: self.PROMOTION}))

    async def test_adopt_fails_part_way(self):
        """
        A promotion whose record cannot be written takes its link and
        sidecars back: the target is as it was, and the name is free.
        """
        source, target, record, _, _ = await self.source_and_target()
        files = os.path.join(target.root, ".pypid", "files")

        def broken(sidecars, filename, record, durable=True):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.patch(Sidecars, "write_record", broken)
        with self.assertRaises(StorageError):
            await target.adopt(source, record, self.PROMOTION)
        self.assertEqual(sorted(os.listdir(target.root)), [".pypid"])
        self.assertEqual(os.listdir(files), [])
        self.assertEqual(os.stat(source.locate(record).path).st_nlink, 1)

    def free_disk(self, free, min_free=1000, fail=False):
        """A prepared storage whose file system (a fake C{statvfs}) has C{free} bytes free."""
        def statvfs(path):
            if fail:
                raise OSError(5, "Input/output error")
            return os.statvfs_result((4096, 1000, 10**6, free // 1000, free // 1000,
                                      0, 0, 0, 0, 255))
        storage = LocalStorage(os.path.abspath(self.mktemp()), run_now, self.clock, min_free,
                               statvfs)
        self.successResultOf(storage.prepare())
        return storage

    def test_full_below_min_free(self):
        """
        A folder that can be written to, with less free space than
        C{min_free}, is C{"full"} (before: C{True}, C{/health} said ok);
        at or above it, C{"ok"}; a file system that cannot be asked is C{"down"}.
        """
        self.assertEqual(self.successResultOf(self.free_disk(999).check()), "full")
        self.assertEqual(self.successResultOf(self.free_disk(1000).check()), "ok")
        self.assertEqual(self.successResultOf(self.free_disk(0, min_free=0).check()), "ok")
        self.assertEqual(self.successResultOf(self.free_disk(10**6, fail=True).check()),
                         "down")

    def test_free_bytes_metric(self):
        """C{/metrics} has the folder's free bytes (C{f_bavail} blocks of C{f_frsize})."""
        families = list(self.free_disk(5000).metric_families())
        self.assertEqual([(f.name, f.samples) for f in families],
                         [("pypid_storage_free_bytes", (((), 5000),))])

    def put_foreign(self, storage, key, data):
        """Write a file into the folder, as an existing pypiserver tree holds it."""
        write_file(os.path.join(storage.root, *key.split("/")), data)

    def sidecar(self, storage, filename, suffix=".json"):
        """The path of a file kept beside C{filename} in C{.pypid/files/}."""
        return os.path.join(storage.root, ".pypid", "files", filename + suffix)

    def holding(self, storage):
        """The folder's tree, with every file's bytes."""
        return folder_state(storage.root)

    def copied_in(self, *files):
        """A folder holding C{files} as copied in by hand (no .pypid/), and its storage."""
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        for key, data in files:
            write_file(os.path.join(root, *key.split("/")), data)
        return LocalStorage(root, run_now, self.clock)

    def check_read_only_scan(self, storage, filenames):
        """
        Scan C{storage} without persisting: assert that the folder is left as
        it was, and that each of C{filenames} is listed with its metadata
        served; return the result.
        """
        before = folder_state(storage.root)
        result = self.successResultOf(storage.scan({}, 0.0, (), persist=False))
        self.assertEqual(sorted(result.records), sorted(filenames))
        for filename in filenames:
            record = result.records[filename]
            metadata = self.successResultOf(storage.read_metadata(record))
            self.assertEqual(hashlib.sha256(metadata).hexdigest(), record.metadata_sha256)
            self.assertEqual(self.read_located(storage.locate_metadata(record)), metadata)
            self.assertIsNone(self.successResultOf(storage.read_details(record)))
        self.assertEqual(folder_state(storage.root), before)
        return result

    def test_scan_without_persist_unprepared(self):
        """
        A scan that does not persist reads a folder never prepared (no
        .pypid/: no records) and makes nothing in it; its records are those
        the daemon's scan then keeps.
        """
        wheel = make_wheel("holy-grail", "1.0")
        sdist = make_sdist("holy-grail", "1.0")
        storage = self.copied_in(wheel, ("nested/" + sdist[0], sdist[1]))
        result = self.check_read_only_scan(storage, [wheel[0], sdist[0]])
        self.assertFalse(os.path.exists(os.path.join(storage.root, ".pypid")))
        again = self.successResultOf(storage.scan({}, 0.0, (), persist=False))
        self.assertEqual(again.records, result.records)
        daemon = LocalStorage(storage.root, run_now, self.clock)
        self.assertEqual(self.scan(daemon).records, result.records)
        self.assertTrue(os.path.exists(self.sidecar(storage, wheel[0])))

    def test_scan_without_persist_where_pypid_cannot_be_made(self):
        """
        A scan that does not persist works on a folder where .pypid/ cannot
        be made (a read-only mount; here a file in its place, which stops
        root too), where a persisting scan fails.
        """
        wheel = make_wheel("holy-grail", "1.0")
        storage = self.copied_in(wheel, (".pypid", b"not a folder"))
        self.failureResultOf(LocalStorage(storage.root, run_now, self.clock).scan(),
                             NotADirectoryError)
        result = self.check_read_only_scan(storage, [wheel[0]])
        # A record the daemon's snapshot has, whose sidecars cannot be there.
        known = result.records[wheel[0]].replace(upload_time=UPLOAD_TIME)
        reader = LocalStorage(storage.root, run_now, self.clock)
        before = folder_state(storage.root)
        rescanned = self.successResultOf(reader.scan({wheel[0]: known}, time.time(), (),
                                                     persist=False))
        self.assertEqual(rescanned.records, {wheel[0]: known})
        self.failureResultOf(reader.read_metadata(known), FileNotFoundError)
        self.assertIsNone(self.successResultOf(reader.read_details(known)))
        self.assertEqual(folder_state(storage.root), before)

    def test_layout(self):
        """Files are kept flat under the root, with their record and metadata in C{.pypid}."""
        storage = self.prepared()
        filename, data = make_wheel("holy-grail", "1.0")
        stored, metadata = self.publish(storage, filename, data)
        self.assertEqual(storage.temp_dir, os.path.join(storage.root, ".pypid", "tmp"))
        self.assertEqual(read_file(os.path.join(storage.root, filename)), data)
        self.assertEqual(storage.locate(stored), LocalFile(os.path.join(storage.root, filename)))
        self.assertEqual(storage.locate_metadata(stored),
                         LocalFile(self.sidecar(storage, filename, ".metadata")))
        self.assertEqual(read_file(self.sidecar(storage, filename, ".metadata")), metadata)
        with open(self.sidecar(storage, filename)) as f:
            self.assertEqual(json.load(f), stored.to_json())

    def test_nested_locate(self):
        """A record's path with folders is located under the root."""
        storage = self.prepared()
        stored, _ = self.publish(storage, *make_wheel("holy-grail", "1.0"))
        moved = stored.replace(path="a/b/" + stored.filename)
        self.assertEqual(storage.locate(moved).path,
                         os.path.join(storage.root, "a", "b", stored.filename))

    def test_hard_link(self):
        """The published file is the spooled file itself, linked into place, and the spool name is gone."""
        storage = self.prepared()
        filename, data = make_wheel("holy-grail", "1.0")
        temp, record, metadata = self.describe(storage, filename, data)
        inode = os.stat(temp).st_ino
        self.successResultOf(storage.publish(temp, record, metadata))
        final = os.stat(os.path.join(storage.root, filename))
        self.assertEqual(final.st_ino, inode)
        self.assertEqual(final.st_nlink, 1)
        self.assertFalse(os.path.exists(temp))
        self.assertEqual(os.listdir(storage.temp_dir), [])

    def test_no_temp_files_left(self):
        """Publishing, yanking and deleting leave nothing in the spool folder."""
        storage = self.prepared()
        stored, _ = self.publish(storage, *make_wheel("holy-grail", "1.0"))
        self.successResultOf(storage.update(stored.replace(yanked="x")))
        self.successResultOf(storage.delete(stored))
        self.assertEqual(os.listdir(storage.temp_dir), [])

    def test_prepare_sweeps_only_files(self):
        """prepare() removes files from the spool folder but not folders a person put there."""
        storage = self.prepared()
        os.mkdir(os.path.join(storage.temp_dir, "keep"))
        self.spool(storage, b"x", "left-over")
        self.successResultOf(storage.prepare())
        self.assertEqual(os.listdir(storage.temp_dir), ["keep"])

    def test_tombstone_file(self):
        """A delete removes the file and its metadata and writes a tombstone with the time."""
        storage = self.prepared()
        filename, data = make_wheel("holy-grail", "1.0")
        stored, _ = self.publish(storage, filename, data)
        self.successResultOf(storage.delete(stored))
        self.assertFalse(os.path.exists(os.path.join(storage.root, filename)))
        self.assertFalse(os.path.exists(self.sidecar(storage, filename, ".metadata")))
        with open(self.sidecar(storage, filename)) as f:
            tombstone = json.load(f)
        self.assertIs(tombstone["deleted"], True)
        self.assertEqual(tombstone["deleted_at"], self.clock.seconds())
        self.assertEqual(tombstone["sha256"], stored.sha256)

    def test_scan_writes_sidecars(self):
        """A scan keeps a record and metadata beside each foreign file it read."""
        storage = self.prepared()
        filename, data = make_wheel("holy-grail", "1.0")
        self.put_foreign(storage, "nested/" + filename, data)
        record = self.scan(storage).records[filename]
        with open(self.sidecar(storage, filename)) as f:
            self.assertEqual(FileRecord.from_json(json.load(f)), record)
        self.assertEqual(hashlib.sha256(read_file(self.sidecar(storage, filename, ".metadata")))
                         .hexdigest(), record.metadata_sha256)
        mtime = os.stat(os.path.join(storage.root, "nested", filename)).st_mtime
        self.assertEqual(record.upload_time, mtime)

    def test_scan_without_prepare(self):
        """A scan of a folder never prepared still reads it and keeps its sidecars."""
        storage = self.make_storage()
        filename, data = make_wheel("holy-grail", "1.0")
        self.put_foreign(storage, filename, data)
        self.assertEqual(list(self.scan(storage).records), [filename])
        self.assertTrue(os.path.exists(self.sidecar(storage, filename)))

    def test_sidecar_size_mismatch(self):
        """A file replaced by hand (its size no longer matches its record) is read again."""
        storage = self.prepared()
        filename, data = make_wheel("holy-grail", "1.0")
        stored, _ = self.publish(storage, filename, data)
        _, other = make_wheel("holy-grail", "1.0", module_text="X = 'a longer module'\n")
        os.unlink(os.path.join(storage.root, filename))
        self.put_foreign(storage, filename, other)
        record = self.scan(storage).records[filename]
        self.assertEqual(record.sha256, hashlib.sha256(other).hexdigest())

    def test_unreadable_sidecar(self):
        """A corrupt record file is ignored and rebuilt from the file."""
        storage = self.prepared()
        filename, data = make_wheel("holy-grail", "1.0")
        stored, _ = self.publish(storage, filename, data)
        for junk in (b"{not json", b'{"sha256": 5}', b"[]"):
            write_file(self.sidecar(storage, filename), junk)
            record = self.scan(storage).records[filename]
            self.assertEqual(record.sha256, stored.sha256)

    def test_exists_without_sidecar(self):
        """L{FileExists} carries the digest of a taken name even when it has no record yet."""
        storage = self.prepared()
        filename, data = make_wheel("holy-grail", "1.0")
        self.put_foreign(storage, filename, data)
        _, other = make_wheel("holy-grail", "1.0", module_text="X = 3\n")
        temp, record, metadata = self.describe(storage, filename, other)
        failure = self.failureResultOf(storage.publish(temp, record, metadata), FileExists)
        self.assertEqual(failure.value.sha256, hashlib.sha256(data).hexdigest())
        self.assertEqual(read_file(os.path.join(storage.root, filename)), data)

    def scan_with_import_pending(self):
        """
        Return a storage on a L{QueuedRun}, the runner and the record of a
        foreign file that a scan read but has not yet written beside it.
        """
        run = QueuedRun()
        storage = LocalStorage(os.path.abspath(self.mktemp()), run, self.clock)
        filename, data = make_wheel("holy-grail", "1.0")
        self.put_foreign(storage, filename, data)
        storage.prepare()
        run.run_all()
        d = storage.scan({}, 0)
        run.run()
        record = self.successResultOf(d).records[filename]
        self.assertEqual(len(run.pending), 1, "the scan left no work to write its imports")
        return storage, run, record

    def test_metadata_while_import_pending(self):
        """Just after a scan, an imported file's metadata can be sent before its sidecar exists."""
        storage, run, record = self.scan_with_import_pending()
        served = self.read_located(storage.locate_metadata(record))
        self.assertEqual(hashlib.sha256(served).hexdigest(), record.metadata_sha256)
        run.run_all()
        self.assertEqual(self.read_located(storage.locate_metadata(record)), served)

    def test_read_metadata_while_import_pending(self):
        """Just after a scan, an imported file's metadata is read from memory, then from its sidecar."""
        storage, run, record = self.scan_with_import_pending()
        pending = len(run.pending)
        served = self.successResultOf(storage.read_metadata(record))
        self.assertEqual(len(run.pending), pending, "read from the folder, not memory")
        self.assertEqual(hashlib.sha256(served).hexdigest(), record.metadata_sha256)
        run.run_all()
        d = storage.read_metadata(record)
        self.assertEqual(len(run.pending), 1, "not read in the thread pool")
        run.run_all()
        self.assertEqual(self.successResultOf(d), served)

    def test_read_metadata_missing_sidecar(self):
        """A metadata sidecar removed by hand fails to read with L{FileNotFoundError}."""
        storage = self.prepared()
        stored, _ = self.publish(storage, *make_wheel("holy-grail", "1.0"))
        os.unlink(self.sidecar(storage, stored.filename, ".metadata"))
        self.failureResultOf(storage.read_metadata(stored), FileNotFoundError)

    def test_read_metadata_unreadable(self):
        """A metadata sidecar that cannot be read (not a file) is a L{StorageError}."""
        storage = self.prepared()
        stored, _ = self.publish(storage, *make_wheel("holy-grail", "1.0"))
        path = self.sidecar(storage, stored.filename, ".metadata")
        os.unlink(path)
        os.mkdir(path)
        failure = self.failureResultOf(storage.read_metadata(stored), StorageError)
        self.assertIn(stored.filename, str(failure.value))

    def test_yank_during_import_kept(self):
        """A yank stored while the scan's imported records are still being written is kept."""
        storage, run, record = self.scan_with_import_pending()
        done = storage.update(record.replace(yanked="broken"))
        run.run(-1)
        self.successResultOf(done)
        run.run_all()
        sync = LocalStorage(storage.root, run_now, self.clock)
        self.assertEqual(self.scan(sync).records[record.filename].yanked, "broken")
        self.assertEqual(self.read_located(sync.locate_metadata(record)),
                         read_file(self.sidecar(storage, record.filename, ".metadata")))

    def test_delete_during_import_kept(self):
        """A delete stored while the scan's imported records are still being written stays a tombstone."""
        storage, run, record = self.scan_with_import_pending()
        done = storage.delete(record)
        run.run(-1)
        self.successResultOf(done)
        run.run_all()
        sync = LocalStorage(storage.root, run_now, self.clock)
        result = self.scan(sync)
        self.assertEqual(result.records, {})
        self.assertEqual(result.tombstones, frozenset([record.filename]))
        self.assertFalse(os.path.exists(self.sidecar(storage, record.filename, ".metadata")))


class ImportRestTests(SynchronousTestCase):
    """
    An import takes no pause after describing a file: the daemon renders in
    its sandbox, so a render holds no lock of this process (issue 31).
    """

    def test_never_on_the_main_thread(self):
        """With a runner on the calling thread (the reactor's), an import never sleeps."""
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        filename, data = make_wheel("holy-grail", "1.0")
        write_file(os.path.join(root, filename), data)
        storage = LocalStorage(root, run_now)
        self.successResultOf(storage.prepare())
        self.addCleanup(storage.close)
        slept = []
        self.patch(time, "sleep", slept.append)
        result = self.successResultOf(storage.scan())
        if result.settled is not None:
            self.successResultOf(result.settled)
        self.assertEqual(list(result.records), [filename])
        self.assertIsNotNone(self.successResultOf(storage.read_details(result.records[filename])))
        self.assertEqual(slept, [])


class LocalStorageSnapshotTrustTests(SynchronousTestCase):
    """Tests for the scan's shortcut when no folder changed since the snapshot."""

    def setUp(self):
        self.storage = LocalStorage(os.path.abspath(self.mktemp()), run_now)
        self.successResultOf(self.storage.prepare())
        self.addCleanup(self.storage.close)
        filename, data = make_wheel("holy-grail", "1.0")
        spooled = os.path.join(self.storage.temp_dir, "upload")
        write_file(spooled, data)
        inspected = inspect(spooled, filename, filename, 1767225600.0)
        record, metadata = inspected.record, inspected.metadata
        self.record = self.successResultOf(self.storage.publish(spooled, record, metadata))
        # What only the snapshot says: the scan returns it only when it trusts the snapshot.
        self.marked = self.record.replace(yanked="only in the snapshot")

    def scan(self, since):
        return self.successResultOf(
            self.storage.scan({self.record.filename: self.marked}, since, ["gone.tar.gz"]))

    def test_unchanged(self):
        """With no folder changed since the snapshot, its records and tombstones are used as they are."""
        result = self.scan(self.after_writes())
        self.assertEqual(result.records, {self.record.filename: self.marked})
        self.assertEqual(result.tombstones, frozenset(["gone.tar.gz"]))

    def test_file_added(self):
        """A file added after the snapshot makes the scan look at every file again."""
        since = self.after_writes()
        filename, data = make_wheel("holy-grail", "2.0")
        time.sleep(0.01)
        write_file(os.path.join(self.storage.root, filename), data)
        result = self.scan(since)
        self.assertEqual(sorted(result.records), sorted([self.record.filename, filename]))

    def test_clock_went_back(self):
        """A snapshot dated in the future is not trusted at all: storage is read again."""
        result = self.scan(time.time() + 3600)
        self.assertIsNone(result.records[self.record.filename].yanked)
        os.unlink(os.path.join(self.storage.root, self.record.filename))
        self.assertEqual(self.scan(time.time() + 3600).records, {})

    def test_file_changed_in_place(self):
        """
        A file rewritten in place with another size is read again: the index
        gets its true digest, not the snapshot's.
        """
        since = self.after_writes()
        path = os.path.join(self.storage.root, self.record.filename)
        with open(path, "ab") as f:
            f.write(b"more")
        result = self.scan(since)
        self.assertEqual(result.records[self.record.filename].sha256,
                         hashlib.sha256(read_file(path)).hexdigest())

    def test_change_within_margin(self):
        """
        A folder changed less than L{CHANGE_TIME_MARGIN} before the snapshot
        counts as changed after it (its time may lag the real one by a tick of
        the kernel's clock): the scan looks at every file again.
        """
        since = self.after_writes()
        self.patch(folder_scan, "CHANGE_TIME_MARGIN", 3600.0)
        self.assertIsNone(self.scan(since).records[self.record.filename].yanked)

    def test_change_stamped_a_late_tick_early(self):
        """
        A change stamped up to a second before the snapshot's time counts as
        after it: on a busy virtual machine the kernel's coarse clock, by
        which it stamps files, fell more than a tick behind (a yank written
        after a snapshot was stamped 4.6 ms before it, with 4 ms ticks, and
        was lost at the next start).
        """
        self.assertGreaterEqual(folder_scan.CHANGE_TIME_MARGIN, 1.0)
        # (dated by the record's own stamp, not by how fast the set-up ran)
        since = os.stat(self.storage._sidecars.record_path(self.record.filename)).st_ctime + 0.5
        time.sleep(0.6)  # (a snapshot dated later than the scan is not trusted at all)
        self.assertIsNone(self.scan(since).records[self.record.filename].yanked)

    def after_writes(self):
        """A snapshot time after every write so far, past a margin of 10 ms (set here)."""
        self.patch(folder_scan, "CHANGE_TIME_MARGIN", 0.01)
        time.sleep(2 * folder_scan.CHANGE_TIME_MARGIN + 0.01)
        return time.time()


class LocalStorageLockTests(SynchronousTestCase):
    """Tests for the lock that keeps one server per storage folder."""

    def test_second_server_refused(self):
        """A second storage on a folder in use fails to prepare with a clear message."""
        root = os.path.abspath(self.mktemp())
        first = LocalStorage(root, run_now)
        self.successResultOf(first.prepare())
        self.addCleanup(first.close)
        second = LocalStorage(root, run_now)
        failure = self.failureResultOf(second.prepare(), StorageError)
        self.assertIn("in use by another pypid process", str(failure.value))

    def test_released_on_close(self):
        """Once the first storage is closed, another may take the folder."""
        root = os.path.abspath(self.mktemp())
        first = LocalStorage(root, run_now)
        self.successResultOf(first.prepare())
        first.close()
        second = LocalStorage(root, run_now)
        self.successResultOf(second.prepare())
        second.close()



class LocalStorageGuardTests(SynchronousTestCase):
    """Tests for what the local storage refuses, and how its failures look."""

    def setUp(self):
        self.storage = LocalStorage(os.path.abspath(self.mktemp()), run_now)
        self.successResultOf(self.storage.prepare())
        self.addCleanup(self.storage.close)
        filename, data = make_wheel("holy-grail", "1.0")
        spooled = write_file(os.path.join(self.storage.temp_dir, "upload"), data)
        inspected = inspect(spooled, filename, filename, 1767225600.0)
        record, metadata = inspected.record, inspected.metadata
        self.record = self.successResultOf(self.storage.publish(spooled, record, metadata))

    def test_os_errors_are_storage_errors(self):
        """An operating-system failure on update or delete is a L{StorageError}."""
        os.rename(self.storage.root, self.storage.root + ".away")
        self.addCleanup(os.rename, self.storage.root + ".away", self.storage.root)
        self.failureResultOf(self.storage.update(self.record.replace(yanked="x")),
                             StorageError)
        self.failureResultOf(self.storage.delete(self.record), StorageError)


class MemoryStorageContractTests(AdoptionContractMixin, StorageContractMixin, TestCase):
    """The storage contract, for L{MemoryStorage} on a fake clock."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1767225700)

    def make_storage(self):
        """A L{MemoryStorage} spooling into a new folder, dating its changes by the test's clock."""
        return MemoryStorage(os.path.abspath(self.mktemp()), self.clock)

    def put_foreign(self, storage, key, data):
        """Put bytes among the storage's objects directly, as a file copied into a folder."""
        storage.objects[key] = data

    def holding(self, storage):
        """Copies of the dicts the memory backend keeps its data in."""
        kept = storage._sidecars
        return {"objects": dict(storage.objects), **{name: dict(getattr(kept, name)) for name in (
            "records", "metadata", "details", "tombstones", "changed")}}

    def now(self):
        """The fake clock's time, which the memory backend dates its changes with."""
        return self.clock.seconds()

    def pass_time(self, seconds):
        """Advance the fake clock: no test waits for the wall clock."""
        self.clock.advance(seconds)


class MemoryStorageTests(SynchronousTestCase):
    """
    What only the memory backend promises: every answer comes from memory and
    has fired when the call returns, and no disk is used but the spool folder.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1767225700)
        self.parent = os.path.abspath(self.mktemp())
        self.storage = MemoryStorage(os.path.join(self.parent, "spool"), self.clock)
        self.assertIsNone(self.successResultOf(self.storage.prepare()))

    def spooled(self, filename, data):
        """Spool C{data} and return C{(temp path, record, metadata)} for publishing it."""
        temp = write_file(os.path.join(self.storage.temp_dir, "upload"), data)
        inspected = inspect(temp, filename, filename, UPLOAD_TIME)
        record, metadata = inspected.record, inspected.metadata
        return temp, record, metadata

    def publish(self, filename, data):
        """Publish C{data} as C{filename} and return the stored record and the metadata."""
        temp, record, metadata = self.spooled(filename, data)
        return self.successResultOf(self.storage.publish(temp, record, metadata)), metadata

    def read_fails(self, location, exception):
        """Assert that C{location} is read through a call that fails with C{exception}."""
        self.assertIsInstance(location, RemoteBytes)
        self.failureResultOf(location.read(), exception)

    def test_answers_from_memory(self):
        """locate() and locate_metadata() hand the web layer the bytes, as L{MemoryFile}s."""
        filename, data = make_wheel("holy-grail", "1.0")
        stored, metadata = self.publish(filename, data)
        self.assertEqual(self.storage.locate(stored), MemoryFile(data))
        self.assertEqual(self.storage.locate_metadata(stored), MemoryFile(metadata))

    def test_missing_bytes_not_found(self):
        """Bytes or metadata that are not there read as a missing file: L{FileNotFoundError}."""
        filename, data = make_wheel("holy-grail", "1.0")
        stored, _ = self.publish(filename, data)
        del self.storage.objects[stored.path]
        self.read_fails(self.storage.locate(stored), FileNotFoundError)
        sdist, _ = self.publish(*make_sdist("holy-grail", "1.0", metadata_version="2.1"))
        self.assertIsNone(sdist.metadata_sha256)
        self.read_fails(self.storage.locate_metadata(sdist), FileNotFoundError)

    def test_delete_forgets_bytes(self):
        """A delete drops the file's bytes and metadata from memory, not just hides them."""
        stored, _ = self.publish(*make_wheel("holy-grail", "1.0"))
        self.successResultOf(self.storage.delete(stored))
        self.assertEqual(self.storage.objects, {})
        self.read_fails(self.storage.locate(stored), FileNotFoundError)
        self.read_fails(self.storage.locate_metadata(stored), FileNotFoundError)

    def test_only_the_spool_on_disk(self):
        """
        A storage's whole life (publish, import, yank, delete) leaves nothing
        on disk but an empty spool folder.
        """
        stored, _ = self.publish(*make_wheel("holy-grail", "1.0"))
        name, data = make_sdist("holy-grail", "1.0")
        self.storage.objects["nested/" + name] = data
        imported = self.successResultOf(self.storage.scan({}, 0.0)).records[name]
        self.successResultOf(self.storage.read_metadata(imported))
        self.successResultOf(self.storage.update(stored.replace(yanked="broken")))
        self.successResultOf(self.storage.delete(stored))
        self.assertEqual(self.successResultOf(self.storage.check()), "ok")
        self.assertIsNone(self.storage.close())
        self.assertEqual(os.listdir(self.parent), ["spool"])
        self.assertEqual(os.listdir(self.storage.temp_dir), [])

    def test_exists_gives_stored_record(self):
        """L{FileExists} for a stored name carries its digest and its record, yank included."""
        filename, data = make_wheel("holy-grail", "1.0")
        stored, _ = self.publish(filename, data)
        yanked = stored.replace(yanked="broken")
        self.successResultOf(self.storage.update(yanked))
        for other in (data, make_wheel("holy-grail", "1.0", module_text="X = 2\n")[1]):
            failure = self.failureResultOf(
                self.storage.publish(*self.spooled(filename, other)), FileExists)
            self.assertEqual((failure.value.sha256, failure.value.record),
                             (stored.sha256, yanked))
        self.assertEqual(self.storage.objects, {filename: data})

    def test_exists_without_record(self):
        """L{FileExists} for bytes put there directly and not yet scanned has their digest only."""
        filename, data = make_wheel("holy-grail", "1.0")
        self.storage.objects[filename] = data
        _, other = make_wheel("holy-grail", "1.0", module_text="X = 3\n")
        failure = self.failureResultOf(self.storage.publish(*self.spooled(filename, other)),
                                       FileExists)
        self.assertEqual(failure.value.sha256, hashlib.sha256(data).hexdigest())
        self.assertIsNone(failure.value.record)
        self.assertIs(self.storage.objects[filename], data)

    def test_exists_under_another_key(self):
        """A filename stored in a folder is taken: publishing it at the top is L{FileExists}."""
        filename, data = make_wheel("holy-grail", "1.0")
        self.storage.objects["nested/" + filename] = data
        imported = self.successResultOf(self.storage.scan({}, 0.0)).records[filename]
        failure = self.failureResultOf(self.storage.publish(*self.spooled(filename, data)),
                                       FileExists)
        self.assertEqual(failure.value.record, imported)
        self.assertEqual(list(self.storage.objects), ["nested/" + filename])

    def test_seeded_objects_imported(self):
        """Objects given at construction are read by the first scan, dated by the clock, kept."""
        filename, data = make_wheel("holy-grail", "1.0", requires_python=">=3.9")
        storage = MemoryStorage(self.storage.temp_dir, self.clock, {"a/" + filename: data})
        record = self.successResultOf(storage.scan({}, 0.0)).records[filename]
        self.assertEqual((record.path, record.upload_time, record.requires_python),
                         ("a/" + filename, self.clock.seconds(), ">=3.9"))
        self.clock.advance(60)
        self.assertEqual(self.successResultOf(storage.scan({}, 0.0)).records, {filename: record})
        metadata = self.successResultOf(storage.read_metadata(record))
        self.assertEqual(hashlib.sha256(metadata).hexdigest(), record.metadata_sha256)

    def test_clock_went_back(self):
        """A snapshot dated after the clock's now is not trusted: the stored records are given."""
        stored, _ = self.publish(*make_wheel("holy-grail", "1.0"))
        marked = stored.replace(yanked="only in the snapshot")
        result = self.successResultOf(
            self.storage.scan({stored.filename: marked}, self.clock.seconds() + 3600))
        self.assertEqual(result.records, {stored.filename: stored})

    def test_identity(self):
        """Each storage names its own data: a snapshot of another (or earlier) one is never used."""
        other = MemoryStorage(self.storage.temp_dir, self.clock)
        self.assertTrue(self.storage.identity().startswith("memory:"))
        self.assertEqual(self.storage.identity(), self.storage.identity())
        self.assertNotEqual(self.storage.identity(), other.identity())

    def test_unreadable_spool_file(self):
        """A spooled upload that cannot be read is a L{StorageError}, and nothing is stored."""
        filename, data = make_wheel("holy-grail", "1.0")
        temp, record, metadata = self.spooled(filename, data)
        os.unlink(temp)
        self.failureResultOf(self.storage.publish(temp, record, metadata), StorageError)
        self.assertEqual(self.successResultOf(self.storage.scan({}, 0.0)).records, {})
        self.failureResultOf(self.storage.read_metadata(record), FileNotFoundError)

    def test_unusable_spool_folder(self):
        """prepare() fails with a L{StorageError} naming the spool folder when it cannot be made."""
        path = write_file(os.path.join(self.parent, "a-file"), b"")
        storage = MemoryStorage(path, self.clock)
        failure = self.failureResultOf(storage.prepare(), StorageError)
        self.assertIn(path, str(failure.value))

    def test_not_imported_by_the_server(self):
        """No module of the server imports the memory backend, so it costs production nothing."""
        root = os.path.dirname(os.path.abspath(pypid.__file__))
        importers = []
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                if not name.endswith(".py"):
                    continue
                with open(path, "rb") as f:
                    tree = ast.parse(f.read(), path)
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        modules = [alias.name for alias in node.names]
                    elif isinstance(node, ast.ImportFrom) and node.module:
                        modules = [node.module] + [f"{node.module}.{alias.name}"
                                                   for alias in node.names]
                    else:
                        continue
                    if "tests.harness.memory_storage" in modules:
                        importers.append(os.path.relpath(path, root))
        self.assertEqual(importers, [])
