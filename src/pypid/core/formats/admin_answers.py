"""
The admin API's answers as types: what a route sends as JSON and a
console page draws. Both sides name this one shape, so a change to an
answer shows in the other side's types (mypy), not first on a page.
"""

from __future__ import annotations

from typing import Any, TypedDict


class BinnedFile(TypedDict):
    filename: str
    project: str
    version: str
    size: int
    sha256: str
    deleted: str
    purged: str


class BinListing(TypedDict):
    """C{GET /api/recycle-bin}: an index's files in the recycle bin."""

    index: str
    keep_for: float
    files: list[BinnedFile]


class GroupsListing(TypedDict):
    """C{GET /api/groups}: the groups as configured, and those filled elsewhere."""

    groups: dict[str, list[str]]
    admins: list[str]
    admin_groups: list[str]
    outside_groups: list[str]


class IndexesListing(TypedDict):
    """C{GET /api/indexes}: each index, then each upstream cache."""

    indexes: list[dict[str, Any]]
    upstreams: list[dict[str, Any]]


class AdvisoryCheck(TypedDict):
    """C{GET /api/advisories}: the advisories in force, and what each index does."""

    database: dict[str, Any]
    dry_run: str | None
    indexes: list[dict[str, Any]]


class ProjectAdvisories(TypedDict):
    """C{GET /api/advisories/project/<p>}: a project's affected releases and waivers."""

    index: str
    project: str
    mode: str
    severity: str | None
    releases: list[dict[str, Any]]
    waivers: list[dict[str, Any]]


class AuditPage(TypedDict):
    """C{GET /api/audit}: entries, oldest first, and the cursors of the pages around."""

    entries: list[dict[str, Any]]
    next: str | None
    before: str | None


class AuditCheck(TypedDict):
    """C{GET /api/audit/verify}: what checking the log's chains found."""

    files: int
    entries: int
    intact: bool
    broken: list[str]
    notes: list[str]


class RetentionPlans(TypedDict):
    """C{GET /api/retention}: each hosted index's plan, its rules and its bin's time."""

    indexes: list[dict[str, Any]]


class RetentionApplied(TypedDict):
    """C{POST /api/retention/apply}: what was removed, and what was not, and why."""

    index: str
    bytes: int
    removed: list[dict[str, Any]]
    skipped: list[dict[str, Any]]


class ProjectUsage(TypedDict):
    """C{GET /api/usage?project=}: one project's downloads a day by release, oldest first."""

    index: str
    project: str
    days: int
    first_day: str
    releases: dict[str, list[int]]


#: C{POST /api/promote}: the release promoted, and its files promoted and skipped.
Promoted = TypedDict("Promoted", {"from": str, "to": str, "project": str, "version": str,
                                  "promoted": list[str], "skipped": list[str]})
