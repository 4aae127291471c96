"""
The tools' output piped into a reader that stops early (C{pypid-admin
files x | head}) ends them quietly: Python raises C{BrokenPipeError} at
the next write, or at the flush as it exits, which printed a traceback
under the reader's output. Standard output is pointed at C{/dev/null}, so
that nothing is flushed into the closed pipe again, and the status is 141
(128 + SIGPIPE), a shell's for a command its pipe's reader left.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")

#: The exit status of a tool whose reader left.
BROKEN_PIPE_STATUS = 141


def _to_devnull() -> None:
    """Point standard output at C{/dev/null}: the closed pipe is not written again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def quiet_on_broken_pipe(main: Callable[P, int]) -> Callable[P, int]:
    """A tool's C{main} that ends quietly when its output's reader left."""
    @functools.wraps(main)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> int:
        status = BROKEN_PIPE_STATUS
        try:
            status = main(*args, **kwargs)
        except BrokenPipeError:
            _to_devnull()
            return BROKEN_PIPE_STATUS
        finally:
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                _to_devnull()
                status = BROKEN_PIPE_STATUS
            except (OSError, ValueError):
                pass
        return status
    return wrapper
