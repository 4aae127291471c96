"""
One malloc arena for each process of pypid, set at its start.

Why: glibc gives each new thread that allocates an arena of its own (up
to eight a core), and an arena returns little of what it held once
freed. A server's threads (the reactor, the I/O pool's inspections and
writes, the hashing pool) each filled their own, so a process's memory
grew faster than what it kept: in the soaks of docs/performance.rst, the
worker that runs a machine's pool jobs grew 1.3 to 1.4 times as fast as
one process did, and 1.0 to 1.3 times with one arena on both. CPython
allocates its small objects itself, under the interpreter lock, so what
goes to malloc from the threads (large buffers, hashes, the C libraries'
work) meets little contention on the one lock; its cost on uploads and
pages is measured in docs/performance.rst.

C{MALLOC_ARENA_MAX}, or C{glibc.malloc.arena_max} in C{GLIBC_TUNABLES},
in the environment is the operator's word and wins (glibc read it before
Python started; C{MALLOC_ARENA_MAX=0} is glibc's own default). Elsewhere
than glibc (musl, macOS), nothing is done. The lean supervisor
(L{pypid.daemon.lean}) is a new program after its C{exec} and is not
limited: it runs no threads, so it has glibc's one main arena anyway.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping

#: glibc's C{mallopt} parameter for the number of arenas (malloc.h)
M_ARENA_MAX = -8

#: the arenas a process of pypid keeps
ARENAS = 1


def _mallopt() -> Callable[[int, int], int] | None:
    """This process's C library's C{mallopt}, or L{None} where it has none."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt


def limit_arenas(environ: Mapping[str, str],
                 mallopt: Callable[[], Callable[[int, int], int] | None] = _mallopt
                 ) -> int | None:
    """
    Keep this process (and what it forks) to L{ARENAS} malloc arenas,
    before its thread pools start. Returns the limit set, or L{None}
    when the environment chose one or the C library takes none.
    """
    if "MALLOC_ARENA_MAX" in environ or "glibc.malloc.arena_max" in environ.get(
            "GLIBC_TUNABLES", ""):
        return None
    call = mallopt()
    if call is None or call(M_ARENA_MAX, ARENAS) != 1:
        return None
    return ARENAS
