"""
Uploads through the real daemon of two checkouts, alternated (issue 43):
the server's CPU per uploaded file (utime+stime of its process tree, the
description sandbox's children included), files a second, and the peak
memory of the process tree after the uploads (VmHWM summed over the
daemon and its children), as C{../shared/bench/} measures them, for a
chosen description:

  - C{prose}: the shared bench's, C{Benchmark package NAME 1.0.0.}
    without a content type (no renderer needed);
  - C{markdown}: a README of 1.3 kB with headings, lists, a table, links
    and highlighted code (C{text/markdown});
  - C{rst}: the same in reStructuredText (C{text/x-rst}).

Each checkout is run from its own virtualenv with its own
C{etc/pypid.ini} (every feature as shipped: the sandbox, the audit log,
attestation checks), on an empty folder, or a hard-linked copy of
C{--corpus} (its background description waited out before the uploads).
Rounds alternate the order (AB, BA, ...); the report gives each round,
the medians with [min-max], and the round by round ratios::

    .venv/bin/python tests/bench/bench_upload.py --baseline ../wt-581 --readme markdown

C{--workers N} runs both sides as machines of N workers. Each session's
folder is set aside until the last round ended, and the run first waits
out another benchmark's removal (C{aside.py}).

With C{--webhook A}, C{B} or C{AB}, that side's daemons have one
C{[webhook:bench]} subscription to every event, delivered to a receiver
in this process that answers C{200} at once; the same checkout on both
sides (C{--baseline .}) measures what a subscription costs.

Needs C{taskset} when C{--server-cpu} is given. Not a test (trial loads
only C{test_*.py}).
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from aside import set_aside, settle  # noqa: E402

from tests.harness.distributions import make_wheel, metadata_text  # noqa: E402

HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICK = os.sysconf("SC_CLK_TCK")
BOUNDARY = "----pypid-bench-upload-7f3a"

MARKDOWN = """# {name}

[![build](https://ci.example/{name}/badge.svg)](https://ci.example/{name})

`{name}` finds grails: *quickly*, **reliably**, and with `asyncio`.

## Installation

```console
$ pip install {name}
```

## Usage

```python
import asyncio

from grail import Finder


async def main() -> None:
    finder = Finder(knights=["Arthur", "Lancelot", "Robin"], swallow="african")
    async for grail in finder.seek(timeout=30):
        print(f"found {{grail.name}} at {{grail.location!r}}")


asyncio.run(main())
```

## Options

| option     | default | meaning                          |
|------------|---------|----------------------------------|
| `timeout`  | `30`    | seconds before giving up         |
| `swallow`  | `None`  | `"african"` or `"european"`      |
| `knights`  | `[]`    | who searches                     |

1. Read [the documentation](https://docs.example/{name}/).
2. Report bugs on [the tracker](https://tracker.example/{name}/issues).
3. See the [changelog](https://docs.example/{name}/changes.html):
   - 2.0: async finders;
   - 1.0: the first release.

> Note: the grail may be elsewhere.

## License

MIT, see `LICENSE`.
"""

RST = """{title}
{underline}

.. image:: https://ci.example/{name}/badge.svg
   :target: https://ci.example/{name}

``{name}`` finds grails: *quickly*, **reliably**, and with ``asyncio``.

Installation
------------

.. code-block:: console

   $ pip install {name}

Usage
-----

.. code-block:: python

   import asyncio

   from grail import Finder


   async def main() -> None:
       finder = Finder(knights=["Arthur", "Lancelot", "Robin"], swallow="african")
       async for grail in finder.seek(timeout=30):
           print(f"found {{grail.name}} at {{grail.location!r}}")


   asyncio.run(main())

Options
-------

=========== ======= ================================
option      default meaning
=========== ======= ================================
``timeout`` ``30``  seconds before giving up
``swallow`` None    ``"african"`` or ``"european"``
``knights`` ``[]``  who searches
=========== ======= ================================

#. Read `the documentation <https://docs.example/{name}/>`_.
#. Report bugs on `the tracker <https://tracker.example/{name}/issues>`_.
#. See the `changelog <https://docs.example/{name}/changes.html>`_:

   - 2.0: async finders;
   - 1.0: the first release.

.. note:: the grail may be elsewhere.

License
-------

MIT, see ``LICENSE``.
"""


def description(kind, name):
    """The description of C{name}'s wheel, and its content type (L{None}: none)."""
    if kind == "prose":
        return f"Benchmark package {name} 1.0.0.\n", None
    if kind == "markdown":
        return MARKDOWN.format(name=name), "text/markdown"
    title = f"The {name} project"
    return RST.format(name=name, title=title, underline="=" * len(title)), "text/x-rst"


def wheels(count, tag, kind):
    """C{count} fresh wheels, C{(name, filename, bytes)}, described as C{kind} says."""
    out = []
    for i in range(count):
        name = f"bench-upload-{tag}-{i:05d}"
        text, content_type = description(kind, name)
        headers = [f"Description-Content-Type: {content_type}"] if content_type else []
        metadata = metadata_text(name, "1.0.0", extra_headers=headers).replace(
            "\n\nA test project.\n", "\n\n" + text)
        filename, data = make_wheel(name, "1.0.0", metadata=metadata)
        out.append((name, filename, data))
    return out


def body(name, filename, data):
    """The multipart body twine sends for one wheel."""
    fields = [(":action", "file_upload"), ("protocol_version", "1"),
              ("metadata_version", "2.1"), ("name", name), ("version", "1.0.0"),
              ("filetype", "bdist_wheel"), ("pyversion", "py3"),
              ("sha256_digest", hashlib.sha256(data).hexdigest())]
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields]
    parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="content"; '
                 f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                 .encode())
    parts += [data, f"\r\n--{BOUNDARY}--\r\n".encode()]
    return b"".join(parts)


def upload_all(port, items, concurrency, auth):
    """Upload C{items} over C{concurrency} keep-alive connections; return (seconds, failures)."""
    bodies = [body(*item) for item in items]
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
               "Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    lock = threading.Lock()
    queue = list(range(len(bodies)))
    failures = []

    def worker():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if not queue:
                    break
                i = queue.pop()
            connection.request("POST", "/", body=bodies[i], headers=headers)
            answer = connection.getresponse()
            text = answer.read()
            if answer.status != 200:
                with lock:
                    failures.append(f"{items[i][1]}: {answer.status} {text[:200]!r}")
        connection.close()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - started, failures


def tree(pid):
    """C{pid} and its descendants (started by any of their threads)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def cpu_ticks(pid):
    """utime+stime of the process tree (clock ticks)."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def peak_mib(pid):
    """VmHWM summed over the process tree (MiB), and how many processes."""
    total, count = 0, 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
                        count += 1
        except OSError:
            pass
    return total / 1024, count


def wait_idle(pid, window=0.3, limit=300.0):
    """Wait until the tree burns at most a tick in C{window} seconds."""
    deadline = time.monotonic() + limit
    last = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(window)
        now = cpu_ticks(pid)
        if now - last <= 1:
            return
        last = now


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def receiver():
    """A webhook receiver answering C{200} at once, in a thread; its port and its count."""
    import http.server

    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        # (connections kept alive, as a receiver's are)
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(self.headers.get("webhook-id"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1], received


def session(checkout, args, kind, tag, hook=None):
    """One daemon of C{checkout}: start, upload, measure, stop (C{hook}: a receiver's port)."""
    folder = tempfile.mkdtemp(prefix="pypid-bench-upload-")
    try:
        packages = os.path.join(folder, "packages")
        if args.corpus:
            subprocess.check_call(["cp", "-al", args.corpus, packages])
        else:
            os.makedirs(packages)
        port = free_port()
        command = [os.path.join(checkout, ".venv", "bin", "twistd"), "-n", "--pidfile=", "pypid",
                   "--config", os.path.join(checkout, "etc", "pypid.ini"),
                   "--listen", f"tcp:{port}:interface=127.0.0.1",
                   "--set", f"storage.path={packages}",
                   "--set", f"pypid.snapshot={os.path.join(folder, 'index.json')}"]
        if hook is not None:
            command += ["--set", f"webhook:bench.url=http://127.0.0.1:{hook}/",
                        "--set", "webhook:bench.allow_http=yes",
                        "--set", "webhook:bench.allow_private=yes",
                        "--set", "webhook:bench.secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
        if args.workers:
            command += ["--set", f"pypid.workers={args.workers}"]
        if args.server_cpu is not None:
            command = ["taskset", "-c", args.server_cpu, *command]
        with open(os.path.join(folder, "server.log"), "wb") as log:
            process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/simple/", timeout=30):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"{checkout}: the server did not start; see {folder}")
                    time.sleep(0.05)
            wait_idle(process.pid)
            items = wheels(args.uploads, tag, kind)
            ticks = cpu_ticks(process.pid)
            seconds, failures = upload_all(port, items, args.concurrency, args.auth)
            wait_idle(process.pid)
            ticks = cpu_ticks(process.pid) - ticks
            peak, processes = peak_mib(process.pid)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        ok = args.uploads - len(failures)
        return {"cpu_ms": ticks * 1000 / TICK / max(ok, 1), "files_per_s": ok / seconds,
                "peak_mib": peak, "processes": processes, "failed": len(failures),
                "first_failure": failures[:1]}
    finally:
        if not args.keep:
            set_aside(folder)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="the checkout to compare with")
    parser.add_argument("--tree", default=HERE, help="the checkout measured (this one)")
    parser.add_argument("--readme", choices=("prose", "markdown", "rst"), default="prose")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--corpus", help="a package folder to serve (hard-linked copy)")
    parser.add_argument("--auth", default="admin:admin", help="user:password of etc/pypid.ini")
    parser.add_argument("--server-cpu", help="pin the server to this CPU (taskset -c)")
    parser.add_argument("--workers", type=int, default=0, help="[pypid] workers of both")
    parser.add_argument("--keep", action="store_true",
                        help="keep each session's folder (else removed when all rounds ended)")
    parser.add_argument("--json", help="write the rounds here")
    parser.add_argument("--webhook", default="", help="the sides with a subscription: A, B, AB")
    args = parser.parse_args()
    names = {"A": os.path.abspath(args.baseline), "B": os.path.abspath(args.tree)}
    settle()
    hook, received = receiver() if args.webhook else (None, [])
    rounds = []
    for r in range(args.rounds):
        measured = {}
        for side in ("AB" if r % 2 == 0 else "BA"):
            measured[side] = session(names[side], args, args.readme, f"r{r}{side.lower()}",
                                     hook if side in args.webhook else None)
            m = measured[side]
            print(f"round {r + 1} {side}: {m['cpu_ms']:6.2f} ms/file {m['files_per_s']:6.1f} files/s"
                  f" peak {m['peak_mib']:6.1f} MiB ({m['processes']} processes)"
                  f"{' FAILED ' + str(m['failed']) + ' ' + str(m['first_failure']) if m['failed'] else ''}",
                  flush=True)
        rounds.append(measured)
    print(f"\nA = {names['A']}\nB = {names['B']}\nreadme = {args.readme}, {args.uploads} uploads, "
          f"{args.concurrency} connections, {args.rounds} rounds; a webhook on "
          f"{args.webhook or 'neither'} ({len(received)} events received)\n")
    print(f"{'':22s} {'A median [min-max]':>24s} {'B median [min-max]':>24s} "
          f"{'B/A median [min-max]':>24s}")
    for key, label in (("cpu_ms", "server CPU ms/file"), ("files_per_s", "files/s"),
                       ("peak_mib", "peak tree MiB")):
        a = [m["A"][key] for m in rounds]
        b = [m["B"][key] for m in rounds]
        ratio = [y / x for x, y in zip(a, b, strict=True)]
        print(f"{label:22s} {statistics.median(a):10.2f} [{min(a):.2f}-{max(a):.2f}]"
              f" {statistics.median(b):10.2f} [{min(b):.2f}-{max(b):.2f}]"
              f" {statistics.median(ratio):10.3f} [{min(ratio):.3f}-{max(ratio):.3f}]")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"checkouts": names, "readme": args.readme, "rounds": rounds}, f, indent=1)


if __name__ == "__main__":
    main()
