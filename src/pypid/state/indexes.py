"""
The indexes of a server: its hosted indexes, each a stack of its own, and its
views. A view keeps pages only as they are asked; a named upstream is held once
however many indexes name it. At C{SIGHUP} the stacks stay and the views may
change (L{pypid.state.index_reload}). Every index acts on the one
L{AdvisoryBoard} by its own L{AdvisoryPolicy}; when the database or an index's
rules change, only the pages of the projects named are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, cast

import attrs
from twisted.application.service import IService
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from pypid.config import Config
from pypid.config.index_settings import IndexConfig
from pypid.core.dists.readme import Renderer, render_description
from pypid.core.indexes.composed import ComposedIndex
from pypid.core.indexes.composition import ChainSource, ComposedFile, Filters
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import DEFAULT, UPSTREAM_PREFIX
from pypid.core.indexes.links import file_url_for, provenance_url_for
from pypid.core.indexes.namespace_api import IndexNamespaces
from pypid.core.parts import IMetricsSource
from pypid.core.records.metrics import Family
from pypid.core.records.serials import ProjectSerials
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
from pypid.jobs.run import Run
from pypid.machine.topics import LONE, Hub
from pypid.state.advisory_decisions import DecisionLog
from pypid.state.cleanup import IndexCleanup
from pypid.state.grant_keeper import GrantKeeper, namespace_found, serve_namespaces
from pypid.state.hosted_stack import HostedStack
from pypid.state.index_sections import (
    advisory_rules,
    hosted_names,
    index_base,
    source_order,
    upload_rules,
    view_filters,
)
from pypid.state.recycle_bin import RecycleBin
from pypid.state.usage_log import UsageLog
from pypid.state.waiver_keeper import WaiverKeeper
from pypid.storage.base.capabilities import IServerDocuments
from pypid.storage.base.journal import IJournal
from pypid.storage.factory import ALONE, SharedBucket, Sharing

if TYPE_CHECKING:
    # (the upstream's modules load only with [upstream]: they cost start-up time)
    from pypid.upstream.factory import MakeUpstream, UpstreamPart
    from pypid.upstream.page_view import FileUrl
    from pypid.upstream.proxy import UpstreamProxy
    from pypid.upstream.saved_state import SavedState
    from pypid.upstream.source import SourceSide, UpstreamSource


@implementer(IMetricsSource)
@attrs.frozen(eq=False)
class IndexRegistry:
    """
    The server's indexes: the hosted stacks by name (the default first, bases
    before the indexes based on them), and for every index, views included, its
    sources in order and its view.

    @ivar upstreams: each named upstream's part and the part keeping its state.
    @ivar sides: C{upstream:NAME} -> that upstream as the pages read it,
        C{upstream:default} (C{[upstream]}) too when an index names it.
    @ivar policies: name -> what the index does about the advisories; the
        same object for its lifetime, its rules taken in place at a reload.
    @ivar waivers: the advisory waivers admins keep (in the default index's
        storage); L{None} for a storage that keeps none.
    @ivar grants: when each namespace grant came into force; L{None} likewise.
    @ivar namespaces: name -> the PEP 752 namespaces the index serves; the
        same object for its lifetime, its grants taken in place.
    """

    stacks: Mapping[str, HostedStack]
    orders: Mapping[str, tuple[str, ...]]
    composed: Mapping[str, ComposedIndex]
    upstreams: Mapping[str, tuple[UpstreamPart, SavedState]] = attrs.field(factory=dict)
    sides: Mapping[str, SourceSide] = attrs.field(factory=dict)
    board: AdvisoryBoard = attrs.field(factory=AdvisoryBoard)
    policies: Mapping[str, AdvisoryPolicy] = attrs.field(factory=dict)
    decisions: DecisionLog = attrs.field(factory=DecisionLog)
    waivers: WaiverKeeper | None = None
    namespaces: Mapping[str, IndexNamespaces] = attrs.field(factory=dict)
    grants: GrantKeeper | None = None
    serials: ProjectSerials = attrs.field(factory=ProjectSerials)

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
                    render: Renderer = render_description,
                    sharing: Sharing = ALONE) -> IndexRegistry:
        """
        Every index of the configuration: a stack per hosted index, and the
        orders and views of all, each with its advisory policy.

        @param upstream: builds the default index's upstream part; L{None}: none.
        @param board: the server's advisories; L{None}: an empty board.
        @param sharing: what the storages share with other servers and
            workers; without a bucket's client, one is made here when there
            are named indexes.
        @raise pypid.core.util.startup.StartupError: a storage cannot be built.
        """
        hosted = hosted_names(config)[1:]
        if sharing.bucket is None and hosted and config.bucket is not None:
            sharing = attrs.evolve(sharing, bucket=SharedBucket.create(config, run, reactor))
        stacks: dict[str, HostedStack] = {}
        # (filled before any index loads: every stack is made first)
        peers = partial(_hosted_index, stacks) if hosted else None
        serials = ProjectSerials()
        board = board if board is not None else AdvisoryBoard()
        policies = {name: AdvisoryPolicy(rules, board)
                    for name, rules in advisory_rules(config).items()}
        spaces = {name: IndexNamespaces(name, config.namespaces) for name in policies}
        for name in (DEFAULT, *hosted):
            stacks[name] = HostedStack.create(
                config, name, run, reactor, sharing=sharing,
                upstream=upstream if name == DEFAULT else None, peers=peers, serials=serials,
                advisories=policies[name], namespaces=spaces[name], render=render)
        upstreams, sides = _upstreams(config, run, reactor, stacks[DEFAULT].upstream, render,
                                      sharing.hub, sharing.journal)
        orders: dict[str, tuple[str, ...]] = {}
        made: dict[str, ComposedIndex] = {}
        for name in [DEFAULT, *(n for n in config.indexes if n != DEFAULT)]:
            orders[name] = source_order(config, name)
            made[name] = index_view(config.indexes.get(name), name, orders[name], stacks,
                                    sides, config.server.base_url, policies[name],
                                    spaces[name])
        # (the default index's storage keeps the waivers and the grants)
        default_storage = stacks[DEFAULT].storage.storage
        documents = (cast(IServerDocuments, default_storage)
                     if IServerDocuments.providedBy(default_storage) else None)
        waivers = WaiverKeeper(documents, reactor) if documents is not None else None
        grants = (GrantKeeper(documents, reactor, partial(serve_namespaces, spaces, stacks),
                              partial(namespace_found, stacks), config)
                  if documents is not None else None)
        registry = cls(stacks, orders, made, upstreams, sides, board, policies,
                       waivers=waivers, namespaces=spaces, grants=grants, serials=serials)
        serials.listen(registry.serial_moved)
        board.listen(registry.advisories_changed)
        if waivers is not None:
            waivers.listen(registry.take_waivers)
        return registry

    def changes_read(self) -> int | None:
        """The least serial up to which the hosted indexes' shared storages took in changes."""
        read = [stack.sync.changes_read() for stack in self.stacks.values()
                if stack.sync is not None]
        return min((serial or 0 for serial in read), default=None)

    def serial_moved(self, index: str | None, project: str) -> None:
        """A project's serial moved: its kept pages, which carry it, are made again."""
        stack = self.stacks.get(DEFAULT if index is None else index)
        if stack is None:
            return
        held = stack.index.project(project)
        if held is not None:
            stack.index.rendered.project_changed(held)
        # (the root pages carry the serials too)
        stack.index.rendered.listing_changed()

    def upstream_parts(self, kind: str) -> list[tuple[str, IService]]:
        """
        The named upstreams' parts, C{upstream} (storage and connections) or
        C{upstream-state} (state read back and saved), named C{kind:NAME}.
        """
        return [(f"{kind}:{name}", part if kind == "upstream" else saved)
                for name, (part, saved) in self.upstreams.items()]

    def metric_families(self) -> Iterator[Family]:
        """Every hosted index's numbers for C{/metrics}, the default's first."""
        for stack in self.stacks.values():
            yield from stack.part.metric_families()

    def parts(self, kind: str) -> list[tuple[str, IService]]:
        """
        Every stack's parts of one kind
        (L{pypid.state.hosted_stack.PART_KINDS}), the default's first and named
        C{kind}, the others C{kind:NAME}: so every storage is prepared and
        every index loaded before the listeners open.
        """
        return [(kind if stack.name == DEFAULT else f"{kind}:{stack.name}", part)
                for stack in self.stacks.values() for found, part in stack.parts()
                if found == kind]

    def take_views(self, reloaded: IndexRegistry) -> None:
        """Take, in place, the orders and views of a configuration read again (C{SIGHUP})."""
        for mine, theirs in ((self.orders, reloaded.orders), (self.composed, reloaded.composed),
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
        While the advisories are unread: their state (C{READING} or C{FAILED})
        and whether some index fails closed meanwhile; L{None} once read.
        """
        state = self.board.unread
        if state is None:
            return None
        return state, any(policy.rules.mode in (HIDE, DENY)
                          for policy in self.policies.values())

    def advisories_changed(self, before: AdvisoryDB, after: AdvisoryDB) -> None:
        """
        The board's database was replaced: drop the pages of the projects
        either names in every index acting on advisories; log what changed.
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
        Act by the indexes' new C{rules} (name -> rules; those not named keep
        theirs): drop the pages of the projects the board names in each index
        whose rules changed, log the decisions that changed; their names.
        """
        changed = [name for name, new in rules.items()
                   if name in self.policies and self.policies[name].take_rules(new)]
        if self.board.unread is not None:
            # (unread advisories name every project: an index must fail closed)
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
        Act by the advisory waivers admins keep (at a start, or after a change
        here or on another server): in each index whose waivers changed, drop
        the pages of the projects either set names and log the decisions that
        changed; the names of those indexes.
        """
        changed: list[tuple[str, frozenset[str]]] = []
        for name, policy in self.policies.items():
            before, after = policy.waived, waivers.of_index(name)
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
        """Drop the pages index C{name} keeps of C{projects} (L{None}: all; views go by stamp)."""
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
        if stack is None or stack.usage is None:
            return None
        return stack.index, stack.usage

    def sizes(self, name: str) -> tuple[int, int, int | None] | None:
        """C{(projects, files, bytes)} the hosted index C{name} holds, as its C{/metrics}."""
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
        The hosted indexes, itself left out, whose projects index C{name}
        lists (its bases, transitively), whose advisories keys do not reach it.
        """
        return tuple(source.name for source in self._order(name)
                     if source.hosted is not None and source.name != name)

    def _order(self, name: str) -> tuple[ChainSource, ...]:
        composed = self.composed.get(name)
        return composed.order if composed is not None else ()

    def releases_of(self, name: str) -> Callable[[str], set[str]]:
        """
        C{releases(project)}: the versions of C{project} index C{name} knows
        of (hosted files and cached upstream pages), for the decisions' log.
        """
        order = self._order(name)

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
    Drop the pages a hosted C{index} and its C{upstream} keep of C{projects}
    (normalized; L{None}: all), whose advisories or rules changed. A hosted
    project counts a change, so the pages composed of it elsewhere go too.
    """
    if projects is None:
        for every in index.projects():
            index.rendered.project_changed(every)
    else:
        projects = list(projects)
        for project in projects:
            held = index.project(project)
            if held is not None:
                index.rendered.project_changed(held)
    if upstream is not None:
        upstream.pages.advisories_changed(projects)


def _upstreams(config: Config, run: Run, reactor: IReactorTime,
               default: UpstreamProxy | None, render: Renderer, hub: Hub = LONE,
               journal: IJournal | None = None,
               ) -> tuple[dict[str, tuple[UpstreamPart, SavedState]], dict[str, SourceSide]]:
    """The named upstreams' parts, and every upstream an index may name (C{upstream:NAME})."""
    if not config.upstreams and default is None:
        return {}, {}
    # (the upstream's modules load only with an upstream: they cost start-up time)
    from pypid.upstream.factory import UpstreamPart
    from pypid.upstream.saved_state import SavedState, state_path
    from pypid.upstream.source import SourceSide
    # (an upstream's pages link files as a hosted index's do, to be served as they are)
    own = cast("FileUrl", file_url_for(None))
    parts: dict[str, tuple[UpstreamPart, SavedState]] = {}
    sides: dict[str, SourceSide] = {}
    if default is not None:
        sides[UPSTREAM_PREFIX + DEFAULT] = SourceSide.of(default.source, own)
    for name in config.upstreams:
        learnt = Notice()
        part = UpstreamPart.named(config, name, run, reactor, learnt, render, hub, journal)
        saved = SavedState(part.source, state_path(config.server.snapshot, name), run, reactor,
                           config.server.snapshot_interval, learnt,
                           writes=hub.runs_once)
        parts[name] = (part, saved)
        sides[UPSTREAM_PREFIX + name] = SourceSide.of(part.source, own)
    return parts, sides


def _hosted_index(stacks: Mapping[str, HostedStack], name: str) -> Index | None:
    """The L{Index} of the hosted index C{name}, or L{None}."""
    stack = stacks.get(name)
    return stack.index if stack is not None else None


def index_view(settings: IndexConfig | None, name: str, order: Sequence[str],
               stacks: Mapping[str, HostedStack], sides: Mapping[str, SourceSide],
               base_url: str | None, advisories: AdvisoryPolicy | None = None,
               namespaces: IndexNamespaces | None = None) -> ComposedIndex:
    """
    The view of index C{name} (its section C{settings}, L{None} for the
    default), reading its sources C{order} among C{stacks} and C{sides},
    through its filters if a view, applying C{advisories} and showing its
    C{namespaces}: alike at start-up and at C{SIGHUP}.
    """
    filters = view_filters(settings) if settings is not None and settings.view else Filters()
    own = stacks[name].index if name in stacks else None
    return ComposedIndex(name, tuple(
        ChainSource(source, hosted=stacks[source].index) if source in stacks
        else ChainSource(source, upstream=sides[source])
        for source in order if source in stacks or source in sides),
        filters,
        # (a hosted index links with its own pages' very functions, so that its
        # view serves those pages as they are)
        cast(Callable[[ComposedFile], str],
             own.file_url if own is not None else file_url_for(index_base(base_url, name))),
        advisories=advisories if advisories is not None else no_advisories(),
        provenance_url=(own.rendered.provenance_url if own is not None
                        else provenance_url_for(index_base(base_url, name))),
        namespaces=namespaces)
