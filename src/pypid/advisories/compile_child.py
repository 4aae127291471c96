"""
The export read in a child process: L{ChildCompiler} runs
C{python -m pypid.advisories.compile_child}, which writes the compact cache
(L{pypid.advisories.compact_cache.compile_sources}) and says what it did in
one line of JSON.

Why a child: reading 20,000 records is seconds of pure Python (the JSON,
the ranges, the CVSS vectors), which in a thread of the daemon held the
interpreter lock against the requests, and left the daemon 75 MiB bigger
for good (what the reading made and dropped stays in the allocator's
arenas). In a child it is another core's work, its memory goes when it
exits, and the daemon reads back the compact form alone (0.6 to 0.9 s of
CPU; 33 MiB kept). The child runs at the daemon's priority, not lower:
until it is done the indexes that hide or deny fail closed, and on a
busy machine it already took 10 to 17 s (about 4 s of CPU). A hostile
archive that got past the bounds costs the child, not the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable

import pypid
from pypid.advisories.compact_cache import Compiled, CompileTask, compile_sources

#: Seconds a child may take: a full export takes seconds; a child stuck
#: past this is killed (and the reading fails, to be tried again later).
TIMEOUT = 900.0

#: The most bytes of a child's answer.
MAX_ANSWER = 1 << 20


class CompileFailed(Exception):
    """The child did not say what it did; the message says why, in one line."""


def child_command() -> tuple[list[str], dict[str, str]]:
    """The child's command and environment: this interpreter, this C{pypid} found first."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(pypid.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return [sys.executable, "-m", "pypid.advisories.compile_child"], env


class ChildCompiler:
    """Reads the sources into the cache in a child process; blocking: called in the pool."""

    def __init__(self, timeout: float = TIMEOUT,
                 command: Callable[[], tuple[list[str], dict[str, str]]] = child_command,
                 ) -> None:
        self._timeout = timeout
        self._command = command
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._stopped = False

    def compile(self, task: CompileTask) -> Compiled:
        """Run one child for C{task} and wait for its answer (else L{CompileFailed})."""
        argv, env = self._command()
        with self._lock:
            if self._stopped:
                raise CompileFailed("the server is stopping")
            try:
                child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=env, close_fds=True)
            except OSError as e:
                raise CompileFailed(f"cannot start the child that reads the advisories: {e}")
            self._running.add(child)
        try:
            out, err = child.communicate(json.dumps(task.to_json()).encode("utf-8"),
                                         timeout=self._timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise CompileFailed(f"the child that reads the advisories took more than "
                                f"{self._timeout:g} s")
        finally:
            with self._lock:
                self._running.discard(child)
        if child.returncode != 0:
            last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise CompileFailed(f"the child that reads the advisories ended with status "
                                f"{child.returncode}: {last[0][:300]}")
        try:
            if len(out) > MAX_ANSWER:
                raise ValueError("too long")
            return Compiled.from_json(json.loads(out))
        except (ValueError, RecursionError) as e:
            raise CompileFailed(f"the child that reads the advisories answered nonsense: {e}")

    def stop(self) -> None:
        """Kill a child still running (the server stops); start no other."""
        with self._lock:
            self._stopped = True
            running = list(self._running)
        for child in running:
            try:
                child.kill()
            except OSError:
                pass


def main() -> None:
    """The child: a task on standard input, its L{Compiled} on standard output."""
    task = CompileTask.from_json(json.loads(sys.stdin.buffer.read()))
    compiled = compile_sources(task)
    sys.stdout.write(json.dumps(compiled.to_json()))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
