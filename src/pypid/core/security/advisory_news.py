"""
Which advisories newly concern a release an index holds or caches
(L{matches_of}), told apart from those already told (L{Told}), so that each
(index, project, release, advisory) is news once: when the database first
names it, or when the release first comes after the advisory did. A match
is news whatever the index does about advisories: the receivers of the
C{advisory} webhook event decide what it means to them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

import attrs

from pypid.core.security.advisories import Advisory, AdvisoryDB

#: C{(index, project, version, advisory id)}: one match.
Match = tuple[str, str, str, str]


def matches_of(db: AdvisoryDB, releases: Mapping[str, Callable[[str], Iterable[str]]],
               projects: Iterable[str] | None = None) -> dict[Match, Advisory]:
    """
    Every match of C{db} among the releases each index knows (C{releases}:
    index -> C{releases(project) -> versions}), of C{projects} (L{None}: all).
    """
    found: dict[Match, Advisory] = {}
    named = db.projects() if projects is None else frozenset(projects) & db.projects()
    for index, known in releases.items():
        for project in sorted(named):
            for version in sorted(set(known(project))):
                for advisory in db.affecting(project, version):
                    found[index, project, version, advisory.id] = advisory
    return found


@attrs.define
class Told:
    """
    The matches told so far, by index, project and version (kept in the
    store, so a restart, or another server on the bucket, does not tell
    them again).
    """

    matches: dict[str, dict[str, dict[str, list[str]]]] = attrs.field(factory=dict)

    def __contains__(self, match: Match) -> bool:
        index, project, version, id = match
        return id in self.matches.get(index, {}).get(project, {}).get(version, ())

    def add(self, match: Match) -> None:
        """Remember C{match} as told."""
        index, project, version, id = match
        ids = self.matches.setdefault(index, {}).setdefault(project, {}).setdefault(version, [])
        if id not in ids:
            ids.append(id)

    def news(self, found: Mapping[Match, Advisory]) -> list[tuple[Match, Advisory]]:
        """The matches of C{found} not told yet, in order; each now remembered as told."""
        new = [(match, advisory) for match, advisory in sorted(found.items())
               if match not in self]
        for match, _ in new:
            self.add(match)
        return new

    def to_bytes(self) -> bytes:
        """As the store keeps it."""
        return json.dumps(self.matches, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Told:
        """As the store kept it; L{ValueError} when it is not what L{to_bytes} writes."""
        value = json.loads(data)
        if not isinstance(value, dict) or not all(
                isinstance(projects, dict) and all(
                    isinstance(versions, dict) and all(
                        isinstance(ids, list) and all(isinstance(i, str) for i in ids)
                        for ids in versions.values())
                    for versions in projects.values())
                for projects in value.values()):
            raise ValueError("not a record of the advisories told")
        return cls(value)


def described(advisory: Advisory) -> str:
    """An entry's detail of C{advisory}: its severity, its identifiers and its summary."""
    severity = advisory.severity or "unknown severity"
    names = ", ".join(advisory.ids)
    return f"{severity}: {names}" + (f": {advisory.summary}" if advisory.summary else "")
