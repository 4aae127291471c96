"""
HAProxy in front of several pypid servers, for the tests of a cluster:
Debian's C{haproxy}, installed by the tests when missing
(L{tests.harness.system.require}), run in the foreground on a free loopback port.

Its configuration is the one docs/operations.rst gives operators: round
robin, a health check of C{/health} that takes a server out while it
starts (C{"status": "starting"}) but not while the shared store is down
(C{"degraded"}: every server is, and each still serves reads from
memory), and a connection that fails going to the next server.
"""

import os
import signal
import subprocess
import time

from tests.harness import e2e, system

#: The backend part of the configuration, as docs/operations.rst gives it
#: (C{{servers}}: one C{server} line each).
BACKEND = """\
backend pypid
    balance roundrobin
    option httpchk GET /health
    http-check expect rstring "\\"status\\": \\"(ok|degraded)\\""
    timeout check 5s
    default-server inter 500ms fall 2 rise 2
    retries 2
    option redispatch
{servers}
"""

CONFIG = """\
global
    maxconn 1000

defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-request 30s

frontend pypid
    bind 127.0.0.1:{port}
    default_backend pypid

""" + BACKEND


class HAProxy:
    """One C{haproxy} process balancing C{daemons} (L{tests.harness.e2e.Daemon}s)."""

    def __init__(self, folder, daemons):
        [self.binary] = system.require({"haproxy": "haproxy"}).values()
        self.folder = os.path.abspath(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.port = e2e.free_port()
        self.url = f"http://{e2e.HOST}:{self.port}/"
        self.config_path = os.path.join(self.folder, "haproxy.cfg")
        servers = "\n".join(f"    server s{n} {e2e.HOST}:{daemon.port} check"
                            for n, daemon in enumerate(daemons, 1))
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(CONFIG.format(port=self.port, servers=servers))
        self.log_path = os.path.join(self.folder, "haproxy.log")
        self.process = None

    def start(self, timeout=60.0):
        """Start it (checking the configuration first) and wait until it answers."""
        check = subprocess.run([self.binary, "-c", "-f", self.config_path],
                               capture_output=True, check=False)
        if check.returncode != 0:
            raise e2e.E2EFailure("haproxy refused its configuration: "
                                 + (check.stdout + check.stderr).decode("utf-8", "replace"))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-db", "-f", self.config_path], cwd=self.folder,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=e2e._die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise e2e.E2EFailure(f"haproxy exited ({self.process.returncode})")
            try:
                if e2e.http("GET", self.url + "health", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise e2e.E2EFailure(f"haproxy did not answer within {timeout} s")

    def stop(self):
        """Stop it."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
