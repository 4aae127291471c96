"""
The advisory settings of an index (issue 27): C{advisories},
C{advisory_severity} and C{advisory_waive}, in C{[pypid]} for the default
index (and as every named index's default) and in C{[index:NAME]}.

Each key is checked on its own at load, so that a wrong value is refused
with the section and key named; L{rules_of} puts the three together as
the L{pypid.core.advisories.AdvisoryRules} an index acts by.
"""

from __future__ import annotations

import re

from pypid.config.values import Keys, choice
from pypid.core.advisories import MODES, SEVERITIES, AdvisoryRules, InvalidRules


def parse_severity(value: str) -> str | None:
    """The lowest severity acted on (C{moderate} read as C{medium}); empty: every advisory."""
    level = value.strip().lower()
    if not level:
        return None
    if level == "moderate":
        level = "medium"
    if level not in SEVERITIES:
        raise ValueError(f"expected one of: {', '.join(SEVERITIES)}; or empty for every "
                         "advisory, those of unknown severity too")
    return level


def parse_waive(value: str) -> tuple[str, ...]:
    """
    The waivers: C{project==version} releases and advisory identifiers,
    separated by spaces, commas or lines.
    """
    entries = tuple(e for e in re.split(r"[\s,]+", value) if e)
    try:
        AdvisoryRules.parse("off", "", entries)
    except InvalidRules as e:
        raise ValueError(str(e).removeprefix("advisory_waive: ")) from None
    return entries


#: key -> (default, parser), in C{[pypid]} and in C{[index:NAME]} (where
#: a key not given takes C{[pypid]}'s value).
ADVISORY_RULE_KEYS: Keys = {
    "advisories": ("off", choice(*MODES)),
    "advisory_severity": ("", parse_severity),
    "advisory_waive": ("", parse_waive),
}


def rules_of(mode: str, severity: str | None, waive: tuple[str, ...]) -> AdvisoryRules:
    """The L{AdvisoryRules} of the three keys' parsed values."""
    return AdvisoryRules.parse(mode, severity or "", waive)
