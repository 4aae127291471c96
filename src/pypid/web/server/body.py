"""
Where a request's body goes while it arrives, and how to answer before it.

Twisted writes a body into C{request.content} chunk by chunk, then rewinds it and hands the
request to its resource. L{pypid.web.site.PypidRequest} picks that object when the headers are
in: one of three L{IRequestBody}s, fed, limited, drained and closed alike.

  - L{PlainBody}: a small body kept in memory (a yank reason, a token request), refused past
    L{MAX_PLAIN_BODY};
  - L{SpooledForm}: an upload's C{multipart/form-data} body, parsed by a L{FormSink} in a
    worker thread as it arrives (the file part hashed on its way to the spool folder), so
    memory stays flat whatever the file size;
  - L{DiscardedBody}: a body counted and forgotten, answered before it (L{answer_before_body}).

Why a worker thread for uploads: parsing, hashing (sha256, blake2b and md5) and writing cost
about half a millisecond of CPU per 64 KiB; on the reactor thread a large upload would take
that time from every other client. The reactor only queues the chunks; one job at a time, in
a worker thread, feeds them to the sink in order. When more than a few MiB wait, reading
pauses until the worker catches up. The sink is touched by one thread at a time: the worker
while a job runs, the reactor only when none runs.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import ITransport
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from pypid.core.util.http_errors import reason_phrase
from pypid.jobs.run import Run
from pypid.web.server.multipart import FormSink
from pypid.web.server.upload_form import Form, MultipartError

log = Logger()


#: Largest body of any request other than an upload (a yank reason, say):
#: Twisted would parse such a body, multipart or form, in memory whole.
MAX_PLAIN_BODY = 1 << 20
PLAIN_TOO_LARGE = "the request body is larger than 1 MiB"

#: Why a body that is not C{multipart/form-data} is no upload.
NOT_A_FORM = "Content-Type: expected multipart/form-data with a boundary"


class IRequestBody(Interface):
    """
    What a request's body is written into while it arrives (Twisted's C{request.content}).
    Twisted also calls C{seek} and C{read} on it before the resource runs; bodies that keep
    nothing rewind to nothing and read as empty.
    """

    received = Attribute("How many body bytes were written so far.")

    def write(data: bytes) -> object:
        """Take the next chunk of the body; never raises."""

    def drained() -> Deferred[None]:
        """A L{Deferred} that fires once every written byte was taken in."""

    def close() -> None:
        """Forget the body and remove whatever it spooled; safe to call twice."""

    def form() -> Form:
        """
        The body parsed as an upload's L{Form}, once drained; the caller then owns its files.

        @raise MultipartError: the body is not a well-formed form within the limits
            (L{UploadTooLarge} past the size limit).
        @raise OSError: the spool folder failed.
        """


class _Unkept:
    """The file-like side Twisted asks of a body that keeps nothing to read back."""

    received = 0

    def form(self) -> Form:
        """Not an upload form: only L{SpooledForm} parses one."""
        raise MultipartError(NOT_A_FORM)

    def tell(self) -> int:
        """The number of body bytes received so far."""
        return self.received

    def seek(self, offset: int, whence: int = 0) -> None:
        """Do nothing: Twisted rewinds its content, but nothing is kept."""

    def read(self, n: int = -1) -> bytes:
        """Nothing: the body is not kept."""
        return b""


@implementer(IRequestBody)
class DiscardedBody(_Unkept):
    """
    A body counted and forgotten (answered before it arrived); C{too_much()} is called once
    past C{limit} bytes (to close the connection rather than read on).
    """

    def __init__(self, limit: int = 0,
                 too_much: Callable[[], object] | None = None) -> None:
        self._limit = limit
        self._too_much = too_much

    def write(self, data: bytes) -> None:
        """Count the chunk and forget it."""
        self.received += len(data)
        if self._too_much is not None and self.received > self._limit:
            too_much, self._too_much = self._too_much, None
            too_much()

    def drained(self) -> Deferred[None]:
        """Nothing is ever pending."""
        return succeed(None)

    def close(self) -> None:
        """Nothing to remove."""


@implementer(IRequestBody)
class PlainBody(io.BytesIO):
    """
    A small body kept in memory, for Twisted to parse into C{request.args}; past C{limit},
    C{too_large()} is called once and nothing more is kept.
    """

    def __init__(self, too_large: Callable[[], object], limit: int = MAX_PLAIN_BODY) -> None:
        io.BytesIO.__init__(self)
        self._too_large: Callable[[], object] | None = too_large
        self._limit = limit
        self.received = 0

    # (BytesIO takes any buffer; Twisted writes bytes, whose length is counted)
    def write(self, data: bytes) -> int:  # type: ignore[override]
        """Keep the chunk, or refuse the body once it passes the limit."""
        self.received += len(data)
        if self._too_large is None:
            return 0
        if self.received > self._limit:
            refuse, self._too_large = self._too_large, None
            self.truncate(0)
            refuse()
            return 0
        return io.BytesIO.write(self, data)

    def drained(self) -> Deferred[None]:
        """Everything written is in memory already."""
        return succeed(None)

    def form(self) -> Form:
        """Not an upload form: only L{SpooledForm} parses one."""
        raise MultipartError(NOT_A_FORM)


@implementer(IRequestBody)
class SpooledForm(_Unkept):
    """
    An upload body, fed to a L{FormSink} in a worker thread as it arrives (see the module
    docstring).
    """

    def __init__(self, sink: FormSink, run: Run, pause: Callable[[], object],
                 resume: Callable[[], object], on_error: Callable[[BaseException], object],
                 high: int = 4 << 20, low: int = 1 << 20) -> None:
        """
        @param on_error: called on the reactor with the sink's first error, as soon as a job
            finds one (an upload over the limit, say).
        @param high: queued bytes that pause reading; C{low}, those under which it resumes.
        """
        self.sink = sink
        self._run = run
        self._pause = pause
        self._resume = resume
        self._on_error = on_error
        self._high = high
        self._low = low
        self._queue: list[bytes] = []
        self._queued = 0
        self.received = 0
        self._busy = False
        self._paused = False
        self._closed = False
        self._reported = False
        self._waiters: list[Deferred[None]] = []

    def write(self, data: bytes) -> None:
        """Queue a chunk of the body; start a job if none runs."""
        if self._closed:
            return
        self._queue.append(data)
        self._queued += len(data)
        self.received += len(data)
        if not self._busy:
            self._start()
        if self._queued > self._high and not self._paused:
            self._paused = True
            self._pause()

    def close(self) -> None:
        """Forget the queue and discard the sink's files, once no job runs."""
        self._closed = True
        self._queue = []
        self._queued = 0
        if not self._busy:
            self.sink.close()

    def drained(self) -> Deferred[None]:
        """A L{Deferred} that fires once every queued chunk was fed to the sink."""
        if not self._busy and not self._queue:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d

    def form(self) -> Form:
        """The sink's L{pypid.web.server.upload_form.Form}; call it once L{drained} fired."""
        return self.sink.finish()

    def _start(self) -> None:
        batch, self._queue = self._queue, []
        size = sum(len(chunk) for chunk in batch)
        self._busy = True
        d = self._run(_feed, self.sink, batch)
        d.addErrback(lambda f: log.failure("Feeding an upload", f))
        d.addBoth(self._fed, size)

    def _fed(self, _: object, size: int) -> None:
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


def _feed(sink: FormSink, batch: Iterable[bytes]) -> None:
    """Feed a batch of chunks to the sink, in a worker thread."""
    for chunk in batch:
        sink.write(chunk)


def answer_before_body(transport: ITransport, code: int, message: str,
                       headers: Iterable[tuple[bytes, bytes]] = (), reason: bytes | None = None,
                       send_body: bool = True) -> None:
    """
    Write a whole plain-text answer straight to C{transport}, outside any request's own answer:
    before its body was read, or when no request is complete at all. It says C{Connection:
    close}; closing is the caller's (after a small body is read and thrown away, a client
    reads the answer rather than a reset connection).

    @param headers: C{(name, value)} byte pairs of the server's own making.
    @param reason: the status line's reason phrase; by default the message, cleaned by
        L{reason_phrase} (twine shows it, and C{--skip-existing} reads it).
    @param send_body: L{False} for an answer to C{HEAD}.
    """
    body = message.encode("utf-8")
    if not body.endswith(b"\n"):
        body += b"\n"
    lines = [b"HTTP/1.1 %d %s" % (code, reason or reason_phrase(message.rstrip("\n")))]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Content-Type: text/plain; charset=utf-8",
              b"Content-Length: %d" % len(body), b"Connection: close"]
    transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + (body if send_body else b""))


def too_large_message(limit: int) -> str:
    """The answer to an upload over C{limit} bytes, naming the key that sets it."""
    shown = f"{limit} bytes"
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if limit >= 1 << shift and limit % (1 << shift) == 0:
            shown = f"{limit >> shift} {unit}"
            break
    return f"the upload is larger than the limit of {shown} ([pypid] max_upload_size)"
