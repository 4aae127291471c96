"""The object store contract (L{tests.harness.object_store}) for Google Cloud Storage, on fake-gcs-server."""

from twisted.trial.unittest import TestCase

from pypid.storage.outbox_store import BucketOutboxStore
from tests.harness.gcs import GCSCase
from tests.harness.object_store import ObjectStoreContractMixin
from tests.harness.outbox_store_contract import OutboxStoreContractMixin


class GCSStoreTests(ObjectStoreContractMixin, GCSCase):
    """GCS's adapter on fake-gcs-server, which checks no signature and no patch's condition."""

    signatures_checked = False
    metadata_condition_checked = False

    async def make_store(self, small_parts=False):
        store = self.client()
        await store.start()
        return store

    async def make_store_without_container(self):
        store = self.client("pypid-no-such-bucket")
        await store.start()
        return store

    async def make_broken_store(self, endpoint, timeout):
        store = self.client(endpoint=endpoint, timeout=timeout)
        await store.start()
        return store


class GCSOutboxStoreTests(OutboxStoreContractMixin, GCSCase):
    """The webhooks' outbox records in a bucket of this server."""

    make_store = GCSStoreTests.make_store

    async def make_records(self):
        return BucketOutboxStore(await self.make_store(), "packages/")


del TestCase
