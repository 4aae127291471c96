"""
The faults of the soak (C{tests/bench/soak.py --faults}) and what it
measures of them: a machine of workers should not be told from one process
by its users (no new connection waits on a worker that is starting,
loading or hung; a whole start is quick; nothing acknowledged is lost), so
the soak breaks it on a schedule and watches from outside, as a client
would.

L{Faults} runs L{SCHEDULE} in a thread of its own while the load goes on:
at 25 % of the run a C{kill -9} of one worker, at 45 % a C{SIGSTOP} of one
worker for C{--stop-seconds} then C{SIGCONT}, at 70 % a C{kill -9} of the
whole process tree and a start on the same folder, configuration and port
(L{tests.harness.e2e.Daemon.start}). One process cannot outlive a kill of
itself, so with one the first two are "n/a". L{Prober} opens a new
connection every 100 ms and times it to the first byte of its answer.
L{Timeline} cuts the run into windows, each from a fault to the next (the
last, "after", from every worker up again after the machine's start), so
each figure is told in the window it happened in. L{verify} checks that
every upload acknowledged and not deleted by the soak itself is still
listed and served, after each fault and at the end.
"""

import bisect
import collections
import json
import math
import os
import signal
import threading
import time
import traceback
from http import client as httpclient
from urllib.parse import urljoin

from tests.harness.e2e import HOST, http, sha256

JSON = "application/vnd.pypi.simple.v1+json"

#: The faults, in order, each at its fraction of the run.
SCHEDULE = (("worker kill", 0.25), ("SIGSTOP", 0.45), ("machine kill", 0.70))
#: The windows of a run with faults, in order.
WINDOWS = ("before faults", "worker kill", "SIGSTOP", "machine kill", "after")
#: Seconds a probe waits for its connection and answer: long, so that a
#: wait is measured rather than cut short.
PROBE_TIMEOUT = 30.0
#: Seconds a fault waits for the machine to be whole again.
RECOVERY = 120.0


# -- processes -------------------------------------------------------------------------


def tree(pid):
    """C{pid} and its children (a machine's supervisor and its workers)."""
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            children += [int(child) for child in f.read().split()]
    return [pid, *sorted(children)]


def workers(daemon):
    """The pids of the machine's workers (none for one process)."""
    return tree(daemon.pid)[1:]


def alive(pid):
    """Whether C{pid} runs (a zombie, killed and not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def role(pid, root):
    """
    What process C{pid} is in the tree of C{root}, the same across
    restarts, so that the memory of a replaced worker continues its
    role's series: its title (C{pypid: worker 2 ...}, set by the process
    itself), else (a worker not yet titled) the number its supervisor
    gave it, else "server" for a process of its own.
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().replace(b"\0", b" ").decode("utf-8", "replace").split()
        if words[:2] == ["pypid:", "supervisor"]:
            return "supervisor"
        if words[:2] == ["pypid:", "worker"]:
            return f"worker {words[2]}"
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                if item.startswith(b"PYPID_WORKER="):
                    return f"worker {json.loads(item.split(b'=', 1)[1])['number']}"
    except (OSError, ValueError, KeyError, IndexError):
        pass
    return "server" if pid == root else f"child {pid}"


def memory(pid):
    """
    C{(RSS in KiB, open fds)} of process C{pid}, and the part of its RSS
    that is shared memory (a machine's ring, the same pages in every
    worker).
    """
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    rss, shmem = (int(fields[name].split()[0]) for name in ("VmRSS", "RssShmem"))
    return rss, len(os.listdir(f"/proc/{pid}/fd")), shmem


def memories(pid):
    """
    C{(RSS in KiB of the tree, open fds of the tree, {pid: (RSS, shared
    memory in it in KiB, role)})}: the role (L{role}) names a
    process across its replacements.
    """
    each = {}
    fds = 0
    for one in tree(pid):
        try:
            rss, opened, shmem = memory(one)
            each[one] = (rss, shmem, role(one, pid))
        except (FileNotFoundError, ProcessLookupError, KeyError):  # (ended meanwhile)
            continue
        fds += opened
    return sum(rss for rss, *_ in each.values()), fds, each


def workers_up(daemon):
    """How many workers are up, as C{/health} says (one process: 1 once it answers 200)."""
    try:
        answer = http("GET", daemon.url + "health", timeout=5)
        body = answer.json()
    except (OSError, httpclient.HTTPException, ValueError):
        return 0
    if isinstance(body, dict) and "workers" in body:
        return body["workers"].get("up", 0)
    return 1 if answer.status == 200 else 0


# -- windows and probes -------------------------------------------------------------------


class Timeline:
    """The run's start, and its windows: C{(monotonic time, name)} in order."""

    def __init__(self, first):
        self.start = time.monotonic()
        self.marks = [(self.start, first)]
        self.lock = threading.Lock()

    def mark(self, name):
        """A window begins now."""
        with self.lock:
            self.marks.append((time.monotonic(), name))

    def window(self, when):
        """The window of monotonic time C{when}."""
        with self.lock:
            times = [t for t, _ in self.marks]
            return self.marks[max(0, bisect.bisect_right(times, when) - 1)][1]

    def minutes(self, when):
        return (when - self.start) / 60


class Prober:
    """
    A new TCP connection every C{interval} s, each with one C{GET} of a
    small page: what a new client waits, whichever process the kernel
    hands its connection to. Each probe runs in a thread of its own, so a
    probe held 30 s by a hung worker delays none after it.

    @ivar results: C{(monotonic start, seconds to the first byte or to the
        failure, outcome)}; the outcome is C{"ok"}, C{"refused"},
        C{"reset"}, C{"timeout"}, C{"error"} or the status of an answer
        other than 200.
    """

    def __init__(self, daemon, path, interval=0.1):
        self.daemon = daemon
        self.path = path
        self.interval = interval
        self.results = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.probes = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        """Stop probing, and wait for the probes still waiting (their waits count most)."""
        self.stopping.set()
        self.thread.join()
        for probe in self.probes:
            probe.join(PROBE_TIMEOUT + 5)

    def _run(self):
        tick = time.monotonic()
        while not self.stopping.is_set():
            self.probes = [probe for probe in self.probes if probe.is_alive()]
            probe = threading.Thread(target=self._probe, daemon=True)
            probe.start()
            self.probes.append(probe)
            tick += self.interval
            self.stopping.wait(max(0.0, tick - time.monotonic()))

    def _probe(self):
        started = time.monotonic()
        waited = None
        conn = httpclient.HTTPConnection(HOST, self.daemon.port, timeout=PROBE_TIMEOUT)
        try:
            conn.request("GET", self.path)
            answer = conn.getresponse()
            waited = time.monotonic() - started
            answer.read()
            outcome = "ok" if answer.status == 200 else str(answer.status)
        except ConnectionRefusedError:
            outcome = "refused"
        except (ConnectionResetError, BrokenPipeError):  # (RemoteDisconnected too)
            outcome = "reset"
        except TimeoutError:
            outcome = "timeout"
        except (OSError, httpclient.HTTPException):
            outcome = "error"
        finally:
            conn.close()
        with self.lock:
            self.results.append((started, waited or time.monotonic() - started, outcome))


# -- the faults ------------------------------------------------------------------------------


class Faults:
    """
    L{SCHEDULE}, run in a thread of its own while the load goes on; each
    fault waits for the machine to be whole again, then checks that
    nothing acknowledged was lost (C{check()}, L{verify}).

    @ivar down: set while the whole machine is killed and not yet
        answering: no signal, no sample of its memory (its pids are gone).
    @ivar results: C{{fault: what it measured}}; C{"n/a"} for a fault one
        process cannot outlive.
    """

    def __init__(self, daemon, timeline, seconds, count, stop_seconds, check,
                 start_timeout=RECOVERY):
        self.daemon = daemon
        self.timeline = timeline
        self.seconds = seconds
        self.count = count
        self.stop_seconds = stop_seconds
        self.check = check
        self.start_timeout = start_timeout
        self.down = threading.Event()
        self.results = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        acts = {"worker kill": self.kill_worker, "SIGSTOP": self.stop_worker,
                "machine kill": self.kill_machine}
        for name, fraction in SCHEDULE:
            time.sleep(max(0.0, self.timeline.start + fraction * self.seconds - time.monotonic()))
            if self.count < 2 and name != "machine kill":
                self.results[name] = "n/a"
                continue
            self.timeline.mark(name)
            print(f"{self.timeline.minutes(time.monotonic()):6.1f} min  fault: {name}", flush=True)
            try:
                self.results[name] = acts[name]()
            except Exception as e:
                traceback.print_exc()
                self.results[name] = {"error": repr(e)}
            finally:
                self.down.clear()
            print(f"        {name}: {self.results[name]}", flush=True)

    def _until(self, predicate, began, timeout=RECOVERY):
        """Seconds from C{began} until C{predicate()}; L{None} if not within C{timeout}."""
        while time.monotonic() < began + timeout:
            if predicate():
                return round(time.monotonic() - began, 3)
            time.sleep(0.05)
        return None

    def _whole(self):
        return workers_up(self.daemon) >= self.count

    def kill_worker(self):
        """C{kill -9} of the last worker: how long until another runs, and all are up."""
        victim = workers(self.daemon)[-1]
        began = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        replaced = self._until(lambda: victim not in workers(self.daemon)
                               and len(workers(self.daemon)) == self.count, began)
        return {"pid": victim, "replaced_s": replaced, "all_up_s": self._until(self._whole, began),
                **self.check()}

    def stop_worker(self):
        """
        C{SIGSTOP} of the last worker for C{stop_seconds}, then C{SIGCONT}:
        a hung worker. The supervisor's watchdog may kill and replace it
        meanwhile, as it should: whether and when it did is measured.
        """
        victim = workers(self.daemon)[-1]
        hangs = self.daemon.log_since_start().count(b"it hangs")
        began = time.monotonic()
        os.kill(victim, signal.SIGSTOP)
        gone = None
        while time.monotonic() < began + self.stop_seconds:
            if gone is None and victim not in workers(self.daemon):
                gone = round(time.monotonic() - began, 3)
            time.sleep(0.1)
        if gone is None:
            try:
                os.kill(victim, signal.SIGCONT)
            except ProcessLookupError:
                pass
        up = self._until(self._whole, began)
        return {"pid": victim, "stopped_s": self.stop_seconds,
                "replaced": victim not in workers(self.daemon), "gone_after_s": gone,
                "watchdog_logged": self.daemon.log_since_start().count(b"it hangs") > hangs,
                "all_up_s": up, **self.check()}

    def kill_machine(self):
        """
        C{kill -9} of the supervisor and every worker at once (the
        daemon's process group: it is started in a session of its own),
        then a start on the same folder, configuration and port: the time
        to the first C{/health} 200 (L{Daemon.start} returns then) and
        until every worker is up, each counted from the start.
        """
        self.down.set()
        pids = tree(self.daemon.pid)
        group = os.getpgid(self.daemon.pid)
        if group == os.getpgrp():
            raise RuntimeError("the daemon shares the soak's process group")
        began = time.monotonic()
        os.killpg(group, signal.SIGKILL)
        self.daemon.kill()  # (reaps it)
        self._until(lambda: not any(alive(pid) for pid in pids), began, 30)
        gone = round(time.monotonic() - began, 3)
        started = time.monotonic()
        self.daemon.start(port=self.daemon.port, timeout=self.start_timeout)
        first = round(time.monotonic() - started, 3)
        self.down.clear()
        up = self._until(self._whole, started, self.start_timeout)
        self.timeline.mark("after")
        return {"pids": pids, "gone_s": gone, "first_health_s": first, "all_up_s": up,
                "new_pids": tree(self.daemon.pid), **self.check()}


# -- nothing acknowledged lost ---------------------------------------------------------------


def _get(daemon, url, headers=None, tries=5):
    """A C{GET}, tried again on no answer or a 503 (a worker may be starting)."""
    for attempt in range(tries):
        try:
            answer = http("GET", url, headers)
            if answer.status != 503 or attempt == tries - 1:
                return answer
        except (OSError, httpclient.HTTPException):
            if attempt == tries - 1:
                raise
        time.sleep(1)


def verify(daemon, acked, lock):
    """
    Whether every upload of C{acked} (C{{filename: project}}: acknowledged,
    and no delete of it sent by the soak) is listed on its project's PEP
    691 page and served with the hash listed: C{{"checked", "lost",
    "unreachable"}}. A file missing is lost only if it is still in
    C{acked} after the check (the churn deletes meanwhile).
    """
    with lock:
        snapshot = dict(acked)
    by_project = collections.defaultdict(list)
    for filename, project in snapshot.items():
        by_project[project].append(filename)
    missing, unreachable = [], 0
    for project, names in sorted(by_project.items()):
        base = f"{daemon.index_url}{project}/"
        try:
            page = _get(daemon, base, {"Accept": JSON})
            files = {f["filename"]: f for f in page.json()["files"]} if page.status == 200 else {}
            for name in names:
                entry = files.get(name)
                served = entry and _get(daemon, urljoin(base, entry["url"]))
                listed = (entry or {}).get("hashes", {}).get("sha256")
                if not served or served.status != 200 or (listed and sha256(served.body) != listed):
                    missing.append(name)
        except (OSError, httpclient.HTTPException, ValueError, KeyError):
            unreachable += len(names)
    with lock:
        lost = [name for name in missing if name in acked]
    return {"checked": len(snapshot), "lost": lost, "unreachable": unreachable}


# -- the figures -------------------------------------------------------------------------------


def slope(points):
    """The least-squares slope of C{[(x, y)]}; 0 for fewer than two points."""
    if len(points) < 2:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def quantile(values, q):
    """The C{q} quantile of C{values} (nearest rank); L{None} for none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def windows(timeline, probes, answers, skipped, faults):
    """
    Per window: the probes (how many, failed by outcome, waits over 1 s,
    the longest wait, a failure's counted to its end) and the load's
    requests (how many, none answered, 5xx, reads not sent because 200
    waited already).
    """
    starts = {name: when for when, name in timeline.marks}
    rows = {}
    for name in (WINDOWS if faults is not None else list(starts)):
        if name in starts:
            rows[name] = {"from_min": round(timeline.minutes(starts[name]), 2), "probes": 0,
                          "failed": {}, "waits_over_1s": 0, "longest_wait_s": 0.0,
                          "requests": 0, "no_answer": 0, "5xx": 0, "skipped": 0}
        else:
            rows[name] = "n/a" if faults.results.get(name) == "n/a" else "not reached"
    for started, waited, outcome in probes:
        row = rows[timeline.window(started)]
        row["probes"] += 1
        row["waits_over_1s"] += waited > 1
        row["longest_wait_s"] = round(max(row["longest_wait_s"], waited), 3)
        if outcome != "ok":
            row["failed"][outcome] = row["failed"].get(outcome, 0) + 1
    for submitted, _latency, status, _read in answers:
        row = rows[timeline.window(submitted)]
        row["requests"] += 1
        row["no_answer"] += status is None
        row["5xx"] += status is not None and status >= 500
    for when in skipped:
        rows[timeline.window(when)]["skipped"] += 1
    return rows


def minutes(timeline, answers, skipped):
    """Per minute of the run: the reads' latency (from sent to answered) and failures."""
    table = collections.defaultdict(lambda: {"reads": [], "no_answer": 0, "5xx": 0, "skipped": 0})
    for submitted, latency, status, read in answers:
        if read:
            row = table[int(timeline.minutes(submitted))]
            row["reads"].append(latency)
            row["no_answer"] += status is None
            row["5xx"] += status is not None and status >= 500
    for when in skipped:
        table[int(timeline.minutes(when))]["skipped"] += 1
    result = []
    for minute in sorted(table):
        row = table[minute]
        reads = row.pop("reads")
        ms = {f"{name}_ms": round(1000 * value, 1) if value is not None else None
              for name, value in (("p50", quantile(reads, 0.5)), ("p99", quantile(reads, 0.99)),
                                  ("max", max(reads, default=None)))}
        result.append({"minute": minute, "reads": len(reads), **ms, **row})
    return result


def segments(samples, warmup):
    """
    The RSS of each process's lifetime, by role: C{samples} are the
    soak's (seconds, ..., C{{pid: (RSS, shared memory, role)}} in KiB);
    each segment's slope is over its samples after C{warmup} seconds. A
    process started during the run (a worker replaced, the machine
    started again) is a segment of its own, its loading included.
    """
    series = collections.defaultdict(list)
    for seconds, *_, each in samples:
        if seconds < warmup:
            continue
        for pid, (rss, shmem, name) in each.items():
            series[(name, pid)].append((seconds, rss / 1024, shmem / 1024))
    result = []
    for (name, pid), points in sorted(series.items(), key=lambda item: (item[0][0], item[1][0])):
        row = {"role": name, "pid": pid, "from_min": round(points[0][0] / 60, 2),
               "to_min": round(points[-1][0] / 60, 2), "samples": len(points)}
        for part, of in (("rss", lambda rss, shm: rss), ("shared", lambda rss, shm: shm),
                         ("rest", lambda rss, shm: rss - shm)):
            line = [(s, of(rss, shm)) for s, rss, shm in points]
            row.update({f"{part}_from_mib": round(line[0][1], 1),
                        f"{part}_to_mib": round(line[-1][1], 1),
                        f"{part}_mib_per_10min": round(slope(line) * 600, 2)
                        if len(line) > 1 else None})
        result.append(row)
    return result


def summary(run, timeline, probes, load, faults, samples, warmup, lost):
    """
    What the soak measured, as one dict (what C{--json} writes): the
    longest wait of a new connection, each window's failures, the
    machine's start after its kill, the reads' p99 per minute, each
    process's RSS slope, and what acknowledged was lost.
    """
    machine = (faults.results.get("machine kill") if faults else None) or {}
    answered = [waited for _, waited, outcome in probes if outcome == "ok"]
    return {
        "run": run,
        "probes": len(probes),
        "longest_wait_s": round(max((waited for _, waited, _ in probes), default=0.0), 3),
        "longest_answered_wait_s": round(max(answered, default=0.0), 3),
        "waits_over_1s": sum(waited > 1 for _, waited, _ in probes),
        "windows": windows(timeline, probes, load.answers, load.skipped, faults),
        "faults": faults.results if faults else None,
        "machine_start": {key: machine.get(key) for key in ("first_health_s", "all_up_s")},
        "minutes": minutes(timeline, load.answers, load.skipped),
        "rss": segments(samples, warmup),
        "lost": lost,
    }


def _cell(value, width, digits=1):
    if value is None:
        return f"{'-':>{width}}"
    return f"{value:>{width}.{digits}f}" if isinstance(value, float) else f"{value:>{width}}"


def print_summary(figures):
    """C{figures} (L{summary}) as plain text tables."""
    run = figures["run"]
    print(f"\n==== summary: {run['processes']}, {run['minutes']:g} min, "
          f"faults {'on' if run['faults'] else 'off'}, source {run['source']} ====")
    print(f"new connections: {figures['probes']} probes, longest wait "
          f"{figures['longest_wait_s']:.3f} s (answered: {figures['longest_answered_wait_s']:.3f}"
          f" s), waits over 1 s: {figures['waits_over_1s']}")
    print(f"\n{'window':<14}{'from min':>9}{'probes':>8}{'failed':>7}{'>1 s':>6}{'longest s':>10}"
          f"{'requests':>9}{'no answer':>10}{'5xx':>5}{'skipped':>8}  probes failed by kind")
    for name, row in figures["windows"].items():
        if isinstance(row, str):
            print(f"{name:<14}{row:>9}")
            continue
        print(f"{name:<14}{row['from_min']:>9.2f}{row['probes']:>8}{sum(row['failed'].values()):>7}"
              f"{row['waits_over_1s']:>6}{row['longest_wait_s']:>10.3f}{row['requests']:>9}"
              f"{row['no_answer']:>10}{row['5xx']:>5}{row['skipped']:>8}  "
              f"{', '.join(f'{k} {n}' for k, n in sorted(row['failed'].items())) or '-'}")
    for name, result in (figures["faults"] or {}).items():
        told = result if isinstance(result, str) else ", ".join(f"{k} {v}" for k, v in result.items())
        print(f"{name}: {told}")
    start = figures["machine_start"]
    if figures["faults"]:
        print(f"start after the machine's kill: first /health 200 after "
              f"{_cell(start['first_health_s'], 0, 2).strip()} s, every worker up after "
              f"{_cell(start['all_up_s'], 0, 2).strip()} s")
    print(f"\n{'min':>4}{'reads':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'no answer':>10}"
          f"{'5xx':>5}{'skipped':>8}   (reads, from sent to answered)")
    for row in figures["minutes"]:
        print(f"{row['minute']:>4}{row['reads']:>7}{_cell(row['p50_ms'], 9)}{_cell(row['p99_ms'], 9)}"
              f"{_cell(row['max_ms'], 9)}{row['no_answer']:>10}{row['5xx']:>5}{row['skipped']:>8}")
    print(f"\n{'process':<12}{'pid':>8}{'min':>13}{'samples':>8}{'RSS MiB':>15}"
          f"{'MiB/10 min':>11}{'rest':>7}   (one row a process's life, after the warm-up)")
    for row in figures["rss"]:
        print(f"{row['role']:<12}{row['pid']:>8}{row['from_min']:>6.1f} -{row['to_min']:>5.1f}"
              f"{row['samples']:>8}{row['rss_from_mib']:>7.1f} ->{row['rss_to_mib']:>6.1f}"
              f"{_cell(row['rss_mib_per_10min'], 11, 2)}{_cell(row['rest_mib_per_10min'], 7, 2)}")
    lost = figures["lost"]
    print(f"\nacknowledged uploads lost: {lost['count']} (checked {lost['final']['checked']} at "
          f"the end, unreachable {lost['final']['unreachable']}; after each fault: "
          f"{lost['after_faults'] or '-'}; deletes of acknowledged files answered 404: "
          f"{len(lost['delete_404'])}, after a retry {lost['delete_404_retried']})")
