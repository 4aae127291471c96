"""
How several pypid servers on one bucket learn of each other's changes.

Every change is told in the store's journal once the bucket holds it
(L{BucketChanges.tell}), before a file's change answers. Each server reads
the entries after its serial, then the state of every file they name and
the status of every project they name or whose file they name
(L{BucketChanges.poll}): one listing when nothing changed, however large
the bucket.

One kind of marker stays: the intent a server leaves before it changes a
file (C{.pypid/changes/<ms>.<instance>.<n>.?<filename>}), so a server
killed between its write and the journal's entry leaves the others a file
to read again until the entry comes or L{UNSETTLED} passed. Intents are
listed from L{LOOKBACK} before the last look (a listing may show a new key
late), and removed past L{MARKER_RETENTION}, about once an hour.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.storage.base.capabilities import Changed, Polled
from pypid.storage.base.interface import StorageError
from pypid.storage.base.store_changes import StoreChanges
from pypid.storage.bucket.layout import (
    Change,
    Layout,
    changes_start_after,
    intent_subject,
)
from pypid.storage.bucket.store import Listed, ObjectStore

log = Logger()

#: How far back each listing of intent markers looks beyond the last one: a
#: marker, named by its writer's clock, can appear late by the writer's
#: request time and the clocks' disagreement.
LOOKBACK = 120.0

#: Intent markers older than this are removed (by any instance).
MARKER_RETENTION = 24 * 3600.0

#: A local snapshot older than this is left for a newer copy in the bucket:
#: fewer changes to read again.
STALE = MARKER_RETENTION / 2

#: How long after an intent marker without the change's entry the file's
#: state is read again (s): longer than any change takes to write.
UNSETTLED = 15 * 60.0

#: How often an unsettled file's state is read again (s).
RECHECK = 5.0


class BucketChanges:
    """This server's view of the bucket's changes: its storage's journal entries, and intents."""

    def __init__(self, client: ObjectStore, layout: Layout, clock: IReactorTime,
                 state_of: Callable[[str], Coroutine[Any, Any, Changed]],
                 status_of: Callable[[str], Coroutine[Any, Any, bytes | None]],
                 background: Callable[[Coroutine[Any, Any, Any]], Deferred[Any]],
                 changes: StoreChanges) -> None:
        """@param background: runs work that a clean stop waits for."""
        self._client = client
        self._layout = layout
        self._clock = clock
        self._state_of = state_of
        self._status_of = status_of
        self._background = background
        self.store_changes = changes
        self.instance = changes.instance
        self._numbers = iter(range(1, 1 << 62))
        # where the next listing of intents looks from (s), and the markers
        # seen within the look-back window
        self._cursor: float | None = None
        self._seen: dict[str, int] = {}
        self._last_poll: float | None = None
        self._last_cleanup: float | None = None
        # from a snapshot and the journal: since when a full listing must check it
        self._reconcile_since: float | None = None
        # filename -> (intent time, when to read it again) of the intents the
        # journal has not settled yet, and the latest entry of each file's
        # change seen within the look-back window (all ms)
        self._unsettled: dict[str, tuple[int, int]] = {}
        self._done: dict[str, int] = {}
        # (no look complete yet: the next reads back the journal for intents
        # from before it began)
        self._fresh = True

    def tell(self, *filenames: str) -> Deferred[Any]:
        """
        Tell the others of a change of C{filenames}: fires once the first
        write ended (never fails). A change waits for it before it answers,
        so the others learn it even if this server is killed the next moment.
        """
        return self._background(self._tell(list(filenames)))

    async def _tell(self, files: list[str]) -> int | None:
        return await self.store_changes.tell(files, [])

    async def tell_status(self, project: str) -> None:
        """
        Tell of a change of C{project}'s status, before whatever follows it
        (an import's files); L{StorageError} when not yet written.
        """
        if await self.store_changes.tell([], [project]) is None:
            raise StorageError(
                f"the journal cannot be written to tell that {project}'s status changed")

    async def intend(self, filename: str) -> None:
        """
        Leave an intent marker before changing C{filename}: the others read
        its state every L{RECHECK} until the entry comes or L{UNSETTLED}
        passed (an upload written just before a C{kill -9} was listed by the
        restarted server alone). L{StorageError}: no marker, no change.
        """
        change = Change(int(self._clock.seconds() * 1000), self.instance,
                        next(self._numbers), intent_subject(filename))
        await self._client.put(change.key(self._layout), b"", "application/octet-stream")

    def start_from_snapshot(self, since: float, replay_window: float) -> None:
        """
        Start from a snapshot taken at C{since}: the next poll lists the
        intents from C{replay_window} before it, then a full listing is due.
        """
        self._cursor = since - replay_window + LOOKBACK
        self._last_poll = self._clock.seconds()
        self._reconcile_since = since

    def listed(self, started: float) -> None:
        """A full listing that began at C{started} is done: polls go on from there."""
        if self._cursor is None:
            self._cursor = started
        self._last_poll = self._last_poll or started

    def reconcile_due(self) -> bool:
        """Whether the index must be checked against a full listing."""
        return self._reconcile_since is not None or self.store_changes.gap

    def reconcile_since(self) -> float:
        """Since when the view is not known to be complete (0 when not known)."""
        return 0.0 if self.store_changes.gap else self._reconcile_since or 0.0

    def reconciled(self) -> None:
        """A full listing checked the view: no more is due."""
        self._reconcile_since = None
        self.store_changes.gap = False

    def synced_at(self) -> float | None:
        """When the view last took in every change in the bucket (L{None}: never)."""
        return self._last_poll

    async def poll(self, starting: bool = False) -> Polled:
        """
        The state of every file changed since the last poll, then the status
        of every project whose status or file changed.

        @param starting: the first poll after a snapshot: intents seen count
            again, and no status is read (the start reads them all).
        """
        now = self._clock.seconds()
        if self._cursor is None:
            self._cursor = now
        await self.store_changes.start()
        began = self.store_changes.cursor
        told, serial = await self.store_changes.read()
        changed: set[str] = set()
        projects: set[str] = set()
        done = dict(self._done)
        # (this server's own changes count too: reading the state again
        # after a change corrects a poll that read it just before)
        for change in told:
            if change.project is not None:
                projects.add(change.project)
            elif change.filename is not None:
                changed.add(change.filename)
                done[change.filename] = max(change.when, done.get(change.filename, 0))
        seen, intents = await self._intents(starting)
        early = [when for name, when in intents.items() if done.get(name, -1) < when]
        if self._fresh and early and began is not None:
            # (the first look: an intent from before where this server began
            # to read the journal may have been settled before it too)
            for name, when in (await self.store_changes.told_before(
                    began, min(early) - int(LOOKBACK * 1000))).items():
                done[name] = max(when, done.get(name, 0))
        unsettled = self._settle(intents, done, int(now * 1000))
        changed |= {name for name, (_, due) in unsettled.items() if due <= now * 1000}
        files = [await self._state_of(filename) for filename in sorted(changed)]
        # The statuses after the files, theirs too: a status kept before a
        # file (an import's quarantine) is read whenever the file is.
        projects.update(change.record.project for change in files if change.record is not None)
        statuses = {project: await self._status_of(project)
                    for project in ([] if starting else sorted(projects))}
        # Only now is the look complete: a failure above leaves the cursors
        # where they were, so the next poll reads the same changes again.
        self.store_changes.advance(serial)
        self._fresh = False
        self._seen.update(seen)
        self._cursor = now
        self._last_poll = now
        horizon = (now - 2 * LOOKBACK) * 1000
        self._seen = {k: when for k, when in self._seen.items() if when >= horizon}
        self._done = {name: when for name, when in done.items() if when >= horizon}
        recheck = int((now + RECHECK) * 1000)
        self._unsettled = {name: (since, recheck if name in changed else due)
                           for name, (since, due) in unsettled.items()}
        if self._last_cleanup is None or now - self._last_cleanup >= 3600:
            self._last_cleanup = now
            self._background(self._clean(now))
        return Polled(files, statuses)

    async def _intents(self, starting: bool) -> tuple[dict[str, int], dict[str, int]]:
        """The intent markers since the last look: the keys seen, each file's latest intent."""
        assert self._cursor is not None
        layout = self._layout
        start = int((self._cursor - LOOKBACK) * 1000)
        keys: list[Listed] = []
        async for page in self._client.list(layout.changes_prefix,
                                            changes_start_after(layout, start)):
            keys.extend(page.keys)
        seen: dict[str, int] = {}
        intents: dict[str, int] = {}
        for item in keys:
            if item.key in self._seen and not starting:
                continue
            change = Change.parse(layout, item.key)
            if change is None or change.intended is None:
                continue
            seen[item.key] = change.when
            intents[change.intended] = max(change.when, intents.get(change.intended, 0))
        return seen, intents

    def _settle(self, intents: dict[str, int], done: dict[str, int],
                now: int) -> dict[str, tuple[int, int]]:
        """
        C{(intent time, when due)} in ms of the files whose intent no entry
        followed, younger than L{UNSETTLED} (a new one due at once).
        """
        unsettled = dict(self._unsettled)
        for filename, when in intents.items():
            if filename not in unsettled:
                unsettled[filename] = (when, now)
        return {filename: (since, due) for filename, (since, due) in unsettled.items()
                if done.get(filename, -1) < since and now - since < UNSETTLED * 1000}

    async def _clean(self, now: float) -> None:
        """Remove markers past their retention (about once an hour)."""
        cutoff = int((now - MARKER_RETENTION) * 1000)
        layout = self._layout
        try:
            async for page in self._client.list(layout.changes_prefix):
                for item in page.keys:
                    change = Change.parse(layout, item.key)
                    if change is None or change.when >= cutoff:
                        return
                    await self._client.delete(item.key)
        except StorageError as e:
            log.warn("Cannot remove old change markers: {error}", error=str(e))
