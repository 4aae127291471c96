"""
Tests for the express lane (L{pypid.web.express}, issue 43): the kept pages
and small files an anonymous client gets on a kept-alive connection are
written at once, with exactly the status, headers and body the usual path
gives, counted as any answer (and as a download); every request the lane
must leave alone goes the usual way.

The requests are written to the real site's channel as bytes, as a client
on a persistent connection sends them (treq's in-memory agent closes every
connection, so the other web tests never take the lane).
"""

import hashlib
import json

from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.policy import AccessModel
from pypid.core.usage import day_of
from pypid.state.usage_log import UsageLog
from pypid.web import express
from tests.distributions import make_wheel
from tests.fakes import twine_fields
from tests.harness_indexes import Server
from tests.harness_web import JSON_TYPE, _ServerMixin, basic, kept_alive, request

HTML = b"text/html"


class _Lane:
    """
    Records whether the site's express lane answered each request it was
    asked: from its bytes (L{express.ExpressLane.take}; what it leaves goes
    on to Twisted's parser, and then to the lane again), or once parsed.

    @ivar answered: for each request, whether the lane answered it.
    @ivar raw: for each request the lane answered, whether from its bytes.
    """

    def __init__(self, site):
        self._lane = site.express
        self.answered = []
        self.raw = []
        site.express = self

    def take(self, channel, data):
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


class ExpressTests(_ServerMixin, SynchronousTestCase):
    """Anonymous reads of the kept pages, on a persistent connection."""

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
    once and then keeps (L{pypid.web.express.SMALL_FILES}).
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
        C{staging} lists C{release}'s file: the lane sends it; the page of a
        project of its base alone is composed by the usual path.
        """
        self.assertEqual(self.ask(b"/staging/files/spam/" + self.wheel), (True, 200))
        self.assertEqual(self.ask(b"/staging/simple/spam/"), (False, 200))

    def test_usual_way(self):
        """An index anonymous clients may not enter, a missing one, another area: the usual path."""
        eggs = make_wheel("eggs", "1.0")[0].encode()
        for path in (b"/secret/simple/", b"/secret/simple/eggs/", b"/secret/files/eggs/" + eggs,
                     b"/nosuch/simple/", b"/release/integrity/spam/1.0/" + self.wheel + b"/provenance",
                     b"/release/simple", b"/release"):
            took, status = self.ask(path)
            self.assertFalse(took, path)
            self.assertNotEqual(status, 200, path)
