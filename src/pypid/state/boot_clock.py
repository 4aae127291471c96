"""
Reading the clock that never steps, kept with each snapshot so that a start
can tell the wall clock went back since (L{pypid.core.util.clock_steps}).

Linux's C{CLOCK_BOOTTIME} and the boot's id (C{/proc/sys/kernel/random/boot_id}):
seconds since boot, counting a suspend as the wall clock does, and the
boot they are of. Elsewhere there is none, and a start cannot tell a step
(as before): L{read_boot_clock} gives L{None}.
"""

from __future__ import annotations

import functools
import sys
import time

_BOOT_ID = "/proc/sys/kernel/random/boot_id"


@functools.cache
def _boot_id() -> str | None:
    """This boot's id (it does not change while the process lives), or L{None}."""
    try:
        with open(_BOOT_ID, encoding="ascii") as f:
            return f.read().strip() or None
    except (OSError, ValueError):
        return None


def read_boot_clock() -> tuple[str, float] | None:
    """C{(boot id, seconds since boot)}, or L{None} where the system has no such clock."""
    if sys.platform != "linux":
        return None
    boot = _boot_id()
    if boot is None:
        return None
    return boot, time.clock_gettime(time.CLOCK_BOOTTIME)
