"""
C{/project/<name>/} and C{/project/<name>/<version>/}: a project's page
for people, about its latest version or about one.

A plain Twisted resource, like the simple index (L{pypid.web.simple}), and
for the same reason: once rendered, a page is kept with the project's index
pages (L{pypid.core.index.Index.keep_page}) until the project changes, and a
request costs a dict lookup and a few headers, as C{/simple/<name>/} does.

Rendering reads the release's details from storage (the description was
rendered when the file arrived). A file stored without details (before they
were kept, or not reached yet by its import) gets them rendered in the
background (L{IStorage.describe}); meanwhile its page is shown without a
description and not kept, so the next request after that finds them.

A project that is not hosted but that the upstream cache knows is shown as
the cache knows it, marked as coming from the upstream; the upstream is
never asked for a page for people.
"""

import attrs
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.web.resource import Resource

from pypid.core import pages
from pypid.core.details import Details
from pypid.core.errors import NotFound
from pypid.core.index import Page
from pypid.core.names import WHEEL, is_valid_name, normalize
from pypid.storage.interface import StorageError
from pypid.web.people import HTML, people_headers
from pypid.web.respond import answer_gated, send_moved, send_page
from pypid.web.routes import requested_version

log = Logger()

#: Upstream projects' pages kept at once (their cache entry may change
#: without the index's serial moving, so they are kept apart).
_MAX_UPSTREAM_PAGES = 2000

_NO_PROJECT = "no such project"


class ProjectPages(Resource):
    """
    The pages of projects.

    @ivar _index: the L{pypid.core.index.Index}.
    @ivar _storage: the L{pypid.storage.interface.IStorage} of hosted files.
    @ivar _access: the L{pypid.web.access.Access} gate.
    @ivar _chrome: the L{pypid.core.pages.Chrome}.
    @ivar _base: prefix of absolute redirect targets (C{[pypid] base_url} or C{/}).
    @ivar _upstream: the L{pypid.upstream.proxy.UpstreamProxy}, or L{None}.
    """

    isLeaf = True

    def __init__(self, index, storage, access, chrome, base="/", upstream=None):
        Resource.__init__(self)
        self._index = index
        self._storage = storage
        self._access = access
        self._chrome = chrome
        self._base = base
        self._upstream = upstream
        # filename -> Deferred of a describe() under way
        self._describing = {}
        # filenames describe() could not describe: not asked again
        self._undescribable = set()
        # (project, version) -> (cache entry, filenames fetched, Page)
        self._upstream_pages = {}

    def render_GET(self, request):
        """Send a project's page."""
        people_headers(request)
        return answer_gated(self._access, request, self._answer)

    render_HEAD = render_GET

    def _answer(self, request):
        post = request.postpath
        # <name>/ and <name>/<version>/ are pages; without their last slash,
        # a redirect to them
        slash = not post[-1] and len(post) in (2, 3)
        parts = post[:-1] if slash else post
        if len(parts) not in (1, 2) or not all(parts):
            raise NotFound("no such page")
        try:
            name, *rest = (part.decode("utf-8") for part in parts)
        except UnicodeDecodeError:
            raise NotFound(_NO_PROJECT)
        if not is_valid_name(name) or not self._access.may_read(request, name):
            raise NotFound(_NO_PROJECT)
        normalized = normalize(name)
        version = rest[0] if rest else None
        canonical = requested_version(version) if version is not None else None
        if not slash or normalized != name or canonical != version:
            return send_moved(request, self._base, pages.project_path(normalized, canonical))
        project = self._index.project(normalized)
        if project is None or not project.files:
            if self._upstream is None:
                raise NotFound(_NO_PROJECT)
            return ensureDeferred(self._upstream_page(request, normalized, version))
        page = self._index.extra_page(project, ("people", version))
        if page is not None:
            return send_page(request, page)
        return ensureDeferred(self._hosted_page(request, project, version))

    async def _hosted_page(self, request, project, version):
        serial = self._index.serial
        view = pages.project_view(project.name, project.display_name,
                                  project.files.values(), version)
        if view is None:
            raise NotFound("no such version")
        details, final = await self._details(view.current.files)
        page = self._page_of(view, version, details, final)
        if final and self._index.serial == serial:
            self._index.keep_page(project, ("people", version), page)
        return send_page(request, page)

    def _page_of(self, view, version, details, final):
        """The page of C{view} with its details (being rendered, unless C{final})."""
        root = "../../" if version is None else "../../../"
        view = attrs.evolve(view, details=details, pending=not final)
        return Page.of(pages.project_page(self._chrome, view, root), HTML)

    async def _details(self, files, storage=None, stored=lambda f: f):
        """
        The L{Details} of a release: of its first wheel that has them, else
        its sdist's; and whether they are final (not being rendered now).
        """
        storage = storage or self._storage
        ordered = sorted(files, key=lambda f: (f.packagetype != WHEEL, f.filename))
        records = [r for r in (stored(f) for f in ordered) if r is not None]
        for record in records:
            try:
                data = await storage.read_details(record)
            except StorageError as e:
                log.warn("Cannot read the details of {filename}: {error}",
                         filename=record.filename, error=str(e))
                return None, False
            if data is not None:
                try:
                    return Details.from_bytes(data), True
                except ValueError as e:
                    log.warn("Unreadable details of {filename}: {error}",
                             filename=record.filename, error=str(e))
        pending = [r for r in records if r.filename not in self._undescribable]
        if not pending:
            return None, True
        self._describe(storage, pending[0])
        return None, False

    def _describe(self, storage, record):
        """Render a file's details in the background, once at a time."""
        if record.filename in self._describing:
            return

        def done(details):
            if details is None:
                self._undescribable.add(record.filename)

        def failed(failure):
            log.warn("Cannot describe {filename}: {error}", filename=record.filename,
                     error=failure.getErrorMessage())

        d = self._describing[record.filename] = storage.describe(record)
        d.addCallbacks(done, failed)
        d.addBoth(lambda _: self._describing.pop(record.filename, None))

    async def _upstream_page(self, request, project, version):
        decision = self._upstream.decide(project)
        known = self._upstream.known(project) if decision.allowed else None
        if known is None:
            raise NotFound(_NO_PROJECT)
        entry, files = known
        # (a page is about the cache entry and the files fetched so far: the
        # first download of one brings its description)
        fetched = frozenset(f.filename for f in files if self._upstream.kept(f.filename))
        kept = self._upstream_pages.get((project, version))
        if kept is not None and kept[0] is entry and kept[1] == fetched:
            return send_page(request, kept[2])
        view = pages.project_view(project, entry.page.name or project, files, version,
                                  upstream=entry.fetched_at)
        if view is None:
            raise NotFound("no such version")
        details, final = await self._details(view.current.files, self._upstream.storage,
                                             lambda f: self._upstream.kept(f.filename))
        page = self._page_of(view, version, details, final)
        if final:
            if len(self._upstream_pages) >= _MAX_UPSTREAM_PAGES:
                self._upstream_pages.clear()
            self._upstream_pages[(project, version)] = (entry, fetched, page)
        return send_page(request, page)
