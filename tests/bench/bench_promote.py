"""
Measure the cost of a promotion (issue 26) through the real daemon:
C{POST /api/promote} of a 10-file release from C{staging} to C{release},
on a local folder (hard links) and on moto's S3 server (copies on the
store's side), each release a new one, the median of the rounds.

Each backend gets a daemon of its own (C{twistd}, as the end-to-end tests
start it, L{tests.harness.e2e.Daemon}); every release is uploaded to
C{/staging/} before the timing starts, so a round times the promotion
alone: the client's request to the answer, as C{pypid-admin promote}
sees it::

    .venv/bin/python tests/bench/bench_promote.py [--rounds 7] [--payload-kb 64]

Not a test (trial loads only C{test_*.py}).
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests import s3server  # noqa: E402
from tests.harness.distributions import make_sdist, make_wheel  # noqa: E402
from tests.harness.e2e import PASSWORD, USER, Daemon, http, upload  # noqa: E402
from tests.harness.e2e_s3 import s3_settings  # noqa: E402

SECTIONS = """
[index:release]

[index:staging]
bases = release
"""

#: Nine wheels and an sdist: a release of ten files.
TAGS = ("py3-none-any", "py3-none-win_amd64", "py3-none-win32",
        "py3-none-macosx_11_0_arm64", "py3-none-macosx_10_9_x86_64",
        "py3-none-manylinux_2_17_x86_64", "py3-none-manylinux_2_17_aarch64",
        "py3-none-musllinux_1_1_x86_64", "py3-none-linux_armv7l")


def release(version, payload):
    """The ten files of C{bench-promote} C{version}, each wheel carrying C{payload} bytes."""
    extra = [("bench_promote/blob.bin", payload)] if payload else []
    return [make_wheel("bench-promote", version, tag=tag, extra_files=extra) for tag in TAGS] + [
        make_sdist("bench-promote", version)]


def promote(daemon, version):
    """Promote C{bench-promote} C{version}; return the seconds the answer took."""
    body = json.dumps({"from": "staging", "to": "release", "project": "bench-promote",
                       "version": version}).encode()
    started = time.perf_counter()
    answer = http("POST", daemon.url + "api/promote", {"Content-Type": "application/json"},
                  body, auth=(USER, PASSWORD))
    took = time.perf_counter() - started
    if answer.status != 200 or len(answer.json()["promoted"]) != 10:
        raise SystemExit(f"promotion of {version} failed: {answer.status} {answer.body!r}")
    return took


def measure(name, settings, rounds, payload, work):
    """Start a daemon with C{settings}, upload, promote; return the seconds of each round."""
    daemon = Daemon(os.path.join(work, name), settings=settings)
    with open(daemon.config_path, "a", encoding="utf-8") as f:
        f.write(SECTIONS)
    daemon.start(timeout=30)
    try:
        versions = [f"1.{i}" for i in range(rounds + 1)]
        for version in versions:
            for filename, data in release(version, payload):
                answer = upload(daemon, filename, data, path="staging/")
                if answer.status != 200:
                    raise SystemExit(f"upload of {filename} failed: {answer.status} "
                                     f"{answer.body!r}")
        promote(daemon, versions[0])  # (warm-up: S3 asks the store about conditional copies)
        return [promote(daemon, version) for version in versions[1:]]
    finally:
        daemon.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", type=int, default=7, help="promotions timed per backend")
    parser.add_argument("--payload-kb", type=int, default=64,
                        help="incompressible KiB in each wheel")
    parser.add_argument("--backends", default="local,s3")
    options = parser.parse_args()
    payload = os.urandom(options.payload_kb << 10)
    work = tempfile.mkdtemp(prefix="bench-promote-")
    try:
        for backend in options.backends.split(","):
            settings = {} if backend == "local" else s3_settings(s3server.new_bucket())
            times = measure(backend, settings, options.rounds, payload, work)
            ms = sorted(t * 1000 for t in times)
            print(f"{backend:6} promotion of a 10-file release: median {statistics.median(ms):.1f} "
                  f"ms (min {ms[0]:.1f}, max {ms[-1]:.1f}, {len(ms)} promotions)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
