"""
The contract every L{pypid.storage.base.interface.IStorage} passes
(L{StorageContractMixin}) and the contract of adopting files found in the
storage (L{AdoptionContractMixin}), run against the local and memory
backends by L{tests.unit.storage.test_storage} and against S3 by L{tests.unit.storage.s3.test_s3}; and
L{folder_state}, everything under a folder, to see that nothing changed.
"""

import hashlib
import os
import stat
import time

from twisted.internet.defer import Deferred
from twisted.logger import capturedLogs
from zope.interface.verify import verifyObject

from pypid.core.dists.details import Details
from pypid.core.dists.distribution import inspect
from pypid.core.indexes.promotion import Promotion
from pypid.storage.base.capabilities import (
    GRANT_LEDGER,
    WAIVERS,
    IAdoptingStorage,
    IServerDocuments,
    ISharedStorage,
)
from pypid.storage.base.interface import (
    FileExists,
    FilenameDeleted,
    IStorage,
    LocalFile,
    MemoryFile,
    ScanResult,
)
from tests.harness.distributions import make_sdist, make_tarball, make_wheel, metadata_text
from tests.harness.fakes import read_file, write_file

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


class _Collect:
    """Collects what a relayed body delivers."""

    def __init__(self):
        self.done = Deferred()
        self.parts = []

    def makeConnection(self, transport):
        self.transport = transport

    def dataReceived(self, data):
        self.parts.append(data)

    def connectionLost(self, reason):
        self.done.callback(b"".join(self.parts))


def collected(deliverable):
    """The whole body a relay (a L{RemoteFile}'s fetch) delivers."""
    collector = _Collect()
    deliverable.deliverBody(collector)
    return collector.done


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

    async def test_documents(self):
        """
        Each server document (L{IServerDocuments}) is none at first, then
        the one kept last under its name, whole, apart from the other; a
        scan lists no file for them, and a status kept beside them is its
        own; a name that is no document's is refused, nothing kept.
        """
        storage = await self.ready()
        self.assertTrue(verifyObject(IServerDocuments, storage))
        self.assertIsNone(await storage.document(WAIVERS))
        await storage.keep_document(WAIVERS, b'{"waivers": [1]}')
        await storage.keep_document(WAIVERS, b'{"waivers": []}')
        await storage.keep_document(GRANT_LEDGER, b'{"grants": {}}')
        self.assertEqual(await storage.document(WAIVERS), b'{"waivers": []}')
        self.assertEqual(await storage.document(GRANT_LEDGER), b'{"grants": {}}')
        with self.assertRaises(ValueError):
            await storage.keep_document("../projects/x", b"{}")
        with self.assertRaises(ValueError):
            await storage.document("other")
        self.assertEqual(await storage.statuses(), {})
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

    async def test_variant_wheel(self):
        """
        A variant wheel's record (PEP 825) comes back from a scan with its
        variant.json, as every backend keeps it (a sidecar, an S3 object's
        user metadata), with a summary and uploader at their caps.
        """
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0", tag="cp313-cp313-linux_x86_64",
                                    variant="x86_64_v3")
        temp, record, metadata = self.describe(storage, filename, data)
        self.assertIsNotNone(record.variant)
        record = record.replace(summary="\N{LATIN SMALL LETTER E WITH ACUTE}" * 150,
                                uploader="u" * 100)
        stored = await storage.publish(temp, record, metadata, None)
        self.assertEqual(stored.variant, record.variant)
        result = await self.scanned(storage)
        (found,) = result.records.values()
        self.assertEqual(found.variant, record.variant)
        self.assertEqual(found.replace(summary=None), stored.replace(summary=None))

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
