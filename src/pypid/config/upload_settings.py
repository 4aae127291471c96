"""
The upload keys of an index: C{allow_tag_mismatch}, in
C{[pypid]} for the default index (and as every named index's default)
and in C{[index:NAME]}; L{UploadKeys} makes the
L{pypid.core.access.upload_rules.UploadRules} an index's uploads and imports
apply.
"""

from __future__ import annotations

import attrs

from pypid.config.values import Keys
from pypid.core.access.upload_rules import UploadRules, parse_projects

#: key -> (default, parser), in C{[pypid]} and in C{[index:NAME]} (where
#: a key not given takes C{[pypid]}'s value).
UPLOAD_RULE_KEYS: Keys = {
    "allow_tag_mismatch": ("", parse_projects),
}


@attrs.frozen(slots=False)
class UploadKeys:
    """
    The keys as C{[pypid]} (L{pypid.config.server_settings.ServerConfig})
    and C{[index:NAME]} (L{pypid.config.index_settings.IndexConfig}) both
    hold them. (Not slotted, as L{pypid.config.retention_settings.RetentionKeys}.)
    """

    #: the projects (names and globs) whose wheels' C{WHEEL} Tag lines
    #: may differ from their filename's tags
    allow_tag_mismatch: tuple[str, ...] = attrs.field(default=(), kw_only=True)

    @property
    def upload_rules(self) -> UploadRules:
        """What the index lets through of its uploads."""
        return UploadRules(self.allow_tag_mismatch)
