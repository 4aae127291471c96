"""
A storage that counts and times, for C{/metrics}, the calls of the one it
wraps that touch the backend (those returning a L{Deferred}). The
synchronous ones pass through untouched: they answer from memory, and
C{locate} is on every download's path, where a timer costs more than it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import directlyProvides, providedBy

from pypid.core.records.metrics import Family, Timings, timing_families
from pypid.storage.base.interface import FileExists, FilenameDeleted, IStorage

#: The backend calls that are timed.
TIMED = frozenset([
    "prepare", "check", "publish", "update", "delete", "scan", "read_metadata",
    "read_details", "describe", "poll", "reconcile", "keep_snapshot", "load_snapshot",
    "add_tombstone", "keep_provenance", "read_provenance", "evict",
])


class MeasuredStorage:
    """
    The storage C{inner}, its backend calls counted in C{timings} by
    operation, timed with C{timer}; it provides what C{inner} provides.
    """

    def __init__(self, inner: IStorage, timer: Callable[[], float],
                 timings: Timings | None = None) -> None:
        self.inner = inner
        self._timer = timer
        self.timings = timings if timings is not None else Timings()
        directlyProvides(self, providedBy(inner))
        for name in dir(type(inner)):
            if name.startswith("_") or name in TIMED:
                continue
            if callable(getattr(type(inner), name, None)):
                # (bound once: C{locate} is on the path of every download;
                # measured, an attribute bound here costs 0.05 us to look
                # up, one found through L{__getattr__} 0.78 us)
                setattr(self, name, getattr(inner, name))
        for name in TIMED:
            method = getattr(inner, name, None)
            if method is not None:
                setattr(self, name, self._timed(name, method))

    def operation_families(self, store: str) -> list[Family]:
        """The calls, errors and latency of the backend's operations, labelled C{store}."""
        return timing_families(("pypid_storage_operations", "pypid_storage_errors",
                                "pypid_storage_duration_seconds"), "Storage operations",
                               ("store", "operation"), [((store,), self.timings)])

    def __getattr__(self, name: str) -> Any:
        # (only for what __init__ did not set: untimed calls and attributes)
        return getattr(self.inner, name)

    def _timed(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        timer, record = self._timer, self.timings.record

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = timer()
            try:
                result = method(*args, **kwargs)
            except BaseException:
                record(name, timer() - started, failed=True)
                raise
            if not isinstance(result, Deferred):
                record(name, timer() - started)
                return result

            def done(value: Any) -> Any:
                record(name, timer() - started, failed=not _succeeded(value))
                return value
            return result.addBoth(done)

        timed.__name__ = name
        timed.__doc__ = method.__doc__
        return timed


def unwrapped(storage: IStorage) -> IStorage:
    """
    The storage under its wrappers (timed, shared by a machine's workers):
    what a promotion copies from, as a backend's C{adopt} compares kinds.
    """
    while (inner := getattr(storage, "inner", None)) is not None:
        storage = inner
    return storage


def _succeeded(value: object) -> bool:
    """Whether a call succeeded: a file that exists or was deleted is an answer, not a failure."""
    if not isinstance(value, Failure):
        return True
    return value.check(FileExists, FilenameDeleted, FileNotFoundError) is not None
