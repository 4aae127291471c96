"""
C{/simple/} and C{/simple/<project>/} of one index: one decider, L{IndexSimple.decide}, whose
value (L{pypid.web.serving.read_decisions}) the resource delivers whatever it is, and the
express lane only when it is a page to send as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.web.server import Request

from pypid.auth.reader import Reader
from pypid.core.dists.names import is_valid_name, normalize
from pypid.core.formats.negotiate import choose
from pypid.core.indexes import render
from pypid.core.indexes.composed import ComposedIndex
from pypid.core.indexes.namespace_api import IndexNamespaces
from pypid.core.indexes.project import Project
from pypid.core.indexes.render import CONTENT_TYPES, JSON, AgedPage, Page
from pypid.core.util.http_errors import HTTPError, NotAcceptable, NotFound
from pypid.web.identity.gates import Gates
from pypid.web.identity.request_auth import identity_of
from pypid.web.server.respond import (
    NOT_ACCEPTABLE,
    Answer,
    asked_kind,
    send_moved,
    send_page,
)
from pypid.web.serving.read_decisions import (
    AdminOnly,
    AskUpstream,
    Moved,
    NamespacesAsked,
    PageDecision,
    Private,
    ReaderPage,
    ReaderRoot,
)
from pypid.web.serving.upstream_pages import answer_chain_page, plain_chain_page

if TYPE_CHECKING:
    from pypid.upstream.source import SourceSide


def send_private(request: Request, page: Page) -> bytes:
    """Send a page only its reader may see (an admin's): never kept by a cache."""
    body = send_page(request, page)
    request.responseHeaders.setRawHeaders(b"cache-control", [b"private, no-store"])
    return body


def as_admin(access: Gates, request: Request, admin: Callable[[], Answer],
             reader: Callable[[], Answer]) -> Answer:
    """
    C{admin()} when the request comes from an admin, else C{reader()}: for a quarantined
    project, whose files only admins see (the credentials checked as L{with_reader} does).
    """
    return with_reader(access, request, lambda found: admin() if found.is_admin else reader())


def with_reader(access: Gates, request: Request, then: Callable[[Reader], Answer]) -> Answer:
    """
    C{then(reader)}, the request's reader: the one its gate kept, or, when the read gate
    checked no credentials (anonymous reads), the one of those it sends, checked here: wrong
    ones answer 401 as on any other path.
    """
    if identity_of(request) is not None:
        return then(access.reader(request))
    return access.identified_reader(request).addCallback(then)


#: The most request names whose normalized form an index remembers.
MAX_NAMES = 1 << 16


def normalized_name(names: dict[str, str], segment: bytes) -> str | None:
    """
    The normalized project name a path segment spells, or L{None}: remembered in C{names} (a
    dict lookup on the hot path, where checking and normalizing take 1 to 2 us), bounded.
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
    C{/simple/} and C{/simple/<project>/} of one index, from its L{ComposedIndex}.

    @ivar base: where its paths start (C{/} or C{/NAME/}, under the base URL).
    """

    name: str
    composed: ComposedIndex
    access: Gates
    clock: IReactorTime
    base: str
    upstreams: Mapping[str, SourceSide]
    #: (reader, kind) -> (the hosted sources' serials, the project list that reader sees)
    _roots: dict[tuple[object, str], tuple[tuple[tuple[int, int], ...], Page]] = attrs.field(
        factory=dict, init=False)
    #: request name -> its normalized form ("" for no name: L{normalized_name})
    _names: dict[str, str] = attrs.field(factory=dict, init=False)

    def decide(self, reader: Reader, post: Sequence[bytes],
               kind: str | None) -> PageDecision:
        """
        What a C{GET} of C{simple/} + C{post} (the segments after C{simple}) gets, for the
        C{kind} of page negotiated (L{None}: none acceptable), by who asks (C{reader}).
        """
        if len(post) == 2 and not post[1]:
            return self._project(reader, post[0], kind)
        if len(post) == 1 and not post[0]:
            if kind is None:
                return NotAcceptable(NOT_ACCEPTABLE)
            if reader.reads_all(self.name):
                return self.composed.root_page(kind)
            return ReaderRoot(kind)
        if not post:
            return Moved("simple/")
        if list(post) == [b"namespaces"] or (len(post) == 2 and post[0] == b"namespace"):
            return NamespacesAsked(tuple(post))
        if len(post) == 1:
            # (for a hosted name alone: whether an upstream has it is asked
            # only at the full URL, which pip and uv always send)
            project = normalized_name(self._names, post[0])
            if project is not None and reader.reads(project, self.name) \
                    and self.composed.hosts(project):
                return Moved(f"simple/{project}/")
        return NotFound("no such project")

    def _project(self, reader: Reader, segment: bytes, kind: str | None) -> PageDecision:
        """The decision for C{simple/<segment>/}."""
        project = normalized_name(self._names, segment)
        if project is None or not reader.reads(project, self.name):
            return NotFound("no such project")
        moved = project.encode("utf-8") != segment
        composed = self.composed
        found = None if moved else self._own_project(project)
        if found is not None:
            # The hot path: a project of the index's own hosted source,
            # served from that source's kept pages (ComposedIndex.own).
            own = composed.own
            assert own is not None  # (_own_project found it there)
            if kind is None:
                return NotAcceptable(NOT_ACCEPTABLE)
            rendered = own.rendered
            public = rendered.project_page(found, kind)
            spaces = composed.namespaces
            if own.statuses.quarantined(project):
                full = partial(rendered.full_page, found, kind)
                return AdminOnly(lambda: Private(full()), partial(
                    self._for_reader, project,
                    partial(rendered.project_page, found, kind, True), public))
            if spaces is not None and spaces.any_hidden:
                return self._for_reader(project,
                                        partial(rendered.project_page, found, kind, True),
                                        public)
            return public
        if self.upstreams:
            asked = composed.upstreams(project)
            if asked:
                if moved:
                    return Moved(f"simple/{project}/")
                if kind is None:
                    return NotAcceptable(NOT_ACCEPTABLE)
                return AskUpstream([self.upstreams[s.name] for s in asked], project, kind)
        if kind is None:
            return NotAcceptable(NOT_ACCEPTABLE)
        now = self.clock.seconds()
        page = composed.page(project, kind, now)
        if page is None:
            return NotFound("no such project")
        if moved:
            return Moved(f"simple/{project}/")
        spaces = composed.namespaces
        quarantined = composed.quarantined(project)
        if not quarantined and (spaces is None or not spaces.any_hidden):
            return page

        def hidden() -> Page:
            return composed.hidden_page(project, kind, now) or page
        if quarantined:
            # (PEP 792: its admins see its files, to release or delete them)
            whole = partial(composed.full_page, project, kind, now)
            return AdminOnly(lambda: Private(whole() or page),
                             partial(self._for_reader, project, hidden, page))
        return self._for_reader(project, hidden, page)

    def _for_reader(self, project: str, hidden: Callable[[], Page],
                    public: Page) -> PageDecision:
        """
        C{public}, unless the project falls in a hidden grant a reader could see (its owners,
        the admins) and the page is JSON: then who asks decides (L{ReaderPage}; the express lane
        leaves it to the resource, which checks credentials the read gate did not).
        """
        spaces = self.composed.namespaces
        if (spaces is None or not spaces.any_hidden
                or public.content_type != CONTENT_TYPES[JSON] or not spaces.hides(project)):
            return public
        return ReaderPage(project, hidden, public)

    def answer(self, request: Request) -> Answer:
        """Answer the request; C{request.postpath} is what follows C{simple}."""
        post: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
        return self.deliver(request, self.decide(self.access.reader(request), post,
                                                 asked_kind(request)))

    def deliver(self, request: Request, decision: PageDecision) -> Answer:
        """Act on a decision of L{decide}, whatever it is."""
        if isinstance(decision, Page):
            return send_page(request, decision)
        if isinstance(decision, HTTPError):
            raise decision
        if isinstance(decision, Moved):
            return send_moved(request, self.base, decision.path)
        if isinstance(decision, AskUpstream):
            return answer_chain_page(request, self.composed, decision.sides, decision.project,
                                     self.clock)
        if isinstance(decision, Private):
            return send_private(request, decision.page)
        if isinstance(decision, ReaderPage):
            return self._reader_page(request, decision.project, decision.hidden,
                                     decision.public)
        if isinstance(decision, ReaderRoot):
            return send_page(request, self._root_for(request, decision.kind))
        if isinstance(decision, NamespacesAsked):
            return self._namespaces(request, list(decision.post))
        admin, reader = decision.admin, decision.reader
        return as_admin(self.access, request,
                        lambda: self.deliver(request, admin()),  # type: ignore[arg-type]
                        lambda: self.deliver(request, reader()))  # type: ignore[arg-type]

    def plain_page(self, accept: bytes | None, rest: bytes) -> Page | AgedPage | None:
        """
        For the express lane: the page an anonymous C{GET} of C{simple/<rest>} with the
        C{Accept} header C{accept} gets, when L{decide} says to send a kept page as it is (an
        upstream's only while the cache holds it fresh); else L{None}.
        """
        if b"%" in rest:
            return None
        kind = choose(accept)
        if kind is None:
            return None
        decision = self.decide(self.access.anonymous, rest.split(b"/"), kind)
        if isinstance(decision, Page):
            return decision
        if isinstance(decision, AskUpstream):
            return plain_chain_page(self.composed, decision.sides, decision.project, kind,
                                    self.clock)
        return None

    def _reader_page(self, request: Request, project: str, hidden: Callable[[], Page],
                     public: Page) -> Answer:
        """
        The page of C{project}, in a hidden grant, a reader gets: C{hidden()} (kept by no
        cache) when they see the grant, else C{public}. Who they are is what the read gate
        found: credentials it did not check are not checked here, so that a project of a hidden
        grant answers any credentials as any other does, in its status and its time.
        """
        spaces = self.composed.namespaces
        assert spaces is not None  # (_for_reader made the decision only then)
        sees = self.access.reader(request).sees_grant
        if any(sees(grant) for grant in spaces.matching(project) if grant.hidden):
            return send_private(request, hidden())
        return send_page(request, public)

    def _namespaces(self, request: Request, post: list[bytes]) -> Answer:
        """
        PEP 752's C{/namespaces} list and C{/namespace/<name>} detail (JSON API 1.5 only: PEP
        833 froze the HTML); a hidden grant only to its owners and the admins, who alone see
        its owners too.
        """
        spaces = self.composed.namespaces
        if spaces is None:
            raise NotFound("this index serves no namespaces")
        return with_reader(self.access, request,
                           lambda reader: self._namespace_answer(request, post, spaces, reader))

    def _namespace_answer(self, request: Request, post: list[bytes], spaces: IndexNamespaces,
                          reader: Reader) -> Answer:
        sees = reader.sees_grant
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
        C{project} when the index's own hosted source holds it and serves it from its kept
        pages alone (no upstream merged in): the pages of the hot path.
        """
        own = self.composed.own
        if own is None:
            return None
        found = own.project(project)
        if found is None or (self.upstreams and self.composed.merges(project)):
            return None
        return found

    def _root_for(self, request: Request, kind: str) -> Page:
        """The project list as one reader may see it, made once per reader and sources' state."""
        key = (self.access.cache_key(request), kind)
        # (a serial moved by another server moves the listing's, not the index's)
        serials = tuple((source.hosted.serial, source.hosted.rendered.listing_serial)
                        for source in self.composed.order if source.hosted is not None)
        cached = self._roots.get(key)
        if cached is not None and cached[0] == serials:
            return cached[1]
        pairs: dict[str, str] = {}
        reader = self.access.reader(request)
        for source in self.composed.order:
            if source.hosted is None:
                continue
            for p in source.hosted.projects():
                if p.name not in pairs and self.composed.filters.admits_project(p.name) \
                        and reader.reads(p.name, self.name):
                    pairs[p.name] = p.display_name
        page = self.composed.root_of(sorted(pairs.items()), kind)
        if len(self._roots) > 1000:
            self._roots.clear()
        self._roots[key] = (serials, page)
        return page

