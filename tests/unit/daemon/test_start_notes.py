"""
L{pypid.daemon.start_notes}: the start log names where the data is, and
warns while a user keeps the password the shipped configuration gives.
"""

import os

import attrs
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pypid.config import load_config
from pypid.core.access.publishers import PublisherRule
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

    def test_shipped_password_on_the_network(self):
        """
        The shipped password with a listener other machines reach (the TLS
        recipe's https:8443, every IPv4 address): the warning says the
        server is reachable from the network, naming the line; on loopback
        lines alone, it does not.
        """
        path = os.path.join(CHECKOUT, "etc", "pypid.ini")
        tls = [("tls", "certificate", "/etc/pypid/tls/server.pem"),
               ("tls", "key", "/etc/pypid/tls/server-key.pem")]
        for listen, network in ((["https:8443"], "https:8443"),
                                (["tcp:8080:interface=127.0.0.1", "tcp6:8080"], "tcp6:8080"),
                                (["https:8443:interface=127.0.0.1"], None),
                                (["unix:/run/pypid.sock"], None)):
            https = any(line.startswith("https:") for line in listen)
            warnings = [text for level, text in
                        self.notes(load_config(path, tls if https else (), listen))
                        if level == LogLevel.warn]
            self.assertEqual(len(warnings), 1, listen)
            said = f"reachable from the network ({network}): anyone on the network can log in"
            if network is None:
                self.assertNotIn("network", warnings[0])
                self.assertIn("anyone who can reach this server can log in", warnings[0])
            else:
                self.assertIn(said, warnings[0])

    def test_new_password_on_the_network(self):
        """Another password: no warning, whatever the listeners."""
        config = load_config(None, [("users", "admin", "$argon2id$v=19$m=19456,t=2,p=1$"
                                     "c29tZXNhbHQ$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")],
                             ["tcp:8080"])
        self.assertEqual([level for level, _ in self.notes(config)], [LogLevel.info])

    def test_new_password(self):
        """With another hash, no warning."""
        config = load_config(None, [("users", "admin", "$argon2id$v=19$m=19456,t=2,p=1$"
                                     "c29tZXNhbHQ$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")])
        self.assertEqual([level for level, _ in self.notes(config)], [LogLevel.info])

    def test_nobody_can_upload(self):
        """
        The embedded default (no users, no directory, no publishers): the
        log says nobody can upload and how to add a user; a user, an LDAP
        directory or a trusted publisher each let someone log in.
        """
        [(level, storage), (said_level, said)] = self.notes(load_config(None))
        self.assertEqual((level, said_level), (LogLevel.info, LogLevel.info))
        self.assertIn("nobody can upload, and twine gets 401. Run pypid-passwd", said)
        nobody = load_config(None)
        for config in (load_config(None, [("users", "alice", "$argon2id$v=19$m=19456,t=2,p=1$"
                                           "c29tZXNhbHQ$abcdefghijklmnopqrstuvwxyz0123456789A"
                                           "BCDEFG")]),
                       load_config(None, [("ldap", "url", "ldap://127.0.0.1:389"),
                                          ("ldap", "user_base", "ou=people,dc=example,dc=org")]),
                       attrs.evolve(nobody, publishers=(PublisherRule("proj", "github", ()),))):
            notes = self.notes(config)
            self.assertFalse([text for _, text in notes if "nobody can upload" in text])

    def test_s3(self):
        """An S3 bucket is named with its endpoint and prefix."""
        config = load_config(None, [("storage", "backend", "s3"), ("s3", "bucket", "pkgs"),
                                    ("s3", "endpoint_url", "http://127.0.0.1:9000"),
                                    ("s3", "prefix", "team/")])
        self.assertEqual(storage_line(config),
                         "S3 bucket pkgs at http://127.0.0.1:9000, prefix team/")
