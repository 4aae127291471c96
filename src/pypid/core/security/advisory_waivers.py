"""
The advisory waivers admins keep through the API, beside the
configuration's (C{advisory_waive}): an index lets a project's releases
through one advisory, or one release through every advisory.

Stored, not configured: a waiver is decided while the server runs, and
every server on a shared bucket must act on it at once. Per project: an
advisory judged not to matter is judged so for one project's use of it;
an identifier waived everywhere stays a configuration key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from pypid.core.dists.names import is_valid_name, normalize
from pypid.core.dists.version_order import release_key
from pypid.core.security.advisories import IndexWaivers

#: The most waivers the document holds (every index's): it is read whole at every change.
MAX_WAIVERS = 1000

#: The most characters of a reason (it goes in the audit entry's detail).
MAX_REASON = 200

#: An advisory identifier (C{GHSA-...}, C{PYSEC-...}, C{CVE-...}), bounded.
_ADVISORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}\Z")

_MAX_VERSION = 100

_MAX_PROJECT = 200

#: The most bytes of the document: every storage reads it back whole (a
#: bucket's small objects are read up to 1 MiB).
MAX_DOCUMENT = 512 << 10


class InvalidWaiver(ValueError):
    """A waiver (or a stored document of them) that cannot be used; the message names the field."""


class TooManyWaivers(InvalidWaiver):
    """The document holds L{MAX_WAIVERS} already."""


@attrs.frozen
class Waiver:
    """
    One index lets one project's releases through one advisory, or one
    release through every advisory.

    @ivar advisory: the advisory's identifier, upper case (any of its
        aliases waives it), or L{None} for a release's waiver.
    @ivar version: the release (as given), or L{None} for an advisory's waiver.
    @ivar reason: why, a single line, or L{None}.
    @ivar at: when, in seconds since the epoch.
    """

    index: str
    project: str
    advisory: str | None
    version: str | None
    reason: str | None = None
    by: str = ""
    at: float = 0.0

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What one waiver is told apart by: its index, project and what it waives."""
        return (self.index, self.project, self.advisory or "",
                "" if self.version is None else release_key(self.version))

    def to_json(self) -> dict[str, Any]:
        """The waiver as the API lists it and the document keeps it."""
        return {"index": self.index, "project": self.project, "advisory": self.advisory,
                "version": self.version, "reason": self.reason, "by": self.by, "at": self.at}


@attrs.frozen
class Waivers:
    """Every index's stored waivers, oldest first."""

    entries: tuple[Waiver, ...] = ()

    def __len__(self) -> int:
        return len(self.entries)

    def of_index(self, index: str) -> IndexWaivers:
        """What index C{index}'s waivers let through."""
        releases, advisories = set(), set()
        for waiver in self.entries:
            if waiver.index != index:
                continue
            if waiver.version is not None:
                releases.add((waiver.project, release_key(waiver.version)))
            elif waiver.advisory is not None:
                advisories.add((waiver.project, waiver.advisory))
        return IndexWaivers(frozenset(releases), frozenset(advisories))

    def find(self, index: str | None = None, project: str | None = None) -> list[Waiver]:
        """The waivers of an index and of a project (L{None}: any)."""
        return [w for w in self.entries
                if (index is None or w.index == index)
                and (project is None or w.project == project)]

    def adding(self, waiver: Waiver) -> Waivers:
        """
        These and C{waiver}, which replaces one of the same L{Waiver.key}.

        @raise TooManyWaivers: at L{MAX_WAIVERS} without one to replace.
        """
        kept = tuple(w for w in self.entries if w.key != waiver.key)
        if len(kept) >= MAX_WAIVERS:
            raise TooManyWaivers(f"at most {MAX_WAIVERS} waivers are kept; remove one first")
        added = Waivers(kept + (waiver,))
        if len(added.to_bytes()) > MAX_DOCUMENT:
            raise TooManyWaivers(f"the waivers kept are at their limit of {MAX_DOCUMENT >> 10} "
                                 "KiB; remove some first")
        return added

    def removing(self, key: tuple[str, str, str, str]) -> tuple[Waivers, Waiver | None]:
        """These without the waiver of C{key}, and that waiver (L{None}: there was none)."""
        for waiver in self.entries:
            if waiver.key == key:
                return Waivers(tuple(w for w in self.entries if w is not waiver)), waiver
        return self, None

    def to_bytes(self) -> bytes:
        """The document storage keeps (L{from_bytes} reads it back)."""
        return json.dumps({"waivers": [w.to_json() for w in self.entries]},
                          sort_keys=True, ensure_ascii=False, allow_nan=False).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Waivers:
        """Read what L{to_bytes} kept; L{InvalidWaiver} for anything else."""
        if len(data) > 2 * MAX_DOCUMENT:
            raise InvalidWaiver(f"larger than {2 * MAX_DOCUMENT >> 10} KiB")
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise InvalidWaiver(f"not JSON: {e}")
        if not isinstance(parsed, dict) or not isinstance(parsed.get("waivers"), list):
            raise InvalidWaiver("waivers: a list is required")
        if len(parsed["waivers"]) > MAX_WAIVERS:
            raise InvalidWaiver(f"waivers: at most {MAX_WAIVERS}")
        entries: dict[tuple[str, str, str, str], Waiver] = {}
        for item in parsed["waivers"]:
            if not isinstance(item, dict):
                raise InvalidWaiver("waivers: each must be an object")
            waiver = _stored(item)
            entries[waiver.key] = waiver
        return cls(tuple(entries.values()))


def _stored(item: Mapping[str, Any]) -> Waiver:
    """One waiver of a stored document."""
    fields = {k: item.get(k) for k in ("index", "project", "advisory", "version", "reason")}
    if not all(v is None or isinstance(v, str) for v in fields.values()):
        raise InvalidWaiver("waivers: each field must be text")
    asked = parse_waiver({k: v for k, v in fields.items() if v is not None})
    by, at = item.get("by", ""), item.get("at", 0.0)
    if not isinstance(by, str) or not isinstance(at, (int, float)) or isinstance(at, bool):
        raise InvalidWaiver("waivers: by must be text and at a number")
    try:
        when = float(at)
    except OverflowError:
        when = math.inf
    if not math.isfinite(when) or len(by) > 200:
        raise InvalidWaiver("waivers: at must be a time, by a name")
    return attrs.evolve(asked, by=by, at=when)


def parse_waiver(fields: Mapping[str, str], indexes: Iterable[str] | None = None) -> Waiver:
    """
    The waiver a request's fields ask for: C{index}, C{project}, exactly
    one of C{advisory} and C{version}, and an optional C{reason}.

    @param indexes: the names an index may have (L{None}: any name).
    @raise InvalidWaiver: naming the field that is wrong.
    """
    unknown = set(fields) - {"index", "project", "advisory", "version", "reason"}
    if unknown:
        raise InvalidWaiver(f"{sorted(unknown)[0]}: unknown field")
    index = (fields.get("index") or "").strip()
    if not index:
        raise InvalidWaiver("index: required")
    if len(index) > _MAX_PROJECT or not index.isprintable():
        raise InvalidWaiver("index: an index's name is required")
    if indexes is not None and index not in indexes:
        raise InvalidWaiver(f"index: no index {index!r}")
    project = (fields.get("project") or "").strip()
    if len(project) > _MAX_PROJECT or not is_valid_name(project):
        raise InvalidWaiver("project: a valid project name is required")
    advisory = (fields.get("advisory") or "").strip() or None
    version = (fields.get("version") or "").strip() or None
    if (advisory is None) == (version is None):
        raise InvalidWaiver("advisory or version: exactly one is required")
    if advisory is not None and not _ADVISORY.match(advisory):
        raise InvalidWaiver("advisory: an advisory identifier is required")
    if version is not None and (len(version) > _MAX_VERSION or not version.isprintable()
                                or any(c.isspace() for c in version)):
        raise InvalidWaiver(f"version: a version of at most {_MAX_VERSION} characters is required")
    reason = fields.get("reason")
    if reason is not None:
        if len(reason) > MAX_REASON:
            raise InvalidWaiver(f"reason: at most {MAX_REASON} characters")
        if not reason.isprintable():
            raise InvalidWaiver("reason: a single line of printable text is required")
        reason = reason.strip() or None
    return Waiver(index, normalize(project), advisory.upper() if advisory else None,
                  version, reason)
