"""
Where an export is written: a local folder (L{LocalTarget}) or a bucket
under a prefix (L{S3Target}), behind one small interface (L{ITarget}) that
the exporter uses alone, and that one contract test checks for both.

Every write replaces its path all at once: a web server or a bucket never
serves half a page. On disk, that is a temporary file in DEST's own hidden
folder renamed over the path (a distribution file is hard-linked from the
storage where it can be, and copied otherwise); in a bucket, a PUT, which S3
applies whole.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface, implementer

from pypid.core.dists.variant_files import is_variants_filename
from pypid.export.plan import ExportError
from pypid.jobs.run import Run
from pypid.storage.base.disk import exclusive_lock, remove_file, sweep_files
from pypid.storage.base.interface import StorageError
from pypid.storage.base.reading import BINARY_TYPE, FileMismatch

if TYPE_CHECKING:
    # (types only: the S3 modules are imported when a bucket is written)
    from pypid.storage.s3.api import S3Client

T = TypeVar("T")

#: The modes of what a folder target writes: a tree for a web server to
#: read, whatever the umask of the one who runs the export.
PUBLIC_FILE = 0o644
PUBLIC_DIR = 0o755

#: The Cache-Control of what never changes under its path: files and their
#: metadata (pypid never gives a filename other bytes).
IMMUTABLE = "max-age=365000000, immutable"
#: The Cache-Control of pages, which change at the next export.
REVALIDATE = "max-age=0, must-revalidate"

#: How big a manifest may be read back (20,000 files make about 5 MB).
_MANIFEST_LIMIT = 1 << 30


class ITarget(Interface):
    """The place an export is written to."""

    parallel = Attribute("How many writes the exporter may have under way at once.")

    def describe() -> str:
        """The target as a person names it (a folder, C{s3://bucket/prefix})."""

    def open() -> Deferred[None]:
        """
        Make the target ready (and, where it can, hold it so that no other
        export writes it at the same time).

        @raise ExportError: when it cannot be used.
        """

    def close() -> Deferred[None] | None:
        """Release what L{open} took (a L{Deferred} when that takes time)."""

    def read(path: str) -> Deferred[bytes | None]:
        """The bytes at C{path}, or L{None} when there are none."""

    def write(path: str, data: bytes, content_type: str) -> Deferred[None]:
        """Replace C{path} with C{data}, all at once."""

    def spool() -> str:
        """A new local path where bytes fetched from elsewhere may be put for L{put_file}."""

    def put_file(path: str, source: str, sha256: str, consume: bool,
                 size: int | None = None) -> Deferred[None]:
        """
        Replace C{path} with the bytes of the local file C{source} (of the
        C{size} its record gives, when known), all at once.

        @param sha256: the hex sha256 the bytes must have; a target checks
            it where it reads the bytes anyway (L{FileMismatch}).
        @param consume: whether C{source} is a L{spool} file, which the
            target takes; otherwise it is a file of the storage, which is
            never changed (and may be hard-linked).
        """

    def remove(path: str) -> Deferred[None]:
        """Remove C{path} (there being nothing is no error)."""


def _copy_checked(source: str, destination: str, sha256: str) -> None:
    """Copy a file, hashing it on the way; L{FileMismatch} when it is not C{sha256}."""
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(destination, "wb") as dst:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            dst.write(chunk)
    if digest.hexdigest() != sha256:
        raise FileMismatch(f"its bytes have sha256 {digest.hexdigest()}, not {sha256}")


@implementer(ITarget)
class LocalTarget:
    """
    A folder, served by a web server from its files. Its hidden entries are
    the export's: the manifest, C{.pypid-export.lock} (held while an export
    runs) and C{.pypid-export-tmp/} (temporary files, on the same
    filesystem so that a rename puts them in place).

    @ivar root: the folder (absolute).
    @ivar links: C{"auto"}: hard-link storage files when the folder is on
        the same filesystem and the file is readable by everyone (so that a
        web server running as another user can send it); C{"always"}: link
        whenever possible; C{"never"}: always copy.
    """

    parallel = 1

    def __init__(self, root: str, links: str = "auto") -> None:
        self.root = os.path.abspath(root)
        self._real_root = os.path.realpath(self.root)
        self.links = links
        self._tmp = os.path.join(self.root, ".pypid-export-tmp")
        self._lock_fd: int | None = None
        self._made: set[str] = set()
        self._counter = 0

    def describe(self) -> str:
        """The folder's path."""
        return self.root

    def open(self) -> Deferred[None]:
        """Create the folder, hold its lock, and sweep what a crash left."""
        return maybeDeferred(self._open_sync)

    def _open_sync(self) -> None:
        try:
            os.makedirs(self._tmp, exist_ok=True)
            fd = exclusive_lock(os.path.join(self.root, ".pypid-export.lock"), 0o644)
        except OSError as e:
            raise ExportError(f"cannot write to {self.root}: {e.strerror}")
        if fd is None:
            raise ExportError(f"{self.root} is being written by another pypid-export")
        self._lock_fd = fd
        sweep_files(self._tmp)

    def close(self) -> None:
        """Release the lock."""
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)

    def _path(self, path: str) -> str:
        return os.path.join(self.root, *path.split("/"))

    def spool(self) -> str:
        """A temporary file's path in the folder's own hidden folder."""
        self._counter += 1
        return os.path.join(self._tmp, f"{os.getpid()}-{self._counter}.part")

    def _parent(self, full: str) -> None:
        folder = os.path.dirname(full)
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            while folder not in self._made and folder.startswith(self.root + os.sep):
                os.chmod(folder, PUBLIC_DIR)
                self._made.add(folder)
                folder = os.path.dirname(folder)

    def read(self, path: str) -> Deferred[bytes | None]:
        """The file's bytes, or L{None}."""
        def read() -> bytes | None:
            try:
                with open(self._path(path), "rb") as f:
                    return f.read()
            except FileNotFoundError:
                return None
        return maybeDeferred(read)

    def write(self, path: str, data: bytes, content_type: str) -> Deferred[None]:
        """A temporary file renamed over the path (the web server types it)."""
        def write() -> None:
            full = self._path(path)
            self._parent(full)
            temp = self.spool()
            try:
                with open(temp, "wb") as f:
                    f.write(data)
                # Readable by the web server whatever the umask: this tree
                # is for serving.
                os.chmod(temp, PUBLIC_FILE)
                os.replace(temp, full)
            except BaseException:
                remove_file(temp)
                raise
        return maybeDeferred(write)

    def put_file(self, path: str, source: str, sha256: str, consume: bool,
                 size: int | None = None) -> Deferred[None]:
        """A spool file is renamed into place; a storage file linked or copied."""
        return maybeDeferred(self._put_file_sync, path, source, sha256, consume, size)

    def _put_file_sync(self, path: str, source: str, sha256: str, consume: bool,
                       size: int | None) -> None:
        full = self._path(path)
        self._parent(full)
        if consume:
            os.chmod(source, PUBLIC_FILE)
            os.replace(source, full)
            return
        temp = self.spool()
        try:
            if not self._link(source, temp, size):
                _copy_checked(source, temp, sha256)
                os.chmod(temp, PUBLIC_FILE)
            os.replace(temp, full)
        except BaseException:
            remove_file(temp)
            raise

    def _link(self, source: str, temp: str, size: int | None) -> bool:
        """
        Hard-link C{source} to C{temp} when allowed and possible; whether it
        was. A link is to the file itself, never to a symbolic link (which
        would publish whatever it points to, later), and only to a file of
        the recorded size; anything else is copied, and so checked.
        """
        if self.links == "never":
            return False
        info = os.stat(source)
        if not stat.S_ISREG(info.st_mode) or (size is not None and info.st_size != size):
            return False
        if self.links == "auto" and not info.st_mode & 0o004:
            return False
        try:
            # (link() itself does not follow a symbolic link on Linux)
            os.link(os.path.realpath(source), temp)
        except OSError as e:
            if e.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                return False
            raise
        return True

    def remove(self, path: str) -> Deferred[None]:
        """Remove the file, and the folders it leaves empty."""
        def remove() -> None:
            full = self._path(path)
            # (never through a link out of the folder: a path is checked,
            # but a folder in it may have been replaced by hand)
            if not os.path.realpath(full).startswith(self._real_root + os.sep):
                raise ExportError(f"not removing {path!r}: it leads out of {self.root}")
            remove_file(full)
            folder = os.path.dirname(full)
            while folder != self.root and folder.startswith(self.root):
                try:
                    os.rmdir(folder)
                except OSError:
                    break
                self._made.discard(folder)
                folder = os.path.dirname(folder)
        return maybeDeferred(remove)


@implementer(ITarget)
class S3Target:
    """
    A bucket (or a prefix of one), served by the bucket's website endpoint
    or a CDN. Each object carries its Content-Type and a Cache-Control:
    L{IMMUTABLE} for files and their metadata, L{REVALIDATE} for pages.
    There is no lock: two exports must not write one prefix at once.

    @ivar prefix: the key prefix ("" or ending in C{/}).
    @ivar _on_close: called by L{close} (drops the connections).
    """

    parallel = 16

    def __init__(self, client: S3Client, prefix: str, run: Run,
                 on_close: Callable[[], Deferred[None] | None] | None = None) -> None:
        self._client = client
        self.prefix = prefix
        self._run = run
        self._on_close = on_close
        self._spool_dir: str | None = None
        self._counter = 0

    def describe(self) -> str:
        """C{s3://bucket/prefix}."""
        return f"s3://{self._client.bucket.name}/{self.prefix}"

    def open(self) -> Deferred[None]:
        """Find the credentials, check the bucket answers to them, make a download folder."""
        async def open_() -> None:
            await self._client.start()
            await self._client.call("GET", "", params=[
                ("list-type", "2"), ("max-keys", "1"), ("prefix", self.prefix)])
            self._spool_dir = tempfile.mkdtemp(prefix="pypid-export-")
        return self._call(open_())

    def close(self) -> Deferred[None] | None:
        """Remove the download folder; let go of the credentials and connections."""
        if self._spool_dir is not None:
            shutil.rmtree(self._spool_dir, ignore_errors=True)
            self._spool_dir = None
        self._client.stop()
        return self._on_close() if self._on_close is not None else None

    def _key(self, path: str) -> str:
        return self.prefix + path

    def read(self, path: str) -> Deferred[bytes | None]:
        """The object's bytes, or L{None}."""
        return self._call(self._client.get(self._key(path), limit=_MANIFEST_LIMIT))

    def write(self, path: str, data: bytes, content_type: str) -> Deferred[None]:
        """One PUT."""
        # (the pages' assets are named by their digest: never other bytes;
        # a release's index-level file of variants changes as they do)
        cache = (IMMUTABLE if path.startswith(("files/", "static/"))
                 and not is_variants_filename(path) else REVALIDATE)

        async def put() -> None:
            await self._client.call("PUT", self._key(path), body=data, headers={
                "content-type": content_type, "cache-control": cache})
        return self._call(put())

    def spool(self) -> str:
        """A path in the local download folder (made by L{open})."""
        assert self._spool_dir is not None, "spool() before open()"
        self._counter += 1
        return os.path.join(self._spool_dir, f"{self._counter}.part")

    def put_file(self, path: str, source: str, sha256: str, consume: bool,
                 size: int | None = None) -> Deferred[None]:
        """One PUT streamed from the file, its sha256 checked by S3."""
        from pypid.storage.bucket.http_calls import FileRangeProducer
        from pypid.storage.s3.wire import S3Error

        async def put() -> None:
            try:
                size = os.stat(source).st_size
                await self._client.call(
                    "PUT", self._key(path),
                    headers={"content-type": BINARY_TYPE, "cache-control": IMMUTABLE},
                    body=partial(FileRangeProducer, source, 0, size, self._run),
                    payload_sha256=sha256)
            except S3Error as e:
                if e.code in ("XAmzContentSHA256Mismatch", "BadDigest"):
                    raise FileMismatch(f"its bytes are not those of sha256 {sha256}")
                raise
            finally:
                if consume:
                    remove_file(source)
        return self._call(put())

    def remove(self, path: str) -> Deferred[None]:
        """One DELETE."""
        return self._call(self._client.delete(self._key(path)))

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> Deferred[T]:
        from pypid.storage.s3.wire import S3Error
        d = ensureDeferred(coroutine)

        def failed(failure: Failure) -> Failure:
            failure.trap(StorageError)
            if failure.check(S3Error) and failure.value.status in (401, 403, 404):
                raise ExportError(f"cannot write the export to {self.describe()}: "
                                  f"{failure.getErrorMessage()}")
            return failure
        return d.addErrback(failed)
