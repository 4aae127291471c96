"""The object store contract (L{tests.harness.object_store}) for Azure Blob Storage, on Azurite."""

from twisted.trial.unittest import TestCase

from pypid.storage.outbox_store import BucketOutboxStore
from tests.harness import azurite
from tests.harness.azure import AzuriteCase
from tests.harness.object_store import ObjectStoreContractMixin
from tests.harness.outbox_store_contract import OutboxStoreContractMixin


class AzureStoreTests(ObjectStoreContractMixin, AzuriteCase):
    """Azure's adapter on Azurite, which checks Shared Key and SAS signatures."""

    part_size = 256 << 10

    async def make_store(self, small_parts=False):
        store = self.client(**({"block_size": self.part_size} if small_parts else {}))
        await store.start()
        return store

    async def make_store_without_container(self):
        store = self.client("pypid-no-such-container")
        await store.start()
        return store

    async def make_broken_store(self, endpoint, timeout):
        return self.client(endpoint=endpoint + "/" + azurite.ACCOUNT, timeout=timeout)


class AzureOutboxStoreTests(OutboxStoreContractMixin, AzuriteCase):
    """The webhooks' outbox records in a bucket of this server."""

    make_store = AzureStoreTests.make_store

    async def make_records(self):
        return BucketOutboxStore(await self.make_store(), "packages/")


del TestCase
