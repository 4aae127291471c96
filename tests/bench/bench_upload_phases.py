"""
Where the CPU time of an upload goes (issue 43): this checkout's daemon,
as C{tests/bench/bench_upload.py} runs it (its own C{etc/pypid.ini}: the
description sandbox, the audit log and attestation checks on), with the
functions of each phase of an upload timed by the CPU time of the thread
that runs them, a phase's own time only (a timed function called by
another is taken out of its caller's), and the cyclic garbage
collector's passes as a phase of their own; then C{--uploads} uploads
over C{--concurrency} connections, and the table: each phase's CPU
milliseconds a file, what no phase took (Twisted's reactor and thread
pools, what runs between the timed functions), and the children's (the
sandbox's renders).

A sampling profiler (C{py-spy record --subprocesses}) tells where to look
but counts a thread blocked in C{fsync} as busy, and its C{--gil} mode
misses what runs without the lock; this counts each thread's own CPU time
(C{time.thread_time}, the kernel's share included)::

    .venv/bin/python tests/bench/bench_upload_phases.py [--readme prose] [--corpus DIR]

Not a test (trial loads only C{test_*.py}).
"""

import argparse
import atexit
import functools
import gc
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from aside import note_removal, settle  # noqa: E402

#: The phases: C{(module, qualified name, phase)}; a phase may have several.
TARGETS = [
    ("twisted.web.http", "HTTPChannel.dataReceived",
     "HTTP: request line, headers, body framing, dispatch"),
    ("klein._resource", "KleinResource.render", "Klein routing"),
    ("pypid.web.server.multipart", "FormSink.write", "multipart parse"),
    ("pypid.web.server.upload_form", "DiskPart.__init__", "spool file created"),
    ("pypid.web.server.upload_form", "DiskPart.write", "hashing (sha256, blake2b, md5), spool write"),
    ("pypid.web.server.multipart", "FormSink.finish", "multipart parse"),
    ("pypid.core.dists.upload", "validate_upload", "form fields checked"),
    ("pypid.web.changes.upload_store", "UploadStore._store_locked",
     "the index's refusals, orchestration"),
    ("pypid.web.changes.upload_store", "UploadStore._attested", "attestations (none sent)"),
    ("pypid.web.changes.change_checks", "ChangeChecks.confirmed", "credentials and rights again"),
    ("pypid.auth.hashes", "verify_hash", "password hash (argon2id, once a connection)"),
    ("pypid.core.dists.distribution", "inspect", "inspection: read, record"),
    ("pypid.core.dists.dist_archive", "extract", "wheel inspection, metadata"),
    ("pypid.core.dists.details", "describe", "details (project URLs, classifiers...)"),
    ("pypid.sandbox.readme_sandbox", "ReadmeSandbox.render",
     "description: sandbox (daemon's side)"),
    ("pypid.core.dists.readme", "render_description", "description: rendered in the daemon"),
    ("pypid.storage.folder.folder_changes", "FolderChanges.publish",
     "storage: fsync of the file, link, rename"),
    ("pypid.storage.folder.sidecars", "_write_atomic",
     "storage: sidecars (record, metadata, details), fsync"),
    ("pypid.storage.base.disk", "fsync_folder", "storage: fsync of two folders"),
    ("pypid.core.indexes.index", "Index.add", "index: add, pages invalidated"),
    ("pypid.web.server.audit_trail", "AuditTrail.record", "audit log: entry"),
    ("pypid.web.server.audit_trail", "AuditTrail.recorded", "audit log: entry"),
    ("pypid.storage.folder.journal_files", "_DayFiles._append_sync", "audit log: write, fsync"),
    ("pypid.state.writer", "SnapshotWriter.save_if_changed", "snapshot"),
    ("pypid.storage.base.snapshot", "encode", "snapshot"),
    ("pypid.storage.base.snapshot", "write", "snapshot"),
    ("pypid.web.server.respond", "send_text", "answer"),
    ("twisted.logger._observer", "LogPublisher.__call__", "log lines"),
]

GC = "cyclic garbage collector"

_local = threading.local()
_lock = threading.Lock()
#: phase -> [calls, CPU seconds]
_stats = {}


def _count(phase, cpu, calls):
    with _lock:
        entry = _stats.setdefault(phase, [0, 0.0])
        entry[0] += calls
        entry[1] += cpu


def _frames():
    frames = getattr(_local, "frames", None)
    if frames is None:
        frames = _local.frames = []
    return frames


def _enter(phase):
    frames = _frames()
    now = time.thread_time()
    if frames:
        frames[-1][1] += now - frames[-1][2]
    frames.append([phase, 0.0, now])


def _leave(calls):
    frames = _frames()
    now = time.thread_time()
    phase, spent, since = frames.pop()
    _count(phase, spent + now - since, calls)
    if frames:
        frames[-1][2] = now


def _on_gc(stage, info):
    """Count the collector's passes apart from the phase they interrupt."""
    if stage == "start":
        _local.gc_since = time.thread_time()
        return
    since = getattr(_local, "gc_since", None)
    if since is None:
        return
    spent = time.thread_time() - since
    _count(GC, spent, 1)
    frames = _frames()
    if frames:
        frames[-1][2] += spent


def _timed(phase, function):
    @functools.wraps(function)
    def timed(*args, **kwargs):
        _enter(phase)
        try:
            return function(*args, **kwargs)
        finally:
            _leave(1)
    return timed


class _Steps:
    """A coroutine whose every step is timed."""

    def __init__(self, phase, coroutine):
        self.phase, self.coroutine = phase, coroutine

    def __await__(self):
        value, error, calls = None, None, 1
        while True:
            _enter(self.phase)
            try:
                if error is not None:
                    step = self.coroutine.throw(error)
                else:
                    step = self.coroutine.send(value)
            except StopIteration as stop:
                _leave(calls)
                return stop.value
            except BaseException:
                _leave(calls)
                raise
            _leave(calls)
            calls = 0
            try:
                value, error = (yield step), None
            except BaseException as e:
                value, error = None, e


def _timed_async(phase, function):
    @functools.wraps(function)
    async def timed(*args, **kwargs):
        return await _Steps(phase, function(*args, **kwargs))
    return timed


def install():
    """Time every target (imported by their modules under other names too); return the missing."""
    missing = []
    for module_name, name, phase in TARGETS:
        try:
            owner = module = importlib.import_module(module_name)
            *path, last = name.split(".")
            for part in path:
                owner = getattr(owner, part)
            original = getattr(owner, last)
        except (ImportError, AttributeError):
            missing.append(f"{module_name}.{name}")
            continue
        coroutine = getattr(original, "__code__", None) is not None and \
            original.__code__.co_flags & 0x80
        timed = (_timed_async if coroutine else _timed)(phase, original)
        setattr(owner, last, timed)
        if owner is module:
            for other in list(sys.modules.values()):
                if getattr(other, "__name__", "").startswith(("pypid", "twisted", "klein")):
                    for key, value in list(vars(other).items()):
                        if value is original:
                            setattr(other, key, timed)
    gc.callbacks.append(_on_gc)
    return missing


def serve(argv):
    """Run twistd with the phases timed: SIGUSR1 resets them, SIGUSR2 writes them to $PHASES."""
    import pypid.tap  # noqa: F401  (every module of the daemon loaded)
    missing = install()
    base = [0.0]

    def reset(*_):
        with _lock:
            _stats.clear()
        times = os.times()
        base[0] = times.user + times.system

    def dump(*_):
        times = os.times()
        with _lock:
            out = {"phases": {k: v[:] for k, v in _stats.items()}, "missing": missing,
                   "process_cpu": times.user + times.system - base[0]}
        with open(os.environ["PHASES"], "w") as f:
            json.dump(out, f)
    signal.signal(signal.SIGUSR1, reset)
    signal.signal(signal.SIGUSR2, dump)
    from twisted.scripts.twistd import run
    sys.argv = ["twistd", *argv]
    run()


def main():
    from tests.bench.bench_upload import cpu_ticks, free_port, tree, upload_all, wait_idle, wheels

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", choices=("prose", "markdown", "rst"), default="prose")
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--corpus", help="a package folder to serve (hard-linked copy)")
    parser.add_argument("--auth", default="admin:admin")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    settle()
    # (its one folder is removed at the end: the next benchmark waits that out)
    atexit.register(note_removal)
    with tempfile.TemporaryDirectory(prefix="pypid-bench-phases-") as folder:
        packages = os.path.join(folder, "packages")
        if args.corpus:
            subprocess.check_call(["cp", "-al", args.corpus, packages])
        else:
            os.makedirs(packages)
        port = free_port()
        figures = os.path.join(folder, "phases.json")
        command = [sys.executable, os.path.abspath(__file__), "--serve", "-n", "--pidfile=",
                   "pypid", "--config", os.path.join(here, "etc", "pypid.ini"),
                   "--listen", f"tcp:{port}:interface=127.0.0.1",
                   "--set", f"storage.path={packages}",
                   "--set", f"pypid.snapshot={os.path.join(folder, 'index.json')}"]
        with open(os.path.join(folder, "server.log"), "wb") as log:
            process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "PHASES": figures})
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/simple/", timeout=30):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("the server did not start")
                    time.sleep(0.05)
            wait_idle(process.pid)
            items = wheels(args.uploads, f"ph{os.getpid()}", args.readme)
            process.send_signal(signal.SIGUSR1)
            time.sleep(0.2)
            children_before = sum(cpu_ticks(p) for p in tree(process.pid)[1:])
            seconds, failures = upload_all(port, items, args.concurrency, args.auth)
            wait_idle(process.pid)
            process.send_signal(signal.SIGUSR2)
            time.sleep(0.5)
            children = sum(cpu_ticks(p) for p in tree(process.pid)[1:]) - children_before
            with open(figures) as f:
                out = json.load(f)
        finally:
            process.terminate()
            process.wait(30)
            with open(os.path.join(folder, "server.log")) as f:
                loading = [line.rstrip() for line in f if "Index loaded" in line
                           or "Described" in line or "Traceback" in line]
    n = args.uploads - len(failures)
    phases = {phase: cpu * 1000 / n for phase, (_, cpu) in out["phases"].items()}
    phases["(no phase: reactor, thread pools, between the phases)"] = (
        out["process_cpu"] * 1000 / n - sum(phases.values()))
    phases["the sandbox's children (start, imports, renders)"] = (
        children * 1000 / os.sysconf("SC_CLK_TCK") / n)
    total = sum(phases.values())
    print("\n".join(loading))
    print(f"{n} uploads ({args.readme} descriptions), {n / seconds:.1f} files/s, "
          f"{len(failures)} failed; not found: {out['missing'] or 'none'}\n")
    print(f"{'phase':64s} {'CPU ms/file':>11s} {'share':>6s}")
    for phase, ms in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"{phase:64s} {ms:11.3f} {100 * ms / total:5.1f}%")
    print(f"{'total':64s} {total:11.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"readme": args.readme, "uploads": n, "seconds": seconds,
                       "phases": phases}, f, indent=1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2:])
    else:
        main()
