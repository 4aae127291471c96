"""
What an index lets through of its uploads that its checks would refuse:
the projects whose wheels may carry C{WHEEL} Tag lines that differ from
their filename's tags (C{allow_tag_mismatch}).

Why per project, not a switch: an installer chooses such a wheel by its
name's tags and installs it as C{WHEEL} describes it (uv reinstalls it at
every sync), so pypid refuses it by default; but the public index hosts
such wheels, and a company re-hosting public releases offline must be
able to take those it names, and only those.
"""

from __future__ import annotations

import fnmatch
import re

import attrs

from pypid.core.access.access_rules import RuleError, normalize_pattern


@attrs.frozen
class UploadRules:
    """C{tag_mismatch}: the projects (normalized names, globs) whose wheel tags may differ."""

    tag_mismatch: tuple[str, ...] = ()

    def allows_tag_mismatch(self, project: str) -> bool:
        """Whether a wheel of the normalized C{project} may have other tags than its name's."""
        return any(fnmatch.fnmatchcase(project, pattern) for pattern in self.tag_mismatch)


def parse_projects(value: str) -> tuple[str, ...]:
    """
    Project names and globs, separated by spaces, commas or lines, each
    normalized as a project name (C{*?[]} kept).

    @raise ValueError: naming an entry that is neither.
    """
    found = []
    for entry in re.split(r"[\s,]+", value):
        if not entry:
            continue
        try:
            found.append(normalize_pattern(entry))
        except RuleError as e:
            raise ValueError(str(e)) from None
    return tuple(found)


@attrs.define
class IndexUploadRules:
    """One hosted index's L{UploadRules} now, read at each file and replaced by a reload."""

    current: UploadRules = attrs.field(factory=UploadRules)
