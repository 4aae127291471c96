"""
End-to-end tests of upload sizes: refusing uploads over the limit, and
streaming a very large one through with flat server memory.
"""

import hashlib
import os
import socket
import time
from http import client as httpclient

from twisted.python import log

from tests.harness.distributions import make_wheel, write_random_wheel
from tests.harness.e2e import (
    HOST,
    DaemonTestCase,
    basic,
    file_sha256,
    file_url,
    files_by_name,
    http,
    upload,
    upload_form,
)

MiB = 1 << 20


def big_wheel(name, size):
    """A wheel holding C{size} random (incompressible) bytes."""
    return make_wheel(name, "1.0", extra_files=[(f"{name.replace('-', '_')}/blob.bin",
                                                 os.urandom(size))])


class UploadLimitTests(DaemonTestCase):
    """A daemon with C{max_upload_size = 1M}."""

    settings = {"pypid.max_upload_size": "1M"}

    def assert_nothing_stored(self, project, filename):
        """Neither the file, nor its record, nor a spooled part, nor the project exists."""
        self.assertNotIn(filename, self.daemon.stored_names())
        self.assertEqual(self.daemon.temp_files(), [])
        self.assertEqual(http("GET", f"{self.daemon.index_url}{project}/").status, 404)

    def test_declared_length_over_limit_is_413(self):
        """An upload whose Content-Length is far over the limit answers 413 with a message, and twine reports it."""
        wheel = big_wheel("too-big", 3 * MiB)
        resp = upload(self.daemon, *wheel)
        self.assertEqual(resp.status, 413)
        self.assertIn(b"limit of 1 MiB", resp.body)
        done = self.clients.twine_upload(self.daemon, self.dist_dir(wheel), check=False)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("413", done.output)
        self.assert_nothing_stored("too-big", wheel[0])

    def test_streamed_file_over_limit_is_413(self):
        """A file part that passes the limit while it streams in (Content-Length within the slack) answers 413."""
        wheel = big_wheel("slightly-big", MiB + 300 * 1024)
        resp = upload(self.daemon, *wheel)
        self.assertEqual(resp.status, 413)
        self.assertIn(b"limit of 1 MiB", resp.body)
        self.assert_nothing_stored("slightly-big", wheel[0])

    def test_chunked_upload_over_limit_is_413(self):
        """An upload without a Content-Length (chunked) is answered 413 as soon as its file passes the limit."""
        wheel = big_wheel("chunked-big", 2 * MiB)
        ctype, body = upload_form(*wheel)
        sent = body[: MiB + 256 * 1024]
        head = (f"POST / HTTP/1.1\r\nHost: {HOST}:{self.daemon.port}\r\n"
                f"Content-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n"
                f"Authorization: {basic()}\r\n\r\n").encode()
        sock = socket.create_connection((HOST, self.daemon.port), timeout=10)
        self.addCleanup(sock.close)
        sock.sendall(head)
        for i in range(0, len(sent), 64 * 1024):
            piece = sent[i:i + 64 * 1024]
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except (BrokenPipeError, ConnectionResetError):
                # (the server answered and closed once the file passed the limit,
                # before the client sent it all: a fast server may)
                break
        # The body is not finished: the answer must come anyway.
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:200])
        sock.close()
        self.assert_nothing_stored("chunked-big", wheel[0])

    def test_upload_under_limit_is_accepted(self):
        """An upload just under the limit is stored."""
        wheel = big_wheel("just-fits", 900 * 1024)
        resp = upload(self.daemon, *wheel)
        self.assertEqual(resp.status, 200, resp.body)
        self.assertIn(wheel[0], files_by_name(self.daemon, "just-fits"))
        # Larger than what is sent in one piece: the streaming paths.
        data, size = wheel[1], len(wheel[1])
        url = file_url(self.daemon, "just-fits", wheel[0])
        self.assertEqual(http("GET", url).body, data)
        middle = http("GET", url, {"Range": "bytes=300000-600099"})
        self.assertEqual((middle.status, middle.body), (206, data[300000:600100]))
        self.assertEqual(middle.header("Content-Range"), f"bytes 300000-600099/{size}")
        tail = http("GET", url, {"Range": "bytes=-400000"})
        self.assertEqual((tail.status, tail.body), (206, data[-400000:]))


class LargeUploadTests(DaemonTestCase):
    """
    A 200 MB upload and download with flat server memory. This is the slow
    test of the suite (a few seconds to half a minute, mostly disk).
    """

    settings = {"pypid.max_upload_size": "300M"}
    SIZE = 200 * MiB
    GROWTH_LIMIT = 64 * MiB

    def test_large_upload_keeps_server_memory_flat(self):
        """A 200 MB incompressible wheel uploads with twine and downloads intact while the server's peak RSS grows by less than 64 MB."""
        started = time.monotonic()
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        path = write_random_wheel(folder, "huge-pkg", "1.0", self.SIZE)
        digest = file_sha256(path)
        daemon = self.daemon
        before = daemon.memory()

        self.clients.twine_upload(daemon, [path], timeout=300)
        after_upload = daemon.memory()
        entry = files_by_name(daemon, "huge-pkg")[os.path.basename(path)]
        self.assertEqual(entry["hashes"]["sha256"], digest)
        self.assertEqual(entry["size"], os.path.getsize(path))

        url = file_url(daemon, "huge-pkg", os.path.basename(path))
        conn = httpclient.HTTPConnection(HOST, daemon.port, timeout=60)
        self.addCleanup(conn.close)
        conn.request("GET", url.split(str(daemon.port), 1)[1])
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(int(resp.getheader("Content-Length")), os.path.getsize(path))
        got, received = hashlib.sha256(), 0
        while chunk := resp.read(MiB):
            got.update(chunk)
            received += len(chunk)
        self.assertEqual(received, os.path.getsize(path))
        self.assertEqual(got.hexdigest(), digest)
        after_download = daemon.memory()

        growth = after_download["VmHWM"] - before["VmHWM"]
        self.assertLess(
            growth, self.GROWTH_LIMIT,
            f"peak RSS grew by {growth / MiB:.1f} MiB: before {before}, after the upload "
            f"{after_upload}, after the download {after_download}")
        self.assertEqual(daemon.temp_files(), [])
        os.remove(path)
        elapsed = time.monotonic() - started
        log.msg(f"\nthe 200 MB round trip took {elapsed:.1f} s")
        # (the test is about memory; this only catches a round trip that
        # crawls, with room for a heavily loaded machine)
        self.assertLess(elapsed, 600, f"the 200 MB round trip took {elapsed:.1f} s")
