"""
Tests for the recycle bin (issue 29): L{pypid.core.indexes.index.Index} holding
binned files apart (not listed, not served, their names taken), the
snapshot keeping them, every storage keeping the binned state beside the
file, L{pypid.state.recycle_bin} (binning, restoring, purging when due,
audited), and the API: a deletion into the bin, C{GET /api/recycle-bin},
C{POST /api/files/<f>/restore}.
"""

import hashlib
import json
import os

from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for
from pypid.state.indexes import IndexRegistry
from pypid.state.merge import apply_changes, merge_scan
from pypid.state.recycle_bin import BinUpkeep, NotInBin, RecycleBin, RestoreConflict
from pypid.storage.base.capabilities import Changed
from pypid.storage.base.interface import StorageError
from pypid.storage.base.locks import KeyedLock
from pypid.storage.base.snapshot import SnapshotError, encode
from pypid.storage.base.snapshot_reading import decode
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.storage.folder.local import LocalStorage
from tests.harness.distributions import make_wheel
from tests.harness.fakes import run_now, twine_fields
from tests.harness.indexes import Stack, audit_entries
from tests.harness.memory_storage import MemoryStorage
from tests.harness.web import WHEEL, WHEEL_NAME, _ServerMixin, basic

NOW = 1767225600.0
WEEK = 7 * 86400.0


def record(filename="holy_grail-1.0-py3-none-any.whl", version="1.0", **changes):
    """A record of the project holy-grail."""
    made = FileRecord(filename, "holy-grail", "Holy.Grail", version, "bdist_wheel", filename,
                      10, "ab" * 32, NOW)
    return made.replace(**changes) if changes else made


class DefaultTests(SynchronousTestCase):
    """The bin is on by default, for a week, on every hosted index."""

    def test_default(self):
        from pypid.config import load_config
        config = load_config(None, (), environ={})
        self.assertEqual(config.retention.recycle_bin, WEEK)
        text = "[index:staging]\n[index:release]\nrecycle_bin = 1d\n[retention]\nrecycle_bin = 2d\n"
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        config = load_config(path, (), environ={})
        self.assertEqual(config.retention.recycle_bin, 2 * 86400.0)
        self.assertEqual(config.indexes["staging"].recycle_bin, 2 * 86400.0)
        self.assertEqual(config.indexes["release"].recycle_bin, 86400.0)

    def test_refused(self):
        """A negative or unreadable time, or a bin on a view, stops the start with one line."""
        from pypid.config import ConfigError, load_config
        for text, message in (
                ("[retention]\nrecycle_bin = -1d\n", "[retention] recycle_bin: expected a "
                                                      "duration"),
                ("[retention]\nrecycle_bin = soon\n", "[retention] recycle_bin: expected"),
                ("[index:a]\n[index:v]\nview = yes\nbases = a\nrecycle_bin = 1d\n",
                 "[index:v] recycle_bin: a view holds no files"),
                ("[index:default]\nrecycle_bin = 1d\n",
                 "[index:default] recycle_bin: the default index's recycle_bin is set in "
                 "[retention]")):
            path = self.mktemp()
            with open(path, "w") as f:
                f.write(text)
            with self.assertRaises(ConfigError) as caught:
                load_config(path, (), environ={})
            self.assertIn(message, str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))


class IndexTests(SynchronousTestCase):
    """The index holds binned files apart from the live ones."""

    def setUp(self):
        self.index = Index(file_url_for(None))

    def test_binned_not_listed(self):
        """
        A binned file is neither found, listed nor counted; its project
        stays, without files, so that its name stays hosted (issue 41).
        """
        live = record()
        self.index.add(live)
        self.index.add(live.replace(binned=NOW))
        self.assertIsNone(self.index.get_file(live.filename))
        self.assertEqual(self.index.binned_file(live.filename).binned, NOW)
        self.assertEqual(self.index.held(live.filename).binned, NOW)
        self.assertEqual([(p.name, p.files) for p in self.index.projects()],
                         [("holy-grail", {})])
        self.assertEqual(len(self.index), 0)
        self.assertEqual(self.index.records(), [])
        self.assertFalse(self.index.is_deleted(live.filename))
        # restored: as it was
        self.index.add(live)
        self.assertEqual(self.index.get_file(live.filename), live)
        self.assertEqual(self.index.binned(), [])
        self.assertEqual([p.name for p in self.index.projects()], ["holy-grail"])

    def test_other_files_stay(self):
        one, two = record(), record("holy_grail-2.0-py3-none-any.whl", "2.0")
        self.index.add(one)
        self.index.add(two)
        self.index.add(one.replace(binned=NOW))
        self.assertEqual(self.index.project("holy-grail").versions(), ["2.0"])
        self.assertEqual([r.filename for r in self.index.binned()], [one.filename])

    def test_purged(self):
        """A binned file removed leaves a tombstone, as a deletion did."""
        binned = record(binned=NOW)
        self.index.add(binned)
        self.index.remove(binned.filename)
        self.assertIsNone(self.index.held(binned.filename))
        self.assertTrue(self.index.is_deleted(binned.filename))

    def test_load(self):
        """A load puts the binned records among those given in the bin."""
        one, two = record(), record("holy_grail-2.0-py3-none-any.whl", "2.0", binned=NOW)
        self.index.load([one, two])
        self.assertEqual(self.index.records(), [one])
        self.assertEqual(self.index.binned(), [two])

    def test_merge(self):
        """
        What storage says of a binned file is taken as of any: binned
        elsewhere, restored elsewhere, purged elsewhere.
        """
        live = record()
        self.index.add(live)
        binned = live.replace(binned=NOW)
        apply_changes(self.index, [Changed(live.filename, binned, False)])
        self.assertEqual(self.index.binned(), [binned])
        apply_changes(self.index, [Changed(live.filename, live, False)])
        self.assertEqual(self.index.records(), [live])
        apply_changes(self.index, [Changed(live.filename, binned, False)])
        apply_changes(self.index, [Changed(live.filename, None, True)])
        self.assertIsNone(self.index.held(live.filename))
        self.assertTrue(self.index.is_deleted(live.filename))
        # a scan finding a binned file the snapshot knew as binned changes nothing
        other = Index(file_url_for(None))
        other.load([binned])
        counts = merge_scan(other, {binned.filename: binned}, (),
                            {binned.filename: binned}, ())
        self.assertEqual(counts, {"added": 0, "changed": 0, "gone": 0})
        self.assertEqual(other.binned(), [binned])


class SnapshotTests(SynchronousTestCase):
    """The snapshot keeps the binned files in a line of their own."""

    def test_round_trip(self):
        live, binned = record(), record("holy_grail-2.0-py3-none-any.whl", "2.0", binned=NOW)
        data = encode([live], [], NOW, 3, binned=[binned])
        lines = data.decode().splitlines()
        self.assertEqual(len(lines), 5)
        self.assertEqual(json.loads(lines[3])["binned"][0]["binned"], NOW)
        for later in (False, True):
            snap = decode(data, later=later)
            index = Index(file_url_for(None))
            index.load(snap.records.values(), snap.tombstones, snap.serial, snap.later)
            self.assertEqual(index.binned(), [binned])
            self.assertEqual(index.records(), [live])
            self.assertEqual(snap.records[binned.filename], binned)

    def test_without_bin(self):
        """Without binned files the snapshot is byte for byte what it was."""
        self.assertNotIn(b"binned", encode([record()], [], NOW))

    def test_damaged_line(self):
        data = encode([], [], NOW, binned=[record(binned=NOW)])
        self.assertRaises(SnapshotError, decode, data.replace(b'"binned":1767225600.0',
                                                               b'"binned":"soon"'))
        self.assertRaises(SnapshotError, decode, data.replace(b',"binned":1767225600.0', b""))


class StorageTests(SynchronousTestCase):
    """Every storage keeps a file's binned state beside it (S3: tests.e2e.test_s3)."""

    def check(self, make):
        clock = Clock()
        clock.advance(NOW)
        storage = make(clock)
        self.successResultOf(storage.prepare())
        name, data = make_wheel("Holy.Grail", "1.0")
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        stored = self.successResultOf(storage.publish(path, record(name).replace(
            size=len(data), sha256=hashlib.sha256(data).hexdigest()), None))
        binned = stored.replace(binned=NOW + 5)
        self.successResultOf(storage.update(binned))
        scanned = self.successResultOf(storage.scan({}, 0)).records
        self.assertEqual(scanned[name].binned, NOW + 5)
        self.successResultOf(storage.update(binned.replace(binned=None)))
        scanned = self.successResultOf(storage.scan({}, 0)).records
        self.assertIsNone(scanned[name].binned)
        return storage

    def test_memory(self):
        self.check(lambda clock: MemoryStorage(os.path.abspath(self.mktemp()), clock))

    def test_local(self):
        root = os.path.abspath(self.mktemp())
        self.check(lambda clock: LocalStorage(root, run_now, clock))


class RecycleBinTests(SynchronousTestCase):
    """L{RecycleBin} and L{BinUpkeep} over memory storage, on a clock."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.storage = MemoryStorage(os.path.abspath(self.mktemp()), self.clock)
        self.successResultOf(self.storage.prepare())
        self.index = Index(file_url_for(None))
        self.locks = KeyedLock(self.clock)
        self.bin = RecycleBin(self.index, self.storage, self.locks, self.clock, WEEK)
        self.audit = MemoryJournal(self.clock)
        name, data = make_wheel("Holy.Grail", "1.0")
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        self.live = self.successResultOf(self.storage.publish(path, record(name).replace(
            size=len(data), sha256=hashlib.sha256(data).hexdigest()), None))
        self.index.add(self.live)

    def test_put_restore(self):
        binned = self.successResultOf(self.bin.put(self.live))
        self.assertEqual(binned.binned, NOW)
        self.assertIsNone(self.index.get_file(self.live.filename))
        self.assertEqual(self.storage._sidecars.records[self.live.filename].binned, NOW)
        restored = self.successResultOf(self.bin.restore(self.live.filename))
        self.assertEqual(restored, self.live)
        self.assertEqual(self.index.get_file(self.live.filename), self.live)
        self.assertIsNone(self.storage._sidecars.records[self.live.filename].binned)
        self.failureResultOf(self.bin.restore(self.live.filename), NotInBin)

    def test_restore_conflict(self):
        """A file of the same distribution uploaded since stops a restore."""
        self.successResultOf(self.bin.put(self.live))
        other = self.live.replace(filename="Holy.Grail-1.0.0-py3-none-any.whl",
                                  path="Holy.Grail-1.0.0-py3-none-any.whl")
        self.index.add(other)
        self.failureResultOf(self.bin.restore(self.live.filename), RestoreConflict)
        self.assertIsNotNone(self.index.binned_file(self.live.filename))

    def test_off(self):
        """A bin of 0 days deletes at once."""
        self.bin.keep_for = 0.0
        self.assertIsNone(self.successResultOf(self.bin.put(self.live)))
        self.assertTrue(self.index.is_deleted(self.live.filename))
        self.assertIn(self.live.filename, self.storage._sidecars.tombstones)

    def test_upkeep(self):
        """
        The upkeep purges a file once kept its time (within an interval),
        behind a tombstone, with an audit entry; not before, and not one
        restored meanwhile.
        """
        self.successResultOf(self.bin.put(self.live))
        upkeep = BinUpkeep({"default": self.bin}, self.audit, self.clock, interval=3600)
        upkeep.startService()
        self.clock.advance(WEEK - 3600)
        self.assertIsNotNone(self.index.binned_file(self.live.filename))
        self.clock.advance(3600)
        self.assertIsNone(self.index.held(self.live.filename))
        self.assertTrue(self.index.is_deleted(self.live.filename))
        self.assertNotIn(self.live.path, self.storage.objects)
        self.successResultOf(self.audit.flush())
        entries = audit_entries(self.audit)
        self.assertEqual([(e["event"], e["filename"]) for e in entries],
                         [("purge", self.live.filename)])
        self.assertIn("kept 7 days", entries[0]["detail"])
        self.successResultOf(upkeep.stopService())

    def test_purge_after_restore(self):
        """A purge of a record no longer in the bin (restored meanwhile) does nothing."""
        binned = self.successResultOf(self.bin.put(self.live))
        self.successResultOf(self.bin.restore(self.live.filename))
        self.assertFalse(self.successResultOf(self.bin.purge(binned)))
        self.assertEqual(self.index.get_file(self.live.filename), self.live)

    def test_purge_fails(self):
        """A purge the storage refuses leaves the file in the bin, for the next look."""
        self.successResultOf(self.bin.put(self.live))
        upkeep = BinUpkeep({"default": self.bin}, self.audit, self.clock, interval=3600)
        upkeep.bins = {"default": RecycleBin(self.index, FailingDelete(self.storage), self.locks,
                                             self.clock, WEEK)}
        upkeep.startService()
        self.clock.advance(WEEK)
        self.assertIsNotNone(self.index.binned_file(self.live.filename))
        upkeep.bins = {"default": self.bin}
        self.clock.advance(3600)
        self.assertTrue(self.index.is_deleted(self.live.filename))


class APITests(_ServerMixin, SynchronousTestCase):
    """The API: a deletion into the bin, the bin listed, a file restored."""

    def access_model(self):
        return AccessModel(read=self.read, admins=frozenset({"alice"}))

    def recycle_bin(self):
        self.bin = RecycleBin(self.index, self.storage, self.locks, self.clock, WEEK)
        return self.bin

    def index_registry(self):
        return IndexRegistry({"default": Stack("default", self.index, self.storage, self.locks,
                                               bin=self.bin)},
                             {"default": ("default",)}, {})

    def setUp(self):
        self.locks = KeyedLock()
        self.index = None
        super().setUp()

    def test_delete_restore(self):
        self.uploaded()
        response, body = self.request("DELETE", f"/api/files/{WHEEL_NAME}", auth=True)
        self.assertEqual(response.code, 200, body)
        # not listed, not served
        self.assertNotIn(WHEEL_NAME.encode(), self.get("/simple/holy-grail/")[1])
        self.assertEqual(self.get(f"/files/holy-grail/{WHEEL_NAME}")[0].code, 404)
        # its name is taken
        response, body = self.upload()
        self.assertEqual(response.code, 400)
        self.assertTrue(body.startswith(b"File already exists"), body)
        self.assertIn(b"recycle bin", body)
        # the bin lists it
        response, body = self.get("/api/recycle-bin", auth=True)
        self.assertEqual(response.code, 200, body)
        listed = json.loads(body)
        self.assertEqual([f["filename"] for f in listed["files"]], [WHEEL_NAME])
        self.assertEqual(listed["files"][0]["purged"], "2026-01-08T00:00:00.000000Z")
        # restored: served again, the same bytes
        response, body = self.request("POST", f"/api/files/{WHEEL_NAME}/restore", auth=True)
        self.assertEqual(response.code, 200, body)
        response, body = self.get(f"/files/holy-grail/{WHEEL_NAME}")
        self.assertEqual((response.code, body), (200, WHEEL))
        self.assertIn(WHEEL_NAME.encode(), self.get("/simple/holy-grail/")[1])
        self.assertEqual(json.loads(self.get("/api/recycle-bin", auth=True)[1])["files"], [])

    def test_refusals(self):
        self.uploaded()
        # not in the bin
        response, body = self.request("POST", f"/api/files/{WHEEL_NAME}/restore", auth=True)
        self.assertEqual(response.code, 404, body)
        self.assertIn(b"recycle bin", body)
        response, _ = self.request("POST", "/api/files/nothing-1.0.tar.gz/restore", auth=True)
        self.assertEqual(response.code, 404)
        self.request("DELETE", f"/api/files/{WHEEL_NAME}", auth=True)
        # without credentials; without the right
        self.assertEqual(self.request("POST", f"/api/files/{WHEEL_NAME}/restore")[0].code, 401)
        self.assertEqual(self.get("/api/recycle-bin")[0].code, 401)
        self.assertEqual(self.get("/api/recycle-bin", auth=basic_of("dave"))[0].code, 403)
        self.assertEqual(self.get("/api/recycle-bin?index=nope", auth=True)[0].code, 404)
        # another spelling of it uploaded meanwhile: 409, and it stays in the bin
        other_name, other = make_wheel("holy-grail", "1.0.0")
        response, body = self.upload(other_name, other,
                                     fields=twine_fields("holy-grail", "1.0.0", other))
        self.assertEqual(response.code, 200, body)
        response, body = self.request("POST", f"/api/files/{WHEEL_NAME}/restore", auth=True)
        self.assertEqual(response.code, 409, body)
        self.assertIsNotNone(self.index.binned_file(WHEEL_NAME))

    def test_audited(self):
        self.uploaded()
        self.request("DELETE", f"/api/files/{WHEEL_NAME}", auth=True)
        self.request("POST", f"/api/files/{WHEEL_NAME}/restore", auth=True)
        log = self.web.app.audit._trail.log
        self.successResultOf(log.flush())
        events = [(e["event"], e.get("detail")) for e in audit_entries(log)]
        self.assertEqual(events[1:], [("delete", "to the recycle bin, kept 7 days"),
                                      ("restore", None)])


def basic_of(user):
    """An Authorization header for C{user} (the test users share a password)."""
    return basic(user)


class FailingDelete:
    """A storage whose deletes fail."""

    def __init__(self, inner):
        self.inner = inner

    def delete(self, record):
        return fail(StorageError("the disk is read-only"))

    def __getattr__(self, name):
        return getattr(self.inner, name)
