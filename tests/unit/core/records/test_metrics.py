"""
Tests for C{/metrics}: the counting (L{pypid.core.records.metrics}), the timed
storage (L{pypid.storage.base.measured}), who may scrape (L{pypid.config.metrics_settings})
and the exposition (L{pypid.web.admin.exposition}), in memory through the real site.
"""

import gzip
import ipaddress
import os

from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from pypid.auth.policy import AccessModel
from pypid.config import ConfigError, load_config
from pypid.config.metrics_settings import MetricsConfig, address_allowed, parse_networks
from pypid.core.dists.distribution import inspect
from pypid.core.records.metrics import (
    ROUTES,
    Histogram,
    RequestStats,
    Timings,
    change_of,
    outcome_of,
    route_of,
)
from pypid.storage.base.capabilities import ISharedStorage
from pypid.storage.base.interface import FileExists, IStorage, StorageError
from pypid.storage.base.measured import MeasuredStorage
from tests.harness.distributions import make_wheel
from tests.harness.fakes import write_file
from tests.harness.indexes import NAMED, UPLOAD_TIME
from tests.harness.indexes import _ServerMixin as _IndexesMixin
from tests.harness.records import LaterRecords
from tests.harness.web import SDIST, SDIST_NAME, WHEEL_NAME, _ServerMixin, basic


def scrape(body):
    """The samples of an exposition: C{{(name, ((label, value), ...)): value}}."""
    found = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


class RouteTests(SynchronousTestCase):
    """The labels: a small closed set, whatever the path."""

    def test_routes(self):
        """Every path falls in one family; the API by its second segment."""
        cases = [
            (b"GET", b"/simple/", "simple"), (b"GET", b"/simple/attrs/", "simple"),
            (b"GET", b"/files/attrs/a.whl", "files"), (b"GET", b"/", "root"),
            (b"HEAD", b"/", "root"), (b"POST", b"/", "upload"),
            (b"POST", b"/legacy/", "upload"), (b"GET", b"/project/attrs/", "project"),
            (b"GET", b"/static/pypid.css", "static"), (b"GET", b"/search", "search"),
            (b"DELETE", b"/api/files/a.whl", "api_files"),
            (b"POST", b"/api/projects/attrs/1.0/yank", "api_projects"),
            (b"GET", b"/api/audit", "api_audit"), (b"GET", b"/api/nonsense", "other"),
            (b"GET", b"/api", "other"), (b"GET", b"/pypi/attrs/json", "json"),
            (b"GET", b"/metrics", "metrics"), (b"GET", b"/health", "health"),
            (b"GET", b"/requirements.txt", "requirements"), (b"GET", b"/\xff/x", "other"),
            (b"GET", b"/attrs", "other"),
        ]
        for method, path, route in cases:
            self.assertEqual(route_of(method, path), route, path)
            self.assertIn(route, ROUTES)

    def test_outcomes_and_changes(self):
        """Outcomes by status; the publishing API's actions by method and last segment."""
        self.assertEqual([outcome_of(s) for s in (200, 401, 403, 409, 400, 413, 500, None)],
                         ["ok", "denied", "denied", "conflict", "invalid", "too_large",
                          "error", "aborted"])
        self.assertEqual(change_of("api_files", b"DELETE", b"/api/files/a.whl"), "delete")
        self.assertEqual(change_of("api_files", b"POST", b"/api/files/a.whl/yank"), "yank")
        self.assertEqual(change_of("api_projects", b"POST", b"/api/projects/p/1/unyank/"),
                         "unyank")
        self.assertIsNone(change_of("api_files", b"GET", b"/api/files/a.whl"))
        self.assertIsNone(change_of("simple", b"DELETE", b"/simple/yank"))


class CountingTests(SynchronousTestCase):
    """L{Histogram}, L{Timings} and L{RequestStats}."""

    def test_histogram(self):
        """Observations fall in the first bucket whose bound they do not pass."""
        h = Histogram((0.1, 1.0))
        for value in (0.05, 0.1, 0.5, 2.0, 3.0):
            h.observe(value)
        self.assertEqual(h.cumulative(), [(0.1, 2), (1.0, 3), (float("inf"), 5)])
        self.assertEqual(h.count, 5)
        self.assertAlmostEqual(h.total, 5.65)

    def test_timings(self):
        """Calls, errors and latency by key."""
        t = Timings()
        t.record("get", 0.01)
        t.record("get", 0.02, failed=True)
        t.record("put", 0.5)
        self.assertEqual(t.calls, {"get": 2, "put": 1})
        self.assertEqual(t.errors, {"get": 1})
        self.assertEqual(t.latency["get"].count, 2)

    def test_request_stats(self):
        """Requests, bytes, changes, login failures and throttles, from what was answered."""
        stats = RequestStats()
        stats.record(b"GET", b"/simple/a/", 200, 0.001, 500, 0, lambda: False)
        stats.record(b"GET", b"/simple/a/", 304, 0.001, 0, 0, lambda: False)
        stats.record(b"POST", b"/legacy/", 200, 2.0, 10, 4000, lambda: True)
        stats.record(b"POST", b"/legacy/", 401, 0.01, 40, 0, lambda: True)
        stats.record(b"POST", b"/legacy/", 401, 0.01, 40, 0, lambda: False)
        stats.record(b"POST", b"/legacy/", None, 0.5, 0, 100, lambda: True)
        stats.record(b"GET", b"/simple/", 429, 0.001, 10, 0, lambda: True)
        stats.record(b"DELETE", b"/api/files/a.whl", 204, 0.01, 0, 0, lambda: True)
        stats.record(b"BREW", b"/x", 405, 0.01, 0, 0, lambda: False)
        self.assertEqual(len(stats.batch), 9)
        stats.settle()
        self.assertEqual(stats.batch, [])
        self.assertEqual(stats.requests[("simple", "GET", "200")], 1)
        self.assertEqual(stats.requests[("simple", "GET", "304")], 1)
        self.assertEqual(stats.requests[("upload", "POST", "aborted")], 1)
        self.assertEqual(stats.requests[("other", "other", "405")], 1)
        self.assertEqual(stats.sent["simple"], 510)
        self.assertEqual(stats.received["upload"], 4100)
        self.assertEqual(stats.latency["upload"].count, 4)
        self.assertEqual(stats.changes, {("upload", "ok"): 1, ("upload", "denied"): 2,
                                         ("upload", "aborted"): 1, ("delete", "ok"): 1})
        self.assertEqual((stats.login_failures, stats.throttled), (1, 1))


@implementer(IStorage, ISharedStorage)
class _Backend:
    """A backend whose answers the test chooses."""

    temp_dir = "/nowhere"

    def __init__(self):
        self.answer = succeed(None)

    def check(self):
        return succeed(True)

    def publish(self, temp_path, record, metadata, details=None, provenance=None):
        return self.answer

    def update(self, record):
        raise RuntimeError("broken at once")

    def locate(self, record):
        return "located"


class MeasuredStorageTests(SynchronousTestCase):
    """L{MeasuredStorage}: timed Deferred calls, everything else passed through."""

    def test_times_calls(self):
        """A call is counted and timed; the backend's own answers are not errors."""
        clock = Clock()
        backend = _Backend()
        storage = MeasuredStorage(backend, clock.seconds)
        self.assertTrue(IStorage.providedBy(storage))
        self.assertTrue(ISharedStorage.providedBy(storage))
        self.assertIs(storage.inner, backend)
        self.assertEqual(storage.temp_dir, "/nowhere")
        self.assertEqual(storage.locate(None), "located")
        self.assertEqual(self.successResultOf(storage.check()), True)
        backend.answer = fail(FileExists("a.whl"))
        self.failureResultOf(storage.publish("t", None, None), FileExists)
        backend.answer = fail(StorageError("down"))
        self.failureResultOf(storage.publish("t", None, None), StorageError)
        self.assertRaises(RuntimeError, storage.update, None)
        timings = storage.timings
        self.assertEqual(timings.calls, {"check": 1, "publish": 2, "update": 1})
        self.assertEqual(timings.errors, {"publish": 1, "update": 1})

    def test_latency(self):
        """The time from the call to its result."""
        from twisted.internet.defer import Deferred
        clock = Clock()
        backend = _Backend()
        backend.answer = Deferred()
        storage = MeasuredStorage(backend, clock.seconds)
        d = storage.publish("t", None, None)
        clock.advance(0.3)
        backend.answer.callback("stored")
        self.assertEqual(self.successResultOf(d), "stored")
        self.assertAlmostEqual(storage.timings.latency["publish"].total, 0.3)


class ScrapeAccessTests(SynchronousTestCase):
    """L{address_allowed} and the C{[metrics]} section."""

    def test_addresses(self):
        """Networks and single addresses; IPv4 seen through IPv6 counts as IPv4."""
        networks = parse_networks("127.0.0.0/8 ::1 10.1.0.0/16 192.0.2.7")
        for host in ("127.0.0.1", "127.1.2.3", "::1", "10.1.200.3", "192.0.2.7",
                     "::ffff:127.0.0.1"):
            self.assertTrue(address_allowed(networks, host), host)
        for host in ("10.2.0.1", "192.0.2.8", "2001:db8::1", None, "nonsense", "::ffff:10.2.0.1"):
            self.assertFalse(address_allowed(networks, host), host)

    def test_config(self):
        """Loopback by default; a bad network or an unknown group names the key."""
        config = load_config(None)
        self.assertEqual(config.metrics, MetricsConfig())
        self.assertEqual(config.metrics.allow, (ipaddress.ip_network("127.0.0.0/8"),
                                                ipaddress.ip_network("::1")))
        config = load_config(None, [("metrics", "allow", "10.0.0.0/8"), ("groups", "ops", ""),
                                    ("metrics", "group", "ops")])
        self.assertEqual(config.metrics.group, "ops")
        with self.assertRaises(ConfigError) as e:
            load_config(None, [("metrics", "allow", "10.0.0.0/33")])
        self.assertIn("[metrics] allow: '10.0.0.0/33' is not an IP address or network",
                      str(e.exception))
        with self.assertRaises(ConfigError) as e:
            load_config(None, [("metrics", "group", "ops")])
        self.assertIn("[metrics] group: 'ops' is not a group of [groups]", str(e.exception))


class MetricsPageTests(_ServerMixin, SynchronousTestCase):
    """C{/metrics} through the real site, in memory."""

    def served_storage(self, storage):
        return MeasuredStorage(storage, self.clock.seconds)

    def access_model(self):
        return AccessModel(read=self.read, groups={"ops": frozenset(["alice"])})

    def scrape(self, **kwargs):
        response, body = self.get("/metrics", **kwargs)
        self.assertEqual(response.code, 200, body)
        return scrape(body)

    def test_index_loaded_later(self):
        """
        While projects a start loaded later wait for their records, a
        scrape counts them and their files without making them, and leaves
        the bytes out until they are made.
        """
        self.uploaded()
        records = self.index.records()
        made = []

        def source():
            made.append(True)
            return records
        self.index.load([], later=[LaterRecords("holy-grail", "Holy-Grail", len(records),
                                                source)])
        found = self.scrape()
        self.assertEqual((found["pypid_index_files", ()], found["pypid_index_projects", ()]),
                         (1, 1))
        self.assertNotIn(("pypid_index_bytes", ()), found)
        self.assertEqual(made, [])
        self.index.later.make()
        self.assertEqual(self.scrape()["pypid_index_bytes", ()], records[0].size)

    def test_counts(self):
        """After uploads and installs, the counters say what happened."""
        self.uploaded()
        self.uploaded(SDIST_NAME, SDIST)
        self.assertEqual(self.upload()[0].code, 200)  # (the same file again: no change)
        self.assertEqual(self.upload(WHEEL_NAME.replace("1.0", "2.0"), SDIST)[0].code, 400)
        self.assertEqual(self.upload(auth=basic("alice", "wrong"))[0].code, 401)
        for _ in range(3):
            self.assertEqual(self.get("/simple/holy-grail/")[0].code, 200)
        self.assertEqual(self.get(f"/files/holy-grail/{WHEEL_NAME}")[0].code, 200)
        self.assertEqual(self.request("POST", f"/api/files/{WHEEL_NAME}/yank",
                                      auth=True)[0].code, 200)
        self.clock.advance(1)
        found = self.scrape()
        self.assertEqual(found["pypid_http_requests_total", (("code", "200"), ("method", "GET"),
                                                             ("route", "simple"))], 3)
        self.assertEqual(found["pypid_changes_total", (("action", "upload"),
                                                       ("outcome", "ok"))], 3)
        self.assertEqual(found["pypid_changes_total", (("action", "upload"),
                                                       ("outcome", "invalid"))], 1)
        self.assertEqual(found["pypid_changes_total", (("action", "upload"),
                                                       ("outcome", "denied"))], 1)
        self.assertEqual(found["pypid_changes_total", (("action", "yank"),
                                                       ("outcome", "ok"))], 1)
        self.assertEqual(found["pypid_login_failures_total", ()], 1)
        self.assertEqual(found["pypid_index_files", ()], 2)
        self.assertEqual(found["pypid_index_projects", ()], 1)
        self.assertEqual(found["pypid_index_bytes", ()],
                         sum(r.size for r in self.index.records()))
        # (the yank dropped holy-grail's pages, and nothing asked for them since)
        self.assertEqual(found["pypid_page_cache_projects", ()], 0)
        self.assertEqual(found["pypid_page_cache_bytes", ()], self.index.rendered.bytes)
        self.assertEqual(found["pypid_http_request_duration_seconds_count",
                               (("route", "simple"),)], 3)
        self.assertGreater(found["pypid_http_response_bytes_total", (("route", "files"),)], 0)
        self.assertGreater(found["pypid_http_request_bytes_total", (("route", "upload"),)],
                           len(SDIST))
        self.assertEqual(found["pypid_storage_operations_total",
                               (("operation", "publish"), ("store", "packages"))], 2)
        self.assertEqual(found["pypid_storage_errors_total",
                               (("operation", "publish"), ("store", "packages"))], 0)
        self.assertIn(("process_cpu_seconds_total", ()), found)
        # (the uploads, the yank and the refused upload are in the audit log)
        self.assertEqual(found["pypid_audit_pending", ()], 0)
        self.assertGreaterEqual(found["pypid_audit_written_total", ()], 4)
        self.assertEqual(found["pypid_audit_lost_total", ()], 0)
        # The scrape itself is counted by the next one.
        self.assertEqual(self.scrape()["pypid_http_requests_total", (
            ("code", "200"), ("method", "GET"), ("route", "metrics"))], 1)

    def test_no_unbounded_labels(self):
        """No label value holds a project, a file or a user."""
        self.uploaded()
        self.get("/simple/holy-grail/")
        self.get("/simple/no-such-project-" + "x" * 50 + "/")
        for (name, labels), _ in self.scrape().items():
            for label, value in labels:
                self.assertNotIn("grail", value.lower(), (name, label))
                self.assertNotIn("alice", value, (name, label))
                self.assertNotIn("no-such", value, (name, label))

    def test_formats(self):
        """OpenMetrics when asked for; gzip when accepted (not with q=0); never cached."""
        response, body = self.raw("GET", "/metrics", {
            "Accept": "application/openmetrics-text; version=1.0.0,text/plain;q=0.5",
            "Accept-Encoding": "gzip"})
        self.assertEqual(response.code, 200)
        self.assertTrue(self.header(response, "content-type").startswith(
            b"application/openmetrics-text"))
        self.assertEqual(self.header(response, "content-encoding"), b"gzip")
        self.assertEqual(self.header(response, "cache-control"), b"no-store")
        self.assertTrue(gzip.decompress(body).rstrip().endswith(b"# EOF"))
        response, body = self.raw("GET", "/metrics", {"Accept-Encoding": "gzip;q=0"})
        self.assertIsNone(self.header(response, "content-encoding"))
        self.assertTrue(self.header(response, "content-type").startswith(b"text/plain"))
        self.assertIn(b"# TYPE pypid_http_requests_total counter", body)

    def test_address_refused(self):
        """A client outside C{allow} gets 403 with no group to log in to."""
        self.web.app.metrics.reconfigure(MetricsConfig(allow=parse_networks("10.0.0.0/8")))
        response, body = self.get("/metrics")
        self.assertEqual(response.code, 403)
        self.assertIn(b"[metrics] allow", body)
        self.assertNotIn(b"pypid_", body)

    def test_relayed_refused(self):
        """A request relayed by a proxy is not let in by its (loopback) address."""
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            response, _ = self.get("/metrics", headers={header: "192.0.2.1"})
            self.assertEqual(response.code, 403, header)

    def test_group(self):
        """With C{group}: its users may scrape with credentials; others get 401 or 403."""
        self.web.app.metrics.reconfigure(MetricsConfig(allow=(), group="ops"))
        self.assertEqual(self.get("/metrics")[0].code, 401)
        self.assertEqual(self.get("/metrics", auth=basic("alice", "wrong"))[0].code, 401)
        self.assertEqual(self.get("/metrics", auth=True)[0].code, 200)
        self.web.app.metrics.reconfigure(MetricsConfig(allow=(), group="nobody"))
        response, body = self.get("/metrics", auth=True)
        self.assertEqual(response.code, 403)
        self.assertIn(b"not in the group 'nobody'", body)

    def test_wrong_method(self):
        """Only GET and HEAD."""
        self.assertEqual(self.request("POST", "/metrics")[0].code, 405)


class IndexLabelTests(_IndexesMixin, SynchronousTestCase):
    """
    With named indexes, the index families carry an C{index} label, one
    value a hosted index (issue 26); a server of one index has none (its
    body is main's: L{tests.unit.state.test_indexes.GoldenTests}).
    """

    index_families = ("pypid_index_projects", "pypid_index_files", "pypid_index_bytes",
                      "pypid_index_serial", "pypid_page_cache_bytes", "pypid_page_cache_projects")

    def scrape(self, service):
        """The samples of the server's C{/metrics}."""
        treq = StubTreq(service.getServiceNamed("web").web.site.resource)
        response = self.successResultOf(treq.get("http://127.0.0.1/metrics"))
        self.assertEqual(response.code, 200)
        return scrape(self.successResultOf(treq.content(response)))

    def test_labelled_by_index(self):
        """
        Each hosted index's files and projects under its name (C{default}
        for today's), a view none of its own, and no sample without the label.
        """
        service = self.started(NAMED)
        filename, data = make_wheel("holy-grail", "1.0")
        path = write_file(os.path.join(self.folder, "spool"), data)
        record = inspect(path, filename, filename, UPLOAD_TIME).record
        service.getServiceNamed("index:release").index.add(record)
        found = self.scrape(service)
        for name in self.index_families:
            self.assertNotIn((name, ()), found, name)
            self.assertEqual({labels for (family, labels) in found if family == name},
                             {(("index", index),) for index in ("default", "release", "staging")},
                             name)
        self.assertEqual(found["pypid_index_files", (("index", "release"),)], 1)
        self.assertEqual(found["pypid_index_projects", (("index", "release"),)], 1)
        self.assertEqual(found["pypid_index_bytes", (("index", "release"),)], record.size)
        self.assertEqual(found["pypid_index_files", (("index", "default"),)], 0)
        self.assertEqual(found["pypid_index_files", (("index", "staging"),)], 0)

    def test_one_index_unlabelled(self):
        """Without named indexes, the families are as they were: no label."""
        found = self.scrape(self.started())
        for name in self.index_families:
            self.assertIn((name, ()), found, name)
