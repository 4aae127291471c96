"""
Storage on the local filesystem: the embedded default, which needs no setup.

Layout under the root folder::

    <filename>                       distribution files, flat (pypiserver's layout;
                                     nested folders of an existing tree are read too)
    .pypid/files/<filename>.json     the file's record (upload time, yank state ...)
    .pypid/files/<filename>.metadata its PEP 658 core metadata
    .pypid/files/<filename>.details  what the pages for people show of it
                                     (L{pypid.core.details}); for an imported
                                     file, rendered in the background
    .pypid/files/<filename>.json with "deleted": true   a tombstone
    .pypid/tmp/                      uploads being received; swept at start-up

Publication is race-free: the spooled upload is fsynced, then hard-linked to
its final name, which fails rather than overwrites when the name exists, so of
two concurrent uploads under one name exactly one wins and a reader never sees
a half-written file. The record is written after the link and the directory
fsynced before the upload is acknowledged; a crash in between leaves a file
without a record, which the next scan rebuilds from the file itself.

A reader that must leave the folder as it is (C{pypid-export}) scans with
C{persist=False}: no C{.pypid/} is made and nothing is written, and what is
learnt about files without a record stays in memory.

The methods named C{_*_sync} do the blocking work; the public ones run them in
the thread pool given at construction, never on the reactor thread.
"""

import contextlib
import errno
import json
import os
import threading
import time

import attrs
import orjson
from twisted.internet.defer import succeed
from twisted.logger import Logger
from zope.interface import implementer

from pypid.core.distribution import file_digests, inspect
from pypid.core.index import latest_per_project
from pypid.core.metadata import InvalidDistribution
from pypid.core.model import FileRecord
from pypid.core.names import InvalidName
from pypid.core.pending import DELETED, PendingFile
from pypid.storage.disk import exclusive_lock, fsync_folder, remove_file
from pypid.storage.interface import (
    FileExists,
    FilenameDeleted,
    IBackfillStorage,
    IStorage,
    LocalFile,
    MemoryFile,
    ScanResult,
    StorageError,
)

_META_DIR = ".pypid"
_RECORD = ".json"
_METADATA = ".metadata"
_DETAILS = ".details"

log = Logger()


def _write_atomic(path, data, tmp_dir, durable=True):
    """
    Write C{data} to C{path} through a temporary file and a rename. The
    temporary name is unique per process and thread, which is all the
    uniqueness needed, and cheaper than C{mkstemp}'s random probing.
    """
    tmp = os.path.join(tmp_dir, f"w{os.getpid()}-{threading.get_ident()}.part")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_file(tmp)
        raise


def _record_bytes(record):
    """A record (or a tombstone dict) as the JSON kept beside its file."""
    data = record if isinstance(record, dict) else record.to_json()
    return json.dumps(data, sort_keys=True).encode("utf-8")


def _storage_error(error):
    """The L{StorageError} for an L{OSError} of the backend."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError("the storage is full")
    return StorageError(f"cannot store the file: {error.strerror}")


@contextlib.contextmanager
def _storage_errors():
    """Turn L{OSError}s into L{StorageError}s, as the interface promises."""
    try:
        yield
    except OSError as e:
        raise _storage_error(e)


@implementer(IStorage, IBackfillStorage)
@attrs.define
class LocalStorage:
    """
    Files in a folder on local disk.

    @ivar root: the storage folder (absolute).
    @ivar _run: C{run(f, *args) -> Deferred}: runs blocking work off the
        reactor thread (C{deferToThreadPool} bound to a pool in production).
    @ivar _clock: provides C{seconds()}, for upload times of imported files.
    """

    root: str
    _run: object
    _clock: object = None
    # Metadata of files imported by the last scan whose sidecars are not
    # written yet (filename -> bytes); served from here until they are, or
    # for good after a scan that does not persist (which writes none).
    _unwritten: dict = attrs.field(factory=dict)
    _lock_fd: int | None = attrs.field(default=None, init=False, repr=False, eq=False)
    # Held while a record sidecar is written, so that the background write of
    # imported records never undoes a yank or a delete stored meanwhile.
    _sidecar_lock: object = attrs.field(factory=threading.Lock, init=False, repr=False,
                                        eq=False)

    @property
    def temp_dir(self):
        """Where uploads are spooled: on the same filesystem, so link() works."""
        return os.path.join(self.root, _META_DIR, "tmp")

    @property
    def _files_dir(self):
        return os.path.join(self.root, _META_DIR, "files")

    def _record_path(self, filename):
        return os.path.join(self._files_dir, filename + _RECORD)

    def _metadata_path(self, filename):
        return os.path.join(self._files_dir, filename + _METADATA)

    def _details_path(self, filename):
        return os.path.join(self._files_dir, filename + _DETAILS)

    def _file_path(self, key):
        return os.path.join(self.root, *key.split("/"))

    # -- the interface -------------------------------------------------------

    def prepare(self):
        """Create the folders and sweep temporary files left by a crash."""
        return self._run(self._prepare_sync)

    def publish(self, temp_path, record, metadata, details=None):
        """Link the spooled upload into place without overwriting; see the module."""
        return self._run(self._publish_sync, temp_path, record, metadata, details)

    def update(self, record):
        """Rewrite a file's record (a yank or an unyank)."""
        return self._run(self._write_record_sync, record)

    def delete(self, record):
        """Remove a file, keeping a tombstone for its name."""
        return self._run(self._delete_sync, record)

    def add_tombstone(self, filename):
        """Keep a tombstone for a name no stored file has; see L{IStorage.add_tombstone}."""
        return self._run(self._add_tombstone_sync, filename)

    def identity(self):
        """The folder's path: a snapshot of another folder is not used."""
        return f"local:{self.root}"

    def scan(self, known=None, since=0.0, tombstones=(), persist=True, later=False):
        """
        Walk the folder; see L{IStorage.scan}. What was learnt about files
        that had no record (an imported folder) is written beside them in the
        background, after the scan answers, so that start-up is not held up.
        Without C{persist}, nothing is written, not even C{.pypid/}: the
        imported files' metadata stays in memory (the folder may be
        read-only, or belong to the running daemon's user).

        @param later: leave files without a record undescribed, in the
            result's C{pending}, for L{describe_pending}: the scan then
            reads no file, only folders (0.5 s rather than 40 s for a bare
            folder of 100,000 files).
        """
        d = self._run(self._scan_sync, known or {}, since, frozenset(tombstones), persist,
                      later)
        if persist:
            d.addCallback(self._persist_imported)
        else:
            d.addCallback(lambda scanned: scanned[0])
        return d

    def _persist_imported(self, scanned):
        result, imported = scanned
        if imported:
            done = self._run(self._write_imported_sync, imported)
            done.addErrback(lambda f: log.failure("Cannot keep imported records", f))
            result = attrs.evolve(result, settled=done)
        return result

    def locate(self, record):
        """Files are sent straight from the folder."""
        return LocalFile(self._file_path(record.path))

    def locate_metadata(self, record):
        """
        Metadata is sent from its sidecar file (or memory, just after an
        import, or after a scan that did not persist).
        """
        data = self._unwritten.get(record.filename)
        if data is not None:
            return MemoryFile(data)
        return LocalFile(self._metadata_path(record.filename))

    def read_metadata(self, record):
        """
        A file's metadata: from memory just after an import (or after a scan
        that did not persist), else from its sidecar, read in the thread pool.
        """
        data = self._unwritten.get(record.filename)
        if data is not None:
            return succeed(data)
        return self._run(self._read_metadata_sync, record.filename)

    def read_details(self, record):
        """A file's details from their sidecar, or L{None} when there is none (yet)."""
        return self._run(self._read_details_sync, record.filename)

    def describe(self, record):
        """Render a file's details from the file and keep them in their sidecar."""
        return self._run(self._describe_sync, record)

    # -- blocking work, run in the thread pool ------------------------------

    def check(self):
        """Whether the folder can be written to now."""
        return self._run(os.access, self.root, os.W_OK)

    def _prepare_sync(self):
        try:
            for d in (self.root, self._files_dir, self.temp_dir):
                os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot use {self.root} as the storage folder: {e.strerror}")
        self._lock_sync()
        swept = 0
        for entry in os.scandir(self.temp_dir):
            if entry.is_file(follow_symlinks=False):
                remove_file(entry.path)
                swept += 1
        if swept:
            log.info("Removed {count} temporary files left by an earlier run", count=swept)

    def _lock_sync(self):
        """
        Hold an exclusive lock on the folder for the life of the process: two
        servers on one folder would each miss the other's uploads.
        """
        if self._lock_fd is not None:
            return
        fd = exclusive_lock(os.path.join(self.root, _META_DIR, "lock"))
        if fd is None:
            raise StorageError(f"{self.root} is in use by another pypid process")
        self._lock_fd = fd

    def close(self):
        """Release the folder (at the end of the service's life)."""
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)

    def _read_sidecar(self, filename, path=None):
        try:
            with open(path or self._record_path(filename), "rb") as f:
                data = orjson.loads(f.read())
        except (FileNotFoundError, NotADirectoryError):
            # (no .pypid/files/ at all, when a scan did not persist)
            return None
        except (OSError, ValueError) as e:
            log.warn("Ignoring unreadable record for {filename}: {error}",
                     filename=filename, error=str(e))
            return None
        if not isinstance(data, dict):
            log.warn("Ignoring unreadable record for {filename}: not a JSON object",
                     filename=filename)
            return None
        return data

    def _read_metadata_sync(self, filename):
        try:
            with open(self._metadata_path(filename), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise
        except NotADirectoryError:
            raise FileNotFoundError(self._metadata_path(filename))
        except OSError as e:
            raise StorageError(f"cannot read the metadata of {filename}: {e.strerror}")

    def _read_details_sync(self, filename):
        try:
            with open(self._details_path(filename), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise StorageError(f"cannot read the details of {filename}: {e.strerror}")

    def _publish_sync(self, temp_path, record, metadata, details):
        try:
            sidecar = self._read_sidecar(record.filename)
            if sidecar is not None and sidecar.get("deleted"):
                raise FilenameDeleted(record.filename)
            with open(temp_path, "rb+") as f:
                os.fsync(f.fileno())
            final = self._file_path(record.path)
            try:
                os.link(temp_path, final)
            except FileExistsError:
                raise FileExists(record.filename, self._existing_sha256(record, final))
            try:
                if metadata is not None:
                    _write_atomic(self._metadata_path(record.filename), metadata, self.temp_dir)
                if details is not None:
                    # (derived from the file: the directory's fsync below is enough)
                    _write_atomic(self._details_path(record.filename), details, self.temp_dir,
                                  durable=False)
                # The tombstone check was made before the link, and the app
                # changes one distribution at a time: no second read here.
                with self._sidecar_lock:
                    _write_atomic(self._record_path(record.filename), _record_bytes(record),
                                  self.temp_dir)
                fsync_folder(self._files_dir)
                fsync_folder(os.path.dirname(final))
            except BaseException:
                # Not published after all: take the file back, so a retry
                # publishes it again rather than finding it half there.
                remove_file(final)
                remove_file(self._metadata_path(record.filename))
                remove_file(self._details_path(record.filename))
                raise
            return record
        except (FileExists, FilenameDeleted, StorageError):
            raise
        except OSError as e:
            raise _storage_error(e)
        finally:
            remove_file(temp_path)

    def _existing_sha256(self, record, final):
        sidecar = self._read_sidecar(record.filename)
        if sidecar and sidecar.get("sha256"):
            return sidecar["sha256"]
        return file_digests(final)[1]

    def _write_record_sync(self, record):
        """Write a file's record; never over a tombstone (a delete is final)."""
        with _storage_errors(), self._sidecar_lock:
            current = self._read_sidecar(record.filename)
            if current is not None and current.get("deleted"):
                raise FilenameDeleted(record.filename)
            _write_atomic(self._record_path(record.filename), _record_bytes(record),
                          self.temp_dir)
            fsync_folder(self._files_dir)

    def _delete_sync(self, record):
        tombstone = dict(record.to_json(), deleted=True, deleted_at=self._now())
        with _storage_errors(), self._sidecar_lock:
            _write_atomic(self._record_path(record.filename), _record_bytes(tombstone),
                          self.temp_dir)
            remove_file(self._file_path(record.path))
            remove_file(self._metadata_path(record.filename))
            remove_file(self._details_path(record.filename))
            fsync_folder(self._files_dir)

    def _add_tombstone_sync(self, filename):
        """
        Write a tombstone sidecar (the name and the time, without a record:
        there is none here), unless a file of that name is stored, with a
        record or copied in without one.
        """
        with _storage_errors(), self._sidecar_lock:
            current = self._read_sidecar(filename)
            if current is not None and current.get("deleted"):
                return
            paths = {self._file_path(filename)}
            if current is not None and isinstance(current.get("path"), str):
                paths.add(self._file_path(current["path"]))
            if any(os.path.exists(path) for path in paths):
                raise FileExists(filename, (current or {}).get("sha256"))
            tombstone = {"filename": filename, "deleted": True, "deleted_at": self._now()}
            _write_atomic(self._record_path(filename), _record_bytes(tombstone), self.temp_dir)
            fsync_folder(self._files_dir)

    def _now(self):
        return self._clock.seconds() if self._clock is not None else time.time()

    def _walk(self):
        """Yield C{(key, filename, DirEntry)} for every regular file outside .pypid."""
        stack = [("", self.root)]
        while stack:
            prefix, folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as e:
                log.warn("Cannot list {folder}: {error}", folder=folder, error=e.strerror)
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((prefix + entry.name + "/", entry.path))
                elif entry.is_file():
                    yield prefix + entry.name, entry.name, entry

    def _same_sizes(self, known):
        """Whether every known file is still where it was, with its size."""
        for record in known.values():
            try:
                if os.stat(self._file_path(record.path)).st_size != record.size:
                    return False
            except OSError:
                return False
        return True

    def _unchanged_since(self, since):
        """
        Whether no folder of the tree changed after C{since}: then the
        snapshot taken at C{since} is what the folder holds, and no file need
        be looked at. Every change pypid makes renames or links a file into a
        folder, and so does any copy or removal by hand; the test is on the
        folders' change times (ctime), which neither a restore nor C{touch}
        can set back.
        """
        try:
            if os.stat(self._files_dir).st_ctime >= since:
                return False
            stack = [self.root]
            while stack:
                folder = stack.pop()
                if os.stat(folder).st_ctime >= since:
                    return False
                for entry in os.scandir(folder):
                    if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            return False
        return True

    def describe_pending(self, pending, persist=True):
        """
        Describe files a scan left C{pending} (L{pypid.core.pending.PendingFile}s),
        and keep their records beside them (with C{persist}).

        @return: a L{Deferred} of C{[(PendingFile, FileRecord or reason)]}.
        """
        return self._run(self._describe_pending_sync, pending, persist)

    def _describe_pending_sync(self, pending, persist):
        results, imported = [], []
        for item in pending:
            path = self._file_path(item.key)
            try:
                if item.recorded or item.mtime is None:
                    stat = os.stat(path)
                    size, mtime = stat.st_size, stat.st_mtime
                else:
                    size, mtime = item.size, item.mtime
            except OSError as e:
                results.append((item, f"cannot read: {e.strerror}"))
                continue
            seen = None
            if item.recorded:
                seen = self._read_sidecar(item.filename)
                if seen is not None and seen.get("deleted"):
                    results.append((item, DELETED))
                    continue
                if seen is not None:
                    try:
                        record = FileRecord.from_json(seen)
                    except ValueError:
                        record = None
                    if record is not None and record.size == size:
                        results.append((item, record.replace(path=item.key)
                                        if record.path != item.key else record))
                        continue
            results.append((item, self._import(path, item.filename, item.key, mtime, seen,
                                               imported)))
        if persist and imported:
            # (no details: a README takes 1 to 3 ms to render, more than the
            # rest of describing a file; a person's first view renders it)
            self._write_imported_sync(imported, quiet=True, details=False)
        return results

    def _import(self, path, filename, key, mtime, seen, imported):
        """
        Describe a file that has no usable record: its record (added to
        C{imported}, with C{seen}, the sidecar as read, for the write that
        keeps it beside the file, L{_write_imported_sync}), or why it is
        not served.
        """
        try:
            inspected = inspect(path, filename, key, mtime, legacy=True)
        except (InvalidName, InvalidDistribution) as e:
            return str(e)
        except OSError as e:
            return f"cannot read: {e.strerror}"
        # Kept beside the file (later), so the next scan is cheap and the
        # upload time stays what it was today.
        record, metadata = inspected.record, inspected.metadata
        if metadata is not None:
            self._unwritten[filename] = metadata
        imported.append((record, metadata, seen))
        return record

    def _scan_sync(self, known, since, known_tombstones=frozenset(), persist=True,
                   later=False):
        # Wall-clock time, on purpose: it is compared with the times the
        # filesystem gives files, not with the reactor's (or a test's) clock.
        started = time.time()
        if persist:
            os.makedirs(self._files_dir, exist_ok=True)
            # Sidecars of files read during the scan are written through it.
            os.makedirs(self.temp_dir, exist_ok=True)
        # A snapshot from the future means the clock went back: trust no time.
        if since > started:
            since = 0.0
        if since and known and self._unchanged_since(since) and self._same_sizes(known):
            return ScanResult(records=dict(known), tombstones=known_tombstones,
                              current=True), []
        # The names only: a listing kept as DirEntry objects (three a file:
        # record, metadata, details) held 60 MB more at 100,000 files.
        # (names, not DirEntry objects, in one comprehension: 0.11 rather than
        # 0.3 s for the 200,000 names of 100,000 files)
        try:
            names = os.listdir(self._files_dir)
        except (FileNotFoundError, NotADirectoryError):
            names = ()  # (not made: a scan that does not persist makes none)
        cut = -len(_RECORD)
        sidecars = {name[:cut] for name in names if name.endswith(_RECORD)}
        del names
        tombstones = set()
        records = {}
        skipped = []
        imported = []
        fresh = {}
        folder = self._files_dir + os.sep
        # (a later scan reads now only the records of known files, below)
        for filename in (sidecars if not later else sidecars & known.keys()):
            path = folder + filename + _RECORD
            # ctime, not mtime: a restore or touch can set mtime back.
            if filename in known:
                try:
                    if os.stat(path).st_ctime < since:
                        continue
                except OSError:
                    continue
            data = self._read_sidecar(filename, path)
            if data is not None and data.get("deleted"):
                tombstones.add(filename)
            elif data is not None:
                # Kept as the record, not the dict it was read from: 100,000
                # of those held at once made the records' start peak at 540
                # MiB.
                try:
                    data = FileRecord.from_json(data)
                except ValueError:
                    pass
            fresh[filename] = data
        pending = {}
        for key, filename, entry in self._walk():
            if filename in records or filename in tombstones or filename in pending:
                if filename in records or filename in pending:
                    skipped.append((key, f"another file named {filename} is already listed"))
                continue
            record = self._record_for(key, filename, entry, known, fresh, imported, later,
                                      filename in sidecars)
            if isinstance(record, str):
                skipped.append((key, record))
            elif isinstance(record, PendingFile):
                pending[filename] = record
            else:
                records[filename] = record
        if later:
            # The records no file has the name of: tombstones (read now, so
            # that a deleted name is never served or taken again), or left
            # behind.
            for filename in sidecars - known.keys() - records.keys() - pending.keys():
                data = self._read_sidecar(filename)
                if data is not None and data.get("deleted"):
                    tombstones.add(filename)
        result = ScanResult(records=records, tombstones=frozenset(tombstones),
                            skipped=tuple(skipped), pending=tuple(pending.values()))
        return result, imported

    def _write_imported_sync(self, imported, quiet=False, details=True):
        """
        Keep imported records and metadata beside their files, and the
        details of each project's latest file, rendered here rather than
        during the scan (a README takes milliseconds: a folder of thousands
        would hold start-up for minutes). Older versions are described when
        their page is first asked for (L{describe}); so are all, without
        C{details}.
        """
        described = (latest_per_project(record for record, _, _ in imported)
                     if details else ())
        for record, metadata, seen in imported:
            rendered = None
            if record.filename in described:
                started = time.perf_counter()
                try:
                    rendered = self._details_of(record)
                except OSError as e:
                    # (described on its first view instead)
                    log.warn("Cannot describe {filename}: {error}",
                             filename=record.filename, error=e.strerror)
                # Rendering holds the interpreter's lock: resting as long
                # as it took leaves the server half of it, so pages are
                # served at 0.6x the usual rate meanwhile, not 0.45x. This
                # runs in the I/O pool (see scan); with a runner that works
                # on the calling thread (a command, a test), the main
                # thread, where the reactor runs, never rests.
                if threading.current_thread() is not threading.main_thread():
                    time.sleep(time.perf_counter() - started)
            try:
                with self._sidecar_lock:
                    current = self._read_sidecar(record.filename)
                    deleted = current is not None and current.get("deleted")
                    if metadata is not None and not deleted:
                        _write_atomic(self._metadata_path(record.filename), metadata,
                                      self.temp_dir, durable=False)
                    # A sidecar that changed since the scan read it holds a yank
                    # or a delete stored meanwhile: newer than what the scan knew.
                    if current == seen:
                        _write_atomic(self._record_path(record.filename), _record_bytes(record),
                                      self.temp_dir, durable=False)
                    if rendered is not None and not deleted:
                        _write_atomic(self._details_path(record.filename), rendered,
                                      self.temp_dir, durable=False)
            except OSError as e:
                log.warn("Cannot keep the record of {filename}: {error}",
                         filename=record.filename, error=e.strerror)
            finally:
                self._unwritten.pop(record.filename, None)
        if not quiet:
            log.info("Kept the records of {count} imported files", count=len(imported))

    def _describe_sync(self, record):
        try:
            details = self._details_of(record)
        except FileNotFoundError:
            return None  # (deleted meanwhile)
        except OSError as e:
            raise _storage_error(e)
        if details is not None:
            with _storage_errors(), self._sidecar_lock:
                current = self._read_sidecar(record.filename)
                if current is not None and current.get("deleted"):
                    return None
                _write_atomic(self._details_path(record.filename), details, self.temp_dir,
                              durable=False)
        return details

    def _details_of(self, record):
        """
        The details of a stored file, or L{None} when it is not a
        distribution any more.

        @raise OSError: when the file cannot be read now.
        """
        try:
            return inspect(self._file_path(record.path), record.filename, record.path,
                           record.upload_time,
                           (record.size, record.sha256, record.blake2_256, record.md5),
                           legacy=True, details=True).details
        except (InvalidName, InvalidDistribution) as e:
            log.warn("Cannot describe {filename}: {error}", filename=record.filename,
                     error=str(e))
            return None

    def _record_for(self, key, filename, entry, known, fresh, imported, later=False,
                    listed=True):
        """
        The record of one file: from the snapshot when neither the file nor
        its sidecar changed since, else from its sidecar, else from the file
        (or, C{later}, a L{PendingFile} to describe it from).

        @param listed: whether the listing of the records' folder named a
            sidecar for it: one it did not is not looked for (an open that
            fails costs 10 us, 1 s for a bare folder of 100,000 files).
        """
        previous = known.get(filename)
        if later and previous is None and filename not in fresh:
            # (nothing to compare: the file, and its record, are looked at
            # when described)
            return PendingFile(filename, key, recorded=listed)
        stat = entry.stat()
        if (previous is not None and filename not in fresh and previous.path == key
                and previous.size == stat.st_size):
            return previous
        data = fresh.get(filename)
        if data is None and filename not in fresh and listed:
            data = self._read_sidecar(filename)
        if isinstance(data, FileRecord):
            if data.size == stat.st_size:
                return data.replace(path=key) if data.path != key else data
            data = data.to_json()  # (as read: the sidecar an import may replace)
        elif data is not None:
            if not data.get("deleted"):
                try:
                    record = FileRecord.from_json(data)
                except ValueError:
                    record = None
                if record is not None and record.size == stat.st_size:
                    return record.replace(path=key) if record.path != key else record
        if later and data is None:
            return PendingFile(filename, key, stat.st_size, stat.st_mtime)
        return self._import(entry.path, filename, key, stat.st_mtime, data, imported)
