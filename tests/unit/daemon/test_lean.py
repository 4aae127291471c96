"""
Tests for L{pypid.daemon.lean}, the supervisor's process of the standard
library: its loop's calls to come and signals, the processes it starts
with their descriptors placed, how an end is told, and its log.
"""

import io
import json
import os
import signal
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from pypid.daemon.lean import Log
from pypid.daemon.lean_loop import Loop, Processes, how_it_ended
from pypid.daemon.workers import Command
from tests.harness.e2e import clean_env


class LoopTests(SynchronousTestCase):
    """The lean supervisor's loop."""

    def setUp(self):
        self.loop = Loop()
        self.addCleanup(self.loop.close)

    def test_calls(self):
        """Calls come in their order; one cancelled never comes, one reset comes later."""
        said = []
        self.loop.callLater(0.02, said.append, "second")
        first = self.loop.callLater(0.01, said.append, "first")
        cancelled = self.loop.callLater(0.0, said.append, "cancelled")
        later = self.loop.callLater(0.0, said.append, "reset")
        cancelled.cancel()
        later.reset(0.03)
        self.loop.callLater(0.05, self.loop.stop)
        self.loop.run()
        self.assertEqual(said, ["first", "second", "reset"])
        self.assertEqual((first.active(), cancelled.active(), later.active()),
                         (False, False, False))

    def test_signals_folded(self):
        """A signal's handler runs from the loop, once however often it came meanwhile."""
        heard = []
        self.loop.on_signal(signal.SIGUSR2, lambda: heard.append(True))
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGUSR2)
        self.loop.callLater(0.05, self.loop.stop)
        self.loop.run()
        self.assertEqual(heard, [True])


class ProcessesTests(SynchronousTestCase):
    """Processes started on the loop."""

    def test_placed(self):
        """
        Each inherited descriptor is where the command says, even where one
        descriptor's number is another's place; the output is read, then
        the end told.
        """
        loop = Loop()
        self.addCleanup(loop.close)
        processes = Processes(loop)
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        # (w2 goes where w1 is, and w1 elsewhere)
        command = Command(sys.executable, (
            sys.executable, "-c",
            f"import os; os.write({w1}, b'one'); os.write(30, b'two'); print('out')"),
            dict(os.environ), {w1: w2, 30: w1})
        said, ended = [], []

        def end(how):
            ended.append(how)
            loop.stop()
        processes.spawn(command, lambda fd, data: said.append((fd, data)), end)
        os.close(w1)
        os.close(w2)
        loop.callLater(60, loop.stop)
        loop.run()
        self.assertEqual((os.read(r2, 10), os.read(r1, 10)), (b"one", b"two"))
        os.close(r1)
        os.close(r2)
        self.assertEqual({fd for fd, _ in said}, {1})
        self.assertEqual((b"".join(data for _, data in said), ended), (b"out\n", ["exited"]))

    def test_reload_and_rotation_held(self):
        """
        A process starts with C{SIGHUP} and C{SIGUSR1} blocked, and nothing
        else: sent before its handlers are in (a worker still loading), they
        wait instead of ending it, as their default does.
        """
        loop = Loop()
        self.addCleanup(loop.close)
        script = ("import os, signal, time\n"
                  "os.kill(os.getpid(), signal.SIGHUP)\n"
                  "os.kill(os.getpid(), signal.SIGUSR1)\n"
                  "time.sleep(0.1)\n"
                  "print(sorted(signal.sigpending()), sorted(signal.pthread_sigmask("
                  "signal.SIG_BLOCK, [])))\n")
        said, ended = [], []

        def end(how):
            ended.append(how)
            loop.stop()
        Processes(loop).spawn(Command(sys.executable, (sys.executable, "-c", script),
                                      dict(os.environ), {}),
                              lambda fd, data: said.append(data), end)
        loop.callLater(60, loop.stop)
        loop.run()
        held = sorted([signal.SIGHUP, signal.SIGUSR1])
        self.assertEqual((b"".join(said).decode().strip(), ended),
                         (f"{held} {held}", ["exited"]))

    def test_how_it_ended(self):
        """An end as the log says it: exited, with its status, or killed by a signal."""
        self.assertEqual([how_it_ended(status) for status in (0, 3 << 8, signal.SIGKILL)],
                         ["exited", "exited with status 3", "killed by SIGKILL"])


class LogTests(SynchronousTestCase):
    """The lean supervisor's log."""

    def test_usr1_without_a_file(self):
        """
        C{SIGUSR1} (L{Log.reopen}) rotates a log file, and where the log
        goes to standard output says there is none to reopen.
        """
        out = io.StringIO()
        Log(stream=out).reopen()
        self.assertIn("Received SIGUSR1: the log goes to standard output", out.getvalue())
        folder = self.mktemp()
        os.makedirs(folder)
        log = Log(file=os.path.join(folder, "twistd.log"))
        log("info", "before")
        log.reopen()
        self.assertEqual(sorted(os.listdir(folder)), ["twistd.log", "twistd.log.1"])

    def test_file_rotated(self):
        """A log file is rotated once it holds enough, and at C{SIGUSR1} (L{Log.rotate})."""
        folder = self.mktemp()
        os.makedirs(folder)
        path = os.path.join(folder, "twistd.log")
        log = Log(file=path, rotate_at=300)
        log("info", "Started worker 1 (process 7)")
        self.assertFalse(os.path.exists(path + ".1"))
        for _ in range(4):
            log("warn", "Worker 1 ended (exited) after 3 s; starting it again in 1 s")
        log.rotate()
        log("info", "after")
        self.assertEqual(sorted(os.listdir(folder)), ["twistd.log", "twistd.log.1",
                                                       "twistd.log.2"])
        with open(path, encoding="utf-8") as f:
            self.assertRegex(f.read(), r"^\S+ \[pypid.daemon.lean#info\] after\n$")
        with open(path + ".2", encoding="utf-8") as f:
            self.assertIn("Started worker 1 (process 7)", f.read())


_IMPORTS_PROBE = """
import json, sys
import pypid.daemon.lean
print(json.dumps(sorted(sys.modules)))
"""

#: What the lean process may import beside the standard library.
_LEAN_MODULES = {"pypid", "pypid.daemon", "pypid.daemon.first_worker", "pypid.daemon.lean",
                 "pypid.daemon.lean_loop",
                 "pypid.daemon.socket_groups", "pypid.daemon.workers", "pypid.machine",
                 "pypid.machine.ring", "pypid.machine.topic_table"}


class ImportsTests(SynchronousTestCase):
    """The lean supervisor stays lean: what it imports is its memory (about 19 MiB)."""

    def test_imports(self):
        """
        In a fresh interpreter, the lean process loads the standard library,
        C{attrs} and its own few modules: not Twisted (31 MiB of RSS alone),
        not the configuration's code.
        """
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        done = subprocess.run([sys.executable, "-c", _IMPORTS_PROBE], cwd=folder,
                              env=clean_env(folder), capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        loaded = json.loads(done.stdout)
        outside = {name for name in loaded if name.split(".")[0] not in sys.stdlib_module_names
                   and name.split(".")[0] not in ("attr", "attrs")
                   and not name.startswith("_")}
        self.assertEqual(outside - _LEAN_MODULES, set())
