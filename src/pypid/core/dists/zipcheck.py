"""
A check of zip archives (wheels, C{.zip} sdists), so that every zip reader
sees the same members with the same bytes: L{check_zip} reads the end
records here, then the central directory and the local headers
(L{pypid.core.dists.zip_headers}); L{check_zip_data} then inflates every
member it accepted, the pass that costs CPU.

Why: a zip describes its members twice, in a local header before each
member's data and in the central directory at the end, and readers differ
in which they trust: C{zipfile} (pip, the index's own reading) starts from
the central directory, streaming readers (uv while downloading) walk the
local headers. An archive built for one reader can so install files the
index never saw. The public index refuses such archives
(C{warehouse.utils.zipfiles}); this module follows it and goes past it.

Nothing is extracted: the end records are the last 98 bytes at most, each
member costs one or two small reads, and inflating takes about 2 MiB. What
C{zipfile} and pip accept that this refuses, and the real archives it
accepts, are in C{docs/performance.rst}, "Checking a zip". No library
does this: the safe-zip packages are about extraction, and warehouse's
check is no package.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import NoReturn

from pypid.core.dists.dist_members import DEFAULT_MAX_NAME_LENGTH, encode_name
from pypid.core.dists.zip_format import (
    MAX_VERSION,
    STORED,
    U16,
    U32,
    SeekableFile,
    UnsafeZip,
    ZipEntry,
    read_at,
)
from pypid.core.dists.zip_headers import CENTRAL_HEADER, check_members, read_central_directory

#: Most central directory entries accepted.
DEFAULT_MAX_ENTRIES = 100_000

#: Longest extra field of one header accepted, in bytes (real wheels: 24).
DEFAULT_MAX_EXTRA_LENGTH = 1024

_END = b"PK\x05\x06"
_END64 = b"PK\x06\x06"
_LOCATOR = b"PK\x06\x07"

_END_RECORD = struct.Struct("<4s4H2LH")
_LOCATOR_RECORD = struct.Struct("<4sLQL")
_END64_RECORD = struct.Struct("<4sQ2H2L4Q")

# The size of a ZIP64 end of central directory record without extensible
# data, counted after its signature and size fields.
_END64_BODY = _END64_RECORD.size - 12


def check_zip(f: SeekableFile, *, max_entries: int = DEFAULT_MAX_ENTRIES,
              max_name_length: int = DEFAULT_MAX_NAME_LENGTH,
              max_extra_length: int = DEFAULT_MAX_EXTRA_LENGTH,
              allow_data_descriptors: bool = False) -> tuple[ZipEntry, ...]:
    """
    Check the structure of the zip archive in C{f} (left at an unspecified
    position) by the rules of L{pypid.core.dists.zip_format.UnsafeZip}.

    @param max_name_length: longest member name accepted, in bytes.
    @param allow_data_descriptors: accept deflated members followed by a
        data descriptor (see L{UnsafeZip} for why the default is not to).
    @return: the L{ZipEntry} of every member, in central directory order.
    @raise UnsafeZip: if the archive is refused.
    """
    size = f.seek(0, 2)
    count, cd_offset, cd_size = _read_end(f, size)
    if count > max_entries:
        raise UnsafeZip(f"the archive has {count} entries, more than the {max_entries} allowed")
    if cd_size < count * CENTRAL_HEADER.size:
        raise UnsafeZip(f"the central directory is too small for its {count} entries")
    largest = count * (CENTRAL_HEADER.size + max_name_length + max_extra_length)
    if cd_size > largest:
        raise UnsafeZip(
            f"the central directory is {cd_size} bytes, more than its {count} entries can "
            f"take ({largest})"
        )
    _refuse_tar_header(f, size)
    centrals = read_central_directory(
        f, count, cd_offset, cd_size, max_name_length, max_extra_length,
    )
    return check_members(f, centrals, cd_offset, max_extra_length, allow_data_descriptors)


# -- the end records ----------------------------------------------------------


def _read_end(f: SeekableFile, size: int) -> tuple[int, int, int]:
    """
    Read the end of central directory record (and the ZIP64 records when
    there are some) and return the entry count and the central directory's
    offset and size, checking that the directory ends where they begin.
    """
    if size < _END_RECORD.size:
        raise UnsafeZip("not a zip archive (too short)")
    end_offset = size - _END_RECORD.size
    (signature, disk, cd_disk, disk_count, count, cd_size, cd_offset,
     comment_length) = _END_RECORD.unpack(read_at(f, end_offset, _END_RECORD.size, "its end"))
    if signature != _END or comment_length:
        _explain_missing_end(f, size)
    locator_offset = end_offset - _LOCATOR_RECORD.size
    locator = None
    if locator_offset >= 0:
        locator = read_at(f, locator_offset, _LOCATOR_RECORD.size, "its end")
    if locator is not None and locator.startswith(_LOCATOR):
        values = _read_end64(f, locator, locator_offset)
        cd_end = locator_offset - _END64_RECORD.size
        plain = (disk, cd_disk, disk_count, count, cd_size, cd_offset)
        sentinels = (U16, U16, U16, U16, U32, U32)
        names = ("disk number", "central directory disk number", "entry count of this disk",
                 "entry count", "central directory size", "central directory offset")
        for value, value64, sentinel, name in zip(plain, values, sentinels, names, strict=False):
            if value not in (value64, sentinel):
                raise UnsafeZip(
                    f"the end of central directory record's {name} ({value}) differs from "
                    f"the ZIP64 record's ({value64})"
                )
        disk, cd_disk, disk_count, count, cd_size, cd_offset = values
    else:
        if U32 in (cd_size, cd_offset) or U16 in (disk, cd_disk, disk_count, count):
            raise UnsafeZip(
                "the end of central directory record has a ZIP64 sentinel value but "
                "there is no ZIP64 record"
            )
        cd_end = end_offset
    if disk or cd_disk:
        raise UnsafeZip("multi-disk archives are not accepted")
    if disk_count != count:
        raise UnsafeZip(
            f"the end of central directory record counts {disk_count} entries on this "
            f"disk but {count} in all"
        )
    if cd_offset + cd_size < cd_end:
        # What zipfile accepts as a self-extracting archive: every offset is
        # off by the bytes in front.
        raise UnsafeZip(
            f"{cd_end - cd_offset - cd_size} bytes are in front of the archive, "
            "or between its central directory and its end records"
        )
    if cd_offset + cd_size > cd_end:
        raise UnsafeZip("the central directory's offset and size reach past its end records")
    return count, cd_offset, cd_size


def _read_end64(f: SeekableFile, locator: bytes, locator_offset: int,
                ) -> tuple[int, int, int, int, int, int]:
    """
    Check the ZIP64 locator and record that end the archive before its end
    of central directory record, and return the record's disk numbers,
    counts, and central directory size and offset.
    """
    _, record_disk, record_offset, disks = _LOCATOR_RECORD.unpack(locator)
    if record_disk != 0 or disks > 1:
        raise UnsafeZip("multi-disk archives are not accepted")
    expected = locator_offset - _END64_RECORD.size
    if expected < 0 or record_offset != expected:
        raise UnsafeZip(
            "the ZIP64 locator does not point at a ZIP64 end of central directory "
            "record right before it"
        )
    (signature, record_size, _, version, disk, cd_disk, disk_count, count, cd_size,
     cd_offset) = _END64_RECORD.unpack(
        read_at(f, record_offset, _END64_RECORD.size, "its ZIP64 end record")
    )
    if signature != _END64:
        raise UnsafeZip(
            "the ZIP64 locator does not point at a ZIP64 end of central directory record"
        )
    if record_size != _END64_BODY:
        raise UnsafeZip("the ZIP64 end of central directory record has extensible data")
    if version & 0xFF > MAX_VERSION:
        raise UnsafeZip("the ZIP64 end of central directory record needs an unknown zip version")
    return disk, cd_disk, disk_count, count, cd_size, cd_offset


def _explain_missing_end(f: SeekableFile, size: int) -> NoReturn:
    """Raise the error for a file that does not end with a comment-less end record, saying why."""
    window = min(size, _END_RECORD.size + U16)
    tail = read_at(f, size - window, window, "its end")
    position = tail.rfind(_END)
    while position >= 0:
        if position + _END_RECORD.size <= window:
            comment_length = int.from_bytes(tail[position + 20:position + 22], "little")
            after = window - position - _END_RECORD.size
            if comment_length == after:
                raise UnsafeZip(
                    f"the archive has a comment ({comment_length} bytes); comments are "
                    "not accepted"
                )
            if not after:
                raise UnsafeZip(
                    "the end of central directory record announces a comment past the "
                    "end of the file"
                )
            raise UnsafeZip(f"{after} bytes follow the end of central directory record")
        position = tail.rfind(_END, 0, position)
    raise UnsafeZip("not a zip archive (no end of central directory record)")


def _refuse_tar_header(f: SeekableFile, size: int) -> None:
    """Refuse an archive whose first 512 bytes are a tar header: tar readers see another archive."""
    if size < 512:
        return
    block = read_at(f, 0, 512, "its first block")
    stored = _tar_number(block[148:156])
    if stored is None:
        return
    # The checksum is the sum of the header's bytes with its own field as
    # spaces, unsigned (POSIX) or signed (some old tars); tarfile takes both.
    rest = block[:148] + block[156:]
    unsigned = sum(rest) + 8 * 32
    signed = unsigned - 256 * sum(b > 127 for b in rest)
    if stored in (unsigned, signed):
        raise UnsafeZip("the archive is also a tar archive (its first block is a tar header)")


def _tar_number(field: bytes) -> int | None:
    """A numeric tar header field as tarfile reads it (octal to a NUL, or base-256), or L{None}."""
    if field[0] in (0o200, 0o377):
        value = int.from_bytes(field[1:], "big")
        if field[0] == 0o377:
            value -= 256 ** (len(field) - 1)
        return value
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        return None


# -- the members' data --------------------------------------------------------

# The most bytes of a member's data read, or inflated, at once.
_DATA_CHUNK = 1 << 20


def check_zip_data(f: SeekableFile, entries: Iterable[ZipEntry], *, max_expanded: int) -> None:
    """
    Inflate every member of an archive L{check_zip} accepted (C{entries}),
    refusing one whose data readers could read differently: declared sizes
    past C{max_expanded} in all (checked before anything is read, so a bomb
    costs nothing), a wrong size or CRC-32, and bytes the central directory
    gives a member past its size or the end of its deflate stream, which
    C{zipfile} never reads and other readers do (C{unzip -t} checks them,
    uv refuses such archives).

    It reads 1 MiB at a time, asks zlib for at most 1 MiB per call, and
    stops a member as soon as its output passes its declared size: memory is
    about 2 MiB, and the bytes inflated at most C{max_expanded} plus 1 MiB.

    @raise UnsafeZip: if the archive is refused.
    """
    expanded = sum(entry.file_size for entry in entries)
    if expanded > max_expanded:
        raise UnsafeZip(f"the archive expands to {expanded} bytes, more than {max_expanded}")
    # In file order, so that the reads are sequential.
    for entry in sorted(entries, key=lambda entry: entry.data_offset):
        raw = encode_name(entry.name)
        if entry.method == STORED:
            if entry.compressed_size != entry.file_size:
                raise UnsafeZip(
                    f"the member is stored, but its compressed size ({entry.compressed_size}) "
                    f"is not its size ({entry.file_size})", raw,
                )
            crc = 0
            for chunk in _data_chunks(f, entry):
                crc = zlib.crc32(chunk, crc)
            size = entry.file_size
        elif entry.is_dir and not entry.compressed_size:
            # A deflated directory with no data: check_zip checked the
            # sizes and CRC are 0, and no reader inflates a directory.
            continue
        else:
            size, crc = _inflate(f, entry, raw)
        if size != entry.file_size:
            raise UnsafeZip(
                f"the member inflates to {size} bytes, not its declared {entry.file_size}", raw,
            )
        if crc != entry.crc:
            raise UnsafeZip(
                f"the member's data has CRC-32 {crc:#010x}, not its declared {entry.crc:#010x}",
                raw,
            )


def _data_chunks(f: SeekableFile, entry: ZipEntry) -> Iterator[bytes]:
    """Yield a member's compressed bytes in chunks of at most L{_DATA_CHUNK}."""
    position = entry.data_offset
    end = position + entry.compressed_size
    while position < end:
        length = min(_DATA_CHUNK, end - position)
        yield read_at(f, position, length, "a member's data")
        position += length


def _inflate(f: SeekableFile, entry: ZipEntry, raw: bytes) -> tuple[int, int]:
    """
    Inflate a deflated member, whose stream must end at its last compressed
    byte, and return the size and CRC-32 of its data; no more than
    L{_DATA_CHUNK} bytes past its declared size are ever inflated.
    """
    inflater = zlib.decompressobj(-15)
    size = crc = 0
    left = entry.compressed_size
    for chunk in _data_chunks(f, entry):
        left -= len(chunk)
        data = chunk
        while True:
            try:
                out = inflater.decompress(data, _DATA_CHUNK)
            except zlib.error as e:
                raise UnsafeZip(f"the deflate stream is broken ({e})", raw) from None
            size += len(out)
            if size > entry.file_size:
                raise UnsafeZip(
                    f"the member inflates to more than its declared {entry.file_size} bytes",
                    raw,
                )
            crc = zlib.crc32(out, crc)
            if inflater.eof:
                after = len(inflater.unused_data) + left
                if after:
                    raise UnsafeZip(
                        f"the deflate stream ends {after} bytes before the member's "
                        "compressed size does: readers differ on those bytes", raw,
                    )
                return size, crc
            # Output capped at max_length leaves input in unconsumed_tail,
            # or (all input taken) output still inside zlib: ask again
            # until the call gives nothing, then read more. (zlib leaves
            # input only when the output is full: the error cannot happen.)
            data = inflater.unconsumed_tail
            if not out:
                if data:
                    raise UnsafeZip("the deflate stream is broken (it stalls)", raw)
                break
    raise UnsafeZip("the deflate stream does not end within the member's compressed size", raw)
