"""
Shared test doubles: synchronous stand-ins for the thread pools, a cheap
argon2id cost, and twine's multipart encoding built by hand (StubTreq refuses
C{files=}).
"""

import dataclasses
import hashlib
import os

import attrs
from treq.testing import RequestTraversalAgent, StubTreq
from twisted.internet.defer import Deferred, maybeDeferred, succeed

from pypid.auth.hashes import DEFAULT_PARAMETERS

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
    The L{pypid.web.index_root.IndexParts} of a server of one index (a list,
    to which a test adds named ones): the hosted index C{index} over
    C{storage}, reading C{upstream}'s source (an
    L{pypid.upstream.proxy.UpstreamProxy}) when given, as the registry makes it.
    """
    from pypid.storage.locks import KeyedLock
    from pypid.web.index_root import HostedSource, IndexParts
    source = HostedSource(name, index, storage, locks if locks is not None else KeyedLock(clock),
                          backfill, usage, bin)
    return [IndexParts.hosted_alone(source, upstream)]
