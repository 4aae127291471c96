"""
Zero-downtime restarts with socket activation, without systemd as PID 1:
C{systemd-socket-activate} (Debian's C{systemd} package) opens the listening
socket and hands it down to a shell loop that keeps it open while it
starts pypid again and again with C{listen = systemd:domain=INET:index=0}.
Between two servers the kernel queues new connections on the socket, so a
client fetching in a loop while the server is restarted sees no failed
request, as under a C{pypid.socket} unit.
"""

import os
import signal
import subprocess
import threading
import time

from tests.distributions import make_wheel
from tests.e2e import (
    HOST,
    TWISTD,
    Daemon,
    DaemonTestCase,
    clean_env,
    free_port,
    http,
    upload,
    wait_for,
)
from tests.system import require


class SocketActivationTests(DaemonTestCase):
    """pypid restarted behind a socket held by systemd-socket-activate."""

    def start_held(self, folder):
        """The server, behind a socket that outlives it; C{(process, url)}."""
        tools = require({"systemd-socket-activate": "systemd"})
        daemon = Daemon(folder)
        port = free_port()
        serve = (f"export LISTEN_PID=$$; exec {TWISTD} -n --pidfile= pypid "
                 f"--config {daemon.config_path} --listen systemd:domain=INET:name=http")
        loop = f"while :; do sh -c '{serve}'; sleep 0.05; done"
        log = open(os.path.join(folder, "held.log"), "ab")
        self.addCleanup(log.close)
        process = subprocess.Popen(
            [tools["systemd-socket-activate"], "--fdname=http", "-l", f"{HOST}:{port}", "sh", "-c", loop],
            cwd=folder, env=clean_env(folder, PYTHONUNBUFFERED="1"), stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.addCleanup(self.stop_group, process)
        url = f"http://{HOST}:{port}/"
        # (systemd 252's tool starts its program at the first connection)
        wait_for(lambda: self.answers(url), 20, "the held server did not answer")
        return process, url, daemon

    @staticmethod
    def answers(url):
        try:
            return http("GET", url + "health", timeout=10).status == 200
        except OSError:
            return False

    @staticmethod
    def stop_group(process):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)

    @staticmethod
    def server_pid(config_path):
        """The pid of the pypid serving now (the loop's child, not the loop's shell)."""
        found = subprocess.run(["pgrep", "-f", f"^[^ ]*python[0-9.]* .*twistd .*{config_path}"],
                               stdout=subprocess.PIPE, text=True, check=False).stdout.split()
        return int(found[0]) if found else None

    def test_restarts_lose_no_request(self):
        """Three restarts while a client fetches a page and a file in a loop: no failure."""
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        process, url, daemon = self.start_held(folder)
        filename, data = make_wheel("held", "1.0")
        daemon.port = int(url.rsplit(":", 1)[1].rstrip("/"))
        self.assertEqual(upload(daemon, filename, data).status, 200)
        failures, answers = [], []
        stop = threading.Event()

        def client():
            while not stop.is_set():
                for path in ("simple/held/", f"files/held/{filename}"):
                    try:
                        response = http("GET", url + path, timeout=30)
                        answers.append(response.status)
                        if response.status != 200:
                            failures.append((path, response.status))
                    except OSError as e:
                        failures.append((path, repr(e)))

        thread = threading.Thread(target=client)
        thread.start()
        try:
            pids = set()
            for _ in range(3):
                time.sleep(0.5)
                pid = self.server_pid(daemon.config_path)
                self.assertIsNotNone(pid)
                pids.add(pid)
                os.kill(pid, signal.SIGTERM)
                wait_for(lambda pid=pid: self.server_pid(daemon.config_path) not in (None, pid), 20,
                         "the loop did not start the server again")
            time.sleep(0.5)
        finally:
            stop.set()
            thread.join(timeout=60)
        self.assertEqual(len(pids), 3)
        self.assertEqual(failures, [])
        self.assertGreater(len(answers), 50)
        # (the file was kept across the restarts: from the snapshot each time)
        self.assertEqual(http("GET", url + f"files/held/{filename}").body, data)
