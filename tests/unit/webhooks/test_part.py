"""
The webhooks' part (L{pypid.webhooks.part.WebhookPart}): built whole from
the configuration, the subscriptions taken again at a reload, a CA
bundle that cannot be used refused naming its key.
"""

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.config import load_config
from pypid.core.util.startup import StartupError
from pypid.storage.folder.folder_records import FolderRecords
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.webhooks.part import WebhookPart
from tests.harness.config_files import ConfigFiles
from tests.harness.fakes import run_now
from tests.harness.webhooks import SECRET


def section(name, url="https://builds.example/hook", **keys):
    lines = [f"[webhook:{name}]", f"url = {url}", f"secret = {SECRET}",
             *(f"{k} = {v}" for k, v in keys.items())]
    return "\n".join(lines) + "\n"


class PartTests(ConfigFiles, SynchronousTestCase):

    def config(self, *sections):
        folder = os.path.abspath(self.mktemp())
        return load_config(self.write(f"[storage]\npath = {folder}\n" + "".join(sections)))

    def test_built(self):
        """The ledger in the storage's folder; the deliveries on the server that delivers."""
        config = self.config(section("builds"))
        journal = MemoryJournal(Clock())
        part = WebhookPart.from_config(config, run_now, Clock(), True, journal)
        self.assertIsInstance(part.ledger.store, FolderRecords)
        self.assertEqual(part.ledger.store.root,
                         os.path.join(config.storage.path, ".pypid", "webhooks"))
        self.assertIs(part.deliveries.journal, journal)
        self.assertEqual(list(part.current()), ["builds"])
        other = WebhookPart.from_config(config, run_now, Clock(), False, journal)
        self.assertIsNone(other.deliveries)

    def test_reloaded(self):
        """Added, changed and removed at a reload, said in its line; the same: nothing to do."""
        part = WebhookPart.from_config(self.config(section("builds"), section("chat")),
                                       run_now, Clock(), False,
                                       MemoryJournal(Clock()))
        self.assertIsNone(part.prepare_reload(self.config(section("builds"),
                                                          section("chat")))())
        commit = part.prepare_reload(self.config(section("builds", events="upload"),
                                                 section("pages")))
        self.assertEqual(list(part.current()), ["builds", "chat"])
        self.assertEqual(commit(), "webhooks added pages; removed chat; changed builds")
        self.assertEqual(sorted(part.current()), ["builds", "pages"])

    def test_bundle_refused(self):
        """A CA bundle that holds no certificate stops the start, and a reload, naming the key."""
        bundle = self.write("not a certificate")
        with self.assertRaises(StartupError) as caught:
            WebhookPart.from_config(self.config(section("builds", ca_bundle=bundle)),
                                    run_now, Clock(), False,
                                       MemoryJournal(Clock()))
        self.assertIn("[webhook:builds] ca_bundle", str(caught.exception))
        part = WebhookPart.from_config(self.config(section("builds")), run_now, Clock(),
                                       False, MemoryJournal(Clock()))
        self.assertRaises(StartupError, part.prepare_reload,
                          self.config(section("builds", ca_bundle=bundle)))

    def test_client_started_with_the_first_subscription(self):
        """A bucket's client of the ledger starts only once a subscription is there."""
        from pypid.webhooks.ledger import Ledger
        from tests.harness.memory_records import MemoryRecords
        from tests.harness.webhooks import ScriptedSender

        clock = Clock()
        started = []
        part = WebhookPart(Ledger(MemoryRecords(), clock), ScriptedSender(), {}, clock,
                           prepare=lambda: started.append(True))
        part.startService()
        self.assertEqual(started, [])
        part.prepare_reload(self.config(section("builds")))()
        reloaded = self.config(section("builds"), section("chat"))
        part.prepare_reload(reloaded)()
        self.assertEqual(started, [True])
        # (the sender's next clients read the bundles as the reload read them)
        self.assertIs(part.sender.held, reloaded.held)
        self.successResultOf(part.stopService())
