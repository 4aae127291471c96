"""
The outbox's records (L{pypid.storage.base.records}) in memory and in a
folder (L{tests.harness.records_contract}); in a bucket, the same
contract runs against each cloud's server (C{test_s3_store},
C{test_azure_store}, C{test_gcs_store}).
"""

import os

from twisted.trial.unittest import TestCase

from pypid.storage.folder.folder_records import FolderRecords
from tests.harness.fakes import run_now
from tests.harness.memory_records import MemoryRecords
from tests.harness.records_contract import RecordsContractMixin


class MemoryRecordsTests(RecordsContractMixin, TestCase):
    """The memory the tests use keeps the contract."""

    def make_records(self):
        return MemoryRecords()


class FolderRecordsTests(RecordsContractMixin, TestCase):
    """Files under C{.pypid/webhooks/}: written whole, fsynced, linked into place once."""

    def make_records(self):
        return FolderRecords(os.path.join(self.mktemp(), ".pypid", "webhooks"),
                                 run_now)

    async def test_no_temporary_left(self):
        """A write leaves no temporary file, and a listing shows none."""
        store = self.make_records()
        await store.put({"outbox/a.json": b"1"})
        self.assertFalse(await store.put_new("outbox/a.json", b"2"))
        self.assertEqual(os.listdir(os.path.join(store.root, "outbox")), ["a.json"])
