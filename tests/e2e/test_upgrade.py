"""
Upgrades with nothing lost (issue 61, item 4): today's daemon, started on
the data a released version left behind, answers every page, file, token
and setting as that version did.

Each set under C{tests/upgrade_data/<version>/} (made by
C{tests/upgrade_data/make_set.py} from the release's tag; see
L{tests.harness.upgrade}) is copied to a folder of the test's, and today's
daemon (this checkout's C{src/}) is started on it end to end, with the
set's own configuration: C{local/} on its folder, C{bucket/} on a bucket of
moto's server loaded with the objects the release wrote. Every request the
release answered is asked again, in the same order, and the answers are
compared; where today's code answers differently on purpose, L{todays}
says which change and why, and the rest is an upgrade defect. Then a
clean restart, restoring a file from the recycle bin and an upload with a
token kept from the release show that the data is not just readable but
in use.
"""

import os

from tests.harness import upgrade as sets
from tests.harness.e2e import (
    PASSWORD,
    USER,
    DaemonTestCase,
    http,
    sha256,
    watch,
)
from tests.harness.upgrade_replay import (
    CARRIED,
    STARTUP_TIMEOUT,
    TIMEOUT,
    UpgradeMixin,
)


class SharedUpgradeMixin(UpgradeMixin):
    """The tests that only read: one daemon on one copy, shared by the class."""

    def make_shared_daemon(self, folder):
        """Today's daemon on a copy of the set in C{folder}."""
        return self.copy_and_start(folder, start=False)

    def _start_shared_daemon(self):
        daemon = self.make_shared_daemon(self.shared_folder())
        watch(daemon)
        try:
            daemon.start(timeout=STARTUP_TIMEOUT)
            sets.wait_until_ready(daemon.url, STARTUP_TIMEOUT, TIMEOUT)
        except BaseException:
            daemon.kill()
            raise
        return daemon, None

    def test_every_answer_as_before(self):
        """Every page, file, API answer and credential answers as the release did."""
        self.assert_as_before(self.daemon, "on the release's data")

    def test_snapshot_read(self):
        """Today's code takes the release's snapshots, not a rebuild (which loses the upstream's pages)."""
        log = self.daemon.log_text()
        for words in ("rebuilding the index", "could not be read", "Cannot read"):
            self.assertNotIn(words, log)

    def test_nothing_removed_or_changed(self):
        """Every distribution file and audit line the release wrote is still there, unchanged."""
        if self.variant == "bucket":
            self.assert_bucket_kept()
            return
        old_root = os.path.join(self.folder, "packages")
        new_root = os.path.join(self.daemon.directory, "packages")
        problems = []
        for where, dirs, files in os.walk(old_root):
            dirs[:] = [d for d in dirs if d not in ("tmp", "usage")]
            for name in files:
                if name == "lock":
                    continue
                old_path = os.path.join(where, name)
                relative = os.path.relpath(old_path, old_root)
                if relative.startswith(os.path.join(*CARRIED.strip("/").split("/")) + os.sep):
                    continue
                new_path = os.path.join(new_root, relative)
                with open(old_path, "rb") as f:
                    old = f.read()
                try:
                    with open(new_path, "rb") as f:
                        new = f.read()
                except FileNotFoundError:
                    problems.append(f"{relative}: removed")
                    continue
                if name.endswith(".jsonl"):
                    if not new.startswith(old):
                        problems.append(f"{relative}: the release's audit lines changed")
                elif os.sep + ".pypid" + os.sep not in os.sep + relative and old != new:
                    problems.append(f"{relative}: changed")
        self.assertEqual(problems, [])


    def assert_bucket_kept(self):
        """
        Every object the release wrote is in the bucket, unchanged, but the
        counts, the snapshots and the change markers.
        """
        from tests.harness import s3server
        self.assertTrue(self.daemon.running())
        client = s3server.client()
        now = set()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=sets.BUCKET):
            now.update(item["Key"] for item in page.get("Contents", []))
        problems = []
        for item in sets.bucket_manifest(os.path.join(self.folder, "bucket")):
            key = item["key"]
            if "/.pypid/usage/" in key or key.endswith("/.pypid/snapshot.json.gz"):
                continue
            if "/.pypid/changes/" in key:
                # (change markers are bookkeeping every server removes once a
                # day old: the set's, written when it was made, are removed
                # by any start a day later)
                continue
            if f"/{CARRIED}" in key or any(f"/.pypid/webhooks/{kept}/" in key
                                           for kept in ("status", "leases")):
                # (the deliverer's records of a release with webhooks: its
                # last word and its lease, rewritten as it goes)
                continue
            if key not in now:
                problems.append(f"{key}: removed")
                continue
            data = client.get_object(Bucket=sets.BUCKET, Key=key)["Body"].read()
            if sha256(data) != item["sha256"]:
                problems.append(f"{key}: changed")
        self.assertEqual(problems, [])


class OwnUpgradeMixin(UpgradeMixin):
    """The tests that change the data: each on a copy and daemon of its own."""

    def own_daemon(self):
        """Today's daemon on a copy of the set of this test alone, stopped at the end."""
        daemon = self.copy_and_start(os.path.abspath(self.mktemp()))
        self.addCleanup(daemon.kill)
        return daemon

    def test_restart_as_before(self):
        """After a clean stop, the data today's code wrote answers as the release's did."""
        daemon = self.own_daemon()
        daemon.stop_cleanly()
        daemon.start(port=daemon.port, timeout=STARTUP_TIMEOUT)
        sets.wait_until_ready(daemon.url, STARTUP_TIMEOUT, TIMEOUT)
        self.assert_as_before(daemon, "after a restart", restarted=True)

    def test_bin_and_tokens_in_use(self):
        """A file in the release's recycle bin is restored whole; a token it issued uploads."""
        daemon = self.own_daemon()
        bin_answer = next(e["answer"] for e in self.recording["exchanges"]
                          if e["request"]["path"] == "/api/recycle-bin?index=default")
        binned = bin_answer["json"]["files"][0]
        response = http("POST", daemon.url + f"api/files/{binned['filename']}/restore",
                        auth=(USER, PASSWORD), timeout=TIMEOUT)
        self.assertEqual(response.status, 200, response.body)
        restored = http("GET", daemon.url + f"files/{binned['project']}/{binned['filename']}",
                        timeout=TIMEOUT)
        self.assertEqual((restored.status, sha256(restored.body)), (200, binned["sha256"]))

        secrets = {"tokens": self.recording["tokens"]}
        upload = sets.request("POST", "/", "token:widget-upload",
                              upload=("widget", "9.0", "AFTER_THE_UPGRADE = True\n"))
        answer = sets.ask(daemon.url, upload, secrets, TIMEOUT, daemon.directory)
        self.assertEqual(answer["status"], 200, answer)
        page = http("GET", daemon.url + "simple/widget/",
                    {"Accept": sets.JSON_FORM}, timeout=TIMEOUT).json()
        self.assertIn("widget-9.0-py3-none-any.whl", [f["filename"] for f in page["files"]])


def _class_name(prefix, name, variant):
    return prefix + "".join(c if c.isalnum() else "_" for c in f"{name}_{variant}")


for _name, _variant, _folder in sets.sets():
    for _prefix, _mixin in (("TestUpgradeReads_", SharedUpgradeMixin),
                            ("TestUpgradeInUse_", OwnUpgradeMixin)):
        _cls = type(_class_name(_prefix, _name, _variant), (_mixin, DaemonTestCase), {
            "set_name": _name, "variant": _variant, "folder": _folder,
            "__doc__": f"Today's daemon on the data {_name} left ({_variant}).",
            "__module__": __name__})
        globals()[_cls.__name__] = _cls
del _name, _variant, _folder, _prefix, _mixin, _cls
