"""
What an index lets through of its uploads that its checks would refuse:
the projects whose wheels may carry C{WHEEL} Tag lines that
differ from their filename's tags (the key C{allow_tag_mismatch}).

Why an exception per project, and not a switch: such a wheel is chosen
by an installer for the tags in its name and installed as C{WHEEL}
describes it (uv reinstalls it at every sync), so pypid refuses it by
default; but the public index hosts such wheels today (its own check is a
proposal), and a company that re-hosts public releases for offline use
must be able to take those it names, and only those.
"""

from __future__ import annotations

import fnmatch
import re

import attrs

from pypid.core.access.access_rules import RuleError, normalize_pattern


@attrs.frozen
class UploadRules:
    """
    @ivar tag_mismatch: the normalized names and globs of the projects
        whose wheels' tags may differ from their filename's.
    """

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
    """
    One hosted index's L{UploadRules} now: its uploads and imports read
    them at each file, and a reload (C{SIGHUP}) puts new ones in place.
    """

    current: UploadRules = attrs.field(factory=UploadRules)
