"""
C{GET /metrics}: the server's counters in the Prometheus exposition format
(or OpenMetrics, when the scraper asks for it), for its operators only.

The counting happens where the work is done, in plain attributes that cost
the hot path a dictionary update (L{pypid.core.records.metrics}); this module reads
them only when scraped, through a C{prometheus_client} collector, so the
library writes the format and nothing is counted twice. What is exposed is
listed, with what each series is for, in C{docs/operations.rst}.

Who may scrape (C{[metrics]}): clients at the allowed addresses (loopback
by default), and users of C{[metrics] group} with their credentials.
A request relayed by a proxy (one that carries C{Forwarded},
C{X-Forwarded-For} or C{X-Real-IP}) is never let in by its address: behind
a reverse proxy on the same machine every client would otherwise look
like loopback.

C{prometheus_client} is imported at the first scrape (where each function
below uses it), not with this module: 13 ms and 19 modules of every start,
for a page a server may never be asked for.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

import attrs
from klein import Klein
from twisted.web.iweb import IRequest
from zope.interface import implementer

from pypid.config.metrics_settings import MetricsConfig, address_allowed
from pypid.core.formats.negotiate import accepts_gzip
from pypid.core.parts import IMetricsSource
from pypid.core.records.metrics import (
    COUNTER,
    HISTOGRAM,
    Family,
    Histogram,
    RequestStats,
    by_label,
    counter,
    gauge,
    histograms,
)
from pypid.core.util.http_errors import Forbidden, Unauthorized
from pypid.web.identity.gates import Gates
from pypid.web.server.channel import ConnectionCounter
from pypid.web.server.routes import answer_errors

if TYPE_CHECKING:  # (prometheus_client is imported at the first scrape)
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

#: Headers a proxy adds to a request it relays.
_RELAYED = (b"forwarded", b"x-forwarded-for", b"x-real-ip")


def _by_index(stats: RequestStats) -> Iterator[Family]:
    """
    The request families with an C{index} label first, once named indexes
    exist: bounded by the configured names (and C{default}).
    """
    yield counter("pypid_http_requests", "HTTP requests answered, by index, route family, "
                  "method and status (aborted: the client left before the answer).", None,
                  ("index", "route", "method", "code"), sorted(stats.requests_by_index.items()))
    yield Family(HISTOGRAM, "pypid_http_request_duration_seconds", "Time from a request's "
                 "headers to the end of its answer, by index and route family.",
                 ("index", "route"), tuple(sorted(stats.latency_by_index.items())))
    yield counter("pypid_http_response_bytes", "Bytes of response bodies sent, by index and "
                  "route family.", None, ("index", "route"),
                  sorted(stats.sent_by_index.items()))
    yield counter("pypid_http_request_bytes", "Bytes of request bodies received, by index "
                  "and route family.", None, ("index", "route"),
                  sorted(stats.received_by_index.items()))


@implementer(IMetricsSource)
@attrs.define
class SiteMetrics:
    """
    The site's own numbers: requests by route, method and status, their
    latency and bytes, changes, logins, refusals, and connections.

    @ivar stats: the site's L{pypid.core.records.metrics.RequestStats}.
    @ivar connections: the site's L{pypid.web.server.channel.ConnectionCounter}.
    """

    stats: RequestStats
    connections: ConnectionCounter

    def metric_families(self) -> Iterator[Family]:
        """The requests' and the connections' families."""
        stats = self.stats
        stats.settle()
        if stats.indexes:
            yield from _by_index(stats)
        else:
            yield counter("pypid_http_requests", "HTTP requests answered, by route family, "
                          "method and status (aborted: the client left before the answer).",
                          None, ("route", "method", "code"), sorted(stats.requests.items()))
            yield histograms("pypid_http_request_duration_seconds", "Time from a request's "
                             "headers to the end of its answer, by route family.", "route",
                             stats.latency)
            yield by_label("pypid_http_response_bytes", "Bytes of response bodies sent, by "
                           "route family.", "route", stats.sent)
            yield by_label("pypid_http_request_bytes", "Bytes of request bodies received, by "
                           "route family.", "route", stats.received)
        yield counter("pypid_changes", "Uploads, yanks, unyanks and deletes, by outcome.", None,
                      ("action", "outcome"), sorted(stats.changes.items()))
        yield counter("pypid_login_failures", "Requests refused for wrong credentials (401).",
                      stats.login_failures)
        yield counter("pypid_throttled_requests", "Logins and token exchanges held back after too "
                      "many failures (429).", stats.throttled)
        yield by_label("pypid_http_refused", "Connections answered and closed outside any "
                       "request, by reason (bad_request, headers_timeout, uri_too_long, "
                       "headers_too_large, slow_body, send_timeout).", "reason", stats.refusals)
        connections = self.connections
        yield gauge("pypid_connections_open", "Open HTTP connections.", connections.open)
        yield counter("pypid_connections_refused", "Connections refused because their address "
                      "held too many already.", connections.refused)


@attrs.define(eq=False)
class Collector:
    """
    Reads the sources' families at each scrape, and hands them to
    C{prometheus_client} as its own: families of one name from several
    sources are one family, their samples together.

    @ivar sources: the L{pypid.core.parts.IMetricsSource}s, in the order
        their families are written.
    """

    sources: tuple[IMetricsSource, ...]

    def collect(self) -> Iterator[Metric]:
        """The families, as C{prometheus_client} asks a collector for them."""
        merged: dict[str, Family] = {}
        for source in self.sources:
            for family in source.metric_families():
                known = merged.get(family.name)
                if known is None:
                    merged[family.name] = family
                else:
                    merged[family.name] = attrs.evolve(known,
                                                       samples=known.samples + family.samples)
        for family in merged.values():
            yield _exposed(family)


def _exposed(family: Family) -> Metric:
    """The C{prometheus_client} family of a L{pypid.core.records.metrics.Family}."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )
    from prometheus_client.utils import floatToGoString

    labels = list(family.labels)
    if family.kind == HISTOGRAM:
        exposed = HistogramMetricFamily(family.name, family.help, labels=labels)
        for values, sample in family.samples:
            histogram = cast(Histogram, sample)  # (a histogram family's values are)
            exposed.add_metric(list(values), [(floatToGoString(bound), count)
                                              for bound, count in histogram.cumulative()],
                               histogram.total)
        return exposed
    kind = CounterMetricFamily if family.kind == COUNTER else GaugeMetricFamily
    metric = kind(family.name, family.help, labels=labels)
    for values, value in family.samples:
        metric.add_metric(list(values), cast(float, value))  # (the others' are numbers)
    return metric


def make_registry(collector: Collector) -> CollectorRegistry:
    """A registry of C{collector} and the process's own series (CPU, memory, files)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.process_collector import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


@attrs.define(slots=False)
class Metrics:
    """
    The C{/metrics} area.

    @ivar _access: the L{pypid.web.identity.gates.Gates} (credentials, groups).
    @ivar _policy: the L{pypid.config.metrics_settings.MetricsConfig} (L{reconfigure}).
    @ivar _sources: the L{pypid.core.parts.IMetricsSource}s the collector reads.
    @ivar _registry: the collector's registry, made at the first scrape.
    """

    _access: Gates
    _policy: MetricsConfig
    _sources: tuple[IMetricsSource, ...]
    _registry: CollectorRegistry | None = None

    app = Klein()
    answer_errors(app)

    @app.route("/metrics", methods=["GET", "HEAD"])
    async def metrics(self, request: IRequest) -> bytes:
        """The metrics, to those who may scrape them."""
        await self._check(request)
        from prometheus_client.exposition import choose_encoder
        if self._registry is None:
            self._registry = make_registry(Collector(tuple(self._sources)))
        accept = request.getHeader(b"accept")
        encoder, content_type = choose_encoder(accept.decode("latin-1") if accept else "")
        body = encoder(self._registry)
        request.setHeader(b"content-type", content_type.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"vary", b"accept, accept-encoding")
        if accepts_gzip(request.getHeader(b"accept-encoding")):
            body = gzip.compress(body, 1)
            request.setHeader(b"content-encoding", b"gzip")
        return body

    def reconfigure(self, policy: MetricsConfig) -> None:
        """Take who may scrape from a reloaded configuration (C{[metrics]})."""
        self._policy = policy

    async def _check(self, request: IRequest) -> None:
        """Let in an allowed address, or a user of C{[metrics] group}; else 401 or 403."""
        policy = self._policy
        peer = request.getClientAddress()
        relayed = any(request.requestHeaders.hasHeader(name) for name in _RELAYED)
        if not relayed and address_allowed(policy.allow, getattr(peer, "host", None)):
            return
        if policy.group is None:
            raise Forbidden("metrics: this address may not scrape /metrics (see [metrics] allow)")
        identity = await self._access.identify(request)
        if identity is None:
            raise Unauthorized(f"metrics: log in as a user of the group {policy.group!r}")
        if not self._access.reader_of(identity).member_of(policy.group):
            raise Forbidden(f"metrics: {identity.name} is not in the group {policy.group!r}")
