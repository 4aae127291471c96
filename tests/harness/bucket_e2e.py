"""
End-to-end tests of the daemon on a bucket, whichever cloud keeps it
(L{tests.harness.e2e_clouds}: S3 on moto and SeaweedFS, Azure Blob
Storage on Azurite, Google Cloud Storage on fake-gcs-server), driven by
real twine, pip and uv. Each C{...Mixin} is a test case once mixed with a
L{BucketTestCase} (or a L{CloudTestCase}) of a store, in
C{tests/e2e/test_s3.py} and C{tests/e2e/test_clouds.py}.
"""

import json
import os
import threading
import time

from twisted.trial.unittest import SkipTest

from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.e2e import (
    PASSWORD,
    USER,
    DaemonTestCase,
    E2EFailure,
    file_url,
    files_by_name,
    form,
    http,
    installed,
    sha256,
    upload,
)
from tests.harness.e2e_clouds import SYNC

APP = make_wheel("s3-app", "1.0", requires_dist=["s3-lib>=1"])
LIB = make_wheel("s3-lib", "1.0")
LIB_SDIST = make_sdist("s3-lib", "1.0")


def api(daemon, method, path, **fields):
    """Call the admin API as the uploader; fail unless it answers 200."""
    headers, body = form(**fields) if fields else ({}, None)
    answer = http(method, daemon.url + path, headers, body, auth=(USER, PASSWORD))
    if answer.status != 200:
        raise E2EFailure(f"{method} {path}: {answer.status} {answer.body!r}")
    return answer


def wait_for(check, timeout=60.0, step=0.05):
    """Call C{check} until it returns true; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(step)
    raise E2EFailure(f"not true within {timeout} s: {check.__doc__ or check}")


class CloudTestCase(DaemonTestCase):
    """Daemons on buckets of C{cloud} (an L{tests.harness.e2e_clouds} store)."""

    cloud = None

    def setUp(self):
        reason = self.cloud.skip_reason()
        if reason:
            raise SkipTest(reason)
        return super().setUp()

    def new_bucket(self):
        """A fresh bucket of the store."""
        return self.cloud.new_bucket()

    def on(self, bucket, **extra):
        """The settings that put a daemon on C{bucket} of the store."""
        return self.cloud.settings(bucket, **extra)


class BucketTestCase(CloudTestCase):
    """A shared daemon on a bucket of its own, with C{options} for the store's section."""

    options = {}

    @property
    def bucket(self):
        """The class's bucket, made on first use."""
        return self.shared("bucket", self.new_bucket)

    @property
    def settings(self):
        return self.on(self.bucket, **self.options)


class RedirectMixin:
    """The default download mode: pypid redirects to signed URLs of the bucket."""

    def prepare(self, daemon):
        paths = self.dist_dir(APP, LIB, LIB_SDIST)
        self.clients.twine_upload(daemon, paths)

    def test_objects_in_bucket(self):
        """twine's uploads land under the prefix, each with its metadata sibling and record."""
        _ = self.daemon  # (started)
        keys = self.cloud.keys(self.bucket, "packages/")
        for filename in (APP[0], LIB[0], LIB_SDIST[0]):
            self.assertIn("packages/" + filename, keys)
        self.assertIn("packages/" + APP[0] + ".metadata", keys)
        size, metadata = self.cloud.head(self.bucket, "packages/" + APP[0])
        self.assertEqual(metadata["sha256"], sha256(APP[1]))
        self.assertEqual(size, len(APP[1]))

    def test_file_redirects_to_signed_url(self):
        """A file URL answers 302 to a signed URL of the object, which serves its bytes."""
        url = file_url(self.daemon, "s3-app", APP[0]).split("#")[0]
        answer = http("GET", url)
        self.assertEqual(answer.status, 302, answer.body)
        location = answer.header("location")
        self.assertTrue(location.startswith(self.cloud.endpoint() + "/" + self.bucket
                                            + "/packages/"), location)
        self.assertIn(self.cloud.signature_param, location)
        self.assertEqual(answer.header("cache-control"), "no-store")
        fetched = http("GET", location)
        self.assertEqual(fetched.status, 200)
        self.assertEqual(fetched.body, APP[1])
        again = http("GET", url)
        self.assertEqual(again.header("location"), location, "the signed URL is cached")

    def test_metadata_redirects(self):
        """The PEP 658 metadata URL redirects to the metadata sibling."""
        url = file_url(self.daemon, "s3-app", APP[0]).split("#")[0] + ".metadata"
        answer = http("GET", url)
        self.assertEqual(answer.status, 302)
        fetched = http("GET", answer.header("location"))
        self.assertIn(b"Name: s3-app", fetched.body)
        self.assertIn(b"Requires-Dist: s3-lib>=1", fetched.body)

    def test_pip_installs_through_redirect(self):
        """pip follows the redirects to the bucket and installs the project and its dependency."""
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.daemon.index_url, "s3-app")
        self.assertEqual(installed(target), {"s3-app": "1.0", "s3-lib": "1.0"})

    def test_uv_installs_through_redirect(self):
        """uv follows the redirects to the bucket too."""
        target = os.path.abspath(self.mktemp())
        self.clients.uv_install(target, self.daemon.index_url, "s3-app")
        self.assertEqual(installed(target), {"s3-app": "1.0", "s3-lib": "1.0"})

    def test_legacy_json_reads_metadata(self):
        """The legacy JSON API reads the release's metadata from the bucket."""
        answer = http("GET", self.daemon.url + "pypi/s3-app/json")
        self.assertEqual(answer.status, 200, answer.body)
        self.assertEqual(answer.json()["info"]["requires_dist"], ["s3-lib>=1"])

    def test_conflicting_upload_refused(self):
        """Other bytes under a stored filename get twine's "File already exists" 400."""
        other = make_wheel("s3-lib", "1.0", extra_files=[("s3_lib/other.py", b"x = 1\n")])
        self.assertEqual(other[0], LIB[0])
        answer = upload(self.daemon, *other)
        self.assertEqual(answer.status, 400)
        self.assertIn("File already exists", answer.reason)

    def test_health(self):
        """/health says the storage is up."""
        answer = http("GET", self.daemon.url + "health")
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.json()["storage"], "ok")


class ShortLivedURLMixin:
    """
    Signed URLs that live seconds (C{expire_after}): what a quarantine
    leaves out in the world. pip and uv install through them, a URL is
    handed out again only while enough of its life is left, and a URL
    given before a quarantine dies with its life, where the store checks
    it (C{cloud.signatures_checked}: fake-gcs-server checks none).
    """

    #: 8 s of life, 6 s in reserve: a URL is handed out again for 2 s. A
    #: URL given before the quarantine must still download after the
    #: quarantine's call and a page's: the life leaves a slow machine room
    #: for both.
    LIFE = 8.0
    options = {"expire_after": "8s", "buffer_time": "6s"}

    @property
    def settings(self):
        return {**self.on(self.bucket, **self.options), "auth.admins": USER}

    def prepare(self, daemon):
        self.clients.twine_upload(daemon, self.dist_dir(APP, LIB))

    def test_urls_expire(self):
        """
        pip installs, and a URL given before a quarantine still downloads;
        once their life is over, uv installs with new URLs, and the old ones
        (the quarantined file's too) are refused where the store checks
        signatures. One wait for both: the life is the test's longest step.
        """
        held = make_wheel("s3-held", "1.0")
        self.assertEqual(upload(self.daemon, *held).status, 200)
        url = file_url(self.daemon, "s3-held", held[0]).split("#")[0]
        given = http("GET", url)
        self.assertEqual(given.status, 302, given.body)
        api(self.daemon, "POST", "api/projects/s3-held/status", status="quarantined",
            reason="under review")
        self.assertEqual(http("GET", url).status, 404, "no URL after the quarantine")
        self.assertEqual(http("GET", given.header("location")).body, held[1])
        first = http("GET", file_url(self.daemon, "s3-app", APP[0]).split("#")[0])
        self.clients.pip_install(os.path.abspath(self.mktemp()), self.daemon.index_url,
                                 "s3-app")
        time.sleep(self.LIFE + 1)
        target = os.path.abspath(self.mktemp())
        self.clients.uv_install(target, self.daemon.index_url, "s3-app")
        self.assertEqual(installed(target), {"s3-app": "1.0", "s3-lib": "1.0"})
        again = http("GET", file_url(self.daemon, "s3-app", APP[0]).split("#")[0])
        self.assertNotEqual(again.header("location"), first.header("location"),
                            "a URL past its life is not handed out again")
        if self.cloud.signatures_checked:
            self.assertEqual(http("GET", first.header("location")).status, 403)
            self.assertEqual(http("GET", given.header("location")).status, 403)


class StreamMixin:
    """C{download = stream}: pypid relays the objects itself."""

    @property
    def options(self):
        return dict(self.cloud.part_options, download="stream")

    def prepare(self, daemon):
        for dist in (APP, LIB):
            answer = upload(daemon, *dist)
            self.assertEqual(answer.status, 200, answer.body)

    def test_pip_installs(self):
        """pip installs with every byte relayed by pypid."""
        target = os.path.abspath(self.mktemp())
        self.clients.pip_install(target, self.daemon.index_url, "s3-app")
        self.assertEqual(installed(target), {"s3-app": "1.0", "s3-lib": "1.0"})

    def test_file_and_range(self):
        """A file is served whole, and a byte range of it with 206."""
        url = file_url(self.daemon, "s3-app", APP[0]).split("#")[0]
        whole = http("GET", url)
        self.assertEqual(whole.status, 200)
        self.assertEqual(whole.body, APP[1])
        self.assertEqual(whole.header("etag"), f'"{sha256(APP[1])}"')
        part = http("GET", url, headers={"Range": "bytes=10-29"})
        self.assertEqual(part.status, 206)
        self.assertEqual(part.body, APP[1][10:30])
        self.assertEqual(part.header("content-range"), f"bytes 10-29/{len(APP[1])}")
        metadata = http("GET", url + ".metadata")
        self.assertEqual(metadata.status, 200)
        self.assertIn(b"Name: s3-app", metadata.body)

    def test_large_upload_in_parts(self):
        """A file over the store's single-request size is uploaded in parts and served whole."""
        big = make_wheel("s3-big", "1.0",
                         extra_files=[("s3_big/blob.bin", os.urandom(12 << 20))])
        answer = upload(self.daemon, *big)
        self.assertEqual(answer.status, 200, answer.body)
        url = file_url(self.daemon, "s3-big", big[0]).split("#")[0]
        fetched = http("GET", url)
        self.assertEqual(sha256(fetched.body), sha256(big[1]))
        self.assertEqual(self.cloud.parts_left(self.bucket), [], "no upload is left open")


class RebuildMixin:
    """A new server with an empty disk serves the bucket's packages."""

    def test_rebuild_from_bucket(self):
        """An empty disk, no snapshot anywhere: the bucket is listed and read."""
        bucket = self.new_bucket()
        first = self.new_daemon(settings=self.on(bucket, bucket_snapshot="no"))
        for dist in (APP, LIB, LIB_SDIST):
            self.assertEqual(upload(first, *dist).status, 200)
        reason = "broken"
        api(first, "POST", f"api/files/{LIB_SDIST[0]}/yank", reason=reason)
        api(first, "DELETE", f"api/files/{LIB[0]}")
        first.stop()
        second = self.new_daemon(settings=self.on(bucket, bucket_snapshot="no"))
        self.assertNotIn("snapshot kept in the storage", second.log_text())
        files = files_by_name(second, "s3-lib")
        self.assertEqual(sorted(files), [LIB_SDIST[0]])
        self.assertEqual(files[LIB_SDIST[0]]["yanked"], reason)
        self.assertEqual(http("GET", second.url + f"files/s3-lib/{LIB[0]}").status, 410)
        self.assertEqual(sorted(files_by_name(second, "s3-app")), [APP[0]])

    def test_start_from_bucket_snapshot(self):
        """A new server starts from the snapshot another one kept in the bucket."""
        bucket = self.new_bucket()
        first = self.new_daemon(settings=self.on(bucket))
        self.assertEqual(upload(first, *APP).status, 200)
        first.stop_cleanly()
        self.assertIn("packages/.pypid/snapshot.json.gz",
                      self.cloud.keys(bucket, "packages/.pypid/"))
        second = self.new_daemon(settings=self.on(bucket))
        self.assertIn("snapshot kept in the storage", second.log_text())
        self.assertEqual(sorted(files_by_name(second, "s3-app")), [APP[0]])

    def assert_startup_fails(self, settings, words):
        """The daemon stops at start-up with exit status 1 and one clear line, no traceback."""
        daemon = self.new_daemon(settings=settings, start=False)
        # (start() fails when the process exits; its limit is one a failing
        # start-up, however slow, is far within, so the exit is its own and
        # not the kill of a start that took too long)
        with self.assertRaises(E2EFailure):
            daemon.start(timeout=60)
        self.assertEqual(daemon.process.wait(timeout=60), 1)
        text = daemon.log_text()
        self.assertIn(words, text)
        self.assertNotIn("Traceback", text)

    def test_missing_bucket_stops_startup(self):
        """A bucket that does not exist: one clear line, exit status 1."""
        self.assert_startup_fails(self.on("pypid-no-such-bucket"),
                                  "pypid-no-such-bucket does not exist")

    def test_refused_credentials_stop_startup(self):
        """Credentials the store refuses: one clear line, exit status 1, no traceback."""
        bucket = self.new_bucket()
        self.assert_startup_fails(self.cloud.refused_settings(self, bucket),
                                  self.cloud.refused_words)


class ConvergenceMixin:
    """Two servers on one bucket see each other's changes within the sync interval."""

    def test_two_servers_converge(self):
        """
        An upload, a yank, a deletion into the recycle bin, a restore and
        a purge through one server show on the other.
        """
        bucket = self.new_bucket()
        # (a bin of an hour while the file is binned and restored, so no
        # purge comes first however slow the machine; a bin of seconds on
        # the second server for the purge, below)
        settings = dict(self.on(bucket), **{"retention.recycle_bin": "1h",
                                                "auth.admins": USER})
        one = self.new_daemon(settings=settings)
        two = self.new_daemon(settings=settings)
        self.assertEqual(upload(one, *LIB).status, 200)

        def listed():
            """the file is listed by the other server"""
            return (http("GET", two.index_url + "s3-lib/").status == 200
                    and LIB[0] in files_by_name(two, "s3-lib"))
        took = wait_for(listed)
        self.assertLess(took, 10 * SYNC + 5)
        api(one, "POST", f"api/files/{LIB[0]}/yank", reason="bad build")

        def yanked():
            """the other server shows the yank"""
            return files_by_name(two, "s3-lib")[LIB[0]]["yanked"] == "bad build"
        wait_for(yanked)
        api(one, "DELETE", f"api/files/{LIB[0]}")

        def binned():
            """the other server no longer serves the file, and has it in its bin"""
            listed = http("GET", two.url + "api/recycle-bin", auth=(USER, PASSWORD))
            return (http("GET", two.url + f"files/s3-lib/{LIB[0]}").status == 404
                    and [f["filename"] for f in listed.json()["files"]] == [LIB[0]])
        wait_for(binned)
        self.assertEqual(upload(one, *LIB).status, 400)
        # restored through the other: served again by both, still yanked
        api(two, "POST", f"api/files/{LIB[0]}/restore")

        def restored():
            """the first server serves the file again (a redirect to the bucket)"""
            return http("GET", one.url + f"files/s3-lib/{LIB[0]}").status == 302
        wait_for(restored)
        self.assertEqual(files_by_name(one, "s3-lib")[LIB[0]]["yanked"], "bad build")
        # The second server again, with a bin of seconds: it bins the file
        # and purges it soon after; the first (its bin an hour) learns it.
        two.settings["retention.recycle_bin"] = "2s"
        two.restart()
        api(two, "DELETE", f"api/files/{LIB[0]}")

        def purged():
            """both servers answer 410 for the purged file"""
            return all(http("GET", d.url + f"files/s3-lib/{LIB[0]}").status == 410
                       for d in (one, two))
        wait_for(purged)
        # (the other servers, and this one's own look at the change markers,
        # learn the tombstone the purge keeps first; the purge logs once
        # it has removed the objects too: seen later on a busy machine)
        two.wait_for_log(f"Purged {LIB[0]} from the recycle bin".encode())
        # The name stays taken on both.
        self.assertEqual(upload(two, *LIB).status, 400)
        self.assertEqual(upload(one, *LIB).status, 400)


class RetentionMixin:
    """Two servers on one bucket applying the retention rules at once (issue 29)."""

    def test_two_servers_apply_at_once(self):
        """
        Each file goes to the bin once (one server bins it, the other
        leaves it), none the rules keep goes, and both end with the same bin.
        """
        bucket = self.new_bucket()
        settings = dict(self.on(bucket), **{"auth.admins": USER,
                                                "retention.keep_releases": "1",
                                                "retention.recycle_bin": "7d"})
        one = self.new_daemon(settings=settings)
        two = self.new_daemon(settings=settings)
        releases = [make_wheel("s3-cleaned", f"1.{n}") for n in range(30)]
        for wheel in releases:
            self.assertEqual(upload(one, *wheel).status, 200)

        def seen():
            """the other server lists every release"""
            if http("GET", two.index_url + "s3-cleaned/").status != 200:
                return False  # (not one learnt yet)
            return len(files_by_name(two, "s3-cleaned")) == len(releases)
        wait_for(seen, 10 * SYNC + 10)
        answers = {}

        def apply(daemon):
            answers[daemon.port] = http(
                "POST", daemon.url + "api/retention/apply", {"Content-Type": "application/json"},
                json.dumps({"index": "default"}).encode(), auth=(USER, PASSWORD), timeout=60)
        threads = [threading.Thread(target=apply, args=(d,)) for d in (one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        removed = []
        for answer in answers.values():
            self.assertEqual(answer.status, 200, answer.body)
            removed += [f["filename"] for f in answer.json()["removed"]]
        self.assertEqual(sorted(removed), sorted(w[0] for w in releases[:-1]))

        def same_bin():
            """both servers' bins hold every release but the newest"""
            return all(len(http("GET", d.url + "api/recycle-bin", auth=(USER, PASSWORD))
                           .json()["files"]) == len(releases) - 1 for d in (one, two))
        wait_for(same_bin, 10 * SYNC + 10)
        for daemon in (one, two):
            self.assertEqual(list(files_by_name(daemon, "s3-cleaned")), [releases[-1][0]])


class DownloadCountMixin:
    """Two servers on one bucket count downloads that add up (issue 29)."""

    def test_counts_add_up(self):
        """Each server writes records of its own; a start reads them all, summed."""
        bucket = self.new_bucket()
        one = self.new_daemon(settings=self.on(bucket))
        two = self.new_daemon(settings=self.on(bucket))
        self.assertEqual(upload(one, *LIB).status, 200)

        def listed():
            """the other server lists the file"""
            return (http("GET", two.index_url + "s3-lib/").status == 200
                    and LIB[0] in files_by_name(two, "s3-lib"))
        wait_for(listed, 10 * SYNC + 10)
        for daemon, count in ((one, 3), (two, 2)):
            for _ in range(count):
                self.assertIn(http("GET", daemon.url + f"files/s3-lib/{LIB[0]}").status,
                              (200, 302))
        # (each writes its counts within the interval; a clean stop writes them all)
        two.stop_cleanly()
        one.restart(clean=True)

        def counted():
            """the restarted server counts both servers' downloads"""
            info = http("GET", one.url + "pypi/s3-lib/json").json()["info"]
            return info["downloads"]["last_day"] == 5
        wait_for(counted, 10)


class OutageMixin:
    """The store going away and coming back, with no restart of pypid."""

    def test_outage_and_recovery(self):
        """Uploads get 503 + Retry-After, pages keep working, /health says down; then all recovers."""
        server = self.cloud.own_server(self)
        bucket = server.new_bucket()
        daemon = self.new_daemon(settings=self.on(bucket, endpoint=server.endpoint,
                                                  timeout="3"))
        self.assertEqual(upload(daemon, *LIB).status, 200)
        server.halt()
        answer = upload(daemon, *APP)
        self.assertEqual(answer.status, 503, answer.body)
        self.assertTrue(answer.header("retry-after"))
        self.assertEqual(http("GET", daemon.index_url + "s3-lib/").status, 200)
        self.assertNotIn(APP[0], [n for n in files_by_name(daemon, "s3-lib")])
        self.assertEqual(http("GET", daemon.index_url + "s3-app/").status, 404)
        health = http("GET", daemon.url + "health")
        self.assertEqual(health.status, 503)
        self.assertEqual(health.json()["storage"], "down")
        server.resume()
        self.assertEqual(http("GET", daemon.url + "health").status, 200)
        self.assertEqual(upload(daemon, *APP).status, 200)
        self.assertEqual(sorted(files_by_name(daemon, "s3-app")), [APP[0]])
        self.assertNotIn("Traceback", daemon.log_text())


class FilenameRaceMixin:
    """Two servers on one bucket, one filename with other bytes sent to each at once."""

    def test_one_acknowledged(self):
        """
        Exactly one upload is acknowledged, the other gets twine's "File
        already exists", and both servers serve the winner's bytes.
        """
        bucket = self.new_bucket()
        one = self.new_daemon(settings=self.on(bucket))
        two = self.new_daemon(settings=self.on(bucket))
        for number in range(8):
            filename, first = make_wheel("s3-race", f"1.{number}")
            _, second = make_wheel("s3-race", f"1.{number}", module_text="the other bytes\n")
            answers = {}
            start = threading.Barrier(2)

            def send(daemon, data, answers=answers, start=start, filename=filename):
                start.wait()
                answers[data] = upload(daemon, filename, data)
            threads = [threading.Thread(target=send, args=pair)
                       for pair in ((one, first), (two, second))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            won = [data for data, answer in answers.items() if answer.status == 200]
            self.assertEqual(len(won), 1, {len(d): a.status for d, a in answers.items()})
            lost = [answer for answer in answers.values() if answer.status != 200]
            self.assertEqual([answer.status for answer in lost], [400])
            self.assertIn("File already exists", lost[0].reason)

            def served_by_both(filename=filename, won=won):
                """both servers serve the acknowledged bytes"""
                for daemon in (one, two):
                    if (http("GET", daemon.index_url + "s3-race/").status != 200
                            or filename not in files_by_name(daemon, "s3-race")):
                        return False
                    got = http("GET", file_url(daemon, "s3-race", filename).split("#")[0])
                    if got.status == 302:
                        got = http("GET", got.header("location"))
                    if got.status != 200 or sha256(got.body) != sha256(won[0]):
                        return False
                return True
            wait_for(served_by_both, 10 * SYNC + 10)
