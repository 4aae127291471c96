"""
The indexes of a server: its hosted indexes, each a stack of its own
(L{pypid.state.hosted_stack.HostedStack}), and its views; what the
configuration says of each index is read by L{pypid.state.index_sections}.

A view keeps pages only as they are asked; a named upstream is held
once however many indexes name it (L{pypid.upstream.source.SourceSide}).

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
    The server's indexes: the hosted stacks by name (the default first,
    then the named ones, bases before the indexes based on them), and for
    every index, views included, its sources in order and its view.

    @ivar stacks: name -> L{HostedStack}.
    @ivar orders: name -> the names of its sources, resolved
        (L{pypid.core.indexes.index_names.resolve_order}: itself unless a view,
        its bases breadth first, the upstreams, C{upstream:NAME}, last).
    @ivar composed: name -> its L{ComposedIndex} over its sources.
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
    @ivar namespaces: name -> the PEP 752 namespaces the index serves,
        for every index; the same object for its lifetime, its grants
        taken in place (L{pypid.state.grant_keeper.serve_namespaces}, by L{grants}).
    @ivar grants: keeps when each grant came into force, in the default
        index's storage (L{GrantKeeper}); L{None} for a storage that keeps none.
    @ivar serials: every hosted index's projects' serials, the journal's
        (L{ProjectSerials}), which their pages carry.
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
        @param sharing: what the storages share with other servers and
            workers; without a bucket's client, one is made here when there
            are named indexes (a server of one index keeps its own).
        @raise pypid.core.util.startup.StartupError: when a storage cannot be
            built from the configuration.
        """
        hosted = hosted_names(config)[1:]
        if sharing.bucket is None and hosted and config.bucket is not None:
            sharing = attrs.evolve(sharing, bucket=SharedBucket.create(config, run, reactor))
        stacks: dict[str, HostedStack] = {}
        # (filled before any index loads: every stack is made first)
        peers = partial(_hosted_index, stacks) if hosted else None
        # (the serials of every index's projects, which their pages carry:
        # the journal's, taken in as it is read)
        serials = ProjectSerials()
        if board is None:
            board = AdvisoryBoard()
        policies = {name: AdvisoryPolicy(rules, board)
                    for name, rules in advisory_rules(config).items()}
        spaces = {name: IndexNamespaces(name, config.namespaces) for name in policies}
        stacks[DEFAULT] = HostedStack.create(config, DEFAULT, run, reactor, sharing=sharing,
                                             upstream=upstream, peers=peers,
                                             serials=serials,
                                             advisories=policies[DEFAULT],
                                             namespaces=spaces[DEFAULT], render=render)
        for name in hosted:
            stacks[name] = HostedStack.create(config, name, run, reactor, sharing=sharing,
                                              peers=peers, serials=serials,
                                              advisories=policies[name],
                                              namespaces=spaces[name], render=render)
        upstreams, sides = _upstreams(config, run, reactor, stacks[DEFAULT].upstream, render,
                                      sharing.hub, sharing.journal)
        orders: dict[str, tuple[str, ...]] = {}
        made: dict[str, ComposedIndex] = {}
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
                       waivers=waivers, namespaces=spaces, grants=grants, serials=serials)
        serials.listen(registry.serial_moved)
        board.listen(registry.advisories_changed)
        if waivers is not None:
            waivers.listen(registry.take_waivers)
        return registry

    def changes_read(self) -> int | None:
        """
        The serial up to which every hosted index's shared storage took in
        the others' changes (the least); L{None}: none is shared.
        """
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
        Every stack's parts of one kind (L{pypid.state.hosted_stack.PART_KINDS}),
        the default's first and named C{kind}, each named one's C{kind:NAME}: each named
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
        composed = self.composed.get(name)
        order = composed.order if composed is not None else ()
        return tuple(source.name for source in order
                     if source.hosted is not None and source.name != name)

    def releases_of(self, name: str) -> Callable[[str], set[str]]:
        """
        C{releases(project)}: the versions of the normalized C{project}
        index C{name} knows of (its sources' hosted files and cached
        upstream pages), for the decisions' log.
        """
        composed = self.composed.get(name)
        order = composed.order if composed is not None else ()

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


def _upstreams(config: Config, run: Run, reactor: IReactorTime,
               default: UpstreamProxy | None, render: Renderer, hub: Hub = LONE,
               journal: IJournal | None = None,
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


def _view_file_url(base_url: str | None, name: str) -> Callable[[ComposedFile], str]:
    """The link the pages of index C{name} give a file (as L{file_url_for} does)."""
    # (file_url_for reads only the project and filename a ComposedFile has)
    return cast(Callable[[ComposedFile], str], file_url_for(index_base(base_url, name)))


def index_view(settings: IndexConfig | None, name: str, order: Sequence[str],
               stacks: Mapping[str, HostedStack], sides: Mapping[str, SourceSide],
               base_url: str | None, advisories: AdvisoryPolicy | None = None,
               namespaces: IndexNamespaces | None = None) -> ComposedIndex:
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
    return ComposedIndex(name, tuple(
        ChainSource(source, hosted=stacks[source].index) if source in stacks
        else ChainSource(source, upstream=sides[source])
        for source in order if source in stacks or source in sides),
        filters,
        # (a hosted index links as its own pages do: the very functions, so
        # that its view serves those pages as they are, ComposedIndex.own)
        cast(Callable[[ComposedFile], str], own.file_url) if own is not None
        else _view_file_url(base_url, name),
        advisories=advisories if advisories is not None else no_advisories(),
        provenance_url=(own.rendered.provenance_url if own is not None
                        else provenance_url_for(index_base(base_url, name))),
        namespaces=namespaces)
