"""The object store contract (L{tests.harness.object_store}) for Google Cloud Storage, on fake-gcs-server."""

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from pypid.storage.bucket.bucket_journal import BucketJournal
from pypid.storage.bucket.bucket_records import BucketRecords
from tests.harness.gcs import GCSCase
from tests.harness.journal_contract import JournalContractMixin
from tests.harness.object_store import ObjectStoreContractMixin
from tests.harness.records_contract import RecordsContractMixin


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


class GCSRecordsTests(RecordsContractMixin, GCSCase):
    """Small records (the journal's, the webhooks') in a bucket of this server."""

    make_store = GCSStoreTests.make_store

    async def make_records(self):
        return BucketRecords(await self.make_store(), "packages/.pypid/webhooks/")


class GCSJournalTests(JournalContractMixin, GCSCase):
    """The journal in a bucket of this server: serials claimed by create-only writes."""

    make_store = GCSStoreTests.make_store

    async def make_journal(self):
        store = await self.make_store()
        return BucketJournal(BucketRecords(store, "packages/.pypid/journal/"), store,
                             "packages/", Clock())

    def writer_of(self, journal):
        store = journal._client
        return BucketJournal(BucketRecords(store, "packages/.pypid/journal/"), store,
                             "packages/", Clock())


del TestCase
