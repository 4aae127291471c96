"""
The OSV records of a folder or a zip archive, read within bounds: the
records are untrusted input, and an archive fetched from a URL doubly so.

  - a zip is read with the standard library's C{zipfile}, in memory, entry
    by entry, and never extracted: no name in it becomes a path here, so a
    traversal (C{../x}, C{/etc/x}, C{C:\\x}) can write nothing; such names
    are skipped all the same, and counted, as a sign of a hostile archive;
  - the entries are counted before C{zipfile} reads the central directory
    (L{_count_entries}): it makes an object of every entry, and an archive
    of 4,000,000 empty entries (350 MB, under the default C{max_size}) took
    it 55 s and 1.4 GB before the count could be checked; counted from the
    directory's own bytes, it is refused in well under a second;
  - an entry's size is checked on what is decompressed, not on what its
    header claims (a zip bomb lies there), reading at most one byte past
    the limit; an entry compressed more than L{ArchiveLimits.max_ratio}
    times is a bomb, and refuses the archive; the total decompressed is
    bounded, and so is the archive's own size;
  - a folder is walked without following links; only regular C{.json}
    files are read, bounded alike, opened without waiting (a named pipe
    would hold a pool thread forever).

An archive refused raises L{ArchiveRefused} with one line; an entry too big
is skipped and counted (L{Tally}). The records are handed on one by one
(L{records}): memory holds one record's bytes at a time; their digest names
the content, so a reload of the same records changes nothing. Reading and
decompressing is a quarter of a load (40,000 records, 36 MB: 5.5 of 22 s).
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zipfile
from collections.abc import Iterator

import attrs


class ArchiveRefused(Exception):
    """The archive (or folder) is not read at all; the message says why in one line."""


@attrs.frozen
class ArchiveLimits:
    """
    The bounds of one load.

    @ivar max_size: the archive's own bytes (C{[advisories] max_size}).
    @ivar max_entries: the entries of a zip, or the C{.json} files of a folder.
    @ivar max_entry: the decompressed bytes of one record (bigger ones are skipped).
    @ivar max_total: the decompressed bytes of all records together.
    @ivar max_ratio: how many times one entry may be compressed (a bomb past it).
    """

    max_size: int = 512 << 20
    max_entries: int = 500_000
    max_entry: int = 4 << 20
    max_total: int = 2 << 30
    max_ratio: int = 200


@attrs.define
class Tally:
    """What a load skipped, by reason, and the digest of what it read."""

    skipped: dict[str, int] = attrs.field(factory=dict)
    read: int = 0
    _digest: hashlib._Hash = attrs.field(factory=hashlib.sha256, init=False)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def took(self, name: str, data: bytes) -> None:
        self.read += 1
        self._digest.update(hashlib.sha256(name.encode("utf-8", "replace")).digest())
        self._digest.update(hashlib.sha256(data).digest())

    @property
    def digest(self) -> str:
        """The digest of every record read, in order."""
        return self._digest.hexdigest()


def _unsafe(name: str) -> bool:
    """Whether an entry's name would leave a folder it were extracted to."""
    if name.startswith(("/", "\\")) or "\\" in name or "\x00" in name:
        return True
    if len(name) > 1 and name[1] == ":":
        return True
    return any(part == ".." for part in name.split("/"))


def check_source(path: str, limits: ArchiveLimits) -> bool:
    """
    Whether a source is a folder, by one C{stat} (the start checks it before
    the listeners open); L{ArchiveRefused} when it cannot be read, or is too big.
    """
    try:
        info = os.stat(path)
    except OSError as e:
        raise ArchiveRefused(f"cannot read {path}: {e.strerror}")
    if stat.S_ISDIR(info.st_mode):
        return True
    if info.st_size > limits.max_size:
        raise ArchiveRefused(f"{path} is {info.st_size} bytes, more than max_size "
                             f"({limits.max_size})")
    return False


def records(path: str, limits: ArchiveLimits, tally: Tally) -> Iterator[bytes]:
    """
    The bytes of each record of the folder or zip at C{path}, in a stable
    order; L{ArchiveRefused} when the path cannot be read, or is refused.
    """
    if check_source(path, limits):
        yield from _folder(path, limits, tally)
    else:
        yield from _zip(path, limits, tally)


#: The signatures of a zip's end record, its zip64 end record and locator,
#: and a central directory entry.
_END = b"PK\x05\x06"
_END64 = b"PK\x06\x06"
_LOCATOR64 = b"PK\x06\x07"
_ENTRY = b"PK\x01\x02"


def _count_entries(path: str, size: int) -> int | None:
    """
    The most entries the central directory of the zip at C{path} can hold:
    the end record's number, or the entry signatures in the directory's
    bytes if more; L{None} when no end record is found (C{zipfile} then
    says what is wrong).
    """
    with open(path, "rb") as f:
        tail_size = min(size, 22 + 0xFFFF + 20 + 56)
        f.seek(size - tail_size)
        tail = f.read(tail_size)
        at = tail.rfind(_END)
        if at == -1 or len(tail) - at < 22:
            return None
        _, _, _, _, count, cd_size, _, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
        cd_end = size - tail_size + at
        locator = tail[at - 20:at] if at >= 20 else b""
        if locator[:4] == _LOCATOR64:
            (record_at,) = struct.unpack("<Q", locator[8:16])
            f.seek(record_at)
            record = f.read(56)
            if len(record) == 56 and record[:4] == _END64:
                count, cd_size = struct.unpack("<QQ", record[32:48])
                cd_end = record_at
        cd_start = max(cd_end - cd_size, 0)
        f.seek(cd_start)
        found, left, carry = 0, cd_end - cd_start, b""
        while left > 0:
            chunk = f.read(min(left, 1 << 22))
            if not chunk:
                break
            left -= len(chunk)
            window = carry + chunk
            found += window.count(_ENTRY)
            carry = window[-3:]   # (a signature split between two reads)
        return max(count, found)


def _zip(path: str, limits: ArchiveLimits, tally: Tally) -> Iterator[bytes]:
    try:
        counted = _count_entries(path, os.stat(path).st_size)
    except (OSError, struct.error) as e:
        raise ArchiveRefused(f"cannot read {path}: {e}")
    if counted is not None and counted > limits.max_entries:
        raise ArchiveRefused(f"{path} has {counted} entries, more than {limits.max_entries}")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ArchiveRefused(f"{path} is not a zip archive: {e}")
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.max_entries:
            raise ArchiveRefused(f"{path} has {len(entries)} entries, more than "
                                 f"{limits.max_entries}")
        total = 0
        for entry in sorted(entries, key=lambda e: e.filename):
            name = entry.filename
            if entry.is_dir():
                continue
            if _unsafe(name):
                tally.skip("entries with a name leaving the archive")
                continue
            if not name.endswith(".json"):
                tally.skip("entries that are not .json")
                continue
            if entry.file_size > limits.max_entry:
                tally.skip(f"records over {limits.max_entry} bytes")
                continue
            if entry.file_size > (1 << 20) and \
                    entry.file_size > limits.max_ratio * max(entry.compress_size, 1):
                raise ArchiveRefused(f"{path}: {name} is compressed "
                                     f"{entry.file_size // max(entry.compress_size, 1)} times "
                                     "(a zip bomb?)")
            try:
                with archive.open(entry) as f:
                    data = f.read(limits.max_entry + 1)
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError,
                    EOFError, RuntimeError) as e:
                # (a CRC mismatch, an encrypted or corrupt entry, an
                # unsupported compression)
                tally.skip(f"entries that cannot be read ({type(e).__name__})")
                continue
            if len(data) > limits.max_entry:
                # (its header lied about its size)
                tally.skip(f"records over {limits.max_entry} bytes")
                continue
            total += len(data)
            if total > limits.max_total:
                raise ArchiveRefused(f"{path} decompresses to more than {limits.max_total} "
                                     "bytes")
            tally.took(name, data)
            yield data


def _folder(path: str, limits: ArchiveLimits, tally: Tally) -> Iterator[bytes]:
    found: list[str] = []
    for full in _json_files(path):
        found.append(full)
        if len(found) > limits.max_entries:
            raise ArchiveRefused(f"{path} has more than {limits.max_entries} .json files")
    total = 0
    for full in found:
        name = os.path.relpath(full, path)
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            tally.skip("files that cannot be read (links are not followed)")
            continue
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                tally.skip("files that are not regular files")
                continue
            data = f.read(limits.max_entry + 1)
        if len(data) > limits.max_entry:
            tally.skip(f"records over {limits.max_entry} bytes")
            continue
        total += len(data)
        if total > limits.max_total:
            raise ArchiveRefused(f"{path} holds more than {limits.max_total} bytes of records")
        tally.took(name, data)
        yield data


def signature(paths: list[str]) -> tuple[object, ...]:
    """
    What changes whenever a source's content may have: each file's (or each
    C{.json} file of a folder's) name, size, time and inode. A refresh that
    finds it unchanged reads nothing (the benchmark's 40,000-record export
    unpacked into a folder: the walk 0.21 s, a read 6.9 s; a zip's
    signature is one stat, 23 us).
    """
    found: list[object] = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            found.append((path, None))
            continue
        if not stat.S_ISDIR(info.st_mode):
            found.append((path, info.st_size, info.st_mtime_ns, info.st_ino))
            continue
        for full in _json_files(path):
            try:
                each = os.lstat(full)
            except OSError:
                continue
            found.append((full, each.st_size, each.st_mtime_ns, each.st_ino))
    return tuple(found)


def _json_files(path: str) -> Iterator[str]:
    """The C{.json} files below the folder C{path}, in a stable order, links not followed."""
    for top, folders, files in os.walk(path, followlinks=False):
        folders.sort()
        yield from (os.path.join(top, name) for name in sorted(files) if name.endswith(".json"))

