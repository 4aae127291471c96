"""
The storage contract (L{tests.harness.storage}) for a bucket storage on
Azure Blob Storage (Azurite): the same suite the S3 storage passes.
"""

from tests.harness import azurite
from tests.harness.azure import AzuriteCase
from tests.harness.bucket_contract import PREFIX, BucketContractMixin


class AzureContractTests(BucketContractMixin, AzuriteCase):
    """The storage contract, for a bucket storage on an Azurite container."""

    def put_foreign(self, storage, key, data):
        azurite.put_blob(self.server.endpoint, self.container, PREFIX + key, data)

    def holding(self, storage):
        return azurite.container_state(self.server.endpoint, self.container)
