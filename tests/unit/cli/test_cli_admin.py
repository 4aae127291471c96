"""
Tests for C{pypid-admin}'s table of sub-commands (L{pypid.cli.admin}): the
parser built from it, the checks of each command's options, and the
requests the commands that change a file make (over a fake server).
"""

import io
import json
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
        """
        C{--help} lists the table's commands in its order, then audit,
        webhooks, export, import, storage and tls.
        """
        status, out, _ = self.run_admin(["--help"])
        self.assertEqual(status, 0)
        choices = re.search(r"\{([a-z,]+)\}", out).group(1).split(",")
        self.assertEqual(choices, [*admin._SERVER_COMMANDS, "audit", "webhooks", "export",
                                   "import", "storage", "tls"])
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


class IndexTests(SynchronousTestCase):
    """
    Every command that acts in one index takes C{--index NAME} and asks
    under C{NAME/}, where the server mounts a named index; the default
    index (no C{--index}, or C{--index default}) at the root.
    """

    #: each command line, the answer it reads, and the path it asks at the root
    COMMANDS = (
        (["projects"], b'{"projects": []}', "simple/"),
        (["files", "widget"], b'{"files": []}', "simple/widget/"),
        (["yank", "widget-1.0.tar.gz"], b"OK\n", "api/files/widget-1.0.tar.gz/yank"),
        (["unyank", "widget", "1.0"], b"OK\n", "api/projects/widget/1.0/unyank"),
        (["delete", "widget", "1.0", "--yes"], b"OK\n", "api/projects/widget/1.0"),
        (["status", "widget", "archived"], b"OK\n", "api/projects/widget/status"),
        (["bin", "restore", "widget-1.0.tar.gz"], b"OK\n",
         "api/files/widget-1.0.tar.gz/restore"),
    )

    def asked(self, argv, answer):
        """The path C{pypid-admin argv} asks."""
        server = FakeServer(answer)
        self.patch(admin, "server_from", lambda options: server)
        err = io.StringIO()
        status = admin.main(argv, io.StringIO(), err)
        self.assertEqual(status, 0, (argv, err.getvalue()))
        [(_, path, _, _)] = server.asked
        return path

    def test_named_index(self):
        """C{--index staging}: the same request, under C{staging/}."""
        for argv, answer, path in self.COMMANDS:
            self.assertEqual(self.asked([*argv, "--index", "staging"], answer),
                             f"staging/{path}", argv)

    def test_default_index(self):
        """No C{--index}, or C{--index default}: at the root."""
        for argv, answer, path in self.COMMANDS:
            self.assertEqual(self.asked(argv, answer), path, argv)
            self.assertEqual(self.asked([*argv, "--index", "default"], answer), path, argv)

    def test_help(self):
        """Each command's --help offers --index NAME, in the same words."""
        for argv, _, _ in self.COMMANDS:
            out = io.StringIO()
            self.patch(admin.sys, "stdout", out)
            with self.assertRaises(SystemExit):
                admin.main([argv[0], "--help"], out, io.StringIO())
            self.assertIn("--index NAME the index (default: the default index)",
                          " ".join(out.getvalue().split()), argv)


class ListTests(SynchronousTestCase):
    """What the listing commands print, one thing counted in the singular."""

    def run_admin(self, answer, *argv):
        server = FakeServer(answer)
        self.patch(admin, "server_from", lambda options: server)
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(admin.main(list(argv), out, err), 0, err.getvalue())
        return out.getvalue()

    def test_bin(self):
        """
        C{bin}: a line naming the index and its bin, then a line a file, its
        times labelled (the purge is due, not done), the filename last.
        """
        answer = {"index": "staging", "keep_for": 604800.0, "files": [
            {"filename": "widget-1.0.tar.gz", "deleted": "2026-11-27T10:00:00.000000Z",
             "purged": "2026-12-04T10:00:00.000000Z"}]}
        out = self.run_admin(json.dumps(answer).encode(), "bin", "--index", "staging")
        self.assertEqual(out.splitlines(), [
            "staging: 1 file in the recycle bin (kept 7 days)",
            "deleted 2026-11-27T10:00:00.000000Z  purge due 2026-12-04T10:00:00.000000Z  "
            "widget-1.0.tar.gz"])
        self.assertNotIn("purged", out)

    def test_one_of_each(self):
        """One release, file, day, advisory, byte: never C{1 files}."""
        plan = {"indexes": [{"index": "default", "bytes": 1, "kept": {}, "recycle_bin": True,
                             "releases": [{"project": "widget", "version": "1.0",
                                           "reason": "old", "bytes": 1,
                                           "files": [{"filename": "widget-1.0.tar.gz"}]}]}]}
        self.assertEqual(self.run_admin(json.dumps(plan).encode(), "retention", "plan"),
                         "default: 1 release, 1 file, 1 byte\n"
                         "  widget 1.0: old (1 file, 1 byte)\n")
        usage = {"index": "default", "days": 1, "files": []}
        self.assertEqual(self.run_admin(json.dumps(usage).encode(), "usage", "--days", "1"),
                         "default: downloads over the last 1 day\n")
        advisories = {"database": {"advisories": 1, "projects": 1},
                      "indexes": [{"index": "default", "mode": "deny", "releases": [
                          {"project": "widget", "version": "1.0", "action": "deny",
                           "advisories": [{"id": "PYSEC-1"}]}]}]}
        self.assertEqual(self.run_admin(json.dumps(advisories).encode(), "advisories", "check"),
                         "1 advisory of 1 project in force\n"
                         "default: widget 1.0 denied: PYSEC-1\n"
                         "default: 1 release denied\n")
