"""
The hot path: C{/simple/...} pages and C{/files/...} downloads.

These are plain Twisted resources rather than Klein routes: they are what
pip and uv fetch thousands of times a second, and a route table, a werkzeug
adapter and per-request closures cost more than the page lookup itself.
Each request does one dict lookup, content negotiation (memoized on the
Accept header), and sets a handful of headers on bytes rendered earlier.

A quarantined project (PEP 792) lists no file and serves none, but to
admins (L{as_admin}: their credentials are checked for its paths alone,
so the other projects' answers cost what they did).

The index's security advisories (issue 27) are in its pages as they were
rendered (L{pypid.core.rendered_pages}); a download of a file of a
release the index denies answers 403 naming the advisories
(L{pypid.web.denied_files}: a dict lookup for a project they do not name).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from pypid.core import render
from pypid.core.http_errors import Gone, NotFound, Unavailable
from pypid.core.index import Index
from pypid.core.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.names import is_valid_name, normalize
from pypid.core.render import CONTENT_TYPES, HTML, Page
from pypid.state.backfill import Backfill
from pypid.state.usage_log import UsageLog
from pypid.storage.interface import IStorage
from pypid.web import upstream_pages
from pypid.web.access import Access
from pypid.web.denied_files import DeniedDownloads
from pypid.web.index_root import as_admin, is_index_segment, send_private
from pypid.web.integrity import send_stored_provenance
from pypid.web.respond import (
    Answer,
    ReadResource,
    Rendered,
    answer_gated,
    page_kind,
    send_moved,
    send_page,
    send_stored,
)

if TYPE_CHECKING:
    # (the upstream's modules load only when [upstream] is configured: issue 14)
    from pypid.upstream.proxy import UpstreamProxy

log = Logger()

_METADATA_SUFFIX = ".metadata"


class SimpleResource(ReadResource):
    """
    C{/simple/} and C{/simple/<project>/}, in HTML or JSON (PEP 503, 691).

    @ivar _index: the L{pypid.core.index.Index}.
    @ivar _access: the L{pypid.web.access.Access} gate.
    @ivar _base: prefix of absolute redirect targets: the configured base
        URL, or C{"/"}, so a redirect never leaves this server's origin.
    """

    def __init__(self, index: Index, access: Access, base: str = "/",
                 upstream: UpstreamProxy | None = None, backfill: Backfill | None = None) -> None:
        ReadResource.__init__(self)
        self._index = index
        self._access = access
        self._base = base
        self._upstream = upstream
        self._backfill = backfill
        # (user, kind) -> (index serial, the project list that user sees)
        self._roots: dict[tuple[object, str], tuple[int, Page]] = {}

    def render_GET(self, request: Request) -> Rendered:
        """Serve a page of the simple index."""
        return answer_gated(self._access, request, self._answer)

    def _answer(self, request: Request) -> Answer:
        post: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
        if len(post) == 2 and not post[1]:
            try:
                name = post[0].decode("utf-8")
            except UnicodeDecodeError:
                raise NotFound("no such project")
            if not self._access.may_read(request, name):
                raise NotFound("no such project")
            project = self._index.project(name)
            if project is None:
                if self._upstream is not None and self._index.project(normalize(name)) is None:
                    return upstream_pages.answer_page(request, self._upstream, name, self._base)
                return self._redirect_or_404(request, name)
            if project.pending and self._backfill is not None:
                return _when_described(self._backfill, project.name, self._answer, request)
            if self._index.quarantined(project.name):
                kind = page_kind(request)
                rendered = self._index.rendered
                return as_admin(
                    self._access, request,
                    lambda: send_private(request, rendered.full_page(project, kind)),
                    lambda: send_page(request, rendered.project_page(project, kind)))
            if self._upstream is not None and self._upstream.merges(project.name):
                return upstream_pages.answer_merged_page(request, self._upstream, project,
                                                   page_kind(request))
            page = self._index.rendered.project_page(project, page_kind(request))
            return send_page(request, page)
        if post == [b""]:
            kind = page_kind(request)
            if self._access.reads_everything(request):
                return send_page(request, self._index.rendered.root_page(kind))
            return send_page(request, self._root_for(request, kind))
        if not post:
            return send_moved(request, self._base, "simple/")
        if len(post) == 1:
            try:
                name = post[0].decode("utf-8")
            except UnicodeDecodeError:
                raise NotFound("no such project")
            if (is_valid_name(name) and self._index.project(normalize(name)) is not None
                    and self._access.may_read(request, name)):
                return send_moved(request, self._base, f"simple/{normalize(name)}/")
        raise NotFound("no such project")

    def _root_for(self, request: Request, kind: str) -> Page:
        """
        The project list as one user may see it (rules hide some projects),
        rendered once per user and index state.
        """
        key = (self._access.cache_key(request), kind)
        cached = self._roots.get(key)
        if cached is not None and cached[0] == self._index.serial:
            return cached[1]
        pairs = [(p.name, p.display_name) for p in self._index.projects()
                 if self._access.may_read(request, p.name)]
        body = render.root_html(pairs) if kind == HTML else render.root_json(pairs)
        page = Page.of(body, CONTENT_TYPES[kind])
        if len(self._roots) > 1000:
            self._roots.clear()
        self._roots[key] = (self._index.serial, page)
        return page

    def _redirect_or_404(self, request: Request, name: str) -> bytes:
        if is_valid_name(name):
            normalized = normalize(name)
            if normalized != name and self._index.project(normalized) is not None:
                return send_moved(request, self._base, f"simple/{normalized}/")
        raise NotFound("no such project")


class FilesResource(ReadResource):
    """
    C{/files/<project>/<filename>} and its PEP 658 C{.metadata}.

    Lookup is by filename in the index, never by building a path from the
    request: the path comes from the stored record.
    """

    def __init__(self, index: Index, storage: IStorage, access: Access,
                 upstream: UpstreamProxy | None = None, backfill: Backfill | None = None,
                 denied: DeniedDownloads | None = None, usage: UsageLog | None = None,
                 ) -> None:
        """
        @param denied: refuses the files of the releases the index's
            advisories deny (issue 27); L{None}: none refused.
        @param usage: counts the downloads of hosted files (issue 29); L{None}:
            none counted.
        """
        ReadResource.__init__(self)
        self._index = index
        self._storage = storage
        self._access = access
        self._upstream = upstream
        self._backfill = backfill
        self._denied = denied
        self._usage = usage

    def render_GET(self, request: Request) -> Rendered:
        """Send a file or its metadata."""
        return answer_gated(self._access, request, self._answer)

    def _answer(self, request: Request) -> Answer:
        post: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
        if len(post) != 2:
            raise NotFound("no such file")
        try:
            project, filename = post[0].decode("utf-8"), post[1].decode("utf-8")
        except UnicodeDecodeError:
            raise NotFound("no such file")
        if not self._access.may_read(request, project):
            raise NotFound("no such file")
        if self._index.quarantined(project):
            # (PEP 792: none of its files is offered, but to admins)
            return as_admin(self._access, request,
                            lambda: self._send(request, project, filename), _no_file)
        return self._send(request, project, filename)

    def _send(self, request: Request, project: str, filename: str) -> Answer:
        # (the project the URL names: a file of another is not this URL's)
        record = self._index.get_file(filename, project)
        denied = self._denied
        if record is not None and record.project == project:
            if denied is not None:
                denied.check(request, self._index.advisories, DEFAULT_INDEX, project, filename,
                             record.version)
            if self._usage is not None:
                self._usage.count(filename)
            return send_stored(request, record, self._storage.locate(record),
                               b'"%s"' % record.sha256.encode("ascii"))
        if filename.endswith(_METADATA_SUFFIX):
            record = self._index.get_file(filename[: -len(_METADATA_SUFFIX)], project)
            if (record is not None and record.project == project
                    and record.metadata_sha256 is not None):
                if denied is not None:
                    denied.check(request, self._index.advisories, DEFAULT_INDEX, project,
                                 filename, record.version)
                return send_stored(request, record, self._storage.locate_metadata(record),
                                   b'"%s"' % record.metadata_sha256.encode("ascii"))
        if self._index.deleted_from(filename) == project:
            raise Gone("this file was deleted")
        binned = self._index.binned_file(filename)
        if binned is not None and binned.project == project:
            # (in the recycle bin: not served, nor taken from the upstream)
            raise NotFound("no such file")
        if self._backfill is not None and self._backfill.is_pending(project):
            return _when_described(self._backfill, project, self._answer, request)
        if self._upstream is not None:
            if denied is not None:
                # (the version read from the filename: the file may not be fetched yet)
                denied.check(request, self._index.advisories, DEFAULT_INDEX, project, filename)
            return upstream_pages.answer_file(request, self._upstream, project, filename)
        raise NotFound("no such file")


    def provenance(self, request: Request, project: str, version: str, filename: str,
                   content_type: str) -> Answer:
        """
        The provenance of C{filename} (PEP 740, L{pypid.web.integrity}), to
        whoever may download the file: the same rules and quarantine.
        """
        if not self._access.may_read(request, project):
            raise NotFound("no such file")
        if self._index.quarantined(project):
            return as_admin(self._access, request,
                            lambda: self._provenance(project, version, filename, request,
                                                     content_type), _no_file)
        return self._provenance(project, version, filename, request, content_type)

    def _provenance(self, project: str, version: str, filename: str, request: Request,
                    content_type: str) -> Answer:
        record = self._index.get_file(filename, project)
        if record is not None and record.project == project:
            return send_stored_provenance(request, self._storage, record, version,
                                          content_type)
        if self._upstream is not None:
            return upstream_pages.answer_provenance(request, self._upstream, project, version,
                                                    filename, content_type)
        raise NotFound("no such file")


def _no_file() -> Answer:
    raise NotFound("no such file")


def _when_described(backfill: Backfill, project: str, answer: Callable[[Request], Answer],
                    request: Request) -> Deferred[Any]:
    """
    Answer once the files of C{project} found without a record are
    described (see L{pypid.state.backfill}), or 503 after the backfill's wait:
    never a page without the hashes.
    """
    def described(done: bool) -> Answer:
        if not done:
            raise Unavailable(f"the files of {project} are still being read; "
                              "try again in a few seconds", [(b"retry-after", b"5")])
        return answer(request)
    return backfill.when_described(project).addCallback(described)


class RootResource(Resource):
    """
    Dispatches C{/simple}, C{/files} and the other plain resources (the
    pages of projects, the pages' assets) by their first segment, and
    everything else to the Klein application; with named indexes (issue
    26), a segment that names one or could (L{is_index_segment}) goes to
    their L{pypid.web.index_root.IndexRoot}, after today's routes were
    looked for (the same one lookup for them).

    @ivar _children: C{{first segment: resource}}.
    @ivar _indexes: the named indexes' resource, or L{None} without any.
    """

    def __init__(self, simple: IResource, files: IResource, app: IResource,
                 indexes: IResource | None = None, **others: IResource) -> None:
        Resource.__init__(self)
        self._children = {b"simple": simple, b"files": files}
        self._children.update((name.encode("ascii"), child) for name, child in others.items())
        self._app = app
        self._indexes = indexes

    def getChildWithDefault(self, name: bytes, request: Request) -> IResource:
        """Pick the resource for the first path segment."""
        child = self._children.get(name)
        if child is not None:
            return child
        if self._indexes is not None and is_index_segment(name):
            return self._indexes
        # (process() set both lists before any resource is asked)
        request.postpath.insert(0, request.prepath.pop())  # type: ignore[union-attr]
        return self._app

    def render(self, request: Request) -> Rendered:
        """Only reached for a request with no path segment at all: Klein's."""
        return self._app.render(request)
