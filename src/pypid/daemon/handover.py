"""
The last part of C{twistd pypid} as a machine's supervisor (L{Handover}):
once every other part has done what needs the configuration and Twisted
(the ports checked, the folders locked and swept, the sockets, the ring
and the configuration in force made), it replaces the process with the
lean supervisor (L{pypid.daemon.lean}), handing it what it keeps open
and how to start a worker, as one JSON document in a memory file.

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

from pypid.daemon.inherited import WorkerSockets
from pypid.daemon.lean import SYSTEMD_ENV
from pypid.daemon.systemd import Notifier
from pypid.machine.config_in_force import ConfigInForce
from pypid.machine.ring import ChangeRing
from pypid.storage.folder.local import LocalStorage

#: The worker's log: each event a line on its standard output, without the
#: time, which the supervisor's line gives (C{twistd --logger}).
WORKER_LOGGER = "pypid.daemon.machine.worker_log"


def worker_args(executable: str, arguments: Sequence[str]) -> list[str]:
    """A worker's command line: the C{twistd pypid} of the machine, with the same options."""
    return [executable, "-c", "from twisted.scripts.twistd import run; run()",
            "--nodaemon", "--pidfile=", f"--logger={WORKER_LOGGER}", "pypid", *arguments]


def twistd_log(twistd: Mapping[str, Any] | None) -> str | None:
    """
    The file twistd logs to (L{None}: standard output, where the lean
    process logs too), from its options: C{--logfile}, or C{twistd.log}
    for a daemon.
    """
    if twistd is None:
        return None
    logfile = twistd.get("logfile")
    if logfile == "-" or (not logfile and twistd.get("nodaemon")):
        return None
    return os.path.abspath(logfile or "twistd.log")


def _inheritable(fd: int) -> int:
    os.set_inheritable(fd, True)
    return fd


class Handover(Service):
    """
    Hands the machine over to the lean supervisor (see the module).

    @ivar document: what was handed over (kept for the tests, whose
        C{exec} returns).
    """

    def __init__(self, *, count: int, at_once: int, hang_after: float, ring: ChangeRing,
                 config: ConfigInForce, sockets: WorkerSockets, listen: Sequence[str],
                 folders: Sequence[LocalStorage], arguments: Sequence[str],
                 environ: Mapping[str, str], title: str | None,
                 twistd: Mapping[str, Any] | None,
                 executable: str = sys.executable,
                 exec_: Callable[[str, list[str]], object] = os.execv) -> None:
        """
        @param arguments: the options of C{twistd pypid}, which every
            worker runs, and the check of C{SIGHUP}.
        @param twistd: twistd's own options (its log file and pidfile), or
            L{None} (the lean process logs to standard output).
        @param exec_: C{os.execv}.
        """
        self._count = count
        self._at_once = at_once
        self._hang_after = hang_after
        self._ring = ring
        self._config = config
        self._sockets = sockets
        self._listen = list(listen)
        self._folders = list(folders)
        self._arguments = list(arguments)
        self._environ = dict(environ)
        self._title = title
        self._twistd = twistd
        self._executable = executable
        self._exec = exec_
        self.document: dict[str, Any] | None = None

    def startService(self) -> None:
        """Hand over: from here on, the lean supervisor runs this process."""
        Service.startService(self)
        notifier = Notifier.from_environ(self._environ)
        env = {key: value for key, value in self._environ.items() if key not in SYSTEMD_ENV}
        pidfile = (self._twistd or {}).get("pidfile")
        self.document = {
            "count": self._count, "at_once": self._at_once, "hang_after": self._hang_after,
            "ring": _inheritable(self._ring.fileno()),
            "config": _inheritable(self._config.fileno()),
            "listen": self._listen, **self._sockets.handed(),
            "locks": [_inheritable(fd) for fd in (folder.lock_descriptor()
                                                  for folder in self._folders)
                      if fd is not None],
            "notify": notifier.address if notifier is not None else None,
            "watchdog": notifier.watchdog if notifier is not None else None,
            "worker": {"executable": self._executable,
                       "args": worker_args(self._executable, self._arguments),
                       "env": env},
            "reload": {"executable": self._executable,
                       "args": [self._executable, "-m", "pypid.daemon.reload_check",
                                *self._arguments],
                       "env": env},
            "title": self._title,
            "log": twistd_log(self._twistd),
            "pidfile": os.path.abspath(pidfile) if pidfile else None,
        }
        fd = os.memfd_create("pypid-handover", 0)
        os.write(fd, json.dumps(self.document).encode("utf-8"))
        sys.stdout.flush()
        sys.stderr.flush()
        self._exec(self._executable, [self._executable, "-m", "pypid.daemon.lean", str(fd)])
