"""
A server of several workers on one folder (C{[pypid] workers}), with the
real daemon: every connection goes to whichever worker the kernel hands it
to, and what one worker acknowledged is in every worker's next answer.

Uploads through one worker and installs at once through another (pip, uv
and plain HTTP, many times), the same filename raced from two connections,
a worker killed (C{kill -9}) in the middle of uploads and started again by
the supervisor, C{SIGHUP} with a change all take and with one all refuse,
and the snapshot written by one worker only.
"""

import contextlib
import http.client as httpclient
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from unittest import SkipTest
from urllib.parse import urlencode

from twisted.trial.unittest import SynchronousTestCase

from pypid.machine.ring import SLOTS
from tests import CHECKOUT
from tests.harness.bucket_e2e import CloudTestCase
from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
    HOST,
    PASSWORD,
    USER,
    Daemon,
    DaemonTestCase,
    E2EFailure,
    basic,
    file_url,
    files_by_name,
    form,
    form_login,
    http,
    installed,
    password_hash,
    sha256,
    upload,
    upload_form,
    wait_for,
    with_cookie,
    worker_pids,
    write_files,
)
from tests.harness.e2e_clouds import AZURE, GCS
from tests.harness.e2e_s3 import StoreTestCase
from tests.harness.system import require

#: The workers of the machine under test.
WORKERS = 2


def answered_by(daemon, tries=40):
    """The workers that answered C{/health} in C{tries} new connections."""
    seen = set()
    for _ in range(tries):
        seen.add(http("GET", daemon.url + "health").json()["workers"]["answered_by"])
    return seen


def workers_up(daemon):
    """How many workers run and are ready, as C{/health} says."""
    return http("GET", daemon.url + "health").json()["workers"]["up"]


def restarts_counted(daemon, series="pypid_worker_restarts_total"):
    """
    How many times the supervisor started a worker again (or another of
    its counts: C{series}), as C{/metrics} says.
    """
    for line in http("GET", daemon.url + "metrics").body.decode().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {series} in /metrics")


def connected_to(daemon, number, within=60.0):
    """
    A kept-alive connection that worker C{number} took (its C{/health} says
    so, and not C{Connection: close}, as a worker asks when another comes up),
    tried for up to C{within} seconds: a worker that beats again after a
    stop is counted up at its beat, and listens again once its reactor reads
    that its socket was shut meanwhile, which a busy machine may delay.
    """
    tries = []

    def attempt():
        tries.append(None)
        conn = httpclient.HTTPConnection(HOST, daemon.port, timeout=30)
        conn.request("GET", "/health")
        answer = conn.getresponse()
        if json.loads(answer.read())["workers"]["answered_by"] == number \
                and not answer.will_close:
            return conn
        conn.close()
        return None
    return wait_for(attempt, within, lambda: f"worker {number} took none of "
                    f"{len(tries)} connections in {within:g} s")


def resumed(pid):
    """C{SIGCONT} to C{pid}, unless it ended."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def status_on_worker(daemon, number, path, auth):
    """The status of a C{GET} of C{path} answered by worker C{number}."""
    conn = connected_to(daemon, number)
    try:
        conn.request("GET", "/" + path, headers={"Authorization": basic(*auth)})
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()


def reload_all(daemon):
    """C{SIGHUP} to the machine, and wait until the supervisor and every worker reloaded."""
    reloads = daemon.log_since_start().count(b"Reloaded the configuration")
    os.kill(daemon.pid, signal.SIGHUP)
    wait_for(lambda: daemon.log_since_start().count(b"Reloaded the configuration")
             >= reloads + WORKERS + 1, 30, "every worker reloaded")


class Prober(threading.Thread):
    """
    A client that opens a new connection every 100 ms and asks C{/health}
    on it: C{probes} holds each one's C{(started, ended, answered_by)}
    (monotonic seconds; C{answered_by} L{None} when it failed).
    """

    def __init__(self, daemon):
        super().__init__(daemon=True)
        self.port = daemon.port
        self.probes = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        probing = []
        while not self.stopping.wait(0.1):
            probe = threading.Thread(target=self.probe, daemon=True)
            probe.start()
            probing.append(probe)
        for probe in probing:
            probe.join()

    def probe(self):
        started, by = time.monotonic(), None
        conn = httpclient.HTTPConnection(HOST, self.port, timeout=60)
        try:
            conn.request("GET", "/health")
            by = json.loads(conn.getresponse().read())["workers"]["answered_by"]
        except (OSError, ValueError):
            pass
        finally:
            conn.close()
        with self.lock:
            self.probes.append((started, time.monotonic(), by))

    def stop(self):
        """Stop, and the probes, once every one ended."""
        self.stopping.set()
        self.join()
        return sorted(self.probes)


def kill_a_worker(daemon, victim=None):
    """
    C{kill -9} the last worker (or C{victim}), and wait until the supervisor
    started it again; the monotonic time its end was seen in the log.
    """
    victim = victim or worker_pids(daemon)[-1]
    ended = daemon.log_since_start().count(b"ended (")
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: daemon.log_since_start().count(b"ended (") > ended, 30, "the worker ended")
    seen = time.monotonic()
    wait_for(lambda: len(worker_pids(daemon)) == WORKERS and victim not in
             worker_pids(daemon), 60, "the worker started again")
    wait_for(lambda: workers_up(daemon) == WORKERS, 60, "every worker ready again")
    return seen


class WorkersTests(DaemonTestCase):
    """Two workers on one folder, as clients see them."""

    settings = {"pypid.workers": str(WORKERS)}

    def prepare(self, daemon):
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "every worker ready")

    def test_both_answer(self):
        """Connections are spread over the workers, and C{/health} says how many run."""
        self.assertEqual(answered_by(self.daemon), set(range(1, WORKERS + 1)))
        health = http("GET", self.daemon.url + "health").json()
        self.assertEqual((health["status"], health["workers"]["up"], health["workers"]["of"]),
                         ("ok", WORKERS, WORKERS))

    def test_process_titles(self):
        """C{ps} tells the supervisor and each worker apart."""
        titles = []
        for pid in [self.daemon.pid, *worker_pids(self.daemon)]:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                titles.append(f.read().rstrip(b"\0").decode())
        self.assertEqual(sorted(" ".join(title.split()[:3]) for title in titles),
                         ["pypid: supervisor --config", "pypid: worker 1", "pypid: worker 2"])
        self.assertTrue(all(self.daemon.config_path in title for title in titles))

    def test_upload_then_read_at_once(self):
        """
        Each upload, answered by one worker, is listed and served by the
        next connection's worker at once, whichever it is (the two
        requests came to different workers about half of the times).
        """
        for number in range(60):
            filename, data = make_wheel("machine-at-once", f"1.{number}")
            self.assertEqual(upload(self.daemon, filename, data).status, 200)
            served = http("GET", file_url(self.daemon, "machine-at-once", filename))
            self.assertEqual(served.status, 200, filename)
            self.assertEqual(sha256(served.body), sha256(data))

    def test_pip_and_uv_after_twine(self):
        """twine uploads, then pip and uv at once install the version, many times."""
        folder = os.path.abspath(self.mktemp())
        for number in range(4):
            version = f"2.{number}"
            [path] = write_files(folder, make_wheel("machine-clients", version))
            self.clients.twine_upload(self.daemon, [path])
            target = os.path.abspath(self.mktemp())
            self.clients.pip_install(target, self.daemon.index_url,
                                     f"machine-clients=={version}")
            self.assertEqual(installed(target), {"machine-clients": version})
            target = os.path.abspath(self.mktemp())
            self.clients.uv_install(target, self.daemon.index_url,
                                    f"machine-clients=={version}")
            self.assertEqual(installed(target), {"machine-clients": version})

    def test_same_filename_raced(self):
        """
        The same filename with different bytes, sent at once on two
        connections (to two workers, about half of the times): exactly one
        is acknowledged, and every worker serves its bytes.
        """
        for number in range(20):
            filename, first = make_wheel("machine-race", f"3.{number}")
            _, second = make_wheel("machine-race", f"3.{number}",
                                   module_text="the other bytes\n")
            self.assertNotEqual(first, second)
            answers = {}
            start = threading.Barrier(2)

            def send(data, answers=answers, start=start, filename=filename):
                ctype, body = upload_form(filename, data)
                start.wait()
                answers[data] = http("POST", self.daemon.url, {"Content-Type": ctype}, body,
                                     auth=(USER, PASSWORD), timeout=60)
            threads = [threading.Thread(target=send, args=(data,)) for data in (first, second)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            won = [data for data, answer in answers.items() if answer.status == 200]
            self.assertEqual(len(won), 1, {d[:0]: a.status for d, a in answers.items()})
            lost = [answer for answer in answers.values() if answer.status != 200]
            self.assertEqual([answer.status for answer in lost], [400])
            for _ in range(6):
                served = http("GET", file_url(self.daemon, "machine-race", filename))
                self.assertEqual(sha256(served.body), sha256(won[0]))

    def test_yank_and_delete_at_once(self):
        """A yank, then a delete, answered by one worker, are in the next answers of any."""
        daemon = self.daemon
        for number in range(10):
            filename, data = make_wheel("machine-yank", f"5.{number}")
            self.assertEqual(upload(daemon, filename, data).status, 200)
            api = f"{daemon.url}api/files/{filename}"
            yank = http("POST", api + "/yank", *form(reason="broken"), auth=(USER, PASSWORD))
            self.assertEqual(yank.status, 200, yank.body)
            for _ in range(3):
                self.assertTrue(files_by_name(daemon, "machine-yank")[filename]["yanked"])
            url = file_url(daemon, "machine-yank", filename)
            gone = http("DELETE", api, auth=(USER, PASSWORD))
            self.assertEqual(gone.status, 200, gone.body)
            for _ in range(3):
                self.assertNotIn(filename, files_by_name(daemon, "machine-yank"))
                self.assertEqual(http("GET", url).status, 410, filename)

    def test_token_issued_and_revoked(self):
        """
        A token issued through one worker reads through every worker at
        once; revoked through one, every worker refuses it at its next
        request, many times over.
        """
        daemon = self.daemon
        for _ in range(10):
            issued = http("POST", daemon.url + "api/tokens", *form(actions="read"),
                          auth=(USER, PASSWORD)).json()
            token = ("__token__", issued["token"])
            for _ in range(4):
                self.assertEqual(http("GET", daemon.url + "simple/", auth=token).status, 200)
            gone = http("DELETE", daemon.url + f"api/tokens/{issued['id']}",
                        auth=(USER, PASSWORD))
            self.assertEqual(gone.status, 200)
            for _ in range(4):
                self.assertEqual(http("GET", daemon.url + "simple/", auth=token).status, 401)

    def test_browser_session(self):
        """
        A browser session opened through one worker is valid on every
        worker at once; ended through one, on none, many times over.
        """
        daemon = self.daemon
        for _ in range(10):
            cookie = form_login(daemon.url, USER, PASSWORD)
            for _ in range(4):
                status, body = with_cookie(daemon.url + "console/", cookie)
                self.assertEqual(status, 200, body[:200])
            page = http("GET", daemon.url + "logout", {"Cookie": cookie}).body.decode()
            csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            out = http("POST", daemon.url + "logout", {
                "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
                urlencode({"csrf": csrf}).encode())
            self.assertEqual(out.status, 303, out.body)
            for _ in range(4):
                status, _ = with_cookie(daemon.url + "console/", cookie)
                self.assertNotEqual(status, 200)

    def test_spray_meets_the_throttle(self):
        """
        Wrong passwords for one user spread over the workers meet the limit
        one process sets: after ten, every worker answers 429, whichever
        took the attempts (each worker alone saw about half of them).
        """
        daemon = self.daemon
        for attempt in range(10):
            answer = http("GET", daemon.url + "simple/", auth=("sprayed", "guess"))
            self.assertEqual(answer.status, 401, attempt)
        for _ in range(8):
            answer = http("GET", daemon.url + "simple/", auth=("sprayed", "guess"))
            self.assertEqual(answer.status, 429)

    def test_bursts_meet_the_limit_exactly(self):
        """
        Bursts of distinct wrong passwords sent at once over both workers:
        exactly ten are checked (401) in every burst, the rest refused
        (429), as one process does.
        """
        daemon = self.daemon
        for burst in range(4):
            statuses = []

            def guess(number, user=f"burst-{burst}", statuses=statuses):
                statuses.append(http("GET", daemon.url + "simple/",
                                     auth=(user, f"guess-{number}")).status)
            threads = [threading.Thread(target=guess, args=(n,)) for n in range(16)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            self.assertEqual((statuses.count(401), statuses.count(429)), (10, 6), burst)

    def test_metrics(self):
        """
        C{/metrics}, whichever worker answers, is the machine's: every
        series labelled by its worker, both workers' there (the other's as
        it last wrote them), and how many workers run.
        """
        def scraped():
            return http("GET", self.daemon.url + "metrics").body.decode()

        def both(text):
            return all(f'pypid_requests_total{{worker="{n}"' in text or
                       f'worker="{n}"' in text for n in (1, 2))
        wait_for(lambda: all(both(scraped()) for _ in range(4)), 30, "both workers' series")
        text = scraped()
        self.assertIn("pypid_workers_running 2.0", text)
        self.assertIn("pypid_workers 2.0", text)
        self.assertIn("pypid_worker_restarts_total 0.0", text)

    def test_snapshot_by_the_first(self):
        """Only the first worker writes the snapshot."""
        self.daemon.wait_for_log(b"Snapshot saved", timeout=60)
        saved = [line for line in self.daemon.log_since_start().splitlines()
                 if b"Snapshot saved" in line]
        self.assertTrue(all(b"worker 1: " in line for line in saved), saved)


class FloodTests(DaemonTestCase):
    """A flood of announcements while a worker is stopped, for longer than the ring holds."""

    # (it must not be killed for its silence: it is the one that fell behind)
    settings = {"pypid.workers": str(WORKERS), "pypid.worker_timeout": "600"}

    def prepare(self, daemon):
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "every worker ready")

    def test_flood_keeps_the_throttle(self):
        """
        Nine wrong passwords through worker 1, then a flood of more
        announcements than the machine's ring holds (tokens issued and
        revoked), all on one connection to worker 1, while worker 2 is
        stopped (C{SIGSTOP}): once it runs again, worker 2 checks one more
        guess only, and refuses the next (429), as one process does. The
        flood did not take the failures round unread: they travel on the
        lane, which no other announcement fills.
        """
        daemon = self.daemon
        conn = connected_to(daemon, 1)
        self.addCleanup(lambda: conn.close())
        stopped = worker_pids(daemon)[1]
        os.kill(stopped, signal.SIGSTOP)
        self.addCleanup(resumed, stopped)
        auth = {"Authorization": basic(USER, PASSWORD)}
        headers, body = form(actions="read")

        def asked(method, path, body=None, headers=auth):
            conn.request(method, path, body, headers)
            answer = conn.getresponse()
            return answer.status, answer.read()
        for number in range(9):
            status, _ = asked("GET", "/simple/", headers={
                "Authorization": basic("flooded", f"g{number}")})
            self.assertEqual(status, 401)
        # (each issue and each revocation writes the token file and the
        # journal: an announcement of each, at least)
        for _ in range(SLOTS // 2 + 50):
            status, issued = asked("POST", "/api/tokens", body, {**headers, **auth})
            self.assertEqual(status, 200)
            status, _ = asked("DELETE", f"/api/tokens/{json.loads(issued)['id']}")
            self.assertEqual(status, 200)
        resumed(stopped)
        # (taken out of the port while silent, listening again as it beats)
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "worker 2 up again")
        self.assertEqual(status_on_worker(daemon, 2, "simple/", ("flooded", "g9")), 401)
        self.assertEqual(status_on_worker(daemon, 2, "simple/", ("flooded", "g10")), 429)


class BucketWorkersTests(StoreTestCase):
    """
    Two workers on one bucket (moto's): what one acknowledged is in the
    other's next answer, though the bucket's own look for other servers'
    changes comes only once a minute here.
    """

    @property
    def settings(self):
        bucket = self.shared("bucket", self.new_bucket)
        return {**self.on(bucket, download="stream", sync_interval="60"),
                "pypid.workers": str(WORKERS)}

    prepare = WorkersTests.prepare
    test_upload_then_read_at_once = WorkersTests.test_upload_then_read_at_once
    test_same_filename_raced = WorkersTests.test_same_filename_raced
    test_yank_and_delete_at_once = WorkersTests.test_yank_and_delete_at_once


class AzureBucketWorkersTests(CloudTestCase):
    """The same on an Azure container (Azurite)."""

    cloud = AZURE
    settings = BucketWorkersTests.settings
    prepare = WorkersTests.prepare
    test_upload_then_read_at_once = WorkersTests.test_upload_then_read_at_once
    test_same_filename_raced = WorkersTests.test_same_filename_raced


class GCSBucketWorkersTests(AzureBucketWorkersTests):
    """The same on a Google Cloud Storage bucket (fake-gcs-server)."""

    cloud = GCS



class WorkerRestartTests(DaemonTestCase):
    """A worker killed in the middle of uploads, and C{SIGHUP} for the machine."""

    settings = {"pypid.workers": str(WORKERS), "auth.admins": USER}

    def prepare(self, daemon):
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "every worker ready")

    @property
    def daemon(self):
        """
        A machine of this test's own, not the class's: the supervisor backs
        off a worker that ends within a minute of its start (1, 2, 4 ... 30 s,
        as a crash loop should be), so on a shared machine each test's kills
        made the next test's restart wait longer (30 s by the last).
        """
        own = getattr(self, "_own", None)
        if own is None:
            own = self._own = self.new_daemon(settings=self.settings, users=self.users)
            self.prepare(own)
        return own

    def test_kill_a_worker(self):
        """
        A worker killed with C{kill -9} while uploads go on: the supervisor
        starts it again; every upload acknowledged is served by both
        workers after, none refused is listed, and one cut off by the kill
        is listed by every worker or by none.
        """
        daemon = self.daemon
        acknowledged, refused, cut = [], [], []
        stop = threading.Event()
        restarts = restarts_counted(daemon)

        def uploads():
            number = 0
            while not stop.is_set() or number < 10:
                filename, data = make_wheel("machine-kill", f"4.{number}")
                try:
                    answer = upload(daemon, filename, data)
                except OSError:
                    # (its worker killed before it answered: stored or not, alike everywhere)
                    cut.append(filename)
                else:
                    (acknowledged if answer.status == 200 else refused).append(filename)
                number += 1
        thread = threading.Thread(target=uploads)
        thread.start()
        try:
            time.sleep(0.5)
            kill_a_worker(daemon)
        finally:
            stop.set()
            thread.join()
        self.assertGreater(len(acknowledged), 10)
        self.assertEqual(restarts_counted(daemon), restarts + 1)
        looks = []
        for _ in range(6):
            listed = files_by_name(daemon, "machine-kill")
            self.assertEqual(set(acknowledged) - set(listed), set())
            self.assertEqual(set(listed) & set(refused), set())
            looks.append(set(listed) & set(cut))
        self.assertEqual([look == looks[0] for look in looks], [True] * len(looks))

    def test_half_received_upload_removed(self):
        """
        A worker killed while it receives an upload: the worker started in
        its place removes the half-received file from its spool.
        """
        daemon = self.daemon
        ctype, body = upload_form("machine_part-1.0-py3-none-any.whl", b"x" * 300_000)
        conn = httpclient.HTTPConnection(HOST, daemon.port, timeout=30)
        self.addCleanup(conn.close)
        conn.putrequest("POST", "/")
        for name, value in (("Content-Type", ctype), ("Content-Length", str(len(body))),
                            ("Authorization", basic(USER, PASSWORD))):
            conn.putheader(name, value)
        conn.endheaders(body[:len(body) // 2])
        spooled = os.path.join(daemon.storage, ".pypid")

        def held():
            for pid in worker_pids(daemon):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    try:
                        path = os.readlink(f"/proc/{pid}/fd/{fd}")
                    except OSError:
                        continue
                    if path.startswith(spooled) and path.endswith(".part"):
                        return pid, path
            return None
        wait_for(held, 30, "the upload spooled")
        pid, path = held()
        kill_a_worker(daemon, pid)
        self.assertFalse(os.path.exists(path))
        self.assertEqual(os.listdir(os.path.dirname(path)), [])

    def test_kept_alive_spread_again(self):
        """
        After a worker's restart, the survivor's kept-alive connections are
        asked to reconnect (their next answer says C{Connection: close}), so
        that the kernel spreads the new ones over both workers.
        """
        daemon = self.daemon
        kept = []
        for _ in range(20):
            conn = httpclient.HTTPConnection(HOST, daemon.port, timeout=30)
            conn.request("GET", "/health")
            answer = conn.getresponse()
            answer.read()
            if answer.getheader("Connection") == "close":
                # (asked to reconnect already: the second worker's start was
                # taken in at this request)
                conn.close()
                continue
            kept.append(conn)
        kill_a_worker(daemon)
        survived = []
        for conn in kept:
            try:
                conn.request("GET", "/simple/")
                answer = conn.getresponse()
                answer.read()
            except OSError:
                continue  # (the killed worker's: reset)
            finally:
                conn.close()
            survived.append((answer.status, answer.getheader("Connection")))
        self.assertTrue(survived)
        self.assertEqual(survived, [(200, "close")] * len(survived))
        self.assertEqual(answered_by(daemon), set(range(1, WORKERS + 1)))

    def test_hangup(self):
        """
        C{SIGHUP}: a user added is known to every worker; a change only a
        restart takes is refused by the supervisor, no worker reloads, and
        the first one's journal entry (so its webhook event) says so,
        naming the key.
        """
        daemon = self.daemon
        original = self._add_user("brian", "always look")
        reload_all(daemon)
        for _ in range(20):
            answer = http("GET", daemon.url + "simple/", auth=("brian", "always look"))
            self.assertEqual(answer.status, 200)
        with open(daemon.config_path, "w", encoding="utf-8") as f:
            f.write(original.replace("[pypid]\n", "[pypid]\nthreads = 7\n"))
        before = daemon.log_since_start().count(b"Reloaded the configuration")
        os.kill(daemon.pid, signal.SIGHUP)
        daemon.wait_for_log(b"Not reloading the configuration")

        def refused():
            entries = http("GET", daemon.url + "api/audit?event=reload",
                           auth=(USER, PASSWORD)).json()["entries"]
            return [(e["outcome"], e["detail"]) for e in entries if e["outcome"] == "refused"]
        wait_for(lambda: refused(), 60, "the refusal's entry")
        self.assertEqual(refused(), [("refused", "[pypid] threads: refused; the server's log "
                                      "says why")])
        text = daemon.log_since_start()
        self.assertEqual(text.count(b"Reloaded the configuration"), before)
        # (the supervisor's line, with the reason; each worker's, told of it)
        self.assertEqual(text.count(b"[pypid] threads: a change of this key"), 1)
        self.assertEqual(text.count(b"Not reloading the configuration"), 1 + WORKERS)

    def test_usr1(self):
        """
        C{SIGUSR1} (a log rotation's, or C{systemctl kill -s USR1}, which
        reaches every process of the unit) stops no process of the machine:
        the supervisor and each worker say so and go on.
        """
        daemon = self.daemon
        pids = worker_pids(daemon)
        before = daemon.log_since_start().count(b"Received SIGUSR1")
        for pid in [daemon.pid, *pids]:
            os.kill(pid, signal.SIGUSR1)
        wait_for(lambda: daemon.log_since_start().count(b"Received SIGUSR1")
                 >= before + 1 + WORKERS, 30, "every process noted SIGUSR1")
        self.assertEqual(worker_pids(daemon), pids)
        self.assertEqual(workers_up(daemon), WORKERS)

    def test_signals_while_loading(self):
        """
        C{SIGHUP} and C{SIGUSR1} sent to a worker the moment it starts,
        before its handlers are in (a reload or a log rotation while a
        worker restarts), end it no more than one that serves: they wait,
        and it takes them once it can.
        """
        daemon = self.daemon
        victim = worker_pids(daemon)[-1]
        text = daemon.log_since_start()
        ended, noted = text.count(b"ended ("), text.count(b"Received SIGUSR1")
        os.kill(victim, signal.SIGKILL)
        new = []

        def started():
            new[:] = [pid for pid in worker_pids(daemon) if pid != victim]
            return len(new) == WORKERS
        wait_for(started, 60, "the worker started again", interval=0.002)
        pid = new[-1]
        os.kill(pid, signal.SIGHUP)
        os.kill(pid, signal.SIGUSR1)
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "every worker ready again")
        wait_for(lambda: daemon.log_since_start().count(b"Received SIGUSR1") > noted, 30,
                 "the new worker took SIGUSR1")
        self.assertIn(pid, worker_pids(daemon))
        self.assertEqual(daemon.log_since_start().count(b"ended ("), ended + 1)

    def test_restart_reads_the_config_in_force(self):
        """
        A worker started again runs on the configuration the machine runs
        on, not on the file as edited since: a user added to the file is
        known to no worker until C{SIGHUP}, then to every one, a worker
        started after the reload included.
        """
        daemon = self.daemon
        self._add_user("carol", "in force")
        kill_a_worker(daemon)

        def answers(auth):
            return [status_on_worker(daemon, number, "simple/", auth)
                    for number in range(1, WORKERS + 1)]
        self.assertEqual(answers(("carol", "in force")), [401] * WORKERS)
        self.assertEqual(answers((USER, PASSWORD)), [200] * WORKERS)
        reload_all(daemon)
        kill_a_worker(daemon)
        self.assertEqual(answers(("carol", "in force")), [200] * WORKERS)

    def test_restart_reads_the_users_in_force(self):
        """
        A worker started again while the htpasswd file is being edited (here:
        emptied, not reloaded) reads the users the machine took: a user's
        token and password still work on every worker, the token for good.
        A C{SIGHUP} then is refused (the file names no user), the users in
        force kept.
        """
        import bcrypt
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        path = os.path.join(folder, "users.htpasswd")
        with open(path, "w") as f:
            f.write("pete:" + bcrypt.hashpw(b"pete-pw", bcrypt.gensalt(4)).decode() + "\n")
        daemon = self.new_daemon(settings={"pypid.workers": str(WORKERS), "auth.htpasswd": path})
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "every worker ready")
        issued = http("POST", daemon.url + "api/tokens", *form(actions="read"),
                      auth=("pete", "pete-pw"))
        self.assertEqual(issued.status, 200, issued.body)
        token = ("__token__", issued.json()["token"])
        with open(path, "w") as f:
            f.write("")
        kill_a_worker(daemon)
        for auth in (token, ("pete", "pete-pw")):
            self.assertEqual([status_on_worker(daemon, number, "simple/", auth)
                              for number in range(1, WORKERS + 1)], [200] * WORKERS)
        os.kill(daemon.pid, signal.SIGHUP)
        wait_for(lambda: b"names no user" in daemon.log_since_start(), 30, "the reload refused")
        for auth in (token, ("pete", "pete-pw")):
            self.assertEqual([status_on_worker(daemon, number, "simple/", auth)
                              for number in range(1, WORKERS + 1)], [200] * WORKERS)

    def _add_user(self, name, password):
        """Add a user to the configuration file (not reloaded); its text before, restored after."""
        with open(self.daemon.config_path, encoding="utf-8") as f:
            original = f.read()
        self.addCleanup(self._restore, original)
        with open(self.daemon.config_path, "a", encoding="utf-8") as f:
            f.write(f"{name} = {password_hash(password)}\n")
        return original

    def _restore(self, original):
        daemon = self.daemon
        with open(daemon.config_path, "w", encoding="utf-8") as f:
            f.write(original)
        reload_all(daemon)


def listening(port):
    """How many sockets listen on C{port} (a worker's own of a TCP line is one)."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(1 for row in rows if row[3] == "0A" and int(row[1].split(":")[1], 16) == port)


class HungWorkerTests(DaemonTestCase):
    """A worker that hangs (C{SIGSTOP}) is found by its heartbeat, taken out, and replaced."""

    settings = {"pypid.workers": str(WORKERS), "pypid.worker_timeout": "5s"}

    def prepare(self, daemon):
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "every worker ready")

    def test_hung_worker(self):
        """
        A worker stopped with C{SIGSTOP} holds its socket and answers
        nothing: once C{worker_timeout} passed without its beat, the
        supervisor shuts the socket and kills it, every new connection is
        answered by the others meanwhile, and it is started again.
        """
        daemon = self.daemon
        self.assertEqual(listening(daemon.port), WORKERS)
        restarts = restarts_counted(daemon)
        self.assertEqual([restarts_counted(daemon, f"pypid_worker_{counted}_total")
                          for counted in ("silences", "hangs")], [0, 0])
        victim = worker_pids(daemon)[-1]
        os.kill(victim, signal.SIGSTOP)
        self.addCleanup(lambda: os.path.exists(f"/proc/{victim}")
                        and os.kill(victim, signal.SIGCONT))
        daemon.wait_for_log(b"it hangs; killing it", timeout=60)
        self.assertIn(b"Worker %d sent nothing for 5 s" % WORKERS, daemon.log_since_start())
        for _ in range(30):
            self.assertEqual(http("GET", daemon.url + "health").status, 200)
        wait_for(lambda: victim not in worker_pids(daemon), 30, "the hung worker killed")
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "the worker started again")
        self.assertEqual(listening(daemon.port), WORKERS)
        self.assertEqual(restarts_counted(daemon), restarts + 1)
        # (the silence before it counted too: at least once, whatever the machine's pace)
        self.assertGreaterEqual(restarts_counted(daemon, "pypid_worker_silences_total"), 1)
        self.assertEqual(restarts_counted(daemon, "pypid_worker_hangs_total"), 1)

    def test_hung_while_loading(self):
        """
        A worker that hangs while it starts (stopped after it began to beat,
        before it serves) is killed once 10 s (more than C{worker_timeout}
        here) passed without its beat, and started again.
        """
        daemon, folder = customized(self, STOP_BEFORE_SERVING, self.settings)
        daemon.environ["PYPID_TEST_STOP_MARK"] = os.path.join(folder, "stopped")
        daemon.environ["PYPID_TEST_STOP_WORKER"] = str(WORKERS)
        daemon.start()
        self.addCleanup(daemon.stop)
        daemon.wait_for_log(b"it hangs while it starts; killing it", timeout=120)
        # (a loading worker is given 10 s at least: its load holds its reactor at times)
        self.assertIn(b"Worker %d sent nothing for 10 s" % WORKERS, daemon.log_since_start())
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "the worker started again")
        self.assertEqual(restarts_counted(daemon, "pypid_worker_hangs_total"), 1)


def customized(case, code, settings):
    """
    A daemon of C{settings}, not started, whose processes run C{code} as
    their C{sitecustomize} first; and the folder that holds it.
    """
    folder = os.path.abspath(case.mktemp())
    os.makedirs(folder)
    with open(os.path.join(folder, "sitecustomize.py"), "w") as f:
        f.write(code)
    daemon = Daemon(os.path.abspath(case.mktemp()), settings)
    daemon.environ["PYTHONPATH"] = f"{folder}:{daemon.environ['PYTHONPATH']}"
    return daemon, folder


#: A C{sitecustomize} that stops the last worker's first process
#: (C{SIGSTOP}) as it is about to say it serves: after it began to beat,
#: before it serves. Its replacement, seeing the mark, runs. (Its role is
#: read when it is about to serve: a worker forked by C{twistd pypid} is
#: told it after this ran, in the process that forked it.)
STOP_BEFORE_SERVING = """\
import json, os, signal, sys
_mark = os.environ.get("PYPID_TEST_STOP_MARK")
_last = int(os.environ.get("PYPID_TEST_STOP_WORKER", "0"))
if _mark and not os.path.exists(_mark):
    class _Stopper:
        def find_spec(self, name, path=None, target=None):
            if name != "pypid.daemon.machine":
                return None
            sys.meta_path.remove(self)
            import importlib.util
            spec = importlib.util.find_spec(name)
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                said = module.ReadyLine.startService

                def stopped(self):
                    role = json.loads(os.environ.get("PYPID_WORKER") or "null")
                    if role and role["number"] == _last and not os.path.exists(_mark):
                        open(_mark, "w").close()
                        os.kill(os.getpid(), signal.SIGSTOP)
                    said(self)
                module.ReadyLine.startService = stopped
            spec.loader.exec_module = exec_module
            return spec
    sys.meta_path.insert(0, _Stopper())
"""


#: A C{sitecustomize} that makes each worker's start last
#: C{PYPID_TEST_WORKER_DELAY} seconds longer (as a large index's load does).
SLOW_START = """\
import os, time
if os.environ.get("PYPID_WORKER"):
    time.sleep(float(os.environ.get("PYPID_TEST_WORKER_DELAY", "0")))
"""


class RestartWaitTests(DaemonTestCase):
    """New connections while a worker starts again."""

    settings = {"pypid.workers": str(WORKERS)}

    def test_no_connection_waits_on_a_restart(self):
        """
        A worker killed with C{kill -9} while a client opens a connection
        every 100 ms, its start again slowed by 5 s: once the supervisor
        saw its end (those queued on it then are reset), none waits more
        than 1 s, and every one is answered (the others take them while it
        loads again: a socket that listened while its worker loaded held
        them 5 s; here the longest took 7 ms idle, 74 ms with both cores
        busy).
        """
        daemon, _ = customized(self, SLOW_START, self.settings)
        daemon.environ["PYPID_TEST_WORKER_DELAY"] = "5"
        daemon.start()
        self.addCleanup(daemon.stop)
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "every worker ready")
        prober = Prober(daemon)
        prober.start()
        try:
            time.sleep(0.5)
            killed = kill_a_worker(daemon)
            time.sleep(0.5)
        finally:
            probes = prober.stop()
        after = [(ended - started, by) for started, ended, by in probes if started > killed]
        self.assertGreater(len(after), 20)
        self.assertEqual([by for _, by in after if by is None], [])
        self.assertLess(max(waited for waited, _ in after), 1.0, after)


class StalledWorkerTests(DaemonTestCase):
    """A worker that stalls less than C{worker_timeout} is taken out, not killed."""

    settings = {"pypid.workers": str(WORKERS)}

    def prepare(self, daemon):
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "every worker ready")

    def test_stalled_worker(self):
        """
        A worker stopped (C{SIGSTOP}) a few seconds: once the supervisor
        found it silent, every new connection is answered by the other at
        once, and C{/health} counts it out; continued (C{SIGCONT}), it takes
        connections again, the same process.
        """
        daemon = self.daemon
        victim = worker_pids(daemon)[-1]
        silent, back = re.compile(rb"Worker (\d+) sent nothing for 1 s"), b"go to it again"
        before = daemon.log_since_start()
        prober = Prober(daemon)
        prober.start()
        try:
            os.kill(victim, signal.SIGSTOP)
            try:
                wait_for(lambda: len(silent.findall(daemon.log_since_start()))
                         > len(silent.findall(before)), 60, "the worker found silent")
                [number] = {int(n) for n in silent.findall(daemon.log_since_start())[
                    len(silent.findall(before)):]}
                wait_for(lambda: workers_up(daemon) == WORKERS - 1, 10, "/health counts it out")
                found = time.monotonic()
                time.sleep(2)
            finally:
                continued = time.monotonic()
                os.kill(victim, signal.SIGCONT)
            wait_for(lambda: daemon.log_since_start().count(back) > before.count(back), 60,
                     "the worker back")
        finally:
            probes = prober.stop()
        between = [probe for probe in probes if found < probe[0] < continued]
        self.assertGreater(len(between), 5)
        # (a connection given to the stopped worker would be answered by it,
        # once it continued)
        self.assertEqual([probe for probe in between if probe[2] in (None, number)], [])
        self.assertIn(victim, worker_pids(daemon))
        wait_for(lambda: answered_by(daemon) == set(range(1, WORKERS + 1)), 30,
                 "both workers answer again")
        self.assertNotIn(b"it hangs", daemon.log_since_start())


class SilentQueueTests(SynchronousTestCase):
    """
    The connections queued on a worker as it goes silent, as
    docs/operations.rst says: reset where C{net.ipv4.tcp_migrate_req} is
    0 (the kernel's default), every one answered by the other worker where
    it is 1 (L{tests.harness.silent_queue}, in a network namespace of its
    own: the host's setting is left as it is).
    """

    def outcomes(self, setting):
        if os.geteuid() != 0:
            raise SkipTest("needs root: a network namespace of its own (unshare -n)")
        found = require({"unshare": "util-linux", "ip": "iproute2"})
        done = subprocess.run(
            [found["unshare"], "-n", "sh", "-c",
             f"{found['ip']} link set lo up && exec {sys.executable} -m "
             f"tests.harness.silent_queue {setting}"],
            cwd=CHECKOUT, capture_output=True, timeout=240, check=False)
        # (the failure's first lines say what failed; the server's log
        # tail follows them)
        self.assertEqual(done.returncode, 0, done.stderr[:2500] + b"\n...\n" + done.stderr[-1500:])
        return json.loads(done.stdout.splitlines()[-1])

    def test_reset_or_handed_on(self):
        self.assertEqual(self.outcomes(1), {"200": 40})
        reset = self.outcomes(0)
        self.assertEqual(sum(reset.values()), 40)
        self.assertGreater(reset.get("ConnectionResetError", 0), 0, reset)


class StopTests(DaemonTestCase):
    """The machine stops as one server does."""

    settings = {"pypid.workers": str(WORKERS)}

    def test_stop(self):
        """C{SIGTERM}: every worker drains and ends, then the supervisor; one shut-down line each."""
        daemon = Daemon(os.path.abspath(self.mktemp()), self.settings)
        daemon.start()
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "every worker ready")
        pids = worker_pids(daemon)
        daemon.stop_cleanly()
        for pid in pids:
            self.assertFalse(os.path.exists(f"/proc/{pid}"), pid)
        text = daemon.log_since_start()
        self.assertNotIn(b"Traceback", text)
        self.assertNotIn(b"ReactorNotRunning", text)
        if b"E2EFailure" in text:
            raise E2EFailure(text.decode())

    def test_supervisor_killed(self):
        """
        The supervisor killed with C{kill -9}: every worker stops on its
        own (none outlives its machine, holding its sockets), and the
        machine starts again on the same port.
        """
        daemon = Daemon(os.path.abspath(self.mktemp()), self.settings)
        daemon.start()
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "every worker ready")
        pids = worker_pids(daemon)
        daemon.kill()
        wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in pids), 60,
                 "every worker stopped")
        daemon.start(port=daemon.port)
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "every worker ready")
        daemon.stop_cleanly()

    def test_audit_chain(self):
        """
        Uploads at once through both workers: every one is in the audit
        log, which stays one chain that verifies.
        """
        import subprocess
        import sys
        daemon = Daemon(os.path.abspath(self.mktemp()), self.settings)
        daemon.start()
        wait_for(lambda: workers_up(daemon) == WORKERS, 60, "every worker ready")
        answers = []

        def uploads(who):
            for number in range(15):
                answers.append(upload(daemon, *make_wheel(f"machine-audit-{who}",
                                                          f"1.{number}")).status)
        threads = [threading.Thread(target=uploads, args=(who,)) for who in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(answers, [200] * 30)
        daemon.stop_cleanly()
        argv = [sys.executable, "-m", "pypid.cli.admin", "--config", daemon.config_path,
                "audit", "verify"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, PYTHONPATH=daemon.environ["PYTHONPATH"]))
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        # (30 uploads, and the change each made to the folder the workers
        # share, told in the same journal for the other worker to read)
        self.assertIn("60 entries: every chain is intact", done.stdout + done.stderr)

    def test_tac(self):
        """C{twistd -ny pypid.tac} runs the machine too: its workers are C{twistd pypid}."""
        import subprocess

        from tests.harness.e2e import HOST, TWISTD, clean_env, free_port
        daemon = Daemon(os.path.abspath(self.mktemp()), self.settings)
        port = free_port()
        with open(daemon.config_path, encoding="utf-8") as f:
            text = f.read()
        with open(daemon.config_path, "w", encoding="utf-8") as f:
            f.write(text.replace("[pypid]\n", f"[pypid]\nworkers = {WORKERS}\n"
                                 f"listen = tcp:{port}:interface={HOST}\n", 1))
        log = open(os.path.join(daemon.directory, "tac.log"), "ab")
        self.addCleanup(log.close)
        process = subprocess.Popen(
            [TWISTD, "-ny", os.path.join(CHECKOUT, "pypid.tac"), "--pidfile="],
            cwd=daemon.directory, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=clean_env(daemon.home, PYPID_CONFIG=daemon.config_path,
                          PYTHONPATH=daemon.environ["PYTHONPATH"]))
        self.addCleanup(lambda: process.poll() is None and process.kill())
        daemon.port = port

        def up():
            try:
                return workers_up(daemon) == WORKERS
            except OSError:
                return False
        wait_for(up, 60, "every worker of the tac ready")
        self.assertEqual(answered_by(daemon), set(range(1, WORKERS + 1)))
        process.send_signal(signal.SIGTERM)
        # (twistd ends with the signal that stopped it, once shut down)
        self.assertIn(process.wait(timeout=60), (0, -signal.SIGTERM))
        with open(os.path.join(daemon.directory, "tac.log"), "rb") as f:
            self.assertEqual(f.read().count(b"Server Shut Down."), WORKERS + 1)
