"""
Small records kept with the packages, by name, in a few folders: the
journal's entries on a bucket (L{pypid.storage.journal_records}), the
webhooks' cursors, failures and lease (L{pypid.webhooks}). On local disk
as files under C{<storage path>/.pypid/<folder>/} (L{FolderRecords}), in a
bucket as objects under C{<prefix>.pypid/<folder>/} (L{BucketRecords}),
and in memory for the tests (L{MemoryRecords}), so that what they hold
outlives a crash and every server on a shared bucket sees the same.

A record is written whole and durably before its write is answered (a
file fsynced, renamed, and its folder fsynced; an object's PUT answered):
a reader sees the old record or the new, never part of one. L{put_new}
writes only a record that is not there yet (a file linked into place, an
object written with C{If-None-Match: *}): of several servers writing the
same name at once, exactly one succeeds, which is what a journal's serial
and a lease are claimed with.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from twisted.internet.defer import (
    Deferred,
    ensureDeferred,
    fail,
    maybeDeferred,
)
from zope.interface import Attribute, Interface, implementer

from pypid.jobs.run import Run
from pypid.storage.disk import fsync_folder, read_if_present, remove_file, write_atomically
from pypid.storage.interface import StorageError

if TYPE_CHECKING:
    from pypid.storage.bucket.store import ObjectStore

_T = TypeVar("_T")

#: A record's name: folders and a file name of safe characters.
_NAME = re.compile(r"\A(?:[A-Za-z0-9][A-Za-z0-9._-]*/)*[A-Za-z0-9][A-Za-z0-9._-]*\Z")

#: Where the records' folders are, under the storage's root (or the bucket's prefix).
FOLDER = ".pypid/"


def is_record_name(name: str) -> bool:
    """Whether C{name} (one segment, listed in a folder) is one a record may have."""
    return "/" not in name and bool(_NAME.match(name))


def checked(name: str) -> str:
    """C{name}, refused when it is not a record's (a path that could leave the folder)."""
    if not _NAME.match(name) or ".." in name:
        raise ValueError(f"{name!r} is not the name of a record")
    return name


class IRecords(Interface):
    """The records of one folder of the store's; see the module."""

    shared = Attribute("Whether other servers may use the same records (a bucket): "
                       "then one of them delivers the webhooks, by a lease.")

    def put(items: Mapping[str, bytes]) -> Deferred[None]:
        """
        Write the records C{items} (name -> bytes), each whole, replacing
        any of the same name, in the order given (one is never seen before
        those before it); fires once all are durable.

        @rtype: L{Deferred} firing with L{None}, or failing with
            L{StorageError}
        """

    def put_new(name: str, data: bytes) -> Deferred[bool]:
        """
        Write the record C{name} only if there is none: whether it was
        written (L{False}: one was there, and stays as it was).
        """

    def get(name: str) -> Deferred[bytes | None]:
        """The record C{name}'s bytes, or L{None} when there is none."""

    def delete(names: Sequence[str]) -> Deferred[None]:
        """Remove the records C{names} (one not there is no error)."""

    def shown(name: str) -> str:
        """How the record C{name} is named to a person: its path, or its key."""

    def names(folder: str, after: str | None = None,
              limit: int | None = None) -> Deferred[list[str]]:
        """
        The names of the records directly in C{folder} (C{failed}), sorted,
        without it; a file or object of another name (one copied there by
        hand) is left out. With C{after}, only the names sorting after it;
        with C{limit}, that many at most (the first).
        """


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
        return self._run(lambda: _cut(_list_folder(self._path(folder)), after, limit))


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


def _cut(names: list[str], after: str | None, limit: int | None) -> list[str]:
    """The sorted C{names} after C{after}, C{limit} at most."""
    if after is not None:
        names = [name for name in names if name > after]
    return names if limit is None else names[:limit]


def _list_folder(path: str) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(path)
                      if entry.is_file() and is_record_name(entry.name))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        raise StorageError(f"cannot list {path}: {e.strerror}")


@implementer(IRecords)
class BucketRecords:
    """The records as objects under a prefix (C{<prefix>.pypid/<name>/})."""

    shared = True

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        """@param prefix: the records' folder in the bucket (C{packages/.pypid/webhooks/})."""
        self._store = store
        self._prefix = prefix

    def shown(self, name: str) -> str:
        """The object's key."""
        return self._prefix + checked(name)

    def put(self, items: Mapping[str, bytes]) -> Deferred[None]:
        """
        Write objects one after the other, in the order given (a reader
        never sees a later one without those before it); fires once the
        last PUT is answered.
        """
        keys = {self._prefix + checked(name): data for name, data in items.items()}
        return ensureDeferred(self._put(keys))

    async def _put(self, keys: Mapping[str, bytes]) -> None:
        for key, data in keys.items():
            await self._store.put(key, data, "application/json")

    def put_new(self, name: str, data: bytes) -> Deferred[bool]:
        """Write an object with C{If-None-Match: *}."""
        return ensureDeferred(self._store.put(self._prefix + checked(name), data,
                                              "application/json", if_none_match=True))

    def get(self, name: str) -> Deferred[bytes | None]:
        """An object's bytes."""
        return ensureDeferred(self._store.get(self._prefix + checked(name)))

    def delete(self, names: Sequence[str]) -> Deferred[None]:
        """Remove objects, one after the other."""
        return ensureDeferred(self._delete([self._prefix + checked(name) for name in names]))

    async def _delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            await self._store.delete(key)

    def names(self, folder: str, after: str | None = None,
              limit: int | None = None) -> Deferred[list[str]]:
        """The objects directly under a folder, listed (from after C{after}, as the bucket can)."""
        return ensureDeferred(self._names(self._prefix + checked(folder) + "/", after, limit))

    async def _names(self, prefix: str, after: str | None, limit: int | None) -> list[str]:
        found: list[str] = []
        async for page in self._store.list(prefix, None if after is None else prefix + after,
                                           delimiter="/"):
            found.extend(name for item in page.keys
                         if is_record_name(name := item.key[len(prefix):]))
            if limit is not None and len(found) >= limit:
                break
        return _cut(sorted(found), after, limit)


@implementer(IRecords)
class MemoryRecords:
    """The records in a dict, for the tests; C{shared} as the test says."""

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared
        self.records: dict[str, bytes] = {}
        #: set to an exception to make every call fail with it
        self.failing: Exception | None = None

    def shown(self, name: str) -> str:
        """The record's name."""
        return checked(name)

    def _call(self, work: Callable[[], _T]) -> Deferred[_T]:
        if self.failing is not None:
            return fail(self.failing)
        return maybeDeferred(work)

    def put(self, items: Mapping[str, bytes]) -> Deferred[None]:
        """Keep the records."""
        kept = {checked(name): bytes(data) for name, data in items.items()}
        return self._call(lambda: self.records.update(kept))

    def put_new(self, name: str, data: bytes) -> Deferred[bool]:
        """Keep the record if none of its name is kept."""
        checked(name)

        def put() -> bool:
            if name in self.records:
                return False
            self.records[name] = bytes(data)
            return True
        return self._call(put)

    def get(self, name: str) -> Deferred[bytes | None]:
        """A record's bytes."""
        checked(name)
        return self._call(lambda: self.records.get(name))

    def delete(self, names: Sequence[str]) -> Deferred[None]:
        """Forget the records."""
        gone = [checked(name) for name in names]

        def delete() -> None:
            for name in gone:
                self.records.pop(name, None)
        return self._call(delete)

    def names(self, folder: str, after: str | None = None,
              limit: int | None = None) -> Deferred[list[str]]:
        """The records directly in a folder."""
        prefix = checked(folder) + "/"
        return self._call(lambda: _cut(sorted(
            name[len(prefix):] for name in self.records
            if name.startswith(prefix) and is_record_name(name[len(prefix):])), after, limit))
