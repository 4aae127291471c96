"""
End to end: the webhooks (issue 72) of the real daemon, delivered to a
real receiver on loopback (L{tests.harness.webhook_receiver}) that checks
every signature with the C{standardwebhooks} package.

Every kind of change reaches it, in the order made, with the body
docs/operations.rst documents; a refused upload sends nothing; a
receiver down for a while gets everything, in order, once back; a
C{kill -9} between a change and its delivery delivers it after the
restart; what is given up is listed, sent again and tested with
C{pypid-admin webhooks}; the secret is in no log line; a machine of two
workers, and two servers on one bucket, deliver each event once.
"""

import json
import os
import signal
import time

from pypid.core.records.webhook_events import EVENT_TYPES
from tests.harness.bucket_e2e import CloudTestCase
from tests.harness.distributions import make_sdist, make_wheel
from tests.harness.e2e import (
    PASSWORD,
    USER,
    VENV_BIN,
    DaemonTestCase,
    E2EFailure,
    clean_env,
    form,
    http,
    run,
    sha256,
    upload,
    wait_for,
)
from tests.harness.e2e_clouds import MOTO
from tests.harness.osv_records import osv_record, write_folder
from tests.harness.upstream_server import UpstreamProcess
from tests.harness.webhook_receiver import ReceiverProcess
from tests.harness.webhooks import SECRET

ADMIN = os.path.join(VENV_BIN, "pypid-admin")
LIB = "e2e-hook-lib"
V1 = make_wheel(LIB, "1.0")
V2 = make_wheel(LIB, "2.0")
V3 = [make_wheel(LIB, "3.0"), make_sdist(LIB, "3.0")]
OTHER = make_wheel("e2e-hook-other", "1.0")
#: Seconds a delivery may take to arrive here (the daemon looks every second).
ARRIVAL = 30


def hook(receiver, name="all", **keys):
    """The settings of a subscription C{name} to C{receiver}."""
    keys = {"url": receiver.url, "allow_http": "yes", "allow_private": "yes", "secret": SECRET,
            "retry_delay": "0.2s", **keys}
    return {f"webhook:{name}.{key}": value for key, value in keys.items()}


def admin(daemon, *args, check=True):
    """C{pypid-admin ARGS} as the admin against C{daemon}: its run."""
    env = clean_env(daemon.home, PYPID_PASSWORD=PASSWORD, **daemon.environ)
    return run([ADMIN, "--server", daemon.url, "--user", USER, *args], cwd=daemon.directory,
               env=env, what="pypid-admin", check=check)


def api(daemon, method, path, body=None, **fields):
    """Call the API as the admin; fail unless it answers 200."""
    headers, data = form(**fields) if fields else ({}, None)
    if body is not None:
        headers, data = {"Content-Type": "application/json"}, json.dumps(body).encode()
    answer = http(method, daemon.url + path, headers, data, auth=(USER, PASSWORD))
    if answer.status != 200:
        raise E2EFailure(f"{method} {path}: {answer.status} {answer.body!r}")
    return answer


class WebhookCase(DaemonTestCase):
    """A receiver of the test's own."""

    def receiver(self, start=True):
        receiver = ReceiverProcess(os.path.abspath(self.mktemp()), SECRET)
        os.makedirs(receiver.directory)
        self.addCleanup(receiver.kill)
        return receiver.start() if start else receiver

    def arrived(self, receiver, count, timeout=ARRIVAL):
        """The first C{count} deliveries, once they came; each verified."""
        wait_for(lambda: len(receiver.received()) >= count, timeout,
                 lambda: f"{count} deliveries did not arrive: {receiver.received()}")
        received = receiver.received()
        for delivery in received:
            self.assertTrue(delivery.verified, delivery.error)
        return received[:count]

    def delivered(self, receiver, count, timeout=ARRIVAL, path="/hooks/pypid"):
        """The events of the first C{count} deliveries to C{path} answered 2xx, in order."""
        def taken():
            return [r for r in receiver.received() if r.status < 300 and r.path == path]
        wait_for(lambda: len(taken()) >= count, timeout,
                 lambda: f"{count} events were not delivered: {receiver.received()}")
        for delivery in taken():
            self.assertTrue(delivery.verified, delivery.error)
        return [r.event for r in taken()][:count]


class WebhookEventTests(WebhookCase):
    """Every kind of change, in order, as documented."""

    def test_every_kind(self):
        receiver = self.receiver()
        records = os.path.abspath(self.mktemp())
        write_folder(records, [osv_record("PYSEC-2026-7001", "e2e-hook-nothing",
                                          versions=["1.0"])])
        daemon = self.new_daemon(settings={
            "auth.admins": USER, "retention.recycle_bin": "1h", "index:release.upload": f"user:{USER}",
            "index:quick.recycle_bin": "2s", "advisories.path": records,
            **hook(receiver),
            **hook(receiver, "other-uploads", url=receiver.url + "-other", events="upload",
                   projects="e2e-hook-other*")})
        self.assertEqual(upload(daemon, *V1).status, 200)
        # (a refused upload sends nothing, nor does the same file sent again)
        self.assertEqual(upload(daemon, *V1).status, 200)
        changed = make_wheel(LIB, "1.0", module_text="changed = True\n")
        self.assertEqual(upload(daemon, V1[0], changed[1]).status, 400)
        api(daemon, "POST", f"api/files/{V1[0]}/yank", reason="bad build")
        api(daemon, "POST", f"api/files/{V1[0]}/unyank")
        api(daemon, "DELETE", f"api/files/{V1[0]}")
        api(daemon, "POST", f"api/files/{V1[0]}/restore")
        api(daemon, "POST", f"api/projects/{LIB}/status",
            {"status": "deprecated", "reason": "use e2e-hook-new"})
        token = api(daemon, "POST", "api/tokens", actions="upload").json()["id"]
        api(daemon, "DELETE", f"api/tokens/{token}")
        for dist in V3:
            self.assertEqual(upload(daemon, *dist).status, 200)
        admin(daemon, "promote", "default", "release", f"{LIB}==3.0")
        self.assertEqual(upload(daemon, *V2, path="quick/").status, 200)
        api(daemon, "DELETE", f"quick/api/files/{V2[0]}")
        self.assertEqual(upload(daemon, *OTHER).status, 200)
        # an advisory of 1.0, read at a reload (once the first read, where
        # the telling starts, is done: a busy machine may read it late)
        told = os.path.join(daemon.storage, ".pypid", "webhooks", "advisories", "told.json")
        wait_for(lambda: os.path.exists(told), ARRIVAL, "the advisories were not read")
        write_folder(records, [osv_record("PYSEC-2026-7002", LIB, versions=["1.0"],
                                          severity="HIGH", summary="runs what it reads")])
        os.kill(daemon.pid, signal.SIGHUP)
        # (by group: the events of one project of one index, or of one
        # actor's changes of no project, come in the order made; the groups
        # take turns, so across groups the order is the lane's)
        expected = {
            ("default", LIB): ["upload", "yank", "unyank", "delete", "restore", "status",
                               "upload", "upload"],
            ("actor", USER): ["token-issued", "token-revoked"],
            ("release", LIB): ["promote"],
            ("quick", LIB): ["upload", "delete"],
            ("default", "e2e-hook-other"): ["upload"],
        }
        count = sum(map(len, expected.values()))
        events = self.delivered(receiver, count + 3)
        mine = [e for e in events if e["type"] in EVENT_TYPES]
        # the purge, the reload and the advisory come as the server does each
        later = {"purge", "reload", "advisory"}
        groups = {}
        for event in mine:
            if event["type"] not in later:
                data = event["data"]
                key = ((data["index"], data["project"]) if data["project"] is not None
                       else ("actor", data["actor"]["name"]))
                groups.setdefault(key, []).append(event["type"])
        self.assertEqual(groups, expected)
        self.assertEqual(sorted(e["type"] for e in mine if e["type"] in later),
                         ["advisory", "purge", "reload"])
        by_type = {}
        for event in mine:
            by_type.setdefault(event["type"], []).append(event)
        upload_event = by_type["upload"][0]
        self.assertEqual(upload_event["data"], {
            "id": upload_event["data"]["id"], "index": "default", "project": LIB,
            "version": "1.0", "files": [{"filename": V1[0], "sha256": sha256(V1[1])}],
            "actor": {"name": USER, "source": "password", "token": None},
            "detail": None, "target": None, "outcome": "ok"})
        self.assertEqual(by_type["yank"][0]["data"]["detail"], "bad build")
        self.assertEqual(by_type["status"][0]["data"]["detail"], "deprecated: use e2e-hook-new")
        [promoted] = by_type["promote"]
        self.assertEqual((promoted["data"]["index"], promoted["data"]["target"]),
                         ("release", "default"))
        self.assertEqual(sorted(f["filename"] for f in promoted["data"]["files"]),
                         sorted(name for name, _ in V3))
        [purged] = by_type["purge"]
        self.assertEqual((purged["data"]["index"], purged["data"]["actor"]["source"]),
                         ("quick", "server"))
        [advised] = by_type["advisory"]
        self.assertEqual((advised["data"]["project"], advised["data"]["version"],
                          advised["data"]["target"]), (LIB, "1.0", "PYSEC-2026-7002"))
        self.assertEqual(by_type["reload"][0]["data"]["outcome"], "ok")
        # a configuration that cannot be read: the reload refused is an event too
        with open(daemon.config_path, "a", encoding="utf-8") as f:
            f.write("\n[pypid]\nlisten = twice\n")
        os.kill(daemon.pid, signal.SIGHUP)
        refused = self.delivered(receiver, count + 4)[-1]
        self.assertEqual((refused["type"], refused["data"]["outcome"]), ("reload", "refused"))
        # (its detail names what is at fault, never the file's path nor a
        # value: the log has the whole line)
        self.assertEqual(refused["data"]["detail"],
                         "the configuration: refused; the server's log says why")
        self.assertIn(b"not a valid INI file", daemon.log_since_start())
        self.assertEqual(by_type["token-issued"][0]["data"]["target"], token)
        # each event's id is its audit entry's
        audit = http("GET", daemon.url + "api/audit?event=yank", auth=(USER, PASSWORD)).json()
        self.assertEqual(audit["entries"][0]["id"], by_type["yank"][0]["data"]["id"])
        # the filtered subscription got the one event it wants, the same as the other's
        [other] = self.delivered(receiver, 1, path="/hooks/pypid-other")
        self.assertEqual(other["data"]["id"], by_type["upload"][-1]["data"]["id"])
        # the secret is in no line of the log
        log = daemon.log_text()
        self.assertNotIn(SECRET, log)
        self.assertNotIn(SECRET[len("whsec_"):], log)


class WebhookOutageTests(WebhookCase):
    """A receiver that is down, a daemon killed: nothing lost, in order."""

    def test_receiver_down_then_back(self):
        """Down while three changes are made: all three arrive, in order, once it is back."""
        receiver = self.receiver(start=False)
        daemon = self.new_daemon(settings={"auth.admins": USER, **hook(receiver)})
        names = []
        for version in ("1.0", "1.1", "1.2"):
            wheel = make_wheel(LIB, version)
            names.append(wheel[0])
            self.assertEqual(upload(daemon, *wheel).status, 200)
        daemon.wait_for_log(b"Cannot deliver")
        metrics = http("GET", daemon.url + "metrics").body.decode()
        self.assertIn('pypid_webhook_outbox_depth{webhook="all"} 3.0', metrics)
        receiver.start()
        events = self.delivered(receiver, 3, timeout=60)
        self.assertEqual([e["data"]["files"][0]["filename"] for e in events], names)
        metrics = http("GET", daemon.url + "metrics").body.decode()
        self.assertIn('pypid_webhook_deliveries_total{outcome="delivered",webhook="all"} 3.0',
                      metrics)

    def test_kill_9_between_change_and_delivery(self):
        """A change acknowledged, the daemon killed before its delivery ended: sent after."""
        receiver = self.receiver()
        receiver.answer(delay=60)
        daemon = self.new_daemon(settings={"auth.admins": USER, **hook(receiver)})
        self.assertEqual(upload(daemon, *V1).status, 200)
        first = self.arrived(receiver, 1)[0]
        daemon.kill()
        receiver.answer()
        daemon.start(port=daemon.port)
        [event] = self.delivered(receiver, 1)
        self.assertEqual(event["data"]["id"], first.id)
        self.assertEqual(event["data"]["files"][0]["filename"], V1[0])


class WebhookAdminTests(WebhookCase):
    """What is given up is listed, sent again, and a test event checks a receiver."""

    def test_given_up_redelivered_tested(self):
        receiver = self.receiver()
        receiver.answer(status=500)
        daemon = self.new_daemon(settings={"auth.admins": USER,
                                           **hook(receiver, retry_for="1s")})
        self.assertEqual(upload(daemon, *V1).status, 200)
        daemon.wait_for_log(b"Gave up delivering")
        listed = admin(daemon, "webhooks", "list").output
        self.assertIn(f"all  http://127.0.0.1:{receiver.port}/hooks/...", listed)
        self.assertIn("1 given up", listed)
        shown = admin(daemon, "webhooks", "deliveries", "all").output
        self.assertIn("HTTP 500 (failed): answered 500", shown)
        receiver.answer()
        self.assertIn("1 event to send again", admin(daemon, "webhooks", "redeliver", "all").output)
        [event] = self.delivered(receiver, 1)
        self.assertEqual(event["type"], "upload")
        tested = admin(daemon, "webhooks", "test", "all").output
        self.assertIn("delivered (HTTP 200", tested)
        self.assertEqual(receiver.received()[-1].event["type"], "test")
        receiver.answer(status=410)
        failed = admin(daemon, "webhooks", "test", "all", check=False)
        self.assertEqual(failed.returncode, 1)
        self.assertIn("not delivered: HTTP 410", failed.output)
        audit = http("GET", daemon.url + "api/audit", auth=(USER, PASSWORD)).json()["entries"]
        events = [(e["event"], e["outcome"]) for e in audit if e["event"].startswith("webhook")]
        self.assertEqual(events, [("webhook-redeliver", "ok"), ("webhook-test", "ok"),
                                  ("webhook-test", "failed")])
        self.assertNotIn(SECRET[len("whsec_"):], daemon.log_text())


class WebhookTakedownTests(WebhookCase):
    """An upstream's takedown of a kept file is an event."""

    def test_takedown(self):
        receiver = self.receiver()
        upstream = UpstreamProcess(os.path.abspath(self.mktemp()))
        upstream.add(*V1)
        upstream.start()
        self.addCleanup(upstream.stop)
        daemon = self.new_daemon(settings={
            "auth.admins": USER, "upstream.mode": "cache", "upstream.url": upstream.url,
            "upstream.ttl": "1h", **hook(receiver, events="upstream-takedown")})
        self.assertEqual(http("GET", f"{daemon.url}files/{LIB}/{V1[0]}").body, V1[1])
        upstream.add(*V2)
        upstream.remove(V1[0])
        env = clean_env(daemon.home, PYPID_PASSWORD=PASSWORD, **daemon.environ)
        run([os.path.join(VENV_BIN, "pypid-upstream"), "--server", daemon.url, "--user", USER,
             "refresh", LIB], cwd=daemon.directory, env=env)
        [event] = self.delivered(receiver, 1)
        self.assertEqual((event["type"], event["data"]["files"][0]["filename"]),
                         ("upstream-takedown", V1[0]))


class WebhookWorkersTests(WebhookCase):
    """A machine of two workers delivers each event once."""

    def test_two_workers(self):
        receiver = self.receiver()
        daemon = self.new_daemon(settings={"auth.admins": USER, "pypid.workers": "2",
                                           **hook(receiver)})
        wheels = [make_wheel(LIB, f"1.{n}") for n in range(6)]
        for wheel in wheels:
            self.assertEqual(upload(daemon, *wheel).status, 200)
        events = self.delivered(receiver, 6)
        self.assertEqual(sorted(e["data"]["files"][0]["filename"] for e in events),
                         sorted(name for name, _ in wheels))
        time.sleep(2)  # (a second delivery would come within a look or two)
        self.assertEqual(len({r.id for r in receiver.received()}), len(receiver.received()))


class WebhookTwoServersTests(WebhookCase, CloudTestCase):
    """Two servers on one bucket deliver each event once."""

    cloud = MOTO

    def test_each_event_once(self):
        receiver = self.receiver()
        bucket = self.new_bucket()
        settings = dict(self.on(bucket), **{"auth.admins": USER}, **hook(receiver))
        one, two = self.new_daemon(settings=settings), self.new_daemon(settings=settings)
        wheels = [make_wheel(LIB, f"2.{n}") for n in range(6)]
        for n, wheel in enumerate(wheels):
            self.assertEqual(upload((one, two)[n % 2], *wheel).status, 200)
        events = self.delivered(receiver, 6, timeout=90)
        self.assertEqual(sorted(e["data"]["files"][0]["filename"] for e in events),
                         sorted(name for name, _ in wheels))
        # (one lease holder: no event twice)
        self.assertEqual(len({r.id for r in receiver.received()}), len(receiver.received()))
