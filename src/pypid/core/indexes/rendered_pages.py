"""
The index's rendered pages, kept: the C{/simple/} pages, and each
project's pages and the values other modules keep with them.

Each page is kept as bytes (and gzipped bytes, and their ETag), rendered at
most once after each change to the project while it is kept. The root
pages are always kept; the projects' pages within a budget of bytes, the
least recently asked for dropped first. Apart from the records so that
what is kept, and what it costs, reads in one place; the L{Index} tells it
of every change, so a page kept is never older than the records.

The index's security advisories are applied as a page is rendered, never as
it is served (L{advised_files}), so pip and uv resolve around what they
hide or deny; whoever changes them drops the pages of the projects they
name, so a page is rendered again once per change, not per request.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs

from pypid.core.dists.variant_files import with_variant_files
from pypid.core.dists.version_order import version_key
from pypid.core.indexes import links, render
from pypid.core.indexes.namespace_api import served
from pypid.core.indexes.project import Project
from pypid.core.indexes.render import CONTENT_TYPES, HTML, ComposedFile, Page
from pypid.core.security.advisories import AdvisoryPolicy, Verdict
from pypid.core.util.lru import ByteLRU

if TYPE_CHECKING:
    from pypid.core.dists.model import FileRecord
    from pypid.core.indexes.namespace_api import IndexNamespaces
    from pypid.core.indexes.project_status import ProjectStatus

#: The default of C{[pypid] page_cache_size}: 64 MiB holds one kind of
#: page (the JSON pip and uv ask for) of about 20,000 projects of 5 files
#: (3.4 KB each with its gzip form; both kinds of 10,000), more than a
#: company's installs ask for in a day, where every page of a million files
#: (200,000 projects) would take 1.3 GB.
PAGE_CACHE_SIZE = 64 << 20


def page_bytes(value: object) -> int:
    """
    The bytes a value kept with a project's pages counts against the
    budget: a L{Page}'s, or the L{Page}'s a tuple starts with (the upstream
    proxy keeps C{(page, entry)}); 0 for anything else (a search entry, a
    token), which is small, so kept until the project changes, never evicted.
    """
    if type(value) is tuple and value:
        value = value[0]
    if isinstance(value, Page):
        return (len(value.body) + (len(value.gzipped) if value.gzipped is not None else 0)
                + sum(map(page_bytes, value.variants.values())))
    return 0


def _evicted(name: str, project: Project) -> None:
    """Drop the pages kept of an evicted C{project}, keeping its other values (L{page_bytes})."""
    kept = project.rendered
    for key in [key for key, value in kept.items() if page_bytes(value)]:
        del kept[key]


class Serials(Protocol):
    """The journal's serials of an index's projects (L{pypid.core.records.serials.IndexSerials})."""

    def __call__(self, project: str) -> int:
        """The serial of C{project}."""

    @property
    def last(self) -> int:
        """The journal's last serial taken in."""


def serial_over(serials: Iterable[Serials | None], project: str) -> int | None:
    """
    The serial of C{project} on a page composed of several indexes': the
    last of theirs, so it moves with any of them; L{None} without serials.
    """
    found = [of(project) for of in serials if of is not None]
    return max(found) if found else None


#: The key beside a project's JSON page of the one with its hidden namespaces.
_HIDDEN = "with hidden namespaces"

#: The most characters of an advisory's summary a yank reason quotes.
REASON_SUMMARY = 200


@attrs.frozen
class DeniedFile:
    """
    A file of a release the index denies, as the pages list it: yanked (PEP
    592) with the advisories as the reason, so that an installer skips it
    unless pinned to it, and then prints why; every other field the file's.
    """

    _file: ComposedFile
    yanked: str

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def deny_reason(verdict: Verdict) -> str:
    """
    The yank reason of a denied release and the body of its refused
    download: C{denied by advisory GHSA-xxxx (high): <first one's summary>}.
    """
    named = [f"{a.id} ({a.severity})" if a.severity else a.id for a in verdict.advisories]
    word = "advisory" if len(named) == 1 else "advisories"
    text = f"denied by {word} {', '.join(named)}"
    summary = " ".join(verdict.advisories[0].summary.split()) if verdict.advisories else ""
    if len(summary) > REASON_SUMMARY:
        summary = summary[: REASON_SUMMARY - 3].rstrip() + "..."
    return f"{text}: {summary}" if summary else text


_F = TypeVar("_F", bound=ComposedFile)


def advised_files(policy: AdvisoryPolicy, project: str,
                  files: Sequence[tuple[_F, str]]) -> list[tuple[_F | DeniedFile, str]]:
    """
    C{(file, link)} pairs of the normalized C{project} as an index of
    C{policy} lists them: a hidden release's files left out, a denied
    one's listed as L{DeniedFile}s (one verdict a release, memoized).
    """
    if not policy.affects(project):
        return list(files)
    shown: list[tuple[_F | DeniedFile, str]] = []
    for f, url in files:
        verdict = policy.verdict(project, f.version)
        if verdict is None or not verdict.hides:
            shown.append((f, url))
        elif verdict.denies:
            shown.append((DeniedFile(f, deny_reason(verdict)), url))
    return shown


def render_page(project: str, files: Sequence[_F], file_url: Callable[[_F], str], kind: str,
                status: ProjectStatus | None = None, advisories: AdvisoryPolicy | None = None,
                provenance_url: links.ProvenanceURL | None = None,
                namespaces: IndexNamespaces | None = None, hidden: bool = False,
                serial: int | None = None, versions: Callable[[], list[str]] | None = None,
                own: bool = False) -> Page:
    """
    The page of C{project}'s C{files} (in the order listed), an index's own
    or a composed one: the index's C{advisories} applied, its C{namespaces}
    given (hidden ones when C{hidden}; C{own}: the index's own project), and
    its C{serial}.

    @param versions: C{versions()}, what a JSON page announces; by default
        the versions of the files listed.
    """
    pairs: Sequence[tuple[ComposedFile, str]] = [(f, file_url(f)) for f in files]
    if advisories is not None:
        pairs = advised_files(advisories, project, pairs)
    shown, variants = with_variant_files(pairs)
    provenance = provenance_url or links.provenance_url_for(None)
    if kind == HTML:
        body = render.project_html(project, shown, status, provenance)
    else:
        announced = (versions() if versions is not None
                     else sorted({f.version for f, _ in shown}, key=version_key))
        spaces = served(namespaces)
        body = render.project_json(
            project, shown, announced, status, provenance,
            render.UNSERVED if spaces is None else spaces.entries(project, hidden, own=own),
            serial)
    return Page.of(body, CONTENT_TYPES[kind], variants, serial)


def _page_table(size: int) -> ByteLRU[str, Project]:
    """The table of the projects whose pages are kept, within C{size} bytes."""
    return ByteLRU(size, on_evict=_evicted)


@attrs.define(eq=False)
class RenderedPages:
    """
    The rendered pages of one L{Index}: its root pages, and its projects'
    pages within a budget of bytes.

    A project's pages are held by the L{Project} itself (L{Project.rendered}),
    so that a project the index replaced or forgot takes them along; the
    table here counts their bytes and orders the projects by use.

    @ivar _projects: C{projects()}: every project, in the root page's order.
    @ivar _status: C{status(name)}: a project's L{ProjectStatus}, or L{None}.
    @ivar provenance_url: gives a file's provenance link (PEP 740): part of
        the page kept, so serving it costs nothing more.
    """

    _file_url: Callable[[FileRecord], str]
    _projects: Callable[[], list[Project]]
    #: normalized name -> L{Project} whose pages are kept, least recently
    #: asked for first, within L{max_bytes}
    _recent: ByteLRU[str, Project] = attrs.field(alias="max_bytes", converter=_page_table)
    _status: Callable[[str], ProjectStatus | None] = attrs.field(kw_only=True, alias="status")
    advisories: AdvisoryPolicy = attrs.field(kw_only=True)
    provenance_url: links.ProvenanceURL = attrs.field(kw_only=True)
    #: the index's PEP 752 namespaces (its JSON pages at API 1.5), or
    #: L{None}: an index that serves none (API 1.4; a static export)
    namespaces: IndexNamespaces | None = attrs.field(kw_only=True)
    #: the journal's serial of each project, which its pages carry, or
    #: L{None}: pages without serials (a static export)
    serials: Serials | None = attrs.field(kw_only=True)
    _root: dict[str, Page] = attrs.field(factory=dict, init=False)
    #: bumped by L{listing_changed}: the composed views' root pages
    #: (L{pypid.core.indexes.composed}) are kept while it has not moved
    listing_serial: int = attrs.field(default=0, init=False)

    # -- reading -------------------------------------------------------------

    def root_page(self, kind: str) -> Page:
        """The rendered C{/simple/} page of C{kind}, with serials if there are."""
        page = self._root.get(kind)
        if page is None:
            pairs = [(p.name, p.display_name) for p in self._projects()]
            serials = self.serials
            last = serials.last if serials is not None else None
            body = (render.root_html(pairs) if kind == HTML
                    else render.root_json(pairs, served(self.namespaces) is not None,
                                          serials, last))
            page = self._root[kind] = Page.of(body, CONTENT_TYPES[kind], serial=last)
        return page

    def project_page(self, project: Project, kind: str, hidden: bool = False) -> Page:
        """
        The C{/simple/<project>/} page of a L{Project}, kept or rendered now
        (and kept). A quarantined project's lists no file (see L{full_page}).
        C{hidden}: the JSON page with the hidden namespace grants the project
        falls in, for their owners, kept beside the other.

        A page kept costs a dict lookup and an C{OrderedDict.move_to_end}: a
        fraction of a percent of serving it.
        """
        page: Page | None = project.rendered.get(kind)
        if page is not None and not hidden:
            # (False for a project the index no longer holds)
            self._recent.touch(project.name)
            return page
        key: Hashable = kind
        if hidden:
            if kind == HTML or self.namespaces is None or not self.namespaces.hides(
                    project.name):
                return self.project_page(project, kind)
            key = (kind, _HIDDEN)
            page = project.rendered.get(key)
            if page is not None:
                self._recent.touch(project.name)
                return page
        status = self._status(project.name)
        page = self._render(project, kind, status, status is None or not status.quarantined,
                            hidden)
        self.keep_page(project, key, page)
        return page

    def full_page(self, project: Project, kind: str) -> Page:
        """
        The C{/simple/<project>/} page with every file and namespace, a
        quarantined project's too, for its admins (then rendered at each call).
        """
        status = self._status(project.name)
        if status is None or not status.quarantined:
            return self.project_page(project, kind, hidden=True)
        return self._render(project, kind, status, True, hidden=True)

    def _render(self, project: Project, kind: str, status: ProjectStatus | None,
                with_files: bool, hidden: bool = False) -> Page:
        # (the versions its records have, unless the advisories hide some)
        advised = with_files and self.advisories.affects(project.name)
        return render_page(
            project.name, project.sorted_files() if with_files else [], self._file_url, kind,
            status, self.advisories if advised else None, self.provenance_url, self.namespaces,
            hidden, self.serials(project.name) if self.serials is not None else None,
            None if advised or not with_files else project.versions, own=True)

    def extra_page(self, project: Project, key: Hashable) -> Any:
        """
        A value another module kept with L{keep_page} under C{key} (L{Any}:
        its own), or L{None}; dropped and evicted with the project's pages.
        """
        value = project.rendered.get(key)
        if value is not None and page_bytes(value):
            self._recent.touch(project.name)
        return value

    def keep_page(self, project: Project, key: Hashable, value: object) -> None:
        """
        Keep C{value} of C{project} under C{key} until the project changes
        or its pages are evicted (least recently used first, down to
        L{max_bytes}; a project whose pages alone exceed it is not kept). A
        value that is no page (L{page_bytes} 0) is kept until the project changes.
        """
        kept = project.rendered
        kept[key] = value
        name = project.name
        holder = self._recent.peek(name)
        if holder is not None and holder is not project:
            # (an older Project of that name, which the index replaced)
            old = self._recent.pop(name)
            if old is not None:
                _evicted(name, old)
            holder = None
        size = sum(page_bytes(v) for v in kept.values())
        if holder is None and not size:
            return
        self._recent.put(name, project, size)

    @property
    def max_bytes(self) -> int:
        """
        The budget of the projects' rendered pages, body and gzipped body
        (C{[pypid] page_cache_size}; root pages not counted): 0 keeps none.
        """
        return self._recent.max_bytes

    @max_bytes.setter
    def max_bytes(self, size: int) -> None:
        self._recent.max_bytes = size

    @property
    def bytes(self) -> int:
        """The bytes the projects' kept pages count (at most L{max_bytes})."""
        return self._recent.bytes

    @property
    def kept_projects(self) -> int:
        """How many projects have pages kept."""
        return len(self._recent)

    # -- told by the index ---------------------------------------------------

    def project_changed(self, project: Project) -> None:
        """Forget every value kept of C{project}, and count the change (L{Project.changes})."""
        project.changes += 1
        project.rendered.clear()
        if self._recent.peek(project.name) is project:
            self._recent.pop(project.name)

    def listing_changed(self) -> None:
        """Forget the root pages (a project came, went or was renamed), and count it."""
        self.listing_serial += 1
        self._root.clear()

    def clear(self) -> None:
        """Forget every page (the index's whole content was replaced)."""
        for _, project in self._recent.items():
            project.rendered.clear()
        self._recent.clear()
        self._root.clear()

    def namespaces_changed(self) -> None:
        """
        Forget every page, the composed views' project lists too: the
        namespaces in force changed, and with them the JSON pages' API version.
        """
        self.clear()
        self.listing_serial += 1
