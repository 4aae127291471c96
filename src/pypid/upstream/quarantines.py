"""
The quarantines an upstream declared (PEP 792), remembered past the
project's removal.

The public index quarantines a project reported as malware, then removes
it: its page answers 404 (or an upstream answers an empty page with no
status). Were the cache to take that answer as it comes, it would forget
the quarantine with the page, and the project would be looked up afresh:
a later upstream of a chain that has a project of that name would have
its files listed (and served) in its place, and the page would say
nothing of why the files are gone. So a quarantine, once seen, is kept
here until the upstream lists files of the project again without one
(its own verdict that they may be served), or an admin releases it
(C{POST /api/upstream/<project>/release}); in the meantime the cache keeps
a page with no file that carries the quarantine (L{Quarantines.seen}), so
every page, composition and file route reads it as the upstream's latest
word. It is kept with the cache's saved state, so a restart keeps it.

The files kept here are never served by this memory alone: a file is
served only while a cached page lists it (L{pypid.web.serving.upstream_pages}),
and a quarantined page lists none.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
from twisted.logger import Logger

from pypid.core.indexes.project_status import ProjectStatus
from pypid.core.util.bounded import put_newest
from pypid.upstream.page_model import UpstreamPage
from pypid.upstream.parser import upstream_status

log = Logger()

#: The most quarantines remembered (the oldest seen go first): they come
#: from the upstream, one per quarantined project a client asked about,
#: which is rare. Past the cap the oldest is forgotten: its removed
#: project's kept files stay unserved (no page of that upstream lists
#: them), but its page no longer says why, and a later upstream of a chain
#: may list a project of that name again.
MAX_QUARANTINES = 20000


class StillQuarantined(Exception):
    """The upstream's latest page itself quarantines the project: only the upstream lifts it."""


@attrs.frozen
class Quarantine:
    """
    One project's quarantine upstream, as remembered.

    @ivar page: the page kept in the cache in its place once the upstream
        removed the project: no file, the quarantine as its status, the
        name as the upstream spelt it.
    @ivar since: when the quarantine was first seen (POSIX time).
    @ivar removed: whether the upstream's latest answer no longer says it
        (the project removed, or its page emptied): the quarantine is then
        pypid's memory, which an admin may release.
    """

    page: UpstreamPage
    since: float
    removed: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, for the cache's saved state."""
        status = self.page.status
        assert status is not None  # (only quarantines are remembered)
        return {"name": self.page.name, "status": status.status, "reason": status.reason,
                "since": self.since, "removed": self.removed}

    @classmethod
    def from_json(cls, project: str, data: Any) -> Quarantine:
        """
        What L{to_json} wrote (parsed JSON, not checked yet).

        @raise ValueError: it is not a quarantine.
        """
        status = upstream_status(data.get("status"), data.get("reason"))
        if status is None or not status.quarantined:
            raise ValueError("not a quarantine")
        name = data.get("name")
        return cls(withheld(project, name if isinstance(name, str) and name else project,
                            status), float(data["since"]), data.get("removed") is True)


def withheld(project: str, name: str, status: ProjectStatus | None) -> UpstreamPage:
    """The page a remembered quarantine keeps in the cache: no file, C{status}."""
    return UpstreamPage(project=project, name=name, status=status)


@attrs.define
class Quarantines:
    """
    The projects an upstream quarantined, by normalized name, the oldest
    seen first (at most L{MAX_QUARANTINES}).
    """

    _known: dict[str, Quarantine] = attrs.field(factory=dict)
    #: moves at every quarantine remembered, changed or forgotten (the
    #: cache's state is saved again)
    changes: int = 0

    def __len__(self) -> int:
        return len(self._known)

    def __iter__(self) -> Iterator[tuple[str, Quarantine]]:
        """C{(project, Quarantine)}, the oldest seen first."""
        return iter(self._known.items())

    def get(self, project: str) -> Quarantine | None:
        """The quarantine remembered of C{project}, or L{None}."""
        return self._known.get(project)

    def seen(self, project: str, page: UpstreamPage | None, now: float) -> UpstreamPage | None:
        """
        The upstream answered C{page} for C{project} (L{None}: no such
        project): the page the cache keeps for it. A quarantine is
        remembered; a page listing files without one forgets it; anything
        else (no project, a page with no file) while one is remembered is
        answered the remembered page.
        """
        if page is not None and page.quarantined:
            known = self._known.get(project)
            kept = withheld(project, page.name, page.status)
            if known is None or known.page != kept or known.removed:
                self._remember(project, Quarantine(
                    kept, known.since if known is not None else now))
            return page
        known = self._known.get(project)
        if known is None:
            return page
        # (variant wheels whose data is not read yet are listed upstream all the same)
        if page is not None and (page.files or page.variant_wheels):
            del self._known[project]
            self.changes += 1
            log.info("The upstream lists files of {project} again without a quarantine: "
                     "its quarantine is lifted", project=project)
            return page
        if not known.removed:
            status = known.page.status
            log.warn("The upstream no longer lists {project}, which it quarantined ({reason}): "
                     "it stays quarantined here, none of its files served, until the upstream "
                     "lists its files again or an admin releases it", project=project,
                     reason=(status.reason if status is not None else None) or "no reason given")
            self._remember(project, attrs.evolve(known, removed=True))
        return known.page

    def release(self, project: str) -> Quarantine | None:
        """
        Forget C{project}'s quarantine (an admin asked): it, or L{None}
        when none is remembered.

        @raise StillQuarantined: the upstream's latest page quarantines it.
        """
        known = self._known.get(project)
        if known is None:
            return None
        if not known.removed:
            raise StillQuarantined(project)
        del self._known[project]
        self.changes += 1
        return known

    def _remember(self, project: str, quarantine: Quarantine) -> None:
        put_newest(self._known, project, quarantine, MAX_QUARANTINES)
        self.changes += 1

    def to_json(self) -> dict[str, Any]:
        """The quarantines, JSON-ready, for the cache's saved state."""
        return {project: quarantine.to_json() for project, quarantine in self._known.items()}

    def load_json(self, data: object) -> None:
        """Take back the quarantines of a saved state (unreadable ones are skipped, logged)."""
        if not isinstance(data, dict):
            return
        for project, value in data.items():
            try:
                quarantine = Quarantine.from_json(project, value)
            except (AttributeError, KeyError, TypeError, ValueError) as e:
                log.warn("Ignoring the remembered upstream quarantine of {project}: {error}",
                         project=project, error=str(e))
                continue
            put_newest(self._known, project, quarantine, MAX_QUARANTINES)
