"""
Fast, in-memory tests of the private collaborators of
L{pypid.storage.bucket.storage.S3Storage}: the presigned URL cache
(L{pypid.storage.bucket.object_reads.PresignedURLs}), the import of objects found without a
record (L{pypid.storage.bucket.imports}) and the full listing
(L{pypid.storage.bucket.file_states.BucketListing}).
"""

import hashlib
import os
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

from twisted.internet.defer import DeferredSemaphore, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.storage.base.interface import StorageError
from pypid.storage.bucket import object_reads as presigning
from pypid.storage.bucket.file_states import BucketListing
from pypid.storage.bucket.imports import Importer
from pypid.storage.bucket.layout import Layout, user_metadata, yank_body
from pypid.storage.bucket.object_reads import PresignedURLs
from pypid.storage.bucket.store import Listed, ObjectHead, parse_iso_time
from pypid.storage.s3.api import S3Client
from pypid.storage.s3.sign import Bucket, Credentials
from tests.harness.distributions import make_wheel
from tests.harness.fakes import run_now

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


class Keys:
    """A credential source whose credentials a test sets (L{None}: none loaded yet)."""

    def __init__(self, credentials=CREDENTIALS):
        self.credentials = credentials

    def current(self):
        """The credentials, or L{StorageError} when there are none."""
        if self.credentials is None:
            raise StorageError("S3 credentials are not loaded yet")
        return self.credentials

    async def start(self):
        """Nothing to find."""

    def stop(self):
        """Nothing to refresh."""


def expires(url):
    """The validity (s) a presigned C{url} carries."""
    return int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])


class PresignedURLsTests(SynchronousTestCase):
    """L{PresignedURLs} signs, reuses and snapshots download URLs."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.keys = Keys()

    def urls(self, keys=None, **kw):
        """A cache over this test's bucket and clock."""
        client = S3Client(Bucket("http://s3.test:9000", "bkt", "eu-west-1"), keys or self.keys,
                          None, self.clock, run=run_now)
        return PresignedURLs(client, self.clock, **kw)

    def test_reused_until_buffer_time(self):
        """A URL is answered from the cache until the buffer time before it expires."""
        urls = self.urls(expire_after=3600.0, buffer_time=600.0)
        first = urls.url("pkgs/a.whl")
        self.clock.advance(2999)
        self.assertEqual(urls.url("pkgs/a.whl"), first)
        self.assertEqual((urls.hits, urls.misses), (1, 1))
        self.clock.advance(1)
        urls.url("pkgs/a.whl")  # (signed by the wall clock: maybe the same URL)
        self.assertEqual((urls.hits, urls.misses), (1, 2))

    def test_never_beyond_credentials(self):
        """A URL is valid no longer than the credentials that sign it."""
        self.keys.credentials = Credentials("AKID", "secret",
                                            expiry=self.clock.seconds() + 1200)
        urls = self.urls(expire_after=86400.0, buffer_time=600.0)
        self.assertEqual(expires(urls.url("pkgs/a.whl")), 1200)

    def test_short_lived_not_cached(self):
        """A URL with less than the buffer time to live is signed, but not kept."""
        self.keys.credentials = Credentials("AKID", "secret",
                                            expiry=self.clock.seconds() + 300)
        urls = self.urls(buffer_time=600.0)
        urls.url("pkgs/a.whl")
        self.assertEqual((len(urls), urls.changed()), (0, False))

    def test_bounded(self):
        """The cache keeps at most L{presigning.MAX_PRESIGNED} URLs, the newest."""
        self.patch(presigning, "MAX_PRESIGNED", 3)
        urls = self.urls()
        for i in range(5):
            urls.url(f"pkgs/{i}.whl")
        self.assertEqual(len(urls), 3)
        urls.url("pkgs/4.whl")
        self.assertEqual(urls.hits, 1)

    def test_state_round_trip(self):
        """A snapshot's state gives another cache the same URLs, and marks the cache unchanged."""
        urls = self.urls()
        url = urls.url("pkgs/a.whl")
        self.assertTrue(urls.changed())
        state = urls.state()
        self.assertFalse(urls.changed())
        again = self.urls()
        again.restore(state)
        self.assertEqual(again.url("pkgs/a.whl"), url)
        self.assertEqual(again.hits, 1)

    def test_state_drops_due(self):
        """URLs due for renewal are left out of the state."""
        urls = self.urls(expire_after=3600.0, buffer_time=600.0)
        urls.url("pkgs/a.whl")
        self.clock.advance(3000)
        self.assertEqual(urls.state()["presigned"], {})
        self.assertEqual(len(urls), 0)

    def test_state_without_credentials(self):
        """Without credentials there is no state to keep."""
        self.keys.credentials = None
        self.assertIsNone(self.urls().state())

    def test_restore_other_keys(self):
        """A state signed with other credentials is not taken back."""
        urls = self.urls()
        urls.url("pkgs/a.whl")
        other = self.urls(Keys(Credentials("AKIDOTHER", "secret")))
        other.restore(urls.state())
        self.assertEqual(len(other), 0)

    def test_restore_ignores_malformed(self):
        """A malformed or expired state entry is skipped, the others taken back."""
        now = self.clock.seconds()
        urls = self.urls()
        urls.restore({"access_key": CREDENTIALS.access_key, "presigned": {
            "good": ["u", now + 60], "old": ["u", now - 1], "bad": ["u"], "worse": 7}})
        self.assertEqual(len(urls), 1)
        for state in (None, [], {"access_key": CREDENTIALS.access_key, "presigned": []}):
            self.urls().restore(state)

    def test_restore_bounded(self):
        """A snapshot's URLs are taken back within L{presigning.MAX_PRESIGNED}."""
        self.patch(presigning, "MAX_PRESIGNED", 2)
        until = self.clock.seconds() + 3600
        urls = self.urls()
        urls.restore({"access_key": CREDENTIALS.access_key,
                      "presigned": {f"k{i}": ["u", until] for i in range(5)}})
        self.assertEqual(len(urls), 2)

    def test_metrics(self):
        """The metrics say the cache's size and its hits and misses."""
        urls = self.urls()
        urls.url("pkgs/a.whl")
        urls.url("pkgs/a.whl")
        samples = {family.name: family.samples for family in urls.metric_families()}
        self.assertEqual(samples, {"pypid_s3_presigned_urls": (((), 1),),
                                   "pypid_s3_presigned": ((("hit",), 1), (("miss",), 1))})


class FakeBucket:
    """
    An in-memory stand-in for an L{pypid.storage.bucket.store.ObjectStore}:
    objects by key, with their user metadata, and the reads that reached
    them.
    """

    def __init__(self):
        self.bucket = Bucket("http://s3.test:9000", "bkt", "eu-west-1")
        self.limit = DeferredSemaphore(4)
        self.objects = {}
        self.gets = []

    def add(self, key, data, metadata=None, modified=None):
        """Store C{data} at C{key}, as another tool would."""
        self.objects[key] = (data, dict(metadata or {}),
                             parse_iso_time(NOW_TEXT) if modified is None else modified)

    async def head(self, key):
        """The object's head, or L{None}."""
        found = self.objects.get(key)
        return None if found is None else ObjectHead(len(found[0]), found[2], "e",
                                                     dict(found[1]))

    async def get(self, key, limit=None, expect=None):
        """The object's bytes, or L{None}."""
        self.gets.append(key)
        found = self.objects.get(key)
        return None if found is None else found[0]

    async def put(self, key, data, content_type="application/octet-stream", metadata=None,
                  if_none_match=False):
        """Store an object."""
        self.add(key, data, metadata)
        return True

    async def list(self, prefix, start_after=None):
        """Every key under C{prefix} (after C{start_after}), in one page."""
        keys = [Listed(key, len(data), "e", modified)
                for key, (data, _metadata, modified) in sorted(self.objects.items())
                if key.startswith(prefix) and (start_after is None or key > start_after)]
        yield SimpleNamespace(keys=keys)

    async def set_metadata(self, key, metadata, content_type, if_match):
        """The object keeps its bytes and takes the new metadata."""
        self.add(key, self.objects[key][0], metadata)
        return True


#: The time every object in L{FakeBucket} was written, unless told.
NOW_TEXT = "2026-01-02T03:04:05.000Z"


def listed(path, data, etag="e"):
    """The listing's item for C{data} stored at C{path} under C{pkgs/}."""
    return Listed("pkgs/" + path, len(data), etag, parse_iso_time(NOW_TEXT))


class ImporterTests(SynchronousTestCase):
    """L{Importer} reads records from the bucket, and imports objects without one."""

    def setUp(self):
        self.bucket = FakeBucket()
        self.layout = Layout("pkgs/")
        self.beside = []
        self.temp_dir = self.mktemp()
        os.makedirs(self.temp_dir)
        self.filename, self.data = make_wheel("demo", "1.0")

    async def keep_beside(self, record, metadata, details, client=None):
        """Record what the storage was asked to write beside a file."""
        self.beside.append((record.filename, metadata is not None, details is not None))

    def importer(self, **kw):
        """An importer over the fake bucket."""
        return Importer(self.bucket, self.layout, run_now, self.temp_dir, self.keep_beside,
                        **kw)

    def read_all(self, importer, items, persist=True):
        """The outcome of L{Importer.read_all} for C{items}, at once."""
        return self.successResultOf(ensureDeferred(importer.read_all(items, persist)))

    def test_record_from_metadata(self):
        """An object that carries its record is not read: its headers are the record."""
        importer = self.importer()
        self.bucket.add(self.layout.file_key(self.filename), self.data)
        [imported] = self.read_all(importer, [(self.filename, self.filename,
                                               listed(self.filename, self.data))], False)
        self.bucket.gets.clear()
        self.bucket.add(self.layout.file_key(self.filename), self.data,
                        user_metadata(imported))
        [again] = self.read_all(importer, [(self.filename, self.filename,
                                            listed(self.filename, self.data))])
        self.assertEqual((again.sha256, self.bucket.gets), (imported.sha256, []))

    def test_import_persists(self):
        """An object without a record is described once, and its record kept on the object."""
        self.bucket.add(self.layout.file_key("x/" + self.filename), self.data)
        item = (self.filename, "x/" + self.filename, listed("x/" + self.filename, self.data))
        [record] = self.read_all(self.importer(), [item])
        self.assertEqual(record.sha256, hashlib.sha256(self.data).hexdigest())
        self.assertEqual(self.beside, [(self.filename, True, True)])
        headers = self.bucket.objects[self.layout.file_key("x/" + self.filename)][1]
        self.assertEqual(headers["sha256"], record.sha256)

    def test_import_without_persist(self):
        """Without persist, an import writes nothing and keeps the metadata in memory."""
        self.bucket.add(self.layout.file_key(self.filename), self.data)
        importer = self.importer()
        [record] = self.read_all(importer, [(self.filename, self.filename,
                                             listed(self.filename, self.data))], persist=False)
        self.assertEqual(record.filename, self.filename)
        self.assertEqual(self.beside, [])
        self.assertNotIn("sha256",
                         self.bucket.objects[self.layout.file_key(self.filename)][1])
        self.assertIn(b"Name: demo", importer.unwritten(self.filename))
        self.assertIsNone(importer.unwritten("other-1.0.tar.gz"))

    def test_reasons(self):
        """An object too large, not a distribution, or gone is not served, with a reason."""
        self.bucket.add(self.layout.file_key("big-1.0-py3-none-any.whl"), b"x" * 100)
        self.bucket.add(self.layout.file_key("bad-1.0-py3-none-any.whl"), b"not a zip")
        items = [(name, name, listed(name, data)) for name, data in (
            ("big-1.0-py3-none-any.whl", b"x" * 100), ("bad-1.0-py3-none-any.whl", b"not a zip"),
            ("gone-1.0-py3-none-any.whl", b"?"))]
        big, bad, gone = self.read_all(self.importer(max_size=50), items)
        self.assertIn("larger than the largest upload", big)
        self.assertIsInstance(bad, str)
        self.assertEqual(gone, "removed while the bucket was listed")

    def test_paths(self):
        """Where a file lives is remembered for files below the prefix's top only."""
        importer = self.importer()
        self.bucket.add(self.layout.file_key("x/" + self.filename), self.data)
        [record] = self.read_all(importer, [
            (self.filename, "x/" + self.filename, listed("x/" + self.filename, self.data))])
        self.assertEqual(importer.path_of(self.filename), self.filename)
        importer.remember(record)
        self.assertEqual(importer.path_of(self.filename), "x/" + self.filename)
        importer.remember(record.replace(path=self.filename))
        self.assertEqual(importer.path_of(self.filename), self.filename)

    def test_describe(self):
        """Describing a stored file keeps its details beside it, unless it was deleted."""
        self.bucket.add(self.layout.file_key(self.filename), self.data)
        importer = self.importer()
        [record] = self.read_all(importer, [(self.filename, self.filename,
                                             listed(self.filename, self.data))], persist=False)
        details = self.successResultOf(ensureDeferred(importer.describe(record)))
        self.assertEqual(self.bucket.objects[self.layout.details_key(self.filename)][0],
                         details)
        self.bucket.add(self.layout.deleted_key(self.filename), b"{}")
        del self.bucket.objects[self.layout.details_key(self.filename)]
        self.assertIsNone(self.successResultOf(ensureDeferred(importer.describe(record))))
        self.assertNotIn(self.layout.details_key(self.filename), self.bucket.objects)
        self.assertIsNone(self.successResultOf(ensureDeferred(
            self.importer(max_size=10).describe(record))))


class BucketListingTests(SynchronousTestCase):
    """L{BucketListing} turns the bucket's keys into records, tombstones and yanks."""

    def setUp(self):
        self.bucket = FakeBucket()
        self.layout = Layout("pkgs/")
        self.temp_dir = self.mktemp()
        os.makedirs(self.temp_dir)
        self.importer = Importer(self.bucket, self.layout, run_now, self.temp_dir,
                                 self.keep_beside)
        self.listing = BucketListing(self.bucket, self.layout, self.importer, 60.0)
        self.files = [make_wheel("alpha", "1.0"), make_wheel("beta", "1.0")]
        for filename, data in self.files:
            self.bucket.add(self.layout.file_key(filename), data)
        first = self.scan({}, 0.0)
        self.records = first.records
        for filename, data in self.files:
            self.bucket.add(self.layout.file_key(filename), data,
                            user_metadata(self.records[filename]))

    async def keep_beside(self, record, metadata, details, client=None):
        """Write nothing beside an imported file (not under test here)."""

    def scan(self, known, since):
        """The listing's L{pypid.storage.base.interface.ScanResult}, at once."""
        return self.successResultOf(ensureDeferred(self.listing.scan(known, since)))

    def test_trusts_known_unchanged(self):
        """A known record of an object unchanged well before C{since} is trusted: nothing is read."""
        self.bucket.gets.clear()
        known = {name: record.replace(summary="from the snapshot")
                 for name, record in self.records.items()}
        result = self.scan(known, parse_iso_time(NOW_TEXT) + 61)
        self.assertEqual(result.records, known)
        self.assertEqual(self.bucket.gets, [])

    def test_reads_within_margin(self):
        """An object modified within the clock margin of C{since} is read again."""
        known = {name: record.replace(summary="stale") for name, record in self.records.items()}
        result = self.scan(known, parse_iso_time(NOW_TEXT) + 59)
        self.assertEqual(result.records, self.records)

    def test_tombstones_and_yanks(self):
        """A tombstone hides its file; a yank marker gives its reason."""
        alpha, beta = (name for name, _ in self.files)
        self.bucket.add(self.layout.deleted_key(alpha), b"{}")
        self.bucket.add(self.layout.yanked_key(beta), yank_body("broken"))
        result = self.scan({}, 0.0)
        self.assertEqual(result.tombstones, frozenset([alpha]))
        self.assertEqual(list(result.records), [beta])
        self.assertEqual(result.records[beta].yanked, "broken")

    def test_same_filename_twice(self):
        """A second object of one filename is skipped, with a reason."""
        filename, data = self.files[0]
        self.bucket.add(self.layout.file_key("x/" + filename), data)
        result = self.scan({}, 0.0)
        self.assertEqual([path for path, _ in result.skipped], ["x/" + filename])
