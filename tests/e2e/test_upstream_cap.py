"""
End-to-end test of the upstream cache's size cap (issue 29, C{[upstream]
max_cache_size}): the real daemon in front of a local upstream index
(L{tests.harness.upstream_server}), files downloaded past the cap, the least
recently downloaded evicted from the cache's folder, fetched again when
asked for, a pre-cached file kept whatever the cap, and the order and the
pins kept across a restart.
"""

import os

from tests.harness.e2e import PASSWORD, USER, DaemonTestCase, http, wait_for
from tests.harness.upstream_server import UpstreamProcess

#: room for two of the test's wheels (each some 900 bytes), not three
CAP = 2400


class CacheCapTests(DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.upstream = UpstreamProcess(os.path.abspath(self.mktemp()))
        for name in ("cap-a", "cap-b", "cap-c", "cap-pinned"):
            self.upstream.add_wheel(name, "1.0")
        self.upstream.start()
        self.addCleanup(self.upstream.kill)
        self.server = self.new_daemon(settings={
            "upstream.mode": "cache", "upstream.url": self.upstream.url, "upstream.ttl": "1h",
            "upstream.max_file_size": "1200", "upstream.download_space": "1200",
            "upstream.max_cache_size": str(CAP), "auth.admins": USER})

    def get(self, project):
        filename = f"{project.replace('-', '_')}-1.0-py3-none-any.whl"
        return http("GET", f"{self.server.url}files/{project}/{filename}")

    def cached(self):
        folder = os.path.join(self.server.storage, ".upstream")
        return sorted(name for name in os.listdir(folder) if name.endswith(".whl"))

    def fetches(self, project):
        filename = f"{project.replace('-', '_')}-1.0-py3-none-any.whl"
        return sum(1 for entry in self.upstream.requests() if entry["path"].endswith(filename))

    def test_least_recently_downloaded_evicted(self):
        for project in ("cap-a", "cap-b", "cap-a", "cap-c"):
            self.assertEqual(self.get(project).status, 200, project)
        # (the eviction runs in the background, in the I/O pool)
        wait_for(lambda: "pypid_upstream_evicted_files_total 1.0" in http(
            "GET", f"{self.server.url}metrics").body.decode(), 10, "no eviction counted")
        self.assertEqual(self.cached(), ["cap_a-1.0-py3-none-any.whl",
                                         "cap_c-1.0-py3-none-any.whl"])
        # (what the console's "Indexes" page shows of the cache: issue 44)
        [cache] = http("GET", self.server.url + "api/indexes",
                       auth=(USER, PASSWORD)).json()["upstreams"]
        kept = os.path.join(self.server.storage, ".upstream")
        self.assertEqual((cache["name"], cache["mode"], cache["pages"]["cached"]),
                         ("default", "cache", 3))
        self.assertEqual(cache["files"], {
            "kept": 2, "max_bytes": CAP, "evicted": 1,
            "bytes": sum(os.path.getsize(os.path.join(kept, name)) for name in self.cached()),
            "served": {"hit": 1, "miss": 3, "unavailable": 0}, "taken_down": 0})
        # evicted: fetched again when asked for
        self.assertEqual(self.fetches("cap-b"), 1)
        self.assertEqual(self.get("cap-b").status, 200)
        self.assertEqual(self.fetches("cap-b"), 2)
        wait_for(lambda: self.cached() == ["cap_b-1.0-py3-none-any.whl",
                                           "cap_c-1.0-py3-none-any.whl"], 10,
                 "cap-a was not evicted")
        # pre-cached: kept whatever the cap, across a restart
        answer = http("POST", self.server.url + "requirements.txt",
                      {"Content-Type": "text/plain"}, b"cap-pinned==1.0\n",
                      auth=(USER, PASSWORD))
        self.assertEqual(answer.status, 200, answer.body)
        self.server.restart(clean=True)
        for project in ("cap-a", "cap-b", "cap-c"):
            self.assertEqual(self.get(project).status, 200, project)
        wait_for(lambda: len(self.cached()) == 2, 10, "the cache stayed over its cap")
        self.assertIn("cap_pinned-1.0-py3-none-any.whl", self.cached())
        # the upstream gone: an evicted file is not there, a kept one is
        self.upstream.stop()
        self.assertEqual(self.get("cap-c").status, 200)
        self.assertIn(self.get("cap-a").status, (404, 502, 503))
