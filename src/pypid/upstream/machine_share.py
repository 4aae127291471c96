"""
An upstream's cache shared by the workers of one machine (L{MachineShare}):
what one worker fetched, every other serves at its next request, and a
file is fetched once per machine.

Four things travel, each announced on the machine's ring
(L{pypid.machine.topics.Hub}) once it is durable, named by the cache
folder's key as the folder's own announcements are:

  - a page a worker fetched and kept (L{Topic.PAGE}), as the page cache
    holds it after its own rules, written first to
    C{.pypid/machine/pages/<digest>.json} in the cache's local folder; the
    others take it as their own, without counting its takedowns again (the
    fetching worker logged and audited them);
  - a file kept or evicted: the cache storage's own announcements
    (L{pypid.storage.folder.shared_folder});
  - a file pinned by pre-caching (L{Topic.PIN});
  - a file whose bytes proved wrong (L{Topic.FAILED}): every worker answers
    502 for it for a while, none asks again.

A worker about to fetch a file or a page takes its lock first
(C{.pypid/machine/fetching/<digest>}, a C{flock}), then looks at the ring:
what another worker kept meanwhile is served as kept, never fetched again.
The first worker alone evicts over the cap (it learns of every file kept);
the others learn of an eviction as of a delete.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from functools import partial

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.jobs.coalesced import Coalesced
from pypid.jobs.run import Run
from pypid.machine.topics import Hub, Topic
from pypid.storage.base.capabilities import Changed, ISharedStorage
from pypid.storage.base.disk import write_atomically
from pypid.storage.folder.shared_folder import folder_key
from pypid.upstream.cached_page import CachedPage, entry_from_json, entry_to_json
from pypid.upstream.fetch import UpstreamError

log = Logger()

#: The most of a failure's reason an announcement carries.
REASON_BYTES = 1000

#: Seconds between two tries of a file's lock another worker holds.
LOCK_RETRY = 0.05

#: Seconds before a snapshot's save from which a starting worker reads the
#: pages the others wrote: the snapshot's writer may have saved before it
#: took in a page written just before.
SINCE_SLACK = 300.0


@attrs.frozen
class News:
    """
    What the other workers did to the upstream's cache since the last look.

    @ivar pages: each page another worker kept (a "no such project" that
        took one away included), by project, with what it holds back of it.
    @ivar failures: when each file's fetch failed (the machine's clock),
        and why, by filename.
    @ivar rescan: whether the files cannot be known but by reading the
        whole folder again (a worker ended, or a whole ring went by).
    """

    pages: dict[str, tuple[CachedPage, object]] = attrs.field(factory=dict)
    files: list[Changed] = attrs.field(factory=list)
    pins: list[str] = attrs.field(factory=list)
    rescan: bool = False
    failures: dict[str, tuple[float, str]] = attrs.field(factory=dict)


@attrs.define
class _Told:
    """What the other workers announced of the cache and no look took in yet."""

    pages: dict[str, None] = attrs.field(factory=dict)
    pins: dict[str, None] = attrs.field(factory=dict)
    failures: dict[str, tuple[float, str]] = attrs.field(factory=dict)

    def then(self, later: _Told) -> _Told:
        """These, then C{later}'s."""
        return _Told({**self.pages, **later.pages}, {**self.pins, **later.pins},
                     {**self.failures, **later.failures})


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:32]


class MachineShare:
    """An upstream's cache shared with the machine's other workers (see the module)."""

    def __init__(self, hub: Hub, storage: ISharedStorage, folder: str, run: Run,
                 clock: IReactorTime) -> None:
        """
        @param storage: the cache's storage, whose own announcements tell its files.
        @param folder: the cache's local folder (on a bucket, the one its
            uploads are spooled in), where pages and locks are kept.
        """
        self._hub = hub
        self._folder = storage
        self._run = run
        self._clock = clock
        self._key = folder_key(os.path.abspath(folder))
        root = os.path.join(folder, ".pypid", "machine")
        self._pages = os.path.join(root, "pages")
        self._locks = os.path.join(root, "fetching")
        self._listeners: list[Callable[[News], object]] = []
        self._looks = Coalesced(self._looked)
        self._told = _Told()
        for topic in (Topic.PAGE, Topic.PIN, Topic.FAILED):
            hub.on(topic, partial(self._heard, topic))

    @property
    def first(self) -> bool:
        """Whether this is the machine's first worker (it evicts)."""
        return self._hub.runs_once

    def _heard(self, topic: Topic, fields: Sequence[bytes], worker: int) -> None:
        if fields[0] != self._key:
            return
        name = fields[1].decode("utf-8", "replace")
        if topic is Topic.PAGE:
            self._told.pages[name] = None
        elif topic is Topic.PIN:
            self._told.pins[name] = None
        else:
            try:
                self._told.failures[name] = (float(fields[2]), fields[3].decode("utf-8", "replace"))
            except ValueError:
                return

    def on_news(self, listener: Callable[[News], object]) -> None:
        """Call C{listener(news)} with what each look finds (the source's L{News} taken in)."""
        self._listeners.append(listener)

    # -- telling the others --------------------------------------------------------------

    def page_kept(self, project: str, entry: CachedPage, held: object) -> Deferred[None]:
        """
        Write the page this worker keeps of C{project}, and what it holds back
        of it, then announce it; fires once announced (a failure is logged).
        """
        data = json.dumps({"project": project, "entry": entry_to_json(entry), "held": held},
                          separators=(",", ":")).encode("utf-8")
        path = os.path.join(self._pages, _digest(project) + ".json")
        d = self._run(write_atomically, path, data)

        def written(_: object) -> None:
            self._hub.publish(Topic.PAGE, self._key, project.encode("utf-8"))

        def failed(failure: Failure) -> None:
            log.warn("Cannot share the upstream page of {project} with the other workers: "
                     "{error}", project=project, error=failure.getErrorMessage())
        return d.addCallbacks(written, failed)

    def pinned(self, filename: str) -> None:
        """Announce that pre-caching pinned C{filename}."""
        self._hub.publish(Topic.PIN, self._key, filename.encode("utf-8"))

    def failed(self, filename: str, reason: str, at: float) -> None:
        """Announce that C{filename}'s bytes proved wrong at C{at}, and why."""
        said = reason.encode("utf-8", "replace")[:REASON_BYTES]
        self._hub.publish(Topic.FAILED, self._key, filename.encode("utf-8"),
                          repr(at).encode("ascii"), said)

    async def turn(self, filename: str) -> Callable[[], None]:
        """
        Wait for the machine's lock of C{filename}'s fetch, then look at what
        the others did meanwhile; the callable returned lets go of the lock.
        """
        try:
            fd = await self._run(_open_lock, os.path.join(self._locks, _digest(filename)))
        except OSError as e:
            raise UpstreamError(f"cannot take the machine's lock of {filename}: "
                                f"{e.strerror or e}") from None
        try:
            while not _try_lock(fd):
                await deferLater(self._clock, LOCK_RETRY, lambda: None)
            await self.sync()
        except BaseException:
            os.close(fd)
            raise
        return partial(os.close, fd)

    # -- taking in the others' -----------------------------------------------------------

    def sync(self) -> Deferred[None]:
        """
        Take in what the other workers announced (never fails: what cannot be
        read is logged). Fires once everything announced before the call is in.
        """
        return self._looks()

    def _looked(self) -> Deferred[object]:
        def failed(failure: Failure) -> None:
            log.warn("Cannot take in what other workers did to the upstream cache: {error}",
                     error=failure.getErrorMessage())
        return Deferred.fromCoroutine(self._look()).addErrback(failed)

    async def _look(self) -> None:
        # (a lap, or a worker's end, is the folder's to see: read whole below)
        self._hub.take()
        told, self._told = self._told, _Told()
        try:
            polled = await self._folder.poll()
            read = {}
            if told.pages:
                read = await self._run(self._read_pages, list(told.pages))
        except BaseException:
            # (taken in by the next look, as if never read)
            self._told = told.then(self._told)
            raise
        # (a worker ended, perhaps between a change and its announcement, or
        # a whole ring went by: the folder is read whole)
        rescan = self._folder.reconcile_due()
        news = News(read, polled.files, list(told.pins), rescan, told.failures)
        if news.pages or news.files or news.pins or rescan or news.failures:
            for listener in self._listeners:
                listener(news)

    def pages_since(self, since: float) -> Deferred[dict[str, tuple[CachedPage, object]]]:
        """
        The pages the workers wrote since about C{since} (a snapshot's save),
        for a worker that starts: the announcements of those went by before
        it attached to the ring, and it alone would serve them stale.
        """
        return self._run(self._read_since, since - SINCE_SLACK)

    def _read_since(self, since: float) -> dict[str, tuple[CachedPage, object]]:
        """The pages written at C{since} or later (blocking), by project."""
        try:
            with os.scandir(self._pages) as entries:
                paths = [entry.path for entry in entries
                         if entry.name.endswith(".json") and entry.stat().st_mtime >= since]
        except OSError:
            return {}  # (no worker wrote a page yet)
        found = {}
        for path in paths:
            read = _read_page(path, path)
            # (a page an older server wrote does not name its project)
            if read is not None and isinstance(read[0], str):
                found[read[0]] = read[1:]
        return found

    def _read_pages(self, projects: list[str]) -> dict[str, tuple[CachedPage, object]]:
        """The pages written of C{projects} (blocking); one unreadable is left out."""
        found = {}
        for project in projects:
            read = _read_page(os.path.join(self._pages, _digest(project) + ".json"), project)
            if read is not None:
                found[project] = read[1:]
        return found


def _read_page(path: str, name: str) -> tuple[object, CachedPage, object] | None:
    """
    C{(project it names, page, what it holds back)} of the page file at
    C{path} (blocking); L{None}, logged as C{name}, when it cannot be read.
    """
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
        return data.get("project"), entry_from_json(data["entry"]), data.get("held")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        log.warn("Cannot read the upstream page {name} another worker kept: {error}",
                 name=name, error=str(e))
        return None


def _open_lock(path: str) -> int:
    """The descriptor of a lock file (made if need be; blocking)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _try_lock(fd: int) -> bool:
    """Whether the exclusive lock of C{fd} was taken now."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True
