"""
A real Azure Blob Storage for the tests: Azurite, Microsoft's emulator,
installed from the npm registry on first use (into a folder of the user's
cache, once for both test processes of C{trial -j 2}), started once per
test process on loopback and stopped at exit; each test gets containers
of its own.

Azurite checks every Shared Key signature and every SAS (a tampered or
expired one is refused with 403), and honours C{If-None-Match: *}, so a
signing or a race mistake fails here. It is laxer than the service in a
few places (it checks no request date, copies at once): the adapter does
not rely on them.
"""

import atexit
import base64
import fcntl
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from email.utils import formatdate
from urllib.parse import quote

from pypid.storage.azure.shared_key import API_VERSION, shared_key
from tests.harness.e2e import free_port
from tests.harness.system import end_process

#: The version installed: the first with List Blobs' C{startFrom}. (It
#: asks for Node 22 in its C{engines}, and runs on this machine's Node 20:
#: every call pypid makes was checked on it.)
VERSION = "3.37.0"

#: Azurite's well-known development account and key.
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

#: Where it is installed.
HOME = os.path.join(os.path.expanduser(os.environ.get("XDG_CACHE_HOME", "~/.cache")),
                    "pypid-tests", f"azurite-{VERSION}")

#: How long the install and the first start may take.
INSTALL_LIMIT = 600.0
START_LIMIT = 60.0

_server = None
_lock = threading.Lock()
_containers = 0


def _binary():
    return os.path.join(HOME, "node_modules", ".bin", "azurite-blob")


def available():
    """The reason Azurite cannot run here, or L{None}."""
    if os.path.exists(_binary()):
        return None
    if shutil.which("npm") is None or shutil.which("node") is None:
        return "Node.js and npm are missing: install Debian's nodejs and npm to run Azurite"
    return None


def install():
    """Install Azurite from the npm registry, unless it is there (one process at a time)."""
    if os.path.exists(_binary()):
        return
    os.makedirs(os.path.dirname(HOME), exist_ok=True)
    with open(HOME + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(_binary()):
            return
        staging = tempfile.mkdtemp(prefix=f"azurite-{VERSION}-", dir=os.path.dirname(HOME))
        subprocess.run(["npm", "install", "--prefix", staging, "--no-audit", "--no-fund",
                        "--loglevel=error", f"azurite@{VERSION}"],
                       check=True, timeout=INSTALL_LIMIT, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL)
        os.rename(staging, HOME)



class AzuriteServer:
    """
    One C{azurite-blob} process, with its folder and port; over HTTPS
    with C{tls} (L{tests.harness.tlsca.ServerFiles}, issued under the CA
    whose root certificate is C{root}), where it also takes
    bearer tokens (C{--oauth basic}: it reads a token's claims, and checks
    no signature) and gives user delegation keys.
    """

    def __init__(self, tls=None, root=None):
        self.folder = tempfile.mkdtemp(prefix="pypid-azurite-")
        self.port = free_port()
        scheme = "https" if tls is not None else "http"
        self.endpoint = f"{scheme}://127.0.0.1:{self.port}/{ACCOUNT}"
        self.log_path = os.path.join(self.folder, "azurite.log")
        self._command = [_binary(), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                         "--location", os.path.join(self.folder, "data"), "--silent",
                         "--disableTelemetry"]
        if tls is not None:
            self._command += ["--cert", tls.fullchain, "--key", tls.key, "--oauth", "basic"]
        self._context = None
        if tls is not None:
            import ssl
            self._context = ssl.create_default_context(cafile=root)
        self._log = open(self.log_path, "ab")
        self.process = None
        self.start()

    def start(self):
        """Start the process (again, after L{halt}: same folder, same port)."""
        self.process = subprocess.Popen(self._command, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, limit=START_LIMIT):
        """Wait until it answers (any HTTP answer: an unsigned request is refused)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"azurite ended ({self.process.returncode}): "
                                   + self.log_tail())
            try:
                urllib.request.urlopen(f"{self.endpoint}?comp=list", timeout=2,
                                       context=self._context)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"Azurite did not answer within {limit:.0f} s: " + self.log_tail())

    def log_tail(self, size=2000):
        """The end of the server's log, for a failure's message."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-size:].decode("utf-8", "replace")
        except OSError:
            return ""

    def halt(self):
        """Stop the process; its data stays."""
        end_process(self.process)

    def stop(self):
        """Stop the process and remove its folder."""
        self.halt()
        self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def new_container(self):
        """A new empty container's name (made with the account key)."""
        global _containers
        _containers += 1
        name = f"pypid-{os.getpid()}-{_containers}"
        create_container(self.endpoint, name, self._context)
        return name


def request(method, url, data=None, headers=None, context=None):
    """
    One blocking request signed with the development account's key, as
    an operator's tool would make it behind pypid's back: the answer's
    C{(status, headers, body)}.
    """
    headers = dict(headers or {}, **{"x-ms-version": API_VERSION,
                                     "x-ms-date": formatdate(usegmt=True)})
    if data is not None:
        headers.update({"content-length": str(len(data)),
                        "content-type": headers.get("content-type", "application/octet-stream")})
    headers["authorization"] = shared_key(ACCOUNT, base64.b64decode(KEY), method, url, headers)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method,
                                                           headers=headers), timeout=10,
                                    context=context) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read()


def create_container(endpoint, name, context=None):
    """Create the container C{name}."""
    status, _, body = request("PUT", f"{endpoint}/{name}?restype=container", b"",
                              context=context)
    assert status == 201, (status, body)


def put_blob(endpoint, container, key, data, headers=None):
    """Put a blob (with C{headers}: its metadata, say), as another tool would."""
    status, _, body = request("PUT", f"{endpoint}/{container}/{quote(key, safe='/')}", data,
                              dict(headers or {}, **{"x-ms-blob-type": "BlockBlob"}))
    assert status == 201, (status, body)


def container_state(endpoint, container):
    """Every blob of the container: its name, ETag, size, time and metadata."""
    status, _, body = request(
        "GET", f"{endpoint}/{container}?restype=container&comp=list&include=metadata")
    assert status == 200, (status, body)
    state = {}
    for blob in ET.fromstring(body).iter("Blob"):
        properties = blob.find("Properties")
        metadata = blob.find("Metadata")
        state[blob.findtext("Name")] = (
            properties.findtext("Etag"), properties.findtext("Content-Length"),
            properties.findtext("Last-Modified"),
            {} if metadata is None else {item.tag: item.text for item in metadata})
    return state


def server():
    """The shared server of this test process, installed, started and ready if needed."""
    global _server
    with _lock:
        if _server is None:
            install()
            started = AzuriteServer()
            atexit.register(started.stop)
            try:
                started.wait_ready()
            except BaseException:
                started.stop()
                raise
            _server = started
        return _server
