"""
Fast, in-memory tests of the private collaborators of
L{pypid.storage.s3.storage.S3Storage}: the presigned URL cache
(L{pypid.storage.s3.presign}) and the import of objects found without a
record (L{pypid.storage.s3.imports}).
"""

from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.storage.interface import StorageError
from pypid.storage.s3 import presign as presigning
from pypid.storage.s3.presign import PresignedURLs
from pypid.storage.s3.sign import Bucket, Credentials

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


def expires(url):
    """The validity (s) a presigned C{url} carries."""
    return int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])


class PresignedURLsTests(SynchronousTestCase):
    """L{PresignedURLs} signs, reuses and snapshots download URLs."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.keys = Keys()
        self.client = SimpleNamespace(bucket=Bucket("http://s3.test:9000", "bkt", "eu-west-1"))

    def urls(self, keys=None, **kw):
        """A cache over this test's bucket and clock."""
        return PresignedURLs(self.client, keys or self.keys, self.clock, **kw)

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
