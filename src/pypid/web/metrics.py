"""
C{GET /metrics}: the server's counters in the Prometheus exposition format
(or OpenMetrics, when the scraper asks for it), for its operators only.

The counting happens where the work is done, in plain attributes that cost
the hot path a dictionary update (L{pypid.core.metrics}); this module reads
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

import gzip

import attrs
from klein import Klein

from pypid.config.metrics import address_allowed
from pypid.core.errors import Forbidden, Unauthorized
from pypid.core.negotiate import accepts_gzip
from pypid.web.routes import answer_errors

#: Headers a proxy adds to a request it relays.
_RELAYED = (b"forwarded", b"x-forwarded-for", b"x-real-ip")


@attrs.define
class Sources:
    """
    Where the numbers are, filled in as the server is wired
    (L{pypid.web.app.build_web}, L{pypid.tap.build_service}); a source left
    L{None} is not exposed.

    @ivar index: the L{pypid.core.index.Index}.
    @ivar site: the L{pypid.web.site.PypidSite} (its C{stats} and C{counter}).
    @ivar storage: the L{pypid.storage.measured.MeasuredStorage} of the packages.
    @ivar upstream: the L{pypid.upstream.proxy.UpstreamProxy}.
    @ivar snapshot: the L{pypid.storage.snapshot.SnapshotWriter}.
    @ivar audit: the audit log (L{pypid.storage.audit.BufferedAuditLog}:
        its C{pending}, C{written}, C{write_failures} and C{lost}).
    @ivar describer: the L{pypid.describer.Describer} of files found
        without a record.
    """

    index: object = None
    site: object = None
    storage: object = None
    upstream: object = None
    snapshot: object = None
    audit: object = None
    describer: object = None


@attrs.define(eq=False)
class Collector:
    """
    Reads the L{Sources} into metric families at each scrape.

    @ivar sources: the L{Sources}.
    @ivar clock: provides C{seconds()}, for the snapshot's age.
    """

    sources: Sources
    clock: object
    _sizes: tuple = (None, 0, 0, 0)

    def collect(self):
        """The families, as C{prometheus_client} asks a collector for them."""
        s = self.sources
        if s.site is not None:
            yield from _requests(s.site.stats)
            yield from _connections(s.site.counter)
        if s.index is not None:
            yield from self._index(s.index)
        if s.snapshot is not None:
            yield from self._snapshot(s.snapshot)
        if s.storage is not None:
            yield from _storage(s.storage, s.upstream)
        if s.upstream is not None:
            yield from _upstream(s.upstream)
        if s.audit is not None:
            yield from _audit(s.audit)
        if s.describer is not None:
            yield from _describer(s.describer)

    def _index(self, index):
        from prometheus_client.core import GaugeMetricFamily

        serial = index.serial
        if index.waiting:
            # The projects a start loaded later still wait for their records
            # (a few seconds): their sizes are not known without making
            # them all at once, which would hold every request meanwhile.
            projects, files, size = len(index.projects()), len(index), None
        else:
            if self._sizes[0] != serial:
                records = index.records()
                self._sizes = (serial, len(index.projects()), len(records),
                               sum(record.size for record in records))
            _, projects, files, size = self._sizes
        yield GaugeMetricFamily("pypid_index_projects", "Projects hosted.", value=projects)
        yield GaugeMetricFamily("pypid_index_files", "Distribution files hosted.", value=files)
        if size is not None:
            yield GaugeMetricFamily("pypid_index_bytes",
                                    "Bytes of the distribution files hosted.", value=size)
        yield GaugeMetricFamily("pypid_index_serial",
                                "The index's serial: it moves at every change.", value=serial)
        yield GaugeMetricFamily("pypid_page_cache_bytes",
                                "Bytes of rendered project pages kept (page_cache_size).",
                                value=index.page_cache_bytes)
        yield GaugeMetricFamily("pypid_page_cache_projects",
                                "Projects whose rendered pages are kept.",
                                value=index.page_cache_projects)

    def _snapshot(self, writer):
        from prometheus_client.core import GaugeMetricFamily

        if writer.saved_at is not None:
            yield GaugeMetricFamily(
                "pypid_snapshot_age_seconds", "Seconds since the index snapshot was last saved.",
                value=max(self.clock.seconds() - writer.saved_at, 0.0))
            yield GaugeMetricFamily("pypid_snapshot_duration_seconds",
                                    "How long the last snapshot save took.",
                                    value=writer.duration)
        yield _counter("pypid_snapshot_saves", "Index snapshots saved.", writer.saves)
        yield _counter("pypid_snapshot_failures", "Index snapshot saves that failed.",
                       writer.failures)


def _describer(describer):
    from prometheus_client.core import GaugeMetricFamily

    yield GaugeMetricFamily("pypid_files_to_describe",
                            "Files found without a record, still to be read.",
                            value=describer.remaining)
    yield _counter("pypid_files_described", "Files found without a record and read since "
                   "the start.", describer.described)
    yield _counter("pypid_files_not_distributions", "Files found without a record that "
                   "were not distributions (not served).", describer.refused)


def _audit(log):
    from prometheus_client.core import GaugeMetricFamily

    yield GaugeMetricFamily("pypid_audit_pending", "Audit log entries waiting to be written.",
                            value=log.pending)
    yield _counter("pypid_audit_written", "Audit log entries written.", log.written)
    yield _counter("pypid_audit_write_failures", "Audit log writes that failed (retried).",
                   log.write_failures)
    yield _counter("pypid_audit_lost", "Audit log entries dropped: more than the most that "
                   "may wait, or unwritten at the stop.", log.lost)


def _counter(name, documentation, value, labels=(), samples=None):
    """A counter family: one C{value}, or C{samples} of C{(label values, value)}."""
    from prometheus_client.core import CounterMetricFamily

    family = CounterMetricFamily(name, documentation, labels=list(labels))
    if samples is None:
        family.add_metric([], value)
    else:
        for label_values, sample in samples:
            family.add_metric(list(label_values), sample)
    return family


def _histogram(name, documentation, label, histograms):
    """A histogram family of L{pypid.core.metrics.Histogram}s by one label's values."""
    from prometheus_client.core import HistogramMetricFamily
    from prometheus_client.utils import floatToGoString

    family = HistogramMetricFamily(name, documentation, labels=[label])
    for value, histogram in sorted(histograms.items()):
        family.add_metric([value], [(floatToGoString(bound), count)
                                    for bound, count in histogram.cumulative()],
                          histogram.total)
    return family


def _requests(stats):
    stats.settle()
    yield _counter("pypid_http_requests", "HTTP requests answered, by route family, method "
                   "and status (aborted: the client left before the answer).", None,
                   ("route", "method", "code"), sorted(stats.requests.items()))
    yield _histogram("pypid_http_request_duration_seconds", "Time from a request's headers to "
                     "the end of its answer, by route family.", "route", stats.latency)
    yield _counter("pypid_http_response_bytes", "Bytes of response bodies sent, by route "
                   "family.", None, ("route",), [((k,), v) for k, v in sorted(stats.sent.items())])
    yield _counter("pypid_http_request_bytes", "Bytes of request bodies received, by route "
                   "family.", None, ("route",),
                   [((k,), v) for k, v in sorted(stats.received.items())])
    yield _counter("pypid_changes", "Uploads, yanks, unyanks and deletes, by outcome.", None,
                   ("action", "outcome"), sorted(stats.changes.items()))
    yield _counter("pypid_login_failures", "Requests refused for wrong credentials (401).",
                   stats.login_failures)
    yield _counter("pypid_throttled_requests", "Logins held back after too many failures "
                   "(429).", stats.throttled)
    yield _counter("pypid_http_refused", "Connections answered and closed outside any "
                   "request, by reason (bad_request, headers_timeout, uri_too_long, "
                   "headers_too_large, slow_body).", None, ("reason",),
                   [((k,), v) for k, v in sorted(stats.refusals.items())])


def _connections(counter):
    from prometheus_client.core import GaugeMetricFamily

    yield GaugeMetricFamily("pypid_connections_open", "Open HTTP connections.",
                            value=counter.open)
    yield _counter("pypid_connections_refused", "Connections refused because their address "
                   "held too many already.", counter.refused)


def _timings(names, what, label_names, sources):
    """
    The calls, errors and latency histogram of L{pypid.core.metrics.Timings}.

    @param names: the three families' names: calls, errors, duration.
    @param label_names: the labels, the last one the timings' own key.
    @param sources: C{[(values of the other labels, Timings)]}.
    """
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
    from prometheus_client.utils import floatToGoString

    calls_name, errors_name, duration_name = names
    by = ", ".join(label_names)
    calls = CounterMetricFamily(calls_name, f"{what}, by {by}.", labels=list(label_names))
    errors = CounterMetricFamily(errors_name, f"{what} that failed, by {by}.",
                                 labels=list(label_names))
    duration = HistogramMetricFamily(duration_name, f"How long {what.lower()} took, by {by}.",
                                     labels=list(label_names))
    for values, timings in sources:
        for key, count in sorted(timings.calls.items()):
            calls.add_metric([*values, key], count)
            errors.add_metric([*values, key], timings.errors.get(key, 0))
        for key, histogram in sorted(timings.latency.items()):
            duration.add_metric([*values, key], [(floatToGoString(bound), count)
                                                 for bound, count in histogram.cumulative()],
                                 histogram.total)
    return [calls, errors, duration]


def _storage(storage, upstream):
    """The storage's operations (and the upstream cache's), S3's requests and URL cache."""
    from prometheus_client.core import GaugeMetricFamily

    stores = [(("packages",), storage.timings)]
    upstream_storage = getattr(upstream, "storage", None)
    if hasattr(upstream_storage, "timings"):
        stores.append((("upstream",), upstream_storage.timings))
    yield from _timings(("pypid_storage_operations", "pypid_storage_errors",
                         "pypid_storage_duration_seconds"), "Storage operations",
                        ("store", "operation"), stores)
    inner = storage.inner
    client = getattr(inner, "_client", None)
    if client is not None and hasattr(client, "timings"):
        yield from _timings(("pypid_s3_requests", "pypid_s3_request_errors",
                             "pypid_s3_request_duration_seconds"), "Requests to S3",
                            ("method",), [((), client.timings)])
    if hasattr(inner, "presigned_cached"):
        yield GaugeMetricFamily("pypid_s3_presigned_urls", "Presigned download URLs cached.",
                                value=inner.presigned_cached)
        yield _counter("pypid_s3_presigned", "Downloads redirected to a presigned URL, by "
                       "whether the URL came from the cache.", None, ("result",),
                       [(("hit",), inner.presign_hits), (("miss",), inner.presign_misses)])


def _upstream(upstream):
    from prometheus_client.core import GaugeMetricFamily

    yield _counter("pypid_upstream_pages", "Upstream project pages asked for, by how they "
                   "were served (hit, stale, miss, unavailable).", None, ("result",),
                   [((k,), v) for k, v in sorted(upstream.pages.served.items())])
    yield _counter("pypid_upstream_files", "Upstream files asked for, by how they were served "
                   "(hit: kept already, miss: fetched, unavailable: offline).", None,
                   ("result",), [((k,), v) for k, v in sorted(upstream.files_served.items())])
    yield GaugeMetricFamily("pypid_upstream_cached_pages", "Upstream project pages cached.",
                            value=len(upstream.pages.entries))
    yield GaugeMetricFamily("pypid_upstream_cached_files", "Upstream files kept.",
                            value=len(upstream.cached))
    yield from _timings(("pypid_upstream_fetches", "pypid_upstream_fetch_errors",
                         "pypid_upstream_fetch_duration_seconds"), "Fetches from the upstream",
                        ("kind",), [((), upstream.pages.timings), ((), upstream.timings)])


def make_registry(collector):
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

    @ivar _access: the L{pypid.web.access.Access} gate (credentials, groups).
    @ivar policy: the L{pypid.config.metrics.MetricsConfig}; replaced on reload.
    @ivar sources: the L{Sources} the collector reads.
    @ivar clock: provides C{seconds()}.
    @ivar _registry: the collector's registry, made at the first scrape.
    """

    _access: object
    policy: object
    sources: Sources
    clock: object
    _registry: object = None

    app = Klein()
    answer_errors(app)

    @app.route("/metrics", methods=["GET", "HEAD"])
    async def metrics(self, request):
        """The metrics, to those who may scrape them."""
        await self._check(request)
        from prometheus_client.exposition import choose_encoder
        if self._registry is None:
            self._registry = make_registry(Collector(self.sources, self.clock))
        accept = request.getHeader(b"accept")
        encoder, content_type = choose_encoder(accept.decode("latin-1") if accept else None)
        body = encoder(self._registry)
        request.setHeader(b"content-type", content_type.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"vary", b"accept, accept-encoding")
        if accepts_gzip(request.getHeader(b"accept-encoding")):
            body = gzip.compress(body, 1)
            request.setHeader(b"content-encoding", b"gzip")
        return body

    async def _check(self, request):
        """Let in an allowed address, or a user of C{[metrics] group}; else 401 or 403."""
        policy = self.policy
        peer = request.getClientAddress()
        relayed = any(request.requestHeaders.hasHeader(name) for name in _RELAYED)
        if not relayed and address_allowed(policy.allow, getattr(peer, "host", None)):
            return
        if policy.group is None:
            raise Forbidden("metrics: this address may not scrape /metrics (see [metrics] allow)")
        identity = await self._access.identify(request)
        if identity is None:
            raise Unauthorized(f"metrics: log in as a user of the group {policy.group!r}")
        if not self._access.model.in_group(identity.name, policy.group, identity.groups):
            raise Forbidden(f"metrics: {identity.name} is not in the group {policy.group!r}")
