"""
The upstream files whose fetch failed lately, by filename: a file's
download whose bytes were wrong, or a provenance that could not be had or
was refused, is not asked for again at every request (each would fetch the
wrong bytes again) but once L{pypid.upstream.cache.FAILURE_MEMORY} seconds
have passed.

The downloads (L{pypid.upstream.downloads}) and the provenance
(L{pypid.upstream.file_provenance}) each keep one table; both are bounded
the same way (at most L{MAX_FAILED_FILES} names, the oldest forgotten),
which is why it is one class.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs
from twisted.internet.interfaces import IReactorTime

from pypid.core.util.bounded import put_newest
from pypid.upstream.cache import recent

T = TypeVar("T")

#: The most upstream files whose failed fetch is remembered
#: (L{pypid.upstream.cache.FAILURE_MEMORY}); past it the oldest are forgotten.
MAX_FAILED_FILES = 2000


@attrs.define
class RecentFailures(Generic[T]):
    """
    C{filename -> (when, what)} of the fetches that failed, the oldest
    first; what failed is remembered while L{recent}.

    @ivar _clock: when a failure happened, and whether it is still recent.
    """

    _clock: IReactorTime
    _failed: dict[str, tuple[float, T]] = attrs.field(init=False, factory=dict)

    def remember(self, filename: str, what: T, at: float | None = None) -> None:
        """
        The fetch of C{filename} failed now (or at C{at}, when another worker
        of the machine's fetch did), with C{what}.
        """
        put_newest(self._failed, filename, (self._clock.seconds() if at is None else at, what),
                   MAX_FAILED_FILES)

    def lately(self, filename: str) -> T | None:
        """What the fetch of C{filename} failed with, if still remembered; else L{None}."""
        failed = self._failed.get(filename)
        if failed is not None and recent(failed[0], self._clock.seconds()):
            return failed[1]
        return None

    def __len__(self) -> int:
        return len(self._failed)
