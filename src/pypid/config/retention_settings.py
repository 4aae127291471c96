"""
The C{[retention]} section: how long a removed file stays in the recycle
bin (C{0}: no bin), the rules a cleanup removes hosted releases by (off
until set), and when a cleanup runs by itself. Its keys but C{schedule}
are every hosted index's unless its C{[index:NAME]} section sets them.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from pypid.config.values import Fail, Keys, parse_globs, whole_number
from pypid.core.indexes.retention import RetentionRules
from pypid.core.records.usage import WINDOW_DAYS
from pypid.core.util.units import format_duration, is_zero_duration, parse_duration

#: A week: long enough to notice a deletion made in error over a weekend.
DEFAULT_RECYCLE_BIN = 7 * 24 * 3600.0


def parse_optional_duration(value: str) -> float:
    """A duration (s); C{0}: off."""
    if is_zero_duration(value):
        return 0.0
    return parse_duration(value)


#: key -> (default, parser) of the keys C{[retention]} and C{[index:NAME]}
#: both take.
RETENTION_RULE_KEYS: Keys = {
    "recycle_bin": ("7d", parse_optional_duration),
    "keep_releases": ("0", whole_number(0, 1_000_000)),
    "remove_prereleases_after": ("0", parse_optional_duration),
    "keep_downloaded": ("0", parse_optional_duration),
    "protect": ("", parse_globs),
}


@attrs.frozen(slots=False)
class RetentionKeys:
    """
    The keys as C{[retention]} and C{[index:NAME]} both hold them. (Not
    slotted: C{IndexConfig} also takes the slotted
    L{pypid.config.advisory_settings.AdvisoryKeys}, and only one base may lay
    out slots.)
    """

    #: seconds a removed file stays in the recycle bin; 0: no bin
    recycle_bin: float = attrs.field(default=DEFAULT_RECYCLE_BIN, kw_only=True)
    #: each project's newest releases kept; 0: off
    keep_releases: int = attrs.field(default=0, kw_only=True)
    #: the age (s) past which a pre-release is removed; 0: off
    remove_prereleases_after: float = attrs.field(default=0.0, kw_only=True)
    #: a release downloaded within this time (s) is kept; 0: off
    keep_downloaded: float = attrs.field(default=0.0, kw_only=True)
    #: projects (normalized names or globs) never touched
    protect: tuple[str, ...] = attrs.field(default=(), kw_only=True)

    @property
    def retention_rules(self) -> RetentionRules:
        """What a cleanup of the index removes (L{pypid.core.indexes.retention})."""
        return RetentionRules(self.keep_releases, self.remove_prereleases_after,
                              self.keep_downloaded, self.protect)


@attrs.frozen(slots=False)
class RetentionConfig(RetentionKeys):
    """The C{[retention]} section: the default index's keys, the named ones' defaults."""

    #: how often the rules are applied by the server itself (s); 0: never
    #: (C{pypid-admin retention apply} only)
    schedule: float = attrs.field(default=0.0, kw_only=True)


#: key -> (default, parser) of C{[retention]}.
RETENTION_KEYS: Keys = {**RETENTION_RULE_KEYS, "schedule": ("0", parse_optional_duration)}


def check_retention(default: RetentionConfig, indexes: Iterable[tuple[str, RetentionKeys]],
                    given: Iterable[tuple[str, str]], fail: Fail) -> None:
    """
    Refuse rules that cannot hold together: C{keep_downloaded} with no rule
    that removes anything, or longer than the download counts are kept; a
    C{schedule} with no index that has a rule removing anything. The error
    names the section that sets the key.
    """
    set_here = set(given)
    removing = default.retention_rules.removes
    for section, keys in [("retention", default), *((f"index:{name}", keys)
                                                    for name, keys in indexes)]:
        blame = section if (section, "keep_downloaded") in set_here else "retention"
        rules = keys.retention_rules
        removing = removing or rules.removes
        if rules.keep_downloaded and not rules.removes:
            fail(blame, "keep_downloaded", "it keeps releases that no rule removes: set "
                 "keep_releases or remove_prereleases_after too, or remove it")
        if rules.keep_downloaded > WINDOW_DAYS * 86400:
            fail(blame, "keep_downloaded", f"at most {WINDOW_DAYS}d: the download counts "
                 f"are kept for {WINDOW_DAYS} days, not "
                 f"{format_duration(rules.keep_downloaded)}")
    if default.schedule and not removing:
        fail("retention", "schedule", "no index has a rule that removes anything: set "
             "keep_releases or remove_prereleases_after, or remove the schedule")
