"""
The audit log in a bucket, as numbered batch objects per day and server:
C{<prefix>.pypid/audit/YYYY-MM-DD/<instance>/<n>.jsonl}. Objects cannot
be appended to, and several servers share a bucket, so each server (each
start: a random instance name) writes its own numbered batches of a day,
with C{If-None-Match: *}: no two writers ever write one key.

Apart from the queue every log shares (L{pypid.storage.audit_log}) and
from the daily files (L{pypid.storage.audit_files}).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import (
    Deferred,
    DeferredLock,
    DeferredSemaphore,
    ensureDeferred,
    gatherResults,
)
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from pypid.core.records.audit_chain import (
    Broken,
    Entry,
    Note,
    chain,
    first_entry,
    is_day,
    link,
    split_lines,
    verify_lines,
)
from pypid.core.records.audit_query import EntryPage, Query, Selection
from pypid.storage.audit_log import (
    IMPORTED,
    BufferedAuditLog,
    ChainCheck,
    IAuditLog,
    PartlyWritten,
    by_day,
    entries_of,
    imported_name,
)
from pypid.storage.interface import StorageError

if TYPE_CHECKING:
    # (not at run time: the S3 client brings botocore, which a local log
    # has no use for)
    from pypid.storage.bucket.store import ObjectStore

#: Seconds an entry L{IAuditLog.append}ed waits to be written with the
#: others that follow it on S3, where each batch is an object (and a
#: request).
S3_FLUSH_DELAY = 1.0

#: Entries in one S3 batch object at most (an object stays under a few MB).
BATCH_ENTRIES = 1000

#: An S3 batch object is read up to this size.
OBJECT_LIMIT = 16 << 20

#: What follows the prefix (the storage's) in every audit key of a bucket.
S3_FOLDER = ".pypid/audit/"

_OBJECT = re.compile(r"\A(\d{4}-\d{2}-\d{2})/([0-9a-z]+)/(\d{6,})\.jsonl\Z")


@implementer(IAuditLog)
class BucketAuditLog(BufferedAuditLog):
    """
    Numbered batch objects per day and instance, under C{<prefix>.pypid/audit/}.

    An instance's batches are one chain across its days: the first line of
    batch C{n} links to the last line of batch C{n - 1}, and batch 0 of a
    day to the instance's last batch of an earlier day.

    @ivar _client: an L{pypid.storage.bucket.store.ObjectStore} of the bucket.
    @ivar folder: the key prefix of the audit objects (the storage's prefix
        and L{S3_FOLDER}).
    @ivar instance: this writer's name in its keys (random per start).
    @ivar _prepare: C{prepare() -> Deferred}, made ready before the first
        call (the credentials), or L{None}.
    @ivar _on_close: called after the last write, or L{None}.
    """

    delay = S3_FLUSH_DELAY

    def __init__(self, client: ObjectStore, prefix: str, clock: IReactorTime, *,
                 instance: str | None = None,
                 prepare: Callable[[], Awaitable[Any]] | None = None,
                 on_close: Callable[[], Any] | None = None, parallel: int = 8) -> None:
        super().__init__(clock)
        self._client = client
        self.folder = prefix + S3_FOLDER
        self.instance = instance or secrets.token_hex(6)
        self._prepare = prepare
        self._prepared = False
        self._preparing = DeferredLock()
        self._on_close = on_close
        self._reads = DeferredSemaphore(parallel)
        # day -> the number of its next batch
        self._numbers: dict[str, int] = {}
        # the link to the last line this instance wrote, and its day
        self._head: str | None = None
        self._day: str | None = None

    def close(self) -> Deferred[bool]:
        """Write what is queued (the stop), then let the client go."""
        def closed(result: Any) -> Any:
            if self._on_close is not None:
                self._on_close()
            return result
        return super().close().addBoth(closed)

    async def _ready(self) -> None:
        """Make the client ready (once; again after a failure)."""
        if self._prepare is not None and not self._prepared:
            await self._preparing.run(lambda: ensureDeferred(self._prepare_once()))

    async def _prepare_once(self) -> None:
        if self._prepare is not None and not self._prepared:
            await self._prepare()
            self._prepared = True

    def key(self, day: str, instance: str, number: int) -> str:
        """The key of batch C{number} of C{instance} on C{day}."""
        return f"{self.folder}{day}/{instance}/{number:06d}.jsonl"

    def _write_batch(self, entries: list[Entry]) -> Deferred[None]:
        return ensureDeferred(self._write(entries))

    async def _write(self, entries: list[Entry]) -> None:
        written = 0
        try:
            await self._ready()
            for day, group in by_day(entries, self._day):
                while group:
                    done = await self._put(day, group[:BATCH_ENTRIES])
                    written += done
                    group = group[done:]
        except Exception as e:
            if written:
                raise PartlyWritten(written, e) from e
            raise

    async def _put(self, day: str, entries: list[Entry]) -> int:
        """
        Write one batch; return how many of C{entries} it holds (all, unless
        an earlier attempt whose answer was lost wrote fewer).
        """
        number = self._numbers.get(day, 0)
        lines, new_head = chain(entries, self._head)
        body = b"".join(line + b"\n" for line in lines)
        key = self.key(day, self.instance, number)
        if await self._client.put(key, body, "application/x-ndjson",
                                  if_none_match=True):
            self._numbers[day], self._head, self._day = number + 1, new_head, day
            return len(entries)
        # The key is taken: by an attempt of ours whose answer was lost
        # (its lines begin this batch), or by something else.
        there = await self._client.get(key, limit=OBJECT_LIMIT)
        if there and there.endswith(b"\n") and body.startswith(there):
            written = split_lines(there)
            self._numbers[day], self._head, self._day = number + 1, link(written[-1]), day
            return len(written)
        raise StorageError(f"the audit object {key} is there already, with other entries")

    async def _list(self, prefix: str,
                    delimiter: str | None = None) -> tuple[list[str], list[str]]:
        keys: list[str] = []
        prefixes: list[str] = []
        async for page in self._client.list(prefix, delimiter=delimiter):
            keys += [item.key for item in page.keys]
            prefixes += page.prefixes
        return keys, prefixes

    async def _days(self) -> list[str]:
        _keys, prefixes = await self._list(self.folder, "/")
        days = [p[len(self.folder):].rstrip("/") for p in prefixes]
        return sorted(d for d in days if is_day(d))

    def _parse(self, key: str) -> tuple[str, str, int] | None:
        """C{(day, instance, number)} of an audit key, or L{None}."""
        match = _OBJECT.match(key[len(self.folder):])
        if match is None:
            return None
        return match.group(1), match.group(2), int(match.group(3))

    async def _get(self, key: str) -> bytes:
        data = await self._reads.run(self._client.get, key, OBJECT_LIMIT)
        return data or b""

    def read(self, query: Query) -> Deferred[EntryPage]:
        """The entries C{query} asks for, a day's objects at a time."""
        return ensureDeferred(self._read(query))

    async def _read(self, query: Query) -> EntryPage:
        await self._ready()
        days = query.days(await self._days())
        selection = Selection(query)
        for number, day in enumerate(days, 1):
            keys, _ = await self._list(f"{self.folder}{day}/")
            keys = [k for k in keys if self._parse(k) is not None]
            bodies = await gatherResults([ensureDeferred(self._get(k)) for k in keys],
                                         consumeErrors=True)
            if selection.take(day, [e for body in bodies for e in entries_of(body)]):
                return selection.result(more=number < len(days))
        return selection.result(more=False)

    def stored_files(self) -> Deferred[list[tuple[str, bytes]]]:
        """Every instance's batches, in key order (see L{IAuditLog.stored_files})."""
        return ensureDeferred(self._stored_files())

    async def _stored_files(self) -> list[tuple[str, bytes]]:
        await self._ready()
        keys, _ = await self._list(self.folder)
        keys = [k for k in keys if self._parse(k) is not None]
        bodies = await gatherResults([ensureDeferred(self._get(k)) for k in keys],
                                     consumeErrors=True)
        return [(k[len(self.folder):], body) for k, body in zip(keys, bodies, strict=False)]

    def keep_imported(self, name: str, data: bytes) -> Deferred[bool]:
        """Keep another log's file under C{imported/} (see L{IAuditLog.keep_imported})."""
        return ensureDeferred(self._keep_imported(self.folder + imported_name(name), data))

    async def _keep_imported(self, key: str, data: bytes) -> bool:
        await self._ready()
        if await self._client.get(key, limit=OBJECT_LIMIT) == data:
            return False
        await self._client.put(key, data, "application/x-ndjson")
        return True

    def verify(self) -> Deferred[ChainCheck]:
        """Check every instance's chain: its batches of each day, in order, across days."""
        return ensureDeferred(self._verify())

    async def _verify(self) -> ChainCheck:
        await self._ready()
        keys, _ = await self._list(self.folder)
        writers: dict[str, list[tuple[str, int, str]]] = {}
        broken: list[Broken] = []
        notes: list[Note] = []
        for key in keys:
            if key.startswith(self.folder + IMPORTED):
                continue  # (other servers' logs, kept as they came)
            parsed = self._parse(key)
            if parsed is None:
                broken.append(Broken(key, 0, "not the name of an audit object"))
                continue
            day, instance, number = parsed
            writers.setdefault(instance, []).append((day, number, key))
        files = entries = 0
        for instance, batches in sorted(writers.items()):
            batches.sort()
            head = before = None
            for position, (day, number, key) in enumerate(batches):
                data = await self._get(key)
                files += 1
                first = first_entry(data)
                if position == 0:
                    if number != 0 or (first is not None and first.prev is not None):
                        since = first.time if first is not None else day
                        notes.append(Note(key, f"entries before {since} are not kept "
                                               "(pruned)"))
                        head = first.prev if first is not None else None
                else:
                    last_day, last_number, _ = batches[position - 1]
                    expected = last_number + 1 if day == last_day else 0
                    if number != expected:
                        broken.append(Broken(
                            self.key(day, instance, expected), 0,
                            f"missing: batches {expected} to {number - 1} of this server's "
                            "day were removed" if number - 1 > expected
                            else "missing: this batch was removed"))
                        head = first.prev if first is not None else None
                        before = None
                checked = verify_lines(key, data, head, before)
                entries += len(checked.entries)
                broken += checked.broken
                head, before = checked.head, key
        return ChainCheck(files, entries, tuple(broken), tuple(notes))
