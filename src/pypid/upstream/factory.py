"""
The upstream proxy built from C{[upstream]}: its page cache, its client,
and the storage of the files it fetched (beside the hosted ones, under
C{.upstream}); and L{UpstreamPart}, the proxy as a part of the daemon.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, cast

import attrs
from twisted.application.service import Service
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from pypid.core.metrics import Family
from pypid.core.parts import IMetricsSource
from pypid.storage.factory import StorageSettings, make_storage
from pypid.storage.interface import IStorage, Run
from pypid.storage.measured import MeasuredStorage
from pypid.upstream.contracts import UpstreamSettings

if TYPE_CHECKING:
    # (types only: the rest of the upstream loads with a configured [upstream],
    # 24 ms of every start otherwise)
    from pypid.upstream.page_view import FileUrl
    from pypid.upstream.project_rules import HostedIndex
    from pypid.upstream.proxy import UpstreamProxy


class DaemonSettings(StorageSettings, Protocol):
    """
    The configuration the upstream part is built from
    (L{pypid.config.Config}, a layer above): C{[upstream]}, and the
    storage's sections, whose folder or prefix the cache's storage shares.
    """

    @property
    def upstream(self) -> UpstreamSettings:
        """C{[upstream]}."""


@implementer(IMetricsSource)
class UpstreamPart(Service):
    """
    The upstream proxy as a part of the daemon: its cache is loaded with
    the index (its state is in the snapshot), and its connections dropped
    as the server stops, after the requests in flight.
    """

    def __init__(self, proxy: UpstreamProxy, storage: MeasuredStorage) -> None:
        """
        @param storage: the proxy's storage, whose operations C{/metrics} counts.
        """
        self._proxy = proxy
        self._storage = storage

    @classmethod
    def from_config(cls, config: DaemonSettings, run: Run, reactor: IReactorTime,
                    index: HostedIndex, file_url: FileUrl,
                    learnt: Callable[[], None] | None = None) -> UpstreamPart:
        """
        The part of the configuration's C{[upstream]}.

        @param reactor: the reactor (its clock, and its connections to the
            upstream and the bucket).
        @param index: the hosted index (what is hosted is never asked upstream).
        @param file_url: the links pages give files, as for hosted ones.
        @param learnt: called (without arguments) whenever a page was fetched
            or a file kept, so that the snapshot is saved soon.
        @raise pypid.core.startup.StartupError: when C{[pypid] ca_bundle}
            cannot be used.
        """
        from pypid.http.client import make_agent, outbound_policy
        from pypid.upstream.cache import PageCache
        from pypid.upstream.confusion import UpstreamPolicy
        from pypid.upstream.fetch import UpstreamClient
        from pypid.upstream.proxy import UpstreamProxy

        up = config.upstream
        # (the Config of a layer above, read through Protocols: mypy's attrs
        # plugin cannot see that they are attrs classes)
        evolve: Any = attrs.evolve
        cache_config = evolve(
            config,
            storage=evolve(config.storage, path=os.path.join(config.storage.path, ".upstream")),
            s3=evolve(config.s3, prefix=config.s3.prefix + ".upstream/", bucket_snapshot=False))
        storage = MeasuredStorage(make_storage(cache_config, run, reactor), time.monotonic)
        agent, pool = make_agent(reactor, up.timeout, policy=outbound_policy(config))
        client = UpstreamClient(agent, reactor, up.url, up.hosts, up.timeout, up.max_page_size,
                                run=run, deadline=up.fetch_deadline,
                                max_entries=up.max_page_files)
        pages = PageCache(lambda project: ensureDeferred(client.page(project)), reactor, up.ttl,
                          up.offline, max_bytes=up.page_cache_size, on_change=learnt)
        policy = UpstreamPolicy(up.mode, up.private, up.merge, up.min_age, up.min_age_exempt)
        # (a MeasuredStorage provides its backend's interfaces, declared on
        # the instance as it is made: mypy cannot see them)
        proxy = UpstreamProxy.create(up, policy, pages, client, cast(IStorage, storage), index,
                                     file_url, run, reactor, on_close=pool.closeCachedConnections,
                                     on_change=learnt)
        return cls(proxy, storage)

    @property
    def proxy(self) -> UpstreamProxy:
        """The proxy the web layer, the loader and the snapshot writer hold."""
        return self._proxy

    def stopService(self) -> None:
        """Drop the connections to the upstream."""
        Service.stopService(self)
        self._proxy.close()

    def metric_families(self) -> Iterator[Family]:
        """The proxy's pages, files and fetches, and its storage's operations."""
        yield from self._proxy.metric_families()
        yield from self._storage.operation_families("upstream")
