"""
The C{--set} overrides that put an end-to-end daemon on a bucket of one of
the tests' S3 servers (L{s3_settings}; moto's unless told), how often
it syncs (C{SYNC}), and the test case of daemons on a store's buckets
(L{StoreTestCase}); L{tests.harness.e2e_clouds} has every cloud's.
"""

from twisted.trial.unittest import SkipTest

from tests.harness import s3server
from tests.harness.e2e import DaemonTestCase
from tests.harness.e2e_clouds import SYNC, S3Cloud

__all__ = ["SYNC", "StoreTestCase", "s3_settings"]

def s3_settings(bucket, endpoint=None, store=s3server.MOTO, **extra):
    """The C{--set} overrides that put a daemon on C{bucket} of C{store}."""
    return S3Cloud(store).settings(bucket, endpoint, **extra)


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
