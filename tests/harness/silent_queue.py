"""
What becomes of the connections queued on a worker as it goes silent,
with the kernel's C{net.ipv4.tcp_migrate_req} set to the argument: run
in a network namespace of its own (C{unshare -n}, its loopback brought
up), where the setting is the namespace's and the host's stays as it
was. A machine of two workers starts; the second is stopped
(C{SIGSTOP}) while 40 connections open, 20 ms apart, about half of them
queued on its socket until the supervisor takes it out of the port; the
last line printed is the outcomes counted, as JSON.

    unshare -n sh -c 'ip link set lo up && python -m tests.harness.silent_queue 1'
"""

import collections
import json
import os
import signal
import sys
import tempfile
import threading
import time

from tests.harness.e2e import Daemon, http, wait_for, worker_pids


def main(setting):
    with open("/proc/sys/net/ipv4/tcp_migrate_req", "w") as f:
        f.write(setting)
    daemon = Daemon(tempfile.mkdtemp(prefix="pypid-silent-"), settings={"pypid.workers": "2"})
    daemon.start()
    try:
        wait_for(lambda: http("GET", daemon.url + "health").json()["workers"]["up"] == 2, 30,
                 "both workers up")
        victim = worker_pids(daemon)[-1]
        outcomes = []

        def probe():
            try:
                outcomes.append(str(http("GET", daemon.url + "simple/", timeout=20).status))
            except OSError as e:
                outcomes.append(type(e).__name__)
        os.kill(victim, signal.SIGSTOP)
        try:
            probes = [threading.Thread(target=probe) for _ in range(40)]
            for each in probes:
                each.start()
                time.sleep(0.02)
            for each in probes:
                each.join()
        finally:
            os.kill(victim, signal.SIGCONT)
        print(json.dumps(dict(collections.Counter(outcomes))), flush=True)
    finally:
        daemon.stop()


if __name__ == "__main__":
    main(sys.argv[1])
