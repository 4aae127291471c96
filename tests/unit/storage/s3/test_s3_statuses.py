"""
Issue 45: the projects' statuses (PEP 792) reach every server on a shared
bucket by its next look for changes, as files do: a quarantine set on one
server, or imported into the bucket by C{pypid-admin import}, is not walked
around through another server. Two (or three) whole servers in this
process on one bucket of moto's S3 server (L{tests.harness.s3}).
"""

import os
import time
from functools import partial

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pypid.bundle.archive import open_writer
from pypid.bundle.pack import pack_bundle
from pypid.core.dists.distribution import inspect
from pypid.core.dists.readme import render_description
from pypid.core.indexes.index import Index
from pypid.core.indexes.project_status import ProjectStatus
from pypid.state.merge import apply_statuses, checked_statuses
from pypid.storage.base.interface import StorageError
from pypid.storage.bucket.layout import Layout
from pypid.storage.bucket.storage import BucketStorage
from tests.harness import s3server
from tests.harness.admin import run_admin
from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.fakes import run_now, write_file
from tests.harness.memory_storage import MemoryStorage
from tests.harness.s3 import PREFIX, bucket_server, s3_config, s3_storage
from tests.harness.storage import UPLOAD_TIME


class SharedBucketCase(TestCase):
    """A bucket of its own, and a thread pool for the storages' blocking work."""

    def setUp(self):
        self.pool = ThreadPool(minthreads=1, maxthreads=4, name="test-s3-statuses")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.run = partial(deferToThreadPool, reactor, self.pool)
        self.bucket = s3server.new_bucket()

    def server(self, **options):
        """A server on the bucket, started (a L{tests.harness.s3.BucketServer})."""
        return bucket_server(self, self.run, self.bucket, **options)

    async def publish(self, storage, filename, data):
        """Publish C{data} through C{storage} as an upload does; return its record."""
        temp = write_file(os.path.join(storage.temp_dir, "up-" + filename), data)
        inspected = inspect(temp, filename, filename, UPLOAD_TIME)
        stored = await storage.publish(temp, inspected.record, inspected.metadata)
        await storage.settle()
        return stored

    async def two_servers(self):
        """
        Two servers on the bucket, both serving a wheel of holy-grail, each
        having looked for changes once: C{(a, b, record)}.
        """
        writer = s3_storage(self, self.run, self.bucket)
        await writer.prepare()
        record = await self.publish(writer, *make_wheel("holy-grail", "1.0"))
        a, b = await self.server(), await self.server()
        await a.poll()
        await b.poll()
        self.assertEqual((await a.file_code(record), await b.file_code(record)), (302, 302))
        return a, b, record


class StatusPropagationTests(SharedBucketCase):
    """A status an admin sets on one server reaches the others at their next poll."""

    async def test_quarantine_reaches_other_server(self):
        """
        Server A quarantines a project; after B's next poll, B's pages say
        so and list no file, and B refuses the file to readers.
        """
        a, b, record = await self.two_servers()
        self.assertEqual(await a.set_status("holy-grail", "quarantined", "malware report"),
                         (200, b"holy-grail is quarantined: malware report\n"))
        await b.poll()
        self.assertEqual(b.index.status("holy-grail"),
                         ProjectStatus("quarantined", "malware report"))
        page = await b.page("holy-grail")
        self.assertEqual(page["project-status"],
                         {"status": "quarantined", "reason": "malware report"})
        self.assertEqual(page["files"], [])
        self.assertEqual(await b.file_code(record), 404)
        code, body = await b.get("project/holy-grail/")
        self.assertEqual(code, 200)
        self.assertIn(b"This project is quarantined", body)
        self.assertNotIn(record.filename.encode(), body)
        # (A's own poll reads its own change again, and keeps it)
        await a.poll()
        self.assertEqual(await a.file_code(record), 404)

    async def test_clearing_reaches_other_server(self):
        """
        A quarantine lifted on A (the project archived, then active) is
        lifted on B at its next poll: B serves the file again, and its
        pages carry the status A set, then none.
        """
        a, b, record = await self.two_servers()
        await a.set_status("holy-grail", "quarantined")
        await b.poll()
        self.assertEqual(await b.file_code(record), 404)
        self.assertEqual(await a.set_status("holy-grail", "archived", "moved on"),
                         (200, b"holy-grail is archived: moved on\n"))
        await b.poll()
        page = await b.page("holy-grail")
        self.assertEqual(page["project-status"], {"status": "archived", "reason": "moved on"})
        self.assertEqual([f["filename"] for f in page["files"]], [record.filename])
        self.assertEqual(await b.file_code(record), 302)
        self.assertEqual(await a.set_status("holy-grail", "active"), (200, b"holy-grail is active\n"))
        await b.poll()
        self.assertNotIn("project-status", await b.page("holy-grail"))
        self.assertIsNone(b.index.status("holy-grail"))
        self.assertEqual(await b.file_code(record), 302)

    async def test_set_on_either_server(self):
        """B quarantines, A releases: each learns the other's change; a status is read once."""
        a, b, record = await self.two_servers()
        await b.set_status("holy-grail", "quarantined")
        await a.poll()
        self.assertEqual(await a.file_code(record), 404)
        await a.set_status("holy-grail", "active")
        await b.poll()
        self.assertEqual(await b.file_code(record), 302)
        calls = []
        original = b.storage._client.call

        async def counting(method, key="", *args, **kwargs):
            calls.append(method)
            return await original(method, key, *args, **kwargs)
        b.storage._client.call = counting
        await b.poll()
        self.assertEqual(calls, ["GET", "GET"],
                         "a poll with nothing new: the journal's listing, the intents'")

    async def test_status_marker_late(self):
        """
        A quarantine whose marker B's look does not see (late in the
        listing, or named by a clock too far behind), and a file of the
        project kept after it, which that look brings: B reads the
        project's status with the file, after it, and never serves it.
        """
        a, b, record = await self.two_servers()
        # The status object alone: its marker is not in the bucket yet.
        s3server.client().put_object(
            Bucket=self.bucket, Key=Layout(PREFIX).statuses_prefix + "holy-grail",
            Body=ProjectStatus("quarantined", "late marker").to_bytes())
        newer = await self.publish(a.storage, *make_wheel("holy-grail", "2.0"))
        await b.poll()
        self.assertEqual(b.index.held(newer.filename), newer, "the look brings the file")
        self.assertEqual(b.index.status("holy-grail"), ProjectStatus("quarantined", "late marker"))
        self.assertEqual((await b.file_code(newer), await b.file_code(record)), (404, 404))

    async def test_not_told(self):
        """
        A status whose entry cannot be written to the journal fails (the
        caller, an import, stops before any file); the journal writes it
        when it tries again, and the other server takes the status in then.
        """
        a, b, record = await self.two_servers()
        original = a.storage._client.put
        journal = PREFIX + ".pypid/journal/"

        async def failing(key, *args, **kwargs):
            if key.startswith(journal):
                raise StorageError("S3 failed: 503 SlowDown")
            return await original(key, *args, **kwargs)
        a.storage._client.put = failing
        await self.assertFailure(
            a.storage.keep_status("holy-grail", ProjectStatus("quarantined").to_bytes()),
            StorageError)
        a.storage._client.put = original
        await b.poll()
        self.assertEqual(await b.file_code(record), 302, "not told yet")
        # (the journal's next try, without waiting for its back-off)
        self.assertTrue(await a.storage._changes.store_changes.journal.flush())
        await b.poll()
        self.assertEqual(await b.file_code(record), 404)


class ImportTests(SharedBucketCase):
    """
    A bundle imported into the bucket (C{pypid-admin import}) with a
    quarantined project: no server on the bucket ever serves its files.
    """

    async def bundle(self):
        """A bundle of a storage where holy-grail (two files) is quarantined; its path."""
        clock = Clock()
        clock.advance(UPLOAD_TIME + 1000)
        source = MemoryStorage(os.path.abspath(self.mktemp()), clock)
        source.prepare()
        for filename, data in (make_wheel("holy-grail", "1.0"), make_sdist("holy-grail", "1.0"),
                               make_wheel("spam", "1.0")):
            temp = write_file(os.path.join(source.temp_dir, "up-" + filename), data)
            inspected = inspect(temp, filename, filename, UPLOAD_TIME,
                                details=render_description)
            await source.publish(temp, inspected.record, inspected.metadata, inspected.details)
        await source.keep_status("holy-grail",
                                 ProjectStatus("quarantined", "malware reported").to_bytes())
        path = os.path.join(os.path.abspath(self.mktemp()), "bundle")
        os.makedirs(os.path.dirname(path))
        await pack_bundle(source, open_writer(path), None, run_now, clock, None)
        return path

    async def test_imported_quarantine_never_served(self):
        """
        A server on the bucket polls right after each file the import
        publishes: the poll that brings a file of the quarantined project
        brings its quarantine too, so the file is never served; the
        import says nothing of restarting.
        """
        b = await self.server()
        path = await self.bundle()
        brought = []
        publish = BucketStorage.publish

        async def publish_then_poll(storage, *args, **kwargs):
            stored = await publish(storage, *args, **kwargs)
            await storage.settle()
            await b.poll()
            self.assertEqual(b.index.held(stored.filename), stored, "the poll brings it")
            brought.append((stored, await b.file_code(stored)))
            return stored
        self.patch(BucketStorage, "publish",
                   lambda storage, *args, **kwargs: ensureDeferred(
                       publish_then_poll(storage, *args, **kwargs)))
        code, out, err = await run_admin(s3_config(self, self.bucket), "import", source=path)
        self.assertEqual((code, err), (0, ""))
        codes = {record.filename: code for record, code in brought}
        self.assertEqual(len(codes), 3)
        for record, code in brought:
            self.assertEqual(code, 404 if record.project == "holy-grail" else 302,
                             record.filename)
        page = await b.page("holy-grail")
        self.assertEqual((page["project-status"]["status"], page["files"]), ("quarantined", []))
        self.assertNotIn("restart", out)

    async def test_full_check_takes_statuses(self):
        """
        A server whose view is checked against a full listing (it started
        from a snapshot) takes in a quarantine put in the bucket behind
        the markers' back with the listing's files: the file it finds is
        never served.
        """
        writer = s3_storage(self, self.run, self.bucket)
        await writer.prepare()
        await self.publish(writer, *make_wheel("spam", "1.0"))
        b = await self.server()
        known = (await b.storage.scan({}, 0.0)).records
        since = time.time()
        time.sleep(0.01)
        started = await b.storage.scan(known, since, ())
        self.assertTrue(b.storage.reconcile_due())
        b.index.load(started.records.values(), started.tombstones)
        # A status object and a file, by hand: no change marker names them.
        s3server.client().put_object(
            Bucket=self.bucket, Key=Layout(PREFIX).statuses_prefix + "by-hand",
            Body=ProjectStatus("quarantined").to_bytes())
        filename, data = make_wheel("by-hand", "1.0")
        s3server.client().put_object(Bucket=self.bucket, Key=PREFIX + filename, Body=data)
        await b.poll()
        record = b.index.held(filename)
        self.assertIsNotNone(record, "the full check found the file")
        self.assertTrue(b.index.statuses.quarantined("by-hand"))
        self.assertEqual(await b.file_code(record), 404)


class TakenInTests(SynchronousTestCase):
    """How the statuses a shared storage reports are taken into an index (pure)."""

    def test_applied_where_they_differ(self):
        """A reported status is set as an admin's is; one in force already is left alone."""
        index = Index(lambda record: "")
        index.statuses.set("spam", ProjectStatus("archived"))
        bookmark = index.statuses.serial
        changed = apply_statuses(index, {"spam": ProjectStatus("archived"),
                                         "eggs": ProjectStatus("quarantined"), "ham": None})
        self.assertEqual(changed, ["eggs"])
        self.assertEqual(index.statuses.changed_since(bookmark), {"eggs"})
        self.assertEqual(apply_statuses(index, {"spam": None}), ["spam"])
        self.assertEqual(index.statuses.all(), {"eggs": ProjectStatus("quarantined")})

    def test_full_check_never_undoes_newer(self):
        """
        A full check's statuses (read after its files) stand for every
        project, those it did not find active, except where the index's
        changed while it ran: that change is newer than what it read.
        """
        index = Index(lambda record: "")
        index.statuses.set("spam", ProjectStatus("quarantined"))
        index.statuses.set("old", ProjectStatus("archived"))
        began = index.statuses.serial
        index.statuses.set("spam", None)  # (released through this server meanwhile)
        read = {"spam": ProjectStatus("quarantined"), "eggs": ProjectStatus("quarantined")}
        self.assertEqual(checked_statuses(index, read, began),
                         {"eggs": ProjectStatus("quarantined"), "old": None})
