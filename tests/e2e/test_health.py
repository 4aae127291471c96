"""
End-to-end tests of C{/health}: it says ready only once the index answers
with its files, after a crash (C{kill -9}) and a restart too.
"""

import subprocess
import time

from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
    STARTUP_TIMEOUT,
    DaemonTestCase,
    E2EFailure,
    _die_with_parent,
    _live,
    clean_env,
    file_url,
    http,
    upload,
    write_files,
)

#: files copied into the folder by hand while the server is down
BY_HAND = 300


def poll_restart(daemon, probes, timeout=STARTUP_TIMEOUT):
    """
    Start C{daemon} again on its port and poll C{/health} and each probe as
    fast as possible until C{/health} said 200 and every probe answered
    what it should after it.

    @param probes: C{{name: probe}}, C{probe() -> (status, fine)}.
    @return: C{(first_ready, answers)}: the monotonic time of the first 200
        from C{/health}, and C{[(time, name, status, fine)]} of every answer
        to a probe after it.
    """
    port = daemon.port
    daemon.starts += 1
    with open(daemon.log_path, "ab") as log:
        log.write(f"==== e2e: start #{daemon.starts} on port {port} (polled) ====\n".encode())
        daemon._log_offset = log.tell()
        daemon.process = subprocess.Popen(
            daemon.command(port), cwd=daemon.directory, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT,
            env=clean_env(daemon.home, PYTHONUNBUFFERED="1", **daemon.environ),
            start_new_session=True, preexec_fn=_die_with_parent)
    _live.add(daemon)
    deadline = time.monotonic() + timeout
    first_ready = None
    answers = []
    fine = set()
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            raise E2EFailure(f"the server exited with {daemon.process.returncode}")
        try:
            if first_ready is None:
                if http("GET", daemon.url + "health", timeout=1).status == 200:
                    first_ready = time.monotonic()
                continue
            for name, probe in probes.items():
                status, ok = probe()
                answers.append((time.monotonic(), name, status, ok))
                if ok:
                    fine.add(name)
        except OSError:
            continue
        if len(fine) == len(probes):
            return first_ready, answers
    raise E2EFailure(f"the server did not answer every probe within {timeout} s: {answers[-5:]}")


class CrashRestartTests(DaemonTestCase):
    """After C{kill -9} and a restart, C{/health} says ready only when the index answers."""

    def test_ready_only_when_the_index_answers(self):
        """
        A file uploaded after the last snapshot, then a crash: from the
        first 200 of C{/health} on, the file and its project page never
        answer 404 (before the fix: 404 for about 60 ms while ready).
        """
        daemon = self.new_daemon()
        for version in ("1.0", "2.0"):
            self.assertEqual(upload(daemon, *make_wheel("crash-ready", version)).status, 200)
        daemon.restart()  # the snapshot lists the two files
        late = make_wheel("crash-ready", "3.0")
        self.assertEqual(upload(daemon, *late).status, 200)
        url = file_url(daemon, "crash-ready", late[0])
        page = f"{daemon.index_url}crash-ready/"

        def listed():
            answer = http("GET", page, timeout=1)
            return answer.status, answer.status == 200 and late[0].encode() in answer.body

        def downloaded():
            answer = http("GET", url, timeout=1)
            return answer.status, answer.status == 200

        daemon.kill()
        # Files copied in by hand meanwhile make the check that follows the
        # start long enough to be seen (each is read: about 0.3 ms a file).
        for number in range(BY_HAND):
            write_files(daemon.storage, make_wheel(f"by-hand-{number}", "1.0"))
        first_ready, answers = poll_restart(daemon, {"page": listed, "file": downloaded})
        wrong = [(at, name, status) for at, name, status, ok in answers if not ok]
        window = (max(at for at, _, _ in wrong) - first_ready) * 1000 if wrong else 0.0
        self.assertEqual(wrong, [], f"/health said ready {window:.1f} ms while the late "
                         f"file was not served")
