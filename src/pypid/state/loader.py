"""
Filling the index at start-up: from the snapshot when there is one, then
the storage scan that reconciles it (or rebuilds from scratch).

The listeners open only once the index is loaded, so a client never sees a
half-empty index; what follows the load (the check against the snapshot, or
reading files found without a record) holds Python's lock in part and begins
once they are open, so the first answers come first. Hence two parts of the
daemon: L{IndexPart} before the listeners, L{FollowUp} after.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

from pypid.config import Config
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import index_in_log
from pypid.core.indexes.pending import PendingFile
from pypid.core.parts import IMetricsSource, IReloadable
from pypid.core.records.metrics import GAUGE, Family, gauge
from pypid.core.records.serials import ProjectSerials
from pypid.core.util.clock_steps import ClockReading, trusted_since
from pypid.core.util.startup import StartupError
from pypid.core.util.units import counted
from pypid.state.backfill import Backfill
from pypid.state.merge import apply_changes, apply_statuses, merge_scan
from pypid.state.writer import SnapshotWriter, read_boot_clock
from pypid.storage.base import snapshot as snapshots
from pypid.storage.base import snapshot_reading
from pypid.storage.base.capabilities import ISharedStorage
from pypid.storage.base.interface import IStorage, ScanResult, StorageError
from pypid.storage.base.reading import decode_status, read_statuses
from pypid.storage.base.snapshot import Snapshot
from pypid.storage.factory import loading_index

if TYPE_CHECKING:
    # (the upstream's modules load only with [upstream]: they cost start-up time)
    from pypid.upstream.proxy import UpstreamProxy

log = Logger()


#: the index size from which start-up freezes what it made (see
#: L{IndexLoader.load}); below it, a collection is quick
FREEZE_AT = 10_000

#: how many projects loaded later (L{IndexLoader}) have their records made
#: in one turn of the reactor before the check: a turn also sends what a
#: socket takes of an answer, so a larger batch slows the answers meanwhile
LATER_BATCH = 50

#: Seconds before a check of storage against the snapshot that failed (the
#: storage could not be read) is tried again.
CHECK_RETRY = 30.0


@contextmanager
def collector_off(index: Index) -> Iterator[None]:
    """Collector off while records are made; a large index's then frozen (L{IndexLoader.load})."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if len(index) >= FREEZE_AT:
            gc.freeze()
        if collecting:
            gc.enable()


@attrs.define
class IndexLoader:
    """
    Fill the index at start-up (L{load}), then do what the load left for
    once the server listens (L{follow_up}).

    With a snapshot of a storage of this server's own, the index is served from
    the snapshot at once and the scan runs after (L{checked}): it reads every
    file's size and folder, 0.7 s at 100,000 files, more than the rest of the
    start, to find files copied in or removed by hand meanwhile. Changes made
    through the server since win (L{pypid.state.merge.merge_scan}).

    @ivar _backfill: reads the files found without a record, for a storage of
        this server's own (L{None}: they are read before the server answers).
    @ivar _recover: awaited before anything is read: takes back the promotions
        a crash interrupted, or L{None}.
    """

    _index: Index
    _storage: IStorage
    _snapshot_path: str
    #: C{run(f, *args) -> Deferred}: C{f(*args)} in the I/O thread pool
    _run: Callable[..., Deferred[Any]]
    _clock: IReactorTime
    writer: SnapshotWriter | None = None
    _upstream: UpstreamProxy | None = None
    _backfill: Backfill | None = None
    #: fires when the check of storage against the snapshot that followed
    #: the load is done (L{None} before the load, or without one)
    checked: Deferred[None] | None = None
    #: what L{follow_up} begins: C{() -> Deferred | None}
    _then: Callable[[], object] | None = None
    #: whether the index holds every stored file: it was read from storage,
    #: or storage was checked against the snapshot it was loaded from (a
    #: check that failed is tried again every L{CHECK_RETRY} seconds)
    storage_checked: bool = False
    _retry: IDelayedCall | None = None
    #: C{() -> (boot id, seconds since boot) | None}: the clock that never
    #: steps, to tell that the wall clock went back since the snapshot
    _boot_clock: Callable[[], tuple[str, float] | None] = read_boot_clock
    _recover: Callable[[], Awaitable[object]] | None = attrs.field(default=None, kw_only=True)
    #: the index's name in its log lines; L{None} on a server of one index
    name: str | None = attrs.field(default=None, kw_only=True)
    #: the journal's serials the server takes in, given back what the
    #: snapshot kept of them (the default index's); L{None}: none kept here
    serials: ProjectSerials | None = attrs.field(default=None, kw_only=True)

    async def load(self) -> None:
        """Load, and reconcile (or leave reconciling to L{follow_up}); report what was found."""
        # Start-up makes every record and project at once: the collector,
        # run every 700 allocations over all of them, took more than half
        # the time of a load. They live as long as the server does, so a
        # large load's are frozen out of its sight for good (gc.freeze).
        with collector_off(self._index):
            await self._load()

    def follow_up(self) -> None:
        """
        Begin, without waiting, what the load left for once the server listens:
        the check against the snapshot (L{checked} fires when done), or reading
        the files found without a record. Every index is loaded by then, so
        promoted files share their records with their source now.
        """
        self._index.share_promoted()
        then, self._then = self._then, None
        if then is not None:
            then()

    async def _load(self) -> None:
        started, later = self._clock.seconds(), ""
        if self._recover is not None:
            await self._recover()
        known: dict[str, FileRecord] = {}
        since, serial = 0.0, 0
        tombstones: Sequence[str] = ()
        shared = self._storage if ISharedStorage.providedBy(self._storage) else None
        snap = await self._snapshot(shared)
        if self.serials is not None:
            # (without a snapshot's, the journal is read from its beginning)
            self.serials.restore(snap.journal if snap is not None else None)
        # (a machine's folder's is also how far one process's index followed
        # the journal; another server's changes may be before that serial)
        taken = None if snap is None or shared is None else (
            snap.serial_taken if shared.checked_after_start else snap.changes)
        if snap is not None:
            known, since, serial = snap.records, snap.saved_at, snap.serial
            tombstones = snap.tombstones
            if shared is not None and snap.storage_state is not None:
                shared.restore_state(snap.storage_state)
            if shared is not None and taken is not None:
                shared.resume(taken)  # (the changes after it: read at the scan)
        # (a machine's folder too: the others' changes are taken in below)
        trusted = shared is None or (taken is not None and shared.checked_after_start)
        if snap is not None and trusted:
            how = self._served_from(snap)
            if shared is not None:
                await self._take_tail(shared)
        else:
            if self._backfill is not None:
                # (a backfilling storage's scan takes later: IBackfillStorage says so in
                # its docstring only, IStorage.scan does not declare it)
                result = await self._storage.scan(  # type: ignore[call-arg]
                    known, since, tombstones, later=True)
            else:
                result = await self._storage.scan(known, since, tombstones)
            # (the scan's tombstones and promotions are storage's, or the
            # snapshot's when it read none)
            promotions = result.promotions
            if promotions is None and snap is not None and snap.promotions:
                # (of the files storage still holds)
                held = result.records.keys() | {item.filename for item in result.pending}
                promotions = {filename: promotion for filename, promotion
                              in snap.promotions.items() if filename in held}
            self._index.load(result.records.values(), result.tombstones, serial,
                             promotions=promotions)
            self._scanned(snap, result)
            self.storage_checked = True
            how = "from the snapshot and storage" if snap is not None else "from storage"
            if result.pending:
                self._leave_to_backfill(result.pending)
                # (counted once described: said here, so the counts add up)
                later = f", {counted(len(result.pending), 'file')} still to describe"
        # (not in the snapshot; read as the static export and the bundles read them)
        self._index.statuses.take(await read_statuses(self._storage))
        if self._upstream is not None:
            await self._upstream.source.load(snap.upstream_state if snap is not None else None,
                                             since)
        log.info(
            "{index} loaded: {files} in {projects} ({how}) in {seconds:.2f} s{later}",
            index="Index" if self.name is None else f"Index {self.name}",
            files=counted(len(self._index), "file"),
            projects=counted(len(self._index.projects()), "project"), how=how,
            seconds=self._clock.seconds() - started, later=later,
        )

    async def _snapshot(self, shared: ISharedStorage | None) -> Snapshot | None:
        """
        The usable snapshot to start from, if any: read lazily (each project's
        records made when first asked for, or by L{_load_later}) for a storage
        of this server's own, or a machine's folder whose snapshot names the
        journal's serial taken in; else whole, for the scan.
        """
        lazily = shared is None or shared.checked_after_start
        path = self._snapshot_path
        try:
            snap = await self._run(snapshot_reading.read, path, lazily)
            if lazily and shared is not None and snap is not None and snap.serial_taken is None:
                snap = await self._run(snapshot_reading.read, path, False)
        except snapshots.SnapshotError as e:
            log.warn("Snapshot unusable, rebuilding the index from storage: {error}", error=str(e))
            snap = None
        snap = self._same_storage(snap)
        if snap is None and shared is not None:
            snap = self._same_storage(await self._shared_snapshot(shared))
        return self._dated_before_steps(snap) if snap is not None else None

    def _served_from(self, snap: Snapshot) -> str:
        """Load the index from C{snap}, checked once the server listens; how, for the log."""
        self._index.load(snap.records.values(), snap.tombstones, snap.serial, snap.later,
                         snap.promotions)
        checking = attrs.evolve(snap, later=())  # (held by the check: not its lines)
        if self.writer is not None:
            if snap.format == snapshots.FORMAT:
                # (saved again only if the check finds it must be)
                self.writer.loaded_as_saved()
            self.writer.checking(snap.saved_at)
        self.checked = Deferred()
        self._then = lambda: ensureDeferred(self._check(checking)).chainDeferred(self.checked)
        return "from the snapshot; storage is checked against it now"

    async def _take_tail(self, shared: ISharedStorage) -> None:
        """
        Take in the others' changes since the snapshot, before any answer:
        statuses first, then files, as a look does (L{pypid.state.sync}).
        """
        polled = await shared.poll()
        apply_statuses(self._index, {name: decode_status(name, data)
                                     for name, data in polled.statuses.items()})
        apply_changes(self._index, polled.files)

    def _leave_to_backfill(self, pending: Sequence[PendingFile]) -> None:
        """Leave the files found without a record to the backfill, once the server listens."""
        writer = self.writer
        if writer is not None:
            # Until they are all read, no snapshot is saved, not even at a
            # stop: the next start lists storage again, as this one did. A
            # partial snapshot dated now would be taken as whole by a start
            # that finds no folder changed, missing the unread files; dated
            # earlier, that start would answer only once its check read all.
            writer.hold()
        backfill = self._backfill
        assert backfill is not None  # (only a scan with later leaves files pending)
        # (its projects are known to wait at once: their pages wait for them)
        backfill.note(pending)
        done = writer.release if writer is not None else None
        self._then = lambda: backfill.begin(done)

    def _scanned(self, snap: Snapshot | None, result: ScanResult) -> None:
        """What follows a scan: saves it calls for, files it could not serve."""
        if self.writer is not None and (snap is None or snap.format != snapshots.FORMAT
                                         or not result.current):
            # (one storage had to be read against, or of an older format, is
            # written again, dated now, so the next start need not read it)
            self.writer.want_save()
        if result.settled is not None and self.writer is not None:
            # (what the scan wrote beside imported files is newer than any snapshot)
            writer = self.writer
            result.settled.addCallback(lambda _: writer.want_save())
        for path, reason in result.skipped:
            log.warn("Not serving {path}: {reason}", path=path, reason=reason)

    async def _load_later(self, snap: Snapshot) -> Snapshot:
        """
        Make the records of the projects loaded later, L{LATER_BATCH} a turn of
        the reactor, and return the snapshot with the index's records as they
        are now (changes since the start included: L{merge_scan} tells them
        apart), for the check to compare storage with.
        """
        index = self._index
        names = index.later.names()
        if not names:
            return snap
        for first in range(0, len(names), LATER_BATCH):
            if first:
                await deferLater(self._clock, 0, lambda: None)
            with collector_off(index):
                index.later.make(names[first:first + LATER_BATCH])
        # (a snapshot read with later holds no records of its own)
        return attrs.evolve(snap, records={r.filename: r for r in index.records()})

    async def _check(self, snap: Snapshot) -> None:
        """Scan storage against the snapshot the index was loaded from, then merge."""
        started = self._clock.seconds()
        try:
            snap = await self._load_later(snap)
            # (a damaged line lost its files: every record is read again)
            since = 0.0 if snap.damaged else snap.saved_at
            result = await self._storage.scan(snap.records, since, snap.tombstones)
        except StorageError as e:
            # (saves stay dated by the snapshot's time, so a start after this one
            # checks storage too; until a check passes the index is not ready)
            log.error("Cannot check storage against the snapshot{of} (serving the index the "
                      "snapshot holds; trying again in {retry:.0f} s): {error}",
                      of=index_in_log(self.name), retry=CHECK_RETRY, error=str(e))
            self._retry = self._clock.callLater(CHECK_RETRY, self._check_again, snap)
            return
        if self.writer is not None:
            self.writer.checked()
        self.storage_checked = True
        counts = merge_scan(self._index, snap.records, frozenset(snap.tombstones),
                            result.records, result.tombstones)
        if result.promotions is not None:
            self._index.take_promotions(result.promotions)
        self._scanned(snap, result)
        log.info("Storage checked against the snapshot{of} in {seconds:.2f} s: files added "
                 "{added}, changed {changed}, gone {gone}", of=index_in_log(self.name),
                 seconds=self._clock.seconds() - started, **counts)

    def _check_again(self, snap: Snapshot) -> None:
        self._retry = None
        checking = ensureDeferred(self._check(snap))
        checking.addErrback(lambda f: log.failure("Checking storage against the snapshot", f))

    def stop(self) -> None:
        """The server stops: no check is tried again."""
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    def _dated_before_steps(self, snap: Snapshot) -> Snapshot:
        """
        The snapshot, dated earlier when the wall clock went back since it was
        saved (L{pypid.core.util.clock_steps}): a change made after the save
        was stamped older than the snapshot, and trusting its time would take
        the snapshot's record for the change's (a yank reverted after a crash).
        Only the span the clock went back over is read again.
        """
        boot = self._boot_clock()
        now = ClockReading(self._clock.seconds(), *boot) if boot is not None else None
        since, back = trusted_since(snap.saved_at, snap.clock, now)
        if not back:
            return snap
        log.warn("The wall clock went back {step:.1f} s since the snapshot was saved: "
                 "storage is read again for what changed since {since:.0f} (rather "
                 "than {saved_at:.0f})", step=back, since=since, saved_at=snap.saved_at)
        return attrs.evolve(snap, saved_at=since)

    def _same_storage(self, snap: Snapshot | None) -> Snapshot | None:
        """The snapshot, if it describes this storage's data."""
        if snap is not None and snap.storage not in (None, self._storage.identity()):
            log.warn("The snapshot describes {other}, not {this}: rebuilding the index "
                     "from storage", other=snap.storage, this=self._storage.identity())
            return None
        return snap

    async def _shared_snapshot(self, shared: ISharedStorage) -> Snapshot | None:
        """The snapshot another server kept in the shared storage, if any."""
        try:
            data = await shared.load_snapshot()
            if data is None:
                return None
            snap = await self._run(snapshot_reading.decode, data)
        except (StorageError, snapshots.SnapshotError) as e:
            log.warn("Not using the snapshot kept in the storage: {error}", error=str(e))
            return None
        log.info("Starting from the snapshot kept in the storage")
        return snap


@implementer(IMetricsSource)
@attrs.define
class IndexMetrics:
    """
    The index's numbers for C{/metrics}, summed again only when the serial
    moved; labelled C{index} with C{_label} on a server of named indexes.
    """

    _index: Index
    _label: str | None = None
    #: (serial, projects, files, bytes) when last summed
    _sizes: tuple[int | None, int, int, int] = (None, 0, 0, 0)

    def metric_families(self) -> Iterator[Family]:
        """The projects, files and bytes hosted, the serial, and the rendered pages kept."""
        label = self._label
        if label is None:
            yield from self._families(gauge)
            return

        def labelled(name: str, help: str, value: float) -> Family:
            return Family(GAUGE, name, help, ("index",), (((label,), value),))
        yield from self._families(labelled)

    def sizes(self) -> tuple[int, int, int | None]:
        """
        C{(projects, files, bytes)} hosted; bytes L{None} while projects loaded
        later wait for their records: making them all at once would hold
        requests.
        """
        index = self._index
        if index.later.waiting:
            return len(index.projects()), len(index), None
        if self._sizes[0] != index.serial:
            records = index.records()
            self._sizes = (index.serial, len(index.projects()), len(records),
                           sum(record.size for record in records))
        _, projects, files, size = self._sizes
        return projects, files, size

    def _families(self, gauge: Callable[[str, str, float], Family]) -> Iterator[Family]:
        """The families, each made by C{gauge(name, help, value)}."""
        index = self._index
        projects, files, size = self.sizes()
        yield gauge("pypid_index_projects", "Projects hosted.", projects)
        yield gauge("pypid_index_files", "Distribution files hosted.", files)
        if size is not None:
            yield gauge("pypid_index_bytes", "Bytes of the distribution files hosted.", size)
        yield gauge("pypid_index_serial", "The index's serial: it moves at every change.",
                    index.serial)
        yield gauge("pypid_page_cache_bytes",
                    "Bytes of rendered project pages kept (page_cache_size).",
                    index.rendered.bytes)
        yield gauge("pypid_page_cache_projects", "Projects whose rendered pages are kept.",
                    index.rendered.kept_projects)


@implementer(IReloadable, IMetricsSource)
class IndexPart(Service):
    """
    The index as a part of the daemon: loaded before the listeners open (a
    failure stops start-up with C{Cannot load the index: ...}); C{SIGHUP}
    brings the new page budget and access rules; C{/metrics} its sizes.
    """

    def __init__(self, index: Index, loader: IndexLoader, label: str | None = None) -> None:
        """@param label: the index's name for its families' label (L{IndexMetrics})."""
        self.index = index
        self.loader = loader
        self._metrics = IndexMetrics(index, label)

    def startService(self) -> Deferred[None]:
        """Load the index."""
        Service.startService(self)
        return ensureDeferred(self._load())

    def stopService(self) -> None:
        """No check of storage is tried again."""
        Service.stopService(self)
        self.loader.stop()

    async def _load(self) -> None:
        try:
            await loading_index(self.loader.load())
        except StartupError:
            raise
        except Exception:
            log.failure("Cannot load the index")
            raise StartupError("Cannot load the index: stopping")

    def prepare_reload(self, config: Config | None) -> Callable[[], None] | None:
        """Take C{[pypid] page_cache_size}, and judge the pages kept per reader's view again."""
        if config is None:
            return None
        index, writer = self.index, self.loader.writer
        judge = partial(index.reconfigure, config.server.page_cache_size)
        return judge if writer is None else partial(writer.views_judged_again, judge)

    def metric_families(self) -> Iterator[Family]:
        """The projects, files and bytes hosted, the serial, and the rendered pages kept."""
        return self._metrics.metric_families()

    def sizes(self) -> tuple[int, int, int | None]:
        """C{(projects, files, bytes)} hosted (L{IndexMetrics.sizes})."""
        return self._metrics.sizes()


class FollowUp(Service):
    """Started after the listeners: begins what the load left (L{IndexLoader.follow_up})."""

    def __init__(self, loader: IndexLoader) -> None:
        self._loader = loader

    def startService(self) -> None:
        """Begin the work the load left."""
        Service.startService(self)
        self._loader.follow_up()
