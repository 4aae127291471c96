"""
C{pypid-admin tls}'s printed recipe (L{pypid.cli.private_ca}): the
C{listen} lines it prints keep the address of the lines they replace (the
shipped loopback one by default), the server takes them, and a line that
opens the server to the network says so; and git ignores the folder it
writes in the checkout, which holds the CA's key.
"""

import io
import os
import shutil
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from pypid.cli import admin
from pypid.cli.private_ca import https_lines
from pypid.config import load_config
from pypid.config.server_settings import listen_interface, on_network
from tests import CHECKOUT


class ListenInterfaceTests(SynchronousTestCase):

    def test_table(self):
        """The address each form of listen line is on, as Twisted reads it, and its reach."""
        for line, interface, network in (
                ("tcp:8080:interface=127.0.0.1", "127.0.0.1", False),
                ("tcp:8080", "0.0.0.0", True),
                ("tcp:8080:127.0.0.1", "127.0.0.1", False),
                ("tcp:port=8080:interface=10.0.0.5", "10.0.0.5", True),
                ("tcp6:8080", "::", True),
                ("tcp6:8080:interface=\\:\\:1", "::1", False),
                ("tcp6:8080:50:\\:\\:1", "::1", False),
                ("haproxy:tcp:8080:interface=127.0.0.1", "127.0.0.1", False),
                ("https:8443", "0.0.0.0", True),
                ("https:8443:interface=127.0.0.1", "127.0.0.1", False),
                ("http-redirect:8080:interface=\\:\\:", "::", True),
                ("unix:/run/pypid.sock", None, False),
                ("systemd:domain=INET:name=http", None, False)):
            self.assertEqual((listen_interface(line), on_network(line)),
                             (interface, network), line)


class PrintedRecipeTests(SynchronousTestCase):

    def tls(self, *argv):
        """C{(status, output)} of C{pypid-admin [argv] tls --host pypi.internal.example}."""
        out, err = io.StringIO(), io.StringIO()
        self.folder = os.path.abspath(self.mktemp())
        status = admin.main([*argv, "tls", "--out", self.folder,
                             "--host", "pypi.internal.example"], out, err)
        return status, out.getvalue() + err.getvalue()

    def config(self, listen, more=""):
        """A configuration file whose [pypid] listen is C{listen}, then C{more}."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w", encoding="utf-8") as f:
            f.write("[pypid]\nlisten =\n" + "".join(f"    {line}\n" for line in listen)
                    + more)
        return path

    def test_shipped_default_stays_on_loopback(self):
        """Without --config: the embedded default's loopback address, and how to open it."""
        status, said = self.tls()
        self.assertEqual(status, 0, said)
        self.assertIn("Serve it: in place of the embedded default listen = "
                      "tcp:8080:interface=127.0.0.1 (no --config given), the same interface "
                      "over HTTPS, on port 8443:", said)
        self.assertNotIn("etc/pypid.ini", said)
        self.assertIn("\n  listen = https:8443:interface=127.0.0.1\n", said)
        self.assertIn("Only this machine reaches it. To serve other machines, write "
                      "interface=0.0.0.0 (every IPv4 address): that opens the server to the "
                      "network", said)
        self.assertNotIn("listen = https:8443\n", said)
        ca = os.path.join(self.folder, "ca.pem")
        self.assertIn(f"pip and twine ignore --cert: run them as REQUESTS_CA_BUNDLE={ca} pip",
                      said)

    def test_config_lines_kept(self):
        """
        With --config, each line's interface is kept, on port 8443 whatever
        its port (as the output says); a line on every address says so.
        """
        for listen, printed in (
                (["tcp:22087:interface=127.0.0.1"], ["https:8443:interface=127.0.0.1"]),
                (["tcp:8080:interface=127.0.0.1", "tcp6:8080:interface=\\:\\:1"],
                 ["https:8443:interface=127.0.0.1", "https:8443:interface=\\:\\:1"]),
                (["tcp:8080"], ["https:8443:interface=0.0.0.0"]),
                (["tcp:8080", "tcp:8081:interface=127.0.0.1"], ["https:8443:interface=0.0.0.0"]),
                (["systemd:domain=INET:name=http"], ["https:8443:interface=127.0.0.1"])):
            self.assertEqual(https_lines(listen), printed, listen)
            status, said = self.tls("--config", self.config(listen))
            self.assertEqual(status, 0, said)
            block = "  listen = " + "\n      ".join(printed) + "\n"
            self.assertIn(block, said)
            self.assertIn("the same interface over HTTPS, on port 8443:", said)
            opened = "0.0.0.0" in printed[0]
            self.assertEqual("https:8443:interface=0.0.0.0 opens the server to the network: "
                             "every machine that reaches this one reaches it" in said, opened)
            self.assertEqual("Only this machine reaches it." in said, not opened)

    def test_renewal_keeps_https_listeners(self):
        """
        Run again on a configuration that serves HTTPS with these files: no
        listen line (its own stay, port and redirect), a SIGHUP loads the new
        certificate; the clients' URL is the server's.
        """
        folder = os.path.abspath(self.mktemp())
        listen = ["https:18090:interface=127.0.0.1", "http-redirect:18080:interface=127.0.0.1"]
        config = self.config(listen, f"[tls]\ncertificate = {folder}/server.pem\n"
                                     f"key = {folder}/server-key.pem\n")
        out, err = io.StringIO(), io.StringIO()
        status = admin.main(["--config", config, "tls", "--out", folder,
                             "--host", "pypi.internal.example"], out, err)
        said = out.getvalue()
        self.assertEqual((status, err.getvalue()), (0, ""))
        self.assertIn(f"\n{config} serves HTTPS already (https:18090:interface=127.0.0.1): "
                      "keep its listen lines. Load the new certificate: send the server SIGHUP "
                      "(kill -HUP, or systemctl kill -s HUP pypid), or restart it.\n", said)
        self.assertNotIn("listen =", said)
        self.assertNotIn("8443", said)
        self.assertIn("--index-url https://pypi.internal.example:18090/simple/ PROJECT", said)

    def test_renewal_into_other_files(self):
        """
        A configuration that serves HTTPS with other files: the [tls] lines of
        the new ones (no chain: the CA issued it), and a restart, which new
        paths need; no listen line.
        """
        listen = ["https:443", "http-redirect:80"]
        config = self.config(listen, "base_url = https://pypi.example/\n[tls]\n"
                                     "certificate = /etc/pypid/tls/fullchain.pem\n"
                                     "key = /etc/pypid/tls/privkey.pem\n"
                                     "chain = /etc/pypid/tls/chain.pem\n")
        status, said = self.tls("--config", config)
        self.assertEqual(status, 0, said)
        self.assertIn(f"{config} serves HTTPS already (https:443): keep its listen lines, and "
                      "serve the new files in place of [tls] certificate = "
                      "/etc/pypid/tls/fullchain.pem:\n\n"
                      f"  [tls]\n  certificate = {self.folder}/server.pem\n"
                      f"  key = {self.folder}/server-key.pem\n  chain =\n\n"
                      "then restart the server (a reload refuses new [tls] paths).\n", said)
        self.assertNotIn("listen =", said)
        self.assertIn("--index-url https://pypi.example/simple/ PROJECT", said)

    def test_printed_lines_are_served(self):
        """The server's configuration takes the printed lines with the printed [tls] files."""
        for listen in (["tcp:8080:interface=127.0.0.1"], ["tcp6:8080:interface=\\:\\:1"]):
            lines = https_lines(listen)
            config = load_config(None, [("tls", "certificate", "server.pem"),
                                        ("tls", "key", "server-key.pem")], lines)
            self.assertEqual([listen_interface(line) for line in config.server.listen],
                             [listen_interface(line) for line in listen])

    def test_unusable_config(self):
        """A --config that cannot be read: one line, status 1, no files written."""
        status, said = self.tls("--config", os.path.abspath("missing.ini"))
        self.assertEqual(status, 1)
        self.assertIn("cannot read the configuration file", said)
        self.assertFalse(os.path.exists(self.folder))


class IgnoredTests(SynchronousTestCase):

    def test_recipes_outputs_ignored(self):
        """
        What the recipes write in the checkout is ignored by git: the
        private CA's folder (its key), where pypid-admin tls puts it by
        default and beside the Compose file, and the wheels of an image.
        """
        if shutil.which("git") is None or not os.path.exists(os.path.join(CHECKOUT, ".git")):
            self.skipTest("not a git checkout")
        paths = ["tls/ca-key.pem", "etc/container/tls/privkey.pem", "wheels/pypid-1.0.whl"]
        done = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=CHECKOUT,
                              capture_output=True, text=True, check=False)
        self.assertEqual(done.stdout.split(), paths, done.stderr)
