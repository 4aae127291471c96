"""
Benchmarks: scripts run by hand (not collected by trial), each saying in its
docstring what it measures and how to run it.
"""

import atexit
import os
import shutil
import sys
import tempfile
import time

_ASIDE: list[str] = []

#: Where the time of the last removal is kept, for the next benchmark.
REMOVED_AT = os.path.join(tempfile.gettempdir(), "pypid-bench-removed-at")

#: Seconds from a removal until files made are no longer slowed by it: the
#: 60 seconds ext4 skips a freed inode for, once its table block is written
#: (at most 35 s after, by the kernel's default writeback).
SETTLE = 100.0


def set_aside(path: str) -> None:
    """
    Move the folder at C{path} out of the way, to be removed when the
    benchmark ends (L{remove_set_aside}, also at exit), not now.

    Why not now: on an ext4 without a journal (this machine's root), the
    inode allocator passes over every inode freed in the last 60 seconds
    (360 while its table block is unwritten), one lookup each; a run that
    follows the removal of its predecessor's few thousand files pays that on
    every file it creates. Measured with 1,200 uploads to one process
    (docs/performance.rst): 6,000 files made and removed just before halved
    the rate (176-193 files/s against 352-387) and doubled the server's CPU
    a file, a quarter of it in the kernel's scan. The removal at the end
    is noted for the next benchmark to wait out (L{settle}).
    """
    if not os.path.lexists(path):
        return
    parent = os.path.dirname(os.path.abspath(path))
    aside = tempfile.mkdtemp(prefix=".set-aside-", dir=parent)
    os.rename(path, os.path.join(aside, os.path.basename(path)))
    if not _ASIDE:
        atexit.register(remove_set_aside)
    _ASIDE.append(aside)


def remove_set_aside() -> None:
    """
    Remove what L{set_aside} moved, once nothing more is measured, and note
    when (L{settle}).
    """
    if not _ASIDE:
        return
    while _ASIDE:
        shutil.rmtree(_ASIDE.pop(), ignore_errors=True)
    with open(REMOVED_AT, "w"):
        pass


def settle() -> None:
    """
    Wait, before a benchmark measures, until the files the last one removed
    no longer slow the files this one makes (L{set_aside}).
    """
    try:
        left = os.stat(REMOVED_AT).st_mtime + SETTLE - time.time()
    except FileNotFoundError:
        return
    if left > 0:
        print(f"waiting {left:.0f} s: the benchmark before removed its folders",
              file=sys.stderr, flush=True)
        time.sleep(left)
