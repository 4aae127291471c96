"""
The storage contract (L{tests.harness.storage}) for a bucket storage on
Google Cloud Storage (fake-gcs-server): the same suite the S3 storage passes.
"""

from tests.harness.bucket_contract import PREFIX, BucketContractMixin
from tests.harness.gcs import GCSCase


class GCSContractTests(BucketContractMixin, GCSCase):
    """The storage contract, for a bucket storage on a fake-gcs-server bucket."""

    def put_foreign(self, storage, key, data):
        self.server.put(self.bucket, PREFIX + key, data)

    def holding(self, storage):
        return self.server.objects(self.bucket)
