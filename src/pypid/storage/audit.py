"""
Where the audit log is kept: with the packages, so it outlives the server
and every instance on a shared bucket writes to the same place.

  - Local storage: C{<storage path>/.pypid/audit/YYYY-MM-DD.jsonl}, one file
    a day (UTC), appended under an C{flock} and fsynced once a batch.
  - S3: C{<prefix>.pypid/audit/YYYY-MM-DD/<instance>/<n>.jsonl}. Objects
    cannot be appended to, and several servers share a bucket, so each
    server (each start: a random instance name) writes its own numbered
    batches of a day, with C{If-None-Match: *}: no two writers ever write
    one key. The batches of one instance and day are one chain (the first
    line of batch C{n} links to the last line of batch C{n - 1}), so a
    batch removed from the middle is found too.
  - In memory, for the tests.

Pure parts (the entry, the chain, its check, queries) are in
L{pypid.core.audit}. Every implementation buffers: L{IAuditLog.append}
never waits and never fails; the entries are written within
L{FLUSH_DELAY} (L{S3_FLUSH_DELAY}), or at the stop. A write that fails is
logged as an error and tried again, the entries kept in order, so an
upload already stored is never failed by its audit entry, and an entry is
never dropped silently.

Under C{.pypid/}, these names are internal: the local scan skips dot
folders, and an S3 listing of files starts after every C{.pypid/} key
(L{pypid.storage.s3.layout.Layout.files_start_after}).
"""

import fcntl
import os
import re
import secrets

import attrs
from twisted.internet.defer import (
    DeferredLock,
    DeferredSemaphore,
    ensureDeferred,
    gatherResults,
    succeed,
)
from twisted.logger import Logger
from zope.interface import Interface, implementer

from pypid.core.audit import (
    AuditError,
    Broken,
    Selection,
    chain,
    day_of,
    decode,
    is_day,
    link,
    select,
    split_lines,
    verify_lines,
)
from pypid.storage.interface import StorageError

log = Logger()

#: Seconds an entry waits to be written with the others that follow it;
#: on S3, where each batch is an object (and a request), a second: at most
#: one object a second per server.
FLUSH_DELAY = 0.5
S3_FLUSH_DELAY = 1.0

#: Seconds before a failed write is tried again, doubled each time up to
#: L{MAX_RETRY_DELAY}.
RETRY_DELAY = 2.0
MAX_RETRY_DELAY = 60.0

#: Entries held at most while writes fail (some 50 MB): past it, new
#: entries are counted and the count logged as an error, not kept.
MAX_PENDING = 100_000

#: Entries in one S3 batch object at most (an object stays under a few MB).
BATCH_ENTRIES = 1000

#: An S3 batch object is read up to this size.
OBJECT_LIMIT = 16 << 20

#: What follows the prefix (the storage's) in every audit key of a bucket.
S3_FOLDER = ".pypid/audit/"

_FILE = re.compile(r"\A(\d{4}-\d{2}-\d{2})\.jsonl\Z")
_OBJECT = re.compile(r"\A(\d{4}-\d{2}-\d{2})/([0-9a-z]+)/(\d{6,})\.jsonl\Z")


class IAuditLog(Interface):
    """The audit log of one storage."""

    def append(entry):
        """
        Queue a L{pypid.core.audit.Entry} (its C{prev} is set when written);
        it is written within L{FLUSH_DELAY}. Never fails, never waits.
        """

    def flush():
        """
        Write what is queued now.

        @return: a L{Deferred} firing with whether everything queued before
            the call is written (L{False}: a write failed; it is logged and
            will be tried again).
        """

    def read(query):
        """
        The entries a L{pypid.core.audit.Query} asks for.

        @return: a L{Deferred} firing with C{(entries oldest first, next)};
            see L{pypid.core.audit.Selection.result}.
        """

    def verify():
        """
        Check every chain.

        @return: a L{Deferred} firing with a L{Verified}.
        """

    def close():
        """Write what is queued (the server is stopping); a L{Deferred}."""


@attrs.frozen
class Verified:
    """What L{IAuditLog.verify} found: how many files and entries, and the broken links."""

    files: int
    entries: int
    broken: tuple

    @property
    def intact(self):
        """Whether no link is broken."""
        return not self.broken


@attrs.define
class AuditBuffer:
    """
    The queue in front of a log's writes: entries wait up to C{delay}, then
    are written together by C{write(entries) -> Deferred}, one write at a
    time and in order. A failed write is logged as an error and tried
    again later with the entries queued since, never dropped.

    @ivar _write: writes a list of entries, in order.
    @ivar _clock: provides C{callLater}.
    """

    _write: object
    _clock: object
    delay: float = FLUSH_DELAY
    max_pending: int = MAX_PENDING
    _pending: list = attrs.field(factory=list)
    _lock: DeferredLock = attrs.field(factory=DeferredLock)
    _call: object = None
    _retry_delay: float = RETRY_DELAY
    _failing: bool = False
    _refused: int = 0
    _closed: bool = False

    def append(self, entry):
        """Queue one entry (see L{IAuditLog.append})."""
        if len(self._pending) >= self.max_pending:
            self._refused += 1
            if self._refused == 1 or self._refused % 1000 == 0:
                log.error("The audit log cannot be written and holds {count} entries "
                          "already: {refused} entries are lost", count=len(self._pending),
                          refused=self._refused)
            return
        if self._closed:
            log.error("An audit entry came after the stop, and is lost: {event} by {user}",
                      event=entry.event, user=entry.user)
            return
        self._pending.append(entry)
        if not self._failing:
            self._schedule(self.delay)

    def pending(self):
        """How many entries wait to be written."""
        return len(self._pending)

    def _schedule(self, delay):
        if self._call is None or not self._call.active():
            self._call = self._clock.callLater(delay, self._due)

    def _due(self):
        self._call = None
        self.flush()

    def flush(self):
        """Write what is queued (see L{IAuditLog.flush})."""
        return self._lock.run(lambda: ensureDeferred(self._write_pending()))

    async def _write_pending(self):
        batch, self._pending = self._pending, []
        if not batch:
            return True
        try:
            await self._write(batch)
        except Exception as e:
            self._pending[:0] = batch
            log.error("Cannot write {count} audit entries (tried again in {delay:g} s): "
                      "{error}", count=len(batch), delay=self._retry_delay,
                      error=str(e) or type(e).__name__)
            if not isinstance(e, (StorageError, OSError)):
                log.failure("Writing the audit log")
            self._failing = True
            if not self._closed:
                if self._call is not None and self._call.active():
                    self._call.cancel()
                self._call = self._clock.callLater(self._retry_delay, self._due)
            self._retry_delay = min(self._retry_delay * 2, MAX_RETRY_DELAY)
            return False
        if self._failing:
            log.info("The audit log is written again ({count} entries)", count=len(batch))
        self._failing = False
        self._retry_delay = RETRY_DELAY
        if self._pending:
            self._schedule(self.delay)
        return True

    def close(self):
        """
        Write what is queued, once (the stop); what cannot be written is
        logged as lost. A L{Deferred} firing with whether all was written.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._closed = True

        def written(done):
            if not done and self._pending:
                log.error("Stopping with {count} audit entries that could not be written",
                          count=len(self._pending))
                self._pending = []
            return done
        return self.flush().addCallback(written)


def _by_day(entries):
    """C{entries} grouped by day, each group in order, days in order of first appearance."""
    days = {}
    for entry in entries:
        days.setdefault(day_of(entry.time), []).append(entry)
    return days.items()


def _entries_of(data):
    """The readable entries of a file's bytes (verify reports the others)."""
    entries = []
    for line in split_lines(data):
        try:
            entries.append(decode(line))
        except AuditError:
            pass
    return entries


# -- in memory --------------------------------------------------------------------------------


@implementer(IAuditLog)
class MemoryAuditLog:
    """
    The audit log in memory, laid out as the local one: C{files} maps
    C{YYYY-MM-DD.jsonl} to its bytes, which tests may edit.

    @ivar fail: when true, writes fail with L{StorageError} (tests).
    """

    def __init__(self, clock):
        self.files = {}
        self.fail = False
        self._heads = {}
        self._buffer = AuditBuffer(self._write, clock)

    def append(self, entry):
        """Queue an entry."""
        self._buffer.append(entry)

    def flush(self):
        """Write what is queued."""
        return self._buffer.flush()

    def close(self):
        """Write what is queued (the stop)."""
        return self._buffer.close()

    def pending(self):
        """How many entries wait to be written."""
        return self._buffer.pending()

    def _write(self, entries):
        if self.fail:
            raise StorageError("the audit log cannot be written (test)")
        for day, group in _by_day(entries):
            name = f"{day}.jsonl"
            data = self.files.get(name, b"")
            head = self._heads.get(name)
            if head is None or head[0] != len(data):
                head = (len(data), _tail_link(data))
            lines, new_head = chain(group, head[1])
            data += b"".join(line + b"\n" for line in lines)
            self.files[name] = data
            self._heads[name] = (len(data), new_head)
        return succeed(None)

    def read(self, query):
        """The entries C{query} asks for."""
        return succeed(select(query, self._days(query)))

    def _days(self, query):
        for name in _ordered(self.files, query):
            yield name[:10], _entries_of(self.files[name])

    def verify(self):
        """Check every file's chain."""
        checked = [verify_lines(name, self.files[name]) for name in sorted(self.files)]
        return succeed(Verified(len(checked), sum(len(c.entries) for c in checked),
                                tuple(b for c in checked for b in c.broken)))


def _ordered(names, query):
    """The day files C{query} reads, in the order it reads them."""
    first = query.first_day()
    days = sorted(n for n in names if _FILE.match(n) and (first is None or n[:10] >= first))
    return days if query.since is not None else days[::-1]


def _tail_link(data):
    """The link to the last line of a file's bytes (L{None} for an empty file)."""
    lines = split_lines(data)
    return link(lines[-1]) if lines else None


# -- local files ------------------------------------------------------------------------------


@implementer(IAuditLog)
class LocalAuditLog:
    """
    Daily JSON-lines files in a folder (C{<storage path>/.pypid/audit}).

    Appends take the file's C{flock}, so another writer on the folder (a
    second process) cannot interleave with a batch, and read the file's last
    line again whenever its size is not what this writer left: the chain
    goes on from whatever is there. A batch is fsynced before it counts as
    written; a batch that fails half-way is cut off again.

    @ivar folder: the folder of the files.
    @ivar _run: C{run(f, *args) -> Deferred}, the I/O thread pool.
    """

    def __init__(self, folder, run, clock):
        self.folder = folder
        self._run = run
        # path -> (size this writer left, link to its last line); used by
        # one write at a time (the buffer's lock), in the pool's threads.
        self._heads = {}
        self._buffer = AuditBuffer(lambda entries: self._run(self._write_sync, entries),
                                   clock)

    def append(self, entry):
        """Queue an entry."""
        self._buffer.append(entry)

    def flush(self):
        """Write what is queued."""
        return self._buffer.flush()

    def close(self):
        """Write what is queued (the stop)."""
        return self._buffer.close()

    def pending(self):
        """How many entries wait to be written."""
        return self._buffer.pending()

    def _path(self, day):
        return os.path.join(self.folder, f"{day}.jsonl")

    def _write_sync(self, entries):
        os.makedirs(self.folder, exist_ok=True)
        created = False
        for day, group in _by_day(entries):
            path = self._path(day)
            created |= not os.path.exists(path)
            self._append_sync(path, group)
        if created:
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _append_sync(self, path, entries):
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            known = self._heads.get(path)
            if known is not None and known[0] == size:
                head, torn = known[1], False
            else:
                if known is not None:
                    log.warn("The audit file {path} was changed by another writer: its "
                             "size is {size} bytes, not {expected}", path=path, size=size,
                             expected=known[0])
                head, torn = _read_tail(fd, size)
            lines, head = chain(entries, head)
            data = (b"\n" if torn else b"") + b"".join(line + b"\n" for line in lines)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                # Cut the batch off again: it is tried whole later.
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass
                raise
            self._heads[path] = (size + len(data), head)
        finally:
            os.close(fd)

    def read(self, query):
        """The entries C{query} asks for (read in the pool)."""
        return self._run(self._read_sync, query)

    def _names(self):
        try:
            return os.listdir(self.folder)
        except FileNotFoundError:
            return []

    def _read_sync(self, query):
        return select(query, ((name[:10], _entries_of(self._read_file(name)))
                              for name in _ordered(self._names(), query)))

    def _read_file(self, name):
        try:
            with open(os.path.join(self.folder, name), "rb") as f:
                return f.read()
        except FileNotFoundError:  # (pruned meanwhile)
            return b""

    def verify(self):
        """Check every file's chain (in the pool)."""
        return self._run(self._verify_sync)

    def _verify_sync(self):
        files = entries = 0
        broken = []
        for name in sorted(n for n in self._names() if _FILE.match(n)):
            checked = verify_lines(os.path.join(self.folder, name), self._read_file(name))
            files += 1
            entries += len(checked.entries)
            broken += checked.broken
        return Verified(files, entries, tuple(broken))


def _read_tail(fd, size):
    """
    The link to the last line of an open file of C{size} bytes, and whether
    that line is cut short (no newline: a write that a crash cut).
    """
    if size == 0:
        return None, False
    block = 16 << 10
    end = size
    tail = b""
    last = os.pread(fd, 1, size - 1)
    torn = last != b"\n"
    if not torn:
        end -= 1
    while True:
        start = max(end - block, 0)
        tail = os.pread(fd, end - start, start) + tail
        end = start
        cut = tail.rfind(b"\n")
        if cut >= 0:
            return link(tail[cut + 1:]), torn
        if start == 0:
            return link(tail), torn


# -- S3 ---------------------------------------------------------------------------------------


@implementer(IAuditLog)
class S3AuditLog:
    """
    Numbered batch objects per day and instance, under C{<prefix>.pypid/audit/}.

    @ivar _client: an L{pypid.storage.s3.client.S3Client} of the bucket.
    @ivar folder: the key prefix of the audit objects (the storage's prefix
        and L{S3_FOLDER}).
    @ivar instance: this writer's name in its keys (random per start).
    @ivar _prepare: C{prepare() -> Deferred}, made ready before the first
        call (the credentials), or L{None}.
    @ivar _on_close: called after the last write, or L{None}.
    """

    def __init__(self, client, prefix, clock, *, instance=None, prepare=None, on_close=None,
                 parallel=8):
        self._client = client
        self.folder = prefix + S3_FOLDER
        self.instance = instance or secrets.token_hex(6)
        self._prepare = prepare
        self._prepared = False
        self._preparing = DeferredLock()
        self._on_close = on_close
        self._reads = DeferredSemaphore(parallel)
        # day -> (next batch number, link to the last line written)
        self._heads = {}
        self._buffer = AuditBuffer(lambda entries: ensureDeferred(self._write(entries)), clock,
                                   delay=S3_FLUSH_DELAY)

    def append(self, entry):
        """Queue an entry."""
        self._buffer.append(entry)

    def flush(self):
        """Write what is queued."""
        return self._buffer.flush()

    def close(self):
        """Write what is queued (the stop), then let the client go."""
        def closed(result):
            if self._on_close is not None:
                self._on_close()
            return result
        return self._buffer.close().addBoth(closed)

    def pending(self):
        """How many entries wait to be written."""
        return self._buffer.pending()

    async def _ready(self):
        """Make the client ready (once; again after a failure)."""
        if self._prepare is not None and not self._prepared:
            await self._preparing.run(lambda: ensureDeferred(self._prepare_once()))

    async def _prepare_once(self):
        if not self._prepared:
            await self._prepare()
            self._prepared = True

    def key(self, day, instance, number):
        """The key of batch C{number} of C{instance} on C{day}."""
        return f"{self.folder}{day}/{instance}/{number:06d}.jsonl"

    async def _write(self, entries):
        await self._ready()
        for day, group in _by_day(entries):
            while group:
                group = await self._put(day, group[:BATCH_ENTRIES]) + group[BATCH_ENTRIES:]

    async def _put(self, day, entries):
        """
        Write one batch; return the entries left to write (none, unless an
        earlier attempt turned out to have written some of them).
        """
        number, head = self._heads.get(day, (0, None))
        lines, new_head = chain(entries, head)
        body = b"".join(line + b"\n" for line in lines)
        key = self.key(day, self.instance, number)
        if await self._client.put(key, body, {"content-type": "application/x-ndjson"},
                                  if_none_match=True):
            self._heads[day] = (number + 1, new_head)
            return []
        # The key is taken: by an attempt of ours whose answer was lost
        # (its lines begin this batch), or by something else.
        there = await self._client.get(key, limit=OBJECT_LIMIT)
        if there and there.endswith(b"\n") and body.startswith(there):
            written = split_lines(there)
            self._heads[day] = (number + 1, link(written[-1]))
            return entries[len(written):]
        raise StorageError(f"the audit object {key} is there already, with other entries")

    async def _list(self, prefix, delimiter=None):
        keys, prefixes = [], []
        async for page in self._client.list(prefix, delimiter=delimiter):
            keys += [item.key for item in page.keys]
            prefixes += page.prefixes
        return keys, prefixes

    async def _days(self):
        _keys, prefixes = await self._list(self.folder, "/")
        days = [p[len(self.folder):].rstrip("/") for p in prefixes]
        return sorted(d for d in days if is_day(d))

    def _parse(self, key):
        """C{(day, instance, number)} of an audit key, or L{None}."""
        match = _OBJECT.match(key[len(self.folder):])
        if match is None:
            return None
        return match.group(1), match.group(2), int(match.group(3))

    async def _get(self, key):
        data = await self._reads.run(self._client.get, key, OBJECT_LIMIT)
        return data or b""

    def read(self, query):
        """The entries C{query} asks for, a day's objects at a time."""
        return ensureDeferred(self._read(query))

    async def _read(self, query):
        await self._ready()
        first = query.first_day()
        days = [d for d in await self._days() if first is None or d >= first]
        if query.since is None:
            days.reverse()
        selection = Selection(query)
        for day in days:
            keys, _ = await self._list(f"{self.folder}{day}/")
            keys = [k for k in keys if self._parse(k) is not None]
            bodies = await gatherResults([ensureDeferred(self._get(k)) for k in keys],
                                         consumeErrors=True)
            entries = [e for body in bodies for e in _entries_of(body)]
            if selection.take(entries):
                break
        return selection.result()

    def verify(self):
        """Check every chain: each instance's batches of each day, in order."""
        return ensureDeferred(self._verify())

    async def _verify(self):
        await self._ready()
        keys, _ = await self._list(self.folder)
        streams, broken = {}, []
        for key in keys:
            parsed = self._parse(key)
            if parsed is None:
                broken.append(Broken(key, 0, "not the name of an audit object"))
                continue
            day, instance, number = parsed
            streams.setdefault((day, instance), []).append((number, key))
        files = entries = 0
        for (day, instance), batches in sorted(streams.items()):
            head, expected = None, 0
            for number, key in sorted(batches):
                resync = number != expected
                if resync:
                    missing = self.key(day, instance, expected)
                    broken.append(Broken(
                        missing, 0, f"missing: batches {expected} to {number - 1} of this "
                                    "server's day were removed"
                        if number - 1 > expected else "missing: this batch was removed"))
                data = await self._get(key)
                if resync:
                    head = _first_prev(data)
                checked = verify_lines(key, data, head)
                head, expected = checked.head, number + 1
                files += 1
                entries += len(checked.entries)
                broken += checked.broken
        return Verified(files, entries, tuple(broken))


def _first_prev(data):
    """The C{prev} of an object's first entry: where a chain resumes after a gap."""
    lines = split_lines(data)
    if lines:
        try:
            return decode(lines[0]).prev
        except AuditError:
            pass
    return None
