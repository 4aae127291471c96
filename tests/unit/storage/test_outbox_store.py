"""
The outbox's records (L{pypid.storage.outbox_store}) in memory and in a
folder (L{tests.harness.outbox_store_contract}); in a bucket, the same
contract runs against each cloud's server (C{test_s3_store},
C{test_azure_store}, C{test_gcs_store}).
"""

import os

from twisted.trial.unittest import TestCase

from pypid.storage.outbox_store import FolderOutboxStore, MemoryOutboxStore
from tests.harness.fakes import run_now
from tests.harness.outbox_store_contract import OutboxStoreContractMixin


class MemoryOutboxStoreTests(OutboxStoreContractMixin, TestCase):
    """The memory the tests use keeps the contract."""

    def make_records(self):
        return MemoryOutboxStore()


class FolderOutboxStoreTests(OutboxStoreContractMixin, TestCase):
    """Files under C{.pypid/webhooks/}: written whole, fsynced, linked into place once."""

    def make_records(self):
        return FolderOutboxStore(os.path.join(self.mktemp(), ".pypid", "webhooks"),
                                 run_now)

    async def test_no_temporary_left(self):
        """A write leaves no temporary file, and a listing shows none."""
        store = self.make_records()
        await store.put({"outbox/a.json": b"1"})
        self.assertFalse(await store.put_new("outbox/a.json", b"2"))
        self.assertEqual(os.listdir(os.path.join(store.root, "outbox")), ["a.json"])
