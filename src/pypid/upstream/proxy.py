"""
Serving projects that are not hosted here from the upstream index.

In C{cache} mode an upstream project's page is fetched (one request per
miss, stale pages while refreshing), shown as pypid's own page in both
forms with file links to pypid, and a file is fetched on its first
download, checked against the page's sha256 (and size), kept in the cache
storage, and served from there ever after.

L{UpstreamProxy} is what the rest of the daemon holds: an upstream
(L{pypid.upstream.source.UpstreamSource}, shared by every index that reads
it) seen from one hosted index: the rules against what is hosted there and
what its clients see of the pages; with the files and the cache's upkeep
an administrator asks for (never for a project hosted there).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from pypid.core.indexes.links import ProvenanceURL, provenance_url_for
from pypid.core.security.advisories import AdvisoryPolicy, no_advisories
from pypid.storage.base.interface import StorageError
from pypid.upstream.cache import Offline
from pypid.upstream.cached_page import CachedPage
from pypid.upstream.confusion import Decision, HostedIndex, ProjectRules
from pypid.upstream.downloads import DownloadsBusy, UpstreamFiles
from pypid.upstream.fetch import UpstreamError, UpstreamNotFound
from pypid.upstream.page_view import FileUrl, PageView
from pypid.upstream.quarantines import Quarantine
from pypid.upstream.requirements import Pin, select
from pypid.upstream.source import UpstreamSource


@attrs.define
class UpstreamProxy:
    """
    An upstream seen from one hosted index.

    @ivar pages: what clients of this index see of its pages.
    """

    source: UpstreamSource
    _rules: ProjectRules
    pages: PageView

    @classmethod
    def create(cls, source: UpstreamSource, hosted: HostedIndex,
               file_url: FileUrl, advisories: AdvisoryPolicy | None = None,
               provenance_url: ProvenanceURL | None = None) -> UpstreamProxy:
        """
        C{source} as the index C{hosted} sees it, complete.

        @param advisories: what its pages of the upstream's projects apply.
        @param provenance_url: the link its pages give a file's provenance.
        """
        rules = ProjectRules(source.mode, source.policy, hosted)
        view = PageView(source.policy, source.pages, hosted, file_url, source.clock,
                        source.kept, advisories=advisories or no_advisories(),
                        provenance_url=provenance_url or provenance_url_for(None))
        source.watch(view)
        return cls(source, rules, view)

    @property
    def files(self) -> UpstreamFiles:
        """The files: fetched on their first download, checked, kept."""
        return self.source.files

    @property
    def mode(self) -> str:
        """C{none}, C{redirect} or C{cache}."""
        return self._rules.mode

    def decide(self, name: str) -> Decision:
        """May the upstream be asked about C{name}? (what is hosted here is not)"""
        return self._rules.decide(name)

    async def refresh(self, project: str) -> CachedPage:
        """
        Fetch a project's page again now (an administrator asked).

        @raise UpstreamError: the upstream failed (the old page stays).
        """
        return await self.source.pages.refresh(project)

    def quarantine(self, project: str) -> Quarantine | None:
        """The quarantine remembered of C{project} (L{pypid.upstream.quarantines}), or L{None}."""
        return self.source.pages.quarantines.get(project)

    def release(self, project: str) -> Quarantine | None:
        """Forget the quarantine remembered of C{project} (L{PageCache.release})."""
        return self.source.pages.release(project)

    async def precache(self, pins: Iterable[Pin]) -> list[dict[str, str]]:
        """
        Fetch into the cache every file the pins select, checking hashes as
        for any download.

        @return: one dict per project or file, with C{status} C{cached},
            C{kept}, C{refused}, C{missing} or C{failed}, and a C{reason}
            for the last three.
        """
        report: list[dict[str, str]] = []
        for pin in pins:
            decision = self._rules.decide(pin.project)
            if not decision.allowed:
                report.append({"project": pin.project, "status": "refused",
                               "reason": decision.reason})
                continue
            try:
                entry, _ = await self.source.pages.get(pin.project)
            except (UpstreamError, Offline) as e:
                report.append({"project": pin.project, "status": "failed",
                               "reason": str(e) or "the server is offline"})
                continue
            if entry.page is None:
                report.append({"project": pin.project, "status": "missing",
                               "reason": "the upstream has no such project"})
                continue
            chosen = select(pin, self.pages.offered(pin.project, entry))
            if not chosen:
                report.append({"project": pin.project, "status": "missing",
                               "reason": "no upstream file matches "
                               + (f"version {pin.version}" if pin.version else "it")})
                continue
            files = self.source.files
            for f in chosen:
                known = f.filename in self.source.kept
                files.pin(f.filename)
                try:
                    await files.fetch(f)
                except (UpstreamError, UpstreamNotFound, StorageError, Offline, DownloadsBusy) as e:
                    report.append({"project": pin.project, "filename": f.filename,
                                   "status": "failed", "reason": str(e)})
                    continue
                report.append({"project": pin.project, "filename": f.filename,
                               "status": "kept" if known else "cached"})
        return report
