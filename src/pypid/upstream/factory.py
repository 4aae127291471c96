"""
The upstreams built from C{[upstream]} and each C{[upstream:NAME]}: their
page cache, their client (with its credentials), and the storage of the
files they fetched (beside the hosted ones, under C{.upstream} for
C{[upstream]} and C{.indexes/.upstreams/NAME/} for a named one); and
L{UpstreamPart}, an upstream as a part of the daemon.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from pypid.config import Config
from pypid.config.upstream_settings import UpstreamConfig
from pypid.core.dists.readme import Renderer, render_description
from pypid.core.indexes.links import ProvenanceURL
from pypid.core.indexes.namespaces import private_globs
from pypid.core.parts import IMetricsSource, IReloadable
from pypid.core.records.metrics import Family
from pypid.jobs.periodic import Periodic
from pypid.jobs.run import Run
from pypid.machine.topics import LONE, Hub
from pypid.storage.base.capabilities import ISharedStorage
from pypid.storage.base.interface import IStorage
from pypid.storage.base.measured import MeasuredStorage
from pypid.storage.factory import Sharing, below, make_storage
from pypid.storage.folder.shared_folder import SYNC_INTERVAL

if TYPE_CHECKING:
    # (types only: the rest of the upstream loads with a configured [upstream],
    # 24 ms of every start otherwise)
    from pypid.core.indexes.index import Index
    from pypid.core.security.advisories import AdvisoryPolicy
    from pypid.core.util.notice import Notice
    from pypid.storage.base.journal import IJournal
    from pypid.upstream.confusion import HostedIndex
    from pypid.upstream.machine_share import MachineShare
    from pypid.upstream.page_view import FileUrl
    from pypid.upstream.proxy import UpstreamProxy
    from pypid.upstream.source import UpstreamSource


#: C{make(index, learnt) -> part}: the part of C{[upstream]} over the default
#: index, built once the registry made it, telling C{learnt} what its cache learnt.
MakeUpstream = Callable[["Index", "Notice"], "UpstreamPart"]

#: Where the cache of C{[upstream:NAME]} is kept, under the storage's
#: folder or prefix (C{NAME/} below it); C{[upstream]}'s is C{.upstream}.
NAMED_CACHES = ".indexes/.upstreams"

log = Logger()


def cache_settings(config: Config, name: str | None) -> Config:
    """
    The storage settings of an upstream's cache: the packages', in C{.upstream}
    for C{[upstream]} (C{name} L{None}), or C{.indexes/.upstreams/NAME/}.
    """
    return below(config, ".upstream" if name is None else f"{NAMED_CACHES}/{name}",
                 bucket_snapshot=False)


@implementer(IMetricsSource, IReloadable)
class UpstreamPart(Service):
    """
    An upstream as a part of the daemon: its cache is loaded with the index,
    and its connections dropped as the server stops, after the requests in
    flight. The part of C{[upstream]} holds the default index's proxy too;
    that of an C{[upstream:NAME]} holds only the source.
    """

    def __init__(self, source: UpstreamSource, storage: MeasuredStorage,
                 proxy: UpstreamProxy | None = None) -> None:
        self.source = source
        self._storage = storage
        self._proxy = proxy
        share = source.machine
        # (a worker that answers nothing still takes in the others' pages and files)
        self._follow = (Periodic(share.sync, SYNC_INTERVAL, source.clock,
                                 what="The look at the other workers' upstream cache")
                        if share is not None else None)

    def startService(self) -> None:
        """Follow the machine's other workers, in a worker of several."""
        Service.startService(self)
        if self._follow is not None:
            self._follow.startService()

    @classmethod
    def maker(cls, config: Config, run: Run, reactor: IReactorTime,
              render: Renderer = render_description, hub: Hub = LONE,
              journal: IJournal | None = None) -> MakeUpstream | None:
        """
        What builds the part of C{[upstream]} over the default index
        (L{MakeUpstream}), or L{None} when C{[upstream]}'s mode is C{none}.
        """
        if config.upstream.mode == "none":
            return None

        def make(index: Index, learnt: Notice) -> UpstreamPart:
            # (the index's file_url, typed for a FileRecord, reads only the
            # project and filename an UpstreamFile has)
            return cls.from_config(config, run, reactor, index, cast("FileUrl", index.file_url),
                                   learnt, advisories=index.rendered.advisories,
                                   provenance_url=index.rendered.provenance_url, render=render,
                                   hub=hub, journal=journal)
        return make

    @classmethod
    def from_config(cls, config: Config, run: Run, reactor: IReactorTime,
                    index: HostedIndex, file_url: FileUrl,
                    learnt: Callable[[], None] | None = None,
                    advisories: AdvisoryPolicy | None = None,
                    provenance_url: ProvenanceURL | None = None,
                    render: Renderer = render_description, hub: Hub = LONE,
                    journal: IJournal | None = None) -> UpstreamPart:
        """
        The part of the configuration's C{[upstream]}, with the default index's proxy.

        @param learnt: called whenever a page was fetched or a file kept, so
            that the snapshot is saved soon.
        @param hub: in a worker of a machine, its hub: the cache's folder is the
            workers', its changes told in the store's C{journal}.
        @raise pypid.core.util.startup.StartupError: when C{[pypid] ca_bundle}
            cannot be used.
        """
        from pypid.upstream.proxy import UpstreamProxy

        source, storage = _make_source(config, config.upstream, None, run, reactor, learnt,
                                       render, hub, journal)
        return cls(source, storage, UpstreamProxy.create(source, index, file_url,
                                                             advisories, provenance_url))

    @classmethod
    def named(cls, config: Config, name: str, run: Run, reactor: IReactorTime,
              learnt: Callable[[], None] | None = None,
              render: Renderer = render_description, hub: Hub = LONE,
              journal: IJournal | None = None) -> UpstreamPart:
        """
        The part of C{[upstream:NAME]}: its source alone, its cache under
        C{.indexes/.upstreams/NAME/}, its own budgets and state.

        @raise KeyError: no such section.
        @raise pypid.core.util.startup.StartupError: when C{[pypid] ca_bundle}
            cannot be used.
        """
        source, storage = _make_source(config, config.upstreams[name], name, run, reactor,
                                       learnt, render, hub, journal)
        return cls(source, storage)

    @property
    def proxy(self) -> UpstreamProxy:
        """The default index's proxy; L{LookupError} for a named upstream's part."""
        if self._proxy is None:
            raise LookupError(f"upstream:{self.source.name} has no default proxy: "
                              "UpstreamProxy.create(part.source, hosted, file_url)")
        return self._proxy

    def prepare_reload(self, config: Config | None) -> Callable[[], str] | None:
        """
        At C{SIGHUP}: take the upstream's credentials (a rotation takes
        effect) and C{hosts}, the keys of an upstream a reload applies. A
        change of C{hosts} drops the connections kept for reuse: one to a
        host no longer named would never be used again, and need not wait
        out its idle time.
        """
        if config is None:
            return None
        name = self.source.name
        up = config.upstream if self._proxy is not None else config.upstreams.get(name)
        client = self.source.client
        if up is None or (up.credentials, tuple(up.hosts)) == (client.credentials,
                                                               client.file_hosts.entries):
            return None
        taken: UpstreamConfig = up

        def commit() -> str:
            hosts_changed = tuple(taken.hosts) != client.file_hosts.entries
            client.reconfigure(taken.hosts, taken.credentials)
            if hosts_changed:
                self.source.close()
            return f"upstream {name}'s credentials and hosts"
        return commit

    def stopService(self) -> Deferred[Any]:
        """
        Drop the connections to the upstream, and close the cache's storage
        (its lock let go: a server started again in the same process takes it).
        """
        Service.stopService(self)
        # (a look under way ends before the storage closes)
        following = maybeDeferred(self._follow.stopService) if self._follow is not None else None
        self.source.close()
        closing = (following.addBoth(lambda _: self._storage.close())
                   if following is not None else maybeDeferred(self._storage.close))
        closing.addErrback(lambda f: log.warn("Cannot close the upstream cache's storage "
                                              "cleanly: {error}", error=f.getErrorMessage()))
        return closing

    def metric_families(self) -> Iterator[Family]:
        """The source's pages, files and fetches, and its storage's operations."""
        yield from self.source.metric_families()
        store = "upstream" if self._proxy is not None else f"upstream:{self.source.name}"
        yield from self._storage.operation_families(store)


def cache_storage(config: Config, name: str | None, run: Run, reactor: IReactorTime,
                  hub: Hub = LONE, journal: IJournal | None = None,
                  render: Renderer = render_description) -> tuple[IStorage, MachineShare | None]:
    """The storage of an upstream's cache and, in a worker of several, the machine's share."""
    from pypid.upstream.machine_share import MachineShare

    settings = cache_settings(config, name)
    stored = make_storage(settings, run, reactor, sharing=Sharing(journal=journal, hub=hub),
                          render=render)
    # (a machine's workers share the cache: a worker of several, told by the ring)
    share = (MachineShare(hub, cast(ISharedStorage, stored), settings.storage.path, run, reactor)
             if not hub.alone else None)
    return stored, share


def _make_source(config: Config, up: UpstreamConfig, name: str | None, run: Run,
                 reactor: IReactorTime, learnt: Callable[[], None] | None,
                 render: Renderer, hub: Hub = LONE,
                 journal: IJournal | None = None) -> tuple[UpstreamSource, MeasuredStorage]:
    """The source of C{up} (C{[upstream]} when C{name} is L{None}) and its storage."""
    from pypid.http.client import make_agent, outbound_policy
    from pypid.upstream.cache import PageCache
    from pypid.upstream.confusion import UpstreamPolicy
    from pypid.upstream.fetch import UpstreamClient
    from pypid.upstream.source import DEFAULT_UPSTREAM, UpstreamSource

    # (the configuration refuses an upstream without a url: only one with
    # a url gets a source)
    assert up.url is not None
    stored, share = cache_storage(config, name, run, reactor, hub, journal, render)
    storage = MeasuredStorage(stored, time.monotonic)
    # (the hosts named are the client's, which a reload changes: the agent
    # asks it at each connection)
    agent, pool = make_agent(reactor, up.timeout, policy=outbound_policy(config),
                             named=lambda *address: client.file_hosts.names(*address))
    client = UpstreamClient(agent, reactor, up.url, up.hosts, up.timeout, up.max_page_size,
                            run=run, deadline=up.fetch_deadline,
                            max_entries=up.max_page_files, credentials=up.credentials,
                            section="upstream" if name is None else f"upstream:{name}")
    pages = PageCache(lambda project, previous: ensureDeferred(client.page(project, previous)),
                      reactor, up.ttl, up.offline, max_bytes=up.page_cache_size,
                      on_change=learnt, share=share)
    # (a reserved namespace is never asked upstream either)
    policy = UpstreamPolicy(up.mode, up.private + private_globs(config.namespaces), up.merge,
                            up.min_age, up.min_age_exempt)
    # (a MeasuredStorage provides its backend's interfaces, declared on the
    # instance as it is made: mypy cannot see them); the default's families
    # are labelled only once named upstreams exist, so that /metrics of a
    # server with [upstream] alone is byte for byte what it was
    source = UpstreamSource.create(
        up, policy, pages, client, cast(IStorage, storage), run, reactor,
        name=name or DEFAULT_UPSTREAM, labelled=bool(config.upstreams),
        on_close=pool.closeCachedConnections, render=render, share=share)
    return source, storage
