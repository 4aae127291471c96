"""
What a part of the daemon (L{pypid.daemon.container}) may offer the rest,
declared rather than probed: L{IMetricsSource} (families for C{/metrics},
so the collector knows no subsystem's internals) and L{IReloadable} (what
C{SIGHUP} asks of it, so the reload is the parts' own). Interfaces only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from zope.interface import Interface

from pypid.core.records.metrics import Family


class IMetricsSource(Interface):
    """Something whose numbers C{/metrics} exposes."""

    def metric_families() -> Iterable[Family]:
        """The families to expose now, from plain counters: called at each scrape."""


class IReloadable(Interface):
    """A part that takes something from a configuration read again (C{SIGHUP})."""

    # (config is a pypid.config.Config, of a higher layer than this one)
    def prepare_reload(config: Any) -> Callable[[], str | None] | None:
        """
        Check what the configuration read again asks of this part, and
        return what takes it: C{commit() -> str | None} (a few words for the
        log line), or L{None} for nothing to do. Nothing may change before
        every part prepared: a reload is taken whole or not at all.

        @param config: the configuration read again, or L{None} when it
            could not be read (a part that reloads only its start-up files,
            a TLS certificate, still does).
        @raise pypid.config.errors.StartupError: when this part cannot take
            it (the whole reload is refused, with that line).
        """
