"""
The C{--set} overrides that put an end-to-end daemon on a bucket of one of
the tests' S3 servers (L{s3_settings}; moto's unless told), how often
it syncs (C{SYNC}), and the test case of daemons on a store's buckets
(L{StoreTestCase}); they were L{tests.e2e.test_s3}'s.
"""

from twisted.trial.unittest import SkipTest

from tests.harness import s3server
from tests.harness.e2e import DaemonTestCase

#: How often the daemons of these tests look for each other's changes.
SYNC = 0.5


def s3_settings(bucket, endpoint=None, store=s3server.MOTO, **extra):
    """The C{--set} overrides that put a daemon on C{bucket} of C{store}."""
    settings = {
        "storage.backend": "s3",
        "s3.bucket": bucket,
        "s3.prefix": "packages/",
        "s3.endpoint_url": endpoint or store.endpoint(),
        "s3.access_key": s3server.ACCESS_KEY,
        "s3.secret_key": s3server.SECRET_KEY,
        "s3.sync_interval": str(SYNC),
    }
    settings.update({f"s3.{key}": value for key, value in extra.items()})
    return settings


class StoreTestCase(DaemonTestCase):
    """Daemons on buckets of C{store} (moto's unless a subclass says)."""

    store = s3server.MOTO

    def setUp(self):
        reason = self.store.skip_reason()
        if reason:
            raise SkipTest(reason)
        return super().setUp()

    def new_bucket(self):
        """A fresh bucket of the store."""
        return self.store.new_bucket()

    def on(self, bucket, **extra):
        """The settings that put a daemon on C{bucket} of the store."""
        return s3_settings(bucket, store=self.store, **extra)
