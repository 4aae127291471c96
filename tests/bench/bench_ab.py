"""
Two builds of pypid in one run of C{../shared/bench/run.py} (issue 82,
item 5), so that a change's cost is one command: the harness's own pypid
beside a second one, C{pypid-old}, each a checkout with its C{.venv} (or a
command with the harness's placeholders). The harness rotates its
servers' order every rep, so with two servers the builds alternate (AB,
BA, ...); this script then prints, for each figure, the ratio new/old
round by round, its median and [min-max]::

    .venv/bin/python tests/bench/bench_ab.py --pypid-old ../wt-base \\
        -- --reps 5 --workloads html,json,wheel --uploads 600 -d 8s

What follows C{--} goes to C{run.py} as it is (C{--servers} is this
script's: C{pypid,pypid-old}, with C{--nginx} nginx too, whose figures
are then printed beside). C{--workers N} runs both as machines of N
workers.

Every start begins on an empty work folder (the harness's fresh copy of
the corpus, and no snapshot): the harness otherwise keeps the snapshot of
the rep before, whose uploads are gone by the next start, and an upload
after such a start cost 5.9 ms against 2.4 (docs/performance.rst). The
folder of the start before is set aside, not removed, until the run ends
(C{aside.py}: removing files just before a run slows every file it
creates on this machine's file system).

Not a test (trial loads only C{test_*.py}).
"""

import argparse
import importlib
import json
import os
import shlex
import statistics
import sys

from aside import set_aside, settle

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HARNESS = os.path.join(os.path.dirname(CHECKOUT), "shared", "bench")

#: The figures compared, as the harness's JSON keeps them: (workload, key, label).
FIGURES = [
    ("root", "cpu_us", "GET /simple/, server CPU us"),
    ("html", "cpu_us", "project page HTML, server CPU us"),
    ("json", "cpu_us", "project page JSON, server CPU us"),
    ("wheel", "cpu_us", "small wheel, server CPU us"),
    ("big", "mb_s", "10 MB wheel, MB/s"),
    ("upload", "cpu_ms", "upload, server CPU ms a file"),
    ("upload", "files_per_s", "uploads, files/s"),
    ("html", "rps", "project page HTML, req/s"),
    ("wheel", "rps", "small wheel, req/s"),
]


def command(build, workers):
    """The harness's command for C{build}: a checkout's daemon, or a command as given."""
    if os.path.isdir(build):
        root = os.path.abspath(build)
        cmd = (f"{root}/.venv/bin/twistd -n --pidfile= pypid --config {root}/etc/pypid.ini "
               "--listen tcp:{port}:interface={host} --set storage.path={packages} "
               "--set pypid.snapshot={work}/index.json")
    else:
        cmd = build
    if workers:
        cmd += f" --set pypid.workers={workers}"
    return cmd


def adapters(new, old):
    """The harness's pypid adapter for each build, each start on an empty work folder."""
    base = importlib.import_module("servers.pypid").Adapter
    host = importlib.import_module("servers.base").HOST

    def build(name, cmd):
        class Build(base):
            def fresh(self):
                # (the last start's folder removed when the run ends: see set_aside)
                set_aside(self.work)
                base.fresh(self)

            def command(self):
                return shlex.split(cmd.format(port=self.port, host=host, packages=self.served,
                                              work=self.work))
        Build.name = name
        return Build
    return {"pypid": build("pypid", new), "pypid-old": build("pypid-old", old)}


def report(results, names):
    """Each figure: old and new at their medians, and new/old round by round."""
    lines = []
    reps = {name: results[name]["reps"] for name in names}

    def figure(name, rep, workload, key):
        return reps[name][rep].get(workload, {}).get(key) if rep < len(reps[name]) else None
    for workload, key, label in FIGURES:
        rounds = [(new, old, figure("nginx", rep, workload, key) if "nginx" in names else None)
                  for rep in range(len(reps["pypid"]))
                  if (new := figure("pypid", rep, workload, key)) is not None
                  and (old := figure("pypid-old", rep, workload, key))]
        if not rounds:
            continue
        ratios = [new / old for new, old, _ in rounds]
        line = (f"{label:36s} old {statistics.median(old for _, old, _ in rounds):9.1f}  "
                f"new {statistics.median(new for new, _, _ in rounds):9.1f}  new/old "
                f"{statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]")
        to_nginx = [new / nginx for new, _, nginx in rounds if nginx]
        if to_nginx:
            line += f"  new/nginx {statistics.median(to_nginx):.3f}"
        lines.append(line)
        lines.append("    rounds: " + " ".join(f"{r:.3f}" for r in ratios))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pypid", default=CHECKOUT, help="the new build (default: this checkout)")
    parser.add_argument("--pypid-old", required=True, metavar="BUILD",
                        help="the old build: a checkout with its .venv, or a command")
    parser.add_argument("--workers", type=int, default=0, help="[pypid] workers of both")
    parser.add_argument("--nginx", action="store_true", help="nginx too, for the ratios to it")
    parser.add_argument("--harness", default=HARNESS, help="../shared/bench")
    parser.add_argument("--out", default="bench-ab.json", help="the harness's JSON results")
    parser.add_argument("rest", nargs="*", help="after --: run.py's own options")
    args = parser.parse_args()
    names = ["pypid", "pypid-old"] + (["nginx"] if args.nginx else [])
    settle()
    sys.path.insert(0, args.harness)
    run = importlib.import_module("run")
    new = command(args.pypid, args.workers)
    builds = adapters(new, command(args.pypid_old, args.workers))
    known = run.get
    run.get = lambda name: builds.get(name) or known(name)
    run.PORTS.setdefault("pypid-old", 5)
    os.environ.setdefault("PYPID_AUTH", "admin:admin")
    # (the harness's adapter asks for a command before its first start)
    os.environ["PYPID_CMD"] = new
    sys.argv = [run.__file__, "--servers", ",".join(names), "--out", args.out, *args.rest]
    run.main()
    with open(args.out) as f:
        results = json.load(f)
    print("\nnew/old, one pair a rep:\n" + report(results, names))


if __name__ == "__main__":
    main()
