"""
How several pypid servers on one bucket learn of each other's changes.

Every change (an upload, a yank, a delete, a project's status) is told in
the store's journal once the bucket holds it (L{BucketChanges.tell}, a
L{pypid.storage.base.store_changes.StoreChanges}), and the changes of files
wait for it before they answer. Each server reads the entries after the
serial it read up to and reads again the state of every file they name,
then the status object of every project they name or whose file they name
(L{BucketChanges.poll}): a listing of the journal when nothing changed,
whatever the size of the bucket.

One kind of marker object stays: the intent a server leaves before it
changes a file (C{.pypid/changes/<ms>.<instance>.<n>.?<filename>},
L{BucketChanges.intend}), so that a server killed between its write and the
journal's entry leaves the others a file to read again until the entry
comes or L{UNSETTLED} passed. Intents are listed from a little before the
last look (L{LOOKBACK}: an object listing may show a new key late), and
removed past L{MARKER_RETENTION}, about once an hour.
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

#: How far back each listing of intent markers looks beyond the last one:
#: markers are named by their writer's clock and become visible when their
#: PUT completes, so a marker can appear late by the writer's request time
#: and the clocks' disagreement.
LOOKBACK = 120.0

#: Intent markers older than this are removed (by any instance).
MARKER_RETENTION = 24 * 3600.0

#: A local snapshot older than this is left for the bucket's copy when that
#: one is newer (L{pypid.storage.bucket.bucket_snapshot.BucketSnapshot.newer}):
#: fewer changes to read again than the journal holds since.
STALE = MARKER_RETENTION / 2

#: How long after an intent marker (L{BucketChanges.intend}) without the
#: change's entry in the journal the file's state is read again (s): longer
#: than a change takes to write (a multipart upload of a large file included).
UNSETTLED = 15 * 60.0

#: How often an unsettled file's state is read again (s).
RECHECK = 5.0


class BucketChanges:
    """
    This server's view of the changes in the bucket: the journal's entries
    of its storage, and the intent markers.
    """

    def __init__(self, client: ObjectStore, layout: Layout, clock: IReactorTime,
                 state_of: Callable[[str], Coroutine[Any, Any, Changed]],
                 status_of: Callable[[str], Coroutine[Any, Any, bytes | None]],
                 background: Callable[[Coroutine[Any, Any, Any]], Deferred[Any]],
                 changes: StoreChanges) -> None:
        """
        @param state_of: a file's state as the bucket holds it now.
        @param status_of: a project's status object as the bucket holds it
            now (L{None}: active).
        @param background: runs work that a clean stop waits for.
        @param changes: the storage's changes in the journal.
        """
        self._client = client
        self._layout = layout
        self._clock = clock
        self._state_of = state_of
        self._status_of = status_of
        self._background = background
        self.store_changes = changes
        self.instance = changes.instance
        self._numbers = iter(range(1, 1 << 62))
        # Where the next listing of intents looks from (s), and the intent
        # markers seen within the look-back window (by key).
        self._cursor: float | None = None
        self._seen: dict[str, int] = {}
        self._last_poll: float | None = None
        self._last_cleanup: float | None = None
        # Set when the view came from a snapshot and the journal: since when
        # a full listing must check it (what changed behind pypid's back).
        self._reconcile_since: float | None = None
        # The files whose change was intended by an intent marker and not
        # (yet) by the journal: filename -> (the intent's time, when to read
        # its state again), both in ms; and the latest entry of each file's
        # change seen within the look-back window (ms).
        self._unsettled: dict[str, tuple[int, int]] = {}
        self._done: dict[str, int] = {}
        # Whether no look was complete yet (the next reads back the journal
        # for the intents from before it began to read).
        self._fresh = True

    def tell(self, *filenames: str) -> Deferred[Any]:
        """
        Tell the others of a change of C{filenames}, in the journal. The
        L{Deferred} fires once the entries' first write ended (it
        never fails: the journal tries again, in order). The changes of
        files wait for it before they answer, so that a change
        acknowledged to a client is one the other servers learn of even
        if this one is killed the next moment.
        """
        return self._background(self._tell(list(filenames)))

    async def _tell(self, files: list[str]) -> int | None:
        return await self.store_changes.tell(files, [])

    async def tell_status(self, project: str) -> None:
        """
        Tell of a change of C{project}'s status and wait for it: it must be
        told before whatever follows it is (the files of an import).

        @raise StorageError: the journal could not be written yet (it
            tries again, in order).
        """
        if await self.store_changes.tell([], [project]) is None:
            raise StorageError(
                f"the journal cannot be written to tell that {project}'s status changed")

    async def intend(self, filename: str) -> None:
        """
        Leave an intent marker before changing C{filename}, and wait for it:
        a server killed between its write and the change's entry
        (L{tell}) leaves the others this one, and they read the file's
        state again every L{RECHECK} until the entry comes or
        L{UNSETTLED} passed (an upload written just before a
        C{kill -9} was listed by the restarted server alone).

        @raise StorageError: the marker could not be written (nor then the change).
        """
        change = Change(int(self._clock.seconds() * 1000), self.instance,
                        next(self._numbers), intent_subject(filename))
        await self._client.put(change.key(self._layout), b"", "application/octet-stream")

    def start_from_snapshot(self, since: float, replay_window: float) -> None:
        """
        Start from a snapshot taken at C{since}, whose serial the journal
        is read after (L{StoreChanges.resume}): the next poll lists the
        intents from C{replay_window} before it, and a full listing is due
        afterwards (see L{reconcile_due}).
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
        The state of every file that changed since the last poll, then the
        status object of every project whose status changed or whose file
        did (a L{pypid.storage.base.capabilities.Polled}).

        @param starting: the first poll after a snapshot: intent markers
            seen before count again, and no status is read (the start
            reads them all after the files: L{pypid.state.loader.IndexLoader}).
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
            # to read the journal, at its listing or its snapshot, may have
            # been settled by an entry before it too)
            for name, when in (await self.store_changes.told_before(
                    began, min(early) - int(LOOKBACK * 1000))).items():
                done[name] = max(when, done.get(name, 0))
        unsettled = self._settle(intents, done, int(now * 1000))
        changed |= {name for name, (_, due) in unsettled.items() if due <= now * 1000}
        files = [await self._state_of(filename) for filename in sorted(changed)]
        # The statuses after the files, those of the files' projects too: a
        # status kept before a file (an import keeps a quarantine before the
        # project's files, and tells it before theirs) is read whenever the
        # file is.
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
        """
        The intent markers listed since the last look (less L{LOOKBACK}):
        the keys seen, and each file's latest intent (ms).
        """
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
        The unsettled files after a look: those of an intent marker not
        followed by the change's entry, younger than L{UNSETTLED}
        (a new one due at once), C{(intent time, when due)} in ms.
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
