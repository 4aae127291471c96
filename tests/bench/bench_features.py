"""
The hot path with every feature on (issue 43): the server CPU per request
of C{/}, C{/simple/<p>/} (HTML and JSON) and a small file, of pypid with
every feature that acts on a request configured, against a checkout with
none of them (the code before issue 24, say), and the rate of each against
nginx serving the same files statically.

Measured as C{../shared/bench/} measures pages: the corpus of that bench
(2,000 projects x 5 versions), the server pinned to CPU 0, wrk on CPU 1
(C{-t1 -c32}, 2 s of warm-up discarded, the server left to go idle before
each run, and once it has described the corpus after its start), the
server's CPU time (utime + stime of its process tree)
divided by the requests wrk made. The servers take turns in alternating
order (ABBA), each round on a fresh hard-linked copy of the corpus.

C{pypid} is this checkout with:

  - named indexes: C{release}, C{staging} based on it, a view C{prod} over
    C{release} (C{as_of} and C{exclude});
  - advisories in C{deny} mode for the default index (C{hide} for
    C{staging}), from a folder of C{--advisories} OSV records (default 200,
    critical) about projects of the corpus, none about the measured
    project (unless C{--advise-measured});
  - download counts (always on) and the audit log;
  - five projects (not the measured one) archived, deprecated or
    quarantined through the admin API once it answers.

It is measured once its advisories are in force (C{/health} answers 200).
C{baseline} is another checkout's daemon (C{--baseline-venv}: its venv's
C{twistd}, with its own C{etc/pypid.ini}; with C{--baseline-features}, with
the same features as C{pypid}, for an A/B of a change to the hot path). ::

    .venv/bin/python tests/bench/bench_features.py --baseline-venv ../base/.venv
        [--rounds 5] [-d 5s] [--routes root,html,json,wheel] [--no-nginx]
        [--baseline-features] [--workers N] [--profile DIR]
        [--corpus ~/.cache/pypid-bench/corpus-2000x5/packages] [--json OUT]

Needs wrk, nginx and taskset (the shared bench's C{setup.sh}). Not a test
(trial loads only C{test_*.py}).
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.bench.bench_index_daemon import WRK_REPORT  # noqa: E402
from tests.bench.bench_install import Nginx, PlainPypid, tree_cpu, write_static_tree  # noqa: E402
from tests.harness.e2e import http  # noqa: E402
from tests.harness.osv_records import CRITICAL, osv_record, write_folder  # noqa: E402
from tests.harness.tlsca import TestCA  # noqa: E402

#: The bench's C{admin}/C{admin} (the hash of etc/pypid.ini).
ADMIN_HASH = ("$argon2id$v=19$m=19456,t=2,p=1$WTIMj0BMY+mnU/ikHiBajg$"
              "bWa5ijJvMT2D0Rd9VhsiOJEo4MXvbq99ylMwSQ2r1Bo")
STATUSES = ("archived", "deprecated", "quarantined", "archived", "deprecated")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


def project(i):
    """The shared bench corpus's project names, normalized."""
    return f"bench-proj-{i:05d}"


def features_config(daemon, osv_folder, workers=1):
    return f"""
[pypid]
snapshot = {daemon.snapshot}
workers = {workers}
advisories = deny
advisory_severity = high

[storage]
backend = local
path = {daemon.storage}

[auth]
read = everyone
upload = authenticated
admins = admin

[advisories]
path = {osv_folder}
refresh = 0

[users]
admin = {ADMIN_HASH}

[index:release]

[index:staging]
bases = release
advisories = hide

[index:prod]
view = yes
bases = release
as_of = 2026-01-01T00:00:00Z
exclude = experimental-*
"""


def baseline_config(venv, daemon, workers=1):
    """The baseline checkout's own etc/pypid.ini, on this corpus copy."""
    with open(os.path.join(os.path.dirname(os.path.abspath(venv)), "etc", "pypid.ini")) as f:
        text = f.read()
    text = re.sub(r"^snapshot = .*$", f"snapshot = {daemon.snapshot}\nworkers = {workers}",
                  text, flags=re.M)
    return re.sub(r"^path = .*$", f"path = {daemon.storage}", text, count=1, flags=re.M)


def wait_idle(pid, quiet=0.5, timeout=60.0):
    deadline = time.monotonic() + timeout
    last = tree_cpu(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = tree_cpu(pid)
        if now == last:
            return
        last = now


def wrk(url, script, duration, accept):
    argv = ["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{duration}", "--timeout", "30s",
            "-s", script, "-H", f"Accept: {accept}", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    report = json.loads(re.search(r"^WRKJSON (.*)$", out, re.M).group(1))
    if report["err_status"] or report["errors"]:
        raise SystemExit(f"wrk saw errors on {url}: {report}")
    return report


def profiler(folder, pid, name):
    """py-spy sampling C{pid} and its workers into C{folder}/C{name}.txt (raw, 250 Hz)."""
    os.makedirs(folder, exist_ok=True)
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    spy = subprocess.Popen([here if os.path.exists(here) else "py-spy", "record", "--nonblocking", "--subprocesses", "-r", "250",
                            "--format", "raw", "-p", str(pid),
                            "-o", os.path.join(folder, f"{name}.txt")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return spy


def start_pypid(kind, args, corpus, work, n):
    folder = os.path.join(work, kind)
    shutil.rmtree(folder, ignore_errors=True)
    daemon = PlainPypid(folder)
    subprocess.check_call(["cp", "-al", corpus, daemon.storage])
    if kind == "baseline":
        daemon.twistd = os.path.join(args.baseline_venv, "bin", "twistd")
    if kind == "baseline" and not args.baseline_features:
        text = baseline_config(args.baseline_venv, daemon, args.workers)
    else:
        measured = n // 2
        others = [i for i in range(n) if i != measured]
        step = max(1, len(others) // max(args.advisories, 1))
        records = [osv_record(f"PYSEC-2026-{10000 + k}", project(i), versions=["0.1.0"],
                              cvss=CRITICAL)
                   for k, i in enumerate(others[::step][:args.advisories])]
        if args.advise_measured:
            records.append(osv_record("PYSEC-2026-9999", project(measured), versions=["0.2.0"],
                                      cvss=CRITICAL))
        osv = os.path.join(folder, "osv")
        os.makedirs(osv)
        write_folder(osv, records)
        text = features_config(daemon, osv, args.workers)
    with open(daemon.config_path, "w") as f:
        f.write(text)
    # (with advisories that deny, /health answers 200 once they are in force;
    # a corpus copy has no records yet: they are made in the background,
    # and measured only once done)
    daemon.start(timeout=300)
    wait_idle(daemon.pid, quiet=1.0, timeout=900)
    if kind == "pypid" or args.baseline_features:
        for i, status in zip([i for i in range(n) if i != n // 2][1::97], STATUSES,
                             strict=False):
            body = json.dumps({"status": status, "reason": "bench"}).encode()
            answer = http("POST", f"{daemon.url}api/projects/{project(i)}/status",
                          {"Content-Type": "application/json"}, body, auth=("admin", "admin"))
            if answer.status != 200:
                raise SystemExit(f"status of {project(i)}: {answer.status} {answer.body}")
    return daemon


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-venv", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-d", "--duration", default="5s")
    ap.add_argument("--routes", default="root,html,json,wheel")
    ap.add_argument("--advisories", type=int, default=200)
    ap.add_argument("--advise-measured", action="store_true")
    ap.add_argument("--no-nginx", action="store_true")
    ap.add_argument("--baseline-features", action="store_true",
                    help="configure the baseline with the same features as pypid")
    ap.add_argument("--corpus", default=os.path.expanduser(
        "~/.cache/pypid-bench/corpus-2000x5/packages"))
    ap.add_argument("--workers", type=int, default=1, help="[pypid] workers of both builds")
    ap.add_argument("--profile", metavar="DIR",
                    help="py-spy each route of pypid in a run of its own (raw stacks)")
    ap.add_argument("--json")
    args = ap.parse_args()
    corpus = os.path.abspath(args.corpus)
    names = {entry.split("-")[0] for entry in os.listdir(corpus) if entry.startswith("bench_")}
    n = len([name for name in names if name.startswith("bench_proj_")])
    measured = project(n // 2)
    wheel = sorted(f for f in os.listdir(corpus)
                   if f.startswith(measured.replace("-", "_") + "-") and f.endswith(".whl"))[0]
    work = tempfile.mkdtemp(prefix="bench-features-")
    os.chmod(work, 0o755)  # (nginx's worker runs as nobody)
    script = os.path.join(work, "report.lua")
    with open(script, "w") as f:
        f.write(WRK_REPORT)
    nginx = None
    if not args.no_nginx:
        write_static_tree(corpus, os.path.join(work, "static"))
        ca = TestCA(os.path.join(work, "ca"))
        nginx = Nginx(os.path.join(work, "nginx"), os.path.join(work, "static"),
                      ca.issue(name="nginx", kind="ec")).start()
    paths = {"pypid": {"root": "/simple/", "html": f"/simple/{measured}/",
                       "json": f"/simple/{measured}/",
                       "wheel": f"/files/{measured}/{wheel}"},
             "nginx": {"root": "/simple/", "html": f"/simple/{measured}/",
                       "json": f"/simple/{measured}/", "wheel": f"/packages/{wheel}"}}
    paths["baseline"] = paths["pypid"]
    accepts = {"root": "*/*", "html": "text/html", "json": JSON_TYPE, "wheel": "*/*"}
    routes = args.routes.split(",")
    results = []
    try:
        for r in range(args.rounds):
            order = ["baseline", "pypid"] if r % 2 == 0 else ["pypid", "baseline"]
            if nginx is not None:
                order.append("nginx")
            for kind in order:
                server = nginx if kind == "nginx" else start_pypid(kind, args, corpus, work, n)
                base = server.url("http") if kind == "nginx" else server.url
                pid = server.pid
                try:
                    for route in routes:
                        url = base.rstrip("/") + paths[kind][route]
                        wait_idle(pid)
                        wrk(url, script, "2s", accepts[route])
                        wait_idle(pid)
                        if r == 0 and kind == "pypid" and args.profile:
                            # (a run of its own: the sampling costs the server CPU)
                            spy = profiler(args.profile, pid, route)
                            wrk(url, script, args.duration, accepts[route])
                            spy.send_signal(signal.SIGINT)
                            spy.wait()
                            wait_idle(pid)
                        before = tree_cpu(pid)
                        answered = wrk(url, script, args.duration, accepts[route])
                        seconds = tree_cpu(pid) - before
                        rps = answered["requests"] / (answered["duration_us"] / 1e6)
                        cpu_us = seconds * 1e6 / max(answered["requests"], 1)
                        results.append({"round": r, "server": kind, "route": route,
                                        "rps": rps, "cpu_us": cpu_us})
                        print(f"round {r} {kind:8} {route:5} {rps:9.0f} req/s "
                              f"{cpu_us:7.1f} us/req", flush=True)
                finally:
                    if kind != "nginx":
                        server.stop()
    finally:
        if nginx is not None:
            nginx.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    report(results, routes)


def report(results, routes):
    """The table: CPU per request against the baseline, rate against nginx, by route."""
    def of(kind, route, key):
        return {x["round"]: x[key] for x in results if x["server"] == kind and x["route"] == route}

    print("\nroute  baseline us/req  pypid us/req  pypid/baseline CPU [min-max]  "
          "pypid/nginx req/s [min-max]")
    for route in routes:
        base, mine = of("baseline", route, "cpu_us"), of("pypid", route, "cpu_us")
        ratios = [mine[r] / base[r] for r in mine if r in base]
        line = (f"{route:6} {statistics.median(base.values()):15.1f} "
                f"{statistics.median(mine.values()):13.1f}  {statistics.median(ratios):.2f} "
                f"[{min(ratios):.2f}-{max(ratios):.2f}]")
        nginx = of("nginx", route, "rps")
        if nginx:
            rates = of("pypid", route, "rps")
            vs = [rates[r] / nginx[r] for r in rates if r in nginx]
            line += f"{'':18}{statistics.median(vs):.2f} [{min(vs):.2f}-{max(vs):.2f}]"
        print(line)


if __name__ == "__main__":
    main()
