"""
The zip format as the zip checks read it: the flag bits, methods and
extra fields they know, L{UnsafeZip} (whose docstring lists every rule),
a member as its headers describe it (L{ZipEntry}), and the reads and
checks the central directory and the local headers share.

Apart from L{pypid.core.dists.zipcheck} so that the headers' checks
(L{pypid.core.dists.zip_headers}) stand on it without importing it.
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

    L{pypid.core.dists.zipcheck.check_zip} reads the end records, then the central directory, then
    every local header in offset order, and refuses unless:

      - the end of central directory record is the file's last 22 bytes, so
        there is exactly one, with no comment (the public index allows one;
        nothing a wheel or sdist needs lives there, and it can hide data) and
        nothing after it; disk numbers are 0 and both entry counts agree;
      - ZIP64: a locator right before that record points at a ZIP64 record of
        the plain 56 bytes right before it; each 16- or 32-bit field of the
        plain record equals the ZIP64 one or is its 0xFFFF/0xFFFFFFFF
        sentinel, and a sentinel without a ZIP64 record is refused;
      - the central directory starts where the end records say and ends where
        they begin, holding exactly the announced entries: the count is
        checked against C{max_entries}, and the size against what that many
        entries can take, before any entry is read;
      - the members tile the file: the first local header at offset 0, each
        header, data and data descriptor followed at once by the next header,
        the last one ending where the central directory starts (no prepended
        or appended data, no gaps, no overlaps, no two entries sharing data);
        so any bytes that look like a tar header at offset 0 are refused too
        (a tar/zip polyglot), as the public index does;
      - each local header matches its central entry: signature, flags,
        compression method, name bytes, CRC and both sizes (after applying
        ZIP64 extras on both sides), and a version needed to extract that
        C{zipfile} supports (at most 6.3);
      - ZIP64 extras: at most one per header; in the central directory it
        holds exactly the fields whose 32-bit value is the sentinel, in order;
        in a local header it holds both sizes (16 bytes), and a 32-bit size
        that is not the sentinel must equal the 64-bit one;
      - no encryption (flag bit 0, strong encryption bit 6, central directory
        encryption bit 13, method 99, the strong encryption extra 0x0017), no
        flag bits other than the deflate options, the data descriptor and
        UTF-8; methods stored (0) and deflate (8) only, as on the public index
        (bzip2 and lzma: no build tool writes them into wheels, and readers
        outside Python lack them);
      - data descriptors (flag bit 3) are refused by default, as on the public
        index: a streaming reader finds the end of such a member from the
        deflate stream itself, and a stream that ends before the size the
        central directory gives leaves bytes that reader takes for the next
        header, which only inflating can rule out. With
        C{allow_data_descriptors=True} deflated members may have one (with or
        without its signature; 64-bit sizes exactly when the local header has
        a ZIP64 extra), which must match the central entry; stored ones never,
        as only a search for a signature the data may hold finds their end;
      - names: UTF-8 when flag bit 11 is set, else ASCII (cp437 is read
        differently by different readers); not empty, no backslash, no colon
        (a drive letter, or an NTFS stream on Windows), no leading slash, no
        empty, C{.} or C{..} component; at most C{max_name_length} bytes and
        255 bytes per component; no character that C{str.isprintable} refuses:
        control characters (a NUL, at which C{zipfile} cuts the name, or
        terminal escapes), format characters (the bidirectional controls
        U+202A-U+202E and U+2066-U+2069 that make a name read as another, as
        in Trojan Source, zero-width characters, U+FEFF), line and paragraph
        separators, spaces other than U+0020, private-use, unassigned and
        surrogate characters (no real archive measured has even a non-ASCII
        name, so this refuses nothing real); the Info-ZIP
        Unicode Path extra (0x7075) is refused, since readers that honour it
        see another name; extra fields are well-formed and at most
        C{max_extra_length} bytes; entry comments are refused (as on the
        public index);
      - no two entries name the same file: the same name, or names equal once
        case-folded, NFC-normalized, stripped of trailing dots and spaces per
        component (what Windows and macOS file systems equate) and of a
        trailing slash; and no name is both a file and a directory (C{a} and
        C{a/b});
      - a directory entry (name ending in C{/}) holds nothing: size 0, CRC 0,
        and no data or the two-byte empty deflate stream (PySocks 1.7.1 has
        one); a Unix mode or DOS attribute saying "directory" only on such a
        name; no symbolic links or other special files in a Unix mode
        (C{zipfile} extracts a link as a file holding its target, C{unzip}
        makes the link).
    """


@attrs.frozen
class ZipEntry:
    """
    One member of a zip, as its central directory entry says (ZIP64 values
    applied) and, once its local header is checked, where its data starts.

    @ivar name: the member's name (a directory's ends with C{/}).
    @ivar raw_name: the name's bytes, as the archive holds them.
    @ivar flags: its general purpose flag bits.
    @ivar method: its compression method (0 stored, 8 deflate).
    @ivar crc: the CRC-32 of its decompressed bytes.
    @ivar compressed_size: the length of its data.
    @ivar file_size: its length once decompressed.
    @ivar header_offset: where its local header starts.
    @ivar is_dir: whether it is a directory entry.
    @ivar data_offset: where its (compressed) data starts (0 until its
        local header is checked: L{pypid.core.dists.zip_headers.check_members}).
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
    """
    Return the C{length} bytes at C{offset}, refusing a file that ends
    before them.
    """
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
        raise UnsafeZip(
            f"the {where} needs zip version {(version & 0xFF) / 10}, past 6.3", raw,
        )
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
        if position + 4 > len(extra):
            raise UnsafeZip(f"the {where} extra field is malformed", raw)
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
