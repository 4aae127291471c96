"""
Tests of L{pypid.daemon.systemd}: the notifications of a C{Type=notify} unit,
sent to a real datagram socket as systemd's would receive them, and end to
end from the real daemon.
"""

import os
import signal
import socket

from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from pypid.daemon.systemd import Notifier
from tests.harness.e2e import DaemonTestCase, wait_for
from tests.harness.system import socket_path


class Listener:
    """A socket that stands for systemd's notification socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(10)

    def receive(self):
        """The next datagram's lines."""
        return self.sock.recv(4096).decode("utf-8").split("\n")

    def close(self):
        self.sock.close()


class NotifierTests(SynchronousTestCase):
    """Reading the environment, and sending."""

    def test_from_environ(self):
        """NOTIFY_SOCKET gives the address; WATCHDOG_USEC the watchdog's half period."""
        self.assertIsNone(Notifier.from_environ({}))
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "/run/systemd/notify"})
        self.assertEqual((notifier.address, notifier.watchdog), ("/run/systemd/notify", None))
        self.assertEqual(Notifier.from_environ({"NOTIFY_SOCKET": "@abstract"}).address,
                         "\0abstract")
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "30000000",
                                          "WATCHDOG_PID": "42"}, pid=42)
        self.assertEqual(notifier.watchdog, 15.0)
        for env in ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "41"},
                    {"WATCHDOG_USEC": "0"}, {"WATCHDOG_USEC": "x"}):
            notifier = Notifier.from_environ(dict(env, NOTIFY_SOCKET="/n"), pid=42)
            self.assertIsNone(notifier.watchdog, env)

    def test_send(self):
        """The states go in one datagram, a line each, to a path or an abstract name."""
        path = socket_path(self)
        listener = Listener(path)
        self.addCleanup(listener.close)
        Notifier(path).send("READY=1", "STATUS=Serving 3 files")
        self.assertEqual(listener.receive(), ["READY=1", "STATUS=Serving 3 files"])
        name = f"pypid-test-{os.getpid()}"
        abstract = Listener("\0" + name)
        self.addCleanup(abstract.close)
        Notifier.from_environ({"NOTIFY_SOCKET": "@" + name}).send("WATCHDOG=1")
        self.assertEqual(abstract.receive(), ["WATCHDOG=1"])

    def test_manager_gone(self):
        """A socket that is not there is logged, not raised."""
        with capturedLogs() as events:
            Notifier(socket_path(self)).send("READY=1")
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn])


class DaemonNotifiesTests(DaemonTestCase):
    """The real daemon under a notification socket, as systemd runs it."""

    def test_ready_watchdog_stopping(self):
        """READY=1 once it serves, WATCHDOG=1 at half the period, STOPPING=1 on SIGTERM."""
        path = socket_path(self)
        listener = Listener(path)
        self.addCleanup(listener.close)
        daemon = self.new_daemon(start=False)
        daemon.environ.update(NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
        daemon.start()
        ready = listener.receive()
        self.assertEqual(ready[0], "READY=1")
        self.assertEqual(ready[1], "STATUS=Serving 0 files")
        self.assertEqual(daemon.health(), 200)
        self.assertEqual(listener.receive(), ["WATCHDOG=1"])
        self.assertEqual(listener.receive(), ["WATCHDOG=1"])
        os.kill(daemon.pid, signal.SIGTERM)
        seen = []
        wait_for(lambda: seen.extend(listener.receive()) or "STOPPING=1" in seen, 10,
                 "no STOPPING=1")
