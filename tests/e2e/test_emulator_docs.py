"""
The emulators' set-up of docs/operations.rst ("A bucket on your own
machine: emulators"), run as written: each emulator's shell blocks, in
the order of their captions, in an empty folder with a home of its own
(the commands write under C{~}), the checkout's C{.venv/bin} first on the
C{PATH}. The first block installs and starts the emulator (in the
background, with C{&}); once its port answers, the second writes the
configuration and makes the bucket with C{pypid-admin storage init}; the
third starts the server, in the foreground as a user would, which must
answer C{/health} with the storage up. Then the second block's command is
run again: the bucket exists.

The emulators' downloads (npm, PyPI) use the machine's registries and
settings, with caches kept between runs so that a second run is quicker.
"""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from twisted.trial.unittest import SkipTest, TestCase

from tests import CHECKOUT
from tests.harness.system import end_process

OPERATIONS = os.path.join(CHECKOUT, "docs", "operations.rst")

#: How long one block may take (an install from the registries included).
BLOCK_LIMIT = 900.0

#: How long an emulator or the server may take to answer once started.
ANSWER_LIMIT = 180.0

#: Each emulator's port, and its server's, as the section gives them.
PORTS = {"Azurite": (10000, 8091), "fake-gcs-server": (4443, 8092), "SeaweedFS": (8333, 8093)}

#: The caches the downloads share between runs (the home is new each time).
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "pypid-tests", "emulator-docs")


def blocks(name, text=None):
    """The shell blocks captioned C{name, N: ...}, their commands, in order."""
    if text is None:
        with open(OPERATIONS, encoding="utf-8") as f:
            text = f.read()
    found = re.findall(r"\.\. code-block:: shell\n   :caption: " + re.escape(name)
                       + r", (\d+): [^\n]*\n\n((?:   .*\n|\n)+)", text)
    return [re.sub(r"(?m)^   ", "", body).strip() + "\n"
            for _, body in sorted(found, key=lambda found: int(found[0]))]


def answers(port):
    """Whether something accepts connections on the loopback C{port}."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(check, limit, what):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {limit:.0f} s")


class EmulatorDocsMixin:
    """The section's commands for the emulator C{name}."""

    name = None

    def setUp(self):
        if shutil.which("bash") is None:
            raise SkipTest("bash is missing: install Debian's bash")
        self.emulator_port, self.server_port = PORTS[self.name]
        for port in (self.emulator_port, self.server_port):
            if answers(port):
                self.fail(f"port {port} is in use: the section's commands need it")
        self.root = tempfile.mkdtemp(prefix="pypid-emulator-docs-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.home = os.path.join(self.root, "home")
        self.work = os.path.join(self.root, "work")
        os.makedirs(self.home)
        os.makedirs(self.work)
        os.makedirs(CACHE, exist_ok=True)
        venv_bin = os.path.dirname(sys.executable)
        # (as a user's shell: trial's workers under -j get the test
        # process's sys.path as PYTHONPATH, and a venv the commands make
        # would see this checkout's packages as installed)
        given = {key: value for key, value in os.environ.items()
                 if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        self.env = {**given, "HOME": self.home,
                    "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
                    "npm_config_cache": os.path.join(CACHE, "npm"),
                    "PIP_CACHE_DIR": os.path.join(CACHE, "pip")}
        self.log_path = os.path.join(self.root, "commands.log")
        self.groups = []
        self.addCleanup(self._stop_all)

    def _stop_all(self):
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _log_tail(self):
        """The commands' output, and the end of each log the emulator wrote."""
        tails = [self.log_path]
        for folder, _, names in os.walk(os.path.join(self.home, "pypid-emulators")):
            tails += [os.path.join(folder, name) for name in names if name.endswith(".log")]
        said = []
        for path in tails:
            with open(path, "rb") as f:
                said.append(f"-- {path}:\n" + f.read()[-3000:].decode("utf-8", "replace"))
        return "\n".join(said)

    def run_block(self, block):
        """Run one block with bash, as a user would paste it; its process group lives on."""
        with open(self.log_path, "ab") as log:
            log.write(b"$ " + block.encode() + b"\n")
            log.flush()
            process = subprocess.Popen(["bash", "-e", "-c", block], cwd=self.work, env=self.env,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        self.groups.append(process.pid)
        try:
            status = process.wait(BLOCK_LIMIT)
        except subprocess.TimeoutExpired:
            end_process(process)
            self.fail(f"{self.name}: a block took over {BLOCK_LIMIT:.0f} s:\n{self._log_tail()}")
        self.assertEqual(status, 0, f"{self.name}: {shlex.quote(block[:60])}...:\n"
                         + self._log_tail())

    def test_commands_as_written(self):
        """The section's commands install, start, make the bucket and serve."""
        start, configure, serve = blocks(self.name)
        self.run_block(start)
        try:
            wait_until(lambda: answers(self.emulator_port), ANSWER_LIMIT,
                       f"{self.name} answers on port {self.emulator_port}")
        except AssertionError as e:
            self.fail(f"{e}:\n{self._log_tail()}")
        self.run_block(configure)
        with open(self.log_path, "ab") as log:
            server = subprocess.Popen(["bash", "-e", "-c", serve], cwd=self.work, env=self.env,
                                      stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        self.groups.append(server.pid)
        health = f"http://127.0.0.1:{self.server_port}/health"

        def up():
            if server.poll() is not None:
                raise AssertionError(f"the server ended ({server.returncode}):\n"
                                     + self._log_tail())
            try:
                with urllib.request.urlopen(health, timeout=5) as answer:
                    return json.loads(answer.read()).get("storage") == "ok"
            except OSError:
                return False
        wait_until(up, ANSWER_LIMIT, "the server's /health says the storage is ok")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.server_port}/simple/",
                                    timeout=10) as answer:
            self.assertEqual(answer.status, 200)
        # (the command at a second deployment: the bucket is there)
        init = [line for line in configure.splitlines() if line.startswith("pypid-admin")]
        again = subprocess.run(["bash", "-e", "-c", init[0]], cwd=self.work, env=self.env,
                               capture_output=True, text=True, timeout=BLOCK_LIMIT)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("exists", again.stdout)


class AzuriteDocsTests(EmulatorDocsMixin, TestCase):
    name = "Azurite"

    def setUp(self):
        if shutil.which("npm") is None or shutil.which("node") is None:
            raise SkipTest("Node.js and npm are missing: install Debian's nodejs and npm")
        return super().setUp()


class FakeGCSDocsTests(EmulatorDocsMixin, TestCase):
    name = "fake-gcs-server"


class SeaweedFSDocsTests(EmulatorDocsMixin, TestCase):
    name = "SeaweedFS"


class BlocksTests(TestCase):
    """The reading of the section's blocks the tests above run."""

    def test_each_emulator_has_three_steps(self):
        for name in PORTS:
            found = blocks(name)
            self.assertEqual(len(found), 3, name)
            self.assertTrue(found[0].rstrip().endswith("&"), name)
            self.assertIn("pypid-admin storage init", found[1])
            self.assertTrue(found[2].startswith("twistd -n pypid --config"), name)

    def test_order_by_caption(self):
        text = (".. code-block:: shell\n   :caption: X, 2: b\n\n   two\n\n"
                ".. code-block:: shell\n   :caption: X, 1: a\n\n   one \\\n"
                "       more\n\nAfter.\n")
        self.assertEqual(blocks("X", text), ["one \\\n    more\n", "two\n"])
