"""
What pypid's container image costs (issue 30): its size, how long a cold
and a warm build take, and the time from C{podman run} to a healthy
server, with the tests' Podman settings and Debian base (L{tests.harness.image}).

A cold build makes the base from Debian's packages first (C{--cold}
removes the kept one); a warm one reuses it, as the tests do on a machine
that ran them before. The wheels of pypid and its dependencies are built
on the host either way (counted apart).

Run: C{.venv/bin/python -m tests.bench.bench_image [--cold]}.
"""

import json
import os
import sys
import tempfile
import time

from tests.harness.e2e import free_port
from tests.harness.image import BaseImage, Image, Podman


def main(argv):
    cold = "--cold" in argv
    with tempfile.TemporaryDirectory(prefix="pypid-bench-image-") as folder:
        podman = Podman(folder)
        base = BaseImage(podman, fresh=cold)
        started = time.monotonic()
        image = Image(podman, base, folder)
        total = time.monotonic() - started
        port = free_port()
        name = f"pypid-bench-{os.getpid()}"
        began = time.monotonic()
        podman("run", "--detach", "--name", name, "--read-only", "--read-only-tmpfs=false",
               "--publish", f"127.0.0.1:{port}:8080", image.tag)
        try:
            while podman("healthcheck", "run", name, check=False).returncode != 0:
                if time.monotonic() - began > 120:
                    raise SystemExit("not healthy within 120 s")
                time.sleep(0.1)
            healthy = time.monotonic() - began
        finally:
            podman("rm", "--force", "--volumes", "--time", "0", name, check=False)
            image.remove()
    print(json.dumps({
        "image_mb": round(image.size / 1e6),
        "base": "built" if base.cold else "reused",
        "base_seconds": round(base.seconds, 1),
        "wheels_and_build_seconds": round(total, 1),
        "image_build_seconds": round(image.seconds, 1),
        "healthy_after_run_seconds": round(healthy, 2),
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
