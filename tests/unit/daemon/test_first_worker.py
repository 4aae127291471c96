"""
Tests for L{pypid.daemon.first_worker}: the first worker forked before the
machine is set up, and its role given over a socket. Each case forks in an
interpreter of its own (never in the test runner's, which has threads).
"""

import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from pypid.daemon.first_worker import may_fork

#: Forks a first worker as C{twistd pypid} does and, unless told
#: otherwise, gives it a role of three files; prints what each side saw.
_CASE = r"""
import json, os, sys
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

forked = fork(prepare, reserved=3)
if case == "second" and forked is not None:
    # (the first forked ends before its role; the second takes it)
    os.kill(forked.pid, 9)
    os.waitpid(forked.pid, 0)
    gone = forked
    forked = fork(prepare, reserved=3)
if forked is None:
    zero = os.stat("/dev/zero").st_rdev
    print(json.dumps({
        "env": dict(os.environ),
        "placed": [os.pread(fd, 10, 0).decode() for fd in (4, 5, 6)],
        "kept": os.fstat(opened[0]).st_rdev == zero,
        "stdin": os.read(0, 1).decode(),
    }), flush=True)
    os._exit(0)
targets = {4: files[0], 5: files[1], 6: files[2]}
if case == "beyond":
    targets = {4: files[0], 9: files[1]}
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
        it waited is kept; its standard input is a pipe its parent holds.
        """
        seen = self.run_case("given")
        self.assertEqual(seen["status"], 0)
        child = json.loads(seen["said"]["1"])
        self.assertEqual(child["env"], {"PYPID_WORKER": "{}"})
        self.assertEqual(child["placed"], ["ring", "config", "lane"])
        self.assertTrue(child["kept"])
        self.assertEqual(child["stdin"], "")
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

    def test_beyond_reserved(self):
        """
        A role that would place a descriptor past those held for it (over
        one of the child's own) is refused: the child exits, saying why.
        """
        seen = self.run_case("beyond")
        self.assertEqual(seen["status"], 1)
        self.assertIn("beyond the 3 held for it", seen["said"]["2"])
        self.assertEqual(seen["said"]["1"], "")


class MayForkTests(SynchronousTestCase):
    """L{may_fork}: only where twistd leaves the process as it is."""

    def test_foreground(self):
        """In the foreground, in its folder, as its user: forked."""
        self.assertTrue(may_fork({"nodaemon": True, "uid": None, "gid": None, "chroot": None,
                                  "rundir": ".", "umask": None}))

    def test_not(self):
        """
        A daemon (its parent exits), a user or group, a root or a folder to
        change to, a umask, or no twistd at all (C{pypid.tac}, the tests):
        not forked.
        """
        given = {"nodaemon": True, "uid": None, "gid": None, "chroot": None, "rundir": ".",
                 "umask": None}
        for key, value in [("nodaemon", False), ("uid", 1000), ("gid", 1000),
                           ("chroot", "/srv"), ("rundir", "/srv"), ("umask", 0o22)]:
            self.assertFalse(may_fork({**given, key: value}), key)
        self.assertFalse(may_fork(None))
