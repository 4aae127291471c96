"""
Measure the S3 backend on moto's server: start-up with 20,000 files from an
empty disk, from the local snapshot and from the snapshot kept in the
bucket, and how long an upload through one server takes to show on another.

Not a test (trial loads only C{test_*.py}); run it by hand::

    .venv/bin/python tests/bench/bench_s3.py [--projects 4000] [--versions 5]

It uses ../shared/bench/corpus.py for the wheels, runs moto's server in a
process of its own, fills the bucket directly (as a migration tool would),
then starts real pypid daemons with C{twistd} and times them.
"""

import argparse
import concurrent.futures
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from pypid.core.dists.distribution import inspect
from pypid.storage.bucket.layout import user_metadata
from tests.harness.distributions import make_wheel  # noqa: E402
from tests.harness.e2e import PASSWORD, USER, clean_env, free_port, password_hash, upload  # noqa: E402

VENV_BIN = os.path.dirname(sys.executable)
CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "..", "shared", "bench", "corpus.py")
ACCESS, SECRET = "AKIAPYPIDBENCHKEY001", "bench-secret"


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def wait(url, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return get(url)
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def start_moto(port):
    process = subprocess.Popen(
        [os.path.join(VENV_BIN, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait(f"http://127.0.0.1:{port}/moto-api/")
    return process


def s3client(endpoint):
    import botocore.config
    import botocore.session
    return botocore.session.Session().create_client(
        "s3", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
        config=botocore.config.Config(s3={"addressing_style": "path"},
                                      max_pool_connections=16))


def fill(endpoint, bucket, packages, threads=8):
    client = s3client(endpoint)
    client.create_bucket(Bucket=bucket)
    names = sorted(os.listdir(packages))

    def put(filename):
        path = os.path.join(packages, filename)
        inspected = inspect(path, filename, filename, time.time())
        record, metadata = inspected.record, inspected.metadata
        meta = user_metadata(record)
        with open(path, "rb") as f:
            client.put_object(Bucket=bucket, Key="packages/" + filename, Body=f.read(),
                              Metadata=meta)
        if metadata is not None:
            client.put_object(Bucket=bucket, Key="packages/" + filename + ".metadata",
                              Body=metadata)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, names))
    return len(names)


class Server:
    def __init__(self, folder, endpoint, bucket, **s3):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.home = os.path.join(folder, "home")
        os.makedirs(self.home, exist_ok=True)
        settings = {"bucket": bucket, "prefix": "packages/", "endpoint_url": endpoint,
                    "access_key": ACCESS, "secret_key": SECRET}
        settings.update(s3)
        lines = ["[pypid]", f"snapshot = {folder}/var/index.json", "[storage]",
                 "backend = s3", f"path = {folder}/work", "[s3]"]
        lines += [f"{k} = {v}" for k, v in settings.items()]
        lines += ["[users]", f"{USER} = {password_hash(PASSWORD)}"]
        self.config = os.path.join(folder, "pypid.ini")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.process = None

    def start(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.index_url = self.url + "simple/"
        started = time.monotonic()
        log = open(os.path.join(self.folder, "server.log"), "ab")
        self.process = subprocess.Popen(
            [os.path.join(VENV_BIN, "twistd"), "-n", "--pidfile=", "pypid", "--config",
             self.config, "--listen", f"tcp:{self.port}:interface=127.0.0.1"],
            cwd=self.folder, stdout=log, stderr=subprocess.STDOUT,
            env=clean_env(self.home, PYTHONUNBUFFERED="1"))
        wait(self.url + "health")
        _, body = get(self.index_url, timeout=30)
        took = time.monotonic() - started
        return took, body.count(b"<a ")

    def peak_rss_mib(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)


def convergence(one, two, rounds, prefix, interval):
    """
    Upload through C{one} at a random moment of C{two}'s poll cycle and time
    until C{two} lists the project.
    """
    times = []
    for i in range(rounds):
        time.sleep(random.uniform(0, interval))
        filename, data = make_wheel(f"{prefix}-{i}", "1.0")
        answer = upload(one, filename, data)
        assert answer.status == 200, answer.body
        uploaded = time.monotonic()
        url = f"{two.index_url}{prefix}-{i}/"
        while True:
            try:
                status, _ = get(url)
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        times.append(time.monotonic() - uploaded)
    return times


def fill_synthetic(endpoint, bucket, count, threads=16):
    """
    Put C{count} tiny objects carrying pypid's record in their user metadata
    (as an upload leaves them), each with its C{.metadata} sibling, straight
    through the S3 API: the objects a scale test needs, without wheels.
    """
    import hashlib
    client = s3client(endpoint)
    client.create_bucket(Bucket=bucket)
    now = repr(time.time() - 3600)

    def put(i):
        filename = f"p{i:07d}-1.0-py3-none-any.whl"
        meta = {"sha256": hashlib.sha256(filename.encode()).hexdigest(),
                "name": f"p{i:07d}", "version": "1.0", "upload-time": now}
        client.put_object(Bucket=bucket, Key="packages/" + filename, Body=b"w", Metadata=meta)
        client.put_object(Bucket=bucket, Key="packages/" + filename + ".metadata", Body=b"m")

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, range(count)))


def _counting(client):
    """Count C{client}'s requests by kind (LIST is a GET of the bucket) from now on."""
    counts = {}
    original = client.call

    async def call(method, key="", *args, **kwargs):
        kind = "LIST" if method == "GET" and key == "" else method
        counts[kind] = counts.get(kind, 0) + 1
        return await original(method, key, *args, **kwargs)
    client.call = call
    return counts


async def _measure_scale(reactor, endpoint, bucket, rate, work):
    from functools import partial

    from twisted.internet.threads import deferToThreadPool

    from pypid.http.client import make_http
    from pypid.storage.base import snapshot as snapshots
    from pypid.storage.base import snapshot_reading
    from pypid.storage.bucket.layout import Layout
    from pypid.storage.bucket.storage import BucketSettings, BucketStorage
    from pypid.storage.s3.api import S3Client
    from pypid.storage.s3.credentials import CredentialSource
    from pypid.storage.s3.sign import Bucket, Credentials

    run = partial(deferToThreadPool, reactor, reactor.getThreadPool())
    http, pool = make_http(reactor, 120.0)
    results = {}

    def storage(**options):
        credentials = CredentialSource(Credentials(ACCESS, SECRET), run, reactor)
        client = S3Client(Bucket(endpoint, bucket, "us-east-1"), credentials, http, reactor,
                          120.0, run=run)
        made = BucketStorage(client, Layout("packages/"), run, reactor,
                             tempfile.mkdtemp(dir=work),
                             BucketSettings(clock_margin=0.0, **options))
        return made, client

    async def phase(name, client, work):
        counts = _counting(client)
        started = time.monotonic()
        result = await work()
        results[name] = {"seconds": round(time.monotonic() - started, 2),
                         "requests": dict(sorted(counts.items()))}
        return result

    cold, client = storage()
    await cold.prepare()
    scanned = await phase("no_snapshot_full_listing", client, lambda: cold.scan({}, 0.0))
    since = time.time()
    data = snapshots.encode(scanned.records.values(), (), since, 0, cold.identity())
    await cold.keep_snapshot(data)
    await cold.settle()

    warm, client = storage(check_rate=rate)
    await warm.prepare()
    packed = await phase("snapshot_get", client, warm.load_snapshot)
    results["snapshot_bytes"] = len(packed)
    snap = snapshot_reading.decode(packed)
    started = await phase("start_from_bucket_snapshot", client, lambda: warm.scan(
        snap.records, snap.saved_at, snap.tombstones))
    results["start_from_bucket_snapshot"]["reconcile_due"] = warm.reconcile_due()
    await phase(f"background_check_paced_{rate:g}_per_s", client,
                lambda: warm.reconcile(started.records, started.tombstones))

    free, client = storage(check_rate=0)
    await free.prepare()
    await free.scan(snap.records, snap.saved_at, snap.tombstones)
    await phase("background_check_unpaced", client,
                lambda: free.reconcile(started.records, started.tombstones))
    for made in (cold, warm, free):
        await made.settle()
    await pool.closeCachedConnections()
    results["files"] = len(scanned.records)
    return results


def scale(count, rate, work):
    """Fill a moto bucket with C{count} files (and siblings), then time start-up and the check."""
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import react

    port = free_port()
    moto = start_moto(port)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        fill_synthetic(endpoint, "scale", count)
        filled = round(time.monotonic() - started, 1)
        out = {}

        def go(reactor):
            async def measure():
                out.update(await _measure_scale(reactor, endpoint, "scale", rate, work))
            return ensureDeferred(measure())
        try:
            react(go)
        except SystemExit as e:
            if e.code:
                raise
        out["fill_seconds"] = filled
    finally:
        moto.terminate()
        moto.wait()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--scale", type=int, default=0, metavar="FILES",
                        help="only measure start-up requests and the full check with this "
                             "many synthetic files (each with a .metadata sibling)")
    parser.add_argument("--check-rate", type=float, default=10.0)
    parser.add_argument("--projects", type=int, default=4000)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", default=None)
    options = parser.parse_args()
    work = options.work or tempfile.mkdtemp(prefix="pypid-s3-bench-")
    if options.scale:
        try:
            print(json.dumps(scale(options.scale, options.check_rate, work), indent=2))
        finally:
            if options.work is None:
                shutil.rmtree(work, ignore_errors=True)
        return
    corpus = os.path.join(work, "corpus")
    if not os.path.isdir(os.path.join(corpus, "packages")):
        subprocess.check_call([sys.executable, CORPUS, corpus, "-n", str(options.projects),
                               "-v", str(options.versions), "--big-mb", "0"])
    port = free_port()
    moto = start_moto(port)
    endpoint = f"http://127.0.0.1:{port}"
    results = {}
    try:
        started = time.monotonic()
        files = fill(endpoint, "bench", os.path.join(corpus, "packages"))
        results["fill_seconds"] = round(time.monotonic() - started, 1)
        results["files"] = files

        empty = Server(os.path.join(work, "a"), endpoint, "bench", bucket_snapshot="no")
        took, links = empty.start()
        results["empty_disk"] = {"seconds": round(took, 2), "projects": links,
                                 "peak_rss_mib": round(empty.peak_rss_mib(), 1)}
        empty.stop()
        took, links = empty.start()
        results["local_snapshot"] = {"seconds": round(took, 2), "projects": links,
                                     "peak_rss_mib": round(empty.peak_rss_mib(), 1)}
        empty.stop()

        writer = Server(os.path.join(work, "b"), endpoint, "bench")
        writer.start()
        writer.stop()
        fresh = Server(os.path.join(work, "c"), endpoint, "bench")
        took, links = fresh.start()
        results["bucket_snapshot_empty_disk"] = {"seconds": round(took, 2), "projects": links}
        fresh.stop()

        for interval in ("30", "1"):
            one = Server(os.path.join(work, f"one-{interval}"), endpoint, "bench",
                         sync_interval=interval)
            two = Server(os.path.join(work, f"two-{interval}"), endpoint, "bench",
                         sync_interval=interval)
            one.start()
            two.start()
            times = convergence(one, two, options.rounds, f"converge-{interval}",
                                float(interval))
            results[f"convergence_sync_{interval}s"] = {
                "median": round(statistics.median(times), 2), "max": round(max(times), 2),
                "all": [round(t, 2) for t in times]}
            one.stop()
            two.stop()
    finally:
        moto.terminate()
        moto.wait()
        if options.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
