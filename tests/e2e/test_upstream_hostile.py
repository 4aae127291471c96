"""
End-to-end tests of the upstream cache (C{[upstream] mode = cache}) in
front of a hostile upstream: the real daemon, and the local upstream index
(L{tests.harness.upstream_server}) run as a process, one per class, made to answer
what no well-behaved index does with its raw answers and cookies.

Each test states what pypid must do and checks it with numbers: the
daemon's memory (C{VmRSS}), the bytes in its cache's temporary folder
sampled while a download runs, the requests the upstream received, what a
client received, and what the cache kept.

Some answers are read with a raw socket (L{raw_get}) rather than
L{tests.harness.e2e.http}: an HTTP/1.0 request, a body that must be measured while
it arrives and given up on after a deadline, a body too large to hold.
"""

import concurrent.futures
import datetime
import json
import math
import os
import socket
import threading
import time
from urllib.parse import urlsplit

import attrs
from twisted.python import log

from tests.harness.distributions import make_wheel
from tests.harness.e2e import (
    PASSWORD,
    USER,
    DaemonTestCase,
    E2EFailure,
    Sampler,
    file_url,
    files_by_name,
    http,
    sha256,
)
from tests.harness.upstream_server import V1_JSON, UpstreamProcess

JSON_TYPE = [("Content-Type", V1_JSON)]

#: Tolerance on the bytes of the cache's temporary folder: what a download
#: may hold beyond the bound it reserved (one read of the transfer at most).
TEMP_SLACK = 2 << 20

#: The growth of the daemon's memory allowed after pages it must refuse.
RSS_SLACK = 300 << 20

#: The environment of a daemon whose memory is measured: glibc's malloc
#: otherwise raises its mmap threshold to the size of the largest block
#: freed (up to 32 MiB), after which every page body of 15-19 MB comes from
#: the heap, whose freed memory stays in the RSS. A fixed threshold of 4 MiB
#: gives such blocks back to the system when freed, so that the RSS
#: measures what pypid keeps, not what the allocator holds on to.
MEASURED = {"MALLOC_MMAP_THRESHOLD_": str(4 << 20)}

#: The bytes of rendered upstream pages pypid keeps
#: (L{pypid.upstream.page_view.RENDERED_MEMORY}).
RENDERED = 64 << 20

#: The growth past which a test stops sending the daemon more (a runaway
#: would take the machine's memory with it); the test has failed by then.
RSS_RUNAWAY = 3 << 30

#: Bytes in the temporary folder past which a download that pypid failed
#: to stop is cut at the upstream (so that a failing test does not fill
#: the disk): well past every bound the tests check.
TEMP_RUNAWAY = 400 << 20

MIB = 1 << 20

#: A wheel of 2 MiB that does not compress.
HTTP10_BAD = make_wheel("http10-bad", "1.0",
                        extra_files=[("http10_bad/blob.bin", os.urandom(2 * MIB))])


# -- pages ---------------------------------------------------------------------------------


def page_bytes(project, entries):
    """A PEP 691 project page listing C{entries} (dicts, or anything)."""
    return json.dumps({"meta": {"api-version": "1.1"}, "name": project,
                       "files": entries}).encode("utf-8")


def file_entry(upstream, filename, data=None, *, sha=None, size=None, **extra):
    """
    One PEP 691 file entry whose URL is the upstream's C{/files/<filename>}:
    the sha256 and size of C{data} unless given (C{size=False} leaves it out).
    """
    entry = {"filename": filename, "url": upstream.base + "files/" + filename,
             "hashes": {"sha256": sha if sha is not None else sha256(data)}}
    if size is None and data is not None:
        size = len(data)
    if size is not None and size is not False:
        entry["size"] = size
    entry.update(extra)
    return entry


def serve_page(upstream, project, entries):
    """Answer the upstream's page of C{project} with exactly these entries."""
    upstream.raw(f"/simple/{project}/", page_bytes(project, entries), headers=JSON_TYPE)


# -- raw HTTP ------------------------------------------------------------------------------


@attrs.define
class RawResult:
    """
    What a raw GET received.

    @ivar status: the status, or L{None} when no status line arrived.
    @ivar version: the status line's HTTP version (C{"HTTP/1.0"}).
    @ivar headers: C{{lowercase name: value}}.
    @ivar received: the body bytes received (all of them, however many).
    @ivar body: the first C{keep} bytes of the body.
    @ivar complete: whether the body ended as its framing says it ends
        (its C{Content-Length}, its last chunk, or, with neither, a clean
        close: what an HTTP/1.0 client takes for a whole answer).
    @ivar ended: C{"complete"}, C{"eof"} (closed early), C{"reset"}, or
        C{"deadline"} (still coming when the test gave up on it).
    @ivar seconds: from the request to the end.
    """

    status: int | None = None
    version: str = ""
    headers: dict = attrs.field(factory=dict)
    received: int = 0
    body: bytes = b""
    complete: bool = False
    ended: str = ""
    seconds: float = 0.0

    @property
    def whole_200(self):
        """A 200 whose body arrived whole: a client would use it."""
        return self.status == 200 and self.complete

    def __str__(self):
        return (f"<{self.version} {self.status}, {self.received} body bytes, "
                f"ended {self.ended}, {self.seconds:.1f} s, "
                f"Content-Length {self.headers.get('content-length')}>")


class _Deadline(Exception):
    pass


class _Gone(Exception):
    pass


class _Reader:
    """Reads a socket under one overall deadline."""

    def __init__(self, sock, deadline):
        self.sock = sock
        self.deadline = deadline
        self.buffer = b""

    def more(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _Deadline()
        self.sock.settimeout(min(left, 1.0))
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return self.more()
        except (ConnectionResetError, BrokenPipeError):
            raise _Gone("reset")
        if not data:
            raise _Gone("eof")
        self.buffer += data

    def line(self):
        while b"\r\n" not in self.buffer:
            self.more()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def take(self, n):
        """Up to C{n} bytes (at least one), reading if the buffer is empty."""
        if not self.buffer:
            self.more()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data


def _read_answer(reader, result, keep, head=False):
    """Read one answer into C{result}; raises L{_Deadline} or L{_Gone} mid-way."""
    status_line = reader.line().decode("latin-1")
    version, _, rest = status_line.partition(" ")
    result.version = version
    result.status = int(rest.split(" ", 1)[0])
    while True:
        line = reader.line()
        if not line:
            break
        name, _, value = line.decode("latin-1").partition(":")
        result.headers[name.strip().lower()] = value.strip()

    def got(data):
        result.received += len(data)
        if len(result.body) < keep:
            result.body += data[: keep - len(result.body)]

    if head or result.status in (204, 304):
        result.complete = True
        return
    if result.headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(reader.line().split(b";")[0], 16)
            if size == 0:
                reader.line()
                result.complete = True
                return
            left = size
            while left:
                data = reader.take(left)
                left -= len(data)
                got(data)
            reader.line()
    elif "content-length" in result.headers:
        left = int(result.headers["content-length"])
        while left:
            data = reader.take(left)
            left -= len(data)
            got(data)
        result.complete = True
    else:
        while True:
            try:
                got(reader.take(1 << 20))
            except _Gone as e:
                if str(e) == "eof":
                    result.complete = True
                    return
                raise


def raw_get(url, *, headers=(), http10=False, deadline=15.0, keep=16 << 20):
    """
    GET C{url} over a socket of its own and read the answer, whatever it
    is, for at most C{deadline} seconds; see L{RawResult}.

    @param http10: ask as an HTTP/1.0 client (which takes a close for the
        end of a body without C{Content-Length}).
    @param keep: how many body bytes to keep (all are counted).
    """
    parts = urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    lines = [f"GET {target} {'HTTP/1.0' if http10 else 'HTTP/1.1'}",
             f"Host: {parts.hostname}:{parts.port}"]
    if not http10:
        lines.append("Connection: close")
    lines += [f"{name}: {value}" for name, value in headers]
    started = time.monotonic()
    result = RawResult()
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            _read_answer(_Reader(sock, started + deadline), result, keep)
            result.ended = "complete"
        except _Deadline:
            result.ended = "deadline"
        except _Gone as e:
            result.ended = str(e)
    result.seconds = time.monotonic() - started
    return result


def pipelined_gets(port, paths, connections=8, window=64, deadline=120.0):
    """
    GET every path over C{connections} kept-alive connections, C{window}
    requests sent at once on each before their answers are read (HTTP/1.1
    pipelining: the client costs little, the server answers in order).

    @return: C{{status: count}}.
    @raise E2EFailure: a connection was closed, or the deadline passed,
        before every answer arrived.
    """
    shares = [paths[i::connections] for i in range(connections)]
    counts = {}
    lock = threading.Lock()
    end = time.monotonic() + deadline

    def run(share):
        mine = {}
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                reader = _Reader(sock, end)
                for start in range(0, len(share), window):
                    batch = share[start:start + window]
                    sock.sendall(b"".join(
                        b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (p.encode(), port)
                        for p in batch))
                    for _ in batch:
                        result = RawResult()
                        _read_answer(reader, result, keep=0)
                        mine[result.status] = mine.get(result.status, 0) + 1
            return None
        except (_Deadline, _Gone, OSError) as e:
            return f"{type(e).__name__} {e} after {sum(mine.values())} answers"
        finally:
            with lock:
                for status, n in mine.items():
                    counts[status] = counts.get(status, 0) + n

    with concurrent.futures.ThreadPoolExecutor(connections) as pool:
        errors = [e for e in pool.map(run, [share for share in shares if share]) if e]
    if errors:
        raise E2EFailure(f"pipelined GETs broke off ({counts} answered): {errors}")
    return counts


# -- looking at the daemon ---------------------------------------------------------------------


def cache_root(daemon):
    """The folder of the files the upstream cache keeps."""
    return os.path.join(daemon.storage, ".upstream")


def cache_temp(daemon):
    """The temporary folder of the upstream cache's downloads (its storage's temp_dir)."""
    return os.path.join(cache_root(daemon), ".pypid", "tmp")


def kept_files(daemon):
    """The filenames the upstream cache keeps."""
    names = []
    for _folder, dirs, files in os.walk(cache_root(daemon)):
        dirs[:] = [d for d in dirs if d != ".pypid"]
        names += files
    return sorted(names)


def folder_bytes(path):
    """The bytes of the files in C{path} now (0 when it does not exist)."""
    total = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    total += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    pass
    except FileNotFoundError:
        pass
    return total


class FolderPeak(Sampler):
    """
    Samples the bytes in a folder every few milliseconds in a thread of its
    own, keeping the peak; past C{runaway} bytes it calls C{on_runaway}
    once (to cut what fills it).
    """

    def __init__(self, path, runaway=None, on_runaway=None, interval=0.005):
        super().__init__(interval, join_timeout=10)
        self.path = path
        self.peak = 0
        self.samples = 0
        self._runaway = runaway
        self._on_runaway = on_runaway
        self.ran_away = False

    def sample(self):
        size = folder_bytes(self.path)
        self.samples += 1
        self.peak = max(self.peak, size)
        if (self._runaway is not None and size > self._runaway and not self.ran_away):
            self.ran_away = True
            try:
                self._on_runaway()
            except Exception:
                pass


def rss(daemon):
    """The daemon's resident memory now, in bytes."""
    return daemon.memory()["VmRSS"]


def log_lines_since(daemon, offset):
    """The daemon's log lines written after byte C{offset}."""
    with open(daemon.log_path, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace").splitlines()


def log_size(daemon):
    """The length of the daemon's log now."""
    return os.path.getsize(daemon.log_path)


# -- the shared upstream ---------------------------------------------------------------------


class HostileTestCase(DaemonTestCase):
    """
    Tests against one upstream process shared by the class (made and filled
    by L{populate} on first use, stopped with the class's daemon), with the
    daemon in C{mode = cache} in front of it: the class's shared daemon
    (L{extra}: its settings beyond the mode and URL), or one of a test's own
    (L{own_daemon}).
    """

    extra = {}

    @classmethod
    def populate(cls, upstream):
        """Add the files every test of the class reads (before the first start)."""

    @property
    def settings(self):
        return {"upstream.mode": "cache", "upstream.url": self.upstream.url, **self.extra}

    def setUp(self):
        super().setUp()
        self.upstream = self.shared("upstream", self._populated_upstream, UpstreamProcess.stop)
        if not self.upstream.running():
            self.upstream.start()
        self.upstream.clear()
        self.upstream.clear_raw()
        self.upstream.cookies(False)

    def _populated_upstream(self):
        upstream = UpstreamProcess(self.shared_folder("-upstream"))
        self.populate(upstream)
        return upstream

    def own_daemon(self, environ=None, **settings):
        """
        A daemon of this test alone in front of the class's upstream, started.

        @param environ: more environment variables of its process.
        """
        values = {"upstream.mode": "cache", "upstream.url": self.upstream.url}
        values.update({f"upstream.{key}": value for key, value in settings.items()})
        daemon = self.new_daemon(settings=values, start=False)
        daemon.environ.update(environ or {})
        return daemon.start()

    def assertNotKept(self, daemon, filename):
        """Nothing of C{filename} is kept, and no download is left in the temporary folder."""
        self.assertNotIn(filename, kept_files(daemon))
        temp = cache_temp(daemon)
        deadline = time.monotonic() + 5
        while folder_bytes(temp) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = os.listdir(temp) if os.path.isdir(temp) else []
        self.assertEqual(left, [], f"downloads left in {temp}")


# -- 1. memory -----------------------------------------------------------------------------------


def _ints_page(project, megabytes):
    """A page of about C{megabytes} MB whose files are millions of C{1}s."""
    piece = b"1," * 65536
    copies = megabytes * MIB // len(piece)
    prefix = b'{"meta":{"api-version":"1.1"},"name":"%s","files":[' % project.encode()
    return dict(body=piece, repeat=copies, prefix=prefix, suffix=b"1]}"), copies * 65536 + 1


def _dicts_page(project, megabytes):
    """A page of about C{megabytes} MB whose files are a million C{{"filename":"x"}}."""
    one = b'{"filename":"x"},'
    piece = one * 8192
    copies = megabytes * MIB // len(piece)
    prefix = b'{"meta":{"api-version":"1.1"},"name":"%s","files":[' % project.encode()
    return (dict(body=piece, repeat=copies, prefix=prefix, suffix=b'{"filename":"x"}]}'),
            copies * 8192 + 1)


def _valid_page(project, count):
    """A page of C{count} distinct, valid wheel entries of C{project} (files never fetched)."""
    dist = project.replace("-", "_")
    digest = "ab" * 32
    entries = ",".join(
        '{"filename":"%s-1.0.%d-py3-none-any.whl","url":"../../files/%s-1.0.%d-py3-none-any.whl",'
        '"hashes":{"sha256":"%s"},"size":1234}' % (dist, i, dist, i, digest)
        for i in range(count))
    return ('{"meta":{"api-version":"1.1"},"name":"%s","files":[%s]}'
            % (project, entries)).encode("ascii")


class PageMemoryTests(HostileTestCase):
    """
    Pages of millions of entries cost pypid no lasting memory: a page over
    C{max_page_files} is a 502, and pages under it are kept within a budget.
    """

    def get_watching_memory(self, daemon, url, before, peaks):
        """
        GET C{url} (JSON) while sampling the daemon's memory; fail at once,
        with the numbers, when it runs away.
        """
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(http, "GET", url, {"Accept": V1_JSON}, None, None, 60)
            while True:
                try:
                    return future.result(timeout=0.05)
                except concurrent.futures.TimeoutError:
                    pass
                now = rss(daemon)
                peaks.append(now)
                if now - before > RSS_RUNAWAY:
                    daemon.kill()
                    raise E2EFailure(
                        f"GET {url}: the daemon's RSS grew by {(now - before) / MIB:.0f} MiB "
                        f"(from {before / MIB:.0f} MiB) while the page was fetched; killed")

    def test_huge_pages_refused(self):
        """
        Six pages of 15-19 MB listing a million to ten million entries that
        are not files (C{1}) or are refused ones (C{{"filename": "x"}}) are
        each a 502 (over C{max_page_files}), and the daemon's resident
        memory after them is within 300 MB of what it was before; so it is
        after twelve more such pages (what a refused page costs does not
        stay: remembered, each failure would keep its page's bytes).
        """
        upstream = self.upstream
        daemon = self.own_daemon(MEASURED)
        # One ordinary page first: the upstream code is loaded and warm.
        upstream.add_wheel("warm-up", "1.0")
        self.assertEqual(len(files_by_name(daemon, "warm-up")), 1)
        pages = []
        for batch in "abc":
            for number, megabytes in enumerate((15, 17, 19)):
                project = f"ints-{batch}{number}"
                options, entries = _ints_page(project, megabytes)
                upstream.raw(f"/simple/{project}/", headers=JSON_TYPE, **options)
                pages.append((project, entries))
            for number, megabytes in enumerate((15, 17, 19)):
                project = f"dicts-{batch}{number}"
                options, entries = _dicts_page(project, megabytes)
                upstream.raw(f"/simple/{project}/", headers=JSON_TYPE, **options)
                pages.append((project, entries))
        time.sleep(0.5)
        before = rss(daemon)
        peaks = [before]
        answers = []
        after = {}
        for count, (project, entries) in enumerate(pages, 1):
            started = time.monotonic()
            answer = self.get_watching_memory(daemon, daemon.index_url + project + "/",
                                              before, peaks)
            answers.append((project, entries, answer.status, time.monotonic() - started,
                            rss(daemon)))
            if count in (6, 18):
                time.sleep(1)
                after[count] = rss(daemon)
        report = "; ".join(f"{p} ({n} entries): {s} in {t:.1f} s, RSS {r / MIB:.0f} MiB"
                           for p, n, s, t, r in answers)
        report += (f"; RSS before {before / MIB:.0f} MiB, after six {after[6] / MIB:.0f} MiB, "
                   f"after 18 {after[18] / MIB:.0f} MiB, peak {max(peaks) / MIB:.0f} MiB")
        log.msg("\n" + report)
        self.assertEqual([a[2] for a in answers], [502] * 18, report)
        self.assertLess(after[6] - before, RSS_SLACK, report)
        self.assertLess(after[18] - before, RSS_SLACK, report)
        self.assertLess(after[18] - after[6], 100 * MIB, report)
        for project, _ in pages:
            self.assertEqual(upstream.count(f"/simple/{project}/"), 1, project)

    def test_large_valid_pages(self):
        """
        Five projects whose pages list 50,000 valid files each (under
        C{max_page_files}) are served whole, 200 with 50,000 files; the
        daemon's memory grows by no more than the page cache's budget
        (C{page_cache_size = 64M}), the rendered pages' (64 MiB,
        L{pypid.upstream.page_view.RENDERED_MEMORY}) and 300 MB.
        """
        upstream = self.upstream
        daemon = self.own_daemon(MEASURED, page_cache_size="64M")
        upstream.add_wheel("warm-up", "1.0")
        self.assertEqual(len(files_by_name(daemon, "warm-up")), 1)
        projects = [f"many-{n}" for n in range(5)]
        for project in projects:
            upstream.raw(f"/simple/{project}/", _valid_page(project, 50_000),
                         headers=JSON_TYPE)
        time.sleep(0.5)
        before = rss(daemon)
        peaks = [before]
        numbers = []
        for project in projects:
            started = time.monotonic()
            answer = self.get_watching_memory(daemon, daemon.index_url + project + "/",
                                              before, peaks)
            self.assertEqual(answer.status, 200, (project, answer.body[:300]))
            self.assertEqual(len(answer.json()["files"]), 50_000, project)
            numbers.append(f"{project}: {time.monotonic() - started:.1f} s, "
                           f"RSS {rss(daemon) / MIB:.0f} MiB")
        time.sleep(1)
        after = rss(daemon)
        bound = (64 << 20) + RENDERED + RSS_SLACK
        report = (f"{'; '.join(numbers)}; RSS before {before / MIB:.0f} MiB, "
                  f"after {after / MIB:.0f} MiB (growth {(after - before) / MIB:.0f} MiB, "
                  f"bound {bound / MIB:.0f} MiB), peak {max(peaks) / MIB:.0f} MiB")
        log.msg("\n" + report)
        self.assertLess(after - before, bound, report)
        # (and the first is still served, from the cache or fetched again)
        again = http("GET", daemon.index_url + projects[0] + "/", {"Accept": V1_JSON})
        self.assertEqual((again.status, len(again.json()["files"])), (200, 50_000))


# -- 2, 3, 6-11: files and pages -----------------------------------------------------------------


class HostileFileTests(HostileTestCase):
    """
    Files and pages a hostile upstream sends, through one daemon with a
    50M file limit and 100M of download space.
    """

    extra = {"upstream.max_file_size": "50M", "upstream.download_space": "100M",
             "upstream.timeout": "5"}

    @classmethod
    def populate(cls, upstream):
        upstream.add_wheel("plain-app", "1.0")
        for n in range(4):
            upstream.add_wheel(f"cookie-app-{n}", "1.0")
        # (large: pypid has passed bytes on before it can tell they are wrong)
        upstream.add(*HTTP10_BAD, claimed_size=None)
        upstream.add_wheel("redirected-file", "1.0")
        upstream.add_wheel("bad-time", "1.0")
        upstream.add_wheel("trickle-app", "1.0")

    def setUp(self):
        super().setUp()
        _ = self.daemon  # (started, before the test's clock runs)

    def endless_file(self, project, size, piece=MIB, interval=0.01):
        """
        Serve C{project} 1.0 as one wheel whose page claims C{size} (or
        none) and whose body never ends (C{piece} every C{interval}:
        about 100 MB/s); return C{(filename, its URL on pypid, upstream path)}.
        """
        filename = f"{project.replace('-', '_')}-1.0-py3-none-any.whl"
        serve_page(self.upstream, project, [file_entry(
            self.upstream, filename, sha="00" * 32, size=size if size is not None else False)])
        path = "/files/" + filename
        self.upstream.raw(path, b"\0" * piece, endless=True, interval=interval,
                          headers=[("Content-Type", "application/octet-stream")])
        # (the page first, as an installer reads it)
        page = http("GET", self.daemon.index_url + project + "/", {"Accept": V1_JSON})
        self.assertEqual(page.status, 200, page.body)
        return filename, self.daemon.url + f"files/{project}/{filename}", path

    def cut_all(self):
        """Cut every raw answer under way at the upstream (a runaway download)."""
        http("POST", self.upstream.base + "_control/raw/clear",
             {"Content-Type": "application/json"}, b"{}", timeout=10)

    def test_endless_file_bounded_by_max_file_size(self):
        """
        A file whose page claims 1,000,000,000,000 bytes, or no size, and
        whose body never ends: with C{max_file_size = 50M}, the client gets
        a 502 or a broken download, the cache's temporary folder never
        holds more than 50 MiB, and nothing is kept.
        """
        limit = 50 * MIB
        for project, size in (("endless-huge", 1_000_000_000_000), ("endless-nosize", None)):
            filename, url, path = self.endless_file(project, size)
            with FolderPeak(cache_temp(self.daemon), TEMP_RUNAWAY, self.cut_all) as peak:
                answer = raw_get(url, deadline=20, keep=0)
            report = (f"{project}: {answer}; temp folder peak {peak.peak / MIB:.1f} MiB "
                      f"over {peak.samples} samples")
            log.msg("\n" + report)
            self.assertFalse(answer.whole_200, report)
            self.assertIn(answer.status, (200, 502, None), report)
            self.assertLessEqual(peak.peak, limit + TEMP_SLACK, report)
            self.assertFalse(peak.ran_away, report)
            self.upstream.clear_raw(path)
            self.assertNotKept(self.daemon, filename)

    def test_download_space_shared(self):
        """
        Four files at once whose pages claim 50,000,000 bytes and whose
        bodies never end: each download reserves 50,000,000 bytes of the
        100M of C{download_space}, so the temporary folder never holds more
        than 100 MiB at once; every client gets a 502 or a broken
        download, and nothing is kept.
        """
        files = [self.endless_file(f"endless-many-{n}", 50_000_000) for n in range(4)]
        with FolderPeak(cache_temp(self.daemon), TEMP_RUNAWAY, self.cut_all) as peak:
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda f: raw_get(f[1], deadline=30, keep=0), files))
        report = (f"temp folder peak {peak.peak / MIB:.1f} MiB over {peak.samples} samples; "
                  + "; ".join(str(a) for a in answers))
        log.msg("\n" + report)
        for answer in answers:
            self.assertFalse(answer.whole_200, report)
            self.assertNotEqual(answer.ended, "deadline", report)
        self.assertLessEqual(peak.peak, 100 * MIB + TEMP_SLACK, report)
        self.assertGreater(peak.peak, 0, "no download reached the temporary folder")
        for filename, _, path in files:
            self.upstream.clear_raw(path)
            self.assertNotKept(self.daemon, filename)

    def test_body_longer_than_size(self):
        """
        A body of 3 MiB whose page claims 1,000,000 bytes (and the sha256 of
        its first 1,000,000, so that only the length tells it is wrong): at
        most 1,000,000 bytes reach the client, the answer is not a whole
        200, and nothing is kept; the same when exactly the first 1,000,000
        bytes arrive at once and the rest half a second later.
        """
        piece = os.urandom(64 << 10)
        body = piece * 48
        size = 1_000_000
        octets = [("Content-Type", "application/octet-stream")]
        for project, options in (
                ("overlong", dict(body=piece, repeat=48)),
                ("overlong-paused", dict(prefix=body[:size], body=body[size:], repeat=1,
                                         interval=0.5))):
            filename = f"{project.replace('-', '_')}-1.0-py3-none-any.whl"
            serve_page(self.upstream, project, [file_entry(
                self.upstream, filename, sha=sha256(body[:size]), size=size)])
            self.upstream.raw("/files/" + filename, headers=octets, **options)
            answer = raw_get(self.daemon.url + f"files/{project}/{filename}", deadline=20)
            log.msg(f"\n{project}: {answer}")
            self.assertLessEqual(answer.received, size, f"{project}: {answer}")
            self.assertFalse(answer.whole_200, f"{project}: {answer}")
            self.assertNotEqual(answer.ended, "deadline", f"{project}: {answer}")
            self.assertNotKept(self.daemon, filename)

    def test_no_cookies_sent_back(self):
        """
        With the upstream setting a fresh cookie on every answer, the
        requests pypid makes to it (20 pages and more, files) never carry
        a C{Cookie} header.
        """
        self.upstream.cookies(True)
        self.addCleanup(self.upstream.cookies, False)
        self.upstream.clear_requests()
        for n in range(4):
            files = files_by_name(self.daemon, f"cookie-app-{n}")
            (filename,) = files
            answer = http("GET", file_url(self.daemon, f"cookie-app-{n}", filename))
            self.assertEqual(answer.status, 200)
        for n in range(16):
            self.assertEqual(http("GET", self.daemon.index_url + f"no-cookie-{n}/").status, 404)
        requests = self.upstream.requests(details=True)
        pages = [r for r in requests if r["path"].startswith("/simple/")]
        self.assertGreaterEqual(len(pages), 20, requests)
        with_cookies = [(r["path"], r["cookie_length"]) for r in requests if r["cookie_length"]]
        self.assertEqual(with_cookies, [], f"{len(with_cookies)} of {len(requests)} requests "
                         "carried cookies")

    def test_unparseable_redirects(self):
        """
        A 302 to C{http://[x/} for a page and for a file is a 502, never a
        500; asked again at once, the same 502 without asking the upstream.
        """
        self.upstream.raw("/simple/bad-redirect/", b"moved\n", status=302,
                          headers=[("Location", "http://[x/")])
        first = http("GET", self.daemon.index_url + "bad-redirect/")
        second = http("GET", self.daemon.index_url + "bad-redirect/")
        self.assertEqual((first.status, second.status), (502, 502),
                         (first.body, second.body))
        self.assertEqual(self.upstream.count("/simple/bad-redirect/"), 1)

        filename = "redirected_file-1.0-py3-none-any.whl"
        url = file_url(self.daemon, "redirected-file", filename)
        self.upstream.raw("/files/" + filename, b"moved\n", status=302,
                          headers=[("Location", "http://[x/")])
        first = http("GET", url)
        second = http("GET", url)
        self.assertEqual((first.status, second.status), (502, 502),
                         (first.body, second.body))
        self.assertEqual(self.upstream.count("/files/" + filename), 1)

    def test_impossible_upload_time(self):
        """
        An entry whose upload time is C{2020-01-01T00:00:00+99:00} (no such
        offset) is served without it: 200, the file listed (with no upload
        time, or a readable one) and downloadable; asked again, the page is
        not fetched again.
        """
        entry = self.upstream_file("bad_time-1.0-py3-none-any.whl")
        serve_page(self.upstream, "bad-time", [file_entry(
            self.upstream, entry["filename"], entry["data"],
            **{"upload-time": "2020-01-01T00:00:00+99:00"})])
        first = http("GET", self.daemon.index_url + "bad-time/", {"Accept": V1_JSON})
        self.assertEqual(first.status, 200, first.body)
        (listed,) = first.json()["files"]
        self.assertEqual(listed["filename"], entry["filename"])
        if "upload-time" in listed:
            when = datetime.datetime.fromisoformat(listed["upload-time"].replace("Z", "+00:00"))
            self.assertEqual(when.utcoffset(), datetime.timedelta(0))
        second = http("GET", self.daemon.index_url + "bad-time/", {"Accept": V1_JSON})
        self.assertEqual((second.status, second.body), (200, first.body))
        self.assertEqual(self.upstream.count("/simple/bad-time/"), 1)
        download = http("GET", file_url(self.daemon, "bad-time", entry["filename"]))
        self.assertEqual((download.status, sha256(download.body)), (200, sha256(entry["data"])))

    def upstream_file(self, filename):
        """The bytes the upstream serves for C{filename}, and its name."""
        answer = http("GET", self.upstream.base + "files/" + filename)
        self.assertEqual(answer.status, 200)
        return {"filename": filename, "data": answer.body}

    def refresh(self, project):
        """An administrator's refresh of C{project}'s page."""
        answer = http("POST", self.daemon.url + f"api/upstream/{project}/refresh",
                      auth=(USER, PASSWORD))
        self.assertEqual(answer.status, 200, answer.body)

    def test_hash_change_cached_bytes_win(self):
        """
        A file fetched through pypid, then replaced upstream by other bytes
        under its filename, and its page refreshed: pypid's page and the
        bytes (and .metadata) it serves agree, and are the cached ones; the
        change is logged as a warning naming the file.
        """
        a_name, a_data = make_wheel("changing", "1.0")
        b_name, b_data = make_wheel("changing", "1.0", requires_dist=["other>=1"],
                                    module_text="CHANGED = True\n")
        self.assertEqual(a_name, b_name)
        self.upstream.add(a_name, a_data)
        url = file_url(self.daemon, "changing", a_name)
        self.assertEqual(sha256(http("GET", url).body), sha256(a_data))
        a_metadata = http("GET", url + ".metadata").body
        self.upstream.add(b_name, b_data)
        offset = log_size(self.daemon)
        self.refresh("changing")
        entry = files_by_name(self.daemon, "changing")[a_name]
        served = http("GET", url)
        self.assertEqual(served.status, 200)
        self.assertEqual(entry["hashes"]["sha256"], sha256(served.body),
                         "the page's sha256 is not that of the file served")
        self.assertEqual(sha256(served.body), sha256(a_data), "the cached bytes were not kept")
        metadata = http("GET", url + ".metadata")
        self.assertEqual(metadata.status, 200)
        self.assertEqual(entry["core-metadata"]["sha256"], sha256(metadata.body),
                         "the page's metadata sha256 is not that of the .metadata served")
        self.assertEqual(metadata.body, a_metadata)
        warned = [line for line in log_lines_since(self.daemon, offset)
                  if a_name in line and ("#warn]" in line or "#error]" in line
                                         or "#critical]" in line)]
        self.assertTrue(warned, "the change of hash was not logged as a warning")

    def test_hash_change_metadata_only(self):
        """
        The .metadata of a file fetched through pypid (not the file), then
        the file replaced upstream and its page refreshed: the page's
        metadata sha256 is that of the .metadata pypid serves, and its file
        sha256 that of the file it serves.
        """
        a_name, a_data = make_wheel("changing-meta", "1.0")
        b_name, b_data = make_wheel("changing-meta", "1.0", requires_dist=["other>=1"])
        self.upstream.add(a_name, a_data)
        url = file_url(self.daemon, "changing-meta", a_name)
        self.assertEqual(http("GET", url + ".metadata").status, 200)
        self.upstream.add(b_name, b_data)
        self.refresh("changing-meta")
        entry = files_by_name(self.daemon, "changing-meta")[a_name]
        metadata = http("GET", url + ".metadata")
        self.assertEqual(metadata.status, 200)
        self.assertEqual(entry["core-metadata"]["sha256"], sha256(metadata.body),
                         "the page's metadata sha256 is not that of the .metadata served")
        served = http("GET", url)
        self.assertEqual((served.status, entry["hashes"]["sha256"]),
                         (200, sha256(served.body)))

    def test_http10_client_wrong_bytes(self):
        """
        An HTTP/1.0 client, a page without size, a file whose bytes are
        wrong: the client gets a 502 (a 200 it could only end by the close
        would look whole); asked again at once, a 502 without asking the
        upstream again.
        """
        filename = HTTP10_BAD[0]
        entry = files_by_name(self.daemon, "http10-bad")[filename]
        self.assertNotIn("size", entry)
        url = file_url(self.daemon, "http10-bad", filename)
        self.upstream.fail("/files/" + filename, "wrong_bytes")
        first = raw_get(url, http10=True, deadline=20, keep=0)
        second = raw_get(url, http10=True, deadline=20, keep=0)
        self.assertEqual(first.status, 502, str(first))
        self.assertEqual(second.status, 502, str(second))
        self.assertEqual(self.upstream.count("/files/" + filename), 1)

    def test_identity_encoding_asked(self):
        """The upstream is asked for files and their .metadata with C{Accept-Encoding: identity}."""
        self.upstream.clear_requests()
        url = file_url(self.daemon, "plain-app", "plain_app-1.0-py3-none-any.whl")
        self.assertEqual(http("GET", url + ".metadata").status, 200)
        self.assertEqual(http("GET", url).status, 200)
        asked = [(r["path"], r["accept_encoding"]) for r in self.upstream.requests(details=True)
                 if r["path"].startswith("/files/")]
        self.assertEqual(asked, [
            ("/files/plain_app-1.0-py3-none-any.whl.metadata", "identity"),
            ("/files/plain_app-1.0-py3-none-any.whl", "identity")])

    def test_trickle_abandoned_at_fetch_deadline(self):
        """
        A file trickling one byte a second, with C{fetch_deadline = 3s}
        (and C{timeout = 2s}, so it never idles long enough to time out):
        pypid gives the download up: it ends the answer itself, before the
        test's own deadline of 30 s (which the trickle, of more bytes than
        that, could not beat) and within 3 s plus the timeout, with room
        for a loaded machine. The client gets a 502 or a broken download,
        and nothing is kept.
        """
        daemon = self.own_daemon(fetch_deadline="3s", timeout="2s")
        filename = "trickle_app-1.0-py3-none-any.whl"
        url = file_url(daemon, "trickle-app", filename)
        size = files_by_name(daemon, "trickle-app")[filename]["size"]
        self.upstream.fail("/files/" + filename, "slow:1:1")
        patience = 30
        self.assertGreater(size, 2 * patience, "a trickle this short could end by itself")
        answer = raw_get(url, deadline=patience)
        log.msg(f"\ntrickle: {answer}")
        self.assertFalse(answer.whole_200, str(answer))
        # (ended by pypid, not by the test's deadline: the download was abandoned)
        self.assertNotEqual(answer.ended, "deadline", str(answer))
        self.assertLess(answer.seconds, 3 + 2 + 10, str(answer))
        self.assertNotKept(daemon, filename)


# -- 4, 5, 12: misses and outages ---------------------------------------------------------------


class MissAndOutageTests(HostileTestCase):
    """Names that miss, from one address; the upstream gone; a crash."""

    @classmethod
    def populate(cls, upstream):
        upstream.add_wheel("kept-one", "1.0")
        upstream.add_wheel("limited-one", "1.0")
        upstream.add_wheel("snap-kept", "1.0")

    def test_misses_do_not_evict_cached_pages(self):
        """
        20,001 requests for names the upstream does not have, after one
        project was cached: with the upstream stopped, the cached project
        is still served (stale), and again after a restart.
        """
        daemon = self.own_daemon(ttl="1s", max_misses_per_address="1000000")
        self.assertEqual(sorted(files_by_name(daemon, "kept-one")),
                         ["kept_one-1.0-py3-none-any.whl"])
        paths = [f"/simple/missing-{n}/" for n in range(20_001)]
        started = time.monotonic()
        counts = pipelined_gets(daemon.port, paths)
        seconds = time.monotonic() - started
        log.msg(f"\n20,001 misses in {seconds:.1f} s ({20_001 / seconds:.0f} a second): {counts}")
        self.assertEqual(counts, {404: 20_001})
        self.upstream.stop()
        page = http("GET", daemon.index_url + "kept-one/", {"Accept": V1_JSON})
        self.assertEqual(page.status, 200, page.body)
        self.assertTrue(page.header("warning"), "served as fresh with the upstream down")
        self.assertEqual([f["filename"] for f in page.json()["files"]],
                         ["kept_one-1.0-py3-none-any.whl"])
        daemon.restart()
        page = http("GET", daemon.index_url + "kept-one/", {"Accept": V1_JSON})
        self.assertEqual(page.status, 200, page.body)
        self.assertTrue(page.header("warning"), "served as fresh after the restart")
        self.assertEqual([f["filename"] for f in page.json()["files"]],
                         ["kept_one-1.0-py3-none-any.whl"])

    def test_misses_per_address_limited(self):
        """
        With C{max_misses_per_address = 20} (a budget of 20 refilled at one
        every 3 s), names the cache does not hold asked from one address
        faster than that: the first 20 pass at once, then come 429s with a
        Retry-After of at most the 3 s of one refill, the upstream not
        asked for any name refused; and however fast or slow the machine,
        never more names asked than the budget plus what it refilled in the
        time taken. A cached project is still served, more times than the
        budget holds.
        """
        limit, period = 20, 60.0
        daemon = self.own_daemon(max_misses_per_address=str(limit))
        started = time.monotonic()
        self.assertEqual(len(files_by_name(daemon, "limited-one")), 1)  # the 1st miss

        def ask(name):
            return name, http("GET", daemon.index_url + name + "/")

        # Eight at a time until one is refused: a refill of one every 3 s
        # cannot keep up unless eight answers take 24 s (the loop gives up
        # after two minutes).
        passed, refused, n = [], {}, 0
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            while not refused:
                self.assertLess(time.monotonic() - started, 120,
                                f"no 429 after {len(passed)} misses")
                for name, answer in pool.map(ask, [f"limited-miss-{n + i}" for i in range(8)]):
                    self.assertIn(answer.status, (404, 429), answer.body)
                    if answer.status == 404:
                        passed.append(name)
                    else:
                        refused[name] = answer
                n += 8
        elapsed = time.monotonic() - started
        log.msg(f"\n{len(passed)} misses passed, then {len(refused)} refused, in {elapsed:.2f} s")
        # The bucket starts full: limited-one and 19 more always pass...
        self.assertGreaterEqual(len(passed), limit - 1)
        # ...and no more than it held and refilled (one every 3 s) pass.
        self.assertLessEqual(1 + len(passed), limit + elapsed * limit / period,
                             f"{1 + len(passed)} misses passed in {elapsed:.2f} s")
        for name, over in refused.items():
            retry = over.header("retry-after")
            self.assertTrue(retry and retry.isdigit(), (name, retry))
            self.assertIn(int(retry), range(1, math.ceil(period / limit) + 1), (name, retry))
        asked = {path for path in (r["path"] for r in self.upstream.requests())
                 if path.startswith("/simple/limited-miss-")}
        self.assertEqual(asked, {f"/simple/{name}/" for name in passed},
                         "the upstream was asked for names refused, or not for names passed")
        # A cached page costs nothing: twice the budget of them, at once.
        cached = ["limited-one"] * (2 * limit)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = [answer.status for _, answer in pool.map(ask, cached)]
        self.assertEqual(statuses, [200] * (2 * limit))

    def test_pages_survive_sigkill(self):
        """
        A page fetched through pypid is in the snapshot soon (within 5 s,
        and the test waits up to 7: well before C{snapshot_interval}, 30 s
        here); the daemon killed with SIGKILL then and started again with
        the upstream down serves it.
        """
        daemon = self.own_daemon()
        self.assertEqual(len(files_by_name(daemon, "snap-kept")), 1)
        fetched = time.monotonic()

        def saved():
            try:
                with open(daemon.snapshot, "rb") as f:
                    return b'"snap-kept"' in f.read()
            except FileNotFoundError:
                return False

        while not saved() and time.monotonic() - fetched < 7:
            time.sleep(0.1)
        waited = time.monotonic() - fetched
        log.msg(f"\nsnapshot with the page {'seen' if saved() else 'NOT seen'} "
              f"{waited:.1f} s after the fetch")
        daemon.kill()
        self.upstream.stop()
        daemon.start()
        page = http("GET", daemon.index_url + "snap-kept/", {"Accept": V1_JSON})
        self.assertEqual(page.status, 200, f"{page.body!r} (killed {waited:.1f} s after "
                                           "the page was fetched)")
        self.assertEqual([f["filename"] for f in page.json()["files"]],
                         ["snap_kept-1.0-py3-none-any.whl"])
