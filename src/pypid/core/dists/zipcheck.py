"""
A check of zip archives (wheels, C{.zip} sdists), so that every zip reader
sees the same members with the same bytes; and its name rules for the
members of other archives (tar sdists).

Why: a zip describes its members twice, in a local header before each
member's data and in the central directory at the end, and readers differ
in which they trust. C{zipfile} (pip, the index's own metadata reading)
starts from the central directory; streaming readers (uv while
downloading, C{unzip -} style tools) walk the local headers. An archive
built for one reader can so install files the index never saw. The public
index refuses such archives (C{warehouse.utils.zipfiles}); this module
follows it and goes past it. The rules are in L{UnsafeZip} (the structure)
and L{check_zip_data} (the members' bytes). L{check_member_name} and
L{MemberNames} hold a tar sdist's names to a zip's rules.

Bounds: nothing is extracted. The end records are the last 98 bytes at
most, the central directory is read in 64 KiB chunks and never held whole,
each member costs one or two small reads, and inflating takes about 2 MiB.

Measured against C{zipfile} and the public index (C{docs/performance.rst},
"Checking a zip", has the corpus and times): of the 129 archives the tests
refuse, C{zipfile} reads every member of 103, and pip installs 15 of 16
defects injected into a real wheel (a duplicated file, a name cut at a NUL,
a symbolic link, a Unicode Path extra naming another file). Of the public
index's own test archives, all 35 it rejects are refused here; of the 10
it accepts, 8 are accepted (refused: an archive comment, and a ZIP64 size
confusion it misses). All 1,026 real archives tried are accepted, with the
names, offsets, sizes and CRCs C{zipfile} reads. No library does this: the
safe-zip packages are about extraction, and warehouse's check is no package.
"""

from __future__ import annotations

import re
import struct
import unicodedata
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import NoReturn, Protocol

import attrs

#: Most central directory entries accepted.
DEFAULT_MAX_ENTRIES = 100_000

#: Longest member name accepted, in bytes (the longest in the 1,018 real
#: wheels measured is 238); Linux paths go to 4096.
DEFAULT_MAX_NAME_LENGTH = 1024

#: Longest extra field of one header accepted, in bytes (real wheels: 24).
DEFAULT_MAX_EXTRA_LENGTH = 1024

# Longest path component most file systems accept, in bytes.
_MAX_COMPONENT_LENGTH = 255

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_END = b"PK\x05\x06"
_END64 = b"PK\x06\x06"
_LOCATOR = b"PK\x06\x07"
_DESCRIPTOR = b"PK\x07\x08"

_END_RECORD = struct.Struct("<4s4H2LH")
_LOCATOR_RECORD = struct.Struct("<4sLQL")
_END64_RECORD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_HEADER = struct.Struct("<4s2B5H3L5H2L")
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF

# The size of a ZIP64 end of central directory record without extensible
# data, counted after its signature and size fields.
_END64_BODY = _END64_RECORD.size - 12

# The highest "version needed to extract" zipfile accepts (6.3).
_MAX_VERSION = 63

_ENCRYPTED = 1 << 0
_HAS_DESCRIPTOR = 1 << 3
_STRONG_ENCRYPTION = 1 << 6
_UTF8 = 1 << 11
_ENCRYPTED_DIRECTORY = 1 << 13
# The flag bits a member may have: deflate's two option bits, the data
# descriptor and UTF-8 names. The others mean encryption, patch data, or
# nothing yet.
_ALLOWED_FLAGS = 0b110 | _HAS_DESCRIPTOR | _UTF8

_STORED = 0
_DEFLATED = 8
_AES = 99

_ZIP64_EXTRA = 0x0001
_STRONG_ENCRYPTION_EXTRA = 0x0017
_UNICODE_PATH_EXTRA = 0x7075

# The empty deflate stream: one final fixed-Huffman block holding only the
# end-of-block code.
_EMPTY_DEFLATE = b"\x03\x00"

_UNIX_HOST = 3
_DOS_DIRECTORY = 0x10
_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFREG = 0o100000
_S_IFLNK = 0o120000

_CHUNK = 64 << 10

# The most bytes of a member's data read, or inflated, at once.
_DATA_CHUNK = 1 << 20

# What each kind of character that str.isprintable() refuses is, by Unicode
# category: those refused in names.
_UNPRINTABLE = {
    "Cc": "a NUL or another control character",
    "Cf": "an invisible format character",
    "Cs": "a lone surrogate (an undecodable byte)",
    "Co": "a private-use character",
    "Cn": f"a character unassigned in Unicode {unicodedata.unidata_version}",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Zs": "a space other than U+0020",
}

# The dots and spaces that end a component, which Windows drops.
_TRAILING_DOTS = re.compile(r"[. ]+(?=/|\Z)")


class SeekableFile(Protocol):
    """What the checks read an archive from: a seekable binary file."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def read(self, size: int = -1, /) -> bytes: ...


class UnsafeArchive(ValueError):
    """
    An archive, or a member name, that readers could read differently.

    C{str()} of the exception is a short message fit for a 400 response
    body; it names the member concerned, if any.

    @ivar member: the name of the member concerned, escaped for display,
        or L{None} when the fault is the archive's.
    """

    def __init__(self, message: str, member: str | bytes | None = None) -> None:
        """
        @param message: what is wrong.
        @param member: the member's name, as text or as raw bytes (either
            escaped here), or L{None}.
        """
        if isinstance(member, str):
            member = _encode_name(member)
        shown = None
        if member is not None:
            shown = _show_name(member)
            message = f"member '{shown}': {message}"
        super().__init__(message)
        self.member = shown


class UnsafeZip(UnsafeArchive):
    """
    A zip archive that zip readers could read differently, or that is not
    a zip archive at all.

    L{check_zip} reads the end records, then the central directory, then
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
    One member of a checked archive, as both its headers describe it.

    @ivar name: the member's name (a directory's ends with C{/}).
    @ivar header_offset: where its local header starts.
    @ivar data_offset: where its (compressed) data starts.
    @ivar compressed_size: the length of its data.
    @ivar file_size: its length once decompressed.
    @ivar crc: the CRC-32 of its decompressed bytes.
    @ivar method: its compression method (0 stored, 8 deflate).
    @ivar flags: its general purpose flag bits.
    @ivar is_dir: whether it is a directory entry.
    """

    name: str
    header_offset: int
    data_offset: int
    compressed_size: int
    file_size: int
    crc: int
    method: int
    flags: int
    is_dir: bool


@attrs.frozen
class _Central:
    """What one central directory entry says, with ZIP64 values applied."""

    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed_size: int
    file_size: int
    header_offset: int
    is_dir: bool


def check_zip(f: SeekableFile, *, max_entries: int = DEFAULT_MAX_ENTRIES,
              max_name_length: int = DEFAULT_MAX_NAME_LENGTH,
              max_extra_length: int = DEFAULT_MAX_EXTRA_LENGTH,
              allow_data_descriptors: bool = False) -> tuple[ZipEntry, ...]:
    """
    Check the structure of the zip archive in C{f} and return its entries.

    The rules it refuses by are L{UnsafeZip}'s.

    @param f: a seekable binary file object; it is read from anywhere and
        left at an unspecified position.
    @param max_entries: most central directory entries accepted.
    @param max_name_length: longest member name accepted, in bytes.
    @param max_extra_length: longest extra field of one header, in bytes.
    @param allow_data_descriptors: accept deflated members followed by a
        data descriptor (see L{UnsafeZip} for why the default is not to).
    @return: the L{ZipEntry} of every member, in central directory order.
    @raise UnsafeZip: if the archive is refused.
    """
    size = f.seek(0, 2)
    count, cd_offset, cd_size = _read_end(f, size)
    if count > max_entries:
        raise UnsafeZip(f"the archive has {count} entries, more than the {max_entries} allowed")
    if cd_size < count * _CENTRAL_HEADER.size:
        raise UnsafeZip(f"the central directory is too small for its {count} entries")
    largest = count * (_CENTRAL_HEADER.size + max_name_length + max_extra_length)
    if cd_size > largest:
        raise UnsafeZip(
            f"the central directory is {cd_size} bytes, more than its {count} entries can "
            f"take ({largest})"
        )
    _refuse_tar_header(f, size)
    centrals = _read_central_directory(
        f, count, cd_offset, cd_size, max_name_length, max_extra_length,
    )
    data_offsets = _check_members(
        f, centrals, cd_offset, max_extra_length, allow_data_descriptors,
    )
    return tuple(
        ZipEntry(
            name=c.name,
            header_offset=c.header_offset,
            data_offset=data_offsets[i],
            compressed_size=c.compressed_size,
            file_size=c.file_size,
            crc=c.crc,
            method=c.method,
            flags=c.flags,
            is_dir=c.is_dir,
        )
        for i, c in enumerate(centrals)
    )


def check_zip_data(f: SeekableFile, entries: Iterable[ZipEntry], *, max_expanded: int) -> None:
    """
    Inflate every member of an archive L{check_zip} accepted, refusing one
    whose data readers could read differently.

    It reads every member's data, the C{compressed_size}
    bytes at C{data_offset}, since C{zipfile} reads a stored member's size and
    a deflated member's stream up to its end, and so never sees bytes the
    central directory gives the member past those, which other readers read
    (C{unzip -t} checks them, uv refuses such archives). So C{zipfile}
    installs one thing while the index's readers could see another. It
    refuses unless:

      - the declared sizes add up to at most C{max_expanded} (checked before
        anything is read, so a bomb costs nothing);
      - a stored member's compressed size is its size;
      - a deflated member's stream ends exactly at its last compressed byte:
        not before (bytes hidden after the stream), not after (an unfinished
        stream), and is valid deflate;
      - the data has the declared size and CRC-32 (a directory: none, its
        data being empty or the empty deflate stream).

    It reads 1 MiB at a time and asks zlib for at most 1 MiB per call, and
    stops a member as soon as its output passes its declared size: memory is
    about 2 MiB, and the bytes inflated at most C{max_expanded} plus 1 MiB.

    @param f: the seekable binary file object L{check_zip} read; it is left
        at an unspecified position.
    @param entries: the entries L{check_zip} returned for it.
    @param max_expanded: most bytes the members may hold in all.
    @raise UnsafeZip: if the archive is refused.
    """
    expanded = sum(entry.file_size for entry in entries)
    if expanded > max_expanded:
        raise UnsafeZip(f"the archive expands to {expanded} bytes, more than {max_expanded}")
    # In file order, so that the reads are sequential.
    for entry in sorted(entries, key=lambda entry: entry.data_offset):
        raw = _encode_name(entry.name)
        if entry.method == _STORED:
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
        yield _read_at(f, position, length, "a member's data")
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


def _read_at(f: SeekableFile, offset: int, length: int, what: str) -> bytes:
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


# The end records.


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
     comment_length) = _END_RECORD.unpack(_read_at(f, end_offset, _END_RECORD.size, "its end"))
    if signature != _END or comment_length:
        _explain_missing_end(f, size)
    locator_offset = end_offset - _LOCATOR_RECORD.size
    locator = None
    if locator_offset >= 0:
        locator = _read_at(f, locator_offset, _LOCATOR_RECORD.size, "its end")
    if locator is not None and locator.startswith(_LOCATOR):
        values = _read_end64(f, locator, locator_offset)
        cd_end = locator_offset - _END64_RECORD.size
        plain = (disk, cd_disk, disk_count, count, cd_size, cd_offset)
        sentinels = (_U16, _U16, _U16, _U16, _U32, _U32)
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
        if _U32 in (cd_size, cd_offset) or _U16 in (disk, cd_disk, disk_count, count):
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
        raise UnsafeZip(
            "the central directory's offset and size reach past its end records"
        )
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
        _read_at(f, record_offset, _END64_RECORD.size, "its ZIP64 end record")
    )
    if signature != _END64:
        raise UnsafeZip(
            "the ZIP64 locator does not point at a ZIP64 end of central directory record"
        )
    if record_size != _END64_BODY:
        raise UnsafeZip("the ZIP64 end of central directory record has extensible data")
    if version & 0xFF > _MAX_VERSION:
        raise UnsafeZip("the ZIP64 end of central directory record needs an unknown zip version")
    return disk, cd_disk, disk_count, count, cd_size, cd_offset


def _explain_missing_end(f: SeekableFile, size: int) -> NoReturn:
    """
    Raise the error for a file whose last 22 bytes are not an end of
    central directory record without a comment, saying which case it is.
    """
    window = min(size, _END_RECORD.size + _U16)
    tail = _read_at(f, size - window, window, "its end")
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
    """
    Refuse an archive whose first 512 bytes are a valid tar header, which
    tar readers would read as a different archive.
    """
    if size < 512:
        return
    block = _read_at(f, 0, 512, "its first block")
    stored = _tar_number(block[148:156])
    if stored is None:
        return
    # The checksum is the sum of the header's bytes with its own field as
    # spaces, unsigned (POSIX) or signed (some old tars); tarfile takes both.
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    signed = (sum(b - 256 if b > 127 else b for b in block[:148]) + 8 * 32
              + sum(b - 256 if b > 127 else b for b in block[156:]))
    if stored in (unsigned, signed):
        raise UnsafeZip("the archive is also a tar archive (its first block is a tar header)")


def _tar_number(field: bytes) -> int | None:
    """
    Read a numeric tar header field as tarfile does (octal text up to a
    NUL, or base-256), or return L{None} if it is neither.
    """
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


# The central directory.


def _read_central_directory(f: SeekableFile, count: int, cd_offset: int, cd_size: int,
                            max_name_length: int, max_extra_length: int) -> list[_Central]:
    """
    Read and check the C{count} entries of the central directory, which
    must fill exactly C{cd_size} bytes, and return them as L{_Central}.
    """
    reader = _ChunkReader(f, cd_offset, cd_offset + cd_size)
    names = MemberNames(UnsafeZip)
    centrals: list[_Central] = []
    for index in range(count):
        header = reader.take(_CENTRAL_HEADER.size)
        if header is None:
            raise UnsafeZip(
                f"the central directory ends after {index} of its {count} entries"
            )
        (signature, _, host, version, flags, method, _, _, crc, compressed_size, file_size,
         name_length, extra_length, comment_length, disk, _, external,
         header_offset) = _CENTRAL_HEADER.unpack(header)
        if signature != _CENTRAL:
            raise UnsafeZip(f"central directory entry {index} has a bad signature")
        raw_name = reader.take(name_length)
        if raw_name is None:
            raise UnsafeZip(f"central directory entry {index} runs past the directory's end")
        if name_length > max_name_length:
            raise UnsafeZip(
                f"the name is longer than {max_name_length} bytes", raw_name,
            )
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
        _check_name(name, raw_name)
        _check_flags_and_method(version, flags, method, raw_name, "central directory entry")
        blocks = _extra_blocks(extra, raw_name, "central directory")
        file_size, compressed_size, header_offset, disk = _apply_central_zip64(
            blocks.get(_ZIP64_EXTRA), file_size, compressed_size, header_offset, disk, raw_name,
        )
        if disk:
            raise UnsafeZip("the member is on another disk", raw_name)
        is_dir = name.endswith("/")
        _check_kind(is_dir, host, external, method, crc, compressed_size, file_size, raw_name)
        names.add(name, is_dir, raw_name)
        centrals.append(_Central(
            name=name,
            raw_name=raw_name,
            flags=flags,
            method=method,
            crc=crc,
            compressed_size=compressed_size,
            file_size=file_size,
            header_offset=header_offset,
            is_dir=is_dir,
        ))
    names.check()
    if not reader.at_end():
        raise UnsafeZip(
            f"the central directory holds more than its {count} entries"
        )
    return centrals


class _ChunkReader:
    """
    Sequential reads of the byte range C{[start, end)} of a file, in chunks
    of 64 KiB, so that neither the reads nor the memory grow with the
    range.
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
            self._buffer = left + _read_at(self._f, self._position, want, "its central directory")
            self._position += want
            start = 0
        self._taken = start + length
        return self._buffer[start:self._taken]

    def at_end(self) -> bool:
        """Whether every byte of the range has been taken."""
        return self._taken == len(self._buffer) and self._position >= self._end


def _show_name(raw_name: bytes) -> str:
    """A member's name escaped for an error message: short and printable."""
    text = raw_name.decode("utf-8", "backslashreplace")
    if len(text) > 120:
        text = text[:120] + "..."
    shown = []
    for c in text:
        if c in "'\\":
            shown.append("\\" + c)
        elif c.isprintable():
            shown.append(c)
        else:
            shown.append(c.encode("unicode_escape").decode("ascii"))
    return "".join(shown)


def _decode_name(raw: bytes, flags: int) -> str:
    """
    Decode a name: as UTF-8 when flag bit 11 says so, else only if it is
    ASCII, since readers decode other bytes with different code pages.
    """
    if flags & _UTF8:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafeZip("the name is not valid UTF-8", raw) from None
    if not raw.isascii():
        raise UnsafeZip(
            "the name is not ASCII and the UTF-8 flag (bit 11) is not set", raw,
        )
    return raw.decode("ascii")


def check_member_name(name: str, *, max_name_length: int = DEFAULT_MAX_NAME_LENGTH) -> None:
    """
    Refuse a member name, of a tar member say, that the rules for zip
    member names refuse (see L{UnsafeZip}).

    A directory's name may end with C{/}; a leading C{./} is the caller's
    to strip.

    @param name: the decoded name (lone surrogates, as C{surrogateescape}
        leaves for undecodable bytes, are refused).
    @param max_name_length: longest name accepted, in bytes of UTF-8.
    @raise UnsafeArchive: if the name is refused.
    """
    raw = _encode_name(name)
    if len(raw) > max_name_length:
        raise UnsafeArchive(f"the name is longer than {max_name_length} bytes", raw)
    _check_name(name, raw, UnsafeArchive)


def _encode_name(name: str) -> bytes:
    """
    Return the bytes of a decoded name, undoing C{surrogateescape}, so that
    it can be measured and shown.
    """
    try:
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogatepass")


def _check_name(name: str, raw: bytes, error: type[UnsafeArchive] = UnsafeZip) -> None:
    """
    Refuse a name that readers or file systems could take for another
    path, that points outside the folder it is extracted to, or that holds
    characters not shown as themselves.
    """
    if not name:
        raise error("the name is empty", raw)
    if "\\" in name:
        raise error("the name holds a backslash", raw)
    if ":" in name:
        raise error("the name holds a colon (a drive letter or a Windows stream)", raw)
    # isprintable() is false for exactly the characters refused, and runs
    # in C: the loop only runs to say which one it is.
    if not name.isprintable():
        for c in name:
            if not c.isprintable():
                what = _UNPRINTABLE[unicodedata.category(c)]
                raise error(f"the name holds {what} (U+{ord(c):04X})", raw)
    if name.startswith("/"):
        raise error("the name is an absolute path", raw)
    body = "/" + (name[:-1] if name.endswith("/") else name) + "/"
    if "//" in body or "/./" in body or "/../" in body:
        raise error("the name has an empty, '.' or '..' component", raw)
    if len(raw) > _MAX_COMPONENT_LENGTH and max(map(len, raw.split(b"/"))) > _MAX_COMPONENT_LENGTH:
        raise error(
            f"a component of the name is longer than {_MAX_COMPONENT_LENGTH} bytes", raw,
        )


def _check_flags_and_method(version: int, flags: int, method: int, raw: bytes, where: str,
                            ) -> None:
    """Refuse encryption, unknown flag bits and methods other than stored and deflate."""
    if version & 0xFF > _MAX_VERSION:
        raise UnsafeZip(
            f"the {where} needs zip version {(version & 0xFF) / 10}, past 6.3", raw,
        )
    if flags & (_ENCRYPTED | _STRONG_ENCRYPTION | _ENCRYPTED_DIRECTORY) or method == _AES:
        raise UnsafeZip("encrypted members are not accepted", raw)
    if flags & ~_ALLOWED_FLAGS:
        raise UnsafeZip(f"the {where} has unsupported flag bits {flags:#06x}", raw)
    if method not in (_STORED, _DEFLATED):
        raise UnsafeZip(
            f"compression method {method} is not accepted (only stored and deflate)", raw,
        )


def _extra_blocks(extra: bytes, raw: bytes, where: str) -> dict[int, bytes]:
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
        if block_id == _ZIP64_EXTRA and block_id in blocks:
            raise UnsafeZip(f"the {where} extra field has two ZIP64 blocks", raw)
        blocks.setdefault(block_id, extra[start:position])
    return blocks


def _apply_central_zip64(block: bytes | None, file_size: int, compressed_size: int,
                         header_offset: int, disk: int, raw: bytes,
                         ) -> tuple[int, int, int, int]:
    """
    Replace the sentinel values of a central directory entry by those of
    its ZIP64 extra, which must hold exactly those, in order.
    """
    wanted = [file_size == _U32, compressed_size == _U32, header_offset == _U32]
    expected_length = 8 * sum(wanted) + (4 if disk == _U16 else 0)
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
    if disk == _U16:
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
        empty = (0,) if method == _STORED else (0, len(_EMPTY_DEFLATE))
        if file_size or crc or compressed_size not in empty:
            raise UnsafeZip("the directory entry has content", raw)


class MemberNames:
    """
    The names of an archive's members, to refuse two that name one file on
    some file system, and a name that is both a file and a directory:
    L{check_zip} uses it for the central directory, and a caller can for
    another archive's members (a tar's, say), after L{check_member_name}.

    Names are compared equal, or equal once case-folded, NFC-normalized
    and stripped of trailing dots and spaces per component and of a
    trailing slash (L{_fold}), with NUL, the smallest character, for their
    slashes; once sorted, equal keys are neighbours, and so are a name and
    the first name under it. Folding and sorting run in C, so the cost
    grows with the names' length, not with their depth.

    Memory: one tuple per name holding its folded key and its bytes, about
    200 bytes plus three times the name's length (case folding can triple
    a character, as U+0390 does); so at most the caller's member limit
    times that, with names of at most C{max_name_length} bytes. Checking
    sorts the keys once, at the end: O(n log n) comparisons, in C.
    """

    def __init__(self, error: type[UnsafeArchive] = UnsafeArchive) -> None:
        """
        @param error: the exception L{check} raises (L{UnsafeZip} for zips).
        """
        #: C{(folded name, is a directory, raw name)} of each name added
        self._keys: list[tuple[str, bool, bytes]] = []
        self._error = error

    def add(self, name: str, is_dir: bool, raw: bytes | None = None) -> None:
        """
        Record the member C{name} (whose bytes are C{raw}, when known), a
        directory if C{is_dir}.
        """
        if raw is None:
            raw = _encode_name(name)
        self._keys.append((_fold(name.rstrip("/")), is_dir, raw))

    def check(self) -> None:
        """
        Refuse the first collision among the names added, if any.

        @raise UnsafeArchive: naming one of the two members.
        """
        error = self._error
        self._keys.sort(key=lambda key: key[0])
        for (key, is_dir, raw), (next_key, _, next_raw) in zip(self._keys, self._keys[1:],
                                                               strict=False):
            if next_key == key:
                if next_raw == raw:
                    raise error("the name appears twice", raw)
                raise error(
                    f"the name collides with '{_show_name(raw)}' on case-insensitive or "
                    "normalizing file systems", next_raw,
                )
            if not is_dir and next_key.startswith(key + "\0"):
                raise error(
                    f"the name puts a file under '{_show_name(raw)}', which is a file",
                    next_raw,
                )


def _fold(name: str) -> str:
    """
    Fold a name to what case-insensitive, normalizing file systems take it
    for: NFC, case-folded, without trailing dots and spaces in any
    component, its slashes made NULs.
    """
    if name.isascii():
        name = name.lower()
    else:
        name = unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())
    if name.endswith((".", " ")) or "./" in name or " /" in name:
        name = _TRAILING_DOTS.sub("", name)
    return name.replace("/", "\0")


# The local headers.


def _check_members(f: SeekableFile, centrals: Sequence[_Central], cd_offset: int,
                   max_extra_length: int, allow_data_descriptors: bool) -> list[int]:
    """
    Check every member's local header (and data descriptor) against its
    central entry, and that the members tile the file up to the central
    directory; return the data offsets, in central directory order.
    """
    data_offsets = [0] * len(centrals)
    expected = 0
    previous: _Central | None = None
    for index in sorted(range(len(centrals)), key=lambda i: centrals[i].header_offset):
        central = centrals[index]
        if central.header_offset > expected:
            if previous is None:
                raise UnsafeZip(
                    f"{central.header_offset} bytes come before the first local header"
                )
            raise UnsafeZip(
                f"{central.header_offset - expected} bytes between it and "
                f"'{_show_name(previous.raw_name)}' belong to no member", central.raw_name,
            )
        if central.header_offset < expected:
            # (expected is 0, which no offset is below, until a member was checked)
            assert previous is not None
            raise UnsafeZip(
                f"the member overlaps '{_show_name(previous.raw_name)}'", central.raw_name,
            )
        data_offset, end = _check_local(
            f, central, cd_offset, max_extra_length, allow_data_descriptors,
        )
        data_offsets[index] = data_offset
        expected = end
        previous = central
    if expected != cd_offset:
        if previous is None:
            raise UnsafeZip(f"{cd_offset} bytes come before the central directory")
        raise UnsafeZip(
            f"{cd_offset - expected} bytes between it and the central directory belong "
            "to no member", previous.raw_name,
        )
    return data_offsets


def _check_local(f: SeekableFile, central: _Central, cd_offset: int, max_extra_length: int,
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
        _read_at(f, offset, _LOCAL_HEADER.size, "a local header")
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
    rest = _read_at(f, offset + _LOCAL_HEADER.size, name_length + extra_length, "a local header")
    if rest[:name_length] != central.raw_name:
        raise UnsafeZip("the local header has another name", raw)
    _check_flags_and_method(version, flags, method, raw, "local header")
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
    zip64 = _extra_blocks(rest[name_length:], raw, "local").get(_ZIP64_EXTRA)
    file_size, compressed_size = _apply_local_zip64(zip64, file_size, compressed_size, raw)
    end = data_offset + central.compressed_size
    if end > cd_offset:
        raise UnsafeZip("the member's data runs into the central directory", raw)
    if flags & _HAS_DESCRIPTOR:
        if not allow_data_descriptors:
            raise UnsafeZip("data descriptors (flag bit 3) are not accepted", raw)
        if method == _STORED:
            raise UnsafeZip(
                "a stored member with a data descriptor has no end streaming readers can find",
                raw,
            )
        for value, real, what in ((crc, central.crc, "CRC"),
                                  (compressed_size, central.compressed_size, "compressed size"),
                                  (file_size, central.file_size, "size")):
            if value not in (0, real):
                raise UnsafeZip(
                    f"the local header's {what} is neither 0 nor the central directory's",
                    raw,
                )
        end = _check_descriptor(f, central, end, cd_offset, zip64 is not None)
    else:
        for value, real, what in ((crc, central.crc, "CRC"),
                                  (compressed_size, central.compressed_size, "compressed size"),
                                  (file_size, central.file_size, "size")):
            if value != real:
                raise UnsafeZip(
                    f"the local header's {what} ({value}) differs from the central "
                    f"directory's ({real})", raw,
                )
    if central.is_dir and central.compressed_size:
        if _read_at(f, data_offset, central.compressed_size, "a member's data") != _EMPTY_DEFLATE:
            raise UnsafeZip("the directory entry has content", raw)
    return data_offset, end


def _apply_local_zip64(block: bytes | None, file_size: int, compressed_size: int, raw: bytes,
                       ) -> tuple[int, int]:
    """
    Replace the sentinel sizes of a local header by those of its ZIP64
    extra, which must hold both sizes; a size given twice must agree.
    """
    if block is None:
        if _U32 in (file_size, compressed_size):
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
        if value not in (_U32, value64):
            raise UnsafeZip(
                f"the local header's {what} ({value}) differs from its ZIP64 extra "
                f"field's ({value64})", raw,
            )
    return file_size64, compressed_size64


def _check_descriptor(f: SeekableFile, central: _Central, offset: int, cd_offset: int,
                      zip64: bool) -> int:
    """
    Check the data descriptor at C{offset} against the central entry and
    return where it ends.
    """
    raw = central.raw_name
    size_format = "<LQQ" if zip64 else "<LLL"
    length = struct.calcsize(size_format)
    head = _read_at(f, offset, min(4, max(cd_offset - offset, 0)), "a data descriptor")
    if head == _DESCRIPTOR:
        offset += 4
    if offset + length > cd_offset:
        raise UnsafeZip("the data descriptor runs into the central directory", raw)
    crc, compressed_size, file_size = struct.unpack(
        size_format, _read_at(f, offset, length, "a data descriptor"),
    )
    if (crc, compressed_size, file_size) != (central.crc, central.compressed_size,
                                              central.file_size):
        raise UnsafeZip("the data descriptor differs from the central directory", raw)
    return offset + length
