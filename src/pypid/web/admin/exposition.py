"""
C{GET /metrics}: the server's counters in the Prometheus exposition format
(or OpenMetrics, when the scraper asks for it), for its operators only.

The counting happens where the work is done, in plain attributes that cost
the hot path a dictionary update (L{pypid.core.records.metrics}); this
module reads them only when scraped, through a C{prometheus_client}
collector, so the library writes the format and nothing is counted twice.
C{prometheus_client} is imported at the first scrape: 13 ms and 19
modules of every start otherwise, for a page a server may never be asked
for. C{docs/operations.rst} lists the series.

Who may scrape (C{[metrics]}): clients at the allowed addresses (loopback
by default), and users of C{[metrics] group}. A request relayed by a proxy
(C{Forwarded}, C{X-Forwarded-For} or C{X-Real-IP}) is never let in by its
address: behind a reverse proxy on the same machine every client would
look like loopback.

A worker of a machine answers for the machine (L{MachineMetrics}): every
series labelled by its C{worker}, its own read at the scrape, the others'
as they last wrote them (every L{WRITE_INTERVAL}; a file older than
L{STALE} is a worker gone), and the machine's own. The C{process_*}
series are the answering worker's.
"""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, cast

import attrs
from klein import Klein
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
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
    dump_families,
    gauge,
    histograms,
    labelled,
    load_families,
)
from pypid.core.util.http_errors import Forbidden, Unauthorized
from pypid.jobs.periodic import Periodic
from pypid.jobs.run import Run
from pypid.machine.topics import Hub
from pypid.storage.base.disk import remove_file, write_atomically
from pypid.web.identity.gates import Gates
from pypid.web.server.connections import ConnectionCounter
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
    """

    #: in the order their families are written
    sources: tuple[IMetricsSource, ...]
    #: in a worker of a machine, the machine's side (L{MachineMetrics})
    machine: MachineMetrics | None = None
    #: the other workers' families, as last read (L{Metrics.metrics})
    others: list[Family] = attrs.field(factory=list)

    def families(self) -> list[Family]:
        """This process's families (in a worker of a machine, labelled by the worker)."""
        families = merged(family for source in self.sources
                          for family in source.metric_families())
        if self.machine is None:
            return families
        return [labelled(family, "worker", str(self.machine.worker)) for family in families]

    def collect(self) -> Iterator[Metric]:
        """The families, as C{prometheus_client} asks a collector for them."""
        families = self.families()
        if self.machine is not None:
            families = merged([*families, *self.others, *self.machine.own_families()])
        for family in families:
            yield _exposed(family)


def merged(families: Iterable[Family]) -> list[Family]:
    """Families of one name as one, their samples together, in the order first seen."""
    found: dict[str, Family] = {}
    for family in families:
        known = found.get(family.name)
        found[family.name] = family if known is None else attrs.evolve(
            known, samples=known.samples + family.samples)
    return list(found.values())


#: Seconds between two writes of a machine's worker's families.
WRITE_INTERVAL = 5.0

#: Seconds past which a worker's file is left out (the worker is gone).
STALE = 30.0


class MachineMetrics(Service):
    """A worker's side of C{/metrics}: its families for the others, theirs, the machine's own."""

    def __init__(self, folder: str, hub: Hub, run: Run, clock: IReactorTime) -> None:
        """@param folder: where each worker's file is (C{<snapshot>.d/metrics})."""
        self._folder = folder
        self._hub = hub
        self._run = run
        self._clock = clock
        self.worker = hub.worker
        self._own: Callable[[], list[Family]] | None = None
        self._timer = Periodic(self._write, WRITE_INTERVAL, clock,
                               what="The worker's metrics for the others")

    def _path(self, worker: int) -> str:
        return os.path.join(self._folder, f"worker-{worker}.json")

    def watch(self, own: Callable[[], list[Family]]) -> None:
        """Write C{own()} every L{WRITE_INTERVAL} (the collector's families)."""
        self._own = own

    def startService(self) -> None:
        """Begin writing."""
        Service.startService(self)
        self._timer.startService()

    def stopService(self) -> Deferred[None]:
        """Stop writing, and remove this worker's file (it is gone)."""
        Service.stopService(self)
        return self._timer.stopService().addCallback(
            lambda _: self._run(remove_file, self._path(self.worker)))

    def _write(self) -> Deferred[None]:
        if self._own is None:
            return succeed(None)
        data = dump_families(self._own())
        return self._run(_write_file, self._folder, self._path(self.worker), data)

    def others(self) -> Deferred[list[Family]]:
        """The other running workers' families, as each last wrote them."""
        _, count = self._hub.workers()
        paths = [self._path(n) for n in range(1, count + 1) if n != self.worker]
        return self._run(_read_fresh, paths, STALE)

    def own_families(self) -> list[Family]:
        """The machine's own series (the supervisor's counts)."""
        running, count = self._hub.workers()
        restarts, silences, hangs = self._hub.watched()
        return [gauge("pypid_workers_running", "Workers running and ready.", running),
                gauge("pypid_workers", "Workers the machine runs ([pypid] workers).", count),
                counter("pypid_worker_restarts", "Times a worker was started again after it "
                        "ended.", restarts),
                counter("pypid_worker_silences", "Times a serving worker went without a "
                        "heartbeat long enough to be taken out of the listening sockets.",
                        silences),
                counter("pypid_worker_hangs", "Times the supervisor killed a worker that "
                        "went [pypid] worker_timeout without a heartbeat.", hangs)]


def _write_file(folder: str, path: str, data: bytes) -> None:
    os.makedirs(folder, exist_ok=True)
    write_atomically(path, data)


def _read_fresh(paths: list[str], stale: float) -> list[Family]:
    """The families of the files written within C{stale} seconds (blocking)."""
    found: list[Family] = []
    now = time.time()
    for path in paths:
        try:
            if now - os.stat(path).st_mtime > stale:
                continue
            with open(path, "rb") as f:
                found += load_families(f.read())
        except (OSError, ValueError):
            continue
    return found


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

    @ivar _policy: who may scrape (L{reconfigure}).
    @ivar _registry: the collector's registry, made at the first scrape.
    """

    _access: Gates
    _policy: MetricsConfig
    _sources: tuple[IMetricsSource, ...]
    #: in a worker of a machine, the machine's side; L{None} in a server of one process
    machine: MachineMetrics | None = None
    _registry: CollectorRegistry | None = None
    _collector: Collector = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._collector = Collector(tuple(self._sources), self.machine)
        if self.machine is not None:
            self.machine.watch(self._collector.families)

    app = Klein()
    answer_errors(app)

    @app.route("/metrics", methods=["GET", "HEAD"])
    async def metrics(self, request: IRequest) -> bytes:
        """The metrics, to those who may scrape them."""
        await self._check(request)
        from prometheus_client.exposition import choose_encoder
        if self._registry is None:
            self._registry = make_registry(self._collector)
        if self.machine is not None:
            self._collector.others = await self.machine.others()
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
        reader = await self._access.identified_reader(request)
        identity = reader.identity
        if identity is None:
            raise Unauthorized(f"metrics: log in as a user of the group {policy.group!r}")
        if not reader.member_of(policy.group):
            raise Forbidden(f"metrics: {identity.name} is not in the group {policy.group!r}")
