"""
What verifying attestations costs the upload path (issue 28): the real
daemon (one process, its thread pool doing the Sigstore work), fresh small
wheels POSTed twine-style over 8 keep-alive connections (as
C{../shared/bench/uploader.py} does), with and without one attestation each
(made by the test Sigstore instance, L{tests.harness.sigstore_root}, and accepted
by a C{[publishers]} rule), in alternating rounds (A B B A) so the noise of
a shared machine falls on both.

Run: C{.venv/bin/python -m tests.bench.bench_attestations [files per round]}.
"""

import base64
import hashlib
import http.client
import json
import os
import sys
import tempfile
import threading
import time

from tests.harness.distributions import make_wheel
from tests.harness.e2e import PASSWORD, USER, Daemon
from tests.harness.sigstore_root import TestSigstore, github_claims

BOUNDARY = "----pypid-bench-attestations"
ISSUER = "https://token.ci.test"
WORKFLOW_REF = "acme/widgets/.github/workflows/release.yml@refs/tags/v1.0"


def body(name, version, filename, data, attestation=None):
    fields = [(":action", "file_upload"), ("protocol_version", "1"),
              ("metadata_version", "2.1"), ("name", name), ("version", version),
              ("filetype", "bdist_wheel"), ("pyversion", "py3"),
              ("sha256_digest", hashlib.sha256(data).hexdigest())]
    if attestation is not None:
        fields.append(("attestations", json.dumps([attestation])))
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields]
    parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="content"; '
                 f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                 .encode())
    parts += [data, f"\r\n--{BOUNDARY}--\r\n".encode()]
    return b"".join(parts)


def upload_all(port, bodies, concurrency=8):
    """POST every body; return (files/s, failures)."""
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
               "Authorization": "Basic " + base64.b64encode(
                   f"{USER}:{PASSWORD}".encode()).decode()}
    lock, index, failures = threading.Lock(), [0], []

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = index[0]
                index[0] += 1
            if i >= len(bodies):
                break
            conn.request("POST", "/", body=bodies[i], headers=headers)
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                with lock:
                    failures.append((response.status, answer[:200]))
        conn.close()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(bodies) / (time.perf_counter() - started), failures


def main(count=150):
    sigstore = TestSigstore()
    folder = tempfile.mkdtemp(prefix="bench-attestations-")
    root = sigstore.write_trusted_root(os.path.join(folder, "root.json"))
    daemon = Daemon(os.path.join(folder, "daemon"), settings={
        "oidc.issuers": f"ci {ISSUER}",
        "publishers.bench-*": f"issuer:ci repository:acme/widgets workflow_ref:{WORKFLOW_REF}",
        "attestations.trust_root": root})
    daemon.start()
    try:
        def batch(label, attested):
            made = []
            for i in range(count):
                name, version = f"bench-{label}", f"1.{i}"
                filename, data = make_wheel(name, version)
                attestation = (sigstore.attest(filename, hashlib.sha256(data).hexdigest(),
                                               claims=github_claims()) if attested else None)
                made.append(body(name, version, filename, data, attestation))
            return made
        # (the first attestation loads the Sigstore libraries: timed apart)
        [first] = batch("warm", True)[:1]
        started = time.perf_counter()
        rate, failures = upload_all(daemon.port, [first], 1)
        print(f"first attested upload (imports sigstore): "
              f"{time.perf_counter() - started:.2f} s", file=sys.stderr)
        assert not failures, failures
        rounds = {"plain": [], "attested": []}
        for label, attested in (("a1", False), ("b1", True), ("b2", True), ("a2", False)):
            rate, failures = upload_all(daemon.port, batch(label, attested))
            assert not failures, failures[:3]
            rounds["attested" if attested else "plain"].append(rate)
            print(f"{label} ({'attested' if attested else 'plain'}): {rate:.1f} files/s",
                  file=sys.stderr)
        plain = sum(rounds["plain"]) / 2
        attested = sum(rounds["attested"]) / 2
        print(json.dumps({"files_per_round": count, "plain_files_per_s": round(plain, 1),
                          "attested_files_per_s": round(attested, 1),
                          "ratio": round(attested / plain, 3)}))
    finally:
        daemon.stop()


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:]))
