"""
The supervisor of a machine's workers (L{Supervisor}): it starts each
worker process, passes on C{SIGHUP}, stops them with C{SIGTERM}, and
starts again one that ended, after a back-off that grows while it keeps
ending soon after its start. Its clock and processes are given (L{Clock},
L{Spawn}): the lean process (L{pypid.daemon.lean}) imports nothing else.

On L{READY_FD} a worker beats every L{BEAT} seconds, says C{serving} once
it accepts, C{ready} once storage was checked against its snapshot, and
C{draining} when it stops on its own. A serving worker silent for
L{SILENT_AFTER} seconds is taken out of its sockets' groups until it
beats again; one silent for C{hang_after} seconds (L{LOADING_AFTER} at
least while it loads), or wordless L{FIRST_WORD} seconds after its start,
is killed and started again (a worker stopped with C{SIGSTOP} took half
the connections for minutes when nothing watched; one hung while loading
held back every later start).

At the start the first worker loads alone, then at most C{at_once} at a
time, the next when one serves: a load peaks at about half again a
worker's memory at rest, and loads sharing cores take as long together as
one after another.
"""

from __future__ import annotations

import fcntl
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

#: The descriptor a worker says it is ready on, a line.
READY_FD = 3

def lifted(placed: Mapping[int, int]) -> dict[int, int]:
    """
    A copy of each of C{placed}'s descriptors (by its place, the key) above
    every place: a source that is another's place would be overwritten.
    """
    floor = max([*placed, 2]) + 1
    return {target: fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, floor)
            for target, source in placed.items()}


#: The signals a worker starts with at their defaults, whatever the supervisor's.
DEFAULTED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1)

#: The signals a worker starts with blocked (the rest of its mask is
#: empty): their default ends a process, and a reload or a log rotation
#: that came while a worker loaded ended it, again at each restart. One
#: then waits until its handler is in (L{pypid.tap.reload_on_hangup},
#: L{pypid.daemon.machine.note_usr1}).
HELD = (signal.SIGHUP, signal.SIGUSR1)

#: Seconds before a worker that ended is started again: doubled each time
#: it ends within L{STEADY} seconds of its start, up to the last.
BACK_OFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)

#: Seconds a worker must run for its next end to start the back-off anew.
STEADY = 60.0

#: Seconds between a worker's heartbeats.
BEAT = 0.25

#: Seconds a worker may take from its start to its first beat (its imports
#: and its configuration: under a second on an idle machine, a few with
#: every core busy) before it is taken for hung.
FIRST_WORD = 60.0

#: Seconds a loading worker may go without a beat, when C{hang_after} is
#: shorter: its load has steps that hold its reactor (a million files'
#: scan of the folder, 1.4-1.7 s; more with every core busy).
LOADING_AFTER = 10.0

#: Seconds a serving worker may go without a beat before no new connection
#: goes to it (until it beats again): the longest a connection waits on it.
SILENT_AFTER = 1.0

#: Seconds a worker may go without a beat before it is killed (C{[pypid] worker_timeout}).
HANG_AFTER = 30.0

#: Seconds the supervisor waits at its stop for the workers to drain, past
#: which it kills them (the workers' own deadline is shorter).
STOP_DEADLINE = 60.0


@dataclass(frozen=True)
class Pace:
    """
    The supervisor's times and counts (see the module and its constants).

    @ivar at_once: the most workers loading at a time at the start, after
        the first alone (L{None}: all at once).
    """

    at_once: int | None = None
    hang_after: float = HANG_AFTER
    silent_after: float = SILENT_AFTER
    back_off: tuple[float, ...] = BACK_OFF
    steady: float = STEADY
    stop_deadline: float = STOP_DEADLINE


class StartFailed(Exception):
    """A worker's command could not be made; the message is one line."""


class Timer(Protocol):
    """A call to come (Twisted's C{IDelayedCall}, as far as it is used)."""

    def active(self) -> bool:
        """Whether it is still to come."""

    def cancel(self) -> None:
        """It will not come."""

    def reset(self, seconds: float) -> None:
        """It comes C{seconds} from now instead."""


class Clock(Protocol):
    """The time and calls to come (Twisted's C{IReactorTime}, as far as it is used)."""

    def seconds(self) -> float:
        """Now, in seconds."""

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any) -> Timer:
        """Call C{f(*args)} C{delay} seconds from now."""


class Process(Protocol):
    """A worker process started."""

    @property
    def pid(self) -> int:
        """Its process id."""

    def signal(self, signum: int) -> None:
        """Send it C{signum} (nothing when it has ended already)."""


@dataclass(frozen=True)
class Command:
    """
    How a worker is started; C{inherited}: the descriptors it inherits
    besides 0-2 and L{READY_FD} (its number in the child: the supervisor's).
    """

    executable: str
    args: tuple[str, ...]
    env: dict[str, str]
    inherited: dict[int, int] = field(default_factory=dict)


#: C{spawn(command, output, ended) -> Process}: start C{command}; its
#: output comes to C{output(fd, data)} (standard output and error, and
#: L{READY_FD}), its end to C{ended(how)} once, after the last output.
Spawn = Callable[[Command, Callable[[int, bytes], None], Callable[[str], None]], Process]

#: C{log(level, text)}: a line of the supervisor's log (C{info}, C{warn}, C{error}).
Log = Callable[[str, str], None]


class _Worker:
    """One worker process, as the supervisor watches it: its output split into lines."""

    def __init__(self, supervisor: Supervisor, number: int) -> None:
        self.supervisor = supervisor
        self.number = number
        self.process: Process | None = None
        self._partial: dict[int, bytes] = {}

    def output(self, fd: int, data: bytes) -> None:
        """A worker's output: its lines logged, its ready line told to the supervisor."""
        lines = (self._partial.pop(fd, b"") + data).split(b"\n")
        self._partial[fd] = lines.pop()
        for line in lines:
            if fd == READY_FD:
                self.supervisor.worker_said(self.number, line.strip(), self)
            elif line.strip():
                self.supervisor.log("info", f"worker {self.number}: "
                                    f"{line.decode('utf-8', 'replace').rstrip()}")

    def ended(self, how: str) -> None:
        """The worker ended: the supervisor decides what comes next."""
        self.supervisor.worker_ended(self.number, how, self)


class Supervisor:
    """
    Starts C{count} workers with C{command(number)} (numbered from 1),
    keeps them running, and stops them.

    @ivar restarts: how many times a worker was started again (for C{/metrics}).
    @ivar silences: how many times a serving worker went silent (taken out).
    @ivar hangs: how many workers were found hung (and killed).
    @ivar running: between L{start} and L{stop}.
    """

    def __init__(self, clock: Clock, spawn: Spawn, count: int,
                 command: Callable[[int], Command], log: Log = lambda level, text: None, *,
                 pace: Pace = Pace(),
                 on_change: Callable[[int, bool], None] = lambda number, up: None,
                 on_ready: Callable[[], None] = lambda: None,
                 on_hung: Callable[[int], None] = lambda number: None,
                 on_silent: Callable[[int, bool], None] = lambda number, silent: None) -> None:
        """
        @param command: C{command(number) -> Command}, asked at each start;
            a L{StartFailed} it raises, or an L{OSError} of C{spawn}, is
            that start's failure (logged, tried again after the back-off).
        @param on_change: C{on_change(number, up)}: worker C{number} said
            it is ready (C{up}), or ended.
        @param on_ready: called once every worker said it is ready.
        @param on_hung: C{on_hung(number)}: worker C{number} is about to be
            killed, hung.
        @param on_silent: C{on_silent(number, silent)}: worker C{number}
            went C{silent_after} seconds without a beat (C{True}), or beat
            again (C{False}); meanwhile it does not count as up.
        """
        if count < 1:
            raise ValueError(f"{count} workers")
        self._clock = clock
        self._spawn_process = spawn
        self.count = count
        self._command = command
        self.log = log
        self._on_change = on_change
        self._on_ready = on_ready
        self._up: set[int] = set()
        self._pace = pace
        self._workers: dict[int, _Worker] = {}
        self._started_at: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        self._pending: dict[int, Timer] = {}
        self._not_ready = set(range(1, count + 1))
        # (the workers not started yet, in order, and how many may load at once)
        self._unstarted = list(range(1, count + 1))
        self._at_once = count if pace.at_once is None else max(1, pace.at_once)
        self._first_alone = pace.at_once is not None
        self._on_hung = on_hung
        self._on_silent = on_silent
        # (each worker's deadlines: killed, from its start; taken out, once it serves)
        self._watches: dict[int, Timer] = {}
        self._serving: set[int] = set()
        # (the workers that said anything since they were started)
        self._said: set[int] = set()
        # (the workers that stop on their own: out of their groups until they end)
        self._draining: set[int] = set()
        self._quiet: dict[int, Timer] = {}
        # (the workers taken out for their silence, and since when)
        self._silent: dict[int, float] = {}
        self._stopped: Callable[[], None] | None = None
        self._deadline: Timer | None = None
        self.running = False
        self.restarts = 0
        self.silences = 0
        self.hangs = 0

    def start(self) -> None:
        """Start the first worker (the others as it, and they, are ready)."""
        self.running = True
        self._start_more()

    def _start_more(self) -> None:
        """
        Start workers not started yet while fewer than C{at_once} load; the
        first alone (it takes back what a crash left in a bucket before any
        other runs). One that ended before it was ready, or could not start,
        no longer counts.
        """
        while self._unstarted and self.running:
            loading = [number for number in self._workers if number not in self._serving]
            if len(loading) >= self._at_once or (self._first_alone and 1 in loading):
                return
            self._spawn(self._unstarted.pop(0))

    def _spawn(self, number: int) -> None:
        self._pending.pop(number, None)
        self._started_at[number] = self._clock.seconds()
        worker = _Worker(self, number)
        try:
            worker.process = self._spawn_process(self._command(number), worker.output,
                                                 worker.ended)
        except (StartFailed, OSError) as e:
            self.log("error", f"Cannot start worker {number}: {e}")
            self._again(number, f"not started: {e}")
            return
        self._workers[number] = worker
        self._said.discard(number)
        self._watches[number] = self._clock.callLater(self._allowed(number), self._hung, number)
        self.log("info", f"Started worker {number} (process {worker.process.pid})")

    def _current(self, number: int, worker: _Worker) -> bool:
        """Whether C{worker} is the process of C{number} now (not one that ended)."""
        return self._workers.get(number) is worker

    def worker_said(self, number: int, word: bytes, worker: _Worker) -> None:
        """
        Worker C{number} said on L{READY_FD} that it is alive (a beat), that
        it serves (from then on its silence is watched), ready, or draining.
        """
        watch = self._watches.get(number)
        if (not self.running or not self._current(number, worker)
                or (watch is not None and not watch.active())):
            return  # (read at the stop, after its end or after it was found hung: nothing)
        self._said.add(number)
        if number not in self._serving and word in (b"serving", b"ready"):
            self._serving.add(number)
            # (a worker of before the word "serving" beats every second,
            # and its port ends when shut: its silence is not watched)
            if word == b"serving":
                self._listen_for_silence(number)
            self._start_more()
        if watch is not None:
            self._beat(number, watch)
        if word == b"draining":
            self._drains(number)
            return
        if word == b"ready" and number not in self._up:
            self._up.add(number)
            self._on_change(number, True)
            if number in self._not_ready:
                self._not_ready.discard(number)
                self.log("info", f"Worker {number} is ready")
                if not self._not_ready:
                    self._on_ready()

    def _listen_for_silence(self, number: int) -> None:
        """Worker C{number} is silent if it says nothing for C{silent_after} seconds."""
        self._quiet[number] = self._clock.callLater(
            self._pace.silent_after, self._fell_silent, number)

    def _beat(self, number: int, watch: Timer) -> None:
        """A beat of worker C{number}: its deadlines start again."""
        watch.reset(self._allowed(number))
        quiet = self._quiet.get(number)
        if quiet is None or number in self._draining:
            return
        if number not in self._silent:
            quiet.reset(self._pace.silent_after)
            return
        quiet.cancel()
        silent = self._clock.seconds() - self._silent.pop(number)
        self.log("info", f"Worker {number} beats again after {silent:.1f} s: new connections "
                 f"go to it again")
        self._on_silent(number, False)
        self._listen_for_silence(number)

    def _drains(self, number: int) -> None:
        """Worker C{number} stops on its own: no new connection goes to it while it drains."""
        if number in self._draining:
            return
        self._draining.add(number)
        # (out as a silent worker is, again every silent_after while the
        # only one listening; its beats no longer put it back)
        self._cancel(self._quiet.pop(number, None))
        self._silent.setdefault(number, self._clock.seconds())
        self._listen_for_silence(number)
        self.log("info", f"Worker {number} stops: no new connection goes to it")
        self._on_silent(number, True)

    def _fell_silent(self, number: int) -> None:
        """
        Worker C{number} went C{silent_after} seconds without a beat: take
        it out, and again every C{silent_after} while it is silent (a
        socket left in as the only one listening goes once another listens).
        """
        if not self.running or number not in self._workers:
            return
        self._listen_for_silence(number)
        if number in self._silent:
            self._on_silent(number, True)
            return
        pace = self._pace
        self._silent[number] = self._clock.seconds() - pace.silent_after
        self.silences += 1
        self.log("warn", f"Worker {number} sent nothing for {pace.silent_after:g} s: no new "
                 f"connection goes to it until it beats again, where another worker listens "
                 f"(killed after {pace.hang_after:g} s)")
        self._on_silent(number, True)

    def _allowed(self, number: int) -> float:
        """
        The seconds worker C{number} may go without a word now: until its
        first (L{FIRST_WORD}), between beats while it loads
        (L{LOADING_AFTER} at least), once it serves (C{hang_after}).
        """
        if number in self._serving:
            return self._pace.hang_after
        return max(self._pace.hang_after, LOADING_AFTER if number in self._said else FIRST_WORD)

    @staticmethod
    def _cancel(call: Timer | None) -> None:
        if call is not None and call.active():
            call.cancel()

    def _hung(self, number: int) -> None:
        """Worker C{number} went L{_allowed} seconds without a word: kill it."""
        worker = self._workers.get(number)
        if worker is None or worker.process is None or not self.running:
            return
        self.hangs += 1
        what = "it hangs" if number in self._serving else "it hangs while it starts"
        self.log("error", f"Worker {number} sent nothing for {self._allowed(number):g} s: "
                 f"{what}; killing it (process {worker.process.pid})")
        self._cancel(self._quiet.get(number))
        self._on_hung(number)
        worker.process.signal(signal.SIGKILL)

    def worker_ended(self, number: int, how: str, worker: _Worker) -> None:
        """
        Worker C{number} ended (C{how}: C{exited}, C{killed by SIGKILL}, ...):
        while running, it starts again after its back-off.
        """
        if not self._current(number, worker):
            return
        del self._workers[number]
        self._up.discard(number)
        self._serving.discard(number)
        self._draining.discard(number)
        self._silent.pop(number, None)
        for call in (self._watches.pop(number, None), self._quiet.pop(number, None)):
            self._cancel(call)
        if self.running:
            self._again(number, how)
            # (one that ended before it was ready lets the next start)
            self._start_more()
        self._on_change(number, False)
        if not self.running and not self._workers:
            self._all_ended()

    def _again(self, number: int, how: str) -> None:
        """Start worker C{number} again after its back-off."""
        ran = self._clock.seconds() - self._started_at.get(number, 0.0)
        failures = 0 if ran >= self._pace.steady else self._failures.get(number, 0)
        back_off = self._pace.back_off
        delay = back_off[min(failures, len(back_off) - 1)]
        self._failures[number] = failures + 1
        self.log("warn", f"Worker {number} ended ({how}) after {ran:.0f} s; starting it "
                 f"again in {delay:.0f} s")
        self.restarts += 1
        self._pending[number] = self._clock.callLater(delay, self._spawn, number)

    def up(self) -> int:
        """How many workers run, said they are ready and beat (C{/health}, C{/metrics})."""
        return len(self._up - self._silent.keys())

    def signal_all(self, signum: int) -> None:
        """Send C{signum} to every worker running (C{SIGHUP}: reload)."""
        for worker in list(self._workers.values()):
            if worker.process is not None:
                worker.process.signal(signum)

    def stop(self, stopped: Callable[[], None]) -> None:
        """
        Stop every worker with C{SIGTERM}, and call C{stopped} once they all
        ended; kill those still running after the deadline.
        """
        self.running = False
        for calls in (self._pending, self._watches, self._quiet):
            for call in calls.values():
                self._cancel(call)
            calls.clear()
        self._stopped = stopped
        if not self._workers:
            self._all_ended()
            return
        self.signal_all(signal.SIGTERM)
        self._deadline = self._clock.callLater(self._pace.stop_deadline, self.signal_all,
                                               signal.SIGKILL)

    def _all_ended(self) -> None:
        self._cancel(self._deadline)
        stopped, self._stopped = self._stopped, None
        if stopped is not None:
            stopped()
