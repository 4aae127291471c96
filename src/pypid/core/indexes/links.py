"""
Where the pages and the legacy JSON link a file (L{file_url_for}), its
bytes by digest as the public index's file host names them
(L{package_url_for}), and its provenance (L{provenance_url_for}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from pypid.core.dists.model import FileRecord
from pypid.core.dists.provenance import integrity_path

#: C{provenance_url(file) -> str | None}: the absolute URL of a listed
#: file's provenance (PEP 740), or L{None}. (L{Any}: a hosted record or an
#: upstream file, each with C{project}, C{version}, C{filename} and C{has_provenance}.)
ProvenanceURL = Callable[[Any], "str | None"]


def no_provenance(listed: object) -> None:
    return None


def provenance_url_for(base_url: str | None) -> ProvenanceURL:
    """
    Return C{provenance_url(file)}: the link a page gives a file's provenance.

    PEP 740 wants it fully qualified, so without a base URL (C{[pypid]
    base_url}) pages link none; the Integrity API answers all the same.
    """
    if not base_url or not base_url.startswith(("https://", "http://")):
        return no_provenance

    def provenance_url(listed: Any) -> str | None:
        if not listed.has_provenance:
            return None
        return base_url + integrity_path(listed.project, listed.version, listed.filename)
    return provenance_url


def package_url_for(root: str, otherwise: Callable[[FileRecord], str],
                    ) -> Callable[[FileRecord], str]:
    """
    Return C{package_url(record)}: a file's link by the BLAKE2b-256 of its
    bytes, as the public index's file host names it (the legacy JSON lists
    it, and mirrors such as bandersnatch require it); C{otherwise(record)}
    for a record without that digest.
    """
    def package_url(record: FileRecord) -> str:
        # (an upstream's file, kept elsewhere, keeps its own link)
        digest = record.blake2_256 if isinstance(record, FileRecord) else None
        if digest is None:
            return otherwise(record)
        return (f"{root}packages/{digest[:2]}/{digest[2:4]}/{digest[4:]}/"
                f"{quote(record.filename)}")
    return package_url


def file_url_for(base_url: str | None) -> Callable[[FileRecord], str]:
    """
    Return C{file_url(record)}: the link a project page gives a file.

    Without a base URL the link is relative to C{/simple/<project>/}, so pages
    are right behind any proxy and never depend on the request's C{Host}.
    """
    if base_url:
        def file_url(record: FileRecord) -> str:
            return f"{base_url}files/{record.project}/{quote(record.filename)}"
    else:
        def file_url(record: FileRecord) -> str:
            return f"../../files/{record.project}/{quote(record.filename)}"
    return file_url
