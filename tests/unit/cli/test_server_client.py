"""
The command-line tools' client (L{pypid.cli.server_client.Server}) against
a server on a private CA: a certificate it cannot verify is a one-line
failure that names the CA certificates it was checked against (C{--cert}'s
file, or the system's as C{ssl.get_default_verify_paths} finds them) and
how to give another.
"""

import http.server
import os
import ssl
import threading

from twisted.trial.unittest import SynchronousTestCase

from pypid.cli.server_client import CliError, Server
from tests.harness.tls import rsa_server, shared_ca
from tests.harness.tlsca import TestCA


class _Answer(http.server.BaseHTTPRequestHandler):
    """Answers every GET with C{ok}."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        """Nothing on the test's output."""


def https_server(case):
    """A local HTTPS server on the shared test CA's certificate; its URL. Stopped at the end."""
    files = rsa_server()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.fullchain, files.key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    case.addCleanup(thread.join)
    case.addCleanup(server.server_close)
    case.addCleanup(server.shutdown)
    return f"https://localhost:{server.server_address[1]}/"


class VerificationFailureTests(SynchronousTestCase):

    def refusal(self, url, cert=None):
        """The message of the L{CliError} a C{GET} of C{url} ends in."""
        with self.assertRaises(CliError) as raised:
            Server(url, cert=cert).request("GET", "health")
        return str(raised.exception)

    def test_system_roots_named(self):
        """
        Without --cert: the system's CA files as Python finds them (here
        the file SSL_CERT_FILE names), and how to give the server's CA.
        """
        url = https_server(self)
        other = TestCA(os.path.abspath(self.mktemp())).root_path
        before = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = other
        self.addCleanup(lambda: os.environ.pop("SSL_CERT_FILE") if before is None
                        else os.environ.update(SSL_CERT_FILE=before))
        said = self.refusal(url)
        self.assertIn(f"cannot reach {url}health: [SSL: CERTIFICATE_VERIFY_FAILED]", said)
        self.assertIn(f"checked against the system's CA certificates ({other}", said)
        self.assertIn("$SSL_CERT_FILE names others", said)
        self.assertTrue(said.endswith("give the server's CA with --cert PEM or PYPID_CERT=PEM"),
                        said)

    def test_cert_named(self):
        """With --cert of another CA: that file is named; with the server's CA, it answers."""
        url = https_server(self)
        other = TestCA(os.path.abspath(self.mktemp())).root_path
        said = self.refusal(url, cert=other)
        self.assertIn(f"checked against the CA certificates of {other} (--cert or $PYPID_CERT)",
                      said)
        with Server(url, cert=shared_ca().root_path).request("GET", "health") as response:
            self.assertEqual(response.read(), b"ok")

    def test_other_failures_unchanged(self):
        """A refused connection says only why: no word of certificates."""
        said = self.refusal("https://127.0.0.1:9/")
        self.assertIn("cannot reach https://127.0.0.1:9/health:", said)
        self.assertNotIn("CA certificates", said)
