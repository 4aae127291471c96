"""
End to end: promotion between named indexes of one real daemon on S3
(issue 26), seen from the store's side.

The store is moto's S3 server, run in the test process behind a small
WSGI layer of ours (L{WatchedS3}) that records every request it is sent
and can answer chosen ones with S3's C{500 InternalError}: the daemon
talks to it over loopback HTTP as to any S3 endpoint, so the requests
recorded are the daemon's own, and a failure injected there is one the
daemon's real S3 client meets. (It is a server of these tests alone, not
the shared one of L{tests.harness.s3server}, whose requests others make too.)

twine uploads a release of several files to C{/staging/};
C{pypid-admin promote} brings it to C{release}, which pip and uv then
install from, and the store saw a copy of every object and no read of
any file's bytes. A copy that fails part-way leaves C{release} as it
was (its pages and its objects), and so does a restart after a failure
whose taking back failed too (the journal rolled back at start-up).
"""

import json
import logging
import os
import threading
import time
import uuid
from urllib.parse import unquote

from tests.harness import s3server
from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.e2e import (
    PASSWORD,
    USER,
    VENV_BIN,
    DaemonTestCase,
    clean_env,
    free_port,
    http,
    installed,
    run,
    wait_for,
)
from tests.harness.e2e_s3 import SYNC, s3_settings

ADMIN = os.path.join(VENV_BIN, "pypid-admin")

SECTIONS = """
[index:release]

[index:staging]
bases = release
"""

#: The platforms of a release's wheels: several files, one release.
_TAGS = ("py3-none-any", "py3-none-macosx_11_0_arm64", "py3-none-win_amd64")


def release(version):
    """The files of C{widget} C{version}: three wheels and an sdist."""
    return [make_wheel("widget", version, tag=tag) for tag in _TAGS] + [
        make_sdist("widget", version)]


WIDGET = release("1.2")
BROKEN = release("2.0")

#: The keys of each index in the bucket (L{pypid.storage.factory.index_settings}).
STAGING = "packages/.indexes/staging/"
RELEASE = "packages/.indexes/release/"

#: Seconds a stalled request waits in the store: several sync intervals of
#: the daemon (L{tests.harness.e2e_s3.SYNC}).
STALL = 2.0

#: The objects of an index that change with time alone, not with its files.
_BOOKKEEPING = (".pypid/changes/", ".pypid/snapshot", ".pypid/probe/")


class WatchedS3:
    """
    moto's S3 server on a loopback port, behind a WSGI layer that records
    each request (method, key, query, copy source) and answers those a
    fault matches with a C{500 InternalError}, as a store in trouble does.
    """

    def __init__(self):
        self.requests = []
        self.faults = []
        self.stalls = []
        self._lock = threading.Lock()
        self._server = None

    def start(self):
        """Serve on a free loopback port; return the endpoint URL."""
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        # (one line a request on stderr would bury the test's output)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = DomainDispatcherApplication(create_backend_app)
        port = free_port()
        self._server = make_server("127.0.0.1", port, self._layer(app), threaded=True,
                                   request_handler=MotoRequestHandler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{port}"

    def stop(self):
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _layer(self, app):
        def layer(environ, start_response):
            seen = (environ["REQUEST_METHOD"], unquote(environ.get("PATH_INFO", "")),
                    environ.get("QUERY_STRING", ""),
                    unquote(environ.get("HTTP_X_AMZ_COPY_SOURCE", "")) or None)
            with self._lock:
                self.requests.append(seen)
                refused = any(fault(*seen) for fault in self.faults)
                stalled = any(stall(*seen) for stall in self.stalls)
            if stalled:
                time.sleep(STALL)
            if refused:
                start_response("500 Internal Server Error",
                               [("Content-Type", "application/xml")])
                return [b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError"
                        b"</Code><Message>injected by the test</Message></Error>"]
            return app(environ, start_response)
        return layer

    def mark(self):
        """The number of requests recorded so far (for L{since})."""
        with self._lock:
            return len(self.requests)

    def since(self, mark):
        """The requests recorded after C{mark}."""
        with self._lock:
            return list(self.requests[mark:])


class PromoteOnS3Tests(DaemonTestCase):
    """Promotion on S3: a copy on the store's side, all or nothing."""

    def setUp(self):
        super().setUp()
        self.s3 = WatchedS3()
        self.endpoint = self.s3.start()
        self.addCleanup(self.s3.stop)
        self.bucket = "pypid-promote-" + uuid.uuid4().hex[:12]
        self.store().create_bucket(Bucket=self.bucket)
        daemon = self.new_daemon(settings=s3_settings(self.bucket, endpoint=self.endpoint),
                                 start=False)
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write(SECTIONS)
        self.server = daemon.start()

    def store(self):
        """A blocking botocore client of this test's store, for set-up and checks."""
        return s3server.botocore_client(endpoint_url=self.endpoint)

    def objects(self, prefix):
        """The keys (relative to C{prefix}) of the objects under it, but its bookkeeping."""
        keys, token = [], None
        while True:
            args = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                args["ContinuationToken"] = token
            listed = self.store().list_objects_v2(**args)
            keys += [item["Key"][len(prefix):] for item in listed.get("Contents", ())]
            token = listed.get("NextContinuationToken")
            if not token:
                break
        return sorted(k for k in keys if not k.startswith(_BOOKKEEPING))

    def upload_to_staging(self, files):
        """twine uploads C{files} to C{/staging/}."""
        self.clients.twine_upload(self.server, self.dist_dir(*files), "--repository-url",
                                  self.server.url + "staging/legacy/")

    def promote(self, version):
        """C{POST /api/promote} of C{widget} C{version} from staging to release."""
        body = json.dumps({"from": "staging", "to": "release", "project": "widget",
                           "version": version}).encode()
        return http("POST", self.server.url + "api/promote",
                    {"Content-Type": "application/json"}, body, auth=(USER, PASSWORD))

    def release_page(self):
        """The status and body of C{/release/simple/widget/} (PEP 691 JSON)."""
        answer = http("GET", self.server.url + "release/simple/widget/",
                      {"Accept": "application/vnd.pypi.simple.v1+json"})
        return answer.status, answer.body

    def test_promotion_is_a_copy_in_the_store(self):
        """
        C{pypid-admin promote} brings a four-file release to C{release}:
        every file and its metadata copied on the store's side (an
        C{x-amz-copy-source} naming staging's object), no GET of any file
        or metadata object, and pip and uv install it from C{release}.
        """
        daemon = self.server
        self.upload_to_staging(WIDGET)
        self.assertEqual(self.objects(RELEASE), [])
        mark = self.s3.mark()
        done = run([ADMIN, "--server", daemon.url, "--user", USER, "promote", "staging",
                    "release", "widget==1.2"], cwd=daemon.directory,
                   env=clean_env(daemon.home, PYPID_PASSWORD=PASSWORD), what="pypid-admin")
        seen = self.s3.since(mark)
        names = sorted(name for name, _ in WIDGET)
        self.assertEqual(done.output.splitlines(),
                         [f"promoted {name} to release" for name in names])
        copies = {(key, source) for method, key, _, source in seen if source}
        for name in names:
            for suffix in ("", ".metadata"):
                target = f"/{self.bucket}/{RELEASE}{name}{suffix}"
                self.assertIn((target, f"/{self.bucket}/{STAGING}{name}{suffix}"), copies)
        bodies = {f"/{self.bucket}/{prefix}{name}{suffix}" for prefix in (STAGING, RELEASE)
                  for name in names for suffix in ("", ".metadata")}
        self.assertEqual([(m, k) for m, k, _, _ in seen if m == "GET" and k in bodies], [])
        self.assertEqual([(m, k) for m, k, _, source in seen
                          if m == "PUT" and k in bodies and source is None], [],
                         "no file is sent with its bytes")
        kept = self.objects(RELEASE)
        for name in names:
            self.assertIn(name, kept)
            self.assertIn(name + ".metadata", kept)
        self.assertEqual([k for k in kept if k.startswith(".pypid/promotions/")], [],
                         "the journal is dropped")
        for install in (self.clients.pip_install, self.clients.uv_install):
            target = os.path.abspath(self.mktemp())
            install(target, daemon.url + "release/simple/", "widget")
            self.assertEqual(installed(target), {"widget": "1.2"}, install)

    def assert_release_unchanged(self, before_objects):
        """
        C{release} has no page for widget (once the daemon has looked at
        the store's changes again) and its objects are C{before_objects};
        staging still holds the release.
        """
        self.assertEqual(self.objects(RELEASE), before_objects)
        wait_for(lambda: self.release_page()[0] == 404, 10 * SYNC,
                 lambda: f"release still serves widget: {self.release_page()}")
        answer = http("GET", self.server.url + "staging/simple/widget/",
                      {"Accept": "application/vnd.pypi.simple.v1+json"})
        self.assertEqual(sorted(f["filename"] for f in json.loads(answer.body)["files"]),
                         sorted(name for name, _ in BROKEN), "staging still holds the release")

    def fail_third_copy(self):
        """Make the store refuse the copy of the third file of L{BROKEN} (in sorted order)."""
        third = sorted(name for name, _ in BROKEN)[2]
        key = f"/{self.bucket}/{RELEASE}{third}"
        self.s3.faults.append(lambda method, k, query, source: k == key and bool(source))
        return key

    def test_failure_part_way_leaves_release_as_it_was(self):
        """
        The store fails the copy of the third file: the two copied before
        are removed, the promotion answers 503, and C{release} is as it
        was, its page and its objects, and after a restart too; once the
        store is well, the promotion succeeds.
        """
        self.upload_to_staging(BROKEN)
        before = self.objects(RELEASE)
        key = self.fail_third_copy()
        mark = self.s3.mark()
        answer = self.promote("2.0")
        self.assertEqual(answer.status, 503, answer.body)
        self.assertNotIn(self.bucket.encode(), answer.body)
        self.assertTrue([r for r in self.s3.since(mark) if r[1] == key and r[3]],
                        "the fault was met")
        self.assert_release_unchanged(before)
        self.server.restart()
        self.assertEqual(self.release_page()[0], 404)
        self.assert_release_unchanged(before)
        self.s3.faults.clear()
        answer = self.promote("2.0")
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(len(answer.json()["promoted"]), len(BROKEN))
        self.assertEqual(self.release_page()[0], 200)

    def test_failed_take_back_rolled_back_at_restart(self):
        """
        The store fails the third copy and then every removal in
        C{release}: the promotion cannot take its two copies back, so its
        journal stays in the store; the next start (the store well again)
        removes the two copies and the journal before serving: C{release}
        is as it was.
        """
        self.upload_to_staging(BROKEN)
        before = self.objects(RELEASE)
        self.fail_third_copy()
        self.s3.faults.append(lambda method, k, query, source: method == "DELETE"
                              and k.startswith(f"/{self.bucket}/{RELEASE}"))
        answer = self.promote("2.0")
        self.assertEqual(answer.status, 503, answer.body)
        self.server.wait_for_log(b"Cannot take back the promotion")
        left = self.objects(RELEASE)
        self.assertEqual(len([k for k in left if k.startswith(".pypid/promotions/")]), 1, left)
        self.assertEqual(len([k for k in left if "/" not in k and k.endswith(".whl")]), 2,
                         left)
        self.s3.faults.clear()
        self.server.restart()
        self.assertEqual(self.release_page()[0], 404)
        self.assertIn("Took back a promotion from staging that did not finish",
                      self.server.log_text())
        self.assert_release_unchanged(before)

    def test_release_never_shows_a_promotion_under_way(self):
        """
        While a promotion is under way (the third copy held in the store
        for several of the daemon's sync intervals, then failed), and
        after it failed, C{release} never serves a file of it: its index
        gets the records only once every file is copied.
        """
        self.upload_to_staging(BROKEN)
        key = self.fail_third_copy()
        self.s3.stalls.append(lambda method, k, query, source: k == key and bool(source))
        statuses = []
        done = threading.Event()

        def watch_release():
            while not done.is_set():
                statuses.append(self.release_page())
                time.sleep(0.05)
        watcher = threading.Thread(target=watch_release)
        watcher.start()
        try:
            answer = self.promote("2.0")
            time.sleep(4 * SYNC)
        finally:
            done.set()
            watcher.join()
        self.assertEqual(answer.status, 503, answer.body)
        shown = [body for status, body in statuses if status != 404]
        self.assertEqual(shown[:1], [], f"{len(shown)} of {len(statuses)} looks saw a page")
