"""
End-to-end tests of C{[upstream] hosts}, the hosts an upstream's files may
come from, with the real daemon in front of two local servers: the
upstream's pages on one, its files on another (both on loopback, so not
at a public address: only the operator's word in C{hosts} lets pypid reach
the file server).

A change of C{hosts} at C{SIGHUP} applies to the very next request, also
where a connection to the file server is kept open from before the change
(the upstream pool keeps connections for a minute of idle, and the test
servers keep them alive), directly and after a redirect; and a refused
host is logged once, with the entry to set, and named in the 502 that
pip's retries end on.
"""

import concurrent.futures
import json
import os
import signal
import time

from tests.harness.distributions import make_wheel
from tests.harness.e2e import DaemonTestCase, file_url, http, sha256
from tests.harness.upstream_server import V1_JSON, UpstreamProcess

#: The line of the daemon's log that says a reload took the upstream's hosts.
TAKEN = "upstream default's credentials and hosts"

#: The line of the daemon's log that says a file host was refused.
REFUSED = "Not fetching from 127.0.0.1"


def connections_to(pid, port):
    """How many TCP connections process C{pid} has open to C{port} (read from /proc)."""
    sockets = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # (closed meanwhile)
        if target.startswith("socket:["):
            sockets.add(target[len("socket:["):-1])
    count = 0
    with open(f"/proc/{pid}/net/tcp", encoding="ascii") as f:
        next(f)
        for line in f:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            # (01: established)
            if state == "01" and int(remote.split(":")[1], 16) == port and inode in sockets:
                count += 1
    return count


def wait_until(case, condition, what, timeout=30.0):
    """Poll C{condition} until it holds; fail naming C{what} (a safety limit only)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            case.fail(f"still waiting after {timeout} s for {what}")
        time.sleep(0.02)


class UpstreamHostsTestCase(DaemonTestCase):
    """
    A file server, and a page server whose pages link to it (both serving
    the files added to L{files} before L{start}).
    """

    def setUp(self):
        super().setUp()
        self.folder = os.path.abspath(self.mktemp())
        self.files = UpstreamProcess(self.folder)
        self.addCleanup(self.files.kill)

    def start(self, hosts):
        """
        Start the file server, then the page server, then a daemon caching
        it with C{[upstream] hosts} set to C{hosts} in its file (where a
        reload reads it; C{{files}} stands for the file server's host and
        port; L{None}: not set); return the daemon.
        """
        self.files.start()
        self.pages = UpstreamProcess(self.folder, files_url=self.files.base + "files/").start()
        self.addCleanup(self.pages.kill)
        daemon = self.new_daemon(settings={"upstream.mode": "cache",
                                           "upstream.url": self.pages.url}, start=False)
        if hosts is not None:
            self.write_hosts(daemon, hosts)
        return daemon.start()

    def write_hosts(self, daemon, hosts):
        """Set C{[upstream] hosts} in the daemon's file (the last section, written here)."""
        hosts = hosts.format(files=f"127.0.0.1:{self.files.port}")
        with open(daemon.config_path, encoding="utf-8") as f:
            text = f.read().partition("[upstream]\n")[0]
        with open(daemon.config_path, "w", encoding="utf-8") as f:
            f.write(f"{text}[upstream]\nhosts = {hosts}\n")

    def reload_hosts(self, daemon, hosts):
        """Write C{hosts} into the daemon's file and send C{SIGHUP}; wait until it is taken."""
        taken = daemon.log_text().count(TAKEN)
        self.write_hosts(daemon, hosts)
        os.kill(daemon.pid, signal.SIGHUP)
        wait_until(self, lambda: daemon.log_text().count(TAKEN) > taken, "the reload")

    def assertRefused(self, answer, hosts="* {files}"):
        """
        A 502 whose status line ends with the whole line of C{[upstream]
        hosts} to write (C{hosts}, as L{write_hosts} takes it): the entries
        in force, C{*} among them, then the file server's.
        """
        self.assertEqual(answer.status, 502, answer.body[:300])
        hosts = hosts.format(files=f"127.0.0.1:{self.files.port}")
        self.assertTrue(answer.reason.endswith(f"; if it is a file host you trust, set "
                                               f"[upstream] hosts = {hosts}"), answer.reason)
        self.assertIn(answer.reason.partition("; ")[2], answer.body.decode())


class NarrowedAtReloadTests(UpstreamHostsTestCase):
    """
    A file server named in C{hosts}, used (its connection kept alive), then
    no longer named at C{SIGHUP}: the very next link to it, direct or by a
    302 from the upstream's own host, is refused, whether its connection
    was idle in the pool at the reload (dropped then) or busy with a
    download (given back to the pool after it); named again, it is used at
    the next request.
    """

    def test_idle_connection_dropped(self):
        """After the narrowing, the kept connection is closed, and no request reaches the server."""
        files = self.files
        before = files.add_wheel("near-lib", "1.0")
        after = files.add_wheel("near-lib", "1.1")
        # A project whose file URL is on the page server, which redirects it
        # to the file server.
        hop, data = make_wheel("hop-lib", "1.0")
        files.add(hop, data)
        daemon = self.start("* {files}")
        pages = self.pages
        pages.raw("/simple/hop-lib/", json.dumps({
            "meta": {"api-version": "1.1"}, "name": "hop-lib",
            "files": [{"filename": hop, "url": pages.base + "hop/" + hop,
                       "hashes": {"sha256": sha256(data)}, "size": len(data)}],
        }).encode(), headers=[("Content-Type", V1_JSON)])
        pages.raw("/hop/" + hop, b"moved\n", status=302,
                  headers=[("Location", files.base + "files/" + hop)])

        first = http("GET", file_url(daemon, "near-lib", before))
        self.assertEqual(first.status, 200, first.body[:300])
        self.assertEqual(connections_to(daemon.pid, files.port), 1)
        hop_url = file_url(daemon, "hop-lib", hop)
        after_url = file_url(daemon, "near-lib", after)

        self.reload_hosts(daemon, "*")
        wait_until(self, lambda: connections_to(daemon.pid, files.port) == 0,
                   "the kept connection to be closed")
        for url in (after_url, hop_url):
            self.assertRefused(http("GET", url))
        self.assertEqual(files.count("/files/" + after), 0)
        self.assertEqual(files.count("/files/" + hop), 0)
        self.assertEqual(pages.count("/hop/" + hop), 1)

        # Named again: used at the next request (the refusal is not remembered).
        self.reload_hosts(daemon, "* {files}")
        for url, filename in ((after_url, after), (hop_url, hop)):
            answer = http("GET", url)
            self.assertEqual(answer.status, 200, answer.body[:300])
            self.assertEqual(files.count("/files/" + filename), 1)

    def test_busy_connection_not_reused(self):
        """
        A connection busy with a download at the reload goes back to the
        pool after it, and is not used for the next request.
        """
        files = self.files
        held, data = make_wheel("held-lib", "1.0")
        files.add(held, data)
        after = files.add_wheel("held-lib", "1.1")
        daemon = self.start("* {files}")
        # (the last bytes wait for the test's release: no clock involved)
        files.raw("/files/" + held, data[-64:], prefix=data[:-64], interval=3600)
        held_url = file_url(daemon, "held-lib", held)
        after_url = file_url(daemon, "held-lib", after)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            download = pool.submit(http, "GET", held_url)
            wait_until(self, lambda: files.sending() == 1, "the download to start")
            self.reload_hosts(daemon, "*")
            self.assertEqual(files.sending(), 1)
            files.release("/files/" + held)
            first = download.result()
        self.assertEqual((first.status, first.body), (200, data))
        self.assertEqual(connections_to(daemon.pid, files.port), 1)
        self.assertRefused(http("GET", after_url))
        self.assertEqual(files.count("/files/" + after), 0)


class RefusalTests(UpstreamHostsTestCase):
    """
    The two lines of the README's upstream set-up, with a file host at an
    address that is not public (a company mirror): every file answers a
    502 whose status line and body name the entry to set in C{[upstream]
    hosts}, and the log says it once for the host, however many files are
    asked (by pip and by hand), and once more after a reload that changes
    C{hosts} without naming it.
    """

    def test_refused_host_logged_once_and_named(self):
        """Three files of one host: three 502s naming the key, one log line; again after a reload."""
        names = [self.files.add_wheel("far-lib", version) for version in ("1.0", "1.1", "1.2")]
        daemon = self.start(None)
        target = os.path.abspath(self.mktemp())
        refused = self.clients.pip("install", "--no-deps", "--retries", "0", "--target", target,
                                   "--index-url", daemon.index_url, "far-lib", check=False)
        self.assertNotEqual(refused.returncode, 0, refused.output)
        for name in names:
            self.assertRefused(http("GET", file_url(daemon, "far-lib", name)))
        files = f"127.0.0.1:{self.files.port}"
        line = (f"Not fetching from {files}: 127.0.0.1 is not a public address; if it is a "
                f"file host you trust, set [upstream] hosts = * {files}")
        self.assertEqual(daemon.log_text().count(line), 1, daemon.log_text()[-3000:])
        self.assertEqual(sum(self.files.count("/files/" + name) for name in names), 0)

        # (the line shown keeps every entry in force: written as shown, the
        # other host and the public ones stay, and the files come)
        self.reload_hosts(daemon, "* files.other.example")
        for name in names:
            self.assertRefused(http("GET", file_url(daemon, "far-lib", name)),
                               "* files.other.example {files}")
        shown = f"set [upstream] hosts = * files.other.example {files}"
        self.assertEqual(daemon.log_text().count(shown), 1, daemon.log_text()[-3000:])
        self.reload_hosts(daemon, shown.partition(" = ")[2])
        answer = http("GET", file_url(daemon, "far-lib", names[0]))
        self.assertEqual(answer.status, 200, answer.body[:300])
