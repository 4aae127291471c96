"""
The storage contract (L{tests.harness.storage}) for a bucket storage on
any cloud's object store: what a test case of it gives the contract, over
its C{client()} (a started store's client on a container of the test's
own), C{put_foreign} and C{holding}.
"""

import os

import treq
from twisted.internet import reactor
from twisted.web.client import HTTPConnectionPool

from pypid.storage.base.interface import MemoryFile, Redirect, RemoteBytes, RemoteFile
from pypid.storage.bucket.layout import Layout
from pypid.storage.bucket.storage import BucketSettings, BucketStorage
from tests.harness.storage import AdoptionContractMixin, StorageContractMixin, collected

#: The prefix the storages use in their container.
PREFIX = "pkgs/"


class BucketContractMixin(AdoptionContractMixin, StorageContractMixin):
    """The storage and adoption contracts, for L{BucketStorage} on C{self.client()}."""

    #: where a named index's files are under the prefix
    TARGET = PREFIX + ".indexes/release/"

    def storage_on(self, prefix=PREFIX, **options):
        """A bucket storage of this test's container, not prepared."""
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

    async def read_location(self, location):
        if isinstance(location, MemoryFile):
            return location.data
        if isinstance(location, Redirect):
            response = await treq.get(location.url,
                                      pool=HTTPConnectionPool(reactor, persistent=False))
            self.assertEqual(response.code, 200)
            return await response.content()
        if isinstance(location, RemoteBytes):
            return await location.read()
        self.assertIsInstance(location, RemoteFile)
        return await collected(await location.fetch(0, location.size))
