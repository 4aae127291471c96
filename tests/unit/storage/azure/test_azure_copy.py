"""
What Azurite does not show: Azure's C{Copy Blob} answered as pending (as
the service may answer) is followed to its end, and a copy that fails
after the service took it is aborted and its blob removed. Played by a
small in-memory store (treq's StubTreq), on a clock the test moves.
"""

from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pypid.storage.azure.blob_auth import AccountKey
from pypid.storage.azure.blob_calls import AzureClient
from pypid.storage.base.interface import StorageError
from pypid.storage.bucket.store import ObjectRef
from tests.harness.azurite import ACCOUNT, KEY
from tests.harness.fakes import run_now


class PendingAzure(Resource):
    """Copy Blob answered as pending, then done (or failed) at the Nth look."""

    isLeaf = True

    def __init__(self, outcome):
        super().__init__()
        self.outcome = outcome
        self.looks = 0
        self.seen = []

    def render(self, request):
        self.seen.append((request.method.decode(), request.uri.decode(),
                          request.getHeader("x-ms-copy-action")))
        if request.method == b"PUT" and request.getHeader("x-ms-copy-source"):
            request.setResponseCode(202)
            request.setHeader(b"x-ms-copy-status", b"pending")
            request.setHeader(b"x-ms-copy-id", b"copy-1")
            return b""
        if request.method == b"HEAD":
            self.looks += 1
            request.setHeader(b"x-ms-copy-status",
                              b"pending" if self.looks < 3 else self.outcome)
            return b""
        request.setResponseCode(204 if b"comp=copy" in request.uri else 202)
        return b""


class PendingCopyTests(SynchronousTestCase):
    """A copy Azure reports as pending is followed to its end."""

    def copy(self, outcome):
        store, clock = PendingAzure(outcome), Clock()
        client = AzureClient("http://azure.test/acct", ACCOUNT, "c", AccountKey(ACCOUNT, KEY),
                             StubTreq(store), clock, run=run_now)
        d = ensureDeferred(client.copy("dst", ObjectRef("http://azure.test/acct", "c", "src"),
                                       5, if_none_match=True, metadata={"sha256": "x"}))
        for _ in range(5):
            clock.advance(1.0)
        return store, d

    def test_waited_for(self):
        store, d = self.copy(b"success")
        self.assertTrue(self.successResultOf(d))
        self.assertEqual(store.looks, 3)

    def test_failed_copy_aborted_and_removed(self):
        store, d = self.copy(b"failed")
        self.failureResultOf(d, StorageError)
        self.assertIn(("PUT", "/acct/c/dst?comp=copy&copyid=copy-1", "abort"), store.seen)
        self.assertEqual(store.seen[-1][0], "DELETE")
