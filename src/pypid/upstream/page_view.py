"""
What clients see of the cached upstream pages: an upstream project's page
rendered as pypid's own (both forms, with file links to pypid), and the
files a page offers once the cooldown (C{min_age}) and the files kept here
are taken into account (a hosted project's page with the upstream files
C{merge} lets in is composed, L{pypid.core.indexes.composed}).

An upstream's project status (PEP 792) is carried by the pages it makes;
a project the upstream quarantined shows no file at all, so that nothing
the web side asks of a page offers one, and L{PageView.status} tells the
file routes to refuse the files kept here too.

The rendered pages are kept apart from the L{PageCache}'s entries, within
a budget of their own, and forgotten with them. They apply the index's
security advisories as the hosted pages do
(L{pypid.core.indexes.rendered_pages.advised_files}); what a page
I{offers} (L{PageView.shown}, L{PageView.listed}) stays every file, so
that a hidden release's file is still served by name, and an upstream's
own side (L{pypid.upstream.source.SourceSide}) reads the files unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.dists.model import FileRecord
from pypid.core.dists.variant_files import with_variant_files
from pypid.core.dists.version_order import page_order
from pypid.core.indexes import render
from pypid.core.indexes.links import ProvenanceURL, provenance_url_for
from pypid.core.indexes.namespace_api import served
from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.indexes.render import CONTENT_TYPES, HTML, Page
from pypid.core.indexes.rendered_pages import advised_files, page_bytes
from pypid.core.security.advisories import AdvisoryPolicy, no_advisories
from pypid.core.util.bounded import put_newest
from pypid.core.util.lru import ByteLRU
from pypid.core.util.units import counted
from pypid.upstream.cache import PageCache
from pypid.upstream.cached_page import CachedPage
from pypid.upstream.confusion import HostedIndex, UpstreamPolicy, merged
from pypid.upstream.kept import KeptFiles
from pypid.upstream.page_model import UpstreamFile, UpstreamPage

log = Logger()

#: How often, with a cooldown, what a cached page shows is worked out again.
RECHECK = 60.0

#: The most upstream projects whose rendered pages (and the files they show)
#: are kept; past it the oldest rendered is forgotten, and rendered again
#: from its cached entry when asked. Clients choose the names, so without
#: a cap this grew with every project ever asked for.
MAX_RENDERED = 2000

#: The most bytes of rendered upstream pages kept (all projects together): a
#: few big projects' pages are megabytes each, so the count alone is no bound.
RENDERED_MEMORY = 64 << 20

#: The most changes of an upstream file's hash remembered as logged.
MAX_CHANGES_LOGGED = 2000

#: C{file_url(file) -> str}: the link a page gives a file, as for hosted ones.
FileUrl = Callable[[FileRecord | UpstreamFile], str]


@attrs.define
class _Shown:
    """What clients see of one cached entry (its pages rendered so far), and since when."""

    entry: CachedPage
    files: dict[str, UpstreamFile]
    pages: dict[tuple[str, bool], Page]
    at: float


@attrs.define
class PageView:
    """
    The pages of the upstream cache as clients are answered them.

    @ivar _index: the hosted projects (a hosted file wins over an upstream one).
    @ivar _kept: the files kept here, whose hash wins over the page's.
    @ivar _advisories: what its rendered pages apply (none for an upstream's own side).
    """

    _policy: UpstreamPolicy
    _pages: PageCache
    _index: HostedIndex
    link: FileUrl = attrs.field(alias="file_url")
    _clock: IReactorTime
    _kept: KeptFiles
    # project -> what its entry shows, the oldest worked out first
    _rendered: ByteLRU[str, _Shown] = attrs.field(
        init=False, factory=lambda: ByteLRU(RENDERED_MEMORY, max_entries=MAX_RENDERED))
    # (filename, upstream sha256) whose change of hash was logged
    _changed: dict[tuple[str, str], bool] = attrs.field(init=False, factory=dict)
    # project -> the filenames the cooldown hid when last logged
    _hidden: dict[str, frozenset[str]] = attrs.field(init=False, factory=dict)
    # project -> the upstream status last logged as withholding its files
    _withheld: dict[str, ProjectStatus] = attrs.field(init=False, factory=dict)
    _advisories: AdvisoryPolicy = attrs.field(factory=no_advisories, kw_only=True,
                                              alias="advisories")
    #: the link its pages give a file's provenance (pypid's own copy); none
    #: for an upstream's own side, whose pages every index reading it shares
    _provenance_url: ProvenanceURL = attrs.field(
        factory=lambda: provenance_url_for(None), kw_only=True, alias="provenance_url")

    def __attrs_post_init__(self) -> None:
        # (a page the cache forgot is not kept alive by its rendered forms)
        self._pages.on_dropped(self._rendered.pop)

    def status(self, project: str) -> ProjectStatus | None:
        """The status the cached page of C{project} gives it (L{None}: active, or not cached)."""
        entry = self._pages.entries.get(project)
        return entry.page.status if entry is not None and entry.page is not None else None

    def listed(self, project: str, filename: str) -> UpstreamFile | None:
        """The upstream file C{filename} if a cached page of C{project} shows it."""
        entry = self._pages.entries.get(project)
        if entry is None or entry.page is None:
            return None
        found = self.shown(project, entry).get(filename)
        hosted = self._index.project(project)
        if found is not None and hosted is not None and not merged(hosted.files.values(), [found]):
            return None  # a hosted file wins
        return found

    def offered(self, project: str, entry: CachedPage) -> list[UpstreamFile]:
        """The upstream files C{entry} offers clients, but those a hosted file shadows."""
        shown = list(self.shown(project, entry).values())
        hosted = self._index.project(project)
        if hosted is not None:
            shown = list(merged(hosted.files.values(), shown))
        return shown

    def file_kept(self, record: FileRecord) -> None:
        """A file was kept: its page is kept past every other, and shows the kept file's hash."""
        self._pages.pin(record.project)
        memo = self._rendered.peek(record.project)
        if memo is not None:
            shown = memo.files.get(record.filename)
            if shown is not None and shown.sha256 != record.sha256:  # (see L{_as_kept})
                self._rendered.pop(record.project)

    def file_evicted(self, record: FileRecord) -> None:
        """A file was evicted: a page showing what was kept is made again from the listing."""
        memo = self._rendered.peek(record.project)
        if memo is not None and record.filename in memo.files:
            self._rendered.pop(record.project)

    def shown(self, project: str, entry: CachedPage) -> dict[str, UpstreamFile]:
        """
        The files of C{entry} clients see, by filename in page order (the
        same dict as long as they stay the same: a composed page's token).
        """
        return self._memo(project, entry).files

    def _memo(self, project: str, entry: CachedPage) -> _Shown:
        """
        The files of an entry clients see, and its rendered pages; worked
        out again for a new entry, and every minute with a cooldown (a file
        becomes visible once it is old enough, not only at a refresh).
        """
        memo = self._rendered.peek(project)
        now = self._clock.seconds()
        if (memo is None or memo.entry is not entry
                or (self._policy.min_age and now - memo.at >= RECHECK)):
            memo = _Shown(entry, self._shown(entry), {}, now)
            self._rendered.put(project, memo, 0, keep=True)
        return memo

    def rendered(self, project: str, entry: CachedPage, kind: str) -> Page:
        """C{entry}'s page of C{kind}, rendered with this view's links."""
        memo = self._memo(project, entry)
        # (a JSON page is kept by the API version it was rendered at: a
        # namespace coming into use, or the last going, changes it)
        namespaced = kind != HTML and self._namespaced()
        page = memo.pages.get((kind, namespaced))
        if page is None:
            page = memo.pages[kind, namespaced] = self._page(
                project, [(f, self.link(f)) for f in memo.files.values()], kind,
                entry.page.status if entry.page is not None else None, namespaced)
            # (counted where it stands; the page just rendered is kept, however big)
            self._rendered.put(project, memo, sum(page_bytes(p) for p in memo.pages.values()),
                               keep=True, move=False)
        return page

    def _page(self, project: str, files: list[tuple[FileRecord | UpstreamFile, str]],
              kind: str, status: ProjectStatus | None, namespaced: bool) -> Page:
        """
        A page of C{(file, link)} pairs in page order, the advisories applied,
        with the index-level file of each release whose variant wheels it
        lists (made of what it shows); its JSON form at API 1.5 when
        C{namespaced}, else 1.4.
        """
        shown, variants = with_variant_files(advised_files(self._advisories, project, files))
        provenance_url = self._provenance_url
        if kind == HTML:
            body = render.project_html(project, shown, status, provenance_url)
        else:
            # (the files in version order, as L{_shown} sorts them)
            versions = list(dict.fromkeys(f.version for f, _ in shown))
            # (at the API version of the index's own pages: 1.5 while a
            # namespace is in use, the project then in none, since a
            # reserved namespace is never asked upstream; else 1.4)
            body = render.project_json(project, shown, versions, status, provenance_url,
                                       None if namespaced else render.UNSERVED)
        return Page.of(body, CONTENT_TYPES[kind], variants)

    def _namespaced(self) -> bool:
        """Whether the index's JSON pages carry namespaces (API 1.5) now."""
        return served(self._index.rendered.namespaces) is not None

    def advisories_changed(self, projects: Iterable[str] | None) -> None:
        """
        The advisories or the rules changed for C{projects} (L{None}: every
        project): their rendered pages are dropped, to be rendered again when asked.
        """
        if projects is None:
            self._rendered.clear()
        for project in projects or ():
            self._rendered.pop(project)

    def _shown(self, entry: CachedPage) -> dict[str, UpstreamFile]:
        """The files of an entry clients see, by filename, in page order."""
        page = entry.page
        assert page is not None  # (entries without a page are never shown)
        if self._withholds(page):
            return {}
        kept, hidden = self._policy.visible(page, self._clock.seconds())
        names = frozenset(f.filename for f in hidden)
        if hidden and self._hidden.get(page.project) != names:
            # (a project forgotten here only logs its hidden files once more)
            put_newest(self._hidden, page.project, names, MAX_RENDERED)
            log.info("Hiding {files} of {project} uploaded upstream less than "
                     "{min_age:g} s ago (min_age): {names}", files=counted(len(hidden), "file"),
                     project=page.project, min_age=self._policy.min_age,
                     names=" ".join(f.filename for f in hidden))
        ordered = page_order(kept)
        return {f.filename: self._as_kept(f) for f in ordered}

    def _withholds(self, page: UpstreamPage) -> bool:
        """
        Whether the upstream quarantined C{page}'s project (PEP 792), so
        that it shows no file, kept ones included; logged once a status.
        """
        if not page.quarantined:
            if self._withheld.pop(page.project, None) is not None:
                log.info("The upstream no longer quarantines {project}: its files are "
                         "offered again", project=page.project)
            return False
        assert page.status is not None
        if self._withheld.get(page.project) != page.status:
            put_newest(self._withheld, page.project, page.status, MAX_RENDERED)
            log.warn("The upstream quarantines {project} ({reason}): none of its {count} "
                     "files is offered, nor any kept here", project=page.project,
                     reason=page.status.reason or "no reason given", count=len(page.files))
        return True

    def _as_kept(self, f: UpstreamFile) -> UpstreamFile:
        """
        A listed file as clients are shown it: when a file of that name is
        kept with other bytes than the page now gives, the kept file's hash,
        size and metadata, so that page and bytes always agree.

        The bytes checked and kept win over the upstream's new claim: a file
        that changes under its name is what a compromised or careless upstream
        does (the public index never reuses a filename), and following it would
        pass a replaced file to every client whose lock file did not pin it.
        Logged as an error once per new hash; an operator who trusts the new
        bytes removes the kept file from the cache's folder while pypid is stopped.
        """
        stored = self._kept.get(f.filename)
        if stored is None or stored.sha256 == f.sha256:
            return f
        key = (f.filename, f.sha256)
        if key not in self._changed:
            put_newest(self._changed, key, True, MAX_CHANGES_LOGGED)
            log.error("The upstream now gives {filename} the sha256 {new}, but the file kept "
                      "here has {old}: serving the kept file, as checked when it was "
                      "fetched (docs/operations.rst, \"A file that changes upstream\").",
                      filename=f.filename, new=f.sha256, old=stored.sha256)
        # (the page's provenance is of its bytes, not the kept ones: linked
        # only when the kept file has its own, L{UpstreamProvenance.get})
        return attrs.evolve(
            f, sha256=stored.sha256, size=stored.size, metadata_sha256=stored.metadata_sha256,
            provenance_url=f.provenance_url if stored.provenance_sha256 is not None else None)

