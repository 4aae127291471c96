"""
The supervisor's process of a machine (C{[pypid] workers} above 1): a loop
of the standard library that starts and watches the workers
(L{pypid.daemon.workers.Supervisor}), and nothing else. C{twistd pypid}
does what needs the configuration and Twisted once, then replaces itself
with this process (L{pypid.daemon.handover}: the same process id, so
twistd's pidfile and systemd's main process stay true).

Here: the workers' processes, their sockets' groups, the ring's counts of
workers, C{SIGHUP} (checked by a short-lived child,
L{pypid.daemon.reload_check}, so that this process does not import the
configuration's code), the stop, systemd's notifications, the title and
the log. Importing Twisted's reactor alone costs a supervisor 31 MiB of
RSS, the configuration 17 more; this process holds about 20.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from pypid.daemon.first_worker import Forked, given_role
from pypid.daemon.lean_loop import Loop, Processes, Spawned
from pypid.daemon.socket_groups import CannotListen, Inherited, Sockets
from pypid.daemon.workers import Command, Pace, StartFailed, Supervisor
from pypid.machine.ring import ChangeRing
from pypid.machine.topic_table import Topic, tell

#: The environment variable that makes a C{twistd pypid} one worker of a
#: machine: JSON, C{{"number", "count", "ring", "config", "lane", "sockets"}},
#: the ring, the configuration in force, the lane and each socket by its
#: descriptor in the worker.
WORKER_ENV = "PYPID_WORKER"

#: The worker's descriptor of the ring, of the configuration in force and
#: of the lane (L{pypid.machine.topics.Hub}); its sockets' follow, in the
#: order of C{[pypid] listen}.
RING_FD = 4
CONFIG_FD = 5
LANE_FD = 6

#: Bytes a log file holds before it is rotated (twistd's C{LogFile} default).
ROTATE_AT = 1_000_000


def worker_command(worker: Mapping[str, Any], number: int, count: int, ring: int, config: int,
                   lane: int, given: Sequence[Inherited]) -> Command:
    """
    How worker C{number} of C{count} is started: C{worker}'s command
    (L{pypid.daemon.handover.plan}), told its role (L{WORKER_ENV}), with the
    ring, the configuration in force, the lane and its C{given} sockets
    placed from L{RING_FD} on.
    """
    inherited = {RING_FD: ring, CONFIG_FD: config, LANE_FD: lane}
    sockets = []
    for fd, socket_of in enumerate(given, start=LANE_FD + 1):
        inherited[fd] = socket_of.fileno
        sockets.append((socket_of.description, fd, socket_of.family, socket_of.backlog))
    env = dict(worker["env"])
    env[WORKER_ENV] = json.dumps({"number": number, "count": count, "ring": RING_FD,
                                  "config": CONFIG_FD, "lane": LANE_FD, "sockets": sockets})
    return Command(worker["executable"], tuple(worker["args"]), env, inherited)


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

    def reopen(self) -> None:
        """
        At C{SIGUSR1}: rotate the file; without one (standard output, or
        syslog), say there is none, where Python's default stopped the
        supervisor and so the server without a word.
        """
        if self._file is None:
            self("info", "Received SIGUSR1: the log goes to standard output or syslog, "
                 "not to a file to reopen; going on")
        else:
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


def notify(address: str | None, *states: str) -> OSError | None:
    """
    Send C{states} to systemd in one datagram (L{pypid.daemon.systemd});
    nothing without an C{address}. A manager that is gone is returned,
    never raised: the server goes on without it.
    """
    if not address:
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto("\n".join(states).encode("utf-8"), address)
    except OSError as e:
        return e
    return None


class Machine:
    """
    The supervisor's process, from its L{handover <pypid.daemon.handover>}:
    the workers, their sockets and the ring's counts, C{SIGHUP}, the stop.
    """

    def __init__(self, handover: Mapping[str, Any], loop: Loop, log: Log) -> None:
        # (the workers twistd pypid forked, waiting for their roles)
        self._forked = [Forked.taken(forked) for forked in handover.get("forked") or []]
        # (what outlived the exec is not for every child: each worker is
        # given its own, placed where it expects them, and no other's socket)
        for fd in [handover["ring"], handover["config"], handover["lane"], *handover["locks"],
                   *(s["fd"] for s in handover["shared"]),
                   *(fd for g in handover["groups"] for fd in g["members"].values()),
                   *(fd for forked in self._forked for fd in forked.descriptors())]:
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

    def _command(self, number: int) -> Command:
        """Worker C{number}'s command, with its sockets (its own opened anew after its end)."""
        try:
            given = self._sockets.for_worker(number)
        except CannotListen as e:
            raise StartFailed(str(e))
        return worker_command(self._handover["worker"], number, self._count,
                              self._ring.fileno(), self._config_fd, int(self._handover["lane"]),
                              given)

    def _spawn(self, command: Command, output: Callable[[int, bytes], None],
               ended: Callable[[str], None]) -> Spawned:
        """
        Start a worker: give its role to a C{twistd pypid} forked while one
        waits (L{pypid.daemon.first_worker}), else start it anew.
        """
        forked = given_role(self._forked, command, self._log)
        if forked is not None:
            return self._processes.adopt(forked.pid, forked.pipes, output, ended, forked.stdin)
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

    def start(self) -> None:
        """Take the signals, and start the workers."""
        self._ring.set_workers(0, self._count)
        self._loop.on_signal(signal.SIGTERM, self.stop)
        self._loop.on_signal(signal.SIGINT, self.stop)
        self._loop.on_signal(signal.SIGHUP, self.reload)
        self._loop.on_signal(signal.SIGUSR1, self._log.reopen)
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
        self._sockets.close_shared()
        self._loop.stop()

    def reload(self) -> None:
        """
        C{SIGHUP}: a child checks the configuration and takes it into the
        configuration in force (L{pypid.daemon.reload_check}), or records
        its refusal there; then every worker is told. Signals that come
        meanwhile are folded into one more check after it.
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
        # (either way the workers are told: of a refusal too, which the
        # first one's journal entry, and so its webhook event, records)
        self.supervisor.signal_all(signal.SIGHUP)
        if how == "exited":
            self._log("info", f"Reloaded the configuration: passed to {self._count} workers")
            if text:
                # (the check's warning: the [tls] files kept as they were)
                self._log("warn", text)
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
