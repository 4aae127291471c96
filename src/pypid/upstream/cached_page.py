"""
What the upstream page cache knows of one project (L{CachedPage}), and its
JSON form, which the snapshot keeps and reads back from disk after a
restart, checked on its own (a variant wheel's data as a record's is).
"""

from __future__ import annotations

from typing import Any

import attrs

from pypid.core.dists.model import check_variant
from pypid.core.dists.wheel_variants import split_label
from pypid.upstream.page_model import UpstreamFile, UpstreamPage
from pypid.upstream.parser import upstream_status


@attrs.frozen
class CachedPage:
    """
    What is known of one project upstream.

    @ivar page: L{None} when the upstream said it has no such project.
    """

    page: UpstreamPage | None
    fetched_at: float

    def fresh(self, now: float, ttl: float) -> bool:
        """Whether the entry is younger than C{ttl}."""
        return 0 <= now - self.fetched_at < ttl


def entry_to_json(entry: CachedPage) -> dict[str, Any]:
    """One L{CachedPage} as JSON-ready data."""
    page = entry.page
    if page is None:
        return {"fetched_at": entry.fetched_at, "page": None}
    data: dict[str, Any] = {
        "project": page.project, "name": page.name, "last_serial": page.last_serial,
        "files": [_file_json(f) for f in page.files],
        "status": None if page.status is None else attrs.asdict(page.status)}
    # (each left out without any: a saved page is what it always was)
    for key in ("variants", "variant_wheels"):
        if getattr(page, key):
            data[key] = [_file_json(f) for f in getattr(page, key)]
    for key in ("variants_failed", "variants_unusable"):
        if getattr(page, key):
            data[key] = list(getattr(page, key))
    return {"fetched_at": entry.fetched_at, "page": data}


def _file_json(f: UpstreamFile) -> dict[str, Any]:
    """A file of a page, JSON-ready: C{variant} left out but for a variant wheel's."""
    data = attrs.asdict(f)
    if f.variant is None:
        del data["variant"]
    return data


def _file_of(data: Any) -> UpstreamFile:
    """
    The L{UpstreamFile} that L{_file_json} wrote as one of a page's
    C{files}; a variant wheel's data present and checked as a record's is
    (L{check_variant}: the page's index-level files are made of it).

    @raise ValueError: data a file cannot have.
    """
    f = UpstreamFile(**data)
    if f.variant is not None:
        check_variant(f.filename, f.variant)
    elif f.filename.count("-") >= 5 and split_label(f.filename)[1] is not None:
        # (a page lists a variant wheel only with its data)
        raise ValueError(f"{f.filename}: a variant wheel without its data")
    return f


def entry_from_json(data: Any) -> CachedPage:
    """
    The L{CachedPage} that L{entry_to_json} wrote (parsed JSON, not checked
    yet). A page saved before statuses were kept has none until its refresh.
    """
    value = data["page"]
    page = None
    if value is not None:
        status = value.get("status")
        page = UpstreamPage(
            project=value["project"], name=value["name"], last_serial=value["last_serial"],
            files=tuple(_file_of(f) for f in value["files"]),
            variants=tuple(UpstreamFile(**f) for f in value.get("variants") or ()),
            variant_wheels=tuple(UpstreamFile(**f) for f in value.get("variant_wheels") or ()),
            variants_failed=tuple(str(sha256) for sha256 in value.get("variants_failed") or ()),
            variants_unusable=tuple(str(pair) for pair in value.get("variants_unusable") or ()),
            status=(upstream_status(status.get("status"), status.get("reason"))
                    if isinstance(status, dict) else None))
    return CachedPage(page, float(data["fetched_at"]))
