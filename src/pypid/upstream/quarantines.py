"""
What the cache holds of a removal upstream: the quarantines an upstream
declared (PEP 792), remembered past the project's removal (L{Quarantines});
and what a fetch says is gone, held until a later fetch says it again
(L{HeldRemovals}): one transient 404, one page served short by an
upstream's replica, or one page without its quarantine, is not a takedown.

The public index quarantines a project reported as malware, then removes
it: its page answers 404 (or an upstream answers an empty page with no
status). Were the cache to take that answer as it comes, it would forget
the quarantine with the page: a later upstream of a chain that has a
project of that name would have its files listed (and served) in its
place, and the page would say nothing of why the files are gone. So a
quarantine, once seen, is kept (in the cache's saved state too) until the
upstream lists files of the project again without one, or an admin
releases it; meanwhile the cache keeps a page with no file that carries
the quarantine (L{Quarantines.seen}), which every page, composition and
file route reads as the upstream's latest word. (This memory alone serves
no file: a file is served only while a cached page lists it.)
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

import attrs
from twisted.logger import Logger

from pypid.core.util.bounded import put_newest
from pypid.upstream.cached_page import CachedPage
from pypid.upstream.page_model import UpstreamFile, UpstreamPage
from pypid.upstream.parser import upstream_status

log = Logger()
#: (the held removals' namespace: their log lines read as before the join)
_held_log = Logger(namespace="pypid.upstream.held_removals")

#: The most quarantines remembered (one per quarantined project a client
#: asked about, which is rare). Past the cap the oldest is forgotten: its
#: kept files stay unserved, but its page no longer says why, and a later
#: upstream of a chain may list a project of that name again.
MAX_QUARANTINES = 20000


class StillQuarantined(Exception):
    """The upstream's latest page itself quarantines the project: only the upstream lifts it."""


@attrs.frozen
class Quarantine:
    """
    One project's quarantine upstream, as remembered.

    @ivar page: the page kept in the cache once the upstream removed the project.
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
        name = name if isinstance(name, str) and name else project
        return cls(UpstreamPage(project=project, name=name, status=status),
                   float(data["since"]), data.get("removed") is True)


@attrs.define
class Quarantines:
    """The projects an upstream quarantined, by normalized name, the oldest seen first."""

    _known: dict[str, Quarantine] = attrs.field(factory=dict)
    #: moves at every quarantine remembered, changed or forgotten
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
        else while one is remembered is answered the remembered page.
        """
        if page is not None and page.quarantined:
            known = self._known.get(project)
            kept = UpstreamPage(project=project, name=page.name, status=page.status)
            if known is None or known.page != kept or known.removed:
                self._remember(project, Quarantine(kept, known.since if known is not None else now))
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
        Forget C{project}'s quarantine (an admin asked): it, or L{None}.

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


#: Seconds that must part two fetches saying a project's files are gone
#: (a page no longer listing some, or the project's 404) before the cache
#: takes it. Until then the page fetched before is served.
CONFIRM_GONE = 60.0


def _with(listed: tuple[UpstreamFile, ...], before: tuple[UpstreamFile, ...],
          names: Collection[str]) -> tuple[UpstreamFile, ...]:
    """C{listed}, with the files of C{before} named in C{names}, sorted by filename."""
    carried = [f for f in before if f.filename in names]
    if not carried:
        return listed
    return tuple(sorted((*listed, *carried), key=lambda f: f.filename))


def _filenames(page: UpstreamPage) -> frozenset[str]:
    """The filenames a page lists (its variant wheels waiting for data too)."""
    return frozenset(f.filename for files in (page.files, page.variant_wheels) for f in files)


class HeldRemovals:
    """
    The removals fetches said and no later fetch confirmed yet, by project.

    @ivar _going: project -> filename -> when a fetch first said that file
        of the page kept is gone.
    @ivar _lifting: project -> when a fetch first gave its quarantined page
        without the quarantine.
    """

    def __init__(self, confirm_gone: float, most: int) -> None:
        """
        @param most: the most projects held (past it, all are forgotten:
            which only means a removal is taken one fetch later).
        """
        self._confirm_gone = confirm_gone
        self._most = most
        self._going: dict[str, dict[str, float]] = {}
        self._lifting: dict[str, float] = {}

    def forget(self, project: str) -> None:
        """Hold nothing more of C{project} (its page was taken as it is)."""
        self._going.pop(project, None)
        self._lifting.pop(project, None)

    def of(self, project: str) -> dict[str, object]:
        """What is held of C{project}, JSON-ready (for a machine's other workers: L{take})."""
        return {"going": dict(self._going.get(project, {})), "lifting": self._lifting.get(project)}

    def take(self, project: str, held: object) -> None:
        """
        Hold of C{project} what another worker held (L{of}), so that the next
        fetch here confirms a removal first seen there.
        """
        self.forget(project)
        if not isinstance(held, dict):
            return
        going = held.get("going")
        if isinstance(going, dict):
            kept = {name: float(at) for name, at in going.items()
                    if isinstance(name, str) and isinstance(at, (int, float))}
            if kept:
                if len(self._going) >= self._most:
                    self._going.clear()
                self._going[project] = kept
        lifting = held.get("lifting")
        if isinstance(lifting, (int, float)):
            self._lifting[project] = float(lifting)

    def steady(self, project: str, kept: CachedPage | None, result: CachedPage) -> CachedPage:
        """
        C{result}, a fetch of C{project} (whose page C{kept} is the cache's),
        once it is steady: what a fetch says is gone (a file of the page kept
        that it no longer lists, the whole project on a 404, or the quarantine
        of a quarantined page) is taken only when a fetch at least
        C{confirm_gone} seconds before said the same of it; until then it is
        served still. Each file is judged on its own, so a page that loses an
        old file at every fetch still shows its new ones. A quarantine given
        is taken at once. So a flap withholds nothing and writes no takedown.
        """
        new = result.page
        now = result.fetched_at
        if kept is None or kept.page is None or (new is not None and new.quarantined):
            self.forget(project)
            return result
        old = kept.page
        if old.quarantined:
            self._going.pop(project, None)
            if new is None or new.quarantined:
                # (a quarantined project removed: the quarantines remember it)
                self._lifting.pop(project, None)
                return result
            first = self._lifting.setdefault(project, now)
            if now - first >= self._confirm_gone:
                del self._lifting[project]
                return result
            if first == now:
                _held_log.info(
                    "The upstream's page of {project} no longer says it is quarantined: "
                    "kept quarantined until a fetch {seconds:g} s later says so again",
                    project=project, seconds=self._confirm_gone)
            return CachedPage(old, now)
        self._lifting.pop(project, None)
        listed = _filenames(new) if new is not None else frozenset()
        before = self._going.pop(project, {})
        # (each file gone: since when the fetches say so; confirmed once long enough)
        since = {name: before.get(name, now) for name in _filenames(old) - listed}
        pending = {name: at for name, at in since.items() if now - at < self._confirm_gone}
        if pending:
            if len(self._going) >= self._most:
                self._going.clear()
            self._going[project] = pending
        fresh = len(pending.keys() - before.keys())
        if fresh:
            _held_log.info(
                "The upstream's page of {project} no longer lists {count} of its files "
                "(or the project): served as before until a fetch {seconds:g} s later "
                "says so again", project=project, count=fresh, seconds=self._confirm_gone)
        if not pending:
            return result
        base = new if new is not None else attrs.evolve(old, files=(), variant_wheels=())
        return CachedPage(attrs.evolve(
            base, files=_with(base.files, old.files, pending),
            variant_wheels=_with(base.variant_wheels, old.variant_wheels, pending)), now)
