"""
The data of before the journal taken over (issue 79): today's daemon,
started on what 55e9b76 left (the set C{0.1.1.dev607+g55e9b76}, made by
C{tests/harness/upgrade_data/make_set.py}; every set whose recording has
a webhook), goes on with it.

  - The audit log is the journal: the release's entries are read as they
    were, the journal's come after them with serials from 2 (1 stands for
    what the store held before), and the chain checks whole
    (C{GET /api/audit/verify}) before and after new entries.
  - The webhook's events the release's outbox held when it stopped (its
    receiver was down) are delivered once by today's code, to a receiver
    of the test's that checks every signature with C{standardwebhooks};
    the events the release delivered are not sent again, and a change made
    after the upgrade is delivered once too, across a restart; on a
    bucket, so is one made while a server of the release still holds the
    webhooks' lease.
  - On a bucket, a second server of today's, started with nothing of its
    own, sees the files the release recorded (and their yanks, and the
    bin), and what the first uploads after the upgrade; it reads the same
    audit log.

Each test runs on a copy of the set of its own (L{tests.harness.upgrade_replay});
a bucket's set is loaded into moto's server.
"""

import json
import os
import shutil
import threading

from tests.harness import upgrade as sets
from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
    PASSWORD,
    USER,
    Daemon,
    DaemonTestCase,
    E2EFailure,
    http,
    upload_form,
    wait_for,
    watch,
)
from tests.harness.upgrade_replay import (
    STARTUP_TIMEOUT,
    TIMEOUT,
    UpgradeMixin,
    copy_set,
    differences,
    set_version,
    start_on,
    todays,
)
from tests.harness.webhook_receiver import ReceiverProcess

#: Seconds an event may take to reach the receiver, a second server to see
#: a change: generous, for a loaded machine (the deliverer looks every
#: second on disk, every 5 on a bucket; a bucket's servers sync every 5).
ARRIVAL = 120.0

ADMIN = (sets.ADMIN, sets.ADMIN_PASSWORD)
#: The journal's serial of what the store held before it (its first entry has the next).
BEGINNING = 1


def admin_get(daemon, path):
    """C{GET path} as the set's admin; its JSON, failing unless 200."""
    response = http("GET", daemon.url + path, auth=ADMIN, timeout=TIMEOUT)
    if response.status != 200:
        raise E2EFailure(f"GET /{path}: {response.status} {response.body[:500]!r}")
    return response.json()


def upload(daemon, name, version, index=""):
    """Upload a wheel of C{name} C{version} as the set's user; its filename."""
    filename, data = make_wheel(name, version, module_text=f"UPGRADED = {version!r}\n")
    ctype, body = upload_form(filename, data)
    response = http("POST", daemon.url + index, {"Content-Type": ctype}, body,
                    auth=(USER, PASSWORD), timeout=TIMEOUT)
    if response.status != 200:
        raise E2EFailure(f"upload of {filename}: {response.status} {response.body[:500]!r}")
    return filename


def audit(daemon, event=None):
    """Every entry of the audit log, oldest first (the storage's own only when asked for)."""
    return admin_get(daemon, "api/audit?limit=10000"
                     + (f"&event={event}" if event else ""))["entries"]


def serials_whole(shown, stored):
    """Whether the serials of C{shown} and of the storage's C{stored} follow each other, none missing."""
    serials = sorted(e["serial"] for e in shown + stored)
    return serials == list(range(BEGINNING + 1, BEGINNING + 1 + len(serials)))


def taken_by(receiver):
    """The deliveries C{receiver} answered 2xx, in order."""
    return [r for r in receiver.received() if r.status < 300]


def upload_event(receiver, filename):
    """The delivery of the upload of C{filename} C{receiver} took, or L{None}."""
    for received in taken_by(receiver):
        files = received.event["data"].get("files") or []
        if received.event["type"] == "upload" and [f["filename"] for f in files] == [filename]:
            return received
    return None


class OldLeaseHolder:
    """
    A server of the release still delivering from a bucket (a rolling
    upgrade; or one killed, whose lease lasts its TTL): it renews the
    webhooks' lease until L{give_up}, which writes the next epoch empty,
    as a clean stop does.
    """

    #: Seconds between renewals: well within the lease's 30 s TTL.
    EVERY = 3.0

    def __init__(self, client):
        self.client = client
        self.prefix = "packages/.pypid/webhooks/leases/"
        self._stop = threading.Event()
        self._thread = None

    def _newest(self):
        listed = self.client.list_objects_v2(Bucket=sets.BUCKET, Prefix=self.prefix)
        return max((int(item["Key"][len(self.prefix):]) for item in listed.get("Contents", [])
                    if item["Key"][len(self.prefix):].isdigit()), default=0)

    def _write(self, data):
        epoch = self._newest() + 1
        self.client.put_object(Bucket=sets.BUCKET, Key=f"{self.prefix}{epoch:012d}", Body=data)

    def hold(self):
        """Take the lease, and renew it in a thread."""
        self._write(b"0ld5e9b7")

        def renew():
            while not self._stop.wait(self.EVERY):
                self._write(b"0ld5e9b7")
        self._thread = threading.Thread(target=renew, daemon=True)
        self._thread.start()

    def stop(self):
        """Stop renewing (the lease lasts its TTL)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(TIMEOUT)

    def give_up(self):
        """Stop renewing; the lease given up."""
        self.stop()
        self._write(b"")


class JournalUpgradeMixin(UpgradeMixin):
    """The tests of one set's variant whose release had webhooks (see the module)."""

    def setUp(self):
        super().setUp()
        self.webhooks = self.recording["webhooks"]
        self.waiting = [event["id"] for event in self.webhooks["waiting"]]
        self.delivered_before = [event["id"] for event in self.webhooks["delivered"]]

    def receiver(self):
        """A webhook receiver of this test's, up."""
        receiver = ReceiverProcess(os.path.abspath(self.mktemp()), sets.WEBHOOK_SECRET)
        os.makedirs(receiver.directory)
        self.addCleanup(receiver.kill)
        return receiver.start(timeout=TIMEOUT)

    def own_daemon(self, receiver=None, before=None):
        """
        Today's daemon on a copy of the set of this test's, its webhook
        sending to C{receiver} (else to the set's address, where nothing
        listens); C{before()} is called once the set is copied (the bucket
        loaded), before the daemon starts.
        """
        target = os.path.abspath(self.mktemp())
        settings = copy_set(self.folder, target, self.variant, self.recording, self.about)
        if before is not None:
            before()
        if receiver is not None:
            settings[f"webhook:{sets.WEBHOOK}.url"] = receiver.url
        daemon = start_on(target, settings)
        watch(daemon)
        self.addCleanup(daemon.kill)
        self.start(daemon)
        return daemon

    def start(self, daemon, port=None):
        daemon.start(port=port, timeout=STARTUP_TIMEOUT)
        sets.wait_until_ready(daemon.url, STARTUP_TIMEOUT, TIMEOUT)

    def assert_intact(self, daemon, entries):
        """
        The audit log's chains check whole, with C{entries} entries and the
        storage's own (on a bucket, each change of a file is told in the
        journal for the other servers: C{event=stored}).
        """
        check = admin_get(daemon, "api/audit/verify")
        self.assertEqual((check["intact"], check["broken"], check["notes"]), (True, [], []),
                         check)
        self.assertEqual(check["entries"], entries + len(audit(daemon, "stored")), check)

    # -- the audit log -------------------------------------------------------------------------

    def test_audit_chain_unbroken(self):
        """The release's entries, then the journal's: one log, every chain whole."""
        daemon = self.own_daemon()
        before = audit(daemon)
        self.assertTrue(before)
        self.assertEqual([e for e in before if "serial" in e], [],
                         "the release's entries have no serial; none written at the start")
        recorded = next(e["answer"]["json"]["entries"] for e in self.recording["exchanges"]
                        if e["request"]["path"] == "/api/audit?limit=1000")
        self.assertEqual(before, recorded)
        self.assert_intact(daemon, len(before))

        filename = upload(daemon, "widget", "9.1")
        response = http("POST", daemon.url + f"api/files/{filename}/yank",
                        {"Content-Type": "application/x-www-form-urlencoded"},
                        b"reason=after+the+upgrade", auth=(USER, PASSWORD), timeout=TIMEOUT)
        self.assertEqual(response.status, 200, response.body)

        after = audit(daemon)
        self.assertEqual(after[:len(before)], before)
        new = after[len(before):]
        self.assertEqual([(e["event"], e.get("filename")) for e in new],
                         [("upload", filename), ("yank", filename)])
        self.assertTrue(serials_whole(new, audit(daemon, "stored")), new)
        self.assertTrue(all(e["id"].startswith("evt_") for e in new), new)
        self.assert_intact(daemon, len(after))
        # (and so after a clean restart: the chain goes on from the journal's end)
        daemon.stop_cleanly()
        self.start(daemon, port=daemon.port)
        upload(daemon, "widget", "9.2")
        again = audit(daemon)
        self.assertEqual(again[:len(after)], after)
        self.assertEqual(len(again), len(after) + 1)
        self.assertTrue(serials_whole(again[len(before):], audit(daemon, "stored")), again)
        self.assert_intact(daemon, len(again))

    # -- the webhook's events ------------------------------------------------------------------

    def test_every_event_told_once(self):
        """The release's audit log names each event it told: delivered, or waiting; never both."""
        daemon = self.own_daemon()
        told = [e["id"] for e in audit(daemon) if e.get("id")]
        self.assertEqual(sorted(told), sorted(self.delivered_before + self.waiting))
        self.assertEqual(set(self.delivered_before) & set(self.waiting), set())
        self.assertTrue(self.waiting)

    def test_waiting_events_delivered_once(self):
        """
        The events the release's outbox held are delivered once, in its
        order; those it delivered are not sent again; what comes after the
        upgrade is delivered once, across a restart.
        """
        receiver = self.receiver()
        daemon = self.own_daemon(receiver)

        def taken():
            return taken_by(receiver)

        def ids():
            return [r.id for r in taken()]

        wait_for(lambda: set(self.waiting) <= set(ids()), ARRIVAL,
                 lambda: f"the events waiting in the release's outbox did not all arrive: "
                         f"{ids()} (waiting: {self.waiting})")
        first = upload(daemon, "widget", "9.1")

        def event_of(filename):
            return upload_event(receiver, filename)
        wait_for(lambda: event_of(first), ARRIVAL,
                 lambda: f"the upload after the upgrade was not delivered: {ids()}")
        # A clean restart: nothing is sent again; a change after it is sent
        # after anything the restart would send again (its project's events
        # go in order, the events carried over first).
        daemon.stop_cleanly()
        self.start(daemon, port=daemon.port)
        last = upload(daemon, "widget", "9.2")
        wait_for(lambda: event_of(last), ARRIVAL,
                 lambda: f"the upload after the restart was not delivered: {ids()}")

        received = taken()
        for delivery in received:
            self.assertTrue(delivery.verified, delivery.error)
            self.assertEqual(delivery.path, "/hooks/pypid")
        got = ids()
        self.assertEqual(sorted(i for i in set(got) if got.count(i) > 1), [],
                         "events delivered twice")
        self.assertEqual(set(got) & set(self.delivered_before), set(),
                         "events the release delivered were sent again")
        new = [event_of(first).id, event_of(last).id]
        self.assertEqual(sorted(got), sorted(self.waiting + new))
        # the outbox's events in its order, each the event the release wrote
        self.assertEqual([i for i in got if i in self.waiting], self.waiting)
        for event in self.webhooks["waiting"]:
            [delivery] = [r for r in received if r.id == event["id"]]
            self.assertEqual((delivery.event["type"], delivery.event["data"]["id"]),
                             (event["type"], event["id"]))
            [entry] = admin_get(daemon, f"api/audit?id={event['id']}")["entries"]
            self.assertNotIn("serial", entry)
        # the events after the upgrade are the journal's entries
        for id in new:
            [entry] = admin_get(daemon, f"api/audit?id={id}")["entries"]
            self.assertGreater(entry["serial"], BEGINNING)
        # and nothing more waits
        wait_for(lambda: admin_get(daemon, "api/webhooks")["webhooks"][0]["pending"] == 0,
                 ARRIVAL, lambda: f"events still wait: {admin_get(daemon, 'api/webhooks')}")
        self.assertEqual(ids(), got)


class BucketJournalUpgradeMixin(JournalUpgradeMixin):
    """The tests of a bucket's set: a second server on the bucket."""

    def second_server(self, first):
        """
        Today's daemon on the bucket C{first} serves, in a folder of its own
        with nothing in it but the set's configuration and advisories: no
        snapshot, nothing of the release's but what the bucket holds.
        """
        target = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(target, "var"))
        shutil.copytree(os.path.join(self.folder, "advisories"),
                        os.path.join(target, "advisories"))
        # (the set's webhook is on loopback: allowed, as the changelog says to)
        daemon = Daemon(target, settings={"s3.endpoint_url": first.settings["s3.endpoint_url"],
                                          f"webhook:{sets.WEBHOOK}.allow_private": "yes"},
                        config_text=open(os.path.join(self.folder, "pypid.ini"),
                                         encoding="utf-8").read())
        watch(daemon)
        self.addCleanup(daemon.kill)
        self.start(daemon)
        return daemon

    def test_changes_before_the_lease_delivered(self):
        """
        The changes a server takes while another holds the webhooks' lease
        (the release's, until it stops) are delivered once it takes over:
        the upgraded subscription begins at the journal's beginning, not at
        its end when the lease comes.
        """
        from tests.harness import s3server
        receiver = self.receiver()
        old = OldLeaseHolder(s3server.client())
        self.addCleanup(old.stop)
        daemon = self.own_daemon(receiver, before=old.hold)
        filename = upload(daemon, "widget", "9.1")
        # (the lease is the old server's: nothing is sent yet)
        self.assertEqual(receiver.received(), [])
        self.assertNotIn("This server delivers the webhooks", daemon.log_text())
        old.give_up()
        wait_for(lambda: upload_event(receiver, filename), ARRIVAL,
                 lambda: f"the upload made before the lease came was not delivered: "
                         f"{[r.id for r in taken_by(receiver)]}")
        wait_for(lambda: set(self.waiting) <= {r.id for r in taken_by(receiver)}, ARRIVAL,
                 "the events of the release's outbox were not delivered")
        got = [r.id for r in taken_by(receiver)]
        self.assertEqual(sorted(got), sorted(self.waiting + [upload_event(receiver,
                                                                          filename).id]))

    def test_second_server_sees_the_release_files(self):
        """A second server sees every hosted page and file the release recorded, and what follows."""
        first = self.own_daemon()
        second = self.second_server(first)
        version = set_version(self.set_name)
        report = []
        compared = 0
        for exchange in self.recording["exchanges"]:
            request = exchange["request"]
            path = request["path"]
            if request["method"] != "GET" or request.get("auth") or "/remote-" in path \
                    or not path.startswith(("/simple/", "/staging/simple/", "/files/",
                                            "/staging/files/")):
                continue
            if path in ("/simple/", "/staging/simple/") and request.get("accept") is None:
                continue
            new = sets.ask(second.url, request, {}, TIMEOUT, second.directory)
            found = differences(*todays(request, exchange["answer"], new, version))
            compared += 1
            if found:
                report.append(f"GET {path} [{request.get('accept')}]\n  " + "\n  ".join(found))
        self.assertEqual(report, [])
        # (the listings, the pages of every hosted project, every file: some 60)
        self.assertGreater(compared, 40)
        # what the first uploads after the upgrade, the second serves
        filename = upload(first, "widget", "9.1")

        def listed():
            page = http("GET", second.url + "simple/widget/", {"Accept": sets.JSON_FORM},
                        timeout=TIMEOUT).json()
            return filename in [f["filename"] for f in page["files"]]
        wait_for(listed, ARRIVAL, f"the second server did not see {filename}")
        # one audit log, read by both
        self.assertEqual(audit(second), audit(first))
        check = admin_get(second, "api/audit/verify")
        self.assertEqual((check["intact"], check["broken"]), (True, []), check)


def _with_webhooks(folder):
    with open(os.path.join(folder, "expected.json"), encoding="utf-8") as f:
        return "webhooks" in json.load(f)


for _name, _variant, _folder in sets.sets():
    if not _with_webhooks(_folder):
        continue
    _mixin = BucketJournalUpgradeMixin if _variant == "bucket" else JournalUpgradeMixin
    _cls = type("TestJournalUpgrade_" + "".join(c if c.isalnum() else "_"
                                                 for c in f"{_name}_{_variant}"),
                (_mixin, DaemonTestCase), {
                    "set_name": _name, "variant": _variant, "folder": _folder,
                    "__doc__": f"Today's daemon on the data {_name} left ({_variant}), "
                               "with its webhook's outbox.",
                    "__module__": __name__})
    globals()[_cls.__name__] = _cls
del _name, _variant, _folder, _mixin, _cls
