"""
End-to-end tests of the upstream proxy: the real daemon in front of a local
upstream index (L{tests.harness.upstream_server}, run as a process of its own),
driven by real pip and uv.
"""

import hashlib
import os
import signal
import time
from http.client import IncompleteRead, RemoteDisconnected

from pypid.state.writer import SOON
from pypid.upstream.cache import FAILURE_MEMORY
from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
    PASSWORD,
    USER,
    DaemonTestCase,
    file_url,
    files_by_name,
    http,
    installed,
    sha256,
    upload,
    wait_for,
)
from tests.harness.upstream_server import UpstreamProcess

#: The upstream's own build of mixed 1.0: other bytes than the hosted one.
MIXED_UPSTREAM_1 = make_wheel("mixed", "1.0", module_text="ORIGIN = 'upstream'\n")


class UpstreamCacheTests(DaemonTestCase):
    """C{mode = cache}: projects that exist only upstream, through pypid."""

    @property
    def upstream(self):
        """The class's upstream, started on first use."""
        return self.shared("upstream", self._filled_upstream, UpstreamProcess.stop)

    def _filled_upstream(self):
        upstream = UpstreamProcess(self.shared_folder("-upstream"))
        upstream.add_wheel("up-app", "1.0", requires_dist=["up-lib>=1"])
        upstream.add_wheel("up-lib", "0.9")
        upstream.add_wheel("up-lib", "1.0")
        upstream.add_wheel("shadowed", "2.0")
        upstream.add_wheel("acme-secret", "1.0")
        upstream.add(*MIXED_UPSTREAM_1)
        upstream.add_wheel("mixed", "2.0")
        upstream.add_wheel("pre-app", "1.0", requires_dist=["pre-lib==2.0"])
        upstream.add_wheel("pre-lib", "2.0")
        upstream.add_sdist("pre-lib", "2.0")
        upstream.add_wheel("pre-lib", "3.0")
        upstream.add_wheel("refresh-me", "1.0")
        upstream.add_wheel("cli-app", "1.0")
        upstream.add_wheel("cli-app", "2.0")
        upstream.add_wheel("up-yanked", "1.0", requires_python=">=3.8",
                           yanked="broken build", upload_time="2024-05-06T07:08:09Z")
        upstream.add_wheel("up-people", "1.0", requires_python=">=3.8",
                           yanked="broken build", upload_time="2024-05-06T07:08:09Z")
        return upstream.start()

    @property
    def settings(self):
        return {"upstream.mode": "cache", "upstream.url": self.upstream.url,
                "upstream.private": "acme-*", "upstream.merge": "mixed",
                "upstream.ttl": "1h",
                "upstream.timeout": "3"}

    def setUp(self):
        super().setUp()
        _ = self.daemon  # (started)
        if not self.upstream.running():
            self.upstream.start()
        self.upstream.clear()

    def target(self):
        """A new folder to install into."""
        return os.path.abspath(self.mktemp())

    def test_pip_installs_from_upstream_then_offline(self):
        """pip installs a project and its dependency from upstream; again with the upstream down."""
        target = self.target()
        self.clients.pip_install(target, self.daemon.index_url, "up-app")
        self.assertEqual(installed(target), {"up-app": "1.0", "up-lib": "1.0"})
        self.upstream.stop()
        again = self.target()
        self.clients.pip_install(again, self.daemon.index_url, "up-app")
        self.assertEqual(installed(again), {"up-app": "1.0", "up-lib": "1.0"})

    def test_uv_installs_from_upstream(self):
        """uv installs through pypid too."""
        target = self.target()
        self.clients.uv_install(target, self.daemon.index_url, "up-app")
        self.assertEqual(installed(target), {"up-app": "1.0", "up-lib": "1.0"})

    def test_page_links_to_pypid(self):
        """The upstream project's page is pypid's own: links to pypid, hashes kept."""
        files = files_by_name(self.daemon, "up-lib")
        self.assertEqual(sorted(files), ["up_lib-0.9-py3-none-any.whl",
                                         "up_lib-1.0-py3-none-any.whl"])
        for entry in files.values():
            self.assertTrue(file_url(self.daemon, "up-lib", entry["filename"]).startswith(
                self.daemon.url + "files/up-lib/"))
            self.assertEqual(len(entry["hashes"]["sha256"]), 64)

    def test_page_for_people(self):
        """
        An upstream project's page for people shows what the cache knows,
        marked as the upstream's: nothing before an installer asked for it,
        its files after, its description once a file was fetched; the
        upstream is never asked for it.
        """
        page = self.daemon.url + "project/up-people/"
        self.upstream.clear_requests()
        self.assertEqual(http("GET", page).status, 404)
        self.assertEqual(self.upstream.count("/simple/up-people/"), 0)
        files_by_name(self.daemon, "up-people")
        answer = http("GET", page)
        self.assertEqual(answer.status, 200, answer.body)
        self.assertIn(b"from the upstream index", answer.body)
        self.assertIn(b"up_people-1.0-py3-none-any.whl", answer.body)
        self.assertIn(b"yanked: broken build", answer.body)
        self.assertIn(b"2024-05-06 07:08", answer.body)
        self.assertIn(b"has not fetched a file of this version", answer.body)
        self.assertEqual(http("GET", file_url(self.daemon, "up-people",
                                              "up_people-1.0-py3-none-any.whl")).status, 200)
        answer = http("GET", page)
        self.assertIn(b"A test project.", answer.body)
        self.assertIn(b"<dt>Requires Python</dt><dd>&gt;=3.8</dd>", answer.body)
        self.assertEqual(http("GET", self.daemon.url + "project/acme-secret/").status, 404)

    def test_everything_passed_through(self):
        """Hashes, requires-python, the yank and its reason, metadata, size and upload time."""
        entry = files_by_name(self.daemon, "up-yanked")["up_yanked-1.0-py3-none-any.whl"]
        self.assertEqual(entry["requires-python"], ">=3.8")
        self.assertEqual(entry["yanked"], "broken build")
        self.assertEqual(entry["upload-time"], "2024-05-06T07:08:09.000000Z")
        self.assertIsInstance(entry["size"], int)
        metadata = http("GET", file_url(self.daemon, "up-yanked", entry["filename"]) + ".metadata")
        self.assertEqual(metadata.status, 200)
        self.assertEqual(sha256(metadata.body), entry["core-metadata"]["sha256"])

    def test_legacy_json(self):
        """
        Issue 46: C{/pypi/<project>/json} and C{/pypi/<project>/<version>/json}
        answer for a project served through the cache, from its cached page:
        files, digests, requires_python, the yank and the upload time; a
        spelling not normalized is redirected; a private name is 404 and
        never asked upstream.
        """
        entry = files_by_name(self.daemon, "up-yanked")["up_yanked-1.0-py3-none-any.whl"]
        answer = http("GET", self.daemon.url + "pypi/up-yanked/json")
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(answer.headers.get("content-type"), "application/json")
        found = answer.json()
        self.assertEqual((found["info"]["name"], found["info"]["version"],
                          found["info"]["requires_python"], found["info"]["yanked"]),
                         ("up-yanked", "1.0", ">=3.8", True))
        [listed] = found["urls"]
        self.assertEqual(listed["digests"], {"sha256": entry["hashes"]["sha256"]})
        self.assertEqual((listed["filename"], listed["requires_python"], listed["yanked"],
                          listed["yanked_reason"], listed["upload_time_iso_8601"],
                          listed["size"], listed["packagetype"]),
                         (entry["filename"], ">=3.8", True, "broken build",
                          "2024-05-06T07:08:09.000000Z", entry["size"], "bdist_wheel"))
        self.assertTrue(listed["url"].endswith("/files/up-yanked/up_yanked-1.0-py3-none-any.whl"))
        # (absolute, as the public index gives them: issue 60)
        self.assertTrue(listed["url"].startswith(self.daemon.url), listed["url"])
        got = http("GET", listed["url"])
        self.assertEqual(got.status, 200)
        # (issue 60: info from the release's metadata, as the public index
        # gives it; once the file is kept, every digest the cache took)
        self.assertEqual(found["info"]["summary"], "Test project up-yanked")
        again = http("GET", self.daemon.url + "pypi/up-yanked/json").json()
        self.assertEqual(again["urls"][0]["digests"], {
            "md5": hashlib.md5(got.body).hexdigest(),
            "sha256": entry["hashes"]["sha256"],
            "blake2b_256": hashlib.blake2b(got.body, digest_size=32).hexdigest()})
        # (every release, and one of them)
        found = http("GET", self.daemon.url + "pypi/up-lib/json").json()
        self.assertEqual((found["info"]["version"], sorted(found["releases"])),
                         ("1.0", ["0.9", "1.0"]))
        one = http("GET", self.daemon.url + "pypi/up-lib/0.9/json")
        self.assertEqual(one.status, 200)
        self.assertNotIn("releases", one.json())
        self.assertEqual(one.json()["info"]["version"], "0.9")
        self.assertEqual(http("GET", self.daemon.url + "pypi/up-lib/7.0/json").status, 404)
        moved = http("GET", self.daemon.url + "pypi/Up_Lib/json")
        self.assertEqual((moved.status, moved.headers.get("location")),
                         (301, "/pypi/up-lib/json"))
        self.upstream.clear_requests()
        self.assertEqual(http("GET", self.daemon.url + "pypi/acme-secret/json").status, 404)
        self.assertEqual(http("GET", self.daemon.url + "pypi/no-such-anywhere/json").status,
                         404)
        self.assertEqual([r for r in self.upstream.requests() if "acme" in r["path"]], [])

    def test_concurrent_downloads_one_fetch(self):
        """Clients asking for one file at once cause one upstream request, and all get it."""
        from concurrent.futures import ThreadPoolExecutor
        name, data = make_wheel("up-popular", "1.0",
                                extra_files=[("up_popular/blob.bin", os.urandom(1 << 20))])
        self.upstream.add(name, data)
        url = file_url(self.daemon, "up-popular", name)
        self.upstream.fail("/files/" + name, "slow:0.02:131072")
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: http("GET", url), range(6)))
        for answer in answers:
            self.assertEqual((answer.status, sha256(answer.body)), (200, sha256(data)))
        self.assertEqual(self.upstream.count("/files/" + name), 1)

    def test_one_upstream_request_per_file(self):
        """Downloading a file twice fetches it from upstream once."""
        url = file_url(self.daemon, "up-lib", "up_lib-0.9-py3-none-any.whl")
        first = http("GET", url)
        second = http("GET", url)
        self.assertEqual(first.status, 200)
        self.assertEqual(first.body, second.body)
        self.assertEqual(self.upstream.count("/files/up_lib-0.9-py3-none-any.whl"), 1)

    def test_hosted_name_shadows_upstream(self):
        """A hosted project never shows (or asks for) the upstream's files."""
        self.upstream.clear_requests()
        answer = upload(self.daemon, *make_wheel("shadowed", "1.0"))
        self.assertEqual(answer.status, 200, answer.body)
        for spelling in ("shadowed", "Shadowed", "SHADOWED"):
            files = files_by_name(self.daemon, spelling.lower())
            self.assertEqual(sorted(files), ["shadowed-1.0-py3-none-any.whl"])
        target = self.target()
        self.clients.pip_install(target, self.daemon.index_url, "shadowed")
        self.assertEqual(installed(target), {"shadowed": "1.0"})
        direct = http("GET", self.daemon.url + "files/shadowed/shadowed-2.0-py3-none-any.whl")
        self.assertEqual(direct.status, 404)
        self.assertEqual(self.upstream.count("/simple/shadowed/"), 0)

    def test_merge_allow_list(self):
        """A hosted project in C{merge} shows upstream files too; a local file wins."""
        hosted = make_wheel("mixed", "1.0", module_text="ORIGIN = 'hosted'\n")
        self.assertEqual(hosted[0], MIXED_UPSTREAM_1[0])
        self.assertEqual(upload(self.daemon, *hosted).status, 200)
        files = files_by_name(self.daemon, "mixed")
        self.assertEqual(sorted(files), ["mixed-1.0-py3-none-any.whl",
                                         "mixed-2.0-py3-none-any.whl"])
        self.assertEqual(files["mixed-1.0-py3-none-any.whl"]["hashes"]["sha256"],
                         sha256(hosted[1]))
        self.assertEqual(http("GET", file_url(self.daemon, "mixed", hosted[0])).body, hosted[1])
        target = self.target()
        self.clients.pip_install(target, self.daemon.index_url, "mixed")
        self.assertEqual(installed(target), {"mixed": "2.0"})

    def test_private_names_never_asked(self):
        """A name matching a private pattern is 404 and never sent upstream."""
        self.upstream.clear_requests()
        for spelling in ("acme-secret", "ACME_secret", "acme.secret"):
            self.assertEqual(http("GET", self.daemon.index_url + spelling + "/").status, 404)
        self.assertEqual([r for r in self.upstream.requests() if "acme" in r["path"]], [])

    def test_bad_downloads_not_cached(self):
        """
        Wrong bytes, a truncated body, an HTML error page: nothing kept. A
        cut transfer is tried again at the next request; wrong bytes are
        answered 502 for a while without asking the upstream again (each
        try would stream them again), then tried again.
        """
        wrong = []
        for number, mode in enumerate(("wrong_bytes", "truncate", "error_page")):
            filename = self.upstream.add_wheel(f"up-flaky-{number}", "1.0")
            url = file_url(self.daemon, f"up-flaky-{number}", filename)
            self.upstream.fail("/files/" + filename, mode)
            # The first client is fed while the file is fetched: a download
            # that went wrong is broken off before its end, or answered 502
            # when no byte had gone out yet (a small file). Later ones get a
            # 502 until it is right.
            try:
                first = http("GET", url)
            except (IncompleteRead, RemoteDisconnected):
                pass
            else:
                self.assertEqual(first.status, 502, (mode, first.body))
            answer = http("GET", url, headers={"Range": "bytes=0-"})
            self.assertEqual(answer.status, 502, (mode, answer.body))
            self.upstream.clear()
            again = http("GET", url)
            if mode == "truncate":
                self.assertEqual(again.status, 200, mode)
                self.assertEqual(self.upstream.count("/files/" + filename), 3, mode)
            else:
                self.assertEqual(again.status, 502, mode)
                self.assertEqual(self.upstream.count("/files/" + filename), 1, mode)
                wrong.append((url, filename))
        time.sleep(FAILURE_MEMORY + 0.5)
        for url, filename in wrong:
            self.assertEqual(http("GET", url).status, 200, filename)
            self.assertEqual(self.upstream.count("/files/" + filename), 2, filename)

    def test_first_download_streams(self):
        """A large file trickling from upstream reaches the first client whole, and is kept."""
        name, data = make_wheel("up-big", "1.0",
                                extra_files=[("up_big/blob.bin", os.urandom(2 << 20))])
        self.upstream.add(name, data)
        url = file_url(self.daemon, "up-big", name)
        self.upstream.fail("/files/" + name, "slow:0.02:262144")
        first = http("GET", url)
        self.assertEqual(first.status, 200)
        self.assertEqual(sha256(first.body), sha256(data))
        self.assertEqual(first.header("etag"), f'"{sha256(data)}"')
        self.upstream.clear()
        second = http("GET", url, headers={"Range": "bytes=10-19"})
        self.assertEqual((second.status, second.body), (206, data[10:20]))
        self.assertEqual(self.upstream.count("/files/" + name), 1)

    def test_precache_then_offline_install(self):
        """POST /requirements.txt fetches what it pins; pip then installs with the upstream down."""
        body = b"pre-app==1.0\npre-lib==2.0  # the dependency\nacme-secret==1.0\n"
        answer = http("POST", self.daemon.url + "requirements.txt",
                      {"Content-Type": "text/plain"}, body, auth=(USER, PASSWORD))
        self.assertEqual(answer.status, 200, answer.body)
        report = {(f["project"], f.get("filename")): f for f in answer.json()["files"]}
        self.assertEqual(report["pre-app", "pre_app-1.0-py3-none-any.whl"]["status"], "cached")
        self.assertEqual(report["pre-lib", "pre_lib-2.0-py3-none-any.whl"]["status"], "cached")
        self.assertEqual(report["pre-lib", "pre_lib-2.0.tar.gz"]["status"], "cached")
        self.assertNotIn(("pre-lib", "pre_lib-3.0-py3-none-any.whl"), report)
        self.assertEqual(report["acme-secret", None]["status"], "refused")
        again = http("POST", self.daemon.url + "requirements.txt",
                     {"Content-Type": "text/plain"}, b"pre-app==1.0\n", auth=(USER, PASSWORD))
        self.assertEqual(again.json()["files"][0]["status"], "kept")
        self.upstream.stop()
        target = self.target()
        self.clients.pip_install(target, self.daemon.index_url, "pre-app==1.0", "pre-lib==2.0")
        self.assertEqual(installed(target), {"pre-app": "1.0", "pre-lib": "2.0"})

    def test_precache_needs_credentials(self):
        """Pre-caching is for users who may upload; bad input is a 400 naming the line."""
        anonymous = http("POST", self.daemon.url + "requirements.txt",
                         {"Content-Type": "text/plain"}, b"pre-app==1.0\n")
        self.assertEqual(anonymous.status, 401)
        bad = http("POST", self.daemon.url + "requirements.txt",
                   {"Content-Type": "text/plain"}, b"pre-app>=1.0\n", auth=(USER, PASSWORD))
        self.assertEqual(bad.status, 400)
        self.assertIn(b"line 1", bad.body)

    def test_forced_refresh(self):
        """An admin's refresh shows a new upstream release at once, within the TTL."""
        self.assertEqual(sorted(files_by_name(self.daemon, "refresh-me")),
                         ["refresh_me-1.0-py3-none-any.whl"])
        self.upstream.add_wheel("refresh-me", "1.1")
        self.assertNotIn("refresh_me-1.1-py3-none-any.whl",
                         files_by_name(self.daemon, "refresh-me"))
        answer = http("POST", self.daemon.url + "api/upstream/Refresh_Me/refresh",
                      auth=(USER, PASSWORD))
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(answer.json()["files"], 2)
        self.assertIn("refresh_me-1.1-py3-none-any.whl",
                      files_by_name(self.daemon, "refresh-me"))
        private = http("POST", self.daemon.url + "api/upstream/acme-secret/refresh",
                       auth=(USER, PASSWORD))
        self.assertEqual(private.status, 404)

    def run_cli(self, *args):
        """Run C{pypid-upstream} against the daemon; return (status, output)."""
        import subprocess
        import sys
        env = dict(os.environ, PYPID_PASSWORD=PASSWORD)
        done = subprocess.run(
            [sys.executable, "-m", "pypid.cli.upstream", "--server", self.daemon.url,
             "--user", USER, *args], capture_output=True, text=True, env=env, timeout=120)
        return done.returncode, done.stdout, done.stderr

    def test_cli_precache_and_refresh(self):
        """
        The command line pre-caches names (its progress bar drawn only on a
        terminal: none here), and refreshes a project.
        """
        status, out, err = self.run_cli("precache", "cli-app")
        self.assertEqual(status, 0, out + err)
        self.assertIn("cached cli_app-2.0-py3-none-any.whl", out)
        self.assertIn("1 file cached, 0 failed", out)
        self.assertEqual(err, "")
        self.assertEqual(self.upstream.count("/files/cli_app-2.0-py3-none-any.whl"), 1)
        status, out, err = self.run_cli("refresh", "cli-app")
        self.assertEqual(status, 0, out + err)
        self.assertIn("cli-app: 2 files upstream", out)
        status, out, err = self.run_cli("precache", "no-such-project-anywhere")
        self.assertEqual(status, 1)
        self.assertIn("FAILED no-such-project-anywhere", out)

    def test_large_wrong_file_broken_off(self):
        """A large file with wrong bytes reaches its first client broken off, never whole."""
        name, data = make_wheel("up-big-bad", "1.0",
                                extra_files=[("up_big_bad/blob.bin", os.urandom(2 << 20))])
        self.upstream.add(name, data)
        url = file_url(self.daemon, "up-big-bad", name)
        self.upstream.fail("/files/" + name, "wrong_bytes")
        with self.assertRaises(IncompleteRead):
            http("GET", url)
        self.assertEqual(http("GET", url, headers={"Range": "bytes=0-"}).status, 502)

    def test_unknown_project_upstream_down(self):
        """An uncached project with the upstream down: 502 with a reason, within seconds."""
        self.upstream.stop()
        started = time.monotonic()
        answer = http("GET", self.daemon.index_url + "never-seen/")
        self.assertEqual(answer.status, 502, answer.body)
        self.assertIn(b"upstream", answer.body)
        self.assertLess(time.monotonic() - started, 8)

    def test_not_upstream_either(self):
        """A project neither here nor upstream is 404."""
        self.assertEqual(http("GET", self.daemon.index_url + "nowhere-at-all/").status, 404)


class CooldownTests(DaemonTestCase):
    """C{min_age}: upstream files younger than the cooldown are not offered."""

    def test_cooldown(self):
        """A release uploaded upstream an hour ago is hidden; pip gets the older one; exempt projects see all."""
        upstream = UpstreamProcess(os.path.abspath(self.mktemp()))
        now = time.time()
        upstream.add_wheel("calm", "1.0", upload_time=now - 30 * 86400)
        upstream.add_wheel("calm", "2.0", upload_time=now - 3600)
        upstream.add_wheel("trusted", "1.0", upload_time=now - 30 * 86400)
        upstream.add_wheel("trusted", "2.0", upload_time=now - 3600)
        upstream.start()
        self.addCleanup(upstream.kill)
        daemon = self.new_daemon(settings={
            "upstream.mode": "cache", "upstream.url": upstream.url,
            "upstream.min_age": "7d", "upstream.min_age_exempt": "trusted"})
        self.assertEqual(sorted(files_by_name(daemon, "calm")), ["calm-1.0-py3-none-any.whl"])
        self.assertEqual(http("GET", daemon.url + "files/calm/calm-2.0-py3-none-any.whl").status,
                         404)
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, daemon.index_url, "calm")
        self.assertEqual(installed(target), {"calm": "1.0"})
        self.assertEqual(sorted(files_by_name(daemon, "trusted")),
                         ["trusted-1.0-py3-none-any.whl", "trusted-2.0-py3-none-any.whl"])
        self.assertIn("Hiding 1 file of calm", daemon.log_text())


class RedirectModeTests(DaemonTestCase):
    """C{mode = redirect}: unknown projects are sent to the upstream's page."""

    def test_redirect(self):
        """An unknown project answers 302 to the upstream's page; hosted and private names do not."""
        daemon = self.new_daemon(settings={
            "upstream.mode": "redirect", "upstream.url": "http://127.0.0.1:9/simple/",
            "upstream.private": "acme-*"})
        answer = http("GET", daemon.index_url + "somewhere-else/")
        self.assertEqual(answer.status, 302)
        self.assertEqual(answer.header("location"), "http://127.0.0.1:9/simple/somewhere-else/")
        self.assertEqual(http("GET", daemon.index_url + "acme-tools/").status, 404)
        self.assertEqual(upload(daemon, *make_wheel("mine", "1.0")).status, 200)
        self.assertEqual(http("GET", daemon.index_url + "mine/").status, 200)


class RestartTests(DaemonTestCase):
    """What was fetched survives a restart, with the upstream down."""

    def test_restart_offline(self):
        """
        Pages and files come back from the snapshot and the cache storage
        after a restart; once the page is older than its C{ttl} (1 s), it
        is served stale, and says so.
        """
        upstream = UpstreamProcess(os.path.abspath(self.mktemp()))
        upstream.add_wheel("kept-app", "1.0")
        upstream.start()
        self.addCleanup(upstream.kill)
        ttl = 1.0
        daemon = self.new_daemon(settings={"upstream.mode": "cache", "upstream.url": upstream.url,
                                           "upstream.ttl": f"{ttl:g}s"})
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, daemon.index_url, "kept-app")
        fetched_by = time.monotonic()  # (the page was fetched no later than this)
        daemon.stop_cleanly()
        upstream.stop()
        daemon.start()
        self.assertEqual(sorted(files_by_name(daemon, "kept-app")),
                         ["kept_app-1.0-py3-none-any.whl"])
        again = os.path.abspath(self.mktemp())
        self.clients.pip_install(again, daemon.index_url, "kept-app")
        self.assertEqual(installed(again), {"kept-app": "1.0"})
        # However fast the machine was, the page is stale by now: more than
        # the ttl has truly passed (with a margin for the two clocks).
        time.sleep(max(0.0, fetched_by + ttl + 0.5 - time.monotonic()))
        page = http("GET", daemon.index_url + "kept-app/")
        self.assertEqual(page.status, 200, page.body)
        self.assertTrue(page.header("warning"), "a stale page says so")


class CredentialedUpstreamTests(DaemonTestCase):
    """
    An C{[upstream]} that wants credentials (issue 26): pypid sends them,
    pip and uv install through it, and the secret shows nowhere.
    """

    def upstream_and_daemon(self, password_given):
        """A loopback upstream wanting C{svc} with its password, and a daemon in front."""
        secret = "up-secret-" + "x" * 12
        upstream = UpstreamProcess(os.path.abspath(self.mktemp()),
                                   credentials=("--basic", f"svc:{secret}"))
        upstream.add_wheel("locked-app", "1.0", requires_dist=["locked-lib"])
        upstream.add_wheel("locked-lib", "2.0")
        upstream.start()
        self.addCleanup(upstream.kill)
        password_file = os.path.abspath(self.mktemp())
        with open(password_file, "w", encoding="utf-8") as f:
            f.write(password_given(secret) + "\n")
        daemon = self.new_daemon(settings={
            "upstream.mode": "cache", "upstream.url": upstream.url,
            "upstream.username": "svc", "upstream.password_file": password_file})
        return upstream, daemon, secret

    def test_installs_through_it(self):
        """pip and uv install from the upstream through pypid; it never answered 401."""
        upstream, daemon, secret = self.upstream_and_daemon(lambda secret: secret)
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, daemon.index_url, "locked-app")
        self.assertEqual(installed(target), {"locked-app": "1.0", "locked-lib": "2.0"})
        again = os.path.abspath(self.mktemp())
        self.clients.uv_install(again, daemon.index_url, "locked-app")
        self.assertEqual(installed(again), {"locked-app": "1.0", "locked-lib": "2.0"})
        faults = [entry["fault"] for entry in upstream.requests()]
        self.assertNotIn("unauthorized", faults)
        page = http("GET", daemon.url + "project/locked-app/")
        self.assertNotIn(secret.encode(), page.body)
        self.assertNotIn(secret, daemon.log_text())

    def test_wrong_password(self):
        """A wrong password: pypid answers 502, and logs the refusal without the secret."""
        upstream, daemon, secret = self.upstream_and_daemon(lambda secret: secret + "-old")
        page = http("GET", daemon.index_url + "locked-app/")
        self.assertEqual(page.status, 502, page.body)
        self.assertIn("unauthorized", [entry["fault"] for entry in upstream.requests()])
        # One line of the log names the upstream and its 401, for the operator.
        lines = [line for line in daemon.log_text().splitlines()
                 if "401" in line and upstream.url in line]
        self.assertTrue(lines, daemon.log_text()[-3000:])
        self.assertNotIn(secret, daemon.log_text())
        self.assertNotIn(secret + "-old", daemon.log_text())


class FileHostTests(DaemonTestCase):
    """
    An upstream whose files live on another server than its pages (issue
    60), as the public index's do: by default pypid follows the pages to
    any host at a public address only, so a file host on loopback is
    refused, saying which key to set, logged once; named in C{hosts} at
    C{SIGHUP}, it is used, and C{pypid-upstream check} says so.
    """

    def start_upstreams(self):
        """The file server, then the page server whose pages link to it."""
        folder = os.path.abspath(self.mktemp())
        files = UpstreamProcess(folder)
        files.add_wheel("far-lib", "1.0")  # (into the folder both serve)
        files.start()
        self.addCleanup(files.kill)
        pages = UpstreamProcess(folder, files_url=files.base + "files/").start()
        self.addCleanup(pages.kill)
        return pages, files

    def check(self, daemon, *args):
        """Run C{pypid-upstream check}; return (status, output)."""
        import subprocess
        import sys
        done = subprocess.run(
            [sys.executable, "-m", "pypid.cli.upstream", "--server", daemon.url,
             "--user", USER, "check", *args], capture_output=True, text=True,
            env=dict(os.environ, PYPID_PASSWORD=PASSWORD), timeout=120)
        return done.returncode, done.stdout + done.stderr

    def test_file_host_refused_then_named(self):
        """Refused at loopback by default, with the key to set; named at SIGHUP, used."""
        pages, files = self.start_upstreams()
        daemon = self.new_daemon(settings={"upstream.mode": "cache",
                                           "upstream.url": pages.url,
                                           "auth.admins": USER})
        # The page comes through; its file host, on loopback, does not.
        status, out = self.check(daemon, "far-lib")
        self.assertEqual(status, 1, out)
        self.assertEqual(out, "default: the page of far-lib lists 1 file, but its files cannot "
                              "be fetched: 127.0.0.1 is not a public address; if it is a "
                              "file host you trust, set [upstream] hosts = * "
                              f"127.0.0.1:{files.port}\n")
        target = os.path.abspath(self.mktemp())
        refused = self.clients.pip("install", "--no-deps", "--retries", "0", "--target", target,
                                   "--index-url", daemon.index_url, "far-lib", check=False)
        self.assertNotEqual(refused.returncode, 0)
        self.assertEqual(files.count("/files/far_lib-1.0-py3-none-any.whl"), 0)
        self.assertEqual(daemon.log_text().count("Not fetching from 127.0.0.1"), 1,
                         daemon.log_text())
        # Named at SIGHUP (with * kept), the file server is used.
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write(f"[upstream]\nhosts = * 127.0.0.1:{files.port}\n")
        os.kill(daemon.pid, signal.SIGHUP)
        daemon.wait_for_log(b"upstream default's credentials and hosts")
        status, out = self.check(daemon, "far-lib")
        self.assertEqual(status, 0, out)
        self.assertRegex(out, r"^default: works: the page of far-lib lists 1 file, and "
                              r"far_lib-1\.0-py3-none-any\.whl came whole from "
                              rf"127\.0\.0\.1:{files.port} \([\d,]+ bytes, sha256 checked\)\n$")
        self.clients.pip_install(target, daemon.index_url, "far-lib")
        self.assertEqual(installed(target), {"far-lib": "1.0"})
        # (the check's fetch and the install's: the check keeps nothing)
        self.assertEqual(files.count("/files/far_lib-1.0-py3-none-any.whl"), 2)

    def test_check_needs_an_admin(self):
        """Checking is for admins: another user is refused, naming the key."""
        pages, _ = self.start_upstreams()
        daemon = self.new_daemon(settings={"upstream.mode": "cache",
                                           "upstream.url": pages.url})
        status, out = self.check(daemon)
        self.assertEqual(status, 1, out)
        self.assertIn("is not an admin", out)


class WorkersCacheTests(UpstreamCacheTests):
    """
    The same through a machine of two workers: every connection goes to
    whichever worker the kernel hands it to, and what one fetched, kept or
    pinned, the other serves at once (a page, a file, offline too); a
    file is fetched once per machine.
    """

    @property
    def settings(self):
        return {**super().settings, "pypid.workers": "2"}

    def prepare(self, daemon):
        wait_for(lambda: http("GET", daemon.url + "health").json()["workers"]["up"] == 2, 60,
                 "every worker ready")

    def test_snapshot_by_the_first(self):
        """
        What the cache learnt through any worker is saved by the first
        alone (the workers share it: two writers would race).
        """
        target = self.target()
        self.clients.pip_install(target, self.daemon.index_url, "up-app")

        def saved():
            return [line for line in self.daemon.log_since_start().splitlines()
                    if b"Snapshot saved" in line]
        # (each worker learnt it at once, and would save SOON after)
        wait_for(lambda: saved(), SOON + 60, "a snapshot saved")
        time.sleep(1)
        self.assertEqual([line for line in saved() if b"worker 1: " not in line], [])
