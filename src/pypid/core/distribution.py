"""
Turn a distribution file on disk into its L{FileRecord} and core metadata.

Used for files that arrive without a record: an upload (whose digests were
computed while it streamed in) and a package folder being imported (whose
digests are computed here). Synchronous and CPU/disk bound: callers run it in
a worker thread.
"""

import hashlib

import attrs

from pypid.core.details import describe
from pypid.core.metadata import extract
from pypid.core.model import SUMMARY_BYTES, FileRecord, cut_text
from pypid.core.names import parse_filename

_CHUNK = 1 << 20


def file_digests(path):
    """Return C{(size, sha256, blake2_256, md5)} hex digests of a file."""
    sha256 = hashlib.sha256()
    blake2 = hashlib.blake2b(digest_size=32)
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            size += len(chunk)
            sha256.update(chunk)
            blake2.update(chunk)
            md5.update(chunk)
    return size, sha256.hexdigest(), blake2.hexdigest(), md5.hexdigest()


@attrs.frozen
class Inspected:
    """
    What L{inspect} learnt about a file.

    @ivar record: its L{FileRecord}.
    @ivar metadata: its core metadata bytes when they are served (PEP 658),
        else L{None}.
    @ivar details: its L{pypid.core.details.Details} as sidecar bytes, when
        asked for.
    """

    record: FileRecord
    metadata: bytes | None
    details: bytes | None = None


def inspect(path, filename, key, upload_time, digests=None, legacy=False, details=False):
    """
    Validate a distribution file and describe it.

    @param path: where the file is on the local filesystem.
    @param filename: the name it is (or will be) served under.
    @param key: the storage path recorded in the record.
    @param upload_time: POSIX time to record as its upload time.
    @param digests: C{(size, sha256, blake2_256, md5)} when already known.
    @param legacy: accept old filename forms found in existing folders, and
        apply only the checks that make a file safe to serve, not the
        stricter upload rules (L{pypid.core.metadata.extract}'s C{strict}).
    @param details: also render the file's details for the pages for people
        (L{pypid.core.details.describe}; slower, a README is rendered).
    @rtype: L{Inspected}
    @raise pypid.core.names.InvalidName: for a filename that is not a distribution.
    @raise pypid.core.metadata.InvalidDistribution: for a broken archive.
    """
    parsed = parse_filename(filename, legacy=legacy)
    extracted = extract(path, parsed, filename, strict=not legacy)
    size, sha256, blake2, md5 = digests if digests else file_digests(path)
    meta = extracted.metadata
    served = meta.raw if extracted.serve else None
    record = FileRecord(
        filename=filename,
        project=parsed.project,
        name=meta.name,
        version=parsed.version,
        packagetype=parsed.packagetype,
        path=key,
        size=size,
        sha256=sha256,
        blake2_256=blake2,
        md5=md5,
        upload_time=upload_time,
        requires_python=meta.requires_python,
        metadata_sha256=hashlib.sha256(served).hexdigest() if served is not None else None,
        summary=cut_text(meta.summary, SUMMARY_BYTES),
    )
    return Inspected(record, served, describe(meta).to_bytes() if details else None)
