"""
The log of what the indexes decide about advisories: when the advisories or an
index's rules change, each release whose decision changed (hidden, denied, or
allowed again) is logged once.

An administrator must be able to tell from the log why a release vanished or
came back, without a line per request, and a refresh that changes nothing must
say nothing: the decisions last logged are remembered (only releases hidden or
denied). Past L{MAX_LINES} lines, one summary line counts the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import attrs
from twisted.logger import Logger

from pypid.core.dists.version_order import version_key
from pypid.core.security.advisories import AdvisoryPolicy

log = Logger()

#: The most lines one change logs before its summary line.
MAX_LINES = 100

#: A decision as logged: C{(hidden or denied, the advisories' identifiers)}.
Decision = tuple[str, tuple[str, ...]]

#: C{(index, its policy, releases(project) -> its versions the index knows)}.
Reviewed = tuple[str, AdvisoryPolicy, Callable[[str], Iterable[str]]]

_WORDS = {"hide": "hidden", "deny": "denied"}


def decisions_of(policy: AdvisoryPolicy, project: str,
                 versions: Iterable[str]) -> dict[str, Decision]:
    """The releases of C{versions} the policy hides or denies, by version."""
    found: dict[str, Decision] = {}
    if not policy.affects(project):
        return found
    for version in versions:
        verdict = policy.verdict(project, version)
        if verdict is not None and verdict.hides:
            found[version] = (_WORDS[verdict.action], verdict.ids)
    return found


def changes(before: dict[str, Decision],
            after: dict[str, Decision]) -> list[tuple[str, str, tuple[str, ...]]]:
    """
    C{(version, now, ids)} of each release whose decision moved, oldest first:
    C{now} C{hidden}, C{denied} or C{allowed} (with the identifiers it was
    hidden or denied by).
    """
    return [(version, "allowed", before[version][1]) if version not in after
            else (version, *after[version])
            for version in sorted(before.keys() | after.keys(), key=version_key)
            if before.get(version) != after.get(version)]


@attrs.define
class DecisionLog:
    """What each index hid and denied when last reviewed, by index, project and version."""

    max_lines: int = MAX_LINES
    _last: dict[str, dict[str, dict[str, Decision]]] = attrs.field(factory=dict)

    def review(self, indexes: Sequence[Reviewed], projects: Iterable[str]) -> int:
        """
        Work out again the decisions of C{indexes} on the releases of
        C{projects} (those the advisories named, before or after) and log each
        that changed, at most L{max_lines} lines then a summary line. How many
        changed.
        """
        lines = 0
        projects = list(projects)
        for name, policy, releases in indexes:
            last = self._last.setdefault(name, {})
            for project in sorted(set(projects) | set(last)):
                before = last.get(project, {})
                after = decisions_of(policy, project, releases(project)) \
                    if policy.affects(project) else {}
                if after:
                    last[project] = after
                else:
                    last.pop(project, None)
                for version, now, ids in changes(before, after):
                    lines += 1
                    if lines <= self.max_lines:
                        log.info("{index}: {project} {version} is now {now} ({ids})",
                                 index=name, project=project, version=version, now=now,
                                 ids=", ".join(ids))
        if lines > self.max_lines:
            log.info("Advisories: {more} more releases changed decision (not listed)",
                     more=lines - self.max_lines)
        return lines
