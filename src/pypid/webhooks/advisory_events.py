"""
The C{advisory} audit entries, and so the webhooks' C{advisory} events: one for
each advisory that newly concerns a release an index holds or caches, when the
advisories read name it, or when the release comes after the advisory (an
upload, a promotion, a restore).

What was told is kept in the store (C{advisories/told.json}), read again at
each review and written once the entries are, so a restart, or another server
of a bucket, does not tell it again (at least once); the first advisories read
whole with nothing kept are where the telling starts, not news, so a database
of thousands of old advisories sends no events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from twisted.internet.defer import Deferred, DeferredLock, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.records.audit_chain import OK, Entry, format_time
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.records.webhook_events import DEFAULT_INDEX
from pypid.core.security.advisories import AdvisoryDB
from pypid.core.security.advisory_news import Told, described, matches_of
from pypid.storage.base.journal import IJournal
from pypid.storage.base.records import IRecords

log = Logger()

TOLD = "advisories/told.json"

#: The entries of a release that came to an index.
ARRIVALS = frozenset({ChangeKind.UPLOAD, ChangeKind.PROMOTE, ChangeKind.RESTORE})

#: C{releases() -> {index: releases(project) -> versions}}: what each index knows now.
Releases = Callable[[], Mapping[str, Callable[[str], Iterable[str]]]]


class AdvisoryEvents:
    """Tells, in the audit log, each advisory that newly concerns a release; see the module."""

    def __init__(self, store: IRecords, audit: IJournal, clock: IReactorTime,
                 releases: Releases, db: Callable[[], AdvisoryDB]) -> None:
        """@param db: the advisories in force."""
        self._store = store
        self._audit = audit
        self._clock = clock
        self._releases = releases
        self._db = db
        self._lock = DeferredLock()
        #: the reviews under way (the tests wait for them)
        self.pending: set[Deferred[None]] = set()

    def changed(self, before: AdvisoryDB, after: AdvisoryDB) -> None:
        """The advisories were read again (the board's listener): tell what is new."""
        if after.unread is None:
            self._start(after, None)

    def written(self, entries: Sequence[Entry]) -> None:
        """Entries were written (the journal's listener): a release that came is looked at."""
        for entry in entries:
            if entry.event in ARRIVALS and entry.outcome == OK and entry.project is not None:
                db = self._db()
                if db.unread is None and entry.project in db.projects():
                    self._start(db, [entry.project])

    def _start(self, db: AdvisoryDB, projects: list[str] | None) -> None:
        d: Deferred[None] = self._lock.run(lambda: ensureDeferred(self._review(db, projects)))
        d.addErrback(lambda f: log.warn("Cannot tell the advisories that newly concern "
                                        "releases: {error}", error=f.getErrorMessage()))
        self.pending.add(d)
        d.addBoth(lambda _: self.pending.discard(d))

    async def _review(self, db: AdvisoryDB, projects: list[str] | None) -> None:
        # (read at every review: what another server of the bucket told counts)
        data = await self._store.get(TOLD)
        if data is None and projects is not None:
            return  # (nothing told yet: the telling starts at a whole read)
        told = Told()
        if data is not None:
            try:
                told = Told.from_bytes(data)
            except ValueError as e:
                log.warn("The record of the advisories told cannot be read ({error}); "
                         "starting again from the advisories in force", error=str(e))
                data = None
        news = told.news(matches_of(db, self._releases(), projects))
        if data is None:
            # (the first advisories with nothing kept: where the telling starts)
            await self._store.put({TOLD: told.to_bytes()})
            return
        if not news:
            return
        now = format_time(self._clock.seconds())
        # (written before the record says they were told: a crash may tell them twice)
        await self._audit.append([Entry(
            time=now, event=ChangeKind.ADVISORY,
            index=None if index == DEFAULT_INDEX else index, project=project,
            version=version, target=id, detail=described(advisory))
            for (index, project, version, id), advisory in news])
        await self._store.put({TOLD: told.to_bytes()})
