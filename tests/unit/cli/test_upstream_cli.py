"""
C{pypid-upstream}'s output (L{pypid.cli.upstream}): the progress bar of
C{precache} is drawn on a terminal only (in a CI log its redraws would be
one long line), and its summary and C{refresh}'s line count as people do.
"""

import contextlib
import hashlib
import io
import json

from twisted.trial.unittest import SynchronousTestCase

from pypid.cli import upstream
from pypid.cli.upstream import refreshed_line, takedown_lines

WHEEL = "widget-1.0-py3-none-any.whl"
DATA = b"the wheel's bytes"


class _Response(io.BytesIO):
    """A response: its body, and its headers."""

    def __init__(self, body, content_type="application/octet-stream"):
        super().__init__(body)
        self.headers = {"Content-Type": content_type}


class _Server:
    """A server of widget's page (one wheel, no metadata file) and of that wheel."""

    url = "http://pypi.test/"

    @contextlib.contextmanager
    def request(self, method, path, headers=None, body=None):
        if path == "simple/widget/":
            page = {"meta": {"api-version": "1.1"}, "name": "widget", "files": [
                {"filename": WHEEL, "url": f"/files/widget/{WHEEL}",
                 "hashes": {"sha256": hashlib.sha256(DATA).hexdigest()}}]}
            yield _Response(json.dumps(page).encode(), upstream.ACCEPT_JSON)
        else:
            yield _Response(DATA)


class _Terminal(io.StringIO):
    """Standard error on a terminal."""

    def isatty(self):
        return True


class PrecacheOutputTests(SynchronousTestCase):

    def precache(self, err):
        """Run C{pypid-upstream precache widget} against L{_Server}; return its status and stdout."""
        self.patch(upstream, "server_from", lambda options: _Server())
        out = io.StringIO()
        status = upstream.main(["precache", "widget"], out, err)
        return status, out.getvalue()

    def test_no_bar_without_a_terminal(self):
        """Standard error not a terminal (a CI log, a pipe): no bar, the summary alone."""
        err = io.StringIO()
        status, out = self.precache(err)
        self.assertEqual((status, err.getvalue()), (0, ""))
        self.assertEqual(out, f"cached {WHEEL}\n1 file cached, 0 failed\n")

    def test_bar_on_a_terminal(self):
        """On a terminal, the bar is redrawn in place and ends its line."""
        err = _Terminal()
        status, out = self.precache(err)
        self.assertEqual(status, 0)
        drawn = err.getvalue()
        self.assertTrue(drawn.startswith("\r[" + "." * 30 + "] 0/1 " + WHEEL), drawn)
        self.assertIn("\r[" + "#" * 30 + "] 1/1 done", drawn)
        self.assertTrue(drawn.endswith("\n"))
        self.assertEqual(drawn.count("\n"), 1)
        self.assertEqual(out, f"cached {WHEEL}\n1 file cached, 0 failed\n")


class CountTests(SynchronousTestCase):

    def test_one_file(self):
        """One file upstream, or taken down, is said in the singular."""
        self.assertEqual(refreshed_line({"project": "setuptools", "files": 1}),
                         "setuptools: 1 file upstream\n")
        self.assertEqual(refreshed_line({"project": "w", "files": 0}), "w: 0 files upstream\n")
        self.assertEqual(takedown_lines({"upstreams": [{"name": "pypi", "files": [
            {"filename": WHEEL, "project": "widget", "seen": 0}]}]})[-1],
            "pypi: 1 file taken down upstream")
