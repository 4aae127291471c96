"""
How several pypid servers on one bucket learn of each other's changes.

Every change (an upload, a yank, a delete) leaves an empty marker object
C{.pypid/changes/<ms>.<instance>.<n>.<filename>} (L{ChangeFeed.announce});
a change of a project's status (PEP 792) leaves
C{.pypid/changes/<ms>.<instance>.<n>.~<project>}, and waits for it
(L{ChangeFeed.announce_now}). Each server lists the markers from a little
before its last look (L{LOOKBACK}, since an object listing may show a new
key late) and reads again the state of every file they name, then the
status object of every project they name or whose file they name
(L{ChangeFeed.poll}): one request when nothing changed, whatever the size
of the bucket. Markers older than
L{MARKER_RETENTION} are removed about once an hour; a server out of touch
for half that long cannot trust the markers and asks for a full listing
(L{ChangeFeed.reconcile_due}).

The feed holds only this bookkeeping; what a file's state is
(L{pypid.storage.bucket.file_states}), how a status object is read
(L{pypid.storage.bucket.status_objects}) and where the background writes are
kept track of (L{pypid.storage.bucket.pending_writes}) are passed in by
L{pypid.storage.bucket.storage.BucketStorage}, which builds it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.storage.bucket.layout import Change, Layout, changes_start_after, intent_subject
from pypid.storage.bucket.store import Listed, ObjectStore
from pypid.storage.capabilities import Changed, Polled
from pypid.storage.interface import StorageError

log = Logger()

#: How far back each poll for change markers looks beyond the last one:
#: markers are named by their writer's clock and become visible when their
#: PUT completes, so a marker can appear late by the writer's request time
#: and the clocks' disagreement.
LOOKBACK = 120.0

#: Change markers older than this are removed (by any instance); an
#: instance that could not poll for half of it lists the whole bucket again.
MARKER_RETENTION = 24 * 3600.0

#: How long after an intent marker (L{ChangeFeed.intend}) without the
#: change's own marker the file's state is read again (s): longer than a
#: change takes to write (a multipart upload of a large file included).
UNSETTLED = 15 * 60.0

#: How often an unsettled file's state is read again (s).
RECHECK = 5.0


def catches_up(since: float, now: float) -> bool:
    """
    Whether a view of the bucket taken at C{since} can be brought up to
    date from the change markers alone (they are kept for
    L{MARKER_RETENTION}; half of it leaves a wide margin).
    """
    return 0 <= now - since < MARKER_RETENTION / 2


class ChangeFeed:
    """
    This server's view of the change markers in the bucket.

    @ivar instance: this server's name in its markers (random per start).
    """

    def __init__(self, client: ObjectStore, layout: Layout, clock: IReactorTime,
                 state_of: Callable[[str], Coroutine[Any, Any, Changed]],
                 status_of: Callable[[str], Coroutine[Any, Any, bytes | None]],
                 background: Callable[[Coroutine[Any, Any, Any]], Deferred[Any]]) -> None:
        """
        @param client: the L{pypid.storage.bucket.store.ObjectStore}.
        @param layout: the L{pypid.storage.bucket.layout.Layout} of the bucket.
        @param clock: provides C{seconds()}.
        @param state_of: C{async state_of(filename)} -> the file's
            L{pypid.storage.capabilities.Changed} as the bucket holds it now.
        @param status_of: C{async status_of(project)} -> the project's
            status object as the bucket holds it now (L{None}: active).
        @param background: C{background(coroutine) -> Deferred}: runs work
            that a clean stop waits for.
        """
        self._client = client
        self._layout = layout
        self._clock = clock
        self._state_of = state_of
        self._status_of = status_of
        self._background = background
        self.instance = uuid.uuid4().hex[:12]
        self._numbers = iter(range(1, 1 << 62))
        # Where the next poll looks from (s), and the markers seen within the
        # look-back window (by key).
        self._cursor: float | None = None
        self._seen: dict[str, int] = {}
        self._last_poll: float | None = None
        self._last_cleanup: float | None = None
        # Set when the view came from a snapshot and markers only, or after
        # too long out of touch: since when a full listing must check it.
        self._reconcile_since: float | None = None
        # The subjects (filenames, statuses) whose markers could not be
        # written yet.
        self._unannounced: set[str] = set()
        # The files whose change was announced by an intent marker and not
        # (yet) by its own: filename -> (the intent's time, when to read its
        # state again), both in ms; and the latest marker of each file's
        # change seen within the look-back window (ms).
        self._unsettled: dict[str, tuple[int, int]] = {}
        self._done: dict[str, int] = {}

    def announce(self, subject: str) -> Deferred[Any]:
        """
        Leave a change marker of C{subject} (a filename, or a
        L{pypid.storage.bucket.layout.status_subject}) for the other instances.
        The L{Deferred} fires once it is written, or its failure noted (it
        never fails: a marker that cannot be written is tried again at the
        next poll). The changes of files wait for it before they answer, so
        that a change acknowledged to a client is one the other servers
        learn of even if this one is killed the next moment (the
        200 of an upload went out before its marker, and a C{kill -9} in
        between left the other servers without the file until their next
        full listing).
        """
        def failed(failure: Failure) -> None:
            self._failed(subject, failure.getErrorMessage())

        d = self._background(self._put_marker(subject))
        d.addErrback(failed)
        return d

    async def announce_now(self, subject: str) -> None:
        """
        Leave a change marker of C{subject}, and wait for it: for a change
        that must be in the bucket before whatever follows it is (a
        status, before the files of an import). A marker that cannot be
        written is tried again at the next poll, and the failure raised.
        """
        try:
            await self._put_marker(subject)
        except BaseException as e:
            self._failed(subject, str(e))
            raise

    async def intend(self, filename: str) -> None:
        """
        Leave an intent marker before changing C{filename}, and wait for it:
        a server killed between its write and the change's own marker
        (L{announce}) leaves the others this one, and they read the file's
        state again every L{RECHECK} until the change's marker comes or
        L{UNSETTLED} passed (an upload written just before a
        C{kill -9} was listed by the restarted server alone).

        @raise StorageError: the marker could not be written (nor then the change).
        """
        await self._put_marker(intent_subject(filename))

    async def _put_marker(self, subject: str) -> None:
        """Write the marker of a change of C{subject}, named now."""
        change = Change(int(self._clock.seconds() * 1000), self.instance,
                        next(self._numbers), subject)
        await self._client.put(change.key(self._layout), b"",
                               "application/octet-stream")

    def _failed(self, subject: str, error: str) -> None:
        """A marker of C{subject} could not be written: the next poll tries again."""
        self._unannounced.add(subject)
        log.warn("Cannot tell other instances yet that {subject} changed: {error}",
                 subject=subject, error=error)

    def start_from_snapshot(self, since: float, replay_window: float) -> None:
        """
        Start from a snapshot taken at C{since}: the next poll replays the
        markers from C{replay_window} before it, and a full listing is due
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
        return self._reconcile_since is not None

    def reconcile_since(self) -> float:
        """Since when the view is not known to be complete (0 when not known)."""
        return self._reconcile_since or 0.0

    def reconciled(self) -> None:
        """A full listing checked the view: no more is due."""
        self._reconcile_since = None

    def synced_at(self) -> float | None:
        """When the view last took in every change in the bucket (L{None}: never)."""
        return self._last_poll

    async def poll(self, starting: bool = False) -> Polled:
        """
        The state of every file that changed since the last poll, then the
        status object of every project whose status changed or whose file
        did (a L{pypid.storage.capabilities.Polled}).

        @param starting: the first poll after a snapshot: markers seen
            before count again, and no status is read (the start reads
            them all after the files: L{pypid.state.loader.load_statuses}).
        """
        now = self._clock.seconds()
        if self._cursor is None:
            self._cursor = now
        if self._last_poll is not None and now - self._last_poll > MARKER_RETENTION / 2:
            # Markers may be gone: the bucket must be listed again, trusting
            # what did not change since the last good look.
            self._reconcile_since = self._last_poll
            self._cursor = now
            self._seen.clear()
        for subject in sorted(self._unannounced):
            self._unannounced.discard(subject)
            await self.announce(subject)
        layout = self._layout
        start = int((self._cursor - LOOKBACK) * 1000)
        seen: dict[str, int] = {}
        changed: set[str] = set()
        projects: set[str] = set()
        keys: list[Listed] = []
        async for page in self._client.list(layout.changes_prefix,
                                            changes_start_after(layout, start)):
            keys.extend(page.keys)
        intents: dict[str, int] = {}
        done = dict(self._done)
        for item in keys:
            if item.key in self._seen and not starting:
                continue
            change = Change.parse(layout, item.key)
            if change is None:
                continue
            seen[item.key] = change.when
            # This server's own changes count too: reading the state again
            # after a change corrects a poll that read it just before.
            if change.project is not None:
                projects.add(change.project)
            elif change.intended is not None:
                intents[change.intended] = max(change.when,
                                               intents.get(change.intended, 0))
            else:
                changed.add(change.subject)
                done[change.subject] = max(change.when, done.get(change.subject, 0))
        unsettled = self._settle(intents, done, int(now * 1000))
        changed |= {name for name, (_, due) in unsettled.items() if due <= now * 1000}
        files = [await self._state_of(filename) for filename in sorted(changed)]
        # The statuses after the files, those of the files' projects too: a
        # status kept before a file (an import keeps a quarantine before the
        # project's files, and its marker before theirs) is read whenever
        # the file is, even when its own marker is not in this listing
        # (late, or named by a clock too far behind).
        projects.update(change.record.project for change in files if change.record is not None)
        statuses = {project: await self._status_of(project)
                    for project in ([] if starting else sorted(projects))}
        # Only now is the look complete: a failure above leaves the cursor
        # where it was, so the next poll reads the same markers again.
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

    def _settle(self, intents: dict[str, int], done: dict[str, int],
                now: int) -> dict[str, tuple[int, int]]:
        """
        The unsettled files after a listing: those of an intent marker not
        followed by the change's own marker, younger than L{UNSETTLED}
        (a new one due at once), C{(intent time, when due)} in ms.
        """
        unsettled = dict(self._unsettled)
        for filename, when in intents.items():
            if filename not in unsettled:
                unsettled[filename] = (when, now)
        return {filename: (since, due) for filename, (since, due) in unsettled.items()
                if done.get(filename, -1) < since and now - since < UNSETTLED * 1000}

    async def _clean(self, now: float) -> None:
        """Remove change markers past their retention (about once an hour)."""
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


class Pacer:
    """
    Spaces requests at most C{rate} a second on an injected clock, for the
    background full check (see L{pypid.storage.bucket.store.PacedStore}):
    each caller waits for a slot of its own, the first at once, the next
    C{1 / rate} seconds after the one before it, and no slot is saved up
    while nobody asks (no burst after a pause).
    """

    def __init__(self, clock: IReactorTime, rate: float) -> None:
        """
        @param clock: provides C{seconds()} and C{callLater}.
        @param rate: the most requests a second; 0 for no cap.
        """
        self._clock = clock
        self._interval = 1.0 / rate if rate else 0.0
        self._next: float | None = None

    def wait(self) -> Deferred[None]:
        """
        A L{Deferred} that fires when the next request may start; cancelling
        it cancels its timer (a stopped check leaves nothing scheduled).
        """
        if not self._interval:
            return succeed(None)
        now = self._clock.seconds()
        slot = now if self._next is None else max(now, self._next)
        self._next = slot + self._interval
        if slot <= now:
            return succeed(None)
        timer: list[IDelayedCall] = []
        d: Deferred[None] = Deferred(lambda _: timer[0].cancel() if timer[0].active() else None)
        timer.append(self._clock.callLater(slot - now, d.callback, None))
        return d
