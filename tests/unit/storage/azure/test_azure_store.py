"""The object store contract (L{tests.harness.object_store}) for Azure Blob Storage, on Azurite."""

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from pypid.storage.bucket.bucket_journal import BucketJournal
from pypid.storage.bucket.bucket_records import BucketRecords
from tests.harness import azurite
from tests.harness.azure import AzuriteCase
from tests.harness.journal_contract import JournalContractMixin
from tests.harness.object_store import ObjectStoreContractMixin
from tests.harness.records_contract import RecordsContractMixin


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


class AzureRecordsTests(RecordsContractMixin, AzuriteCase):
    """Small records (the journal's, the webhooks') in a bucket of this server."""

    make_store = AzureStoreTests.make_store

    async def make_records(self):
        return BucketRecords(await self.make_store(), "packages/.pypid/webhooks/")


class AzureJournalTests(JournalContractMixin, AzuriteCase):
    """The journal in a bucket of this server: serials claimed by create-only writes."""

    make_store = AzureStoreTests.make_store

    async def make_journal(self):
        store = await self.make_store()
        return BucketJournal(BucketRecords(store, "packages/.pypid/journal/"), store,
                             "packages/", Clock())

    def writer_of(self, journal):
        store = journal._client
        return BucketJournal(BucketRecords(store, "packages/.pypid/journal/"), store,
                             "packages/", Clock())


del TestCase
