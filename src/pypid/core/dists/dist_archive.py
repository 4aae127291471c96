"""
Core metadata out of wheels and sdists, read safely from hostile archives
(L{extract}), at upload time and when a folder of existing files is read.

Every step is bounded so that a hostile upload costs a 400 response, never
a full inflate, a huge allocation or a hang: the metadata file has a size
limit, zip archives a limit on entries, tarballs a limit on members and on
the bytes decompressed while scanning them. Nothing is extracted to disk,
so member names such as C{../x} are harmless.

Uploads (C{strict=True}) are refused when installers could read them
differently from the index or from one another; a folder's files are
served as they are. For zips, the checks of L{pypid.core.dists.zipcheck},
every member's data read through (a filename, once taken, can never be
given other bytes: a damaged member is refused now, not found by every
installer later) and a C{WHEEL} whose tags are the filename's. For
tarballs, the sdist layout, no device files, and nothing but zeros after
the end-of-archive marker (tarfile stops quietly at a damaged header, so
data hidden after one would otherwise pass).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Literal

import attrs

from pypid.core.dists.dist_members import SdistLayout, UnsafeArchive
from pypid.core.dists.dist_tar import (
    BoundedReader,
    OneGzipMember,
    Readable,
    ScanLimitExceeded,
    tar_sdist_metadata,
)
from pypid.core.dists.dist_zip import (
    check_zip_entries,
    check_zip_entry_count,
    wheel_metadata,
    zip_sdist_metadata,
)
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
from pypid.core.dists.wheelfile import InvalidWheelFile, TagMismatch
from pypid.core.dists.zipcheck import check_zip, check_zip_data

if TYPE_CHECKING:
    import os
    from contextlib import AbstractContextManager

#: Most bytes decompressed while scanning a tarball for its PKG-INFO.
DEFAULT_MAX_SCAN_BYTES = 256 << 20

#: Most entries of a zip file, or members of a tarball, looked at.
DEFAULT_MAX_MEMBERS = 100_000

#: An uploaded zip may expand to this many times its own size, and to
#: L{DEFAULT_MAX_SCAN_BYTES} whatever its size: real wheels expand two to
#: five times, a zip bomb a thousand.
MAX_EXPANSION_RATIO = 20

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
    #: L{pypid.core.dists.model.FileRecord.variant}); L{None} for any other file
    variant: str | None = None

    @property
    def metadata_sha256(self) -> str | None:
        """L{pypid.core.dists.model.FileRecord.metadata_sha256}: L{None} unless served."""
        return self.metadata.sha256 if self.serve else None


def extract(source: str | bytes | os.PathLike[str] | IO[bytes], parsed: ParsedFilename,
            filename: str, *, max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
            max_scan_bytes: int = DEFAULT_MAX_SCAN_BYTES, max_members: int = DEFAULT_MAX_MEMBERS,
            strict: bool = False, wheel_tags: WheelTags = None) -> Extracted:
    """
    Check that a distribution file is what its name says and return its core
    metadata: a wheel's one C{.dist-info} directory, named for the filename's
    project and version, holding C{METADATA} and C{RECORD}; an sdist's single
    top-level directory with a C{PKG-INFO}; a Name and Version that match.

    @param source: the path of the file, or a seekable binary file object
        (read from its start, left open).
    @param parsed: what L{pypid.core.dists.names.parse_filename} made of C{filename}.
    @param filename: the file's name; its extension chooses the archive format.
    @param strict: apply the upload rules of the module docstring too.
    @param wheel_tags: what a wheel whose C{WHEEL} Tag lines differ from its
        filename's tags gets: C{"refuse"} (L{InvalidDistribution}),
        C{"note"} (taken, the reason in L{Extracted.tag_mismatch}), or
        L{None}: refused when C{strict}, not looked at otherwise.
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
        size = f.seek(0, 2)
        try:
            entries = check_zip(f, max_entries=max_members)
            check_zip_data(f, entries, max_expanded=max(
                max_scan_bytes, MAX_EXPANSION_RATIO * size))
        except UnsafeArchive as e:
            raise InvalidDistribution(str(e)) from None
    else:
        check_zip_entry_count(f, max_members)
    f.seek(0)
    with zipfile.ZipFile(f) as zf:
        check_zip_entries(zf, max_members)
        if parsed.packagetype == WHEEL:
            raw, variant = wheel_metadata(zf, parsed, max_metadata_size,
                                           filename if wheel_tags is not None else None,
                                           mismatch if wheel_tags == "note" else None,
                                           tags_only=not strict)
        else:
            raw = zip_sdist_metadata(zf, max_metadata_size,
                                      SdistLayout(parsed if strict else None))
    return raw, variant


def _extract(f: IO[bytes], parsed: ParsedFilename, filename: str, max_metadata_size: int,
             max_scan_bytes: int, max_members: int, strict: bool,
             wheel_tags: WheelTags = None) -> Extracted:
    """L{extract} on an open binary file positioned at its start."""
    if wheel_tags is None and strict:
        wheel_tags = "refuse"
    mismatch: list[str] = []
    opener: Callable[[IO[bytes]], AbstractContextManager[Readable]]
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
                    opener = OneGzipMember
            with opener(f) as stream:
                raw = tar_sdist_metadata(
                    BoundedReader(stream, max_scan_bytes), max_metadata_size,
                    max_members, SdistLayout(parsed if strict else None), strict,
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
    """Refuse metadata whose Name or Version is not the filename's (under which it is filed)."""
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
