"""
A small upstream package index for the tests of pypid's upstream support:
real wheels and sdists, served on a loopback port in PEP 503 HTML and PEP 691
JSON, able to fail on demand.

  - L{UpstreamIndex} holds the projects and their files (plain Python, no
    I/O) and can build the wheels and sdists itself.
  - L{UpstreamResource} serves it: C{/simple/}, C{/simple/<project>/},
    C{/files/<filename>} and C{/files/<filename>.metadata}; it records every
    request in a L{RequestLog} and applies the L{Faults} set for a path
    (see L{Fault.parse} for the modes). A L{RawAnswer} set for a path is
    sent instead, byte for byte, for what no index would serve (a 20 MB
    page, a body that never ends, a redirect to a URL that cannot be
    parsed); with L{Cookies} on, every answer sets a fresh cookie.
  - L{start_in_reactor} runs it in the test process's reactor, for trial
    tests that wait on Deferreds; the L{UpstreamServer} it gives can stop and
    start its listener on the same port.
  - C{python -m tests.harness.upstream_server --port P --dir DIR} runs it as a
    process, serving the distributions in DIR, with a control API under
    C{/_control/}; L{UpstreamProcess} starts and drives that process from
    blocking end-to-end tests, whose test thread is stuck in subprocesses
    while pip or pypid talk to the upstream.

Everything listens on 127.0.0.1 only.
"""

import argparse
import base64
import binascii
import collections
import datetime
import hashlib
import html
import io
import json
import os
import re
import secrets
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
from twisted.internet.interfaces import IPushProducer
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer

from tests import CHECKOUT
from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.e2e import (
    ChildProcess,
    E2EFailure,
    _die_with_parent,
    _live,
    clean_env,
    http,
)

HOST = "127.0.0.1"

#: The upload time of a file when none is given: long ago, so no cooldown hides it.
DEFAULT_UPLOAD_TIME = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)

#: Bytes per write of the C{slow} mode when the mode does not say.
SLOW_CHUNK = 256

#: Seconds the upstream process gets to listen after it is started (a safety
#: limit, far above what a start takes even on a loaded machine).
STARTUP_TIMEOUT = 60.0
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
        moment = datetime.datetime.fromtimestamp(value, datetime.UTC)
    else:
        raise TypeError(f"not an upload time: {value!r}")
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return None if moment is None else moment.astimezone(datetime.UTC)


def iso_z(moment):
    """C{moment} the way PyPI writes an upload time: ISO 8601, microseconds, C{Z}."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    @ivar claimed_size: the size that JSON pages give (normally L{size}), or
        L{None} to give none: pypid must then bound the download itself.
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
    claimed_size: int | None = None

    @property
    def size(self):
        """The file's length in bytes."""
        return len(self.data)

    @property
    def metadata_sha256(self):
        """The sha256 of the served metadata, or L{None}."""
        return None if self.metadata is None else _sha256(self.metadata)


def make_file(filename, data, *, project=None, requires_python=None, yanked=None,
              upload_time=DEFAULT_UPLOAD_TIME, metadata=None, url=None, claimed_sha256=None,
              claimed_size=True):
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
    @param claimed_size: the size for JSON pages to claim: C{True} (the real
        one), a number of bytes, or L{None} for none.
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
    if claimed_size is True:
        claimed_size = len(data)
    elif claimed_size is not None and (isinstance(claimed_size, bool)
                                       or not isinstance(claimed_size, int)):
        raise TypeError(f"not a claimed size: {claimed_size!r}")
    return UpstreamFile(
        filename=filename, project=project, version=version, data=data, sha256=digest,
        requires_python=requires_python, yanked=yanked, upload_time=_utc(upload_time),
        metadata=metadata, url=url,
        claimed_sha256=digest if claimed_sha256 is None else claimed_sha256,
        claimed_size=claimed_size)


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
            }
            if f.claimed_size is not None:
                entry["size"] = f.claimed_size
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


# -- raw answers and cookies ------------------------------------------------------------------


#: Bytes of a repeated body written at once, at most (a block of whole copies).
RAW_BLOCK = 256 << 10
#: Bytes a raw answer writes per turn of the reactor, at most, so that a
#: body sent as fast as the client reads still lets other requests (and the
#: control API) in.
RAW_TURN = 4 << 20
#: The length of the value of the cookie set with L{Cookies} on.
COOKIE_SIZE = 500


def _raw_headers(headers):
    """C{(name, value)} pairs of text or bytes as byte pairs (latin-1, as HTTP has it)."""
    pairs = []
    for pair in headers:
        name, value = pair
        name = name.encode("latin-1") if isinstance(name, str) else bytes(name)
        value = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        pairs.append((name, value))
    return tuple(pairs)


@attrs.frozen
class RawAnswer:
    """
    An answer for one exact path given as bytes, whatever the index holds:
    the pages and files no well-behaved index serves, which pypid must
    survive (a 20 MB page of ten million entries, a body that never ends, a
    redirect to C{http://[x/}).

    The body is C{prefix}, then C{body} C{repeat} times (or for ever when
    C{endless}, until the client goes), then C{suffix}. It is made as it is
    sent, a block of copies at a time, with the client's flow control, so
    that a huge or endless body costs the server no memory.

    @ivar headers: C{(name, value)} byte pairs, sent as they are; a
        C{Content-Length} given is sent even when it is a lie. Without one,
        the real length is sent, except when the body is endless or the
        answer is HTTP/1.0 (then the close ends it). No C{Content-Type} is
        added.
    @ivar interval: seconds before each copy of C{body} (a trickle: the
        status, headers and prefix go at once); C{0} sends as fast as the
        client reads.
    @ivar http10: answer as an HTTP/1.0 server does: that status line, no
        chunked encoding, and the connection closed at the end.
    """

    status: int = 200
    headers: tuple = attrs.field(default=(), converter=_raw_headers)
    body: bytes = attrs.field(default=b"", repr=lambda body: f"<{len(body)} bytes>")
    prefix: bytes = attrs.field(default=b"", repr=lambda data: f"<{len(data)} bytes>")
    suffix: bytes = attrs.field(default=b"", repr=lambda data: f"<{len(data)} bytes>")
    repeat: int = 1
    endless: bool = False
    interval: float = 0.0
    http10: bool = False

    def __attrs_post_init__(self):
        if not 100 <= self.status <= 599:
            raise ValueError(f"a status outside 100-599: {self.status}")
        if self.repeat < 0 or self.interval < 0:
            raise ValueError("a negative repeat or interval")

    @property
    def length(self):
        """The bytes of the whole body, or L{None} when it is endless."""
        if self.endless:
            return None
        return len(self.prefix) + len(self.body) * self.repeat + len(self.suffix)

    def given(self, name):
        """Whether the headers name C{name} (bytes, any case)."""
        return any(n.lower() == name.lower() for n, _ in self.headers)

    @classmethod
    def from_json(cls, arguments):
        """The answer the control API's C{POST raw} describes (bytes in base64)."""
        def data(key):
            return base64.b64decode(arguments.get(key) or "")
        return cls(status=int(arguments.get("status", 200)),
                   headers=[tuple(pair) for pair in arguments.get("headers") or ()],
                   body=data("body"), prefix=data("prefix"), suffix=data("suffix"),
                   repeat=int(arguments.get("repeat", 1)),
                   endless=bool(arguments.get("endless", False)),
                   interval=float(arguments.get("interval", 0.0)),
                   http10=bool(arguments.get("http10", False)))

    def to_json(self, path):
        """The arguments of the control API's C{POST raw} for this answer at C{path}."""
        def text(data):
            return base64.b64encode(data).decode("ascii")
        return {"path": path, "status": self.status,
                "headers": [[n.decode("latin-1"), v.decode("latin-1")]
                            for n, v in self.headers],
                "body": text(self.body), "prefix": text(self.prefix),
                "suffix": text(self.suffix), "repeat": self.repeat, "endless": self.endless,
                "interval": self.interval, "http10": self.http10}


class RawAnswers:
    """
    The L{RawAnswer}s set, by exact path (as faults match it: unquoted),
    and the answers of each being sent, so that clearing a path also cuts
    its bodies under way (an endless one would otherwise run until pypid
    gives up on it, whether it does or not).
    """

    def __init__(self):
        self._answers = {}
        self._sending = collections.defaultdict(set)

    def set(self, path, answer):
        """Answer C{path} with C{answer} (a L{RawAnswer}) from now on."""
        self._answers[path] = answer

    def match(self, path):
        """The L{RawAnswer} of C{path}, or L{None}."""
        return self._answers.get(path)

    def clear(self, path=None):
        """Forget the answer of C{path} (or every one) and cut its answers under way."""
        paths = list(self._answers) if path is None else [path]
        for p in paths:
            self._answers.pop(p, None)
        for p in (list(self._sending) if path is None else [path]):
            for sender in list(self._sending.pop(p, ())):
                sender.cut()

    def release(self, path):
        """Send at once the next copy of the answers of C{path} held by their C{interval}."""
        for sender in list(self._sending.get(path, ())):
            sender.release()

    def sending(self, path=None):
        """How many answers of C{path} (or of every path) are being sent."""
        if path is None:
            return sum(len(senders) for senders in self._sending.values())
        return len(self._sending.get(path, ()))

    def send(self, request, path, answer, clock):
        """Start sending C{answer} to C{request}."""
        sender = _RawSender(request, answer, clock, lambda s: self._done(path, s))
        self._sending[path].add(sender)
        sender.start()

    def _done(self, path, sender):
        senders = self._sending.get(path)
        if senders is not None:
            senders.discard(sender)
            if not senders:
                del self._sending[path]


@implementer(IPushProducer)
class _RawSender:
    """
    Sends one L{RawAnswer}: a block of copies of its body at a time while
    the client keeps up (paused when the connection's buffer is full), or
    one copy every C{interval}; stops as soon as the client goes.
    """

    def __init__(self, request, answer, clock, done):
        self.request = request
        self.answer = answer
        self._clock = clock
        self._done = done
        self._left = None if answer.endless else answer.repeat
        copies = max(1, RAW_BLOCK // max(1, len(answer.body)))
        self._copies = copies
        self._block = answer.body * copies
        self._paused = False
        self._over = False
        self._call = None
        request.notifyFinish().addBoth(self._finished)

    def start(self):
        """Send the status, the headers and the prefix; the body follows."""
        request, answer = self.request, self.answer
        request.defaultContentType = None
        request.setResponseCode(answer.status)
        for name, value in answer.headers:
            request.responseHeaders.addRawHeader(name, value)
        if answer.http10:
            request.clientproto = b"HTTP/1.0"
            request.channel.persistent = False
        elif answer.length is not None and not answer.given(b"content-length"):
            request.setHeader(b"Content-Length", b"%d" % answer.length)
        if request.method == b"HEAD":
            request.write(b"")
            self._end(suffix=False)
            return
        request.registerProducer(self, True)
        request.write(answer.prefix)
        self._schedule(answer.interval)

    def _schedule(self, seconds):
        if self._call is None and not self._over:
            self._call = self._clock.callLater(seconds, self._pump)

    def _pump(self):
        self._call = None
        if self._paused or self._over:
            return
        body = self.answer.body
        if self._left == 0 or (not body and self._left is not None):
            self._end()
            return
        if not body:
            return  # an endless empty body: nothing to send, ever
        if self.answer.interval:
            self.request.write(body)
            if self._left is not None:
                self._left -= 1
            self._schedule(self.answer.interval if self._left != 0 else 0)
            return
        written = 0
        while not self._paused and not self._over and written < RAW_TURN:
            if self._left == 0:
                self._end()
                return
            copies = self._copies if self._left is None else min(self._copies, self._left)
            data = self._block if copies == self._copies else body * copies
            if self._left is not None:
                self._left -= copies
            written += len(data)
            self.request.write(data)
        if not self._paused:
            self._schedule(0)

    def _end(self, suffix=True):
        if self._over:
            return
        self._over = True
        request = self.request
        if suffix and self.answer.suffix:
            request.write(self.answer.suffix)
        if request.producer is not None:
            request.unregisterProducer()
        request.finish()

    def release(self):
        """Send the next copy now, not at the end of its interval (the last: and end)."""
        if self._call is not None and self._call.active():
            self._call.cancel()
            self._call = None
            self._pump()
            if self._left == 0 and self._call is not None:
                self._call.cancel()
                self._call = None
                self._end()

    def pauseProducing(self):
        """The client is behind: wait."""
        self._paused = True

    def resumeProducing(self):
        """The client caught up: go on (on the next turn, not within its write)."""
        if self._paused:
            self._paused = False
            self._schedule(0)

    def stopProducing(self):
        """The connection is going: stop."""
        self._stop()

    def cut(self):
        """Close the connection now, mid-body (the answer was cleared)."""
        self._stop()
        transport = self.request.channel.transport if self.request.channel else None
        if transport is not None:
            transport.abortConnection()

    def _stop(self):
        self._over = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _finished(self, _):
        self._stop()
        self._done(self)


class Cookies:
    """
    Whether every answer sets a cookie: each a fresh one, under a name of
    its own and with a value of L{COOKIE_SIZE} characters, so that a client
    that keeps cookies (as treq does by default) sends ever more of them
    back to the upstream.
    """

    def __init__(self, on=False):
        self.on = on
        self.made = 0

    def next(self):
        """The C{Set-Cookie} value of the next answer, or L{None} when off."""
        if not self.on:
            return None
        self.made += 1
        return b"c%d=%s; Path=/" % (self.made, secrets.token_hex(COOKIE_SIZE // 2).encode())


# -- the request log ----------------------------------------------------------------------------


#: The fields of a L{LoggedRequest} that L{LoggedRequest.to_json} gives
#: only when asked for details (the log's JSON form had four fields first).
DETAILS = ("cookie_length", "accept_encoding")


@attrs.frozen
class LoggedRequest:
    """
    One request as the upstream saw it; C{fault} is the failure mode applied,
    if any (C{"raw"} for a L{RawAnswer}).

    @ivar cookie_length: the length of the C{Cookie} headers received (all
        together), 0 for none: a client that keeps the cookies an upstream
        sets sends them back on every request, and they only grow.
    @ivar accept_encoding: the C{Accept-Encoding} header received, or
        L{None}: a file asked for compressed is not the file its page hashed.
    """

    method: str
    path: str
    accept: str | None
    fault: str | None = None
    cookie_length: int = 0
    accept_encoding: str | None = None

    def to_json(self, details=False):
        """A JSON-ready dict; with C{details}, the L{DETAILS} fields too."""
        data = attrs.asdict(self)
        if not details:
            for name in DETAILS:
                del data[name]
        return data


class RequestLog:
    """Every request the upstream received (except control requests), in order."""

    def __init__(self, echo=None):
        self.entries = []
        self._echo = echo

    def record(self, method, path, accept, fault=None, cookie_length=0, accept_encoding=None):
        """Note one request."""
        entry = LoggedRequest(method, path, accept, fault, cookie_length, accept_encoding)
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

    def to_json(self, details=False):
        """The entries as JSON-ready dicts (see L{LoggedRequest.to_json})."""
        return [e.to_json(details) for e in self.entries]


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
    logged and failed as L{Faults} say, or answered with the L{RawAnswer}
    set for its path (faults do not apply to those).

    @param links: C{"absolute"} (file and project URLs made from the
        server's own address, or C{files_url}) or C{"relative"}.
    @param files_url: the absolute base of file URLs in pages, instead of
        C{http://<this server>/files/}.
    @param clock: the reactor for delays; the global one when L{None}.
    @param control: a resource answering C{/_control/...}, or L{None}.
    @param raw: the L{RawAnswers}; new ones when L{None}.
    @param cookies: the L{Cookies}; off when L{None}.
    @param authorization: the exact C{Authorization} value every request
        (but the control API's) must carry, as an upstream that wants
        credentials; anything else is answered 401. L{None}: none wanted.
        Every C{Authorization} received is in L{authorizations}, by path.
    """

    isLeaf = True

    def __init__(self, index, log, faults=None, *, links="absolute", files_url=None,
                 clock=None, control=None, raw=None, cookies=None, authorization=None):
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
        self.raw = RawAnswers() if raw is None else raw
        self.cookies = Cookies() if cookies is None else cookies
        self.authorization = authorization
        self.authorizations = []

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
        encoding = request.getHeader(b"accept-encoding")
        encoding = None if encoding is None else encoding.decode("latin-1")
        cookie_length = sum(len(value) for value in
                            request.requestHeaders.getRawHeaders(b"cookie", []))
        cookie = self.cookies.next()
        if cookie is not None:
            request.responseHeaders.addRawHeader(b"Set-Cookie", cookie)
        given = request.getHeader(b"authorization")
        self.authorizations.append((path, given))
        if self.authorization is not None and given != self.authorization:
            self.log.record(method, path, accept, "unauthorized", cookie_length, encoding)
            request.setResponseCode(401)
            request.setHeader(b"WWW-Authenticate", b'Basic realm="upstream"')
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"credentials required\n"
        raw = self.raw.match(path)
        if raw is not None:
            self.log.record(method, path, accept, "raw", cookie_length, encoding)
            self.raw.send(request, path, raw, self._reactor())
            return NOT_DONE_YET
        fault = self.faults.match(path)
        self.log.record(method, path, accept, None if fault is None else fault.mode,
                        cookie_length, encoding)
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
      - C{GET requests}: the request log (C{?details=1}: with the
        L{DETAILS} fields); C{POST requests/clear} empties it;
      - C{POST add} C{{"filename", "data" (base64), "options"?}} adds a file
        (kept in the folder, so it survives a restart);
      - C{POST remove} C{{"filename"}};
      - C{POST raw} C{{"path", "status"?, "headers"? ([[name, value], ...]),
        "body"? (base64), "prefix"?, "suffix"?, "repeat"?, "endless"?,
        "interval"?, "http10"?}} answers that exact path with those bytes
        (see L{RawAnswer}; not kept in the folder: a restart forgets it);
      - C{POST raw/clear} C{{"path"?}} forgets it (every one when absent) and
        cuts its answers under way; C{GET raw/sending} counts those; C{POST
        raw/release} C{{"path"}} sends at once the next copy that an
        C{interval} holds back (a download held open until the test says);
      - C{POST cookies} C{{"on"}}: every answer sets a fresh cookie, or not.
    """

    isLeaf = True

    def __init__(self, index, log, faults, directory=None, raw=None, cookies=None):
        super().__init__()
        self._index = index
        self._log = log
        self._faults = faults
        self._directory = directory
        self._raw = RawAnswers() if raw is None else raw
        self._cookies = Cookies() if cookies is None else cookies

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
                details = request.args.get(b"details", [b"0"])[0] not in (b"0", b"")
                return self._reply(request, 200, self._log.to_json(details))
            if (method, action) == (b"GET", "raw/sending"):
                return self._reply(request, 200, {"sending": self._raw.sending()})
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
            elif action == "raw":
                self._raw.set(arguments["path"], RawAnswer.from_json(arguments))
            elif action == "raw/clear":
                self._raw.clear(arguments.get("path"))
            elif action == "raw/release":
                self._raw.release(arguments["path"])
            elif action == "cookies":
                self._cookies.on = bool(arguments["on"])
            elif action == "remove":
                self._index.remove(arguments["filename"])
                if self._directory is not None:
                    for name in (arguments["filename"], arguments["filename"] + ".json"):
                        path = os.path.join(self._directory, os.path.basename(name))
                        if os.path.exists(path):
                            os.remove(path)
            else:
                return self._reply(request, 404, {"error": f"no {action}"})
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
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
    @ivar raw: the L{RawAnswers}; see also L{answer_raw}.
    @ivar cookies: the L{Cookies}; set C{cookies.on}.
    """

    def __init__(self, index, reactor, resource, port=0):
        self.index = index
        self.resource = resource
        self.log = resource.log
        self.faults = resource.faults
        self.raw = resource.raw
        self.cookies = resource.cookies
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

    def answer_raw(self, path, body=b"", **options):
        """Answer the exact C{path} with those bytes; see L{RawAnswer} for the options."""
        self.raw.set(path, RawAnswer(body=body, **options))

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
                     log=None, control_directory=None, control=False, authorization=None):
    """
    Serve C{index} on 127.0.0.1:C{port} (0: any free port) in C{reactor};
    the Deferred fires with the listening L{UpstreamServer}.

    @param control: mount the control API under C{/_control/}.
    @param authorization: the C{Authorization} value required (L{UpstreamResource}).
    @param control_directory: where the control API keeps added files.
    """
    log = RequestLog() if log is None else log
    faults = Faults()
    raw = RawAnswers()
    cookies = Cookies()
    control_resource = None
    if control or control_directory is not None:
        control_resource = ControlResource(index, log, faults, control_directory, raw, cookies)
    resource = UpstreamResource(index, log, faults, links=links, files_url=files_url,
                                clock=reactor, control=control_resource, raw=raw,
                                cookies=cookies, authorization=authorization)
    return UpstreamServer(index, reactor, resource, port).start()


# -- running as a process ------------------------------------------------------------------------


def main(argv=None):
    """Serve the distributions of C{--dir} on 127.0.0.1:C{--port} until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tests.harness.upstream_server",
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--dir", required=True, help="the folder of distributions to serve")
    parser.add_argument("--links", choices=("absolute", "relative"), default="absolute")
    parser.add_argument("--files-url", default=None,
                        help="absolute base of file URLs in pages")
    parser.add_argument("--basic", default=None, metavar="USER:PASSWORD",
                        help="require these credentials (HTTP Basic)")
    parser.add_argument("--token", default=None, help="require this bearer token")
    args = parser.parse_args(argv)
    authorization = None
    if args.basic is not None:
        authorization = b"Basic " + base64.b64encode(args.basic.encode("utf-8"))
    elif args.token is not None:
        authorization = b"Bearer " + args.token.encode("utf-8")

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
                         log=RequestLog(echo), control_directory=directory,
                         authorization=authorization)
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

    def __init__(self, directory, links="absolute", files_url=None, port=None,
                 credentials=()):
        """
        @param credentials: C{("--basic", "USER:PASSWORD")} or
            C{("--token", TOKEN)}: the upstream wants them; C{()}: it does not.
        """
        self.credentials = tuple(credentials)
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
        argv = [sys.executable, "-m", "tests.harness.upstream_server", "--port", str(self.port or 0),
                "--dir", self.directory, "--links", self.links]
        if self.files_url is not None:
            argv += ["--files-url", self.files_url]
        return argv + list(self.credentials)

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

    def requests(self, details=False):
        """
        The request log: dicts of C{method}, C{path}, C{accept}, C{fault};
        with C{details}, also C{cookie_length} (of the C{Cookie} headers
        received, 0 for none) and C{accept_encoding} (or L{None}).
        """
        return self._control("GET", "requests?details=1" if details else "requests")

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

    def raw(self, path, body=b"", **options):
        """
        Answer the exact C{path} with those bytes from now on (until
        L{clear_raw} or a restart): see L{RawAnswer} for the options
        (C{status}, C{headers} as C{(name, value)} pairs, C{prefix},
        C{suffix}, C{repeat}, C{endless}, C{interval}, C{http10}).
        """
        answer = RawAnswer(body=body, **options)
        self._control("POST", "raw", answer.to_json(path))

    def clear_raw(self, path=None):
        """Forget the raw answer of C{path} (or every one), cutting its answers under way."""
        self._control("POST", "raw/clear", {} if path is None else {"path": path})

    def release(self, path):
        """Send at once the next copy of C{path}'s raw answers that their C{interval} holds back."""
        self._control("POST", "raw/release", {"path": path})

    def sending(self):
        """How many raw answers are being sent now."""
        return self._control("GET", "raw/sending")["sending"]

    def cookies(self, on=True):
        """Set a fresh cookie on every answer from now on (or stop)."""
        self._control("POST", "cookies", {"on": bool(on)})

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
