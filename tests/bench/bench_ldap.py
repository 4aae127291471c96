"""
Measure what a directory login costs: one L{pypid.auth.ldap.Directory}
check against a local slapd (StartTLS and ldaps), and an isolated C{pip
install} of 10 hosted projects from a private index (C{read =
authenticated}) as a local user, as a directory user with the credential
cache warm, with it cold (the first request of the install asks the
directory), and with C{[ldap] cache_ttl = 0} (every request asks it).

Not a test (trial loads only C{test_*.py}); run it by hand::

    .venv/bin/python tests/bench/bench_ldap.py [--projects 10] [--rounds 3]
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

from tests.bench.bench_auth import install  # noqa: E402
from tests.harness.distributions import make_wheel  # noqa: E402
from tests.harness.e2e import Clients, Daemon, upload  # noqa: E402
from tests.harness.slapd import (  # noqa: E402
    GROUPS,
    PEOPLE,
    PEOPLE_ENTRIES,
    SERVICE,
    SERVICE_PASSWORD,
    Slapd,
)


def check_latency(slapd, checks, report):
    """
    Median milliseconds of C{checks} sequential directory checks, per URL
    kind, given to C{report}; then the process exits (L{task.react}).
    """
    from twisted.internet import defer, task

    from pypid.auth.ldap import make_directory
    from pypid.config.ldap_settings import LDAPConfig
    from pypid.core.access.ldap_syntax import parse_ldap_url

    results = {}

    async def measure(reactor):
        for label, url in (("starttls", slapd.url), ("ldaps", slapd.tls_url)):
            directory = make_directory(LDAPConfig(
                url=(parse_ldap_url(url),), bind_dn=SERVICE, bind_password=SERVICE_PASSWORD,
                user_base=PEOPLE, group_base=GROUPS, ca_bundle=slapd.ca.root_path), reactor)
            times = []
            for _ in range(checks):
                started = time.perf_counter()
                groups = await directory.check("alice", PEOPLE_ENTRIES["alice"][0])
                times.append((time.perf_counter() - started) * 1000)
                assert groups == {"dev"}, groups
            results[label] = round(statistics.median(times), 2)
        report(results)

    task.react(lambda reactor: defer.ensureDeferred(measure(reactor)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--projects", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checks", type=int, default=50)
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="pypid-ldap-bench-")
    names = [f"ldap-bench-{i:03d}" for i in range(options.projects)]
    clients = Clients(os.path.join(work, "clients"))
    slapd = Slapd(os.path.join(work, "slapd")).start()
    alice = ("alice", PEOPLE_ENTRIES["alice"][0])
    results = {"projects": options.projects}
    try:
        common = {"auth.read": "authenticated", "ldap.url": slapd.url, "ldap.bind_dn": SERVICE,
                  "ldap.bind_password": SERVICE_PASSWORD, "ldap.user_base": PEOPLE,
                  "ldap.group_base": GROUPS, "ldap.ca_bundle": slapd.ca.root_path}
        for label, ttl in (("cached", "5m"), ("no_cache", "0")):
            access_log = os.path.join(work, label + "-access.log")
            daemon = Daemon(os.path.join(work, label), settings=dict(common, **{
                "ldap.cache_ttl": ttl, "pypid.access_log": access_log}))
            daemon.start()
            try:
                for name in names:
                    assert upload(daemon, *make_wheel(name, "1.0")).status == 200
                target = os.path.join(work, "target")
                runs = {}
                if label == "cached":
                    runs["local_user"] = lambda daemon=daemon, target=target: install(clients, daemon.authed_index_url(),
                                                         names, target)

                    def cold(daemon=daemon, target=target):
                        daemon.restart()  # (a new process: the credential cache is empty)
                        return install(clients, daemon.authed_index_url(*alice), names, target)
                    runs["directory_user_cold_cache"] = cold
                    runs["directory_user_warm_cache"] = lambda daemon=daemon, target=target: install(
                        clients, daemon.authed_index_url(*alice), names, target)
                else:
                    runs["directory_user_cache_ttl_0"] = lambda daemon=daemon, target=target: install(
                        clients, daemon.authed_index_url(*alice), names, target)
                for key, run in runs.items():
                    times = [run() for _ in range(options.rounds)]
                    results[key] = {"median_s": round(statistics.median(times), 2),
                                    "all": [round(t, 2) for t in times]}
                if label == "no_cache":
                    with open(access_log, encoding="utf-8") as f:
                        requests = sum(1 for line in f if '"GET /' in line)
                    results["requests_per_install"] = requests // options.rounds
            finally:
                daemon.stop()

        def report(latency):
            results["directory_check_ms"] = latency
            print(json.dumps(results, indent=2))
        check_latency(slapd, options.checks, report)
    finally:
        slapd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
