"""
A named upstream's state (its cached pages and the records of its kept
files), saved to a file of its own and read back at start-up.

C{[upstream]}'s state is a line of the default index's snapshot. An
C{[upstream:NAME]} belongs to no one index, so its state is kept beside
the indexes' snapshots, in C{<snapshot>.d/.upstream-NAME.json} (no index
name starts with a dot, so it never meets an index's file).

Saved within L{SOON} seconds of the cache learning something (a crash
loses little), at each tick of the snapshot interval if it changed, and
once more as the server stops. The file names the upstream's URL: pages
cached from another URL are not served after the section's C{url} changed.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.core.util.notice import Notice
from pypid.jobs.periodic import Periodic
from pypid.jobs.run import Run
from pypid.storage.base.disk import write_atomically
from pypid.upstream.source import UpstreamSource

log = Logger()

#: The format of the file (a file of another format is not read).
FORMAT = 1

#: Seconds from the cache learning something to its state being saved.
SOON = 5.0


def state_path(snapshot: str, name: str) -> str:
    """Where C{[upstream:NAME]}'s state is kept, beside the snapshot C{snapshot}."""
    return f"{snapshot}.d/.upstream-{name}.json"


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("not a state file of this version")
    return data


def _write(path: str, url: str, saved_at: float, state: dict[str, Any]) -> None:
    # (in the I/O pool: the pages of a large cache take a while to encode)
    write_atomically(path, json.dumps(
        {"format": FORMAT, "url": url, "saved_at": saved_at, "state": state},
        separators=(",", ":")).encode("utf-8"))


class SavedState(Service):
    """Loads a named upstream's state as the server starts, and saves it while it runs."""

    def __init__(self, source: UpstreamSource, path: str, run: Run, clock: IReactorTime,
                 interval: float, learnt: Notice | None = None, *,
                 writes: bool = True) -> None:
        """
        @param learnt: told whenever the source's cache learnt something: saved L{soon}.
        @param writes: whether this process saves the state (of a machine's
            workers, the first alone: they share the cache), or only reads it.
        """
        self._writes = writes
        self._source = source
        self.path = path
        self._run = run
        self._clock = clock
        self._timer = Periodic(self.save_if_changed, interval, clock,
                               what=f"The save of upstream:{source.name}'s state")
        self._soon: IDelayedCall | None = None
        self._saving: Deferred[None] | None = None
        self.saves = 0
        if learnt is not None and writes:
            learnt.listen(self.soon)

    def startService(self) -> Deferred[None]:
        """Read the state back, then save it at each tick of the interval if it changed."""
        Service.startService(self)
        return ensureDeferred(self._load())

    async def _load(self) -> None:
        source = self._source
        try:
            data = await self._run(_read, self.path)
        except (OSError, ValueError) as e:
            log.warn("Cannot read the state of upstream:{name} from {path} ({error}): its "
                     "pages are fetched again", name=source.name, path=self.path, error=str(e))
            data = None
        if data is not None and data.get("url") != source.client.index_url:
            log.info("upstream:{name}: its url changed since its state was saved: its pages "
                     "are fetched again", name=source.name)
            data = None
        saved_at = data.get("saved_at") if data is not None else None
        await source.load(data.get("state") if data is not None else None,
                          float(saved_at) if isinstance(saved_at, (int, float)) else 0.0)
        if self.running and self._writes:
            self._timer.startService()

    def soon(self) -> None:
        """Save within L{SOON} seconds (the cache learnt something); calls fold into one."""
        if self._soon is not None or not self.running:
            return

        def due() -> None:
            self._soon = None
            self.save_if_changed()
        self._soon = self._clock.callLater(SOON, due)

    def save_if_changed(self) -> Deferred[None]:
        """Save if pages were fetched or files kept since the last save; never fails."""
        if self._saving is not None:
            return self._saving
        source = self._source
        if not source.state_changed():
            return succeed(None)
        url, now, state = source.client.index_url, self._clock.seconds(), source.state()

        def done(result: object) -> None:
            self._saving = None
            if isinstance(result, Failure):
                # (state() took the change as saved: the next tick tries again)
                source.state_unsaved()
                log.failure("Cannot save the state of upstream:{name} to {path}", result,
                            name=source.name, path=self.path)
            else:
                self.saves += 1
        saving = self._saving = self._run(_write, self.path, url, now, state)
        return saving.addBoth(done)

    def stopService(self) -> Deferred[None]:
        """Save once more (the requests in flight were finished before)."""
        Service.stopService(self)
        if self._timer.running:
            self._timer.stopService()
        if self._soon is not None and self._soon.active():
            self._soon.cancel()
        self._soon = None
        saving = self._saving or succeed(None)
        if not self._writes:
            return saving
        return saving.addCallback(lambda _: self.save_if_changed())
