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
import stat
import time

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

import pypid
from pypid.core.details import Details
from pypid.core.distribution import inspect
from pypid.core.model import FileRecord
from pypid.core.promotion import Promotion
from pypid.storage import folder_changes, folder_imports, folder_scan
from pypid.storage.interface import (
    FileExists,
    FilenameDeleted,
    IAdoptingStorage,
    IBackfillStorage,
    ISharedStorage,
    IStorage,
    LocalFile,
    MemoryFile,
    RemoteBytes,
    ScanResult,
    StorageError,
)
from pypid.storage.local import LocalStorage
from pypid.storage.memory import MemoryStorage
from pypid.storage.sidecars import Sidecars
from tests.distributions import (
    make_sdist,
    make_tarball,
    make_wheel,
    metadata_text,
)
from tests.fakes import QueuedRun, read_file, run_now, write_file

UPLOAD_TIME = 1767225600.25


def folder_state(root):
    """
    Everything under C{root}, dot names included: each entry's kind, inode
    and modification time (a rewrite, or a file made and removed in a
    folder, changes them), and each file's bytes.
    """
    state = {".": os.lstat(root).st_mtime_ns}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            data = read_file(path) if stat.S_ISREG(info.st_mode) else None
            state[os.path.relpath(path, root)] = (stat.S_IFMT(info.st_mode), info.st_ino,
                                                  info.st_mtime_ns, data)
    return state


class StorageContractMixin:
    """
    What every storage backend must do, whatever it keeps files on.

    A test case mixing this in provides L{make_storage} (a new, empty storage
    whose Deferreds fire before the call returns), L{put_foreign} (put a file
    into the backend the way an existing package folder holds it, bypassing
    the storage) and, for backends that do not hand out L{LocalFile}s or
    L{MemoryFile}s, L{read_location}. A backend whose clock is not the wall
    clock also provides L{now} and L{pass_time}, so that the times given to
    C{scan} are on the clock the backend dates its changes with. L{holding}
    gives what the backend keeps, to compare before and after a read.
    """

    def holding(self, storage):
        """Return a comparable picture of everything the backend keeps (to see it unchanged)."""
        raise NotImplementedError()

    def make_storage(self):
        """Return a new, empty storage, not yet prepared."""
        raise NotImplementedError()

    def put_foreign(self, storage, key, data):
        """Store C{data} under C{key} behind the storage's back."""
        raise NotImplementedError()

    async def read_location(self, location):
        """Return the bytes a C{locate()} answer points at."""
        if isinstance(location, MemoryFile):
            return location.data
        self.assertIsInstance(location, LocalFile)
        return read_file(location.path)

    def now(self):
        """Return the time by the clock the backend dates its changes with."""
        return time.time()

    def pass_time(self, seconds):
        """Let C{seconds} go by on the backend's clock."""
        time.sleep(seconds)

    # -- helpers ---------------------------------------------------------------

    async def ready(self):
        """Return a new storage, prepared."""
        storage = self.make_storage()
        self.assertIsNone(await storage.prepare())
        return storage

    def spool(self, storage, data, name="upload"):
        """Put C{data} where an upload is spooled and return its path."""
        return write_file(os.path.join(storage.temp_dir, name), data)

    def describe(self, storage, filename, data):
        """Spool C{data} and return C{(temp path, record, metadata)} for publishing it."""
        temp = self.spool(storage, data, "describe-" + filename)
        inspected = inspect(temp, filename, filename, UPLOAD_TIME)
        record, metadata = inspected.record, inspected.metadata
        return temp, record, metadata

    async def published(self, storage, filename, data, details=None):
        """Publish C{data} as C{filename} and return the stored record and the metadata."""
        temp, record, metadata = self.describe(storage, filename, data)
        stored = await storage.publish(temp, record, metadata, details)
        return stored, metadata

    async def scanned(self, storage, known=None, since=0.0):
        """Return the storage's L{ScanResult}."""
        result = await storage.scan(known or {}, since)
        self.assertIsInstance(result, ScanResult)
        return result

    async def settle(self, storage):
        """Wait for the storage's background writes (a shared one's change markers)."""
        if ISharedStorage.providedBy(storage):
            await storage.settle()

    # -- the contract ------------------------------------------------------------

    async def test_interface(self):
        """The backend provides L{IStorage}."""
        self.assertTrue(verifyObject(IStorage, self.make_storage()))

    async def test_statuses(self):
        """
        A project's status is kept, replaced and removed (PEP 792), apart
        from the files: a scan lists no file for it.
        """
        storage = await self.ready()
        self.assertEqual(await storage.statuses(), {})
        await storage.keep_status("holy-grail", b'{"status": "archived"}')
        await storage.keep_status("spam", b'{"status": "deprecated"}')
        await storage.keep_status("holy-grail", b'{"status": "quarantined"}')
        await storage.keep_status("spam", None)
        await storage.keep_status("never-set", None)
        self.assertEqual(await storage.statuses(),
                         {"holy-grail": b'{"status": "quarantined"}'})
        self.assertEqual((await self.scanned(storage)).records, {})

    async def test_check(self):
        """A prepared storage that answers says C{"ok"} to C{check()} (for C{/health})."""
        self.assertEqual(await (await self.ready()).check(), "ok")

    async def test_empty_scan(self):
        """A new storage holds nothing."""
        result = await self.scanned(await self.ready())
        self.assertEqual((result.records, result.tombstones, tuple(result.skipped)),
                         ({}, frozenset(), ()))

    async def test_prepare_sweeps(self):
        """prepare() leaves an existing spool folder, emptied of what a crash left."""
        storage = await self.ready()
        self.spool(storage, b"half an upload", "upload-1")
        self.spool(storage, b"another", "write-2.part")
        await storage.prepare()
        self.assertTrue(os.path.isdir(storage.temp_dir))
        self.assertEqual(os.listdir(storage.temp_dir), [])

    async def test_publish_then_scan(self):
        """A published file comes back from a scan with the same record."""
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0")
        stored, metadata = await self.published(storage, filename, data)
        self.assertEqual(stored.filename, filename)
        self.assertEqual(stored.sha256, hashlib.sha256(data).hexdigest())
        self.assertIsNotNone(metadata)
        result = await self.scanned(storage)
        self.assertEqual(result.records, {filename: stored})
        self.assertEqual(result.tombstones, frozenset())
        self.assertEqual(tuple(result.skipped), ())

    async def attested(self, storage, provenance):
        """Publish a wheel with C{provenance} beside it; the record stored, and its filename."""
        filename, data = make_wheel("holy-grail", "1.0")
        temp, record, metadata = self.describe(storage, filename, data)
        record = record.replace(provenance_sha256=hashlib.sha256(provenance).hexdigest())
        return await storage.publish(temp, record, metadata, None, provenance), filename

    async def test_provenance(self):
        """
        A provenance published with a file is read back, the record naming
        its digest (a scan gives it too); a file published without one reads
        L{None}; a delete removes it.
        """
        storage = await self.ready()
        provenance = b'{"version": 1, "attestation_bundles": []}'
        stored, filename = await self.attested(storage, provenance)
        self.assertEqual(stored.provenance_sha256, hashlib.sha256(provenance).hexdigest())
        self.assertEqual(await storage.read_provenance(stored), provenance)
        result = await self.scanned(storage)
        self.assertEqual(result.records[filename].provenance_sha256, stored.provenance_sha256)
        other, _ = await self.published(storage, *make_sdist("holy-grail", "1.0"))
        self.assertIsNone(other.provenance_sha256)
        self.assertIsNone(await storage.read_provenance(other))
        await storage.delete(stored)
        self.assertIsNone(await storage.read_provenance(stored))

    async def test_provenance_not_matching_record(self):
        """A record naming another digest than what is kept reads L{None}: never served."""
        storage = await self.ready()
        stored, _ = await self.attested(storage, b'{"version": 1}')
        with capturedLogs() as logs:
            read = await storage.read_provenance(stored.replace(provenance_sha256="0" * 64))
        self.assertIsNone(read)
        self.assertTrue(any("provenance" in str(e.get("log_format")) for e in logs))

    async def test_keep_provenance(self):
        """
        A provenance kept after its file (a cached upstream file's) is read
        back with the record C{keep_provenance} gives, its yank kept; a file
        not stored fails with L{FileNotFoundError}.
        """
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0")
        stored, _ = await self.published(storage, filename, data)
        yanked = stored.replace(yanked="broken")
        await storage.update(yanked)
        provenance = b'{"version": 1, "kept": "later"}'
        kept = await storage.keep_provenance(yanked, provenance)
        self.assertEqual(kept.provenance_sha256, hashlib.sha256(provenance).hexdigest())
        self.assertEqual(kept.yanked, "broken")
        self.assertEqual(await storage.read_provenance(kept), provenance)
        missing = stored.replace(filename="holy_grail-2.0-py3-none-any.whl",
                                 path="holy_grail-2.0-py3-none-any.whl", version="2.0")
        with self.assertRaises(FileNotFoundError):
            await storage.keep_provenance(missing, provenance)

    async def test_publish_consumes_temp(self):
        """The spooled file is gone after publish()."""
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0")
        temp, record, metadata = self.describe(storage, filename, data)
        await storage.publish(temp, record, metadata)
        self.assertFalse(os.path.exists(temp))

    async def test_locate(self):
        """locate() and locate_metadata() lead to the file's bytes and its metadata's."""
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0", requires_python=">=3.8")
        stored, metadata = await self.published(storage, filename, data)
        self.assertEqual((await self.read_location(storage.locate(stored))), data)
        served = (await self.read_location(storage.locate_metadata(stored)))
        self.assertEqual(served, metadata)
        self.assertEqual(hashlib.sha256(served).hexdigest(), stored.metadata_sha256)

    async def test_read_metadata(self):
        """read_metadata() gives the metadata published with a file, byte for byte."""
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0", requires_python=">=3.8")
        stored, metadata = await self.published(storage, filename, data)
        read = await storage.read_metadata(stored)
        self.assertEqual(read, metadata)
        self.assertEqual(hashlib.sha256(read).hexdigest(), stored.metadata_sha256)
        sdist, sdist_metadata = await self.published(storage, *make_sdist("holy-grail", "1.0"))
        self.assertIsNotNone(sdist_metadata)
        self.assertEqual((await storage.read_metadata(sdist)), sdist_metadata)

    async def test_details(self):
        """
        read_details() gives the details published with a file, for an sdist
        whose metadata is not served too; none for a file published without
        them, nor once the file is deleted.
        """
        storage = await self.ready()
        wheel, _ = await self.published(storage, *make_wheel("holy-grail", "1.0"),
                                        details=b'{"info": {"name": "holy-grail"}}')
        sdist, _ = await self.published(
            storage, *make_sdist("holy-grail", "1.0", metadata_version="2.1"),
            details=b'{"info": {"name": "Holy-Grail"}}')
        bare, _ = await self.published(storage, *make_wheel("holy-grail", "2.0"))
        self.assertEqual((await storage.read_details(wheel)), b'{"info": {"name": "holy-grail"}}')
        self.assertEqual((await storage.read_details(sdist)), b'{"info": {"name": "Holy-Grail"}}')
        self.assertIsNone(await storage.read_details(bare))
        await storage.delete(wheel)
        self.assertIsNone(await storage.read_details(wheel))
        self.assertEqual((await storage.read_details(sdist)), b'{"info": {"name": "Holy-Grail"}}')

    async def test_describe(self):
        """
        describe() renders the details of a file stored without them, from
        the file, and keeps them; a deleted file is not described.
        """
        storage = await self.ready()
        metadata = metadata_text("holy-grail", "1.0", summary="Finds grails",
                                 extra_headers=["Description-Content-Type: text/markdown"])
        filename, data = make_wheel("holy-grail", "1.0",
                                    metadata=metadata.replace("A test project.", "# Grail\n"))
        stored, _ = await self.published(storage, filename, data)
        self.assertIsNone(await storage.read_details(stored))
        described = await storage.describe(stored)
        self.assertIn(">Grail<", Details.from_bytes(described).html)
        self.assertEqual((await storage.read_details(stored)), described)
        await storage.delete(stored)
        self.assertIsNone(await storage.describe(stored))
        self.assertIsNone(await storage.read_details(stored))

    async def test_scan_foreign_details(self):
        """A file put there by other means gets its details, rendered once the import settles."""
        storage = await self.ready()
        metadata = metadata_text("holy-grail", "1.0", summary="Finds grails",
                                 extra_headers=["Description-Content-Type: text/markdown"])
        filename, data = make_wheel("holy-grail", "1.0",
                                    metadata=metadata.replace("A test project.", "# Grail\n"))
        self.put_foreign(storage, filename, data)
        result = await self.scanned(storage)
        if result.settled is not None:
            await result.settled
        record = result.records[filename]
        self.assertEqual(record.summary, "Finds grails")
        details = Details.from_bytes(await storage.read_details(record))
        self.assertEqual(details.get("summary"), "Finds grails")
        self.assertIn(">Grail<", details.html)

    async def test_read_metadata_deleted(self):
        """The metadata of a deleted file fails to read with L{FileNotFoundError}."""
        storage = await self.ready()
        stored, _ = await self.published(storage, *make_wheel("holy-grail", "1.0"))
        await storage.delete(stored)
        await self.assertFailure(storage.read_metadata(stored), FileNotFoundError)

    async def test_publish_without_metadata(self):
        """An sdist whose metadata is not served is stored without any."""
        storage = await self.ready()
        filename, data = make_sdist("holy-grail", "1.0", metadata_version="2.1")
        stored, metadata = await self.published(storage, filename, data)
        self.assertIsNone(metadata)
        self.assertIsNone(stored.metadata_sha256)
        self.assertEqual((await self.read_location(storage.locate(stored))), data)
        self.assertEqual((await self.scanned(storage)).records, {filename: stored})

    async def test_publish_twice(self):
        """A second file under a taken name fails with L{FileExists} and the stored digest."""
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0")
        stored, _ = await self.published(storage, filename, data)
        _, other = make_wheel("holy-grail", "1.0", module_text="X = 2\n")
        self.assertNotEqual(other, data)
        temp, record, metadata = self.describe(storage, filename, other)
        failure = await self.assertFailure(storage.publish(temp, record, metadata), FileExists)
        self.assertEqual(failure.filename, filename)
        self.assertEqual(failure.sha256, stored.sha256)
        self.assertFalse(os.path.exists(temp))
        self.assertEqual((await self.read_location(storage.locate(stored))), data)
        self.assertEqual((await self.scanned(storage)).records, {filename: stored})

    async def test_publish_same_twice(self):
        """The same bytes published again also fail with L{FileExists}, with a matching digest."""
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0")
        stored, _ = await self.published(storage, filename, data)
        temp, record, metadata = self.describe(storage, filename, data)
        failure = await self.assertFailure(storage.publish(temp, record, metadata), FileExists)
        self.assertEqual(failure.sha256, stored.sha256)

    async def test_delete(self):
        """A deleted file leaves a tombstone in the scan and nothing to send."""
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0")
        stored, _ = await self.published(storage, filename, data)
        self.assertIsNone(await storage.delete(stored))
        result = await self.scanned(storage)
        self.assertEqual(result.records, {})
        self.assertEqual(result.tombstones, frozenset([filename]))

    async def test_deleted_name_not_reused(self):
        """Publishing under a deleted filename fails with L{FilenameDeleted}."""
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0")
        stored, _ = await self.published(storage, filename, data)
        await storage.delete(stored)
        temp, record, metadata = self.describe(storage, filename, data)
        await self.assertFailure(storage.publish(temp, record, metadata), FilenameDeleted)
        self.assertFalse(os.path.exists(temp))
        self.assertEqual((await self.scanned(storage)).records, {})

    async def test_delete_keeps_others(self):
        """Deleting one file keeps the other files of its release."""
        storage = await self.ready()
        wheel, _ = await self.published(storage, *make_wheel("holy-grail", "1.0"))
        sdist, _ = await self.published(storage, *make_sdist("holy-grail", "1.0"))
        await storage.delete(wheel)
        self.assertEqual((await self.scanned(storage)).records, {sdist.filename: sdist})

    async def test_update(self):
        """A yank (and an unyank) written with update() is what the next scan reads."""
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0")
        stored, _ = await self.published(storage, filename, data)
        yanked = stored.replace(yanked="broken build")
        self.assertIsNone(await storage.update(yanked))
        self.assertEqual((await self.scanned(storage)).records[filename].yanked, "broken build")
        await storage.update(stored)
        self.assertEqual((await self.scanned(storage)).records, {filename: stored})

    async def test_update_empty_reason(self):
        """A yank without a reason stays a yank (empty string, not L{None})."""
        storage = await self.ready()
        stored, _ = await self.published(storage, *make_wheel("holy-grail", "1.0"))
        await storage.update(stored.replace(yanked=""))
        self.assertEqual((await self.scanned(storage)).records[stored.filename].yanked, "")

    async def test_scan_foreign_files(self):
        """Files put there by other means (flat or nested) are read and described."""
        storage = await self.ready()
        wheel_name, wheel = make_wheel("holy-grail", "1.0", requires_python=">=3.9")
        sdist_name, sdist = make_sdist("holy-grail", "1.0")
        old_name = "my-project-0.9.tar.bz2"
        old = make_tarball([("my-project-0.9/PKG-INFO",
                             metadata_text("my-project", "0.9").encode())], mode="w:bz2")
        self.put_foreign(storage, wheel_name, wheel)
        self.put_foreign(storage, "holy-grail/" + sdist_name, sdist)
        self.put_foreign(storage, "old/stuff/" + old_name, old)
        result = await self.scanned(storage)
        self.assertEqual(sorted(result.records), sorted([wheel_name, sdist_name, old_name]))
        self.assertEqual(tuple(result.skipped), ())
        records = result.records
        for filename, key, data in ((wheel_name, wheel_name, wheel),
                                    (sdist_name, "holy-grail/" + sdist_name, sdist),
                                    (old_name, "old/stuff/" + old_name, old)):
            record = records[filename]
            self.assertEqual(record.path, key)
            self.assertEqual(record.size, len(data))
            self.assertEqual(record.sha256, hashlib.sha256(data).hexdigest())
            self.assertEqual(record.blake2_256, hashlib.blake2b(data, digest_size=32).hexdigest())
            self.assertEqual((await self.read_location(storage.locate(record))), data)
        wheel_record = records[wheel_name]
        self.assertEqual((wheel_record.project, wheel_record.version, wheel_record.packagetype),
                         ("holy-grail", "1.0", "bdist_wheel"))
        self.assertEqual(wheel_record.requires_python, ">=3.9")
        metadata = (await self.read_location(storage.locate_metadata(wheel_record)))
        self.assertEqual(hashlib.sha256(metadata).hexdigest(), wheel_record.metadata_sha256)
        self.assertIn(b"Requires-Python: >=3.9", metadata)
        self.assertEqual(records[old_name].project, "my-project")
        self.assertEqual(records[old_name].version, "0.9")

    async def test_scan_foreign_remembered(self):
        """What a scan learnt about a foreign file is kept: the next scan gives the same record."""
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0")
        self.put_foreign(storage, filename, data)
        first = (await self.scanned(storage)).records
        self.assertEqual((await self.scanned(storage)).records, first)
        yanked = first[filename].replace(yanked="")
        await storage.update(yanked)
        self.assertEqual((await self.scanned(storage)).records, {filename: yanked})

    async def test_scan_skips_invalid(self):
        """Files that are not valid distributions are reported in C{skipped}, not served."""
        storage = await self.ready()
        self.put_foreign(storage, "README.txt", b"hello")
        self.put_foreign(storage, "broken-1.0-py3-none-any.whl", b"not a zip")
        self.put_foreign(storage, "sub/liar-1.0-py3-none-any.whl",
                         make_wheel("other", "1.0")[1])
        good_name, good = make_wheel("holy-grail", "1.0")
        self.put_foreign(storage, good_name, good)
        result = await self.scanned(storage)
        self.assertEqual(list(result.records), [good_name])
        skipped = dict(result.skipped)
        self.assertEqual(sorted(skipped),
                         ["README.txt", "broken-1.0-py3-none-any.whl",
                          "sub/liar-1.0-py3-none-any.whl"])
        for reason in skipped.values():
            self.assertIsInstance(reason, str)
            self.assertTrue(reason)
        self.assertIn("extension", skipped["README.txt"])

    async def test_scan_duplicate_names(self):
        """Two files with one name in different folders: one is served, the other skipped."""
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0")
        self.put_foreign(storage, "a/" + filename, data)
        self.put_foreign(storage, "b/" + filename, data)
        result = await self.scanned(storage)
        self.assertEqual(list(result.records), [filename])
        self.assertEqual(len(result.skipped), 1)
        self.assertIn("another file named", result.skipped[0][1])

    async def test_scan_trusts_known(self):
        """An entry of C{known} whose file did not change since C{since} is taken as it is."""
        storage = await self.ready()
        stored, _ = await self.published(storage, *make_wheel("holy-grail", "1.0"))
        known = {stored.filename: stored.replace(upload_time=1.0)}
        self.pass_time(0.01)
        result = await self.scanned(storage, known, since=self.now())
        self.assertIs(result.records[stored.filename], known[stored.filename])

    async def test_scan_rereads_changed(self):
        """What changed after C{since} is read again rather than taken from C{known}."""
        storage = await self.ready()
        stored, _ = await self.published(storage, *make_wheel("holy-grail", "1.0"))
        known = {stored.filename: stored.replace(upload_time=1.0)}
        self.assertEqual((await self.scanned(storage, known, since=0.0)).records, {stored.filename: stored})

    async def test_scan_known_deleted(self):
        """A file deleted after the snapshot is a tombstone, whatever C{known} says."""
        storage = await self.ready()
        stored, _ = await self.published(storage, *make_wheel("holy-grail", "1.0"))
        since = self.now() - 3600
        await storage.delete(stored)
        result = await self.scanned(storage, {stored.filename: stored}, since=since)
        self.assertEqual(result.records, {})
        self.assertEqual(result.tombstones, frozenset([stored.filename]))

    async def test_scan_known_missing(self):
        """A known file that is no longer stored is not listed."""
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0")
        inspected = inspect(self.spool(storage, data), filename, filename, UPLOAD_TIME)
        record = inspected.record
        result = await self.scanned(storage, {filename: record}, since=self.now() + 3600)
        self.assertEqual(result.records, {})

    async def test_tombstone_hides_file_put_back(self):
        """A file put back by other means under a deleted name is not served."""
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0")
        stored, _ = await self.published(storage, filename, data)
        await storage.delete(stored)
        self.put_foreign(storage, filename, data)
        result = await self.scanned(storage)
        self.assertEqual(result.records, {})
        self.assertEqual(result.tombstones, frozenset([filename]))

    async def test_scan_without_persist(self):
        """
        A scan that does not persist gives the records, tombstones and
        skipped files a persisting one does, serves the metadata of the
        files it read from memory, renders no details, and leaves what the
        backend keeps exactly as it was.
        """
        storage = await self.ready()
        kept, _ = await self.published(storage, *make_wheel("holy-grail", "0.9"))
        gone, _ = await self.published(storage, *make_wheel("holy-grail", "0.8"))
        await storage.delete(gone)
        wheel_name, wheel = make_wheel("holy-grail", "1.0", requires_python=">=3.9")
        sdist_name, sdist = make_sdist("holy-grail", "1.0")
        self.put_foreign(storage, wheel_name, wheel)
        self.put_foreign(storage, "nested/" + sdist_name, sdist)
        self.put_foreign(storage, "README.txt", b"hello")
        await self.settle(storage)
        before = self.holding(storage)
        result = await storage.scan({}, 0.0, (), persist=False)
        self.assertIsInstance(result, ScanResult)
        self.assertIsNone(result.settled)
        await self.settle(storage)
        self.assertEqual(self.holding(storage), before)
        for filename in (wheel_name, sdist_name):
            record = result.records[filename]
            metadata = await storage.read_metadata(record)
            self.assertEqual(hashlib.sha256(metadata).hexdigest(), record.metadata_sha256)
            self.assertEqual((await self.read_location(storage.locate_metadata(record))),
                             metadata)
            self.assertIsNone(await storage.read_details(record))
        self.assertIn(b"Requires-Python: >=3.9",
                      (await storage.read_metadata(result.records[wheel_name])))
        self.assertEqual(self.holding(storage), before)
        persisted = await self.scanned(storage)
        if persisted.settled is not None:
            await persisted.settled
        self.assertEqual(
            (result.records, result.tombstones, sorted(result.skipped)),
            (persisted.records, persisted.tombstones, sorted(persisted.skipped)))
        self.assertEqual(sorted(result.records), sorted([kept.filename, sdist_name, wheel_name]))
        self.assertEqual(result.tombstones, frozenset([gone.filename]))
        self.assertEqual([path for path, _ in result.skipped], ["README.txt"])
        self.assertNotEqual(self.holding(storage), before, "a persisting scan keeps records")

    async def test_no_update_over_tombstone(self):
        """A record is never written over a tombstone: update() fails with L{FilenameDeleted}."""
        storage = await self.ready()
        stored, _ = await self.published(storage, *make_wheel("holy-grail", "1.0"))
        await storage.delete(stored)
        await self.assertFailure(storage.update(stored.replace(yanked="x")),
                                 FilenameDeleted)
        result = await self.scanned(storage)
        self.assertEqual(result.records, {})
        self.assertEqual(result.tombstones, frozenset([stored.filename]))

    async def test_add_tombstone(self):
        """
        A tombstone added for a name never stored here is kept (twice is no
        error), listed by a scan, and the name can no longer be published.
        """
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0")
        self.assertIsNone(await storage.add_tombstone(filename))
        self.assertIsNone(await storage.add_tombstone(filename))
        await self.settle(storage)
        result = await self.scanned(storage)
        self.assertEqual((result.records, result.tombstones), ({}, frozenset([filename])))
        temp, record, metadata = self.describe(storage, filename, data)
        await self.assertFailure(storage.publish(temp, record, metadata), FilenameDeleted)

    async def test_add_tombstone_over_stored_file(self):
        """A tombstone is refused with L{FileExists} for a name whose file is stored, which stays."""
        storage = await self.ready()
        stored, _ = await self.published(storage, *make_wheel("holy-grail", "1.0"))
        failure = await self.assertFailure(storage.add_tombstone(stored.filename), FileExists)
        self.assertEqual(failure.sha256, stored.sha256)
        foreign_name, foreign = make_wheel("holy-grail", "2.0")
        self.put_foreign(storage, foreign_name, foreign)
        await self.assertFailure(storage.add_tombstone(foreign_name), FileExists)
        await self.settle(storage)
        result = await self.scanned(storage)
        self.assertEqual(sorted(result.records), sorted([stored.filename, foreign_name]))
        self.assertEqual(result.tombstones, frozenset())


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


class AdoptionContractMixin:
    """
    The storage half of a promotion (L{IAdoptingStorage}), for every backend
    that has it: a file another storage of the same backend holds taken in
    with its record, metadata and details, who promoted it kept beside it.

    A test case mixing this in also mixes in L{StorageContractMixin} (whose
    helpers it uses) and may provide L{make_target} (the storage promoted
    into: by default another L{make_storage}) and L{reopen} (the same data
    seen by a storage made anew, as after a restart).
    """

    PROMOTION = Promotion("staging", "alice", UPLOAD_TIME + 60.0)

    def make_target(self):
        """Return a new, empty storage of the same backend, to promote into."""
        return self.make_storage()

    async def reopen(self, storage):
        """Return a storage made anew on C{storage}'s data (the same one, without a restart)."""
        return storage

    async def test_journals(self):
        """
        A promotion's journal is kept until dropped, found again after a
        restart, and is no file of the index.
        """
        target = self.make_target()
        self.assertIsNone(await target.prepare())
        self.assertEqual(await target.journals(), {})
        await target.keep_journal("j1", b'{"a": 1}')
        await target.keep_journal("j2", b"{}")
        target = await self.reopen(target)
        self.assertEqual(await target.journals(), {"j1": b'{"a": 1}', "j2": b"{}"})
        self.assertEqual((await target.scan()).records, {})
        await target.drop_journal("j1")
        await target.drop_journal("j1")
        self.assertEqual(await target.journals(), {"j2": b"{}"})

    async def source_and_target(self, name="holy-grail", version="1.0", details=b"{}"):
        """Two prepared storages, the source holding a wheel: C{(source, target, record, metadata, bytes)}."""
        source = await self.ready()
        target = self.make_target()
        self.assertIsNone(await target.prepare())
        filename, data = make_wheel(name, version)
        record, metadata = await self.published(source, filename, data, details)
        return source, target, record, metadata, data

    async def test_adopting_interface(self):
        """The backend provides L{IAdoptingStorage}."""
        self.assertTrue(verifyObject(IAdoptingStorage, self.make_storage()))

    async def test_adopt(self):
        """
        An adopted file is the source's file: the same record (its path its
        filename), bytes, metadata and details; and the source keeps it.
        """
        source, target, record, metadata, data = await self.source_and_target()
        adopted = await target.adopt(source, record, self.PROMOTION)
        self.assertEqual(adopted, record.replace(path=record.filename))
        self.assertEqual((adopted.sha256, adopted.upload_time, adopted.uploader),
                         (record.sha256, record.upload_time, record.uploader))
        self.assertEqual(await self.read_location(target.locate(adopted)), data)
        self.assertEqual(await target.read_metadata(adopted), metadata)
        self.assertEqual(await target.read_details(adopted), b"{}")
        self.assertEqual(await self.read_location(source.locate(record)), data)
        await self.settle(target)
        scanned = await self.scanned(source)
        self.assertEqual((scanned.records, scanned.promotions), ({record.filename: record}, {}))

    async def test_promotion_after_rescan(self):
        """Who promoted a file and when comes back from a scan of storage made anew."""
        source, target, record, _, _ = await self.source_and_target()
        adopted = await target.adopt(source, record, self.PROMOTION)
        await self.settle(target)
        again = await self.reopen(target)
        scanned = await self.scanned(again)
        self.assertEqual(scanned.records, {adopted.filename: adopted})
        self.assertEqual(scanned.promotions, {adopted.filename: self.PROMOTION})
        self.assertEqual(scanned.tombstones, frozenset())

    async def test_adopt_again(self):
        """
        Adopting a file the target holds with the same bytes succeeds and
        changes nothing: the first promotion stands.
        """
        source, target, record, _, _ = await self.source_and_target()
        first = await target.adopt(source, record, self.PROMOTION)
        later = Promotion("other", "bob", UPLOAD_TIME + 120.0)
        self.assertEqual(await target.adopt(source, record, later), first)
        await self.settle(target)
        scanned = await self.scanned(target)
        self.assertEqual(scanned.promotions, {first.filename: self.PROMOTION})

    async def test_adopt_over_upload_of_same_bytes(self):
        """A file uploaded to the target with the same bytes is there already, not promoted."""
        source, target, record, _, data = await self.source_and_target()
        uploaded, _ = await self.published(target, record.filename, data)
        self.assertEqual(await target.adopt(source, record, self.PROMOTION), uploaded)
        await self.settle(target)
        scanned = await self.scanned(target)
        self.assertEqual((scanned.records, scanned.promotions),
                         ({uploaded.filename: uploaded}, {}))

    async def test_adopt_conflict(self):
        """A filename the target holds with other bytes is refused like an upload, and stays."""
        source, target, record, _, _ = await self.source_and_target()
        filename, other = make_wheel("holy-grail", "1.0", module_text="other = 1\n")
        self.assertEqual(filename, record.filename)
        stored, _ = await self.published(target, filename, other)
        self.assertNotEqual(stored.sha256, record.sha256)
        with self.assertRaises(FileExists) as raised:
            await target.adopt(source, record, self.PROMOTION)
        self.assertEqual((raised.exception.filename, raised.exception.sha256),
                         (filename, stored.sha256))
        self.assertEqual(await self.read_location(target.locate(stored)), other)
        await self.settle(target)
        scanned = await self.scanned(target)
        self.assertEqual((scanned.records, scanned.promotions), ({filename: stored}, {}))

    async def test_adopt_tombstone(self):
        """A filename deleted from the target is never taken by a promotion either."""
        source, target, record, _, _ = await self.source_and_target()
        await target.add_tombstone(record.filename)
        with self.assertRaises(FilenameDeleted):
            await target.adopt(source, record, self.PROMOTION)
        await self.settle(target)
        scanned = await self.scanned(target)
        self.assertEqual((scanned.records, scanned.tombstones),
                         ({}, frozenset([record.filename])))

    async def test_adopt_missing(self):
        """A file the source does not hold cannot be adopted, and nothing is left."""
        source, target, record, _, _ = await self.source_and_target()
        filename, _ = make_wheel("holy-grail", "2.0")
        missing = record.replace(filename=filename, path=filename, version="2.0")
        with self.assertRaises(FileNotFoundError):
            await target.adopt(source, missing, self.PROMOTION)
        await self.settle(target)
        scanned = await self.scanned(target)
        self.assertEqual((scanned.records, scanned.tombstones), ({}, frozenset()))

    async def test_discard_adopted(self):
        """
        A discarded file is gone with what was kept beside it, and no
        tombstone is kept: the name can be promoted again. The source keeps
        its file.
        """
        source, target, record, _, data = await self.source_and_target()
        adopted = await target.adopt(source, record, self.PROMOTION)
        self.assertIsNone(await target.discard_adopted(adopted))
        await self.settle(target)
        scanned = await self.scanned(await self.reopen(target))
        self.assertEqual((scanned.records, scanned.tombstones, scanned.promotions),
                         ({}, frozenset(), {}))
        self.assertEqual(await self.read_location(source.locate(record)), data)
        self.assertEqual(await target.adopt(source, record, self.PROMOTION), adopted)

    async def test_discard_keeps_other_bytes(self):
        """Discarding never removes a file of that name with other bytes (an upload since)."""
        source, target, record, _, _ = await self.source_and_target()
        filename, other = make_wheel("holy-grail", "1.0", module_text="other = 1\n")
        stored, _ = await self.published(target, filename, other)
        await target.discard_adopted(record.replace(path=filename))
        await self.settle(target)
        scanned = await self.scanned(target)
        self.assertEqual(scanned.records, {filename: stored})

    async def test_delete_adopted(self):
        """An adopted file is deleted as an uploaded one is: a tombstone, no promotion left."""
        source, target, record, _, _ = await self.source_and_target()
        adopted = await target.adopt(source, record, self.PROMOTION)
        await target.delete(adopted)
        await self.settle(target)
        scanned = await self.scanned(await self.reopen(target))
        self.assertEqual((scanned.records, scanned.tombstones, scanned.promotions),
                         ({}, frozenset([adopted.filename]), {}))
        self.assertEqual((await self.scanned(source)).records, {record.filename: record})


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
        self.clock = Clock()
        self.clock.advance(1767225700)

    def make_storage(self):
        """A L{LocalStorage} in a new folder, running its work synchronously."""
        return LocalStorage(os.path.abspath(self.mktemp()), run_now, self.clock)

    async def reopen(self, storage):
        """A L{LocalStorage} made anew on the same folder, as after a restart."""
        return LocalStorage(storage.root, run_now, self.clock)

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

    def after_writes(self):
        """A snapshot time after every write so far, past the margin."""
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
        own = os.path.join(root, "storage", "memory.py")
        importers = []
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                if not name.endswith(".py") or path == own:
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
                    if "pypid.storage.memory" in modules:
                        importers.append(os.path.relpath(path, root))
        self.assertEqual(importers, [])
