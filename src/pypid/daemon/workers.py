"""
The supervisor of a machine's workers (L{Supervisor}): it starts each
worker process (Twisted's C{spawnProcess}: the same server, told which
worker it is and given the listening sockets and the ring by descriptor),
passes on C{SIGHUP}, stops them all with C{SIGTERM} at its own stop (each
drains as a server of one process does), and starts again a worker that
ended on its own, after a back-off that grows while it keeps ending soon
after its start.

What a worker says on its standard output and error goes to the
supervisor's log, a line at a time, named by the worker. On its
descriptor L{READY_FD} it says C{serving} once it accepts (its indexes
loaded, its listeners adopted), C{ready} once storage was checked against
its snapshot, and the supervisor is ready once every worker was.

A serving worker beats on that descriptor, a line every L{BEAT} seconds,
from its reactor. One silent for L{SILENT_AFTER} seconds has its sockets
taken out of their groups (C{on_silent}) until it runs again, so that
no new connection waits on it longer; one silent for C{hang_after}
seconds (stopped, deadlocked, its reactor held) is hung: the supervisor
kills it and starts it again as any worker that ended (a worker stopped
with C{SIGSTOP} took half the connections for minutes when nothing
watched).

At the machine's start the first worker loads alone, then at most
C{at_once} at a time: the next starts when one serves (or ended), its
check of storage left running. A worker's load peaks at about half again
its memory at rest, so the machine's peak is that of C{at_once} loads,
not of all; and loads that share cores take as long together as one
after another.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.interfaces import (
    IDelayedCall,
    IProcessTransport,
    IReactorProcess,
    IReactorTime,
)
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.core.util.startup import StartupError

log = Logger()

#: The descriptor a worker says it is ready on, a line.
READY_FD = 3

#: Seconds before a worker that ended is started again: doubled each time
#: it ends within L{STEADY} seconds of its start, up to the last.
BACK_OFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)

#: Seconds a worker must run for its next end to start the back-off anew.
STEADY = 60.0

#: Seconds between a serving worker's heartbeats.
BEAT = 0.25

#: Seconds a serving worker may go without a heartbeat before no new
#: connection goes to it (until it beats again): the longest a connection
#: waits on a worker that stopped answering.
SILENT_AFTER = 1.0

#: Seconds a serving worker may go without a heartbeat before it is killed
#: (C{[pypid] worker_timeout}).
HANG_AFTER = 30.0

#: Seconds the supervisor waits at its stop for the workers to drain, past
#: which it kills them (the workers' own deadline is shorter).
STOP_DEADLINE = 60.0


class IWorkerReactor(IReactorProcess, IReactorTime):
    """What the supervisor uses of the reactor: processes and the clock."""


@attrs.frozen
class Command:
    """
    How a worker is started: C{spawnProcess}'s executable, arguments and
    environment, and the descriptors it inherits (its number in the child:
    the supervisor's descriptor), besides standard input, output and error
    and L{READY_FD}.
    """

    executable: str
    args: tuple[str, ...]
    env: dict[str, str]
    inherited: dict[int, int] = attrs.field(factory=dict)


class WorkerProtocol(ProcessProtocol):
    """One worker process, as the supervisor watches it."""

    def __init__(self, supervisor: Supervisor, number: int) -> None:
        self.supervisor = supervisor
        self.number = number
        self.ended: Deferred[None] = Deferred()
        self._partial: dict[int, bytes] = {}

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        """A worker's output: its lines logged, its ready line told to the supervisor."""
        lines = (self._partial.pop(childFD, b"") + data).split(b"\n")
        self._partial[childFD] = lines.pop()
        for line in lines:
            if childFD == READY_FD:
                self.supervisor.worker_said(self.number, line.strip())
            elif line.strip():
                log.info("worker {number}: {line}", number=self.number,
                         line=line.decode("utf-8", "replace").rstrip())

    def processEnded(self, reason: Failure) -> None:
        """The worker ended: the supervisor decides what comes next."""
        self.supervisor.worker_ended(self.number, reason)
        self.ended.callback(None)


class Supervisor(Service):
    """
    Starts C{count} workers with C{command(number)} (numbered from 1),
    keeps them running, and stops them.

    @ivar restarts: how many times a worker was started again (for C{/metrics}).
    @ivar silences: how many times a serving worker went silent (taken out).
    @ivar hangs: how many workers were found hung (and killed).
    @ivar ready: fires once every worker said it is ready.
    """

    def __init__(self, reactor: IWorkerReactor, count: int,
                 command: Callable[[int], Command],
                 back_off: Sequence[float] = BACK_OFF, steady: float = STEADY,
                 stop_deadline: float = STOP_DEADLINE,
                 on_change: Callable[[int, bool], None] = lambda number, up: None,
                 at_once: int | None = None, hang_after: float = HANG_AFTER,
                 on_hung: Callable[[int], None] = lambda number: None,
                 silent_after: float = SILENT_AFTER,
                 on_silent: Callable[[int, bool], None] = lambda number, silent: None) -> None:
        """
        @param command: C{command(number) -> Command}, asked at each start
            of worker C{number}; a L{StartupError} it raises is that
            start's failure (logged, and tried again after the back-off).
        @param on_change: C{on_change(number, up)}: worker C{number} said
            it is ready (C{up}), or ended.
        @param at_once: the most workers loading at a time at the start,
            after the first alone (L{None}: all at once).
        @param hang_after: seconds without a beat after which a serving
            worker is hung (see the module).
        @param on_hung: C{on_hung(number)}: worker C{number} is hung, and
            is about to be killed.
        @param silent_after: seconds without a beat after which no new
            connection should go to a serving worker.
        @param on_silent: C{on_silent(number, silent)}: worker C{number}
            went C{silent_after} seconds without a beat (C{True}), or beat
            again after that (C{False}); meanwhile it does not count as up.
        """
        if count < 1:
            raise ValueError(f"{count} workers")
        self._reactor = reactor
        self.count = count
        self._command = command
        self._on_change = on_change
        self._up: set[int] = set()
        self._back_off = tuple(back_off)
        self._steady = steady
        self._stop_deadline = stop_deadline
        self._workers: dict[int, tuple[WorkerProtocol, IProcessTransport]] = {}
        self._started_at: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        self._pending: dict[int, IDelayedCall] = {}
        self._not_ready = set(range(1, count + 1))
        self._not_serving = set(range(1, count + 1))
        # (the workers not started yet, in order, and how many may load at once)
        self._unstarted = list(range(1, count + 1))
        self._at_once = count if at_once is None else max(1, at_once)
        self._first_alone = at_once is not None
        self._hang_after = hang_after
        self._on_hung = on_hung
        self._silent_after = silent_after
        self._on_silent = on_silent
        # (each serving worker's deadlines: killed, and taken out meanwhile)
        self._watches: dict[int, IDelayedCall] = {}
        self._quiet: dict[int, IDelayedCall] = {}
        # (the workers taken out for their silence, and since when)
        self._silent: dict[int, float] = {}
        self.ready: Deferred[None] = Deferred()
        self.restarts = 0
        self.silences = 0
        self.hangs = 0

    def startService(self) -> None:
        """Start the first worker (the others as it, and they, are ready)."""
        Service.startService(self)
        self._start_more()

    def _start_more(self) -> None:
        """
        Start workers not started yet while fewer than C{at_once} load; the
        first alone (it takes back what a crash left in a bucket before any
        other runs). One that ended before it was ready, or could not start,
        waits for its back-off and no longer counts.
        """
        while self._unstarted and self.running:
            loading = [number for number in self._not_serving
                       if number not in self._unstarted and number not in self._pending]
            if len(loading) >= self._at_once or (self._first_alone and 1 in loading):
                return
            self._spawn(self._unstarted.pop(0))

    def _spawn(self, number: int) -> None:
        self._pending.pop(number, None)
        self._started_at[number] = self._reactor.seconds()
        try:
            command = self._command(number)
        except StartupError as e:
            log.error("Cannot start worker {number}: {error}", number=number, error=str(e))
            self._again(number, f"not started: {e}")
            return
        protocol = WorkerProtocol(self, number)
        fds: dict[int, int | str] = {0: "w", 1: "r", 2: "r", READY_FD: "r"}
        fds.update(command.inherited)
        transport = self._reactor.spawnProcess(protocol, command.executable, command.args,
                                               env=command.env, childFDs=fds)
        self._workers[number] = (protocol, transport)
        log.info("Started worker {number} (process {pid})", number=number, pid=transport.pid)

    def worker_said(self, number: int, word: bytes) -> None:
        """
        Worker C{number} said on L{READY_FD} that it serves (its first
        line, from which it is watched), that it is ready, or beat.
        """
        watch = self._watches.get(number)
        if (not self.running or number not in self._workers
                or (watch is not None and not watch.active())):
            return  # (read at the stop, after its end or after it was found hung: nothing)
        if watch is None:
            self._watches[number] = self._reactor.callLater(self._hang_after, self._hung, number)
            # (a worker of before the word "serving" beats every second,
            # and its port ends when shut: its silence is not watched)
            if word == b"serving":
                self._listen_for_silence(number)
            self._not_serving.discard(number)
            self._start_more()
        else:
            self._beat(number, watch)
        if word == b"ready" and number not in self._up:
            self._up.add(number)
            self._on_change(number, True)
            if number in self._not_ready:
                self._not_ready.discard(number)
                log.info("Worker {number} is ready", number=number)
                if not self._not_ready and not self.ready.called:
                    self.ready.callback(None)

    def _listen_for_silence(self, number: int) -> None:
        """Worker C{number} is silent if it says nothing for C{silent_after} seconds."""
        self._quiet[number] = self._reactor.callLater(
            self._silent_after, self._fell_silent, number)

    def _beat(self, number: int, watch: IDelayedCall) -> None:
        """A beat of worker C{number}: its deadlines start again."""
        watch.reset(self._hang_after)
        quiet = self._quiet.get(number)
        if quiet is None:
            return
        if number not in self._silent:
            quiet.reset(self._silent_after)
            return
        quiet.cancel()
        silent = self._reactor.seconds() - self._silent.pop(number)
        log.info("Worker {number} beats again after {seconds:.1f} s: new connections go to "
                 "it again", number=number, seconds=silent)
        self._on_silent(number, False)
        self._listen_for_silence(number)

    def _fell_silent(self, number: int) -> None:
        """
        Worker C{number} went C{silent_after} seconds without a beat: take
        it out, and again every C{silent_after} seconds while it is silent
        (a socket left in as the only one listening is taken out once
        another listens).
        """
        if not self.running or number not in self._workers:
            return
        self._listen_for_silence(number)
        if number in self._silent:
            self._on_silent(number, True)
            return
        self._silent[number] = self._reactor.seconds() - self._silent_after
        self.silences += 1
        log.warn("Worker {number} sent nothing for {seconds:g} s: no new connection goes to "
                 "it until it beats again, where another worker listens (killed after "
                 "{hang:g} s)", number=number, seconds=self._silent_after,
                 hang=self._hang_after)
        self._on_silent(number, True)

    def _hung(self, number: int) -> None:
        """Worker C{number} went C{hang_after} seconds without a beat: kill it."""
        worker = self._workers.get(number)
        if worker is None or not self.running:
            return
        self.hangs += 1
        log.error("Worker {number} sent nothing for {seconds:g} s: it hangs; killing it "
                  "(process {pid})", number=number, seconds=self._hang_after,
                  pid=worker[1].pid)
        quiet = self._quiet.get(number)
        if quiet is not None and quiet.active():
            quiet.cancel()
        self._on_hung(number)
        try:
            worker[1].signalProcess(signal.SIGKILL)
        except ProcessExitedAlready:
            pass

    def worker_ended(self, number: int, reason: Failure) -> None:
        """Worker C{number} ended: while running, it is started again after its back-off."""
        self._workers.pop(number, None)
        self._up.discard(number)
        self._silent.pop(number, None)
        for call in (self._watches.pop(number, None), self._quiet.pop(number, None)):
            if call is not None and call.active():
                call.cancel()
        if self.running:
            self._again(number, "exited" if reason.check(ProcessDone) else
                        reason.getErrorMessage().rstrip("."))
            # (one that ended before it was ready lets the next start)
            self._start_more()
        self._on_change(number, False)

    def _again(self, number: int, how: str) -> None:
        """Start worker C{number} again after its back-off."""
        ran = self._reactor.seconds() - self._started_at.get(number, 0.0)
        failures = 0 if ran >= self._steady else self._failures.get(number, 0)
        delay = self._back_off[min(failures, len(self._back_off) - 1)]
        self._failures[number] = failures + 1
        log.warn("Worker {number} ended ({how}) after {ran:.0f} s; starting it again in "
                 "{delay:.0f} s", number=number, how=how, ran=ran, delay=delay)
        self.restarts += 1
        self._pending[number] = self._reactor.callLater(delay, self._spawn, number)

    def up(self) -> int:
        """
        How many workers run, said they are ready and beat (for C{/health}
        and C{/metrics}).
        """
        return len(self._up - self._silent.keys())

    def signal_all(self, signum: int) -> None:
        """Send C{signum} to every worker running (C{SIGHUP}: reload)."""
        for _, transport in list(self._workers.values()):
            try:
                transport.signalProcess(signum)
            except ProcessExitedAlready:
                pass

    def stopService(self) -> Deferred[object]:
        """
        Stop every worker with C{SIGTERM} and wait for them all to end; kill
        those still running after the deadline.
        """
        Service.stopService(self)
        for call in [*self._pending.values(), *self._watches.values(), *self._quiet.values()]:
            if call.active():
                call.cancel()
        self._pending.clear()
        self._watches.clear()
        self._quiet.clear()
        ended = [protocol.ended for protocol, _ in self._workers.values()]
        if not ended:
            return succeed(None)
        self.signal_all(signal.SIGTERM)
        deadline = self._reactor.callLater(self._stop_deadline, self.signal_all, signal.SIGKILL)

        def all_ended(result: object) -> object:
            if deadline.active():
                deadline.cancel()
            return result
        return DeferredList(ended).addCallback(all_ended)
