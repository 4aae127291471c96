"""
The end-to-end daemon on native HTTPS (they were L{tests.e2e.test_tls}'s):
L{TLSDaemon} listens on C{https:} (and C{http-redirect:}) with
certificates of a test CA (L{shared_ca}), L{TLSDaemonTestCase} shares one
among a class's tests, L{https} makes one request trusting that CA, and
L{HostileTLSClient} sends what a broken or hostile client would.
"""

import os
import shutil
import socket
import ssl
import time
from functools import cache
from http import client as httpclient
from urllib.parse import urlsplit

from tests.harness.e2e import (
    HOST,
    HTTP_TIMEOUT,
    TCP_CLOSE,
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


#: An application-data record OpenSSL refuses (its authentication fails).
BAD_RECORD = b"\x17\x03\x03\x00\x20" + b"\x00" * 32

#: The state C{TCP_INFO} gives a connection whose peer sent its FIN (Linux's TCP_CLOSE_WAIT).
TCP_CLOSE_WAIT = 8


class HostileTLSClient:
    """
    A TLS client over a plain socket and memory BIOs (Python's C{ssl}), so
    that a test sends exactly what it chooses, when it chooses: a request,
    bytes that are no TLS record, its close_notify; and sees how the
    server ends the TCP connection (L{ended}).
    """

    def __init__(self, port, receive_buffer=None):
        """
        Connect to C{port} and do the handshake, trusting the test CA.

        @param receive_buffer: the socket's receive buffer in bytes, set
            before it connects (a small one bounds what the server can
            send to a client that reads nothing), or L{None}.
        """
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if receive_buffer is not None:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            self.sock.settimeout(HTTP_TIMEOUT)
            self.sock.connect((HOST, port))
            self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = client_context().wrap_bio(self._incoming, self._outgoing,
                                                 server_hostname="localhost")
            self._until_done(self.tls.do_handshake)
        except BaseException:
            self.sock.close()
            raise

    def close(self):
        """Close the socket (no close_notify)."""
        self.sock.close()

    def _flush(self):
        data = self._outgoing.read()
        if data:
            self.sock.sendall(data)

    def _until_done(self, step):
        """Call C{step} until it needs no more bytes from the server; return its result."""
        while True:
            try:
                result = step()
            except ssl.SSLWantReadError:
                self._flush()
                data = self.sock.recv(1 << 16)
                if not data:
                    raise ConnectionError("the server closed the connection") from None
                self._incoming.write(data)
            else:
                self._flush()
                return result

    def send(self, data):
        """Send C{data} over TLS."""
        self.tls.write(data)
        self._flush()

    def read(self, size):
        """At least C{size} bytes of what the server sends over TLS."""
        received = []
        while sum(map(len, received)) < size:
            received.append(self._until_done(lambda: self.tls.read(1 << 16)))
        return b"".join(received)

    def send_raw(self, data):
        """Send C{data} as it is, past TLS (a record the server cannot take, say)."""
        self.sock.sendall(data)

    def close_notify(self):
        """Send this side's close_notify, and nothing more (no wait for the server's)."""
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as e:
            # (its second step reads the server's close_notify, and meets the
            # answer still coming: this side's was written first)
            if e.reason != "APPLICATION_DATA_AFTER_CLOSE_NOTIFY":
                raise
        self._flush()

    def ended(self, limit, reading):
        """
        How the server ended the TCP connection within C{limit} seconds:
        C{"reset"}, C{"closed"} (its FIN), or L{None} while it kept it.

        @param reading: read (and throw away) what arrives meanwhile;
            else read nothing, and watch the connection's state.
        """
        deadline = time.monotonic() + limit
        if not reading:
            while time.monotonic() < deadline:
                state = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
                if state in (TCP_CLOSE, TCP_CLOSE_WAIT):
                    return "reset" if state == TCP_CLOSE else "closed"
                time.sleep(0.02)
            return None
        try:
            while (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                if not self.sock.recv(1 << 20):
                    return "closed"
        except ConnectionResetError:
            return "reset"
        except TimeoutError:
            pass
        return None
