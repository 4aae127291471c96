"""
The supervisor's process of a machine (C{[pypid] workers} above 1), once
C{twistd pypid} has set it up: a loop of the standard library that starts
and watches the workers (L{pypid.daemon.workers.Supervisor}), and nothing
else.

C{twistd pypid} does what needs the configuration and Twisted once, before
any worker starts (the check of the ports, the start notes, the folders'
locks and sweep, the listening sockets, the ring and the configuration in
force), then replaces itself with this process (L{pypid.daemon.handover}:
the same process id, so twistd's pidfile and systemd's main process stay
true). What it hands over is one JSON document, L{Handover}: the
descriptors it keeps open (the sockets, the ring, the configuration, the
folders' locks) and how to start a worker.

Here: the workers' processes (C{posix_spawn}, their descriptors placed),
their heartbeats and restarts, the sockets of their groups
(L{pypid.daemon.socket_groups}), the ring's counts of workers, C{SIGHUP}
(checked by a short-lived child, L{pypid.daemon.reload_check}, which
imports the configuration's code so that this process does not), the stop
on C{SIGTERM} or C{SIGINT}, systemd's notifications, the process's title
and its log. Importing Twisted's reactor alone costs a supervisor 31 MiB of
RSS, the configuration 17 more; this process holds about 20.
"""

from __future__ import annotations

import errno
import fcntl
import heapq
import itertools
import json
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TextIO

from pypid.daemon.socket_groups import CannotListen, Inherited, Sockets
from pypid.daemon.workers import (
    READY_FD,
    Command,
    Pace,
    StartFailed,
    Supervisor,
)
from pypid.machine.ring import ChangeRing
from pypid.machine.topic_table import Topic, tell

#: The environment variable that makes a C{twistd pypid} one worker of a
#: machine: JSON, C{{"number", "count", "ring", "config", "sockets"}}, the
#: ring, the configuration in force and each socket by its descriptor in the
#: worker.
WORKER_ENV = "PYPID_WORKER"

#: The worker's descriptor of the ring, and of the configuration in force;
#: its sockets' follow, in the order of C{[pypid] listen}.
RING_FD = 4
CONFIG_FD = 5

#: What systemd tells the process it starts, which is the supervisor's alone.
SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
               "LISTEN_FDNAMES")

#: Bytes a log file holds before it is rotated (twistd's C{LogFile} default).
ROTATE_AT = 1_000_000


class _Timer:
    """A call to come on the L{Loop}: active until it ran or was cancelled."""

    def __init__(self, loop: Loop, when: float, call: Callable[[], object]) -> None:
        self._loop = loop
        self.when = when
        self.call: Callable[[], object] | None = call

    def active(self) -> bool:
        """Whether it is still to come."""
        return self.call is not None

    def cancel(self) -> None:
        """It will not come."""
        self.call = None

    def reset(self, seconds: float) -> None:
        """It comes C{seconds} from now instead (its earlier place in the heap is passed over)."""
        if self.call is not None:
            self.when = self._loop.seconds() + seconds
            self._loop.add(self)


class Loop:
    """
    The supervisor's event loop: descriptors to read, calls to come and
    signals, over C{selectors}.
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._heap: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()
        self._signals: list[int] = []
        self._handlers: dict[int, Callable[[], None]] = {}
        self.running = True
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, self._woken)

    def seconds(self) -> float:
        """Now, on a clock that never steps back."""
        return time.monotonic()

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any) -> _Timer:
        """Call C{f(*args)} C{delay} seconds from now."""
        return self.add(_Timer(self, self.seconds() + delay, lambda: f(*args)))

    def add(self, timer: _Timer) -> _Timer:
        """Keep C{timer} until it is due."""
        heapq.heappush(self._heap, (timer.when, next(self._order), timer))
        return timer

    def when_readable(self, fd: int, read: Callable[[], None]) -> None:
        """Call C{read()} whenever C{fd} is readable."""
        self._selector.register(fd, selectors.EVENT_READ, read)

    def forget(self, fd: int) -> None:
        """Read C{fd} no more."""
        self._selector.unregister(fd)

    def on_signal(self, signum: int, handler: Callable[[], None]) -> None:
        """Call C{handler()} from the loop after C{signum}, once however often it came."""
        self._handlers[signum] = handler
        signal.signal(signum, lambda number, frame: self._signals.append(number))

    def _woken(self) -> None:
        try:
            while os.read(self._wake_read, 512):
                pass
        except BlockingIOError:
            pass

    def run(self) -> None:
        """Run until L{stop}."""
        while self.running:
            self._signalled()
            now = self.seconds()
            while self._heap and (self._heap[0][0] <= now or _stale(self._heap[0])):
                when, _, timer = heapq.heappop(self._heap)
                if _stale((when, 0, timer)):
                    continue
                call, timer.call = timer.call, None
                assert call is not None
                call()
                now = self.seconds()
            if not self.running:
                break
            timeout = max(0.0, self._heap[0][0] - now) if self._heap else None
            for key, _ in self._selector.select(timeout):
                key.data()

    def _signalled(self) -> None:
        signals, self._signals[:] = list(dict.fromkeys(self._signals)), []
        for signum in signals:
            handler = self._handlers.get(signum)
            if handler is not None:
                handler()

    def stop(self) -> None:
        """End L{run} after the current step."""
        self.running = False

    def close(self) -> None:
        """Let go of the selector and of the signals (the tests' loops end)."""
        signal.set_wakeup_fd(-1)
        for signum in self._handlers:
            signal.signal(signum, signal.SIG_DFL)
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)


def _stale(entry: tuple[float, int, _Timer]) -> bool:
    """Whether a heap's entry no longer stands for its timer's call (cancelled, or reset)."""
    when, _, timer = entry
    return timer.call is None or timer.when != when


class _Spawned:
    """A process started on the L{Loop}: its pipes read, its end heard once it was reaped."""

    def __init__(self, loop: Loop, pid: int, pipes: dict[int, int],
                 output: Callable[[int, bytes], None], ended: Callable[[str], None],
                 held: int = -1) -> None:
        self._loop = loop
        self._held = held
        self.pid = pid
        self._pipes = pipes
        self._output = output
        self._ended = ended
        self.done = False
        for child_fd, fd in pipes.items():
            loop.when_readable(fd, partial(self._read, child_fd))

    def signal(self, signum: int) -> None:
        """Send it C{signum} (nothing once it was reaped)."""
        if not self.done:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def _read(self, child_fd: int) -> None:
        fd = self._pipes[child_fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._output(child_fd, data)
        else:
            self._close(child_fd)

    def _close(self, child_fd: int) -> None:
        fd = self._pipes.pop(child_fd)
        self._loop.forget(fd)
        os.close(fd)

    def reaped(self, status: int) -> None:
        """It ended with C{status} (C{waitpid}'s): what it wrote last is read, then its end told."""
        self.done = True
        if self._held >= 0:
            os.close(self._held)
        for child_fd in list(self._pipes):
            # (what is in the pipe now; a grandchild holding it open holds nothing up)
            while child_fd in self._pipes:
                fd = self._pipes[child_fd]
                try:
                    data = os.read(fd, 65536)
                except (BlockingIOError, OSError):
                    data = b""
                if not data:
                    self._close(child_fd)
                else:
                    self._output(child_fd, data)
        self._ended(how_it_ended(status))


def worker_command(worker: Mapping[str, Any], number: int, count: int, ring: int, config: int,
                   given: Sequence[Inherited]) -> Command:
    """
    How worker C{number} of C{count} is started: C{worker}'s executable,
    arguments and environment (L{pypid.daemon.handover}), without
    systemd's variables and told its role (L{WORKER_ENV}), with the ring,
    the configuration in force and its C{given} sockets placed from
    L{RING_FD} on.
    """
    inherited = {RING_FD: ring, CONFIG_FD: config}
    sockets = []
    for fd, socket_of in enumerate(given, start=CONFIG_FD + 1):
        inherited[fd] = socket_of.fileno
        sockets.append((socket_of.description, fd, socket_of.family, socket_of.backlog))
    env = {key: value for key, value in worker["env"].items() if key not in SYSTEMD_ENV}
    env[WORKER_ENV] = json.dumps({"number": number, "count": count, "ring": RING_FD,
                                  "config": CONFIG_FD, "sockets": sockets})
    return Command(worker["executable"], tuple(worker["args"]), env, inherited)


def how_it_ended(status: int) -> str:
    """C{waitpid}'s status, as the log says it."""
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return "exited"
    if code > 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = str(-code)
    return f"killed by {name}"


class Processes:
    """Starts processes with their descriptors placed, and reaps them (C{SIGCHLD})."""

    def __init__(self, loop: Loop) -> None:
        self._loop = loop
        self._children: dict[int, _Spawned] = {}
        loop.on_signal(signal.SIGCHLD, self.reap)

    def spawn(self, command: Command, output: Callable[[int, bytes], None],
              ended: Callable[[str], None], *, read: tuple[int, ...] = (1, 2, READY_FD),
              stdin: int | None = None) -> _Spawned:
        """
        Start C{command}: C{read}'s descriptors are pipes read into
        C{output}; standard input is C{stdin} or a pipe whose end this
        process holds (a worker reads its end there when this process
        ends, even by C{kill -9}), the C{stdin} given closed here once
        given; the inherited descriptors are placed where the command says.
        """
        placed: dict[int, int] = {}
        ours: list[int] = []
        pipes: dict[int, int] = {}
        keep = -1
        try:
            for child_fd in read:
                r, w = os.pipe2(os.O_CLOEXEC)
                os.set_blocking(r, False)
                pipes[child_fd] = r
                placed[child_fd] = w
                ours.append(w)
            if stdin is None:
                r, w = os.pipe2(os.O_CLOEXEC)
                placed[0] = r
                ours.append(r)
                keep = w
            else:
                placed[0] = stdin
                ours.append(stdin)
                keep = -1
            placed.update(command.inherited)
            # (each source first moved above every target: a source that is
            # another's target would be overwritten before it is placed)
            floor = max([*placed, 2]) + 1
            moved = {target: fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, floor)
                     for target, source in placed.items()}
            ours.extend(moved.values())
            actions = [(os.POSIX_SPAWN_DUP2, source, target) for target, source in moved.items()]
            pid = os.posix_spawn(command.executable, list(command.args), command.env,
                                 file_actions=actions, setsigmask=(),
                                 setsigdef=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                                            signal.SIGCHLD, signal.SIGUSR1))
        except BaseException:
            for fd in [*pipes.values(), *ours, *([keep] if keep >= 0 else [])]:
                os.close(fd)
            raise
        for fd in ours:
            os.close(fd)
        # (the write end of the worker's standard input: held, never written)
        child = _Spawned(self._loop, pid, pipes, output, ended, keep)
        self._children[pid] = child
        return child

    def reap(self) -> None:
        """Every child that ended: reaped, and its end told."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self._children.pop(pid, None)
            if child is not None:
                child.reaped(status)


class Log:
    """
    The supervisor's log, as twistd wrote it: a line each, the time and the
    system first, to standard output or to a file rotated at L{ROTATE_AT}
    bytes and on C{SIGUSR1} (twistd's C{LogFile}).
    """

    def __init__(self, file: str | None = None, syslog: str | None = None,
                 stream: TextIO = sys.stdout, rotate_at: int = ROTATE_AT) -> None:
        """
        @param file: the log file; L{None}: C{stream}, unless C{syslog}.
        @param syslog: log to syslog instead, with this prefix (C{--syslog}).
        """
        self._path = file
        self._stream = stream
        self._rotate_at = rotate_at
        self._file: TextIO | None = None
        self._size = 0
        self._syslog: Any = None
        if syslog is not None:
            import syslog as system_log
            system_log.openlog(syslog, 0, system_log.LOG_DAEMON)
            self._syslog = system_log
        elif file is not None:
            self._open()

    def _open(self) -> None:
        assert self._path is not None
        self._file = open(self._path, "a", encoding="utf-8")
        self._size = self._file.tell()

    def __call__(self, level: str, text: str) -> None:
        """Write C{text} (of C{level}: C{info}, C{warn}, C{error}, C{critical})."""
        if self._syslog is not None:
            priority = {"warn": self._syslog.LOG_WARNING, "error": self._syslog.LOG_ERR,
                        "critical": self._syslog.LOG_CRIT}.get(level, self._syslog.LOG_INFO)
            self._syslog.syslog(priority, f"[-] {text}")
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        line = f"{stamp} [pypid.daemon.lean#{level}] {text}\n"
        out = self._file if self._file is not None else self._stream
        try:
            out.write(line)
            out.flush()
        except OSError:
            return
        if self._file is not None:
            self._size += len(line.encode("utf-8"))
            if self._size >= self._rotate_at:
                self.rotate()

    def rotate(self) -> None:
        """Start a new file: C{log} becomes C{log.1}, C{log.1} C{log.2}, and so on."""
        if self._file is None or self._path is None:
            return
        self._file.close()
        numbers = [int(name.rsplit(".", 1)[1]) for name in os.listdir(
            os.path.dirname(self._path) or ".")
            if name.startswith(os.path.basename(self._path) + ".")
            and name.rsplit(".", 1)[1].isdigit()]
        for number in sorted(numbers, reverse=True):
            os.rename(f"{self._path}.{number}", f"{self._path}.{number + 1}")
        os.rename(self._path, f"{self._path}.1")
        self._open()


def notify(address: str | None, *states: str) -> None:
    """Send C{states} to systemd (see L{pypid.daemon.systemd}); nothing without it."""
    if not address:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto("\n".join(states).encode("utf-8"), address)
        except OSError:
            pass


class Machine:
    """
    The supervisor's process, from its L{handover <pypid.daemon.handover>}:
    the workers, their sockets and the ring's counts, C{SIGHUP}, the stop.
    """

    def __init__(self, handover: Mapping[str, Any], loop: Loop, log: Log) -> None:
        # (what outlived the exec is not for every child: each worker is
        # given its own, placed where it expects them, and no other's socket)
        for fd in [handover["ring"], handover["config"], *handover["locks"],
                   *(s["fd"] for s in handover["shared"]),
                   *(fd for g in handover["groups"] for fd in g["members"].values())]:
            os.set_inheritable(fd, False)
        self._handover = handover
        self._loop = loop
        self._log = log
        self._processes = Processes(loop)
        self._count = int(handover["count"])
        self._ring = ChangeRing.attach(int(handover["ring"]), 0)
        self._config_fd = int(handover["config"])
        self._sockets = Sockets.taken(handover)
        self._notify: str | None = handover.get("notify")
        self._watchdog: float | None = handover.get("watchdog")
        self._reloading = False
        self._again = False
        self.supervisor = Supervisor(
            loop, self._spawn, self._count, self._command, log,
            pace=Pace(at_once=handover["at_once"], hang_after=handover["hang_after"]),
            on_change=self._changed, on_ready=self._ready, on_hung=self._sockets.shut,
            on_silent=self._silent)

    # -- the workers ------------------------------------------------------------------------

    def _command(self, number: int) -> Command:
        """Worker C{number}'s command, with its sockets (its own opened anew after its end)."""
        try:
            given = self._sockets.for_worker(number)
        except CannotListen as e:
            raise StartFailed(str(e))
        return worker_command(self._handover["worker"], number, self._count,
                              self._ring.fileno(), self._config_fd, given)

    def _spawn(self, command: Command, output: Callable[[int, bytes], None],
               ended: Callable[[str], None]) -> _Spawned:
        return self._processes.spawn(command, output, ended)

    def _changed(self, number: int, up: bool) -> None:
        if up:
            # (the others' kept-alive connections reconnect, some to it)
            tell(self._ring, Topic.WORKER_READY, b"%d" % number)
        else:
            self._sockets.ended(number)
            # (it may have changed a file and ended before it said so)
            tell(self._ring, Topic.WORKER_ENDED, b"%d" % number)
        self._counted()

    def _silent(self, number: int, silent: bool) -> None:
        if silent:
            self._sockets.silent(number)
        self._counted()

    def _counted(self) -> None:
        s = self.supervisor
        self._ring.set_workers(s.up(), self._count, s.restarts, s.silences, s.hangs)

    def _ready(self) -> None:
        notify(self._notify, "READY=1", f"STATUS=Serving with {self._count} workers")

    # -- the process ------------------------------------------------------------------------

    def start(self) -> None:
        """Take the signals, and start the workers."""
        self._ring.set_workers(0, self._count)
        self._loop.on_signal(signal.SIGTERM, self.stop)
        self._loop.on_signal(signal.SIGINT, self.stop)
        self._loop.on_signal(signal.SIGHUP, self.reload)
        self._loop.on_signal(signal.SIGUSR1, self._log.rotate)
        if self._watchdog:
            self._beat()
        self.supervisor.start()

    def _beat(self) -> None:
        if self._loop.running:
            notify(self._notify, "WATCHDOG=1")
            assert self._watchdog is not None
            self._loop.callLater(self._watchdog, self._beat)

    def stop(self) -> None:
        """Stop the workers, then the loop (C{SIGTERM}, C{SIGINT})."""
        if not self.supervisor.running:
            return
        notify(self._notify, "STOPPING=1")
        self.supervisor.stop(self._stopped)

    def _stopped(self) -> None:
        self._sockets.close()
        self._loop.stop()

    def reload(self) -> None:
        """
        C{SIGHUP}: a child checks the configuration and takes it into the
        configuration in force (L{pypid.daemon.reload_check}); once it
        did, every worker is told. Signals that come meanwhile are folded
        into one more check after it.
        """
        if not self.supervisor.running:
            return
        if self._reloading:
            self._again = True
            return
        self._reloading = True
        check = self._handover["reload"]
        said: list[bytes] = []
        command = Command(check["executable"], tuple(check["args"]), dict(check["env"]),
                          {CONFIG_FD: self._config_fd})
        try:
            self._processes.spawn(command, lambda fd, data: said.append(data),
                                  lambda how: self._checked(how, b"".join(said)),
                                  read=(1, 2), stdin=os.open(os.devnull, os.O_RDONLY))
        except OSError as e:
            self._log("error", f"Cannot check the configuration: {e}")
            self._reloading = False

    def _checked(self, how: str, said: bytes) -> None:
        text = said.decode("utf-8", "replace").strip()
        if how == "exited":
            self.supervisor.signal_all(signal.SIGHUP)
            self._log("info", f"Reloaded the configuration: passed to {self._count} workers")
        else:
            self._log("error", "Not reloading the configuration, still using the one loaded "
                      f"before: {text or how}")
        self._reloading = False
        if self._again:
            self._again = False
            self.reload()


def main(argv: list[str] | None = None) -> int:
    """
    C{python -m pypid.daemon.lean FD}: run the machine handed over on
    descriptor C{FD} (read whole, then closed).
    """
    args = sys.argv[1:] if argv is None else argv
    fd = int(args[0])
    with os.fdopen(fd, "rb") as handed:
        handed.seek(0)
        handover = json.loads(handed.read())
    title = handover.get("title")
    if title:
        from setproctitle import setproctitle
        setproctitle(title)
    log = Log(**(handover.get("log") or {}))
    loop = Loop()
    machine = Machine(handover, loop, log)
    machine.start()
    try:
        loop.run()
    finally:
        pidfile = handover.get("pidfile")
        if pidfile:
            try:
                os.unlink(pidfile)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    log("warn", f"Cannot remove {pidfile}: {e.strerror}")
        log("info", "Server Shut Down.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
