"""
The upstream proxy built from C{[upstream]}: its page cache, its client,
and the storage of the files it fetched (beside the hosted ones, under
C{.upstream}); and L{UpstreamPart}, the proxy as a part of the daemon.
"""

import os
import time

import attrs
from twisted.application.service import Service
from twisted.internet.defer import ensureDeferred
from zope.interface import implementer

from pypid.core.parts import IMetricsSource
from pypid.storage.factory import make_storage
from pypid.storage.measured import MeasuredStorage


def make_upstream(config, run, reactor, index, learnt=None):
    """
    The L{pypid.upstream.proxy.UpstreamProxy} of the configuration.

    @param index: the hosted L{pypid.core.index.Index} (what is hosted is
        never asked upstream).
    @param learnt: called (without arguments) whenever a page was fetched
        or a file kept, so that the snapshot is saved soon.
    @raise pypid.config.errors.StartupError: when C{[pypid] ca_bundle}
        cannot be used.
    """
    from pypid.http.client import make_agent, outbound_policy
    from pypid.upstream.cache import PageCache
    from pypid.upstream.confusion import UpstreamPolicy
    from pypid.upstream.fetch import UpstreamClient
    from pypid.upstream.proxy import UpstreamProxy

    up = config.upstream
    cache_config = attrs.evolve(
        config,
        storage=attrs.evolve(config.storage,
                             path=os.path.join(config.storage.path, ".upstream")),
        s3=attrs.evolve(config.s3, prefix=config.s3.prefix + ".upstream/",
                        bucket_snapshot=False))
    storage = MeasuredStorage(make_storage(cache_config, run, reactor), time.monotonic)
    agent, pool = make_agent(reactor, up.timeout, policy=outbound_policy(config))
    client = UpstreamClient(agent, reactor, up.url, up.hosts, up.timeout, up.max_page_size,
                            run=run, deadline=up.fetch_deadline, max_entries=up.max_page_files)
    pages = PageCache(lambda project: ensureDeferred(client.page(project)), reactor, up.ttl,
                      up.offline, max_bytes=up.page_cache_size, on_change=learnt)
    policy = UpstreamPolicy(up.mode, up.private, up.merge, up.min_age, up.min_age_exempt)
    return UpstreamProxy(up, policy, pages, client, storage, index, index.file_url, run,
                         reactor, on_close=pool.closeCachedConnections, on_change=learnt)


@implementer(IMetricsSource)
class UpstreamPart(Service):
    """
    The upstream proxy as a part of the daemon: its cache is loaded with
    the index (its state is in the snapshot), and its connections dropped
    as the server stops, after the requests in flight.

    @ivar proxy: the L{pypid.upstream.proxy.UpstreamProxy}.
    """

    def __init__(self, proxy):
        self.proxy = proxy

    def stopService(self):
        """Drop the connections to the upstream."""
        Service.stopService(self)
        self.proxy.close()

    def metric_families(self):
        """The proxy's pages, files and fetches, and its storage's operations."""
        yield from self.proxy.metric_families()
        yield from self.proxy.storage.operation_families("upstream")
