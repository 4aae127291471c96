"""Tests for L{pypid.web.server.body}: the request bodies, and answers written before a body."""

import hashlib
import os

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from pypid.web.server.body import (
    NOT_A_FORM,
    DiscardedBody,
    IRequestBody,
    PlainBody,
    SpooledForm,
    answer_before_body,
)
from pypid.web.server.multipart import FormSink
from pypid.web.server.upload_form import MultipartError, UploadTooLarge
from tests.harness.fakes import QueuedRun

BOUNDARY = b"xyz"


def body(content):
    """A multipart body with one text field and a C{content} file part."""
    return (b"--xyz\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nholy\r\n"
            b"--xyz\r\nContent-Disposition: form-data; name=\"content\"; filename=\"f.whl\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n--xyz--\r\n")


class SpooledFormTests(SynchronousTestCase):
    """Tests for L{SpooledForm}."""

    def setUp(self):
        self.spool = os.path.abspath(self.mktemp())
        os.makedirs(self.spool)
        self.run = QueuedRun()
        self.events = []
        self.errors = []

    def make(self, max_file_size=1 << 20, high=1000, low=100):
        sink = FormSink(BOUNDARY, self.spool, max_file_size=max_file_size)
        return SpooledForm(sink, self.run, lambda: self.events.append("pause"),
                            lambda: self.events.append("resume"), self.errors.append,
                            high=high, low=low)

    def feed(self, threaded, data, size=300):
        for i in range(0, len(data), size):
            threaded.write(data[i:i + size])

    def test_in_order(self):
        """Chunks reach the sink in order, one job at a time, and the form is whole."""
        content = os.urandom(5000)
        threaded = self.make(high=1 << 20)
        self.feed(threaded, body(content))
        self.assertEqual(len(self.run.pending), 1)
        drained = threaded.drained()
        self.assertNoResult(drained)
        self.run.run_all()
        self.successResultOf(drained)
        form = threaded.form()
        self.addCleanup(form.discard)
        self.assertEqual(form.get("name"), "holy")
        self.assertEqual(form.files["content"].sha256, hashlib.sha256(content).hexdigest())
        self.assertEqual(threaded.tell(), len(body(content)))

    def test_back_pressure(self):
        """Reading pauses when too much waits, and resumes once the worker caught up."""
        threaded = self.make(high=1000, low=100)
        self.feed(threaded, body(os.urandom(3000)))
        self.assertEqual(self.events, ["pause"])
        self.run.run_all()
        self.assertEqual(self.events, ["pause", "resume"])
        self.successResultOf(threaded.drained())
        threaded.form().discard()

    def test_too_large_reported(self):
        """A file over the limit is reported as soon as a job finds it, and its file removed."""
        threaded = self.make(max_file_size=100, high=1 << 20)
        self.feed(threaded, body(os.urandom(3000)))
        self.run.run_all()
        [error] = self.errors
        self.assertIsInstance(error, UploadTooLarge)
        threaded.close()
        self.assertEqual(os.listdir(self.spool), [])

    def test_close_while_busy(self):
        """Closing while a job runs discards the sink's files once the job ends."""
        threaded = self.make(high=1 << 20)
        self.feed(threaded, body(os.urandom(3000))[:-20])
        threaded.close()
        self.run.run_all()
        self.assertEqual(os.listdir(self.spool), [])
        self.successResultOf(threaded.drained())

    def test_drained_when_idle(self):
        """With nothing queued, the body counts as drained at once."""
        self.successResultOf(self.make().drained())


class PlainBodyTests(SynchronousTestCase):
    """Tests for L{PlainBody}: a small body kept in memory."""

    def test_kept(self):
        """A body under the limit is kept for Twisted to read back."""
        refused = []
        plain = PlainBody(lambda: refused.append(True), limit=10)
        plain.write(b"reason=")
        plain.write(b"x")
        plain.seek(0)
        self.assertEqual((plain.read(), plain.received, refused), (b"reason=x", 8, []))
        self.assertTrue(plain.drained().called)

    def test_too_large(self):
        """Past the limit the body is refused once and nothing more is kept."""
        refused = []
        plain = PlainBody(lambda: refused.append(True), limit=10)
        plain.write(b"x" * 8)
        plain.write(b"y" * 8)
        plain.write(b"z" * 8)
        plain.seek(0)
        self.assertEqual((plain.read(), refused, plain.received), (b"", [True], 24))

    def test_no_form(self):
        """A plain body is no upload form."""
        error = self.assertRaises(MultipartError, PlainBody(None).form)
        self.assertEqual(str(error), NOT_A_FORM)


class DiscardedBodyTests(SynchronousTestCase):
    """Tests for L{DiscardedBody}: counted and forgotten."""

    def test_counted(self):
        """Bytes are counted, never kept, and the limit is reported once."""
        over = []
        body = DiscardedBody(10, lambda: over.append(True))
        for _ in range(3):
            body.write(b"x" * 6)
        body.seek(0)
        self.assertEqual((body.received, body.tell(), body.read(), over), (18, 18, b"", [True]))
        self.assertRaises(MultipartError, body.form)
        self.assertTrue(IRequestBody.providedBy(body))


class AnswerBeforeBodyTests(SynchronousTestCase):
    """Tests for L{answer_before_body}."""

    def test_bytes(self):
        """A whole plain-text answer that closes the connection, the message as reason."""
        transport = StringTransport()
        answer_before_body(transport, 401, "authentication is required to upload",
                           [(b"WWW-Authenticate", b'Basic realm="pypid"')])
        self.assertEqual(transport.value(), (
            b"HTTP/1.1 401 authentication is required to upload\r\n"
            b'WWW-Authenticate: Basic realm="pypid"\r\n'
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 37\r\n"
            b"Connection: close\r\n\r\nauthentication is required to upload\n"))

    def test_head(self):
        """An answer to HEAD has its length but no body; a reason may be given."""
        transport = StringTransport()
        answer_before_body(transport, 301, "elsewhere", reason=b"Moved Permanently",
                           send_body=False)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 301 Moved Permanently\r\n"))
        self.assertTrue(transport.value().endswith(b"Content-Length: 10\r\nConnection: close\r\n\r\n"))
