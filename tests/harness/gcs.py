"""
Google Cloud Storage clients on buckets of their own, on the shared
fake-gcs-server (L{tests.harness.fake_gcs}), with a service account's
key file whose tokens come from the harness's token endpoint.
"""

import os
from functools import partial

from twisted.internet import reactor
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SkipTest, TestCase

from pypid.http.client import make_http
from pypid.storage.gcs.gcs_auth import GoogleCredentials, key_file_credentials
from pypid.storage.gcs.object_calls import GCSClient
from tests.harness import fake_gcs


class GCSCase(TestCase):
    """Builds GCS clients on a fresh bucket of the shared fake-gcs-server."""

    def setUp(self):
        reason = fake_gcs.available()
        if reason:
            raise SkipTest(reason)
        self.server = fake_gcs.server()
        self.tokens = fake_gcs.tokens()
        self.pool = ThreadPool(minthreads=1, maxthreads=4, name="test-gcs")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.run_in_thread = partial(deferToThreadPool, reactor, self.pool)
        self.bucket = self.server.new_bucket()
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        self.key_path, self.private_key = fake_gcs.key_file(folder, self.tokens.url)

    def credentials(self):
        return GoogleCredentials(partial(key_file_credentials, self.key_path),
                                 self.run_in_thread, reactor)

    def client(self, bucket=None, endpoint=None, timeout=10.0, **kwargs):
        http, pool = make_http(reactor, timeout)
        self.addCleanup(pool.closeCachedConnections)
        client = GCSClient(endpoint or self.server.endpoint, bucket or self.bucket,
                           self.credentials(), http, reactor, run=self.run_in_thread,
                           timeout=timeout, **kwargs)
        self.addCleanup(client.stop)
        return client
