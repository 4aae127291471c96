"""
What a fetch of an upstream page says is gone, held until a later fetch
says it again (L{HeldRemovals}): one transient 404, one page served short
by an upstream's replica, or one page without its quarantine, is not a
takedown. Apart from L{pypid.upstream.cache.PageCache}, which asks it of
each page fetched, because it is its own rule with its own memory.
"""

from __future__ import annotations

from collections.abc import Collection

import attrs
from twisted.logger import Logger

from pypid.upstream.cached_page import CachedPage
from pypid.upstream.page_model import UpstreamFile, UpstreamPage

log = Logger()

#: Seconds that must part two fetches saying a project's files are gone
#: (a page no longer listing some, or the project's 404) before the cache
#: takes it: one transient 404, or one page served short by an
#: upstream's replica, is not a takedown. Until then the page fetched
#: before is served, as if the fetch had said nothing new.
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
        of the page kept is gone, until a later fetch confirms it or lists
        it again.
    @ivar _lifting: project -> when a fetch first gave its quarantined page
        without the quarantine, until a later fetch confirms the lift.
    """

    def __init__(self, confirm_gone: float, most: int) -> None:
        """
        @param confirm_gone: seconds that must part two fetches saying files
            are gone before the cache takes it (L{CONFIRM_GONE}).
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
        return {"going": dict(self._going.get(project, {})),
                "lifting": self._lifting.get(project)}

    def take(self, project: str, held: object) -> None:
        """
        Hold of C{project} what another worker held (L{of}), so that the
        next fetch here confirms a removal first seen there; what is not
        that form holds nothing.
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

    def steady(self, project: str, kept: CachedPage | None,
               result: CachedPage) -> CachedPage:
        """
        C{result}, a fetch of C{project} (whose page C{kept} is the cache's),
        once it is steady: what a fetch says is gone (a file of the page kept
        that it no longer lists, the whole project on a 404, or the quarantine
        of a quarantined page) is taken only when a fetch at least
        C{confirm_gone} seconds before said the same of it. Until then the
        fetch is served with what it would take away still in it. Each file is
        judged on its own, so a page that loses an old file at every fetch
        still shows its new ones, and takes each removal once confirmed. A
        quarantine given is taken at once. So a flap withholds nothing and
        writes no takedown.
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
                log.info("The upstream's page of {project} no longer says it is quarantined: "
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
            log.info("The upstream's page of {project} no longer lists {count} of its files "
                     "(or the project): served as before until a fetch {seconds:g} s later "
                     "says so again", project=project, count=fresh,
                     seconds=self._confirm_gone)
        if not pending:
            return result
        base = new if new is not None else attrs.evolve(old, files=(), variant_wheels=())
        return CachedPage(attrs.evolve(
            base,
            files=_with(base.files, old.files, pending),
            variant_wheels=_with(base.variant_wheels, old.variant_wheels, pending)), now)
