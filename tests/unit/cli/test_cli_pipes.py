"""
The command-line tools end quietly when the reader of their output left
(C{pypid-admin ... | head}, issue 60): no traceback, status 141.
"""

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests import CHECKOUT
from tests.harness.e2e import clean_env

TOOLS = ("admin", "token", "upstream", "export", "passwd")


class BrokenPipeTests(SynchronousTestCase):

    def run_into_closed_pipe(self, argv, stdin=b""):
        """Run C{argv} with its standard output a pipe nobody reads; return (status, stderr)."""
        read, write = os.pipe()
        os.close(read)
        try:
            done = subprocess.run(argv, stdout=write, stderr=subprocess.PIPE, input=stdin,
                                  cwd=CHECKOUT, env=clean_env(os.path.abspath(self.mktemp())),
                                  timeout=60)
        finally:
            os.close(write)
        return done.returncode, done.stderr.decode("utf-8", "replace")

    def test_help(self):
        """Each tool's help, written into a closed pipe: no traceback."""
        for tool in TOOLS:
            status, err = self.run_into_closed_pipe(
                [sys.executable, "-m", f"pypid.cli.{tool}", "--help"])
            self.assertNotIn("Traceback", err, tool)
            self.assertNotIn("BrokenPipeError", err, tool)
            self.assertIn(status, (0, 141), tool)

    def test_output(self):
        """A tool's own output (a password's hash) into a closed pipe: status 141, quiet."""
        status, err = self.run_into_closed_pipe(
            [sys.executable, "-m", "pypid.cli.passwd"], stdin=b"a password\n")
        self.assertEqual((status, err), (141, ""))
