"""
Measure how fast refused token exchanges grow the audit log: a real
daemon (C{twistd}, local storage) trusting the tests' HTTPS issuers on
loopback, and one client sending refused exchanges on one keep-alive
connection as fast as it can for C{--seconds}, of each kind in turn, each
against a fresh daemon (stopped afterwards, so the entries it folds and
writes at its stop are counted too):

  - C{no-publisher}: a genuine ID token that no C{[publishers]} entry matches;
  - C{replay}: a genuine token exchanged once, then sent again;
  - C{unreachable}: junk naming a configured issuer nobody serves;
  - C{forged}: junk naming a real issuer and key, with a signature that
    does not verify.

It prints, per kind, the requests sent, the answers' statuses, the audit
entries and bytes written, and the bytes per second of the flood.

Not a test (trial loads only C{test_*.py}); run it by hand::

    .venv/bin/python tests/bench/bench_exchange.py [--seconds 15] [--kinds ...]
"""

import argparse
import collections
import glob
import http.client
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.harness.e2e import USER, Daemon, free_port  # noqa: E402
from tests.harness.oidc_issuer import HTTPSIssuers, compact  # noqa: E402

RELEASE_WORKFLOW = "acme/widgets/.github/workflows/release.yml@refs/heads/main"
KINDS = ("no-publisher", "replay", "unreachable", "forged")


def settings(served):
    """The daemon's C{--set}s: the tests' issuers, one nobody serves, one publisher."""
    github = served.issuers["github"]
    return {
        "auth.admins": USER,
        "oidc.issuers": f"github {github.url}\ndown {served.down_url}",
        "oidc.ca_bundle": served.ca_path,
        "oidc.timeout": "5",
        "publishers.acme-*": (f"issuer:github repository:acme/widgets "
                              f"job_workflow_ref:{RELEASE_WORKFLOW} environment:release"),
    }


def audit_files(daemon):
    """The audit log's day files."""
    return glob.glob(os.path.join(daemon.storage, ".pypid", "audit", "*.jsonl"))


def audit_size(daemon):
    """C{(entries, bytes)} of the audit log."""
    entries = size = 0
    for name in audit_files(daemon):
        with open(name, "rb") as f:
            data = f.read()
        entries += data.count(b"\n")
        size += len(data)
    return entries, size


def flood(daemon, token, seconds):
    """Send C{token} to the exchange for C{seconds}; C{(requests, Counter of statuses)}."""
    body = json.dumps({"token": token}).encode()
    headers = {"Content-Type": "application/json"}
    statuses = collections.Counter()
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    end = time.monotonic() + seconds
    sent = 0
    try:
        while time.monotonic() < end:
            conn.request("POST", "/api/oidc/mint-token", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            statuses[response.status] += 1
            sent += 1
            if response.getheader("connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    finally:
        conn.close()
    return sent, statuses


def token_of(kind, served, daemon):
    """The ID token a flood of C{kind} sends (a replay's is exchanged once first)."""
    github = served.issuers["github"]
    if kind == "no-publisher":
        return github.github_token(repository="evil/widgets")
    if kind == "replay":
        token = github.github_token()
        conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
        conn.request("POST", "/api/oidc/mint-token", body=json.dumps({"token": token}).encode(),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == 200, response.status
        return token
    if kind == "unreachable":
        return compact({"alg": "RS256", "kid": "k1"},
                       {"iss": served.down_url, "aud": "pypid", "sub": "x", "jti": "j"},
                       b"junk")
    return github.forged(github.github_claims())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="pypid-exchange-bench-")
    served = HTTPSIssuers(os.path.join(work, "issuers"))
    served.issuers.add("github", "rsa")
    served.down_url = f"https://127.0.0.1:{free_port()}/down"
    results = {}
    try:
        for kind in options.kinds:
            daemon = Daemon(os.path.join(work, kind), settings=settings(served))
            daemon.start()
            try:
                token = token_of(kind, served, daemon)
                time.sleep(1.0)  # (the mint's entry, if any, is written)
                before = audit_size(daemon)
                started = time.monotonic()
                sent, statuses = flood(daemon, token, options.seconds)
                elapsed = time.monotonic() - started
            finally:
                daemon.stop()
            after = audit_size(daemon)
            entries, size = after[0] - before[0], after[1] - before[1]
            results[kind] = {
                "requests": sent, "requests_per_s": round(sent / elapsed),
                "statuses": dict(statuses), "audit_entries": entries, "audit_bytes": size,
                "audit_kib_per_s": round(size / elapsed / 1024, 2),
            }
            print(kind, json.dumps(results[kind]), flush=True)
    finally:
        served.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
