"""
The small file-system operations every user of the disk shares: atomic
writes of state files, removals, a folder held by one process. Blocking.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from collections.abc import Iterable


def read_if_present(path: str) -> bytes | None:
    """The bytes of the file at C{path}, or L{None} if there is none (L{OSError}: unreadable)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def exclusive_lock(path: str, mode: int = 0o600) -> int | None:
    """
    Open C{path} (created if missing) and take its exclusive lock without
    waiting: the open descriptor, held until it is closed, or L{None} when
    another process holds the lock.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def write_file(path: str, data: bytes, durable: bool = True) -> None:
    """
    Write C{data} to C{path} (created 0600 whatever the umask, or cut to
    nothing first), fsynced with C{durable}: through the descriptor, not a
    file object, which would ask whether it is a terminal and where it
    stands (three system calls of the eleven a small sidecar took, and each
    a release of the GIL that a busy reactor makes the thread wait to take
    back).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str) -> None:
    """Make the bytes written to the file at C{path} durable (through a descriptor of its own)."""
    _fsync(path, os.O_RDWR)


def thread_temp_name(folder: str, prefix: str) -> str:
    """
    A temporary file's path in C{folder} that no other thread of any process
    uses at the same time: named by the thread's id in the kernel (asked
    each time: a forked worker's main thread keeps its parent's in
    C{Thread.native_id} until Python 3.12).
    """
    return os.path.join(folder, f"{prefix}{threading.get_native_id()}.part")


def write_atomically(path: str, data: bytes | bytearray | memoryview | Iterable[bytes],
                     prefix: str = ".tmp-") -> None:
    """
    Replace C{path} with C{data} (bytes, or an iterable of them) at once: a
    temporary file beside it (mode 0600, named C{prefix}...C{.tmp}),
    fsynced, renamed over it; a crash leaves the old file or the new one.

    The temporary file is locked (C{flock}) while written, so a sweep
    (L{sweep_unlocked}) never takes one another process is writing: a
    machine's second worker, starting, removed the first's snapshot under
    way, whose save then failed at the rename.
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    while True:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            break
        # (swept between its creation and the lock: another)
        os.close(fd)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                for chunk in data:
                    f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def sweep_unlocked(folder: str, prefix: str) -> None:
    """Remove the temporary files of L{write_atomically} a crash left (unlocked) in C{folder}."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        path = os.path.join(folder, name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(path)
        except OSError:
            pass  # (being written, or gone)
        finally:
            os.close(fd)


def fsync_folder(path: str) -> None:
    """Make a folder's entries durable: a rename survives a crash once its folder is synced."""
    _fsync(path, os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: str, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: str, data: bytes, prefix: str = ".tmp-") -> None:
    """
    L{write_atomically}, then the folder fsynced: for files whose change is
    answered as done (a token revoked, a session ended).
    """
    write_atomically(path, data, prefix=prefix)
    fsync_folder(os.path.dirname(path) or ".")


def sweep_files(folder: str) -> int:
    """Make C{folder}, and remove the files a crash left in it (a spool): how many."""
    os.makedirs(folder, exist_ok=True)
    swept = 0
    for entry in os.scandir(folder):
        if entry.is_file(follow_symlinks=False):
            remove_file(entry.path)
            swept += 1
    return swept


def remove_file(path: str) -> None:
    """Remove the file at C{path}, if it is still there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
