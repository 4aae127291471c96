"""
L{pypid.web.serving.stored_objects.KernelSender}: a large stored file sent by the kernel on a
real loopback connection, whole, by range, to a client that reads slowly, and cut short
when the file shrinks; what follows on the connection comes after it.
"""

import os
import socket
import struct
import time

from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from pypid.web.serving import stored_objects
from pypid.web.serving.stored_objects import SMALL_FILE, send_file
from pypid.web.site import PypidSite
from pypid.web.web_inputs import SiteSettings

ETAG = b'"e"'


class _File(Resource):
    isLeaf = True

    def __init__(self, path: str) -> None:
        Resource.__init__(self)
        self.path = path

    def render_GET(self, request):
        return send_file(request, self.path, ETAG)

    render_HEAD = render_GET


def _exchange(port: int, heads: list[bytes], stalls: int = 0) -> list[tuple[bytes, bytes]]:
    """
    Send each request head on one connection, and read each answer's head and body (by its
    Content-Length; none for C{HEAD}), blocking. With C{stalls}, the client stops reading
    that many times for a moment before and within the body, so the server's socket fills.
    """
    answers = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(10)
        got = b""

        def more() -> bytes:
            chunk = s.recv(1 << 16)
            if not chunk:
                raise EOFError
            return chunk
        for head in heads:
            s.sendall(head)
            body = bytearray()
            try:
                while b"\r\n\r\n" not in got:
                    got += more()
                answer, _, got = got.partition(b"\r\n\r\n")
                length = 0
                if not head.startswith(b"HEAD"):
                    for line in answer.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.lower() == b"content-length":
                            length = int(value)
                body += got
                stalled = 0
                while len(body) < length:
                    if stalled < stalls and len(body) >= stalled * length // stalls:
                        time.sleep(0.3)
                        stalled += 1
                    body += more()
                got = bytes(body[length:])
                answers.append((answer, bytes(body[:length])))
            except EOFError:
                answers.append((answer, bytes(body)))
                break
    return answers


class KernelSenderTests(TestCase):
    """A file over L{SMALL_FILE} on a real TCP connection."""

    def setUp(self) -> None:
        self.path = self.mktemp()
        self.data = os.urandom(3 * SMALL_FILE + 12345)
        with open(self.path, "wb") as f:
            f.write(self.data)
        self.resource = _File(self.path)
        port = reactor.listenTCP(0, Site(self.resource), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port
        started = []
        real = stored_objects.KernelSender.start
        self.patch(stored_objects.KernelSender, "start",
                   lambda sender: (started.append(sender), real(sender)))
        self.started = started

    def exchange(self, *heads: bytes, **kwargs) -> Deferred[list[tuple[bytes, bytes]]]:
        return threads.deferToThread(_exchange, self.port, list(heads), **kwargs)

    async def test_whole_then_next(self) -> None:
        """The whole file, then the next answer on the same connection after it."""
        get = b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n"
        answers = await self.exchange(get, get)
        self.assertEqual(len(answers), 2)
        for head, body in answers:
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            self.assertIn(b"Content-Length: %d" % len(self.data), head)
            self.assertEqual(body, self.data)
        self.assertEqual(len(self.started), 2)

    async def test_pipelined_behind_a_head(self) -> None:
        """
        A C{GET} sent in one piece behind a C{HEAD}, whose answer may still be in Twisted's
        buffer when the file starts: the kernel sends the file after that answer.
        """
        answers = await threads.deferToThread(self._pipelined)
        self.assertEqual([body for _, body in answers], [b"", self.data])
        self.assertEqual(len(self.started), 1)

    def _pipelined(self) -> list[tuple[bytes, bytes]]:
        with socket.create_connection(("127.0.0.1", self.port)) as s:
            s.settimeout(10)
            s.sendall(b"HEAD /f HTTP/1.1\r\nHost: x\r\n\r\nGET /f HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while got.count(b"\r\n\r\n") < 2 or len(got) < 2 * len(b"\r\n\r\n") + len(self.data):
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                got += chunk
        head, _, rest = got.partition(b"\r\n\r\n")
        second, _, body = rest.partition(b"\r\n\r\n")
        return [(head, b""), (second, body[:len(self.data)])]

    async def test_range(self) -> None:
        """A range from the middle to past the end: 206 and those bytes."""
        start = SMALL_FILE + 7
        answers = await self.exchange(
            b"GET /f HTTP/1.1\r\nHost: x\r\nRange: bytes=%d-\r\n\r\n" % start)
        head, body = answers[0]
        self.assertTrue(head.startswith(b"HTTP/1.1 206"), head)
        self.assertEqual(body, self.data[start:])

    async def test_slow_reader(self) -> None:
        """
        A client that stops reading three times gets every byte, in order: the file (32 MiB)
        is more than the socket's buffers hold, so the sender waits for the socket each time.
        """
        self.data = os.urandom(32 << 20)
        with open(self.path, "wb") as f:
            f.write(self.data)
        waits = []
        real = stored_objects.wait_until_writable
        self.patch(stored_objects, "wait_until_writable",
                   lambda connection: (waits.append(connection), real(connection)))
        answers = await self.exchange(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n", stalls=3)
        self.assertEqual(answers[0][1], self.data)
        self.assertGreaterEqual(len(waits), 3)

    async def test_head(self) -> None:
        """C{HEAD}: the head alone, and no sender."""
        get = b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n"
        [(head, body), _] = await self.exchange(b"HEAD /f HTTP/1.1\r\nHost: x\r\n\r\n", get)
        self.assertIn(b"Content-Length: %d" % len(self.data), head)
        self.assertEqual(body, b"")
        self.assertEqual(len(self.started), 1)

    async def test_shrunk(self) -> None:
        """A file cut while it is sent: the connection closes short, and it is logged."""
        original = stored_objects.KernelSender._send

        def shrink_first(sender):
            with open(self.path, "r+b") as f:
                f.truncate(2 * SMALL_FILE)
            self.patch(stored_objects.KernelSender, "_send", original)
            original(sender)
        self.patch(stored_objects.KernelSender, "_send", shrink_first)
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        [(head, body)] = await self.exchange(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"Content-Length: %d" % len(self.data), head)
        self.assertEqual(body, self.data[:2 * SMALL_FILE])
        said = [e for e in events if "cut short" in (e.get("log_format") or "")]
        self.assertEqual(said[0]["missing"], len(self.data) - 2 * SMALL_FILE)

    async def test_client_gone(self) -> None:
        """A client that resets the connection mid-file ends the sending quietly."""
        self.data = os.urandom(32 << 20)
        with open(self.path, "wb") as f:
            f.write(self.data)
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)

        def leave() -> None:
            with socket.create_connection(("127.0.0.1", self.port)) as s:
                s.sendall(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(1 << 16)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await threads.deferToThread(leave)
        # (the sender ran into the reset, or the reactor read it first)
        sender = self.started[0]
        for _ in range(100):
            if sender._done:
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertTrue(sender._done)
        self.assertEqual([e for e in events if "cut short" in (e.get("log_format") or "")], [])
        [(head, body)] = await self.exchange(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(body, self.data)


class SlowReaderTests(TestCase):
    """
    pypid's own site and channel, with a send timeout of 1.5 s: a client that reads a large file
    slowly but all the while keeps its connection, one that stops reading is dropped.
    """

    def setUp(self) -> None:
        self.path = self.mktemp()
        self.data = os.urandom(6 << 20)
        with open(self.path, "wb") as f:
            f.write(self.data)
        spool = os.path.abspath(self.mktemp())
        os.makedirs(spool)
        site = PypidSite(_File(self.path), SiteSettings(1 << 20, send_timeout=1.5), spool,
                         reactor=reactor)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port

    def read(self, pause: float, stop_after: int | None = None) -> int:
        """
        Ask for the 6 MiB file and read 32 KiB every C{pause} s (blocking), stopping for 6 s once
        after C{stop_after} bytes: the bytes of the body read, until its end or a reset.
        """
        got, stopped = -1, False
        with socket.create_connection(("127.0.0.1", self.port)) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
            s.settimeout(30)
            s.sendall(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
            head = b""
            while got < len(self.data):
                if stop_after is not None and not stopped and got >= stop_after:
                    time.sleep(6)
                    stopped = True
                try:
                    chunk = s.recv(32 << 10)
                except ConnectionResetError:
                    return got
                if not chunk:
                    return got
                if got < 0:
                    head += chunk
                    if b"\r\n\r\n" in head:
                        got = len(head.partition(b"\r\n\r\n")[2])
                else:
                    got += len(chunk)
                time.sleep(pause)
        return got

    async def test_slow_reader_kept(self) -> None:
        """
        640 kB/s, the kernel's buffer drains a third (what makes the socket writable again)
        only every few seconds: the bytes the kernel sent in between count as the client's
        progress, so it is not taken for a client that stopped (Linux's C{SIOCOUTQ}).
        """
        got = await threads.deferToThread(self.read, 0.05)
        self.assertEqual(got, len(self.data))

    async def test_stopped_reader_dropped(self) -> None:
        """A client that stops reading is reset after the send timeout."""
        got = await threads.deferToThread(self.read, 0.0, 64 << 10)
        self.assertLess(got, len(self.data))
