"""
A hosted project's status (PEP 792, simple API 1.4), with an optional reason.

Why a status at all: an admin must be able to stop a project taking
uploads (C{archived}), or stop it being installed at all while a report of
malware is looked at (C{quarantined}: no page lists its files and no file
of it is served, but to admins), and installers (uv) warn about an
archived, deprecated or quarantined dependency from the pages' markers.

Kept beside the project in its index's storage, and in memory in a table
of the index's own (L{ProjectStatuses}): few projects have one, and it
outlives a reload of the records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
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
    A project's status other than L{ACTIVE} (for which L{None} stands), and
    why (a short single line, or L{None}).
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
        """Read what L{to_bytes} kept (L{None}: C{active}), else L{InvalidStatus}."""
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidStatus(f"not JSON: {e}")
        return parse_status(parsed)


def parse_status(data: Any) -> ProjectStatus | None:
    """
    The status a request's JSON object asks for (C{{"status": ...,
    "reason": ...}}): L{None} for C{active}; L{InvalidStatus} names a wrong field.
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
    return None if status == ACTIVE else ProjectStatus(status, reason)


@attrs.define
class ProjectStatuses:
    """
    Every project's status that is not active, by normalized name: apart
    from the index's projects because a status is not their content (a
    L{pypid.core.indexes.index.Index.load} keeps it). Each change (L{set})
    is told to C{changed(name)}, the index's, which drops the project's kept
    pages (they carry it) and moves its serial, as a yank does.
    """

    _changed: Callable[[str], None]
    _by_name: dict[str, ProjectStatus] = attrs.field(factory=dict)
    #: how many changes the table took, and each project's last: what
    #: changed while a shared storage's full check ran is newer than it read
    _serial: int = attrs.field(default=0, init=False)
    _set_at: dict[str, int] = attrs.field(factory=dict, init=False)

    def get(self, name: str) -> ProjectStatus | None:
        """
        The status of the project of this normalized name, or L{None}: active
        (one check when no project has one, as in most indexes).
        """
        return self._by_name.get(name) if self._by_name else None

    def quarantined(self, name: str) -> bool:
        """Whether the project of this normalized name is quarantined (its files not offered)."""
        status = self.get(name)
        return status is not None and status.quarantined

    def all(self) -> dict[str, ProjectStatus]:
        """Every status, by normalized name (a copy)."""
        return dict(self._by_name)

    def set(self, name: str, status: ProjectStatus | None) -> None:
        """Give the project of this normalized name a status (L{None}: active)."""
        if status is None:
            self._by_name.pop(name, None)
        else:
            self._by_name[name] = status
        self._serial += 1
        self._set_at[name] = self._serial
        self._changed(name)

    @property
    def serial(self) -> int:
        """How many changes the table has taken: a bookmark for L{changed_since}."""
        return self._serial

    def changed_since(self, serial: int) -> frozenset[str]:
        """The projects whose status was set after the bookmark C{serial} (L{serial})."""
        if serial >= self._serial:
            return frozenset()
        return frozenset(name for name, at in self._set_at.items() if at > serial)

    def take(self, statuses: Mapping[str, ProjectStatus]) -> None:
        """Take the statuses storage holds: L{set} only each that differs here."""
        for name in sorted(set(self._by_name) | set(statuses)):
            if self._by_name.get(name) != statuses.get(name):
                self.set(name, statuses.get(name))
