"""
C{twistd pypid}: its command-line options, and the one place that reaches
for the global reactor (inside L{makeService}, only when none is given).

L{makeService} builds a machine's supervisor
(L{pypid.daemon.machine.build_supervisor}) or a server
(L{pypid.daemon.server.build_service}: of one process, or a machine's
worker), importing only what the one it builds needs: a supervisor loads
none of the server's parts. In the foreground it first forks the
machine's first workers, before the reactor is made
(L{pypid.daemon.first_worker}). For a real process it also keeps malloc
to one arena (L{pypid.daemon.heap}), installs the
C{SIGHUP} handler and names the process for C{ps}. A L{StartupError} from
any factory becomes one line and exit status 1 here, and only here.
C{pypid.tac} calls the same function.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence
from functools import partial
from importlib import import_module
from types import FrameType
from typing import TYPE_CHECKING, cast

from setproctitle import setproctitle
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python import usage

from pypid.config import Config, load_config, parse_override
from pypid.core.util.startup import StartupError
from pypid.daemon.container import Parts
from pypid.daemon.first_worker import Forked, fork, may_fork
from pypid.daemon.handover import worker_args
from pypid.daemon.heap import limit_arenas
from pypid.daemon.lean import LANE_FD
from pypid.daemon.listeners import PortCheck, bind_for_a_moment
from pypid.daemon.machine import (
    Signals,
    WorkerRole,
    build_supervisor,
    note_usr1,
    process_title,
    take,
    worker_signals,
)
from pypid.daemon.pools import ThreadPools
from pypid.daemon.workers import READY_FD

if TYPE_CHECKING:
    from pypid.daemon.server import IServerReactor


class Options(usage.Options):
    """Options of C{twistd pypid}; they override the configuration file."""

    synopsis = "[--config FILE] [--listen ENDPOINT ...] [--set section.key=value ...]"
    longdesc = (
        "Run the pypid package index. Without --config, the embedded defaults "
        "are used: listen on 127.0.0.1:8080, store packages under ./var/."
    )
    optParameters = [
        ["config", "c", None, "The configuration file (INI)."],
    ]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        self["listen"] = []
        self["set"] = []
        self["worker"] = None
        #: the options as given, which a machine's workers are given in turn
        self.arguments: tuple[str, ...] = ()
        #: twistd's own options, once twistd parsed this command's
        self.parent: usage.Options | None = None
        #: a worker's: the machine's refusals of a SIGHUP it has read
        self.refusals_told = 0

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """Parse C{options} (by default the command line's), keeping them as given."""
        self.arguments = tuple(sys.argv[1:] if options is None else options)
        usage.Options.parseOptions(self, options)

    def opt_listen(self, endpoint: str) -> None:
        """A Twisted endpoint to listen on (repeatable); replaces [pypid] listen."""
        self["listen"].append(endpoint)

    def opt_set(self, assignment: str) -> None:
        """Override one configuration key: section.key=value (repeatable)."""
        try:
            self["set"].append(parse_override(assignment))
        except ValueError as e:
            raise usage.UsageError(str(e))

    def reread(self) -> Config:
        """The configuration, read again (at C{SIGHUP}) as at the start."""
        return self._read(reloading=True)

    def _read(self, reloading: bool) -> Config:
        """The configuration file, or for a worker the configuration in force."""
        worker: WorkerRole | None = self["worker"]
        if worker is None:
            return load_config(self["config"], self["set"], self["listen"], os.environ)
        in_force = worker.config.read()
        # (each refusal told once: one made before this worker started, or
        # already told, leaves the configuration in force to read again)
        told, self.refusals_told = self.refusals_told, in_force.refusals
        if reloading and in_force.refused is not None and in_force.refusals > told:
            raise StartupError("the supervisor's check refused the configuration; its log "
                               "says why", in_force.refused or None)
        return load_config(self["config"], self["set"], self["listen"], os.environ,
                           text=in_force.text, held=in_force.held)

    def postOptions(self) -> None:
        """Read the configuration once; a bad one stops start-up with one line."""
        try:
            # (a machine's worker reads the configuration the machine runs
            # on, not the file)
            self["worker"] = WorkerRole.from_environ(os.environ)
            self["config_obj"] = self._read(reloading=False)
        except StartupError as e:
            raise SystemExit(f"pypid: {e}")


def makeService(options: Options, reactor: IServerReactor | None = None,
                pools: ThreadPools | None = None,
                check_port: PortCheck = bind_for_a_moment) -> Parts:
    """Build the whole server from parsed L{Options}."""
    exit_on_failure = reactor is None
    config: Config = options["config_obj"]
    if exit_on_failure:
        # (before any thread allocates, and before the first workers' fork,
        # which inherits it)
        limit_arenas(os.environ)
    # (before the reactor is made: a child runs twistd again)
    forked = _forked_workers(options, config) if exit_on_failure else []
    if reactor is None:
        from twisted.internet import reactor as installed

        # (the module stands for the reactor installed: each provides these)
        reactor = cast("IServerReactor", installed)
    notifier = None
    if exit_on_failure:
        from pypid.daemon.systemd import Notifier
        notifier = Notifier.from_environ(os.environ)
    reread = options.reread
    try:
        worker: WorkerRole | None = options["worker"] if exit_on_failure else None
        if worker is None and config.server.workers > 1:
            # (twistd's own options: the log file and pidfile the lean
            # supervisor it hands over to keeps to)
            twistd = options.parent if exit_on_failure else None
            service = build_supervisor(
                config, reactor, options.arguments, os.environ, exit_on_failure=exit_on_failure,
                load_config=reread, check_port=check_port, options=options, twistd=twistd,
                forked=forked)
        else:
            # (a supervisor loads none of this)
            from pypid.daemon.server import build_service
            service = build_service(config, reactor, exit_on_failure, pools, notifier,
                                    load_config=reread, check_port=check_port, worker=worker)
    except StartupError as e:
        raise SystemExit(f"pypid: {e}")
    if exit_on_failure:
        # (in every real process: Python's default for SIGHUP would stop it
        # at once, without its last snapshot)
        reload_on_hangup(reactor, service.reload)
        reactor.callWhenRunning(note_usr1, reactor)
        if worker is not None:
            reactor.callWhenRunning(worker_signals, reactor)
        title = process_title(worker, config, options.arguments)
        if title is not None:
            setproctitle(title)
    return service


def _forked_workers(options: Options, config: Config) -> list[Forked]:
    """The machine's workers forked before it is set up; a child runs as one, and exits."""
    forked: list[Forked] = []
    if options["worker"] is not None or config.server.workers < 2 or not may_fork(
            options.parent):
        return forked
    for _ in range(min(config.server.workers, len(os.sched_getaffinity(0)))):
        # (the worker's descriptors: the ring, the configuration, the lane,
        # a socket for each line of [pypid] listen)
        try:
            child = fork(partial(_prepare_forked, " ".join(("pypid: worker, starting",
                                                            *options.arguments))),
                         reserved=LANE_FD - READY_FD + len(config.server.listen))
        except OSError:
            # (no process to be had now: the lean supervisor spawns the rest)
            break
        if child is None:
            raise SystemExit(_as_worker(options.arguments))
        forked.append(child)
    return forked


def _prepare_forked(title: str) -> None:
    """
    What a forked worker does while the machine is set up: take its
    C{title} (before its role replaces the environment, beside which
    C{setproctitle} finds where a title goes), and import the server's parts.
    """
    setproctitle(title)
    import_module("pypid.daemon.server")


def _as_worker(arguments: Sequence[str]) -> int | str | None:
    """Run twistd again in this process, as a spawned worker runs it; its exit status."""
    from twisted.scripts.twistd import run

    # (as a spawned worker's interpreter, run with -c, has them)
    sys.argv = ["-c", *worker_args(sys.executable, arguments)[3:]]
    sys.path[0] = ""
    try:
        run()
    except SystemExit as e:
        return e.code
    return None


def reload_on_hangup(reactor: IReactorFromThreads, reload: Callable[[], None],
                     signals: Signals = signal) -> None:
    """
    Run C{reload} on the reactor's thread after every C{SIGHUP} (a real
    process's handler). The signals that come while a reload waits to run are
    folded into it, so a storm of them (a signal every 3 ms, where a reload
    took longer on a busy machine) cannot queue reloads ahead of every request.
    """
    waiting = False

    def hangup(signum: int, frame: FrameType | None) -> None:
        nonlocal waiting
        if not waiting:
            waiting = True
            reactor.callFromThread(run)

    def run() -> None:
        nonlocal waiting
        waiting = False
        reload()
    signals.signal(signals.SIGHUP, hangup)
    take(signals, signals.SIGHUP)
