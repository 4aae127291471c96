"""
Tests for native HTTPS: L{pypid.tls} (the server context; its reload is
L{tests.unit.test_tls_reload}'s), the C{[tls]} section and the C{https:} and
C{http-redirect:} forms of C{[pypid] listen} in L{pypid.config}, and how
L{pypid.tap} builds the listeners, all in memory: handshakes run between two
pyOpenSSL connections over memory BIOs, and listeners on a memory reactor.
"""

import datetime
import os
import signal
import textwrap
import time

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from pypid.config import ConfigError, load_config
from pypid.config.server_settings import ListenAddress, parse_listen_address
from pypid.tap import Options, makeService, reload_on_hangup
from pypid.tls import (
    CIPHERS,
    ServerTLS,
    TLSError,
    read_material,
)
from pypid.web.server.redirect import HTTPSRedirect, RedirectSite
from pypid.web.server.tls_layer import ClosingTLSFactory
from pypid.web.site import PypidSite
from tests.harness.fakes import QueuedRun, run_now
from tests.harness.tap import fake_pools, site_of
from tests.harness.tls import (
    client_context,
    handshake,
    loaded,
    now_clock,
    rsa_server,
    shared_ca,
)
from tests.harness.tlsca import write

# -- fixtures ---------------------------------------------------------------------------------

DAY = datetime.timedelta(days=1)



def reasons(error):
    """The OpenSSL reasons in an L{SSL.Error}, as one string."""
    return " ".join(str(entry[-1]) for entry in error.args[0])


# -- the server context ------------------------------------------------------------------------


class ContextTests(SynchronousTestCase):
    """Tests for the context L{ServerTLS} builds: protocols, ciphers, chain."""

    def test_tls_1_1_refused(self):
        """A client that speaks at most TLS 1.1 is refused by the server."""
        _, _, errors = handshake(loaded(rsa_server()),
                                 client_context(SSL.TLS1_VERSION, SSL.TLS1_1_VERSION))
        self.assertIn("server", errors)
        self.assertIn("unsupported protocol", reasons(errors["server"]))
        self.assertIn("client", errors)

    def test_tls_1_2_and_1_3_accepted(self):
        """TLS 1.2 and TLS 1.3 clients are served, with an ECDHE AEAD suite or a TLS 1.3 one."""
        tls = loaded(rsa_server())
        for version, name in ((SSL.TLS1_2_VERSION, "TLSv1.2"), (SSL.TLS1_3_VERSION, "TLSv1.3")):
            client, _, errors = handshake(tls, client_context(version, version))
            self.assertEqual(errors, {})
            self.assertEqual(client.get_protocol_version_name(), name)
            cipher = client.get_cipher_name()
            if name == "TLSv1.2":
                self.assertIn(cipher, CIPHERS.split(":"))
            else:
                self.assertTrue(cipher.startswith("TLS_"), cipher)

    def test_cipher_list(self):
        """Every suite offered is forward-secret and AEAD; CBC and plain-RSA ones are not there."""
        names = loaded(rsa_server()).serverConnectionForTLS(None).get_cipher_list()
        tls12 = [n for n in names if not n.startswith("TLS_")]
        self.assertEqual(sorted(tls12), sorted(CIPHERS.split(":")))
        for name in tls12:
            self.assertTrue(name.startswith("ECDHE-"), name)
            self.assertTrue("-GCM-" in name or "CHACHA20-POLY1305" in name, name)
        for weak in ("AES128-SHA", "AES256-SHA", "ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256",
                     "DES-CBC3-SHA"):
            self.assertNotIn(weak, names)

    def test_non_aead_suites_refused(self):
        """A TLS 1.2 client offering only AES128-SHA (or ECDHE with CBC) gets no handshake."""
        tls = loaded(rsa_server())
        for suite in ("AES128-SHA", "ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256"):
            _, _, errors = handshake(tls, client_context(SSL.TLS1_2_VERSION, SSL.TLS1_2_VERSION,
                                                         suite))
            self.assertIn("no shared cipher", reasons(errors["server"]), suite)

    def test_chain_served(self):
        """The intermediate goes out after the certificate: a client trusting only the root verifies."""
        files = rsa_server()
        client, _, errors = handshake(loaded(files), client_context())
        self.assertEqual(errors, {})
        chain = client.get_peer_cert_chain(as_cryptography=True)
        self.assertEqual([c.serial_number for c in chain],
                         [files.serial, shared_ca().intermediate.serial_number])

    def test_fullchain_file(self):
        """A certificate file holding the chain too (certbot's fullchain.pem) serves it all."""
        files = rsa_server()
        client, _, errors = handshake(loaded(files, chain=False, certificate=files.fullchain),
                                      client_context())
        self.assertEqual(errors, {})
        self.assertEqual(len(client.get_peer_cert_chain(as_cryptography=True)), 2)

    def test_without_chain_unverifiable(self):
        """Without the chain the same client cannot verify: the chain test is not vacuous."""
        _, _, errors = handshake(loaded(rsa_server(), chain=False), client_context())
        self.assertIn("certificate verify failed", reasons(errors["client"]))

    def test_ec_certificate(self):
        """An ECDSA certificate is served too."""
        files = shared_ca().issue("ec", kind="ec", folder=self.mktemp())
        client, _, errors = handshake(loaded(files), client_context(SSL.TLS1_2_VERSION,
                                                                    SSL.TLS1_2_VERSION))
        self.assertEqual(errors, {})
        self.assertTrue(client.get_cipher_name().startswith("ECDHE-ECDSA-"))


class LoadTests(SynchronousTestCase):
    """Tests for reading the TLS files: every problem is one line naming the file."""

    def assert_refused(self, certificate, key, chain=None):
        """L{ServerTLS.load} fails with one line; return it."""
        tls = ServerTLS(certificate, key, chain, now_clock(), run_now)
        e = self.assertRaises(TLSError, tls.load)
        self.assertNotIn("\n", str(e))
        self.assertIsNone(tls.context)
        return str(e)

    def test_key_mismatch(self):
        """A key that is not the certificate's is named, with the certificate."""
        files = rsa_server()
        stray = shared_ca().stray_key(folder=self.mktemp())
        self.assertEqual(self.assert_refused(files.certificate, stray),
                         f"the TLS key {stray} does not match the certificate "
                         f"{files.certificate}")

    def test_key_of_another_type(self):
        """An EC key beside an RSA certificate is a mismatch too."""
        stray = shared_ca().stray_key(kind="ec", folder=self.mktemp())
        self.assertIn("does not match", self.assert_refused(rsa_server().certificate, stray))

    def test_key_type_not_served(self):
        """
        A certificate and key that match but that pyOpenSSL cannot serve
        with (ML-DSA) are refused in one line, not with its C{TypeError}.
        """
        try:
            from cryptography.hazmat.primitives.asymmetric import mldsa
            key = mldsa.MLDSA65PrivateKey.generate()
        except (ImportError, UnsupportedAlgorithm):
            raise SkipTest("no ML-DSA in this cryptography") from None
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                       .public_key(key.public_key()).serial_number(1)
                       .not_valid_before(now - datetime.timedelta(hours=1))
                       .not_valid_after(now + datetime.timedelta(days=1))
                       .sign(key, None))
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        certificate_path = write(os.path.join(folder, "mldsa.crt"),
                                 certificate.public_bytes(serialization.Encoding.PEM), 0o644)
        key_path = write(os.path.join(folder, "mldsa.key"), key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.assertEqual(self.assert_refused(certificate_path, key_path),
                         f"cannot use the TLS key {key_path}: its key type is not supported")

    def test_missing_files(self):
        """A missing certificate, key or chain is named with the reason."""
        files = rsa_server()
        missing = os.path.abspath(self.mktemp())
        self.assertEqual(self.assert_refused(missing, files.key),
                         f"cannot read the TLS certificate {missing}: No such file or directory")
        self.assertEqual(self.assert_refused(files.certificate, missing),
                         f"cannot read the TLS key {missing}: No such file or directory")
        self.assertEqual(self.assert_refused(files.certificate, files.key, missing),
                         f"cannot read the TLS chain {missing}: No such file or directory")

    def test_unreadable(self):
        """A path that cannot be read (here, a folder) is named with the reason."""
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        self.assertEqual(self.assert_refused(rsa_server().certificate, folder),
                         f"cannot read the TLS key {folder}: it is a directory, not a regular "
                         "file")

    def test_not_pem(self):
        """A file that is not PEM is named."""
        junk = write(os.path.abspath(self.mktemp()), b"not a certificate\n")
        files = rsa_server()
        self.assertEqual(self.assert_refused(junk, files.key),
                         f"cannot use the TLS certificate {junk}: it holds no PEM certificate")
        self.assertEqual(self.assert_refused(files.certificate, junk),
                         f"cannot use the TLS key {junk}: it holds no PEM private key")
        self.assertIn(f"the TLS chain {junk}: it holds no PEM certificate",
                      self.assert_refused(files.certificate, files.key, junk))

    def test_swapped(self):
        """Certificate and key given the other way round are pointed out."""
        files = rsa_server()
        message = self.assert_refused(files.key, files.certificate)
        self.assertIn("are certificate and key swapped?", message)

    def test_encrypted_key(self):
        """A key encrypted with a passphrase is refused, saying why."""
        with open(rsa_server().key, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        encrypted = write(os.path.abspath(self.mktemp()), key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase")))
        self.assertEqual(self.assert_refused(rsa_server().certificate, encrypted),
                         f"cannot use the TLS key {encrypted}: it is encrypted with a "
                         "passphrase; pypid needs the key without one")

    def test_material(self):
        """The material holds the certificate, then the chain, and the key."""
        files = rsa_server()
        material = read_material(files.certificate, files.key, files.chain)
        self.assertEqual(material.certificate.serial_number, files.serial)
        self.assertEqual([c.serial_number for c in material.chain],
                         [shared_ca().intermediate.serial_number])
        self.assertNotIn("PRIVATE", repr(material))

    def test_load_logs_certificate(self):
        """Loading logs one line with the file, the host names and the serial."""
        files = rsa_server()
        with capturedLogs() as events:
            loaded(files)
        lines = [formatEvent(e) for e in events]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn(files.certificate, lines[0])
        self.assertIn("localhost, 127.0.0.1", lines[0])
        self.assertIn(f"serial {files.serial:x}", lines[0])

    def test_load_once(self):
        """Loading again (a second https listener) keeps the same context."""
        tls = loaded(rsa_server())
        context = tls.context
        tls.load()
        self.assertIs(tls.context, context)


# -- the redirect listener ---------------------------------------------------------------------


class ConfigTests(SynchronousTestCase):
    """Tests for C{[tls]} and the C{https:} and C{http-redirect:} lines of C{[pypid] listen}."""

    def load(self, text, **kwargs):
        """Load C{text} (dedented) from a file of its own."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text))
        return path, load_config(path, **kwargs)

    def refused(self, text, **kwargs):
        """The configuration is refused with one line; return it."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text))
        e = self.assertRaises(ConfigError, load_config, path, **kwargs)
        self.assertNotIn("\n", str(e))
        return str(e).replace(path, "<file>")

    def test_defaults(self):
        """Without a [tls] section nothing is set, and the default listener is plain."""
        config = load_config(None)
        self.assertEqual((config.tls.certificate, config.tls.key, config.tls.chain,
                          config.tls.allow_expired), (None, None, None, False))

    def test_https(self):
        """
        An https listener with its files: paths made absolute (against the
        file's folder), lines kept as written.
        """
        path, config = self.load("""
            [pypid]
            listen =
                https:8443:interface=0.0.0.0
                https:8443:interface=\\:\\::backlog=100
                http-redirect:8080
            [tls]
            certificate = tls/fullchain.pem
            key = /etc/pypid/key.pem
            chain = /etc/pypid/chain.pem
            """)
        self.assertEqual(config.tls.certificate,
                         os.path.join(os.path.dirname(path), "tls", "fullchain.pem"))
        self.assertEqual(config.tls.key, "/etc/pypid/key.pem")
        self.assertEqual(config.tls.chain, "/etc/pypid/chain.pem")
        self.assertEqual(config.server.listen[0], "https:8443:interface=0.0.0.0")
        self.assertEqual([parse_listen_address(line) for line in config.server.listen], [
            ListenAddress("https", "https:8443:interface=0.0.0.0", 8443, "0.0.0.0", 50),
            ListenAddress("https", "https:8443:interface=\\:\\::backlog=100", 8443, "::", 100),
            ListenAddress("http-redirect", "http-redirect:8080", 8080, "", 50),
        ])

    def test_twisted_strings(self):
        """Other lines are Twisted endpoint strings, left to Twisted."""
        self.assertEqual(parse_listen_address("tcp:8080:interface=127.0.0.1"),
                         ListenAddress("endpoint", "tcp:8080:interface=127.0.0.1"))
        self.assertEqual(load_config(None, listen=["tcp:1", "unix:/tmp/s"]).server.listen,
                         ("tcp:1", "unix:/tmp/s"))

    def test_bad_forms(self):
        """A malformed https: or http-redirect: line is named, with the forms allowed."""
        cases = {
            "https": "expected https:PORT with optional :interface=ADDRESS and :backlog=N",
            "https:": "PORT is a number from 1 to 65535",
            "https:0": "PORT is a number from 1 to 65535",
            "https:eighty": "PORT is a number from 1 to 65535",
            "http-redirect:99999": "PORT is a number from 1 to 65535",
            "https:8443:colour=red": "unknown or repeated option 'colour'",
            "https:8443:interface=a:interface=b": "unknown or repeated option 'interface'",
            "https:8443:interface=localhost": "the interface must be an IP address",
            "https:8443:interface=::": "escape each of its colons",
            "https:8443:backlog=many": "the backlog must be a number",
        }
        for line, expected in cases.items():
            message = self.refused("[pypid]\n", listen=[line])
            self.assertIn(f"[pypid] listen: {line!r}", message)
            self.assertIn(expected, message)

    def test_https_needs_files(self):
        """An https listener without [tls] certificate and key names both keys."""
        message = self.refused("[pypid]\nlisten = https:8443\n")
        self.assertEqual(message, "<file>: [tls] certificate: required by the https listener "
                         "'https:8443' in [pypid] listen: set [tls] certificate and [tls] key "
                         "to the PEM files of its certificate and private key")
        message = self.refused("[pypid]\nlisten = https:8443\n[tls]\ncertificate = c.pem\n")
        self.assertIn("[tls] key: required by the https listener", message)

    def test_blamed_on_listen(self):
        """An https listener from --listen without files is blamed on --listen."""
        message = self.refused("[pypid]\n", listen=["https:8443"])
        self.assertTrue(message.startswith("--listen pypid.listen: [tls] certificate: "), message)

    def test_files_without_https(self):
        """[tls] files with no https listener to use them are a mistake."""
        message = self.refused("[tls]\ncertificate = c.pem\nkey = k.pem\n")
        self.assertIn("[tls] certificate: set, but no https: listener in [pypid] listen uses "
                      "it", message)
        self.assertIn("[tls] allow_expired: set, but no https: listener",
                      self.refused("[tls]\nallow_expired = yes\n"))
        self.assertFalse(self.load("[tls]\nallow_expired = no\n")[1].tls.allow_expired)

    def test_plain_beside_https(self):
        """Beside an https listener, plain listeners (passwords in clear) and ssl: are refused."""
        tls = "[tls]\ncertificate = c.pem\nkey = k.pem\n"
        for line in ("tcp:8080", "unix:/tmp/pypid.sock", "tcp6:8080:interface=\\:\\:1"):
            message = self.refused(f"[pypid]\nlisten =\n  https:8443\n  {line}\n{tls}")
            self.assertIn(f"[pypid] listen: {line!r} would serve plain HTTP beside the https "
                          "listener 'https:8443'", message)
            self.assertIn("use http-redirect:PORT", message)
        message = self.refused("[pypid]\nlisten =\n  https:8443\n"
                               f"  ssl:8444:privateKey=k.pem\n{tls}")
        self.assertIn("[pypid] listen: 'ssl:8444:privateKey=k.pem' is Twisted's TLS endpoint",
                      message)

    def test_redirect_needs_https(self):
        """An http-redirect listener with no https listener has nowhere to send clients."""
        message = self.refused("[pypid]\nlisten = http-redirect:8080\n")
        self.assertIn("'http-redirect:8080' redirects to an https: listener, and there is none",
                      message)

    def test_base_url_must_be_https(self):
        """With https listeners, an http:// base_url is refused; an https:// one is kept."""
        text = "[pypid]\nlisten = https:8443\nbase_url = {}\n[tls]\ncertificate = c\nkey = k\n"
        message = self.refused(text.format("http://pypi.example/"))
        self.assertIn("[pypid] base_url: must be an https:// URL when pypid serves HTTPS",
                      message)
        _, config = self.load(text.format("https://pypi.example/"))
        self.assertEqual(config.server.base_url, "https://pypi.example/")


# -- building the listeners ---------------------------------------------------------------------


class ListenerTests(SynchronousTestCase):
    """Tests for the listeners L{makeService} builds, on a memory reactor."""

    def setUp(self):
        self.folder = os.path.abspath(self.mktemp())
        self.reactor = MemoryReactorClock()
        # (the certificates' dates are judged by the reactor's clock)
        self.reactor.advance(time.time())
        self.files = rsa_server()

    def service(self, *argv, key=None, files=None, run=None):
        """
        Build the service with TLS files (the shared ones, or C{files}) and
        C{argv}, its pool's work done by C{run} (at once by default); stop
        it at the end.
        """
        files = files or self.files
        options = Options()
        options.parseOptions([
            "--set", f"storage.path={self.folder}/packages",
            "--set", f"pypid.snapshot={self.folder}/index.json",
            "--set", f"tls.certificate={files.certificate}",
            "--set", f"tls.key={key or files.key}",
            "--set", f"tls.chain={files.chain}",
            *argv,
        ])
        pools = fake_pools() if run is None else fake_pools(run=run)
        service = makeService(options, reactor=self.reactor, pools=pools,
                              check_port=lambda port, interface: None)

        def stop():
            if service.running:
                return service.stopService()
        self.addCleanup(stop)
        return service

    def test_https_and_redirect(self):
        """https listeners serve the site over TLS; the redirect listener serves only redirects."""
        service = self.service("--listen", "http-redirect:8080:interface=127.0.0.1",
                               "--listen", "https:8443:interface=127.0.0.1:backlog=7")
        self.assertIsInstance(service.getServiceNamed("listeners").tls, ServerTLS)
        self.assertIsNone(service.getServiceNamed("listeners").tls.context)
        service.startService()
        self.successResultOf(service.ready)
        self.assertIsNotNone(service.getServiceNamed("listeners").tls.context)
        [secure, (port, factory, _, interface)] = self.reactor.tcpServers
        self.assertEqual((secure[0], secure[2], secure[3]), (8443, 7, "127.0.0.1"))
        # Twisted's TLS layer around the site (closing as pypid.web.server.tls_layer
        # says), asking ServerTLS for each connection.
        self.assertIsInstance(secure[1], ClosingTLSFactory)
        self.assertIs(secure[1].wrappedFactory, site_of(service))
        connection = secure[1]._creatorCallable(None)
        self.assertIs(connection.get_context(), service.getServiceNamed("listeners").tls.context)
        self.assertEqual((port, interface), (8080, "127.0.0.1"))
        self.assertIsInstance(factory, RedirectSite)
        self.assertNotIsInstance(factory, PypidSite)
        self.assertEqual(factory.redirect, HTTPSRedirect(None, 8443))

    def test_redirect_to_base_url(self):
        """The redirect listener sends clients to base_url when it is set."""
        service = self.service("--listen", "https:8443", "--listen", "http-redirect:8080",
                               "--set", "pypid.base_url=https://pypi.example/")
        service.startService()
        self.successResultOf(service.ready)
        self.assertEqual(self.reactor.tcpServers[1][1].redirect,
                         HTTPSRedirect("https://pypi.example/", 8443))

    def test_bad_key_stops(self):
        """A key that does not match stops start-up with one critical line; nothing listens."""
        stray = shared_ca().stray_key(folder=self.mktemp())
        self.reactor.running = True
        service = self.service("--listen", "https:8443", "--listen", "http-redirect:8080",
                               key=stray)
        with capturedLogs() as events:
            service.startService()
        self.assertTrue(self.reactor.hasStopped)
        self.assertTrue(service.failed)
        self.assertEqual(self.reactor.tcpServers, [])
        critical = [formatEvent(e) for e in events if e["log_level"] == LogLevel.critical]
        self.assertEqual(critical, [
            f"Cannot listen on https:8443: the TLS key {stray} does not match the certificate "
            f"{self.files.certificate}"])
        self.assertFalse([e for e in events if "log_failure" in e])
        self.assertFalse([e for e in events if "Listening on" in e.get("log_format", "")])

    def test_expired_stops(self):
        """
        An expired certificate stops start-up with one critical line naming
        it, its dates and C{[tls] allow_expired}; nothing listens.
        """
        now = datetime.datetime.now(datetime.UTC)
        expired = shared_ca().issue("expired", kind="ec", folder=os.path.join(self.folder, "tls"),
                                    valid=(now - 30 * DAY, now - DAY))
        self.reactor.running = True
        service = self.service("--listen", "https:8443", "--listen", "http-redirect:8080",
                               files=expired)
        with capturedLogs() as events:
            service.startService()
        self.assertTrue(service.failed)
        self.assertEqual(self.reactor.tcpServers, [])
        critical = [formatEvent(e) for e in events if e["log_level"] == LogLevel.critical]
        self.assertEqual(len(critical), 1, critical)
        self.assertTrue(critical[0].startswith(
            f"Cannot listen on https:8443: the TLS certificate {expired.certificate} has "
            f"expired: it is valid from {now - 30 * DAY:%Y-%m-%d} "), critical[0])
        self.assertIn("set [tls] allow_expired = yes to serve it anyway", critical[0])

    def test_allow_expired(self):
        """With C{[tls] allow_expired = yes} the expired certificate is served, with a warning."""
        now = datetime.datetime.now(datetime.UTC)
        expired = shared_ca().issue("expired", kind="ec", folder=os.path.join(self.folder, "tls"),
                                    valid=(now - 30 * DAY, now - DAY))
        service = self.service("--listen", "https:8443", "--set", "tls.allow_expired=yes",
                               files=expired)
        with capturedLogs() as events:
            service.startService()
            self.successResultOf(service.ready)
        tls = service.getServiceNamed("listeners").tls
        self.assertEqual(tls.material.certificate.serial_number, expired.serial)
        self.assertTrue([e for e in events if e["log_level"] == LogLevel.warn
                         and "allow_expired = yes" in formatEvent(e)])

    def test_reload_reads_in_pool(self):
        """SIGHUP's reload reads the TLS files in the I/O pool, not on the reactor's thread."""
        run = QueuedRun()
        files = shared_ca().issue("server", kind="ec", folder=os.path.join(self.folder, "tls"))
        service = self.service("--listen", "https:8443", files=files, run=run)
        service.startService()
        run.run_all()
        self.successResultOf(service.ready)
        tls = service.getServiceNamed("listeners").tls
        renewed = shared_ca().issue("server", kind="ec", folder=os.path.join(self.folder, "tls"))
        with capturedLogs():
            service.reload()
            self.assertEqual(tls.material.certificate.serial_number, files.serial)
            run.run_all()
        self.assertEqual(tls.material.certificate.serial_number, renewed.serial)

    def test_no_tls_without_https(self):
        """Without https listeners there is no TLS object and no hangup handler."""
        options = Options()
        options.parseOptions(["--set", f"storage.path={self.folder}/packages",
                              "--listen", "tcp:8080"])
        before = signal.getsignal(signal.SIGHUP)
        self.assertIsNone(makeService(options, reactor=self.reactor, pools=fake_pools()).getServiceNamed(
            "listeners").tls)
        self.assertIs(signal.getsignal(signal.SIGHUP), before)

    def test_no_hangup_handler_in_tests(self):
        """makeService given a reactor (tests) leaves SIGHUP alone."""
        before = signal.getsignal(signal.SIGHUP)
        self.service("--listen", "https:8443")
        self.assertIs(signal.getsignal(signal.SIGHUP), before)

    def test_reload_on_hangup(self):
        """
        The SIGHUP handler runs the reload on the reactor's thread; the
        signals that come while it waits are folded into it, and one that
        comes once it ran (or while it runs) asks for another.
        """
        installed, called, reloads = {}, [], []

        class Signals:
            SIGHUP, SIG_UNBLOCK = signal.SIGHUP, signal.SIG_UNBLOCK

            @staticmethod
            def signal(number, handler):
                installed[number] = handler

            @staticmethod
            def pthread_sigmask(how, mask):
                # (a worker's, blocked since its start, once the handler is in)
                self.assertEqual((how, list(mask), list(installed)),
                                 (signal.SIG_UNBLOCK, [signal.SIGHUP], [signal.SIGHUP]))

        class Reactor:
            @staticmethod
            def callFromThread(f, *args):
                called.append(f)

        def reload():
            """Stand-in for L{ServerTLS.reload}."""
            reloads.append(len(reloads) + 1)
            if len(reloads) == 2:
                hangup(signal.SIGHUP, None)  # (one more, while it runs)
        reload_on_hangup(Reactor(), reload, signals=Signals)
        hangup = installed[signal.SIGHUP]
        self.assertEqual(called, [])
        for _ in range(3):
            hangup(signal.SIGHUP, None)
        self.assertEqual(len(called), 1)
        called.pop()()
        self.assertEqual(reloads, [1])
        hangup(signal.SIGHUP, None)
        self.assertEqual(len(called), 1)
        called.pop()()
        self.assertEqual((reloads, len(called)), ([1, 2], 1))
        called.pop()()
        self.assertEqual((reloads, called), ([1, 2, 3], []))

    def test_ssl_endpoint_refused(self):
        """A Twisted ssl: endpoint on its own stops start-up with one line pointing at https:."""
        line = f"ssl:8443:privateKey={self.files.key}:certKey={self.files.certificate}"
        options = Options()
        e = self.assertRaises(SystemExit, options.parseOptions,
                              ["--set", f"storage.path={self.folder}/packages", "--listen", line])
        self.assertEqual(str(e), f"pypid: --listen pypid.listen: [pypid] listen: {line!r} is "
                         "Twisted's TLS endpoint, with its default ciphers (AES128-SHA among "
                         "them): serve HTTPS with an https:PORT listener and [tls] certificate "
                         "and key")
