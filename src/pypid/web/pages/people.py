"""
The pages for people that are not about one project: the landing page at
C{/}, search at C{/search?q=}, C{/api/search}, what the pages' script
asks as one types, and the pages' assets at C{/static/}.

Access rules apply as on the index: a project a reader may not read is not
counted, listed among the recent uploads, or found. The landing page is
rendered once per reader's view of the rules and index state, like the
simple index's root; search is answered from the in-memory
L{pypid.core.formats.search.SearchIndex}, a few milliseconds at 20,000 projects.

Each named index has its own L{PeoplePages} under C{/NAME/}, over an
L{pypid.core.formats.catalog.IndexCatalog} of what its simple pages list,
behind the index's gate. With named indexes configured, every page carries
an index switcher listing the indexes its reader may read
(L{ReaderChrome}); without any, the pages are what they were, byte for
byte, and cost what they did.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import attrs
from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.server import Request

from pypid.assets import Assets
from pypid.auth.basic import MalformedCredentials
from pypid.core.access.origins import origin_of
from pypid.core.formats import pages
from pypid.core.formats.catalog import Catalog, IndexCatalog
from pypid.core.formats.search import Results
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.indexes.render import Page
from pypid.core.util.http_errors import BadRequest, HTTPError, NotFound
from pypid.web.identity.browser_sessions import has_session_cookie
from pypid.web.identity.gates import Gates
from pypid.web.identity.request_auth import (
    IRequestAuth,
    for_people,
    identity_of,
    request_credentials,
)
from pypid.web.server.respond import ReadResource, send_error, send_page
from pypid.web.server.routes import answer_errors, form_field, send_json
from pypid.web.serving.stored_objects import FILE_CACHE_CONTROL

HTML = b"text/html; charset=utf-8"

#: The policy of the pages for people: their own script and stylesheet
#: only, images of descriptions from anywhere on HTTPS (a README's badges),
#: forms and script requests to this server only.
PEOPLE_CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; "
              b"img-src 'self' https: data:; connect-src 'self'; form-action 'self'; "
              b"base-uri 'none'; frame-ancestors 'none'")

#: Results a page of C{/search} shows, and the most C{/api/search} gives.
PAGE_SIZE = 20
MAX_API_SIZE = 50

#: Readers' views of the landing page kept at once (one per user).
_MAX_LANDINGS = 1000


def people_headers(request: IRequest) -> None:
    """
    The headers every page for people carries (the site sets the rest),
    and the mark that lets a browser session stand for its reader.
    """
    for_people(request)
    headers = request.responseHeaders
    headers.setRawHeaders(b"content-security-policy", [PEOPLE_CSP])
    headers.setRawHeaders(b"referrer-policy", [b"no-referrer"])
    headers.setRawHeaders(b"x-content-type-options", [b"nosniff"])


def session_person(request: IRequest) -> str | None:
    """The user a browser session stands for on C{request}, or L{None}."""
    if IRequestAuth(request).session is None:
        return None
    identity = identity_of(request)
    return identity.name if identity is not None else None


def query_number(request: IRequest, name: str, default: int, largest: int) -> int:
    """A query's whole-number field, from 1 to C{largest}, or C{default}."""
    text = form_field(request, name)
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise BadRequest(f"{name}: must be a whole number from 1")
    return largest if len(text) > 9 else min(int(text), largest)


#: Chromes kept by a L{ReaderChrome} (one per set of indexes a reader sees).
_MAX_CHROMES = 256


@attrs.define
class IndexSwitcher:
    """
    The indexes of a server, as the switcher of the pages for people may
    list them (C{links}): the default first, then the named ones in order.
    """

    _access: Gates
    links: tuple[pages.IndexLink, ...]

    def shown(self, request: IRequest) -> tuple[pages.IndexLink, ...]:
        """
        The indexes the request's reader may read, or none at all when that
        is the default alone: a page does not tell that others exist.
        """
        reader = self._access.reader(request)
        links = tuple(link for link in self.links if reader.enters(link.name))
        return links if any(link.name != DEFAULT for link in links) else ()

    def hides_from_anonymous(self) -> bool:
        """Whether some index is hidden from anonymous readers (then identities matter)."""
        anonymous = self._access.anonymous
        return any(not anonymous.enters(link.name) for link in self.links)


def snippet_root(request: IRequest, index: str) -> str | None:
    """
    The absolute URL of C{index}'s root as the request reached it, for the
    install snippets; L{None} for a C{Host} that is no host.
    """
    origin = origin_of(request.getHeader(b"host"), request.isSecure())
    if origin is None:
        return None
    return f"{origin}/" if index == DEFAULT else f"{origin}/{index}/"


@attrs.define
class ReaderChrome:
    """
    The chrome of one index's pages as a reader gets it: C{base} with the
    C{switcher} of the indexes they may read (L{None} without named indexes).
    """

    base: pages.Chrome
    switcher: IndexSwitcher | None = None
    _made: dict[tuple[tuple[pages.IndexLink, ...], str | None, str | None],
                pages.Chrome] = attrs.field(
        factory=dict, init=False)

    def of(self, request: IRequest) -> pages.Chrome:
        """
        The chrome of the request's reader (after L{identify}): the indexes
        they may read, and who they are when a browser session stands for them.
        """
        links = self.switcher.shown(request) if self.switcher is not None else ()
        person = session_person(request)
        # (without [pypid] base_url, the snippets name the origin the
        # browser reached the server by, filled in here rather than left to the script)
        base_url = self.base.base_url or snippet_root(request, self.base.index)
        if not links and person is None and base_url == self.base.base_url:
            return self.base
        key = (links, person, base_url)
        chrome = self._made.get(key)
        if chrome is None:
            if len(self._made) >= _MAX_CHROMES:
                self._made.clear()
            chrome = self._made[key] = attrs.evolve(self.base, indexes=links, person=person,
                                                    base_url=base_url)
        return chrome

    def needs_identity(self, request: IRequest) -> bool:
        """
        Whether L{identify} has something to do, for a request the gate let
        through unchecked: a browser session may stand for its reader, or
        the switcher could list more to the credentials it carries.
        """
        if identity_of(request) is not None:
            return False
        if has_session_cookie(request) and \
                not request.requestHeaders.hasHeader(b"authorization"):
            return True
        return (self.switcher is not None
                and request.requestHeaders.hasHeader(b"authorization")
                and self.switcher.hides_from_anonymous())

    async def identify(self, request: IRequest, access: Gates) -> None:
        """
        Find who sent a request the gate let through unchecked, for its
        switcher and header; wrong credentials change nothing (the page is
        open to every reader).
        """
        if not self.needs_identity(request):
            return
        try:
            credentials = request_credentials(request)
            identity = await access.identify(request, credentials)
        except (HTTPError, MalformedCredentials):
            return
        IRequestAuth(request).identity = identity


@attrs.define(slots=False)
class PeoplePages:
    """
    The landing page and search of one index.

    @ivar _name: the index's name; a named index's pages are behind its
        gate already (L{pypid.web.serving.index_root.IndexRoot}).
    """

    _catalog: Catalog | IndexCatalog
    _access: Gates
    _chrome: ReaderChrome
    _name: str = DEFAULT
    _landings: dict[tuple[tuple[str, str | None, frozenset[str]] | None, str | None,
                          str | None], tuple[Hashable, Page]] = attrs.field(
        factory=dict, init=False)

    app = Klein()
    answer_errors(app)

    @app.route("/", methods=["GET", "HEAD"])
    async def landing(self, request: IRequest) -> bytes:
        """What this index holds, its latest uploads, and how to use it."""
        await self._gate(request)
        return send_page(request, self._landing(request))

    @app.route("/search", methods=["GET", "HEAD"])
    async def search(self, request: IRequest) -> bytes:
        """One page of results, for a browser without script too."""
        await self._gate(request)
        results, versions = self._search(request, query_number(request, "page", 1, 10**6),
                                         PAGE_SIZE)
        body = pages.search_page(self._chrome.of(request), results, versions)
        return send_page(request, Page.of(body, HTML))

    @app.route("/api/search", methods=["GET", "HEAD"])
    async def api_search(self, request: IRequest) -> bytes:
        """Results as JSON, for the pages' script as one types."""
        await self._gate(request)
        results, versions = self._search(request, query_number(request, "page", 1, 10**6),
                                         query_number(request, "size", PAGE_SIZE, MAX_API_SIZE))
        return send_json(request, {
            "query": results.query, "total": results.total, "page": results.page,
            "pages": results.pages,
            "hits": [pages.search_entry_json(hit.entry, versions.get(hit.entry.project))
                     for hit in results.hits],
        })

    async def _gate(self, request: IRequest) -> None:
        people_headers(request)
        if self._name == DEFAULT:
            gate = self._access.gate_read(request)
            if gate is not None:
                await gate
        await self._chrome.identify(request, self._access)

    def _visible(self, request: IRequest) -> Callable[[str], bool] | None:
        """The reader's C{visible(project)}, or L{None} when they may read every project."""
        name = self._name
        reader = self._access.reader(request)
        if reader.reads_all(name):
            return None
        return lambda project: reader.reads(project, name)

    def _search(self, request: IRequest, page: int, size: int,
                ) -> tuple[Results, dict[str, str | None]]:
        query = form_field(request, "q")
        results = self._catalog.search_index().search(query, self._visible(request), page,
                                                      size)
        versions = {hit.entry.project: self._catalog.latest(hit.entry.project)
                    for hit in results.hits}
        return results, versions

    def _landing(self, request: IRequest) -> Page:
        chrome = self._chrome.of(request)
        key = (self._access.cache_key(request), chrome.person, chrome.base_url)
        kept = self._landings.get(key)
        serial = self._catalog.serial
        if kept is not None and kept[0] == serial:
            return kept[1]
        visible = self._visible(request)
        projects, files = self._catalog.counts(visible)
        body = pages.landing_page(chrome, projects, files,
                                  self._catalog.recent(visible))
        page = Page.of(body, HTML)
        if len(self._landings) >= _MAX_LANDINGS:
            self._landings.clear()
        self._landings[key] = (serial, page)
        return page


class AssetsResource(ReadResource):
    """C{/static/<name>}: an asset, cached for good (its name changes with it)."""

    def __init__(self, assets: Assets) -> None:
        ReadResource.__init__(self)
        self._assets = assets

    def render_GET(self, request: Request) -> bytes:
        """Send an asset, or 404."""
        post: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
        page = self._assets.pages.get(post[0].decode("ascii", "replace")) if len(post) == 1 \
            else None
        if page is None:
            return send_error(request, NotFound("no such file"))
        body = send_page(request, page)
        request.responseHeaders.setRawHeaders(b"cache-control", [FILE_CACHE_CONTROL])
        return body

