"""
Tests for L{pypid.web.server.respond} and L{pypid.web.serving.stored_objects}:
conditional requests and byte ranges, the pure parts of writing answers,
and the answers that leave it to a remote store: redirects and relays,
the latter driven through a real L{HTTPChannel} over a L{StringTransport}.

The fakes of a remote store (L{FakeRemote} and its responses) are shared
with C{tests.unit.web.test_web}.
"""

import os

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseFailed
from twisted.web.http import PotentialDataLoss
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.test.requesthelper import DummyRequest

from pypid.core.indexes.render import Page
from pypid.core.util.http_errors import BadRequest, HTTPError, Unauthorized
from pypid.storage.base.interface import RemoteFile, StorageError
from pypid.web.server.respond import (
    PAGE_CACHE_CONTROL,
    RETRY_AFTER,
    etag_matches,
    finish_later,
    send_error,
    send_page,
    send_text,
)
from pypid.web.serving.stored_objects import (
    FILE_CACHE_CONTROL,
    parse_range,
    send_redirect,
    send_remote,
)
from tests.harness.fakes import FakeRemote
from tests.harness.web import parse_response

TAG = b'"abc123"'


class EtagMatchesTests(SynchronousTestCase):
    """Tests for L{etag_matches}."""

    def test_exact(self):
        """The same tag matches."""
        self.assertTrue(etag_matches([TAG], TAG))

    def test_other(self):
        """A different tag, or the tag without its quotes, does not match."""
        self.assertFalse(etag_matches([b'"abc124"'], TAG))
        self.assertFalse(etag_matches([b"abc123"], TAG))
        self.assertFalse(etag_matches([b""], TAG))
        self.assertFalse(etag_matches([], TAG))

    def test_list(self):
        """Any tag of a comma-separated list matches, spaces around it ignored."""
        self.assertTrue(etag_matches([b'"x", "y",' + TAG], TAG))
        self.assertTrue(etag_matches([b' "x" ,  ' + TAG + b"  "], TAG))
        self.assertFalse(etag_matches([b'"x", "y"'], TAG))

    def test_several_headers(self):
        """A tag in any of several If-None-Match headers matches."""
        self.assertTrue(etag_matches([b'"x"', TAG], TAG))

    def test_weak(self):
        """A weak tag matches its strong form (weak comparison, as RFC 9110 asks)."""
        self.assertTrue(etag_matches([b"W/" + TAG], TAG))
        self.assertTrue(etag_matches([b'"x", w/' + TAG], TAG))

    def test_star(self):
        """C{*} matches any tag."""
        self.assertTrue(etag_matches([b"*"], TAG))


class ParseRangeTests(SynchronousTestCase):
    """Tests for L{parse_range}, against a 100-byte file unless said otherwise."""

    def test_first_last(self):
        """C{a-b} is the bytes from a to b inclusive."""
        self.assertEqual(parse_range(b"bytes=0-9", 100), (0, 9))
        self.assertEqual(parse_range(b"bytes=99-99", 100), (99, 99))

    def test_open_end(self):
        """C{a-} runs to the end of the file."""
        self.assertEqual(parse_range(b"bytes=5-", 100), (5, 99))

    def test_suffix(self):
        """C{-n} is the last n bytes, or the whole file when n is larger."""
        self.assertEqual(parse_range(b"bytes=-5", 100), (95, 99))
        self.assertEqual(parse_range(b"bytes=-500", 100), (0, 99))

    def test_empty_suffix(self):
        """C{-0} asks for nothing and cannot be satisfied."""
        self.assertEqual(parse_range(b"bytes=-0", 100), "unsatisfiable")

    def test_end_beyond_size(self):
        """An end past the file is cut to its last byte."""
        self.assertEqual(parse_range(b"bytes=50-1000", 100), (50, 99))

    def test_start_beyond_size(self):
        """A start at or past the end of the file cannot be satisfied."""
        self.assertEqual(parse_range(b"bytes=100-150", 100), "unsatisfiable")
        self.assertEqual(parse_range(b"bytes=200-300", 100), "unsatisfiable")

    def test_open_start_beyond_size(self):
        """
        An open range starting at or past the end (a resumed download that has
        every byte already) cannot be satisfied: 416, not the whole file again.
        """
        self.assertEqual(parse_range(b"bytes=100-", 100), "unsatisfiable")
        self.assertEqual(parse_range(b"bytes=150-", 100), "unsatisfiable")

    def test_empty_file(self):
        """No range of an empty file can be satisfied."""
        self.assertEqual(parse_range(b"bytes=-5", 0), "unsatisfiable")
        self.assertEqual(parse_range(b"bytes=0-5", 0), "unsatisfiable")
        self.assertEqual(parse_range(b"bytes=0-", 0), "unsatisfiable")

    def test_end_before_start(self):
        """A range that ends before it starts is invalid, so the whole file is sent."""
        self.assertIsNone(parse_range(b"bytes=9-5", 100))

    def test_several_ranges(self):
        """Several ranges are not served: the whole file is sent instead."""
        self.assertIsNone(parse_range(b"bytes=0-1,5-6", 100))
        self.assertIsNone(parse_range(b"bytes=0-1, -5", 100))

    def test_garbage(self):
        """Anything else is ignored."""
        for header in (b"", b"bytes", b"bytes=", b"bytes=-", b"bytes=a-b", b"items=0-5",
                       b"bytes=0x10-", b"bytes=1.5-2", b"0-5", b"bytes=--5"):
            self.assertIsNone(parse_range(header, 100), header)

    def test_spelling(self):
        """The unit is case-insensitive and spaces around the parts are tolerated."""
        self.assertEqual(parse_range(b"BYTES = 0 - 9 ", 100), (0, 9))


class SendTests(SynchronousTestCase):
    """Tests for L{send_page}, L{send_text} and L{send_error}."""

    def page(self):
        """A page large enough to be compressed."""
        return Page.of(b"<p>" + b"x" * 1000 + b"</p>", b"text/html; charset=utf-8")

    def header(self, request, name):
        """The single value of a response header."""
        values = request.responseHeaders.getRawHeaders(name)
        return values[0] if values else None

    def test_page(self):
        """A page is sent with its type, ETag and revalidation headers."""
        request = DummyRequest([b""])
        page = self.page()
        self.assertEqual(send_page(request, page), page.body)
        self.assertEqual(self.header(request, b"etag"), page.etag)
        self.assertEqual(self.header(request, b"content-type"), b"text/html; charset=utf-8")
        self.assertEqual(self.header(request, b"cache-control"), PAGE_CACHE_CONTROL)
        self.assertEqual(self.header(request, b"vary"), b"Accept, Accept-Encoding")
        self.assertIsNone(self.header(request, b"content-encoding"))

    def test_page_gzip(self):
        """A client that takes gzip gets the compressed bytes under their own ETag."""
        request = DummyRequest([b""])
        request.requestHeaders.setRawHeaders(b"accept-encoding", [b"gzip, deflate"])
        page = self.page()
        self.assertEqual(send_page(request, page), page.gzipped)
        self.assertEqual(self.header(request, b"content-encoding"), b"gzip")
        self.assertEqual(self.header(request, b"etag"), page.gzip_etag)

    def test_page_not_modified(self):
        """A matching If-None-Match gets a 304 with no body."""
        request = DummyRequest([b""])
        page = self.page()
        request.requestHeaders.setRawHeaders(b"if-none-match", [page.etag])
        self.assertEqual(send_page(request, page), b"")
        self.assertEqual(request.responseCode, 304)
        self.assertEqual(self.header(request, b"etag"), page.etag)

    def test_text(self):
        """An error text goes in the body and, cleaned, in the reason phrase."""
        request = DummyRequest([b""])
        body = send_text(request, 400, "name: bad \N{SNOWMAN}\r\nInjected: yes")
        self.assertEqual(body, "name: bad \N{SNOWMAN}\r\nInjected: yes\n".encode("utf-8"))
        self.assertEqual(request.responseCode, 400)
        self.assertEqual(request.responseMessage, b"name: bad ???Injected: yes")
        self.assertEqual(self.header(request, b"cache-control"), b"no-store")

    def test_error_unauthorized(self):
        """An L{Unauthorized} error carries the Basic challenge."""
        request = DummyRequest([b""])
        send_error(request, Unauthorized("who are you"))
        self.assertEqual(request.responseCode, 401)
        self.assertEqual(self.header(request, b"www-authenticate"), b'Basic realm="pypid"')

    def test_error_headers(self):
        """An error's own headers are sent."""
        request = DummyRequest([b""])
        send_error(request, BadRequest("no", [(b"retry-after", b"30")]))
        self.assertEqual(self.header(request, b"retry-after"), b"30")


class RedirectTests(SynchronousTestCase):
    """Tests for L{send_redirect}."""

    URL = "https://bucket.example/holy_grail-1.0-py3-none-any.whl?X-Amz-Signature=abc%2F"

    def header(self, request, name):
        """The single value of a response header."""
        values = request.responseHeaders.getRawHeaders(name)
        return values[0] if values else None

    def test_redirect(self):
        """A redirect is a 302 to the URL, never stored (a presigned URL expires)."""
        request = DummyRequest([b""])
        body = send_redirect(request, self.URL)
        self.assertEqual(request.responseCode, 302)
        self.assertEqual(self.header(request, b"location"), self.URL.encode("ascii"))
        self.assertEqual(self.header(request, b"cache-control"), b"no-store")
        self.assertEqual(self.header(request, b"content-type"), b"text/plain; charset=utf-8")
        self.assertTrue(body.endswith(b"\n") and len(body) < 100, body)

    def test_refuses_header_breakers(self):
        """
        A URL holding CR, LF, other control characters, spaces or anything
        but ASCII is refused with an error, and no Location is set.
        """
        for url in (self.URL + "\r\nSet-Cookie: a=b", self.URL + "\nX: y", self.URL + "\r",
                    "https://bucket.example/a b", "https://bucket.example/\x00",
                    "https://b\N{LATIN SMALL LETTER U WITH DIAERESIS}cher.example/", "",
                    self.URL.encode("ascii")):
            request = DummyRequest([b""])
            with capturedLogs() as events:
                error = self.assertRaises(HTTPError, send_redirect, request, url)
            self.assertEqual(error.code, 500, url)
            self.assertIsNone(self.header(request, b"location"), url)
            self.assertNotEqual(request.responseCode, 302)
            self.assertEqual([e["log_level"] for e in events], [LogLevel.error])
            self.assertNotIn("Signature", repr(events))


class _Send(Resource):
    """A resource that answers with C{send(request)}, as the files resource does."""

    isLeaf = True

    def __init__(self, send):
        Resource.__init__(self)
        self._send = send
        self.requests = []

    def render(self, request):
        self.requests.append(request)
        body = self._send(request)
        if isinstance(body, Deferred):
            return finish_later(request, body)
        return body


class _ChannelMixin:
    """Serves one request at a time through a real L{HTTPChannel} on a L{StringTransport}."""

    def serve(self, send, method=b"GET", headers=()):
        """
        Send a request for a file to a resource answering with C{send}; return
        the resource (its C{requests}).
        """
        self.resource = resource = _Send(send)
        site = Site(resource, reactor=Clock())
        self.channel = site.buildProtocol(None)
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)
        lines = [method + b" /files/holy-grail/holy_grail-1.0.tar.gz HTTP/1.1", b"Host: x"]
        lines += [name + b": " + value for name, value in headers]
        self.channel.dataReceived(b"\r\n".join(lines) + b"\r\n\r\n")
        return resource

    def answer(self):
        """C{(code, headers, body)} of what was written so far."""
        return parse_response(self.transport.value())

    def finished(self):
        """Whether the last request was finished."""
        return bool(self.resource.requests[-1].finished)

    def producer(self):
        """The producer the last request has registered, if any."""
        return self.resource.requests[-1].producer

    def client_leaves(self):
        """The client goes away, as a TCP transport reports it: producer first, then protocol."""
        self.transport.producer.stopProducing()
        self.channel.connectionLost(Failure(ConnectionDone()))


class SendRemoteTests(_ChannelMixin, SynchronousTestCase):
    """Tests for L{send_remote}: a stored object relayed from a remote store."""

    DATA = os.urandom(100)

    def remote(self, **kwargs):
        """A L{FakeRemote} holding L{DATA}."""
        self.store = FakeRemote(self.DATA, **kwargs)
        return self.store

    def relay(self, method=b"GET", headers=(), **kwargs):
        """Serve a request for the remote object; return the L{FakeRemote}."""
        remote = self.remote(**kwargs)
        self.serve(lambda request: send_remote(request, remote.location(), TAG), method, headers)
        return remote

    def test_whole(self):
        """A GET fetches the whole object once and relays it with the file headers, then finishes."""
        remote = self.relay()
        self.assertEqual(remote.fetched, [(0, 100)])
        code, headers, body = self.answer()
        self.assertEqual((code, body), (200, self.DATA))
        self.assertEqual(headers[b"content-length"], b"100")
        self.assertEqual(headers[b"etag"], TAG)
        self.assertEqual(headers[b"accept-ranges"], b"bytes")
        self.assertEqual(headers[b"cache-control"], FILE_CACHE_CONTROL)
        self.assertEqual(headers[b"content-type"], b"application/octet-stream")
        self.assertNotIn(b"transfer-encoding", headers)
        self.assertTrue(self.finished())
        self.assertFalse(self.transport.disconnecting)
        self.assertIsNone(self.producer(), "the relay stayed registered")

    def test_range(self):
        """A Range GET fetches just those bytes and answers 206 with their Content-Range."""
        remote = self.relay(headers=[(b"Range", b"bytes=10-29")])
        self.assertEqual(remote.fetched, [(10, 20)])
        code, headers, body = self.answer()
        self.assertEqual((code, body), (206, self.DATA[10:30]))
        self.assertEqual(headers[b"content-range"], b"bytes 10-29/100")
        self.assertEqual(headers[b"content-length"], b"20")
        self.assertTrue(self.finished())

    def test_suffix_range(self):
        """A suffix range fetches the last bytes of the object."""
        remote = self.relay(headers=[(b"Range", b"bytes=-5")])
        self.assertEqual(remote.fetched, [(95, 5)])
        self.assertEqual(self.answer()[2], self.DATA[95:])

    def test_not_modified(self):
        """A matching If-None-Match gets 304 without asking the store."""
        remote = self.relay(headers=[(b"If-None-Match", TAG)])
        self.assertEqual(remote.fetched, [])
        code, _, body = self.answer()
        self.assertEqual((code, body), (304, b""))
        self.assertTrue(self.finished())

    def test_head(self):
        """HEAD gets the length and range support without asking the store."""
        remote = self.relay(method=b"HEAD")
        self.assertEqual(remote.fetched, [])
        code, headers, body = self.answer()
        self.assertEqual((code, body), (200, b""))
        self.assertEqual(headers[b"content-length"], b"100")
        self.assertEqual(headers[b"accept-ranges"], b"bytes")

    def test_unsatisfiable(self):
        """A range past the end gets 416 without asking the store."""
        remote = self.relay(headers=[(b"Range", b"bytes=100-")])
        self.assertEqual(remote.fetched, [])
        code, headers, _ = self.answer()
        self.assertEqual(code, 416)
        self.assertEqual(headers[b"content-range"], b"bytes */100")

    def test_pending_fetch(self):
        """Nothing is written until the store answers; then the object is relayed."""
        remote = self.relay(pending=True)
        self.assertEqual(self.transport.value(), b"")
        remote.answer()
        self.assertEqual(self.answer()[2], self.DATA)
        self.assertTrue(self.finished())

    def test_back_pressure(self):
        """A client that reads slowly pauses the store's connection, and resumes it."""
        remote = self.relay(hold=True)
        upstream = remote.responses[0]
        upstream.send(self.DATA[:10])
        # The client's socket buffer is full: the transport pauses its producer.
        self.transport.producer.pauseProducing()
        self.assertEqual(upstream.transport.calls, ["pause"])
        self.transport.producer.resumeProducing()
        self.assertEqual(upstream.transport.calls, ["pause", "resume"])
        upstream.send(self.DATA[10:])
        upstream.end()
        self.assertEqual(self.answer()[2], self.DATA)
        self.assertTrue(self.finished())

    def test_client_leaves(self):
        """A client that goes away stops the store's connection; what comes after is dropped."""
        remote = self.relay(hold=True)
        upstream = remote.responses[0]
        upstream.send(self.DATA[:10])
        self.client_leaves()
        self.assertEqual(upstream.transport.calls, ["stop"])
        upstream.send(self.DATA[10:20])
        upstream.end(ResponseFailed([Failure(ConnectionLost())]))
        self.assertEqual(self.answer()[2], self.DATA[:10])
        self.assertEqual(upstream.transport.calls, ["stop"])

    def test_connection_lost_only(self):
        """A lost connection stops the store's connection even if no producer was told."""
        remote = self.relay(hold=True)
        upstream = remote.responses[0]
        self.channel.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(upstream.transport.calls, ["stop"])
        upstream.end()

    def test_client_leaves_before_fetch(self):
        """A client that goes away while the store is asked cancels the fetch; nothing is written."""
        remote = self.relay(pending=True)
        self.client_leaves()
        self.assertEqual(remote.cancelled, 1)
        self.assertEqual(self.transport.value(), b"")

    def test_cut_short(self):
        """
        A body the store cuts short closes the client's connection unfinished:
        fewer bytes than Content-Length, so the client sees a truncated file.
        """
        remote = self.relay(hold=True)
        upstream = remote.responses[0]
        upstream.send(self.DATA[:30])
        with capturedLogs() as events:
            upstream.end(ResponseFailed([Failure(ConnectionLost())]))
        code, headers, body = self.answer()
        self.assertEqual((code, headers[b"content-length"], body), (200, b"100", self.DATA[:30]))
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(self.finished())
        self.assertIsNone(self.producer())
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn])
        # The connection then goes: nothing more happens, and nothing fails.
        self.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(upstream.transport.calls, [])

    def test_potential_data_loss(self):
        """A body whose end the store cannot vouch for (L{PotentialDataLoss}) is cut short too."""
        remote = self.relay(hold=True)
        upstream = remote.responses[0]
        upstream.send(self.DATA)
        upstream.end(PotentialDataLoss())
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(self.finished())

    def test_done_but_short(self):
        """A body that ends cleanly with bytes missing is cut short all the same."""
        remote = self.relay(hold=True)
        upstream = remote.responses[0]
        upstream.send(self.DATA[:99])
        upstream.end()
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(self.finished())

    def test_too_long(self):
        """
        A store that sends more than was asked for is stopped, the extra piece
        is not written, and the client's connection is closed unfinished.
        """
        remote = self.relay(hold=True)
        upstream = remote.responses[0]
        upstream.send(self.DATA[:90])
        with capturedLogs() as events:
            upstream.send(self.DATA[90:] + b"extra")
        self.assertEqual(upstream.transport.calls, ["stop"])
        self.assertEqual(self.answer()[2], self.DATA[:90])
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(self.finished())
        self.assertEqual([e["log_level"] for e in events], [LogLevel.error])
        upstream.end(ResponseFailed([Failure(ConnectionLost())]))

    def test_storage_error(self):
        """
        A store that is unavailable gets 503 with Retry-After, and none of the
        file's headers: no ETag, no range, no immutable caching.
        """
        with capturedLogs() as events:
            self.relay(headers=[(b"Range", b"bytes=0-9")], error=StorageError("bucket down"))
        code, headers, body = self.answer()
        self.assertEqual(code, 503)
        self.assertEqual(headers[b"retry-after"], RETRY_AFTER)
        self.assertEqual(headers[b"cache-control"], b"no-store")
        self.assertEqual(headers[b"content-length"], b"%d" % len(body))
        self.assertEqual(body, b"the storage is unavailable: bucket down\n")
        for name in (b"etag", b"content-range", b"accept-ranges"):
            self.assertNotIn(name, headers)
        self.assertTrue(self.finished())
        self.assertEqual([e["log_level"] for e in events], [LogLevel.error])

    def test_missing(self):
        """An object missing from the store gets 404 in plain text, and an error is logged."""
        with capturedLogs() as events:
            self.relay(error=FileNotFoundError("no such key"))
        code, headers, body = self.answer()
        self.assertEqual((code, body), (404, b"the stored file is missing\n"))
        self.assertNotIn(b"etag", headers)
        self.assertEqual(headers[b"content-length"], b"%d" % len(body))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.error])

    def test_fetch_raises(self):
        """A fetch that raises at once is answered like one that fails later."""
        def fetch(start, length):
            raise StorageError("no credentials")
        with capturedLogs():
            self.serve(lambda request: send_remote(request, RemoteFile(100, fetch), TAG))
        code, headers, _ = self.answer()
        self.assertEqual((code, headers[b"retry-after"]), (503, RETRY_AFTER))

    def test_empty(self):
        """An empty object is answered at once, without asking the store."""
        fetched = []
        self.serve(lambda request: send_remote(
            request, RemoteFile(0, lambda *a: fetched.append(a)), TAG))
        code, headers, body = self.answer()
        self.assertEqual((code, headers[b"content-length"], body), (200, b"0", b""))
        self.assertEqual(fetched, [])


class FinishLaterTests(_ChannelMixin, SynchronousTestCase):
    """Tests for L{finish_later}."""

    def test_body(self):
        """A body that comes later is written with its length, and the request finished."""
        later = Deferred()
        self.serve(lambda request: later)
        self.assertEqual(self.transport.value(), b"")
        later.callback(b"hello")
        code, headers, body = self.answer()
        self.assertEqual((code, headers[b"content-length"], body), (200, b"5", b"hello"))
        self.assertTrue(self.finished())

    def test_error(self):
        """An L{HTTPError} that comes later is answered as usual."""
        later = Deferred()
        self.serve(lambda request: later)
        later.errback(BadRequest("no", [(b"retry-after", b"5")]))
        code, headers, body = self.answer()
        self.assertEqual((code, headers[b"retry-after"], body), (400, b"5", b"no\n"))

    def test_not_done_yet(self):
        """L{NOT_DONE_YET} leaves the request to whoever answers it."""
        later = Deferred()
        self.serve(lambda request: later)
        later.callback(NOT_DONE_YET)
        self.assertEqual(self.transport.value(), b"")
        self.assertFalse(self.finished())

    def test_client_gone(self):
        """Nothing is written, and nothing fails, when the client left before the answer came."""
        later = Deferred()
        self.serve(lambda request: later)
        self.client_leaves()
        later.callback(b"hello")
        self.assertEqual(self.transport.value(), b"")
        later = Deferred()
        self.serve(lambda request: later)
        self.client_leaves()
        later.errback(BadRequest("no"))
        self.assertEqual(self.transport.value(), b"")


class RemedyTests(SynchronousTestCase):
    """
    An error's reason phrase says what is wrong first and ends with its
    remedy, the message cut short before it when both do not fit; the body
    holds both whole.
    """

    def test_reason_and_detail(self):
        from pypid.core.util.http_errors import REASON_LIMIT, BadRequest, Forbidden
        error = BadRequest("version: " + "x" * 300, remedy="name it in [pypid] key")
        self.assertEqual(error.detail, "version: " + "x" * 300 + "; name it in [pypid] key")
        self.assertTrue(error.reason.startswith(b"version: xxx"))
        self.assertTrue(error.reason.endswith(b"x...; name it in [pypid] key"), error.reason)
        self.assertEqual(len(error.reason), REASON_LIMIT)
        other = Forbidden("alice may not do that", remedy="ask an admin")
        self.assertEqual(other.reason, b"alice may not do that; ask an admin")
        # (a remedy too long to leave room: the message keeps its first 80
        # characters, the remedy is what is cut)
        long = BadRequest("y" * 100, remedy="z" * 300)
        self.assertTrue(long.reason.startswith(b"y" * 77 + b"...; zzz"), long.reason)
        self.assertEqual(len(long.reason), REASON_LIMIT)
        plain = BadRequest("content: short")
        self.assertEqual((plain.detail, plain.reason), ("content: short", b"content: short"))
