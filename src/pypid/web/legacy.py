"""
The legacy JSON API: C{/pypi/<project>/json} and
C{/pypi/<project>/<version>/json}, as tools written for the public index's
JSON API read it (the latest release and every release, or one release).

Under C{/NAME/} (issue 26) a named index answers of the project as its
first hosted source that holds it has it (its own files, then its bases'
in order), with that source's stored metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any
from urllib.parse import quote

import attrs
from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.core import legacy_info
from pypid.core.advisories import AdvisoryPolicy, no_advisories
from pypid.core.http_errors import NotFound
from pypid.core.index import Index, Project
from pypid.core.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.model import FileRecord
from pypid.core.names import is_valid_name, normalize
from pypid.core.render import Page
from pypid.core.views import Filters
from pypid.state.usage_log import UsageLog
from pypid.storage.interface import IStorage, StorageError
from pypid.web.access import Access
from pypid.web.respond import send_page, storage_unavailable
from pypid.web.routes import answer_errors, kept_page, requested_version

log = Logger()


@attrs.define(slots=False)
class LegacyJSON:
    """
    @ivar _index: the L{pypid.core.index.Index}.
    @ivar _storage: the L{pypid.storage.interface.IStorage}, for stored metadata.
    @ivar _access: the L{pypid.web.access.Access} gate.
    @ivar _base_url: the configured public URL, or L{None}.
    """

    _index: Index
    _storage: IStorage
    _access: Access
    #: C{file_url(record)}: a file's absolute link (these pages are not
    #: under C{/simple/<project>/}, so the index's relative links would not do)
    _file_url: Callable[[FileRecord], str]
    _base_url: str | None = None
    #: the index asked (C{default}: today's, at C{/pypi/})
    _name: str = attrs.field(kw_only=True, default=DEFAULT_INDEX)
    #: a named index's hosted sources in order, C{(index, storage)}; empty:
    #: C{_index} and C{_storage} alone
    _chain: tuple[tuple[Index, IStorage], ...] = attrs.field(kw_only=True, default=())
    #: a view's filters: what its pages do not list, its JSON does not either
    _filters: Filters | None = attrs.field(kw_only=True, default=None)
    #: the index's advisory policy: a release's advisories are its
    #: C{vulnerabilities} (issue 27)
    _advisories: AdvisoryPolicy = attrs.field(kw_only=True, factory=no_advisories)
    #: the index's download counts (issue 29): C{info.downloads}; L{None}: -1
    _usage: UsageLog | None = attrs.field(kw_only=True, default=None)

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
        if not is_valid_name(name) or not self._access.may_read(request, name, self._name):
            raise NotFound("no such project")
        index, storage = self._source_of(normalize(name))
        holder = index.project(normalize(name))
        sources = self._chain or ((index, storage),)
        if holder is None or not holder.files or any(
                source.quarantined(holder.name) for source, _ in sources):
            # (PEP 792: a quarantined project offers no file, here neither)
            raise NotFound("no such project")
        filters = self._filters if self._filters != Filters() else None
        project = _filtered(holder, filters) if filters is not None else holder
        if project is None:
            raise NotFound("no such project")
        shown = requested_version(version) if version is not None else None
        if project.name != name or shown != version:
            # Built from the normalized name and version only: no client text.
            suffix = f"{quote(shown)}/json" if shown is not None else "json"
            request.setResponseCode(301)
            request.setHeader(b"location", f"{self._prefix()}pypi/{project.name}/{suffix}".encode())
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Moved\n"
        # (a view's JSON is kept with its source's project, apart from the
        # source's own)
        key: tuple[Hashable, ...] = (("pypi-json", shown, self._name) if filters is not None
                                   else ("pypi-json", shown))
        if self._advisories.affects(holder.name):
            # (kept apart per index, and stale once a verdict may have moved)
            key = (*key, self._name, self._advisories.stamp)
        if self._usage is not None and index is self._index:
            # (kept while the counts and the day are the same)
            key = (*key, self._usage.book.stamp, self._usage.today)
        listed = project
        page = await kept_page(index, holder, key,
                               lambda: self._render_pypi_json(listed, shown, index, storage))
        return send_page(request, page)

    def _source_of(self, project: str) -> tuple[Index, IStorage]:
        """The first source holding files of C{project}: its index and storage."""
        for index, storage in self._chain:
            found = index.project(project)
            if found is not None and found.files:
                return index, storage
        return self._index, self._storage

    async def _render_pypi_json(self, project: Project, version: str | None,
                                index: Index, storage: IStorage) -> Page:
        """Render the legacy JSON of a release (the latest, when C{version} is L{None})."""
        releases = legacy_info.releases(project, self._file_url)
        shown = version if version is not None else project.latest_version()
        if shown not in releases:
            raise NotFound("no such version")
        info = await self._info(releases[shown], storage)
        usage = self._usage
        downloads = (usage.book.summary(project.files, usage.today)
                     if usage is not None and index is self._index else None)
        body = legacy_info.render_json(project, releases, shown, info, index.serial,
                                       version is None, self._base_url,
                                       self._advisories.verdict(project.name, shown),
                                       downloads)
        return Page.of(body, b"application/json")

    async def _info(self, files: list[tuple[FileRecord, str]],
                    storage: IStorage) -> dict[str, Any]:
        """
        The release's metadata, read from its stored .metadata (wheels
        first); a file whose metadata is missing is passed over.
        """
        for record in legacy_info.info_sources(files):
            try:
                raw = await storage.read_metadata(record)
            except FileNotFoundError:
                log.warn("The stored metadata of {filename} is missing", filename=record.filename)
                continue
            except StorageError as e:
                log.error("Cannot read the metadata of {filename}: {error}",
                          filename=record.filename, error=str(e))
                raise storage_unavailable(e)
            return legacy_info.info_from(raw, files)
        return legacy_info.info_from(None, files)

    def _prefix(self) -> str:
        """Where this index's paths start (C{/}, or C{/NAME/}), under the base URL."""
        base = self._base_url or "/"
        return base if self._name == DEFAULT_INDEX else f"{base}{self._name}/"


def _filtered(project: Project, filters: Filters) -> Project | None:
    """
    C{project} as a view lists it: the files its filters let through (a
    view's dates, pre-releases and yanked files; hosted files have no
    cooldown), or L{None} when it lists no file of it.
    """
    if not filters.admits_project(project.name):
        return None
    # (the time matters to upstream files alone, which this JSON never lists)
    kept = {f.filename: f for f in project.files.values() if filters.admits(f, False, 0.0)}
    if not kept:
        return None
    return Project(project.name, project.display_name, kept)
