"""
The hosted indexes of a server, each a stack of its own.

A hosted index is a stack instantiated per name, not one L{Index} whose
records carry an index: every structure of an index, its storage, its
snapshot and its backfill is keyed by filename, and two indexes may hold
one filename with other bytes. So L{HostedStack} is everything one hosted
index owns (its L{Index}, its storage under a root of its own, its loader
and snapshot writer, its backfill or sync, the follow-up of its load),
made by L{HostedStack.create} from the configuration and a name. The
default index is built as a server of one index always was, so a server
without C{[index:NAME]} is unchanged.

L{IndexRegistry} holds the stacks by name and, for every index (hosted
or view), its sources in order (L{pypid.core.indexes.views.resolve_order})
and its L{pypid.core.indexes.views.IndexView}; a view keeps pages only as
they are asked. It holds the named upstreams too, each once however many
indexes name it (L{pypid.upstream.source.SourceSide}).

The named stacks load bases first. A file promoted from one hosted index
to another takes its record's memory once: an index shares a promoted
file's record with the index it came from when the two are equal
(L{pypid.core.indexes.index.Index.share_promoted}), whichever loads first.

At C{SIGHUP} the stacks stay and the views may change
(L{pypid.state.index_reload}). Every index acts on the advisories by its
own L{AdvisoryPolicy} over the one L{AdvisoryBoard}. When the board's
database or an index's rules change, only the pages of the projects the
databases name are dropped (L{IndexRegistry.advisories_changed}), and each
release whose decision changed is logged once (L{pypid.state.advisory_decisions}).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, TypeVar, cast

import attrs
from twisted.application.service import IService
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from pypid.config import Config
from pypid.config.index_settings import IndexConfig
from pypid.config.retention_settings import RetentionKeys
from pypid.config.server_settings import ServerConfig
from pypid.core.dists.readme import Renderer, render_description
from pypid.core.dists.upload_rules import IndexUploadRules, UploadRules
from pypid.core.formats.namespace_api import IndexNamespaces
from pypid.core.formats.render import file_url_for, provenance_url_for
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import DEFAULT, UPSTREAM_PREFIX
from pypid.core.indexes.views import ChainSource, ComposedFile, Filters, IndexView, resolve_order
from pypid.core.records.metrics import Family
from pypid.core.security.advisories import (
    DENY,
    HIDE,
    AdvisoryBoard,
    AdvisoryDB,
    AdvisoryPolicy,
    AdvisoryRules,
    no_advisories,
)
from pypid.core.security.advisory_waivers import Waivers
from pypid.core.util.notice import Notice
from pypid.core.util.parts import IMetricsSource
from pypid.state.advisory_decisions import DecisionLog
from pypid.state.backfill import Backfill
from pypid.state.cleanup import IndexCleanup
from pypid.state.grant_keeper import GrantKeeper
from pypid.state.hosted_source import HostedSource
from pypid.state.loader import FollowUp, IndexLoader, IndexPart, roll_back_promotions
from pypid.state.namespace_serving import namespace_found, serve_namespaces
from pypid.state.recycle_bin import RecycleBin
from pypid.state.sync import SyncService
from pypid.state.usage_log import UsageLog
from pypid.state.waiver_keeper import WaiverKeeper
from pypid.state.writer import SnapshotTimer, SnapshotWriter
from pypid.storage.factory import (
    SharedBucket,
    StoragePart,
    index_settings,
    index_snapshot_path,
)
from pypid.storage.interface import (
    IAdoptingStorage,
    IBackfillStorage,
    IServerDocuments,
    ISharedStorage,
    IStorage,
    IUsageStorage,
    Run,
)
from pypid.storage.locks import KeyedLock

if TYPE_CHECKING:
    # (the upstream's modules load only with [upstream]: they cost start-up time)
    from pypid.upstream.factory import MakeUpstream, UpstreamPart
    from pypid.upstream.page_view import FileUrl
    from pypid.upstream.proxy import UpstreamProxy
    from pypid.upstream.saved_state import SavedState
    from pypid.upstream.source import SourceSide, UpstreamSource

#: The kinds of parts of a stack, in the order the daemon starts them
#: (each after the default's part of the same kind: L{pypid.tap}).
PART_KINDS = ("storage", "index", "snapshot", "snapshot-timer", "sync", "follow-up", "usage")


@attrs.frozen(eq=False)
class HostedStack:
    """
    Everything one hosted index owns; its daemon parts by kind (L{parts}).

    @ivar name: C{default} for the index of today's URLs.
    @ivar storage: its storage, under a root of its own for a named index.
    @ivar part: the part that loads C{index} (its L{IndexLoader}: C{part.loader}).
    @ivar locks: its changes to storage, one at a time per filename.
    @ivar backfill: for a folder of its own, the reading of files found
        without a record; L{None} otherwise.
    @ivar sync: for a storage shared with other servers, the taking in of
        their changes; L{None} otherwise.
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
    #: its files' download counts; L{None} for a storage that
    #: keeps none
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
               bucket: SharedBucket | None = None,
               upstream: MakeUpstream | None = None,
               peers: Callable[[str], Index | None] | None = None,
               labelled: bool = False,
               advisories: AdvisoryPolicy | None = None,
               namespaces: IndexNamespaces | None = None,
               render: Renderer = render_description) -> HostedStack:
        """
        The stack of the hosted index C{name} (C{default}: today's index,
        its storage and snapshot where they always were).

        @param run: C{run(f, *args) -> Deferred}: C{f(*args)} in the I/O pool.
        @param bucket: the client of the bucket the indexes' storages share,
            or L{None}: the storage makes its own (a server of one index).
        @param upstream: builds the upstream part of the index
            (L{pypid.upstream.factory.UpstreamPart.maker}), whose proxy's
            state its snapshot keeps; L{None}: none.
        @param peers: C{peers(name)}: the server's hosted index of that
            name, with which promoted files share their records; L{None}
            (a server of one index): none.
        @param labelled: whether its families on C{/metrics} carry an
            C{index} label (a server of named indexes).
        @param advisories: the index's L{AdvisoryPolicy}, which its pages
            apply; L{None}: none.
        @param namespaces: the index's PEP 752 namespaces, which its JSON
            pages show (API 1.5); L{None}: none (1.4).
        @param render: renders the descriptions its storage finds without
            details (L{pypid.storage.factory.make_storage}).
        @raise pypid.core.util.startup.StartupError: when its storage cannot be
            built from the configuration.
        """
        server = config.server
        storage = StoragePart.from_config(index_settings(config, name), run, reactor, bucket,
                                          render=render)
        # (a MeasuredStorage provides its backend's interfaces: directlyProvides)
        stored = cast(IStorage, storage.storage)
        shared = stored if ISharedStorage.providedBy(stored) else None
        base = _base(server.base_url, name)
        index = Index(file_url_for(base), page_cache_size=server.page_cache_size, peers=peers,
                      advisories=advisories, provenance_url=provenance_url_for(base),
                      namespaces=namespaces)
        # (what the upstream cache learns is saved within seconds: a crash
        # loses none of it)
        learnt = Notice()
        upstream_part = upstream(index, learnt) if upstream is not None else None
        proxy = upstream_part.proxy if upstream_part is not None else None
        # A folder's files found without a record are described after the
        # server answers (a shared storage imports what it finds its own way).
        backfill = (Backfill(index, stored, reactor)
                    if IBackfillStorage.providedBy(stored) and shared is None else None)
        locks = KeyedLock(reactor)
        path = index_snapshot_path(server.snapshot, name)
        writer = SnapshotWriter(index, path, run, reactor, stored.identity(), locks.oldest,
                                shared, proxy, learnt)
        # (a promotion a crash interrupted is taken back before the load)
        recover = (partial(roll_back_promotions, stored)
                   if IAdoptingStorage.providedBy(stored) else None)
        loader = IndexLoader(index, stored, path, run, reactor, writer, proxy, backfill,
                             recover=recover)
        usage = (UsageLog(cast(IUsageStorage, stored), reactor)
                 if IUsageStorage.providedBy(stored) else None)
        bin = RecycleBin(index, stored, locks, reactor, _retention(config, name).recycle_bin)
        return cls(
            name=name, index=index, storage=storage,
            part=IndexPart(index, loader, name if labelled else None),
            writer=writer, timer=SnapshotTimer(writer, server.snapshot_interval, reactor),
            locks=locks, follow_up=FollowUp(loader), backfill=backfill,
            sync=SyncService(index, shared, reactor) if shared is not None else None,
            upstream_part=upstream_part,
            usage=usage,
            bin=bin,
            cleanup=IndexCleanup(name, bin, usage, _retention(config, name).retention_rules),
            uploads=IndexUploadRules(upload_rules(config).get(name, UploadRules())))

    def parts(self) -> Iterator[tuple[str, IService]]:
        """
        Its daemon parts as C{(kind, part)}, in L{PART_KINDS}' order, those
        it does not have (a sync on a folder of its own) left out.
        """
        found: dict[str, IService | None] = {
            "storage": self.storage, "index": self.part, "snapshot": self.writer,
            "snapshot-timer": self.timer, "sync": self.sync, "follow-up": self.follow_up,
            "usage": self.usage}
        for kind in PART_KINDS:
            part = found[kind]
            if part is not None:
                yield kind, part


@implementer(IMetricsSource)
@attrs.frozen(eq=False)
class IndexRegistry:
    """
    The server's indexes: the hosted stacks by name (the default first,
    then the named ones, bases before the indexes based on them), and for
    every index, views included, its sources in order and its view.

    @ivar stacks: name -> L{HostedStack}.
    @ivar orders: name -> the names of its sources, resolved
        (L{resolve_order}: itself unless a view, its bases breadth first,
        the upstreams, C{upstream:NAME}, last).
    @ivar views: name -> its L{IndexView} over its sources.
    @ivar upstreams: the named upstreams (C{[upstream:NAME]}) by name: each
        one's part, and the part that keeps its state (L{SavedState}).
    @ivar sides: C{upstream:NAME} -> that upstream as the indexes' pages
        read it (L{SourceSide}), C{upstream:default} (C{[upstream]}) too
        when an index names it.
    @ivar board: the security advisories in force.
    @ivar policies: name -> what the index does about them, for every
        index (the views included); the same object for its lifetime, its
        rules taken in place at a reload (L{take_rules}).
    @ivar waivers: the advisory waivers admins keep, read from
        the default index's storage; L{None} for a storage that keeps none.
    @ivar namespaces: name -> the PEP 752 namespaces the index serves (issue
        46), for every index; the same object for its lifetime, its grants
        taken in place (L{pypid.state.namespace_serving.serve_namespaces}, by L{grants}).
    @ivar grants: keeps when each grant came into force, in the default
        index's storage (L{GrantKeeper}); L{None} for a storage that keeps none.
    """

    stacks: Mapping[str, HostedStack]
    orders: Mapping[str, tuple[str, ...]]
    views: Mapping[str, IndexView]
    upstreams: Mapping[str, tuple[UpstreamPart, SavedState]] = attrs.field(factory=dict)
    sides: Mapping[str, SourceSide] = attrs.field(factory=dict)
    board: AdvisoryBoard = attrs.field(factory=AdvisoryBoard)
    policies: Mapping[str, AdvisoryPolicy] = attrs.field(factory=dict)
    decisions: DecisionLog = attrs.field(factory=DecisionLog)
    waivers: WaiverKeeper | None = None
    namespaces: Mapping[str, IndexNamespaces] = attrs.field(factory=dict)
    grants: GrantKeeper | None = None

    @property
    def default(self) -> HostedStack:
        """The stack of today's index (C{/simple/}, uploads at C{/})."""
        return self.stacks[DEFAULT]

    @property
    def named(self) -> tuple[HostedStack, ...]:
        """The named hosted indexes' stacks, in the order they start."""
        return tuple(stack for name, stack in self.stacks.items() if name != DEFAULT)

    @classmethod
    def from_config(cls, config: Config, run: Run, reactor: IReactorTime, *,
                    upstream: MakeUpstream | None = None,
                    board: AdvisoryBoard | None = None,
                    render: Renderer = render_description) -> IndexRegistry:
        """
        Every index of the configuration: the default's stack built as the
        server's one index always was, a stack per named hosted index, and
        the orders and views of all, each with its advisory policy.

        @param upstream: builds the default index's upstream part over its
            index (C{[upstream]}, its pages applying the index's
            advisories: C{index.rendered.advisories}; the registry owns it, in the
            default's stack); L{None} without one.
        @param board: the server's advisories (filled by their feed);
            L{None}: an empty board of its own.
        @param render: renders the descriptions of the files the storages
            and the named upstreams describe (the daemon's sandbox).
        @raise pypid.core.util.startup.StartupError: when a storage cannot be
            built from the configuration.
        """
        hosted = [name for name in _bases_first(config.indexes)
                  if name != DEFAULT and not config.indexes[name].view]
        # (a server of one index keeps its storage's client its own, as always)
        bucket = (SharedBucket.create(config, run, reactor)
                  if hosted and config.storage.backend == "s3" else None)
        stacks: dict[str, HostedStack] = {}
        # (filled before any index loads: every stack is made first)
        peers = partial(_hosted_index, stacks) if hosted else None
        # (the index label, as the request families have it, with any named index)
        labelled = any(name != DEFAULT for name in config.indexes)
        if board is None:
            board = AdvisoryBoard()
        policies = {name: AdvisoryPolicy(rules, board)
                    for name, rules in advisory_rules(config).items()}
        spaces = {name: IndexNamespaces(name, config.namespaces) for name in policies}
        stacks[DEFAULT] = HostedStack.create(config, DEFAULT, run, reactor, bucket=bucket,
                                             upstream=upstream, peers=peers, labelled=labelled,
                                             advisories=policies[DEFAULT],
                                             namespaces=spaces[DEFAULT], render=render)
        for name in hosted:
            stacks[name] = HostedStack.create(config, name, run, reactor, bucket=bucket,
                                              peers=peers, labelled=labelled,
                                              advisories=policies[name],
                                              namespaces=spaces[name], render=render)
        upstreams, sides = _upstreams(config, run, reactor, stacks[DEFAULT].upstream, render)
        orders: dict[str, tuple[str, ...]] = {}
        made: dict[str, IndexView] = {}
        for name in [DEFAULT, *(n for n in config.indexes if n != DEFAULT)]:
            orders[name] = source_order(config, name)
            made[name] = index_view(config.indexes.get(name), name, orders[name], stacks,
                                    sides, config.server.base_url, policies[name],
                                    spaces[name])
        # (the waivers admins keep: the default index's storage holds them)
        default_storage = stacks[DEFAULT].storage.storage
        waivers = (WaiverKeeper(cast(IServerDocuments, default_storage), reactor)
                   if IServerDocuments.providedBy(default_storage) else None)
        # (and when each namespace grant came into force: the pages of every
        # index show them, the dict of those indexes' namespaces being the
        # registry's, which a reload updates in place)
        grants = (GrantKeeper(cast(IServerDocuments, default_storage), reactor,
                              partial(serve_namespaces, spaces, stacks),
                              partial(namespace_found, stacks), config)
                  if IServerDocuments.providedBy(default_storage) else None)
        registry = cls(stacks, orders, made, upstreams, sides, board, policies,
                       waivers=waivers, namespaces=spaces, grants=grants)
        board.listen(registry.advisories_changed)
        if waivers is not None:
            waivers.listen(registry.take_waivers)
        return registry

    def upstream_parts(self, kind: str) -> list[tuple[str, IService]]:
        """
        The named upstreams' parts: C{upstream} (each source: its storage
        and connections), or C{upstream-state} (its state, read back before
        the listeners open and saved once they closed), named C{kind:NAME}.
        """
        return [(f"{kind}:{name}", part if kind == "upstream" else saved)
                for name, (part, saved) in self.upstreams.items()]

    def metric_families(self) -> Iterator[Family]:
        """
        Every hosted index's numbers for C{/metrics} (L{IndexPart}'s), the
        default's first: without named indexes, the default's alone and
        unlabelled, as they always were; with them, labelled C{index}.
        """
        for stack in self.stacks.values():
            yield from stack.part.metric_families()

    def parts(self, kind: str) -> list[tuple[str, IService]]:
        """
        Every stack's parts of one kind (L{PART_KINDS}), the default's
        first and named C{kind}, each named one's C{kind:NAME}: each named
        hosted index's parts start after the default's of their kind, so
        every storage is prepared and every index loaded before the
        listeners open, and every last snapshot taken once they closed.
        """
        return [(kind if stack.name == DEFAULT else f"{kind}:{stack.name}", part)
                for stack in self.stacks.values() for found, part in stack.parts()
                if found == kind]

    def take_views(self, reloaded: IndexRegistry) -> None:
        """
        Take the orders and views of a configuration read again (C{SIGHUP}:
        L{pypid.state.index_reload}), whose stacks are these: in place, so
        that what holds the registry reads them from now on.
        """
        for mine, theirs in ((self.orders, reloaded.orders), (self.views, reloaded.views),
                             (self.policies, reloaded.policies),
                             (self.namespaces, reloaded.namespaces)):
            # (from_config made them dicts: a Mapping only to the readers)
            table = cast("dict[str, object]", mine)
            table.clear()
            table.update(theirs)
        # (a view the reload made serves the grants in force now)
        first = self.namespaces.get(DEFAULT)
        if first is not None:
            for spaces in self.namespaces.values():
                spaces.follow(first)
        # (an index the reload added acts by the waivers kept for its name)
        if self.waivers is not None:
            self.take_waivers(self.waivers.current)


    # -- advisories ---------------------------------------------------

    def unread_advisories(self) -> tuple[str, bool] | None:
        """
        While the advisories are still to be read: their state
        (L{pypid.core.security.advisories.READING} or C{FAILED}) and whether some
        index fails closed meanwhile (it hides or denies); L{None} once read.
        """
        state = self.board.unread
        if state is None:
            return None
        return state, any(policy.rules.mode in (HIDE, DENY)
                          for policy in self.policies.values())

    def advisories_changed(self, before: AdvisoryDB, after: AdvisoryDB) -> None:
        """
        The board's database was replaced (its listener): drop the pages
        of the projects either database names, in every index that acts
        on advisories, and log the decisions that changed.
        """
        named = before.projects() | after.projects()
        acting = [name for name, policy in self.policies.items() if policy.active]
        for name in acting:
            self._drop_pages(name, named)
        if after.unread is not None:
            # (nothing decided yet: the decisions are reviewed once read)
            return
        self.decisions.review([(name, self.policies[name], self.releases_of(name))
                               for name in acting], named)

    def take_rules(self, rules: Mapping[str, AdvisoryRules]) -> list[str]:
        """
        Act by the indexes' new C{rules} (a reload: name -> rules, those
        not named keep theirs); the pages of the projects the board names
        are dropped in each index whose rules changed, and the decisions
        that changed logged. The names of those indexes.
        """
        changed = [name for name, new in rules.items()
                   if name in self.policies and self.policies[name].take_rules(new)]
        if self.board.unread is not None:
            # (the advisories still to be read name every project: every
            # page kept under the old rules goes, as an index that now
            # hides or denies must fail closed; decided once read)
            for name in changed:
                self._drop_pages(name, None)
            return changed
        named = self.board.db.projects()
        for name in changed:
            self._drop_pages(name, named)
        self.decisions.review([(name, self.policies[name], self.releases_of(name))
                               for name in changed], named)
        return changed

    def take_upload_rules(self, config: Config) -> None:
        """Let the hosted indexes' uploads and imports through as C{config} says (a reload)."""
        rules = upload_rules(config)
        for name, stack in self.stacks.items():
            if name in rules:
                stack.uploads.current = rules[name]

    def take_waivers(self, waivers: Waivers) -> list[str]:
        """
        Act by the advisory waivers admins keep (L{pypid.state.waiver_keeper}:
        at a start, after a change here or, read from a shared storage,
        another server's): in each index whose waivers changed, the pages
        of the projects either set names are dropped and the decisions
        that changed logged. The names of those indexes.
        """
        changed: list[tuple[str, frozenset[str]]] = []
        for name, policy in self.policies.items():
            before = policy.waived
            after = waivers.of_index(name)
            if policy.take_waivers(after):
                changed.append((name, before.projects | after.projects))
        for name, projects in changed:
            if self.policies[name].active:
                self._drop_pages(name, projects)
        if self.board.unread is None:
            self.decisions.review([(name, self.policies[name], self.releases_of(name))
                                   for name, _ in changed if self.policies[name].active],
                                  frozenset().union(*(p for _, p in changed)))
        return [name for name, _ in changed]

    def _drop_pages(self, name: str, projects: frozenset[str] | None) -> None:
        """
        Drop the pages index C{name} keeps of C{projects} (L{None}: of
        every project; a view's own go by their stamp).
        """
        stack = self.stacks.get(name)
        if stack is not None:
            drop_advised_pages(stack.index, stack.upstream, projects)

    def cleanups(self) -> dict[str, IndexCleanup]:
        """The hosted indexes' retention rules by name."""
        return {name: stack.cleanup for name, stack in self.stacks.items()
                if stack.cleanup is not None}

    def bins(self) -> dict[str, RecycleBin]:
        """The hosted indexes' recycle bins by name."""
        return {name: stack.bin for name, stack in self.stacks.items() if stack.bin is not None}

    def bin(self, name: str) -> RecycleBin | None:
        """The recycle bin of the hosted index C{name}, or L{None} (no such index)."""
        stack = self.stacks.get(name)
        return stack.bin if stack is not None else None

    def usage(self, name: str) -> tuple[Index, UsageLog] | None:
        """The hosted index C{name} and its download counts, or L{None}."""
        stack = self.stacks.get(name)
        usage = stack.usage if stack is not None else None
        if stack is None or usage is None:
            return None
        return stack.index, usage

    def sizes(self, name: str) -> tuple[int, int, int | None] | None:
        """
        C{(projects, files, bytes)} the hosted index C{name} holds (the
        bytes L{None} while a start still loads records), summed again only
        when it changed (its C{/metrics}'); L{None} for a view or no index.
        """
        stack = self.stacks.get(name)
        return stack.part.sizes() if stack is not None else None

    def upstream_sources(self) -> list[UpstreamSource]:
        """The upstream caches: C{[upstream]}'s (the default index's), then each named one."""
        default = self.stacks.get(DEFAULT)
        part = default.upstream_part if default is not None else None
        return ([part.source] if part is not None else []) + [
            named.source for named, _ in self.upstreams.values()]

    def hosted_sources(self, name: str) -> tuple[str, ...]:
        """
        The hosted indexes index C{name} lists the projects of (its bases,
        transitively), itself left out: whose advisories keys do not
        reach it (C{advisories check} says so where one is stricter).
        """
        view = self.views.get(name)
        order = view.order if view is not None else ()
        return tuple(source.name for source in order
                     if source.hosted is not None and source.name != name)

    def releases_of(self, name: str) -> Callable[[str], set[str]]:
        """
        C{releases(project)}: the versions of the normalized C{project}
        index C{name} knows of (its sources' hosted files and cached
        upstream pages), for the decisions' log.
        """
        view = self.views.get(name)
        order = view.order if view is not None else ()

        def releases(project: str) -> set[str]:
            found: set[str] = set()
            for source in order:
                if source.hosted is not None:
                    held = source.hosted.project(project)
                    if held is not None:
                        found.update(r.version for r in held.files.values())
                elif source.upstream is not None:
                    cached = source.upstream.cached(project)
                    if cached is not None:
                        found.update(f.version for f in cached[1])
            return found
        return releases


def drop_advised_pages(index: Index, upstream: UpstreamProxy | None,
                       projects: Iterable[str] | None) -> None:
    """
    Drop the pages a hosted C{index} keeps of C{projects} (normalized;
    L{None}: of every project), and those of its C{upstream}'s: the
    advisories or the rules changed for them. A hosted project counts a
    change (L{pypid.core.indexes.project.Project.changes}), so the pages composed
    of it elsewhere are composed again.
    """
    if projects is None:
        for every in index.projects():
            index.rendered.project_changed(every)
        if upstream is not None:
            upstream.pages.advisories_changed(None)
        return
    projects = list(projects)
    for project in projects:
        held = index.project(project)
        if held is not None:
            index.rendered.project_changed(held)
    if upstream is not None:
        upstream.pages.advisories_changed(projects)


def _retention(config: Config, name: str) -> RetentionKeys:
    """
    The retention keys of the hosted index C{name}: C{[retention]}'s for
    the default, its section's (filled from C{[retention]}) for another.
    """
    settings = config.indexes.get(name) if name != DEFAULT else None
    return settings if settings is not None else config.retention


_T = TypeVar("_T")


def _by_index(config: Config, pick: Callable[[ServerConfig | IndexConfig], _T]) -> dict[str, _T]:
    """
    C{pick(section)} of each index: the default's of C{[pypid]}, each named
    one's of its section (which takes C{[pypid]}'s keys it does not set).
    """
    found = {DEFAULT: pick(config.server)}
    for name, settings in config.indexes.items():
        if name != DEFAULT:
            found[name] = pick(settings)
    return found


def upload_rules(config: Config) -> dict[str, UploadRules]:
    """Each index's L{UploadRules}."""
    return _by_index(config, lambda section: section.upload_rules)


def advisory_rules(config: Config) -> dict[str, AdvisoryRules]:
    """Each index's L{AdvisoryRules}."""
    return _by_index(config, lambda section: section.advisory_rules)


def _upstreams(config: Config, run: Run, reactor: IReactorTime,
               default: UpstreamProxy | None, render: Renderer,
               ) -> tuple[dict[str, tuple[UpstreamPart, SavedState]], dict[str, SourceSide]]:
    """
    The named upstreams' parts, and every upstream an index may name as
    its side (C{upstream:NAME}; C{upstream:default} is C{[upstream]}'s
    source, that of the default index's proxy).
    """
    if not config.upstreams and default is None:
        return {}, {}
    # (the upstream's modules load only with an upstream: they cost start-up time)
    from pypid.upstream.factory import UpstreamPart
    from pypid.upstream.saved_state import SavedState, state_path
    from pypid.upstream.source import SourceSide
    # (an upstream's own pages link files as a hosted index's relative pages
    # do, so that a page an index inherits unchanged is served as it is)
    own = cast("FileUrl", file_url_for(None))
    parts: dict[str, tuple[UpstreamPart, SavedState]] = {}
    sides: dict[str, SourceSide] = {}
    if default is not None:
        sides[UPSTREAM_PREFIX + DEFAULT] = SourceSide.of(default.source, own)
    for name in config.upstreams:
        learnt = Notice()
        part = UpstreamPart.named(config, name, run, reactor, learnt, render)
        saved = SavedState(part.source, state_path(config.server.snapshot, name), run, reactor,
                           config.server.snapshot_interval, learnt)
        parts[name] = (part, saved)
        sides[UPSTREAM_PREFIX + name] = SourceSide.of(part.source, own)
    return parts, sides


def _hosted_index(stacks: Mapping[str, HostedStack], name: str) -> Index | None:
    """The L{Index} of the hosted index C{name}, or L{None}."""
    stack = stacks.get(name)
    return stack.index if stack is not None else None


def _base(base_url: str | None, name: str) -> str | None:
    """The base URL of the index C{name}'s pages (served under C{/NAME/}), if any."""
    if base_url is None or name == DEFAULT:
        return base_url
    return f"{base_url}{name}/"


def _view_file_url(base_url: str | None, name: str) -> Callable[[ComposedFile], str]:
    """The link the pages of index C{name} give a file (as L{file_url_for} does)."""
    # (file_url_for reads only the project and filename a ComposedFile has)
    return cast(Callable[[ComposedFile], str], file_url_for(_base(base_url, name)))


def index_view(settings: IndexConfig | None, name: str, order: Sequence[str],
               stacks: Mapping[str, HostedStack], sides: Mapping[str, SourceSide],
               base_url: str | None, advisories: AdvisoryPolicy | None = None,
               namespaces: IndexNamespaces | None = None) -> IndexView:
    """
    The view of index C{name} (its section C{settings}, L{None} for the
    default index), reading its sources C{order} (L{source_order}) among
    C{stacks} and the upstreams' C{sides}, through its filters if it is a
    view, its pages applying C{advisories} (the index's policy) and showing
    its C{namespaces} (PEP 752): built
    alike at start-up and at C{SIGHUP} (L{pypid.state.index_reload}).
    """
    filters = view_filters(settings) if settings is not None and settings.view else Filters()
    own = stacks[name].index if name in stacks else None
    return IndexView(name, tuple(
        ChainSource(source, hosted=stacks[source].index) if source in stacks
        else ChainSource(source, upstream=sides[source])
        for source in order if source in stacks or source in sides),
        filters,
        # (a hosted index links as its own pages do: the very functions, so
        # that its view serves those pages as they are, IndexView.own)
        cast(Callable[[ComposedFile], str], own.file_url) if own is not None
        else _view_file_url(base_url, name),
        advisories=advisories if advisories is not None else no_advisories(),
        provenance_url=(own.rendered.provenance_url if own is not None
                        else provenance_url_for(_base(base_url, name))),
        namespaces=namespaces)


def source_order(config: Config, name: str) -> tuple[str, ...]:
    """
    The sources index C{name} reads, in order (L{resolve_order}): the
    indexes by name, the upstreams as C{upstream:NAME} (the default index's
    base is C{[upstream]}, when it has a mode). The daemon and the static
    export (C{pypid-export --index}) read an index alike.
    """
    bases = {other: [str(base) for base in index.bases]
             for other, index in config.indexes.items() if other != DEFAULT}
    if config.upstream.mode != "none":
        bases[DEFAULT] = [UPSTREAM_PREFIX + DEFAULT]
    views = {other for other, index in config.indexes.items() if index.view}
    return resolve_order(name, bases, views)


def view_filters(settings: IndexConfig) -> Filters:
    """A view's filters, from its section (the daemon's, and the static export's)."""
    return Filters(
        min_age=settings.min_age,
        as_of=settings.as_of.timestamp() if settings.as_of is not None else None,
        include=settings.include or ("*",), exclude=settings.exclude,
        hide_prereleases=settings.prereleases == "hide",
        hide_yanked=settings.yanked == "hide")


def _bases_first(indexes: Mapping[str, IndexConfig]) -> Sequence[str]:
    """The index names, each after the indexes it is based on, else in file order."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order or name not in indexes:
            return
        # (cycles were refused with the configuration)
        for base in indexes[name].bases:
            if not base.upstream:
                visit(base.name)
        order.append(name)

    for name in indexes:
        visit(name)
    return order
