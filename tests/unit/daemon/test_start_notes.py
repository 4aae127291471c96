"""
L{pypid.daemon.start_notes}: the start log names where the data is, and
warns while a user keeps the password the shipped configuration gives.
"""

import os

from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pypid.config import load_config
from pypid.daemon.start_notes import SHIPPED_HASH, StartNotes, storage_line
from tests import CHECKOUT


class StartNotesTests(SynchronousTestCase):

    def notes(self, config):
        with capturedLogs() as events:
            StartNotes(config).startService()
        return [(e["log_level"], formatEvent(e)) for e in events]

    def test_shipped_file(self):
        """The shipped file: its absolute paths, and the warning about its admin."""
        path = os.path.join(CHECKOUT, "etc", "pypid.ini")
        config = load_config(path)
        self.assertEqual(config.users["admin"], SHIPPED_HASH)
        var = os.path.join(CHECKOUT, "var")
        notes = self.notes(config)
        self.assertEqual(notes[0], (LogLevel.info,
                                    f"Storage: local folder {var}/packages; snapshot: "
                                    f"{var}/index.json"))
        self.assertEqual(notes[1][0], LogLevel.warn)
        self.assertIn("The user admin still has the password etc/pypid.ini ships (admin)",
                      notes[1][1])
        self.assertEqual(len(notes), 2)

    def test_new_password(self):
        """With another hash, no warning."""
        config = load_config(None, [("users", "admin", "$argon2id$v=19$m=19456,t=2,p=1$"
                                     "c29tZXNhbHQ$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")])
        self.assertEqual([level for level, _ in self.notes(config)], [LogLevel.info])

    def test_s3(self):
        """An S3 bucket is named with its endpoint and prefix."""
        config = load_config(None, [("storage", "backend", "s3"), ("s3", "bucket", "pkgs"),
                                    ("s3", "endpoint_url", "http://127.0.0.1:9000"),
                                    ("s3", "prefix", "team/")])
        self.assertEqual(storage_line(config),
                         "S3 bucket pkgs at http://127.0.0.1:9000, prefix team/")
