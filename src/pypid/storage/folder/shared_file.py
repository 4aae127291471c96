"""
A small file the workers of one machine keep together (L{SharedFile}): the
API tokens, the browser sessions. Each worker holds its state in memory; a
change is made from the file on disk under the machine's lock, and
announced on the ring (L{pypid.machine.topics.Topic.FILE}) once written, so
every other worker reads it again before its next answer.

The lock is C{flock} on C{<name>.lock}, each worker's own descriptor: it
excludes the other workers, not this one's other changes, which its caller
runs one at a time. An announcement names the file by its path's digest
and its name.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Awaitable, Callable, Sequence

from twisted.internet.defer import Deferred

from pypid.jobs.run import Run
from pypid.machine.topics import Hub, Topic
from pypid.storage.base.disk import read_if_present, write_durably
from pypid.storage.folder.shared_folder import folder_key


class SharedFile:
    """
    One file the machine's workers change one at a time, each reading it
    again once another changed it.
    """

    def __init__(self, path: str, hub: Hub, run: Run, prefix: str = ".tmp-") -> None:
        """@param prefix: the temporary files' names, while written."""
        self.path = path
        self._hub = hub
        self._run = run
        self._prefix = prefix
        self._named = [folder_key(os.path.abspath(path)),
                       os.path.basename(path).encode("utf-8", "surrogateescape")]
        self._changed = False
        hub.on(Topic.FILE, self._told)
        # (a worker that ended may have written the file and not announced it)
        hub.on(Topic.WORKER_ENDED, self._ended)
        hub.lost(self._lost)

    def close(self) -> None:
        """Follow the other workers' changes no more (the file is no longer the server's)."""
        self._hub.forget(self._told, self._ended, self._lost)

    def _ended(self, fields: Sequence[bytes], worker: int) -> None:
        self._lost()

    def _told(self, fields: Sequence[bytes], worker: int) -> None:
        self._changed = self._changed or list(fields) == self._named

    def _lost(self) -> None:
        self._changed = True

    def changed_elsewhere(self) -> bool:
        """
        Whether another worker announced a change since the last look (no
        system call unless the ring moved; a whole ring behind: yes).
        """
        self._hub.take()
        changed, self._changed = self._changed, False
        return changed

    def read(self) -> Deferred[bytes | None]:
        """The file's bytes (L{None}: there is none)."""
        return self._run(read_if_present, self.path)

    async def change(self, change: Callable[[bytes | None], Awaitable[bytes | None]]) -> None:
        """
        Change the file under the machine's lock: C{change(current)} gets its
        bytes now and gives those to write durably and announce (L{None}
        for none, both ways).

        @raise OSError: the lock, the read or the write failed (nothing changed).
        """
        fd = await self._run(self._lock)
        try:
            current = await self._run(read_if_present, self.path)
            data = await change(current)
            if data is not None and data != current:
                await self._run(write_durably, self.path, data, self._prefix)
                self._hub.publish(Topic.FILE, *self._named)
        finally:
            os.close(fd)

    def change_now(self, change: Callable[[bytes | None], bytes | None]) -> None:
        """L{change}, blocking, for the start (before the reactor serves)."""
        fd = self._lock()
        try:
            current = read_if_present(self.path)
            data = change(current)
            if data is not None and data != current:
                write_durably(self.path, data, self._prefix)
                self._hub.publish(Topic.FILE, *self._named)
        finally:
            os.close(fd)

    def _lock(self) -> int:
        """Take the machine's lock of the file (blocking); its descriptor, to close."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd


#: C{share(path, prefix) -> SharedFile}: a worker's file as the machine shares it.
ShareFile = Callable[[str, str], SharedFile]
