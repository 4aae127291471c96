"""
The zip readers of L{pypid.core.dists.dist_archive.extract}: a wheel's
METADATA (with its C{WHEEL} held to the filename, and a variant wheel's
C{variant.json}) and a C{.zip} sdist's PKG-INFO, read through C{zipfile}
once the entry count is bounded.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Collection
from typing import IO

from pypid.core.dists.dist_members import SdistLayout, is_named_for, too_large
from pypid.core.dists.metadata import InvalidDistribution, escape_text, short_text
from pypid.core.dists.model import VARIANT_BYTES
from pypid.core.dists.names import ParsedFilename
from pypid.core.dists.wheel_variants import (
    MAX_VARIANT_JSON,
    InvalidVariant,
    read_variant_json,
    split_label,
)
from pypid.core.dists.wheelfile import (
    MAX_WHEEL_FILE_SIZE,
    InvalidWheelFile,
    TagMismatch,
    WheelInfo,
    check_matches_filename,
    parse_wheel_file,
)

#: The most bytes a central directory entry is allowed on average when the
#: central directory's size is checked against the entry limit (46 fixed
#: bytes, and room for a long name and extra fields).
CENTRAL_ENTRY_ROOM = 46 + 512


def check_zip_entry_count(f: IO[bytes], limit: int) -> None:
    """
    Refuse a zip that claims more than C{limit} entries, or whose central
    directory could make zipfile build many more than C{limit}.

    zipfile parses the whole central directory as soon as it opens a file:
    the size the end record gives, whatever entry count it claims, an entry
    taking at least 46 bytes. So a size of at most C{limit} times
    L{CENTRAL_ENTRY_ROOM} bounds its work to about 12 times C{limit}
    entries, and L{check_zip_entries} then counts those built. (46 bytes an
    entry would refuse ten entries of ordinary names as "more than 10".)
    """
    try:
        # (zipfile's private helpers, which typeshed leaves out)
        endrec = zipfile._EndRecData(f)  # type: ignore[attr-defined]
    except (OSError, struct.error, ValueError):
        endrec = None
    if not endrec:
        raise InvalidDistribution("not a valid zip file (no end of central directory)")
    claimed = endrec[zipfile._ECD_ENTRIES_TOTAL]  # type: ignore[attr-defined]
    size_cd = endrec[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if claimed > limit or size_cd > limit * CENTRAL_ENTRY_ROOM:
        raise InvalidDistribution(f"the zip file has more than {limit} entries")


def check_zip_entries(zf: zipfile.ZipFile, limit: int) -> None:
    """Refuse an opened zip of more than C{limit} entries (its end record may have lied)."""
    if len(zf.filelist) > limit:
        raise InvalidDistribution(f"the zip file has more than {limit} entries")


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """
    Read one zip member, refusing it when it is larger than C{limit}: the
    declared size first, then reading at most C{limit + 1} bytes, should
    the declaration lie.
    """
    if info.file_size > limit:
        raise too_large(escape_text(info.filename), limit)
    if type(zf.fp) is io.BytesIO:
        data = _read_member_in_memory(zf.fp.getvalue(), info)
        if data is not None:
            return data
    with zf.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise too_large(escape_text(info.filename), limit)
    return data


_LOCAL_HEADER = struct.Struct("<4s5H3L2H")

# The flag bits with which zipfile.ZipFile.open refuses a member, or asks
# for a password: encryption, compressed patched data, strong encryption.
_UNREADABLE_FLAGS = 0x1 | 0x20 | 0x40
_UTF8_NAME = 0x800


def _read_member_in_memory(data: bytes, info: zipfile.ZipInfo) -> bytes | None:
    """
    The bytes of a zip member of an archive held in memory, when
    C{zipfile.ZipFile.open} would give exactly them; else L{None}, and the
    caller asks C{zipfile}.

    C{zipfile}'s member reading is a stack of Python objects: 27 us for a
    200-byte C{METADATA}, a tenth of describing a small wheel, against 3 us
    here. So the common case is read here, with every check C{zipfile}
    makes on it (signature, name, flags, method, bounds and its overlap
    check, size and CRC-32); anything else, every error included, takes
    C{zipfile}'s own path, which raises what it always raised.
    """
    method = info.compress_type
    if info.flag_bits & _UNREADABLE_FLAGS or method not in (zipfile.ZIP_STORED,
                                                             zipfile.ZIP_DEFLATED):
        return None
    offset = info.header_offset
    header = data[offset:offset + _LOCAL_HEADER.size]
    if len(header) != _LOCAL_HEADER.size:
        return None
    (signature, _, flags, _, _, _, _, _, _, name_length,
     extra_length) = _LOCAL_HEADER.unpack(header)
    if signature != b"PK\x03\x04":
        return None
    start = offset + _LOCAL_HEADER.size
    try:
        name = data[start:start + name_length].decode("utf-8" if flags & _UTF8_NAME else "cp437")
    except UnicodeDecodeError:
        return None
    if name != info.orig_filename:
        return None
    start += name_length + extra_length
    end = start + info.compress_size
    end_offset = getattr(info, "_end_offset", None)  # (Python 3.12 on, 3.11.8 on)
    if end > len(data) or end_offset is not None and end > end_offset:
        return None
    if method == zipfile.ZIP_STORED:
        out = data[start:end]
    else:
        try:
            out = zlib.decompressobj(-15).decompress(data[start:end], info.file_size + 1)
        except zlib.error:
            return None
    if len(out) != info.file_size or zlib.crc32(out) != info.CRC:
        return None
    return out


def _refuse_duplicates(names: Collection[str]) -> None:
    """Refuse an archive that names one path twice: readers differ on which copy they see."""
    if len(set(names)) != len(names):
        raise InvalidDistribution("the archive holds the same path more than once")


def wheel_metadata(zf: zipfile.ZipFile, parsed: ParsedFilename, limit: int,
                    filename: str | None = None, mismatch: list[str] | None = None,
                    tags_only: bool = False) -> tuple[bytes, str | None]:
    """
    The bytes of a wheel's METADATA after checking its layout and, given
    the C{filename}, its C{WHEEL} against that name without a variant label
    (L{_hold_to_filename}; with C{tags_only}, an import's lenient reading,
    only a readable C{WHEEL}'s tags); and a variant wheel's C{variant.json}
    (L{_wheel_variant}), or L{None}.
    """
    names = zf.namelist()
    _refuse_duplicates(names)
    # The same rule as pip's wheel_dist_info_dir: top-level names ending in
    # .dist-info, whether or not they hold anything.
    tops = {name.split("/", 1)[0] for name in names}
    info_dirs = sorted(top for top in tops if top.endswith(".dist-info"))
    if not info_dirs:
        raise InvalidDistribution("the wheel has no .dist-info directory")
    if len(info_dirs) > 1:
        raise InvalidDistribution(
            f"the wheel has {len(info_dirs)} .dist-info directories; it must have one"
        )
    info_dir = info_dirs[0]
    # (is_named_for tries each dash as the separator: unescaped legacy names match)
    if not is_named_for(info_dir[: -len(".dist-info")], parsed):
        raise InvalidDistribution(
            f"the wheel's {short_text(info_dir)} directory does not match the "
            f"filename's project {parsed.project!r} and version {parsed.version!r}"
        )
    required = (("METADATA", "RECORD", "WHEEL") if filename is not None and not tags_only
                else ("METADATA", "RECORD"))
    for member in required:
        if f"{info_dir}/{member}" not in names:
            raise InvalidDistribution(f"the wheel has no {escape_text(info_dir)}/{member}")
    member = f"{info_dir}/WHEEL"
    if filename is not None and parsed.variant is not None:
        filename = split_label(filename)[0]
    if filename is not None and (not tags_only or member in names):
        try:
            info: WheelInfo | None = parse_wheel_file(
                _read_zip_member(zf, zf.getinfo(member), MAX_WHEEL_FILE_SIZE), escape_text(member))
        except (InvalidWheelFile, InvalidDistribution):
            if not tags_only:
                raise
            info = None  # (an import reads leniently: only the tags of a WHEEL one can read)
        if info is not None:
            _hold_to_filename(info, filename, escape_text(member), mismatch, build=not tags_only)
    variant = (_wheel_variant(zf, info_dir, parsed.variant) if parsed.variant is not None
               else None)
    return _read_zip_member(zf, zf.getinfo(f"{info_dir}/METADATA"), limit), variant


def _hold_to_filename(info: WheelInfo, filename: str, member: str, mismatch: list[str] | None,
                      build: bool) -> None:
    """
    L{check_matches_filename}, its tags and (when C{build}) its build tag:
    Tag lines that differ are refused, or, given a C{mismatch} list, noted
    in it, the rest still held to the name.
    """
    try:
        check_matches_filename(info, filename, member, build=build)
    except TagMismatch as e:
        if mismatch is None:
            raise
        mismatch.append(str(e))
        if build:
            check_matches_filename(info, filename, member, tags=False)


def _wheel_variant(zf: zipfile.ZipFile, info_dir: str, label: str) -> str:
    """
    A variant wheel's C{variant.json} in C{info_dir}, held to PEP 825's
    rules and to the filename's C{label}, as its record keeps it (compact,
    at most L{VARIANT_BYTES}); an import's too, as the index-level file is
    made of it.

    @raise InvalidDistribution: naming the rule (field C{variant.json}).
    """
    member = f"{info_dir}/variant.json"
    try:
        entry = zf.getinfo(member)
    except KeyError:
        raise InvalidDistribution(
            f"variant.json: a variant wheel (label {label!r}, PEP 825) must hold "
            f"{escape_text(member)}", field="variant.json") from None
    raw = _read_zip_member(zf, entry, MAX_VARIANT_JSON)
    try:
        text = read_variant_json(raw, label).to_text()
    except InvalidVariant as e:
        raise InvalidDistribution(str(e), field="variant.json") from None
    if len(text) > VARIANT_BYTES:
        raise InvalidDistribution(
            f"variant.json: {len(text)} bytes once compact; pypid keeps at most "
            f"{VARIANT_BYTES} a wheel", field="variant.json")
    return text


def zip_sdist_metadata(zf: zipfile.ZipFile, limit: int, layout: SdistLayout) -> bytes:
    """Return the bytes of a zip sdist's PKG-INFO after checking its layout."""
    infos = zf.infolist()
    _refuse_duplicates([info.filename for info in infos])
    found: zipfile.ZipInfo | None = None
    for info in infos:
        if layout.add(info.filename):
            if info.is_dir():
                raise InvalidDistribution("the sdist's PKG-INFO is not a file")
            found = info
    layout.require_pkg_info()
    # (found is set: require_pkg_info raised if no PKG-INFO was seen)
    return _read_zip_member(zf, found, limit)  # type: ignore[arg-type]
