"""
Tests of the test upstream index (L{tests.harness.upstream_server}): its pages in
both formats, its files, its request log and each of its failure modes, in
the test process's reactor through treq, and as a child process through
urllib.
"""

import hashlib
import io
import json
import os
import time
import urllib.error
import urllib.request
import zipfile

import treq
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed, ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.e2e import anchors
from tests.harness.upstream_server import (
    V1_JSON,
    Fault,
    Faults,
    RequestLog,
    UpstreamIndex,
    UpstreamProcess,
    UpstreamResource,
    UpstreamServer,
    choose_media_type,
    start_in_reactor,
    wrong_bytes,
)

PIP_ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; "
              "q=0.1, text/html; q=0.01")
JSON_HEADERS = {"Accept": [PIP_ACCEPT]}


def sha256(data):
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def outcome(d):
    """
    A list that gets what C{d} ends with (an answer or a failure) once it
    has one, left in C{d} for whoever waits for it.
    """
    got = []

    def keep(result):
        got.append(result)
        return result

    d.addBoth(keep)
    return got


def sample_index():
    """An index with a wheel and an sdist of one project, a yanked wheel, and a dependency."""
    index = UpstreamIndex()
    index.add_wheel("Ham.Spam", "1.0", requires_dist=["eggs>=2"], requires_python=">=3.8",
                    upload_time="2024-05-06T07:08:09Z")
    index.add_sdist("Ham.Spam", "1.0", requires_python=">=3.8")
    index.add_wheel("Ham.Spam", "0.9", yanked="broken <badly>")
    index.add_wheel("eggs", "2.0")
    return index


class IndexTests(SynchronousTestCase):
    """The index itself, the negotiation and the failure modes as values."""

    def test_add_computes_hash_and_project(self):
        """A file added by name and bytes gets its sha256, normalized project and version."""
        index = UpstreamIndex()
        filename, data = make_wheel("Foo_Bar", "1.2")
        entry = index.add(filename, data, yanked=True)
        self.assertEqual((entry.project, entry.version, entry.sha256, entry.size, entry.yanked),
                         ("foo-bar", "1.2", sha256(data), len(data), ""))
        self.assertEqual(index.projects(), ["foo-bar"])
        self.assertEqual(index.files("foo-bar"), [entry])

    def test_generated_wheel_metadata(self):
        """A generated wheel holds its Requires-Dist, and its served metadata is its METADATA."""
        entry = UpstreamIndex().add_wheel("ham", "1.0", requires_dist=["eggs>=2"])
        with zipfile.ZipFile(io.BytesIO(entry.data)) as zf:
            metadata = zf.read("ham-1.0.dist-info/METADATA")
        self.assertEqual(entry.metadata, metadata)
        self.assertIn(b"Requires-Dist: eggs>=2", metadata)

    def test_sdist_metadata_optional(self):
        """An sdist serves no metadata unless asked, then its PKG-INFO."""
        filename, data = make_sdist("ham", "1.0")
        index = UpstreamIndex()
        self.assertIsNone(index.add(filename, data).metadata)
        self.assertIn(b"Name: ham", index.add(filename, data, metadata=True).metadata)
        self.assertIsNone(index.add_wheel("ham", "1.0", metadata=False).metadata)

    def test_negotiation(self):
        """JSON when v1+json is preferred, HTML on ties and by default, None when nothing fits."""
        self.assertEqual(choose_media_type(PIP_ACCEPT), V1_JSON)
        self.assertEqual(choose_media_type(None), "text/html")
        self.assertEqual(choose_media_type("*/*"), "text/html")
        self.assertEqual(choose_media_type(f"text/html, {V1_JSON}"), "text/html")
        self.assertEqual(choose_media_type(f"{V1_JSON}, */*;q=0.5"), V1_JSON)
        self.assertEqual(choose_media_type("application/vnd.pypi.simple.latest+json"), V1_JSON)
        self.assertEqual(choose_media_type(f"{V1_JSON};q=0, */*"), "text/html")
        self.assertIsNone(choose_media_type("image/png"))

    def test_modes_parse(self):
        """Every documented mode parses; unknown or malformed ones are refused."""
        self.assertEqual(Fault.parse("slow:0.5:10").interval, 0.5)
        self.assertEqual(Fault.parse("slow:0.5:10").chunk, 10)
        self.assertEqual(Fault.parse("status:503").status, 503)
        both = Fault.parse("delay:1.5+truncate")
        self.assertEqual((both.kind, both.delay), ("truncate", 1.5))
        self.assertIsNone(Fault.parse("delay:2").kind)
        for mode in ("refuse", "stall", "truncate", "wrong_bytes", "error_page"):
            self.assertEqual(Fault.parse(mode).kind, mode)
        for bad in ("explode", "status:99", "slow", "delay:-1", "refuse+stall", "status:x"):
            self.assertRaises(ValueError, Fault.parse, bad)

    def test_fault_matching(self):
        """An exact path beats a prefix, the longest prefix wins, and times runs out."""
        faults = Faults()
        faults.set("/files/", "status:500", prefix=True)
        faults.set("/files/a/", "status:502", prefix=True)
        faults.set("/files/x", "refuse", times=1)
        self.assertEqual(faults.match("/files/y").status, 500)
        self.assertEqual(faults.match("/files/a/y").status, 502)
        self.assertEqual(faults.match("/files/x").kind, "refuse")
        self.assertEqual(faults.match("/files/x").status, 500)
        self.assertIsNone(faults.match("/simple/"))
        faults.clear()
        self.assertIsNone(faults.match("/files/y"))

    def test_wrong_bytes(self):
        """Wrong bytes have the same length and another hash."""
        data = b"some wheel"
        self.assertEqual(len(wrong_bytes(data)), len(data))
        self.assertNotEqual(sha256(wrong_bytes(data)), sha256(data))


class _InReactor(TestCase):
    """The upstream of L{sample_index} in the test process's reactor, and a treq client."""

    #: seconds a request may take
    request_timeout = 5

    async def setUp(self):
        self.index = sample_index()
        self.server = await start_in_reactor(self.index, reactor)
        self.addCleanup(self.settle)
        self.addCleanup(self.server.stop)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = treq.client.HTTPClient(Agent(reactor, pool=pool))

    def settle(self):
        """Give the client ends of the connections cut by a stop a moment to close."""
        return deferLater(reactor, 0.01, lambda: None)

    async def clocked_server(self, clock):
        """
        Another server of the same index whose faults and raw answers keep
        the time of C{clock} (a L{Clock} the test advances), so that what is
        sent at once and what waits for an interval can be told apart
        however fast the machine; stopped at the end.
        """
        resource = UpstreamResource(self.index, RequestLog(), clock=clock)
        server = await UpstreamServer(self.index, reactor, resource).start()
        self.addCleanup(server.stop)
        return server

    async def wait_until(self, condition, what, seconds=8.0):
        """
        Let the reactor run until C{condition()} holds; fail, naming C{what},
        after C{seconds} (a safety limit, far beyond loopback's needs).
        """
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                self.fail(f"still waiting after {seconds} s for {what}")
            await deferLater(reactor, 0.005, lambda: None)

    def get(self, path, **kwargs):
        """GET a path of the server, following no redirect."""
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", self.request_timeout)
        return self.http.get(self.server.base + path.lstrip("/"), **kwargs)


class InReactorTests(_InReactor):
    """The upstream in the test process's reactor, through treq over loopback."""

    timeout = 10


    async def test_project_html(self):
        """The HTML page links every file with its sha256, requires-python, yanked and metadata."""
        response = await self.get("/simple/ham-spam/")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"),
                         ["text/html; charset=utf-8"])
        body = await response.content()
        self.assertIn(b'data-requires-python="&gt;=3.8"', body)
        links = anchors(body)
        self.assertEqual(sorted(links), ["ham_spam-0.9-py3-none-any.whl",
                                         "ham_spam-1.0-py3-none-any.whl", "ham_spam-1.0.tar.gz"])
        wheel = links["ham_spam-1.0-py3-none-any.whl"]
        url, _, fragment = wheel["href"].partition("#")
        self.assertEqual(url, self.server.base + "files/ham_spam-1.0-py3-none-any.whl")
        data = await (await self.http.get(url)).content()
        self.assertEqual(fragment, "sha256=" + sha256(data))
        metadata = await (await self.http.get(url + ".metadata")).content()
        self.assertEqual(wheel["data-core-metadata"], "sha256=" + sha256(metadata))
        self.assertEqual(wheel["data-requires-python"], ">=3.8")
        self.assertNotIn("data-yanked", wheel)
        self.assertEqual(links["ham_spam-0.9-py3-none-any.whl"]["data-yanked"], "broken <badly>")
        self.assertNotIn("data-core-metadata", links["ham_spam-1.0.tar.gz"])

    async def test_project_json(self):
        """pip's Accept gets PEP 691 JSON v1.1 with hashes, sizes, upload times and metadata."""
        response = await self.get("/simple/ham-spam/", headers=JSON_HEADERS)
        self.assertEqual(response.headers.getRawHeaders("content-type"), [V1_JSON])
        page = await response.json()
        self.assertEqual((page["meta"]["api-version"], page["name"], page["versions"]),
                         ("1.1", "ham-spam", ["0.9", "1.0"]))
        files = {f["filename"]: f for f in page["files"]}
        wheel = files["ham_spam-1.0-py3-none-any.whl"]
        data = await (await self.http.get(wheel["url"])).content()
        self.assertEqual(wheel["hashes"], {"sha256": sha256(data)})
        self.assertEqual((wheel["size"], wheel["requires-python"], wheel["yanked"]),
                         (len(data), ">=3.8", False))
        self.assertEqual(wheel["upload-time"], "2024-05-06T07:08:09.000000Z")
        metadata = await (await self.http.get(wheel["url"] + ".metadata")).content()
        self.assertEqual(wheel["core-metadata"], {"sha256": sha256(metadata)})
        self.assertEqual(files["ham_spam-0.9-py3-none-any.whl"]["yanked"], "broken <badly>")
        self.assertIs(files["ham_spam-1.0.tar.gz"]["core-metadata"], False)

    async def test_index_both_formats(self):
        """/simple/ lists the projects in HTML and in JSON."""
        html_body = await (await self.get("/simple/")).content()
        self.assertEqual(anchors(html_body)["eggs"]["href"], self.server.url + "eggs/")
        page = await (await self.get("/simple/", headers=JSON_HEADERS)).json()
        self.assertEqual(page["projects"], [{"name": "eggs"}, {"name": "ham-spam"}])

    async def test_relative_links(self):
        """With relative links, file URLs resolve against the page to /files/."""
        server = await start_in_reactor(self.index, reactor, links="relative")
        self.addCleanup(server.stop)
        page = await (await self.http.get(server.url + "eggs/", headers=JSON_HEADERS)).json()
        self.assertEqual(page["files"][0]["url"], "../../files/eggs-2.0-py3-none-any.whl")

    async def test_not_found_and_redirects(self):
        """Unknown projects are 404; other spellings are redirected to the normalized name."""
        self.assertEqual((await self.get("/simple/nothing/")).code, 404)
        self.assertEqual((await self.get("/files/nothing.whl")).code, 404)
        response = await self.get("/simple/Ham_Spam/")
        self.assertEqual((response.code, response.headers.getRawHeaders("location")),
                         (301, ["/simple/ham-spam/"]))
        response = await self.get("/simple/eggs")
        self.assertEqual(response.headers.getRawHeaders("location"), ["/simple/eggs/"])

    async def test_file_content_length(self):
        """A file is served with its Content-Length."""
        entry = self.index.file("eggs-2.0-py3-none-any.whl")
        response = await self.get("/files/" + entry.filename)
        self.assertEqual(response.length, entry.size)
        self.assertEqual(await response.content(), entry.data)

    async def test_request_log(self):
        """Every request is logged with its method, path and Accept, and counted per path."""
        await (await self.get("/simple/eggs/", headers=JSON_HEADERS)).content()
        await (await self.get("/simple/eggs/")).content()
        await (await self.get("/files/eggs-2.0-py3-none-any.whl")).content()
        log = self.server.log
        self.assertEqual(log.count("/simple/eggs/"), 2)
        self.assertEqual(log.counts(), {"/simple/eggs/": 2, "/files/eggs-2.0-py3-none-any.whl": 1})
        self.assertEqual((log.entries[0].method, log.entries[0].accept), ("GET", PIP_ACCEPT))

    async def test_refuse(self):
        """refuse closes the connection with no answer."""
        self.server.fail("/simple/eggs/", "refuse")
        with self.assertRaises(ResponseNeverReceived):
            await self.get("/simple/eggs/")
        self.assertEqual(self.server.log.entries[-1].fault, "refuse")

    async def test_stall(self):
        """
        stall never answers: once the server has the request, no answer
        comes, and the client's giving up (the cancel its timeout makes)
        fails it with no response.
        """
        self.server.fail("/simple/eggs/", "stall")
        d = self.get("/simple/eggs/", timeout=None)
        answered = outcome(d)
        await self.wait_until(lambda: self.server.log.count("/simple/eggs/") == 1,
                              "the request to reach the server")
        await deferLater(reactor, 0.2, lambda: None)  # (an answer would have come by now)
        self.assertEqual(answered, [], "a stalled request was answered")
        d.cancel()
        with self.assertRaises(ResponseNeverReceived) as caught:
            await d
        self.assertTrue(caught.exception.reasons[0].check(CancelledError))
        self.assertEqual(self.server.log.count("/simple/eggs/"), 1)

    async def test_stop_cuts_stalled(self):
        """Stopping the server cuts a stalled request, and the stop completes."""
        self.server.fail("/simple/", "stall", prefix=True)
        d = self.get("/simple/eggs/")
        answered = outcome(d)
        await self.wait_until(lambda: self.server.log.count("/simple/eggs/") == 1,
                              "the request to reach the server")
        self.assertEqual(answered, [])
        await self.server.stop()
        with self.assertRaises(ResponseNeverReceived):
            await d

    async def test_slow(self):
        """
        slow sends the headers at once (before its clock moves), then one
        chunk per interval: nothing more until the interval has passed.
        """
        clock = Clock()
        server = await self.clocked_server(clock)
        entry = self.index.file("eggs-2.0-py3-none-any.whl")
        chunk = entry.size // 3 + 1
        server.fail("/files/" + entry.filename, f"slow:1:{chunk}")
        response = await self.http.get(server.base + "files/" + entry.filename,
                                       unbuffered=True, timeout=self.request_timeout)
        self.assertEqual((response.code, response.length), (200, entry.size))
        received = []
        d = treq.collect(response, received.append)
        for n in range(1, 4):
            await deferLater(reactor, 0.05, lambda: None)  # (anything early would show)
            self.assertEqual(len(b"".join(received)), (n - 1) * chunk, f"before interval {n}")
            clock.advance(1)
            await self.wait_until(lambda n=n: len(b"".join(received)) >= min(n * chunk, entry.size),
                                  f"chunk {n}")
        await d
        self.assertEqual(b"".join(received), entry.data)

    async def test_truncate(self):
        """truncate promises the full length, sends half, and the client sees a failure."""
        entry = self.index.file("eggs-2.0-py3-none-any.whl")
        self.server.fail("/files/" + entry.filename, "truncate")
        response = await self.get("/files/" + entry.filename, unbuffered=True)
        self.assertEqual(response.length, entry.size)
        received = []
        with self.assertRaises(ResponseFailed):
            await treq.collect(response, received.append)
        self.assertEqual(len(b"".join(received)), entry.size // 2)

    async def test_wrong_bytes(self):
        """wrong_bytes serves the right length with another sha256."""
        entry = self.index.file("eggs-2.0-py3-none-any.whl")
        self.server.fail("/files/" + entry.filename, "wrong_bytes")
        body = await (await self.get("/files/" + entry.filename)).content()
        self.assertEqual(len(body), entry.size)
        self.assertNotEqual(sha256(body), entry.sha256)

    async def test_error_page(self):
        """error_page answers 200 with an HTML page where a file was expected."""
        self.server.fail("/files/", "error_page", prefix=True)
        response = await self.get("/files/eggs-2.0-py3-none-any.whl")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"),
                         ["text/html; charset=utf-8"])
        self.assertIn(b"<html>", await response.content())

    async def test_status_once_then_clear(self):
        """status:<code> answers that status; times=1 fails once; clear() ends a rule."""
        self.server.fail("/simple/eggs/", "status:503", times=1)
        self.server.fail("/simple/ham-spam/", "status:500")
        self.assertEqual((await self.get("/simple/eggs/")).code, 503)
        self.assertEqual((await self.get("/simple/eggs/")).code, 200)
        response = await self.get("/simple/ham-spam/")
        self.assertEqual(response.code, 500)
        self.assertIn(b"500", await response.content())
        self.server.clear()
        self.assertEqual((await self.get("/simple/ham-spam/")).code, 200)

    async def test_delay(self):
        """delay:<seconds> answers normally after the delay."""
        self.server.fail("/simple/eggs/", "delay:0.2")
        started = time.monotonic()
        response = await self.get("/simple/eggs/")
        self.assertEqual(response.code, 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.19)

    async def test_stop_start_same_port(self):
        """A stopped server refuses connections; started again it answers on the same URL."""
        url = self.server.url
        await self.server.stop()
        with self.assertRaises(ConnectionRefusedError):
            await self.http.get(url, timeout=5)
        await self.server.start()
        self.assertEqual(self.server.url, url)
        self.assertEqual((await self.http.get(url + "eggs/", timeout=5)).code, 200)


def fetch(url, accept=None, timeout=5):
    """C{(status, headers, body)} of a GET with urllib; error statuses are answers."""
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class ProcessTests(SynchronousTestCase):
    """The upstream as a child process, driven by its blocking controller."""

    def start_upstream(self):
        """An upstream process serving one wheel with a sidecar, stopped at the end."""
        directory = os.path.abspath(self.mktemp())
        upstream = UpstreamProcess(directory)
        upstream.add_wheel("eggs", "2.0", requires_python=">=3.9", yanked="old")
        self.addCleanup(upstream.kill)
        return upstream.start()

    def test_pages_faults_and_log(self):
        """The process serves its folder, fails on command, logs requests, and takes new files."""
        upstream = self.start_upstream()
        status, headers, body = fetch(upstream.url + "eggs/", V1_JSON)
        self.assertEqual(status, 200)
        (entry,) = json.loads(body)["files"]
        self.assertEqual((entry["requires-python"], entry["yanked"]), (">=3.9", "old"))
        _, headers, data = fetch(entry["url"])
        self.assertEqual(entry["hashes"]["sha256"], sha256(data))
        self.assertEqual(headers["Content-Length"], str(len(data)))

        upstream.fail("/simple/eggs/", "status:503")
        self.assertEqual(fetch(upstream.url + "eggs/")[0], 503)
        upstream.clear()
        self.assertEqual(fetch(upstream.url + "eggs/")[0], 200)
        self.assertEqual(upstream.count("/simple/eggs/"), 3)
        self.assertEqual(upstream.requests()[0],
                         {"method": "GET", "path": "/simple/eggs/", "accept": V1_JSON,
                          "fault": None})

        filename, wheel = make_wheel("eggs", "3.0")
        upstream.add(filename, wheel, upload_time="2025-01-01T00:00:00Z")
        files = json.loads(fetch(upstream.url + "eggs/", V1_JSON)[2])["files"]
        self.assertEqual(files[1]["upload-time"], "2025-01-01T00:00:00.000000Z")
        upstream.clear_requests()
        self.assertEqual(upstream.requests(), [])

    def test_stop_start_keeps_port_and_files(self):
        """Stopped, the upstream refuses connections; started again, same port, same files."""
        upstream = self.start_upstream()
        url = upstream.url
        filename, wheel = make_wheel("spam", "1.0")
        upstream.add(filename, wheel)
        upstream.stop()
        with self.assertRaises(urllib.error.URLError):
            fetch(url)
        upstream.start()
        self.assertEqual(upstream.url, url)
        status, _, body = fetch(url + "spam/")
        self.assertEqual(status, 200)
        self.assertIn(filename.encode(), body)
        upstream.kill()
        self.assertFalse(upstream.running())


class RawAndCookiesTests(_InReactor):
    """
    Raw answers (any bytes for one exact path, made as they are sent),
    cookies on every answer, the claimed size, and the headers the request
    log keeps: in the test process's reactor, through treq (whose cookie
    jar sends back what it is given).
    """

    timeout = 20
    request_timeout = 10


    async def test_raw_exact_bytes(self):
        """
        A raw answer is sent as given (status, headers, body, no Content-Type
        added) for its exact path only, logged as C{raw}, faults ignored.
        """
        self.server.answer_raw("/simple/eggs/", b"moved\n", status=302,
                               headers=[("Location", "http://[x/")])
        self.server.fail("/simple/eggs/", "status:500")
        response = await self.get("/simple/eggs/")
        self.assertEqual((response.code, response.headers.getRawHeaders("location"),
                          response.headers.getRawHeaders("content-type"), response.length),
                         (302, ["http://[x/"], None, 6))
        self.assertEqual(await response.content(), b"moved\n")
        self.assertEqual(self.server.log.entries[-1].fault, "raw")
        self.assertEqual((await self.get("/simple/ham-spam/")).code, 200)
        self.server.raw.clear("/simple/eggs/")
        self.server.clear()
        self.assertEqual((await self.get("/simple/eggs/")).code, 200)

    async def test_raw_repeated_body(self):
        """
        Prefix, a piece repeated, suffix: 20 MB made on the fly, with its
        Content-Length; a lying Content-Length given is sent instead.
        """
        piece = b"1," * 5000
        self.server.answer_raw("/simple/big/", piece, prefix=b'{"files":[', suffix=b"1]}",
                               repeat=2000, headers=[("Content-Type", V1_JSON)])
        response = await self.get("/simple/big/")
        body = await response.content()
        self.assertEqual(response.length, 10 + 20_000_000 + 3)
        self.assertEqual(len(json.loads(body)["files"]), 10_000_001)
        self.server.answer_raw("/files/liar", b"abc", headers=[("Content-Length", "3000")])
        response = await self.get("/files/liar", unbuffered=True)
        self.assertEqual(response.length, 3000)
        received = []
        self.server.raw.clear("/files/liar")  # (cuts nothing: the body was sent)
        d = treq.collect(response, received.append)
        await self.wait_until(lambda: b"".join(received) == b"abc", "the 3 bytes sent")
        await self.server.stop()
        with self.assertRaises(ResponseFailed):
            await d
        self.assertEqual(b"".join(received), b"abc")

    async def test_raw_endless_cut(self):
        """
        An endless body keeps coming while the client reads; clearing its
        path cuts it, and the server sends nothing more.
        """
        self.server.answer_raw("/files/endless", b"\0" * 65536, endless=True)
        response = await self.get("/files/endless", unbuffered=True)
        self.assertEqual(response.length, UNKNOWN_LENGTH)
        received = []
        enough = Deferred()

        def got(data):
            received.append(len(data))
            if sum(received) > 8 << 20 and not enough.called:
                enough.callback(None)

        d = treq.collect(response, got)
        await enough
        self.assertEqual(self.server.raw.sending("/files/endless"), 1)
        self.server.raw.clear("/files/endless")
        with self.assertRaises(ResponseFailed):
            await d
        self.assertEqual(self.server.raw.sending(), 0)

    async def test_raw_trickle(self):
        """
        With an interval, the headers and prefix go at once (before the
        server's clock moves), then a copy per interval, and the suffix.
        """
        clock = Clock()
        server = await self.clocked_server(clock)
        server.answer_raw("/files/slow", b"ab", prefix=b"<", suffix=b">", repeat=3,
                          interval=1)
        response = await self.http.get(server.base + "files/slow", unbuffered=True,
                                       timeout=self.request_timeout)
        self.assertEqual(response.code, 200)
        received = []
        d = treq.collect(response, received.append)
        expected = [b"<", b"<ab", b"<abab", b"<ababab>"]
        for n, sent in enumerate(expected):
            await self.wait_until(lambda sent=sent: b"".join(received) == sent, repr(sent))
            if n + 1 < len(expected):
                await deferLater(reactor, 0.05, lambda: None)  # (anything early would show)
                self.assertEqual(b"".join(received), sent, f"before interval {n + 1}")
                clock.advance(1)
        await d
        self.assertEqual(b"".join(received), b"<ababab>")

    async def test_raw_release(self):
        """
        A copy that its interval holds back goes at once when released, and
        the answer then ends (the clock never moves: a download held open
        until the test lets it finish).
        """
        server = await self.clocked_server(Clock())
        server.answer_raw("/files/held", b"end", prefix=b"start-", interval=3600)
        response = await self.http.get(server.base + "files/held", unbuffered=True,
                                       timeout=self.request_timeout)
        received = []
        d = treq.collect(response, received.append)
        await self.wait_until(lambda: b"".join(received) == b"start-", "the prefix")
        self.assertEqual(server.raw.sending("/files/held"), 1)
        server.raw.release("/files/held")
        await d
        self.assertEqual(b"".join(received), b"start-end")
        self.assertEqual(server.raw.sending(), 0)

    async def test_raw_http10(self):
        """An HTTP/1.0 raw answer has no Content-Length and ends with the close."""
        self.server.answer_raw("/files/old", b"x" * 1000, http10=True)
        response = await self.get("/files/old")
        self.assertEqual(response.version, (b"HTTP", 1, 0))
        self.assertIsNone(response.headers.getRawHeaders("content-length"))
        self.assertEqual(await response.content(), b"x" * 1000)

    async def test_cookies_and_logged_headers(self):
        """
        With cookies on, every answer sets a fresh cookie of its own name;
        the log keeps the length of the Cookie headers received (treq sends
        back what it was given) and the Accept-Encoding; to_json shows both
        only when asked for details.
        """
        self.server.cookies.on = True
        first = await self.get("/simple/eggs/")
        await first.content()
        second = await self.get("/simple/eggs/")
        await second.content()
        (one,) = first.headers.getRawHeaders("set-cookie")
        (two,) = second.headers.getRawHeaders("set-cookie")
        self.assertNotEqual(one.split("=")[0], two.split("=")[0])
        self.assertGreaterEqual(len(two.split("=", 1)[1].split(";")[0]), 500)
        entries = self.server.log.entries
        self.assertEqual(entries[0].cookie_length, 0)
        self.assertGreater(entries[1].cookie_length, 500)
        self.assertEqual(entries[1].accept_encoding, "gzip")  # (treq decodes gzip)
        self.assertEqual(sorted(entries[1].to_json()), ["accept", "fault", "method", "path"])
        self.assertEqual(entries[1].to_json(details=True)["cookie_length"],
                         entries[1].cookie_length)
        self.server.cookies.on = False
        third = await Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)).request(
            b"GET", self.server.url.encode() + b"eggs/",
            Headers({b"Accept-Encoding": [b"identity"]}))
        await treq.content(third)
        self.assertIsNone(third.headers.getRawHeaders("set-cookie"))
        self.assertEqual((entries[2].cookie_length, entries[2].accept_encoding), (0, "identity"))

    async def test_claimed_size(self):
        """A file's JSON entry claims its size, another one, or none."""
        self.index.add(*make_wheel("sizes", "1.0"), claimed_size=None)
        self.index.add(*make_wheel("sizes", "2.0"), claimed_size=5)
        page = await (await self.get("/simple/sizes/", headers=JSON_HEADERS)).json()
        first, second = page["files"]
        self.assertNotIn("size", first)
        self.assertEqual(second["size"], 5)


class RawProcessTests(SynchronousTestCase):
    """Raw answers and cookies through the process's control API."""

    def test_raw_and_cookies(self):
        """raw() serves those bytes until clear_raw(); cookies() and requests(details=True)."""
        upstream = UpstreamProcess(os.path.abspath(self.mktemp()))
        self.addCleanup(upstream.kill)
        upstream.add_wheel("eggs", "2.0", claimed_size=None)
        upstream.start()
        upstream.raw("/simple/odd/", b"1,", prefix=b"[", suffix=b"1]", repeat=100_000,
                     headers=[("Content-Type", "application/json")])
        status, headers, body = fetch(upstream.url + "odd/")
        self.assertEqual((status, headers["Content-Type"], len(json.loads(body))),
                         (200, "application/json", 100_001))
        upstream.clear_raw("/simple/odd/")
        self.assertEqual(fetch(upstream.url + "odd/")[0], 404)
        self.assertNotIn("size", json.loads(fetch(upstream.url + "eggs/", V1_JSON)[2])
                         ["files"][0])
        upstream.cookies(True)
        _, headers, _ = fetch(upstream.url + "eggs/")
        self.assertTrue(headers["Set-Cookie"].startswith("c"))
        upstream.cookies(False)
        self.assertIsNone(fetch(upstream.url + "eggs/")[1]["Set-Cookie"])
        last = upstream.requests(details=True)[-1]
        self.assertEqual((last["path"], last["cookie_length"], last["accept_encoding"]),
                         ("/simple/eggs/", 0, "identity"))
        self.assertEqual(upstream.sending(), 0)
