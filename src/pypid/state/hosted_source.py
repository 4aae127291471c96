"""
One hosted index as the indexes that read it serve it: the read-only face
of a L{pypid.state.hosted_stack.HostedStack}, what the web serves from.
"""

from __future__ import annotations

import attrs

from pypid.core.access.upload_rules import IndexUploadRules
from pypid.core.indexes.index import Index
from pypid.state.backfill import Backfill
from pypid.state.recycle_bin import RecycleBin
from pypid.state.usage_log import UsageLog
from pypid.storage.base.interface import IStorage
from pypid.storage.base.locks import KeyedLock


@attrs.frozen
class HostedSource:
    """One hosted index as a named index reads it: its files, where they are, and its lock."""

    name: str
    index: Index
    storage: IStorage
    locks: KeyedLock
    #: the reading of its files found without a record (a start without
    #: its snapshot), whose projects' pages wait for it; L{None}: none
    backfill: Backfill | None = None
    #: counts its files' downloads; L{None}: none counted
    usage: UsageLog | None = None
    #: where its deleted files wait to be purged; L{None}: none
    bin: RecycleBin | None = None
    #: what its uploads let through, taken again at a reload
    uploads: IndexUploadRules = attrs.field(factory=IndexUploadRules)
