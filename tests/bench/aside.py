"""
Folders of a benchmark's runs set aside rather than removed between runs
(L{set_aside}), and the wait a benchmark makes after another removed
them (L{settle}).

Why: on an ext4 without a journal (this machine's root), the inode
allocator passes over every inode freed in the last 60 seconds, or 360
while the inode's table block is unwritten (and a run's own new files
keep those blocks dirty), with one lookup in the buffer cache each. A run
that follows the removal of its predecessor's few thousand files pays that
on every file it creates. Measured with 1,200 uploads to one process
(docs/performance.rst): 6,000 files made and removed just before each run
halved the rate (176-193 files/s against 352-387) and doubled the
server's CPU a file; a profile of CPU 0 during uploads begun just after
such a removal put a quarter of it in the kernel's scan.

Imported as a module of its own, beside the scripts (their folder is the
first on C{sys.path}), not through the C{tests} package: importing that
one removes cached bytecode and sets C{PYTHONPYCACHEPREFIX} for the
servers a benchmark starts.
"""

import atexit
import os
import shutil
import sys
import tempfile
import time

_ASIDE: list[str] = []

#: Where the time of a benchmark's last removal is noted, for the next one.
REMOVED_AT = os.path.join(tempfile.gettempdir(), "pypid-bench-removed-at")

#: Seconds from a removal until the files it freed slow no file made: the
#: 360 seconds ext4 passes over a freed inode whose table block is dirty.
SETTLE = 400.0


def set_aside(path: str) -> None:
    """
    Move the folder at C{path} into a folder beside it named
    C{pypid-bench-set-aside-*}, removed when the benchmark ends
    (L{remove_set_aside}, also at exit; a benchmark killed leaves it, to
    remove by hand), not now.
    """
    if not os.path.lexists(path):
        return
    parent = os.path.dirname(os.path.abspath(path))
    aside = tempfile.mkdtemp(prefix="pypid-bench-set-aside-", dir=parent)
    os.rename(path, os.path.join(aside, os.path.basename(path)))
    if not _ASIDE:
        atexit.register(remove_set_aside)
    _ASIDE.append(aside)


def remove_set_aside() -> None:
    """Remove what L{set_aside} moved, once nothing more is measured, and note when."""
    if _ASIDE:
        for aside in _ASIDE:
            shutil.rmtree(aside, ignore_errors=True)
        _ASIDE.clear()
        note_removal()


def note_removal() -> None:
    """Note, for the next benchmark's L{settle}, that this one removed its files now."""
    with open(REMOVED_AT, "w"):
        pass


def settle() -> None:
    """
    Wait, before a benchmark measures, until the files the last one removed
    no longer slow the files this one makes (L{SETTLE} after the removal).
    """
    try:
        left = os.stat(REMOVED_AT).st_mtime + SETTLE - time.time()
    except FileNotFoundError:
        return
    if left > 0:
        print(f"waiting {left:.0f} s: the benchmark before removed its folders "
              "(tests/bench/aside.py)", file=sys.stderr, flush=True)
        time.sleep(left)
