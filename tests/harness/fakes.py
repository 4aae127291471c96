"""
Shared test doubles: synchronous stand-ins for the thread pools (and
L{PendingPool}, one whose work finishes when the test says), a remote store
for the relay (L{FakeRemote}), a cheap argon2id cost, and twine's multipart
encoding built by hand (StubTreq refuses C{files=}).
"""

import dataclasses
import hashlib
import os

import attrs
from treq.testing import RequestTraversalAgent, StubTreq
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from pypid.auth.hashes import DEFAULT_PARAMETERS
from pypid.storage.base.interface import RemoteFile

#: The cheapest argon2id cost there is, so the tests hash and verify fast.
FAST = dataclasses.replace(DEFAULT_PARAMETERS, time_cost=1, memory_cost=8, parallelism=1)


def site_treq(site):
    """
    A L{StubTreq} whose in-memory requests are served by C{site}: our
    request class and its body path, exactly as in production.

    treq's L{RequestTraversalAgent} wraps the resource in a plain L{Site}
    (its C{_serverFactory}, checked with treq 24.9 to 26.7); the agent is
    given ours instead.
    """
    client = StubTreq(site.resource)
    client._agent._serverFactory = site
    return client


def site_agent(site):
    """A L{RequestTraversalAgent} whose requests are served by C{site} (see L{site_treq})."""
    agent = RequestTraversalAgent(site.resource)
    agent._serverFactory = site
    return agent


def run_now(f, *args):
    """A C{run(f, *args)} that does the blocking work at once, on this thread."""
    return maybeDeferred(f, *args)


def run_in_pool_now(reactor, threadpool, f, *args):
    """A L{deferToThreadPool} substitute that runs C{f} at once, on this thread."""
    return succeed(f(*args))


@attrs.define
class QueuedRun:
    """
    A C{run(f, *args)} that queues the work, so a test can run it in any
    order, as a pool of several threads may.
    """

    pending: list = attrs.Factory(list)

    def __call__(self, f, *args):
        d = Deferred()
        self.pending.append((d, f, args))
        return d

    def run(self, index=0):
        """Run the queued call at C{index} now."""
        d, f, args = self.pending.pop(index)
        maybeDeferred(f, *args).chainDeferred(d)

    def run_all(self):
        """Run every queued call, including those queued meanwhile, in order."""
        while self.pending:
            self.run()


def write_file(path, data):
    """Write C{data} to C{path}, creating its folder, and return C{path}."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def config_of(case, text):
    """The configuration of the file C{text}, written in C{case}'s own folder."""
    from pypid.config import load_config
    return load_config(write_file(os.path.join(case.mktemp(), "c.ini"), text.encode()))


def read_file(path):
    """Return the bytes of the file at C{path}."""
    with open(path, "rb") as f:
        return f.read()


#: What requests_toolbelt (twine) uses: uuid4().hex.
BOUNDARY = "ff9c4b7c359142b5801e4e1d4634f034"


def twine_fields(project_name, release, data, filetype="bdist_wheel", pyversion="py3", **extra):
    """
    Return the text fields twine 7 sends for a file, in its order: metadata,
    then the digests, then C{:action} and C{protocol_version}. C{extra}
    replaces values (L{None} leaves a field out).
    """
    fields = {
        "name": project_name,
        "version": release,
        "filetype": filetype,
        "pyversion": pyversion,
        "metadata_version": "2.1",
        "summary": "Test project " + project_name,
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
        ":action": "file_upload",
        "protocol_version": "1",
    }
    fields.update(extra)
    return [(k, v) for k, v in fields.items() if v is not None]


def multipart_body(fields, files=(), boundary=BOUNDARY):
    """
    Encode a form the way requests_toolbelt does for twine.

    @param fields: C{(name, text)} pairs.
    @param files: C{(field, filename, bytes)} triples.
    @return: C{(content_type, body)}, both L{bytes}.
    """
    b = boundary.encode("ascii")
    out = []
    for name, value in fields:
        out.append(
            b"--" + b + b"\r\n"
            + b'Content-Disposition: form-data; name="' + name.encode("utf-8") + b'"\r\n\r\n'
            + value.encode("utf-8") + b"\r\n"
        )
    for field, filename, data in files:
        out.append(
            b"--" + b + b"\r\n"
            + b'Content-Disposition: form-data; name="' + field.encode("utf-8")
            + b'"; filename="' + filename.encode("utf-8") + b'"\r\n'
            + b"Content-Type: application/octet-stream\r\n\r\n"
            + data + b"\r\n"
        )
    out.append(b"--" + b + b"--\r\n")
    return b"multipart/form-data; boundary=" + b, b"".join(out)


class FakeBodyTransport:
    """
    The transport a remote response gives its body protocol: it records
    what the relay asks of the store's connection.

    @ivar calls: C{"pause"}, C{"resume"} and C{"stop"}, in order.
    """

    def __init__(self):
        self.calls = []

    def pauseProducing(self):
        """Record a pause."""
        self.calls.append("pause")

    def resumeProducing(self):
        """Record a resume."""
        self.calls.append("resume")

    def stopProducing(self):
        """Record a stop."""
        self.calls.append("stop")


def one_index(index, storage, clock, *, upstream=None, locks=None, backfill=None, usage=None,
              bin=None, name="default"):
    """
    The L{pypid.web.serving.index_root.IndexMaterials} of a server of one index (a list,
    to which a test adds named ones): the hosted index C{index} over
    C{storage}, reading C{upstream}'s source (an
    L{pypid.upstream.proxy.UpstreamProxy}) when given, as the registry makes it
    (C{upstream:default}; its view applies the index's own advisories, and
    links as its own pages do).
    """
    from pypid.core.indexes.composed import ComposedIndex
    from pypid.core.indexes.composition import ChainSource, Filters
    from pypid.core.indexes.links import file_url_for
    from pypid.state.hosted_source import HostedSource
    from pypid.storage.base.locks import KeyedLock
    from pypid.upstream.source import SourceSide
    from pypid.web.serving.index_root import IndexMaterials
    source = HostedSource(name, index, storage, locks if locks is not None else KeyedLock(clock),
                          backfill, usage, bin)
    order = [ChainSource(name, hosted=index)]
    sides = {}
    if upstream is not None:
        side = SourceSide.of(upstream.source, file_url_for(None))
        sides[side.name] = side
        order.append(ChainSource(side.name, upstream=side))
    composed = ComposedIndex(name, tuple(order), Filters(), index.file_url,
                             advisories=index.rendered.advisories,
                             provenance_url=index.rendered.provenance_url,
                             namespaces=index.rendered.namespaces)
    return [IndexMaterials(name, composed, (source,), hosted=True, upstreams=sides)]


@attrs.define
class SynchronousPool:
    """
    A L{deferToThreadPool} substitute that runs the work at once and records
    every call, so tests can count hash verifications.
    """

    calls: list = attrs.Factory(list)

    def __call__(self, reactor, threadpool, f, *args):
        self.calls.append(args)
        return succeed(f(*args))


@attrs.define
class PendingPool:
    """
    A L{deferToThreadPool} substitute whose work finishes only when the test
    says so, to observe verifications while they are under way.
    """

    pending: list = attrs.Factory(list)

    def __call__(self, reactor, threadpool, f, *args):
        d = Deferred()
        self.pending.append((d, f, args))
        return d

    def finish(self):
        """Complete every pending call by running it now."""
        pending, self.pending = self.pending, []
        for d, f, args in pending:
            d.callback(f(*args))


class FakeResponse:
    """
    An L{IResponse} of a remote store, as far as the relay uses one: its
    body goes to the protocol given to L{deliverBody}, all at once unless
    C{hold}, else when the test calls L{send} and L{end}.
    """

    def __init__(self, chunks=(), end=None, hold=False):
        self.transport = FakeBodyTransport()
        self.protocol = None
        self._chunks = list(chunks)
        self._end = end
        self._hold = hold

    def deliverBody(self, protocol):
        """Connect C{protocol} to the body and, unless held, deliver it."""
        self.protocol = protocol
        protocol.makeConnection(self.transport)
        if not self._hold:
            for chunk in self._chunks:
                self.send(chunk)
            self.end(self._end)

    def send(self, data):
        """Deliver a piece of the body."""
        self.protocol.dataReceived(data)

    def end(self, reason=None):
        """End the body: whole (L{ResponseDone}) unless another reason is given."""
        self.protocol.connectionLost(Failure(reason if reason is not None else ResponseDone()))


class FakeRemote:
    """
    A remote store holding one object, C{data}. C{fetch} records what it is
    asked for and answers with a L{FakeResponse} of exactly those bytes (in
    pieces of C{chunk} bytes), or fails with C{error}; with C{pending}, it
    answers only when the test fires the L{Deferred} in C{waiting}.

    @ivar fetched: C{(start, length)} of every fetch.
    @ivar responses: the L{FakeResponse}s handed out.
    @ivar cancelled: how many pending fetches were cancelled.
    """

    def __init__(self, data, error=None, hold=False, pending=False, chunk=7):
        self.data = data
        self.error = error
        self.hold = hold
        self.pending = pending
        self.chunk = chunk
        self.fetched = []
        self.responses = []
        self.waiting = []
        self.cancelled = 0

    def location(self):
        """The L{RemoteFile} a storage would give for the object."""
        return RemoteFile(len(self.data), self.fetch)

    def response(self, start, length):
        """A response with the object's bytes from C{start}, C{length} of them."""
        part = self.data[start:start + length]
        response = FakeResponse([part[i:i + self.chunk] for i in range(0, len(part), self.chunk)],
                                hold=self.hold)
        self.responses.append(response)
        return response

    def fetch(self, start, length):
        """C{RemoteFile.fetch}."""
        self.fetched.append((start, length))
        if self.error is not None:
            return fail(self.error)
        if self.pending:
            d = Deferred(self._cancel)
            self.waiting.append((d, start, length))
            return d
        return succeed(self.response(start, length))

    def _cancel(self, d):
        self.cancelled += 1

    def answer(self):
        """Fire the oldest pending fetch with its response."""
        d, start, length = self.waiting.pop(0)
        d.callback(self.response(start, length))


class ControlledLook:
    """A look at a shared storage (L{pypid.state.catch_up.Looks}) the test ends."""

    def __init__(self):
        self.under_way = []

    def sync(self):
        from twisted.internet.defer import Deferred
        d = Deferred()
        self.under_way.append(d)
        return d

    def end(self):
        """Fire every look under way."""
        under_way, self.under_way = self.under_way, []
        for d in under_way:
            d.callback(None)
