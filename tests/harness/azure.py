"""
Azure clients on containers of their own, on the shared Azurite
(L{tests.harness.azurite}).
"""

from functools import partial

from twisted.internet import reactor
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SkipTest, TestCase

from pypid.http.client import make_http
from pypid.storage.azure.blob_auth import AccountKey
from pypid.storage.azure.blob_calls import AzureClient
from tests.harness import azurite


class AzuriteCase(TestCase):
    """Azure clients on containers of their own, on the shared Azurite."""

    def setUp(self):
        reason = azurite.available()
        if reason:
            raise SkipTest(reason)
        self.server = azurite.server()
        self.pool = ThreadPool(minthreads=1, maxthreads=4, name="test-azure")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.run_in_thread = partial(deferToThreadPool, reactor, self.pool)
        self.container = self.server.new_container()

    def client(self, container=None, endpoint=None, timeout=10.0, credentials=None, **kwargs):
        http, pool = make_http(reactor, timeout)
        self.addCleanup(pool.closeCachedConnections)
        return AzureClient(endpoint or self.server.endpoint, azurite.ACCOUNT,
                           container or self.container,
                           credentials or AccountKey(azurite.ACCOUNT, azurite.KEY), http,
                           reactor, run=self.run_in_thread, timeout=timeout, **kwargs)
