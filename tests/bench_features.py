"""
pypid with every feature that acts on a request configured (issue 43), as
a C{PYPID_CMD} of the shared bench (C{../shared/bench/}), so that its
per-request CPU can be compared with a daemon that has none of them:

  - named indexes: C{release}, C{staging} based on it, and a view
    C{prod} over C{release} (C{as_of} and C{exclude});
  - advisories in C{deny} mode for the default index (and C{hide} for
    C{staging}), read from a folder of C{--advisories} OSV records (default
    200, high severity) about projects of the bench's corpus, none of them
    about the project the bench measures (C{bench-proj-NNNNN} at half the
    corpus) unless C{--advise-measured};
  - download counts (always on) and the audit log;
  - project statuses: once the daemon answers, five projects of the corpus
    (again not the measured one) are set C{archived}, C{deprecated} or
    C{quarantined} through the admin API, by a process of its own so that
    the daemon's process tree is the daemon's alone.

It writes its configuration into the bench's C{{work}} folder and then
becomes the daemon (C{exec}), so the bench's pid, CPU and memory are the
daemon's::

    PYPID_CMD='ABS/.venv/bin/python ABS/tests/bench_features.py \\
        --twistd ABS/.venv/bin/twistd --port {port} --host {host} \\
        --packages {packages} --work {work}' \\
    PYPID_AUTH=admin:admin python3 ../shared/bench/run.py --servers pypid ...

Not a test (trial loads only C{test_*.py}).
"""

import argparse
import base64
import json
import os
import sys
import time
import urllib.request

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.osv_records import CRITICAL, osv_record, write_folder  # noqa: E402

#: The bench's C{admin}/C{admin} (the hash of etc/pypid.ini).
ADMIN_HASH = ("$argon2id$v=19$m=19456,t=2,p=1$WTIMj0BMY+mnU/ikHiBajg$"
              "bWa5ijJvMT2D0Rd9VhsiOJEo4MXvbq99ylMwSQ2r1Bo")

STATUSES = ("archived", "deprecated", "quarantined", "archived", "deprecated")


def corpus_project(i):
    """The shared bench corpus's project names (its C{corpus.project_name})."""
    return f"bench_proj_{i:05d}"


def count_projects(packages):
    names = {entry.split("-")[0] for entry in os.listdir(packages)
             if entry.startswith("bench_proj_")}
    return len(names)


def config(args, osv_folder):
    return f"""
[pypid]
listen = tcp:{args.port}:interface={args.host}
snapshot = {args.work}/index.json
advisories = deny
advisory_severity = high

[storage]
backend = local
path = {args.packages}

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


def set_statuses(args, projects):
    """In a grandchild: wait until the daemon answers, then set the statuses."""
    child = os.fork()
    if child:
        os.waitpid(child, 0)
        return
    os.setsid()
    if os.fork():
        os._exit(0)
    url = f"http://{args.host}:{args.port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    auth = "Basic " + base64.b64encode(b"admin:admin").decode()
    for project, status in zip(projects, STATUSES, strict=False):
        body = json.dumps({"status": status, "reason": "bench"}).encode()
        request = urllib.request.Request(
            f"{url}/api/projects/{project}/status", data=body, method="POST",
            headers={"Authorization": auth, "Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except OSError as e:
            print(f"bench_features: status of {project}: {e}", file=sys.stderr)
    os._exit(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("twistd", "port", "host", "packages", "work"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--advisories", type=int, default=200)
    ap.add_argument("--advise-measured", action="store_true",
                    help="also an advisory (on one version) of the project the bench measures")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    n = count_projects(args.packages)
    measured = n // 2
    others = [i for i in range(n) if i != measured]
    step = max(1, len(others) // max(args.advisories, 1))
    records = [osv_record(f"PYSEC-2026-{10000 + k}", corpus_project(i).replace("_", "-"),
                          versions=["0.1.0"], cvss=CRITICAL)
               for k, i in enumerate(others[::step][:args.advisories])]
    if args.advise_measured:
        records.append(osv_record("PYSEC-2026-9999", corpus_project(measured).replace("_", "-"),
                                  versions=["0.2.0"], cvss=CRITICAL))
    osv_folder = os.path.join(args.work, "osv")
    os.makedirs(osv_folder, exist_ok=True)
    for entry in os.listdir(osv_folder):
        os.remove(os.path.join(osv_folder, entry))
    write_folder(osv_folder, records)
    path = os.path.join(args.work, "features.ini")
    with open(path, "w") as f:
        f.write(config(args, osv_folder))
    set_statuses(args, [corpus_project(i).replace("_", "-") for i in others[1::97][:5]])
    os.execv(args.twistd, [args.twistd, "-n", "--pidfile=", "pypid", "--config", path])


if __name__ == "__main__":
    main()
