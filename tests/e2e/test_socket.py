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

from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
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
from tests.harness.system import require

#: Answers the client must get from each server (once the one before it is
#: gone, so from it) before it is stopped in turn.
ANSWERS_PER_SERVER = 20


class SocketActivationTests(DaemonTestCase):
    """pypid restarted behind a socket held by systemd-socket-activate."""

    #: more options of the server
    options = ""

    def start_held(self, folder):
        """The server, behind a socket that outlives it; C{(process, url)}."""
        tools = require({"systemd-socket-activate": "systemd"})
        daemon = Daemon(folder)
        port = free_port()
        serve = (f"export LISTEN_PID=$$; exec {TWISTD} -n --pidfile= pypid "
                 f"--config {daemon.config_path} --listen systemd:domain=INET:name=http"
                 f"{self.options}")
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
        wait_for(lambda: self.answers(url), 60, "the held server did not answer")
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
    def server_pids(config_path):
        """
        The pids of the pypid processes running now (the loop's child, not
        the loop's shell; a machine's supervisor, by its title, not its workers).
        """
        found = subprocess.run(["pgrep", "-f", "^([^ ]*python[0-9.]* [^ ]*twistd -n"
                                f"|pypid: supervisor) .*{config_path}"],
                               stdout=subprocess.PIPE, text=True, check=False).stdout.split()
        return [int(pid) for pid in found]

    def test_restarts_lose_no_request(self):
        """
        Three restarts while a client fetches a page and a file in a loop:
        no failure. Each server is stopped only once it has answered the
        client (so a graceful stop of a serving server is what is tested,
        not the kill of one still starting), and each new one must answer
        the client too.
        """
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

        def serving(old_pid):
            """
            The pid of the one server running, once the server C{old_pid}
            (if any) is gone; else L{None}.
            """
            pids = self.server_pids(daemon.config_path)
            return pids[0] if len(pids) == 1 and pids[0] != old_pid else None

        def answered_by_it(pid):
            """
            Wait until the server C{pid}, the only one running, answered
            C{/health} and the client a few times.
            """
            wait_for(lambda: self.answers(url), 60,
                     f"the server {pid} did not answer /health")
            seen = len(answers)
            wait_for(lambda: len(answers) >= seen + ANSWERS_PER_SERVER, 60,
                     f"the client got no answers from the server {pid}")
            self.assertEqual(self.server_pids(daemon.config_path), [pid])

        thread = threading.Thread(target=client)
        thread.start()
        try:
            pids = []
            pid = wait_for(lambda: serving(None), 60, "no server runs")
            for _ in range(3):
                answered_by_it(pid)
                pids.append(pid)
                os.kill(pid, signal.SIGTERM)
                pid = wait_for(lambda old=pid: serving(old), 60,
                               "the loop did not start the server again")
            answered_by_it(pid)
        finally:
            stop.set()
            thread.join(timeout=60)
        self.assertEqual(len(set(pids)), 3)
        self.assertEqual(failures, [])
        self.assertGreaterEqual(len(answers), 4 * ANSWERS_PER_SERVER)
        # (the file was kept across the restarts: from the snapshot each time)
        self.assertEqual(http("GET", url + f"files/held/{filename}").body, data)


class MachineSocketActivationTests(SocketActivationTests):
    """
    The same with C{[pypid] workers = 2}: the supervisor takes the socket
    systemd holds and its workers accept on it (one socket, shared); a
    restart of the machine loses no request either.
    """

    options = " --set pypid.workers=2"

    def test_both_workers_accept(self):
        """
        Under load, both workers take connections from the one socket
        systemd passed (whichever is waiting takes the next; an idle
        machine's sequential connections may all go to one).
        """
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        _, url, _ = self.start_held(folder)
        wait_for(lambda: http("GET", url + "health").json()["workers"]["up"] == 2, 60,
                 "both workers ready")
        seen = set()

        def client():
            for _ in range(25):
                seen.add(http("GET", url + "health").json()["workers"]["answered_by"])
        clients = [threading.Thread(target=client) for _ in range(8)]
        for each in clients:
            each.start()
        for each in clients:
            each.join()
        self.assertEqual(seen, {1, 2})
