"""
The storage contract (L{tests.harness.storage}) for a bucket storage on
Azure Blob Storage (Azurite): the same suite the S3 storage passes.
"""

import os

from twisted.internet import reactor

from pypid.storage.bucket.layout import Layout
from pypid.storage.bucket.storage import BucketSettings, BucketStorage
from pypid.storage.interface import MemoryFile, Redirect, RemoteBytes, RemoteFile
from tests.harness import azurite
from tests.harness.azure import AzuriteCase
from tests.harness.storage import AdoptionContractMixin, StorageContractMixin, collected

PREFIX = "pkgs/"


class AzureContractTests(AdoptionContractMixin, StorageContractMixin, AzuriteCase):
    """The storage contract, for L{BucketStorage} on an Azurite container."""

    TARGET = PREFIX + ".indexes/release/"

    def storage_on(self, prefix=PREFIX, **options):
        options.setdefault("clock_margin", 0.0)
        options.setdefault("replay_window", 0.0)
        storage = BucketStorage(self.client(), Layout(prefix), self.run_in_thread, reactor,
                                os.path.abspath(self.mktemp()), BucketSettings(**options))
        self.addCleanup(storage.settle)
        return storage

    def make_storage(self):
        return self.storage_on()

    def make_target(self):
        return self.storage_on(prefix=self.TARGET)

    async def reopen(self, storage):
        reopened = self.storage_on(prefix=storage._layout.prefix)
        await reopened.prepare()
        return reopened

    def put_foreign(self, storage, key, data):
        azurite.put_blob(self.server.endpoint, self.container, PREFIX + key, data)

    def holding(self, storage):
        return azurite.container_state(self.server.endpoint, self.container)

    async def read_location(self, location):
        if isinstance(location, MemoryFile):
            return location.data
        if isinstance(location, Redirect):
            response = await self.fetch_url(location.url)
            self.assertEqual(response.code, 200)
            return await response.content()
        if isinstance(location, RemoteBytes):
            return await location.read()
        self.assertIsInstance(location, RemoteFile)
        return await collected(await location.fetch(0, location.size))

    def fetch_url(self, url):
        import treq
        from twisted.web.client import HTTPConnectionPool
        return treq.get(url, pool=HTTPConnectionPool(reactor, persistent=False))
