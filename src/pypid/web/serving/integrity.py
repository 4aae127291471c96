"""
The Integrity API (PEP 740): C{GET /integrity/<project>/<version>/<filename>/provenance} (and
C{/NAME/integrity/...}) answers a file's provenance object, the attestations its publisher
made, as the public index does:

  - C{application/vnd.pypi.integrity.v1+json} (or C{application/json}, whichever C{Accept}
    prefers; no C{Accept} or C{*/*} gives the first), C{406} when C{Accept} takes neither,
    C{Vary: Accept};
  - C{404} when the file has no provenance, when the path's project or version is not the
    file's, or when the reader may not see the file (the same rules, quarantine and view
    filters as C{/files/}, by L{ProvenanceSource}).

The provenance of a hosted file was verified at its upload (L{pypid.auth.attestations}) and is
read from storage, checked against its record's digest; a cached upstream file's was fetched
and checked to name the file's sha256. Either way, as it is served, its statements are read
again and must name the sha256 of the file served (L{serves}). It carries its own digest as
its C{ETag} and may be cached for ten minutes, as the public index lets it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from packaging.version import InvalidVersion, Version
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.server import Request

from pypid.core.dists.model import FileRecord
from pypid.core.dists.provenance import ProvenanceInvalid, read_provenance
from pypid.core.formats.negotiate import INTEGRITY_TYPES, choose_integrity
from pypid.core.util.http_errors import NotAcceptable, NotFound
from pypid.storage.base.interface import IStorage
from pypid.web.server.respond import Answer, etag_matches

log = Logger()

#: How long a client may keep a provenance without asking again (the public index's).
CACHE_CONTROL = b"max-age=600"

#: The path's last segment.
_LEAF = b"provenance"


class ProvenanceSource(Protocol):
    """What answers an index's provenance paths: its files' side, which knows who reads what."""

    def provenance(self, request: Request, project: str, version: str, filename: str,
                   content_type: str) -> Answer:
        """Answer the provenance of C{filename}, as L{send_provenance} does, or raise 404."""


def integrity_path(request: Request) -> tuple[str, str, str, str]:
    """
    C{(project, version, filename, content type)} of an integrity path (C{postpath} after
    C{integrity}); L{NotAcceptable} when C{Accept} takes no type served, L{NotFound} for
    another path.
    """
    post: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
    if len(post) != 4 or post[3] != _LEAF or not all(post[:3]):
        raise NotFound("no such provenance: the path is "
                       "/integrity/<project>/<version>/<filename>/provenance")
    accept = request.requestHeaders.getRawHeaders(b"accept")
    content_type = choose_integrity(b", ".join(accept) if accept else None)
    if content_type is None:
        raise NotAcceptable("the Integrity API answers " + " or ".join(INTEGRITY_TYPES))
    try:
        project, version, filename = (part.decode("utf-8") for part in post[:3])
    except UnicodeDecodeError:
        raise NotFound("no such file")
    return project, version, filename, content_type


def same_version(record_version: str, asked: str) -> bool:
    """Whether the path's version C{asked} names the file's (any PEP 440 spelling)."""
    if asked == record_version:
        return True
    try:
        # (PEP 440 equality: 1.0 and 1.0.0 are one version, as the public index reads them)
        return Version(asked) == Version(record_version)
    except InvalidVersion:
        return False


def no_provenance(filename: str) -> NotFound:
    """The 404 of a file without provenance."""
    return NotFound(f"no provenance available for {filename}")


def send_provenance(request: Request, read: Deferred[bytes | None], filename: str,
                    digest: str | None, content_type: str, sha256: str) -> Deferred[Any]:
    """
    Answer with the provenance C{read} gives as C{content_type}, its sha256 (C{digest}, or
    computed) as its ETag; 404 when there is none, or it is not one of the file served.
    """
    def send(data: bytes | None) -> bytes:
        if data is None or not serves(data, filename, sha256):
            raise no_provenance(filename)
        headers = request.responseHeaders
        headers.setRawHeaders(b"content-type", [content_type.encode("ascii")])
        headers.setRawHeaders(b"vary", [b"Accept"])
        headers.setRawHeaders(b"cache-control", [CACHE_CONTROL])
        etag = b'"%s"' % (digest or hashlib.sha256(data).hexdigest()).encode("ascii")
        headers.setRawHeaders(b"etag", [etag])
        inm = request.requestHeaders.getRawHeaders(b"if-none-match")
        if inm and etag_matches(inm, etag):
            request.setResponseCode(304)
            return b""
        return data
    return read.addCallback(send)


def serves(data: bytes, filename: str, sha256: str) -> bool:
    """
    Whether the provenance C{data} may be served for the file C{filename} whose bytes served
    have the digest C{sha256}: every statement names that file and digest. Checked at every
    answer, whatever checked it before: a provenance kept under a file's name outlives a change
    of the file's bytes (an upstream that replaced it; a copy kept by an older server), and one
    describing other bytes must never be given for these. Measured: 66 us for a 6.7 KB one.
    """
    try:
        read_provenance(data, filename, sha256)
    except ProvenanceInvalid as e:
        log.error("Not serving the provenance kept for {filename} (sha256 {sha256}): {reason}",
                  filename=filename, sha256=sha256, reason=str(e))
        return False
    return True


def send_stored_provenance(request: Request, storage: IStorage, record: FileRecord,
                           version: str, content_type: str) -> Deferred[Any]:
    """The provenance kept beside a stored file; 404 for another C{version}, or none."""
    if not same_version(record.version, version) or not record.has_provenance:
        raise no_provenance(record.filename)
    return send_provenance(request, storage.read_provenance(record), record.filename,
                           record.provenance_sha256, content_type, record.sha256)


def answer_integrity(request: Request, files: ProvenanceSource) -> Answer:
    """Answer an integrity path (C{postpath} after C{integrity}) from C{files}."""
    project, version, filename, content_type = integrity_path(request)
    return files.provenance(request, project, version, filename, content_type)
