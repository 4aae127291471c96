"""
The upkeep of the upstream cache, apart from serving clients: what an
administrator asks (a project's page fetched again now, the files a
requirements file pins fetched in advance, a remembered quarantine
released), as one index sees the
upstream (its hosted projects are never asked for). The cache's state in
the snapshot is the upstream's own (L{pypid.upstream.source}).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
from twisted.logger import Logger

from pypid.storage.interface import StorageError
from pypid.upstream.cache import Offline, PageCache
from pypid.upstream.cached_page import CachedPage
from pypid.upstream.downloads import DownloadsBusy, UpstreamFiles
from pypid.upstream.fetch import UpstreamError, UpstreamNotFound
from pypid.upstream.kept import KeptFiles
from pypid.upstream.page_view import PageView
from pypid.upstream.project_rules import ProjectRules
from pypid.upstream.quarantines import Quarantine
from pypid.upstream.requirements import Pin, select

log = Logger()


@attrs.define
class CacheUpkeep:
    """
    @ivar _rules: what may be asked upstream.
    @ivar _pages: the cached upstream pages.
    @ivar _view: the files each page offers clients.
    @ivar _files: fetches and keeps files.
    @ivar _kept: the records of the files kept.
    """

    _rules: ProjectRules
    _pages: PageCache
    _view: PageView
    _files: UpstreamFiles
    _kept: KeptFiles

    async def refresh(self, project: str) -> CachedPage:
        """
        Fetch a project's page again now (an administrator asked).

        @return: the new L{CachedPage}.
        @raise UpstreamError: the upstream failed (the old page stays).
        """
        return await self._pages.refresh(project)

    def quarantine(self, project: str) -> Quarantine | None:
        """The quarantine remembered of C{project} (L{pypid.upstream.quarantines}), or L{None}."""
        return self._pages.quarantines.get(project)

    def release(self, project: str) -> Quarantine | None:
        """
        Forget the quarantine remembered of C{project}, which the upstream
        removed since (an admin asked): L{PageCache.release}.
        """
        return self._pages.release(project)

    async def precache(self, pins: Iterable[Pin]) -> list[dict[str, str]]:
        """
        Fetch into the cache every file the pins select (and with it its
        metadata), checking hashes as for any download.

        @return: a report: one dict per project or file, with C{status}
            C{cached} (fetched now), C{kept} (cached before), C{refused},
            C{missing} or C{failed}, and a C{reason} for the last three.
        """
        report: list[dict[str, str]] = []
        for pin in pins:
            decision = self._rules.decide(pin.project)
            if not decision.allowed:
                report.append({"project": pin.project, "status": "refused",
                               "reason": decision.reason})
                continue
            try:
                entry, _ = await self._pages.get(pin.project)
            except (UpstreamError, Offline) as e:
                report.append({"project": pin.project, "status": "failed",
                               "reason": str(e) or "the server is offline"})
                continue
            if entry.page is None:
                report.append({"project": pin.project, "status": "missing",
                               "reason": "the upstream has no such project"})
                continue
            chosen = select(pin, self._view.offered(pin.project, entry))
            if not chosen:
                report.append({"project": pin.project, "status": "missing",
                               "reason": "no upstream file matches "
                               + (f"version {pin.version}" if pin.version else "it")})
                continue
            for f in chosen:
                known = f.filename in self._kept
                self._files.pin(f.filename)
                try:
                    await self._files.fetch(f)
                except (UpstreamError, UpstreamNotFound, StorageError, Offline,
                        DownloadsBusy) as e:
                    report.append({"project": pin.project, "filename": f.filename,
                                   "status": "failed", "reason": str(e)})
                    continue
                report.append({"project": pin.project, "filename": f.filename,
                               "status": "kept" if known else "cached"})
        return report
