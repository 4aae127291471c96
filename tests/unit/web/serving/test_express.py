"""
Tests for the express lane (L{pypid.web.serving.express}, issue 43): the kept pages
and small files an anonymous client gets on a kept-alive connection are
written at once, with exactly the status, headers and body the usual path
gives, counted as any answer (and as a download); every request the lane
must leave alone goes the usual way.

The requests are written to the real site's channel as bytes, as a client
on a persistent connection sends them (treq's in-memory agent closes every
connection, so the other web tests never take the lane).
"""

import hashlib
import io
import json
import os
import zipfile
from ipaddress import ip_network

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.core.access.forwarded import TrustedProxies
from pypid.core.records.usage import day_of
from pypid.state.usage_log import UsageLog
from pypid.web.serving import express
from tests.harness import upstream as upstream
from tests.harness.distributions import make_wheel
from tests.harness.fakes import twine_fields
from tests.harness.indexes import Server
from tests.harness.web import JSON_TYPE, _ServerMixin, basic, kept_alive, parse, request

HTML = b"text/html"


class _Lane:
    """
    Records whether the site's express lane answered each request it was
    asked: from its bytes (L{express.ExpressLane.take}; what it leaves goes
    on to Twisted's parser, and then to the lane again), or once parsed.

    @ivar answered: for each request, whether the lane answered it.
    @ivar raw: for each request the lane answered, whether from its bytes.
    """

    #: whether the lane is kept from reading requests' bytes (the reference
    #: of L{FromBytesTests}: Twisted parses every request)
    raw_off = False

    def __init__(self, site):
        self._lane = site.express
        self.answered = []
        self.raw = []
        site.express = self

    def take(self, channel, data):
        if self.raw_off:
            return False
        answered = self._lane.take(channel, data)
        if answered:
            self.answered.append(True)
            self.raw.append(True)
        return answered

    def __call__(self, request):
        answered = self._lane(request)
        self.answered.append(answered)
        if answered:
            self.raw.append(False)
        return answered


class _Uploaded(_ServerMixin):
    """Two projects of two versions each, uploaded, and the lane watched (L{_Lane})."""

    def access_model(self):
        return AccessModel(read=self.read, admins=frozenset({"alice"}))

    def usage_log(self):
        self.usage = UsageLog(self.storage, self.clock, interval=10, writer="web")
        self.usage.startService()
        return self.usage

    def setUp(self):
        super().setUp()
        self.wheels = {}
        for project in ("holy-grail", "spam"):
            for version in ("1.0", "1.1"):
                name, data = make_wheel(project, version)
                response, body = self.upload(name, data,
                                             fields=twine_fields(project, version, data))
                self.assertEqual(response.code, 200, body)
                self.wheels[project, version] = (name, data)
        self.lane = _Lane(self.web.site)

    def downloads(self, filename):
        """The downloads of C{filename} counted today, once written."""
        self.clock.advance(10)
        return self.usage.book.downloads([filename], 1, day_of(self.clock.seconds()))

    def send(self, *requests):
        """Write C{requests} on one new connection; return the answers and the transport."""
        return kept_alive(self.web.site, *requests)

    def usual(self, method, path, headers=()):
        """The usual path's answer to the same request (its connection closes after it)."""
        before = len(self.lane.answered)
        (answer,), _ = self.send(request(method, path, [*headers, (b"Connection", b"close")]))
        self.assertEqual(self.lane.answered[before:], [False])
        status, found, body = answer
        self.assertEqual(found.pop(b"connection"), b"close")
        return status, found, body


class ExpressTests(_Uploaded, SynchronousTestCase):
    """Anonymous reads of the kept pages, on a persistent connection."""

    def test_same_answer(self):
        """
        The root page and a project's page, as HTML and JSON, compressed or
        not, to GET and HEAD: the lane's answer is the usual one, header for
        header and byte for byte.
        """
        cases = []
        for path in (b"/simple/", b"/simple/holy-grail/"):
            for accept in ((), ((b"Accept", HTML),), ((b"Accept", JSON_TYPE.encode()),)):
                for encoding in ((), ((b"Accept-Encoding", b"gzip"),)):
                    for method in (b"GET", b"HEAD"):
                        cases.append((method, path, accept + encoding))
        for method, path, headers in cases:
            (answer,), _ = self.send(request(method, path, headers))
            self.assertEqual(self.lane.answered[-1], True, (method, path, headers))
            self.assertEqual(answer, self.usual(method, path, headers), (method, path, headers))
            if method == b"GET":
                self.assertTrue(answer[2])
            else:
                self.assertEqual(answer[2], b"")

    def test_same_file(self):
        """
        A file and its metadata, to GET and HEAD: the lane's answer is the
        usual one; only the GETs of the file count as downloads, once each.
        """
        name, data = self.wheels["holy-grail", "1.1"]
        for path in (b"/files/holy-grail/" + name.encode(),
                     b"/files/holy-grail/" + name.encode() + b".metadata"):
            for method in (b"GET", b"HEAD"):
                (answer,), _ = self.send(request(method, path))
                self.assertEqual(self.lane.answered[-1], True, (method, path))
                self.assertEqual(answer, self.usual(method, path), (method, path))
                self.assertEqual(answer[0], 200)
        (answer,), _ = self.send(request(b"GET", b"/files/holy-grail/" + name.encode()))
        self.assertEqual(answer[2], data)
        # (the lane's two GETs and the usual path's one)
        self.assertEqual(self.downloads(name), 3)
        self.assertEqual(self.downloads(name + ".metadata"), 0)

    def test_files_left_to_the_usual_path(self):
        """Ranges, conditions, a wrong project, a file no source holds: the usual answers."""
        name, data = self.wheels["spam", "1.0"]
        path = b"/files/spam/" + name.encode()
        (first,), _ = self.send(request(b"GET", path))
        etag = first[1][b"etag"]
        del self.lane.answered[:]
        answers, _ = self.send(
            request(b"GET", path, [(b"Range", b"bytes=0-9")]),
            request(b"GET", path, [(b"If-None-Match", etag)]),
            request(b"GET", b"/files/holy-grail/" + name.encode()),
            request(b"GET", b"/files/spam/spam-9.9-py3-none-any.whl"),
            request(b"GET", path + b"?x=1"))
        self.assertEqual(self.lane.answered, [False] * 5)
        self.assertEqual([status for status, _, _ in answers], [206, 304, 404, 404, 200])
        self.assertEqual(answers[0][2], data[:10])

    def test_quarantined_file(self):
        """A quarantined project's file: the usual path's 404, and no download counted."""
        name, _ = self.wheels["spam", "1.0"]
        self.set_status("spam", "quarantined")
        del self.lane.answered[:]
        (answer,), _ = self.send(request(b"GET", b"/files/spam/" + name.encode()))
        self.assertEqual((answer[0], self.lane.answered), (404, [False]))
        self.assertEqual(self.downloads(name), 0)

    def test_compressed(self):
        """A page large enough is sent compressed to a client that takes gzip, by the lane too."""
        for version in range(2, 40):
            name, data = make_wheel("holy-grail", f"1.{version}")
            self.upload(name, data, fields=twine_fields("holy-grail", f"1.{version}", data))
        headers = ((b"Accept-Encoding", b"gzip"),)
        (answer,), _ = self.send(request(b"GET", b"/simple/holy-grail/", headers))
        self.assertEqual(self.lane.answered[-1], True)
        self.assertEqual(answer[1][b"content-encoding"], b"gzip")
        self.assertEqual(answer, self.usual(b"GET", b"/simple/holy-grail/", headers))

    def test_pipelined(self):
        """Requests sent together are answered in order, and the connection stays open."""
        answers, transport = self.send(request(b"GET", b"/simple/holy-grail/"),
                                       request(b"GET", b"/simple/spam/"),
                                       request(b"GET", b"/simple/"))
        self.assertEqual([status for status, _, _ in answers], [200, 200, 200])
        self.assertIn(b"holy_grail-1.0", answers[0][2])
        self.assertIn(b"spam-1.1", answers[1][2])
        self.assertEqual(self.lane.answered, [True, True, True])
        self.assertFalse(transport.disconnecting)

    def test_counted(self):
        """An answer of the lane is counted for /metrics as any other."""
        stats = self.web.site.stats
        stats.settle()
        before = sum(stats.requests.values())
        self.send(*[request(b"GET", b"/simple/spam/")] * 3)
        stats.settle()
        self.assertEqual(self.lane.answered, [True] * 3)
        self.assertEqual(sum(stats.requests.values()) - before, 3)

    def test_left_to_the_usual_path(self):
        """What the lane must not answer goes the usual way, and gets the usual answer."""
        self.set_status("spam", "quarantined")
        del self.lane.answered[:]
        cases = [
            # credentials: who asks may see more, and is checked
            request(b"GET", b"/simple/holy-grail/", [(b"Authorization", basic())]),
            # conditional: 304 is the usual path's
            request(b"GET", b"/simple/holy-grail/", [(b"If-None-Match", b'"x"')]),
            # a query
            request(b"GET", b"/simple/holy-grail/?format=" + JSON_TYPE.encode()),
            # a name to redirect, one that is no project, an escape
            request(b"GET", b"/simple/Holy.Grail/"),
            request(b"GET", b"/simple/nothing-here/"),
            request(b"GET", b"/simple/holy%2Dgrail/"),
            request(b"GET", b"/simple/holy-grail"),
            # a quarantined project: admins see its files
            request(b"GET", b"/simple/spam/"),
            # nothing the index serves is acceptable
            request(b"GET", b"/simple/holy-grail/", [(b"Accept", b"image/png")]),
            # another method
            request(b"DELETE", b"/simple/holy-grail/"),
        ]
        answers, _ = self.send(*cases)
        self.assertEqual(self.lane.answered, [False] * len(cases))
        self.assertEqual([status for status, _, _ in answers],
                         [200, 200, 200, 301, 404, 200, 301, 200, 406, 405])
        self.assertNotIn(b"spam-1.0", answers[7][2])

    def test_closing_connections(self):
        """HTTP/1.0, and a client that closes after the answer: the usual path."""
        (answer,), _ = self.send(request(b"GET", b"/simple/spam/", version=b"HTTP/1.0"))
        self.assertEqual(answer[0], 200)
        self.assertEqual(self.lane.answered, [False])

    def set_status(self, project, status):
        response, body = self.request(
            "POST", f"/api/projects/{project}/status", auth=basic("alice"),
            headers={"Content-Type": "application/json"},
            data=json.dumps({"status": status}).encode())
        self.assertEqual(response.code, 200, body)


class ClosedIndexTests(_ServerMixin, SynchronousTestCase):
    """An index only users may read: the lane answers none of its requests."""

    read = "authenticated"

    def test_challenge(self):
        """Anonymous: the usual 401; with credentials: the usual page."""
        name, data = make_wheel("holy-grail", "1.0")
        self.assertEqual(self.upload(name, data)[0].code, 200)
        lane = _Lane(self.web.site)
        answers, _ = kept_alive(self.web.site, request(b"GET", b"/simple/holy-grail/"),
                                request(b"GET", b"/simple/holy-grail/",
                                        [(b"Authorization", basic())]))
        self.assertEqual([status for status, _, _ in answers], [401, 200])
        self.assertEqual(lane.answered, [False, False])


class OnDiskExpressTests(ExpressTests):
    """
    The same, on the local disk backend, whose small files the lane reads
    once and then keeps (L{pypid.web.serving.express.SMALL_FILES}).
    """

    on_disk = True

    def opened(self):
        """Count the files the lane opens from now on: a list of their paths."""
        paths = []

        def counting(path, mode="r", *args, **kwargs):
            paths.append(path)
            return open(path, mode, *args, **kwargs)

        # (the module reads the builtin: a global of its own comes first)
        express.open = counting
        self.addCleanup(delattr, express, "open")
        return paths

    def test_read_once(self):
        """
        A file and its metadata are read from disk at their first request
        and sent from memory after it, byte for byte the usual answer, and
        each GET is still counted as a download.
        """
        name, data = self.wheels["spam", "1.1"]
        opened = self.opened()
        for path in (b"/files/spam/" + name.encode(),
                     b"/files/spam/" + name.encode() + b".metadata"):
            answers, _ = self.send(*[request(b"GET", path)] * 3)
            self.assertEqual(self.lane.answered[-3:], [True] * 3)
            usual = self.usual(b"GET", path)
            self.assertEqual(answers, [usual] * 3)
        self.assertEqual(len(opened), 2)
        (answer,), _ = self.send(request(b"GET", b"/files/spam/" + name.encode()))
        self.assertEqual(answer[2], data)
        # (the lane's four GETs and the usual path's one)
        self.assertEqual(self.downloads(name), 5)

    def test_budget(self):
        """
        A lane that may keep no byte reads the file at every request; the
        key holds the file's digest, so another content at the same path
        is read anew (a file's content never changes under its name, but
        the lane does not rely on it).
        """
        lane = self.web.site.express._lane
        name, data = self.wheels["spam", "1.0"]
        path = b"/files/spam/" + name.encode()
        opened = self.opened()
        kept = lane._kept
        lane._kept = express.ByteLRU(0)
        answers, _ = self.send(request(b"GET", path), request(b"GET", path))
        self.assertEqual([a[2] for a in answers], [data, data])
        self.assertEqual(len(opened), 2)
        lane._kept = kept
        self.send(request(b"GET", path))
        stored = opened[-1]
        self.send(request(b"GET", path))
        self.assertEqual(len(opened), 3)
        self.assertEqual([key for key in kept if key[0] == stored],
                         [(stored, b'"%s"' % hashlib.sha256(data).hexdigest().encode())])


class NamedIndexTests(SynchronousTestCase):
    """
    A named index's kept pages and files (C{/NAME/simple/...},
    C{/NAME/files/...}) take the lane on the same conditions as the default
    index's: the same answers as the usual path; an index anonymous
    clients may not enter, or a name no index has, goes the usual way.
    """

    def setUp(self):
        self.server = Server(self)
        code, _, body = self.server.upload("/release/", "spam", "1.0")
        self.assertEqual(code, 200, body)
        code, _, body = self.server.upload("/secret/", "eggs", "1.0", auth=basic("carol"))
        self.assertEqual(code, 200, body)
        self.wheel = make_wheel("spam", "1.0")[0].encode()
        self.lane = _Lane(self.server.web.site)

    def ask(self, path, headers=()):
        """The lane's answer and the usual path's (its connection closed), and whether the lane took it."""
        site = self.server.web.site
        (lane,), _ = kept_alive(site, request(b"GET", path, headers))
        took = self.lane.answered[-1]
        (usual,), _ = kept_alive(site, request(b"GET", path, [*headers, (b"Connection", b"close")]))
        self.assertEqual(self.lane.answered[-1], False)
        usual[1].pop(b"connection")
        lane[1].pop(b"date"), usual[1].pop(b"date")
        self.assertEqual(lane, usual, path)
        return took, lane[0]

    def test_open_index(self):
        """C{release}: its root, its project's page (HTML and JSON) and its file."""
        for path, headers in [(b"/release/simple/", ()),
                              (b"/release/simple/spam/", ((b"Accept", HTML),)),
                              (b"/release/simple/spam/", ((b"Accept", JSON_TYPE.encode()),)),
                              (b"/release/files/spam/" + self.wheel, ()),
                              (b"/release/files/spam/" + self.wheel + b".metadata", ())]:
            self.assertEqual(self.ask(path, headers), (True, 200), path)

    def test_through_bases(self):
        """
        C{staging} lists C{release}'s file and the page of a project of its
        base alone, composed (and kept) as the usual path composes it: the
        lane sends both.
        """
        self.assertEqual(self.ask(b"/staging/files/spam/" + self.wheel), (True, 200))
        self.assertEqual(self.ask(b"/staging/simple/spam/"), (True, 200))

    def test_usual_way(self):
        """An index anonymous clients may not enter, a missing one, another area: the usual path."""
        eggs = make_wheel("eggs", "1.0")[0].encode()
        for path in (b"/secret/simple/", b"/secret/simple/eggs/", b"/secret/files/eggs/" + eggs,
                     b"/nosuch/simple/", b"/release/integrity/spam/1.0/" + self.wheel + b"/provenance",
                     b"/release/simple", b"/release"):
            took, status = self.ask(path)
            self.assertFalse(took, path)
            self.assertNotEqual(status, 200, path)


class InPartsExpressTests(ExpressTests):
    """
    The same, each request's bytes arriving a few at a time: Twisted parses
    every one, and the lane answers them once parsed (L{ExpressLane.__call__}).
    """

    def send(self, *requests):
        data = b"".join(requests)
        channel = self.web.site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        for i in range(0, len(data), 7):
            channel.dataReceived(data[i:i + 7])
        self.assertNotIn(True, self.lane.raw)
        return parse(transport.value()), transport


class FromBytesTests(_Uploaded, SynchronousTestCase):
    """
    A request whose whole head arrives at once, between requests, is
    answered from its bytes (L{ExpressLane.take}), exactly as Twisted's
    parser and the usual path would answer it; any other request, however
    malformed, gets exactly the answer it gets without that lane.
    """

    def setUp(self):
        super().setUp()
        #: for each example of L{test_any_head}, whether the lane answered it
        self.taken = []

    def reference(self, data):
        """What C{data} gets on a new connection with the lane kept from its bytes."""
        self.lane.raw_off = True
        try:
            return self.connect(data)
        finally:
            self.lane.raw_off = False

    def connect(self, data):
        """C{data} written at once on a new connection: what was written back, and whether it closed."""
        channel = self.web.site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(data)
        return transport.value(), transport.disconnecting

    def test_from_bytes(self):
        """Pages and files, to GET and HEAD: taken from the bytes, the usual answer."""
        name, _ = self.wheels["spam", "1.1"]
        for method, path, headers in [
                (b"GET", b"/simple/", ()),
                (b"GET", b"/simple/", ((b"X-Long", b"a" + b" " * 8000 + b"b"),)),
                (b"HEAD", b"/simple/spam/", ((b"Accept", HTML),)),
                (b"GET", b"/simple/spam/", ((b"Accept", JSON_TYPE.encode()),
                                            (b"accept-encoding", b"gzip"))),
                (b"GET", b"/files/spam/" + name.encode(), ((b"Connection", b"keep-alive"),)),
                (b"GET", b"/files/spam/" + name.encode() + b".metadata", ())]:
            data = request(method, path, headers)
            before = len(self.lane.raw)
            self.assertEqual(self.connect(data), self.reference(data), path)
            self.assertEqual(self.lane.raw[before:], [True, False], path)
            self.assertEqual(self.connect(data)[0].split(b"\r\n")[0], b"HTTP/1.1 200 OK")

    def test_leaving(self):
        """
        A connection asked to leave (another worker of the machine came up)
        gets its next answer from the usual path, the same but for
        C{Connection: close}, and ends after it.
        """
        data = request(b"GET", b"/simple/spam/", ((b"Accept", HTML),))
        channel = self.web.site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(data)
        first = transport.value()
        self.assertFalse(transport.disconnecting)
        transport.clear()
        before = len(self.lane.raw)
        self.assertEqual(self.web.site.counter.leave_all(), 1)
        channel.dataReceived(data)
        second = transport.value()
        # (not offered to the lane from its bytes: the usual path answers)
        self.assertEqual(self.lane.raw[before:], [])
        self.assertTrue(transport.disconnecting)
        head, _, body = second.partition(b"\r\n\r\n")
        self.assertIn(b"\r\nConnection: close", head)
        self.assertEqual(body, first.partition(b"\r\n\r\n")[2])
        self.assertEqual(head.split(b"\r\n")[0], b"HTTP/1.1 200 OK")

    def test_left_to_the_parser(self):
        """
        Requests the lane does not read, or reads and refuses, get the
        answer they get without it: the usual path's, or Twisted's refusal.
        """
        page = b"/simple/spam/"
        cases = [
            # not one whole head: two requests, a part of one, a body
            request(b"GET", page) * 2,
            request(b"GET", page)[:-2],
            request(b"GET", page) + b"x",
            b"POST /simple/spam/ HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
            # the request line
            b"get /simple/spam/ HTTP/1.1\r\n\r\n",
            b"GET  /simple/spam/ HTTP/1.1\r\n\r\n",
            b"GET /simple/spam/ HTTP/1.0\r\n\r\n",
            b"GET /simple/spam/ HTTP/2.0\r\n\r\n",
            b"GET http://pypi.test/simple/spam/ HTTP/1.1\r\n\r\n",
            b"GET /simple/spam/?x HTTP/1.1\r\n\r\n",
            b"GET /simple/sp\xc3\xa4m/ HTTP/1.1\r\n\r\n",
            b"GET /simple/spam/\x00 HTTP/1.1\r\n\r\n",
            b"\r\nGET /simple/spam/ HTTP/1.1\r\n\r\n",
            b"GET /simple/spam/ HTTP/1.1\n\n",
            # the headers
            request(b"GET", page, [(b"Connection", b"close")]),
            request(b"GET", page, [(b"Connection", b"keep-alive, Upgrade"),
                                   (b"Upgrade", b"h2c")]),
            request(b"GET", page, [(b"Content-Length", b"0")]),
            request(b"GET", page, [(b"Transfer-Encoding", b"chunked")]) + b"0\r\n\r\n",
            request(b"GET", page, [(b"Expect", b"100-continue")]),
            request(b"GET", page, [(b"Accept", HTML), (b"ACCEPT", JSON_TYPE.encode())]),
            request(b"GET", page, [(b"Accept", HTML), (b" Folded", b"x")]),
            request(b"GET", page, [(b"Bad Name", b"x")]),
            request(b"GET", page, [(b"Accept", b"text/\x00html")]),
            request(b"GET", page, [(b"Accept", b"text/\rhtml")]),
            # (blanks then a NUL: an expression that backtracked took minutes)
            request(b"GET", page, [(b"X", b" " * 8000 + b"\x00")]),
            request(b"GET", page, [(b"X-Long", b"x" * express.MAX_HEAD)]),
            request(b"GET", page, [(b"X-%d" % i, b"x") for i in range(express.MAX_FIELDS)]),
            request(b"GET", page, [(b"Authorization", basic())]),
            request(b"GET", page, [(b"If-None-Match", b'"x"')]),
            request(b"GET", page + b"x", [(b"Range", b"bytes=0-1")]),
            request(b"GET", b"/files/spam/x.whl", [(b"If-Range", b'"x"')]),
            request(b"GET", page, [(b"Accept", b"image/png")]),
            request(b"HEAD", b"/simple/Spam/"),
            request(b"OPTIONS", page),
        ]
        for data in cases:
            before = len(self.lane.raw)
            self.assertEqual(self.connect(data), self.reference(data), data)
            self.assertNotIn(True, self.lane.raw[before:], data)

    def test_any_head(self):
        """
        L{any_head}, of which a fair share are requests the lane answers
        from their bytes.
        """
        self.any_head()
        self.assertGreater(self.taken.count(True), len(self.taken) // 10, len(self.taken))

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.data())
    def any_head(self, data):
        """
        A request the lane could answer, then none or a few changes to its
        bytes (a method, a version, a header of any kind, an end, a byte
        changed, the bytes cut or followed by more): the answer, and whether
        the connection closes, are what they are without the lane reading
        them.
        """
        draw = data.draw
        name, _ = self.wheels["holy-grail", "1.0"]
        method = draw(st.sampled_from([b"GET", b"HEAD"]))
        target = draw(st.sampled_from([
            b"/simple/", b"/simple/spam/", b"/simple/holy-grail/", b"/simple/Spam/",
            b"/files/holy-grail/" + name.encode(), b"/files/spam/" + name.encode(),
            b"/files/holy-grail/" + name.encode() + b".metadata", b"/simple/nothing/"]))
        fields = draw(st.lists(st.sampled_from([
            (b"Accept", b"text/html"), (b"Accept", JSON_TYPE.encode()), (b"accept", b"*/*"),
            (b"Accept-Encoding", b"gzip"), (b"Accept-Encoding", b"identity"),
            (b"Host", b"pypi.test"), (b"User-Agent", b"pip/25.3"),
            (b"Connection", b"keep-alive")]), max_size=4, unique_by=lambda f: f[0].lower()))
        version, tail = b"HTTP/1.1", b"\r\n\r\n"
        for change in draw(st.lists(st.integers(0, 6), max_size=3)):
            if change == 0:
                method = draw(st.sampled_from([b"POST", b"get", b"G\x00T", b"GET ", b""]))
            elif change == 1:
                version = draw(st.sampled_from([b"HTTP/1.0", b"http/1.1", b"HTTP/1.1 ",
                                                b"HTTP/2.0", b""]))
            elif change == 2:
                field = (draw(st.sampled_from([
                    b"Accept", b"accept", b"Connection", b"Authorization", b"Content-Length",
                    b"Transfer-Encoding", b"X-Forwarded-For", b"Range", b"If-None-Match",
                    b"If-Range", b"Expect", b"Upgrade", b"Bad Name", b" Folded", b"",
                    b"\xff"])),
                    draw(st.sampled_from([b"close", b"0", b"chunked", b"bytes=0-3", b'"x"',
                                          b"100-continue", b"h2c", b"", b" x ", b"a\x00b",
                                          b"a\rb", b"a\nb", b"\xff\xfe"])
                         | st.binary(max_size=8)))
                fields.insert(draw(st.integers(0, len(fields))), field)
            elif change == 3:
                tail = draw(st.sampled_from([b"\r\n", b"\n\n", b"\r\n\r\n\r\n",
                                             b"\r\n\r\nGET /simple/ HTTP/1.1\r\n\r\n"]))
            elif change == 4:
                target = draw(st.sampled_from([b"/simple/spam/?a", b"*", b"/simple/%73pam/",
                                               b"http://pypi.test/simple/"])
                              | st.binary(max_size=12).map(lambda b: b"/simple/" + b))
            else:
                tail += draw(st.binary(min_size=1, max_size=6))
        sent = b"\r\n".join([b"%s %s %s" % (method, target, version)]
                             + [b"%s: %s" % field for field in fields]) + tail
        if draw(st.booleans()) and draw(st.booleans()):
            # (one byte changed)
            at = draw(st.integers(0, len(sent) - 1))
            sent = sent[:at] + bytes([draw(st.integers(0, 255))]) + sent[at + 1:]
        before = len(self.lane.raw)
        self.assertEqual(self.connect(sent), self.reference(sent))
        self.taken.append(True in self.lane.raw[before:])

    def test_counted_and_logged(self):
        """
        An answer from the bytes is counted for /metrics as the usual one,
        and has the same access log line (Twisted's combined format).
        """
        site = self.web.site
        lines = []
        self.patch(site, "_access_log", "access.log")
        site.logFile = _Lines(lines)
        stats = site.stats
        name, data = self.wheels["spam", "1.0"]
        path = b"/files/spam/" + name.encode()
        headers = [(b"Referer", b"http://pypi.test/x\"y"), (b"User-Agent", b"pip/25.3")]
        counted = []
        for reference in (False, True):
            stats.settle()
            data = request(b"GET", path, headers)
            if reference:
                self.reference(data)
            else:
                self.connect(data)
            self.assertEqual(self.lane.raw[-1], not reference)
            ((method, where, status, _seconds, sent, received),) = stats.batch
            counted.append((method, where, status, sent, received))
        self.assertEqual(counted, [(b"GET", path, 200, len(self.wheels["spam", "1.0"][1]), 0)] * 2)
        self.assertEqual(len(lines), 2)
        self.assertEqual(lines[0], lines[1])
        self.assertIn('"GET %s HTTP/1.1" 200 ' % path.decode(), lines[0])
        self.assertIn('"pip/25.3"', lines[0])

    def test_forwarded_client(self):
        """Behind a trusted proxy, a download is counted under the client it names."""
        site = self.web.site
        self.patch(site, "trusted_proxies", TrustedProxies((ip_network("192.168.1.0/24"),)))
        clients = []
        count = self.usage.count
        self.patch(self.usage, "count", lambda filename, client, tail: (
            clients.append(client), count(filename, client, tail))[1])
        name, _ = self.wheels["spam", "1.0"]
        path = b"/files/spam/" + name.encode()
        for forwarded in (b"203.0.113.9", b"not an address"):
            data = request(b"GET", path, [(b"X-Forwarded-For", forwarded)])
            self.connect(data)
            self.reference(data)
        self.assertEqual(clients, ["203.0.113.9"] * 2 + ["192.168.1.1"] * 2)
        self.assertEqual(self.lane.raw, [True, False, True, False])
        # (the header that cannot be read is logged for each, as the usual path does)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def feed(self, *chunks):
        """C{chunks} written one after the other on a new connection: the statuses, and whether it closed."""
        channel = self.web.site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        for chunk in chunks:
            channel.dataReceived(chunk)
        return [answer[0] for answer in parse(transport.value())], transport.disconnecting

    def test_empty_lines(self):
        """
        Twisted skips one empty line before a request line; after a request
        the lane answered, it skips one again, as after any answer.
        """
        page = request(b"GET", b"/simple/spam/")
        chunks = (b"\r\n", page, b"\r\n" + page, b"\r\n", page)
        self.assertEqual(self.feed(*chunks), ([200, 200, 200], False))
        # (an empty line and a request in one read: Twisted parses them)
        self.assertEqual(self.lane.raw, [True, False, True])
        self.lane.raw_off = True
        self.assertEqual(self.feed(*chunks), ([200, 200, 200], False))

    def test_full_transport(self):
        """
        An answer that fills the transport's buffer marks the channel as
        waiting for it, as during any answer, and does not stop it reading
        (a client's next request, sent meanwhile, is read and answered in
        turn); the lane leaves what comes meanwhile to the usual path.
        """
        name, data = make_wheel("spam", "2.0", extra_files=[("spam/blob", os.urandom(150000))])
        response, body = self.upload(name, data, fields=twine_fields("spam", "2.0", data))
        self.assertEqual(response.code, 200, body)
        path = b"/files/spam/" + name.encode()
        for raw_off in (True, False):
            self.lane.raw_off = raw_off
            channel = self.web.site.buildProtocol(None)
            transport = _Filling()
            channel.makeConnection(transport)
            channel.dataReceived(request(b"GET", path))
            self.assertEqual(transport.producerState, "producing")
            self.assertTrue(channel._waitingForTransport)
            before = len(self.lane.raw)
            channel.dataReceived(request(b"GET", b"/simple/spam/"))
            self.assertEqual([a[0] for a in parse(transport.value())], [200, 200])
            self.assertEqual(self.lane.raw[before:], [False])
        self.assertEqual(self.lane.raw, [False, False, True, False])

    def test_forwarded_logged_once(self):
        """
        A malformed X-Forwarded-For from a trusted proxy is logged once a
        request, whether the lane answers the request or declines it.
        """
        site = self.web.site
        self.patch(site, "trusted_proxies", TrustedProxies((ip_network("192.168.1.0/24"),)))
        forwarded = [(b"X-Forwarded-For", b"not an address")]
        for path, taken in ((b"/simple/spam/", True), (b"/simple/nothing-here/", False)):
            seen = []

            def observe(event, seen=seen):
                if "X-Forwarded-For" in str(event.get("log_format")):
                    seen.append(event)
            globalLogPublisher.addObserver(observe)
            try:
                before = len(self.lane.raw)
                self.connect(request(b"GET", path, forwarded))
            finally:
                globalLogPublisher.removeObserver(observe)
            self.assertEqual((len(seen), bool(self.lane.raw[before:])), (1, taken), path)

    def test_next_headers_deadline(self):
        """
        After an answer from the bytes the next request's headers have their
        own deadline: a client that then sends nothing is closed with 408.
        """
        site = self.web.site
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        self.clock.advance(20)
        channel.dataReceived(request(b"GET", b"/simple/spam/"))
        self.assertEqual(self.lane.raw, [True])
        self.assertEqual(channel.waiting_since, self.clock.seconds())
        site.counter.sweep(self.clock.seconds() + channel.header_timeout - 1)
        self.assertFalse(transport.disconnecting)
        site.counter.sweep(self.clock.seconds() + channel.header_timeout)
        self.assertIn(b"HTTP/1.1 408 ", transport.value())
        self.assertTrue(transport.disconnecting)


class UpstreamCacheTests(SynchronousTestCase):
    """
    An index whose pages read an upstream cache (C{staging}: its own
    files, C{release}'s, then two upstreams; C{cool}: a view of one): a
    page whose upstream pages are fresh, an upstream file kept here and
    metadata kept in memory or stored with its file take the lane, with
    the usual answer (its C{Age} too) and the usual counts; what must be
    fetched or refreshed, or is no longer listed, goes the usual way.
    """

    def setUp(self):
        self.server = upstream.Server(self)
        self.site = self.server.web.site
        self.lane = _Lane(self.site)
        self.public = self.server.sources["public"]
        self.gadget = make_wheel("gadget", "2.0")
        name, data = self.gadget
        with zipfile.ZipFile(io.BytesIO(data)) as wheel:
            self.metadata = wheel.read("gadget-2.0.dist-info/METADATA")
        origin = f"http://{upstream.ORIGIN_A}/f/{name}"
        self.server.origins.route(upstream.INDEX_A + "gadget/", json.dumps({
            "meta": {"api-version": "1.1"}, "name": "gadget",
            "files": [{"filename": name, "url": origin, "hashes": {"sha256": upstream.sha(data)},
                       "core-metadata": {"sha256": upstream.sha(self.metadata)}}]}).encode())
        self.server.origins.route(origin, data)
        self.server.origins.route(origin + ".metadata", self.metadata)

    def connect(self, path, headers=(), close=False):
        """One GET on a new connection, the upstreams answering: C{(status, headers, body)}."""
        if close:
            headers = [*headers, (b"Connection", b"close")]
        channel = self.site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(request(b"GET", path, headers))
        for _ in range(5):
            upstream.drain(self.server.agent, None)
            self.server.clock.advance(0)
        answer = _one_answer(transport.value())
        if close:
            self.assertEqual(answer[1].pop(b"connection"), b"close")
        return answer

    def ask(self, path, headers=()):
        """
        The answer on a kept-alive connection, whether the lane took it,
        and the usual answer to the same request just after (the same).
        """
        before = len(self.lane.raw)
        answer = self.connect(path, headers)
        took = True in self.lane.raw[before:]
        usual = self.connect(path, headers, close=True)
        self.assertEqual(answer, usual, path)
        return took, answer

    def test_fresh_page(self):
        """
        A page read from fresh upstream pages: the lane sends it with its
        C{Age}, counted as a hit as the usual path counts it; once stale,
        the usual path sends it (refreshing it) with a C{Warning}.
        """
        for path in (b"/staging/simple/widget/", b"/cool/simple/widget/"):
            for accept in (HTML, JSON_TYPE.encode()):
                self.connect(path, [(b"Accept", accept)])
                self.server.clock.advance(7)
                hits = self.public.pages.served["hit"]
                took, (status, headers, _) = self.ask(path, [(b"Accept", accept)])
                self.assertEqual((took, status), (True, 200), path)
                fetched = self.public.pages.cached("widget").fetched_at
                self.assertEqual(headers[b"age"], b"%d" % (self.server.clock.seconds() - fetched))
                self.assertEqual(self.public.pages.served["hit"] - hits, 2)
        self.server.clock.advance(600)
        status, headers, _ = self.connect(b"/staging/simple/widget/")
        self.assertEqual((self.lane.answered[-1], status), (False, 200))
        self.assertIn(b"warning", headers)

    def test_kept_file(self):
        """
        Metadata read once (kept in memory), a file fetched once (kept
        here), then the metadata stored with it: the lane sends each after.
        """
        name, data = self.gadget
        self.connect(b"/staging/simple/gadget/")
        metadata = b"/staging/files/gadget/%s.metadata" % name.encode()
        for path, body, new in ((metadata, self.metadata, True),
                                (b"/staging/files/gadget/" + name.encode(), data, True),
                                (metadata, self.metadata, False)):
            first = self.connect(path)
            self.assertEqual(first[0], 200)
            self.assertIs(self.lane.answered[-1], not new)
            took, answer = self.ask(path)
            self.assertEqual((took, answer[0], answer[2]), (True, 200, body), path)
        stored = self.public.files.kept(name)
        self.assertEqual(stored.metadata_sha256, upstream.sha(self.metadata))
        self.assertEqual(self.public.files.kept_metadata(self.listed(name))[1],
                         stored.metadata_sha256)

    def listed(self, filename):
        """The upstream file C{filename} as the public upstream's page lists it."""
        (found,) = [f for f in self.public.pages.cached("gadget").page.files
                    if f.filename == filename]
        return found

    def test_not_kept(self):
        """
        A page not fetched yet, a file not kept, a project the upstream no
        longer lists: the usual path.
        """
        name, _ = self.gadget
        for path in (b"/staging/simple/gadget/", b"/staging/files/gadget/" + name.encode()):
            self.assertEqual(self.connect(path)[0], 200)
            self.assertIs(self.lane.answered[-1], False)
        self.server.origins.route(upstream.INDEX_A + "gadget/", b"", status=404)
        # (the upstream says so twice, a minute or more apart: issue 59)
        for _ in range(2):
            self.server.clock.advance(601)
            self.connect(b"/staging/simple/gadget/")
        for path in (b"/staging/simple/gadget/", b"/staging/files/gadget/" + name.encode()):
            took, answer = self.ask(path)
            self.assertEqual((took, answer[0]), (False, 404), path)


def _one_answer(data):
    """The one answer in C{data}, as L{parse} gives it, its body chunked or not."""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = dict((name.lower(), value) for name, _, value in
                   (line.partition(b": ") for line in lines[1:]))
    if headers.get(b"transfer-encoding") == b"chunked":
        body = b""
        while True:
            size, _, rest = rest.partition(b"\r\n")
            if int(size, 16) == 0:
                break
            body, rest = body + rest[:int(size, 16)], rest[int(size, 16) + 2:]
        del headers[b"transfer-encoding"]
        return int(lines[0].split(b" ")[1]), headers, body
    ((answer),) = parse(data)
    return answer


class _Filling(StringTransport):
    """A transport that asks its producer to pause past 64 KiB buffered, as TCP's does."""

    def write(self, data):
        StringTransport.write(self, data)
        if self.producer is not None and self.streaming and len(self.io.getvalue()) > 65536:
            self.producer.pauseProducing()


class _Lines:
    """A log file that keeps its lines."""

    def __init__(self, lines):
        self.lines = lines

    def write(self, line):
        self.lines.append(line)
