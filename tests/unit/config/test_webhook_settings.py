"""
The C{[webhook:NAME]} sections (L{pypid.config.webhook_settings}): read,
checked, their secrets kept out of every repr, and reloaded.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from pypid.config import ConfigError, load_config
from pypid.config.reloading import RELOAD, how
from pypid.core.records.webhook_events import Filter
from tests.harness.config_files import ConfigFiles
from tests.harness.webhooks import KEY, SECRET

BASE = f"[webhook:builds]\nurl = https://builds.example/hooks/pypid\nsecret = {SECRET}\n"


class WebhookSectionTests(ConfigFiles, SynchronousTestCase):
    """What a subscription's section says, and what it may not."""

    def load(self, text):
        return load_config(self.write(text))

    def refusal(self, text):
        with self.assertRaises(ConfigError) as caught:
            self.load(text)
        return str(caught.exception)

    def test_defaults(self):
        """A URL and a secret: every event of every index, a day of tries."""
        config = self.load(BASE)
        builds = config.webhooks["builds"]
        self.assertEqual((builds.url, builds.filter, builds.key, builds.timeout,
                          builds.retry_for, builds.retry_delay, builds.max_connections),
                         ("https://builds.example/hooks/pypid", Filter(), KEY, 10.0, 86400.0,
                          5.0, 2))
        self.assertEqual(builds.receiver, "https://builds.example:443")

    def test_secret_hidden(self):
        """The secret is in no repr of the configuration."""
        config = self.load(BASE)
        self.assertNotIn(SECRET[6:], repr(config))
        self.assertNotIn(repr(KEY), repr(config))

    def test_filters(self):
        """Events, indexes and project globs (normalized as [acl]'s)."""
        config = self.load(BASE + "events = upload, yank\nprojects = Acme.*\n"
                           "indexes = default\n")
        self.assertEqual(config.webhooks["builds"].filter,
                         Filter(frozenset({"upload", "yank"}), frozenset({"default"}),
                                ("acme-*",)))

    def test_secret_file(self):
        """The secret may be read from a file beside the configuration."""
        path = self.write(SECRET + "\n")
        config = self.load(BASE.replace(f"secret = {SECRET}", f"secret_file = {path}"))
        self.assertEqual(config.webhooks["builds"].key, KEY)

    def test_refusals(self):
        """Each mistake is refused naming the section and key."""
        cases = [
            (BASE.replace("https://", "http://"), "[webhook:builds] url: a webhook is sent "
             "over https: only"),
            (BASE.replace("https://", "https://user:pw@"), "[webhook:builds] url: a "
             "webhook's URL carries no credentials"),
            (BASE.replace("https://builds.example/hooks/pypid", "ftp://x"),
             "[webhook:builds] url: expected the receiver's https:// URL"),
            ("[webhook:builds]\nsecret = " + SECRET + "\n", "[webhook:builds] url: a webhook "
             "needs the URL of its receiver"),
            (BASE.replace(f"secret = {SECRET}\n", ""), "[webhook:builds] secret: give the "
             "subscription's secret in secret or in secret_file"),
            (BASE.replace(SECRET, "whsec_c2hvcnQ="), "[webhook:builds] secret: expected "
             "whsec_ then the base64 of 24 to 64 random bytes"),
            (BASE + "events = upload uplod\n", "[webhook:builds] events: unknown event "
             "'uplod'"),
            (BASE + "indexes = prod\n", "[webhook:builds] indexes: 'prod' is not an index "
             "of this server"),
            (BASE + "secret_file = /no/such/file\n", "[webhook:builds] secret: give the "
             "subscription's secret in secret or in secret_file (one of the two)"),
            (BASE + "max_connections = 0\n", "[webhook:builds] max_connections: expected "
             "a whole number from 1 to 64"),
            (BASE + "colour = red\n", "[webhook:builds] colour: unknown key"),
            (BASE.replace("[webhook:builds]", "[webhook:Bad Name]"),
             "cannot name a webhook"),
            (BASE.replace("https://", "HTTP://"), "[webhook:builds] url: a webhook is sent "
             "over https: only"),
            (BASE.replace("builds.example/", "builds.example:99999/"), "[webhook:builds] url: "
             "the port of the receiver's URL is not a number from 1 to 65535"),
        ]
        for text, expected in cases:
            message = self.refusal(text)
            self.assertIn(expected, message)
            self.assertNotIn(SECRET[6:], message)

    def test_plain_http_when_said(self):
        """allow_http lets a receiver be reached in the clear (a loopback one)."""
        config = self.load(BASE.replace("https://", "http://") + "allow_http = yes\n")
        self.assertTrue(config.webhooks["builds"].url.startswith("http://"))

    def test_private_address_when_said(self):
        """
        A receiver's URL at an address that is not public (loopback,
        private, link-local where the clouds' metadata answers, an IPv6
        literal among them) is refused unless allow_private says so; a
        name is checked where it is resolved, at each connection.
        """
        for host in ("127.0.0.1", "10.0.0.5", "169.254.169.254", "[::1]",
                     "[::ffff:127.0.0.1]"):
            text = BASE.replace("builds.example", host)
            message = self.refusal(text)
            self.assertIn(f"[webhook:builds] url: {host.strip('[]')} is not a public address "
                          "(loopback, private or link-local); set allow_private = yes", message)
            builds = self.load(text + "allow_private = yes\n").webhooks["builds"]
            self.assertTrue(builds.allow_private)
        self.assertEqual(self.load(BASE.replace("builds.example", "[::1]")
                                   + "allow_private = yes\n").webhooks["builds"].receiver,
                         "https://[::1]:443")
        self.assertFalse(self.load(BASE.replace("builds.example", "localhost"))
                         .webhooks["builds"].allow_private)

    def test_unreadable_file(self):
        """A secret file that cannot be read is named."""
        message = self.refusal(BASE.replace(f"secret = {SECRET}",
                                            f"secret_file = {os.path.join(self.mktemp(), 'x')}"))
        self.assertIn("[webhook:builds] secret_file: cannot read", message)

    def test_reloaded(self):
        """Every key is taken at a reload."""
        for key in ("url", "events", "secret", "retry_for", "ca_bundle"):
            self.assertEqual(how("webhook:builds", key), RELOAD)
