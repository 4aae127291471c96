"""
What C{SIGHUP} changes of the indexes, and what it refuses.

A view has no storage and no state, so a reload may add, remove or change one:
L{reload_indexes} builds the new views while it prepares (one whose sources and
filters stay is kept, with its pages; a changed one is new, so nothing composed
under its old filters is served again), and the commit swaps them all in at
once, so a request never meets a mix.

Each index's advisory keys and C{allow_tag_mismatch} are taken in place at the
commit. The rest is refused, the whole reload with it (L{_refuse_restarts}):
work that could fail after the other parts took the reload.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import attrs
from zope.interface import implementer

from pypid.config import Config
from pypid.core.indexes.index_names import DEFAULT, UPSTREAM_PREFIX
from pypid.core.indexes.namespace_api import IndexNamespaces
from pypid.core.parts import IReloadable
from pypid.core.security.advisories import AdvisoryPolicy
from pypid.core.util.startup import StartupError
from pypid.state.index_sections import advisory_rules, source_order, upload_rules
from pypid.state.indexes import IndexRegistry, index_view


@attrs.frozen
class ReloadedIndexes:
    """
    The indexes of a configuration read again, ready to be taken: the running
    stacks with the new orders and views, and the views added (in file
    order), removed, and whose sources or filters changed.
    """

    registry: IndexRegistry
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    def summary(self) -> str:
        """A few words for the reload's log line (C{prod added, qa changed})."""
        said = [f"{name} {what}" for names, what in ((self.added, "added"),
                                                    (self.removed, "removed"),
                                                    (self.changed, "changed"))
                for name in names]
        return "views " + ", ".join(said)


def reload_indexes(registry: IndexRegistry, started: Config,
                   config: Config) -> ReloadedIndexes | None:
    """
    The views of C{config} over the stacks of C{registry}; L{None} when none
    changed.

    @param started: the configuration the server started with.
    @raise StartupError: one line naming the section, when C{config}
        changes what only a restart changes.
    """
    _refuse_restarts(registry, started, config)
    named = [name for name in config.indexes if name != DEFAULT]
    hosted = {name for name in named if not config.indexes[name].view}
    served = [name for name in registry.composed if name != DEFAULT]
    upstreams = _running_upstreams(started)
    orders = {DEFAULT: registry.orders[DEFAULT]}
    for name in named:
        order = orders[name] = source_order(config, name)
        if name in hosted:
            if config.indexes[name].bases != started.indexes[name].bases:
                _refuse(config, f"[index:{name}] bases", "a hosted index's bases change at "
                        "the next restart")
            if order != registry.orders[name]:
                _refuse(config, f"[index:{name}] bases", "its sources would change through "
                        f"a view's bases (from {', '.join(registry.orders[name])} to "
                        f"{', '.join(order)}); a hosted index's sources change at the next "
                        "restart")
        for source in order:
            if source.startswith(UPSTREAM_PREFIX) and source not in upstreams:
                _refuse(config, f"[index:{name}] bases", f"{source}: the server runs no such "
                        "upstream; an upstream is added at the next restart")
    composed = {DEFAULT: registry.composed[DEFAULT]}
    # (an index keeps its policy, its rules changed at the commit; a new view gets one)
    rules = advisory_rules(config)
    policies: dict[str, AdvisoryPolicy] = {
        name: registry.policies.get(name) or AdvisoryPolicy(rules[name], registry.board)
        for name in (DEFAULT, *named)}
    # (so do its namespaces, whose grants change with the keeper's commit)
    first = registry.namespaces.get(DEFAULT)
    spaces: dict[str, IndexNamespaces | None] = {
        name: registry.namespaces.get(name) or (first.like(name) if first is not None else None)
        for name in (DEFAULT, *named)}
    changed = []
    for name in named:
        # (the links of its pages keep the base URL the server started with)
        made = index_view(config.indexes[name], name, orders[name], registry.stacks,
                          registry.sides, started.server.base_url, policies[name],
                          spaces[name])
        kept = registry.composed.get(name)
        if (kept is not None and registry.orders[name] == orders[name]
                and kept.filters == made.filters):
            composed[name] = kept      # (with the pages it composed)
        else:
            composed[name] = made
            if kept is not None:
                changed.append(name)
    added = tuple(name for name in named if name not in registry.composed)
    removed = tuple(name for name in served if name not in composed)
    if not (added or removed or changed):
        return None
    return ReloadedIndexes(attrs.evolve(registry, orders=orders, composed=composed,
                                        policies=policies,
                                        namespaces={name: found for name, found in spaces.items()
                                                    if found is not None}),
                           added, removed, tuple(changed))


def _refuse_restarts(registry: IndexRegistry, started: Config, config: Config) -> None:
    """
    Refuse what only a restart changes: the upstreams, the namespaces of a
    server with an upstream, a hosted index added or removed, the first named
    index or the last.

    @raise StartupError: one line naming the section.
    """
    _refuse_upstreams(started, config)
    if config.namespaces != started.namespaces and (started.upstream.mode != "none"
                                                    or started.upstreams):
        # (the upstreams' private names include the namespaces: set at start)
        _refuse(config, "[namespaces]", "a change needs a restart on a server with an "
                "upstream (a reserved namespace is private toward it)")
    named = [name for name in config.indexes if name != DEFAULT]
    hosted = {name for name in named if not config.indexes[name].view}
    running = set(registry.stacks) - {DEFAULT}
    for name in named:
        if name in hosted and name not in running:
            _refuse(config, f"[index:{name}]", "adding a hosted index needs a restart (its "
                    "storage is prepared and its files loaded at start-up)")
    for name in sorted(running - hosted):
        _refuse(config, f"[index:{name}]", "removing a hosted index needs a restart (its "
                "uploads in flight finish and its last snapshot is taken as the server stops)")
    served = [name for name in registry.composed if name != DEFAULT]
    if named and not served:
        _refuse(config, f"[index:{named[0]}]", "the first named index needs a restart (a "
                "server of one index serves no /NAME/ path)")
    if served and not named:
        _refuse(config, f"[index:{served[0]}]", "removing the last named index needs a "
                "restart (a server of one index serves no /NAME/ path)")


def _running_upstreams(started: Config) -> Collection[str]:
    """The upstreams the server runs, as bases name them (C{upstream:NAME})."""
    names = {UPSTREAM_PREFIX + name for name in started.upstreams}
    if started.upstream.mode != "none":
        names.add(UPSTREAM_PREFIX + DEFAULT)
    return names


def _refuse_upstreams(started: Config, config: Config) -> None:
    for name in config.upstreams:
        if name not in started.upstreams:
            _refuse(config, f"[upstream:{name}]", "adding an upstream needs a restart (its "
                    "cache, client and snapshot are made at start-up)")
    for name in started.upstreams:
        if name not in config.upstreams:
            _refuse(config, f"[upstream:{name}]", "removing an upstream needs a restart "
                    "(its cache and snapshot are kept until the server stops)")


def _refuse(config: Config, where: str, why: str) -> None:
    raise StartupError(f"{config.source}: {where}: {why}")


#: C{serve(registry) -> commit}: the web side's answers of the named
#: indexes of C{registry}, built; C{commit()} swaps them in.
Serve = Callable[[IndexRegistry], Callable[[], None]]


@implementer(IReloadable)
@attrs.define(eq=False)
class IndexReload:
    """
    The indexes' share of a reload: the views of the configuration read
    again and the web's answers of them, prepared and taken together.
    """

    _registry: IndexRegistry
    _started: Config
    _serve: Serve

    def prepare_reload(self, config: Config | None) -> Callable[[], str] | None:
        """Build the views and their answers; refuse what needs a restart (L{StartupError})."""
        if config is None:
            return None
        reloaded = reload_indexes(self._registry, self._started, config)
        # (the advisory rules that differ from those of the indexes running)
        rules = {name: found for name, found in advisory_rules(config).items()
                 if name in self._registry.policies
                 and self._registry.policies[name].rules != found}
        uploads = [name for name, found in upload_rules(config).items()
                   if name in self._registry.stacks
                   and self._registry.stacks[name].uploads.current != found]
        if reloaded is None and not rules and not uploads:
            return None
        served = self._serve(reloaded.registry) if reloaded is not None else None

        def commit() -> str:
            said = []
            if reloaded is not None and served is not None:
                self._registry.take_views(reloaded.registry)
                served()
                said.append(reloaded.summary())
            taken = self._registry.take_rules(rules)
            if taken:
                said.append("advisory rules of " + ", ".join(taken))
            if uploads:
                self._registry.take_upload_rules(config)
                said.append("upload rules of " + ", ".join(uploads))
            return "; ".join(said)
        return commit
