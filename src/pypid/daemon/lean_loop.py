"""
The lean supervisor's event loop (L{Loop}: descriptors to read, calls to
come and signals, over C{selectors}) and the processes it starts
(L{Processes}: C{posix_spawn} with each descriptor placed, their output
read, their end heard once reaped): the standard library alone; the
whole of the lean process adds only C{attrs} and the ring (L{pypid.daemon.lean}).
"""

from __future__ import annotations

import heapq
import itertools
import os
import selectors
import signal
import time
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import Any

from pypid.daemon.workers import DEFAULTED, HELD, READY_FD, Command, lifted


class _Timer:
    """A call to come on the L{Loop}: active until it ran or was cancelled."""

    def __init__(self, loop: Loop, when: float, call: Callable[[], object]) -> None:
        self._loop = loop
        self.when = when
        self.call: Callable[[], object] | None = call

    def active(self) -> bool:
        """Whether it is still to come."""
        return self.call is not None

    def cancel(self) -> None:
        """It will not come."""
        self.call = None

    def reset(self, seconds: float) -> None:
        """It comes C{seconds} from now instead (its earlier place in the heap is passed over)."""
        if self.call is not None:
            self.when = self._loop.seconds() + seconds
            self._loop.add(self)


class Loop:
    """The supervisor's event loop: descriptors to read, calls to come and signals."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._heap: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()
        self._signals: list[int] = []
        self._handlers: dict[int, Callable[[], None]] = {}
        self.running = True
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, self._woken)

    def seconds(self) -> float:
        """Now, on a clock that never steps back."""
        return time.monotonic()

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any) -> _Timer:
        """Call C{f(*args)} C{delay} seconds from now."""
        return self.add(_Timer(self, self.seconds() + delay, lambda: f(*args)))

    def add(self, timer: _Timer) -> _Timer:
        """Keep C{timer} until it is due."""
        heapq.heappush(self._heap, (timer.when, next(self._order), timer))
        return timer

    def when_readable(self, fd: int, read: Callable[[], None]) -> None:
        """Call C{read()} whenever C{fd} is readable."""
        self._selector.register(fd, selectors.EVENT_READ, read)

    def forget(self, fd: int) -> None:
        """Read C{fd} no more."""
        self._selector.unregister(fd)

    def on_signal(self, signum: int, handler: Callable[[], None]) -> None:
        """Call C{handler()} from the loop after C{signum}, once however often it came."""
        self._handlers[signum] = handler
        signal.signal(signum, lambda number, frame: self._signals.append(number))

    def _woken(self) -> None:
        with suppress(BlockingIOError):
            while os.read(self._wake_read, 512):
                pass

    def run(self) -> None:
        """Run until L{stop}."""
        while self.running:
            self._signalled()
            now = self.seconds()
            while self._heap and (self._heap[0][0] <= now or _stale(self._heap[0])):
                when, _, timer = heapq.heappop(self._heap)
                if _stale((when, 0, timer)):
                    continue
                call, timer.call = timer.call, None
                assert call is not None
                call()
                now = self.seconds()
            if not self.running:
                break
            timeout = max(0.0, self._heap[0][0] - now) if self._heap else None
            for key, _ in self._selector.select(timeout):
                key.data()

    def _signalled(self) -> None:
        signals, self._signals[:] = list(dict.fromkeys(self._signals)), []
        for signum in signals:
            handler = self._handlers.get(signum)
            if handler is not None:
                handler()

    def stop(self) -> None:
        """End L{run} after the current step."""
        self.running = False

    def close(self) -> None:
        """Let go of the selector and of the signals (the tests' loops end)."""
        signal.set_wakeup_fd(-1)
        for signum in self._handlers:
            signal.signal(signum, signal.SIG_DFL)
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)


def _stale(entry: tuple[float, int, _Timer]) -> bool:
    """Whether a heap's entry no longer stands for its timer's call (cancelled, or reset)."""
    when, _, timer = entry
    return timer.call is None or timer.when != when


class Spawned:
    """A process started on the L{Loop}: its pipes read, its end heard once it was reaped."""

    def __init__(self, loop: Loop, pid: int, pipes: dict[int, int],
                 output: Callable[[int, bytes], None], ended: Callable[[str], None],
                 held: int = -1) -> None:
        self._loop = loop
        self._held = held
        self.pid = pid
        self._pipes = pipes
        self._output = output
        self._ended = ended
        self.done = False
        for child_fd, fd in pipes.items():
            loop.when_readable(fd, partial(self._read, child_fd))

    def signal(self, signum: int) -> None:
        """Send it C{signum} (nothing once it was reaped)."""
        if not self.done:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def _read(self, child_fd: int, last: bool = False) -> None:
        """Read what C{child_fd}'s pipe holds; empty (or C{last} and nothing now): closed."""
        fd = self._pipes[child_fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            if not last:
                return
            data = b""
        except OSError:
            data = b""
        if data:
            self._output(child_fd, data)
        else:
            self._close(child_fd)

    def _close(self, child_fd: int) -> None:
        fd = self._pipes.pop(child_fd)
        self._loop.forget(fd)
        os.close(fd)

    def reaped(self, status: int) -> None:
        """It ended with C{status} (C{waitpid}'s): what it wrote last is read, then its end told."""
        self.done = True
        if self._held >= 0:
            os.close(self._held)
        for child_fd in list(self._pipes):
            # (what is in the pipe now; a grandchild holding it open holds nothing up)
            while child_fd in self._pipes:
                self._read(child_fd, last=True)
        self._ended(how_it_ended(status))


def how_it_ended(status: int) -> str:
    """C{waitpid}'s status, as the log says it."""
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return "exited"
    if code > 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = str(-code)
    return f"killed by {name}"


class Processes:
    """Starts processes with their descriptors placed, and reaps them (C{SIGCHLD})."""

    def __init__(self, loop: Loop) -> None:
        self._loop = loop
        self._children: dict[int, Spawned] = {}
        loop.on_signal(signal.SIGCHLD, self.reap)

    def spawn(self, command: Command, output: Callable[[int, bytes], None],
              ended: Callable[[str], None], *, read: tuple[int, ...] = (1, 2, READY_FD),
              stdin: int | None = None) -> Spawned:
        """
        Start C{command}: C{read}'s descriptors are pipes read into
        C{output}; standard input is C{stdin} or a pipe whose end this
        process holds (a worker reads its end there when this process
        ends, even by C{kill -9}), the C{stdin} given closed here once
        given; the inherited descriptors are placed where the command says.
        """
        placed: dict[int, int] = {}
        ours: list[int] = []
        pipes: dict[int, int] = {}
        keep = -1
        try:
            for child_fd in read:
                r, w = os.pipe2(os.O_CLOEXEC)
                os.set_blocking(r, False)
                pipes[child_fd] = r
                placed[child_fd] = w
                ours.append(w)
            if stdin is None:
                r, w = os.pipe2(os.O_CLOEXEC)
                placed[0] = r
                ours.append(r)
                keep = w
            else:
                placed[0] = stdin
                ours.append(stdin)
            placed.update(command.inherited)
            moved = lifted(placed)
            ours.extend(moved.values())
            actions = [(os.POSIX_SPAWN_DUP2, source, target) for target, source in moved.items()]
            pid = os.posix_spawn(command.executable, list(command.args), command.env,
                                 file_actions=actions, setsigmask=HELD,
                                 setsigdef=DEFAULTED)
        except BaseException:
            for fd in [*pipes.values(), *ours, *([keep] if keep >= 0 else [])]:
                os.close(fd)
            raise
        for fd in ours:
            os.close(fd)
        # (the write end of the worker's standard input: held, never written)
        return self.adopt(pid, pipes, output, ended, keep)

    def adopt(self, pid: int, pipes: dict[int, int], output: Callable[[int, bytes], None],
              ended: Callable[[str], None], held: int = -1) -> Spawned:
        """
        Take C{pid}, a child of this process started otherwise, as one
        L{spawn} started: C{pipes} (its descriptor: the read end here) read
        into C{output}, C{held} closed once it was reaped.
        """
        child = Spawned(self._loop, pid, pipes, output, ended, held)
        self._children[pid] = child
        return child

    def reap(self) -> None:
        """Every child that ended: reaped, and its end told."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self._children.pop(pid, None)
            if child is not None:
                child.reaped(status)
