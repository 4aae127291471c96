"""
A hosted project's status (PEP 792, simple API 1.4): C{active} (the
default), C{archived}, C{quarantined} or C{deprecated}, with an optional
reason.

Why a status at all: an admin must be able to stop a project taking
uploads (C{archived}), or stop it being installed at all while a report of
malware is looked at (C{quarantined}: no page lists its files and no file
of it is served, but to admins), and installers (uv) warn about an
archived, deprecated or quarantined dependency from the pages' markers.

Kept beside the project in its index's storage (one small object a project
that has a status, none for an active one), read at a start (and by the
other servers on a shared bucket at their next poll after a change), carried
in memory by the L{pypid.core.indexes.index.Index}. Pure: parsing and bytes only.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

ACTIVE, ARCHIVED, QUARANTINED, DEPRECATED = "active", "archived", "quarantined", "deprecated"

#: Every status PEP 792 defines, the default first.
STATUSES = (ACTIVE, ARCHIVED, QUARANTINED, DEPRECATED)

#: The statuses that refuse uploads.
CLOSED = frozenset([ARCHIVED, QUARANTINED])

#: The most characters of a reason: it goes in every page of the project,
#: and the audit entry's detail (300 bytes) keeps the status with it.
MAX_REASON = 200


class InvalidStatus(ValueError):
    """A status or a reason that cannot be used; the message names the field."""


@attrs.frozen
class ProjectStatus:
    """
    A project's status other than the default, and why.

    @ivar status: one of L{STATUSES}, not L{ACTIVE} (an active project has
        no L{ProjectStatus}: L{None} stands for it).
    @ivar reason: a short single line, or L{None}.
    """

    status: str
    reason: str | None = None

    @property
    def quarantined(self) -> bool:
        """Whether no file of the project may be offered (but to admins)."""
        return self.status == QUARANTINED

    @property
    def closed(self) -> bool:
        """Whether the project refuses uploads."""
        return self.status in CLOSED

    def to_bytes(self) -> bytes:
        """The bytes storage keeps (L{from_bytes} reads them back)."""
        data: dict[str, str] = {"status": self.status}
        if self.reason is not None:
            data["reason"] = self.reason
        return json.dumps(data, sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> ProjectStatus | None:
        """
        Read what L{to_bytes} kept; L{None} for C{active}.

        @raise InvalidStatus: for bytes that are not such a status.
        """
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidStatus(f"not JSON: {e}")
        return parse_status(parsed)


def parse_status(data: Any) -> ProjectStatus | None:
    """
    The status a request's JSON object asks for (C{{"status": ...,
    "reason": ...}}): L{None} for C{active}.

    @raise InvalidStatus: naming the field that is wrong.
    """
    if not isinstance(data, dict):
        raise InvalidStatus("the body must be a JSON object with a status field")
    status = data.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        raise InvalidStatus(f"status: one of {', '.join(STATUSES)} is required")
    reason = data.get("reason")
    if reason is not None:
        if not isinstance(reason, str):
            raise InvalidStatus("reason: a string is required")
        if len(reason) > MAX_REASON:
            raise InvalidStatus(f"reason: at most {MAX_REASON} characters")
        if not reason.isprintable():
            raise InvalidStatus("reason: a single line of printable text is required")
        reason = reason.strip() or None
    unknown = set(data) - {"status", "reason"}
    if unknown:
        raise InvalidStatus(f"{sorted(unknown)[0]}: unknown field")
    if status == ACTIVE:
        return None
    return ProjectStatus(status, reason)
