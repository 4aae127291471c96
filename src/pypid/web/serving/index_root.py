"""
The named indexes' paths: everything under C{/NAME/} (issue 26, stage 4).

A named index answers C{/NAME/simple/} and C{/NAME/simple/<project>/}
from its L{pypid.core.indexes.views.IndexView} (its own files, then its bases', a
view's filters applied), C{/NAME/files/<project>/<filename>} from the
first of its hosted sources that holds the file, and its areas (uploads
at C{/NAME/} and C{/NAME/legacy/}, yank, unyank and delete under
C{/NAME/api/...}, C{/NAME/pypi/<project>/json}) with the routes of the
default index's, over its own stack, and its pages for people
(C{/NAME/}, C{/NAME/search}, C{/NAME/api/search}, C{/NAME/project/...})
from its hosted sources. Klein reads a route against the
path after C{/NAME} (C{prepath} holds the name), so every area's routes
are written once, for both.

The default index's paths are not touched: L{pypid.web.serving.simple.RootResource}
finds C{/simple/} and the others first, and hands here only a first
segment that is a configured index or could be one (L{is_index_segment}).
A segment that could be an index but is none is answered here too, by
the same gate (L{pypid.web.identity.access.Access.gate_index}) a hidden index's
paths meet: whoever may not read an index gets, from its paths, exactly
what a missing index's give (status, body and headers), anonymous
uploads included (L{pypid.web.server.site} asks for credentials before any body
on every path an index's uploads could take).

A view is read-only: its upload, yank and delete routes answer 405 with
the reason (L{ReadOnlyPublish}), once the credentials passed.

A hosted index started without its snapshot reads its files' records
again in the background (L{pypid.state.backfill}), as the default index
does: a project's page or file waits, in every index that reads that
index (itself, an index based on it, a view), until the project's files
are read, or answers 503 after the backfill's wait (L{IndexRoot}, before
the page is composed: a page of a project still to be read would list
none of its files). The default index's own paths wait alike
(L{pypid.web.serving.simple}).

Each named index acts on security advisories by its own rules (issue
27): its pages are composed with them (L{IndexView.advisories}), and a
download of a file of a release it denies, hosted or from an upstream,
answers 403 naming the advisories (L{pypid.web.serving.denied_files}).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import attrs
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from pypid.auth.verifier import Identity
from pypid.core.dists.names import is_valid_name, normalize
from pypid.core.dists.upload_rules import IndexUploadRules
from pypid.core.dists.variant_files import is_variants_filename
from pypid.core.formats import render
from pypid.core.formats.namespace_api import IndexNamespaces, served
from pypid.core.formats.negotiate import choose
from pypid.core.formats.render import CONTENT_TYPES, HTML, JSON, AgedPage, Page, file_url_for
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import DEFAULT, NAME, ROUTE_SEGMENTS
from pypid.core.indexes.model import FileRecord
from pypid.core.indexes.project import Project
from pypid.core.indexes.views import ChainSource, ComposedFile, Filters, IndexView
from pypid.core.records.metrics import UPLOAD_PATHS
from pypid.core.util.http_errors import Gone, HTTPError, MethodNotAllowed, NotFound, Unavailable
from pypid.state.backfill import Backfill
from pypid.state.recycle_bin import RecycleBin
from pypid.state.usage_log import UsageLog
from pypid.storage.interface import IStorage, Location
from pypid.storage.locks import KeyedLock
from pypid.web.changes.multipart import MultipartError, UploadTooLarge
from pypid.web.identity.access import Access
from pypid.web.identity.request_auth import IRequestAuth, client_address, for_people, identity_of
from pypid.web.server.areas import Area, Areas
from pypid.web.server.routes import answer_errors, route_each
from pypid.web.serving.denied_files import DeniedDownloads
from pypid.web.serving.integrity import answer_integrity, send_stored_provenance
from pypid.web.serving.respond import (
    TAIL,
    Answer,
    Rendered,
    finish_later,
    page_kind,
    send_error,
    send_moved,
    send_page,
    send_stored,
    transfer_of,
    wrong_method_error,
)
from pypid.web.serving.upstream_pages import (
    answer_chain_file,
    answer_chain_page,
    answer_chain_provenance,
    plain_chain_file,
    plain_chain_page,
)

if TYPE_CHECKING:
    # (types only: the upstream's modules load with a configured upstream)
    from pypid.upstream.page_view import FileUrl
    from pypid.upstream.proxy import UpstreamProxy
    from pypid.upstream.source import SourceSide
    from pypid.web.changes.publish import Publish

_METADATA_SUFFIX = ".metadata"

#: What a view answers to a change, after its name.
VIEW_REFUSAL = "is a view: it takes no uploads, yanks or deletes"


def is_index_segment(segment: bytes) -> bool:
    """
    Whether a path's first segment could name an index: it has an index
    name's form and is no route's first segment. Only such paths can leak
    whether a hidden index exists, so only they meet the index gate.
    """
    try:
        text = segment.decode("ascii")
    except UnicodeDecodeError:
        return False
    return bool(NAME.match(text)) and text not in ROUTE_SEGMENTS and text != DEFAULT


def index_upload_path(path: bytes) -> bool:
    """Whether C{path} is where an index's uploads go: C{/NAME/}, C{/NAME/legacy[/]}."""
    if not path.startswith(b"/"):
        return False
    segment, slash, rest = path[1:].partition(b"/")
    return bool(slash) and b"/" + rest in UPLOAD_PATHS and is_index_segment(segment)


def _no_file() -> Answer:
    raise NotFound("no such file")


def send_private(request: Request, page: Page) -> bytes:
    """Send a page only its reader may see (an admin's): never kept by a cache."""
    body = send_page(request, page)
    request.responseHeaders.setRawHeaders(b"cache-control", [b"private, no-store"])
    return body


def as_admin(access: Access, request: Request, admin: Callable[[], Answer],
             reader: Callable[[], Answer]) -> Answer:
    """
    C{admin()} when the request comes from an admin, else C{reader()}: for
    a quarantined project, whose files only admins see. The credentials
    are checked here when the read gate did not (anonymous reads), and
    wrong ones answer 401 as on any other path.
    """
    return with_identity(access, request, lambda identity: admin()
                         if access.is_admin(identity) else reader())


def with_identity(access: Access, request: Request,
                  then: Callable[[Identity | None], Answer]) -> Answer:
    """
    C{then(identity)}, the request's identity (L{None}: anonymous): checked
    here when the read gate did not (anonymous reads), wrong credentials
    answering 401 as on any other path.
    """
    known = identity_of(request)
    if known is not None:
        return then(known)
    return access.identify(request).addCallback(then)


@attrs.frozen
class HostedSource:
    """
    One hosted index as a named index reads it: its files and where they
    are, and the lock its changes hold.

    @ivar name: the hosted index's name (C{default} for today's).
    """

    name: str
    index: Index
    storage: IStorage
    locks: KeyedLock
    #: the reading of its files found without a record (a start without
    #: its snapshot), whose projects' pages wait for it; L{None}: none
    backfill: Backfill | None = None
    #: counts its files' downloads (issue 29); L{None}: none counted
    usage: UsageLog | None = None
    #: where its deleted files wait to be purged (issue 29); L{None}: none
    bin: RecycleBin | None = None
    #: what its uploads let through (issue 46), taken again at a reload
    uploads: IndexUploadRules = attrs.field(factory=IndexUploadRules)


@attrs.frozen
class IndexMaterials:
    """
    What an index is served from (L{pypid.web.app.build_web}), the
    default's as a named one's.

    @ivar view: its pages (L{IndexView}).
    @ivar sources: its hosted sources in order (itself first when hosted);
        a view has one at least, unless it reads upstreams alone.
    @ivar hosted: whether it takes uploads (into C{sources[0]}), or is a view.
    @ivar upstreams: the upstreams among its sources, by the name its
        order gives them (C{upstream:NAME}): their pages are brought up to
        date, and their files fetched, as its clients ask.
    """

    name: str
    view: IndexView
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

    @classmethod
    def hosted_alone(cls, source: HostedSource, upstream: UpstreamProxy | None = None,
                     ) -> IndexMaterials:
        """
        A hosted index that reads no other, with C{upstream}'s source as
        its upstream (C{upstream:default}) when given: a server of one
        index, as the registry makes the default one of such a server
        (its view applies the index's own advisories, and links as its
        own pages do).
        """
        index = source.index
        order: list[ChainSource] = [ChainSource(source.name, hosted=index)]
        sides: dict[str, SourceSide] = {}
        if upstream is not None:
            from pypid.upstream.source import SourceSide
            side = SourceSide.of(upstream.source, cast("FileUrl", file_url_for(None)))
            sides[side.name] = side
            order.append(ChainSource(side.name, upstream=side))
        view = IndexView(source.name, tuple(order), Filters(),
                         cast("Callable[[ComposedFile], str]", index.file_url),
                         advisories=index.rendered.advisories,
                         provenance_url=index.rendered.provenance_url,
                         namespaces=index.rendered.namespaces)
        return cls(source.name, view, (source,), hosted=True, upstreams=sides)


#: The most request names whose normalized form an index remembers.
MAX_NAMES = 1 << 16


def normalized_name(names: dict[str, str], segment: bytes) -> str | None:
    """
    The normalized project name a path segment spells, or L{None} when it
    spells none: remembered in C{names} (a dict lookup on the hot path,
    where the name check and normalization take 1 to 2 us), bounded, as
    names come from clients.
    """
    try:
        text = segment.decode("utf-8")
    except UnicodeDecodeError:
        return None
    found = names.get(text)
    if found is None:
        found = normalize(text) if is_valid_name(text) else ""
        if len(names) >= MAX_NAMES:
            names.clear()
        names[text] = found
    return found or None


@attrs.frozen
class IndexSimple:
    """
    C{/simple/} and C{/simple/<project>/} of one index (the default's at
    C{/}, a named one's under C{/NAME/}), from its L{IndexView}: its own
    files, its bases', its upstreams', a view's filters applied.

    @ivar base: where its paths start (C{/} or C{/NAME/}, under the base URL).
    """

    name: str
    view: IndexView
    access: Access
    clock: IReactorTime
    base: str
    upstreams: Mapping[str, SourceSide] = attrs.field(factory=dict)
    #: (reader, kind) -> (the hosted sources' serials, the project list that reader sees)
    _roots: dict[tuple[object, str], tuple[tuple[int, ...], Page]] = attrs.field(
        factory=dict, init=False)
    #: request name -> its normalized form ("" for no name: L{normalized_name})
    _names: dict[str, str] = attrs.field(factory=dict, init=False)

    def answer(self, request: Request) -> Answer:
        """Answer the request; C{request.postpath} is what follows C{simple}."""
        post: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
        if len(post) == 2 and not post[1]:
            project = normalized_name(self._names, post[0])
            if project is None or not self.access.may_read(request, project, self.name):
                raise NotFound("no such project")
            moved = project.encode("utf-8") != post[0]
            view = self.view
            own = view.own
            found = None if moved else self._own_project(project)
            if found is not None:
                # The hot path: a project of the index's own hosted source,
                # served from that source's kept pages (IndexView.own).
                assert own is not None  # (_own_project found it there)
                kind = page_kind(request)
                rendered = own.rendered
                if own.statuses.quarantined(project):
                    return as_admin(
                        self.access, request,
                        lambda: send_private(request, rendered.full_page(found, kind)),
                        partial(self._reader_page, request, project,
                                lambda: rendered.project_page(found, kind, True),
                                rendered.project_page(found, kind)))
                spaces = view.namespaces
                if spaces is not None and spaces.any_hidden:
                    return self._reader_page(request, project,
                                             lambda: rendered.project_page(found, kind, True),
                                             rendered.project_page(found, kind))
                return send_page(request, rendered.project_page(found, kind))
            if self.upstreams:
                asked = view.upstreams(project)
                if asked:
                    if moved:
                        return send_moved(request, self.base, f"simple/{project}/")
                    return answer_chain_page(request, view,
                                             [self.upstreams[s.name] for s in asked],
                                             project, self.clock)
            kind = page_kind(request)
            page = view.page(project, kind, self.clock.seconds())
            if page is None:
                raise NotFound("no such project")
            if moved:
                return send_moved(request, self.base, f"simple/{project}/")
            spaces = view.namespaces
            quarantined = view.quarantined(project)
            if not quarantined and (spaces is None or not spaces.any_hidden):
                return send_page(request, page)
            now, name = self.clock.seconds(), project

            def hidden() -> Page:
                return view.hidden_page(name, kind, now) or page
            if quarantined:
                # (PEP 792: its admins see its files, to release or delete them)
                full = partial(view.full_page, project, kind, now)
                return as_admin(self.access, request,
                                lambda: send_private(request, full() or page),
                                lambda: self._reader_page(request, name, hidden, page))
            return self._reader_page(request, project, hidden, page)
        if post == [b""]:
            kind = page_kind(request)
            if self.access.reads_everything(request, self.name):
                return send_page(request, self.view.root_page(kind))
            return send_page(request, self._root_for(request, kind))
        if not post:
            return send_moved(request, self.base, "simple/")
        if post == [b"namespaces"] or (len(post) == 2 and post[0] == b"namespace"):
            return self._namespaces(request, post)
        if len(post) == 1:
            # (for a hosted name alone: whether an upstream has it is asked
            # only at the full URL, which pip and uv always send)
            project = normalized_name(self._names, post[0])
            if (project is not None and self.access.may_read(request, project, self.name)
                    and self.view.hosts(project)):
                return send_moved(request, self.base, f"simple/{project}/")
        raise NotFound("no such project")

    def _reader_page(self, request: Request, project: str, hidden: Callable[[], Page],
                     public: Page) -> Answer:
        """
        The page of C{project} a reader gets: its JSON form C{hidden()}
        (not kept by a cache) when it falls in a hidden grant they see (its
        owners, the admins, L{IndexNamespaces.hides}), else C{public}. Who
        they are is what the read gate found: credentials it did not check
        (an index anyone reads) are not checked here, so that a project of a
        hidden grant answers any credentials as any other project does, in
        its status and its time.
        """
        spaces = self.view.namespaces
        if (spaces is None or not spaces.any_hidden or public.content_type != CONTENT_TYPES[JSON]
                or not spaces.hides(project)):
            return send_page(request, public)
        sees = self.access.grant_reader(identity_of(request))
        if any(sees(grant) for grant in spaces.matching(project) if grant.hidden):
            return send_private(request, hidden())
        return send_page(request, public)

    def _namespaces(self, request: Request, post: list[bytes]) -> Answer:
        """
        PEP 752's C{/namespaces} list and C{/namespace/<name>} detail (JSON
        API 1.5 only: PEP 833 froze the HTML), of the grants in force here;
        a hidden grant only to its owners and the admins, who alone see
        its owners too.
        """
        spaces = self.view.namespaces
        if spaces is None:
            raise NotFound("this index serves no namespaces")
        return with_identity(self.access, request,
                             lambda identity: self._namespace_answer(request, post, spaces,
                                                                     identity))

    def _namespace_answer(self, request: Request, post: list[bytes], spaces: IndexNamespaces,
                          identity: Identity | None) -> Answer:
        sees = self.access.grant_reader(identity)
        if len(post) == 1:
            body = render.dumps_json(spaces.listed(sees))
        else:
            name = normalized_name(self._names, post[1])
            if name is None:
                raise NotFound("no such namespace")
            if name.encode("utf-8") != post[1]:
                return send_moved(request, self.base, f"simple/namespace/{name}")
            found = spaces.detail(name, sees, sees)
            if found is None:
                raise NotFound("no such namespace")
            body = render.dumps_json(found)
        page = Page.of(body, CONTENT_TYPES[JSON])
        # (what a reader sees depends on who they are: never kept by a cache)
        return send_private(request, page)

    def _own_project(self, project: str) -> Project | None:
        """
        C{project} when the index's own hosted source holds it and it is
        served from that source's kept pages alone (no upstream merged in):
        the pages of the hot path.
        """
        own = self.view.own
        if own is None:
            return None
        found = own.project(project)
        if found is None or (self.upstreams and self.view.merges(project)):
            return None
        return found

    def plain_page(self, accept: bytes | None, rest: bytes) -> Page | AgedPage | None:
        """
        The page an anonymous C{GET} of C{simple/<rest>} with the C{Accept}
        header C{accept} gets, when it is one of the kept pages that
        L{answer} would send as they are (the root page, or a project's
        page asked for by its normalized name, as HTML or JSON: from the
        index's own hosted source, or composed from its bases and fresh
        upstream pages, L{_plain_composed}); otherwise L{None}, and
        L{answer} decides. L{pypid.web.serving.express} sends it.
        """
        kind = choose(accept)
        if kind is None:
            return None
        if not rest:
            return self.view.root_page(kind) if self.access.anyone_reads_everything(
                self.name) else None
        if rest[-1:] != b"/" or b"/" in rest[:-1] or b"%" in rest:
            return None
        segment = rest[:-1]
        project = normalized_name(self._names, segment)
        if (project is None or project.encode("utf-8") != segment
                or not self.access.anyone_may_read(project, self.name)):
            return None
        found = self._own_project(project)
        if found is None:
            return self._plain_composed(project, kind)
        own = self.view.own
        assert own is not None  # (_own_project found it there)
        if own.statuses.quarantined(project):
            return None
        return own.rendered.project_page(found, kind)

    def _plain_composed(self, project: str, kind: str) -> Page | AgedPage | None:
        """
        The composed page of C{project} (its bases', its upstreams', a
        view's) when L{answer} would send it as it is: from the upstreams'
        fresh pages (L{plain_chain_page}), or with no upstream to ask, as
        the index lists it, unless quarantined (admins see its files).
        """
        view = self.view
        asked = view.upstreams(project) if self.upstreams else None
        if asked:
            return plain_chain_page(view, [self.upstreams[s.name] for s in asked], project,
                                    kind, self.clock)
        if view.quarantined(project):
            return None
        return view.page(project, kind, self.clock.seconds())

    def _root_for(self, request: Request, kind: str) -> Page:
        """
        The project list as one reader may see it (rules hide some
        projects), made once per reader and state of the hosted sources.
        """
        key = (self.access.cache_key(request), kind)
        serials = tuple(source.hosted.serial for source in self.view.order
                        if source.hosted is not None)
        cached = self._roots.get(key)
        if cached is not None and cached[0] == serials:
            return cached[1]
        pairs: dict[str, str] = {}
        for source in self.view.order:
            if source.hosted is None:
                continue
            for p in source.hosted.projects():
                if p.name not in pairs and self.view.filters.admits_project(p.name) \
                        and self.access.may_read(request, p.name, self.name):
                    pairs[p.name] = p.display_name
        items = sorted(pairs.items())
        body = (render.root_html(items) if kind == HTML
                else render.root_json(items, served(self.view.namespaces) is not None))
        page = Page.of(body, CONTENT_TYPES[kind])
        if len(self._roots) > 1000:
            self._roots.clear()
        self._roots[key] = (serials, page)
        return page


@attrs.frozen
class PlainFile:
    """
    A stored file (or its metadata) sent as it is (L{IndexFiles.plain_file}).

    @ivar location: where the storage keeps it.
    @ivar etag: its ETag, quotes included.
    @ivar usage: counts its downloads (a file's, not its metadata's), or L{None}.
    @ivar filename: the name its downloads are counted under.
    """

    location: Location
    etag: bytes
    usage: UsageLog | None = None
    filename: str = ""


@attrs.frozen
class IndexFiles:
    """
    C{/NAME/files/<project>/<filename>} (and its C{.metadata}): from the
    first hosted source holding the file, if the index lists it (a file a
    view's filters leave out answers 404: a view serves what it lists).
    """

    name: str
    view: IndexView
    sources: tuple[HostedSource, ...]
    access: Access
    clock: IReactorTime
    upstreams: Mapping[str, SourceSide] = attrs.field(factory=dict)
    #: refuses the files of the releases the index's advisories deny
    denied: DeniedDownloads | None = None
    #: the hosted sources' readings of files found without a record
    backfills: tuple[Backfill, ...] = attrs.field(init=False, default=attrs.Factory(
        lambda self: tuple(source.backfill for source in self.sources
                           if source.backfill is not None), takes_self=True))
    #: whether the index filters nothing (not a view): its own files need no composition
    _plain: bool = attrs.field(init=False, default=attrs.Factory(
        lambda self: self.view.filters == Filters(), takes_self=True))

    def answer(self, request: Request) -> Answer:
        """Send a file or its metadata; C{request.postpath} is what follows C{files}."""
        post: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
        if len(post) != 2:
            raise NotFound("no such file")
        project = _text(post[0], "no such file")
        filename = _text(post[1], "no such file")
        if not self.access.may_read(request, project, self.name) \
                or not (self._plain or self.view.admits(normalize(project))):
            raise NotFound("no such file")
        if self.view.quarantined(project):
            # (PEP 792: none of its files is offered, but to admins)
            return as_admin(self.access, request, lambda: self._send(request, project, filename),
                            _no_file)
        return self._send(request, project, filename)

    def plain_file(self, rest: bytes) -> PlainFile | None:
        """
        What an anonymous whole C{GET} or C{HEAD} of C{files/<rest>} gets,
        when L{_send} would send it as it is from a hosted source: a file
        (or its metadata) that source lists and keeps in memory or on this
        machine's disk, of a project with no status and no advisory;
        otherwise L{None}, and L{answer} decides. L{pypid.web.serving.express}
        sends it. The caller counts the download (L{PlainFile.usage}).
        """
        if rest.count(b"/") != 1 or b"%" in rest:
            return None
        try:
            project, filename = rest.decode("utf-8").split("/")
        except UnicodeDecodeError:
            return None
        view = self.view
        if not self.access.anyone_may_read(project, self.name) \
                or not (self._plain or view.admits(normalize(project))) \
                or view.quarantined(project) or view.advisories.affects(project):
            return None
        now = self.clock.seconds()
        for i, source in enumerate(self.sources):
            record = source.index.get_file(filename, project)
            if record is not None and record.project == project:
                if not self._listed(i, source, record, now):
                    return None
                return PlainFile(source.storage.locate(record),
                                 b'"%s"' % record.sha256.encode("ascii"), source.usage, filename)
            if filename.endswith(_METADATA_SUFFIX):
                record = source.index.get_file(filename[: -len(_METADATA_SUFFIX)], project)
                if record is not None and record.project == project:
                    if record.metadata_sha256 is None or not self._listed(i, source, record, now):
                        return None
                    return PlainFile(source.storage.locate_metadata(record),
                                     b'"%s"' % record.metadata_sha256.encode("ascii"))
            if source.index.deleted_from(filename) == project:
                return None
        if self.upstreams and is_valid_name(project) and normalize(project) == project \
                and view.upstreams(project):
            kept = plain_chain_file(view, self.upstreams, project, filename, self.clock)
            return None if kept is None else PlainFile(*kept)
        return None

    def _send(self, request: Request, project: str, filename: str) -> Answer:
        """
        Send the file (or metadata) C{filename} of C{project} the index
        lists: from the first hosted source holding it live, if the
        index's composition lists it from there (L{_listed}); else from
        the upstream that lists it. A file in a source's recycle bin, or
        deleted there, hides nothing: what a later source holds is served
        when the page lists it (design Q7; issue 41, defect 3).
        """
        if is_variants_filename(filename):
            variants = self._variants(project, filename)
            if variants is not None:
                return send_page(request, variants)
        now = self.clock.seconds()
        metadata = filename.endswith(_METADATA_SUFFIX)
        deleted = False
        for i, source in enumerate(self.sources):
            record = source.index.get_file(filename, project)
            if record is not None and record.project == project and self._listed(
                    i, source, record, now):
                self._check(request, project, filename, record.version)
                etag = b'"%s"' % record.sha256.encode("ascii")
                if source.usage is not None:
                    # (a download is a whole body, or a range through its
                    # end, once a client: issue 41)
                    sent = transfer_of(request, record.size, etag)
                    if sent is not None:
                        source.usage.count(filename, client_address(request), sent == TAIL)
                return send_stored(request, record, source.storage.locate(record), etag)
            if metadata:
                record = source.index.get_file(filename[: -len(_METADATA_SUFFIX)], project)
                if (record is not None and record.project == project
                        and record.metadata_sha256 is not None
                        and self._listed(i, source, record, now)):
                    self._check(request, project, filename, record.version)
                    return send_stored(request, record, source.storage.locate_metadata(record),
                                       b'"%s"' % record.metadata_sha256.encode("ascii"))
            deleted = deleted or source.index.deleted_from(filename) == project
        # (deleted everywhere it was, it is gone)
        if self.upstreams and is_valid_name(project) and normalize(project) == project \
                and self.view.upstreams(project):
            self._check(request, project, filename)
            return answer_chain_file(request, self.view, self.upstreams, project, filename,
                                     self.clock, deleted)
        if deleted:
            raise Gone("this file was deleted")
        raise NotFound("no such file")

    def _variants(self, project: str, filename: str) -> Page | None:
        """
        The index-level file C{filename} (PEP 825) that the index's page of
        C{project} links, as that page made it (L{Page.variants}), so that
        it is what the page's hash names: the page an admin gets of a
        quarantined project (only they come here for one), else everyone's.
        L{None} when the page links no such file.
        """
        view, now = self.view, self.clock.seconds()
        page = (view.full_page(project, JSON, now) if view.quarantined(project)
                else view.page(project, JSON, now))
        return page.variants.get(filename) if page is not None else None

    def _listed(self, i: int, source: HostedSource, record: FileRecord, now: float) -> bool:
        """
        Whether the index lists the live C{record} of its C{i}th source from
        there: its own files (its first source's) when it filters nothing,
        at once; else as its composition says (a view's filters and date,
        an earlier source's file of that distribution shadowing it).
        """
        if i == 0 and self._plain:
            return True
        listing = self.view.listing(record.project, now)
        return listing is not None and any(
            f.filename == record.filename and chained.name == source.name
            for f, chained in listing.files)

    def provenance(self, request: Request, project: str, version: str, filename: str,
                   content_type: str) -> Answer:
        """
        The provenance of C{filename} (PEP 740, L{pypid.web.serving.integrity}), to
        whoever may download the file from this index: its rules, view
        filters and quarantine; from the first hosted source holding it.
        """
        filters = self.view.filters
        if not self.access.may_read(request, project, self.name) \
                or not filters.admits_project(project):
            raise NotFound("no such file")
        if any(source.index.statuses.quarantined(project) for source in self.sources):
            return as_admin(self.access, request,
                            lambda: self._provenance(request, project, version, filename,
                                                     content_type), _no_file)
        return self._provenance(request, project, version, filename, content_type)

    def _provenance(self, request: Request, project: str, version: str, filename: str,
                    content_type: str) -> Answer:
        for i, source in enumerate(self.sources):
            record = source.index.get_file(filename, project)
            if record is not None and record.project == project and self._listed(
                    i, source, record, self.clock.seconds()):
                return send_stored_provenance(request, source.storage, record, version,
                                              content_type)
        if self.upstreams and is_valid_name(project) and normalize(project) == project \
                and self.view.upstreams(project):
            return answer_chain_provenance(request, self.view, self.upstreams, project,
                                           version, filename, content_type, self.clock)
        raise NotFound("no such file")

    def _check(self, request: Request, project: str, filename: str,
               version: str | None = None) -> None:
        """Refuse (403) a file of a release the index's advisories deny."""
        if self.denied is not None:
            self.denied.check(request, self.view.advisories, self.name, project, filename,
                              version)


@attrs.define(slots=False)
class ReadOnlyPublish:
    """
    A view's upload, yank, unyank, delete, restore and status routes: 405 with the
    reason, once the credentials passed (as a hosted index's would be checked).
    """

    _name: str
    _access: Access

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
        raise self._refusal()

    @app.route("/api/files/<string:filename>/yank", methods=["POST"])
    @app.route("/api/files/<string:filename>/unyank", methods=["POST"])
    @app.route("/api/files/<string:filename>/restore", methods=["POST"])
    @app.route("/api/files/<string:filename>", methods=["DELETE"])
    def change_file(self, request: IRequest, filename: str) -> Coroutine[Any, Any, bytes]:
        """Refuse a change to a file."""
        return self._refuse(request)

    @app.route("/api/projects/<string:project>/<string:version>/yank", methods=["POST"])
    @app.route("/api/projects/<string:project>/<string:version>/unyank", methods=["POST"])
    @app.route("/api/projects/<string:project>/<string:version>", methods=["DELETE"])
    def change_release(self, request: IRequest, project: str,
                       version: str) -> Coroutine[Any, Any, bytes]:
        """Refuse a change to a release."""
        return self._refuse(request)

    @app.route("/api/projects/<string:project>/status", methods=["POST"])
    def change_status(self, request: IRequest, project: str) -> Coroutine[Any, Any, bytes]:
        """Refuse a status change: a view's projects have the status of their hosted index."""
        return self._refuse(request)

    async def _refuse(self, request: IRequest) -> bytes:
        await self._access.gate_upload(request, index=None)
        raise self._refusal()

    def _refusal(self) -> MethodNotAllowed:
        return MethodNotAllowed(f"{self._name} {VIEW_REFUSAL}", [(b"allow", b"GET, HEAD")])


@attrs.frozen
class ServedIndex:
    """
    One index's answers, the default's (mounted at C{/}) as a named one's
    (under C{/NAME/}).

    @ivar areas: its Klein areas (pages for people, uploads, changes, the
        legacy JSON); at C{/} they join the site's own (L{pypid.web.app}).
    @ivar resource: its areas as one resource dispatching on the path
        after C{/NAME} (a named index's).
    @ivar project: its project pages (C{project/...}), or L{None}.
    @ivar publish: its uploads and changes (the console calls them), or
        L{None} for a view, which takes none.
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
    Answer a read path (L{ServedIndex.read_path}) whose gate passed:
    C{GET} and C{HEAD} alone, once the project it names is read
    (L{_when_read}); C{request.postpath} starts after the area's segment.
    """
    if request.method not in (b"GET", b"HEAD"):
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


def read_openly(access: Access, served: ServedIndex) -> bool:
    """
    Whether anyone may read C{served} without credentials (the read gate
    of C{/simple/} and C{/files/}, and for a named index the gate of
    C{/NAME/} too, let anonymous clients through) and every file it holds
    was read: then the express lane may answer its kept pages and files.
    """
    name = served.name
    if not access.reads_openly(name) or (name != DEFAULT and not access.enters_openly(name)):
        return False
    # (a loop, not any() over a generator: 4 % of a page's CPU in a profile)
    for backfill in served.files.backfills:
        if backfill.remaining:
            return False
    return True


class IndexPath(Resource):
    """
    One read path of the default index at the root (C{/simple/},
    C{/files/}, C{/integrity/}): its read grant (a challenge for anonymous
    clients where it needs credentials), then the same answers as under
    C{/NAME/} (L{answer_read}).
    """

    isLeaf = True

    def __init__(self, served: ServedIndex, area: bytes, access: Access) -> None:
        Resource.__init__(self)
        answer = served.read_path(area)
        assert answer is not None
        self._served = served
        self._area = area
        self._answer = answer
        self._access = access

    def plain_page(self, accept: bytes | None, rest: bytes) -> Page | AgedPage | None:
        """
        For C{simple}: the kept page an anonymous C{GET} of C{simple/<rest>}
        (with the C{Accept} header C{accept}) gets as it is
        (L{IndexSimple.plain_page}), when anyone may read the
        index and every file it holds was read (no project waits for
        L{_when_read}); otherwise L{None}, and L{render} answers.
        """
        served = self._served
        if self._area != b"simple" or not read_openly(self._access, served):
            return None
        return served.simple.plain_page(accept, rest)

    def plain_file(self, rest: bytes) -> PlainFile | None:
        """
        For C{files}: the stored file an anonymous whole C{GET} of
        C{files/<rest>} gets as it is (L{IndexFiles.plain_file}), on the
        same conditions as L{plain_page}; otherwise L{None}.
        """
        served = self._served
        if self._area != b"files" or not read_openly(self._access, served):
            return None
        return served.files.plain_file(rest)

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
    Everything under C{/NAME/}: the gate first (a missing index and one
    hidden from the reader answer alike), then C{simple}, C{files} or the
    index's areas.

    @ivar _served: C{{name as bytes: ServedIndex}}, replaced whole at
        C{SIGHUP} (L{replace}).
    """

    isLeaf = True

    def __init__(self, served: Mapping[bytes, ServedIndex], access: Access, base: str) -> None:
        Resource.__init__(self)
        self._served = dict(served)
        self._access = access
        self._base = base

    @property
    def served(self) -> Mapping[bytes, ServedIndex]:
        """The named indexes it answers now, by name (as bytes)."""
        return self._served

    def replace(self, served: Mapping[bytes, ServedIndex]) -> None:
        """
        Answer the named indexes C{served} from now on, in place of those
        before (C{SIGHUP}: L{pypid.state.index_reload}): one assignment, so
        a request finds its index in the old set or the new one.
        """
        self._served = dict(served)

    def plain_page(self, accept: bytes | None, name: bytes, rest: bytes) -> Page | AgedPage | None:
        """
        For the express lane (L{pypid.web.serving.express}): the kept page an
        anonymous C{GET} of C{/NAME/simple/<rest>} (with the C{Accept}
        header C{accept}) gets as it is, when
        anyone may enter and read the index C{name} and every file it holds
        was read (L{read_openly}); otherwise L{None}, and L{render} answers.
        """
        served = self._served.get(name)
        if served is None or not read_openly(self._access, served):
            return None
        return served.simple.plain_page(accept, rest)

    def plain_file(self, name: bytes, rest: bytes) -> PlainFile | None:
        """
        For the express lane: the stored file an anonymous whole C{GET} of
        C{/NAME/files/<rest>} gets as it is, on the conditions of
        L{plain_page}; otherwise L{None}.
        """
        served = self._served.get(name)
        if served is None or not read_openly(self._access, served):
            return None
        return served.files.plain_file(rest)

    def render(self, request: Request) -> Rendered:
        """Gate the request, then answer it with the part of the index its path names."""
        segment: bytes = request.prepath[-1]  # type: ignore[index]  # (set by process())
        served = self._served.get(segment)
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


def is_page_for_people(request: Request) -> bool:
    """
    Whether a request under C{/NAME/} reads one of the index's pages for
    people: C{GET} or C{HEAD} of its landing page, search, the search's
    JSON or a project's pages (never its simple pages, files or uploads).
    """
    post: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
    if request.method not in (b"GET", b"HEAD") or not post:
        return False
    return post[0] in (b"", b"search", b"project") or post[:2] == [b"api", b"search"]


def _when_read(served: ServedIndex, area: bytes, answer: Callable[[Request], Answer],
               request: Request) -> Answer | Deferred[Any]:
    """
    C{answer(request)}, once no hosted source of the index has files of
    the project the path names still to be read (see the module's
    docstring); or at once, for a path that names none, or a project the
    reader may not read (its 404 comes as fast as a missing one's).
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
            if not served.simple.access.may_read(request, project, served.name):
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


def _text(segment: bytes, missing: str) -> str:
    try:
        return segment.decode("utf-8")
    except UnicodeDecodeError:
        raise NotFound(missing)
