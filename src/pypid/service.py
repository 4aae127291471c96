"""
The service tree: storage preparation, index loading, listeners, snapshots.

Start-up order matters: the listeners open only once the index is loaded
(from the snapshot, reconciled with storage, or rebuilt from storage), so a
client never sees a half-empty index; the snapshot timer starts after that.
"""

from urllib.parse import quote

import attrs
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.logger import Logger

from pypid import snapshot as snapshots

log = Logger()


def file_url_for(base_url):
    """
    Return C{file_url(record)}: the link a project page gives a file.

    Without a base URL the link is relative to C{/simple/<project>/}, so pages
    are right behind any proxy and never depend on the request's C{Host}.
    """
    if base_url:
        def file_url(record):
            return f"{base_url}files/{record.project}/{quote(record.filename)}"
    else:
        def file_url(record):
            return f"../../files/{record.project}/{quote(record.filename)}"
    return file_url


@attrs.define
class IndexLoader:
    """
    Fill the index at start-up: snapshot first when there is one, then the
    storage scan that reconciles it (or rebuilds from scratch).
    """

    index: object
    storage: object
    snapshot_path: str
    run: object
    clock: object

    async def load(self):
        """Load, reconcile, and report what was found."""
        started = self.clock.seconds()
        known, since, tombstones = {}, 0.0, ()
        try:
            snap = await self.run(snapshots.read, self.snapshot_path)
        except snapshots.SnapshotError as e:
            log.warn("Snapshot unusable, rebuilding the index from storage: {error}", error=str(e))
            snap = None
        if snap is not None:
            known, since, tombstones = snap.records, snap.saved_at, snap.tombstones
        await self.storage.prepare()
        result = await self.storage.scan(known, since)
        self.index.load(result.records.values(), result.tombstones | set(tombstones))
        for path, reason in result.skipped:
            log.warn("Not serving {path}: {reason}", path=path, reason=reason)
        log.info(
            "Index loaded: {files} files in {projects} projects ({how}) in {seconds:.2f} s",
            files=len(self.index), projects=len(self.index.projects()),
            how="from the snapshot and storage" if snap is not None else "from storage",
            seconds=self.clock.seconds() - started,
        )


class PypidService(MultiService):
    """
    The whole server. Its children (listeners, snapshot timer) start once the
    index is loaded; a load failure stops the process with one log line.
    """

    def __init__(self, loader, listeners, snapshot_service, threadpools, reactor):
        MultiService.__init__(self)
        self._loader = loader
        self._listeners = listeners
        self._snapshot_service = snapshot_service
        self._threadpools = threadpools
        self._reactor = reactor
        self.ready = Deferred()

    def startService(self):
        """Start the thread pools, load the index, then open the listeners."""
        Service.startService(self)
        for pool in self._threadpools:
            pool.start()
        d = ensureDeferred(self._loader.load())
        d.addCallback(self._loaded)
        d.addErrback(self._failed)

    def _loaded(self, _):
        for child in [*self._listeners, self._snapshot_service]:
            child.setServiceParent(self)
        self.ready.callback(None)

    def _failed(self, failure):
        log.failure("Cannot load the index; stopping", failure)
        self.stop_reactor()

    def stop_reactor(self):
        """Stop the process (after a fatal start-up error)."""
        if self._reactor.running:
            self._reactor.stop()

    def stopService(self):
        """Stop the children (saving the snapshot), then the thread pools."""
        d = MultiService.stopService(self)

        def stop_pools(result):
            for pool in self._threadpools:
                if pool.started:
                    pool.stop()
            return result
        d.addBoth(stop_pools)
        return d


class ListenerService(Service):
    """
    Listens on one endpoint while running. A failure to listen (port taken,
    bad certificate) stops the process with one clear line.
    """

    def __init__(self, endpoint, description, factory, on_failure):
        self.endpoint = endpoint
        self.description = description
        self.factory = factory
        self._on_failure = on_failure
        self._port = None
        self._listening = None

    def startService(self):
        """Start listening."""
        Service.startService(self)
        self._listening = self.endpoint.listen(self.factory)
        self._listening.addCallbacks(self._listened, self._failed)

    def _listened(self, port):
        self._port = port
        log.info("Listening on {endpoint}", endpoint=self.description)

    def _failed(self, failure):
        log.critical("Cannot listen on {endpoint}: {error}",
                     endpoint=self.description, error=failure.getErrorMessage())
        self._on_failure()

    def stopService(self):
        """Stop listening."""
        Service.stopService(self)
        if self._port is not None:
            port, self._port = self._port, None
            return maybeDeferred(port.stopListening)
        return None
