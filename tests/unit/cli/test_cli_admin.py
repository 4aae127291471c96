"""
Tests for C{pypid-admin}'s table of sub-commands (L{pypid.cli.admin}): the
parser built from it, the checks of each command's options, and the
requests the commands that change a file make (over a fake server).
"""

import io
import re

from twisted.trial.unittest import SynchronousTestCase

from pypid.cli import admin
from tests.harness.admin import FakeServer


class TableTests(SynchronousTestCase):
    """The parser is built from the table, and each command's check is a usage error."""

    def run_admin(self, argv):
        """C{(status, stdout, stderr)} of C{pypid-admin argv}, a usage error included."""
        out, err = io.StringIO(), io.StringIO()
        self.patch(admin.sys, "stdout", out)
        self.patch(admin.sys, "stderr", err)
        try:
            status = admin.main(argv, out, err)
        except SystemExit as e:
            status = e.code
        return status, out.getvalue(), err.getvalue()

    def test_help_lists_the_table(self):
        """C{--help} lists the table's commands in its order, then audit, export and import."""
        status, out, _ = self.run_admin(["--help"])
        self.assertEqual(status, 0)
        choices = re.search(r"\{([a-z,]+)\}", out).group(1).split(",")
        self.assertEqual(choices, [*admin._SERVER_COMMANDS, "audit", "export", "import", "tls"])
        self.assertEqual(list(admin._SERVER_COMMANDS)[:5],
                         ["projects", "files", "yank", "unyank", "delete"])

    def test_checks(self):
        """Each command's check fails the command line with exit status 2 and its message."""
        for argv, message in [
                (["delete", "widget-1.0.tar.gz"], "delete: add --yes"),
                (["retention", "apply"], "retention apply: add --yes"),
                (["bin", "restore"], "bin: give a filename to restore"),
                (["bin", "list", "widget-1.0.tar.gz"], "bin: give a filename to restore"),
                (["promote", "staging", "release", "widget-1.2"],
                 "widget-1.2: give the release as PROJECT==VERSION")]:
            status, out, err = self.run_admin(argv)
            self.assertEqual((status, out), (2, ""), argv)
            self.assertIn(f"pypid-admin: error: {message}", err)

    def test_checks_pass(self):
        """What a check accepts runs the command."""
        server = FakeServer()
        self.patch(admin, "server_from", lambda options: server)
        answers = {"retention": b'{"indexes": []}',
                   "promote": b'{"to": "b", "promoted": [], "skipped": []}'}
        for argv in (["delete", "widget-1.0.tar.gz", "--yes"], ["bin", "restore", "w.whl"],
                     ["retention", "plan"], ["promote", "a", "b", "widget==1.2"]):
            server.asked.clear()
            server.answer = answers.get(argv[0], b"done\n")
            status, _, err = self.run_admin(argv)
            self.assertEqual(status, 0, (argv, err))
            self.assertEqual(len(server.asked), 1, argv)


class ChangeTests(SynchronousTestCase):
    """C{yank}, C{unyank} and C{delete}: a file or a release, each its request."""

    def setUp(self):
        self.server = FakeServer(b"widget-1.0.tar.gz yanked\n")
        self.patch(admin, "server_from", lambda options: self.server)

    def run_admin(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        status = admin.main(list(argv), out, err)
        self.assertEqual(status, 0, err.getvalue())
        return out.getvalue()

    def test_yank_file(self):
        """C{yank FILENAME --reason} posts the reason as a form to the file's route."""
        out = self.run_admin("yank", "widget-1.0.tar.gz", "--reason", "broken")
        self.assertEqual(self.server.asked, [
            ("POST", "api/files/widget-1.0.tar.gz/yank",
             {"Content-Type": "application/x-www-form-urlencoded"}, b"reason=broken")])
        self.assertEqual(out, "widget-1.0.tar.gz yanked\n")

    def test_unyank_release(self):
        """C{unyank PROJECT VERSION} posts an empty form to the release's route."""
        self.run_admin("unyank", "widget", "1.0")
        self.assertEqual(self.server.asked, [
            ("POST", "api/projects/widget/1.0/unyank",
             {"Content-Type": "application/x-www-form-urlencoded"}, b"")])

    def test_delete(self):
        """C{delete FILENAME --yes} sends DELETE to the file's route."""
        self.run_admin("delete", "widget-1.0.tar.gz", "--yes")
        self.assertEqual(self.server.asked, [("DELETE", "api/files/widget-1.0.tar.gz", {}, None)])

    def test_unreachable(self):
        """A server that cannot be reached is one line on stderr and exit status 1."""
        out, err = io.StringIO(), io.StringIO()

        def unreachable(options):
            raise admin.CliError("cannot reach the server")
        self.patch(admin, "server_from", unreachable)
        self.assertEqual(admin.main(["projects"], out, err), 1)
        self.assertEqual((out.getvalue(), err.getvalue()),
                         ("", "pypid-admin: cannot reach the server\n"))
