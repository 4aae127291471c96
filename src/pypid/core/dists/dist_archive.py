"""
Core metadata out of wheels and sdists, read safely from hostile archives
(L{extract}), at upload time and when the index is rebuilt from a folder
of existing files.

Everything here is pure and synchronous: it reads one local file (or file
object) and returns values or raises L{InvalidDistribution}. The caller runs
it in a worker thread. Every step is bounded so that a hostile upload costs a
400 response, never a full inflate, a huge allocation or a hang: the metadata
file has a size limit, zip archives a limit on entries, and tarballs a limit
on members and on the bytes decompressed while scanning them. Nothing is ever
extracted to disk, so member names such as C{../x} or C{/etc/passwd} are
harmless.

Uploads are checked more strictly (C{strict=True}) than files found in an
existing folder, which the index serves as they are: an upload is refused
when installers could read it differently from the index, or differently
from one another. For wheels and zip sdists that means the structural checks
of L{pypid.core.dists.zipcheck} and a C{WHEEL} file whose tags are the filename's
(L{pypid.core.dists.wheelfile}), and every member's data read through once, so
that a damaged member (a wrong CRC, a broken deflate stream) is refused
now rather than found by every installer later: a filename, once taken, can
never be given other bytes. For tarballs, one C{<name>-<version>/} directory
holding every member, no device files, no links leaving that directory, no
member named twice, and an archive that ends with its end-of-archive marker
followed by nothing but zeros (tarfile itself stops quietly at a damaged
header, so data hidden after one would otherwise pass).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterable
from typing import IO, TYPE_CHECKING, Literal, NoReturn, Protocol

import attrs

from pypid.core.dists.metadata import (
    DEFAULT_MAX_METADATA_SIZE,
    SUPPORTED_METADATA_VERSIONS,
    CoreMetadata,
    InvalidDistribution,
    escape_text,
    parse_metadata,
    short_text,
    version_of,
)
from pypid.core.dists.names import WHEEL, ParsedFilename, is_valid_name, normalize
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
from pypid.core.dists.zipcheck import (
    MemberNames,
    UnsafeArchive,
    check_member_name,
    check_zip,
    check_zip_data,
)
from pypid.core.indexes.model import VARIANT_BYTES

if TYPE_CHECKING:
    import os
    from contextlib import AbstractContextManager
    from typing import Self

#: Most bytes decompressed while scanning a tarball for its PKG-INFO.
DEFAULT_MAX_SCAN_BYTES = 256 << 20

#: Most entries of a zip file, or members of a tarball, looked at.
DEFAULT_MAX_MEMBERS = 100_000

# The end-of-archive marker of a tarball: two zero blocks (POSIX).
_TAR_END_MARKER = 1024

#: An uploaded zip may expand to this many times its own size, and to
#: L{DEFAULT_MAX_SCAN_BYTES} whatever its size: real wheels expand two to
#: five times, a zip bomb a thousand.
MAX_EXPANSION_RATIO = 20

# Largest tar extension header (pax, GNU long name) accepted. tarfile reads
# these whole into memory before we see the member they describe, so without
# this a single header could make it allocate up to the scan limit; and
# Python before 3.11.10 parses pax headers in quadratic time (CVE-2024-6232:
# measured on 3.11.7, 7.5 s for 64 KiB, 22 s for 128 KiB; 8 KiB takes 0.1 s).
# Real ones hold a long path and a few times: well under 8 KiB.
_MAX_TAR_HEADER_SIZE = 8 << 10

# What the decompressors and archive readers raise on damaged input.
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    NotImplementedError,
    OSError,
    RuntimeError,  # zipfile: "File ... is encrypted, password required"
    ValueError,  # a bad name encoding, a negative offset...
    struct.error,
    LookupError,  # tarfile: IndexError and KeyError from damaged extension headers
    OverflowError,
)



class ScanLimitExceeded(Exception):
    """
    Raised from inside tarfile's reading when a scan limit is reached.

    Not a L{ValueError}, so no C{except ValueError} inside the standard
    library can swallow it on the way out.
    """



#: What L{extract} does with a wheel whose tags differ from its filename's.
WheelTags = Literal["refuse", "note"] | None


@attrs.frozen
class Extracted:
    """
    What L{extract} learnt from a distribution file.

    @ivar metadata: its core metadata.
    @ivar serve: whether the metadata may be served as PEP 658
        C{<file>.metadata}: always for wheels, for sdists only when PEP 643
        makes it reliable.
    """

    metadata: CoreMetadata
    serve: bool
    #: why its C{WHEEL}'s tags differ from the filename's, when they do and
    #: the wheel was taken all the same (C{wheel_tags="note"}); else L{None}
    tag_mismatch: str | None = None
    #: a variant wheel's C{variant.json} as a record keeps it (PEP 825:
    #: L{pypid.core.indexes.model.FileRecord.variant}); L{None} for any other file
    variant: str | None = None

    @property
    def metadata_sha256(self) -> str | None:
        """
        The value for L{pypid.core.indexes.model.FileRecord.metadata_sha256}: the
        metadata's hex sha256 when it is served, else L{None}.
        """
        return self.metadata.sha256 if self.serve else None


def extract(source: str | bytes | os.PathLike[str] | IO[bytes], parsed: ParsedFilename,
            filename: str, *, max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
            max_scan_bytes: int = DEFAULT_MAX_SCAN_BYTES, max_members: int = DEFAULT_MAX_MEMBERS,
            strict: bool = False, wheel_tags: WheelTags = None) -> Extracted:
    """
    Check that a distribution file is what its name says and return its core
    metadata.

    A wheel must be a zip with exactly one C{.dist-info} directory, named for
    the filename's project and version, holding C{METADATA} and C{RECORD}. An
    sdist (C{.tar.gz}, C{.tgz}, C{.tar.bz2} or C{.zip}) must hold a single
    top-level directory with a C{PKG-INFO} in it. Either way the metadata's
    Name and Version must match the filename.

    @param source: the path of the file, or a seekable binary file object
        (read from its start, left open).
    @param parsed: what L{pypid.core.dists.names.parse_filename} made of C{filename}.
    @param filename: the file's name; its extension chooses the archive
        format.
    @param max_metadata_size: largest METADATA / PKG-INFO accepted.
    @param max_scan_bytes: most bytes decompressed while scanning a tarball.
    @param max_members: most entries in a zip, or members in a tarball.
    @param strict: apply the upload rules of the module docstring too.
    @param wheel_tags: what a wheel whose C{WHEEL} Tag lines differ from its
        filename's tags gets: C{"refuse"} (L{InvalidDistribution}),
        C{"note"} (taken, the reason in L{Extracted.tag_mismatch}), or
        L{None}: refused when C{strict}, not looked at otherwise.
    @rtype: L{Extracted}
    @raise InvalidDistribution: with a short message for the uploader.
    @raise OSError: if C{source} is a path that cannot be opened.
    """
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        with open(source, "rb") as f:
            return _extract(f, parsed, filename, max_metadata_size, max_scan_bytes,
                            max_members, strict, wheel_tags)
    source.seek(0)
    return _extract(source, parsed, filename, max_metadata_size, max_scan_bytes,
                    max_members, strict, wheel_tags)


def _zip_metadata(f: IO[bytes], parsed: ParsedFilename, filename: str, max_metadata_size: int,
                  max_scan_bytes: int, max_members: int, strict: bool, wheel_tags: WheelTags,
                  mismatch: list[str]) -> tuple[bytes, str | None]:
    """
    C{(raw metadata, variant label or None)} of a wheel or zip sdist,
    checked (strictly: its structure and every member's data first); a
    wheel's tag mismatch noted in C{mismatch} when C{wheel_tags} is C{note}.
    """
    variant: str | None = None
    if strict:
        # The structure first, then every member's data (its CRC,
        # sizes and deflate stream), with the expansion capped at
        # MAX_EXPANSION_RATIO times the file before anything is
        # inflated: a damaged member is refused now rather than
        # found by every installer later, as a filename once taken
        # can never be given other bytes.
        size = f.seek(0, 2)
        try:
            entries = check_zip(f, max_entries=max_members)
            check_zip_data(f, entries, max_expanded=max(
                max_scan_bytes, MAX_EXPANSION_RATIO * size))
        except UnsafeArchive as e:
            raise InvalidDistribution(str(e)) from None
    else:
        _check_zip_entry_count(f, max_members)
    f.seek(0)
    with zipfile.ZipFile(f) as zf:
        _check_zip_entries(zf, max_members)
        if parsed.packagetype == WHEEL:
            raw, variant = _wheel_metadata(zf, parsed, max_metadata_size,
                                           filename if wheel_tags is not None else None,
                                           mismatch if wheel_tags == "note" else None,
                                           tags_only=not strict)
        else:
            raw = _zip_sdist_metadata(zf, max_metadata_size,
                                      _SdistLayout(parsed if strict else None))
    return raw, variant


def _extract(f: IO[bytes], parsed: ParsedFilename, filename: str, max_metadata_size: int,
             max_scan_bytes: int, max_members: int, strict: bool,
             wheel_tags: WheelTags = None) -> Extracted:
    """L{extract} on an open binary file positioned at its start."""
    if wheel_tags is None and strict:
        wheel_tags = "refuse"
    mismatch: list[str] = []
    opener: Callable[[IO[bytes]], AbstractContextManager[_Readable]]
    is_wheel = parsed.packagetype == WHEEL
    variant: str | None = None
    if filename.endswith((".whl", ".zip")):
        kind = "zip"
    elif filename.endswith((".tar.gz", ".tgz")):
        kind, opener = "tar.gz", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")
    elif filename.endswith(".tar.bz2"):
        kind, opener = "tar.bz2", lambda raw: bz2.BZ2File(raw, mode="rb")
    else:
        raise InvalidDistribution(f"unsupported file type {short_text(filename)}")
    if is_wheel != filename.endswith(".whl"):
        raise ValueError(f"{filename!r} does not match its parsed form {parsed!r}")

    try:
        if kind == "zip":
            raw, variant = _zip_metadata(f, parsed, filename, max_metadata_size,
                                         max_scan_bytes, max_members, strict, wheel_tags,
                                         mismatch)
        else:
            if strict:
                if zipfile.is_zipfile(f):
                    # (a tar/zip polyglot: tar readers and zip readers would
                    # see two different archives)
                    raise InvalidDistribution(
                        f"not a valid {kind} file: it reads as a zip archive"
                    )
                f.seek(0)
                if kind == "tar.gz":
                    opener = _OneGzipMember
            with opener(f) as stream:
                raw = _tar_sdist_metadata(
                    _BoundedReader(stream, max_scan_bytes), max_metadata_size,
                    max_members, _SdistLayout(parsed if strict else None), strict,
                )
    except ScanLimitExceeded as e:
        raise InvalidDistribution(str(e)) from None
    except InvalidWheelFile as e:
        raise InvalidDistribution(str(e), tag_mismatch=isinstance(e, TagMismatch)) from None
    except InvalidDistribution:
        raise
    except _ARCHIVE_ERRORS as e:
        raise InvalidDistribution(
            f"not a valid {kind} file: {escape_text(str(e) or type(e).__name__)}"
        ) from None

    metadata = parse_metadata(raw, strict)
    if strict and metadata.metadata_version not in SUPPORTED_METADATA_VERSIONS:
        raise InvalidDistribution(
            f"the metadata's Metadata-Version {short_text(metadata.metadata_version)} is not "
            "one the index supports", field="metadata.Metadata-Version",
        )
    _check_identity(metadata, parsed)
    return Extracted(metadata=metadata, serve=is_wheel or metadata.is_reliable_for_sdist(),
                     tag_mismatch=mismatch[0] if mismatch else None, variant=variant)


def _check_identity(metadata: CoreMetadata, parsed: ParsedFilename) -> None:
    """
    Refuse metadata whose Name or Version is not the filename's, since the
    index files the distribution under the latter and serves the former.
    """
    if not is_valid_name(metadata.name):
        # (ASCII, as an upload's name: "\u212aeras" lowercases to "keras")
        raise InvalidDistribution(
            f"the metadata Name {short_text(metadata.name)} is not a valid project name",
            field="metadata.Name",
        )
    if normalize(metadata.name) != parsed.project:
        raise InvalidDistribution(
            f"the metadata Name {short_text(metadata.name)} does not match the "
            f"filename's project {parsed.project!r}",
            field="metadata.Name",
        )
    version = version_of(metadata.version)
    expected = version_of(parsed.version)
    if version is None or expected is None:
        raise InvalidDistribution(
            f"the metadata Version {short_text(metadata.version)} is not a valid "
            "PEP 440 version",
            field="metadata.Version",
        )
    if version != expected:
        raise InvalidDistribution(
            f"the metadata Version {short_text(metadata.version)} does not match "
            f"the filename's version {parsed.version!r}",
            field="metadata.Version",
        )


def _too_large(member: str, limit: int) -> InvalidDistribution:
    """The error for a metadata file over the size limit."""
    return InvalidDistribution(
        f"{member} is larger than {limit} bytes", field="metadata"
    )


# Zip files (wheels, and .zip sdists in existing folders).


#: The most bytes a central directory entry is allowed on average when the
#: central directory's size is checked against the entry limit (46 fixed
#: bytes, and room for a long name and extra fields).
CENTRAL_ENTRY_ROOM = 46 + 512


def _check_zip_entry_count(f: IO[bytes], limit: int) -> None:
    """
    Refuse a zip that claims more than C{limit} entries, or whose central
    directory could make zipfile build many more than C{limit}.

    zipfile turns the whole central directory into objects as soon as it
    opens a file. It reads exactly the number of bytes the end record gives
    as the central directory's size and parses entries within them,
    whatever entry count the end record claims, an entry taking at least
    C{sizeCentralDir} (46) bytes; so a size of at most C{limit} times
    L{CENTRAL_ENTRY_ROOM} bounds its work to about 12 times C{limit}
    entries, and L{_check_zip_entries} then counts the entries it built.
    (A bound of 46 bytes an entry would refuse ten entries of ordinary
    names as "more than 10".)
    Reading the end record costs one small read at the end of the file.
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


def _check_zip_entries(zf: zipfile.ZipFile, limit: int) -> None:
    """Refuse an opened zip of more than C{limit} entries (its end record may have lied)."""
    if len(zf.filelist) > limit:
        raise InvalidDistribution(f"the zip file has more than {limit} entries")


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """
    Read one zip member, refusing it when it is larger than C{limit}.

    The declared size is checked first; reading at most C{limit + 1} bytes
    then bounds the work even if the declaration lies (zipfile also stops at
    the declared size and checks the CRC).
    """
    if info.file_size > limit:
        raise _too_large(escape_text(info.filename), limit)
    if type(zf.fp) is io.BytesIO:
        data = _read_member_in_memory(zf.fp.getvalue(), info)
        if data is not None:
            return data
    with zf.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise _too_large(escape_text(info.filename), limit)
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

    C{zipfile}'s member reading is a stack of Python objects (a shared file,
    a C{ZipExtFile}, its buffering): 27 us for a 200-byte C{METADATA}, a
    tenth of describing a small wheel, against 3 us here. So the common case
    is read here, with every check C{zipfile} makes on it: a local header
    with its signature, a name equal to the central directory's (decoded
    as C{zipfile} decodes it), no encryption, patch or strong encryption
    flag, the stored or deflate method, data within the archive (and, where
    C{zipfile} has it, the overlap check against the next member), exactly
    the declared size out and the declared CRC-32. Anything else, every
    error included, takes C{zipfile}'s own path, which raises what it
    always raised.
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
        name = data[start:start + name_length].decode(
            "utf-8" if flags & _UTF8_NAME else "cp437")
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
    """
    Refuse an archive that names one path twice: which copy a reader sees
    depends on the reader, so the metadata checked here might not be the one
    installed.
    """
    if len(set(names)) != len(names):
        raise InvalidDistribution("the archive holds the same path more than once")


def _dist_info_matches(directory: str, parsed: ParsedFilename) -> bool:
    """
    Whether a C{<name>-<version>.dist-info} directory name is for the
    filename's project and version (trying each dash as the separator, so
    that unescaped legacy names still match).
    """
    return _is_named_for(directory[: -len(".dist-info")], parsed)


def _is_named_for(stem: str, parsed: ParsedFilename) -> bool:
    """
    Whether C{<name>-<version>} names the filename's project and version,
    whichever dash separates them.
    """
    expected = version_of(parsed.version)
    if expected is None:
        return False
    i = stem.find("-")
    while i >= 0:
        if normalize(stem[:i]) == parsed.project and version_of(stem[i + 1:]) == expected:
            return True
        i = stem.find("-", i + 1)
    return False


def _wheel_metadata(zf: zipfile.ZipFile, parsed: ParsedFilename, limit: int,
                    filename: str | None = None, mismatch: list[str] | None = None,
                    tags_only: bool = False) -> tuple[bytes, str | None]:
    """
    Return the bytes of a wheel's METADATA after checking its layout, and,
    given the C{filename} (uploads), its C{WHEEL} file against that name:
    Tag lines that differ are refused, or, given a C{mismatch} list, noted
    in it and taken. With C{tags_only} (an import, read leniently), only
    a readable C{WHEEL}'s tags are held to the name. A variant wheel's
    C{WHEEL} names the tags of its name without the label (PEP 825), and
    its C{variant.json} is read too (L{_wheel_variant}): the second value,
    L{None} for a plain wheel.
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
    if not _dist_info_matches(info_dir, parsed):
        raise InvalidDistribution(
            f"the wheel's {short_text(info_dir)} directory does not match the "
            f"filename's project {parsed.project!r} and version {parsed.version!r}"
        )
    required = (("METADATA", "RECORD", "WHEEL") if filename is not None and not tags_only
                else ("METADATA", "RECORD"))
    for member in required:
        if f"{info_dir}/{member}" not in names:
            raise InvalidDistribution(
                f"the wheel has no {escape_text(info_dir)}/{member}"
            )
    member = f"{info_dir}/WHEEL"
    if filename is not None and parsed.variant is not None:
        filename = split_label(filename)[0]
    if filename is not None and tags_only:
        try:
            info = (parse_wheel_file(_read_zip_member(zf, zf.getinfo(member),
                                                      MAX_WHEEL_FILE_SIZE),
                                     escape_text(member)) if member in names else None)
        except (InvalidWheelFile, InvalidDistribution):
            # (read leniently, as before: only the tags of a WHEEL one can read)
            info = None
        if info is not None:
            _hold_to_filename(info, filename, escape_text(member), mismatch, build=False)
    elif filename is not None:
        raw = _read_zip_member(zf, zf.getinfo(member), MAX_WHEEL_FILE_SIZE)
        info = parse_wheel_file(raw, escape_text(member))
        _hold_to_filename(info, filename, escape_text(member), mismatch, build=True)
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
    A variant wheel's C{variant.json} in C{info_dir} (the one C{.dist-info}
    directory L{_wheel_metadata} checked), held to PEP 825's rules and to
    the filename's C{label}, as its record keeps it: compact, at most
    L{VARIANT_BYTES}. Checked whether or not the upload rules apply (an
    import too): the index-level file is made of it.

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


# Sdists.


def _split_member_name(name: str) -> list[str]:
    """
    Split an sdist member name into path parts, ignoring a leading C{./} and
    the trailing C{/} of a directory.

    @raise InvalidDistribution: on an absolute path or a C{..} part, which
        no sdist has any use for (and pip refuses to unpack).
    """
    parts = name.split("/")
    while len(parts) > 1 and parts[0] == ".":
        parts.pop(0)
    if parts == ["."]:
        return []
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if parts[0] == "" or ".." in parts:
        raise InvalidDistribution(
            f"the sdist has a member outside its directory: {short_text(name)}"
        )
    return parts


class _SdistLayout:
    """
    Follows an sdist's members in order: they must share one top-level
    directory, in which a single PKG-INFO is the metadata.

    Given the parsed filename (uploads), the directory must also be named
    for the filename's project and version, and no path may appear twice.
    """

    def __init__(self, expected: ParsedFilename | None = None) -> None:
        self.top: str | None = None
        self.pkg_info_seen = False
        self._expected = expected
        self._seen: set[str] | None = set() if expected is not None else None
        # the names as a file system would take them (case, Unicode forms)
        self._names: MemberNames | None = MemberNames() if expected is not None else None
        # symbolic links by path, and hard links as (path, target)
        self._symlinks: dict[str, str] = {}
        self._hardlinks: list[tuple[str, str]] = []
        #: the path of the member last added, as an extractor writes it
        self.path: str | None = None

    def add(self, name: str) -> bool:
        """
        Account for one member; return whether it is C{<top>/PKG-INFO}.
        """
        parts = _split_member_name(name)
        if not parts:
            self.path = None
            return False
        if self.top is None:
            self.top = parts[0]
            if self._expected is not None and not _is_named_for(self.top, self._expected):
                raise InvalidDistribution(
                    f"the sdist's top-level directory {short_text(self.top)} is not named "
                    f"<name>-<version> for {self._expected.project!r} "
                    f"{self._expected.version!r}"
                )
        elif parts[0] != self.top:
            raise InvalidDistribution(
                "an sdist must hold a single top-level directory, found "
                f"{short_text(self.top)} and {short_text(parts[0])}"
            )
        if self._seen is not None:
            # (the spelling an extractor writes: no empty or "." parts)
            path = "/".join(p for p in parts if p not in ("", "."))
            if path in self._seen:
                raise InvalidDistribution(
                    f"the sdist holds {short_text(path)} more than once"
                )
            self._seen.add(path)
            self.path = path
        if parts[1:] != ["PKG-INFO"]:
            return False
        if self.pkg_info_seen:
            raise InvalidDistribution("the sdist holds more than one PKG-INFO")
        self.pkg_info_seen = True
        return True

    def require_pkg_info(self) -> None:
        """Refuse an sdist in which no PKG-INFO was seen."""
        if not self.pkg_info_seen:
            raise InvalidDistribution(
                "the sdist has no PKG-INFO in its top-level directory"
            )

    def check_name(self, name: str, is_dir: bool) -> None:
        """
        Apply the zip name rules of L{pypid.core.dists.zipcheck} to a tarball
        member's name (uploads): printable, no backslash or colon, capped
        in length, and not a second name for one file.
        """
        while name.startswith("./"):
            name = name[2:]
        if name in ("", "."):
            return
        try:
            check_member_name(name)
            # (called with an expected filename only, which made _names)
            self._names.add(name, is_dir)  # type: ignore[union-attr]
        except UnsafeArchive as e:
            raise InvalidDistribution(f"the sdist's {e}") from None

    def check_names(self) -> None:
        """Refuse two names for one file, once every name is known."""
        try:
            # (called with an expected filename only, which made _names)
            self._names.check()  # type: ignore[union-attr]
        except UnsafeArchive as e:
            raise InvalidDistribution(f"the sdist's {e}") from None

    def add_link(self, member: tarfile.TarInfo, symbolic: bool) -> None:
        """
        Account for a link (the member L{add} took last): an absolute target
        is refused now, the rest once every link is known (L{check_links}).
        """
        target = member.linkname
        if not target or target.startswith("/") or "\x00" in target:
            raise _link_outside(member.name)
        # (self.path is set: _check_tar_member calls this only then)
        if symbolic:
            self._symlinks[self.path] = target  # type: ignore[index]
        else:
            self._hardlinks.append((self.path, target))  # type: ignore[arg-type]

    def check_links(self) -> None:
        """
        Refuse links that an extractor would follow out of the top-level
        directory.

        Checking each link's target as text is not enough: C{a/up -> ..}
        and C{a/up/up -> ..} each stay inside, yet a member written under
        C{a/up/up/up/} lands outside, because the extractor follows the
        links in its path. So no member may lie under a symbolic link (a
        link is a file to L{check_names}, which refuses a name under a
        file, and runs first), and a link's target may not pass through
        another link on its way (only its last step may be one): then the
        text of every path is where it really leads, and a target that
        stays inside as text stays inside.
        """
        links = self._symlinks
        for path, target in links.items():
            self._follow(path, path.rpartition("/")[0].split("/"), target)
        for path, target in self._hardlinks:
            self._follow(path, [], target)

    def _follow(self, path: str, start: Iterable[str], target: str) -> None:
        """Walk C{target} from the directory C{start}, as the link C{path} leads."""
        parts = list(start)
        steps = [step for step in target.split("/") if step not in ("", ".")]
        for index, step in enumerate(steps):
            if step == "..":
                if len(parts) <= 1:
                    raise _link_outside(path)
                parts.pop()
                continue
            parts.append(step)
            if parts[0] != self.top:
                raise _link_outside(path)
            if index < len(steps) - 1 and "/".join(parts) in self._symlinks:
                raise InvalidDistribution(
                    f"the sdist's link {short_text(path)} leads through another link"
                )
        if len(parts) < 2 and not (parts and parts[0] == self.top):
            raise _link_outside(path)


def _link_outside(name: str) -> InvalidDistribution:
    return InvalidDistribution(f"the sdist's link {short_text(name)} points outside its directory")


def _zip_sdist_metadata(zf: zipfile.ZipFile, limit: int, layout: _SdistLayout) -> bytes:
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


class _Readable(Protocol):
    """A binary stream read from start to end."""

    def read(self, size: int = -1, /) -> bytes: ...


class _BoundedReader:
    """
    A read-only file whose reads stop with L{ScanLimitExceeded} once more than
    a budget of bytes has come out of it.

    Wrapped around a decompressor, it bounds the decompression work of a
    scan: each read asks the decompressor for at most one byte past the
    budget.
    """

    def __init__(self, stream: _Readable, budget: int) -> None:
        self._stream = stream
        self._budget = budget
        self._left = budget
        #: Where the last byte that is not zero ends: what follows the
        #: end-of-archive marker must be zeros only.
        self.data_end = 0

    @property
    def position(self) -> int:
        """How many bytes have come out so far."""
        return self._budget - self._left

    def read(self, size: int | None = -1) -> bytes:
        """Read up to C{size} bytes, never more than one past the budget."""
        if size is None or size < 0 or size > self._left + 1:
            size = self._left + 1
        start = self.position
        data = self._stream.read(size)
        self._left -= len(data)
        if self._left < 0:
            raise ScanLimitExceeded(
                f"the archive expands to more than {self._budget} bytes"
            )
        kept = len(data.rstrip(b"\0"))
        if kept:
            self.data_end = start + kept
        return data


class _OneGzipMember:
    """
    The decompressed bytes of a file that must be exactly one gzip member:
    C{gzip.GzipFile} reads on through any members that follow, where other
    readers stop after the first, so two readers could see two archives.
    Reads return at most 1 MiB, so a bomb never allocates more.
    """

    def __init__(self, raw: _Readable) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> Literal[False]:
        return False

    def read(self, size: int | None = -1) -> bytes:
        """Up to C{size} (at most 1 MiB) more bytes, or C{b""} at the end."""
        if size is None or size < 0 or size > 1 << 20:
            size = 1 << 20
        inflate = self._inflate
        while not inflate.eof:
            data = inflate.unconsumed_tail or self._raw.read(1 << 16)
            if not data:
                raise EOFError("the gzip stream is truncated")
            out = inflate.decompress(data, size)
            if out:
                return out
        if inflate.unused_data or self._raw.read(1):
            raise ScanLimitExceeded(
                "the file has data after its gzip stream (another gzip member, or another "
                "archive)"
            )
        return b""


class BoundedTarInfo(tarfile.TarInfo):
    """
    A TarInfo that refuses an oversized pax or GNU long-name header before
    tarfile reads it whole into memory (also the bundles' reader's:
    L{pypid.bundle.archive.TarReader}), and a pax C{size} that contradicts
    the member's own header: tarfile and GNU tar take the pax size, readers
    that trust the ustar size (the bug class of CVE-2025-62518) step to a
    different next header, and so see members the index never saw. Writers
    set the ustar size to the real size, or to 0 when it does not fit.
    """

    _EXTENSION_TYPES = frozenset(
        {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
         tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK}
    )

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        """Parse one header block, refusing oversized extension headers."""
        info = super().frombuf(buf, encoding, errors)
        if info.type in cls._EXTENSION_TYPES and info.size > _MAX_TAR_HEADER_SIZE:
            raise ScanLimitExceeded(
                f"the archive has a tar header larger than {_MAX_TAR_HEADER_SIZE} bytes"
            )
        return info

    def _apply_pax_info(self, pax_headers: dict[str, str], encoding: str, errors: str) -> None:
        # (tarfile's private hook, which its pax reading calls on the member
        # a pax header describes; present from Python 3.2 to 3.14)
        own_size = self.size
        # (not in typeshed, so mypy finds no such method on TarInfo)
        super()._apply_pax_info(pax_headers, encoding, errors)  # type: ignore[misc]
        # A pax size is only needed past the 8 GiB an ustar header holds,
        # far beyond what the index reads; below that, both must agree.
        if "size" in pax_headers and own_size != self.size:
            raise ScanLimitExceeded(
                f"the member {short_text(self.name)} has a pax size ({self.size}) that differs "
                f"from its header's ({own_size})"
            )

    # GNU sparse members (old-style and the pax forms): no sdist has one,
    # the public index refuses them, and tarfile's reading of their maps
    # costs unbounded memory and time, or fails with an IndexError.

    def _refuse_sparse(self, *args: object) -> NoReturn:
        raise ScanLimitExceeded(f"the member {short_text(self.name)} is a sparse file")

    _proc_sparse = _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _refuse_sparse


def _tar_sdist_metadata(reader: _BoundedReader, limit: int, max_members: int,
                        layout: _SdistLayout, strict: bool = False) -> bytes:
    """
    Scan a decompressed tar stream from start to end and return the bytes of
    its PKG-INFO after checking its layout.

    The whole stream is read (within the reader's budget) so that a
    truncated or corrupt compressed file is refused rather than half-read.
    With C{strict}, member types and links are checked too, and the stream
    must end with the end-of-archive marker and zeros.
    """
    raw: bytes | None = None
    count = 0
    # (a stream, "r|", is only read: typeshed's _Fileobj asks for writing and
    # seeking too, and with that overload refused, tf would be Any)
    tf: tarfile.TarFile
    with tarfile.open(fileobj=reader, mode="r|", tarinfo=BoundedTarInfo) as tf:  # type: ignore[call-overload]
        while (member := tf.next()) is not None:
            # A stream TarFile keeps every member it has seen; we need none.
            tf.members.clear()  # type: ignore[attr-defined]  # (undocumented, not in typeshed)
            count += 1
            if count > max_members:
                raise InvalidDistribution(
                    f"the sdist has more than {max_members} members"
                )
            if strict:
                layout.check_name(member.name, member.isdir())
            is_pkg_info = layout.add(member.name)
            if strict:
                _check_tar_member(member, layout)
            if not is_pkg_info:
                continue
            if not member.isreg():
                raise InvalidDistribution("the sdist's PKG-INFO is not a regular file")
            if member.size > limit:
                raise _too_large("PKG-INFO", limit)
            # (a regular member always has a file)
            raw = tf.extractfile(member).read(limit + 1)  # type: ignore[union-attr]
            if len(raw) > limit:
                raise _too_large("PKG-INFO", limit)
        end = tf.offset
    layout.require_pkg_info()
    # Read what follows the end-of-archive marker so that the compressed
    # stream's own end (and its checksum) is reached.
    while reader.read(1 << 16):
        pass
    if strict:
        layout.check_names()
        layout.check_links()
        if reader.data_end > end:
            raise InvalidDistribution(
                "the sdist has data after its end-of-archive marker, or a damaged "
                "member header"
            )
        if reader.position - end < _TAR_END_MARKER:
            raise InvalidDistribution("the sdist is truncated: it has no end-of-archive marker")
    # (raw is set: require_pkg_info raised if no PKG-INFO was seen)
    return raw  # type: ignore[return-value]


def _check_tar_member(member: tarfile.TarInfo, layout: _SdistLayout) -> None:
    """
    Refuse a tarball member that an installer could not unpack safely: a
    device file or FIFO, or a link that leaves the sdist's top-level
    directory (L{_SdistLayout.check_links}).
    """
    if member.isreg() or member.isdir():
        return
    if (member.issym() or member.islnk()) and layout.path is not None:
        layout.add_link(member, member.issym())
        return
    raise InvalidDistribution(
        f"the sdist's member {short_text(member.name)} is not a file, a directory or a link"
    )
