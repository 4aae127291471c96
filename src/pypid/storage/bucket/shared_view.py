"""
This server's view of a bucket other servers change too: first taken
(listed, or caught up from a snapshot and the journal), kept up to date
(polls), and checked against a full listing (reconcile).

From a snapshot that names its journal serial, a start is the snapshot
plus the changes told since (a few requests, whatever the bucket's size);
the full listing that catches what changed behind pypid's back then runs
in the background, paced.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
from twisted.internet.interfaces import IReactorTime

from pypid.core.dists.model import FileRecord
from pypid.storage.base.interface import ScanResult
from pypid.storage.bucket.bucket_snapshot import BucketSnapshot
from pypid.storage.bucket.file_states import BucketListing, FileStates
from pypid.storage.bucket.imports import Importer
from pypid.storage.bucket.markers import STALE, BucketChanges
from pypid.storage.bucket.status_objects import StatusObjects
from pypid.storage.bucket.store import ObjectStore, PacedStore, Pacer


@attrs.define
class SharedView:
    """
    What this server knows of the bucket, and how it learns more.

    @ivar _snapshot: a start's way round an old local snapshot.
    @ivar _replay_window: how far before a snapshot's time a start lists intents.
    @ivar _check_rate: the most requests a second of a full check (0: no cap).
    """

    _client: ObjectStore
    _clock: IReactorTime
    _changes: BucketChanges
    _listing: BucketListing
    _imports: Importer
    _states: FileStates
    _statuses: StatusObjects
    _snapshot: BucketSnapshot
    _identity: str
    _replay_window: float
    _check_rate: float

    async def start(self, known: dict[str, FileRecord], since: float,
                    tombstones: Iterable[str], persist: bool = True) -> ScanResult:
        """What the bucket holds; see L{pypid.storage.bucket.storage.BucketStorage.scan}."""
        if not persist:
            return await self._scan(known, since, persist=False)
        now = self._clock.seconds()
        changes = self._changes.store_changes
        # (a snapshot that says up to which serial it took in the journal:
        # ISharedStorage.resume)
        resumed = changes.cursor is not None
        if known and since and resumed and now - since >= STALE:
            newer = await self._snapshot.newer(since, self._identity)
            if newer is not None and newer.changes is not None:
                known, since, tombstones = newer.records, newer.saved_at, newer.tombstones
                changes.resume(newer.changes)
        if not (known and since and resumed):
            return await self._scan(known, since)
        # The snapshot holds the changes the journal told up to its serial;
        # intent markers appear late by up to LOOKBACK.
        self._changes.start_from_snapshot(since, self._replay_window)
        records, deleted = dict(known), set(tombstones)
        for record in records.values():
            self._imports.remember(record)
        # (no statuses: the start reads them all after the files)
        for change in (await self._changes.poll(starting=True)).files:
            if change.deleted:
                records.pop(change.filename, None)
                deleted.add(change.filename)
            elif change.record is None:
                records.pop(change.filename, None)
            else:
                records[change.filename] = change.record
        # (promotions: L{None}, as the snapshot has them)
        return ScanResult(records=records, tombstones=frozenset(deleted), promotions=None)

    async def reconcile(self, known: dict[str, FileRecord]) -> ScanResult:
        """
        List the whole bucket, trusting C{known} for objects unchanged since
        the view was last complete, and read again each file whose listing
        disagrees (a concurrent change is never undone); then every status,
        so one kept before a file the listing found comes with it.
        """
        # Paced: the check runs while the server answers, and must cost
        # neither a burst on the cloud bill nor the uploads' turn.
        client = PacedStore(self._client, Pacer(self._clock, self._check_rate))
        result = await self._scan(known, self._changes.reconcile_since(), client=client)
        records = dict(result.records)
        for filename, record in known.items():
            listed = records.get(filename)
            if filename in result.tombstones or listed == record:
                continue
            if listed is not None and listed.yanked == record.yanked:
                continue
            state = await self._states.read(filename, record.path, client)
            if state.record is not None:
                records[filename] = state.record
            else:
                records.pop(filename, None)
        statuses = await self._statuses.all(client)
        self._changes.reconciled()
        return attrs.evolve(result, records=records, statuses=statuses)

    async def _scan(self, known: dict[str, FileRecord], since: float, persist: bool = True,
                    client: ObjectStore | None = None) -> ScanResult:
        """List the bucket (L{BucketListing.scan}); polls go on from when it began."""
        started = self._clock.seconds()
        if persist:
            # (a reader that polls later: it goes on from the journal's end now,
            # unless where it reads from is known)
            await self._changes.store_changes.start()
        result = await self._listing.scan(known, since, persist, client)
        self._changes.listed(started)
        return result
