"""
The journals of promotions under way in a bucket (C{.pypid/promotions/};
L{pypid.core.indexes.promotion}), and the changes they hold back from the
store's journal.

While a promotion's journal is kept, the files it names are not told as
they are adopted: the sync (this server's, and the other
servers') would otherwise take a promotion's files into the index one by
one while it runs, and keep those of a promotion that failed until it read
them again. They are told together as the journal is dropped, once
the promotion ended either way. So the journals are kept here, beside the
names they hold back, and the adoption asks L{JournalObjects.holds} before
it tells of a file.
"""

from __future__ import annotations

import attrs

from pypid.core.indexes.promotion import PromotionJournal
from pypid.storage.bucket.layout import Layout
from pypid.storage.bucket.markers import BucketChanges
from pypid.storage.bucket.store import ObjectStore, read_all


@attrs.define
class JournalObjects:
    """
    The journal objects under a prefix, and the filenames each holds back
    from C{_changes} until it is dropped.
    """

    _client: ObjectStore
    _layout: Layout
    _changes: BucketChanges
    # journal name -> the files of a promotion under way, told at its end
    _journaled: dict[str, frozenset[str]] = attrs.field(factory=dict, init=False)

    def holds(self, filename: str) -> bool:
        """Whether a promotion under way holds back C{filename}'s change marker."""
        return any(filename in names for names in self._journaled.values())

    async def keep(self, name: str, data: bytes) -> None:
        """
        Keep the journal C{data} under C{name}, holding back the markers of
        the files it names (from now, not from when the write ends: an
        adoption may run meanwhile); a failed write holds nothing back.
        """
        try:
            names = frozenset(r.filename for r in PromotionJournal.from_bytes(data).records)
        except ValueError:
            names = frozenset()
        self._journaled[name] = names
        try:
            await self._client.put(self._layout.journal_key(name), data)
        except BaseException:
            self._journaled.pop(name, None)
            raise

    async def drop(self, name: str) -> None:
        """
        Remove the journal C{name}, then leave the change markers of the
        files it named: the other servers, and this one's sync, read them
        again only now.
        """
        try:
            await self._client.delete(self._layout.journal_key(name))
        finally:
            # (the promotion ended either way: its files' markers go out,
            # and the next adoption of those names tells itself)
            await self._changes.tell(*sorted(self._journaled.pop(name, ())))

    async def all(self) -> dict[str, bytes]:
        """The journals kept and not dropped: promotions a crash interrupted."""
        return await read_all(self._client, self._layout.journal_key(""))
