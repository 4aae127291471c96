"""
The legacy JSON API: C{/pypi/<project>/json} and C{/pypi/<project>/<version>/json}, as tools
written for the public index's JSON API read it (the latest release and every release, or one).

Every index answers of a project what its simple pages list: its hosted sources composed (its
own files, then its bases', a view's filters and date applied), each file's metadata read from
the source that holds it.

A project the index lists only through its upstreams (Dependabot and Renovate read this route)
is answered from the upstreams' cached pages, brought up to date as its simple page brings
them, through the same view (filters, quarantines, advisories): the files with their digests,
C{requires_python}, C{yanked} and C{upload_time} where the upstream gives it; C{info} holds
what the page says, as no metadata is read from the upstream for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import quote

import attrs
from klein import Klein
from twisted.internet.defer import DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.server import Request

from pypid.core.access.origins import origin_of
from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import is_valid_name, normalize
from pypid.core.formats import legacy_info
from pypid.core.indexes import render
from pypid.core.indexes.composed import ComposedIndex
from pypid.core.indexes.composition import ChainSource, Filters, compose
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.indexes.project import Project
from pypid.core.indexes.render import LegacyFile, Page
from pypid.core.indexes.rendered_pages import serial_over
from pypid.core.records.audit_chain import BEGINNING
from pypid.core.security.advisories import (
    AdvisoryPolicy,
    Verdict,
    no_advisories,
    vulnerability_json,
)
from pypid.core.util.bounded import put_newest
from pypid.core.util.http_errors import NotFound
from pypid.state.usage_log import UsageLog
from pypid.storage.base.interface import IStorage, StorageError
from pypid.web.identity.gates import Gates
from pypid.web.server.respond import send_page, storage_unavailable
from pypid.web.server.routes import answer_errors, requested_version
from pypid.web.serving.upstream_pages import bring_up_to_date, upstream_failure

log = Logger()

#: The most upstream projects' JSON kept rendered (L{LegacyJSON._rendered}).
MAX_RENDERED = 256

#: What L{LegacyJSON._listed} finds: the project as listed, the first source's project and index
#: (where the JSON is kept), where each file is stored, and each source's project (or L{None}).
_Listed = tuple[Project, Project, Index, Callable[[FileRecord], IStorage],
                tuple[Project | None, ...]]


@attrs.define(slots=False)
class LegacyJSON:
    """The legacy JSON routes of one index."""

    _access: Gates
    #: C{file_url(record)}: a file's absolute link (these pages are not
    #: under C{/simple/<project>/}, so the index's relative links would not do)
    _file_url: Callable[[FileRecord], str]
    _base_url: str | None = None
    #: the index asked (C{default}: today's, at C{/pypi/})
    _name: str = attrs.field(kw_only=True, default=DEFAULT_INDEX)
    #: the index's hosted sources in order, C{(index, storage)} (C{_usage}
    #: counts the first's downloads); empty: it reads upstreams alone
    _chain: tuple[tuple[Index, IStorage], ...] = attrs.field(kw_only=True, default=())
    #: a view's filters: what its pages do not list, its JSON does not either
    _filters: Filters | None = attrs.field(kw_only=True, default=None)
    #: the index's advisory policy: a release's advisories are its C{vulnerabilities}
    _advisories: AdvisoryPolicy = attrs.field(kw_only=True, factory=no_advisories)
    #: the index's download counts: C{info.downloads}; L{None}: -1
    _usage: UsageLog | None = attrs.field(kw_only=True, default=None)
    #: the index's view, whose upstreams answer for a project no hosted source holds
    _composed: ComposedIndex = attrs.field(kw_only=True)
    #: the index's upstreams, by the name its order gives them (SourceSide)
    _sides: Mapping[str, Any] = attrs.field(kw_only=True, factory=dict)
    _clock: IReactorTime = attrs.field(kw_only=True)
    #: the JSON of upstream projects rendered, by C{(project, version)}: C{(what it was made
    #: of, until when, the page)}, bounded (names are the clients')
    _rendered: dict[tuple[str, str | None, str], tuple[Hashable, float | None, Page]] = attrs.field(
        init=False, factory=dict)

    app = Klein()
    answer_errors(app)

    @app.route("/pypi/<string:name>/json", methods=["GET", "HEAD"])
    async def project_json(self, request: IRequest, name: str) -> bytes:
        """C{/pypi/<project>/json}: the latest release, and every release."""
        return await self._pypi_json(request, name, None)

    @app.route("/pypi/<string:name>/<string:version>/json", methods=["GET", "HEAD"])
    async def release_json(self, request: IRequest, name: str, version: str) -> bytes:
        """C{/pypi/<project>/<version>/json}: one release."""
        return await self._pypi_json(request, name, version)

    async def _pypi_json(self, request: IRequest, name: str, version: str | None) -> bytes:
        gate = self._access.gate_read(request, self._name)
        if gate is not None:
            await gate
        if not is_valid_name(name) or not self._access.reader(request).reads(name, self._name):
            raise NotFound("no such project")
        found = self._listed(normalize(name))
        if found is None:
            if self._sides:
                return await self._upstream_json(request, normalize(name), name, version)
            # (PEP 792: a quarantined project offers no file, here neither)
            raise NotFound("no such project")
        project, holder, index, storage_of, held = found
        shown = requested_version(version) if version is not None else None
        if project.name != name or shown != version:
            # Built from the normalized name and version only: no client text.
            return self._moved(request, project.name, shown)
        # (an index's JSON composed of several sources, or a view's, is kept with its first
        # source's project, apart from that source's own; what moves without the project is
        # the kept page's version, not part of its key: _kept_page)
        root, file_url = self._links(request)
        key: tuple[Hashable, ...] = ("pypi-json", shown, root)
        moves: tuple[Hashable, ...] = ()
        if project is not holder:
            moves = tuple((id(p), p.changes) if p is not None else None for p in held)
        if self._advisories.affects(holder.name):
            # (stale once a verdict may have moved)
            moves = (*moves, self._advisories.stamp)
        if moves:
            # (kept apart per index: another index's sources or advisories)
            key = (*key, self._name)
        if self._usage is not None and index is self._chain[0][0]:
            # (kept while the counts and the day are the same)
            moves = (*moves, self._usage.book.stamp, self._usage.today)
        page = await _kept_page(index, holder, key,
                               lambda: self._render_pypi_json(project, shown, index, storage_of,
                                                              root, file_url), moves)
        return send_page(request, page)

    async def _upstream_json(self, request: IRequest, project: str, name: str,
                             version: str | None) -> bytes:
        """The legacy JSON of a project the index lists through its upstreams alone (module)."""
        composed, clock = self._composed, self._clock
        if composed.quarantined(project):
            raise NotFound("no such project")
        sides = [self._sides[s.name] for s in composed.upstreams(project) if s.name in self._sides]
        if not sides:
            raise NotFound("no such project")
        shown = requested_version(version) if version is not None else None
        if project != name or shown != version:
            # (before anything is asked, as the simple page redirects)
            return self._moved(request, project, shown)
        _, waits = bring_up_to_date(cast(Request, request), sides, project)
        results = await DeferredList(waits, consumeErrors=True)
        policy = self._advisories
        # (kept rendered while the pages it is made of, the verdicts and a
        # cooldown's next change stay: each page's shown files are the same
        # object as long as they are, so nothing is composed to tell)
        made_of: Hashable = (tuple((side.cached(project) or (None,))[0] for side in sides),
                             policy.stamp,
                             # (and the files kept since: their digests are complete)
                             tuple(tuple(side.source.kept.of_project(project))
                                   for side in sides))
        now = clock.seconds()
        root, file_url = self._links(request)
        kept = self._rendered.get((project, version, root))
        if kept is not None and kept[0] == made_of and (kept[1] is None or now < kept[1]):
            return send_page(request, kept[2])
        composition = composed.listing(project, now)
        if composition is not None and composition.status is not None \
                and composition.status.quarantined:
            raise NotFound("this project is quarantined upstream: none of its files is served")
        if composition is None or not composition.files:
            upstream_failure([value for ok, value in results if not ok])
            raise NotFound("no such project")
        # (as the page lists them: a hidden release left out, a denied one kept, its
        # vulnerabilities named; a file the cache keeps with every digest it took of it)
        files = [_digested(f, self._upstream_files(chain.name))
                 for f, chain in composition.files
                 if not _left_off(policy.verdict(project, f.version))]
        if not files:
            raise NotFound("no such project")
        found = legacy_info.listed_releases(cast("list[LegacyFile]", files), file_url)
        release = shown if shown is not None else legacy_info.latest_listed(found)
        if release is None or release not in found:
            raise NotFound("no such version")
        verdict = policy.verdict(project, release)
        sources = {f.filename: chain.name for f, chain in composition.files}
        metadata = await self._release_metadata(found[release], sources)
        body = render.pypi_json(
            project, project, legacy_info.info_from(metadata, found[release]), found, release, 0,
            include_releases=version is None, base_url=root,
            vulnerabilities=([vulnerability_json(a) for a in verdict.advisories]
                             if verdict is not None else []))
        page = Page.of(body, b"application/json")
        put_newest(self._rendered, (project, version, root),
                   (made_of, composition.recheck_at, page), MAX_RENDERED)
        return send_page(request, page)

    def _upstream_files(self, name: str) -> Any:
        """The L{pypid.upstream.downloads.UpstreamFiles} of the upstream C{name}, or L{None}."""
        side = self._sides.get(name)
        return None if side is None else side.source.files

    async def _release_metadata(self, files: Sequence[tuple[Any, str]],
                                sources: Mapping[str, str]) -> bytes | None:
        """
        The core metadata of an upstream release (for C{info}): a wheel's first, from the cache
        or the upstream's C{.metadata} (PEP 658) as a client's would come; L{None} if none can be.
        """
        for listed, _ in sorted(files, key=lambda f: not f[0].filename.endswith(".whl")):
            upstream_files = self._upstream_files(sources.get(listed.filename, ""))
            if upstream_files is None or listed.metadata_sha256 is None:
                continue
            try:
                data = await upstream_files.metadata(getattr(listed, "file", listed))
            except Exception as e:
                # (an upstream that fails it: info keeps what the page says)
                log.info("No metadata of {filename} for the legacy JSON: {error}",
                         filename=listed.filename, error=str(e))
                continue
            if data is not None:
                return cast(bytes, data)
        return None

    def _moved(self, request: IRequest, project: str, shown: str | None) -> bytes:
        """The 301 to the JSON of the normalized C{project} (and C{shown}): no client text."""
        suffix = f"{quote(shown)}/json" if shown is not None else "json"
        request.setResponseCode(301)
        request.setHeader(b"location", f"{self._prefix()}pypi/{project}/{suffix}".encode())
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"Moved\n"

    def _listed(self, name: str) -> _Listed | None:
        """
        The normalized project C{name} as the index's pages list it, with the first source that
        holds it (whose pages keep the JSON) and where each file is stored; L{None} for no file.
        """
        chain = self._chain
        if not chain:
            # (an index that reads upstreams alone: none holds it here)
            return None
        held = tuple(index.project(name) for index, _ in chain)
        first = next((i for i, p in enumerate(held) if p is not None), None)
        if first is None:
            return None
        holder = held[first]
        assert holder is not None
        index, storage = chain[first]
        if len(chain) == 1 and self._filters is None:
            # (one source, nothing filtered: its project as it is)
            if not holder.files or index.statuses.quarantined(name):
                return None
            return holder, holder, index, lambda record: storage, held
        filters = self._filters or Filters()
        if not filters.admits_project(name):
            return None
        order = tuple(ChainSource(str(i), hosted=source) for i, (source, _) in enumerate(chain))
        composition = compose(order, name, filters, 0.0)
        if not composition.files:
            return None
        # (a hosted source's files are FileRecords)
        files = {f.filename: cast(FileRecord, f) for f, _ in composition.files}
        stored = {f.filename: chain[int(source.name)][1] for f, source in composition.files}
        listed = Project(holder.name, holder.display_name, files)
        return listed, holder, index, lambda record: stored[record.filename], held

    async def _render_pypi_json(self, project: Project, version: str | None,
                                index: Index, storage_of: Callable[[FileRecord], IStorage],
                                root: str, file_url: Callable[[FileRecord], str]) -> Page:
        """Render the legacy JSON of a release (L{None}: the latest), its URLs under C{root}."""
        releases = legacy_info.releases(project, file_url)
        shown = version if version is not None else project.latest_version()
        if shown not in releases:
            raise NotFound("no such version")
        info = await self._info(releases[shown], storage_of)
        usage = self._usage
        downloads = (usage.book.summary(project.files, usage.today)
                     if usage is not None and index is self._chain[0][0] else None)
        # (the last of its hosted sources': an index with bases, a view)
        serial = serial_over((source.rendered.serials for source, _ in self._chain),
                             project.name) or BEGINNING
        body = legacy_info.render_json(project, releases, shown, info, serial,
                                       version is None, root + "/" if root else None,
                                       self._advisories.verdict(project.name, shown),
                                       downloads)
        return Page.of(body, b"application/json", serial=serial)

    async def _info(self, files: list[tuple[FileRecord, str]],
                    storage_of: Callable[[FileRecord], IStorage]) -> dict[str, Any]:
        """The release's metadata, from its stored .metadata (wheels first; missing: skipped)."""
        for record in legacy_info.info_sources(files):
            try:
                raw = await storage_of(record).read_metadata(record)
            except FileNotFoundError:
                log.warn("The stored metadata of {filename} is missing", filename=record.filename)
                continue
            except StorageError as e:
                log.error("Cannot read the metadata of {filename}: {error}",
                          filename=record.filename, error=str(e))
                raise storage_unavailable(e)
            return legacy_info.info_from(raw, files)
        return legacy_info.info_from(None, files)

    def _links(self, request: IRequest) -> tuple[str, Callable[[FileRecord], str]]:
        """
        Where this JSON's URLs start (scheme and host, no trailing slash), and its files' URLs:
        absolute, as the public index gives them, under the base URL, else under the origin the
        request reached the server by; root-relative (C{""}) for a C{Host} that is no host.
        """
        if self._base_url:
            return self._base_url.rstrip("/"), self._file_url
        origin = origin_of(request.getHeader(b"host"), request.isSecure())
        if origin is None:
            return "", self._file_url
        relative = self._file_url
        return origin, lambda record: origin + relative(record)

    def _prefix(self) -> str:
        """Where this index's paths start (C{/}, or C{/NAME/}), under the base URL."""
        base = self._base_url or "/"
        return base if self._name == DEFAULT_INDEX else f"{base}{self._name}/"


async def _kept_page(index: Index, project: Project, key: tuple[Hashable, ...],
                     render_page: Callable[[], Awaitable[Page]],
                     version: Hashable = None) -> Page:
    """
    The page C{key} about C{project}: rendered by C{render_page()} once, then kept with the
    project's index pages until the project changes (one rendered while the index changed is
    not kept). C{version}: what else the page shows that moves without the project (download
    counts, the day, advisories, another source's files): one of another version is rendered
    again in its place, so a page that moves every few seconds takes one place, where a key
    holding the version would leave every earlier one in the page budget.
    """
    kept = index.rendered.extra_page(project, key)
    if kept is not None and kept[1] == version:
        page: Page = kept[0]
        return page
    serial = index.serial
    page = await render_page()
    if index.serial == serial:
        index.rendered.keep_page(project, key, (page, version))
    return page


@attrs.frozen
class _Digested:
    """
    An upstream file as the legacy JSON lists it, with the md5 and BLAKE2b-256 the cache took
    of it (the upstream's pages give sha256 alone); every other attribute is the file's.
    """

    file: Any
    md5: str | None
    blake2_256: str | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


def _digested(listed: Any, upstream_files: Any) -> Any:
    """C{listed} with the digests of its kept copy, if the cache keeps one."""
    kept = None if upstream_files is None else upstream_files.kept(listed.filename)
    if kept is None or kept.sha256 != listed.sha256:
        return listed
    return _Digested(listed, kept.md5, kept.blake2_256)


def _left_off(verdict: Verdict | None) -> bool:
    """Whether the pages leave off a release of this verdict: hidden, not denied (yanked)."""
    return verdict is not None and verdict.hides and not verdict.denies
