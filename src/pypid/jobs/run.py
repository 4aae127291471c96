"""
How blocking work runs off the reactor thread (L{Run}): the I/O pool in
the daemon, at once in a command and in tests (L{run_at_once}). Every part
that reads or writes files, or hashes, is given one, never a global.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, Protocol, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Run(Protocol):
    """
    C{run(f, *args) -> Deferred}: runs blocking work off the reactor thread
    (C{deferToThreadPool} bound to a pool in production, at once in tests);
    a L{Deferred} of C{f}'s result.
    """

    def __call__(self, f: Callable[_P, _T], /, *args: _P.args,
                 **kwargs: _P.kwargs) -> Deferred[_T]:
        """Run C{f(*args, **kwargs)} off the reactor thread."""


def run_at_once(f: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
    """
    A L{Run} that works at once, on the calling thread: for a command
    (which has nothing else to do meanwhile) and a site without a pool.
    """
    return maybeDeferred(f, *args, **kwargs)
