"""
A zip's two descriptions of its members, read and checked against each
other by the rules of L{pypid.core.dists.zip_format.UnsafeZip}: the
central directory entry by entry, in 64 KiB chunks and never held whole;
then each local header (and data descriptor) against its central entry,
the members tiling the file up to the central directory, so that a reader
walking the local headers sees what one starting from the central
directory sees. L{pypid.core.dists.zipcheck} calls these in turn.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import attrs

from pypid.core.dists.dist_members import MemberNames, check_name, show_name
from pypid.core.dists.zip_format import (
    EMPTY_DEFLATE,
    HAS_DESCRIPTOR,
    STORED,
    U16,
    U32,
    UTF8,
    ZIP64_EXTRA,
    SeekableFile,
    UnsafeZip,
    ZipEntry,
    check_flags_and_method,
    extra_blocks,
    read_at,
)

_CENTRAL = b"PK\x01\x02"

CENTRAL_HEADER = struct.Struct("<4s2B5H3L5H2L")

_UNIX_HOST = 3
_DOS_DIRECTORY = 0x10
_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFREG = 0o100000
_S_IFLNK = 0o120000

_CHUNK = 64 << 10


def read_central_directory(f: SeekableFile, count: int, cd_offset: int, cd_size: int,
                            max_name_length: int, max_extra_length: int) -> list[ZipEntry]:
    """The C{count} entries of the central directory, checked, filling exactly C{cd_size} bytes."""
    reader = _ChunkReader(f, cd_offset, cd_offset + cd_size)
    names = MemberNames(UnsafeZip)
    centrals: list[ZipEntry] = []
    for index in range(count):
        header = reader.take(CENTRAL_HEADER.size)
        if header is None:
            raise UnsafeZip(f"the central directory ends after {index} of its {count} entries")
        (signature, _, host, version, flags, method, _, _, crc, compressed_size, file_size,
         name_length, extra_length, comment_length, disk, _, external,
         header_offset) = CENTRAL_HEADER.unpack(header)
        if signature != _CENTRAL:
            raise UnsafeZip(f"central directory entry {index} has a bad signature")
        raw_name = reader.take(name_length)
        if raw_name is None:
            raise UnsafeZip(f"central directory entry {index} runs past the directory's end")
        if name_length > max_name_length:
            raise UnsafeZip(f"the name is longer than {max_name_length} bytes", raw_name)
        if extra_length > max_extra_length:
            raise UnsafeZip(
                f"the central directory extra field is longer than {max_extra_length} bytes",
                raw_name,
            )
        extra = reader.take(extra_length)
        if extra is None:
            raise UnsafeZip("the central directory entry runs past the directory's end", raw_name)
        if comment_length:
            raise UnsafeZip("entry comments are not accepted", raw_name)
        name = _decode_name(raw_name, flags)
        check_name(name, raw_name, UnsafeZip)
        check_flags_and_method(version, flags, method, raw_name, "central directory entry")
        blocks = extra_blocks(extra, raw_name, "central directory")
        file_size, compressed_size, header_offset, disk = _apply_central_zip64(
            blocks.get(ZIP64_EXTRA), file_size, compressed_size, header_offset, disk, raw_name,
        )
        if disk:
            raise UnsafeZip("the member is on another disk", raw_name)
        is_dir = name.endswith("/")
        _check_kind(is_dir, host, external, method, crc, compressed_size, file_size, raw_name)
        names.add(name, is_dir, raw_name)
        centrals.append(ZipEntry(name, raw_name, flags, method, crc, compressed_size, file_size,
                                 header_offset, is_dir))
    names.check()
    if not reader.at_end():
        raise UnsafeZip(f"the central directory holds more than its {count} entries")
    return centrals


class _ChunkReader:
    """
    Sequential reads of the byte range C{[start, end)} of a file, in chunks
    of 64 KiB, so that neither the reads nor the memory grow with the range.
    """

    def __init__(self, f: SeekableFile, start: int, end: int) -> None:
        self._f = f
        self._position = start
        self._end = end
        self._buffer = b""
        self._taken = 0

    def take(self, length: int) -> bytes | None:
        """Return the next C{length} bytes, or L{None} if the range ends first."""
        start = self._taken
        if len(self._buffer) - start < length:
            left = self._buffer[start:]
            want = min(max(_CHUNK, length - len(left)), self._end - self._position)
            if want < length - len(left):
                return None
            self._buffer = left + read_at(self._f, self._position, want, "its central directory")
            self._position += want
            start = 0
        self._taken = start + length
        return self._buffer[start:self._taken]

    def at_end(self) -> bool:
        """Whether every byte of the range has been taken."""
        return self._taken == len(self._buffer) and self._position >= self._end


def _decode_name(raw: bytes, flags: int) -> str:
    """
    Decode a name: as UTF-8 when flag bit 11 says so, else only if it is
    ASCII, since readers decode other bytes with different code pages.
    """
    if flags & UTF8:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafeZip("the name is not valid UTF-8", raw) from None
    if not raw.isascii():
        raise UnsafeZip("the name is not ASCII and the UTF-8 flag (bit 11) is not set", raw)
    return raw.decode("ascii")


def _apply_central_zip64(block: bytes | None, file_size: int, compressed_size: int,
                         header_offset: int, disk: int, raw: bytes,
                         ) -> tuple[int, int, int, int]:
    """
    Replace the sentinel values of a central directory entry by those of
    its ZIP64 extra, which must hold exactly those, in order.
    """
    wanted = [file_size == U32, compressed_size == U32, header_offset == U32]
    expected_length = 8 * sum(wanted) + (4 if disk == U16 else 0)
    if block is None:
        if expected_length:
            raise UnsafeZip(
                "the central directory entry has a ZIP64 sentinel value but no ZIP64 "
                "extra field", raw,
            )
        return file_size, compressed_size, header_offset, disk
    if len(block) != expected_length:
        raise UnsafeZip(
            f"the central directory's ZIP64 extra field holds {len(block)} bytes where its "
            f"sentinel values call for {expected_length}", raw,
        )
    values = [file_size, compressed_size, header_offset]
    position = 0
    for i, want in enumerate(wanted):
        if want:
            values[i] = int.from_bytes(block[position:position + 8], "little")
            position += 8
    if disk == U16:
        disk = int.from_bytes(block[position:position + 4], "little")
    return values[0], values[1], values[2], disk


def _check_kind(is_dir: bool, host: int, external: int, method: int, crc: int,
                compressed_size: int, file_size: int, raw: bytes) -> None:
    """
    Refuse a member whose attributes make readers disagree on what it is:
    a directory with content, a directory attribute on a file, a symbolic
    link or another special file.
    """
    if external & _DOS_DIRECTORY and not is_dir:
        raise UnsafeZip("the directory attribute is set but the name has no trailing slash", raw)
    if host == _UNIX_HOST:
        kind = (external >> 16) & _S_IFMT
        if kind == _S_IFLNK:
            raise UnsafeZip("symbolic links are not accepted", raw)
        if kind == _S_IFDIR and not is_dir:
            raise UnsafeZip("the Unix mode says directory but the name has no trailing slash", raw)
        if kind == _S_IFREG and is_dir:
            raise UnsafeZip("the Unix mode says file but the name ends with a slash", raw)
        if kind not in (0, _S_IFREG, _S_IFDIR):
            raise UnsafeZip(f"special files (Unix mode {kind:#o}) are not accepted", raw)
    if is_dir:
        empty = (0,) if method == STORED else (0, len(EMPTY_DEFLATE))
        if file_size or crc or compressed_size not in empty:
            raise UnsafeZip("the directory entry has content", raw)


# -- the local headers --------------------------------------------------------

_LOCAL = b"PK\x03\x04"
_DESCRIPTOR = b"PK\x07\x08"

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")


def check_members(f: SeekableFile, centrals: Sequence[ZipEntry], cd_offset: int,
                   max_extra_length: int, allow_data_descriptors: bool,
                   ) -> tuple[ZipEntry, ...]:
    """
    Check every member's local header (and data descriptor) against its
    central entry, and that the members tile the file up to the central
    directory; return the entries with their data offsets, in central
    directory order.
    """
    entries = list(centrals)
    expected = 0
    previous: ZipEntry | None = None
    for index in sorted(range(len(centrals)), key=lambda i: centrals[i].header_offset):
        central = centrals[index]
        if central.header_offset > expected:
            if previous is None:
                raise UnsafeZip(
                    f"{central.header_offset} bytes come before the first local header"
                )
            raise UnsafeZip(
                f"{central.header_offset - expected} bytes between it and "
                f"'{show_name(previous.raw_name)}' belong to no member", central.raw_name,
            )
        if central.header_offset < expected:
            # (expected is 0, which no offset is below, until a member was checked)
            assert previous is not None
            raise UnsafeZip(
                f"the member overlaps '{show_name(previous.raw_name)}'", central.raw_name,
            )
        data_offset, end = _check_local(
            f, central, cd_offset, max_extra_length, allow_data_descriptors,
        )
        entries[index] = attrs.evolve(central, data_offset=data_offset)
        expected = end
        previous = central
    if expected != cd_offset:
        if previous is None:
            raise UnsafeZip(f"{cd_offset} bytes come before the central directory")
        raise UnsafeZip(
            f"{cd_offset - expected} bytes between it and the central directory belong "
            "to no member", previous.raw_name,
        )
    return tuple(entries)


def _check_local(f: SeekableFile, central: ZipEntry, cd_offset: int, max_extra_length: int,
                 allow_data_descriptors: bool) -> tuple[int, int]:
    """Check a member's local header (and descriptor); where its data starts and where it ends."""
    raw = central.raw_name
    offset = central.header_offset
    if offset + _LOCAL_HEADER.size > cd_offset:
        raise UnsafeZip("the local header runs into the central directory", raw)
    (signature, version, flags, method, _, _, crc, compressed_size, file_size, name_length,
     extra_length) = _LOCAL_HEADER.unpack(
        read_at(f, offset, _LOCAL_HEADER.size, "a local header")
    )
    if signature != _LOCAL:
        raise UnsafeZip("no local header where the central directory says", raw)
    if extra_length > max_extra_length:
        raise UnsafeZip(f"the local extra field is longer than {max_extra_length} bytes", raw)
    data_offset = offset + _LOCAL_HEADER.size + name_length + extra_length
    if data_offset > cd_offset:
        raise UnsafeZip("the local header runs into the central directory", raw)
    rest = read_at(f, offset + _LOCAL_HEADER.size, name_length + extra_length, "a local header")
    if rest[:name_length] != central.raw_name:
        raise UnsafeZip("the local header has another name", raw)
    check_flags_and_method(version, flags, method, raw, "local header")
    if flags != central.flags:
        raise UnsafeZip(
            f"the local header's flags {flags:#06x} differ from the central "
            f"directory's {central.flags:#06x}", raw,
        )
    if method != central.method:
        raise UnsafeZip(
            f"the local header's compression method {method} differs from the central "
            f"directory's {central.method}", raw,
        )
    zip64 = extra_blocks(rest[name_length:], raw, "local").get(ZIP64_EXTRA)
    file_size, compressed_size = _apply_local_zip64(zip64, file_size, compressed_size, raw)
    end = data_offset + central.compressed_size
    if end > cd_offset:
        raise UnsafeZip("the member's data runs into the central directory", raw)
    # (each value of the local header beside the central directory's)
    against = ((crc, central.crc, "CRC"),
               (compressed_size, central.compressed_size, "compressed size"),
               (file_size, central.file_size, "size"))
    if flags & HAS_DESCRIPTOR:
        if not allow_data_descriptors:
            raise UnsafeZip("data descriptors (flag bit 3) are not accepted", raw)
        if method == STORED:
            raise UnsafeZip(
                "a stored member with a data descriptor has no end streaming readers can find",
                raw,
            )
        for value, real, what in against:
            if value not in (0, real):
                raise UnsafeZip(
                    f"the local header's {what} is neither 0 nor the central directory's",
                    raw,
                )
        end = _check_descriptor(f, central, end, cd_offset, zip64 is not None)
    else:
        for value, real, what in against:
            if value != real:
                raise UnsafeZip(
                    f"the local header's {what} ({value}) differs from the central "
                    f"directory's ({real})", raw,
                )
    if central.is_dir and central.compressed_size:
        if read_at(f, data_offset, central.compressed_size, "a member's data") != EMPTY_DEFLATE:
            raise UnsafeZip("the directory entry has content", raw)
    return data_offset, end


def _apply_local_zip64(block: bytes | None, file_size: int, compressed_size: int, raw: bytes,
                       ) -> tuple[int, int]:
    """
    Replace the sentinel sizes of a local header by those of its ZIP64
    extra, which must hold both sizes; a size given twice must agree.
    """
    if block is None:
        if U32 in (file_size, compressed_size):
            raise UnsafeZip(
                "the local header has a ZIP64 sentinel size but no ZIP64 extra field", raw,
            )
        return file_size, compressed_size
    if len(block) != 16:
        raise UnsafeZip(
            f"the local ZIP64 extra field holds {len(block)} bytes, not both sizes (16)", raw,
        )
    file_size64 = int.from_bytes(block[:8], "little")
    compressed_size64 = int.from_bytes(block[8:], "little")
    for value, value64, what in ((file_size, file_size64, "size"),
                                 (compressed_size, compressed_size64, "compressed size")):
        if value not in (U32, value64):
            raise UnsafeZip(
                f"the local header's {what} ({value}) differs from its ZIP64 extra "
                f"field's ({value64})", raw,
            )
    return file_size64, compressed_size64


def _check_descriptor(f: SeekableFile, central: ZipEntry, offset: int, cd_offset: int,
                      zip64: bool) -> int:
    """Check the data descriptor at C{offset} against C{central}; where it ends."""
    raw = central.raw_name
    size_format = "<LQQ" if zip64 else "<LLL"
    length = struct.calcsize(size_format)
    head = read_at(f, offset, min(4, max(cd_offset - offset, 0)), "a data descriptor")
    if head == _DESCRIPTOR:
        offset += 4
    if offset + length > cd_offset:
        raise UnsafeZip("the data descriptor runs into the central directory", raw)
    crc, compressed_size, file_size = struct.unpack(
        size_format, read_at(f, offset, length, "a data descriptor"),
    )
    if (crc, compressed_size, file_size) != (central.crc, central.compressed_size,
                                              central.file_size):
        raise UnsafeZip("the data descriptor differs from the central directory", raw)
    return offset + length
