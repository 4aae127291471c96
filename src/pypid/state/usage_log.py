"""
The download counts of one hosted index, kept in its storage as usage
records (L{pypid.core.records.usage}): written every C{interval} seconds,
every instance's read at start-up, closed days folded.

A download costs the serving path one dict update (L{UsageLog.count}). A crash
loses at most the last interval's counts; a failed write keeps its counts for
the next. Several instances on one bucket each write records of their own name
(C{writer}), which every instance sums; a closed day's records are folded into
one, C{<day>-all-all}, naming those it replaces, and records older than
L{pypid.core.records.usage.WINDOW_DAYS} are removed.

A machine's workers announce each record on the machine's ring
(L{UsageShare}) and take in the others' every interval, so each answers
with the machine's counts; the first worker alone folds the closed days.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.records.usage import (
    WINDOW_DAYS,
    ClientBound,
    UsageBook,
    UsageCounter,
    UsageInvalid,
    UsageRecord,
    day_of,
    merge,
    parse_name,
    record_name,
)
from pypid.jobs.periodic import Periodic
from pypid.machine.topics import Hub, Topic
from pypid.storage.base.capabilities import IUsageStorage
from pypid.storage.base.interface import StorageError

log = Logger()

#: Seconds between two writes of the counts (at most this much is lost by a crash).
INTERVAL = 10.0

#: The writer name of a folded day's record.
FOLDED = "all"


@attrs.define(eq=False)
class UsageShare:
    """The usage records of one storage, as a machine's workers tell each other of them."""

    hub: Hub
    key: bytes
    # (the records the others wrote since the last look; None: a whole ring went by)
    _told: list[str] | None = attrs.field(init=False, factory=list)

    def __attrs_post_init__(self) -> None:
        self.hub.on(Topic.USAGE, self._heard)
        self.hub.lost(self._lost)

    def _heard(self, fields: Sequence[bytes], worker: int) -> None:
        if fields[0] == self.key and self._told is not None:
            self._told.append(fields[1].decode("ascii", "replace"))

    def _lost(self) -> None:
        self._told = None

    def admit(self, key: bytes, day: int, limit: int) -> bool:
        """The machine's tally of this storage's downloads (L{Hub.admit})."""
        return self.hub.admit(self.key + b" " + key, day, limit)

    def tell(self, name: str) -> None:
        """Announce a record this worker wrote."""
        self.hub.publish(Topic.USAGE, self.key, name.encode("ascii"))

    def told(self) -> list[str] | None:
        """The other workers' records since the last look; L{None}: a whole ring behind."""
        self.hub.take()
        told, self._told = self._told, []
        return told


class UsageLog(Service):
    """The download counts of one storage's files; C{book} sums what the records say."""

    def __init__(self, storage: IUsageStorage, clock: IReactorTime,
                 interval: float = INTERVAL, writer: str | None = None,
                 share: UsageShare | None = None, fold: bool = True) -> None:
        """
        @param share: in a worker of a machine, how records are told to the
            others and theirs taken in; L{None} in a server of one process.
        """
        self._share = share
        self._fold_days = fold
        self._storage = storage
        self._clock = clock
        self._writer = writer or secrets.token_hex(6)
        self._sequence = 0
        self._counter = UsageCounter()
        # (a machine's workers count a client's downloads together)
        self._bound = ClientBound(shared=share.admit if share is not None else None)
        self.book = UsageBook()
        self._loop = Periodic(self._tick, interval, clock, what="The download counts' writer")
        self._writing: Deferred[Any] | None = None
        #: whether the records were read (the book holds what they say)
        self.loaded = False

    @property
    def today(self) -> int:
        """Today's UTC day number."""
        return day_of(self._clock.seconds())

    def count(self, filename: str, address: str | None = None, ranged: bool = False) -> None:
        """
        One download of C{filename} now by the client at C{address} (C{ranged}:
        a range through its last byte), unless that client added its share of
        the file's downloads today already (L{ClientBound}).
        """
        now = self._clock.seconds()
        if self._bound.admits(address, filename, now, ranged):
            self._counter.count(filename, now)

    def last_downloaded(self, filename: str) -> float | None:
        """When C{filename} was last downloaded (counts not written yet too), or L{None}."""
        times = (self.book.last_downloaded(filename), self._counter.last_of(filename))
        return max((t for t in times if t is not None), default=None)

    # -- the part ---------------------------------------------------------------

    def startService(self) -> Deferred[None]:
        """
        Write every interval; read the records before the start goes on, so
        the first request sees every count written. A failed read is logged
        and the start goes on: counts are not worth waiting for a store.
        """
        Service.startService(self)
        self._loop.startService()
        reading: Deferred[None] = ensureDeferred(self.load())
        return reading.addErrback(lambda f: log.failure("Cannot read the download counts", f))

    def stopService(self) -> Deferred[Any]:
        """Write what was counted."""
        Service.stopService(self)
        return self._loop.stopService().addCallback(lambda _: self.flush())

    # -- reading ----------------------------------------------------------------

    async def load(self) -> None:
        """Sum every record the storage keeps, then fold the closed days and drop old ones."""
        records = await self._records()
        today = self.today
        self.book.load(records, today)
        self.loaded = True
        if self._fold_days:
            await self._fold(records, today)

    def _tick(self) -> Deferred[Any]:
        """Every interval: write the counts gathered; take in the other workers'."""
        return self.flush().addCallback(lambda _: ensureDeferred(self.take_in()))

    async def take_in(self) -> None:
        """In a worker of a machine: add the records the other workers wrote since the last look."""
        if self._share is None:
            return
        names = self._share.told()
        if names is None:
            await self.load()
            return
        today = self.today
        for name in names:
            try:
                data = await self._storage.usage_record(name)
                if data is None:
                    # (folded by the first worker meanwhile: every record read again)
                    await self.load()
                    return
                self.book.add(UsageRecord.from_bytes(data), today)
            except (StorageError, UsageInvalid) as e:
                log.warn("Cannot read the download counts {name}: {error}", name=name,
                         error=str(e))

    async def _records(self) -> dict[str, UsageRecord]:
        found: dict[str, UsageRecord] = {}
        for name, data in (await self._storage.usage_records()).items():
            if parse_name(name) is None:
                continue
            try:
                found[name] = UsageRecord.from_bytes(data)
            except UsageInvalid as e:
                log.warn("Skipping the usage record {name}: {error}", name=name, error=str(e))
        return found

    async def _fold(self, records: dict[str, UsageRecord], today: int) -> None:
        """Fold each closed day's records into one; drop the days out of the window."""
        days: dict[int, list[str]] = {}
        for name in records:
            parsed = parse_name(name)
            if parsed is not None:
                days.setdefault(parsed[0], []).append(name)
        replaced = {name for record in records.values() for name in record.replaces}
        try:
            for day, names in sorted(days.items()):
                if day <= today - WINDOW_DAYS - 1:
                    await self._storage.drop_usage(names)
                    continue
                if day >= today - 1:
                    continue
                folded = record_name(day, FOLDED, None)
                others = [name for name in names if name != folded]
                if not others or (folded not in records and len(others) < 2):
                    continue
                live = [records[name] for name in names
                        if name == folded or name not in replaced]
                record = merge(live, day, tuple(sorted(others)))
                await self._storage.add_usage(folded, record.to_bytes())
                await self._storage.drop_usage(others)
        except StorageError as e:
            log.warn("Cannot fold the download counts yet: {error}", error=str(e))

    # -- writing ----------------------------------------------------------------

    def flush(self) -> Deferred[Any]:
        """Write the counts gathered (one record a day they fall in), if any."""
        if self._writing is not None:
            # (one write at a time: the next interval takes what came meanwhile)
            return self._writing
        if not self._counter:
            return succeed(None)
        records = self._counter.take()
        done = ensureDeferred(self._write(records))
        if done.called:
            # (written at once: a storage that answers synchronously)
            return done

        def finished(result: object) -> object:
            self._writing = None
            return result
        self._writing = done
        return done.addBoth(finished)

    async def _write(self, records: list[UsageRecord]) -> None:
        today = self.today
        for i, record in enumerate(records):
            self._sequence += 1
            name = record_name(record.day, self._writer, self._sequence)
            try:
                await self._storage.add_usage(name, record.to_bytes())
            except StorageError as e:
                log.warn("Cannot write the download counts yet: {error}", error=str(e))
                self._counter.give_back(records[i:])
                return
            if self._share is not None:
                self._share.tell(name)
            self.book.add(record, today)
