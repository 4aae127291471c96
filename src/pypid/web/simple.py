"""
The hot path: C{/simple/...} pages and C{/files/...} downloads.

These are plain Twisted resources rather than Klein routes: they are what
pip and uv fetch thousands of times a second, and a route table, a werkzeug
adapter and per-request closures cost more than the page lookup itself.
Each request does one dict lookup, content negotiation (memoized on the
Accept header), and sets a handful of headers on bytes rendered earlier.
"""

from twisted.logger import Logger
from twisted.web.resource import Resource

from pypid.core import render
from pypid.core.http_errors import Gone, NotFound, Unavailable
from pypid.core.names import is_valid_name, normalize
from pypid.core.render import CONTENT_TYPES, HTML, Page
from pypid.web import upstream_pages
from pypid.web.respond import (
    ReadResource,
    answer_gated,
    page_kind,
    send_moved,
    send_page,
    send_stored,
)

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

    def __init__(self, index, access, base="/", upstream=None, backfill=None):
        ReadResource.__init__(self)
        self._index = index
        self._access = access
        self._base = base
        self._upstream = upstream
        self._backfill = backfill
        # (user, kind) -> (index serial, the project list that user sees)
        self._roots = {}

    def render_GET(self, request):
        """Serve a page of the simple index."""
        return answer_gated(self._access, request, self._answer)

    def _answer(self, request):
        post = request.postpath
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
            if self._upstream is not None and self._upstream.merges(project.name):
                return upstream_pages.answer_merged_page(request, self._upstream, project,
                                                   page_kind(request))
            return send_page(request, self._index.rendered.project_page(project, page_kind(request)))
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

    def _root_for(self, request, kind):
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

    def _redirect_or_404(self, request, name):
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

    def __init__(self, index, storage, access, upstream=None, backfill=None):
        ReadResource.__init__(self)
        self._index = index
        self._storage = storage
        self._access = access
        self._upstream = upstream
        self._backfill = backfill

    def render_GET(self, request):
        """Send a file or its metadata."""
        return answer_gated(self._access, request, self._answer)

    def _answer(self, request):
        post = request.postpath
        if len(post) != 2:
            raise NotFound("no such file")
        try:
            project, filename = post[0].decode("utf-8"), post[1].decode("utf-8")
        except UnicodeDecodeError:
            raise NotFound("no such file")
        if not self._access.may_read(request, project):
            raise NotFound("no such file")
        # (the project the URL names: a file of another is not this URL's)
        record = self._index.get_file(filename, project)
        if record is not None and record.project == project:
            return send_stored(request, record, self._storage.locate(record),
                               b'"%s"' % record.sha256.encode("ascii"))
        if filename.endswith(_METADATA_SUFFIX):
            record = self._index.get_file(filename[: -len(_METADATA_SUFFIX)], project)
            if (record is not None and record.project == project
                    and record.metadata_sha256 is not None):
                return send_stored(request, record, self._storage.locate_metadata(record),
                                   b'"%s"' % record.metadata_sha256.encode("ascii"))
        if self._index.deleted_from(filename) == project:
            raise Gone("this file was deleted")
        if self._backfill is not None and self._backfill.is_pending(project):
            return _when_described(self._backfill, project, self._answer, request)
        if self._upstream is not None:
            return upstream_pages.answer_file(request, self._upstream, project, filename)
        raise NotFound("no such file")


def _when_described(backfill, project, answer, request):
    """
    Answer once the files of C{project} found without a record are
    described (see L{pypid.state.backfill}), or 503 after the backfill's wait:
    never a page without the hashes.
    """
    def described(done):
        if not done:
            raise Unavailable(f"the files of {project} are still being read; "
                              "try again in a few seconds", [(b"retry-after", b"5")])
        return answer(request)
    return backfill.when_described(project).addCallback(described)


class RootResource(Resource):
    """
    Dispatches C{/simple}, C{/files} and the other plain resources (the
    pages of projects, the pages' assets) by their first segment, and
    everything else to the Klein application.

    @ivar _children: C{{first segment: resource}}.
    """

    def __init__(self, simple, files, app, **others):
        Resource.__init__(self)
        self._children = {b"simple": simple, b"files": files}
        self._children.update((name.encode("ascii"), child) for name, child in others.items())
        self._app = app

    def getChildWithDefault(self, name, request):
        """Pick the resource for the first path segment."""
        child = self._children.get(name)
        if child is not None:
            return child
        request.postpath.insert(0, request.prepath.pop())
        return self._app

    def render(self, request):
        """Only reached for a request with no path segment at all: Klein's."""
        return self._app.render(request)
