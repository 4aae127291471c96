"""
Backfill: describe, in the background, the files a start-up scan found without
a record (files copied in by hand), so the server answers at once and fills in
hashes and metadata a project at a time, the one a client asks for first.

A project's pages wait until its files are described, up to L{WAIT_LIMIT}, then
answer 503 with C{Retry-After}: never without the hashes, which pip checks
(C{--require-hashes} refuses a file without one) and uv keeps in its lock file;
both retry a 503.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import index_in_log
from pypid.core.indexes.pending import DELETED, DescribeQueue, PendingFile, project_of
from pypid.core.parts import IMetricsSource
from pypid.core.records.metrics import Family, counter, gauge
from pypid.core.util.units import counted
from pypid.storage.base.capabilities import IBackfillStorage

log = Logger()

#: how long a page waits for its project's files to be described (seconds)
WAIT_LIMIT = 10.0
#: what the queue calls the files whose project their name does not tell
#: (described last; listed once described, if they are distributions)
_UNNAMED = ""


@implementer(IMetricsSource)
@attrs.define
class Backfill:
    """Describes pending files through the storage's C{describe_pending}, and indexes them."""

    _index: Index
    _storage: IBackfillStorage
    _clock: IReactorTime
    wait_limit: float = WAIT_LIMIT
    #: how many files a call to the storage describes at most: a project's
    #: files, or this many at a time of a large one
    batch: int = 50
    #: how many projects are described at once: a file's description waits
    #: on the disk (reading it, writing its record and metadata) as well as
    #: computing, so two at a time keep the disk and the processor busy
    #: together (the bench corpus's 100,001 files: 56 to 126 s over five
    #: runs with two, against 111 s in the one run with one: this machine's
    #: disk varies more than that; C{docs/performance.rst})
    workers: int = 2
    _queue: DescribeQueue = attrs.field(factory=DescribeQueue)
    #: the projects being described now
    _current: set[str] = attrs.field(factory=set)
    _done: Callable[[], object] | None = None
    _in_hand: int = 0
    _waiters: dict[str, list[Deferred[bool]]] = attrs.field(factory=dict)
    _running: Deferred[Any] | None = None
    #: when the describing began (set as it begins)
    _started: float = 0.0
    #: files described, and files that were not distributions (for /metrics)
    described: int = 0
    refused: int = 0
    #: the index's name in the log lines; L{None} on a server of one index
    name: str | None = attrs.field(default=None, kw_only=True)

    @property
    def remaining(self) -> int:
        """Files still to describe."""
        return self._queue.files + self._in_hand

    def note(self, pending: Sequence[PendingFile]) -> None:
        """Note the projects of C{pending} in the index (their pages wait from now); queue them."""
        groups: dict[str, list[PendingFile]] = {}
        spelt: dict[str, str] = {}
        # (by name: a project's files together, described in that order)
        for item in sorted(pending, key=lambda item: item.filename):
            found = project_of(item.filename)
            groups.setdefault(_UNNAMED if found is None else found[0], []).append(item)
            if found is not None:
                spelt.setdefault(found[0], found[1])
        unnamed = groups.pop(_UNNAMED, None)
        for name, files in groups.items():
            self._index.add_pending(name, len(files), spelt.get(name))
            self._queue.add(name, files)
        if unnamed:
            self._queue.add(_UNNAMED, unnamed)
        if not self._queue:
            return
        # (files whose name tells no project are counted apart: most are no distributions)
        what = counted(len(pending), "file")
        if unnamed:
            what += (f" ({len(pending) - len(unnamed)} of {counted(len(groups), 'project')}, "
                     f"{len(unnamed)} not named as distributions)")
        else:
            what += f" of {counted(len(groups), 'project')}"
        recorded = sum(1 for item in pending if item.recorded)
        if recorded:
            log.info("Reading {what}{of}, {recorded} of them from the records beside them; "
                     "their pages answer once they are", what=what,
                     of=index_in_log(self.name), recorded=recorded)
        else:
            log.info("Describing {what}{of} found without a record; their pages answer "
                     "once they are", what=what, of=index_in_log(self.name))

    def begin(self, done: Callable[[], object] | None = None) -> None:
        """
        Describe every file L{note}d (once the server listens, so its first
        answers are not slowed by threads reading files); then call C{done()}.
        """
        self._done = done
        if not self._queue:
            if done is not None:
                done()
        elif self._running is None:
            self._started = self._clock.seconds()
            self._running = DeferredList([ensureDeferred(self._work())
                                          for _ in range(self.workers)])
            self._running.addCallback(self._finished)

    def is_pending(self, name: str) -> bool:
        """Whether files of the project C{name} are still to be described."""
        return name in self._current or name in self._queue

    def when_described(self, name: str) -> Deferred[bool]:
        """Fires with C{True} once the project's files are described (next), C{False} on timeout."""
        if not self.is_pending(name):
            return succeed(True)
        self._queue.first(name)
        d: Deferred[bool] = Deferred()
        self._waiters.setdefault(name, []).append(d)

        def too_long() -> None:
            waiters = self._waiters.get(name, [])
            if d in waiters:
                waiters.remove(d)
                d.callback(False)
        timer = self._clock.callLater(self.wait_limit, too_long)

        def cancel_timer(result: bool) -> bool:
            if timer.active():
                timer.cancel()
            return result
        return d.addBoth(cancel_timer)

    async def _work(self) -> None:
        """One worker: takes the next project from the queue until it is empty."""
        while True:
            item = self._queue.take()
            if item is None:
                break
            name, files = item
            self._current.add(name)
            self._in_hand += len(files)
            try:
                for start in range(0, len(files), self.batch):
                    some = files[start:start + self.batch]
                    await self._describe(name, some)
                    self._in_hand -= len(some)
            finally:
                self._current.discard(name)
            for d in self._waiters.pop(name, ()):
                d.callback(True)

    def _finished(self, _: object) -> None:
        self._running = None
        self._in_hand = 0
        log.info("Described {files}{of} in {seconds:.1f} s: {described}, {refused} not served",
                 files=counted(self.described + self.refused, "file"),
                 of=index_in_log(self.name),
                 described=counted(self.described, "distribution"), refused=self.refused,
                 seconds=self._clock.seconds() - self._started)
        if self._done is not None:
            self._done()

    async def _describe(self, name: str, files: Sequence[PendingFile]) -> None:
        try:
            results = await self._storage.describe_pending(files)
        except Exception:
            log.failure("Cannot describe {count} files of {project}", count=len(files),
                        project=name)
            results = [(item, "cannot be read now") for item in files]
        index = self._index
        for item, result in results:
            if isinstance(result, FileRecord):
                if index.get_file(item.filename) is None and not index.is_deleted(item.filename):
                    index.add(result)
                self.described += 1
            else:
                self.refused += 1
                log.warn("Not serving {path}: {reason}", path=item.key, reason=result)
                if result == DELETED and index.get_file(item.filename) is None \
                        and not index.is_deleted(item.filename):
                    # (its name stays taken, as any deleted file's)
                    index.remove(item.filename)
        if name != _UNNAMED:
            index.described(name, len(files))

    def metric_families(self) -> Iterator[Family]:
        """The files still to describe, described, and refused."""
        yield gauge("pypid_files_to_describe", "Files found without a record, still to be read.",
                    self.remaining)
        yield counter("pypid_files_described", "Files found without a record and read since "
                      "the start.", self.described)
        yield counter("pypid_files_not_distributions", "Files found without a record that "
                      "were not distributions (not served).", self.refused)
