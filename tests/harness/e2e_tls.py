"""
The end-to-end daemon on native HTTPS (they were L{tests.e2e.test_tls}'s):
L{TLSDaemon} listens on C{https:} (and C{http-redirect:}) with
certificates of a test CA (L{shared_ca}), L{TLSDaemonTestCase} shares one
among a class's tests, and L{https} makes one request trusting that CA.
"""

import os
import shutil
import ssl
from functools import cache
from http import client as httpclient
from urllib.parse import urlsplit

from tests.harness.e2e import (
    HOST,
    HTTP_TIMEOUT,
    Daemon,
    DaemonTestCase,
    Response,
    basic,
    clean_env,
    free_port,
    run,
    watch,
)
from tests.harness.tlsca import TestCA


@cache
def shared_ca():
    """One CA for the module, kept under trial's temporary folder."""
    folder = os.path.abspath("e2e-tls-ca")
    shutil.rmtree(folder, ignore_errors=True)
    return TestCA(folder)


def client_context(minimum=None, maximum=None, ciphers=None):
    """
    A client context that trusts only the test root CA and checks host names.

    @param ciphers: an OpenSSL cipher string for TLS 1.2; security level 0
        is added, so the client itself offers old protocols and weak suites
        and a refusal can only come from the server.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(shared_ca().root_path)
    context.set_ciphers((ciphers or "DEFAULT") + ":@SECLEVEL=0")
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    return context


def https(method, url, headers=None, body=None, auth=None, connection=None):
    """
    Make one HTTPS request trusting the test CA; redirects are not followed.

    @param connection: an open L{httpclient.HTTPSConnection} to reuse.
    """
    parts = urlsplit(url)
    conn = connection or httpclient.HTTPSConnection(parts.hostname, parts.port,
                                                    context=client_context(),
                                                    timeout=HTTP_TIMEOUT)
    headers = dict(headers or {})
    if auth is not None:
        headers["Authorization"] = basic(*auth)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""),
                     body=body, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, resp.reason, resp.headers, resp.read())
    finally:
        if connection is None:
            conn.close()


class TLSDaemon(Daemon):
    """
    A pypid server listening on C{https:PORT} with C{[tls]} files (and on
    C{http-redirect:} when given a redirect port), instead of plain HTTP.
    """

    def __init__(self, directory, files, redirect_port=None, settings=None, **kwargs):
        """
        @param files: the L{tests.harness.tlsca.ServerFiles} to serve.
        @param redirect_port: the port of an C{http-redirect:} listener, or L{None}.
        """
        tls = {"tls.certificate": files.certificate, "tls.key": files.key,
               "tls.chain": files.chain}
        super().__init__(directory, settings={**tls, **(settings or {})}, **kwargs)
        self.files = files
        self.redirect_port = redirect_port

    @property
    def url(self):
        """The server's https root URL."""
        return f"https://{HOST}:{self.port}/"

    @property
    def redirect_url(self):
        """The root URL of the redirect listener."""
        return f"http://{HOST}:{self.redirect_port}/"

    def command(self, port):
        """The argv: the https listener (and the redirect one) in place of plain HTTP."""
        argv = super().command(port)
        at = argv.index("--listen")
        argv[at + 1] = f"https:{port}:interface={HOST}"
        if self.redirect_port is not None:
            argv[at + 2:at + 2] = ["--listen",
                                   f"http-redirect:{self.redirect_port}:interface={HOST}"]
        return argv

    def listening_line(self, port):
        """The https listener's log line."""
        return f"Listening on https:{port}:".encode()

    def health(self):
        """C{/health} over HTTPS, trusting the test CA."""
        return https("GET", self.url + "health").status

    def port_taken(self):
        """Either port may have been taken: the redirect one moves too."""
        if self.redirect_port is not None:
            self.redirect_port = free_port()

    def run_to_exit(self, timeout=30):
        """Run the server in the foreground until it exits; return the finished process."""
        watch(self)
        return run(self.command(free_port()), cwd=self.directory,
                   env=clean_env(self.home, **self.environ),
                   timeout=timeout, check=False, what="twistd")


class TLSDaemonTestCase(DaemonTestCase):
    """A L{DaemonTestCase} whose shared daemon serves HTTPS and a redirect listener."""

    def make_shared_daemon(self, folder):
        """The class's shared daemon, not started: RSA, with a redirect listener."""
        files = shared_ca().issue("shared", kind="rsa", folder=os.path.join(folder, "tls"))
        return TLSDaemon(folder, files, redirect_port=free_port(), settings=self.settings,
                         users=self.users)

    def new_tls_daemon(self, files=None, start=True, **kwargs):
        """An HTTPS daemon of this test alone (with its own certificate), stopped at the end."""
        folder = os.path.abspath(self.mktemp())
        files = files or shared_ca().issue("server", kind="ec", folder=os.path.join(folder, "tls"))
        daemon = TLSDaemon(folder, files, **kwargs)
        watch(daemon)
        self.addCleanup(daemon.kill)
        if start:
            daemon.start()
        return daemon
