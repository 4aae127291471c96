"""
The local headers of a zip, each checked against its central directory
entry (L{pypid.core.dists.zip_central}), with the data descriptors that
may follow a member's data; and that the members tile the file from
offset 0 up to the central directory, so that a reader walking the local
headers sees what one starting from the central directory sees.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import attrs

from pypid.core.dists.dist_members import show_name
from pypid.core.dists.zip_format import (
    EMPTY_DEFLATE,
    HAS_DESCRIPTOR,
    STORED,
    U32,
    ZIP64_EXTRA,
    SeekableFile,
    UnsafeZip,
    ZipEntry,
    check_flags_and_method,
    extra_blocks,
    read_at,
)

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
    """
    Check one member's local header (and data descriptor) against its
    central entry; return where its data starts and where it ends.
    """
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
        raise UnsafeZip(
            f"the local extra field is longer than {max_extra_length} bytes", raw,
        )
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
    """
    Check the data descriptor at C{offset} against the central entry and
    return where it ends.
    """
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
