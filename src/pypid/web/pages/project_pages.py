"""
C{/project/<name>/} and C{/project/<name>/<version>/}: a project's page
for people, about its latest version or about one.

A plain Twisted resource, like the site root, for the same reason: once
rendered, a page is kept as bytes, and a request costs a few dict lookups
and headers, as C{/simple/<name>/} does. Pages are kept up to a total size
(L{KeptPages}; a README can make a page of megabytes, and a crawler asks
for every version), each until its project changes.

A file stored without details is described in the background
(L{DetailsRenderer}: one at a time, so readers cannot crowd out uploads);
meanwhile its page says so and is not kept.

A project the upstream cache knows but nothing hosts is shown as the cache
knows it; the upstream is never asked for a page for people. A project
that is not active (PEP 792) says so first thing; a quarantined one shows
its files to admins alone, and those pages are never kept.

Each index has one L{ProjectPages}: a project's files as the index's
simple page lists them, each described from the storage of the source
that holds it and counted by that source's downloads.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import attrs
from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request

from pypid.core.dists.details import Details
from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import WHEEL, is_valid_name, normalize
from pypid.core.dists.provenance import ProvenanceInvalid, publishers_of, read_provenance
from pypid.core.formats import pages, project_page
from pypid.core.indexes.composition import ChainSource, Filters, chain_status, compose
from pypid.core.indexes.index import Index
from pypid.core.indexes.project import Project
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.indexes.render import Page
from pypid.core.security.advisories import AdvisoryPolicy, Verdict
from pypid.core.util.http_errors import NotFound
from pypid.core.util.lru import ByteLRU
from pypid.state.hosted_source import HostedSource
from pypid.storage.base.interface import IStorage, StorageError
from pypid.web.identity.gates import Gates
from pypid.web.pages.people import HTML, ReaderChrome, people_headers
from pypid.web.server.respond import (
    Answer,
    ReadResource,
    Rendered,
    answer_gated,
    send_moved,
    send_page,
)
from pypid.web.server.routes import requested_version
from pypid.web.serving.index_pages import as_admin, send_private

if TYPE_CHECKING:
    # (the upstream's modules load only when [upstream] is configured: start-up cost)
    from pypid.upstream.page_model import UpstreamFile
    from pypid.upstream.source import SourceSide

#: A file a project's page lists: hosted, or of the upstream's page.
Listed: TypeAlias = "FileRecord | UpstreamFile"

log = Logger()

_NO_PROJECT = "no such project"

#: Where a hosted project's token is kept with its pages (see L{KeptPages}).
_TOKEN = ("people-token",)

#: A kept page's key: C{(normalized project, canonical version or None)},
#: and the indexes its switcher lists when there is one.
_Key = Hashable

#: What L{ProjectPages._find} gives: C{(display name, files(), token,
#: upstream time)}.
_Found = tuple[str, Callable[[], Sequence["Listed"]], object, "float | None"]

#: Who a stored file is, for the renderer: C{(id of its storage, filename)}.
_FileKey = tuple[int, str]


class KeptPages:
    """
    Rendered pages by C{(project, version)}, up to C{limit} bytes in all
    (the least recently asked for go first). Each is kept with a token of
    its project's state and answered only while the token is still the
    project's: a change makes every older page stale.
    """

    def __init__(self, limit: int = 64 << 20) -> None:
        self._pages: ByteLRU[_Key, tuple[object, Page]] = ByteLRU(limit)

    @property
    def bytes(self) -> int:
        """The bytes the pages kept count (body and gzipped body), at most C{limit}."""
        return self._pages.bytes

    def get(self, key: _Key, token: object) -> Page | None:
        """The page kept under C{key} for C{token}, or L{None}."""
        kept = self._pages.peek(key)
        if kept is None or kept[0] != token:
            return None
        self._pages.touch(key)
        return kept[1]

    def put(self, key: _Key, token: object, page: Page) -> None:
        """Keep a page, dropping the oldest to make room (a page over an eighth is not kept)."""
        self._pages.pop(key)
        size = len(page.body) + len(page.gzipped or b"")
        if size <= self._pages.max_bytes // 8:
            self._pages.put(key, (token, page), size)


@attrs.define
class DetailsRenderer:
    """
    Renders the details of files stored without them, in the background,
    one at a time (each reads a whole file and renders its README in the
    storage's threads, which uploads use too), with at most C{limit}
    waiting; a file that failed is tried again after C{retry} seconds, and
    one that cannot be described is not tried again.
    """

    _clock: IReactorTime
    limit: int = 32
    retry: float = 60.0
    _lock: DeferredSemaphore = attrs.field(factory=lambda: DeferredSemaphore(1))
    _waiting: dict[_FileKey, Deferred[Any]] = attrs.field(factory=dict)
    _failed: dict[_FileKey, float] = attrs.field(factory=dict)
    _undescribable: set[_FileKey] = attrs.field(factory=set)

    def undescribable(self, storage: IStorage, record: FileRecord) -> bool:
        """Whether C{record} was found to have no details to give."""
        return (id(storage), record.filename) in self._undescribable

    def ask(self, storage: IStorage, record: FileRecord) -> None:
        """Describe C{record} in the background, unless that is under way or must wait."""
        key = (id(storage), record.filename)
        failed = self._failed.get(key)
        if (key in self._waiting or key in self._undescribable or len(self._waiting) >= self.limit
                or (failed is not None and self._clock.seconds() - failed < self.retry)):
            return
        self._failed.pop(key, None)

        def done(details: bytes | None) -> None:
            if details is None:
                self._undescribable.add(key)

        def failed_(failure: Failure) -> None:
            self._failed[key] = self._clock.seconds()
            log.warn("Cannot describe {filename}: {error}", filename=record.filename,
                     error=failure.getErrorMessage())

        d = self._waiting[key] = self._lock.run(storage.describe, record)
        d.addCallbacks(done, failed_)
        d.addBoth(lambda _: self._waiting.pop(key, None))


class ProjectPages(ReadResource):
    """
    The pages of one index's projects: each project's files as the index's
    simple page lists them (its hosted sources composed, a view's filters
    applied), or, for a project no hosted source holds, as the cache of one
    of its upstreams knows it.

    @ivar _upstreams: its upstreams, by the name its order gives them.
    @ivar _base: prefix of absolute redirect targets (C{[pypid] base_url} or
        C{/}; C{.../NAME/} for a named index).
    """

    def __init__(self, name: str, sources: Sequence[HostedSource], filters: Filters,
                 access: Gates, chrome: ReaderChrome, clock: IReactorTime, base: str, *,
                 upstreams: Mapping[str, SourceSide], advisories: AdvisoryPolicy) -> None:
        ReadResource.__init__(self)
        self._name = name
        self._sources = tuple(sources)
        self._order = tuple(ChainSource(str(i), hosted=source.index)
                            for i, source in enumerate(sources))
        self._hosted = tuple(source.index for source in sources)
        self._usages = tuple(source.usage for source in sources if source.usage is not None)
        self._filters = filters
        self._upstreams = dict(upstreams)
        self._advisories = advisories
        self._access = access
        self._chrome = chrome
        self._clock = clock
        self._base = base
        self._kept = KeptPages()
        self._renderer = DetailsRenderer(clock)

    def render_GET(self, request: Request) -> Rendered:
        """Send a project's page."""
        people_headers(request)
        # (the read rule of this index: a named index's pages are read
        # under its own grant, not the default index's)
        return answer_gated(self._access, request, self._answer_identified, self._name)

    def _answer_identified(self, request: Request) -> Answer:
        """L{_answer}, once the reader is known to the switcher and the header."""
        if not self._chrome.needs_identity(request):
            return self._answer(request)

        async def identified() -> Any:
            await self._chrome.identify(request, self._access)
            answer = self._answer(request)
            return await answer if isinstance(answer, Deferred) else answer

        return ensureDeferred(identified())

    def _answer(self, request: Request) -> Answer:
        post: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
        # <name>/ and <name>/<version>/ are pages; without their last slash,
        # a redirect to them
        slash = len(post) in (2, 3) and not post[-1]
        parts = post[:-1] if slash else post
        if len(parts) not in (1, 2) or not all(parts):
            raise NotFound("no such page")
        try:
            name, *rest = (part.decode("utf-8") for part in parts)
        except UnicodeDecodeError:
            raise NotFound(_NO_PROJECT)
        if not is_valid_name(name) or not self._access.reader(request).reads(name, self._name):
            raise NotFound(_NO_PROJECT)
        normalized = normalize(name)
        version = rest[0] if rest else None
        if version is not None:
            requested_version(version)  # (404 for a version that cannot be one, first)
        found = self._find(normalized)
        if found is None:
            raise NotFound(_NO_PROJECT)
        status = chain_status(self._order, normalized) if found[3] is None else None
        if status is not None and status.quarantined:
            return as_admin(
                self._access, request,
                lambda: self._page(request, name, normalized, version, slash, found, status,
                                   keep=False),
                lambda: self._quarantined(request, name, normalized, version, slash,
                                          found[0], status))
        return self._page(request, name, normalized, version, slash, found, status)

    def _quarantined(self, request: Request, name: str, normalized: str, version: str | None,
                     slash: bool, display_name: str, status: ProjectStatus) -> Answer:
        """A quarantined project's page for readers: its status, no file."""
        canonical = requested_version(version) if version is not None else None
        if not slash or normalized != name or canonical != version:
            return send_moved(request, self._base, pages.project_path(normalized, canonical))
        root = "../../" if version is None else "../../../"
        body = project_page.quarantined_page(self._chrome.of(request), normalized, display_name,
                                      status, root)
        return send_page(request, Page.of(body, HTML))

    def _page(self, request: Request, name: str, normalized: str, version: str | None,
              slash: bool, found: _Found, status: ProjectStatus | None,
              keep: bool = True) -> Answer:
        """The page of a project L{_find} found (kept with C{keep})."""
        canonical = requested_version(version) if version is not None else None
        display_name, listed, token, upstream = found
        advised = self._advisories.affects(normalized)
        if advised:
            # (a page showing verdicts is stale once they may have moved)
            token = (token, self._advisories.stamp)
        usages = self._usages if upstream is None else ()
        if usages:
            # (and one showing downloads once they were counted, or a day passed)
            token = (token, *((usage.book.stamp, usage.today) for usage in usages))
        chrome = self._chrome.of(request)
        key: _Key = (normalized, canonical, chrome.indexes, chrome.person, chrome.base_url) \
            if chrome.indexes or chrome.person or chrome.base_url else (normalized, canonical)
        if keep and slash and normalized == name and canonical == version:
            page = self._kept.get(key, token)
            if page is not None:
                return send_page(request, page)
        files = listed()
        if canonical is not None and not any(f.version == canonical for f in files):
            raise NotFound("no such version")
        # (only now, for a project this reader may see: a redirect for a
        # name that does not exist would tell a hidden one from none)
        if not slash or normalized != name or canonical != version:
            return send_moved(request, self._base, pages.project_path(normalized, canonical))
        view = project_page.project_view(normalized, display_name, files, canonical,
                                  upstream=upstream)
        if view is None:
            # (a cached upstream page may list no files: nothing to show)
            raise NotFound(_NO_PROJECT)
        view = attrs.evolve(view, status=status,
                            advisories=self._verdicts(normalized, view) if advised else {})
        if usages:
            view = attrs.evolve(view, downloads=self._downloads(view.current.files))
        return ensureDeferred(self._render(request, key, token, view, chrome, canonical, keep))

    def _find(self, name: str) -> _Found | None:
        """
        C{(display name, files(), token, upstream time)} of a project a
        hosted source holds (a view's globs admitting it), or of one an
        upstream's cache knows; L{None}. A hosted project's token is each
        source's project token, so a kept page is answered with no
        composition at all. C{files()} raises L{NotFound} when the index
        lists none (a view's filters left out every one).
        """
        if not self._filters.admits_project(name):
            return None
        held = [index.project(name) for index in self._hosted]
        first = next((p for p in held if p is not None), None)
        if first is None:
            return self._find_upstream(name)
        token = tuple(_token_of(index, project) for index, project
                      in zip(self._hosted, held, strict=True))

        def listed() -> list[FileRecord]:
            # (hosted sources only: the time matters to an upstream's cooldown
            # alone; a quarantined project's files revealed, as only its
            # admins' page lists them: L{_answer})
            composition = compose(self._order, name, self._filters, 0.0, reveal=True)
            if not composition.files:
                raise NotFound(_NO_PROJECT)
            # (a hosted source's files are FileRecords)
            return [cast(FileRecord, f) for f, _ in composition.files]

        return first.display_name, listed, token, None

    def _find_upstream(self, name: str) -> _Found | None:
        """What the cache of the first upstream that may be asked about C{name} shows; L{None}."""
        for side in self._upstreams.values():
            source = side.source
            if source.mode != "cache" or not side.decide(name, False).allowed:
                continue
            entry = source.pages.entries.get(name)
            cached = side.cached(name)
            if entry is None or entry.page is None or cached is None:
                continue
            files = cast("Sequence[UpstreamFile]", cached[1])
            # (the entry, the files shown of it, which a cooldown changes, and
            # those fetched, whose descriptions the page shows)
            fetched = frozenset(f.filename for f in files if source.files.kept(f.filename))
            token = (entry.fetched_at, tuple(f.filename for f in files), fetched)
            return entry.page.name or name, partial(list, files), token, entry.fetched_at
        return None

    def _verdicts(self, name: str, view: project_page.ProjectView) -> dict[str, Verdict]:
        """The index's verdicts on the releases of C{view} that advisories affect."""
        return {release.version: verdict for release in view.releases
                if (verdict := self._advisories.verdict(name, release.version)) is not None}

    def _downloads(self, files: Iterable[pages.ShownFile]) -> dict[str, int]:
        """Each hosted file's downloads in the last 30 days, counted by its source."""
        found = {}
        for f in files:
            for source in self._sources:
                if source.usage is not None and source.index.get_file(f.filename,
                                                                       f.project) is f:
                    usage = source.usage
                    found[f.filename] = usage.book.downloads((f.filename,), 30, usage.today)
                    break
        return found

    def _serial(self) -> Hashable:
        """What moves whenever a hosted file the pages show changes."""
        return tuple(index.serial for index in self._hosted)

    def _stored(self, view: project_page.ProjectView,
                ) -> Callable[[pages.ShownFile], tuple[IStorage, FileRecord] | None]:
        """C{stored(file)}: the storage and stored record of a file the page shows, or L{None}."""
        if view.upstream is None:
            def stored(f: pages.ShownFile) -> tuple[IStorage, FileRecord] | None:
                # (the first source holding this very record: a dict lookup a source)
                for source in self._sources:
                    record = source.index.get_file(f.filename, f.project)
                    if record is f:
                        return source.storage, record
                return None
            return stored

        def kept(f: pages.ShownFile) -> tuple[IStorage, FileRecord] | None:
            for side in self._upstreams.values():
                files = side.source.files
                record = files.kept(f.filename)
                if record is not None and record.project == f.project:
                    return files.storage, record
            return None

        return kept

    async def _render(self, request: Request, key: _Key, token: object,
                      view: project_page.ProjectView, chrome: pages.Chrome,
                      version: str | None, keep: bool = True) -> bytes:
        serial = self._serial()
        details, final = await self._details(view.current.files, self._stored(view))
        publishers = await self._publishers(view.current.files, self._stored(view))
        root = "../../" if version is None else "../../../"
        view = attrs.evolve(view, details=details, pending=not final, publishers=publishers)
        page = Page.of(project_page.project_page(chrome, view, root), HTML)
        if not keep:
            return send_private(request, page)
        if final and self._serial() == serial:
            self._kept.put(key, token, page)
        return send_page(request, page)

    async def _publishers(self, files: Iterable[pages.ShownFile],
                          stored: Callable[[pages.ShownFile],
                                           tuple[IStorage, FileRecord] | None],
                          ) -> dict[str, tuple[str, ...]]:
        """
        Filename -> the publishers its provenance names (PEP 740), for the
        files that have one: read from storage (a few KB a file) when the
        page is rendered, then kept with it.
        """
        found: dict[str, tuple[str, ...]] = {}
        for f in files:
            kept = stored(f)
            if kept is None or not kept[1].has_provenance:
                continue
            storage, record = kept
            try:
                data = await storage.read_provenance(record)
                if data is not None:
                    found[record.filename] = publishers_of(
                        read_provenance(data, record.filename, record.sha256))
            except (StorageError, ProvenanceInvalid) as e:
                log.warn("Cannot read the provenance of {filename}: {error}",
                         filename=record.filename, error=str(e))
        return found

    async def _details(self, files: Iterable[pages.ShownFile],
                       stored: Callable[[pages.ShownFile], tuple[IStorage, FileRecord] | None],
                       ) -> tuple[Details | None, bool]:
        """
        The L{Details} of a release: of its first wheel that has them, else
        its sdist's; and whether they are final (not being rendered now).
        """
        ordered = sorted(files, key=lambda f: (f.packagetype != WHEEL, f.filename))
        records = [r for r in (stored(f) for f in ordered) if r is not None]
        for storage, record in records:
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
        pending = [(storage, r) for storage, r in records
                   if not self._renderer.undescribable(storage, r)]
        if not pending:
            return None, True
        self._renderer.ask(*pending[0])
        return None, False


def _token_of(index: Index, project: Project | None) -> object:
    """A hosted project's people token (kept with its pages: new once it changes), or L{None}."""
    if project is None:
        return None
    token = index.rendered.extra_page(project, _TOKEN)
    if token is None:
        token = object()
        index.rendered.keep_page(project, _TOKEN, token)
    return token
