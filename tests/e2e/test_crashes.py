"""
Crashes with nothing lost (issue 61): the daemon killed with C{kill -9} at
many points of uploads, yanks, deletions into the recycle bin and their
purges, promotions and snapshot writes (timed kills over many rounds, on
local disk and on S3), and a full disk during an upload and during a
snapshot write.

After each restart: everything acknowledged is there (an upload's file
served with its bytes, a yank shown, a deletion not served, a promotion in
its index), and nothing unacknowledged is half-visible (a file listed is
served whole, one not listed is not served, and its name can be used).
"""

import hashlib
import os
import random
import signal
import subprocess
import threading
import time
from urllib.parse import urljoin

from twisted.trial.unittest import SkipTest

from tests.harness import s3server
from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
    PASSWORD,
    USER,
    DaemonTestCase,
    E2EFailure,
    form,
    http,
    upload,
    wait_for,
)
from tests.harness.e2e_clouds import AZURE, GCS
from tests.harness.e2e_s3 import s3_settings

#: The named indexes, for promotions.
SECTIONS = """
[index:release]

[index:staging]
bases = release
"""

JSON_TYPE = "application/vnd.pypi.simple.v1+json"

#: Rounds of kills of each backend, and the longest a round runs before its kill (s).
ROUNDS = 8
LONGEST = 0.8


def answered(call, *args, **kwargs):
    """C{call(*args, **kwargs)}'s L{Response}, or L{None} when the connection failed (the kill)."""
    try:
        return call(*args, **kwargs)
    except OSError:
        return None


def listing(daemon, project, index=""):
    """C{{filename: entry}} of C{project} (C{{}}: no page)."""
    got = http("GET", f"{daemon.url}{index}simple/{project}/", {"Accept": JSON_TYPE})
    if got.status == 404:
        return {}
    if got.status != 200:
        raise E2EFailure(f"{project}: {got.status} {got.body!r}")
    return {f["filename"]: f for f in got.json()["files"]}


class Workload:
    """
    Changes made one after another until the connection fails: each
    kept with whether it was acknowledged (C{200}) or not (no answer, or
    the answer the kill cut).
    """

    def __init__(self, daemon, round_number, acknowledged):
        self.daemon = daemon
        self.round = round_number
        #: what every earlier round acknowledged: {filename: (bytes, state)}
        self.acknowledged = acknowledged
        #: (what, filename, bytes, answer) of this round's changes
        self.changes = []
        self.stop = threading.Event()

    def run(self):
        url, auth = self.daemon.url, (USER, PASSWORD)
        for n in range(1000):
            if self.stop.is_set():
                return
            name = f"crash-r{self.round}"
            filename, data = make_wheel(name, f"1.{n}")
            kind = n % 5
            if kind == 4:
                # a promotion of a release uploaded to staging just before
                staged = make_wheel(f"crash-p{self.round}", f"2.{n}")
                got = answered(upload, self.daemon, *staged, path="staging/")
                self.changes.append(("stage", staged[0], staged[1], got))
                if got is None or got.status != 200:
                    return
                body = (f'{{"from": "staging", "to": "release", "project": '
                        f'"crash-p{self.round}", "version": "2.{n}"}}').encode()
                got = answered(http, "POST", url + "api/promote",
                               {"Content-Type": "application/json"}, body, auth=auth)
                self.changes.append(("promote", staged[0], staged[1], got))
            else:
                got = answered(upload, self.daemon, filename, data)
                self.changes.append(("upload", filename, data, got))
                if got is not None and got.status == 200 and kind == 1:
                    headers, body = form(reason="crash test")
                    got = answered(http, "POST", url + f"api/files/{filename}/yank",
                                   headers, body, auth=auth)
                    self.changes.append(("yank", filename, data, got))
                elif got is not None and got.status == 200 and kind == 2:
                    got = answered(http, "DELETE", url + f"api/files/{filename}", auth=auth)
                    self.changes.append(("delete", filename, data, got))
            if got is None:
                return


class CrashRoundsMixin:
    """Timed kills over many rounds, then every acknowledged change checked."""

    rounds = ROUNDS

    def settings(self):
        raise NotImplementedError

    def kill(self, daemon):
        """The crash: C{kill -9} of the daemon."""
        daemon.kill()

    def test_kill_rounds(self):
        daemon = self.new_daemon(settings=self.settings(), start=False)
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write(SECTIONS)
        daemon.start()
        randomly = random.Random(61)
        history = []
        for round_number in range(self.rounds):
            work = Workload(daemon, round_number, history)
            thread = threading.Thread(target=work.run)
            thread.start()
            time.sleep(randomly.uniform(0.05, LONGEST))
            # (and one change acknowledged at least, however slow the
            # machine: a round that kills before any proves nothing)
            wait_for(lambda work=work: any(got is not None and got.status == 200
                                           for *_, got in list(work.changes)), 120,
                     "no change acknowledged before the kill")
            self.kill(daemon)
            work.stop.set()
            thread.join(60)
            self.assertFalse(thread.is_alive(), "the workload ended with the kill")
            history.append(work.changes)
            daemon.start(port=daemon.port)
            self.check(daemon, history)
        acknowledged = sum(1 for changes in history for *_, got in changes
                           if got is not None and got.status == 200)
        cut = sum(1 for changes in history for *_, got in changes if got is None)
        self.assertGreaterEqual(acknowledged, self.rounds)
        print(f"\n{type(self).__name__}: {self.rounds} kills, {acknowledged} changes acknowledged, "
              f"{cut} cut by the kill, none lost")

    def check(self, daemon, history):
        """Every round's acknowledged changes hold; the cut ones are whole or absent."""
        for changes in history:
            final = {}
            for what, filename, data, got in changes:
                done = got is not None and got.status == 200
                final.setdefault(filename, []).append((what, done, data))
            for filename, steps in final.items():
                self.check_file(daemon, filename, steps)

    def check_file(self, daemon, filename, steps):
        """
        One file's changes of a round (C{(what, acknowledged, bytes)} in
        order) against what the restarted daemon serves.
        """
        project = filename.split("-")[0].replace("_", "-")
        data = steps[0][2]
        what, done, _ = steps[-1]
        why = f"{filename} after {[(w, d) for w, d, _ in steps]}"
        if what == "promote":
            where = ["release/"] if done else ["release/", "staging/"]
            self.assert_whole(daemon, project, filename, data, where, why)
        elif what == "stage":
            self.assert_whole_or_absent(daemon, project, filename, data, "staging/", done, why)
        elif what == "delete" and done:
            self.assertNotIn(filename, listing(daemon, project), why)
            got = http("GET", f"{daemon.url}files/{project}/{filename}")
            self.assertIn(got.status, (404, 410), why)
        elif what == "delete":
            self.assert_whole_or_absent(daemon, project, filename, data, "", False, why)
        elif what == "yank":
            entry = self.assert_whole(daemon, project, filename, data, [""], why)
            if done:
                self.assertEqual(entry.get("yanked"), "crash test", why)
        else:
            self.assert_whole_or_absent(daemon, project, filename, data, "", done, why)

    def assert_whole(self, daemon, project, filename, data, indexes, why):
        """Listed by the first of C{indexes} that lists it, served with its bytes; its entry."""
        for index in indexes:
            entry = listing(daemon, project, index).get(filename)
            if entry is not None:
                break
        else:
            raise E2EFailure(f"{why}: not listed in {indexes}")
        page = f"{daemon.url}{index}simple/{project}/"
        got = http("GET", urljoin(page, entry["url"]))
        if got.status == 302:
            # (S3's default: a presigned URL of the bucket)
            got = http("GET", got.header("location"))
        self.assertEqual(got.status, 200, why)
        digest = hashlib.sha256(data).hexdigest()
        self.assertEqual(hashlib.sha256(got.body).hexdigest(), digest, why)
        self.assertEqual(entry["hashes"]["sha256"], digest, why)
        return entry

    def assert_whole_or_absent(self, daemon, project, filename, data, index, done, why):
        """Acknowledged: whole. Cut by the kill: whole, or neither listed nor served."""
        if done or filename in listing(daemon, project, index):
            self.assert_whole(daemon, project, filename, data, [index], why)
            return
        got = http("GET", f"{daemon.url}{index}files/{project}/{filename}")
        self.assertIn(got.status, (404, 410), f"{why}: not listed, yet GET {got.status}")


class LocalCrashTests(CrashRoundsMixin, DaemonTestCase):
    """On local disk, snapshots written all the time and a bin purged every second."""

    def settings(self):
        return {"auth.admins": USER, "pypid.snapshot_interval": "0.1",
                "retention.recycle_bin": "2s", "storage.min_free": "0"}


class S3CrashTests(CrashRoundsMixin, DaemonTestCase):
    """On S3 (moto's server), snapshots written all the time and a bin purged every second."""

    def settings(self):
        return dict(s3_settings(s3server.new_bucket()), **{
            "auth.admins": USER, "pypid.snapshot_interval": "0.1",
            "retention.recycle_bin": "2s"})


class _CloudCrashMixin(CrashRoundsMixin):
    """On another cloud's store: the same rounds as on S3."""

    cloud = None

    def setUp(self):
        reason = self.cloud.skip_reason()
        if reason:
            raise SkipTest(reason)
        return super().setUp()

    def settings(self):
        return dict(self.cloud.settings(self.cloud.new_bucket()), **{
            "auth.admins": USER, "pypid.snapshot_interval": "0.1",
            "retention.recycle_bin": "2s"})


class AzureCrashTests(_CloudCrashMixin, DaemonTestCase):
    """On Azure Blob Storage (Azurite), snapshots written all the time and a bin purged every second."""

    cloud = AZURE


class GCSCrashTests(_CloudCrashMixin, DaemonTestCase):
    """On Google Cloud Storage (fake-gcs-server), the same."""

    cloud = GCS


class DiskFullTests(DaemonTestCase):
    """
    A full disk (a small tmpfs holding the storage and the snapshot): the
    client gets a clear 507 or 503, the old snapshot is kept, nothing is lost.
    """

    def mount_small(self, size):
        """A tmpfs of C{size} mounted for the test (root only, as in CI); its path."""
        if os.geteuid() != 0:
            raise SkipTest("a full disk is a tmpfs, which only root may mount")
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder],
                              capture_output=True, check=False)
        if done.returncode != 0:
            raise SkipTest("cannot mount a tmpfs here: " + done.stderr.decode()[-300:])
        self.addCleanup(subprocess.run, ["umount", "-l", folder], check=False)
        return folder

    def daemon_on(self, folder):
        daemon = self.new_daemon(start=False, settings={
            "storage.path": os.path.join(folder, "packages"),
            "pypid.snapshot": os.path.join(folder, "var", "index.json"),
            "storage.min_free": "0", "auth.admins": USER})
        daemon.storage = os.path.join(folder, "packages")
        daemon.snapshot = os.path.join(folder, "var", "index.json")
        return daemon.start()

    def fill(self, folder, leave=0):
        """Fill C{folder}'s file system but C{leave} bytes."""
        filler = os.path.join(folder, "filler")
        free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
        with open(filler, "ab") as f:
            try:
                f.write(b"\0" * max(free - leave, 0))
            except OSError:
                pass
        return filler

    def test_upload_on_a_full_disk(self):
        """An upload larger than the room left: 507 or 503 saying why; what was there stays."""
        folder = self.mount_small("4m")
        daemon = self.daemon_on(folder)
        kept = make_wheel("full-disk", "1.0")
        self.assertEqual(upload(daemon, *kept).status, 200)
        filler = self.fill(folder, leave=64 << 10)
        big = make_wheel("full-disk", "2.0", extra_files=[("full_disk/blob.bin",
                                                           os.urandom(1 << 20))])
        got = upload(daemon, *big)
        self.assertIn(got.status, (503, 507), got)
        self.assertTrue(got.header("content-type").startswith("text/plain"), got)
        self.assertLess(len(got.body), 500, got)
        self.assertEqual(list(listing(daemon, "full-disk")), [kept[0]])
        os.remove(filler)
        self.assertEqual(upload(daemon, *big).status, 200)
        daemon.restart(clean=True)
        self.assertEqual(sorted(listing(daemon, "full-disk")), sorted([kept[0], big[0]]))
        self.assertNotIn("Traceback", daemon.log_text())

    def test_snapshot_on_a_full_disk(self):
        """
        A snapshot that cannot be written keeps the old one; after a kill
        and a restart (the disk still full), every acknowledged file is served.
        """
        folder = self.mount_small("4m")
        daemon = self.daemon_on(folder)
        first = make_wheel("full-snap", "1.0")
        self.assertEqual(upload(daemon, *first).status, 200)
        daemon.restart(clean=True)
        with open(daemon.snapshot, "rb") as f:
            saved = f.read()
        second = make_wheel("full-snap", "2.0")
        self.assertEqual(upload(daemon, *second).status, 200)
        self.fill(folder)
        got = http("DELETE", daemon.url + f"api/files/{first[0]}", auth=(USER, PASSWORD))
        self.assertIn(got.status, (200, 503, 507), got)
        daemon.kill()
        with open(daemon.snapshot, "rb") as f:
            self.assertTrue(f.read().startswith(saved[:16]), "a snapshot is still there")
        daemon.start(port=daemon.port)
        listed = listing(daemon, "full-snap")
        self.assertIn(second[0], listed)
        if got.status == 200:
            self.assertNotIn(first[0], listed)
        else:
            self.assertIn(first[0], listed)
        self.assertEqual(http("GET", daemon.url + f"files/full-snap/{second[0]}").body,
                         second[1])


class S3WorkersCrashTests(CrashRoundsMixin, DaemonTestCase):
    """
    A machine of two workers on S3, the whole machine killed (C{kill -9}
    of every process): the first worker takes back a promotion the crash
    cut before any other worker runs.
    """

    rounds = 4

    def settings(self):
        return dict(s3_settings(s3server.new_bucket()), **{
            "auth.admins": USER, "pypid.snapshot_interval": "0.1",
            "retention.recycle_bin": "2s", "pypid.workers": "2"})

    def kill(self, daemon):
        """Every worker, then the supervisor, as a machine's crash."""
        with open(f"/proc/{daemon.pid}/task/{daemon.pid}/children") as f:
            workers = [int(pid) for pid in f.read().split()]
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        daemon.kill()
