"""
The index's state across restarts and servers: loading it (L{loader}), merging
what storage says (L{merge}), describing files found without a record
(L{backfill}), saving its snapshot (L{writer}) and taking in other servers'
changes (L{sync}).
"""

from __future__ import annotations
