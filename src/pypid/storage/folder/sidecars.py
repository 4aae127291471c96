"""
The files the local storage keeps beside each distribution, under
C{.pypid/files/}: a record (C{.json}, or a tombstone), the core metadata
(C{.metadata}), the details (C{.details}), the provenance (C{.provenance},
written before the record that names its digest) and a promoted file's
L{pypid.core.indexes.promotion.Promotion} (C{.promotion}).

Three parts of L{pypid.storage.folder.local.LocalStorage} write them and
must agree on what is kept here: every write goes through a temporary file
and a rename, so a reader never sees half a sidecar; and a record is
written under one lock (L{Sidecars.lock}), so the background write of an
imported record never undoes a yank or a delete. Blocking.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import attrs
import orjson
from twisted.logger import Logger

from pypid.core.dists.model import FileRecord
from pypid.core.dists.provenance import MAX_PROVENANCE_SIZE
from pypid.core.indexes.promotion import Promotion
from pypid.storage.base.disk import remove_file, thread_temp_name, write_file
from pypid.storage.base.interface import StorageError

META_DIR = ".pypid"
RECORD = ".json"
_METADATA = ".metadata"
_DETAILS = ".details"
_PROVENANCE = ".provenance"
PROMOTION = ".promotion"

#: (the namespace these lines always had, before the module moved: log filters keep matching)
log = Logger(namespace="pypid.storage.sidecars")


def _write_atomic(path: str, data: bytes, tmp_dir: str, durable: bool = True) -> None:
    """
    Write C{data} to C{path} through a temporary file (named per thread:
    unique enough, and cheaper than C{mkstemp}) and a rename; the file is
    0600 whatever the umask, as the packages and the snapshot are.
    """
    tmp = thread_temp_name(tmp_dir, "w")
    try:
        write_file(tmp, data, durable)
        os.replace(tmp, path)
    except BaseException:
        remove_file(tmp)
        raise


def _record_bytes(record: FileRecord | dict[str, Any]) -> bytes:
    """A record (or a tombstone dict) as the JSON kept beside its file."""
    data = record if isinstance(record, dict) else record.to_json()
    return json.dumps(data, sort_keys=True).encode("utf-8")


def _read_kept(path: str, what: str, filename: str, size: int = -1) -> bytes | None:
    """The sidecar at C{path}, or L{None} when none is kept."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise StorageError(f"cannot read the {what} of {filename}: {e.strerror}")


def storage_error(error: OSError) -> StorageError:
    """The L{StorageError} for an L{OSError} of the backend."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError("the storage is full")
    return StorageError(f"cannot store the file: {error.strerror}")


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Turn L{OSError}s into L{StorageError}s, as the interface promises."""
    try:
        yield
    except OSError as e:
        raise storage_error(e)


def is_tombstone(data: dict[str, Any] | None) -> bool:
    """Whether a record read by L{Sidecars.read_record} is a tombstone."""
    return data is not None and bool(data.get("deleted"))


#: The start of a machine's worker's spool folder's name (L{spool_name}).
WORKER_SPOOL = "tmp-worker-"


def spool_name(worker: int) -> str:
    """
    The spool folder's name in C{.pypid/} for the machine's C{worker} (0: a
    lone server): a worker's own, so the one started in its place sweeps
    what it left, and nothing the others are receiving.
    """
    return f"{WORKER_SPOOL}{worker}" if worker else "tmp"


@attrs.define(eq=False)
class Sidecars:
    """
    The paths of a storage folder and the sidecars kept beside its files.

    @ivar spool: this process's spool folder in C{.pypid/} (L{spool_name}).
    @ivar lock: held while a record sidecar is written (see the module).
    """

    root: str
    spool: str = "tmp"
    lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    @property
    def temp_dir(self) -> str:
        """Where uploads are spooled and sidecars written before their rename."""
        return os.path.join(self.root, META_DIR, self.spool)

    @property
    def files_dir(self) -> str:
        """The folder of the sidecars."""
        return os.path.join(self.root, META_DIR, "files")

    def file_path(self, key: str) -> str:
        """Where the file stored under C{key} (a path relative to the root) is."""
        return os.path.join(self.root, *key.split("/"))

    def record_path(self, filename: str) -> str:
        """Where the record of C{filename} is kept."""
        return os.path.join(self.files_dir, filename + RECORD)

    def metadata_path(self, filename: str) -> str:
        """Where the core metadata of C{filename} is kept."""
        return os.path.join(self.files_dir, filename + _METADATA)

    def details_path(self, filename: str) -> str:
        """Where the details of C{filename} are kept."""
        return os.path.join(self.files_dir, filename + _DETAILS)

    def provenance_path(self, filename: str) -> str:
        """Where the provenance object of C{filename} is kept."""
        return os.path.join(self.files_dir, filename + _PROVENANCE)

    def read_provenance(self, filename: str) -> bytes | None:
        """The provenance object of C{filename}, or L{None} when none is kept."""
        return _read_kept(self.provenance_path(filename), "provenance", filename,
                          MAX_PROVENANCE_SIZE + 1)

    def write_provenance(self, filename: str, provenance: bytes) -> None:
        """Write the provenance object of C{filename}, durably (it cannot be derived again)."""
        _write_atomic(self.provenance_path(filename), provenance, self.temp_dir)

    def promotion_path(self, filename: str) -> str:
        """Where who promoted C{filename} into this folder, and when, is kept."""
        return os.path.join(self.files_dir, filename + PROMOTION)

    def read_promotion(self, filename: str) -> Promotion | None:
        """
        Who promoted C{filename} and when, or L{None}: not promoted, or
        unreadable (logged; the file is served all the same).
        """
        path = self.promotion_path(filename)
        try:
            with open(path, "rb") as f:
                return Promotion.from_bytes(f.read())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as e:
            log.warn("Unreadable promotion {path} of {filename}: {error}",
                     path=path, filename=filename, error=str(e))
            return None

    def write_promotion(self, filename: str, promotion: Promotion) -> None:
        """Keep who promoted C{filename} and when, durably."""
        _write_atomic(self.promotion_path(filename), promotion.to_bytes(), self.temp_dir)

    def read_record(self, filename: str, path: str | None = None) -> dict[str, Any] | None:
        """
        The record (or tombstone) JSON of C{filename}, or L{None} when there
        is none or it cannot be read (logged); C{path}, when known already.
        """
        return self.load_record(filename, path)[0]

    def load_record(self, filename: str, path: str | None = None, *,
                    strict: bool = False) -> tuple[dict[str, Any] | None, bool]:
        """
        The record of C{filename} as L{read_record} gives it, and whether one
        is there that cannot be read (damaged; logged): whose file is gone,
        it must still be taken for a tombstone, or a deleted name could be
        taken again. C{strict}: raise the L{OSError} of a record unreadable
        now (too many open files), which a change retries (C{503}).
        """
        path = path or self.record_path(filename)
        try:
            with open(path, "rb") as f:
                data = orjson.loads(f.read())
        except (FileNotFoundError, NotADirectoryError):
            # (no .pypid/files/ at all, when a scan did not persist)
            return None, False
        except (OSError, ValueError) as e:
            if strict and isinstance(e, OSError):
                raise
            log.warn("Unreadable record {path} of {filename}: {error}",
                     path=path, filename=filename, error=str(e))
            return None, True
        if not isinstance(data, dict):
            log.warn("Unreadable record {path} of {filename}: not a JSON object",
                     path=path, filename=filename)
            return None, True
        return data, False

    def read_metadata(self, filename: str) -> bytes:
        """
        The core metadata of C{filename}.

        @raise FileNotFoundError: when none is kept.
        @raise StorageError: when it cannot be read.
        """
        try:
            with open(self.metadata_path(filename), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise
        except NotADirectoryError:
            raise FileNotFoundError(self.metadata_path(filename))
        except OSError as e:
            raise StorageError(f"cannot read the metadata of {filename}: {e.strerror}")

    def read_details(self, filename: str) -> bytes | None:
        """The details of C{filename}, or L{None} when none are kept."""
        return _read_kept(self.details_path(filename), "details", filename)

    def write_record(self, filename: str, record: FileRecord | dict[str, Any],
                     durable: bool = True) -> None:
        """Write the record (or tombstone dict) of C{filename}; the caller holds L{lock}."""
        _write_atomic(self.record_path(filename), _record_bytes(record), self.temp_dir, durable)

    def write_metadata(self, filename: str, metadata: bytes, durable: bool = True) -> None:
        """Write the core metadata of C{filename}."""
        _write_atomic(self.metadata_path(filename), metadata, self.temp_dir, durable)

    def write_details(self, filename: str, details: bytes) -> None:
        """Write the details of C{filename}, not durably: derived, they are rendered again."""
        _write_atomic(self.details_path(filename), details, self.temp_dir, durable=False)

    def remove_derived(self, filename: str) -> None:
        """Remove the metadata, details, provenance and promotion of C{filename}."""
        for path in (self.metadata_path, self.details_path, self.provenance_path,
                     self.promotion_path):
            remove_file(path(filename))
