"""
End to end: a real Prometheus (Debian's C{prometheus}) scrapes the real
daemon's C{/metrics} while pip installs from it, and its query API gives the
counts of what was done.
"""

import json
import os
import subprocess
from urllib.parse import urlencode

from tests.harness import e2e
from tests.harness.distributions import make_wheel
from tests.harness.system import require


class Prometheus(e2e.ChildProcess):
    """A Prometheus server in the foreground, scraping one target every second."""

    what = "prometheus"

    def __init__(self, directory, target, metrics_path="/metrics", basic_auth=None):
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.program = require({"prometheus": "prometheus"})["prometheus"]
        self.target = target
        self.metrics_path = metrics_path
        self.basic_auth = basic_auth
        self.port = None

    @property
    def url(self):
        return f"http://{e2e.HOST}:{self.port}/"

    def write_config(self):
        auth = ""
        if self.basic_auth is not None:
            auth = (f"    basic_auth:\n      username: {self.basic_auth[0]}\n"
                    f"      password: {self.basic_auth[1]}\n")
        path = os.path.join(self.directory, "prometheus.yml")
        with open(path, "w", encoding="utf-8") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: pypid\n"
                    f"    metrics_path: {self.metrics_path}\n{auth}"
                    f"    static_configs:\n      - targets: ['{self.target}']\n")
        return path

    def start(self):
        config = self.write_config()

        def launch(port):
            with open(os.path.join(self.directory, "log"), "wb") as log:
                return subprocess.Popen(
                    [self.program, f"--config.file={config}",
                     f"--storage.tsdb.path={self.directory}/data",
                     f"--web.listen-address={e2e.HOST}:{port}"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=e2e._die_with_parent)

        return e2e.start_on_free_port(
            self, launch, lambda: e2e.http("GET", self.url + "-/ready", timeout=1).status == 200,
            self.log)

    def log(self):
        with open(os.path.join(self.directory, "log"), encoding="utf-8",
                  errors="replace") as f:
            return f.read()

    def query(self, expression):
        """The value of an instant query that gives one number, or L{None} for no data."""
        response = e2e.http("GET", self.url + "api/v1/query?" + urlencode({"query": expression}))
        answer = json.loads(response.body)
        if answer["status"] != "success":
            raise e2e.E2EFailure(f"prometheus refused {expression!r}: {answer}")
        result = answer["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def target_health(self):
        """The scrape target's health and last error, as Prometheus sees it."""
        answer = json.loads(e2e.http("GET", self.url + "api/v1/targets").body)
        targets = answer["data"]["activeTargets"]
        return [(t["health"], t.get("lastError", "")) for t in targets]

    def wait_for(self, expression, expected, timeout=30):
        """Wait until C{expression} evaluates to C{expected}."""
        seen = []

        def reached():
            seen[:] = [self.query(expression)]
            return seen[0] == expected
        try:
            e2e.wait_for(reached, timeout, f"{expression}", interval=0.5)
        except AssertionError:
            raise e2e.E2EFailure(f"{expression} is {seen[0]}, not {expected}; targets: "
                                 f"{self.target_health()}")


class PrometheusScrapeTests(e2e.DaemonTestCase):
    """A real Prometheus scrapes the daemon."""

    def setUp(self):
        super().setUp()
        require({"prometheus": "prometheus"})

    def test_counts_after_uploads_and_installs(self):
        """After uploads, an install and a wrong password, Prometheus has the counts."""
        daemon = self.daemon
        for version in ("1.0", "2.0"):
            filename, data = make_wheel("scraped", version)
            self.assertEqual(e2e.upload(daemon, filename, data).status, 200)
        self.assertEqual(e2e.upload(daemon, filename, data,
                                    auth=(e2e.USER, "wrong")).status, 401)
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, daemon.index_url, "scraped")
        self.assertEqual(e2e.installed(target), {"scraped": "2.0"})

        prometheus = Prometheus(self.mktemp(), f"{e2e.HOST}:{daemon.port}")
        prometheus.start()
        self.addCleanup(prometheus.stop)
        prometheus.wait_for('pypid_changes_total{action="upload",outcome="ok"}', 2.0)
        self.assertEqual(prometheus.query(
            'pypid_changes_total{action="upload",outcome="denied"}'), 1.0)
        self.assertEqual(prometheus.query("pypid_login_failures_total"), 1.0)
        self.assertEqual(prometheus.query("pypid_index_files"), 2.0)
        self.assertEqual(prometheus.query("pypid_index_projects"), 1.0)
        # pip read the wheel's metadata (PEP 658), then the wheel
        self.assertEqual(prometheus.query(
            'sum(pypid_http_requests_total{route="files",code="200"})'), 2.0)
        self.assertGreaterEqual(prometheus.query(
            'sum(pypid_http_requests_total{route="simple",code="200"})'), 1.0)
        self.assertEqual(prometheus.query(
            'pypid_storage_operations_total{operation="publish",store="packages"}'), 2.0)
        self.assertGreater(prometheus.query(
            'sum(pypid_http_response_bytes_total{route="files"})'), len(data) - 1)
        # A histogram Prometheus can take quantiles of.
        self.assertIsNotNone(prometheus.query(
            'histogram_quantile(0.5, sum by (le) '
            '(pypid_http_request_duration_seconds_bucket{route="upload"}))'))
        self.assertEqual(prometheus.query('up{job="pypid"}'), 1.0)
