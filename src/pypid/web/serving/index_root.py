"""
An index's read paths and areas, the default's (at C{/}: L{IndexPath}, reached through
L{pypid.web.serving.site_root.RootResource}) as a named one's (under C{/NAME/}: L{IndexRoot}),
both from one L{ServedIndex}.

C{simple/...} and C{files/...} are decided once (L{pypid.web.serving.index_pages},
L{pypid.web.serving.index_files}); the index's areas (uploads, changes, the legacy JSON, the
pages for people) are the default index's routes over its own stack: Klein reads a route
against the path after C{/NAME}, so every route is written once.

Under C{/NAME/} the gate comes first (L{Gates.gate_index}): a segment that could name an index
but names none, or one the reader may not see, answers exactly as a missing index does
(status, body and headers), anonymous uploads included. A view is read-only: its changes
answer 405 with the reason (L{ReadOnlyPublish}).

A hosted source started without its snapshot reads its files' records in the background
(L{pypid.state.backfill}): a project's page or file waits, in every index that reads that
source, until the project's files are read, or answers 503 after the wait (L{answer_read}); a
page composed earlier would list none of its files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import attrs
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from pypid.core.dists.names import is_valid_name, normalize
from pypid.core.indexes.composed import ComposedIndex
from pypid.core.indexes.index_names import DEFAULT, NO_SUCH_INDEX, asks_for_index
from pypid.core.records.metrics import UPLOAD_PATHS
from pypid.core.util.http_errors import HTTPError, MethodNotAllowed, NotFound, Unavailable
from pypid.state.hosted_source import HostedSource
from pypid.web.identity.gates import Gates
from pypid.web.identity.request_auth import IRequestAuth, for_people
from pypid.web.server.areas import Area, Areas
from pypid.web.server.respond import (
    Answer,
    Rendered,
    finish_later,
    send_error,
    send_moved,
    simple_post_error,
    wrong_method_error,
)
from pypid.web.server.routes import answer_errors, route_each
from pypid.web.server.upload_form import MultipartError, UploadTooLarge
from pypid.web.serving.index_files import IndexFiles
from pypid.web.serving.index_pages import IndexSimple
from pypid.web.serving.integrity import answer_integrity

if TYPE_CHECKING:
    # (types only: the upstream's modules load with a configured upstream)
    from pypid.upstream.source import SourceSide
    from pypid.web.changes.publish import Publish


#: What a view answers to a change, after its name.
VIEW_REFUSAL = "is a view: it takes no uploads, yanks or deletes"


@attrs.frozen
class IndexMaterials:
    """
    What an index is served from (L{pypid.web.app.build_web}), the default's as a named one's.

    @ivar sources: its hosted sources in order (itself first when hosted); a view has one at
        least, unless it reads upstreams alone.
    @ivar hosted: whether it takes uploads (into C{sources[0]}), or is a view.
    @ivar upstreams: the upstreams among its sources, by the name its order gives them
        (C{upstream:NAME}): their pages are brought up to date, and files fetched, as asked.
    """

    name: str
    composed: ComposedIndex
    sources: tuple[HostedSource, ...]
    hosted: bool
    upstreams: Mapping[str, SourceSide] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if not self.sources and not self.upstreams:
            raise ValueError(f"index {self.name!r} reads no index and no upstream")

    @property
    def own(self) -> HostedSource | None:
        """Its own stack's files and lock, or L{None} for a view."""
        return self.sources[0] if self.hosted else None

    def prefix(self, base: str) -> str:
        """Where its paths start under the site's C{base}: C{base} itself for the default."""
        return base if self.name == DEFAULT else f"{base}{self.name}/"


@attrs.define(slots=False)
class ReadOnlyPublish:
    """
    A view's upload, yank, unyank, delete, restore and status routes: 405 with the reason,
    once the credentials passed (as a hosted index's would be checked), and where to go
    instead: the hosted indexes it reads (C{_hosted}) that the caller may enter, no other.
    """

    _name: str
    _access: Gates
    _hosted: tuple[str, ...] = ()

    app = Klein()
    answer_errors(app)

    @route_each(app, UPLOAD_PATHS, methods=["POST"])
    async def upload(self, request: IRequest) -> bytes:
        """Refuse an upload (its spooled body is discarded)."""
        try:
            request.content.form().discard()
        except (MultipartError, UploadTooLarge, OSError, AttributeError):
            pass
        auth = IRequestAuth(request)
        if auth.verified is not None:
            await auth.verified
        else:
            await self._access.gate_upload(request, auth.credentials, index=None)
        raise self._refusal(request, "upload to")

    @app.route("/api/files/<string:filename>/yank", methods=["POST"])
    @app.route("/api/files/<string:filename>/unyank", methods=["POST"])
    @app.route("/api/files/<string:filename>/restore", methods=["POST"])
    @app.route("/api/files/<string:filename>", methods=["DELETE"])
    @app.route("/api/projects/<string:project>/<string:version>/yank", methods=["POST"])
    @app.route("/api/projects/<string:project>/<string:version>/unyank", methods=["POST"])
    @app.route("/api/projects/<string:project>/<string:version>", methods=["DELETE"])
    @app.route("/api/projects/<string:project>/status", methods=["POST"])
    async def change(self, request: IRequest, **named: str) -> bytes:
        """Refuse a change to a file, a release, or a project's status (its hosted index's)."""
        await self._access.gate_upload(request, index=None)
        raise self._refusal(request, "change its files in")

    def _refusal(self, request: IRequest, act: str) -> MethodNotAllowed:
        """The 405, its remedy naming where to C{act} instead (L{_hosted_for})."""
        hosted = self._hosted_for(request)
        remedy = None
        if len(hosted) == 1:
            remedy = f"{act} {hosted[0]}, the hosted index it reads"
        elif hosted:
            remedy = f"{act} one of the hosted indexes it reads: {', '.join(hosted)}"
        return MethodNotAllowed(f"{self._name} {VIEW_REFUSAL}", [(b"allow", b"GET, HEAD")],
                                remedy=remedy)

    def _hosted_for(self, request: IRequest) -> list[str]:
        """
        The hosted indexes the view reads that the request's reader may enter, as a person
        finds them: "the default index" (at C{/}), another by its name (at C{/NAME/}).
        """
        reader = self._access.reader(request)
        return ["the default index" if name == DEFAULT else name
                for name in self._hosted if reader.enters(name)]


@attrs.frozen
class ServedIndex:
    """
    One index's answers, the default's (mounted at C{/}) as a named one's (under C{/NAME/}).

    @ivar areas: its Klein areas; at C{/} they join the site's own (L{pypid.web.app}).
    @ivar resource: its areas as one resource dispatching on the path after C{/NAME}.
    @ivar publish: its uploads and changes (the console calls them); L{None} for a view.
    """

    name: str
    simple: IndexSimple
    files: IndexFiles
    areas: tuple[Area, ...]
    project: IResource | None = None
    publish: Publish | None = None
    resource: IResource = attrs.field(
        init=False, default=attrs.Factory(lambda self: Areas(self.areas), takes_self=True))

    def read_path(self, area: bytes) -> Callable[[Request], Answer] | None:
        """What answers C{simple}, C{files} or C{integrity} of the index, or L{None}."""
        if area == b"simple":
            return self.simple.answer
        if area == b"files":
            return self.files.answer
        if area == b"integrity":
            files = self.files
            return lambda request: answer_integrity(request, files)
        return None


def answer_read(served: ServedIndex, area: bytes, answer: Callable[[Request], Answer],
                request: Request) -> Rendered:
    """
    Answer a read path whose gate passed: C{GET} and C{HEAD} alone, once the project it names
    is read (L{_when_read}); C{request.postpath} starts after the area's segment.
    """
    if request.method not in (b"GET", b"HEAD"):
        if area == b"simple" and request.method == b"POST":
            raise simple_post_error(request, served.simple.base)
        raise wrong_method_error(request, ["GET", "HEAD"])
    for backfill in served.files.backfills:
        if backfill.remaining:
            body = _when_read(served, area, answer, request)
            break
    else:
        body = answer(request)
    if isinstance(body, Deferred):
        return finish_later(request, body)
    return body


def read_openly(access: Gates, served: ServedIndex) -> bool:
    """
    Whether anyone may read C{served} without credentials, and every file it holds was read:
    then the express lane may answer its kept pages and files.
    """
    # (anyone who reads an index whole enters it)
    if not access.anonymous.reads_all(served.name):
        return False
    # (a loop, not any() over a generator: 4 % of a page's CPU in a profile)
    for backfill in served.files.backfills:
        if backfill.remaining:
            return False
    return True


class IndexPath(Resource):
    """
    One read path of the default index at the root (C{/simple/}, C{/files/}, C{/integrity/}):
    its read gate, then the same answers as under C{/NAME/} (L{answer_read}).
    """

    isLeaf = True

    def __init__(self, served: ServedIndex, area: bytes, access: Gates) -> None:
        Resource.__init__(self)
        answer = served.read_path(area)
        assert answer is not None
        self._served = served
        self._area = area
        self._answer = answer
        self._access = access

    def render(self, request: Request) -> Rendered:
        """Gate the request by the index's read grant, then answer it."""
        served, area, answer = self._served, self._area, self._answer
        gate = self._access.gate_read(request, served.name)
        if gate is None:
            try:
                return answer_read(served, area, answer, request)
            except HTTPError as e:
                return send_error(request, e)
        return finish_later(request, gate.addCallback(
            lambda _: answer_read(served, area, answer, request)))


class IndexRoot(Resource):
    """
    Everything under C{/NAME/}: the gate first (a missing index and one hidden from the reader
    answer alike), then C{simple}, C{files} or the index's areas.

    @ivar served: the named indexes it answers now, by name as bytes, replaced whole at C{SIGHUP}.
    """

    isLeaf = True

    def __init__(self, served: Mapping[bytes, ServedIndex], access: Gates, base: str) -> None:
        Resource.__init__(self)
        self.served = dict(served)
        self._access = access
        self._base = base

    def replace(self, served: Mapping[bytes, ServedIndex]) -> None:
        """Answer C{served} from now on (C{SIGHUP}): one assignment, a request sees old or new."""
        self.served = dict(served)

    def render(self, request: Request) -> Rendered:
        """Gate the request, then answer it with the part of the index its path names."""
        segment: bytes = request.prepath[-1]  # type: ignore[index]  # (set by process())
        served = self.served.get(segment)
        if is_page_for_people(request):
            # (before the gate: a browser session may stand for the reader)
            for_people(request)
        gate = self._access.gate_index(request, served.name if served is not None else None)
        if gate is None:
            assert served is not None
            try:
                return self._dispatch(request, served)
            except HTTPError as e:
                return send_error(request, e)
        if asks_for_index(request.method, request.postpath):  # type: ignore[arg-type]
            # (an upload, or a read of simple pages, refused as not there:
            # told it is the index, missing or hidden alike)
            gate.addErrback(_no_index)
        return finish_later(request, gate.addCallback(lambda _: self._dispatch(request, served)))

    def _dispatch(self, request: Request, served: ServedIndex | None) -> Any:
        assert served is not None  # (the gate refused a missing index)
        post: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
        if not post:
            return send_moved(request, self._base, f"{served.name}/")
        first = post[0]
        answer = served.read_path(first)
        if answer is not None:
            request.prepath.append(post.pop(0))  # type: ignore[union-attr]
            return answer_read(served, first, answer, request)
        if first == b"project" and served.project is not None:
            # (a plain resource, as /project/ is: it answers its own methods)
            request.prepath.append(post.pop(0))  # type: ignore[union-attr]
            return served.project.render(request)
        return served.resource.render(request)


def _no_index(failure: Failure) -> NoReturn:
    """A gate's L{NotFound} (a missing index, or a hidden one) as L{NO_SUCH_INDEX}."""
    failure.trap(NotFound)
    raise NotFound(NO_SUCH_INDEX)


def is_page_for_people(request: Request) -> bool:
    """
    Whether a request under C{/NAME/} reads one of the index's pages for people: C{GET} or
    C{HEAD} of its landing page, search, the search's JSON or a project's pages.
    """
    post: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
    if request.method not in (b"GET", b"HEAD") or not post:
        return False
    return post[0] in (b"", b"search", b"project") or post[:2] == [b"api", b"search"]


def _when_read(served: ServedIndex, area: bytes, answer: Callable[[Request], Answer],
               request: Request) -> Answer | Deferred[Any]:
    """
    C{answer(request)}, once no hosted source of the index has files of the project the path
    names still to be read (see the module docstring); at once for a path that names none, or
    a project the reader may not read (its 404 comes as fast as a missing one's).
    """
    backfills = served.files.backfills
    post: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
    if len(post) != 2 or (area == b"simple" and post[1]):
        return answer(request)
    try:
        name = post[0].decode("utf-8")
    except UnicodeDecodeError:
        return answer(request)
    if not is_valid_name(name):
        return answer(request)
    project = normalize(name)
    for backfill in backfills:
        if backfill.is_pending(project):
            if not served.simple.access.reader(request).reads(project, served.name):
                break
            return backfill.when_described(project).addCallback(
                _read_or_unavailable, project, served, area, answer, request)
    return answer(request)


def _read_or_unavailable(done: bool, project: str, served: ServedIndex, area: bytes,
                         answer: Callable[[Request], Answer],
                         request: Request) -> Answer | Deferred[Any]:
    """After a wait for C{project}: answer (another source may make it wait again), or 503."""
    if not done:
        raise Unavailable(f"the files of {project} are still being read; "
                          "try again in a few seconds", [(b"retry-after", b"5")])
    return _when_read(served, area, answer, request)
