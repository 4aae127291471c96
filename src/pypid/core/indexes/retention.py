"""
Retention rules: which hosted releases a cleanup removes, and why; what is
done with the plan (the recycle bin, the audit log) is
L{pypid.state.cleanup}'s. A rule works on whole releases; C{keep_downloaded}
and C{protect} only keep, and a project's last release is never removed
(when every release would go, its newest stays).

Measured on the bench corpus (100,000 files in 20,000 projects, five
releases each, L{tests.bench.bench_retention}): a plan with every rule on (and
download counts for a third of the files) takes 0.5 s on one core of
this machine, best and worst of 5 within 10%; it grows with the files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase

import attrs

from pypid.core.dists.model import FileRecord
from pypid.core.dists.version_order import is_prerelease, version_key
from pypid.core.util.units import format_duration


@attrs.frozen
class RetentionRules:
    """
    One hosted index's rules; a value of 0 turns its rule off.

    @ivar keep_releases: how many of each project's newest releases (PEP 440
        order, pre-releases included) are kept.
    @ivar remove_prereleases_after: the age (s) of its newest file past
        which a pre-release or development release is removed.
    @ivar keep_downloaded: a release any file of which was downloaded within
        this time (s) is kept, whatever the rules above say.
    @ivar protect: normalized project names or globs never touched.
    """

    keep_releases: int = 0
    remove_prereleases_after: float = 0.0
    keep_downloaded: float = 0.0
    protect: tuple[str, ...] = ()

    @property
    def removes(self) -> bool:
        """Whether any rule removes anything (the others only keep)."""
        return bool(self.keep_releases or self.remove_prereleases_after)

    def protects(self, project: str) -> bool:
        """Whether the normalized C{project} is never touched."""
        return any(fnmatchcase(project, glob) for glob in self.protect)

    def to_json(self) -> dict[str, object]:
        return {"keep_releases": self.keep_releases,
                "remove_prereleases_after": self.remove_prereleases_after,
                "keep_downloaded": self.keep_downloaded, "protect": list(self.protect)}


@attrs.frozen
class Removal:
    """One release a plan removes: its files, and why."""

    project: str
    version: str
    files: tuple[FileRecord, ...]
    reason: str

    @property
    def size(self) -> int:
        """The bytes its files take."""
        return sum(record.size for record in self.files)


@attrs.frozen
class RetentionPlan:
    """
    What the rules remove from one index now.

    @ivar kept: how many releases a rule would have removed were kept,
        by why (C{downloaded}, C{protected}, C{last release}).
    """

    index: str
    removals: tuple[Removal, ...]
    kept: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def size(self) -> int:
        """The bytes it frees (once the recycle bin purges the files)."""
        return sum(removal.size for removal in self.removals)

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "bytes": self.size,
            "kept": dict(self.kept),
            "releases": [{"project": r.project, "version": r.version, "reason": r.reason,
                          "bytes": r.size,
                          "files": [{"filename": f.filename, "size": f.size,
                                     "sha256": f.sha256} for f in r.files]}
                         for r in self.removals],
        }


def make_plan(index: str, projects: Iterable[tuple[str, Iterable[FileRecord]]],
              rules: RetentionRules, now: float,
              last_downloaded: Callable[[str], float | None]) -> RetentionPlan:
    """
    The L{RetentionPlan} of C{rules} over C{projects} (C{(normalized name, live
    records)} each) at C{now}; C{last_downloaded(filename)}: when the file
    was last downloaded, or L{None} (never, as far as the counts go).
    """
    removals: list[Removal] = []
    kept = {"downloaded": 0, "protected": 0, "last release": 0}
    if not rules.removes:
        return RetentionPlan(index, (), kept)
    for project, records in projects:
        releases: dict[str, list[FileRecord]] = {}
        for record in records:
            releases.setdefault(record.version, []).append(record)
        if not releases:
            continue
        newest_first = sorted(releases, key=version_key, reverse=True)
        chosen: list[tuple[str, str]] = []
        for position, version in enumerate(newest_first):
            reason = _reason(rules, position, version, releases[version], now)
            if reason is not None:
                chosen.append((version, reason))
        if not chosen:
            continue
        if rules.protects(project):
            kept["protected"] += len(chosen)
            continue
        if rules.keep_downloaded:
            since = now - rules.keep_downloaded
            before = len(chosen)
            chosen = [(version, reason) for version, reason in chosen
                      if not _downloaded_since(releases[version], since, last_downloaded)]
            kept["downloaded"] += before - len(chosen)
        if len(chosen) == len(newest_first):
            # (never the last release: the newest stays)
            chosen = chosen[1:]
            kept["last release"] += 1
        for version, reason in chosen:
            files = tuple(sorted(releases[version], key=lambda r: r.filename))
            removals.append(Removal(project, version, files, reason))
    return RetentionPlan(index, tuple(removals), kept)


def _reason(rules: RetentionRules, position: int, version: str, files: list[FileRecord],
            now: float) -> str | None:
    """Why a rule removes the release C{version} (the C{position}th newest), or L{None}."""
    if rules.keep_releases and position >= rules.keep_releases:
        return f"not among the newest {rules.keep_releases} releases"
    if rules.remove_prereleases_after and is_prerelease(version):
        newest = max(record.upload_time for record in files)
        if now - newest > rules.remove_prereleases_after:
            return (f"a pre-release older than "
                    f"{format_duration(rules.remove_prereleases_after)}")
    return None


def _downloaded_since(files: list[FileRecord], since: float,
                      last_downloaded: Callable[[str], float | None]) -> bool:
    return any((last := last_downloaded(record.filename)) is not None and last >= since
               for record in files)
