"""
L{pypid.storage.gcs.gcs_auth}: tokens from a service account's key file
(refreshed ahead of their expiry) and from the machine's metadata server
(a fake one on loopback, answering as Google's does), with the requests
and URLs each can make.
"""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.auth.compute_engine import _metadata
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock

from pypid.http.client import make_http
from pypid.storage.base.interface import StorageError
from pypid.storage.gcs.gcs_auth import (
    REFRESH_AHEAD,
    GoogleCredentials,
    key_file_credentials,
    metadata_server_credentials,
)
from pypid.storage.gcs.object_calls import GCSClient
from tests.harness.fakes import run_now
from tests.harness.gcs import GCSCase

EMAIL = "pypid-vm@pypid.iam.gserviceaccount.com"


class MetadataServer:
    """The metadata server's two answers a token needs, counted."""

    def __init__(self):
        self.tokens = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.headers.get("Metadata-Flavor") != "Google":
                    self.send_response(403)
                    self.end_headers()
                    return
                path = self.path.split("?")[0]
                if path.endswith("/service-accounts/default/"):
                    body = {"email": EMAIL, "scopes": ["https://www.googleapis.com/auth/"
                                                       "devstorage.read_write"],
                            "aliases": ["default"]}
                elif path.endswith("/service-accounts/default/token"):
                    owner.tokens += 1
                    body = {"access_token": f"vm-token-{owner.tokens}", "expires_in": 3600,
                            "token_type": "Bearer"}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()


class MetadataServerTests(GCSCase):
    """Without a key file: the metadata server's tokens; no URL signed."""

    def setUp(self):
        super().setUp()
        self.metadata = MetadataServer()
        self.addCleanup(self.metadata.stop)
        self.patch(_metadata, "_GCE_METADATA_HOST", self.metadata.host)

    async def test_requests_with_its_token(self):
        """The client works the bucket with the metadata server's token."""
        http, pool = make_http(reactor, 10.0)
        self.addCleanup(pool.closeCachedConnections)
        client = GCSClient(self.server.endpoint, self.bucket,
                           GoogleCredentials(metadata_server_credentials, self.run_in_thread,
                                             reactor), http, reactor, run=self.run_in_thread)
        self.addCleanup(client.stop)
        await client.start()
        self.assertEqual(self.metadata.tokens, 1)
        self.assertTrue(await client.put("k", b"vm", if_none_match=True))
        self.assertEqual(await client.get("k"), b"vm")
        with self.assertRaises(StorageError) as caught:
            client.sign_url("k", 600, reactor.seconds())
        self.assertIn("download = stream", str(caught.exception))


class KeyFileTests(GCSCase):
    """A key file's tokens come from its token endpoint, and are refreshed ahead of expiry."""

    def test_refreshed_ahead(self):
        clock = Clock()
        clock.advance(time.time())
        before = self.tokens.issued
        credentials = GoogleCredentials(lambda: key_file_credentials(self.key_path), run_now,
                                        clock)
        self.successResultOf(_deferred(credentials.start()))
        headers = {}
        credentials.authorize(headers)
        self.assertEqual(self.tokens.issued, before + 1)
        self.assertTrue(headers["authorization"].startswith("Bearer token-"))
        clock.advance(3600 - REFRESH_AHEAD + 1)
        self.assertEqual(self.tokens.issued, before + 2)
        credentials.stop()
        self.assertEqual(clock.getDelayedCalls(), [])
        email, sign = credentials.signing()
        self.assertEqual(email, "pypid-tests@pypid.iam.gserviceaccount.com")
        self.assertEqual(len(sign(b"x")), 256)

    def test_unreadable_key_file(self):
        """A key file that is no key file is a clear line at the start."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("{}")
        credentials = GoogleCredentials(lambda: key_file_credentials(path), run_now, Clock())
        failure = self.failureResultOf(_deferred(credentials.start()), StorageError)
        self.assertIn(f"cannot use [gcs] credentials_file {path}", str(failure.value))


def _deferred(coroutine):
    return ensureDeferred(coroutine)

