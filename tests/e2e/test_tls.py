"""
End-to-end tests of native HTTPS: the real daemon on an C{https:} listener
(and an C{http-redirect:} one) with certificates from a test CA, checked
with pip and twine (C{--cert}), Python's C{ssl} module (raw requests over
TLS too), C{kill -HUP} and start-ups that must fail.
"""

import datetime
import json
import os
import shutil
import signal
import socket
import ssl
import sys
from http import client as httpclient
from types import SimpleNamespace
from urllib.parse import urlsplit

from pypid.web.server.channel import CLOSE_TIMEOUT
from tests.harness.distributions import make_wheel, write_random_wheel
from tests.harness.e2e import (
    HOST,
    HTTP_TIMEOUT,
    PASSWORD,
    USER,
    Daemon,
    DaemonTestCase,
    asked_never_read,
    clean_env,
    free_port,
    http,
    installed,
    reset_unread,
    run,
    upload_form,
    wait_for,
    watch,
    worker_pids,
)
from tests.harness.e2e_tls import (
    BAD_RECORD,
    HostileTLSClient,
    TLSDaemon,
    TLSDaemonTestCase,
    client_context,
    https,
    shared_ca,
)
from tests.harness.tlsca import serial_of

# -- the test CA and HTTPS clients ------------------------------------------------------------


def connect(port, context=None, host="localhost", timeout=HTTP_TIMEOUT):
    """A TLS connection to the daemon, handshake done; the caller closes it."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    try:
        return (context or client_context()).wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def read_to_close(sock):
    """Everything C{sock} receives until the server closes (TLS close_notify or EOF)."""
    received = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(received)
        received.append(data)


def closed_by_server(sock, limit):
    """
    Whether the server ends C{sock}'s TCP connection within C{limit}
    seconds while this side keeps it open and sends nothing: its FIN first
    (C{recv} gives nothing), then its reset (the socket's state CLOSE).
    """
    with socket.socket(fileno=os.dup(sock.fileno())) as raw:
        raw.settimeout(limit)
        try:
            if raw.recv(1) != b"":
                return False
        except ConnectionResetError:
            return True
        return reset_unread(raw, limit)

#: How soon the server must end a connection whose client ended its TLS
#: session (seconds): it takes a few turns of its reactor; the connection
#: was held 30 s (the next header deadline) or 60 s (the send timeout) before.
CLOSE_BUDGET = 5.0

#: How soon the daemon answers, and logs a refused reload, after a SIGHUP
#: that finds unusable TLS files (seconds: a reactor that is not blocked
#: answers in milliseconds).
PROMPT = 5.0


def expired_files(folder):
    """A certificate and key that expired yesterday, issued into C{folder} as C{server.*}."""
    now = datetime.datetime.now(datetime.UTC)
    return shared_ca().issue("server", kind="ec", folder=folder,
                             valid=(now - datetime.timedelta(days=30),
                                    now - datetime.timedelta(days=1)))


# -- the tests -------------------------------------------------------------------------------


class HTTPSTests(TLSDaemonTestCase):
    """One daemon on https: (RSA certificate, intermediate CA) and http-redirect:."""

    def test_twine_and_pip(self):
        """twine uploads and pip installs over HTTPS, trusting the test CA with --cert."""
        wheel = make_wheel("tls-wheel", "1.0")
        self.clients.twine_upload(self.daemon, self.dist_dir(wheel), "--cert",
                                  shared_ca().root_path)
        self.assertIn(wheel[0], self.daemon.stored_names())
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.daemon.index_url, "--cert", shared_ca().root_path,
                                 "tls-wheel")
        self.assertEqual(installed(target), {"tls-wheel": "1.0"})

    def test_pip_refuses_unknown_ca(self):
        """Without --cert, pip does not trust the server: nothing is installed."""
        target = os.path.abspath(self.mktemp())
        done = self.clients.pip_install(target, self.daemon.index_url, "--retries", "0",
                                        "tls-anything", check=False)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("CERTIFICATE_VERIFY_FAILED", done.output)

    def test_protocol_versions(self):
        """TLS 1.1 is refused by the server; TLS 1.2 and 1.3 are served."""
        port = self.daemon.port
        with self.assertRaises(ssl.SSLError) as refused:
            connect(port, client_context(ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1)).close()
        self.assertEqual(refused.exception.reason, "TLSV1_ALERT_PROTOCOL_VERSION")
        for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                              (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            with connect(port, client_context(version, version)) as sock:
                self.assertEqual(sock.version(), name)
                cipher = sock.cipher()[0]
                self.assertTrue(cipher.startswith("ECDHE-") or cipher.startswith("TLS_"), cipher)
                self.assertTrue("GCM" in cipher or "CHACHA20" in cipher, cipher)

    def test_weak_ciphers_refused(self):
        """Over TLS 1.2, suites without AEAD or forward secrecy get no handshake."""
        for suite in ("AES128-SHA", "ECDHE-RSA-AES128-SHA", "AES256-GCM-SHA384"):
            context = client_context(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, suite)
            with self.assertRaises(ssl.SSLError, msg=suite) as refused:
                connect(self.daemon.port, context).close()
            self.assertEqual(refused.exception.reason, "SSLV3_ALERT_HANDSHAKE_FAILURE", suite)

    def test_full_chain(self):
        """The intermediate is sent: a client trusting only the root verifies both host names."""
        for host in ("localhost", "127.0.0.1"):
            with connect(self.daemon.port, host=host) as sock:
                self.assertEqual(serial_of(sock.getpeercert(binary_form=True)),
                                 self.daemon.files.serial)

    def test_no_plain_http_on_https_port(self):
        """Plain HTTP sent to the https port gets no HTTP answer."""
        with self.assertRaises((httpclient.HTTPException, OSError)):
            http("GET", f"http://{HOST}:{self.daemon.port}/health", timeout=5)

    def dropped(self):
        """
        How many connections the shared daemon has dropped so far for
        staying open past C{CLOSE_TIMEOUT} after a refusal (it logs each
        before it drops it).
        """
        return self.daemon.log_since_start().count(b"Dropping a connection still open")

    def test_oversized_headers(self):
        """
        A 64 KiB or 1 MiB Authorization header: 431, and the server closes
        the connection itself (TLS close_notify), rather than leaving the
        client waiting until the connection is dropped C{CLOSE_TIMEOUT}
        after the answer; then service.
        """
        for size in (64 << 10, 1 << 20):
            dropped = self.dropped()
            with connect(self.daemon.port) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n"
                             b"Authorization: Basic " + b"A" * size + b"\r\n\r\n")
                try:
                    answer = read_to_close(sock)
                except ConnectionResetError:
                    self.fail(f"{size} bytes: the connection was dropped, not closed")
                # (a drop is logged before it is made)
                self.assertEqual(self.dropped(), dropped,
                                 f"{size} bytes: the connection was dropped, not closed")
            self.assertTrue(answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
                            answer[:100])
            self.assertTrue(
                answer.endswith(b"\r\n\r\nthe request headers are larger than 16 KiB\n"),
                answer[-100:])
        self.assertEqual(https("GET", self.daemon.url + "health").status, 200)
        self.assertNotIn("AAAA", self.daemon.log_text(), "no header goes to the log")

    def test_refused_connection_freed(self):
        """
        A client that reads the 431 but never closes is dropped by the
        server C{CLOSE_TIMEOUT} after the answer.
        """
        dropped = self.dropped()
        with connect(self.daemon.port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * (64 << 10)
                         + b"\r\n\r\n")
            self.assertTrue(read_to_close(sock).startswith(b"HTTP/1.1 431 "))
            # The TLS session is over, and the server's FIN follows its
            # close_notify; the TCP connection stays until the server drops
            # it. (A safety limit, far above CLOSE_TIMEOUT: the log says what
            # freed the connection.)
            self.assertTrue(closed_by_server(sock, CLOSE_TIMEOUT + 60))
        self.assertEqual(self.dropped(), dropped + 1,
                         "the connection was not dropped by the server's close timeout")
        self.assertIn(f"Dropping a connection still open {CLOSE_TIMEOUT:g} s after its answer"
                      .encode(), self.daemon.log_since_start())

    def test_closing_client_freed(self):
        """
        A client that asks to close, reads its answer and the server's
        close_notify, then neither answers it nor closes, gets the FIN at
        once and is dropped a few seconds later (the HTTP channel's linger),
        not kept for good.
        """
        with connect(self.daemon.port) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            self.assertTrue(read_to_close(sock).startswith(b"HTTP/1.1 200 "))
            # (a limit far above the linger: the test is that it ends)
            self.assertTrue(closed_by_server(sock, 60), "the server kept the connection")

    def test_redirect(self):
        """The redirect listener answers 301 to the same path on the https port."""
        daemon = self.daemon
        resp = http("GET", daemon.redirect_url + "simple/some-project/?x=1")
        self.assertEqual(resp.status, 301)
        self.assertEqual(resp.header("Location"),
                         f"https://{HOST}:{daemon.port}/simple/some-project/?x=1")
        self.assertEqual(https("GET", resp.header("Location")).status, 404)

    def test_redirect_refuses_upload(self):
        """An upload with credentials to the redirect listener gets 308 and stores nothing; twine stops at the redirect."""
        daemon = self.daemon
        wheel = make_wheel("sent-in-clear", "1.0")
        ctype, body = upload_form(*wheel)
        resp = http("POST", daemon.redirect_url + "legacy/", {"Content-Type": ctype}, body,
                    auth=(USER, PASSWORD))
        self.assertEqual(resp.status, 308)
        self.assertEqual(resp.header("Location"), f"https://{HOST}:{daemon.port}/legacy/")
        self.assertIn(b"were not used", resp.body)
        self.assertNotIn(wheel[0], daemon.stored_names())
        self.assertEqual(https("GET", daemon.index_url + "sent-in-clear/").status, 404)
        self.assertIn("Refused credentials sent over plain HTTP", daemon.log_text())
        self.assertNotIn(PASSWORD, daemon.log_text())
        done = self.clients.twine_upload(SimpleNamespace(url=daemon.redirect_url),
                                         self.dist_dir(wheel), check=False)
        self.assertNotEqual(done.returncode, 0, done.output)
        self.assertIn("RedirectDetected", done.output)
        self.assertNotIn(wheel[0], daemon.stored_names())


def big_download(case, daemon):
    """Upload a 16 MiB wheel; its path on the daemon and its size."""
    folder = os.path.abspath(case.mktemp())
    os.makedirs(folder)
    with open(write_random_wheel(folder, "big-download", "1.0", 16 << 20), "rb") as f:
        data = f.read()
    filename = "big_download-1.0-py3-none-any.whl"
    ctype, body = upload_form(filename, data)
    case.assertEqual(https("POST", daemon.url, {"Content-Type": ctype}, body,
                           auth=(USER, PASSWORD)).status, 200)
    return f"/files/big-download/{filename}", len(data)


class NonReadingClientTests(TLSDaemonTestCase):
    """An https: daemon with a send timeout of 2 s, holding a 16 MiB file."""

    settings = {"pypid.send_timeout": "2s"}

    def prepare(self, daemon):
        return big_download(self, daemon)

    def test_non_reading_client_dropped(self):
        """
        A client that asks for a 16 MiB file over TLS and reads none of it
        is reset once it has taken none of it for the send timeout (it kept
        its connection for good before); a client that reads gets it whole.
        """
        path, size = self.prepared
        with asked_never_read(self.daemon.port, path, client_context()) as sock:
            # (a limit far above the 2 s: the test is that it ends)
            self.assertTrue(reset_unread(sock, 60), "the server kept the connection")
        self.assertIn(b"Dropping a connection whose client took none of its answer for 2 s",
                      self.daemon.log_since_start())
        self.assertEqual(len(https("GET", self.daemon.url + path[1:]).body), size)


class HostileClientTests(TLSDaemonTestCase):
    """
    An https: daemon holding a 16 MiB file, and clients that end their TLS
    session in the middle of a download (a record the server cannot
    take, a close_notify) or before their request is whole: the server
    ends each connection at once, and serves the next client.
    """

    def prepare(self, daemon):
        return big_download(self, daemon)

    def downloading(self):
        """
        A client that asked for the 16 MiB file and read its first MiB:
        the server is in the middle of the answer (no kernel's buffers
        hold the rest, the client's receive buffer made small).
        """
        path, _ = self.prepared
        client = HostileTLSClient(self.daemon.port, receive_buffer=1 << 16)
        self.addCleanup(client.close)
        client.send(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        self.assertTrue(client.read(1 << 20).startswith(b"HTTP/1.1 200 OK\r\n"))
        return client

    def assert_served(self):
        """
        The next client downloads the file whole, and asks for /health on
        the same connection; that connection, kept open.
        """
        path, size = self.prepared
        kept = httpclient.HTTPSConnection(HOST, self.daemon.port, context=client_context(),
                                          timeout=HTTP_TIMEOUT)
        self.addCleanup(kept.close)
        self.assertEqual(len(https("GET", self.daemon.url + path[1:], connection=kept).body),
                         size)
        self.assertEqual(https("GET", self.daemon.url + "health", connection=kept).status, 200)
        return kept

    def test_bad_record_mid_download(self):
        """
        A record the server cannot take, sent in the middle of a download,
        resets the connection at once, whether the client goes on reading
        or not; the log says why.
        """
        line = b"Dropping a TLS connection whose client sent a record TLS refused"
        before = self.daemon.log_since_start().count(line)
        for reading in (False, True):
            client = self.downloading()
            client.send_raw(BAD_RECORD)
            self.assertEqual(client.ended(CLOSE_BUDGET, reading), "reset", f"reading={reading}")
        self.assertEqual(self.daemon.log_since_start().count(line), before + 2)
        self.assert_served()

    def test_close_notify_mid_download(self):
        """
        The client's close_notify in the middle of a download resets the
        connection at once (the rest of the answer can no longer be sent
        in order), whether the client goes on reading or not.
        """
        line = b"Dropping a TLS connection its client closed with "
        before = self.daemon.log_since_start().count(line)
        for reading in (False, True):
            client = self.downloading()
            client.close_notify()
            self.assertEqual(client.ended(CLOSE_BUDGET, reading), "reset", f"reading={reading}")
        self.assertEqual(self.daemon.log_since_start().count(line), before + 2)
        self.assert_served()

    def test_before_the_request(self):
        """
        Before the request is whole, the server ends the connection at once
        too: garbage in the handshake (OpenSSL's alert, then the FIN), a
        bad record in the middle of the request's head (a reset), the
        client's close_notify there (the server's, then the FIN).
        """
        with socket.create_connection((HOST, self.daemon.port), timeout=HTTP_TIMEOUT) as raw:
            raw.sendall(b"\x16\x03\x01\x00\x05" + b"\x00" * 5 + BAD_RECORD)
            raw.settimeout(CLOSE_BUDGET)
            self.assertEqual(read_to_close(raw)[:1], b"\x15", "a TLS alert")
        for end, how in ((lambda client: client.send_raw(BAD_RECORD), "reset"),
                         (HostileTLSClient.close_notify, "closed")):
            client = HostileTLSClient(self.daemon.port)
            self.addCleanup(client.close)
            client.send(b"GET /health HTTP/1.1\r\nHost: local")
            end(client)
            self.assertEqual(client.ended(CLOSE_BUDGET, reading=True), how)
        self.assert_served()

    def test_graceful_close(self):
        """
        A client that downloads the file and asks for /health on one
        connection, then sends its close_notify, gets the server's
        close_notify, then the FIN, at once.
        """
        dropped = self.daemon.log_since_start().count(b"Dropping a TLS connection")
        kept = self.assert_served()
        kept.sock.settimeout(CLOSE_BUDGET)
        plain = kept.sock.unwrap()  # (the close_notify, both ways)
        self.assertEqual(plain.recv(1), b"", "no FIN")
        self.assertEqual(self.daemon.log_since_start().count(b"Dropping a TLS connection"),
                         dropped)


class ReloadTests(TLSDaemonTestCase):
    """kill -HUP reloads the certificate for new connections, keeping the process and its connections."""

    def test_hangup_reloads(self):
        """A renewed certificate is served after SIGHUP; bad files then keep it in service."""
        daemon = self.new_tls_daemon()
        pid, old = daemon.pid, daemon.files.serial
        kept = httpclient.HTTPSConnection(HOST, daemon.port, context=client_context(),
                                          timeout=HTTP_TIMEOUT)
        self.addCleanup(kept.close)
        self.assertEqual(https("GET", daemon.url + "health", connection=kept).status, 200)
        kept_socket = kept.sock

        renewed = shared_ca().issue("server", kind="ec", folder=os.path.dirname(daemon.files.key))
        self.assertNotEqual(renewed.serial, old)
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: b"Reloaded the TLS certificate" in daemon.log_since_start(), 10,
                 "the server did not log the reload")
        with connect(daemon.port) as sock:
            self.assertEqual(serial_of(sock.getpeercert(binary_form=True)), renewed.serial)
        self.assertEqual(https("GET", daemon.url + "health", connection=kept).status, 200)
        self.assertIs(kept.sock, kept_socket)
        self.assertEqual(serial_of(kept.sock.getpeercert(binary_form=True)), old)
        self.assertTrue(daemon.running())
        self.assertEqual(daemon.pid, pid)

        shutil.copy(shared_ca().stray_key(folder=self.mktemp()), daemon.files.key)
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: b"Cannot reload TLS" in daemon.log_since_start(), 10,
                 "the server did not log the failed reload")
        with connect(daemon.port) as sock:
            self.assertEqual(serial_of(sock.getpeercert(binary_form=True)), renewed.serial)
        self.assertTrue(daemon.running())
        lines = [line for line in daemon.log_since_start().decode().splitlines()
                 if "Cannot reload TLS" in line]
        self.assertEqual(len(lines), 1)
        self.assertIn(f"the TLS key {daemon.files.key} does not match", lines[0])


    def test_machine(self):
        """
        A machine of two workers serves the [tls] files as its supervisor
        took them: a worker killed and started again after the files were
        renewed on disk, before any C{SIGHUP}, serves the old certificate
        as the other does; after one C{SIGHUP} both serve the renewed one
        (each connection goes to whichever worker the kernel hands it to);
        files that cannot be served then are named once, by the
        supervisor, and the renewed certificate stays in service.
        """
        daemon = self.new_tls_daemon(settings={"pypid.workers": "2"})

        def up():
            return json.loads(https("GET", daemon.url + "health").body)["workers"]["up"]

        def served(serial):
            seen = set()
            for _ in range(30):
                with connect(daemon.port) as sock:
                    self.assertEqual(serial_of(sock.getpeercert(binary_form=True)), serial)
                seen.add(json.loads(https("GET", daemon.url + "health").body)["workers"]
                         ["answered_by"])
            self.assertEqual(seen, {1, 2})
        wait_for(lambda: up() == 2, 60, "every worker ready")
        renewed = shared_ca().issue("server", kind="ec", folder=os.path.dirname(daemon.files.key))
        victim = worker_pids(daemon)[-1]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in worker_pids(daemon) and len(worker_pids(daemon)) == 2
                 and up() == 2, 60, "the worker started again")
        served(daemon.files.serial)

        os.kill(daemon.pid, signal.SIGHUP)
        wait_for(lambda: daemon.log_since_start().count(b"Reloaded the TLS certificate") >= 2,
                 10, "every worker reloaded the certificate")
        served(renewed.serial)

        shutil.copy(shared_ca().stray_key(folder=self.mktemp()), daemon.files.key)
        line = self.refused_reload(daemon)
        self.assertIn(f"the TLS key {daemon.files.key} does not match", line)
        wait_for(lambda: daemon.log_since_start().count(b"Reloaded the TLS certificate") >= 4,
                 10, "every worker took the texts in force")
        served(renewed.serial)

    def refused_reload(self, daemon):
        """After a SIGHUP, the one line saying why the TLS files were not taken."""
        os.kill(daemon.pid, signal.SIGHUP)
        wait_for(lambda: b"Cannot reload TLS" in daemon.log_since_start(), PROMPT,
                 "the server did not log the refused reload")
        lines = [line for line in daemon.log_since_start().decode().splitlines()
                 if "Cannot reload TLS" in line]
        self.assertEqual(len(lines), 1, lines)
        return lines[0]

    def assert_old_served(self, daemon):
        """New connections get the certificate of the start, at once."""
        with connect(daemon.port, timeout=PROMPT) as sock:
            self.assertEqual(serial_of(sock.getpeercert(binary_form=True)), daemon.files.serial)
        self.assertTrue(daemon.running())

    def test_fifo_at_certificate(self):
        """
        A FIFO put at the certificate's path, then SIGHUP: the https and
        redirect listeners go on answering at once with the old
        certificate, and the log says why the file was not taken (it was
        read on the reactor's thread, which waited for a writer for good).
        """
        daemon = self.new_tls_daemon(redirect_port=free_port())
        os.remove(daemon.files.certificate)
        os.mkfifo(daemon.files.certificate)
        line = self.refused_reload(daemon)
        self.assertIn(f"cannot read the TLS certificate {daemon.files.certificate}: it is a "
                      "FIFO, not a regular file", line)
        self.assert_old_served(daemon)
        self.assertEqual(http("GET", daemon.redirect_url + "simple/", timeout=PROMPT).status,
                         301)

    def test_expired_renewal_refused(self):
        """
        An expired certificate and its key written over the files, then
        SIGHUP: the old certificate stays in service, and the log names the
        file and its dates.
        """
        daemon = self.new_tls_daemon()
        expired = expired_files(os.path.dirname(daemon.files.key))
        self.assertEqual(expired.certificate, daemon.files.certificate)
        line = self.refused_reload(daemon)
        self.assertIn(f"the TLS certificate {daemon.files.certificate} has expired: it is "
                      "valid from ", line)
        self.assert_old_served(daemon)


class StartupTests(TLSDaemonTestCase):
    """Unusable TLS files stop start-up with one line and exit status 1, never plain HTTP."""

    def assert_one_critical_line(self, done, *words):
        """The server exited with status 1 after one critical line holding C{words}."""
        self.assertEqual(done.returncode, 1, done.output)
        self.assertNotIn("Traceback", done.output)
        self.assertNotIn("Listening on", done.output)
        critical = [line for line in done.output.splitlines() if "#critical]" in line]
        self.assertEqual(len(critical), 1, done.output)
        for word in words:
            self.assertIn(word, critical[0])

    def test_bad_key(self):
        """A key that is not the certificate's: one line naming it, status 1, nothing listens."""
        daemon = self.new_tls_daemon(start=False, redirect_port=free_port())
        stray = shared_ca().stray_key(folder=os.path.dirname(daemon.files.key))
        daemon.settings["tls.key"] = stray
        done = daemon.run_to_exit()
        self.assert_one_critical_line(done, "Cannot listen on https:", f"the TLS key {stray} "
                                      f"does not match the certificate {daemon.files.certificate}")

    def test_ssl_endpoint_refused(self):
        """Twisted's ssl: endpoint stops start-up: one line pointing at https:, status 1."""
        folder = os.path.abspath(self.mktemp())
        files = shared_ca().issue("server", kind="ec", folder=os.path.join(folder, "tls"))
        daemon = Daemon(folder)
        watch(daemon)
        argv = daemon.command(free_port())
        at = argv.index("--listen") + 1
        argv[at] = (f"ssl:{free_port()}:interface={HOST}:privateKey={files.key}:"
                    f"certKey={files.certificate}")
        done = run(argv, cwd=daemon.directory, env=clean_env(daemon.home, **daemon.environ),
                   timeout=30, check=False, what="twistd")
        self.assertEqual(done.returncode, 1, done.output)
        self.assertEqual(done.output.strip().splitlines(), [
            f"pypid: --listen pypid.listen: [pypid] listen: {argv[at]!r} is Twisted's TLS "
            "endpoint, with its default ciphers (AES128-SHA among them): serve HTTPS with an "
            "https:PORT listener and [tls] certificate and key"])

    def test_expired_certificate(self):
        """An expired certificate: one line naming it, its dates and the key to set; status 1."""
        folder = os.path.abspath(self.mktemp())
        files = expired_files(os.path.join(folder, "tls"))
        daemon = self.new_tls_daemon(files=files, start=False)
        done = daemon.run_to_exit()
        self.assert_one_critical_line(done, "Cannot listen on https:",
                                      f"the TLS certificate {files.certificate} has expired: "
                                      "it is valid from ",
                                      "set [tls] allow_expired = yes to serve it anyway")

    def test_missing_certificate(self):
        """A missing certificate: one line naming it, status 1."""
        daemon = self.new_tls_daemon(start=False)
        os.remove(daemon.files.certificate)
        done = daemon.run_to_exit()
        self.assert_one_critical_line(done, f"cannot read the TLS certificate "
                                      f"{daemon.files.certificate}: No such file or directory")


class RecipeTests(DaemonTestCase):
    """
    C{pypid-admin tls} (issue 60): the CA and server certificate it makes
    are what every client accepts, uv included (which refuses a
    self-signed certificate that is its own CA), and pypid's own tools
    trust the CA with C{--cert}.
    """

    def make(self, folder, *hosts):
        """Run C{pypid-admin tls}; return its output."""
        argv = [sys.executable, "-m", "pypid.cli.admin", "tls", "--out", folder]
        for host in hosts:
            argv += ["--host", host]
        return run(argv, cwd=folder.rpartition("/")[0], env=clean_env(self.mktemp()),
                   what="pypid-admin tls").output

    def test_every_client_accepts_it(self):
        """uv, pip and twine install and upload over it; pypid-admin and pypid-token too."""
        folder = os.path.abspath(self.mktemp())
        said = self.make(folder, "127.0.0.1", "localhost")
        self.assertIn("made a new CA: " + os.path.join(folder, "ca.pem"), said)
        ca = os.path.join(folder, "ca.pem")
        self.assertEqual(os.stat(os.path.join(folder, "ca-key.pem")).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.join(folder, "server-key.pem")).st_mode & 0o777,
                         0o600)
        files = SimpleNamespace(certificate=os.path.join(folder, "server.pem"),
                                key=os.path.join(folder, "server-key.pem"), chain="")
        daemon = RecipeDaemon(os.path.abspath(self.mktemp()), files, ca)
        watch(daemon)
        self.addCleanup(daemon.kill)
        daemon.start()
        wheel = make_wheel("recipe-wheel", "1.0")
        self.clients.twine_upload(daemon, self.dist_dir(wheel), "--cert", ca)
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, daemon.index_url, "--cert", ca, "recipe-wheel")
        self.assertEqual(installed(target), {"recipe-wheel": "1.0"})
        again = os.path.abspath(self.mktemp())
        self.clients.uv_install(again, daemon.index_url, "recipe-wheel",
                                environ={"SSL_CERT_FILE": ca})
        self.assertEqual(installed(again), {"recipe-wheel": "1.0"})
        env = clean_env(self.mktemp(), PYPID_PASSWORD=PASSWORD)
        listed = run([sys.executable, "-m", "pypid.cli.admin", "--server", daemon.url,
                      "--user", USER, "--cert", ca, "files", "recipe-wheel"],
                     cwd=folder, env=env, what="pypid-admin").output
        self.assertIn("1.0", listed)
        tokens = run([sys.executable, "-m", "pypid.cli.token", "--server", daemon.url,
                      "--user", USER, "--cert", ca, "list"], cwd=folder, env=env,
                     what="pypid-token", check=False)
        self.assertEqual(tokens.returncode, 0, tokens.output)
        # Without --cert, the tools refuse the server, saying why.
        refused = run([sys.executable, "-m", "pypid.cli.admin", "--server", daemon.url,
                       "projects"], cwd=folder, env=env, what="pypid-admin", check=False)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("CERTIFICATE_VERIFY_FAILED", refused.output)

    def test_certificate_shape(self):
        """ECDSA keys; the CA a CA only; the server's not a CA, for servers, its names in SAN."""
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID
        folder = os.path.abspath(self.mktemp())
        self.make(folder, "pypi.internal.example", "10.0.0.5")
        with open(os.path.join(folder, "ca.pem"), "rb") as f:
            ca = x509.load_pem_x509_certificate(f.read())
        with open(os.path.join(folder, "server.pem"), "rb") as f:
            server = x509.load_pem_x509_certificate(f.read())
        self.assertIsInstance(ca.public_key(), ec.EllipticCurvePublicKey)
        self.assertIsInstance(server.public_key(), ec.EllipticCurvePublicKey)
        self.assertTrue(ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        self.assertTrue(ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign)
        self.assertFalse(
            server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        self.assertEqual(
            list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value),
            [ExtendedKeyUsageOID.SERVER_AUTH])
        names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(names.get_values_for_type(x509.DNSName), ["pypi.internal.example"])
        self.assertEqual([str(a) for a in names.get_values_for_type(x509.IPAddress)],
                         ["10.0.0.5"])
        self.assertEqual(server.issuer, ca.subject)
        # Run again: the CA is kept, a new server certificate issued by it.
        said = self.make(folder, "pypi.internal.example")
        self.assertIn("kept the CA: ", said)
        with open(os.path.join(folder, "ca.pem"), "rb") as f:
            self.assertEqual(x509.load_pem_x509_certificate(f.read()), ca)
        with open(os.path.join(folder, "server.pem"), "rb") as f:
            renewed = x509.load_pem_x509_certificate(f.read())
        self.assertNotEqual(renewed.serial_number, server.serial_number)
        ca.public_key().verify(renewed.signature, renewed.tbs_certificate_bytes,
                               ec.ECDSA(renewed.signature_hash_algorithm))

    def test_bad_host(self):
        """A host that is no name is refused in one line; no host at all too."""
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        for hosts, message in ((("bad host!",), "--host 'bad host!': expected a host name"),
                               ((), "give the server's names: --host")):
            argv = [sys.executable, "-m", "pypid.cli.admin", "tls", "--out", folder]
            for host in hosts:
                argv += ["--host", host]
            done = run(argv, cwd=folder, env=clean_env(self.mktemp()), what="pypid-admin",
                       check=False)
            self.assertEqual(done.returncode, 1, done.output)
            self.assertIn(message, done.output)
            self.assertNotIn("Traceback", done.output)


class RecipeDaemon(TLSDaemon):
    """An HTTPS daemon whose certificate comes from C{pypid-admin tls}, trusting its CA."""

    def __init__(self, directory, files, ca, **kwargs):
        super().__init__(directory, files, **kwargs)
        self.ca = ca

    def health(self):
        """C{/health} over HTTPS, trusting the recipe's CA."""
        context = ssl.create_default_context(cafile=self.ca)
        parts = urlsplit(self.url)
        conn = httpclient.HTTPSConnection(parts.hostname, parts.port, context=context,
                                          timeout=HTTP_TIMEOUT)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status
        finally:
            conn.close()
