"""
The C{[retention]} section (issue 29): how long a removed file stays in
the recycle bin.

Its keys are the default index's, and every named hosted index's unless
its C{[index:NAME]} section sets them (as C{[pypid]}'s advisory keys are:
L{pypid.config.advisory_settings.AdvisoryKeys}). A view holds no files,
and takes none of them.

C{recycle_bin} is a duration (C{7d}, C{12h}); C{0} turns the bin off, and
a deletion then deletes at once, as before there was a bin. A negative or
unreadable one stops start-up with one line naming the key.
"""

from __future__ import annotations

import attrs

from pypid.config.values import Keys
from pypid.core.units import is_zero_duration, parse_duration

#: A week: long enough to notice a deletion made in error over a weekend.
DEFAULT_RECYCLE_BIN = 7 * 24 * 3600.0


def parse_recycle_bin(value: str) -> float:
    """How long a removed file is kept in the bin (s); C{0}: no bin."""
    if is_zero_duration(value):
        return 0.0
    return parse_duration(value)


#: key -> (default, parser) of the keys C{[retention]} and C{[index:NAME]}
#: both take.
RETENTION_RULE_KEYS: Keys = {
    "recycle_bin": ("7d", parse_recycle_bin),
}


@attrs.frozen(slots=False)
class RetentionKeys:
    """
    The keys as C{[retention]} (L{RetentionConfig}) and C{[index:NAME]}
    (L{pypid.config.index_settings.IndexConfig}) both hold them.

    (Not slotted: L{pypid.config.index_settings.IndexConfig} also takes
    the slotted L{pypid.config.advisory_settings.AdvisoryKeys}, and only
    one base may lay out slots.)
    """

    #: seconds a removed file stays in the recycle bin; 0: no bin
    recycle_bin: float = attrs.field(default=DEFAULT_RECYCLE_BIN, kw_only=True)


@attrs.frozen
class RetentionConfig(RetentionKeys):
    """The C{[retention]} section: the default index's keys, and the named ones' defaults."""


#: key -> (default, parser) of C{[retention]}.
RETENTION_KEYS: Keys = dict(RETENTION_RULE_KEYS)
