"""
Bringing into the index what storage says, without undoing what the index
learnt meanwhile: the start's check against the snapshot (L{merge_scan}), other
servers' changes to a shared storage (L{apply_changes}, L{apply_statuses}) and
its full check (L{differences}). A binned file is one the index holds
(L{Index.held}), as a live one is. Pure (no I/O).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.index import Index
from pypid.core.indexes.project_status import ProjectStatus
from pypid.storage.base.capabilities import Changed


def merge_scan(index: Index, known: Mapping[str, FileRecord], deleted: Collection[str],
               records: Mapping[str, FileRecord], tombstones: Collection[str]) -> dict[str, int]:
    """
    Bring into C{index} what a scan (C{records}, C{tombstones}) found changed
    since the snapshot C{known} and C{deleted}, except where the index changed
    meanwhile: a file is added only where the index has no file and no
    tombstone of that name, and changed or removed only where the index still
    holds the very record the snapshot gave it.

    @return: C{{"added": n, "changed": n, "gone": n}}.
    """
    added = changed = gone = 0
    for filename, record in records.items():
        was = known.get(filename)
        if was is record:
            continue
        now = index.held(filename)
        if was is None:
            if now is None and not index.is_deleted(filename):
                index.add(record)
                added += 1
        elif now is was and record != was:
            index.add(record)
            changed += 1
    for filename, was in known.items():
        if filename not in records and index.held(filename) is was:
            if filename in tombstones:
                index.remove(filename)
            else:
                index.discard(filename)
            gone += 1
    for filename in tombstones:
        if filename not in deleted and not index.is_deleted(filename) \
                and index.held(filename) is None:
            index.remove(filename)
    return {"added": added, "changed": changed, "gone": gone}


def apply_changes(index: Index, changes: Iterable[Changed]) -> None:
    """Take into C{index} the L{Changed} states a shared storage reported."""
    for change in changes:
        if change.deleted:
            if index.held(change.filename) is not None or not index.is_deleted(
                    change.filename):
                index.remove(change.filename)
        elif change.record is None:
            index.discard(change.filename)
        elif (change.promotion is not None
              and index.promotions.get(change.filename) != change.promotion):
            index.add_promoted(change.record, change.promotion)
        elif index.held(change.filename) != change.record:
            index.add(change.record)


def apply_statuses(index: Index,
                   statuses: Mapping[str, ProjectStatus | None]) -> list[str]:
    """
    Take into C{index} the projects' statuses a shared storage reported changed
    (L{None}: active), before L{apply_changes} of the same look, so that a
    quarantine arrives first; the projects whose status changed.
    """
    changed = []
    for name, status in sorted(statuses.items()):
        if index.statuses.get(name) != status:
            index.statuses.set(name, status)
            changed.append(name)
    return changed


def checked_statuses(index: Index, read: Mapping[str, ProjectStatus],
                     since: int) -> dict[str, ProjectStatus | None]:
    """
    The statuses a full check of a shared storage read (C{read}; every other
    project is active), for L{apply_statuses}, except where the index's
    changed since the check began (the bookmark C{since}): such a change is
    at least as new as what the check read, so the check never undoes it.
    """
    statuses = index.statuses
    names = (set(statuses.all()) | set(read)) - statuses.changed_since(since)
    return {name: read.get(name) for name in names}


def differences(index: Index, known: Iterable[str], records: Mapping[str, FileRecord],
                tombstones: Iterable[str]) -> list[Changed]:
    """
    The L{Changed} states a full listing (C{records}, C{tombstones}) of a
    shared storage shows and the index does not: files put there behind pypid's
    back, or changes whose markers were missed. A file uploaded while the
    listing ran (not in C{known}) is left alone.
    """
    changes = [Changed(filename, record, False) for filename, record in records.items()
               if index.held(filename) != record and not index.is_deleted(filename)]
    changes += [Changed(filename, None, True) for filename in tombstones
                if not index.is_deleted(filename)]
    changes += [Changed(filename, None, False) for filename in known
                if filename not in records and filename not in tombstones]
    return changes
