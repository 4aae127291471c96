"""
A small upstream package index for the tests of pypid's upstream support:
real wheels and sdists, served on a loopback port in PEP 503 HTML and PEP 691
JSON, able to fail on demand.

  - L{UpstreamIndex} holds the projects and their files (plain Python, no
    I/O) and can build the wheels and sdists itself.
  - L{UpstreamResource} serves it: C{/simple/}, C{/simple/<project>/},
    C{/files/<filename>} and C{/files/<filename>.metadata}; it records every
    request in a L{RequestLog} and applies the L{Faults} set for a path
    (see L{Fault.parse} for the modes).
  - L{start_in_reactor} runs it in the test process's reactor, for trial
    tests that wait on Deferreds; the L{UpstreamServer} it gives can stop and
    start its listener on the same port.
  - C{python -m tests.upstream_server --port P --dir DIR} runs it as a
    process, serving the distributions in DIR, with a control API under
    C{/_control/}; L{UpstreamProcess} starts and drives that process from
    blocking end-to-end tests, whose test thread is stuck in subprocesses
    while pip or pypid talk to the upstream.

Everything listens on 127.0.0.1 only.
"""

import argparse
import base64
import collections
import datetime
import hashlib
import html
import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
from urllib.parse import parse_qs, quote, unquote

import attrs
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests.distributions import make_sdist, make_wheel
from tests.e2e import (
    CHECKOUT,
    ChildProcess,
    E2EFailure,
    _die_with_parent,
    _live,
    clean_env,
    http,
)

HOST = "127.0.0.1"

#: The upload time of a file when none is given: long ago, so no cooldown hides it.
DEFAULT_UPLOAD_TIME = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)

#: Bytes per write of the C{slow} mode when the mode does not say.
SLOW_CHUNK = 256

#: Seconds the upstream process gets to listen after it is started.
STARTUP_TIMEOUT = 10.0
#: Seconds the upstream process gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: Seconds a control request may take.
CONTROL_TIMEOUT = 10.0

#: The name of the process's log, in its folder.
LOG_NAME = "upstream.log"

#: Suffixes of the files the process serves from its folder.
DISTRIBUTION_SUFFIXES = (".whl", ".tar.gz", ".zip")

V1_JSON = "application/vnd.pypi.simple.v1+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"

# The served media types in the order that breaks ties, as warehouse does.
_OFFERS = (TEXT_HTML, V1_HTML, V1_JSON)
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": V1_JSON,
    "application/vnd.pypi.simple.latest+html": V1_HTML,
}
_CONTENT_TYPES = {
    TEXT_HTML: b"text/html; charset=utf-8",
    V1_HTML: V1_HTML.encode("ascii"),
    V1_JSON: V1_JSON.encode("ascii"),
}

ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><h1>Something went wrong</h1>\n"
    b"<p>upstream.example could not serve this file right now. Please try again later.</p>\n"
    b"</body></html>\n"
)


# -- the index ----------------------------------------------------------------------------


def _utc(value):
    """An aware UTC datetime out of a datetime, an ISO 8601 string or epoch seconds."""
    if value is None or isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, str):
        moment = datetime.datetime.fromisoformat(value)
    elif isinstance(value, (int, float)):
        moment = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    else:
        raise TypeError(f"not an upload time: {value!r}")
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return None if moment is None else moment.astimezone(datetime.timezone.utc)


def iso_z(moment):
    """C{moment} the way PyPI writes an upload time: ISO 8601, microseconds, C{Z}."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_filename(filename):
    """C{(normalized project name, version string)} of a wheel or sdist filename."""
    try:
        if filename.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as e:
        raise ValueError(f"cannot tell the project of {filename!r} (pass project=): {e}")
    return canonicalize_name(name), str(version)


def extract_metadata(filename, data):
    """
    The core metadata of a distribution: a wheel's C{.dist-info/METADATA},
    an sdist's top-level C{PKG-INFO}; L{None} when there is none.
    """
    try:
        if filename.endswith((".whl", ".zip")):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for name in zf.namelist():
                    parts = name.split("/")
                    if filename.endswith(".whl"):
                        if len(parts) == 2 and parts[0].endswith(".dist-info") \
                                and parts[1] == "METADATA":
                            return zf.read(name)
                    elif len(parts) == 2 and parts[1] == "PKG-INFO":
                        return zf.read(name)
        elif filename.endswith(".tar.gz"):
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
                for member in tf.getmembers():
                    parts = member.name.split("/")
                    if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                        return tf.extractfile(member).read()
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError):
        return None
    return None


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


@attrs.frozen
class UpstreamFile:
    """
    One file of the upstream index and everything its pages say about it.

    @ivar yanked: L{None} when not yanked, else the reason (C{""} for none).
    @ivar upload_time: an aware datetime, or L{None} to leave it out of pages.
    @ivar metadata: the core metadata bytes served at C{<url>.metadata}, or
        L{None} when the index serves none.
    @ivar url: an absolute URL that pages give instead of this server's
        C{/files/} URL, or L{None}.
    @ivar claimed_sha256: the sha256 that pages give (normally L{sha256});
        C{""} gives none.
    """

    filename: str
    project: str
    version: str
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    sha256: str
    requires_python: str | None = None
    yanked: str | None = None
    upload_time: datetime.datetime | None = DEFAULT_UPLOAD_TIME
    metadata: bytes | None = attrs.field(default=None, repr=False)
    url: str | None = None
    claimed_sha256: str = ""

    @property
    def size(self):
        """The file's length in bytes."""
        return len(self.data)

    @property
    def metadata_sha256(self):
        """The sha256 of the served metadata, or L{None}."""
        return None if self.metadata is None else _sha256(self.metadata)


def make_file(filename, data, *, project=None, requires_python=None, yanked=None,
              upload_time=DEFAULT_UPLOAD_TIME, metadata=None, url=None, claimed_sha256=None):
    """
    Build an L{UpstreamFile}, computing its sha256.

    @param project: the project name, by default read from C{filename}.
    @param yanked: L{None} or C{False} (not yanked), C{True} (yanked, no
        reason) or the reason.
    @param upload_time: a datetime, an ISO 8601 string, epoch seconds, or
        L{None} for none.
    @param metadata: L{None} (serve the core metadata of wheels, none for
        sdists, as PyPI does), C{False} (serve none), C{True} (serve the
        extracted metadata, sdists too), or the bytes (or text) to serve.
    @param url: an absolute URL for pages to give instead of C{/files/...}.
    @param claimed_sha256: the sha256 for pages to claim, if not the real
        one; C{""} for none.
    """
    if project is None:
        project, version = _parse_filename(filename)
    else:
        try:
            version = _parse_filename(filename)[1]
        except ValueError:
            version = ""
        project = canonicalize_name(project)
    if yanked is True:
        yanked = ""
    elif yanked is False:
        yanked = None
    if metadata is None:
        metadata = extract_metadata(filename, data) if filename.endswith(".whl") else None
    elif metadata is True:
        metadata = extract_metadata(filename, data)
        if metadata is None:
            raise ValueError(f"{filename} holds no core metadata")
    elif metadata is False:
        metadata = None
    elif isinstance(metadata, str):
        metadata = metadata.encode("utf-8")
    digest = _sha256(data)
    return UpstreamFile(
        filename=filename, project=project, version=version, data=data, sha256=digest,
        requires_python=requires_python, yanked=yanked, upload_time=_utc(upload_time),
        metadata=metadata, url=url,
        claimed_sha256=digest if claimed_sha256 is None else claimed_sha256)


def _version_key(version):
    try:
        return (0, Version(version), version)
    except InvalidVersion:
        return (1, Version("0"), version)


class UpstreamIndex:
    """
    The projects of the upstream index and their files, by filename; a file
    added again under the same filename replaces the old one.
    """

    def __init__(self):
        self._files = {}

    def add(self, filename, data, **options):
        """Add (or replace) a file; see L{make_file} for the options; return the L{UpstreamFile}."""
        entry = make_file(filename, data, **options)
        self._files[filename] = entry
        return entry

    def add_wheel(self, name, version, requires_dist=(), requires_python=None,
                  tag="py3-none-any", **options):
        """
        Build a real wheel of C{name} C{version} (C{requires_dist} in its
        metadata; C{requires_python} in its metadata and its pages) and add it.
        """
        filename, data = make_wheel(name, version, requires_python=requires_python,
                                    requires_dist=requires_dist, tag=tag)
        return self.add(filename, data, requires_python=requires_python, **options)

    def add_sdist(self, name, version, requires_dist=(), requires_python=None, **options):
        """Build a real sdist of C{name} C{version} and add it, like L{add_wheel}."""
        filename, data = make_sdist(name, version, requires_python=requires_python,
                                    requires_dist=requires_dist)
        return self.add(filename, data, requires_python=requires_python, **options)

    def remove(self, filename):
        """Forget a file; its project goes when its last file goes."""
        self._files.pop(filename, None)

    def file(self, filename):
        """The L{UpstreamFile} called C{filename}, or L{None}."""
        return self._files.get(filename)

    def projects(self):
        """The normalized names of every project, sorted."""
        return sorted({f.project for f in self._files.values()})

    def files(self, project):
        """The files of a (normalized) project, sorted by filename."""
        return sorted((f for f in self._files.values() if f.project == project),
                      key=lambda f: f.filename)

    def versions(self, project):
        """The versions of a project, oldest first."""
        return sorted({f.version for f in self.files(project) if f.version}, key=_version_key)


# -- pages (pure) ------------------------------------------------------------------------------


def choose_media_type(accept):
    """
    The media type to serve for an C{Accept} header (str or L{None}), as a
    real index chooses it: the highest q-value wins, a type takes its q-value
    from its most specific matching range, ties go to C{text/html}, then
    C{v1+html}, then C{v1+json}; L{None} when none is acceptable.
    """
    if not accept or not accept.strip():
        return TEXT_HTML
    ranges = []
    for part in accept.split(","):
        fields = part.split(";")
        media = fields[0].strip().lower()
        if "/" not in media:
            continue
        q = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = -1.0
        if 0.0 <= q <= 1.0:
            ranges.append((_ALIASES.get(media, media), q))
    if not ranges:
        return TEXT_HTML
    best, best_q = None, 0.0
    for offer in _OFFERS:
        major = offer.split("/")[0] + "/*"
        specificity, q = -1, 0.0
        for media, media_q in ranges:
            rank = 2 if media == offer else 1 if media == major else 0 if media == "*/*" else -1
            if rank > specificity:
                specificity, q = rank, media_q
        if q > best_q:
            best, best_q = offer, q
    return best


@attrs.frozen
class Answer:
    """A complete HTTP answer, before any fault is applied to it."""

    status: int
    content_type: bytes
    body: bytes
    headers: tuple = ()


def _text(status, message):
    return Answer(status, b"text/plain; charset=utf-8", (message + "\n").encode("utf-8"))


def _redirect(location):
    return Answer(301, b"text/plain; charset=utf-8", b"moved\n",
                  ((b"Location", location.encode("utf-8")),))


def _html_page(title, lines):
    head = ('<!DOCTYPE html>\n<html>\n  <head>\n'
            '    <meta name="pypi:repository-version" content="1.1">\n'
            f'    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n'
            f'    <h1>{html.escape(title)}</h1>\n')
    return (head + "".join(f"    {line}<br/>\n" for line in lines)
            + "  </body>\n</html>\n").encode("utf-8")


def render_index(index, media_type, links_base):
    """The body of C{/simple/} in C{media_type}; project links start with C{links_base}."""
    if media_type == V1_JSON:
        return json.dumps({"meta": {"api-version": "1.1"},
                           "projects": [{"name": name} for name in index.projects()]},
                          indent=1).encode("utf-8")
    return _html_page("Simple index", [
        f'<a href="{html.escape(links_base + quote(name) + "/")}">{html.escape(name)}</a>'
        for name in index.projects()])


def _file_url(entry, files_base):
    return entry.url or files_base + quote(entry.filename)


def render_project(index, project, media_type, files_base):
    """
    The body of C{/simple/<project>/} in C{media_type}, with file URLs that
    start with C{files_base} (unless a file has a URL of its own).
    """
    files = index.files(project)
    if media_type == V1_JSON:
        entries = []
        for f in files:
            metadata = False if f.metadata is None else {"sha256": f.metadata_sha256}
            entry = {
                "filename": f.filename,
                "url": _file_url(f, files_base),
                "hashes": {"sha256": f.claimed_sha256} if f.claimed_sha256 else {},
                "requires-python": f.requires_python,
                "yanked": False if f.yanked is None else (f.yanked or True),
                "core-metadata": metadata,
                "dist-info-metadata": metadata,
                "size": f.size,
            }
            if f.upload_time is not None:
                entry["upload-time"] = iso_z(f.upload_time)
            entries.append(entry)
        return json.dumps({"meta": {"api-version": "1.1"}, "name": project,
                           "versions": index.versions(project), "files": entries},
                          indent=1).encode("utf-8")
    lines = []
    for f in files:
        href = _file_url(f, files_base)
        if f.claimed_sha256:
            href += "#sha256=" + f.claimed_sha256
        attributes = [f'href="{html.escape(href)}"']
        if f.requires_python:
            attributes.append(f'data-requires-python="{html.escape(f.requires_python)}"')
        if f.yanked is not None:
            attributes.append(f'data-yanked="{html.escape(f.yanked)}"')
        if f.metadata is not None:
            attributes.append(f'data-core-metadata="sha256={f.metadata_sha256}"')
            attributes.append(f'data-dist-info-metadata="sha256={f.metadata_sha256}"')
        lines.append(f'<a {" ".join(attributes)}>{html.escape(f.filename)}</a>')
    return _html_page(f"Links for {project}", lines)


# -- failures on demand ----------------------------------------------------------------------


#: The modes L{Fault.parse} knows, besides C{delay:<seconds>}.
MODES = ("refuse", "stall", "slow", "truncate", "wrong_bytes", "error_page", "status")


@attrs.frozen
class Fault:
    """
    How to fail one request.

    @ivar kind: one of L{MODES}, or L{None} for a delay alone.
    """

    mode: str
    kind: str | None
    delay: float = 0.0
    interval: float = 0.0
    chunk: int = SLOW_CHUNK
    status: int = 0

    @classmethod
    def parse(cls, mode):
        """
        Read a mode: C{refuse} (close the connection without answering),
        C{stall} (never answer), C{slow:<seconds>[:<bytes>]} (send the
        headers, then one chunk of the body every C{seconds}), C{truncate}
        (send the full Content-Length, half the body, then close),
        C{wrong_bytes} (other bytes of the same length), C{error_page}
        (200 with an HTML error page), C{status:<code>} (that status with a
        short body), or C{delay:<seconds>} (wait, then answer normally);
        C{delay:<seconds>+<mode>} waits before failing.

        @raise ValueError: the mode is not one of these.
        """
        kind, delay, interval, chunk, status = None, 0.0, 0.0, SLOW_CHUNK, 0
        try:
            for term in mode.split("+"):
                name, *args = term.strip().split(":")
                if name == "delay" and len(args) == 1:
                    delay = float(args[0])
                    if delay < 0:
                        raise ValueError("a negative delay")
                    continue
                if kind is not None:
                    raise ValueError("more than one failure")
                if name in ("refuse", "stall", "truncate", "wrong_bytes", "error_page") \
                        and not args:
                    kind = name
                elif name == "slow" and len(args) in (1, 2):
                    kind, interval = name, float(args[0])
                    if len(args) == 2:
                        chunk = int(args[1])
                    if interval < 0 or chunk < 1:
                        raise ValueError("a negative interval or an empty chunk")
                elif name == "status" and len(args) == 1:
                    kind, status = name, int(args[0])
                    if not 200 <= status <= 599:
                        raise ValueError("a status outside 200-599")
                else:
                    raise ValueError(f"unknown term {term!r}")
        except ValueError as e:
            raise ValueError(f"bad failure mode {mode!r}: {e}") from None
        if kind is None and not delay:
            raise ValueError(f"bad failure mode {mode!r}: nothing to do")
        return cls(mode=mode, kind=kind, delay=delay, interval=interval, chunk=chunk,
                   status=status)


class Faults:
    """
    The failure modes set per path: an exact path wins over prefixes, and
    the longest prefix over shorter ones.
    """

    def __init__(self):
        self._rules = {}

    def set(self, path, mode, prefix=False, times=None):
        """
        Fail requests for C{path} (every path starting with it if C{prefix})
        with C{mode} (see L{Fault.parse}), the next C{times} times or always.
        """
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        self._rules[(path, bool(prefix))] = [Fault.parse(mode), times]

    def clear(self, path=None):
        """Stop failing C{path} (exact and prefix rules), or every path."""
        if path is None:
            self._rules.clear()
        else:
            self._rules.pop((path, False), None)
            self._rules.pop((path, True), None)

    def rules(self):
        """C{{(path, prefix): (mode, times left)}} of the rules in force."""
        return {key: (fault.mode, times) for key, (fault, times) in self._rules.items()}

    def match(self, path):
        """The L{Fault} for a request of C{path}, counting it against C{times}; or L{None}."""
        key = (path, False)
        if key not in self._rules:
            prefixes = [p for (p, is_prefix) in self._rules if is_prefix and path.startswith(p)]
            if not prefixes:
                return None
            key = (max(prefixes, key=len), True)
        rule = self._rules[key]
        if rule[1] is not None:
            rule[1] -= 1
            if rule[1] <= 0:
                del self._rules[key]
        return rule[0]


def wrong_bytes(data):
    """Other bytes of the same length (every byte flipped)."""
    return bytes(b ^ 0xFF for b in data)


# -- the request log ----------------------------------------------------------------------------


@attrs.frozen
class LoggedRequest:
    """One request as the upstream saw it; C{fault} is the failure mode applied, if any."""

    method: str
    path: str
    accept: str | None
    fault: str | None = None

    def to_json(self):
        """A JSON-ready dict."""
        return attrs.asdict(self)


class RequestLog:
    """Every request the upstream received (except control requests), in order."""

    def __init__(self, echo=None):
        self.entries = []
        self._echo = echo

    def record(self, method, path, accept, fault=None):
        """Note one request."""
        entry = LoggedRequest(method, path, accept, fault)
        self.entries.append(entry)
        if self._echo is not None:
            self._echo(entry)

    def count(self, path, method=None):
        """How many requests there were for C{path} (of C{method}, if given)."""
        return sum(1 for e in self.entries
                   if e.path == path and (method is None or e.method == method))

    def counts(self):
        """C{{path: number of requests}}."""
        return dict(collections.Counter(e.path for e in self.entries))

    def paths(self):
        """The paths requested, in order."""
        return [e.path for e in self.entries]

    def clear(self):
        """Forget every request."""
        del self.entries[:]

    def to_json(self):
        """The entries as JSON-ready dicts."""
        return [e.to_json() for e in self.entries]


# -- the web resource -------------------------------------------------------------------------


class _Exchange:
    """One request answered over time: its timers go when its connection goes."""

    def __init__(self, request, clock):
        self.request = request
        self._clock = clock
        self._calls = []
        self.gone = False
        request.notifyFinish().addErrback(self._lost)

    def _lost(self, reason):
        self.gone = True
        for call in self._calls:
            if call.active():
                call.cancel()

    def later(self, seconds, f, *args):
        """Call C{f(*args)} in C{seconds} unless the client has gone by then."""
        if seconds <= 0:
            f(*args)
        else:
            self._calls.append(self._clock.callLater(seconds, self._run, f, *args))

    def _run(self, f, *args):
        if not self.gone:
            f(*args)

    def start(self, answer, length=None):
        """Send the status and headers of C{answer} (with its own length, or C{length})."""
        request = self.request
        request.setResponseCode(answer.status)
        for name, value in answer.headers:
            request.setHeader(name, value)
        request.setHeader(b"Content-Type", answer.content_type)
        length = len(answer.body) if length is None else length
        request.setHeader(b"Content-Length", b"%d" % length)

    def send(self, answer):
        """Send C{answer} whole."""
        self.start(answer)
        self.request.write(answer.body)
        self.request.finish()

    def abort(self):
        """Close the connection at once, with a reset when the socket allows it."""
        transport = self.request.channel.transport
        try:
            transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                             struct.pack("ii", 1, 0))
        except (AttributeError, OSError):
            pass
        transport.abortConnection()


class UpstreamResource(Resource):
    """
    The whole upstream site: C{/simple/} and project pages in HTML or JSON
    by C{Accept} (or C{?format=}), C{/files/<filename>} and its
    C{.metadata}, non-normalized project names redirected; every request is
    logged and failed as L{Faults} say.

    @param links: C{"absolute"} (file and project URLs made from the
        server's own address, or C{files_url}) or C{"relative"}.
    @param files_url: the absolute base of file URLs in pages, instead of
        C{http://<this server>/files/}.
    @param clock: the reactor for delays; the global one when L{None}.
    @param control: a resource answering C{/_control/...}, or L{None}.
    """

    isLeaf = True

    def __init__(self, index, log, faults=None, *, links="absolute", files_url=None,
                 clock=None, control=None):
        super().__init__()
        if links not in ("absolute", "relative"):
            raise ValueError(f"links must be absolute or relative, not {links!r}")
        self.index = index
        self.log = log
        self.faults = Faults() if faults is None else faults
        self.links = links
        self.files_url = files_url
        self._clock = clock
        self._control = control

    def _reactor(self):
        if self._clock is None:
            from twisted.internet import reactor
            self._clock = reactor
        return self._clock

    def render(self, request):
        """Log the request, then answer it, failing as its path's fault says."""
        raw_path = request.path.decode("ascii", "replace")
        path = unquote(raw_path)
        if self._control is not None and path.startswith("/_control/"):
            return self._control.render(request)
        method = request.method.decode("ascii", "replace")
        accept = request.getHeader(b"accept")
        accept = None if accept is None else accept.decode("latin-1")
        fault = self.faults.match(path)
        self.log.record(method, path, accept, None if fault is None else fault.mode)
        answer = self.answer(request, method, raw_path, accept)
        exchange = _Exchange(request, self._reactor() if fault is not None else None)
        if fault is None:
            exchange.send(answer)
        else:
            exchange.later(fault.delay, self._fail, exchange, answer, fault)
        return NOT_DONE_YET

    def _base(self, request):
        host = request.getHost()
        return f"http://{host.host}:{host.port}/"

    def answer(self, request, method, raw_path, accept):
        """The L{Answer} to a request, with no fault applied."""
        if method not in ("GET", "HEAD"):
            return attrs.evolve(_text(405, "method not allowed"),
                                headers=((b"Allow", b"GET, HEAD"),))
        segments = [unquote(s) for s in raw_path.split("/")[1:]]
        query = request.uri.partition(b"?")[2].decode("latin-1")
        suffix = "?" + query if query else ""
        if segments[:1] == ["simple"]:
            if len(segments) == 1:
                return _redirect("/simple/" + suffix)
            if segments == ["simple", ""]:
                return self._page(request, accept, query, None)
            name = segments[1]
            normalized = canonicalize_name(name)
            if segments[2:] != [""] or name != normalized:
                return _redirect(f"/simple/{quote(normalized)}/" + suffix)
            if not self.index.files(normalized):
                return _text(404, f"no project named {normalized}")
            return self._page(request, accept, query, normalized)
        if len(segments) == 2 and segments[0] == "files":
            filename = segments[1]
            entry = self.index.file(filename)
            if entry is not None:
                return Answer(200, b"application/octet-stream", entry.data)
            if filename.endswith(".metadata"):
                entry = self.index.file(filename[: -len(".metadata")])
                if entry is not None and entry.metadata is not None:
                    return Answer(200, b"application/octet-stream", entry.metadata)
            return _text(404, "no such file")
        return _text(404, "not found")

    def _page(self, request, accept, query, project):
        chosen = parse_qs(query).get("format")
        if chosen:
            media_type = _ALIASES.get(chosen[0], chosen[0])
            if media_type not in _OFFERS:
                return _text(406, "unknown format")
        else:
            media_type = choose_media_type(accept)
            if media_type is None:
                return _text(406, "none of the accepted types is served")
        base = self._base(request)
        if project is None:
            links = base + "simple/" if self.links == "absolute" else ""
            body = render_index(self.index, media_type, links)
        else:
            if self.files_url is not None:
                files = self.files_url
            else:
                files = base + "files/" if self.links == "absolute" else "../../files/"
            body = render_project(self.index, project, media_type, files)
        return Answer(200, _CONTENT_TYPES[media_type], body, ((b"Vary", b"Accept"),))

    def _fail(self, exchange, answer, fault):
        kind = fault.kind
        if kind is None:
            exchange.send(answer)
        elif kind == "refuse":
            exchange.abort()
        elif kind == "stall":
            pass
        elif kind == "wrong_bytes":
            exchange.send(attrs.evolve(answer, body=wrong_bytes(answer.body)))
        elif kind == "error_page":
            exchange.send(Answer(200, b"text/html; charset=utf-8", ERROR_PAGE))
        elif kind == "status":
            exchange.send(_text(fault.status, f"upstream failure {fault.status} (on demand)"))
        elif kind == "truncate":
            exchange.start(answer)
            exchange.request.write(answer.body[: len(answer.body) // 2])
            exchange.request.loseConnection()
        elif kind == "slow":
            exchange.start(answer)
            exchange.request.write(b"")
            chunks = [answer.body[i:i + fault.chunk]
                      for i in range(0, len(answer.body), fault.chunk)]
            exchange.later(fault.interval, self._trickle, exchange, chunks, 0, fault.interval)

    def _trickle(self, exchange, chunks, i, interval):
        if i < len(chunks):
            exchange.request.write(chunks[i])
        if i + 1 >= len(chunks):
            exchange.request.finish()
        else:
            exchange.later(interval, self._trickle, exchange, chunks, i + 1, interval)


# -- the folder of the upstream process, and its control API ---------------------------------------


def _options_to_json(options):
    out = {}
    for key, value in options.items():
        if isinstance(value, datetime.datetime):
            value = _utc(value).isoformat()
        elif isinstance(value, bytes):
            value = value.decode("utf-8")
        out[key] = value
    return out


def _write_atomically(path, data):
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "wb") as f:
        f.write(data)
    os.replace(temporary, path)


def write_distribution(directory, filename, data, **options):
    """
    Put a file the upstream process serves into its folder, with its options
    (see L{make_file}) in a C{<filename>.json} sidecar.
    """
    if os.path.basename(filename) != filename or filename.startswith("."):
        raise ValueError(f"not a plain filename: {filename!r}")
    _write_atomically(os.path.join(directory, filename), data)
    sidecar = os.path.join(directory, filename + ".json")
    if options:
        _write_atomically(sidecar, json.dumps(_options_to_json(options)).encode("utf-8"))
    elif os.path.exists(sidecar):
        os.remove(sidecar)


def load_directory(directory):
    """An L{UpstreamIndex} of the distributions in C{directory}, with their sidecars' options."""
    index = UpstreamIndex()
    for filename in sorted(os.listdir(directory)):
        if not filename.endswith(DISTRIBUTION_SUFFIXES) or filename.startswith("."):
            continue
        with open(os.path.join(directory, filename), "rb") as f:
            data = f.read()
        options = {}
        sidecar = os.path.join(directory, filename + ".json")
        if os.path.exists(sidecar):
            with open(sidecar, encoding="utf-8") as f:
                options = json.load(f)
        index.add(filename, data, **options)
    return index


class ControlResource(Resource):
    """
    The control API of the upstream process, under C{/_control/}; JSON in
    and out, never logged, never failed:

      - C{GET health}: C{ok} once listening;
      - C{POST fail} C{{"path", "mode", "prefix"?, "times"?}};
      - C{POST clear} C{{"path"?}} (every path when absent);
      - C{GET requests}: the request log; C{POST requests/clear} empties it;
      - C{POST add} C{{"filename", "data" (base64), "options"?}} adds a file
        (kept in the folder, so it survives a restart);
      - C{POST remove} C{{"filename"}}.
    """

    isLeaf = True

    def __init__(self, index, log, faults, directory=None):
        super().__init__()
        self._index = index
        self._log = log
        self._faults = faults
        self._directory = directory

    def render(self, request):
        """Answer one control request."""
        host = request.getClientAddress()
        if getattr(host, "host", None) != HOST:
            return self._reply(request, 403, {"error": "loopback only"})
        action = request.path.decode("ascii", "replace")[len("/_control/"):]
        method = request.method
        try:
            body = request.content.read() if method == b"POST" else b""
            arguments = json.loads(body) if body.strip() else {}
            if (method, action) == (b"GET", "health"):
                return self._reply(request, 200, {"ok": True})
            if (method, action) == (b"GET", "requests"):
                return self._reply(request, 200, self._log.to_json())
            if method != b"POST":
                return self._reply(request, 404, {"error": f"no {action}"})
            if action == "fail":
                self._faults.set(arguments["path"], arguments["mode"],
                                 prefix=arguments.get("prefix", False),
                                 times=arguments.get("times"))
            elif action == "clear":
                self._faults.clear(arguments.get("path"))
            elif action == "requests/clear":
                self._log.clear()
            elif action == "add":
                filename = arguments["filename"]
                data = base64.b64decode(arguments["data"])
                options = arguments.get("options", {})
                entry = self._index.add(filename, data, **options)
                if self._directory is not None:
                    write_distribution(self._directory, filename, data, **options)
                return self._reply(request, 200, {"sha256": entry.sha256})
            elif action == "remove":
                self._index.remove(arguments["filename"])
                if self._directory is not None:
                    for name in (arguments["filename"], arguments["filename"] + ".json"):
                        path = os.path.join(self._directory, os.path.basename(name))
                        if os.path.exists(path):
                            os.remove(path)
            else:
                return self._reply(request, 404, {"error": f"no {action}"})
        except (KeyError, TypeError, ValueError) as e:
            return self._reply(request, 400, {"error": f"{type(e).__name__}: {e}"})
        return self._reply(request, 200, {"ok": True})

    @staticmethod
    def _reply(request, status, value):
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(value).encode("utf-8")


# -- running in the test process's reactor -----------------------------------------------------------


class _TrackedWrapper(ProtocolWrapper):
    """A connection its factory can count and abort."""

    def connectionLost(self, reason):
        factory = self.factory
        super().connectionLost(reason)
        factory.closed()


class _ConnectionsFactory(WrappingFactory):
    """Wraps the site to know its open connections, so they can be cut on a stop."""

    protocol = _TrackedWrapper
    noisy = False

    def __init__(self, wrapped):
        super().__init__(wrapped)
        self._waiting = []

    def abort_all(self):
        """Abort every open connection; return a Deferred that fires once all are gone."""
        for connection in list(self.protocols):
            connection.transport.abortConnection()
        if not self.protocols:
            return succeed(None)
        d = Deferred()
        self._waiting.append(d)
        return d

    def closed(self):
        """A connection went; wake the waiters when it was the last one."""
        if not self.protocols:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)


class _QuietSite(Site):
    noisy = False

    def log(self, request):
        """The upstream keeps its own L{RequestLog}; no access log line."""


class UpstreamServer:
    """
    The upstream listening in this process's reactor, on a fixed loopback
    port once started (so L{stop} then L{start} keeps its URL).

    @ivar index: the L{UpstreamIndex} served; change it at any time.
    @ivar log: the L{RequestLog}.
    @ivar faults: the L{Faults}; see also L{fail} and L{clear}.
    """

    def __init__(self, index, reactor, resource, port=0):
        self.index = index
        self.resource = resource
        self.log = resource.log
        self.faults = resource.faults
        self.port = port
        self._reactor = reactor
        self._factory = _ConnectionsFactory(_QuietSite(resource))
        self._listening = None

    @property
    def base(self):
        """The root URL, with a trailing slash."""
        return f"http://{HOST}:{self.port}/"

    @property
    def url(self):
        """The simple index URL."""
        return self.base + "simple/"

    @property
    def running(self):
        """Whether the server is listening."""
        return self._listening is not None

    def fail(self, path, mode, prefix=False, times=None):
        """Fail requests for C{path} with C{mode}; see L{Faults.set} and L{Fault.parse}."""
        self.faults.set(path, mode, prefix=prefix, times=times)

    def clear(self, path=None):
        """Stop failing C{path}, or every path."""
        self.faults.clear(path)

    def start(self):
        """Listen (again, on the same port once it is known); the Deferred fires with self."""
        if self._listening is not None:
            return succeed(self)
        endpoint = TCP4ServerEndpoint(self._reactor, self.port, interface=HOST)

        def listening(port):
            self._listening = port
            self.port = port.getHost().port
            return self

        return endpoint.listen(self._factory).addCallback(listening)

    def stop(self):
        """
        Stop listening and cut every open connection (stalled ones too); the
        Deferred fires once all are gone, after which connecting is refused.
        """
        if self._listening is None:
            return succeed(None)
        listening, self._listening = self._listening, None
        return gatherResults([listening.stopListening(), self._factory.abort_all()],
                             consumeErrors=True).addCallback(lambda _: None)


def start_in_reactor(index, reactor, port=0, *, links="absolute", files_url=None,
                     log=None, control_directory=None, control=False):
    """
    Serve C{index} on 127.0.0.1:C{port} (0: any free port) in C{reactor};
    the Deferred fires with the listening L{UpstreamServer}.

    @param control: mount the control API under C{/_control/}.
    @param control_directory: where the control API keeps added files.
    """
    log = RequestLog() if log is None else log
    faults = Faults()
    control_resource = None
    if control or control_directory is not None:
        control_resource = ControlResource(index, log, faults, control_directory)
    resource = UpstreamResource(index, log, faults, links=links, files_url=files_url,
                                clock=reactor, control=control_resource)
    return UpstreamServer(index, reactor, resource, port).start()


# -- running as a process ------------------------------------------------------------------------


def main(argv=None):
    """Serve the distributions of C{--dir} on 127.0.0.1:C{--port} until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tests.upstream_server",
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--dir", required=True, help="the folder of distributions to serve")
    parser.add_argument("--links", choices=("absolute", "relative"), default="absolute")
    parser.add_argument("--files-url", default=None,
                        help="absolute base of file URLs in pages")
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    directory = os.path.abspath(args.dir)
    index = load_directory(directory)

    def echo(entry):
        print(f"{entry.method} {entry.path} accept={entry.accept!r} fault={entry.fault}",
              flush=True)

    outcome = {"code": 0}

    def listening(server):
        print(f"upstream listening on {server.base} serving {len(index.projects())} projects",
              flush=True)

    def failed(failure):
        print(f"upstream could not listen: {failure.getErrorMessage()}", flush=True)
        outcome["code"] = 1
        reactor.stop()

    d = start_in_reactor(index, reactor, args.port, links=args.links, files_url=args.files_url,
                         log=RequestLog(echo), control_directory=directory)
    d.addCallbacks(listening, failed)
    reactor.run()
    return outcome["code"]


class UpstreamProcess(ChildProcess):
    """
    The upstream run as a child process serving the distributions in
    C{directory} (its log is C{upstream.log} there), driven with blocking
    calls from end-to-end tests.

    Faults and the request log live in the process: a restart forgets them,
    while added files stay in the folder and are served again.
    """

    what = "upstream"

    def __init__(self, directory, links="absolute", files_url=None, port=None):
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.log_path = os.path.join(self.directory, LOG_NAME)
        self.links = links
        self.files_url = files_url
        self.port = port
        self.process = None
        self._log_offset = 0

    @property
    def base(self):
        """The root URL, with a trailing slash."""
        return f"http://{HOST}:{self.port}/"

    @property
    def url(self):
        """The simple index URL."""
        return self.base + "simple/"

    def running(self):
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def command(self):
        """The argv of the process."""
        argv = [sys.executable, "-m", "tests.upstream_server", "--port", str(self.port or 0),
                "--dir", self.directory, "--links", self.links]
        if self.files_url is not None:
            argv += ["--files-url", self.files_url]
        return argv

    def start(self, timeout=STARTUP_TIMEOUT):
        """
        Start the process (on its earlier port after a stop) and wait until
        it answers; return self.

        @raise E2EFailure: it exited or did not answer within C{timeout} s.
        """
        if self.running():
            raise E2EFailure("the upstream is already running")
        with open(self.log_path, "ab") as log:
            log.write(f"==== upstream: start on port {self.port or 'any'} ====\n".encode())
            self._log_offset = log.tell()
            self.process = subprocess.Popen(
                self.command(), cwd=CHECKOUT, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=clean_env(self.directory, PYTHONUNBUFFERED="1"),
                start_new_session=True, preexec_fn=_die_with_parent)
        _live.add(self)
        deadline = time.monotonic() + timeout
        pattern = re.compile(rb"upstream listening on http://127\.0\.0\.1:(\d+)/")
        while True:
            if self.process.poll() is not None:
                _live.discard(self)
                raise E2EFailure(f"the upstream exited with code {self.process.returncode} "
                                 f"during start-up:\n{self.log_since_start()}")
            found = pattern.search(self.log_since_start().encode("utf-8"))
            if found:
                self.port = int(found.group(1))
                try:
                    if http("GET", self.base + "_control/health", timeout=1).status == 200:
                        return self
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self.kill()
                raise E2EFailure(f"the upstream did not answer within {timeout} s:\n"
                                 f"{self.log_since_start()}")
            time.sleep(0.02)


    def log_since_start(self):
        """What the process wrote since its last start."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def _control(self, method, action, arguments=None):
        body = None if arguments is None else json.dumps(arguments).encode("utf-8")
        response = http(method, self.base + "_control/" + action,
                        {"Content-Type": "application/json"}, body, timeout=CONTROL_TIMEOUT)
        if response.status != 200:
            raise E2EFailure(f"upstream control {action} answered {response.status}: "
                             f"{response.body!r}")
        return response.json()

    def fail(self, path, mode, prefix=False, times=None):
        """Fail requests for C{path} with C{mode}; see L{Fault.parse}."""
        Fault.parse(mode)
        self._control("POST", "fail", {"path": path, "mode": mode, "prefix": prefix,
                                       "times": times})

    def clear(self, path=None):
        """Stop failing C{path}, or every path."""
        self._control("POST", "clear", {} if path is None else {"path": path})

    def requests(self):
        """The request log: dicts of C{method}, C{path}, C{accept}, C{fault}."""
        return self._control("GET", "requests")

    def count(self, path):
        """How many requests the upstream received for C{path}."""
        return sum(1 for entry in self.requests() if entry["path"] == path)

    def clear_requests(self):
        """Empty the request log."""
        self._control("POST", "requests/clear", {})

    def add(self, filename, data, **options):
        """
        Serve one more file (see L{make_file} for the options), kept in the
        folder; when the process is not running it is served from the next start.
        """
        make_file(filename, data, **options)
        if self.running():
            self._control("POST", "add", {
                "filename": filename, "data": base64.b64encode(data).decode("ascii"),
                "options": _options_to_json(options)})
        else:
            write_distribution(self.directory, filename, data, **options)

    def add_wheel(self, name, version, requires_dist=(), requires_python=None, **options):
        """Build a wheel (see L{UpstreamIndex.add_wheel}), serve it, return its filename."""
        filename, data = make_wheel(name, version, requires_python=requires_python,
                                    requires_dist=requires_dist)
        self.add(filename, data, requires_python=requires_python, **options)
        return filename

    def add_sdist(self, name, version, requires_dist=(), requires_python=None, **options):
        """Build an sdist, serve it, return its filename."""
        filename, data = make_sdist(name, version, requires_python=requires_python,
                                    requires_dist=requires_dist)
        self.add(filename, data, requires_python=requires_python, **options)
        return filename

    def remove(self, filename):
        """Stop serving a file and delete it from the folder."""
        if self.running():
            self._control("POST", "remove", {"filename": filename})
        else:
            for name in (filename, filename + ".json"):
                path = os.path.join(self.directory, name)
                if os.path.exists(path):
                    os.remove(path)


if __name__ == "__main__":
    sys.exit(main())
