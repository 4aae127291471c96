"""
Feeding an upload's body to its L{pypid.web.multipart.FormSink} off the reactor
thread.

Parsing, hashing (sha256, blake2b and md5) and writing an upload to its
spool file cost about half a millisecond of CPU per 64 KiB; on the reactor
thread a large upload would take that time from every other client. Here
the reactor only queues the chunks as they arrive; one job at a time, in a
worker thread, feeds what is queued to the sink, in order. When more than a
few MiB wait, reading from the connection pauses until the worker catches
up, so memory stays flat whatever the client's speed.

The sink is touched by one thread at a time: by the worker while a job
runs, and by the reactor only when no job runs.
"""

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from pypid.web.multipart import UnkeptBody

log = Logger()


class ThreadedSink(UnkeptBody):
    """
    A request body file-like object (what Twisted calls C{request.content})
    that feeds a L{FormSink} in a worker thread.

    @ivar sink: the L{pypid.web.multipart.FormSink}.
    """

    def __init__(self, sink, run, pause, resume, on_error, high=4 << 20, low=1 << 20):
        """
        @param run: C{run(f, *args) -> Deferred}, running C{f} in a thread.
        @param pause: stops reading from the connection.
        @param resume: starts reading again.
        @param on_error: called on the reactor with the sink's first error,
            as soon as a job finds one (an upload over the limit, say).
        @param high: queued bytes that pause reading.
        @param low: queued bytes under which reading resumes.
        """
        self.sink = sink
        self._run = run
        self._pause = pause
        self._resume = resume
        self._on_error = on_error
        self._high = high
        self._low = low
        self._queue = []
        self._queued = 0
        self._received = 0
        self._busy = False
        self._paused = False
        self._closed = False
        self._reported = False
        self._waiters = []

    # -- what Twisted calls ------------------------------------------------------

    def write(self, data):
        """Queue a chunk of the body; start a job if none runs."""
        if self._closed:
            return
        self._queue.append(data)
        self._queued += len(data)
        self._received += len(data)
        if not self._busy:
            self._start()
        if self._queued > self._high and not self._paused:
            self._paused = True
            self._pause()

    def close(self):
        """Forget the queue and discard the sink's files, once no job runs."""
        self._closed = True
        self._queue = []
        self._queued = 0
        if not self._busy:
            self.sink.close()

    # -- for the request and the upload route ---------------------------------------

    @property
    def error(self):
        """The sink's first error (only meaningful once drained)."""
        return self.sink.error

    def drained(self):
        """A L{Deferred} that fires once every queued chunk was fed to the sink."""
        if not self._busy and not self._queue:
            return succeed(None)
        d = Deferred()
        self._waiters.append(d)
        return d

    def finish(self):
        """The sink's L{Form}; call it once L{drained} fired."""
        return self.sink.finish()

    # -- the worker ---------------------------------------------------------------------

    def _start(self):
        batch, self._queue = self._queue, []
        size = sum(len(chunk) for chunk in batch)
        self._busy = True
        d = self._run(_feed, self.sink, batch)
        d.addErrback(lambda f: log.failure("Feeding an upload", f))
        d.addBoth(self._fed, size)

    def _fed(self, _, size):
        self._busy = False
        self._queued -= size
        if self._closed:
            self.sink.close()
        elif self.sink.error is not None and not self._reported:
            self._reported = True
            self._queue = []
            self._queued = 0
            self._on_error(self.sink.error)
        if self._paused and self._queued < self._low:
            self._paused = False
            self._resume()
        if self._queue:
            self._start()
        else:
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)


def _feed(sink, batch):
    """Feed a batch of chunks to the sink, in a worker thread."""
    for chunk in batch:
        sink.write(chunk)
