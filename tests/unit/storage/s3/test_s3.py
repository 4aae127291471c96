"""
Tests of the S3 backend against a real S3-compatible server (moto's, on a
loopback port): the storage contract every backend passes, and what only a
shared bucket promises (conditional writes, multipart uploads, presigned
URLs, change markers, signatures checked by the server, failures).
"""

import hashlib
import os
import time
import urllib.parse

from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from pypid.core.records.audit_chain import BEGINNING
from pypid.core.records.change_kinds import ChangeKind
from pypid.storage.base import snapshot as snapshots
from pypid.storage.base import snapshot_reading
from pypid.storage.base.capabilities import ISharedStorage, IUsageStorage
from pypid.storage.base.interface import (
    FileExists,
    MemoryFile,
    RecordRefused,
    Redirect,
    RemoteBytes,
    RemoteFile,
    StorageError,
)
from pypid.storage.base.journal_records import RecordJournal
from pypid.storage.bucket.bucket_records import BucketRecords
from pypid.storage.bucket.layout import Layout
from pypid.storage.bucket.object_reads import IdleGuard
from pypid.storage.s3 import api as s3api
from pypid.storage.s3.credentials import CredentialSource
from pypid.storage.s3.sign import Credentials
from tests.harness import s3server
from tests.harness.distributions import make_wheel
from tests.harness.fakes import write_file
from tests.harness.memory_storage import MemoryStorage
from tests.harness.records import make_record
from tests.harness.s3 import PREFIX, S3Case
from tests.harness.storage import AdoptionContractMixin, StorageContractMixin, collected


def presigned(storage, path):
    """The URL C{storage} redirects a download of its file at C{path} to (its signed URL)."""
    return storage.locate(make_record(path=path)).url


def count_calls(storage):
    """
    The list C{storage}'s S3 client records its requests in from now on,
    as C{(method, key, prefix listed)}.
    """
    calls = []
    original = storage._client.call

    async def counting(method, key="", *args, **kwargs):
        calls.append((method, key, dict(kwargs.get("params", ())).get("prefix")))
        return await original(method, key, *args, **kwargs)
    storage._client.call = counting
    return calls

def bucket_state(bucket, store=s3server.MOTO):
    """Every object of C{bucket} (any prefix): key, ETag, size, time and user metadata."""
    client = store.client()
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", ())
    return {item["Key"]: (item["ETag"], item["Size"], item["LastModified"],
                          client.head_object(Bucket=bucket, Key=item["Key"])["Metadata"])
            for item in listed}


class S3ContractTests(AdoptionContractMixin, StorageContractMixin, S3Case):
    """The storage contract, for L{S3Storage} on a moto bucket (L{SeaweedContractTests}: on SeaweedFS)."""

    #: where a named index's files are under the bucket's prefix (issue 26)
    TARGET = PREFIX + ".indexes/release/"

    def make_storage(self):
        return self.storage_on()

    def make_target(self):
        """The storage of another index on the same bucket, under its own prefix."""
        return self.storage_on(prefix=self.TARGET)

    async def reopen(self, storage):
        """A storage made anew on the same bucket and prefix, prepared, as after a restart."""
        return await self.ready_storage(prefix=storage._layout.prefix)

    async def test_poll_reads_a_promotion(self):
        """
        Another server's look at a file promoted into the index reads how
        it came (before: the record alone, so a dated view there took it as
        uploaded when its bytes were, not promoted later).
        """
        source, target, record, _, _ = await self.source_and_target()
        watcher = await self.reopen(target)
        await watcher.scan({}, 0.0)
        adopted = await target.adopt(source, record, self.PROMOTION)
        await self.settle(target)
        [change] = (await watcher.poll()).files
        self.assertEqual((change.record, change.promotion), (adopted, self.PROMOTION))

    async def test_record_too_large(self):
        """
        A record S3 could not keep in its 2 KB of user metadata (what
        cannot be cut is over) is refused before anything is written,
        saying why; the spooled file is gone, the name still free.
        """
        storage = await self.ready()
        filename, data = make_wheel("holy-grail", "1.0")
        temp, record, metadata = self.describe(storage, filename, data)
        record = record.replace(requires_python="<4," * 300)
        with self.assertRaises(RecordRefused) as caught:
            await storage.publish(temp, record, metadata, None)
        self.assertIn("S3 user metadata", str(caught.exception))
        self.assertFalse(os.path.exists(temp))
        self.assertEqual((await self.scanned(storage)).records, {})

    async def test_adopt_copies_in_the_store(self):
        """
        A promotion is a copy on the store's side: the target's client
        copies the file (its one part, on moto, which ignores a conditional
        C{CopyObject}) and its metadata with C{x-amz-copy-source}, and
        nobody GETs the file or its metadata.
        """
        source, target, record, _, data = await self.source_and_target()
        seen = []
        for storage in (source, target):
            original = storage._client.call

            async def counting(method, key="", *args, _original=original, **kwargs):
                headers = kwargs.get("headers") or {}
                seen.append((method, key, headers.get("x-amz-copy-source"),
                             dict(kwargs.get("params", ()))))
                return await _original(method, key, *args, **kwargs)
            storage._client.call = counting
        adopted = await target.adopt(source, record, self.PROMOTION)
        await self.settle(target)
        file_key, metadata_key = PREFIX + record.path, PREFIX + record.path + ".metadata"
        copies = {(key, copied) for method, key, copied, _ in seen if copied}
        self.assertIn((self.TARGET + adopted.filename, "/" + self.bucket + "/" + file_key),
                      copies)
        self.assertIn((self.TARGET + adopted.filename + ".metadata",
                       "/" + self.bucket + "/" + metadata_key), copies)
        object_copy = [params for method, key, copied, params in seen
                       if copied and key == self.TARGET + adopted.filename + ".metadata"]
        self.assertEqual(object_copy, [{}])  # (a CopyObject: no part number)
        self.assertEqual([(method, key) for method, key, _, _ in seen
                          if method == "GET" and key in (file_key, metadata_key,
                                                         self.TARGET + adopted.filename)], [])
        self.assertEqual(await self.read_location(target.locate(adopted)), data)
        head = self.store.client().head_object(Bucket=self.bucket,
                                             Key=self.TARGET + adopted.filename)
        self.assertEqual(head["Metadata"]["sha256"], record.sha256)
        self.assertEqual(head["Metadata"]["upload-time"], repr(float(record.upload_time)))

    async def test_adopt_conditional_copy(self):
        """
        Where the store refuses a conditional C{CopyObject} over an object,
        a file is copied in one request, with C{If-None-Match: *}.
        """
        source, target, record, _, data = await self.source_and_target()
        target._client._uploads._conditional_copy = True
        calls = count_calls(target)
        adopted = await target.adopt(source, record, self.PROMOTION)
        self.assertEqual([c for c in calls if c[1] == self.TARGET + adopted.filename
                          and c[0] in ("PUT", "POST")], [("PUT", self.TARGET + adopted.filename,
                                                          None)])
        self.assertEqual(await self.read_location(target.locate(adopted)), data)

    async def test_adopt_other_store_refused(self):
        """A file is promoted only between storages of one store, never through pypid."""
        source, target, record, _, _ = await self.source_and_target()
        other = MemoryStorage(os.path.abspath(self.mktemp()), Clock())
        with self.assertRaises(StorageError):
            await target.adopt(other, record, self.PROMOTION)

    def put_foreign(self, storage, key, data):
        self.store.client().put_object(Bucket=self.bucket, Key=PREFIX + key, Body=data)

    def holding(self, storage):
        """Every object of the bucket: its key, ETag, size, time and user metadata."""
        return bucket_state(self.bucket, self.store)

    async def read_location(self, location):
        if isinstance(location, MemoryFile):
            return location.data
        if isinstance(location, Redirect):
            response = await self.fetch(location.url)
            self.assertEqual(response.code, 200)
            return await response.content()
        if isinstance(location, RemoteBytes):
            return await location.read()
        self.assertIsInstance(location, RemoteFile)
        return await collected(await location.fetch(0, location.size))

    def test_shared(self):
        """The S3 backend is a shared storage."""
        self.assertTrue(ISharedStorage.providedBy(self.make_storage()))


class S3StorageTests(S3Case):
    """What the S3 backend adds to the contract."""

    async def test_layout(self):
        """A file, its metadata sibling, and its record in the object's user metadata."""
        storage = await self.ready_storage()
        temp, record, metadata, data = self.spool_wheel(storage, requires_python=">=3.9, <4")
        await storage.publish(temp, record, metadata)
        keys = self.keys()
        self.assertIn(PREFIX + record.filename, keys)
        self.assertIn(PREFIX + record.filename + ".metadata", keys)
        head = self.store.client().head_object(Bucket=self.bucket, Key=PREFIX + record.filename)
        self.assertEqual(head["Metadata"]["sha256"], record.sha256)
        self.assertEqual(urllib.parse.unquote(head["Metadata"]["requires-python"]), ">=3.9, <4")
        self.assertEqual(head["ContentLength"], len(data))

    async def test_usage_records(self):
        """Usage records are objects under C{.pypid/usage/}: added, listed, dropped (missing ones too)."""
        storage = await self.ready_storage()
        self.assertTrue(IUsageStorage.providedBy(storage))
        self.assertEqual(await storage.usage_records(), {})
        await storage.add_usage("1-a-1", b"one")
        await storage.add_usage("1-b-1", b"two")
        self.assertEqual(await storage.usage_records(), {"1-a-1": b"one", "1-b-1": b"two"})
        self.assertIn(PREFIX + ".pypid/usage/1-a-1", self.keys())
        self.assertEqual(await storage.usage_record("1-a-1"), b"one")
        await storage.drop_usage(["1-a-1", "1-c-1"])
        self.assertEqual(await storage.usage_records(), {"1-b-1": b"two"})
        self.assertIsNone(await storage.usage_record("1-a-1"))
        self.assertNotIn(PREFIX + ".pypid/usage/1-a-1", self.keys())

    async def test_told_before_the_answer(self):
        """
        An upload, a yank and a delete answer only once their entry is in
        the store's journal (nothing left in the background): a server
        killed right after its answer leaves no change the others cannot
        learn of.
        """
        storage = await self.ready_storage()
        temp, record, metadata, _ = self.spool_wheel(storage)
        reader = RecordJournal(BucketRecords(storage._client, PREFIX + ".pypid/journal/"),
                               reactor)

        async def told():
            return [entry.filename for entry in await reader.since(BEGINNING)
                    if entry.event == ChangeKind.STORED]
        await storage.publish(temp, record, metadata)
        self.assertEqual(await told(), [record.filename])
        await storage.update(record.replace(yanked="broken"))
        self.assertEqual(await told(), [record.filename] * 2)
        await storage.delete(record)
        self.assertEqual(await told(), [record.filename] * 3)

    async def test_intent_outlives_a_kill(self):
        """
        A server killed between its write and the journal's entry (here:
        the entry never written) leaves its intent marker: another server's
        polls read the file's state again until it is there, so the upload
        is not served by the writer alone (issue 61).
        """
        writer = await self.ready_storage()
        reader = await self.ready_storage()
        await reader.scan({}, 0.0)
        await reader.poll()
        temp, record, metadata, _ = self.spool_wheel(writer)
        writer._changes.tell = lambda *subjects: succeed(None)  # (killed before it)
        await writer.publish(temp, record, metadata)
        found = [change.record for change in (await reader.poll()).files]
        self.assertEqual([r.filename for r in found if r is not None], [record.filename])

    async def test_concurrent_publish_one_wins(self):
        """Two servers writing other bytes under one name at once: one wins, one gets FileExists."""
        one = await self.ready_storage()
        two = await self.ready_storage()
        temp1, record1, metadata1, _ = self.spool_wheel(one)
        temp2, record2, metadata2, _ = self.spool_wheel(two, module_text="X = 2\n")
        self.assertNotEqual(record1.sha256, record2.sha256)
        from twisted.internet.defer import DeferredList
        results = await DeferredList([one.publish(temp1, record1, metadata1),
                                      two.publish(temp2, record2, metadata2)],
                                     consumeErrors=True)
        outcomes = sorted(ok for ok, _ in results)
        self.assertEqual(outcomes, [False, True])
        failure = next(value for ok, value in results if not ok)
        self.assertIsInstance(failure.value, FileExists)
        winner = next(value for ok, value in results if ok)
        self.assertEqual(failure.value.sha256, winner.sha256)
        scanned = await (await self.ready_storage()).scan({}, 0.0)
        self.assertEqual(scanned.records[record1.filename].sha256, winner.sha256)

    async def test_multipart(self):
        """A file over the threshold goes up in parts and reads back whole."""
        storage = await self.ready_storage(multipart_threshold=5 << 20)
        blob = os.urandom(11 << 20)
        temp, record, metadata, data = self.spool_wheel(
            storage, extra_files=[("holy_grail/blob.bin", blob)])
        self.assertGreater(record.size, 10 << 20)
        await storage.publish(temp, record, metadata)
        got = self.store.client().get_object(Bucket=self.bucket, Key=PREFIX + record.filename)
        self.assertEqual(got["Body"].read(), data)
        scanned = await storage.scan({}, 0.0)
        self.assertEqual(scanned.records, {record.filename: record})

    async def test_failed_multipart_aborted(self):
        """A multipart upload that fails midway is aborted: no object, no open upload."""
        storage = await self.ready_storage(multipart_threshold=5 << 20)
        temp, record, metadata, _ = self.spool_wheel(
            storage, extra_files=[("holy_grail/blob.bin", os.urandom(11 << 20))])
        with open(temp, "r+b") as f:
            f.truncate(7 << 20)
        await self.assertFailure(storage.publish(temp, record, metadata), StorageError)
        # (nothing but the intent marker left before the write)
        changes = Layout(PREFIX).changes_prefix
        self.assertEqual([key for key in self.keys() if not key.startswith(changes)], [])
        uploads = self.store.client().list_multipart_uploads(Bucket=self.bucket)
        self.assertEqual(uploads.get("Uploads", []), [])
        self.assertFalse(os.path.exists(temp))

    async def test_presigned_cache(self):
        """A presigned URL is reused until buffer_time before it expires, then signed again."""
        clock = Clock()
        clock.advance(time.time())
        storage = await self.ready_storage(clock=clock, expire_after=3600.0, buffer_time=600.0)
        signed = []
        original = s3api.presign

        def presign(*args):
            signed.append(args)
            return original(*args)
        self.patch(s3api, "presign", presign)
        first = presigned(storage, "a.whl")
        self.assertIn("X-Amz-Expires=3600", first)
        self.assertEqual(len(signed), 1)
        clock.advance(2000)
        self.assertEqual(presigned(storage, "a.whl"), first)
        self.assertEqual(len(signed), 1)
        clock.advance(1001)
        presigned(storage, "a.whl")
        self.assertEqual(len(signed), 2)

    async def test_presigned_never_beyond_credentials(self):
        """Credentials that expire in 20 minutes sign URLs valid for 20 minutes, at most."""
        clock = Clock()
        clock.advance(time.time())
        credentials = CredentialSource(
            Credentials(s3server.ACCESS_KEY, s3server.SECRET_KEY, expiry=clock.seconds() + 1200),
            self.run_in_thread, reactor)
        storage = await self.ready_storage(clock=clock, credentials=credentials,
                                           expire_after=86400.0, buffer_time=600.0)
        url = presigned(storage, "a.whl")
        self.assertIn("X-Amz-Expires=1200", url)

    async def test_presigned_url_serves(self):
        """A presigned URL of a stored file fetches its bytes without credentials."""
        storage = await self.ready_storage()
        temp, record, metadata, data = self.spool_wheel(storage)
        await storage.publish(temp, record, metadata)
        location = storage.locate(record)
        self.assertIsInstance(location, Redirect)
        response = await self.fetch(location.url)
        self.assertEqual(await response.content(), data)
        unsigned = await self.fetch(location.url.split("?")[0])
        await unsigned.content()

    async def test_state_round_trip(self):
        """The URL cache goes through the snapshot; a cache signed by other keys is dropped."""
        storage = await self.ready_storage()
        url = presigned(storage, "a.whl")
        self.assertTrue(storage.state_changed())
        state = storage.state()
        self.assertFalse(storage.state_changed())
        data = snapshots.encode([], [], time.time(), 1, storage.identity(), state)
        restored = snapshot_reading.decode(data).storage_state
        again = await self.ready_storage()
        again.restore_state(restored)
        self.assertEqual(presigned(again, "a.whl"), url)
        other = await self.ready_storage(access_key=s3server.OTHER_ACCESS_KEY)
        other.restore_state(restored)
        self.assertNotEqual(presigned(other, "a.whl"), url)

    async def test_stream_range(self):
        """In stream mode a byte range of a file is fetched from the bucket."""
        storage = await self.ready_storage(download="stream")
        temp, record, metadata, data = self.spool_wheel(storage)
        await storage.publish(temp, record, metadata)
        location = storage.locate(record)
        self.assertIsInstance(location, RemoteFile)
        self.assertEqual(location.size, len(data))
        self.assertEqual(await collected(await location.fetch(5, 20)), data[5:25])
        self.assertIsInstance(storage.locate_metadata(record), RemoteBytes)
        self.assertEqual(await storage.locate_metadata(record).read(), metadata)

    async def test_public_url(self):
        """With a public URL, files and metadata redirect there, unsigned."""
        storage = await self.ready_storage(public_url="https://cdn.internal.example/pkgs/")
        temp, record, metadata, _ = self.spool_wheel(storage)
        await storage.publish(temp, record, metadata)
        self.assertEqual(storage.locate(record),
                         Redirect("https://cdn.internal.example/pkgs/" + record.filename))
        self.assertEqual(storage.locate_metadata(record).url,
                         "https://cdn.internal.example/pkgs/" + record.filename + ".metadata")

    async def test_snapshot_in_bucket(self):
        """A snapshot kept in the bucket is what a new server loads."""
        storage = await self.ready_storage()
        self.assertIsNone(await storage.load_snapshot())
        await storage.keep_snapshot(b'{"format": 1}')
        fresh = await self.ready_storage()
        self.assertEqual(await fresh.load_snapshot(), b'{"format": 1}')
        off = await self.ready_storage(bucket_snapshot=False)
        self.assertIsNone(off.keep_snapshot(b"x"))
        self.assertIsNone(await off.load_snapshot())

    async def test_poll_sees_other_servers_changes(self):
        """Uploads, yanks and deletes through one server reach another's poll, once."""
        one = await self.ready_storage()
        two = await self.ready_storage()
        # (each from where the journal ends when it lists the bucket, as a start does)
        await one.scan({}, 0.0)
        await two.scan({}, 0.0)
        self.assertEqual((await two.poll()).files, [])
        temp, record, metadata, _ = self.spool_wheel(one)
        await one.publish(temp, record, metadata)
        await one.settle()
        [change] = (await two.poll()).files
        self.assertEqual((change.filename, change.record, change.deleted),
                         (record.filename, record, False))
        self.assertEqual((await two.poll()).files, [], "a change is reported once")
        [own] = (await one.poll()).files
        self.assertEqual(own.record, record,
                         "a server reads its own changes again, to correct a poll that "
                         "overtook them")
        self.assertEqual((await one.poll()).files, [])
        await one.update(record.replace(yanked="bad"))
        await one.settle()
        [change] = (await two.poll()).files
        self.assertEqual(change.record.yanked, "bad")
        await one.delete(record)
        await one.settle()
        [change] = (await two.poll()).files
        self.assertEqual((change.record, change.deleted), (None, True))

    async def test_failed_poll_read_again(self):
        """A poll that fails midway leaves its markers to the next poll: no change is lost."""
        one = await self.ready_storage()
        two = await self.ready_storage()
        await two.scan({}, 0.0)
        temp, record, metadata, _ = self.spool_wheel(one)
        await one.publish(temp, record, metadata)
        await one.settle()
        changes = two._changes
        original = changes._state_of

        async def failing(*args):
            raise StorageError("S3 failed: 503 SlowDown")
        changes._state_of = failing
        await self.assertFailure(two.poll(), StorageError)
        changes._state_of = original
        [change] = (await two.poll()).files
        self.assertEqual(change.record, record)

    async def test_same_bytes_keep_stored_state(self):
        """Uploading stored bytes again answers with the stored record, yank included."""
        one = await self.ready_storage()
        temp, record, metadata, data = self.spool_wheel(one)
        await one.publish(temp, record, metadata)
        await one.update(record.replace(yanked="bad"))
        two = await self.ready_storage()
        again = write_file(os.path.join(two.temp_dir, "again"), data)
        error = await self.assertFailure(two.publish(again, record, metadata), FileExists)
        self.assertEqual(error.sha256, record.sha256)
        self.assertEqual(error.record, record.replace(yanked="bad"))

    async def test_poll_cost(self):
        """
        A poll with nothing new makes two requests (the journal's listing,
        the intents'), however many files the bucket holds.
        """
        storage = await self.ready_storage()
        for version in ("1.0", "2.0", "3.0"):
            temp, record, metadata, _ = self.spool_wheel(storage, version=version)
            await storage.publish(temp, record, metadata)
        await storage.settle()
        watcher = await self.ready_storage()
        await watcher.scan({}, 0.0)
        # (the journal is read from where it ended at the scan: nothing new)
        self.assertEqual((await watcher.poll()).files, [])
        calls = []
        original = watcher._client.call

        async def counting(method, *args, **kwargs):
            calls.append(method)
            return await original(method, *args, **kwargs)
        watcher._client.call = counting
        polled = await watcher.poll()
        self.assertEqual(polled.files, [])
        self.assertEqual(polled.statuses, {})
        self.assertEqual(calls, ["GET", "GET"])

    async def snapshot_then_changes(self, versions, later, **foreign):
        """
        Publish C{versions}, take their records as a snapshot would, then
        publish C{later} through pypid and put a wheel in the bucket by
        hand: C{(snapshot records, its time and journal serial, the later
        record, the foreign wheel's filename)}.
        """
        writer = await self.ready_storage()
        for version in versions:
            temp, record, metadata, _ = self.spool_wheel(writer, version=version)
            await writer.publish(temp, record, metadata)
        await writer.settle()
        known = (await writer.scan({}, 0.0)).records
        since, serial = time.time(), await writer._changes.store_changes.journal.head()
        time.sleep(0.01)
        temp, newer, metadata, _ = self.spool_wheel(writer, version=later)
        await writer.publish(temp, newer, metadata)
        await writer.settle()
        foreign_name, data = make_wheel("by-hand", "1.0", **foreign)
        self.store.client().put_object(Bucket=self.bucket, Key=PREFIX + foreign_name, Body=data)
        return known, (since, serial), newer, foreign_name

    async def test_start_from_snapshot(self):
        """
        From a snapshot that says where it read the journal, start-up reads
        only what the journal told since; the first poll then asks for a
        full reconcile, which finds what was put in the bucket by hand.
        """
        known, (since, serial), newer, foreign_name = await self.snapshot_then_changes(
            ("1.0", "2.0"), "3.0")

        starting = self.storage_on()
        await starting.prepare()
        starting.resume(serial)
        calls = []
        original = starting._client.call

        async def counting(method, *args, **kwargs):
            calls.append(method)
            return await original(method, *args, **kwargs)
        starting._client.call = counting
        result = await starting.scan(known, since, ())
        self.assertEqual(sorted(result.records), sorted([*known, newer.filename]))
        self.assertEqual(result.records[newer.filename], newer)
        # (the journal's listing and its batch, the intents' listing, and the
        # reads of a change: its object's head, its yank, recycle bin and
        # promotion markers, its tombstone; and, the intents of the files
        # before the snapshot being seconds old here, the two entries that
        # settle them)
        self.assertLessEqual(len(calls), 11, "a few requests, and a few reads for the one change")
        self.assertTrue(starting.reconcile_due())
        reconciled = await starting.reconcile(result.records, result.tombstones)
        self.assertFalse(starting.reconcile_due())
        self.assertEqual(sorted(reconciled.records),
                         sorted([*known, newer.filename, foreign_name]))
        for change in (await starting.poll()).files:
            self.assertEqual(change.record, reconciled.records[change.filename],
                             "a change read again reports the state as it is")

    async def test_paced_full_check(self):
        """
        From a snapshot, start-up makes two requests (the listings of the
        journal and of the intents) however many objects the bucket holds; the
        background full check, paced at C{check_rate}, then finds the
        object put in the bucket by hand and drops the one removed by hand,
        and makes its requests no faster than the cap.
        """
        writer = await self.ready_storage()
        records = []
        for version in ("1.0", "2.0", "3.0", "4.0"):
            temp, record, metadata, _ = self.spool_wheel(writer, version=version)
            records.append(await writer.publish(temp, record, metadata))
        await writer.settle()
        known = (await writer.scan({}, 0.0)).records
        since, serial = time.time(), await writer._changes.store_changes.journal.head()
        time.sleep(0.01)
        foreign_name, data = make_wheel("by-hand", "1.0")
        bucket = self.store.client()
        bucket.put_object(Bucket=self.bucket, Key=PREFIX + foreign_name, Body=data)
        removed = records[0].filename
        bucket.delete_object(Bucket=self.bucket, Key=PREFIX + removed)

        rate = 20.0
        starting = await self.ready_storage(check_rate=rate)
        starting.resume(serial)
        calls = count_calls(starting)
        result = await starting.scan(known, since, ())
        await starting.settle()
        # (the third: the hourly removal of old markers, which stops at the
        # first marker younger than a day)
        changes = Layout(PREFIX).changes_prefix
        journal = PREFIX + ".pypid/journal/entries/"
        # (the journal listed twice: nothing came after the snapshot's
        # serial, so its last serial is asked once, in case the journal went
        # back behind it: StoreChanges.read)
        self.assertEqual([call for call in calls if call[2] is not None],
                         [("GET", "", journal)] * 2 + [("GET", "", changes)] * 2,
                         "only the journal and the intents are listed")
        # (and the journal's entries read: those that settle the intents
        # of the files before the snapshot, seconds old here; and its head)
        self.assertEqual({key[:len(journal)] for _, key, listed in calls if listed is None},
                         {journal, PREFIX + ".pypid/journal/head"})
        self.assertEqual(result.records, known)
        self.assertTrue(starting.reconcile_due())

        del calls[:]
        started = time.monotonic()
        reconciled = await starting.reconcile(result.records, result.tombstones)
        took = time.monotonic() - started
        self.assertEqual(sorted(reconciled.records),
                         sorted({*known, foreign_name} - {removed}))
        self.assertGreaterEqual(len(calls), 6)
        self.assertGreaterEqual(took, (len(calls) - 1) / rate)
        self.assertFalse(starting.reconcile_due())

    async def test_old_local_snapshot_newer_in_bucket(self):
        """
        An old local snapshot (the server was stopped for a day) is left
        for a recent one another instance kept in the bucket: start-up
        reads that one (a HEAD and a GET) and the journal and the intents
        since, and lists no file.
        """
        writer = await self.ready_storage()
        published = []
        for version in ("1.0", "2.0"):
            temp, record, metadata, _ = self.spool_wheel(writer, version=version)
            published.append(await writer.publish(temp, record, metadata))
        await writer.settle()
        records = (await writer.scan({}, 0.0)).records
        serial = await writer._changes.store_changes.journal.head()
        await writer.keep_snapshot(snapshots.encode(records.values(), ["gone.whl"], time.time(),
                                                    0, writer.identity(), changes=serial))
        old = {published[0].filename: published[0]}

        starting = await self.ready_storage()
        starting.resume(1)
        calls = count_calls(starting)
        result = await starting.scan(old, time.time() - 86400, ())
        await starting.settle()
        layout = Layout(PREFIX)
        self.assertEqual(calls[:2], [("HEAD", layout.snapshot_key, None),
                                     ("GET", layout.snapshot_key, None)])
        journal = PREFIX + ".pypid/journal/entries/"
        self.assertEqual({call for call in calls[2:] if call[2] is not None},
                         {("GET", "", journal), ("GET", "", layout.changes_prefix)})
        self.assertEqual({key[:len(journal)] for _, key, listed in calls[2:]
                          if listed is None}, {journal, PREFIX + ".pypid/journal/head"})
        self.assertEqual(result.records, records)
        self.assertEqual(result.tombstones, frozenset(["gone.whl"]))
        self.assertTrue(starting.reconcile_due())

    async def test_old_snapshots_list_the_bucket(self):
        """
        A local snapshot that does not say where it read the journal (an
        older pypid's) is checked by a listing of the bucket, whatever the
        bucket holds.
        """
        writer = await self.ready_storage()
        temp, record, metadata, _ = self.spool_wheel(writer)
        await writer.publish(temp, record, metadata)
        await writer.settle()
        records = (await writer.scan({}, 0.0)).records
        since = time.time() - 86400
        await writer.keep_snapshot(snapshots.encode(records.values(), ["gone.whl"], since, 0,
                                                    writer.identity()))
        starting = await self.ready_storage()
        calls = count_calls(starting)
        result = await starting.scan(records, since, ())
        self.assertEqual(result.records, records)
        self.assertEqual(result.tombstones, frozenset(), "the bucket's snapshot is not used")
        self.assertIn(("GET", "", PREFIX), calls, "the files are listed")
        self.assertFalse(starting.reconcile_due())

    async def test_scan_without_persist_from_snapshot(self):
        """
        A scan that does not persist, from a snapshot, lists the bucket now
        (finding an object put there by hand, which the journal does not
        name), trusts the snapshot for objects unchanged since, and
        only reads: no write, no copy, no marker removed, nothing left in
        the background.
        """
        known, (since, _), newer, foreign_name = await self.snapshot_then_changes(
            ("1.0",), "2.0", requires_python=">=3.9")
        [old] = known.values()
        before = bucket_state(self.bucket, self.store)

        reader = self.storage_on(download="stream")  # (as pypid-export makes it: not prepared)
        calls = []
        original = reader._client.call

        async def recording(method, key, *args, **kwargs):
            calls.append((method, key))
            return await original(method, key, *args, **kwargs)
        reader._client.call = recording
        result = await reader.scan(known, since, (), persist=False)
        await reader.settle()
        self.assertEqual(sorted(result.records), sorted([old.filename, newer.filename,
                                                         foreign_name]))
        self.assertEqual(result.records[old.filename], old)
        self.assertEqual(result.records[newer.filename], newer)
        self.assertIsNone(result.settled)
        self.assertEqual(sorted({method for method, _ in calls}), ["GET", "HEAD"])
        self.assertNotIn(("HEAD", PREFIX + old.filename), calls, "trusted from the snapshot")
        record = result.records[foreign_name]
        data = await reader.read_metadata(record)
        self.assertIn(b"Requires-Python: >=3.9", data)
        self.assertEqual(reader.locate_metadata(record), MemoryFile(data))
        self.assertIsInstance(reader.locate_metadata(newer), RemoteBytes)
        self.assertEqual(hashlib.sha256(await reader.read_metadata(newer)).hexdigest(),
                         newer.metadata_sha256)
        self.assertEqual(bucket_state(self.bucket, self.store), before)

    async def test_store_without_conditional_writes_refused(self):
        """A store that ignores If-None-Match stops prepare() with a clear StorageError."""
        storage = self.storage_on()
        original = storage._client.put

        async def ignoring(key, body, content_type="application/octet-stream", metadata=None,
                           if_none_match=False):
            return await original(key, body, content_type, metadata)
        storage._client.put = ignoring
        error = await self.assertFailure(storage.prepare(), StorageError)
        self.assertIn("ignores conditional writes", str(error))
        self.assertEqual(self.keys(PREFIX + ".pypid/"), [], "the probe is removed")

    async def test_missing_bucket(self):
        """prepare() on a bucket that does not exist fails with a clear StorageError."""
        storage = self.storage_on(bucket="pypid-no-such-bucket")
        error = await self.assertFailure(storage.prepare(), StorageError)
        self.assertIn("pypid-no-such-bucket does not exist", str(error))

    async def test_unreachable(self):
        """With nothing listening at the endpoint: prepare and publish fail, check() says down."""
        from tests.harness.e2e import free_port
        storage = self.storage_on(endpoint=f"http://127.0.0.1:{free_port()}", timeout=2.0)
        error = await self.assertFailure(storage.prepare(), StorageError)
        self.assertIn("cannot use the bucket", str(error))
        self.assertEqual(await storage.check(), "down")
        temp, record, metadata, _ = self.spool_wheel(storage)
        await self.assertFailure(storage.publish(temp, record, metadata), StorageError)
        self.assertFalse(os.path.exists(temp))


class SignatureTests(S3Case):
    """Requests are accepted by a server that checks their signatures."""

    def setUp(self):
        super().setUp()
        iam = _iam_client()
        user = "pypid-" + os.urandom(4).hex()
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=(
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
            '"Action": "s3:*", "Resource": "*"}]}'))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        s3server.set_auth(True)
        self.addCleanup(s3server.set_auth, False)

    async def test_signed_requests_accepted(self):
        """Publish, update, scan, poll and read metadata, every request signature-checked."""
        storage = await self.ready_storage(access_key=self.access_key,
                                           secret_key=self.secret_key)
        await storage.scan({}, 0.0)
        temp, record, metadata, _ = self.spool_wheel(storage, requires_python=">=3.9")
        await storage.publish(temp, record, metadata)
        await storage.update(record.replace(yanked="a reason with spaces & more"))
        scanned = await storage.scan({}, 0.0)
        self.assertEqual(scanned.records[record.filename].yanked, "a reason with spaces & more")
        self.assertEqual(await storage.read_metadata(record), metadata)
        await storage.settle()
        [change] = (await storage.poll()).files
        self.assertEqual(change.record.yanked, "a reason with spaces & more")

    async def test_wrong_secret_refused(self):
        """A wrong secret key stops prepare() with a clear StorageError."""
        storage = self.storage_on(access_key=self.access_key, secret_key="wrong" * 8)
        error = await self.assertFailure(storage.prepare(), StorageError)
        self.assertIn("refused access", str(error))


def _iam_client():
    return s3server.botocore_client("iam")


class SeaweedContractTests(S3ContractTests):
    """
    The storage contract on SeaweedFS, a real S3 server that checks every
    signature: where it and moto differ (conditional writes and copies,
    listing, multipart, error bodies), pypid must be right on both.
    """

    store = s3server.SEAWEED


class SeaweedStorageTests(S3StorageTests):
    """What the S3 backend adds to the contract, on SeaweedFS."""

    store = s3server.SEAWEED

    async def test_wrong_secret_refused(self):
        """SeaweedFS checks signatures: a wrong secret stops prepare() with a clear StorageError."""
        storage = self.storage_on(secret_key="wrong" * 8)
        error = await self.assertFailure(storage.prepare(), StorageError)
        self.assertIn("refused access", str(error))


class IdleGuardTests(TestCase):
    """A relayed body from a store that stalls is cut short; a paused one is not."""

    def guarded(self):
        """A guarded fake response, its delivered protocol and transport, and the clock."""
        from twisted.internet.protocol import Protocol
        clock = Clock()
        stopped, seen = [], []

        class Transport:
            def pauseProducing(self):
                seen.append("pause")

            def resumeProducing(self):
                seen.append("resume")

            def stopProducing(self):
                stopped.append(True)

        class Response:
            def deliverBody(self, protocol):
                self.protocol = protocol
                protocol.makeConnection(Transport())

        inner = Protocol()
        inner.received = []
        inner.dataReceived = inner.received.append
        response = Response()
        IdleGuard(response, clock, 30.0).deliverBody(inner)
        return response.protocol, inner, clock, stopped, seen

    def test_stall_cuts_short(self):
        """Nothing from the store for the timeout: the transfer is stopped."""
        guard, inner, clock, stopped, _ = self.guarded()
        clock.advance(20)
        guard.dataReceived(b"abc")
        clock.advance(20)
        self.assertEqual(stopped, [])
        self.assertEqual(inner.received, [b"abc"])
        clock.advance(11)
        self.assertEqual(stopped, [True])

    def test_pause_is_not_a_stall(self):
        """While the client is slow (paused), silence is expected; the watch resumes after."""
        guard, inner, clock, stopped, seen = self.guarded()
        inner.transport.pauseProducing()
        clock.advance(300)
        self.assertEqual(stopped, [])
        inner.transport.resumeProducing()
        self.assertEqual(seen, ["pause", "resume"])
        clock.advance(31)
        self.assertEqual(stopped, [True])
        self.assertEqual(clock.getDelayedCalls(), [])
