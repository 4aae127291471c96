"""
The index's state across restarts and servers: loading it at start-up
(L{loader}), the rule that merges what storage says into it (L{merge}),
describing files found without a record (L{backfill}), saving its snapshot
(L{writer}; the snapshot's format is L{pypid.storage.base.snapshot}) and taking
in other servers' changes to a shared storage (L{sync}).
"""

from __future__ import annotations
