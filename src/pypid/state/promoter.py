"""
Promotion's rules and its copy over the server's hosted indexes
(C{POST /api/promote}: L{pypid.web.changes.promote} asks who may, and answers).

What a promotion cannot walk around, admins included (else a plain uploader
could promote a quarantined release into an index anonymous clients read): a
project's status (PEP 792), quarantined in C{from}, C{to} or any hosted index
either reads (C{to} would offer the files the moment it is lifted), archived in
C{from} or C{to}; nor, unless an admin, the advisories that deny the release
(L{Promoter.denials}).

Nothing is half-promoted. Under the source's and the target's locks of every
distribution of the release (L{locks_of}: taken in one order, so none waits on
another in a circle), the release is read again, a journal naming the files is
kept in the target's storage, then each file is adopted; a failure discards
those adopted so far. Only once the journal is dropped does the target's index
get the records: the source's very objects, so a promoted record takes its
memory once. A crash in between leaves the journal, taken back at the next
start (L{pypid.state.promotion_rollback}).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import attrs
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import WHEEL, filename_key, variant_release
from pypid.core.dists.wheel_variants import InvalidVariant, check_joins
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import index_section
from pypid.core.indexes.promotion import Promotion, PromotionJournal
from pypid.core.security.advisories import DENY
from pypid.state.hosted_stack import HostedStack
from pypid.state.indexes import IndexRegistry
from pypid.storage.base.capabilities import IAdoptingStorage
from pypid.storage.base.interface import (
    FileExists,
    FilenameDeleted,
    RecordRefused,
    StorageError,
)
from pypid.storage.base.locks import KeyedLock
from pypid.storage.base.measured import unwrapped

#: (the namespace its lines had before it was a module of its own)
log = Logger(namespace="pypid.web.changes.promote")

_T = TypeVar("_T")


class PromotionRefused(Exception):
    """
    A promotion the indexes refuse as they stand: C{gone} when the release or
    one of its files is no longer there, else a conflict.
    """

    def __init__(self, message: str, gone: bool = False) -> None:
        super().__init__(message)
        self.gone = gone


def release_of(stack: HostedStack | None, project: str, version: str) -> list[FileRecord]:
    """The files of the release hosted in C{stack} itself (none in a view), by name."""
    entry = stack.index.project(project) if stack is not None else None
    if entry is None:
        return []
    return sorted((r for r in entry.files.values() if r.version == version),
                  key=lambda r: r.filename)


def key_of(record: FileRecord) -> str:
    """The key of an index's lock a change to C{record}'s distribution is made under."""
    return filename_key(record.filename) or record.filename


def locks_of(source: HostedStack, target: HostedStack,
             records: Sequence[FileRecord]) -> list[tuple[KeyedLock, str]]:
    """
    The locks a promotion of C{records} holds, in the order taken: first, as an
    upload of a variant wheel does, the target's lock of the release's variant
    wheels (PEP 825's agreement is checked under it); then the source's and the
    target's of each distribution, ordered by C{(index, key)}, so a delete,
    yank or purge in the source and the promotion come one after the other.
    """
    keys = sorted({key_of(r) for r in records})
    held = sorted([(source.name, key, source.locks) for key in keys]
                  + [(target.name, key, target.locks) for key in keys],
                  key=lambda lock: lock[:2])
    variants = sorted({key for key in map(variant_release, (r.filename for r in records))
                       if key is not None})
    return [(target.locks, key) for key in variants] + [(lock, key) for _, key, lock in held]


async def under_locks(locks: Sequence[tuple[KeyedLock, str]],
                      f: Callable[..., Awaitable[_T]], *args: Any) -> _T:
    """Await C{f(*args)} holding every C{(lock, key)} of C{locks}, taken in that order."""
    if not locks:
        return await f(*args)
    (lock, key), rest = locks[0], locks[1:]
    return await lock.run(key, under_locks, rest, f, *args)


@attrs.frozen
class Promoter:
    """The rules and the copy of promotions between the hosted indexes of C{registry}."""

    registry: IndexRegistry
    clock: IReactorTime

    def refuse_closed(self, source: str, target: str, project: str) -> None:
        """Refuse (L{PromotionRefused}) a project whose status forbids it (see the module)."""
        for name, own, why in ((source, source, "its files are not promoted"),
                               (target, target, "it takes no promoted files")):
            for held in self.registry.orders.get(name, (name,)):
                stack = self.registry.stacks.get(held)
                status = stack.index.statuses.get(project) if stack is not None else None
                if status is not None and (status.quarantined
                                           or (held == own and status.closed)):
                    because = f" ({status.reason})" if status.reason else ""
                    raise PromotionRefused(f"project {project} is {status.status} in index "
                                           f"{held}{because}: {why}")

    def denials(self, source: str, target: str, project: str,
                version: str) -> list[tuple[str, str]]:
        """
        C{(index, advisory ids)} of each of C{source} and C{target} whose
        advisories deny the release (an index that only hides says nothing).

        @raise AdvisoriesUnread: they are still to be read, and an index denies.
        """
        policies = {name: self.registry.policies.get(name) for name in (source, target)}
        verdicts = [(name, policy.denied(project, version)) for name, policy in policies.items()
                    if policy is not None and policy.rules.mode == DENY]
        return [(name, ", ".join(verdict.ids)) for name, verdict in verdicts if verdict is not None]

    def sort_out(self, target: HostedStack, records: Sequence[FileRecord],
                 reveal: bool) -> tuple[list[FileRecord], list[str]]:
        """
        C{(wanted, skipped)}: the files the target takes, and the names of
        those it holds with the same bytes already (a promotion may be run
        again); each checked as an upload of it would be.

        @param reveal: whether a refusal may name the target's sha256 of a file.
        @raise PromotionRefused: a file the target holds with other bytes,
            a name it deleted, the same distribution under another name,
            or variant wheels that disagree with its release's.
        """
        index = target.index
        wanted: list[FileRecord] = []
        skipped: list[str] = []
        for record in records:
            filename = record.filename
            there = index.get_file(filename, record.project)
            if there is not None:
                if there.sha256 != record.sha256:
                    raise other_bytes(filename, target.name, there.sha256 if reveal else None)
                skipped.append(filename)
                continue
            if index.is_deleted(filename):
                raise PromotionRefused(f"{filename}: a file of that name was deleted from "
                                       f"{target.name}; the name is never used again")
            other = index.same_distribution(filename)
            if other is not None:
                raise PromotionRefused(f"{filename}: {target.name} holds {other}, the same "
                                       "distribution under another name")
            wanted.append(record)
        refuse_inconsistent(target.name, index, wanted)
        return wanted, skipped

    async def copy(self, source: HostedStack, target: HostedStack,
                   wanted: Sequence[FileRecord], promoter: str,
                   reveal: bool) -> tuple[Promotion, list[FileRecord]]:
        """
        Adopt all of C{wanted} into the target's storage or none, then index
        them there: the promotion and the records kept.

        @raise PromotionRefused: the target's storage holds or refuses one,
            or the source's no longer holds it.
        """
        stored = target.stored
        assert IAdoptingStorage.providedBy(stored)  # (every backend adopts)
        backend = unwrapped(source.stored)
        promotion = Promotion(source.name, promoter, self.clock.seconds())
        journal = PromotionJournal(uuid.uuid4().hex, source.name,
                                   tuple(r.replace(path=r.filename) for r in wanted))
        await _stored(partial(stored.keep_journal, journal.name, journal.to_bytes()), "")
        adopted: list[FileRecord] = []
        try:
            for record in wanted:
                adopted.append(await _stored(partial(stored.adopt, backend, record, promotion),
                                             record.filename, target.name, reveal))
            await _stored(partial(stored.drop_journal, journal.name), "")
        except BaseException:
            await _take_back(stored, journal, adopted)
            raise
        for record, kept in zip(wanted, adopted, strict=True):
            # (the source's very record, when storage keeps it as it is)
            target.index.add_promoted(record if kept == record else kept, promotion)
        return promotion, adopted


async def _take_back(stored: IAdoptingStorage, journal: PromotionJournal,
                     adopted: Sequence[FileRecord]) -> None:
    """
    Discard the files a failed promotion adopted, then its journal; a storage
    that fails here keeps the journal, for the next start to take back.
    """
    try:
        for record in reversed(adopted):
            await stored.discard_adopted(record)
        await stored.drop_journal(journal.name)
    except Exception as e:
        log.error("Cannot take back the promotion {name} now (the next start will): "
                  "{error}", name=journal.name, error=str(e))


def refuse_inconsistent(target: str, index: Index, wanted: Sequence[FileRecord]) -> None:
    """
    Refuse, as an upload would be, variant wheels (PEP 825) that disagree with
    those of the release the target holds (live or in its recycle bin).
    """
    taken: list[str] = []
    for record in wanted:
        if record.variant is None:
            continue
        try:
            # (and with those promoted with it: a folder's may disagree)
            check_joins(record.variant,
                        index.release_variants(record.project, record.version) + taken)
        except InvalidVariant as e:
            raise PromotionRefused(f"{record.filename}: {e}, in {target}") from None
        taken.append(record.variant)


def refuse_tags(source: HostedStack, target: HostedStack, project: str,
                records: Sequence[FileRecord]) -> None:
    """
    Refuse wheels the target's uploads might refuse for their tags: the source
    takes its project's wheels whatever their C{WHEEL} Tag lines
    (C{allow_tag_mismatch}) and the target does not; the archive is not read
    again to tell.

    @raise PromotionRefused: naming the key that lets them through.
    """
    if not any(record.packagetype == WHEEL for record in records):
        return
    if (source.uploads.current.allows_tag_mismatch(project)
            and not target.uploads.current.allows_tag_mismatch(project)):
        raise PromotionRefused(
            f"{project}: {source.name} takes its wheels whatever their WHEEL tags "
            f"(allow_tag_mismatch) and {target.name} does not; name the project in "
            f"{index_section(target.name)} allow_tag_mismatch to promote them")


def other_bytes(filename: str, target: str, sha256: str | None) -> PromotionRefused:
    """The refusal of a file the target holds with other bytes, naming their C{sha256} if given."""
    shown = f" (sha256 {sha256})" if sha256 is not None else ""
    return PromotionRefused(
        f"{filename}: {target} holds a file of that name with other bytes{shown}")


async def _stored(call: Callable[[], Deferred[_T]], filename: str, target: str = "",
                  reveal: bool = False) -> _T:
    """
    Await C{call()}, a storage call of a promotion (one that raises at once
    too), its refusals turned into L{PromotionRefused}; a L{StorageError}
    passes.
    """
    try:
        return await maybeDeferred(call)
    except FileExists as e:
        raise other_bytes(filename, target, e.sha256 if reveal else None)
    except FilenameDeleted:
        raise PromotionRefused(f"{filename}: a file of that name was deleted from {target}; "
                               "the name is never used again")
    except FileNotFoundError:
        raise PromotionRefused(
            f"{filename}: no longer stored in the index it is promoted from", gone=True)
    except RecordRefused as e:
        raise PromotionRefused(f"{filename}: {target} cannot keep it: {e}") from None
    except StorageError as e:
        log.error("Promotion failed on {filename}: {error}", filename=filename or "its journal",
                  error=str(e))
        raise
