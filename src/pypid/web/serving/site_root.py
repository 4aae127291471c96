"""
The site's root: the hot path of the default index at C{/}, then everything else.

The default index's C{/simple/...}, C{/files/...} and C{/integrity/...} are answered by the
same L{ServedIndex} a named index's are, through plain Twisted resources (L{IndexPath}) rather
than Klein routes: they are what pip and uv fetch thousands of times a second, and a route
table, a werkzeug adapter and per-request closures cost more than the page lookup itself. Each
request does one dict lookup for its first segment, the index's read gate (nothing while
anyone may read), content negotiation (memoized on the Accept header), and sets a handful of
headers on bytes rendered earlier. C{/packages/...} finds a file by its digest in every index.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from twisted.internet.defer import Deferred
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from pypid.core.dists.names import InvalidName, parse_filename
from pypid.core.indexes.index_names import (
    NO_SUCH_INDEX,
    ROUTE_SEGMENTS,
    asks_for_index,
    is_index_segment,
)
from pypid.core.indexes.render import AgedPage, Page
from pypid.core.util.http_errors import HTTPError, NotFound
from pypid.web.identity.gates import Gates, nothing_found
from pypid.web.server.respond import (
    Answer,
    Rendered,
    finish_later,
    send_error,
    send_moved,
    wrong_method_error,
)
from pypid.web.serving.index_pages import normalized_name
from pypid.web.serving.index_root import IndexPath, IndexRoot, ServedIndex, read_openly
from pypid.web.serving.read_decisions import PlainFile, StoredFile


class RootResource(Resource):
    """
    Dispatches by first segment: the default index's read paths (C{simple}, C{files},
    C{integrity}), its project pages and the other plain resources; with named indexes, a
    segment that names one or could goes to their L{IndexRoot} (after the root's own routes,
    in the same lookup); everything else to the areas.
    """

    def __init__(self, default: ServedIndex, access: Gates, areas: IResource,
                 indexes: IndexRoot | None = None, **others: IResource) -> None:
        """@param others: more plain resources by their first segment."""
        Resource.__init__(self)
        self._default = default
        self._access = access
        #: request name -> its normalized form (L{normalized_name})
        self._names: dict[str, str] = {}
        self._children: dict[bytes, IResource] = {
            area: IndexPath(default, area, access) for area in (b"simple", b"files",
                                                                b"integrity")}
        if default.project is not None:
            self._children[b"project"] = default.project
        self._children.update((name.encode("ascii"), child) for name, child in others.items())
        self._children[b"packages"] = PackagesPath(self._every_index, access)
        self._app = areas
        self._indexes = indexes

    def _every_index(self) -> list[ServedIndex]:
        """The indexes served now, the default first (C{/packages/} looks in each)."""
        named = self._indexes
        return [self._default, *(named.served.values() if named is not None else ())]

    def plain_page(self, accept: bytes | None, index: bytes | None,
                   rest: bytes) -> Page | AgedPage | None:
        """
        The kept page the express lane may send to an anonymous C{GET} of C{/simple/<rest>}
        (C{index} L{None}) or C{/<index>/simple/<rest>} (L{IndexSimple.plain_page}), or L{None}.
        """
        served = self._read_openly(index)
        return None if served is None else served.simple.plain_page(accept, rest)

    def plain_file(self, index: bytes | None, rest: bytes) -> PlainFile | None:
        """The same as L{plain_page}, for C{files/<rest>} (L{IndexFiles.plain_file})."""
        served = self._read_openly(index)
        return None if served is None else served.files.plain_file(rest)

    def _read_openly(self, index: bytes | None) -> ServedIndex | None:
        """
        The index the usual path would give C{/<index>/} to (L{None}: the default), the root's
        own routes first, when the express lane may answer for it (L{read_openly}: no project
        waits there for its files to be read); else L{None}.
        """
        if index is None:
            served: ServedIndex | None = self._default
        elif self._indexes is None or index in self._children or not is_index_segment(index):
            return None
        else:
            served = self._indexes.served.get(index)
        return served if served is not None and read_openly(self._access, served) else None

    def getChildWithDefault(self, name: bytes, request: Request) -> IResource:
        """Pick the resource for the first path segment."""
        child = self._children.get(name)
        if child is not None:
            return child
        if is_index_segment(name):
            if self._indexes is not None:
                return self._indexes
            if asks_for_index(request.method, request.postpath):  # type: ignore[arg-type]
                # (a server of one index: an upload to /NAME/, or a read of /NAME/simple/, is
                # told there is no such index, as a server of named indexes tells it)
                return _NoSuchIndex()
        moved = self._pypiserver_path(name, request)
        if moved is not None:
            return moved
        # (process() set both lists before any resource is asked)
        request.postpath.insert(0, request.prepath.pop())  # type: ignore[union-attr]
        return self._app

    def _pypiserver_path(self, name: bytes, request: Request) -> IResource | None:
        """
        pypiserver's project URL: C{GET /<project>/} of a project the default index holds, which
        anyone may read, moves to C{/simple/<project>/}, so an index URL that worked there keeps
        working. Only on a server of one index (with named ones, C{/NAME/} is theirs: a hidden
        index and a project must not answer apart), never for a route's own first segment.
        """
        post: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
        if post != [b""] or request.method not in (b"GET", b"HEAD") \
                or name.decode("ascii", "replace") in ROUTE_SEGMENTS:
            return None
        simple = self._default.simple
        project = normalized_name(self._names, name)
        own = simple.composed.own
        if project is None or own is None or own.project(project) is None \
                or not self._access.anonymous.reads(project):
            return None
        return _Moved(simple.base, f"simple/{project}/")

    def render(self, request: Request) -> Rendered:
        """Only reached for a request with no path segment at all: the areas'."""
        return self._app.render(request)


class _NoSuchIndex(Resource):
    """The answer of a request only an index answers, on a server of none named."""

    isLeaf = True

    def render(self, request: Request) -> Rendered:
        return send_error(request, NotFound(NO_SUCH_INDEX))


class _Moved(Resource):
    """A permanent redirect to one of the site's own paths (L{send_moved})."""

    isLeaf = True

    def __init__(self, base: str, path: str) -> None:
        Resource.__init__(self)
        self._base = base
        self._path = path

    def render_GET(self, request: Request) -> bytes:
        return send_moved(request, self._base, self._path)

    render_HEAD = render_GET


_HEX = re.compile(rb"\A[0-9a-f]+\Z")


class PackagesPath(Resource):
    """
    C{/packages/<aa>/<bb>/<rest>/<filename>}: a hosted file by the BLAKE2b-256 of its bytes, as
    the public index's file host names its files and the legacy JSON links them; its core
    metadata at that path and C{.metadata} (PEP 658). Mirrors fetch these URLs: bandersnatch
    refuses a file whose path does not begin with C{/packages}.

    One path for every index: the digest names the bytes, so the file is served from the first
    index the reader may enter and read it in (the default, then the named ones) whose record
    of that name has that digest, with that index's decision (status, advisories, downloads).
    Found nowhere without credentials while the default index needs them: its challenge.
    """

    isLeaf = True

    def __init__(self, indexes: Callable[[], Sequence[ServedIndex]], access: Gates) -> None:
        """@param indexes: C{indexes()}: the served indexes in order, the default first."""
        Resource.__init__(self)
        self._indexes = indexes
        self._access = access

    def render(self, request: Request) -> Rendered:
        """Identify the request (credentials sent), then find the file."""
        try:
            if request.method not in (b"GET", b"HEAD"):
                raise wrong_method_error(request, ["GET", "HEAD"])
            project, digest, filename = _file_named(request.postpath)  # type: ignore[arg-type]
        except HTTPError as e:
            return send_error(request, e)
        gate = self._access.gate_anywhere(request)
        if gate is None:
            answer = self._answer(request, project, digest, filename)
            return finish_later(request, answer) if isinstance(answer, Deferred) else answer
        return finish_later(request, gate.addCallback(
            lambda _: self._answer(request, project, digest, filename)))

    def _answer(self, request: Request, project: str, digest: str, filename: str) -> Answer:
        reader = self._access.reader(request)
        try:
            for served in self._indexes():
                if not reader.enters(served.name):
                    continue
                decision = served.files.decide(reader, project, filename)
                if isinstance(decision, StoredFile) and decision.record.blake2_256 == digest:
                    return served.files.deliver(request, decision)
            raise nothing_found(reader)
        except HTTPError as e:
            return send_error(request, e)


def _file_named(post: Sequence[bytes]) -> tuple[str, str, str]:
    """C{(project, digest, filename)} a path after C{/packages/} names, else L{NotFound}."""
    if len(post) != 4 or [len(part) for part in post[:3]] != [2, 2, 60] \
            or not all(_HEX.match(part) for part in post[:3]):
        raise NotFound("no such file")
    try:
        filename = post[3].decode("utf-8")
        # (a file's core metadata, PEP 658, is beside it: its digest is the file's)
        project = parse_filename(filename.removesuffix(".metadata"), legacy=True).project
    except (UnicodeDecodeError, InvalidName):
        raise NotFound("no such file") from None
    return project, b"".join(post[:3]).decode("ascii"), filename
