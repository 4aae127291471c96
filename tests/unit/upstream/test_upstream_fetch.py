"""
Tests of L{pypid.upstream.fetch}: the upstream client, against an upstream
played by a Twisted resource through treq's in-memory StubTreq.
"""

import gc
import json
import uuid
from urllib.parse import urlsplit

from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pypid.upstream.fetch import (
    ACCEPT,
    FileHosts,
    HostRefused,
    UpstreamClient,
    UpstreamError,
    UpstreamNotFound,
)
from tests.harness.distributions import make_wheel

INDEX = "https://upstream.example/simple/"
HOSTS = ("upstream.example", "files.upstream.example")
WHEEL = make_wheel("holy-grail", "1.0")
SHA = __import__("hashlib").sha256(WHEEL[1]).hexdigest()


def json_page(url=f"https://files.upstream.example/f/{WHEEL[0]}"):
    """A PEP 691 page listing the wheel."""
    return json.dumps({
        "meta": {"api-version": "1.1", "_last-serial": 7},
        "name": "holy-grail",
        "files": [{"filename": WHEEL[0], "url": url, "hashes": {"sha256": SHA},
                   "requires-python": ">=3.8", "yanked": False, "size": len(WHEEL[1])}],
        "versions": ["1.0"],
    }).encode()


def holding(marker, page):
    """
    The objects Python's collector tracks that refer to bytes holding
    C{marker}, other than C{marker} itself and C{page} (the upstream's own).
    """
    mine = (id(marker), id(page))
    found = []
    for holder in gc.get_objects():
        if any(isinstance(x, bytes) and marker in x and id(x) not in mine
               for x in gc.get_referents(holder)):
            found.append(holder)
    return found


class Upstream(Resource):
    """Answers from a table of path -> (status, headers, body); records requests."""

    isLeaf = True

    def __init__(self):
        Resource.__init__(self)
        self.routes = {}
        self.requests = []

    def render_GET(self, request):
        self.requests.append((request.getHost(), request.uri.decode(),
                              request.getHeader(b"accept")))
        host = request.getHeader(b"host").decode()
        status, headers, body = self.routes.get(
            (host, request.uri.decode()), (404, {}, b"not here"))
        request.setResponseCode(status)
        for name, value in headers.items():
            request.setHeader(name, value)
        return body


def host_allowed(url, hosts):
    """Whether C{url} may be fetched under C{hosts}."""
    return FileHosts(tuple(hosts)).allows(url)


class HostAllowedTests(SynchronousTestCase):
    """L{FileHosts}: only http(s) URLs on the configured hosts, or any with C{*}."""

    def test_default_ports(self):
        """A host without a port allows the scheme's default port only."""
        self.assertTrue(host_allowed("https://upstream.example/x", HOSTS))
        self.assertTrue(host_allowed("http://upstream.example:80/x", HOSTS))
        self.assertFalse(host_allowed("https://upstream.example:8443/x", HOSTS))

    def test_explicit_port(self):
        """C{host:port} allows that port only."""
        hosts = ("127.0.0.1:8081",)
        self.assertTrue(host_allowed("http://127.0.0.1:8081/simple/", hosts))
        self.assertFalse(host_allowed("http://127.0.0.1:8082/simple/", hosts))
        self.assertFalse(host_allowed("http://127.0.0.1/simple/", hosts))

    def test_refused(self):
        """Other hosts, other schemes, credentials and bad ports are refused."""
        for url in ("https://evil.example/x", "ftp://upstream.example/x",
                    "https://user@upstream.example/x", "https://upstream.example:99999/x",
                    "file:///etc/passwd", "https://upstream.example.evil.example/x"):
            self.assertFalse(host_allowed(url, HOSTS), url)

    def test_case(self):
        """Host names compare without case."""
        self.assertTrue(host_allowed("https://UPSTREAM.example/x", HOSTS))

    def test_any_public(self):
        """
        With C{*}, any http(s) host without credentials is allowed, but only
        the hosts written out are named (reached at any address).
        """
        hosts = FileHosts(("upstream.example", "*", "10.0.0.7:8080"))
        self.assertTrue(hosts.any_public)
        self.assertTrue(hosts.allows("https://files.elsewhere.example/f/x.whl"))
        self.assertTrue(hosts.allows("http://169.254.169.254/latest/"))
        for url in ("ftp://files.example/x", "https://user@files.example/x", "file:///x"):
            self.assertFalse(hosts.allows(url), url)
        self.assertTrue(hosts.names("https", "UPSTREAM.example", 443))
        self.assertTrue(hosts.names("http", "10.0.0.7", 8080))
        self.assertFalse(hosts.names("https", "files.elsewhere.example", 443))
        self.assertFalse(hosts.names("http", "10.0.0.7", 80))
        self.assertFalse(hosts.names("https", "*", 443))
        self.assertFalse(FileHosts(tuple(HOSTS)).any_public)


class _Logged:
    """Keeps every event logged during the test in C{logged}."""

    def setUp(self):
        self.logged = []
        from twisted.logger import globalLogPublisher
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)


class RefusalLogTests(_Logged, SynchronousTestCase):
    """A refused host is an error naming the key to set, and one log line per host."""

    def warnings(self):
        from twisted.logger import formatEvent
        return [formatEvent(e) for e in self.logged if "Not fetching" in e.get("log_format", "")]

    def test_named_hosts_only(self):
        """Without C{*}, another host is refused, naming the section's C{hosts}, logged once."""
        client = UpstreamClient(RequestTraversalAgent(Upstream()), Clock(), INDEX, HOSTS,
                                section="upstream:vendor")
        for _ in range(3):
            failure = self.failureResultOf(
                ensureDeferred(client.open("https://files.elsewhere.example/x.whl")),
                UpstreamError)
        self.assertIn("files.elsewhere.example is not an upstream host pypid may use; "
                      "set [upstream:vendor] hosts = ", str(failure.value))
        self.assertEqual(len(self.warnings()), 1)
        self.assertIn("files.elsewhere.example", self.warnings()[0])

        self.failureResultOf(ensureDeferred(client.open("https://other.example/y.whl")))
        self.assertEqual(len(self.warnings()), 2)

    def private_client(self, section="upstream"):
        """A client whose agent finds every host at a private address."""
        from twisted.internet.defer import fail

        from pypid.http.public_only import NotPublic

        class Private:
            def request(self, method, url, *args, **kwargs):
                return fail(NotPublic(urlsplit(url.decode()).hostname, "10.1.2.3"))
        return UpstreamClient(Private(), Clock(), INDEX, ("upstream.example", "*"),
                              section=section)

    def test_not_public(self):
        """
        A host the connection finds at a private address: the entry to
        name in C{hosts} (with its port off the scheme's default), logged
        once per host; the refusal is a L{HostRefused}.
        """
        client = self.private_client()
        for _ in range(2):
            failure = self.failureResultOf(
                ensureDeferred(client.open("https://files.elsewhere.example/x.whl")),
                HostRefused)
            self.failureResultOf(
                ensureDeferred(client.open("https://files.elsewhere.example/y.whl")),
                HostRefused)
        # (the whole line to write: * kept, which the host alone would drop,
        # and with it the public file hosts; the upstream's own host is
        # always named, and left out)
        self.assertEqual(str(failure.value),
                         "files.elsewhere.example resolves to 10.1.2.3, not a public address; "
                         "if it is a file host you trust, set [upstream] hosts = * "
                         "files.elsewhere.example")
        self.assertEqual(self.warnings(), [
            "Not fetching from files.elsewhere.example: files.elsewhere.example resolves to "
            "10.1.2.3, not a public address; if it is a file host you trust, set [upstream] "
            "hosts = * files.elsewhere.example"])
        failure = self.failureResultOf(
            ensureDeferred(client.open("http://files.elsewhere.example:8080/x.whl")),
            HostRefused)
        self.assertTrue(str(failure.value).endswith(
            "; if it is a file host you trust, set [upstream] hosts = * "
            "files.elsewhere.example:8080"), str(failure.value))
        self.assertEqual(len(self.warnings()), 2)

    def test_not_public_keeps_other_hosts(self):
        """
        The line of C{hosts} a refused host is told to write keeps every
        other entry in force, in their order, the new one last.
        """
        client = self.private_client()
        client.reconfigure(("upstream.example", "files.corp.example", "*"), None)
        failure = self.failureResultOf(
            ensureDeferred(client.open("https://localhost:18081/x.whl")), HostRefused)
        self.assertTrue(str(failure.value).endswith(
            "set [upstream] hosts = files.corp.example * localhost:18081"), str(failure.value))
        self.assertEqual(failure.value.advice, "if it is a file host you trust, set [upstream] "
                                               "hosts = files.corp.example * localhost:18081")
        client.reconfigure(("upstream.example", "files.corp.example"), None)
        failure = self.failureResultOf(
            ensureDeferred(client.open("https://files.elsewhere.example/x.whl")), HostRefused)
        self.assertEqual(str(failure.value),
                         "files.elsewhere.example is not an upstream host pypid may use; set "
                         "[upstream] hosts = files.corp.example files.elsewhere.example "
                         "(or add *: any host at a public address)")

    def test_not_public_ipv6(self):
        """An IPv6 address cannot be named in C{hosts}: the advice says so, naming the section."""
        client = self.private_client("upstream:vendor")
        failure = self.failureResultOf(
            ensureDeferred(client.open("http://[fd00::7]:8080/x.whl")), HostRefused)
        self.assertTrue(str(failure.value).endswith(
            "; [upstream:vendor] hosts names host names and IPv4 addresses only"),
            str(failure.value))

    def test_logged_again_after_reconfigure(self):
        """
        A reload that gives new hosts (or credentials) forgets which hosts
        were logged: each refused host is logged once more.
        """
        client = self.private_client()
        for _ in range(2):
            self.failureResultOf(
                ensureDeferred(client.open("https://files.elsewhere.example/x.whl")))
        self.assertEqual(len(self.warnings()), 1)
        client.reconfigure(("upstream.example", "*", "other.example"), None)
        for _ in range(2):
            self.failureResultOf(
                ensureDeferred(client.open("https://files.elsewhere.example/x.whl")))
        self.assertEqual(len(self.warnings()), 2)


class AccessLogTests(_Logged, SynchronousTestCase):
    """An upstream refusing pypid (401, 403): one log line for the operator, no secret."""

    def refused_line(self):
        from twisted.logger import formatEvent
        return [formatEvent(e) for e in self.logged
                if "answered {code}" in e.get("log_format", "")]

    def test_wrong_credentials_logged_once(self):
        """
        The line names the upstream, the status and the keys to check,
        not the secret; once until a page comes, then again.
        """
        from pypid.config.upstream_settings import UpstreamCredentials
        upstream = Upstream()
        upstream.routes[("upstream.example", "/simple/holy-grail/")] = (401, {}, b"no")
        client = UpstreamClient(RequestTraversalAgent(upstream), Clock(), INDEX, HOSTS,
                                credentials=UpstreamCredentials("svc", "s3cret-value"))
        for _ in range(3):
            failure = self.failureResultOf(ensureDeferred(client.page("holy-grail")),
                                           UpstreamError)
        self.assertEqual(str(failure.value), "the upstream answered 401 for holy-grail")
        [line] = self.refused_line()
        self.assertEqual(line, "The upstream https://upstream.example/simple/ answered 401 for "
                               "holy-grail: check [upstream] username and password_file (or "
                               "token_file): the upstream refused them")
        self.assertNotIn("s3cret-value", "".join(str(e) for e in self.logged))
        # A page comes: the next refusal is logged again.
        upstream.routes[("upstream.example", "/simple/holy-grail/")] = (
            200, {"Content-Type": "text/html"}, b"<html><body></body></html>")
        self.successResultOf(ensureDeferred(client.page("holy-grail")))
        upstream.routes[("upstream.example", "/simple/holy-grail/")] = (403, {}, b"no")
        self.failureResultOf(ensureDeferred(client.page("holy-grail")), UpstreamError)
        self.assertEqual(len(self.refused_line()), 2)
        self.assertIn("answered 403", self.refused_line()[1])


class ClientTests(SynchronousTestCase):
    """L{UpstreamClient} pages and files."""

    def setUp(self):
        self.upstream = Upstream()
        self.stub = RequestTraversalAgent(self.upstream)
        self.clock = Clock()
        self.client = UpstreamClient(self.stub, self.clock, INDEX, HOSTS, timeout=5,
                                     max_page_size=1 << 16)

    def route(self, url, status=200, headers=None, body=b""):
        """Make the upstream answer C{url}."""
        from urllib.parse import urlsplit
        parts = urlsplit(url)
        self.upstream.routes[(parts.netloc, parts.path)] = (status, headers or {}, body)

    def result(self, coroutine):
        """Run C{coroutine} against the stub; return its Deferred once settled."""
        d = ensureDeferred(coroutine)
        self.stub.flush()
        return d

    def test_json_page(self):
        """A PEP 691 page is asked for with the right Accept and parsed."""
        self.route(INDEX + "holy-grail/", headers={
            b"content-type": b"application/vnd.pypi.simple.v1+json"}, body=json_page())
        page = self.successResultOf(self.result(self.client.page("holy-grail")))
        self.assertEqual([f.filename for f in page.files], [WHEEL[0]])
        self.assertEqual(page.files[0].sha256, SHA)
        self.assertEqual(page.last_serial, 7)
        self.assertEqual(self.upstream.requests[0][2].decode(), ACCEPT)

    def test_html_page(self):
        """An HTML page is parsed too, relative links resolved against it."""
        body = (f'<html><body><a href="../../f/{WHEEL[0]}#sha256={SHA}" '
                f'data-requires-python="&gt;=3.8">{WHEEL[0]}</a></body></html>').encode()
        self.route(INDEX + "holy-grail/", headers={b"content-type": b"text/html"}, body=body)
        page = self.successResultOf(self.result(self.client.page("holy-grail")))
        self.assertEqual(page.files[0].url, f"https://upstream.example/f/{WHEEL[0]}")
        self.assertEqual(page.files[0].requires_python, ">=3.8")

    def test_not_found(self):
        """A 404 is L{UpstreamNotFound}."""
        self.route(INDEX + "nothing/", status=404)
        self.failureResultOf(self.result(self.client.page("nothing")), UpstreamNotFound)

    def test_server_error(self):
        """A 5xx is an L{UpstreamError} naming the status."""
        self.route(INDEX + "holy-grail/", status=503, body=b"down")
        failure = self.failureResultOf(self.result(self.client.page("holy-grail")),
                                       UpstreamError)
        self.assertIn("503", str(failure.value))

    def test_too_large(self):
        """A page over the size cap is refused."""
        self.route(INDEX + "holy-grail/", headers={b"content-type": b"text/html"},
                   body=b"<html>" + b" " * (1 << 17) + b"</html>")
        failure = self.failureResultOf(self.result(self.client.page("holy-grail")),
                                       UpstreamError)
        self.assertIn("more than", str(failure.value))

    def test_unusable_page(self):
        """An answer that is not an index page (another content type) is refused."""
        self.route(INDEX + "holy-grail/", headers={b"content-type": b"image/png"}, body=b"x")
        failure = self.failureResultOf(self.result(self.client.page("holy-grail")),
                                       UpstreamError)
        self.assertIn("unusable", str(failure.value))

    def test_refused_page_freed_at_once(self):
        """
        The bytes of a refused page (more entries than C{max_entries})
        are freed as soon as the refusal is answered: no reference cycle
        (a traceback's frames, the body reader and its deadline) keeps
        them for Python's cyclic collector, which runs when it will, so
        pages of many megabytes stayed in the daemon's memory for a
        while, more or fewer of them (L{tests.e2e.test_upstream_hostile}
        measures it).
        """
        self.assert_refused_page_freed(run=None)

    def test_refused_page_parsed_aside_freed_at_once(self):
        """
        So it is when the page is parsed aside (in a thread, in the
        daemon): the parser's error, and the frames of its traceback that
        hold the page, are not kept with the refusal.
        """
        self.assert_refused_page_freed(run=maybeDeferred)

    def assert_refused_page_freed(self, run):
        marker = f"refused-page-{uuid.uuid4().hex}".encode()
        files = [{"filename": f"holy_grail-1.{n}-py3-none-any.whl",
                  "url": f"{marker.decode()}/{n}", "hashes": {}} for n in range(3)]
        page = json.dumps({"meta": {"api-version": "1.1"}, "name": "holy-grail",
                           "files": files}).encode()
        self.route(INDEX + "holy-grail/", headers={
            b"content-type": b"application/vnd.pypi.simple.v1+json"}, body=page)
        client = UpstreamClient(self.stub, self.clock, INDEX, HOSTS, timeout=5, max_entries=2,
                                run=run)
        self.addCleanup(gc.enable)
        gc.disable()
        failure = self.failureResultOf(self.result(client.page("holy-grail")), UpstreamError)
        self.assertIn("more than 2 entries", str(failure.value))
        del failure
        self.maxDiff = None
        self.assertEqual(holding(marker, page), [])

    def test_redirect_within_hosts(self):
        """A redirect to an allowed host is followed, and the final URL is the base."""
        self.route(INDEX + "holy-grail/", status=301,
                   headers={b"location": b"https://files.upstream.example/idx/holy-grail/"})
        body = f'<a href="{WHEEL[0]}#sha256={SHA}">x</a>'.encode()
        self.route("https://files.upstream.example/idx/holy-grail/",
                   headers={b"content-type": b"text/html"}, body=body)
        page = self.successResultOf(self.result(self.client.page("holy-grail")))
        self.assertEqual(page.files[0].url,
                         f"https://files.upstream.example/idx/holy-grail/{WHEEL[0]}")

    def test_redirect_elsewhere_refused(self):
        """A redirect to another host is not followed."""
        self.route(INDEX + "holy-grail/", status=302,
                   headers={b"location": b"https://evil.example/holy-grail/"})
        failure = self.failureResultOf(self.result(self.client.page("holy-grail")),
                                       UpstreamError)
        self.assertIn("evil.example", str(failure.value))
        self.assertEqual(len(self.upstream.requests), 1)

    def test_no_downgrade(self):
        """A redirect from https to plain http is refused, even on an allowed host."""
        self.route(INDEX + "holy-grail/", status=302,
                   headers={b"location": b"http://upstream.example/simple/holy-grail/"})
        failure = self.failureResultOf(self.result(self.client.page("holy-grail")),
                                       UpstreamError)
        self.assertIn("plain http", str(failure.value))

    def test_open_file(self):
        """A file on an allowed host is opened, its body left to the caller."""
        url = f"https://files.upstream.example/f/{WHEEL[0]}"
        self.route(url, body=WHEEL[1])
        response = self.successResultOf(self.result(self.client.open(url)))
        self.assertEqual(response.code, 200)

    def test_open_refuses_other_hosts(self):
        """A file URL on a host not allowed is refused without a request."""
        failure = self.failureResultOf(
            self.result(self.client.open("https://evil.example/x.whl")), UpstreamError)
        self.assertIn("not an upstream host", str(failure.value))
        self.assertEqual(self.upstream.requests, [])

    def test_timeout(self):
        """No answer within the deadline: an L{UpstreamError}, and no timer left."""
        class Silent:
            def request(self, *args, **kwargs):
                self.d = Deferred()
                return self.d
        client = UpstreamClient(Silent(), self.clock, INDEX, HOSTS, timeout=5)
        d = ensureDeferred(client.page("holy-grail"))
        self.assertNoResult(d)
        self.clock.advance(5)
        failure = self.failureResultOf(d, UpstreamError)
        self.assertIn("did not answer within 5 s", str(failure.value))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_connection_refused(self):
        """A connection error is an L{UpstreamError} naming the host."""
        from twisted.internet.defer import fail
        from twisted.internet.error import ConnectionRefusedError

        class Refusing:
            def request(self, *args, **kwargs):
                return fail(ConnectionRefusedError())
        client = UpstreamClient(Refusing(), self.clock, INDEX, HOSTS)
        failure = self.failureResultOf(ensureDeferred(client.page("holy-grail")),
                                       UpstreamError)
        self.assertIn("cannot reach the upstream at upstream.example", str(failure.value))


class CheckTests(SynchronousTestCase):
    """L{pypid.upstream.check}: one page, one file, one line saying what to set."""

    def setUp(self):
        self.upstream = Upstream()
        self.stub = RequestTraversalAgent(self.upstream)
        self.client = UpstreamClient(self.stub, Clock(), INDEX, HOSTS, timeout=5)

    def route(self, url, status=200, headers=None, body=b""):
        from urllib.parse import urlsplit
        parts = urlsplit(url)
        self.upstream.routes[(parts.netloc, parts.path)] = (status, headers or {}, body)

    def check(self):
        from pypid.upstream.check import check
        d = ensureDeferred(check(self.client, "default", "upstream", "holy-grail", 1 << 20))
        self.stub.flush()
        return self.successResultOf(d)

    def page(self):
        self.route(INDEX + "holy-grail/", headers={
            b"content-type": b"application/vnd.pypi.simple.v1+json"}, body=json_page())

    def test_works(self):
        """The page and its file: works, naming the file, its host and its size."""
        self.page()
        self.route(f"https://files.upstream.example/f/{WHEEL[0]}", body=WHEEL[1])
        found = self.check()
        self.assertTrue(found.ok)
        self.assertEqual(found.line, f"default: works: the page of holy-grail lists 1 file, and "
                                     f"{WHEEL[0]} came whole from files.upstream.example "
                                     f"({len(WHEEL[1]):,} bytes, sha256 checked)")

    def test_wrong_bytes(self):
        """A file that is not what its page's hash says is no success."""
        self.page()
        self.route(f"https://files.upstream.example/f/{WHEEL[0]}", body=WHEEL[1] + b"x")
        found = self.check()
        self.assertFalse(found.ok)
        self.assertIn("is not what the page's sha256 says", found.line)

    def test_no_project(self):
        """A 404 for the page: the upstream answers, try another project."""
        found = self.check()
        self.assertFalse(found.ok)
        self.assertIn("has no project holy-grail: check one it has", found.line)

    def test_credentials_wanted(self):
        """A 401 for the page names the credential keys."""
        self.route(INDEX + "holy-grail/", status=401)
        found = self.check()
        self.assertEqual(found.line, "default: the page of holy-grail cannot be fetched: the "
                                     "upstream answered 401 for holy-grail; if it wants to know "
                                     "who asks, set [upstream] username with password_file, or "
                                     "token_file")

    def test_file_host_refused(self):
        """A file on a host not allowed: the page came, the key to set is named."""
        self.client.reconfigure(("upstream.example",), None)
        self.page()
        found = self.check()
        self.assertFalse(found.ok)
        self.assertEqual(found.filename, WHEEL[0])
        self.assertIn("lists 1 file, but its files cannot be fetched: files.upstream.example "
                      "is not an upstream host pypid may use; set [upstream] hosts = ",
                      found.line)
