"""
Hostile requests against the running daemon, over raw sockets: path
traversal in every encoding, CRLF injection, oversized and malformed
headers, broken credentials and hostile multipart bodies. Each case checks
the status, that nothing was written, and that the server still answers
normal requests.
"""

import base64
import os
import socket
import ssl
from http import client as httpclient

from tests.harness.distributions import make_wheel, write_random_wheel
from tests.harness.e2e import (
    HOST,
    PASSWORD,
    USER,
    DaemonTestCase,
    asked_never_read,
    basic,
    http,
    reset_unread,
    upload,
    wait_for,
)

WHEEL = make_wheel("hostile-target", "1.0")


def raw(daemon, data, timeout=10):
    """Send raw bytes; return everything the server answers before it closes."""
    with socket.create_connection((HOST, daemon.port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def status_of(answer):
    """The status code of a raw answer (0 when there is none)."""
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


class HostileTests(DaemonTestCase):
    """One daemon, many hostile clients."""

    def prepare(self, daemon):
        self.assertEqual(upload(daemon, *WHEEL).status, 200)
        # A file outside the storage root that traversal would reach.
        with open(os.path.join(daemon.directory, "secret.txt"), "w") as f:
            f.write("TOP SECRET")

    def assert_still_serving(self):
        """The server answers a normal request, and nothing new was stored."""
        self.assertEqual(http("GET", self.daemon.index_url + "hostile-target/").status, 200)
        self.assertEqual(self.daemon.stored_names(), [WHEEL[0]])
        self.assertEqual(self.daemon.temp_files(), [])

    def test_traversal(self):
        """No encoding of a path reaches a file outside the storage root."""
        paths = [
            "/files/hostile-target/../../secret.txt",
            "/files/hostile-target/..%2f..%2fsecret.txt",
            "/files/hostile-target/%2e%2e/%2e%2e/secret.txt",
            "/files/hostile-target/%252e%252e%252fsecret.txt",
            "/files/..%5c..%5csecret.txt",
            "/files/hostile-target/..\\..\\secret.txt",
            "/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
            "/simple/../../secret.txt",
            "/files/hostile-target/" + "%2e%2e%2f" * 8 + "etc/passwd",
            "/files/hostile-target/%00secret.txt",
        ]
        for path in paths:
            answer = raw(self.daemon, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close"
                                      f"\r\n\r\n".encode())
            self.assertIn(status_of(answer), (400, 404), (path, answer[:200]))
            self.assertNotIn(b"TOP SECRET", answer, path)
            self.assertNotIn(b"root:", answer, path)
        self.assert_still_serving()

    def test_non_utf8_path(self):
        """
        A path whose percent-escapes are not UTF-8 gets 400 naming the
        path, on every route (a Klein app's too), and is logged once,
        without a traceback, however many come.
        """
        paths = ["/simple/%ff/", "/project/%ff/", "/files/x/%ff.whl", "/pypi/%ff/json",
                 "/api/files/%ff/yank", "/integrity/%ff/1.0/x.whl/provenance", "/%c3%28/"]
        for _ in range(3):
            for path in paths:
                answer = raw(self.daemon, f"GET {path} HTTP/1.1\r\nHost: x\r\n"
                                          f"Connection: close\r\n\r\n".encode())
                self.assertEqual(status_of(answer), 400, (path, answer[:200]))
                self.assertIn(b"path: not valid UTF-8", answer, path)
        log = self.daemon.log_text()
        self.assertNotIn("Traceback", log)
        self.assertEqual(log.count("path is not UTF-8"), 1)
        self.assertEqual(http("GET", self.daemon.index_url + "hostile-target/").status, 200)
        self.assertEqual(http("GET", self.daemon.url + "project/hostile%2Dtarget/").status, 200)
        self.assert_still_serving()

    def test_crlf_injection(self):
        """Encoded CR/LF in a path or a query never makes a header of its own."""
        for path in ("/simple/x%0d%0aSet-Cookie:%20evil=1/",
                     "/simple/hostile-target/?format=x%0d%0aSet-Cookie:%20evil=1",
                     "/pypi/x%0d%0aX-Evil:%201/json",
                     "/simple/Hostile_Target%0d%0aX-Evil:%201"):
            answer = raw(self.daemon, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close"
                                      f"\r\n\r\n".encode())
            head = answer.split(b"\r\n\r\n", 1)[0].lower()
            self.assertNotIn(b"\r\nset-cookie", head, path)
            self.assertNotIn(b"\r\nx-evil", head, path)
        # A reason phrase built from a client's filename stays on one line.
        answer = upload(self.daemon, "bad\r\nX-Evil: 1.whl", b"x")
        self.assertEqual(answer.status, 400)
        self.assertNotIn("x-evil", {k.lower() for k in answer.headers.keys()})
        self.assert_still_serving()

    def test_oversized_headers(self):
        """Headers over Twisted's limits are refused; nothing breaks."""
        answer = raw(self.daemon, b"GET /simple/ HTTP/1.1\r\nHost: x\r\nX-Big: " +
                     b"a" * 20000 + b"\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(answer), 431)
        many = b"".join(b"X-%d: y\r\n" % i for i in range(600))
        answer = raw(self.daemon, b"GET /simple/ HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        self.assertIn(status_of(answer), (0, 400, 431))
        answer = raw(self.daemon, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(status_of(answer), 414)
        self.assert_still_serving()

    def test_malformed_requests(self):
        """Garbage request lines and bad lengths get 400, never 500."""
        for data in (b"NONSENSE\r\n\r\n",
                     b"GET\r\n\r\n",
                     b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                     b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                     b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Content-Length: 6\r\n\r\nhello",
                     b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Length: 5\r\n\r\n0\r\n\r\n",
                     b"GET / HTTP/9.9\r\nHost: x\r\n\r\n"):
            answer = raw(self.daemon, data)
            self.assertNotEqual(status_of(answer), 500, data)
            self.assertNotIn(b"Traceback", answer)
        self.assert_still_serving()

    def test_malformed_credentials(self):
        """Broken Basic headers get 401 with a challenge, never 500 and nothing stored."""
        content_type, body = upload_body()
        for value in ("Basic", "Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode(),
                      "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
                      "Bearer abc", "Basic " + "A" * 10000,
                      "Basic " + base64.b64encode(b"uploader:" + b"x" * 6000).decode()):
            answer = http("POST", self.daemon.url + "legacy/",
                          {"Content-Type": content_type, "Authorization": value}, body)
            self.assertIn(answer.status, (400, 401), value[:40])
        # Headers past Twisted's 16 KiB limit: the connection is closed.
        huge = "Basic " + base64.b64encode(b"uploader:" + b"x" * 100000).decode()
        answer = raw(self.daemon, b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nAuthorization: "
                     + huge.encode() + b"\r\nContent-Length: 0\r\n\r\n")
        self.assertIn(status_of(answer), (0, 400, 431))
        wrong = http("POST", self.daemon.url + "legacy/",
                     {"Content-Type": content_type, "Authorization": basic(USER, "wrong")},
                     body)
        self.assertEqual(wrong.status, 401)
        self.assert_still_serving()

    def test_hostile_multipart(self):
        """Too many parts, huge part headers, a huge text field, a broken body: 400, nothing kept."""
        auth = {"Authorization": basic(USER, PASSWORD)}
        boundary = "b0undary"
        ctype = f"multipart/form-data; boundary={boundary}"
        many = "".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n"
                       for i in range(2000)) + f"--{boundary}--\r\n"
        huge_header = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"a\"\r\nX: "
                       + "h" * 20000 + f"\r\n\r\nx\r\n--{boundary}--\r\n")
        huge_field = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"summary\"\r\n\r\n"
                      + "s" * (3 << 20) + f"\r\n--{boundary}--\r\n")
        broken = f"--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"x.whl\"\r\n\r\nabc"
        for body in (many, huge_header, huge_field, broken):
            answer = http("POST", self.daemon.url + "legacy/",
                          dict(auth, **{"Content-Type": ctype}), body.encode())
            self.assertEqual(answer.status, 400, (body[:60], answer.body))
        no_boundary = http("POST", self.daemon.url + "legacy/",
                           dict(auth, **{"Content-Type": "multipart/form-data"}), b"x")
        self.assertEqual(no_boundary.status, 400)
        self.assert_still_serving()

    def test_host_header_not_trusted(self):
        """Without base_url, links never come from the Host header."""
        answer = raw(self.daemon, b"GET /simple/hostile-target/ HTTP/1.1\r\nHost: evil.example"
                                  b"\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(answer), 200)
        self.assertNotIn(b"evil.example", answer)
        redirect = raw(self.daemon, b"GET /simple/Hostile_Target/ HTTP/1.1\r\nHost: evil.example"
                                    b"\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(redirect), 301)
        self.assertNotIn(b"evil.example", redirect)

    def test_head_quiet(self):
        """
        C{HEAD} of pypiserver's C{/<project>/} and of C{/simple} (301s), of
        missing pages (404s) and of a path that is not UTF-8 (a 400 sent
        before the body) gets the headers with their C{Content-Length} and
        no body, and nothing in the log (Twisted logged a warning for each).
        """
        for path in (b"/hostile-target/", b"/simple", b"/no-such/", b"/simple/no-such/",
                     b"/static/no-such.css", b"/simple/%ff/"):
            answer = raw(self.daemon, b"HEAD " + path + b" HTTP/1.1\r\nHost: localhost\r\n"
                                      b"Connection: close\r\n\r\n")
            head, _, body = answer.partition(b"\r\n\r\n")
            self.assertIn(status_of(answer), (301, 400, 404), path)
            self.assertIn(b"\r\nContent-Length: ", head, path)
            self.assertEqual(body, b"", path)
        self.assertNotIn(b"message body", self.daemon.log_since_start())


def upload_body():
    """A valid upload form for the hostile target's wheel, as twine sends it."""
    from tests.harness.e2e import upload_form
    return upload_form(*make_wheel("hostile-other", "1.0"))


#: A download far larger than what the kernel and the server hold for one
#: client (4 MiB of send buffer at most on Linux, and Twisted's 64 KiB).
BIG = 16 << 20


class PlainPortTests(DaemonTestCase):
    """A daemon that would wait ten minutes for a request's headers."""

    settings = {"pypid.header_timeout": "600"}

    def test_tls_client_on_plain_port(self):
        """
        A TLS client on the plain-HTTP port (uv asks C{https://} for trusted
        publishing whatever the index's scheme) is answered a plain 400 at
        once, which it reads as a broken record, not when the header
        timeout ends. The hello is a real one, cut before its first line
        feed (where Twisted would have answered a malformed line).
        """
        context = ssl.create_default_context()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        with self.assertRaises(ssl.SSLWantReadError):
            context.wrap_bio(incoming, outgoing, server_hostname=HOST).do_handshake()
        hello = outgoing.read().partition(b"\n")[0]
        # (a limit far below the header timeout: the test is that it ends)
        answer = raw(self.daemon, hello, timeout=60)
        self.assertEqual(status_of(answer), 400, answer[:200])
        self.assertTrue(answer.endswith(b"use an http:// URL\n"), answer[-200:])
        self.assertEqual(http("GET", self.daemon.url + "health").status, 200)


class NonReadingClientTests(DaemonTestCase):
    """A daemon with a send timeout of 2 s, holding a 16 MiB file."""

    settings = {"pypid.send_timeout": "2s"}

    def prepare(self, daemon):
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        with open(write_random_wheel(folder, "big-download", "1.0", BIG), "rb") as f:
            data = f.read()
        filename = "big_download-1.0-py3-none-any.whl"
        self.assertEqual(upload(daemon, filename, data).status, 200)
        return f"/files/big-download/{filename}", len(data)

    def test_non_reading_client_dropped(self):
        """
        A client that asks for a 16 MiB file and reads none of it is reset
        once it has taken none of it for the send timeout (it kept its
        connection for good before); a client that reads gets it whole.
        """
        path, size = self.prepared
        with asked_never_read(self.daemon.port, path) as sock:
            # (a limit far above the 2 s: the test is that it ends)
            self.assertTrue(reset_unread(sock, 60), "the server kept the connection")
        self.assertIn(b"Dropping a connection whose client took none of its answer for 2 s",
                      self.daemon.log_since_start())
        self.assertEqual(len(http("GET", self.daemon.url + path[1:]).body), size)


class ConnectionLimitTests(DaemonTestCase):
    """A daemon that takes 2 connections at once from one address."""

    settings = {"pypid.max_connections_per_address": "2"}

    def answered(self):
        """
        A kept-alive connection the server answered, or L{None} when it was
        refused (the start-up's last probes may still be counted).
        """
        conn = httpclient.HTTPConnection(HOST, self.daemon.port, timeout=10)
        try:
            conn.request("GET", "/health")
            response = conn.getresponse()
            response.read()
        except OSError:
            conn.close()
            return None
        return conn

    def test_refusals_logged_once(self):
        """
        Fifty connections refused over the limit write one line to the log,
        not fifty (the rest are counted, and logged in one line once a
        minute has passed).
        """
        for _ in range(2):
            self.addCleanup(wait_for(self.answered, 30, "the server took no connection").close)
        for _ in range(50):
            # (dropped at once: the reset may come before connect returns)
            try:
                with socket.create_connection((HOST, self.daemon.port), timeout=10) as sock:
                    self.assertEqual(sock.recv(1), b"")
            except ConnectionResetError:
                pass
        log = self.daemon.log_since_start()
        self.assertEqual(log.count(b"Refusing a connection from 127.0.0.1"), 1, log[-2000:])
