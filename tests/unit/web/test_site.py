"""
Tests for L{pypid.web.site}: where request bodies go, and the answers given
before a body is read, driven through a real L{HTTPChannel} over a
L{StringTransport}.
"""

import base64
import os

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pypid.web.identity.request_auth import IRequestAuth
from pypid.web.server.body import MAX_PLAIN_BODY, PlainBody, SpooledForm
from pypid.web.site import PypidSite
from pypid.web.web_inputs import SiteSettings
from tests.harness.tls import tls_connection

AUTH = b"Authorization: Basic " + base64.b64encode(b"alice:secret") + b"\r\n"
MULTIPART = b"Content-Type: multipart/form-data; boundary=xyz\r\n"
FORM = b"--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--xyz--\r\n"


class _Recorder(Resource):
    """A resource that records the requests it renders."""

    isLeaf = True

    def __init__(self):
        Resource.__init__(self)
        self.seen = []

    def render(self, request):
        self.seen.append(request)
        self.content = request.content
        if isinstance(request.content, SpooledForm):
            self.form = request.content.form()
        return b"rendered"


class SiteTests(SynchronousTestCase):
    """Tests for L{PypidSite} and its request class."""

    def setUp(self):
        self.resource = _Recorder()
        self.spool = os.path.abspath(self.mktemp())
        os.makedirs(self.spool)
        self.site = PypidSite(self.resource, SiteSettings(1 << 20), self.spool, reactor=Clock())
        self.site.startFactory()
        self.addCleanup(self.site.stopFactory)
        self.channel = self.site.buildProtocol(None)
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)

    def send(self, data):
        """Feed raw bytes to the server side of the connection."""
        self.channel.dataReceived(data)

    def fresh(self, data):
        """Feed raw bytes to a new connection; return its transport."""
        channel = self.site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(data)
        return transport

    # -- cross-site changes (issue 31; the decision: tests.unit.core.access.test_cross_site) --

    def test_upload_refused(self):
        """A foreign upload form: 403 naming the header, nothing spooled, nothing rendered."""
        transport = self.fresh(
            b"POST /legacy/ HTTP/1.1\r\nHost: pypi.example\r\nOrigin: https://evil.example\r\n"
            + AUTH + MULTIPART + b"Content-Length: %d\r\n\r\n" % len(FORM) + FORM)
        answer = transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 403 Origin: a browser sent"), answer)
        self.assertEqual(os.listdir(self.spool), [])
        self.assertEqual(self.resource.seen, [])

    def test_small_form_refused(self):
        """A foreign yank or delete form: 403, never rendered."""
        body = b"reason=gone"
        transport = self.fresh(
            b"POST /api/yank HTTP/1.1\r\nHost: pypi.example\r\nSec-Fetch-Site: cross-site\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n" + AUTH +
            b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 403 Sec-Fetch-Site: "))
        self.assertEqual(self.resource.seen, [])

    def test_own_and_clients_taken(self):
        """The server's own pages, and clients without either header, reach the resource."""
        for extra in (b"", b"Origin: http://pypi.example\r\n", b"Sec-Fetch-Site: same-origin\r\n"):
            transport = self.fresh(
                b"POST /api/yank HTTP/1.1\r\nHost: pypi.example\r\n" + extra +
                b"Content-Length: 0\r\n\r\n")
            self.assertIn(b"rendered", transport.value(), extra)
        self.assertEqual(len(self.resource.seen), 3)
        transport = self.fresh(b"GET / HTTP/1.1\r\nHost: pypi.example\r\n"
                              b"Sec-Fetch-Site: cross-site\r\n\r\n")
        self.assertIn(b"rendered", transport.value())

    def test_upload_too_large_declared(self):
        """An upload declaring a length over the limit gets 413 before any body, and is closed."""
        self.send(b"POST /legacy/ HTTP/1.1\r\nHost: x\r\n" + AUTH + MULTIPART +
                  b"Content-Length: %d\r\n\r\n" % (200 << 20))
        answer = self.transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer)
        self.assertIn(b"larger than the limit of 1 MiB", answer)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.resource.seen, [])

    def test_upload_without_credentials(self):
        """An upload without credentials gets 401 and a Basic challenge before its body."""
        self.send(b"POST / HTTP/1.1\r\nHost: x\r\n" + MULTIPART + b"Content-Length: 10\r\n\r\n")
        answer = self.transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 401 "), answer)
        self.assertIn(b'WWW-Authenticate: Basic realm="pypid"', answer)
        self.send(b"0123456789")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.resource.seen, [])

    def test_upload_streams(self):
        """An upload's body goes to a L{SpooledForm}, also for an absolute-form target."""
        body = b"--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--xyz--\r\n"
        self.send(b"POST http://x/legacy/ HTTP/1.1\r\nHost: x\r\n" + AUTH + MULTIPART +
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        [request] = self.resource.seen
        self.assertIsInstance(self.resource.content, SpooledForm)
        self.assertEqual(IRequestAuth(request).credentials, ("alice", "secret"))
        self.assertEqual(self.resource.form.get("a"), "1")

    def test_other_body_too_large_declared(self):
        """A non-upload request declaring a body over 1 MiB gets 413 before the body."""
        self.send(b"POST /api/files/x/yank HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: %d\r\n\r\n" % (MAX_PLAIN_BODY + 1))
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 413 "))
        self.assertEqual(self.resource.seen, [])

    def test_large_upload_to_simple(self):
        """
        A large upload sent to an index's simple pages (the URL pip reads)
        is told before its body where uploads go, not that it is too large:
        the index's root URL, as the client reached it, or under
        C{base_url}; with named indexes, the named one's.
        """
        head = (MULTIPART + AUTH + b"Content-Length: %d\r\n\r\n" % (MAX_PLAIN_BODY + 1))
        for settings, named, path, root in (
                (SiteSettings(1 << 20), False, b"/simple/", b"http://pypi.example/"),
                (SiteSettings(1 << 20), True, b"/simple", b"http://pypi.example/"),
                (SiteSettings(1 << 20), True, b"/prod/simple/x/", b"http://pypi.example/prod/"),
                (SiteSettings(1 << 20, base_url="https://pypi.internal/"), True,
                 b"/prod/simple/", b"https://pypi.internal/prod/")):
            self.site = PypidSite(self.resource, settings, self.spool, reactor=Clock(),
                                  index_uploads=named)
            answer = self.fresh(b"POST " + path + b" HTTP/1.1\r\nHost: pypi.example\r\n"
                                + head).value()
            self.assertTrue(answer.startswith(
                b"HTTP/1.1 405 this URL does not take POST; it takes GET, HEAD; uploads go "
                b"to the index's root URL, " + root + b"\r\n"), answer)
            self.assertIn(b"\r\nallow: GET, HEAD\r\n", answer)
        self.assertEqual(self.resource.seen, [])

    def test_large_upload_to_no_index(self):
        """
        A large upload to C{/NAME/} of a server without named indexes is
        told there is no such index before its body, not that it is too
        large (a server with named indexes takes it, for its gate).
        """
        answer = self.fresh(b"POST /nosuch/legacy/ HTTP/1.1\r\nHost: pypi.example\r\n"
                            + MULTIPART + AUTH +
                            b"Content-Length: %d\r\n\r\n" % (MAX_PLAIN_BODY + 1)).value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 404 no such index\r\n"), answer)
        self.assertEqual(self.resource.seen, [])

    def test_other_body_too_large_chunked(self):
        """A chunked non-upload body is cut off with 413 as soon as it passes 1 MiB."""
        self.send(b"POST /api/files/x/yank HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"a" * (64 << 10)
        for _ in range(17):
            self.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 413 "))
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.resource.seen, [])

    def test_small_other_body(self):
        """A small non-upload body is read as Twisted reads it."""
        self.send(b"POST /api/files/x/yank HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: 8\r\n\r\nreason=x")
        [request] = self.resource.seen
        self.assertIsInstance(self.resource.content, PlainBody)
        self.assertEqual(request.args, {b"reason": [b"x"]})

    def test_quiet_headers(self):
        """Answers carry a Date header and no Server header."""
        self.send(b"GET /simple/ HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = self.transport.value()
        self.assertIn(b"\r\nDate: ", answer)
        self.assertNotIn(b"\r\nServer: ", answer)


class EarlyAnswerOverTLSTests(SynchronousTestCase):
    """Answers before the body, over a real TLS layer: they arrive and the connection closes."""

    def setUp(self):
        self.clock = Clock()
        self.spool = os.path.abspath(self.mktemp())
        os.makedirs(self.spool)
        self.resource = _Recorder()
        self.site = PypidSite(self.resource, SiteSettings(1 << 20), self.spool, reactor=self.clock)
        self.site.startFactory()
        self.addCleanup(self.site.stopFactory)

    def exchange(self, data):
        """Send C{data} over a new TLS connection; return the client once all is moved."""
        client, _, pump = tls_connection(self.site, self.clock)
        client.transport.write(data)
        pump.flush()
        return client

    def test_upload_without_credentials(self):
        """A 401 before a small body: the body is read, then the connection closes."""
        client = self.exchange(b"POST /legacy/ HTTP/1.1\r\nHost: x\r\n" + MULTIPART +
                               b"Content-Length: 10\r\n\r\n0123456789")
        self.assertTrue(client.received.startswith(b"HTTP/1.1 401 "), client.received[:80])
        self.assertIsNotNone(client.lost)

    def test_upload_too_large_declared(self):
        """A 413 for a declared length over the limit: the connection closes at once."""
        client = self.exchange(b"POST /legacy/ HTTP/1.1\r\nHost: x\r\n" + AUTH + MULTIPART +
                               b"Content-Length: %d\r\n\r\n" % (200 << 20))
        self.assertTrue(client.received.startswith(b"HTTP/1.1 413 "), client.received[:80])
        self.assertIsNotNone(client.lost)
        self.assertEqual(self.resource.seen, [])

    def test_other_body_too_large_declared(self):
        """A 413 for a non-upload body over 1 MiB: the body is thrown away, then the close."""
        length = MAX_PLAIN_BODY + 1
        client = self.exchange(b"POST /api/files/x/yank HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: %d\r\n\r\n" % length + b"x" * length)
        self.assertTrue(client.received.startswith(b"HTTP/1.1 413 "), client.received[:80])
        self.assertIsNotNone(client.lost)


class _Gate:
    """An upload gate whose verifications the test answers."""

    def __init__(self):
        self.pending = []

    def gate_upload(self, request, credentials, index=None):
        from twisted.internet.defer import Deferred
        d = Deferred()
        self.pending.append((credentials, d))
        return d


class VerifyBeforeBodyTests(SynchronousTestCase):
    """Tests that an upload's credentials are verified before its body is read."""

    def setUp(self):
        self.resource = _Recorder()
        self.spool = os.path.abspath(self.mktemp())
        os.makedirs(self.spool)
        self.gate = _Gate()
        self.site = PypidSite(self.resource, SiteSettings(1 << 20), self.spool, reactor=Clock(),
                              access=self.gate)
        self.site.startFactory()
        self.addCleanup(self.site.stopFactory)
        self.channel = self.site.buildProtocol(None)
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)

    def headers(self, length=1000, expect=False):
        return (b"POST /legacy/ HTTP/1.1\r\nHost: x\r\n" + AUTH + MULTIPART +
                (b"Expect: 100-continue\r\n" if expect else b"") +
                b"Content-Length: %d\r\n\r\n" % length)

    def test_paused_until_verified(self):
        """Reading stops at the end of the headers and resumes once the credentials pass."""
        self.channel.dataReceived(self.headers())
        [(credentials, d)] = self.gate.pending
        self.assertEqual(credentials, ("alice", "secret"))
        self.assertEqual(self.transport.producerState, "paused")
        d.callback(object())
        self.assertEqual(self.transport.producerState, "producing")

    def test_refused_before_body(self):
        """Wrong credentials get 401 alone (no C{100 Continue}) before any of the body is spooled."""
        from pypid.core.util.http_errors import Unauthorized
        self.channel.dataReceived(self.headers(length=512 << 10, expect=True))
        [(_, d)] = self.gate.pending
        self.assertEqual(self.transport.value(), b"")
        d.errback(Unauthorized("wrong user name or password"))
        answer = self.transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 401 wrong user name or password"), answer)
        self.assertIn(b'WWW-Authenticate: Basic realm="pypid"', answer)
        # The small body is read and thrown away, then the connection closed.
        self.channel.dataReceived(b"x" * (512 << 10))
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(os.listdir(self.spool), [])
        self.assertEqual(self.resource.seen, [])

    def test_client_gone_before_verdict(self):
        """A client that leaves while its credentials are checked is answered by no one, quietly."""
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        from pypid.core.util.http_errors import Unauthorized
        for verdict in (lambda d: d.errback(Unauthorized("wrong user name or password")),
                        lambda d: d.callback(object())):
            self.channel.dataReceived(self.headers(length=512 << 10, expect=True))
            [(_, d)] = self.gate.pending
            self.gate.pending.clear()
            self.channel.connectionLost(Failure(ConnectionDone()))
            verdict(d)
            self.assertEqual(self.transport.value(), b"")
            self.assertEqual(self.resource.seen, [])
            self.channel = self.site.buildProtocol(None)
            self.transport = StringTransport()
            self.channel.makeConnection(self.transport)

    def test_no_continue_after_early_answer(self):
        """An upload refused before its body is not invited to send it."""
        self.channel.dataReceived(
            b"POST /legacy/ HTTP/1.1\r\nHost: x\r\n" + MULTIPART +
            b"Expect: 100-continue\r\nContent-Length: 10\r\n\r\n")
        answer = self.transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 401 "), answer)
        self.assertNotIn(b"100 Continue", answer)


    def test_continue_once_verified(self):
        """C{100 Continue} goes out when the credentials pass, not before, and the body is read."""
        self.channel.dataReceived(self.headers(length=len(FORM), expect=True))
        [(_, d)] = self.gate.pending
        self.assertEqual(self.transport.value(), b"")
        d.callback(object())
        self.assertEqual(self.transport.value(), b"HTTP/1.1 100 Continue\r\n\r\n")
        self.assertEqual(self.transport.producerState, "producing")
        self.channel.dataReceived(FORM)
        self.assertEqual(self.resource.form.get("a"), "1")

    def test_continue_at_once_when_verified_at_once(self):
        """Credentials verified before the headers are done (cached) get C{100 Continue} at once."""
        self.gate.gate_upload = lambda request, credentials, index=None: succeed(object())
        self.channel.dataReceived(self.headers(length=10, expect=True))
        self.assertEqual(self.transport.value(), b"HTTP/1.1 100 Continue\r\n\r\n")

    def test_no_continue_without_expectation(self):
        """A client that did not ask for C{100 Continue} gets none when its credentials pass."""
        self.channel.dataReceived(self.headers(length=10))
        [(_, d)] = self.gate.pending
        d.callback(object())
        self.assertEqual(self.transport.value(), b"")

    def test_no_continue_for_http10(self):
        """An HTTP/1.0 request's expectation is ignored, as RFC 9110 requires."""
        self.channel.dataReceived(self.headers(length=10, expect=True).replace(
            b"HTTP/1.1", b"HTTP/1.0", 1))
        [(_, d)] = self.gate.pending
        d.callback(object())
        self.assertNotIn(b"100 Continue", self.transport.value())

    def test_no_continue_after_the_body(self):
        """A body that came whole with the headers is answered without a late C{100 Continue}."""
        self.channel.dataReceived(self.headers(length=len(FORM), expect=True) + FORM)
        [(_, d)] = self.gate.pending
        d.callback(object())
        answer = self.transport.value()
        self.assertNotIn(b"100 Continue", answer)
        self.assertEqual(self.resource.form.get("a"), "1")


class ExpectContinueTests(SynchronousTestCase):
    """
    C{Expect: 100-continue} against the real credential check (L{Gates}
    over a L{PasswordVerifier} whose hashing the test completes).
    """

    def setUp(self):
        from pypid.auth.hashes import hash_password
        from pypid.auth.policy import AccessModel
        from pypid.auth.throttle import LoginThrottle
        from pypid.auth.verifier import PasswordVerifier
        from pypid.web.identity.gates import Gates
        from tests.harness.fakes import FAST, PendingPool
        clock = Clock()
        self.pool = PendingPool()
        verifier = PasswordVerifier({"alice": hash_password("secret", FAST)}, clock, object(),
                                    run_in_pool=self.pool)
        access = Gates(AccessModel(), verifier, LoginThrottle(clock))
        self.resource = _Recorder()
        self.spool = os.path.abspath(self.mktemp())
        os.makedirs(self.spool)
        self.site = PypidSite(self.resource, SiteSettings(1 << 20), self.spool, reactor=clock, access=access)
        self.site.startFactory()
        self.addCleanup(self.site.stopFactory)

    def upload_headers(self, password):
        """Send an upload's headers with C{Expect: 100-continue}; return the client's transport."""
        channel = self.site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        auth = b"Authorization: Basic " + base64.b64encode(b"alice:" + password) + b"\r\n"
        channel.dataReceived(b"POST /legacy/ HTTP/1.1\r\nHost: x\r\n" + auth + MULTIPART +
                             b"Expect: 100-continue\r\nContent-Length: 100000\r\n\r\n")
        return transport

    def test_wrong_password(self):
        """A wrong password gets the 401 alone, no C{100 Continue} before or after it."""
        transport = self.upload_headers(b"wrong")
        self.assertEqual(transport.value(), b"")
        self.pool.finish()
        answer = transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 401 wrong user name or password"), answer)
        self.assertNotIn(b"100 Continue", answer)

    def test_right_password(self):
        """The right password gets C{100 Continue} once verified, and at once when cached."""
        transport = self.upload_headers(b"secret")
        self.assertEqual(transport.value(), b"")
        self.pool.finish()
        self.assertEqual(transport.value(), b"HTTP/1.1 100 Continue\r\n\r\n")
        again = self.upload_headers(b"secret")
        self.assertEqual(self.pool.pending, [])
        self.assertEqual(again.value(), b"HTTP/1.1 100 Continue\r\n\r\n")


class ThreadedBodyTests(SynchronousTestCase):
    """Tests for upload bodies fed to their sink by worker jobs."""

    def setUp(self):
        from tests.harness.fakes import QueuedRun
        self.resource = _Recorder()
        self.spool = os.path.abspath(self.mktemp())
        os.makedirs(self.spool)
        self.run = QueuedRun()
        self.site = PypidSite(self.resource, SiteSettings(1 << 20), self.spool, reactor=Clock(), run=self.run)
        self.site.startFactory()
        self.addCleanup(self.site.stopFactory)
        self.channel = self.site.buildProtocol(None)
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)

    def test_route_after_drain(self):
        """The request reaches its resource only once every chunk was fed to the sink."""
        body = b"--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--xyz--\r\n"
        self.channel.dataReceived(b"POST /legacy/ HTTP/1.1\r\nHost: x\r\n" + AUTH + MULTIPART +
                                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.assertEqual(self.resource.seen, [])
        self.run.run_all()
        [request] = self.resource.seen
        self.assertEqual(self.resource.form.get("a"), "1")

    def test_too_large_mid_stream(self):
        """A chunked upload passing the limit is answered 413 once a job finds it."""
        self.channel.dataReceived(b"POST /legacy/ HTTP/1.1\r\nHost: x\r\n" + AUTH + MULTIPART +
                                  b"Transfer-Encoding: chunked\r\n\r\n")
        head = (b"--xyz\r\nContent-Disposition: form-data; name=\"content\"; "
                b"filename=\"f.whl\"\r\n\r\n")
        self.channel.dataReceived(b"%x\r\n%s\r\n" % (len(head), head))
        chunk = b"a" * (64 << 10)
        for _ in range(20):
            self.channel.dataReceived(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.run.run_all()
            if self.transport.disconnecting:
                break
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 413 "))
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(os.listdir(self.spool), [])
        self.assertEqual(self.resource.seen, [])
