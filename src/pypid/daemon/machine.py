"""
A server of several processes on one machine (C{[pypid] workers}): one
supervisor, which answers nothing itself, and the workers, each a whole
server over the same folders.

The supervisor's set-up (L{build_supervisor}) takes every hosted index's
folder, opens every listening socket, makes the machine's ring
(L{pypid.machine.ring.ChangeRing}) and the configuration in force, then
hands it all over to the lean supervisor (L{pypid.daemon.lean}), which
starts the workers, each told by L{WORKER_ENV} which it is.

A worker (L{WorkerRole}) catches up with the others' changes before each
request (L{pypid.state.catch_up.CatchUp}) and says it is ready on
L{pypid.daemon.workers.READY_FD}. The first worker runs what a machine
runs once: the snapshots, the running mark, the recycle bins' purges and
the retention rules.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from signal import Handlers
from types import FrameType
from typing import Any, Protocol

import attrs
from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import ReactorNotRunning
from twisted.internet.fdesc import setNonBlocking
from twisted.internet.interfaces import (
    IReactorCore,
    IReactorFDSet,
    IReactorFromThreads,
    IReactorTime,
    IReadDescriptor,
)
from twisted.logger import FileLogObserver, ILogObserver, Logger, eventAsText
from zope.interface import implementer

from pypid.config import Config
from pypid.config.server_settings import parse_listen_address
from pypid.config.storage_settings import StorageConfig
from pypid.core.util.startup import StartupError
from pypid.daemon.container import Parts
from pypid.daemon.first_worker import Forked
from pypid.daemon.handover import Handover, plan
from pypid.daemon.inherited import WorkerSockets
from pypid.daemon.lean import WORKER_ENV
from pypid.daemon.listeners import (
    IListeningReactor,
    ListenCheck,
    PortCheck,
    endpoint_of,
    held_tls,
    tcp_address,
)
from pypid.daemon.socket_groups import Inherited
from pypid.daemon.start_notes import StartNotes
from pypid.daemon.workers import BEAT, READY_FD
from pypid.jobs.periodic import Periodic
from pypid.jobs.run import run_at_once
from pypid.machine.config_in_force import ConfigInForce
from pypid.machine.ring import ChangeRing
from pypid.machine.topic_table import LANE_SLOT_SIZE, LANE_SLOTS
from pypid.state.index_sections import hosted_names
from pypid.state.promotion_rollback import roll_back_promotions
from pypid.storage.cloud_clients import require_sdk
from pypid.storage.factory import index_settings, loading_index
from pypid.storage.folder.local import LocalStorage
from pypid.upstream.factory import cache_settings

log = Logger()

@attrs.frozen
class WorkerRole:
    """
    Which worker of a machine this process is.

    @ivar number: from 1; the first runs what the machine runs once.
    @ivar sockets: its listening sockets, one per line of C{[pypid] listen}.
    @ivar config: the configuration the machine runs on, which this worker
        reads instead of the file.
    @ivar lane: the machine's lane (L{pypid.machine.topics.Hub}); L{None}
        from a supervisor of before it.
    """

    number: int
    count: int
    ring: ChangeRing
    sockets: tuple[Inherited, ...]
    config: ConfigInForce
    lane: ChangeRing | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WorkerRole | None:
        """
        The role L{WORKER_ENV} gives, or L{None} in a process of its own
        (L{StartupError} for a value the supervisor did not write).
        """
        text = environ.get(WORKER_ENV)
        if not text:
            return None
        try:
            data = json.loads(text)
            number, count = int(data["number"]), int(data["count"])
            sockets = tuple(Inherited(str(description), int(fd), int(family), int(backlog))
                            for description, fd, family, backlog in data["sockets"])
            ring = ChangeRing.attach(int(data["ring"]), number)
            config = ConfigInForce.attach(int(data["config"]))
            lane = ChangeRing.attach(int(data["lane"]), number) if "lane" in data else None
        except (ValueError, KeyError, TypeError, OSError) as e:
            raise StartupError(f"{WORKER_ENV}: not a worker's role: {e}")
        return cls(number, count, ring, sockets, config, lane)


class IStoppingReactor(IReactorCore, IReactorFromThreads, IReactorFDSet):
    """What a worker's stop uses of the reactor: its stop (from a handler), its readers."""


class Signals(Protocol):
    """The part of the L{signal} module a process's handlers are installed with."""

    @property
    def SIGHUP(self) -> int:
        """The hang-up signal's number."""

    @property
    def SIGTERM(self) -> int:
        """The termination signal's number."""

    @property
    def SIGINT(self) -> int:
        """The interrupt signal's number."""

    @property
    def SIGUSR1(self) -> int:
        """The first user signal's number (a log rotation's)."""

    @property
    def SIG_IGN(self) -> Handlers:
        """The handler that ignores a signal."""

    @property
    def SIG_DFL(self) -> Handlers:
        """The default handler of a signal."""

    def signal(self, signalnum: int,
               handler: Callable[[int, FrameType | None], None] | Handlers) -> object:
        """Install C{handler} for C{signalnum}."""

    def getsignal(self, signalnum: int) -> object:
        """The handler of C{signalnum}."""

    @property
    def SIG_UNBLOCK(self) -> int:
        """The mask's change that lets signals through."""

    def pthread_sigmask(self, how: int, mask: Iterable[int]) -> object:
        """Change this thread's mask of signals."""


def take(signals: Signals, signalnum: int) -> None:
    """
    Let C{signalnum} through once its handler is in: a worker starts with
    it blocked (L{pypid.daemon.workers.HELD}); one that came meanwhile is
    taken now.
    """
    signals.pthread_sigmask(signals.SIG_UNBLOCK, [signalnum])


def worker_signals(reactor: IStoppingReactor, signals: Signals = signal) -> None:
    """
    A worker's signals, once its reactor runs (Twisted installs its own as
    it starts): C{SIGTERM} stops it once, however often it comes (systemd
    sends it to every process of the unit, and the supervisor passes its
    own on), and C{SIGINT} is ignored (a terminal's Ctrl-C reaches the
    whole process group; the supervisor stops the workers).
    """
    def stop(signum: int, frame: FrameType | None) -> None:
        reactor.callFromThread(_stop_once, reactor)
    signals.signal(signals.SIGTERM, stop)
    signals.signal(signals.SIGINT, signals.SIG_IGN)


def note_usr1(reactor: IReactorFromThreads, signals: Signals = signal) -> None:
    """
    Take C{SIGUSR1} where nothing else does: Python's default stops the
    process without a word, and a log rotation's C{SIGUSR1} (or a
    C{systemctl kill -s USR1}, which reaches every worker) stopped the
    server. Run once the reactor runs: twistd, writing its own log file,
    installs its rotation only where the signal still has its default, and
    that is kept; elsewhere there is no file to reopen: the signal is logged.
    """
    if signals.getsignal(signals.SIGUSR1) == signals.SIG_DFL:
        def noted(signum: int, frame: FrameType | None) -> None:
            reactor.callFromThread(log.info, "Received SIGUSR1: this process writes its log "
                                   "to standard output, not to a file to reopen; going on")
        signals.signal(signals.SIGUSR1, noted)
    take(signals, signals.SIGUSR1)


def _stop_once(reactor: IReactorCore) -> None:
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass


def worker_log() -> ILogObserver:
    """
    A worker's log: each event a line on its standard output, without the
    time, which the supervisor's log line gives (C{twistd --logger}).
    """
    return FileLogObserver(sys.stdout, lambda event: eventAsText(
        event, includeTimestamp=False) + "\n")


def _say(fd: int, line: bytes) -> None:
    """Write C{line} to the supervisor, or drop it (it is gone, or not reading)."""
    try:
        os.write(fd, line)
    except OSError:
        pass  # (SupervisorWatch stops a worker whose supervisor is gone)


class Heartbeat(Service):
    """
    A worker's first part, and the last to stop: beats on L{READY_FD} every
    L{BEAT} seconds, while it loads as once it serves, so that its
    supervisor knows it is not hung (L{pypid.daemon.workers}).
    """

    def __init__(self, clock: IReactorTime, fd: int = READY_FD) -> None:
        self._fd = fd
        self._beats = Periodic(partial(_say, fd, b"alive\n"), BEAT, clock, "The heartbeat")

    def startService(self) -> None:
        """Beat from now on: the first at once, before any other part starts."""
        Service.startService(self)
        # (a supervisor that stopped reading never blocks the worker's reactor)
        setNonBlocking(self._fd)
        _say(self._fd, b"alive\n")
        self._beats.startService()

    def stopService(self) -> None:
        """Beat no more."""
        Service.stopService(self)
        if self._beats.running:
            self._beats.stopService()


class ReadyLine(Service):
    """
    A worker's last part: says on L{READY_FD} that it serves, that it is
    ready once it is, and that it drains when it stops.
    """

    def __init__(self, ready: Callable[[], Deferred[None]], fd: int = READY_FD) -> None:
        self._ready = ready
        self._fd = fd

    def startService(self) -> None:
        """Say it serves, and ready once every index answers with every stored file."""
        Service.startService(self)
        _say(self._fd, b"serving\n")
        self._ready().addCallback(self._now_ready)

    def _now_ready(self, _: object) -> None:
        if self.running:
            _say(self._fd, b"ready\n")

    def stopService(self) -> None:
        """
        Say it stops: no new connection should go to it while it drains
        (it still beats: a drain that hangs is killed).
        """
        Service.stopService(self)
        _say(self._fd, b"draining\n")


@implementer(IReadDescriptor)
class SupervisorWatch(Service):
    """
    A worker's watch on its supervisor, which holds the other end of the
    worker's standard input: when it ends (even by C{kill -9}) the worker
    stops as C{SIGTERM} stops it, so that none outlives its machine.
    """

    def __init__(self, reactor: IStoppingReactor, fd: int = 0) -> None:
        self._reactor = reactor
        self._fd = fd

    def startService(self) -> None:
        """Watch the supervisor's end."""
        Service.startService(self)
        setNonBlocking(self._fd)
        self._reactor.addReader(self)

    def stopService(self) -> None:
        """Stop watching."""
        if self.running:
            Service.stopService(self)
            self._reactor.removeReader(self)

    def fileno(self) -> int:
        """The worker's standard input."""
        return self._fd

    def doRead(self) -> None:
        """The supervisor wrote something (it never does) or ended: then stop."""
        try:
            data = os.read(self._fd, 512)
        except BlockingIOError:
            return
        if not data:
            self._reactor.removeReader(self)
            self._ended()

    def connectionLost(self, reason: object) -> None:
        """The reactor saw the supervisor's end hang up (it no longer watches it)."""
        self._ended()

    def _ended(self) -> None:
        if self.running:
            self.running = False
            log.warn("The supervisor ended: stopping")
            _stop_once(self._reactor)

    def logPrefix(self) -> str:
        """How the reactor names this in its log."""
        return "supervisor"


class SocketsPart(Service):
    """The workers' sockets: opened before the workers start, closed after they ended."""

    def __init__(self, sockets: WorkerSockets) -> None:
        self.sockets = sockets

    def startService(self) -> Deferred[None]:
        """Open every line's sockets."""
        Service.startService(self)
        return ensureDeferred(self.sockets.open())

    def stopService(self) -> Deferred[list[None]]:
        """Close them."""
        Service.stopService(self)
        return self.sockets.close()


class FoldersPart(Service):
    """
    Every hosted index's local folder, taken for the machine before any
    worker starts (created, locked, swept of what a crash left and of what
    the last run's workers passed each other); released after they ended.
    """

    def __init__(self, folders: Sequence[LocalStorage]) -> None:
        self._folders = list(folders)

    def startService(self) -> Deferred[None]:
        """Take every folder."""
        Service.startService(self)
        return ensureDeferred(self._take())

    async def _take(self) -> None:
        for folder in self._folders:
            await loading_index(folder.prepare())
            # (the promotions the last run's crash interrupted, taken back
            # before any worker starts)
            await loading_index(roll_back_promotions(folder))
            # (what the last run's workers passed each other, an upstream
            # cache's pages and locks: a start begins from the snapshot)
            shutil.rmtree(os.path.join(folder.root, ".pypid", "machine"), ignore_errors=True)

    def stopService(self) -> None:
        """Release them."""
        Service.stopService(self)
        for folder in self._folders:
            folder.close()


def process_title(worker: WorkerRole | None, config: Config,
                  arguments: Sequence[str]) -> str | None:
    """
    What C{ps} names this process of a machine (L{None}: a server of one
    process keeps its command line); the options of C{twistd pypid}
    follow, so that C{pgrep -f} finds a machine by its configuration file.
    """
    if worker is not None:
        role = f"worker {worker.number}"
    elif config.server.workers > 1:
        role = "supervisor"
    else:
        return None
    return " ".join(("pypid:", role, *arguments))


def build_supervisor(config: Config, reactor: IListeningReactor, arguments: Sequence[str],
                     environ: Mapping[str, str], *,
                     exit_on_failure: bool = False,
                     load_config: Callable[[], Config] | None = None,
                     check_port: PortCheck | None = None,
                     options: Mapping[str, Any] | None = None,
                     twistd: Mapping[str, Any] | None = None,
                     executable: str = sys.executable,
                     exec_: Callable[[str, list[str]], object] = os.execv,
                     forked: Sequence[Forked] = ()) -> Parts:
    """
    The set-up of C{config}'s machine, in its container, which ends in
    the hand-over to the lean supervisor (L{pypid.daemon.handover}).

    @param arguments: the options of C{twistd pypid}, which every worker runs.
    @param options: the parsed options of C{twistd pypid} (the
        configuration file, the overrides), for the check of a C{SIGHUP}.
    @param twistd: twistd's own options (its log file, its pidfile).
    @param forked: workers forked and waiting for their roles.
    """
    # (each worker would stop for a cloud's missing SDK, and be started again)
    require_sdk(config.storage.backend)
    # (a worker started again serves the [tls] files as the machine took
    # them; files no worker could serve stop the start here, not each worker)
    tls, refused = held_tls(config, {}, reactor.seconds())
    if refused is not None:
        raise StartupError(f"cannot listen on the https: lines of [pypid] listen: {refused}")
    count = config.server.workers
    sockets = WorkerSockets(config, reactor, count)
    # (the supervisor has no pool: it only takes the folders, at its start)
    folders = [LocalStorage(settings.path, run_at_once, reactor, settings.min_free)
               for settings in _folders(config)] if config.bucket is None else []
    ring = ChangeRing.create()
    ring.set_workers(0, count)
    in_force = ConfigInForce.create(config.text, {**config.held, **tls})
    # (loads that share the cores take as long together as one after another,
    # and each peaks at about half again its memory at rest)
    at_once = max(1, len(os.sched_getaffinity(0)) // 2)
    planned = plan(count=count, at_once=at_once, hang_after=config.server.worker_timeout,
                   arguments=arguments, options=options or {}, environ=environ,
                   title=process_title(None, config, arguments), twistd=twistd,
                   executable=executable)
    # (the login throttle's events, on a ring no other announcement fills)
    lane = ChangeRing.create(LANE_SLOTS, LANE_SLOT_SIZE, tally=1)
    handover = Handover(planned, {"ring": ring.fileno(), "config": in_force.fileno(),
                                  "lane": lane.fileno()},
                        sockets, folders, executable, exec_, forked)
    parts: list[tuple[str, IService | None]] = [
        ("listen-check", ListenCheck(check_port, _probes(config, reactor))
         if check_port is not None else None),
        ("start-notes", StartNotes(config)),
        ("folders", FoldersPart(folders)),
        ("sockets", SocketsPart(sockets)),
        ("handover", handover),
    ]
    return Parts([(name, part) for name, part in parts if part is not None], reactor,
                 exit_on_failure=exit_on_failure, load_config=load_config, config=config)


def _folders(config: Config) -> list[StorageConfig]:
    """The storage of every hosted index, and of every upstream's cache."""
    caches = ([None] if config.upstream.mode != "none" and config.upstream.url else []) + [
        *config.upstreams]
    return [*(index_settings(config, name).storage for name in hosted_names(config)),
            *(cache_settings(config, name).storage for name in caches)]


def _probes(config: Config, reactor: IListeningReactor) -> list[tuple[str, int, str]]:
    """C{(description, port, interface)} of each TCP line, for the check before the start."""
    return [(description, *bound) for description in config.server.listen
            if (bound := tcp_address(endpoint_of(config, reactor,
                                                 parse_listen_address(description)))) is not None]
