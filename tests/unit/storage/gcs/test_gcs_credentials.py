"""
L{pypid.storage.gcs.gcs_auth}: tokens from a service account's key file
(refreshed ahead of their expiry) and from the machine's metadata server
(a fake one on loopback, answering as Google's does), with the requests
and URLs each can make; no token at all (C{[gcs] anonymous}); and the
line that says which token could not be had, and why.
"""

import datetime
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.auth import exceptions
from google.auth.compute_engine import _metadata
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent

from pypid.http.client import make_http
from pypid.storage.base.interface import StorageError
from pypid.storage.gcs.gcs_auth import (
    REFRESH_AHEAD,
    AnonymousAccess,
    GoogleCredentials,
    key_file_credentials,
    metadata_server_credentials,
)
from pypid.storage.gcs.object_calls import GCSClient
from tests.harness import fake_gcs
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


class TokenFailureTests(GCSCase):
    """A token that cannot be had: one short line naming who failed, never "set" what is set."""

    def key_path_to(self, token_uri):
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        return fake_gcs.key_file(folder, token_uri)[0]

    async def failure_of(self, make):
        credentials = GoogleCredentials(make, self.run_in_thread, Clock())
        self.addCleanup(credentials.stop)
        with self.assertRaises(StorageError) as caught:
            await credentials.start()
        return str(caught.exception)

    async def test_token_endpoint_unreachable(self):
        """A token endpoint where nothing listens is named, as one that could not be reached."""
        token_uri = fake_gcs.closed_token_uri()
        message = await self.failure_of(
            lambda: key_file_credentials(self.key_path_to(token_uri)))
        self.assertTrue(message.startswith(f"the token endpoint {token_uri} of [gcs] "
                                           "credentials_file could not be reached: "), message)
        self.assertIn("Connection refused", message)
        self.assertNotIn("set [gcs] credentials_file", message)
        self.assertNotIn("\n", message)

    async def test_token_endpoint_refuses(self):
        """A refusal's body is quoted as one short escaped line, however hostile."""
        hostile = (b"bad key\r\nCannot load the index: forged line\n\x1b[31mred\x1b[0m"
                   + b"x" * 10000)
        refusing = fake_gcs.TokenServer(refusal=hostile)
        self.addCleanup(refusing.stop)
        message = await self.failure_of(
            lambda: key_file_credentials(self.key_path_to(refusing.url)))
        self.assertEqual(refusing.asked, 1)
        self.assertTrue(message.startswith(
            f"the token endpoint {refusing.url} of [gcs] credentials_file refused the "
            "service account's key: bad key\\r\\nCannot load the index: forged line\\n"
            "\\x1b[31mred"), message)
        self.assertFalse(any(ord(c) < 0x20 or ord(c) == 0x7f for c in message), message)
        self.assertLess(len(message), 400)
        self.assertTrue(message.endswith("..."))

    def test_metadata_server_unreachable(self):
        """Without a key file, the metadata server is named, and a key file offered."""
        def unreachable(credentials):
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except OSError as e:
                raise exceptions.RefreshError(exceptions.TransportError(
                    "Failed to retrieve\nhttp://metadata.example/ from the metadata service")) \
                    from e
        credentials = GoogleCredentials(metadata_server_credentials, run_now, Clock(),
                                        refresh=unreachable)
        failure = self.failureResultOf(_deferred(credentials.start()), StorageError)
        self.assertEqual(str(failure.value),
                         "the machine's metadata server could not be reached: "
                         "[Errno 111] Connection refused; no [gcs] credentials_file is set: "
                         "give a service account's key file, or, for an emulator, set "
                         "endpoint_url and anonymous = yes")

    def test_refresh_failure_logged_short(self):
        """A later refresh that fails is logged as the same short line, and tried again."""
        calls = []
        clock = Clock()
        clock.advance(time.time())

        def refresh(credentials):
            calls.append(None)
            if len(calls) > 1:
                raise exceptions.RefreshError("line one\nline two" + "y" * 500)
            credentials.token = "t"
            credentials.expiry = datetime.datetime.fromtimestamp(
                clock.seconds() + 3600, datetime.UTC).replace(tzinfo=None)
        credentials = GoogleCredentials(metadata_server_credentials, run_now, clock,
                                        refresh=refresh)
        self.successResultOf(_deferred(credentials.start()))
        with capturedLogs() as events:
            clock.advance(3600 - REFRESH_AHEAD + 1)
        self.assertEqual(len(calls), 2)
        self.assertEqual(len(clock.getDelayedCalls()), 1, "tried again")
        credentials.stop()
        [line] = [formatEvent(event) for event in events]
        self.assertTrue(line.startswith("Cannot refresh the Google Cloud token: the machine's "
                                        "metadata server gave no token: line one\\nline two"),
                        line)
        self.assertIn("y...; no [gcs] credentials_file is set", line)
        self.assertTrue(line.endswith("; retrying in 30 s"), line)
        self.assertLess(len(line), 500, "the reason is cut at 200 characters")


class AnonymousTests(GCSCase):
    """C{[gcs] anonymous}: no token sent, none asked for; a key file only signs."""

    def client_with(self, credentials):
        http, pool = make_http(reactor, 10.0)
        self.addCleanup(pool.closeCachedConnections)
        client = GCSClient(self.server.endpoint, self.bucket, credentials, http, reactor,
                           run=self.run_in_thread)
        self.addCleanup(client.stop)
        return client

    async def test_without_key_file(self):
        """The bucket is worked without a token; no URL can be signed."""
        issued = self.tokens.issued
        client = self.client_with(AnonymousAccess(self.run_in_thread))
        await client.start()
        headers = {}
        client._credentials.authorize(headers)
        self.assertEqual(headers, {})
        self.assertTrue(await client.put("k", b"anonymous", if_none_match=True))
        self.assertEqual(await client.get("k"), b"anonymous")
        self.assertEqual(self.tokens.issued, issued)
        with self.assertRaises(StorageError) as caught:
            client.sign_url("k", 600, reactor.seconds())
        self.assertIn("anonymous = yes without a credentials_file", str(caught.exception))

    async def test_key_file_only_signs(self):
        """With a key file, its token endpoint is never asked; its key signs the URLs."""
        refusing = fake_gcs.TokenServer(refusal=b"no")
        self.addCleanup(refusing.stop)
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        path, _ = fake_gcs.key_file(folder, refusing.url)
        client = self.client_with(AnonymousAccess(self.run_in_thread,
                                                  lambda: key_file_credentials(path)))
        await client.start()
        self.assertTrue(await client.put("k", b"signed", if_none_match=True))
        url, _ = client.sign_url("k", 600, reactor.seconds())
        self.assertTrue(url.startswith(f"{self.server.endpoint}/{self.bucket}/k?"), url)
        self.assertIn("X-Goog-Signature=", url)
        self.assertTrue(client.signer().startswith("pypid-tests@pypid.iam.gserviceaccount.com:"))
        self.assertEqual(refusing.asked, 0)

    async def test_unreadable_key_file(self):
        """A key file that is no key file stops the start, as without anonymous."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("{}")
        credentials = AnonymousAccess(self.run_in_thread, lambda: key_file_credentials(path))
        with self.assertRaises(StorageError) as caught:
            await credentials.start()
        self.assertIn(f"cannot use [gcs] credentials_file {path}", str(caught.exception))


def _deferred(coroutine):
    return ensureDeferred(coroutine)

