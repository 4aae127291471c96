"""
Deferreds run at once, failing with the first failure itself (L{gather}).

Twisted's C{gatherResults} fails with a C{FirstError} that wraps it, whose
text holds a traceback (a log line once read C{Cannot look for changes by
other servers: FirstError[#0, [Failure instance: Traceback: ...]]}), and
without C{consumeErrors} leaves the other failures to be logged as
C{Unhandled error in Deferred} when collected (both seen while a store
answered 500s).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from twisted.internet.defer import Deferred, FirstError, gatherResults
from twisted.python.failure import Failure

T = TypeVar("T")


def gather(deferreds: Iterable[Deferred[T]]) -> Deferred[list[T]]:
    """
    The results of C{deferreds} in order, once all have fired; or the
    first failure (not a C{FirstError}), the others consumed.
    """
    return gatherResults(list(deferreds), consumeErrors=True).addErrback(_first)


def _first(failure: Failure) -> Failure:
    if failure.check(FirstError):
        sub: Failure = failure.value.subFailure
        return sub
    return failure
