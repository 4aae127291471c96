"""
Turn a distribution file on disk into its L{FileRecord} and core metadata:
an upload (whose digests were computed while it streamed in) or a file of a
folder being imported. Synchronous and CPU/disk bound: callers run it in a
worker thread.

A bare folder is described file by file in the background, so this is the
cost of a start on one (C{docs/performance.rst}, "Describing a file"): a
file of at most L{IN_MEMORY_LIMIT} (most wheels and sdists) is read whole
in one read and every check and digest works from those bytes, five system
calls a file; a larger one is opened once, described, then hashed.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import IO, Union

import attrs

from pypid.core.dists.details import describe
from pypid.core.dists.dist_archive import Extracted, WheelTags, extract
from pypid.core.dists.model import SUMMARY_BYTES, FileRecord, cut_text
from pypid.core.dists.names import parse_filename
from pypid.core.dists.readme import Renderer

#: C{(size, sha256, blake2_256, md5)}, the digests in hex (the last two
#: L{None} when a record kept from before pypid wrote them lacks them)
Digests = tuple[int, str, str | None, str | None]
#: a file on the local filesystem, or a seekable binary file object
Source = Union[str, bytes, "os.PathLike[str]", IO[bytes]]

_CHUNK = 1 << 20

#: Files up to this size are read whole, in one read, and described from
#: memory (L{inspect}); larger ones are streamed. (1 MiB: the bytes are held
#: only while one file is described, by each worker thread.)
IN_MEMORY_LIMIT = 1 << 20

# How much is asked for when checking that a file read whole has ended.
_EOF_PROBE = 1 << 16


def file_digests(path: str | os.PathLike[str]) -> Digests:
    """Return C{(size, sha256, blake2_256, md5)} hex digests of a file."""
    with open(path, "rb") as f:
        return _stream_digests(f)


def _stream_digests(f: IO[bytes]) -> Digests:
    """L{file_digests} of an open binary file, from where it is to its end."""
    sha256 = hashlib.sha256()
    blake2 = hashlib.blake2b(digest_size=32)
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    while chunk := f.read(_CHUNK):
        size += len(chunk)
        sha256.update(chunk)
        blake2.update(chunk)
        md5.update(chunk)
    return size, sha256.hexdigest(), blake2.hexdigest(), md5.hexdigest()


def data_digests(data: bytes) -> Digests:
    """L{file_digests} of bytes in memory."""
    return (len(data), hashlib.sha256(data).hexdigest(),
            hashlib.blake2b(data, digest_size=32).hexdigest(),
            hashlib.md5(data, usedforsecurity=False).hexdigest())


def _read_small(fd: int, limit: int) -> bytes | None:
    """
    Read an open file whole if it holds at most C{limit} bytes, else return
    L{None} (its offset then anywhere). One C{fstat} and, for a file that
    does not change meanwhile, two reads: the whole file, then the empty
    read that proves its end.
    """
    size = os.fstat(fd).st_size
    if size > limit:
        return None
    data = os.read(fd, size + 1)
    while len(data) <= limit:
        more = os.read(fd, min(limit + 1 - len(data), _EOF_PROBE))
        if not more:
            return data
        data += more
    return None


@attrs.frozen
class Inspected:
    """
    What L{inspect} learnt about a file: its L{FileRecord}, its core metadata
    bytes when they are served (PEP 658), and its details sidecar when asked.
    """

    record: FileRecord
    metadata: bytes | None
    details: bytes | None = None
    #: why its C{WHEEL}'s tags differ from its filename's, when the wheel
    #: was taken all the same (C{wheel_tags="note"}); else L{None}
    tag_mismatch: str | None = None


def inspect(path: Source, filename: str, key: str, upload_time: float,
            digests: Digests | None = None, legacy: bool = False,
            details: Renderer | None = None, wheel_tags: WheelTags = None) -> Inspected:
    """
    Validate a distribution file and describe it.

    @param path: a path, or a seekable binary file object (read from its
        start, and hashed whole when no C{digests} are given).
    @param filename: the name it is (or will be) served under.
    @param key: the storage path recorded in the record.
    @param digests: C{(size, sha256, blake2_256, md5)} when already known.
    @param legacy: a folder's file: old filename forms, and not the upload
        rules (L{pypid.core.dists.dist_archive.extract}'s C{strict}).
    @param details: render the file's details for the pages for people
        with this L{pypid.core.dists.readme.Renderer} too (slower).
    @param wheel_tags: see L{pypid.core.dists.dist_archive.extract}.
    @raise pypid.core.dists.names.InvalidName: for a filename that is not a distribution.
    @raise pypid.core.dists.metadata.InvalidDistribution: for a broken archive.
    """
    parsed = parse_filename(filename, legacy=legacy)

    def described(f: IO[bytes], data: bytes | None = None) -> tuple[Extracted, Digests]:
        extracted = extract(f, parsed, filename, strict=not legacy, wheel_tags=wheel_tags)
        if digests is not None:
            return extracted, digests
        if data is not None:
            return extracted, data_digests(data)
        f.seek(0)
        return extracted, _stream_digests(f)

    if isinstance(path, (str, bytes)) or hasattr(path, "__fspath__"):
        fd = os.open(path, os.O_RDONLY)
        try:
            data = _read_small(fd, IN_MEMORY_LIMIT)
            if data is not None:
                extracted, digests = described(io.BytesIO(data), data)
            else:
                with open(fd, "rb", closefd=False) as f:
                    extracted, digests = described(f)
        finally:
            os.close(fd)
    else:
        extracted, digests = described(path)
    size, sha256, blake2, md5 = digests
    meta = extracted.metadata
    served = meta.raw if extracted.serve else None
    record = FileRecord(
        filename=filename, project=parsed.project, name=meta.name, version=parsed.version,
        packagetype=parsed.packagetype, path=key, size=size, sha256=sha256, blake2_256=blake2,
        md5=md5, upload_time=upload_time, requires_python=meta.requires_python,
        metadata_sha256=extracted.metadata_sha256,
        summary=cut_text(meta.summary, SUMMARY_BYTES), variant=extracted.variant,
    )
    return Inspected(record, served,
                     describe(meta, details).to_bytes() if details is not None else None,
                     extracted.tag_mismatch)
