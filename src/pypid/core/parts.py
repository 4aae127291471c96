"""
What a part of the daemon may offer the rest, declared rather than probed.

The daemon is assembled from parts (L{pypid.daemon.container}): each
long-lived subsystem is built complete by its own package's factory and is
a Twisted service, started in order and stopped in reverse. Beyond that, a
part may provide:

  - L{IMetricsSource}: families for C{/metrics}, so the collector iterates
    sources and knows nothing of a subsystem's internals;
  - L{IReloadable}: what C{SIGHUP} asks of it, so the reload is the parts'
    own, not a closure in the composition root.

Interfaces only: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from zope.interface import Interface

from pypid.core.records.metrics import Family


class IMetricsSource(Interface):
    """Something whose numbers C{/metrics} exposes."""

    def metric_families() -> Iterable[Family]:
        """
        The families to expose now (L{pypid.core.records.metrics.Family}), read
        from plain counters: called at each scrape, on the reactor's thread.
        """


class IReloadable(Interface):
    """A part that takes something from a configuration read again (C{SIGHUP})."""

    # (config: a pypid.config.Config, of a higher layer than this one; each
    # part says what it reads of it with a protocol of its own)
    def prepare_reload(config: Any) -> Callable[[], str | None] | None:
        """
        Check what the configuration read again asks of this part, and
        return what takes it: C{commit() -> str | None} (a few words saying
        what was taken, for the log line), or L{None} for nothing to do.
        Nothing may change before every part prepared: a reload is taken
        whole or not at all.

        @param config: the L{pypid.config.Config} read again, or L{None}
            when it could not be read: a part that reloads only files it
            was given at the start (a TLS certificate) still does.
        @raise pypid.config.errors.StartupError: when this part cannot take
            it (the whole reload is refused, with that line).
        """
