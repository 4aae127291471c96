"""
The tar readers of L{pypid.core.dists.dist_archive.extract}: a tarball
sdist scanned as a stream from start to end for its PKG-INFO, every step
bounded (L{BoundedReader} on the bytes decompressed, L{BoundedTarInfo} on
extension headers, L{OneGzipMember} on what follows the gzip stream), its
members held to the sdist layout (L{pypid.core.dists.dist_members}) and,
for uploads, its end-of-archive marker checked.
"""

from __future__ import annotations

import tarfile
import zlib
from typing import TYPE_CHECKING, Literal, NoReturn, Protocol

from pypid.core.dists.dist_members import SdistLayout, too_large
from pypid.core.dists.metadata import InvalidDistribution, short_text

if TYPE_CHECKING:
    from typing import Self

# The end-of-archive marker of a tarball: two zero blocks (POSIX).
_TAR_END_MARKER = 1024

# Largest tar extension header (pax, GNU long name) accepted. tarfile reads
# these whole into memory before we see the member they describe, so without
# this a single header could make it allocate up to the scan limit; and
# Python before 3.11.10 parses pax headers in quadratic time (CVE-2024-6232:
# measured on 3.11.7, 7.5 s for 64 KiB, 22 s for 128 KiB; 8 KiB takes 0.1 s).
# Real ones hold a long path and a few times: well under 8 KiB.
_MAX_TAR_HEADER_SIZE = 8 << 10


class ScanLimitExceeded(Exception):
    """
    Raised from inside tarfile's reading when a scan limit is reached.

    Not a L{ValueError}, so no C{except ValueError} inside the standard
    library can swallow it on the way out.
    """


class Readable(Protocol):
    """A binary stream read from start to end."""

    def read(self, size: int = -1, /) -> bytes: ...


class BoundedReader:
    """
    A read-only file whose reads stop with L{ScanLimitExceeded} once more
    than a budget of bytes has come out of it: around a decompressor, each
    read asks it for at most one byte past the budget.
    """

    def __init__(self, stream: Readable, budget: int) -> None:
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
            raise ScanLimitExceeded(f"the archive expands to more than {self._budget} bytes")
        kept = len(data.rstrip(b"\0"))
        if kept:
            self.data_end = start + kept
        return data


class OneGzipMember:
    """
    The decompressed bytes of a file that must be exactly one gzip member:
    C{gzip.GzipFile} reads on through any members that follow, where other
    readers stop after the first, so two readers could see two archives.
    Reads return at most 1 MiB, so a bomb never allocates more.
    """

    def __init__(self, raw: Readable) -> None:
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


def tar_sdist_metadata(reader: BoundedReader, limit: int, max_members: int,
                        layout: SdistLayout, strict: bool = False) -> bytes:
    """
    Scan a decompressed tar stream whole (so that a truncated or corrupt
    file is refused rather than half-read) and return the bytes of its
    PKG-INFO after checking its layout; with C{strict}, member types and
    links too, and an end-of-archive marker followed by zeros only.
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
                raise InvalidDistribution(f"the sdist has more than {max_members} members")
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
                raise too_large("PKG-INFO", limit)
            # (a regular member always has a file)
            raw = tf.extractfile(member).read(limit + 1)  # type: ignore[union-attr]
            if len(raw) > limit:
                raise too_large("PKG-INFO", limit)
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


def _check_tar_member(member: tarfile.TarInfo, layout: SdistLayout) -> None:
    """
    Refuse a tarball member that an installer could not unpack safely: a
    device file or FIFO, or a link that leaves the sdist's top-level
    directory (L{SdistLayout.check_links}).
    """
    if member.isreg() or member.isdir():
        return
    if (member.issym() or member.islnk()) and layout.path is not None:
        layout.add_link(member, member.issym())
        return
    raise InvalidDistribution(
        f"the sdist's member {short_text(member.name)} is not a file, a directory or a link"
    )
