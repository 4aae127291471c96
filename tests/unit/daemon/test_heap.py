"""Tests for L{pypid.daemon.heap}: one malloc arena a process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from pypid.daemon.heap import ARENAS, M_ARENA_MAX, limit_arenas

#: a child that allocates in four threads, then counts glibc's arenas
#: with C{malloc_info} (one C{<heap nr=...>} element an arena)
COUNT_ARENAS = """
import ctypes, os, sys, threading
from pypid.daemon.heap import limit_arenas
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
print(limit_arenas(os.environ))
held = []
started = threading.Barrier(4)
def allocate():
    started.wait()
    held.extend(libc.malloc(4096) for _ in range(64))
threads = [threading.Thread(target=allocate) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
out = libc.fopen(sys.argv[1].encode(), b"w")
libc.malloc_info(0, out)
libc.fclose(out)
"""


class LimitTests(SynchronousTestCase):
    """What L{limit_arenas} asks of the C library, and when it asks nothing."""

    def setUp(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, answer: int = 1) -> Callable[[], Callable[[int, int], int]]:
        """A fake C{mallopt} lookup whose call answers C{answer} and is noted."""
        def call(param: int, value: int) -> int:
            self.calls.append((param, value))
            return answer
        return lambda: call

    def test_sets_one_arena(self) -> None:
        """Without a word from the environment, one arena is asked for."""
        self.assertEqual(limit_arenas({}, self.mallopt()), ARENAS)
        self.assertEqual(self.calls, [(M_ARENA_MAX, 1)])

    def test_environment_wins(self) -> None:
        """C{MALLOC_ARENA_MAX} (even C{0}, glibc's default) is left as glibc read it."""
        for value in ("0", "4"):
            self.assertIsNone(limit_arenas({"MALLOC_ARENA_MAX": value}, self.mallopt()))
        tunables = "glibc.malloc.check=0:glibc.malloc.arena_max=2"
        self.assertIsNone(limit_arenas({"GLIBC_TUNABLES": tunables}, self.mallopt()))
        self.assertEqual(self.calls, [])
        self.assertEqual(
            limit_arenas({"GLIBC_TUNABLES": "glibc.malloc.check=0"}, self.mallopt()), ARENAS)

    def test_refused_or_absent(self) -> None:
        """A C library that refuses (musl's stub) or lacks C{mallopt} is left alone."""
        self.assertIsNone(limit_arenas({}, self.mallopt(answer=0)))
        self.assertIsNone(limit_arenas({}, lambda: None))


class RealArenaTests(SynchronousTestCase):
    """In a real process of this machine's glibc, threads then share one arena."""

    def arenas(self, environ: dict[str, str]) -> tuple[str, int]:
        """What a child's L{limit_arenas} said, and how many arenas it then had."""
        report = self.mktemp()
        said = subprocess.run(
            [sys.executable, "-c", COUNT_ARENAS, report], env=environ,
            capture_output=True, text=True, check=True, timeout=60).stdout.strip()
        with open(report) as f:
            return said, f.read().count("<heap nr=")

    def setUp(self) -> None:
        if platform.libc_ver()[0] != "glibc":
            raise self.skipTest("not glibc: pypid leaves malloc as it is")
        self.environ = {k: v for k, v in os.environ.items()
                        if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}

    def test_one_arena(self) -> None:
        """Four allocating threads and the main one share the one arena."""
        self.assertEqual(self.arenas(self.environ), ("1", 1))

    def test_operator_choice(self) -> None:
        """With C{MALLOC_ARENA_MAX=0}, glibc's own default gives threads their arenas."""
        said, count = self.arenas({**self.environ, "MALLOC_ARENA_MAX": "0"})
        self.assertEqual(said, "None")
        self.assertGreater(count, 1)
