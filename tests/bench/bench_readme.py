"""
What hostile descriptions do to the running daemon (issue 31), the
figures of its closing note: the longest C{/simple/} answer while a
freezing README is handled (by an upload, by the upstream cache keeping a
file on an anonymous download, by the first view of a project in a
pypiserver folder served in place), the size and the time of a project
page whose README escapes to megabytes, the daemon's peak memory, and
the answer to an upload of a 300-deep reStructuredText list.

Run: C{.venv/bin/python -m tests.bench.bench_readme} (about a minute); run it
on an older checkout's C{src} for the figures before.
"""

import json
import os
import tempfile
import time

from tests.harness.e2e import Daemon, file_url, http, upload
from tests.harness.e2e_readme import Probe, hostile_wheel
from tests.harness.upstream_server import UpstreamProcess

#: Seconds given to the background work (the upstream's keeping of a
#: file, a folder's description) while the probe runs.
SETTLE = 12


def main():
    out = {}
    with tempfile.TemporaryDirectory(prefix="pypid-bench-readme-") as folder:
        upstream = UpstreamProcess(os.path.join(folder, "upstream"))
        upstream.add(*hostile_wheel("up-freeze"))
        upstream.start()
        daemon = Daemon(os.path.join(folder, "daemon"), settings={
            "upstream.mode": "cache", "upstream.url": upstream.url, "upstream.timeout": "30"})
        daemon.start()
        try:
            with Probe(daemon.index_url) as probe:
                out["upload_status"] = upload(daemon, *hostile_wheel("freeze-md")).status
            out["upload_stall_s"] = round(probe.worst, 2)
            amplifying = hostile_wheel("amplify-md", text="<>" * 1_500_000,
                                       content_type="text/plain")
            out["amplify_wheel_bytes"] = len(amplifying[1])
            upload(daemon, *amplifying)
            page = http("GET", daemon.url + "project/amplify-md/", timeout=120)
            out["amplify_page_bytes"] = len(page.body)
            started = time.monotonic()
            for _ in range(5):
                http("GET", daemon.url + "project/amplify-md/", timeout=120)
            out["amplify_view_s"] = round((time.monotonic() - started) / 5, 3)
            out["peak_rss_mb"] = round(daemon.memory()["VmHWM"] / 1e6)
            deep = "".join("  " * i + "- x\n\n" for i in range(300))
            out["deep_rst_upload_status"] = upload(
                daemon, *hostile_wheel("deep-rst", text=deep, content_type="text/x-rst")).status
            with Probe(daemon.index_url) as probe:
                http("GET", file_url(daemon, "up-freeze", hostile_wheel("up-freeze")[0]),
                     timeout=120)
                time.sleep(SETTLE)
            out["upstream_stall_s"] = round(probe.worst, 2)
        finally:
            daemon.stop()
            upstream.stop()
        served = Daemon(os.path.join(folder, "folder"))
        os.makedirs(served.storage)
        filename, data = hostile_wheel("folder-freeze")
        with open(os.path.join(served.storage, filename), "wb") as f:
            f.write(data)
        served.start()
        try:
            served.wait_for_log(b"Described 1 file ", timeout=120)
            with Probe(served.index_url) as probe:
                http("GET", served.url + "project/folder-freeze/", timeout=120)
                time.sleep(SETTLE)
            out["folder_stall_s"] = round(probe.worst, 2)
        finally:
            served.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
