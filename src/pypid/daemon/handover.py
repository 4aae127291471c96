"""
The last part of C{twistd pypid} as a machine's supervisor (L{Handover}):
once every other part has done what needs the configuration and Twisted,
it replaces the process with the lean supervisor (L{pypid.daemon.lean}),
handing it what it keeps open and how to start a worker, as one JSON
document in a memory file.

The same process goes on (C{exec}): twistd has written its pidfile and,
as a daemon, left its terminal; systemd's main process is still this
one. What twistd would do at its end (remove the pidfile, log C{Server
Shut Down.}), the lean process does.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.application.service import Service

from pypid.daemon.first_worker import Forked
from pypid.daemon.inherited import WorkerSockets
from pypid.daemon.socket_groups import inheritable as _inheritable
from pypid.daemon.systemd import Notifier
from pypid.storage.folder.local import LocalStorage

#: The worker's log: each event a line on its standard output, without the
#: time, which the supervisor's line gives (C{twistd --logger}).
WORKER_LOGGER = "pypid.daemon.machine.worker_log"

#: What systemd tells the process it starts, which is the supervisor's alone.
SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
               "LISTEN_FDNAMES")


def worker_args(executable: str, arguments: Sequence[str]) -> list[str]:
    """A worker's command line: the C{twistd pypid} of the machine, with the same options."""
    return [executable, "-c", "from twisted.scripts.twistd import run; run()",
            "--nodaemon", "--pidfile=", f"--logger={WORKER_LOGGER}", "pypid", *arguments]


def twistd_log(twistd: Mapping[str, Any] | None) -> dict[str, str] | None:
    """
    Where twistd logs, for the lean process to log there too: C{{"syslog":
    prefix}} (C{--syslog}), C{{"file": path}} (C{--logfile}, or
    C{twistd.log} for a daemon), or L{None}: standard output.
    """
    if twistd is None:
        return None
    if twistd.get("syslog"):
        return {"syslog": twistd.get("prefix") or "twisted"}
    logfile = twistd.get("logfile")
    if logfile == "-" or (not logfile and twistd.get("nodaemon")):
        return None
    return {"file": os.path.abspath(logfile or "twistd.log")}


def plan(*, count: int, at_once: int, hang_after: float, arguments: Sequence[str],
         options: Mapping[str, Any], environ: Mapping[str, str], title: str | None,
         twistd: Mapping[str, Any] | None, executable: str = sys.executable) -> dict[str, Any]:
    """
    What the lean process is told beside its descriptors: how many
    workers, how to start one (with C{arguments}) and how to check a
    C{SIGHUP} (the configuration file and the overrides of C{options}),
    its title, its log and pidfile (from C{twistd}), and systemd's socket.
    """
    notifier = Notifier.from_environ(environ)
    env = {key: value for key, value in environ.items() if key not in SYSTEMD_ENV}
    given = {"config": os.path.abspath(options["config"]) if options.get("config") else None,
             "set": options.get("set", []), "listen": options.get("listen", [])}
    pidfile = (twistd or {}).get("pidfile")
    return {
        "count": count, "at_once": at_once, "hang_after": hang_after,
        "worker": {"executable": executable, "args": worker_args(executable, arguments),
                   "env": env},
        "reload": {"executable": executable,
                   "args": [executable, "-m", "pypid.daemon.reload_check", json.dumps(given)],
                   "env": env},
        "notify": notifier.address if notifier is not None else None,
        "watchdog": notifier.watchdog if notifier is not None else None,
        "title": title, "log": twistd_log(twistd),
        "pidfile": os.path.abspath(pidfile) if pidfile else None,
    }


class Handover(Service):
    """Hands the machine over to the lean supervisor (see the module)."""

    def __init__(self, planned: Mapping[str, Any], descriptors: Mapping[str, int],
                 sockets: WorkerSockets, folders: Sequence[LocalStorage],
                 executable: str = sys.executable,
                 exec_: Callable[[str, list[str]], object] = os.execv,
                 forked: Sequence[Forked] = ()) -> None:
        """
        @param descriptors: the ring's (C{ring}), the configuration in
            force's (C{config}) and the lane's (C{lane}).
        @param forked: the workers forked and waiting for their roles
            (L{pypid.daemon.first_worker}), which the lean process gives them.
        """
        self._planned = planned
        self._descriptors = descriptors
        self._sockets = sockets
        self._folders = list(folders)
        self._executable = executable
        self._exec = exec_
        self._forked = list(forked)

    def startService(self) -> None:
        """Hand over: from here on, the lean supervisor runs this process."""
        Service.startService(self)
        locks = [folder.lock_descriptor() for folder in self._folders]
        document = {
            **self._planned, **self._sockets.held.handed(),
            **{name: _inheritable(fd) for name, fd in self._descriptors.items()},
            "locks": [_inheritable(fd) for fd in locks if fd is not None],
            "forked": [forked.handed() for forked in self._forked]}
        fd = os.memfd_create("pypid-handover", 0)
        os.write(fd, json.dumps(document).encode("utf-8"))
        sys.stdout.flush()
        sys.stderr.flush()
        self._exec(self._executable, [self._executable, "-m", "pypid.daemon.lean", str(fd)])
