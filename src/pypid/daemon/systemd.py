"""
systemd's service notifications, for C{Type=notify} units: C{READY=1} once
every listener is up and the index answers with every stored file
(L{pypid.daemon.readiness}), so that C{systemctl start}, and a unit
ordered after pypid's, wait for a server that answers; C{STOPPING=1} when
it stops; C{WATCHDOG=1} at half the unit's C{WatchdogSec}, so systemd
restarts a server whose reactor is stuck. Each is a datagram of
C{KEY=value} lines to the C{AF_UNIX} socket C{NOTIFY_SOCKET} names (C{@}:
the abstract namespace); outside systemd there is none, and nothing is sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import partial

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.daemon.lean import notify
from pypid.jobs.periodic import Periodic

log = Logger()


@attrs.define
class Notifier:
    """
    Sends notifications to the service manager.

    @ivar address: the socket's path, as C{sendto} takes it (a leading NUL
        for the abstract namespace).
    @ivar watchdog: seconds between two C{WATCHDOG=1}, or L{None} when the
        unit has no watchdog.
    """

    address: str
    watchdog: float | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str],
                     pid: int | None = None) -> Notifier | None:
        """
        The notifier the environment asks for, or L{None}: C{NOTIFY_SOCKET},
        and C{WATCHDOG_USEC} when C{WATCHDOG_PID} is unset or this process.
        """
        name = environ.get("NOTIFY_SOCKET")
        if not name:
            return None
        address = "\0" + name[1:] if name.startswith("@") else name
        watchdog = None
        usec = environ.get("WATCHDOG_USEC", "")
        owner = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and owner in ("", str(pid or os.getpid())):
            watchdog = int(usec) / 1e6 / 2
        return cls(address, watchdog)

    def send(self, *states: str) -> None:
        """Send C{states} (C{"READY=1"}, ...) in one datagram; a manager gone is logged."""
        e = notify(self.address, *states)
        if e is not None:
            log.warn("Cannot notify systemd ({states}): {error}", states=", ".join(states),
                     error=e.strerror)


class NotifierPart(Service):
    """
    systemd's notifications as the last part to start and the first to
    stop: C{READY=1} once every other part started and the index answers
    with every stored file (its check may end after the listeners open),
    C{WATCHDOG=1} while running, C{STOPPING=1} as the stop begins.
    """

    def __init__(self, notifier: Notifier, clock: IReactorTime,
                 status: Callable[[], str],
                 ready: Callable[[], Deferred[None]] | None = None) -> None:
        """
        @param status: C{status() -> str}, the status line once ready
            (C{Serving 12 files}, C{Serving with 4 workers}).
        @param ready: L{pypid.daemon.readiness.Readiness.when_ready}; L{None}: at once.
        """
        self._notifier = notifier
        self._clock = clock
        self._status = status
        self._ready = ready
        self._watchdog = (Periodic(partial(notifier.send, "WATCHDOG=1"), notifier.watchdog, clock,
                                   what="The systemd watchdog", first=0)
                          if notifier.watchdog else None)

    def startService(self) -> None:
        """Begin the watchdog; say the server is ready once the index answers."""
        Service.startService(self)
        if self._ready is None:
            self._say_ready(None)
        else:
            self._ready().addCallback(self._say_ready)
        if self._watchdog is not None:
            self._watchdog.startService()

    def _say_ready(self, _: object) -> None:
        if self.running:
            self._notifier.send("READY=1", f"STATUS={self._status()}")

    def stopService(self) -> None:
        """Say the server stops, and end the watchdog."""
        Service.stopService(self)
        self._notifier.send("STOPPING=1")
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stopService()


def notifier_part(notifier: Notifier | None, reactor: IReactorTime, status: Callable[[], str],
                  ready: Callable[[], Deferred[None]]) -> NotifierPart | None:
    """The part that tells C{notifier}'s systemd unit the server is ready; none without one."""
    if notifier is None:
        return None
    return NotifierPart(notifier, reactor, status, ready)
