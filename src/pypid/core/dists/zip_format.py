"""
The zip format as the zip checks read it: the flag bits, methods and
extra fields they know, L{UnsafeZip} (whose docstring lists every rule),
a member as its headers describe it (L{ZipEntry}), and the reads and
checks the central directory and the local headers share.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from pypid.core.dists.dist_members import UnsafeArchive

U16 = 0xFFFF
U32 = 0xFFFFFFFF

# The highest "version needed to extract" zipfile accepts (6.3).
MAX_VERSION = 63

_ENCRYPTED = 1 << 0
HAS_DESCRIPTOR = 1 << 3
_STRONG_ENCRYPTION = 1 << 6
UTF8 = 1 << 11
_ENCRYPTED_DIRECTORY = 1 << 13
# The flag bits a member may have: deflate's two option bits, the data
# descriptor and UTF-8 names. The others mean encryption, patch data, or
# nothing yet.
_ALLOWED_FLAGS = 0b110 | HAS_DESCRIPTOR | UTF8

STORED = 0
_DEFLATED = 8
_AES = 99

ZIP64_EXTRA = 0x0001
_STRONG_ENCRYPTION_EXTRA = 0x0017
_UNICODE_PATH_EXTRA = 0x7075

# The empty deflate stream: one final fixed-Huffman block holding only the
# end-of-block code.
EMPTY_DEFLATE = b"\x03\x00"


class SeekableFile(Protocol):
    """What the checks read an archive from: a seekable binary file."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def read(self, size: int = -1, /) -> bytes: ...


class UnsafeZip(UnsafeArchive):
    """
    A zip archive that zip readers could read differently, or that is not
    a zip archive at all.

    L{pypid.core.dists.zipcheck.check_zip} reads the end records, then the
    central directory, then every local header in offset order, and
    refuses, besides what its messages name:

      - an archive comment, or anything after the end of central directory
        record (the public index allows a comment; nothing a wheel or sdist
        needs lives there, and it can hide data);
      - ZIP64 and plain end records that disagree (a field of the plain one
        is the ZIP64 one or its sentinel), a sentinel without ZIP64 records;
      - members that do not tile the file from offset 0 up to the central
        directory (prepended or appended data, gaps, overlaps); so a tar
        header at offset 0, a tar/zip polyglot, as the public index does;
      - a local header that differs from its central entry (signature,
        flags, method, name bytes, CRC, sizes, ZIP64 extras applied), or a
        version needed to extract past C{zipfile}'s 6.3;
      - encryption, unknown flag bits, methods but stored and deflate (no
        build tool writes bzip2 or lzma into wheels, and readers outside
        Python lack them);
      - data descriptors (flag bit 3), as on the public index, unless
        C{allow_data_descriptors}: a streaming reader finds the end of such
        a member from the deflate stream itself, and a stream that ends
        early leaves bytes it takes for the next header; never on a stored
        member, whose end only a search for a signature its data may hold finds;
      - names neither UTF-8 (flag bit 11) nor ASCII (readers read cp437
        differently), and those L{pypid.core.dists.dist_members.check_name}
        refuses; the Info-ZIP Unicode Path extra (0x7075), which gives the
        readers that honour it another name; entry comments;
      - two names for one file (L{pypid.core.dists.dist_members.MemberNames}:
        what Windows and macOS file systems equate), a name both a file and
        a directory (C{a} and C{a/b});
      - a directory entry with content (but the two-byte empty deflate
        stream, which PySocks 1.7.1 has), a directory mode or attribute on a
        file, symbolic links and other special files (C{zipfile} extracts a
        link as a file holding its target, C{unzip} makes the link).
    """


@attrs.frozen
class ZipEntry:
    """
    One member of a zip, as its central directory entry says (ZIP64 values
    applied), and where its data starts (C{data_offset}, 0 until its local
    header is checked: L{pypid.core.dists.zip_headers.check_members}).
    """

    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed_size: int
    file_size: int
    header_offset: int
    is_dir: bool
    data_offset: int = 0


def read_at(f: SeekableFile, offset: int, length: int, what: str) -> bytes:
    """The C{length} bytes at C{offset}, refusing a file that ends before them."""
    f.seek(offset)
    data = b""
    while len(data) < length:
        chunk = f.read(length - len(data))
        if not chunk:
            raise UnsafeZip(f"the archive ends inside {what}")
        data += chunk
    return data


def check_flags_and_method(version: int, flags: int, method: int, raw: bytes, where: str,
                            ) -> None:
    """Refuse encryption, unknown flag bits and methods other than stored and deflate."""
    if version & 0xFF > MAX_VERSION:
        raise UnsafeZip(f"the {where} needs zip version {(version & 0xFF) / 10}, past 6.3", raw)
    if flags & (_ENCRYPTED | _STRONG_ENCRYPTION | _ENCRYPTED_DIRECTORY) or method == _AES:
        raise UnsafeZip("encrypted members are not accepted", raw)
    if flags & ~_ALLOWED_FLAGS:
        raise UnsafeZip(f"the {where} has unsupported flag bits {flags:#06x}", raw)
    if method not in (STORED, _DEFLATED):
        raise UnsafeZip(
            f"compression method {method} is not accepted (only stored and deflate)", raw,
        )


def extra_blocks(extra: bytes, raw: bytes, where: str) -> dict[int, bytes]:
    """
    Split an extra field into its blocks, refusing a malformed one, a
    repeated ZIP64 block, and the blocks that change what is extracted.
    """
    blocks: dict[int, bytes] = {}
    position = 0
    while position < len(extra):
        # (a block cut short in its 4-byte head runs past the end too)
        block_id = int.from_bytes(extra[position:position + 2], "little")
        length = int.from_bytes(extra[position + 2:position + 4], "little")
        start = position + 4
        position = start + length
        if position > len(extra):
            raise UnsafeZip(f"the {where} extra field is malformed", raw)
        if block_id == _UNICODE_PATH_EXTRA:
            raise UnsafeZip(
                "the Info-ZIP Unicode Path extra field (0x7075) is not accepted: readers "
                "that honour it see another name",
                raw,
            )
        if block_id == _STRONG_ENCRYPTION_EXTRA:
            raise UnsafeZip("encrypted members are not accepted", raw)
        if block_id == ZIP64_EXTRA and block_id in blocks:
            raise UnsafeZip(f"the {where} extra field has two ZIP64 blocks", raw)
        blocks.setdefault(block_id, extra[start:position])
    return blocks
