"""
The service tree: storage preparation, index loading, listeners, snapshots.

Start-up order matters: the listeners open only once the index is loaded
(from the snapshot, or listed from storage), so a client never sees a
half-empty index; what follows the load (the check of storage against the
snapshot, reading records and describing files) begins once they are
open, and the snapshot timer with them.
"""

import atexit
import gc
import os
import sys
from contextlib import contextmanager

import attrs
from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, maybeDeferred, succeed
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger

from pypid.config import ConfigError
from pypid.storage import snapshot as snapshots
from pypid.storage.interface import Changed, ISharedStorage, StorageError
from pypid.tls import TLSError

log = Logger()


#: the index size from which start-up freezes what it made (see
#: L{IndexLoader.load}); below it, a collection is quick
FREEZE_AT = 10_000

#: how many projects loaded later (L{IndexLoader}) have their records made
#: in one turn of the reactor before the check: about 1.5 ms of work (250
#: files of the bench corpus) between two turns. A turn also sends what a
#: socket takes of an answer: with 500 projects (15 ms) a turn, the 11 MB
#: C{/simple/} of a million files took 1.5 to 2 s to send
LATER_BATCH = 50


@contextmanager
def _collector_off(index):
    """
    The garbage collector off while records are made, and what was made
    frozen out of its sight after, for a large index (see L{IndexLoader.load}).
    """
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
    Fill the index at start-up: snapshot first when there is one, then the
    storage scan that reconciles it (or rebuilds from scratch).

    With a snapshot of a storage of this server's own (not one shared with
    other servers), the index is served from the snapshot at once and the
    scan runs after (L{checked}): it reads every file's size and every
    folder, 0.7 s at 100,000 files, more than the rest of the start, to
    find files copied in or removed by hand while the server was stopped,
    which appear (or go) when it ends. Changes made through the server
    meanwhile win over what the scan saw (L{_merge}).
    """

    index: object
    storage: object
    snapshot_path: str
    run: object
    clock: object
    writer: object = None
    upstream: object = None
    #: fires when the check of storage against the snapshot that started
    #: after the load is done (L{None} before the load, or without one)
    checked: object = None
    #: the L{pypid.describer.Describer} of files found without a record,
    #: given for a storage of this server's own that can leave them to it
    #: (or L{None}: they are described before the server answers)
    describer: object = None
    #: a L{Deferred} that fires once the server listens (the service's
    #: C{ready}), which the work after the load waits for: the check and
    #: the describing hold Python's lock in part, and the first answers
    #: come first; L{None} to begin it at once
    listening: object = None

    async def load(self):
        """Load, reconcile (or start reconciling), and report what was found."""
        # Start-up makes every record and project at once: the collector,
        # run every 700 allocations over all of them, took more than half
        # the time of an index load (0.19 s rather than 0.07 at 100,001
        # files). They live as long as the server does: after a large load
        # they are frozen out of the collector's sight for good
        # (gc.freeze), so that no later collection goes over a million
        # records either.
        with _collector_off(self.index):
            await self._load()

    async def _load(self):
        started = self.clock.seconds()
        known, since, serial, tombstones = {}, 0.0, 0, ()
        # A storage of this server's own is served from the snapshot before
        # it is checked: each project's records are made when first asked
        # for, or by the check (L{_load_later}), not before the listeners open.
        shared = self.storage if ISharedStorage.providedBy(self.storage) else None
        try:
            snap = await self.run(snapshots.read, self.snapshot_path, shared is None)
        except snapshots.SnapshotError as e:
            log.warn("Snapshot unusable, rebuilding the index from storage: {error}", error=str(e))
            snap = None
        snap = self._same_storage(snap)
        await self.storage.prepare()
        if snap is None and shared is not None:
            snap = self._same_storage(await self._shared_snapshot(shared))
        if snap is not None:
            known, since, serial = snap.records, snap.saved_at, snap.serial
            tombstones = snap.tombstones
            if shared is not None and snap.storage_state is not None:
                shared.restore_state(snap.storage_state)
        if snap is not None and shared is None:
            self.index.load(known.values(), tombstones, serial, snap.later)
            snap = attrs.evolve(snap, later=())  # (held by the check: not its lines)
            if self.writer is not None:
                if snap.format == snapshots.FORMAT:
                    # (saved again only if the check finds it must be)
                    self.writer.saved_serial = self.index.serial
                self.writer.unchecked_since = since
            self.checked = ensureDeferred(self._check(snap))
            how = "from the snapshot; storage is checked against it now"
        else:
            if self.describer is not None:
                result = await self.storage.scan(known, since, tombstones, later=True)
            else:
                result = await self.storage.scan(known, since, tombstones)
            # The scan's tombstones are storage's: read from the records, or
            # the snapshot's own when the scan found nothing changed since it.
            self.index.load(result.records.values(), result.tombstones, serial)
            self._scanned(snap, result)
            how = "from the snapshot and storage" if snap is not None else "from storage"
            if result.pending:
                self._describe(result.pending)
        if self.upstream is not None:
            await self.upstream.load(snap.upstream_state if snap is not None else None, since)
        log.info(
            "Index loaded: {files} files in {projects} projects ({how}) in {seconds:.2f} s",
            files=len(self.index), projects=len(self.index.projects()), how=how,
            seconds=self.clock.seconds() - started,
        )

    def _describe(self, pending):
        """Leave the files found without a record to the describer."""
        writer = self.writer
        if writer is not None:
            # Until they are all read, no snapshot is saved, not even at a
            # stop: the next start lists the storage again and reads what
            # it holds, a record at a time in the background, as this one
            # does. A snapshot of part of them would be worse: dated as of
            # this start, it would be taken as whole by a start that finds
            # no folder changed since, and the files still to be read
            # (their records there already: nothing is written for them)
            # would be missing; dated earlier, that start would answer only
            # once its check had read every record.
            writer.holding = True

        def done():
            if writer is not None:
                # (saved now, not at the next tick: until it is, a start
                # would read every record again)
                writer.holding = False
                writer.want_save()
                writer.save_if_changed()
        self.describer.start(pending, done, self._after_listening())

    def _after_listening(self):
        """A L{Deferred} that fires once the server listens (at once without L{listening})."""
        if self.listening is None:
            return succeed(None)
        d = Deferred()

        def fire(result):
            d.callback(None)
            return result
        self.listening.addCallback(fire)
        return d

    def _scanned(self, snap, result):
        """What follows a scan: saves it calls for, files it could not serve."""
        if self.writer is not None and (snap is None or snap.format != snapshots.FORMAT
                                        or not result.current):
            # A snapshot that storage had to be read against (however little
            # changed) is written again, dated now, so that the next start
            # need not read it again; so is one of an older format, in this
            # version's. One that says what storage holds is not: that
            # would only cost a write of all of it (40 MB and 0.2 s at
            # 100,000 files).
            self.writer.want_save()
        if result.settled is not None and self.writer is not None:
            # What the scan wrote beside imported files is newer than any
            # snapshot: save one after it, so the next start can trust it.
            result.settled.addCallback(lambda _: self.writer.want_save())
        for path, reason in result.skipped:
            log.warn("Not serving {path}: {reason}", path=path, reason=reason)

    async def _load_later(self, snap):
        """
        Make the records of the projects the index loaded later, a batch
        of L{LATER_BATCH} projects a turn of the reactor, and return the
        snapshot with them: what the check compares storage with. Records
        are the index's, as it holds them now, changes through the server
        since the start included (L{_merge} tells them apart).
        """
        index = self.index
        names = index.later()
        if not names:
            return snap
        for first in range(0, len(names), LATER_BATCH):
            if first:
                await deferLater(self.clock, 0, lambda: None)
            with _collector_off(index):
                index.load_later(names[first:first + LATER_BATCH])
        # (a snapshot read with later holds no records of its own)
        return attrs.evolve(snap, records={r.filename: r for r in index.records()})

    async def _check(self, snap):
        """Scan storage against the snapshot the index was loaded from, then merge."""
        await self._after_listening()
        started = self.clock.seconds()
        try:
            snap = await self._load_later(snap)
            # (a line found damaged lost its files from the records made:
            # every record is read again, however unchanged the folders)
            since = 0.0 if snap.damaged else snap.saved_at
            result = await self.storage.scan(snap.records, since, snap.tombstones)
        except StorageError as e:
            log.error("Cannot check storage against the snapshot (serving the index the "
                      "snapshot holds): {error}", error=str(e))
            return
        finally:
            if self.writer is not None:
                self.writer.unchecked_since = None
        counts = self._merge(snap.records, frozenset(snap.tombstones), result)
        self._scanned(snap, result)
        log.info("Storage checked against the snapshot in {seconds:.2f} s: files added "
                 "{added}, changed {changed}, gone {gone}",
                 seconds=self.clock.seconds() - started, **counts)

    def _merge(self, known, deleted, result):
        """
        Bring into the index what the scan found changed since the
        snapshot C{known}, except where the index changed meanwhile (an
        upload, a yank, a deletion through the server is newer than what
        the scan saw): a file is added only where the index has no file and
        no tombstone of that name, and changed or removed only where the
        index still holds the very record the snapshot gave it.
        """
        index = self.index
        added = changed = gone = 0
        for filename, record in result.records.items():
            was = known.get(filename)
            if was is record:
                continue
            now = index.get_file(filename)
            if was is None:
                if now is None and not index.is_deleted(filename):
                    index.add(record)
                    added += 1
            elif now is was and record != was:
                index.add(record)
                changed += 1
        for filename, was in known.items():
            if filename not in result.records and index.get_file(filename) is was:
                if filename in result.tombstones:
                    index.remove(filename)
                else:
                    index.discard(filename)
                gone += 1
        for filename in result.tombstones:
            if filename not in deleted and not index.is_deleted(filename) \
                    and index.get_file(filename) is None:
                index.remove(filename)
        return {"added": added, "changed": changed, "gone": gone}

    def _same_storage(self, snap):
        """The snapshot, if it describes this storage's data."""
        if snap is not None and snap.storage not in (None, self.storage.identity()):
            log.warn("The snapshot describes {other}, not {this}: rebuilding the index "
                     "from storage", other=snap.storage, this=self.storage.identity())
            return None
        return snap

    async def _shared_snapshot(self, shared):
        """The snapshot another server kept in the shared storage, if any."""
        try:
            data = await shared.load_snapshot()
            if data is None:
                return None
            snap = await self.run(snapshots.decode, data)
        except (StorageError, snapshots.SnapshotError) as e:
            log.warn("Not using the snapshot kept in the storage: {error}", error=str(e))
            return None
        log.info("Starting from the snapshot kept in the storage")
        return snap


class SyncService(TimerService):
    """
    Brings in the changes other servers on the same storage made, every
    C{sync_interval}: new files, yanks, deletions.
    """

    def __init__(self, index, storage, clock):
        TimerService.__init__(self, storage.sync_interval, self.sync)
        self.clock = clock
        self._index = index
        self._storage = storage
        self._reconciling = None

    def sync(self):
        """
        Poll once, and start a full check in the background when one is due;
        never fails (a failure is logged and the next tick tries again).
        """
        if self._reconciling is None and self._storage.reconcile_due():
            self._reconciling = ensureDeferred(self._reconcile())
            self._reconciling.addErrback(lambda f: log.warn(
                "Cannot check the index against the storage: {error}",
                error=f.getErrorMessage()))
            self._reconciling.addBoth(self._reconciled)
        d = ensureDeferred(self._sync())
        d.addErrback(lambda f: log.warn("Cannot look for changes by other servers: {error}",
                                        error=f.getErrorMessage()))
        return d

    def _reconciled(self, _):
        self._reconciling = None

    def stopService(self):
        """Stop polling; a full check under way is abandoned."""
        if self._reconciling is not None:
            self._reconciling.cancel()
        return TimerService.stopService(self)

    async def _sync(self):
        changes = await self._storage.poll()
        self._apply(changes)
        if changes:
            log.info("Took in {count} changes made by other servers", count=len(changes))

    def _apply(self, changes):
        index = self._index
        for change in changes:
            if change.deleted:
                if index.get_file(change.filename) is not None or not index.is_deleted(
                        change.filename):
                    index.remove(change.filename)
            elif change.record is None:
                index.discard(change.filename)
            elif index.get_file(change.filename) != change.record:
                index.add(change.record)

    async def _reconcile(self):
        """
        Check the index against a full listing of the storage, and take in
        what only the listing shows: files put there behind pypid's back, or
        changes whose markers were missed. The storage reads again every file
        where the two disagree, so what is applied is the state as it is now;
        a file uploaded while the listing ran (not in C{known}) is left alone.
        """
        index = self._index
        known = {record.filename: record for record in index.records()}
        result = await self._storage.reconcile(known, index.tombstones())
        changes = [Changed(filename, record, False) for filename, record in
                   result.records.items()
                   if index.get_file(filename) != record and not index.is_deleted(filename)]
        changes += [Changed(filename, None, True) for filename in result.tombstones
                    if not index.is_deleted(filename)]
        changes += [Changed(filename, None, False) for filename in known
                    if filename not in result.records and filename not in result.tombstones]
        for path, reason in result.skipped:
            log.warn("Not serving {path}: {reason}", path=path, reason=reason)
        self._apply(changes)
        log.info("Checked the index against the whole storage: {count} differences",
                 count=len(changes))


#: How long a stopping server waits for the requests in flight (seconds):
#: under the shipped unit's TimeoutStopSec, with time left for the snapshot.
DRAIN_TIMEOUT = 20.0
DRAIN_POLL = 0.05


class PypidService(MultiService):
    """
    The whole server. The listeners start once the index is loaded, and the
    snapshot timer once every listener is up; a failure on the way (storage
    unusable, port taken) stops the process with one log line and a non-zero
    exit status, so a supervisor such as systemd sees it failed.
    """

    def __init__(self, loader, listeners, snapshot_service, threadpools, reactor,
                 exit_on_failure=False, sync_service=None, index=None, site=None, tls=None,
                 notifier=None, reconfigure=None, audit=None):
        """
        @param index: the L{pypid.core.index.Index} the server serves.
        @param site: the L{pypid.web.site.PypidSite} of its listeners.
        @param tls: the L{pypid.tls.ServerTLS} of its C{https:} listeners
            (reloaded on C{SIGHUP}), or L{None}.
        @param notifier: the L{pypid.systemd.Notifier} of a C{Type=notify}
            unit, or L{None}.
        @param reconfigure: C{reconfigure(config) -> str}, taking a reloaded
            configuration's users and rules (and saying what it took), or
            L{None}.
        @param audit: the L{pypid.web.audit.AuditTrail}, written out at the
            stop, or L{None}.
        """
        MultiService.__init__(self)
        self.index = index
        self.site = site
        self.tls = tls
        self._sync_service = sync_service
        self._exit_on_failure = exit_on_failure
        self._loader = loader
        self._listeners = listeners
        self._snapshot_service = snapshot_service
        self._threadpools = threadpools
        self._reactor = reactor
        self._notifier = notifier
        self._watchdog = None
        self._reconfigure = reconfigure
        self._audit = audit
        #: C{load_config() -> Config}, reading the configuration as start-up
        #: did (set by the composition root), or L{None}
        self.load_config = None
        self.ready = Deferred()
        self.failed = False

    def startService(self):
        """Start the thread pools, load the index, then open the listeners."""
        Service.startService(self)
        for pool in self._threadpools:
            pool.start()
        d = ensureDeferred(self._loader.load())
        d.addCallbacks(self._loaded, self._load_failed)

    def _loaded(self, _):
        for listener in self._listeners:
            listener.setServiceParent(self)
        d = DeferredList([listener.listening for listener in self._listeners],
                         fireOnOneErrback=True, consumeErrors=True)
        d.addCallbacks(self._listening, self._listen_failed)

    def _listening(self, _):
        self._snapshot_service.setServiceParent(self)
        if self._sync_service is not None:
            self._sync_service.setServiceParent(self)
        notifier = self._notifier
        if notifier is not None:
            files = len(self.index) if self.index is not None else 0
            notifier.send("READY=1", f"STATUS=Serving {files} files")
            if notifier.watchdog:
                self._watchdog = LoopingCall(notifier.send, "WATCHDOG=1")
                self._watchdog.clock = self._reactor
                self._watchdog.start(notifier.watchdog, now=True)
        self.ready.callback(None)

    def _listen_failed(self, failure):
        self.fatal("Cannot listen on {endpoint}: {error}".format(
            endpoint=failure.value.subFailure.value.description,
            error=failure.value.subFailure.value.reason))

    def _load_failed(self, failure):
        if failure.check(StorageError):
            self.fatal(f"Cannot load the index: {failure.getErrorMessage()}")
        else:
            log.failure("Cannot load the index", failure)
            self.fatal("Cannot load the index: stopping")

    def reload(self):
        """
        What C{SIGHUP} (C{systemctl reload}) does: read the configuration
        again and take its users, groups, admins, C{[acl]} rules, htpasswd
        file and token file, and read the C{[tls]} files again when the
        server serves HTTPS. Connections and uploads in flight go on. A
        configuration that cannot be used is logged as start-up would say
        it, and the one in use stays. The signal never stops the server.
        """
        if self.load_config is not None and self._reconfigure is not None:
            try:
                took = self._reconfigure(self.load_config())
            except ConfigError as e:
                log.error("Not reloading the configuration, still using the one loaded "
                          "before: {error}", error=str(e))
            except SystemExit as e:  # (a token file start-up would refuse)
                log.error("Not reloading the configuration, still using the one loaded "
                          "before: {error}", error=str(e).removeprefix("pypid: "))
            else:
                log.info("Reloaded the configuration: {took} (listeners, storage and the "
                         "other keys change at the next restart)", took=took)
        if self.tls is not None:
            self.tls.reload()
        elif self.load_config is None:
            log.info("Received SIGHUP: nothing to reload (no https: listener)")

    async def _drain(self):
        """
        Wait, with a deadline (L{DRAIN_TIMEOUT}), for the requests under way
        when the server stopped listening, and for those a client is about to
        send on a connection it just opened or was just answered on: an
        upload or a download in flight is finished rather than cut (and an
        upload then in the last snapshot), and a connection accepted just
        before the stop is answered, not dropped. Behind a socket that
        outlives the server (systemd's socket activation), no client sees a
        restart.
        """
        counter = getattr(self.site, "counter", None)
        clock = self._reactor

        def in_flight():
            return counter.in_flight(clock.seconds())

        if counter is None or not in_flight():
            return
        log.info("Stopped listening; finishing {count} requests in flight", count=in_flight())
        deadline = clock.seconds() + DRAIN_TIMEOUT
        while in_flight() and clock.seconds() < deadline:
            await deferLater(clock, DRAIN_POLL, lambda: None)
        if in_flight():
            log.warn("Stopping with {count} requests still in flight after {timeout:g} s",
                     count=in_flight(), timeout=DRAIN_TIMEOUT)

    def fatal(self, message):
        """
        Stop the process after an error at start-up, with one critical log
        line and exit status 1 (twistd itself always exits with 0 after a
        clean reactor stop, so the status is set once its cleanup is done).
        """
        self.failed = True
        log.critical("{problem}", problem=message)
        if self._exit_on_failure:
            atexit.register(_exit_failed)
        if self._reactor.running:
            self._reactor.stop()

    def stopService(self):
        """
        Stop listening first, then finish the requests in flight (with a
        deadline), then take the last snapshot (so it holds every change a
        client could still make), then stop the thread pools.
        """
        Service.stopService(self)
        if self._notifier is not None:
            self._notifier.send("STOPPING=1")
            if self._watchdog is not None and self._watchdog.running:
                self._watchdog.stop()
        if self._sync_service is not None and self._sync_service.running:
            self._sync_service.stopService()
        d = DeferredList([maybeDeferred(listener.stopService)
                          for listener in self._listeners if listener.running])
        d.addCallback(lambda _: ensureDeferred(self._drain()))

        def save(_):
            if self._snapshot_service.running:
                return self._snapshot_service.stopService()
        d.addCallback(save)

        def audit(result):
            # (after the requests in flight, whose changes it records; before
            # the thread pools, which write it)
            if self._audit is None:
                return result
            closing = maybeDeferred(self._audit.close)
            closing.addErrback(lambda f: log.failure("Cannot write the audit log", f))
            return closing.addCallback(lambda _: result)
        d.addBoth(audit)

        def close(result):
            if self._loader.upstream is not None:
                self._loader.upstream.close()
            closing = maybeDeferred(self._loader.storage.close)
            closing.addErrback(lambda f: log.warn("Cannot close the storage cleanly: {error}",
                                                  error=f.getErrorMessage()))
            return closing.addCallback(lambda _: result)

        def stop_pools(result):
            for pool in self._threadpools:
                if pool.started:
                    pool.stop()
            return result
        d.addBoth(close)
        d.addBoth(stop_pools)
        return d


def _exit_failed():
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


class ListenFailed(Exception):
    """A listener could not open its endpoint."""

    def __init__(self, description, reason):
        super().__init__(f"{description}: {reason}")
        self.description = description
        self.reason = reason


class ListenerService(Service):
    """
    Listens on one endpoint while running.

    @ivar listening: a L{Deferred} that fires when listening started, or
        fails with L{ListenFailed}.
    """

    def __init__(self, endpoint, description, factory, prepare=None, after=()):
        """
        @param prepare: called before listening, such as
            L{pypid.tls.ServerTLS.load}; a L{TLSError} it raises fails
            C{listening} with its message, and nothing listens.
        @param after: the C{listening} L{Deferred}s of listeners this one
            waits for: it opens only once they all listen, and never if one
            fails (a redirect to HTTPS never opens without the HTTPS listener).
        """
        self.endpoint = endpoint
        self.description = description
        self.factory = factory
        self._prepare = prepare
        self._after = list(after)
        self._port = None
        self.listening = Deferred()

    def startService(self):
        """Prepare, wait for the listeners this one comes after, then start listening."""
        Service.startService(self)
        if self._prepare is not None:
            try:
                self._prepare()
            except TLSError as e:
                self.listening.errback(ListenFailed(self.description, str(e)))
                return
        if not self._after:
            self._listen()
            return
        ready = DeferredList(self._after, fireOnOneErrback=True)
        ready.addCallbacks(lambda _: self._listen(), lambda _: None)

    def _listen(self):
        if not self.running:
            return
        d = self.endpoint.listen(self.factory)
        d.addCallbacks(self._listened, self._failed)

    def _listened(self, port):
        self._port = port
        log.info("Listening on {endpoint}", endpoint=self.description)
        self.listening.callback(port)

    def _failed(self, failure):
        self.listening.errback(ListenFailed(self.description, failure.getErrorMessage()))

    def stopService(self):
        """Stop listening."""
        Service.stopService(self)
        if self._port is not None:
            port, self._port = self._port, None
            return maybeDeferred(port.stopListening)
        return None
