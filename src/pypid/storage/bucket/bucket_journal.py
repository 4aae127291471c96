"""
The journal in a bucket (L{BucketJournal}): the batch records of
L{pypid.storage.base.journal_records}, read with the older audit log.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.interfaces import IReactorTime

from pypid.core.records.audit_chain import Broken, Entry, Note, first_entry, is_day, verify_lines
from pypid.storage.base.journal import IMPORTED, ChainCheck, entries_of
from pypid.storage.base.journal_records import RecordJournal
from pypid.storage.base.records import IRecords
from pypid.storage.bucket.store import ObjectStore

#: What follows the prefix in the keys of the audit log from before the journal.
OLDER_FOLDER = ".pypid/audit/"

_OLDER = re.compile(r"\A(\d{4}-\d{2}-\d{2})/([0-9a-z]+)/(\d{6,})\.jsonl\Z")

#: An object of the older log is read up to this size.
OBJECT_LIMIT = 16 << 20


class BucketJournal(RecordJournal):
    """
    The journal in a bucket (C{<prefix>.pypid/journal/}), read with the audit
    log kept there before it (queries, the check, a bundle's copy): batch
    objects per day and server's start,
    C{<prefix>.pypid/audit/YYYY-MM-DD/<instance>/<n>.jsonl}, each
    instance's batches one chain across its days.
    """

    def __init__(self, records: IRecords, client: ObjectStore, prefix: str,
                 clock: IReactorTime, **kwargs: Any) -> None:
        super().__init__(records, clock, **kwargs)
        self._client = client
        self.older_folder = prefix + OLDER_FOLDER

    async def _list(self, prefix: str,
                    delimiter: str | None = None) -> tuple[list[str], list[str]]:
        keys: list[str] = []
        prefixes: list[str] = []
        async for page in self._client.list(prefix, delimiter=delimiter):
            keys += [item.key for item in page.keys]
            prefixes += page.prefixes
        return keys, prefixes

    def _parse(self, key: str) -> tuple[str, str, int] | None:
        """C{(day, instance, number)} of an older audit key, or L{None}."""
        match = _OLDER.match(key[len(self.older_folder):])
        if match is None:
            return None
        return match.group(1), match.group(2), int(match.group(3))

    async def _get(self, key: str) -> bytes:
        data = await self._reads.run(self._client.get, key, OBJECT_LIMIT)
        return data or b""

    async def _get_all(self, keys: list[str]) -> list[bytes]:
        return await gatherResults([ensureDeferred(self._get(k)) for k in keys],
                                   consumeErrors=True)

    async def _older_days(self) -> list[str]:
        _keys, prefixes = await self._list(self.older_folder, "/")
        days = [p[len(self.older_folder):].rstrip("/") for p in prefixes]
        return sorted(d for d in days if is_day(d))

    async def _older(self, day: str) -> list[Entry]:
        keys, _ = await self._list(f"{self.older_folder}{day}/")
        keys = [k for k in keys if self._parse(k) is not None]
        return [e for body in await self._get_all(keys) for e in entries_of(body)]

    async def _older_keys(self) -> list[str]:
        keys, _ = await self._list(self.older_folder)
        return [k for k in keys if not k.startswith(self.older_folder + IMPORTED)]

    async def _stored_files(self) -> list[tuple[str, bytes]]:
        await self._ready()
        keys = [k for k in await self._older_keys() if self._parse(k) is not None]
        older = [(k[len(self.older_folder):], body)
                 for k, body in zip(keys, await self._get_all(keys), strict=True)]
        return older + await super()._stored_files()

    async def _verify_older(self) -> ChainCheck:
        """Each older instance's chain: its batches of each day, in order, across days."""
        writers: dict[str, list[tuple[str, int, str]]] = {}
        broken: list[Broken] = []
        notes: list[Note] = []
        for key in await self._older_keys():
            parsed = self._parse(key)
            if parsed is None:
                broken.append(Broken(key, 0, "not the name of an audit object"))
                continue
            day, instance, number_ = parsed
            writers.setdefault(instance, []).append((day, number_, key))
        files = entries = 0
        for instance, batches in sorted(writers.items()):
            batches.sort()
            head = before = None
            for position, (day, number_, key) in enumerate(batches):
                data = await self._get(key)
                files += 1
                first = first_entry(data)
                if position == 0:
                    if number_ != 0 or (first is not None and first.prev is not None):
                        since = first.time if first is not None else day
                        notes.append(Note(key, f"entries before {since} are not kept "
                                               "(pruned)"))
                        head = first.prev if first is not None else None
                else:
                    last_day, last_number, _ = batches[position - 1]
                    expected = last_number + 1 if day == last_day else 0
                    if number_ != expected:
                        missing = f"{self.older_folder}{day}/{instance}/{expected:06d}.jsonl"
                        broken.append(Broken(
                            missing, 0,
                            f"missing: batches {expected} to {number_ - 1} of this server's "
                            "day were removed" if number_ - 1 > expected
                            else "missing: this batch was removed"))
                        head = first.prev if first is not None else None
                        before = None
                checked = verify_lines(key, data, head, before)
                entries += len(checked.entries)
                broken += checked.broken
                head, before = checked.head, key
        return ChainCheck(files, entries, tuple(broken), tuple(notes))
