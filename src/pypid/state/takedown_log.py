"""
The audit entries of the upstreams' takedowns: each kept file an upstream
stops listing is an C{upstream-takedown} entry, each it lists again an
C{upstream-relisted} one, made by the server (no user, no address).

In the audit log because a takedown is often a removal of malware, and an
operator must be able to show when their cache stopped serving it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime

from pypid.core.records.audit_chain import Entry, format_time
from pypid.core.records.change_kinds import ChangeKind
from pypid.storage.base.journal import IJournal

if TYPE_CHECKING:
    # (types only: the upstream's modules load with a configured upstream)
    from pypid.upstream.source import UpstreamSource
    from pypid.upstream.takedowns import Takedown

def log_takedowns(sources: Iterable[UpstreamSource], audit: IJournal | None,
                  clock: IReactorTime) -> None:
    """Record each takedown of C{sources} in C{audit} from now on (nothing without one)."""
    if audit is None:
        return
    for source in sources:
        def record(takedown: Takedown, down: bool, name: str = source.name,
                   keep: bool = source.settings.keep_removed) -> None:
            what = ("no longer listed upstream; " + ("still served (keep_removed)" if keep
                                                      else "not served")
                    if down else "listed upstream again; served again")
            audit.queue(Entry(
                time=format_time(clock.seconds()),
                event=ChangeKind.UPSTREAM_TAKEDOWN if down else ChangeKind.UPSTREAM_RELISTED,
                project=takedown.project, filename=takedown.filename,
                detail=f"upstream {name}: {what}"))
        source.on_takedown(record)
