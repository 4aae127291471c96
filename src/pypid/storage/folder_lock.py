"""
A storage folder made ready for one server: its folders created, its lock
taken for the life of the process (two servers on one folder would each
miss the other's uploads), and the temporary files a crash left swept.
Blocking: for a worker thread.
"""

from __future__ import annotations

import os

import attrs
from twisted.logger import Logger

from pypid.storage.disk import exclusive_lock, remove_file
from pypid.storage.interface import StorageError
from pypid.storage.sidecars import META_DIR, Sidecars

log = Logger()


@attrs.define(eq=False)
class FolderLock:
    """
    Prepares a folder and holds its lock.

    @ivar _sidecars: the folder's L{Sidecars} (its paths).
    @ivar _fd: the descriptor that holds the lock, while held.
    """

    _sidecars: Sidecars
    _fd: int | None = attrs.field(default=None, init=False, repr=False)

    def prepare(self) -> None:
        """Create the folders, take the lock and sweep temporary files left by a crash."""
        sidecars = self._sidecars
        try:
            for d in (sidecars.root, sidecars.files_dir, sidecars.temp_dir):
                os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise StorageError(
                f"cannot use {sidecars.root} as the storage folder: {e.strerror}")
        self._lock()
        swept = 0
        for entry in os.scandir(sidecars.temp_dir):
            if entry.is_file(follow_symlinks=False):
                remove_file(entry.path)
                swept += 1
        if swept:
            log.info("Removed {count} temporary files left by an earlier run", count=swept)

    def _lock(self) -> None:
        """Take the folder's exclusive lock, unless held already."""
        if self._fd is not None:
            return
        root = self._sidecars.root
        fd = exclusive_lock(os.path.join(root, META_DIR, "lock"))
        if fd is None:
            raise StorageError(f"{root} is in use by another pypid process")
        self._fd = fd

    def close(self) -> None:
        """Release the folder (at the end of the service's life)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
