"""
Taking back, before a start loads an index, the promotions a crash
interrupted: a module of its own, so that a machine's supervisor, which
takes them back for its workers, loads nothing of the index's loading.
"""

from __future__ import annotations

from twisted.logger import Logger

from pypid.core.indexes.promotion import PromotionJournal
from pypid.core.util.units import counted
from pypid.storage.base.capabilities import IAdoptingStorage

#: (the namespace these lines always had: log filters keep matching)
log = Logger(namespace="pypid.state.loader")


async def roll_back_promotions(storage: IAdoptingStorage) -> int:
    """
    Take back the promotions into C{storage} that a crash interrupted: each
    file their journals name is discarded (one of that name with other bytes
    stays), then the journal; an unreadable journal is left, with its files.
    How many were taken back; L{StorageError} stops the start.
    """
    rolled = 0
    for name, data in sorted((await storage.journals()).items()):
        try:
            journal = PromotionJournal.from_bytes(data)
        except ValueError as e:
            log.error("Unreadable journal {name} of a promotion, left in place with the "
                      "files it may name: {error}", name=name, error=str(e))
            continue
        for record in journal.records:
            await storage.discard_adopted(record)
        await storage.drop_journal(name)
        rolled += 1
        log.warn("Took back a promotion from {source} that did not finish ({name}): "
                 "{files} removed: {filenames}", source=journal.source, name=name,
                 files=counted(len(journal.records), "file"),
                 filenames=", ".join(r.filename for r in journal.records))
    return rolled
