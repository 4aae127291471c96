"""
Tests for L{pypid.daemon.first_worker}: the first worker forked before the
machine is set up, and its role given over a socket. Each case forks in an
interpreter of its own (never in the test runner's, which has threads).
"""

import json
import os
import signal
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from pypid.daemon.first_worker import Forked, given_role, may_fork
from pypid.daemon.workers import Command

#: Forks a first worker as C{twistd pypid} does and, unless told
#: otherwise, gives it a role of three files; prints what each side saw.
_CASE = r"""
import json, os, signal, stat, sys
from pypid.daemon.first_worker import fork, given_role
from pypid.daemon.workers import Command

case, folder = sys.argv[1], sys.argv[2]
files = []
for name in ("ring", "config", "lane"):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(name)
    files.append(os.open(path, os.O_RDONLY))
opened = []

def prepare():
    if case == "gone":
        os._exit(3)
    # (as the reactor does while the worker imports: its own descriptors)
    opened.append(os.open("/dev/zero", os.O_RDONLY))

# (what a fork would keep of its parent, and a spawned worker has not)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
forked = fork(prepare, reserved=4)
if case == "second" and forked is not None:
    # (the first forked ends before its role; the second takes it)
    os.kill(forked.pid, 9)
    os.waitpid(forked.pid, 0)
    gone = forked
    forked = fork(prepare, reserved=4)
if forked is None:
    zero = os.stat("/dev/zero").st_rdev
    print(json.dumps({
        "env": dict(os.environ),
        "placed": [os.pread(fd, 10, 0).decode() for fd in (4, 5, 6)],
        "kept": os.fstat(opened[0]).st_rdev == zero,
        "open": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        "prepared": opened[0],
        "piped": [stat.S_ISFIFO(os.fstat(fd).st_mode) for fd in (0, 1, 2, 3)],
        "stdin": os.read(0, 1).decode(),
        "sigterm": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
        "mask": sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
    }), flush=True)
    os._exit(0)
targets = {4: files[0], 5: files[1], 6: files[2]}
if case == "let go":
    # (as when this process ends: the socket closes)
    os.close(forked.role)
    os.close(forked.stdin)
else:
    if case == "gone":
        os.waitpid(forked.pid, 0)
    command = Command("python", (), {"PYPID_WORKER": "{}"}, targets)
    if case == "second":
        logged = []
        waiting = [gone, forked]
        taken = given_role(waiting, command, lambda *said: logged.append(said))
        print(json.dumps({"taken": taken is forked, "left": len(waiting), "logged": logged,
                          "gone": gone.pid, "none": given_role([], command, print) is None}))
        sys.exit(0)
    try:
        forked.give(command)
    except OSError as e:
        print(json.dumps({"refused": e.__class__.__name__}))
        sys.exit(0)
    os.close(forked.stdin)
said = {}
for fd, read in forked.pipes.items():
    os.set_blocking(read, True)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    said[fd] = b"".join(chunks).decode()
_, status = os.waitpid(forked.pid, 0)
print(json.dumps({"status": os.waitstatus_to_exitcode(status), "said": said}))
"""


class ForkTests(SynchronousTestCase):
    """L{pypid.daemon.first_worker.fork} and L{Forked.give}, in a process of their own."""

    def run_case(self, case):
        folder = self.mktemp()
        os.makedirs(folder)
        done = subprocess.run([sys.executable, "-c", _CASE, case, folder],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout)

    def test_given(self):
        """
        The child takes the role: the environment as given (the parent's
        replaced), each descriptor at its place, while what it opened while
        it waited is kept, and nothing else of its parent's is open (the
        place held and not given is closed); its standard descriptors are
        pipes its parent holds; its signals are at their defaults and
        only C{SIGHUP} and C{SIGUSR1} are blocked (until its handlers are
        in), as a spawned worker's.
        """
        seen = self.run_case("given")
        self.assertEqual(seen["status"], 0)
        child = json.loads(seen["said"]["1"])
        self.assertEqual(child["env"], {"PYPID_WORKER": "{}"})
        self.assertEqual(child["placed"], ["ring", "config", "lane"])
        self.assertTrue(child["kept"])
        # (besides these, the listing's own descriptor)
        self.assertEqual([fd for fd in child["open"] if fd != child["prepared"]][:7],
                         [0, 1, 2, 3, 4, 5, 6])
        self.assertEqual(len(child["open"]), 9)
        self.assertEqual((child["piped"], child["stdin"]), ([True] * 4, ""))
        self.assertEqual((child["sigterm"], child["mask"]),
                         (True, sorted([signal.SIGHUP, signal.SIGUSR1])))
        self.assertEqual(seen["said"]["2"], "")

    def test_let_go(self):
        """A child given no role (its parent refused to start) ends without a word."""
        seen = self.run_case("let go")
        self.assertEqual(seen, {"status": 0, "said": {"1": "", "2": "", "3": ""}})

    def test_gone(self):
        """A child that ended before its role: giving it one raises L{OSError}."""
        self.assertEqual(self.run_case("gone"), {"refused": "BrokenPipeError"})

    def test_given_role(self):
        """
        L{given_role} gives the role to the first forked worker still
        waiting: one that ended meanwhile is logged and let go; none left,
        L{None} (the worker is started anew).
        """
        seen = self.run_case("second")
        self.assertEqual((seen["taken"], seen["left"], seen["none"]), (True, 0, True))
        self.assertEqual(seen["logged"], [[
            "warn", f"Worker process {seen['gone']}, forked at the start, ended before its "
            "role (Broken pipe)"]])



class GivenRoleTests(SynchronousTestCase):
    """L{given_role} and what the hand-over tells of a forked worker."""

    def forked(self, reserved):
        """A L{Forked} of pipes (no process), its descriptors closed after the test."""
        fds = [fd for _ in range(4) for fd in os.pipe()]
        forked = Forked(12345, fds[0], {1: fds[2], 2: fds[4], 3: fds[6]}, fds[1], reserved)
        for fd in fds[3::2]:
            self.addCleanup(os.close, fd)
        return forked, fds

    def test_beyond_reserved(self):
        """
        A role that would place a descriptor past those the child holds
        (over one of its own) is not given: the child is let go (its
        descriptors closed here) and the worker is started anew.
        """
        forked, fds = self.forked(3)
        logged = []
        command = Command("python", (), {}, {4: 0, 5: 0, 6: 0, 7: 0})
        self.assertFalse(forked.fits(command))
        self.assertIsNone(given_role([forked], command, lambda *said: logged.append(said)))
        self.assertEqual(logged, [("warn", "Worker process 12345, forked at the start, "
                                   "holds 3 places for descriptors, not [4, 5, 6, 7]")])
        for fd in (fds[0], fds[1], fds[2], fds[4], fds[6]):
            self.assertRaises(OSError, os.fstat, fd)

    def test_handed(self):
        """What the hand-over says of a forked worker is what the lean process takes."""
        forked, fds = self.forked(4)
        self.addCleanup(forked.close)
        handed = json.loads(json.dumps(forked.handed()))
        self.assertTrue(all(os.get_inheritable(fd) for fd in forked.descriptors()))
        taken = Forked.taken(handed)
        self.assertEqual(taken, forked)
        self.assertTrue(taken.fits(Command("python", (), {}, {4: 0, 5: 0, 6: 0, 7: 0})))


class MayForkTests(SynchronousTestCase):
    """L{may_fork}: only where twistd leaves the process as it is."""

    given = {"nodaemon": True, "debug": False, "uid": None, "gid": None, "chroot": None,
             "rundir": ".", "umask": None}

    def test_foreground(self):
        """In the foreground, in its folder, as its user, nothing made or traced: forked."""
        self.assertTrue(may_fork(self.given, {}, lambda: None))

    def test_not(self):
        """
        A daemon (its parent exits), a user or group, a root or a folder to
        change to, a umask, the debugger, or no twistd at all
        (C{pypid.tac}, the tests): not forked.
        """
        for key, value in [("nodaemon", False), ("debug", True), ("uid", 1000),
                           ("gid", 1000), ("chroot", "/srv"), ("rundir", "/srv"),
                           ("umask", 0o22)]:
            self.assertFalse(may_fork({**self.given, key: value}, {}, lambda: None), key)
        self.assertFalse(may_fork(None, {}, lambda: None))

    def test_reactor_or_trace(self):
        """
        A reactor made already (twistd's C{--reactor}), or a trace
        (C{--spew}): not forked, since the child would keep it.
        """
        self.assertFalse(may_fork(self.given, {"twisted.internet.reactor": object()},
                                  lambda: None))
        self.assertFalse(may_fork(self.given, {}, lambda: print))


class AsWorkerTests(SynchronousTestCase):
    """L{pypid.tap._as_worker}: twistd run again in a forked child, as a worker."""

    def test_as_a_spawned_worker(self):
        """
        twistd is run with a spawned worker's command line and
        C{sys.path}'s first entry (an interpreter run with C{-c}), and its
        exit status is returned.
        """
        import twisted.scripts.twistd

        from pypid.tap import _as_worker

        seen = []

        def run():
            seen.append((list(sys.argv), sys.path[0]))
            raise SystemExit(3)
        self.patch(twisted.scripts.twistd, "run", run)
        self.patch(sys, "argv", ["twistd", "-n", "pypid"])
        self.patch(sys, "path", ["/venv/bin", *sys.path[1:]])
        self.assertEqual(_as_worker(("--config", "pypid.ini")), 3)
        self.assertEqual(seen, [(["-c", "--nodaemon", "--pidfile=",
                                  "--logger=pypid.daemon.machine.worker_log", "pypid",
                                  "--config", "pypid.ini"], "")])
