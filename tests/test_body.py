"""Tests for L{pypid.web.body}: an upload body fed to its sink in worker jobs."""

import hashlib
import os

from twisted.trial.unittest import SynchronousTestCase

from pypid.web.multipart import FormSink, UploadTooLarge
from pypid.web.body import SpooledForm
from tests.fakes import QueuedRun

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
