"""
The long version of tests/e2e/test_cluster.py (issue 61): three pypid
servers on one SeaweedFS bucket behind HAProxy, under more load and more
kills, run several times, with the figures of each run and their medians.

    .venv/bin/python tests/bench/bench_cluster.py [--runs 3] [--versions 100] [--kills 5]

Each run is the end-to-end test itself (its checks hold or the run fails:
none lost, none half-visible, clear 503s with Retry-After while the store
misbehaves), with C{--versions} versions of each of its six projects
uploaded (600 uploads at 100) and C{--kills} servers killed one after
another during the load. Not a test (trial loads only C{test_*.py}).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def one_run(versions, kills, folder):
    """One run of the test; its figures (the test's printed JSON)."""
    env = dict(os.environ, PYPID_CLUSTER_VERSIONS=str(versions), PYPID_CLUSTER_KILLS=str(kills))
    done = subprocess.run([sys.executable, "-m", "twisted.trial", f"--temp-directory={folder}",
                           "tests.e2e.test_cluster"], cwd=HERE, env=env,
                          capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("cluster figures: "):
            figures = json.loads(line[len("cluster figures: "):])
            figures["passed"] = done.returncode == 0
            return figures
    sys.exit(f"the run failed before its figures:\n{done.stdout[-4000:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--versions", type=int, default=100)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--work", default=None, help="where the runs' folders go (a new temporary one)")
    args = ap.parse_args()
    args.work = args.work or tempfile.mkdtemp(prefix="bench-cluster-")
    runs = []
    for n in range(args.runs):
        figures = one_run(args.versions, args.kills, os.path.join(args.work, str(n)))
        print(json.dumps(figures, sort_keys=True), flush=True)
        runs.append(figures)
    for key in ("converged after the faults (s)", "store back to an upload acknowledged (s)",
                "restart after kill -9 (s)", "acknowledged (200)"):
        values = [r[key] for r in runs]
        print(f"{key}: median {statistics.median(values)}, range {min(values)}-{max(values)}")
    print(f"runs passed: {sum(r['passed'] for r in runs)} of {len(runs)}")


if __name__ == "__main__":
    main()
