"""The object store contract (L{tests.harness.object_store}) for S3, on moto and on SeaweedFS."""

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from pypid.http.client import make_http
from pypid.storage.bucket.bucket_journal import BucketJournal
from pypid.storage.bucket.bucket_records import BucketRecords
from pypid.storage.s3.api import S3Client
from pypid.storage.s3.credentials import CredentialSource
from pypid.storage.s3.sign import Bucket, Credentials
from tests.harness import s3server
from tests.harness.journal_contract import JournalContractMixin
from tests.harness.object_store import ObjectStoreContractMixin
from tests.harness.records_contract import RecordsContractMixin
from tests.harness.s3 import S3Case


class StaticKeys:
    """Credentials that are what they are."""

    def __init__(self, credentials):
        self.credentials = credentials

    def current(self):
        return self.credentials

    async def start(self):
        pass

    def stop(self):
        pass


class MotoStoreTests(ObjectStoreContractMixin, S3Case):
    """S3's adapter on moto (which checks no signature)."""

    signatures_checked = False
    metadata_condition_checked = False

    def client(self, bucket, endpoint=None, timeout=10.0, **kwargs):
        http, pool = make_http(reactor, timeout)
        self.addCleanup(pool.closeCachedConnections)
        credentials = CredentialSource(Credentials(s3server.ACCESS_KEY, s3server.SECRET_KEY),
                                       self.run_in_thread, reactor)
        return S3Client(Bucket(endpoint or self.store.endpoint(), bucket, s3server.REGION),
                        credentials, http, reactor, timeout, run=self.run_in_thread, **kwargs)

    async def make_store(self, small_parts=False):
        store = self.client(self.bucket, **(
            {"multipart_threshold": self.part_size} if small_parts else {}))
        await store.start()
        return store

    async def make_store_without_container(self):
        store = self.client("pypid-no-such-bucket")
        await store.start()
        return store

    async def make_broken_store(self, endpoint, timeout):
        return self.client("b", endpoint=endpoint, timeout=timeout)


class SeaweedStoreTests(MotoStoreTests):
    """S3's adapter on SeaweedFS, which checks signatures and presigned URLs."""

    store = s3server.SEAWEED
    signatures_checked = True
    metadata_condition_checked = True

    async def make_refused_store(self):
        # (SeaweedFS makes a bucket a write names: a wrong key is refused)
        store = self.client(self.bucket)
        store._credentials = StaticKeys(Credentials(s3server.ACCESS_KEY, "not-the-secret"))
        return store


class MotoRecordsTests(RecordsContractMixin, S3Case):
    """Small records (the journal's, the webhooks') in a bucket of this server."""

    make_store = MotoStoreTests.make_store
    client = MotoStoreTests.client

    async def make_records(self):
        return BucketRecords(await self.make_store(), "packages/.pypid/webhooks/")


class MotoJournalTests(JournalContractMixin, S3Case):
    """The journal in a bucket of this server: serials claimed by create-only writes."""

    make_store = MotoStoreTests.make_store
    client = MotoStoreTests.client

    async def make_journal(self):
        store = await self.make_store()
        return BucketJournal(BucketRecords(store, "packages/.pypid/journal/"), store,
                             "packages/", Clock())

    def writer_of(self, journal):
        store = journal._client
        return BucketJournal(BucketRecords(store, "packages/.pypid/journal/"), store,
                             "packages/", Clock())


class SeaweedJournalTests(MotoJournalTests):
    """The journal on SeaweedFS, whose create-only writes race as a real store's do."""

    store = s3server.SEAWEED


del TestCase
