"""Tests for L{pypid.storage.base.disk}'s small writes."""

from __future__ import annotations

import os
import stat
import threading

from twisted.trial.unittest import SynchronousTestCase

from pypid.storage.base.disk import fsync_file, thread_temp_name, write_file


class WriteFileTests(SynchronousTestCase):
    """L{write_file} writes through a descriptor what a file object would."""

    def setUp(self) -> None:
        self.folder = os.path.abspath(self.mktemp())
        os.makedirs(self.folder)
        self.path = os.path.join(self.folder, "f")

    def test_owner_only_whatever_the_umask(self) -> None:
        """The file is 0600 even under a umask that would leave it readable to all."""
        old = os.umask(0)
        try:
            write_file(self.path, b"data")
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)

    def test_replaces_what_was_there(self) -> None:
        """A longer file before is cut, not overwritten in part; durable or not."""
        write_file(self.path, b"x" * 10_000)
        write_file(self.path, b"short", durable=False)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"short")
        write_file(self.path, b"")
        self.assertEqual(os.path.getsize(self.path), 0)

    def test_short_writes(self) -> None:
        """A write that takes only part of the bytes is followed by one of the rest."""
        real = os.write
        taken: list[int] = []

        def short(fd: int, data: bytes) -> int:
            taken.append(real(fd, bytes(data[:1000])))
            return taken[-1]
        self.patch(os, "write", short)
        data = os.urandom(2500)
        write_file(self.path, data)
        self.assertEqual(taken, [1000, 1000, 500])
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), data)

    def test_fsync_only_when_durable(self) -> None:
        """The descriptor is fsynced for a durable write, and only then."""
        synced: list[int] = []
        self.patch(os, "fsync", synced.append)
        write_file(self.path, b"derived", durable=False)
        self.assertEqual(synced, [])
        write_file(self.path, b"kept")
        self.assertEqual(len(synced), 1)

    def test_closed_when_fsync_fails(self) -> None:
        """A failing fsync is raised, and the descriptor is closed all the same."""
        closed: list[int] = []
        real = os.close

        def close(fd: int) -> None:
            closed.append(fd)
            real(fd)

        def fail(fd: int) -> None:
            raise OSError(5, "Input/output error")
        self.patch(os, "fsync", fail)
        self.patch(os, "close", close)
        with self.assertRaises(OSError):
            write_file(self.path, b"data")
        with self.assertRaises(OSError):
            fsync_file(self.path)
        self.assertEqual(len(closed), 2)

    def test_missing_folder(self) -> None:
        """A missing folder is the caller's error (L{FileNotFoundError}), nothing is made."""
        gone = os.path.join(self.folder, "gone")
        with self.assertRaises(FileNotFoundError):
            write_file(os.path.join(gone, "f"), b"data")
        with self.assertRaises(FileNotFoundError):
            fsync_file(gone)
        self.assertFalse(os.path.exists(gone))

    def test_fsync_file_keeps_the_bytes(self) -> None:
        """L{fsync_file} changes nothing of what it makes durable."""
        write_file(self.path, b"kept", durable=False)
        fsync_file(self.path)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"kept")


class ThreadTempNameTests(SynchronousTestCase):
    """L{thread_temp_name} names a temporary file per thread of the kernel."""

    def test_per_thread(self) -> None:
        """Two threads at once get two names in one folder, each its own every time."""
        names: list[str] = []
        here = thread_temp_name("/spool", "w")
        thread = threading.Thread(target=lambda: names.append(thread_temp_name("/spool", "w")))
        thread.start()
        thread.join()
        self.assertEqual(here, thread_temp_name("/spool", "w"))
        self.assertNotEqual(names, [here])
        self.assertEqual(os.path.dirname(names[0]), "/spool")
        self.assertEqual(here, f"/spool/w{threading.get_native_id()}.part")

    def test_after_fork(self) -> None:
        """
        A forked child's main thread is named by its own id (on Linux, the
        child's pid), not by its parent's.
        """
        thread_temp_name("/spool", "w")
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            status = 1
            try:
                os.write(write, thread_temp_name("/spool", "w").encode())
                status = 0
            finally:
                os._exit(status)
        os.close(write)
        try:
            child = os.read(read, 4096).decode()
        finally:
            os.close(read)
            _, status = os.waitpid(pid, 0)
        self.assertEqual(status, 0)
        self.assertEqual(child, f"/spool/w{pid}.part")
        self.assertNotEqual(child, thread_temp_name("/spool", "w"))
