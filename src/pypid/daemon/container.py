"""
The ordered container of the daemon's parts (L{Parts}). Twisted's
L{MultiService} does not wait for one child before starting the next;
pypid's order matters: the listeners open only once the index is loaded,
the snapshot timer and the sync begin once they listen, and a stop must
close the listeners and finish the requests in flight before the last
snapshot is taken, and that before the thread pools that write it stop.

A start-up failure is one line: a part raises (or fails with)
L{StartupError}, and L{Parts} logs it as the one critical line and stops
the process with exit status 1, so a supervisor such as systemd sees it.
Any other failure is a bug: its traceback is logged, then the same line.

C{SIGHUP} (L{Parts.reload}) offers the configuration read again to every
part that provides L{IReloadable}: all prepare first, then all take it, so
a reload is taken whole or not at all.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable, Sequence

from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.config import Config
from pypid.config.reloading import held_as_started, refuse_restart_keys
from pypid.core.parts import IReloadable
from pypid.core.util.startup import StartupError

log = Logger()


class Parts(Service):
    """
    Starts the parts in order and stops them in reverse.

    @ivar ready: fires once every part started (never, after a start-up failure).
    """

    def __init__(self, parts: Sequence[tuple[str, IService]], reactor: IReactorCore, *,
                 exit_on_failure: bool = False,
                 load_config: Callable[[], Config] | None = None,
                 config: Config | None = None,
                 reloaded: Callable[[str, str], None] | None = None) -> None:
        """
        @param parts: C{(name, part)} of each part, in the order they start;
            the name is what the log says of it (and L{getServiceNamed}).
        @param exit_on_failure: make the process exit with status 1 after
            a start-up failure (a real process only, never inside tests).
        @param load_config: C{load_config() -> Config}, reading the
            configuration as start-up did, for L{reload}; L{None} when
            nothing reloads.
        @param config: the configuration the parts were built of: a reload
            that changes one of its keys only a restart takes is refused.
        @param reloaded: C{reloaded(outcome, detail)} after each reload:
            C{ok} and what was taken, or C{refused} and why (its audit
            entry, and so its webhook event).
        """
        self._parts = tuple(parts)
        if len(dict(self._parts)) != len(self._parts):
            raise ValueError(f"two parts have one name: {[name for name, _ in parts]}")
        self._reactor = reactor
        self._exit_on_failure = exit_on_failure
        self._load_config = load_config
        self._reloaded = reloaded
        self._config = config
        self._started: list[tuple[str, IService]] = []
        self.ready: Deferred[None] = Deferred()
        self.failed = False

    def getServiceNamed(self, name: str) -> IService:
        """The part called C{name} (as L{IServiceCollection} names it)."""
        return dict(self._parts)[name]

    def privilegedStartService(self) -> None:
        """Let each part bind what needs privileges, in order."""
        Service.privilegedStartService(self)
        for _, part in self._parts:
            part.privilegedStartService()

    def startService(self) -> None:
        """Start the parts one after the other; a failure stops the process (L{fatal})."""
        Service.startService(self)
        d = ensureDeferred(self._start())
        d.addErrback(self._start_failed)

    async def _start(self) -> None:
        for named in self._parts:
            if not self.running:
                return
            self._started.append(named)
            await maybeDeferred(named[1].startService)
        self.ready.callback(None)

    def _start_failed(self, failure: Failure) -> None:
        if failure.check(StartupError):
            self.fatal(str(failure.value))
            return
        name = self._started[-1][0] if self._started else "the server"
        log.failure("Cannot start {part}", failure, part=name)
        self.fatal(f"Cannot start {name}: stopping")

    def stopService(self) -> Deferred[None]:
        """Stop the parts that started, in reverse order, each after the one after it."""
        Service.stopService(self)
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        while self._started:
            name, part = self._started.pop()
            if not part.running:
                continue
            try:
                await maybeDeferred(part.stopService)
            except Exception:
                log.failure("Cannot stop {part} cleanly", part=name)

    def fatal(self, message: str) -> None:
        """
        Stop the process after an error at start-up, with one critical log
        line and exit status 1 (set once twistd's cleanup is done: twistd
        itself exits with 0 after a clean reactor stop).
        """
        self.failed = True
        log.critical("{problem}", problem=message)
        if self._exit_on_failure:
            atexit.register(_exit_failed)
        if self._reactor.running:
            self._reactor.stop()
        else:
            # (a part that fails as the service starts, before the reactor
            # runs: the first part, checking the ports, does)
            self._reactor.callWhenRunning(self._reactor.stop)

    def reload(self) -> None:
        """
        What C{SIGHUP} (C{systemctl reload}) does: read the configuration
        again and offer it to every part that takes something from it; the
        files a part read at the start (the C{[tls]} ones) are read again
        even when the configuration cannot be used. Connections and uploads
        in flight go on; the signal never stops the server.
        """
        config = None
        refusal = None
        if self._load_config is not None:
            try:
                config = self._load_config()
                if self._config is not None:
                    refuse_restart_keys(self._config, config)
                    config = held_as_started(self._config, config)
            except StartupError as e:
                _not_reloading(e)
                config, refusal = None, _told(e)
        commits = None
        if config is not None:
            try:
                commits = self._prepare(config)
            except StartupError as e:
                _not_reloading(e)
                refusal = _told(e)
        took = [said for said in (commit() for commit in (
            commits if commits is not None else self._prepare(None))) if said]
        if commits is not None:
            self._config = config
            log.info("Reloaded the configuration: {took}", took=", ".join(took))
        if self._reloaded is not None and self._load_config is not None:
            self._reloaded(*(("ok", ", ".join(took) or "nothing changed") if refusal is None
                             else ("refused", refusal)))
        elif self._load_config is None and not took:
            log.info("Received SIGHUP: nothing to reload")

    def _prepare(self, config: Config | None) -> list[Callable[[], str | None]]:
        commits = (part.prepare_reload(config) for _, part in self._parts
                   if IReloadable.providedBy(part))
        return [commit for commit in commits if commit is not None]


def _told(error: StartupError) -> str:
    """
    What a refused reload's entry (and webhook event, which leaves the
    server) says: the sections and keys at fault, never the log's line (a
    path, a user's name, a value).
    """
    return f"{error.named or 'the configuration'}: refused; the server's log says why"


def _not_reloading(error: StartupError) -> None:
    log.error("Not reloading the configuration, still using the one loaded before: {error}",
              error=str(error))


def _exit_failed() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
