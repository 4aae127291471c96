"""
Writing and reading a bundle's members, as a folder or a tar file: the
blocking half of the format, for a worker thread.

Writers hash each member as they write it, so the manifest names exactly
the bytes written; the manifest goes last (a folder), or the whole tar file
is written under a temporary name and renamed once complete: a bundle that
exists is whole.

Readers trust nothing. A member is never extracted under its own name, only
read through L{BundleReader.open} into a file the importer names. The whole
bundle is refused when a member's name is outside the layout of
L{pypid.bundle.manifest} (an absolute path, C{..}, another folder), when it
is anything but a regular file (a link, a device), bigger than its kind may
be, named twice, or when there are more members than any bundle has. A
folder's entries are opened without following symbolic links.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import stat
import tarfile
import time
from collections.abc import Callable
from functools import partial
from typing import IO, BinaryIO

from pypid.bundle.manifest import (
    MANIFEST,
    MAX_KEPT,
    MAX_MEMBERS,
    BundleError,
    Digest,
    classify,
    is_folder,
    limit_of,
)
from pypid.core.dists.dist_tar import BoundedTarInfo, ScanLimitExceeded
from pypid.storage.base.disk import fsync_folder, remove_file
from pypid.storage.base.reading import FileMismatch

_CHUNK = 1 << 20
#: The kinds of member read whole while a bundle is opened (small, and
#: needed before any file is taken).
_KEPT = ("manifest", "records", "tombstones", "statuses", "indexes")


class SourceTooLarge(Exception):
    """A member or a file is bigger than it may be; the message says how big."""


def _sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _Hashing(io.RawIOBase):
    """A reader passing another's bytes through, hashing and counting them."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data

    # (typeshed's WriteableBuffer cannot be sliced; what tarfile passes can)
    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# -- writers ------------------------------------------------------------------------------


class FolderWriter:
    """
    A bundle written as a folder, which must not exist or be empty; each
    member under a temporary name renamed into place, the manifest last.

    @ivar entries: the L{Digest} of every member written, by name.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.entries: dict[str, Digest] = {}
        if os.path.lexists(self.path):
            if not os.path.isdir(self.path) or os.path.islink(self.path):
                raise BundleError(f"{self.path} exists and is not a folder")
            if os.listdir(self.path):
                raise BundleError(f"{self.path} must not exist or be empty")
            self._made = False
        else:
            os.makedirs(self.path)
            self._made = True
        self._folders: set[str] = set()

    def describe(self) -> str:
        """The bundle as a person names it."""
        return self.path

    def _target(self, name: str) -> str:
        classify(name)
        target = os.path.join(self.path, *name.split("/"))
        folder = os.path.dirname(target)
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        return target

    def add_bytes(self, name: str, data: bytes) -> Digest:
        """Write the member C{name}; return its L{Digest}."""
        target = self._target(name)
        temp = target + ".part"
        with open(temp, "wb") as f:
            f.write(data)
        os.replace(temp, target)
        digest = self.entries[name] = Digest(hashlib.sha256(data).hexdigest(), len(data))
        return digest

    def add_file(self, name: str, source: str, sha256: str | None = None) -> Digest:
        """
        Copy the local file C{source} as the member C{name}; return its L{Digest}.

        @raise FileMismatch: when C{sha256} is given and the bytes have
            another (nothing is left of the member).
        """
        target = self._target(name)
        temp = target + ".part"
        digest, size = hashlib.sha256(), 0
        try:
            with open(source, "rb") as src, open(temp, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    dst.write(chunk)
            if sha256 is not None and digest.hexdigest() != sha256:
                raise FileMismatch(f"its bytes have sha256 {digest.hexdigest()}, not {sha256}")
            os.replace(temp, target)
        except BaseException:
            remove_file(temp)
            raise
        result = self.entries[name] = Digest(digest.hexdigest(), size)
        return result

    def finish(self, manifest: bytes) -> None:
        """Write the manifest (the bundle is then complete) and make it all durable."""
        for folder in sorted(self._folders, reverse=True):
            fsync_folder(folder)
        temp = os.path.join(self.path, MANIFEST + ".part")
        with open(temp, "wb") as f:
            f.write(manifest)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, os.path.join(self.path, MANIFEST))
        fsync_folder(self.path)

    def abort(self) -> None:
        """Remove what was written (the folder too, when this writer made it)."""
        if self._made:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for entry in os.listdir(self.path):
            path = os.path.join(self.path, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)


class TarWriter:
    """
    A bundle written as a tar file (gzipped when the name ends in C{.tar.gz}
    or C{.tgz}) under a temporary name, renamed over C{path} once the
    manifest is in: an existing bundle is replaced only by a complete one.

    @ivar entries: the L{Digest} of every member written, by name.
    """

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        self.path = os.path.abspath(path)
        if os.path.isdir(self.path):
            raise BundleError(f"{self.path} is a folder; a tar bundle's name ends in .tar, "
                              ".tar.gz or .tgz")
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            raise BundleError(f"the folder {folder} does not exist")
        self.entries: dict[str, Digest] = {}
        self._temp = f"{self.path}.part-{os.getpid()}"
        compressed = self.path.endswith((".tar.gz", ".tgz"))
        self._mtime = int(clock())
        # (a file object of our own, so the writer's fsync reaches it)
        self._file = open(self._temp, "wb")
        try:
            if compressed:
                self._tar = tarfile.open(fileobj=self._file, mode="w:gz",
                                         format=tarfile.PAX_FORMAT, compresslevel=6)
            else:
                self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)
        except BaseException:
            self._file.close()
            os.unlink(self._temp)
            raise

    def describe(self) -> str:
        """The bundle as a person names it."""
        return self.path

    def _info(self, name: str, size: int) -> tarfile.TarInfo:
        classify(name)
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        info.mtime = self._mtime
        return info

    def add_bytes(self, name: str, data: bytes) -> Digest:
        """Add the member C{name}; return its L{Digest}."""
        self._tar.addfile(self._info(name, len(data)), io.BytesIO(data))
        digest = self.entries[name] = Digest(hashlib.sha256(data).hexdigest(), len(data))
        return digest

    def add_file(self, name: str, source: str, sha256: str | None = None) -> Digest:
        """
        Add the local file C{source} as the member C{name}; return its
        L{Digest}. C{sha256} is checked first: a member once written cannot
        be taken out of a tar file.

        @raise FileMismatch: when the bytes do not have C{sha256} (nothing added).
        """
        with open(source, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if sha256 is not None:
                found = _sha256_of(source)
                if found != sha256:
                    raise FileMismatch(f"its bytes have sha256 {found}, not {sha256}")
            reader = _Hashing(f)
            self._tar.addfile(self._info(name, size), reader)
        if reader.size != size or (sha256 is not None and reader.digest.hexdigest() != sha256):
            raise BundleError(f"{source} changed while it was being written into the bundle")
        digest = self.entries[name] = Digest(reader.digest.hexdigest(), size)
        return digest

    def finish(self, manifest: bytes) -> None:
        """Add the manifest, then put the complete file in place."""
        self._tar.addfile(self._info(MANIFEST, len(manifest)), io.BytesIO(manifest))
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._temp, self.path)
        fsync_folder(os.path.dirname(self.path))

    def abort(self) -> None:
        """Drop the temporary file."""
        try:
            self._tar.close()
        except Exception:
            pass
        self._file.close()
        remove_file(self._temp)


#: A bundle being written, a folder or a tar file (L{open_writer}).
BundleWriter = FolderWriter | TarWriter


def open_writer(path: str) -> BundleWriter:
    """A L{TarWriter} for a C{.tar}, C{.tar.gz} or C{.tgz} name, else a L{FolderWriter}."""
    return TarWriter(path) if path.endswith((".tar", ".tar.gz", ".tgz")) else FolderWriter(path)


# -- readers ------------------------------------------------------------------------------


class _Reader:
    """
    What both readers give once opened.

    @ivar sizes: every member's size, by name.
    @ivar digests: the L{Digest} of every member but the distribution
        files, computed while the bundle was opened.
    @ivar kept: the bytes of the manifest, records, tombstones and statuses, by name.
    @ivar files: the distribution files' member names, in the order they
        are best read in.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.sizes: dict[str, int] = {}
        self.digests: dict[str, Digest] = {}
        self.kept: dict[str, bytes] = {}
        self.files: list[str] = []
        self._entries = 0
        self._kept_bytes = 0

    def _count(self) -> None:
        """Count one more entry (a member or a folder) against L{MAX_MEMBERS}."""
        self._entries += 1
        if self._entries > MAX_MEMBERS:
            raise BundleError(f"more than {MAX_MEMBERS} members: not a bundle")

    def _take(self, name: str, size: int, opener: Callable[[], IO[bytes]]) -> None:
        """Check one member's name and size; hash (and keep) what is not a file."""
        self._count()
        if name in self.sizes:
            raise BundleError(f"two members are named {name!r}")
        member = classify(name)
        limit = limit_of(member)
        if limit is not None and size > limit:
            raise BundleError(f"the member {name!r} has {size} bytes; a {member.kind} "
                              f"member may have at most {limit}")
        self.sizes[name] = size
        if member.kind == "file":
            self.files.append(name)
            return
        digest, kept, read = hashlib.sha256(), [], 0
        with opener() as f:
            while chunk := f.read(_CHUNK):
                read += len(chunk)
                if read > size:
                    raise BundleError(f"the member {name!r} has more bytes than it says")
                digest.update(chunk)
                if member.kind in _KEPT:
                    self._kept_bytes += len(chunk)
                    if self._kept_bytes > MAX_KEPT:
                        raise BundleError(f"its manifest, records and tombstones have more "
                                          f"than {MAX_KEPT} bytes in all")
                    kept.append(chunk)
        self.digests[name] = Digest(digest.hexdigest(), read)
        if member.kind in _KEPT:
            self.kept[name] = b"".join(kept)


class FolderReader(_Reader):
    """A bundle that is a folder."""

    def scan(self) -> FolderReader:
        """Walk the folder, checking and hashing what it holds; see L{_Reader}."""
        stack = [""]
        while stack:
            prefix = stack.pop()
            folder = os.path.join(self.path, *prefix.split("/")) if prefix else self.path
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                name = prefix + entry.name
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    self._count()
                    if not is_folder(name):
                        raise BundleError(f"the folder {name!r} is not a folder of a bundle")
                    stack.append(name + "/")
                elif stat.S_ISREG(info.st_mode):
                    self._take(name, info.st_size, partial(self.open, name))
                elif stat.S_ISLNK(info.st_mode):
                    raise BundleError(f"{name!r} is a symbolic link; a bundle holds files only")
                else:
                    raise BundleError(f"{name!r} is not a regular file")
        self.files.sort()
        return self

    def open(self, name: str) -> IO[bytes]:
        """The member's bytes, as a file object (a link is never followed)."""
        classify(name)
        path = os.path.join(self.path, *name.split("/"))
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise BundleError(f"{name!r} is a symbolic link; a bundle holds files only")
            raise
        f = os.fdopen(fd, "rb")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            f.close()
            raise BundleError(f"{name!r} is not a regular file")
        return f

    def close(self) -> None:
        """Nothing is held open."""


class TarReader(_Reader):
    """
    A bundle that is a tar file (plain or compressed). Opening it reads it
    through once (checking every member, hashing the small ones); the
    files are then read in the order they are stored, so a compressed one
    is decompressed twice in all, never once per member.
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._infos: dict[str, tarfile.TarInfo] = {}
        self._tar: tarfile.TarFile | None = None

    def scan(self) -> TarReader:
        """Read the tar file's members through once; see L{_Reader}."""
        try:
            # (headers bounded as an sdist's are: a pax header of 128 KiB
            # took tarfile 23 s, and a compressed one of gigabytes is read
            # whole into memory)
            self._tar = tar = tarfile.open(self.path, "r:*", tarinfo=BoundedTarInfo)
            for info in tar:
                self._take_info(info)
        except ScanLimitExceeded as e:
            raise BundleError(f"{self.path}: {e}")
        except tarfile.ReadError:
            raise BundleError(f"{self.path} is neither a bundle folder nor a tar file "
                              "(plain, gzip, bzip2 or xz) that can be read")
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            if isinstance(e, OSError) and e.filename:
                raise
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise BundleError(f"{self.path} is not a readable tar file: {first}")
        return self

    def _take_info(self, info: tarfile.TarInfo) -> None:
        name = info.name
        while name.startswith("./"):
            name = name[2:]
        if info.isdir():
            # (counted as members are: a bundle of millions of folders is
            # no bundle either)
            self._count()
            if name in ("", ".") or is_folder(name):
                return
            raise BundleError(f"the folder {info.name!r} is not a folder of a bundle")
        if not info.isreg():
            kind = "a link" if (info.issym() or info.islnk()) else "not a regular file"
            raise BundleError(f"the member {info.name!r} is {kind}; a bundle holds files only")
        # (no tarfile.data_filter: it is missing before Python 3.11.4, as in
        # Debian 12's 3.11.2; what it refuses of a regular file, an absolute
        # name or one leaving the folder, classify refuses; nothing is extracted)
        classify(name)
        self._take(name, info.size, partial(self._member, info))
        self._infos[name] = info

    def open(self, name: str) -> IO[bytes]:
        """The member's bytes, as a file object."""
        return self._member(self._infos[name])

    def _member(self, info: tarfile.TarInfo) -> IO[bytes]:
        assert self._tar is not None, "a member read before scan()"
        f = self._tar.extractfile(info)
        # (every member scan() takes is a regular file, which extractfile opens)
        assert f is not None, info.name
        return f

    def close(self) -> None:
        """Close the tar file."""
        if self._tar is not None:
            self._tar.close()


#: A bundle opened to read, a folder or a tar file (L{open_reader}).
BundleReader = FolderReader | TarReader


def open_reader(path: str) -> BundleReader:
    """
    The bundle at C{path}, a folder or a tar file, opened (every member
    checked, the small ones hashed).

    @raise BundleError: when it is not a bundle that can be read safely.
    """
    if os.path.isdir(path):
        return FolderReader(path).scan()
    if not os.path.exists(path):
        raise BundleError(f"{path} does not exist")
    reader = TarReader(path)
    try:
        return reader.scan()
    except BaseException:
        reader.close()
        raise


def copy_hashed(source: IO[bytes], destination: str,
                limit: int) -> tuple[int, str, str, str]:
    """
    Copy the file object C{source} to a new file at C{destination}; return
    C{(size, sha256, blake2_256, md5)} as L{pypid.core.dists.distribution.inspect}
    takes them.

    @raise SourceTooLarge: past C{limit} bytes (the copy is removed).
    """
    sha256, blake2 = hashlib.sha256(), hashlib.blake2b(digest_size=32)
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with open(destination, "xb") as out:
            while chunk := source.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise SourceTooLarge(f"larger than {limit} bytes")
                sha256.update(chunk)
                blake2.update(chunk)
                md5.update(chunk)
                out.write(chunk)
    except BaseException:
        remove_file(destination)
        raise
    return size, sha256.hexdigest(), blake2.hexdigest(), md5.hexdigest()
