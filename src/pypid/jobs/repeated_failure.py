"""
A failure that repeats at every tick of a periodic job (L{RepeatedFailure}),
logged as it starts, once a minute with its count while it lasts, and as
it ends. While a store was down, each server logged "Cannot look for
changes by other servers" twice a second and "Cannot read the advisory
waivers" once a second, and the lines that said what else went wrong were
lost among them.
"""

from __future__ import annotations

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel

#: How often a failure that goes on is logged again (s).
REMIND_EVERY = 60.0


@attrs.define
class RepeatedFailure:
    """
    The failures of one periodic job.

    @ivar what: what failed, the log's words (C{"Cannot look for changes by
        other servers"}).
    """

    what: str
    _clock: IReactorTime
    _log: Logger
    _level: LogLevel = LogLevel.warn
    _remind_every: float = REMIND_EVERY
    _since: float | None = attrs.field(default=None, init=False)
    _count: int = attrs.field(default=0, init=False)
    _last: float = attrs.field(default=0.0, init=False)

    def failed(self, error: str) -> None:
        """One more failure, with its reason."""
        now = self._clock.seconds()
        self._count += 1
        if self._since is None:
            self._since, self._last = now, now
            self._log.emit(self._level, "{what}: {error}", what=self.what, error=error)
        elif now - self._last >= self._remind_every:
            self._last = now
            self._log.emit(self._level, "{what}, still ({count} failures in {seconds:.0f} s): "
                           "{error}", what=self.what, count=self._count,
                           seconds=now - self._since, error=error)

    def succeeded(self) -> None:
        """The job worked: the end of a failure going on is logged."""
        if self._since is None:
            return
        self._log.info("{what} no more: it works again after {count} failures in "
                       "{seconds:.0f} s", what=self.what, count=self._count,
                       seconds=self._clock.seconds() - self._since)
        self._since, self._count = None, 0
