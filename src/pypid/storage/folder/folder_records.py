"""
The records (L{pypid.storage.base.records.IRecords}) of a storage folder:
files under C{<storage path>/.pypid/<folder>/}, each fsynced and renamed
into place (a new one linked, so one of several writers succeeds), its
folder fsynced.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence

from twisted.internet.defer import Deferred
from zope.interface import implementer

from pypid.jobs.run import Run
from pypid.storage.base.disk import fsync_folder, read_if_present, remove_file, write_atomically
from pypid.storage.base.interface import StorageError
from pypid.storage.base.records import IRecords, checked, cut_names, is_record_name


@implementer(IRecords)
class FolderRecords:
    """The records as files under a folder (C{<storage path>/.pypid/<name>/}), on the I/O pool."""

    shared = False

    def __init__(self, root: str, run: Run) -> None:
        """@param root: the folder (C{<storage path>/.pypid/webhooks})."""
        self.root = root
        self._run = run

    def _path(self, name: str) -> str:
        return os.path.join(self.root, *checked(name).split("/"))

    def shown(self, name: str) -> str:
        """The file's path."""
        return self._path(name)

    def put(self, items: Mapping[str, bytes]) -> Deferred[None]:
        """Write files whole (each renamed into place), then fsync their folders once."""
        paths = {self._path(name): data for name, data in items.items()}
        return self._run(_put_files, paths)

    def put_new(self, name: str, data: bytes) -> Deferred[bool]:
        """Write a file whole where none is (linked into place: one of racers wins)."""
        return self._run(_put_new_file, self._path(name), data)

    def get(self, name: str) -> Deferred[bytes | None]:
        """A file's bytes."""
        return self._run(_read, self._path(name))

    def delete(self, names: Sequence[str]) -> Deferred[None]:
        """Remove files, then fsync their folders."""
        return self._run(_remove_files, [self._path(name) for name in names])

    def names(self, folder: str, after: str | None = None,
              limit: int | None = None) -> Deferred[list[str]]:
        """The files of a folder, sorted (temporary files left out)."""
        return self._run(lambda: cut_names(_list_folder(self._path(folder)), after, limit))


def _put_files(paths: Mapping[str, bytes]) -> None:
    try:
        for path, data in paths.items():
            write_atomically(path, data)
        for folder in {os.path.dirname(path) for path in paths}:
            fsync_folder(folder)
    except OSError as e:
        raise StorageError(f"cannot write {e.filename or 'a record'}: {e.strerror}")


def _put_new_file(path: str, data: bytes) -> bool:
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
        finally:
            os.unlink(tmp)
        fsync_folder(folder)
        return True
    except OSError as e:
        raise StorageError(f"cannot write {path}: {e.strerror}")


def _read(path: str) -> bytes | None:
    try:
        return read_if_present(path)
    except OSError as e:
        raise StorageError(f"cannot read {path}: {e.strerror}")


def _remove_files(paths: Sequence[str]) -> None:
    try:
        for path in paths:
            remove_file(path)
        for folder in {os.path.dirname(path) for path in paths}:
            if os.path.isdir(folder):
                fsync_folder(folder)
    except OSError as e:
        raise StorageError(f"cannot remove {e.filename or 'a record'}: {e.strerror}")


def _list_folder(path: str) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(path)
                      if entry.is_file() and is_record_name(entry.name))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        raise StorageError(f"cannot list {path}: {e.strerror}")
