"""
One hosted index's stack: everything it owns (its L{Index}, storage,
loader, snapshot writer, backfill or sync), made by L{HostedStack.create}.

A stack per name, not one L{Index} whose records carry an index: every
structure of an index, its storage, its snapshot and its backfill is keyed
by filename, and two indexes may hold one filename with other bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, cast

import attrs
from twisted.application.service import IService
from twisted.internet.interfaces import IReactorTime

from pypid.config import Config
from pypid.core.access.upload_rules import IndexUploadRules, UploadRules
from pypid.core.dists.readme import Renderer, render_description
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.indexes.links import file_url_for, provenance_url_for
from pypid.core.indexes.namespace_api import IndexNamespaces
from pypid.core.records.serials import ProjectSerials
from pypid.core.security.advisories import AdvisoryPolicy
from pypid.core.util.notice import Notice
from pypid.jobs.run import Run
from pypid.machine.topics import Hub
from pypid.state.backfill import Backfill
from pypid.state.cleanup import IndexCleanup
from pypid.state.hosted_source import HostedSource
from pypid.state.index_sections import index_base, retention, upload_rules
from pypid.state.loader import FollowUp, IndexLoader, IndexPart
from pypid.state.promotion_rollback import roll_back_promotions
from pypid.state.recycle_bin import RecycleBin
from pypid.state.sync import SyncService
from pypid.state.usage_log import UsageLog, UsageShare
from pypid.state.writer import SnapshotTimer, SnapshotWriter
from pypid.storage.base.capabilities import (
    IAdoptingStorage,
    IBackfillStorage,
    ISharedStorage,
    IUsageStorage,
)
from pypid.storage.base.interface import IStorage
from pypid.storage.base.locks import KeyedLock
from pypid.storage.factory import (
    ALONE,
    Sharing,
    StoragePart,
    index_settings,
    index_snapshot_path,
)
from pypid.storage.folder.shared_folder import folder_key

if TYPE_CHECKING:
    # (the upstream's modules load only with [upstream]: they cost start-up time)
    from pypid.upstream.factory import MakeUpstream, UpstreamPart
    from pypid.upstream.proxy import UpstreamProxy

#: The kinds of parts of a stack, in the order the daemon starts them
#: (each after the default's part of the same kind: L{pypid.tap}).
PART_KINDS = ("storage", "index", "snapshot", "snapshot-timer", "sync", "follow-up", "usage")


@attrs.frozen(eq=False)
class HostedStack:
    """
    Everything one hosted index owns; its daemon parts by kind (L{parts}).

    @ivar part: the part that loads C{index} (its L{IndexLoader}: C{part.loader}).
    @ivar locks: its changes to storage, one at a time per filename.
    @ivar backfill: for a folder of its own, the reading of files found
        without a record; L{None} otherwise.
    @ivar sync: for a shared storage, the taking in of the others' changes.
    """

    name: str
    index: Index
    storage: StoragePart
    part: IndexPart
    writer: SnapshotWriter
    timer: SnapshotTimer
    locks: KeyedLock
    follow_up: FollowUp
    backfill: Backfill | None = None
    sync: SyncService | None = None
    #: the part of C{[upstream]} (the default index's), which holds its proxy
    upstream_part: UpstreamPart | None = None
    #: its files' download counts; L{None} for a storage that keeps none
    usage: UsageLog | None = None
    #: where its removed files wait before they are purged
    bin: RecycleBin | None = None
    #: its retention rules, over its bin and counts
    cleanup: IndexCleanup | None = None
    #: what its uploads and imports let through, taken again at a reload
    uploads: IndexUploadRules = attrs.field(factory=IndexUploadRules)

    @property
    def loader(self) -> IndexLoader:
        """What fills its index at start-up."""
        return self.part.loader

    def source(self) -> HostedSource:
        """What the indexes that read it serve it from."""
        return HostedSource(self.name, self.index, self.stored, self.locks, self.backfill,
                            self.usage, self.bin, self.uploads)

    @property
    def upstream(self) -> UpstreamProxy | None:
        """Its upstream's proxy (C{[upstream]}'s, the default index's), or L{None}."""
        return self.upstream_part.proxy if self.upstream_part is not None else None

    @property
    def stored(self) -> IStorage:
        """Its storage, as the rest of the server uses it (timed)."""
        # (a MeasuredStorage provides its backend's interfaces: directlyProvides)
        return cast(IStorage, self.storage.storage)

    @classmethod
    def create(cls, config: Config, name: str, run: Run, reactor: IReactorTime, *,
               sharing: Sharing = ALONE,
               upstream: MakeUpstream | None = None,
               peers: Callable[[str], Index | None] | None = None,
               serials: ProjectSerials | None = None,
               advisories: AdvisoryPolicy | None = None,
               namespaces: IndexNamespaces | None = None,
               render: Renderer = render_description) -> HostedStack:
        """
        The stack of the hosted index C{name} (C{default}: today's index,
        its storage and snapshot where they always were).

        @param upstream: builds the index's upstream part, whose proxy's state
            its snapshot keeps; L{None}: none.
        @param peers: C{peers(name)}: the hosted index of that name, with which
            promoted files share their records; L{None}: none.
        @param serials: every index's projects' serials, its own carried by its
            pages, kept whole by the default index's snapshot; L{None}: none.
        @param namespaces: the PEP 752 namespaces its JSON pages show (API
            1.5); L{None}: none (1.4).
        @raise pypid.core.util.startup.StartupError: its storage cannot be built.
        """
        server = config.server
        hub = sharing.hub
        storage = StoragePart.from_config(index_settings(config, name), run, reactor, sharing,
                                          render=render)
        # (a MeasuredStorage provides its backend's interfaces: directlyProvides)
        stored = cast(IStorage, storage.storage)
        shared = stored if ISharedStorage.providedBy(stored) else None
        base = index_base(server.base_url, name)
        index = Index(file_url_for(base), page_cache_size=server.page_cache_size, peers=peers,
                      advisories=advisories, provenance_url=provenance_url_for(base),
                      namespaces=namespaces,
                      serials=serials.of_index(None if name == DEFAULT else name)
                      if serials is not None else None)
        learnt = Notice()  # (what the upstream cache learns, saved within seconds)
        upstream_part = upstream(index, learnt) if upstream is not None else None
        proxy = upstream_part.proxy if upstream_part is not None else None
        # (its name in the log lines and on /metrics, on a server of named indexes)
        label = name if any(n != DEFAULT for n in config.indexes) else None
        backfill = (Backfill(index, stored, reactor, name=label)
                    if IBackfillStorage.providedBy(stored) and shared is None else None)
        locks = KeyedLock(reactor)
        path = index_snapshot_path(server.snapshot, name)
        # (of a machine's workers the first alone writes the snapshot)
        kept = serials if name == DEFAULT else None  # (every index's)
        writer = SnapshotWriter(index, path, run, reactor, stored.identity(), locks.oldest,
                                shared, proxy,
                                learnt if hub.runs_once else None, name=label, serials=kept)
        loader = IndexLoader(index, stored, path, run, reactor, writer, proxy, backfill,
                             recover=_recovery(config, name, stored, hub), name=label,
                             serials=kept)
        usage = _usage_log(stored, reactor, hub)
        bin = RecycleBin(index, stored, locks, reactor, retention(config, name).recycle_bin)
        return cls(
            name=name, index=index, storage=storage,
            part=IndexPart(index, loader, label),
            writer=writer, timer=SnapshotTimer(writer, server.snapshot_interval, reactor),
            locks=locks, follow_up=FollowUp(loader), backfill=backfill,
            sync=SyncService(index, shared, reactor, _peers(config, name, hub))
            if shared is not None else None,
            upstream_part=upstream_part,
            usage=usage,
            bin=bin,
            cleanup=IndexCleanup(name, bin, usage, retention(config, name).retention_rules),
            uploads=IndexUploadRules(upload_rules(config).get(name, UploadRules())))

    def parts(self) -> Iterator[tuple[str, IService]]:
        """Its daemon parts as C{(kind, part)}, in L{PART_KINDS}' order, those it lacks left out."""
        found: dict[str, IService | None] = {
            "storage": self.storage, "index": self.part, "snapshot": self.writer,
            "snapshot-timer": self.timer, "sync": self.sync, "follow-up": self.follow_up,
            "usage": self.usage}
        yield from ((kind, part) for kind in PART_KINDS if (part := found[kind]) is not None)


def _recovery(config: Config, name: str, stored: IStorage,
              hub: Hub) -> Callable[[], Awaitable[object]] | None:
    """
    What takes back the promotions a crash cut, before the load: a server of
    one process's own; in a machine, a folder's is the supervisor's, a bucket's
    the first worker's at the machine's start, before any other runs (a worker
    started again would take back another's under way).
    """
    recovers = hub.alone or (
        index_settings(config, name).bucket is not None and hub.worker == 1
        and hub.restarts() == 0 and hub.workers()[0] == 0)
    if not recovers or not IAdoptingStorage.providedBy(stored):
        return None
    return partial(roll_back_promotions, cast(IAdoptingStorage, stored))


def _peers(config: Config, name: str, hub: Hub) -> str:
    """Who else changes a shared storage, as the log names them."""
    if index_settings(config, name).bucket is None:
        return "workers"
    return "servers" if hub.alone else "workers and servers"


def _usage_log(stored: IStorage, reactor: IReactorTime,
               hub: Hub) -> UsageLog | None:
    """The download counts of a storage that keeps them, shared by a machine's workers."""
    if not IUsageStorage.providedBy(stored):
        return None
    return UsageLog(cast(IUsageStorage, stored), reactor,
                    share=UsageShare(hub, folder_key(stored.identity()))
                    if not hub.alone else None,
                    fold=hub.runs_once)
