"""
Tests for C{pypid-token} (L{pypid.cli.token}) over a fake server: what
C{list} prints of each token.
"""

import io
import json

from twisted.trial.unittest import SynchronousTestCase

from pypid.cli import token
from tests.harness.admin import FakeServer


class ListTests(SynchronousTestCase):
    """C{pypid-token list} shows each token on a line, never a secret."""

    def listed(self, tokens):
        """The output of C{pypid-token list} of a server whose tokens are C{tokens}."""
        server = FakeServer(json.dumps({"tokens": tokens}).encode())
        self.patch(token, "server_from", lambda options: server)
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(token.main(["list"], out, err), 0, err.getvalue())
        self.assertEqual(server.asked, [("GET", "api/tokens", None, None)])
        return out.getvalue().splitlines()

    def test_expiry_as_a_date(self):
        """
        The expiry is a date and time in UTC, as the console shows it, or
        "never" (it was the raw POSIX time: C{expires=1767225600.0}).
        """
        base = {"user": "root", "actions": ["upload"], "projects": ["ci-*"],
                "description": "ci"}
        lines = self.listed([{**base, "id": "a1", "expires": 1767225600.0},
                             {**base, "id": "b2", "expires": None, "indexes": ["staging"]},
                             {**base, "id": "c3", "expires": 1767225600.0,
                              "ended": {"reason": "revoked", "at": 1767139200.0}}])
        self.assertEqual(lines, [
            "a1  root  upload  ci-*  expires=2026-01-01 00:00 UTC  ci",
            "b2  root  upload  ci-*  indexes=staging  expires=never  ci",
            "c3  root  upload  ci-*  ENDED (revoked)  ci"])
