"""
The command-line tools run without a terminal (a CI job, a cron line, a
pipe): where they would ask for a password they say what to set instead
and end with status 2, never with a traceback.
"""

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests import CHECKOUT
from tests.harness.e2e import clean_env

#: No server listens there: the tools must stop before they connect.
SERVER = "http://127.0.0.1:9/"

#: A command of each tool that asks a server as a user.
AS_A_USER = (
    ("token", "list"), ("token", "issue"), ("upstream", "takedowns"),
    ("upstream", "check"), ("upstream", "precache", "pip"), ("admin", "projects"),
    ("admin", "audit"),
)


class NoTerminalTests(SynchronousTestCase):

    def run_tool(self, tool, *args, stdin=b"", **environ):
        """Run C{pypid-<tool>} with C{stdin} (not a terminal); return (status, stderr)."""
        env = clean_env(os.path.abspath(self.mktemp()), **environ)
        done = subprocess.run([sys.executable, "-m", f"pypid.cli.{tool}", *args],
                              input=stdin, capture_output=True, cwd=CHECKOUT, env=env,
                              timeout=60)
        return done.returncode, done.stderr.decode("utf-8", "replace")

    def test_server_tools_name_the_variable(self):
        """Each tool asked to act as a user, with no terminal and no PYPID_PASSWORD: status 2."""
        for tool, *args in AS_A_USER:
            status, err = self.run_tool(tool, "--server", SERVER, "--user", "alice", *args)
            self.assertEqual(status, 2, (tool, args, err))
            self.assertEqual(err, f"pypid-{tool}: no terminal to ask for the password: "
                                  "set PYPID_PASSWORD\n", (tool, args))

    def test_password_from_the_environment(self):
        """With PYPID_PASSWORD set, nothing is asked: the tool goes on to the server."""
        status, err = self.run_tool("token", "--server", SERVER, "--user", "alice", "list",
                                    PYPID_PASSWORD="secret")
        self.assertEqual(status, 1, err)
        self.assertNotIn("PYPID_PASSWORD", err)
        self.assertNotIn("Traceback", err)

    def test_passwd_without_input(self):
        """pypid-passwd with nothing on standard input says how to give it: status 2."""
        status, err = self.run_tool("passwd")
        self.assertEqual(status, 2, err)
        self.assertIn("give it as one line on standard input", err)
        self.assertNotIn("Traceback", err)
        status, err = self.run_tool("passwd", stdin=b"\n")
        self.assertEqual((status, err), (1, "pypid-passwd: the password is empty\n"))
