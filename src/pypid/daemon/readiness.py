"""
Whether the server is ready: its index answers with every stored file.

A start from a snapshot serves it at once and checks storage against it
once the listeners open (L{pypid.state.loader}); after a clean stop the
snapshot says what storage holds. After a crash (C{kill -9}, power loss)
it does not: the changes since its last save are found by the check
alone, and until then the upload of a moment ago answered C{404} (for
116-142 ms, 300 files copied in by hand) while C{/health} said ready. So
a L{RunningMark} beside the snapshot tells a start that the last run did
not stop cleanly, and L{Readiness}, a part before the listeners, then
waits for the check (0.7 s longer at 100,000 files). Either way the
server is ready (C{/health} answers C{200}, systemd hears C{READY=1}) only
once the check ended.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.jobs.gather import gather
from pypid.state.loader import IndexLoader
from pypid.state.writer import SnapshotWriter

log = Logger()


class RunningMark(Service):
    """
    A file that exists while the server runs: found at a start, the last
    run stopped without saving its last snapshot. Started before the index,
    removed at a stop once the C{writer}'s last save holds the index as it
    is now.

    After an unclean stop the mark stays until the C{loader} checked
    storage against the snapshot: a run stopped before (a C{SIGTERM}
    during the check, a part that failed to start) saved nothing new, and
    removing its mark would have the next start open the listeners on the
    snapshot's index, the uploads of before the crash answering C{404}.

    @ivar unclean: whether the last run did not stop cleanly (known once started).
    """

    def __init__(self, path: str, writer: SnapshotWriter, loader: IndexLoader) -> None:
        self.path = path
        self._writer = writer
        self._loader = loader
        self.unclean = False

    def startService(self) -> None:
        """Note whether the last run left its mark, and leave this one's."""
        Service.startService(self)
        self.unclean = os.path.exists(self.path)
        if self.unclean:
            log.warn("The last run did not stop cleanly: storage is checked against the "
                     "snapshot before the listeners open")
        try:
            folder = os.path.dirname(self.path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            with open(self.path, "wb"):
                pass
        except OSError as e:
            # (without it the next start trusts the snapshot as a clean stop
            # would: the check follows the listeners)
            log.warn("Cannot write {path}: {error}", path=self.path, error=e.strerror)

    def stopService(self) -> None:
        """Remove the mark if the last snapshot was saved (after a crash: and checked)."""
        Service.stopService(self)
        if not self._writer.saved_up_to_now() or (self.unclean
                                                  and not self._loader.storage_checked):
            return
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warn("Cannot remove {path}: {error}", path=self.path, error=e.strerror)


class Readiness(Service):
    """
    Whether every hosted index answers with every stored file (L{ready});
    after an unclean stop it holds the start until they do (see the module).
    """

    def __init__(self, loaders: Sequence[IndexLoader], mark: RunningMark | None) -> None:
        """
        @param loaders: every hosted index's L{IndexLoader}, loaded when this
            part starts.
        @param mark: the L{RunningMark}, started before; L{None} in a worker
            of several but the first (the first keeps the machine's: the
            others' checks follow their listening, what the journal's tail
            did not tell them being changes no worker acknowledged).
        """
        self._loaders = tuple(loaders)
        self._mark = mark
        self._ready = False
        self._waiting: list[Deferred[None]] = []

    def ready(self) -> bool:
        """
        Whether every index answers with every stored file: the start went
        on, and storage was checked against the snapshots (a check that
        failed is tried again until it passes; until then, not ready).
        """
        return self._ready and all(loader.storage_checked for loader in self._loaders)

    def when_ready(self) -> Deferred[None]:
        """
        A L{Deferred} that fires once the start may go on: every index
        answers with every stored file, or a check of storage failed (then
        L{ready} stays false until a later check passes, yet systemd hears
        READY: the service is not killed for a storage down a while).
        """
        d: Deferred[None] = Deferred()
        if self._ready:
            d.callback(None)
        else:
            self._waiting.append(d)
        return d

    def startService(self) -> Deferred[None] | None:
        """
        The indexes are loaded: ready now, or once storage was checked
        against their snapshots; after an unclean stop, begin those checks
        and wait for them.
        """
        Service.startService(self)
        checks = [(loader, loader.checked) for loader in self._loaders
                  if loader.checked is not None]
        if not checks:
            self._now_ready(None)
            return None
        gather(checked for _, checked in checks).addBoth(self._now_ready)
        if not (self._mark is not None and self._mark.unclean):
            return None
        for loader, _ in checks:
            loader.follow_up()
        return self.when_ready()

    def _now_ready(self, result: object) -> object:
        if isinstance(result, Failure):
            # (the index serves what the snapshot holds; not ready)
            log.failure("Storage was not checked against the snapshot", result)
            result = None
        self._ready = True
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)
        return result
