"""
Descriptions rendered in child processes, with a time budget.

A README is rendered when its file arrives (an upload, a file the upstream
cache keeps, an import, a folder served in place). The renderers are pure
Python that holds the interpreter lock, and some inputs take them quadratic
time: 126 kB of unclosed C{<pre><code>} lines took readme_renderer's code
highlighting 6 s, during which the daemon answered nothing. So a few child
processes (L{pypid.sandbox.readme_child}) render, at a lower priority; one
not done within L{BUDGET} is killed and the description shown as plain
text. A child that dies, or answers nonsense, costs the same and no more.

L{ReadmeSandbox.render} (a L{pypid.core.dists.readme.Renderer}) blocks the
worker thread inspection runs in, never the reactor; the wait for a free
child counts in the budget, so a thread is held at most twice the budget.

A child costs memory (peak RSS 20 MiB with Markdown's renderer, 32 with
reStructuredText's, 34 with both; two took the daemon's tree from 96 to 171
MiB in the shared bench) and CPU to start (0.12 s, 0.23 s), so they are few:

  - what needs no renderer never reaches a child
    (L{pypid.core.dists.readme.render_without_renderer});
  - one child renders; a second starts only when a render has waited
    L{SPARE_AFTER} for a busy one (a hostile README), up to L{CHILDREN};
  - a child imports a markup's renderer when first given one
    (L{pypid.core.dists.readme.warm_up}): Markdown alone loads no docutils;
  - children start on first use and stop when idle for L{IDLE_TIMEOUT},
    with the daemon, or when their standard input closes (a killed daemon).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import IO, cast

from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

import pypid
from pypid.core.dists.readme import (
    RenderedDescription,
    parse_content_type,
    plain_description,
    render_without_renderer,
)
from pypid.sandbox.readme_child import decode, encode, frame

log = Logger()

#: Seconds a render may take, the wait for a free child included; the
#: slowest of 880 real READMEs took 0.7 s on a loaded machine.
BUDGET = 5.0

#: Seconds a new child may take to start, and to import a renderer.
START_BUDGET = 60.0

#: Children rendering at once, at most (more wait, within their budget).
CHILDREN = 2

#: Seconds a render waits for the busy children before another is started
#: (up to L{CHILDREN}): a burst of uploads is rendered by one child, a few
#: milliseconds each (at 0.25 s, a second child started in 2 of 5 runs of
#: 200 uploads of a Markdown README over 8 connections on a loaded
#: machine: the child's lower priority, and its own start, make renders
#: wait); a README that holds it for its whole budget holds the others
#: for this long.
SPARE_AFTER = 1.0

#: Seconds a child may stay idle before it is stopped (its memory given
#: back; the next render starts one: 0.12 to 0.23 s of CPU).
IDLE_TIMEOUT = 60.0

#: The largest answer read from a child (bytes): the HTML is bounded to a
#: mebibyte of characters, at most four bytes each, and JSON escapes.
MAX_ANSWER = 16 * 1024 * 1024


class ChildFailed(Exception):
    """A child did not answer in time, died, or answered nonsense."""


class _Child:
    """One child process, and its two pipes."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self._requests = cast(IO[bytes], process.stdin)
        self._answers = cast(IO[bytes], process.stdout).fileno()
        #: the markups whose renderer it has imported
        self.warmed: set[str] = set()
        #: when it was last given back (the sandbox's clock)
        self.idle_since = 0.0

    @classmethod
    def start(cls, command: Sequence[str], env: dict[str, str], deadline: float) -> _Child:
        """@raise ChildFailed: when it cannot start, or is not ready by C{deadline}."""
        try:
            process = subprocess.Popen(
                list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, env=env, close_fds=True)
        except OSError as e:
            raise ChildFailed(f"cannot start the renderer: {e}")
        child = cls(process)
        try:
            ready = child.read(deadline)
        except ChildFailed:
            child.kill()
            raise
        if ready != {"ready": True}:
            child.kill()
            raise ChildFailed("the renderer did not start")
        return child

    def ask(self, request: dict[str, str | None], deadline: float) -> object:
        """Send one request and read its answer; L{ChildFailed} when not there by C{deadline}."""
        try:
            self._requests.write(frame(encode(request)))
            self._requests.flush()
        except OSError:
            raise ChildFailed("the renderer stopped")
        return self.read(deadline)

    def read(self, deadline: float) -> object:
        """One frame from the child, decoded, by C{deadline}."""
        head = self._read_exactly(4, deadline)
        length = int.from_bytes(head, "big")
        if length > MAX_ANSWER:
            raise ChildFailed("the renderer answered too much")
        try:
            return decode(self._read_exactly(length, deadline))
        except ValueError:
            raise ChildFailed("the renderer answered nonsense")

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        wanted = size
        poll = select.poll()
        poll.register(self._answers, select.POLLIN)
        while wanted:
            left = deadline - time.monotonic()
            try:
                if left <= 0 or not poll.poll(left * 1000):
                    raise ChildFailed("timeout")
                chunk = os.read(self._answers, min(wanted, 1024 * 1024))
            except (OSError, ValueError):
                # (closed under it: the sandbox is closing)
                raise ChildFailed("the renderer stopped")
            if not chunk:
                raise ChildFailed("the renderer stopped")
            chunks.append(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        """Stop it at once, and reap it."""
        with suppress(OSError):
            self.process.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with suppress(OSError):
                    stream.close()
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


def child_command() -> tuple[list[str], dict[str, str]]:
    """A child's command and environment: this interpreter, this C{pypid} found first."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(pypid.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return [sys.executable, "-m", "pypid.sandbox.readme_child"], env


class ReadmeSandbox(Service):
    """
    The children, as a part of the daemon (or of a command: L{close} when
    done); L{render} is the L{pypid.core.dists.readme.Renderer} to give where
    files are inspected. C{budget}, C{children}, C{spare_after} and
    C{idle_timeout} are L{BUDGET}, L{CHILDREN}, L{SPARE_AFTER} and
    L{IDLE_TIMEOUT} unless given.
    """

    def __init__(self, budget: float = BUDGET, children: int = CHILDREN,
                 start_budget: float = START_BUDGET,
                 command: Callable[[], tuple[list[str], dict[str, str]]] = child_command,
                 *, spare_after: float = SPARE_AFTER, idle_timeout: float = IDLE_TIMEOUT,
                 clock: IReactorTime | None = None,
                 from_thread: Callable[[Callable[[], None]], None] | None = None,
                 ) -> None:
        """
        @param clock: the reactor that stops idle children (L{None}: they
            live until L{close}).
        @param from_thread: C{from_thread(f)} calls C{f} in C{clock}'s
            thread (the reactor's C{callFromThread}): renders run in
            worker threads, timers in the reactor's.
        """
        self.budget = budget
        self.children = children
        self.spare_after = spare_after
        self.idle_timeout = idle_timeout
        self._start_budget = start_budget
        self._command = command
        self._clock = clock
        self._from_thread = from_thread
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._starting = 0
        self._closed = False
        self._changed = threading.Condition()
        #: the timer that stops idle children (the clock's thread only)
        self._reaping: IDelayedCall | None = None

    def render(self, text: str | None, content_type: str | None) -> RenderedDescription:
        """
        Render a description in a child within the budget, or show it as
        plain text (and log why); what needs no renderer, at once.
        """
        known = render_without_renderer(text, content_type)
        if known is not None:
            return known
        assert text is not None  # (no text needs no renderer)
        kind, _ = parse_content_type(content_type)
        deadline = time.monotonic() + self.budget
        try:
            child, deadline = self._take(deadline)
        except ChildFailed as e:
            return self._fallback(text, str(e))
        if kind not in child.warmed:
            # (the import is not the render's: its own budget, as a start's)
            began = time.monotonic()
            try:
                warmed = child.ask({"warm": kind}, began + self._start_budget)
            except ChildFailed as e:
                warmed = e
            if warmed != {"ready": True}:
                self._drop(child)
                return self._fallback(text, f"the renderer of {kind} did not start")
            child.warmed.add(kind)
            deadline += time.monotonic() - began
        try:
            answer = child.ask({"text": text, "type": content_type}, deadline)
        except ChildFailed as e:
            self._drop(child)
            reason = str(e)
            if reason == "timeout":
                reason = f"the description took longer than {self.budget:g} s to render"
            return self._fallback(text, reason)
        self._give_back(child)
        try:
            assert isinstance(answer, dict)
            if "error" in answer:
                return self._fallback(text, str(answer["error"]))
            rendered = RenderedDescription(
                html=str(answer["html"]), renderer=str(answer["renderer"]),
                fell_back=bool(answer["fell_back"]),
                reason=None if answer["reason"] is None else str(answer["reason"]))
        except (AssertionError, KeyError):
            return self._fallback(text, "the renderer answered nonsense")
        if rendered.reason is not None:
            log.warn("Showing a description as plain text: {reason}", reason=rendered.reason)
        return rendered

    def _fallback(self, text: str, reason: str) -> RenderedDescription:
        log.warn("Showing a description as plain text: {reason}", reason=reason)
        return plain_description(text, reason)

    def _take(self, deadline: float) -> tuple[_Child, float]:
        """
        An idle child, or a new one when none runs, or when the others
        stayed busy for L{spare_after} and fewer than L{children} run; and
        the render's deadline (the time a new child took to start is not
        the render's).
        """
        spare_at = time.monotonic() + self.spare_after
        with self._changed:
            while True:
                if self._closed:
                    raise ChildFailed("the server is stopping")
                if self._idle:
                    child = self._idle.pop()
                    if child.process.poll() is None:
                        self._busy.add(child)
                        return child, deadline
                    child.kill()
                    continue
                now = time.monotonic()
                running = len(self._busy) + self._starting
                if running < self.children and (running == 0 or now >= spare_at):
                    self._starting += 1
                    break
                left = deadline - now
                if left <= 0:
                    raise ChildFailed("every renderer was busy for the whole budget")
                if running < self.children:
                    left = min(left, spare_at - now)
                self._changed.wait(left)
        left = max(0.0, deadline - time.monotonic())
        try:
            command, env = self._command()
            child = _Child.start(command, env, time.monotonic() + self._start_budget)
        except ChildFailed as e:
            log.error("Cannot start a renderer of descriptions: {error}", error=str(e))
            with self._changed:
                self._starting -= 1
                self._changed.notify()
            raise
        with self._changed:
            self._starting -= 1
            if self._closed:
                child.kill()
                raise ChildFailed("the server is stopping")
            self._busy.add(child)
        return child, time.monotonic() + left

    def _give_back(self, child: _Child) -> None:
        with self._changed:
            self._busy.discard(child)
            if self._closed:
                child.kill()
                return
            if self._clock is not None:
                child.idle_since = self._clock.seconds()
            self._idle.append(child)
            self._changed.notify()
        if self._clock is not None and self._from_thread is not None:
            self._from_thread(self._reap_later)

    def _reap_later(self) -> None:
        """Look at the idle children when the first may have idled too long (clock's thread)."""
        if self._reaping is not None or self._clock is None:
            return
        with self._changed:
            if not self._idle:
                return
            first = min(child.idle_since for child in self._idle)
        self._reaping = self._clock.callLater(
            max(0.0, first + self.idle_timeout - self._clock.seconds()), self._reap)

    def _reap(self) -> None:
        """Stop the children idle for L{idle_timeout} (the clock's thread)."""
        self._reaping = None
        assert self._clock is not None
        stale_before = self._clock.seconds() - self.idle_timeout
        with self._changed:
            stale = [child for child in self._idle if child.idle_since <= stale_before]
            self._idle = [child for child in self._idle if child.idle_since > stale_before]
        for child in stale:
            child.kill()
        if stale:
            log.debug("Stopped {count} idle renderer(s) of descriptions", count=len(stale))
        self._reap_later()

    def _drop(self, child: _Child) -> None:
        child.kill()
        with self._changed:
            self._busy.discard(child)
            self._changed.notify()

    def close(self) -> None:
        """Stop every child; a render under way falls back to plain text."""
        with self._changed:
            self._closed = True
            children = self._idle + list(self._busy)
            self._idle = []
            self._changed.notify_all()
        for child in children:
            child.kill()

    def startService(self) -> None:
        """Allow renders again (a stopped part may be started again, as in tests)."""
        Service.startService(self)
        with self._changed:
            self._closed = False

    def stopService(self) -> None:
        """Stop the children with the daemon."""
        Service.stopService(self)
        if self._reaping is not None:
            self._reaping.cancel()
            self._reaping = None
        self.close()
