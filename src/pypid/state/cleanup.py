"""
Cleanups of hosted indexes by their retention rules: a plan
(L{pypid.core.indexes.retention.make_plan}) over the index's live files and
download counts, and its application, each file into the index's recycle bin,
one at a time under the index's lock.

An application removes only what the plan listed and a plan made now still
lists: never a file uploaded after the plan, nor one downloaded, restored,
changed or removed since. Each file is binned by one write beside it, so an
interrupted application leaves every file live or binned, never half-removed;
applying again goes on. Two servers on a bucket applying at once bin a file
once: the second finds it binned, or writes the same state again.

L{RetentionSchedule} applies every index's rules every C{[retention] schedule}.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.config.retention_settings import RetentionConfig
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.retention import RetentionPlan, RetentionRules, make_plan
from pypid.core.records.audit_chain import Entry, format_time
from pypid.core.records.change_kinds import ChangeKind
from pypid.jobs.periodic import Periodic
from pypid.state.recycle_bin import RecycleBin, lock_key
from pypid.state.usage_log import UsageLog
from pypid.storage.base.interface import AlreadyBinned, FilenameDeleted
from pypid.storage.base.journal import IJournal

log = Logger()

#: C{removed(record, reason)}: told of each file an application removed.
Removed = Callable[[FileRecord, str], None]


class CountsNotRead(Exception):
    """A rule keeps what was downloaded, and the download counts are still being read."""


@attrs.frozen
class Applied:
    """What an application did: the files removed, and those of the request it left, with why."""

    removed: tuple[tuple[FileRecord, str], ...]
    skipped: tuple[tuple[str, str], ...]

    @property
    def size(self) -> int:
        return sum(record.size for record, _ in self.removed)


@attrs.define(eq=False)
class IndexCleanup:
    """One hosted index's rules, over its bin and its download counts."""

    name: str
    bin: RecycleBin
    usage: UsageLog | None
    rules: RetentionRules

    def plan(self, now: float | None = None) -> RetentionPlan:
        """
        What the rules remove now.

        @raise CountsNotRead: C{keep_downloaded} is set and the counts are unread.
        """
        now = self.bin.clock.seconds() if now is None else now
        usage = self.usage
        if self.rules.keep_downloaded and usage is not None and not usage.loaded:
            raise CountsNotRead(self.name)
        last = usage.last_downloaded if usage is not None else (lambda filename: None)
        return make_plan(self.name, ((p.name, p.files.values()) for p in self.bin.index.projects()),
                         self.rules, now, last)

    async def apply(self, requested: Collection[str] | None, removed: Removed) -> Applied:
        """Remove what a plan made now lists, of C{requested} filenames (L{None}: all of it)."""
        plan = self.plan()
        wanted = set(requested) if requested is not None else None
        done: list[tuple[FileRecord, str]] = []
        skipped: list[tuple[str, str]] = []
        listed = set()
        for removal in plan.removals:
            for record in removal.files:
                listed.add(record.filename)
                if wanted is not None and record.filename not in wanted:
                    continue
                why = await self.bin.locks.run(lock_key(record), self._remove, record)
                if why is None:
                    done.append((record, removal.reason))
                    removed(record, removal.reason)
                else:
                    skipped.append((record.filename, why))
        if wanted is not None:
            skipped += [(filename, "no rule removes it now")
                        for filename in sorted(wanted - listed)]
        return Applied(tuple(done), tuple(skipped))

    async def _remove(self, record: FileRecord) -> str | None:
        """Put C{record}'s file in the bin, if it is still as planned; why not, else."""
        if self.bin.index.get_file(record.filename) != record:
            return "changed or removed since the plan"
        try:
            await self.bin.put(record)
        except FilenameDeleted:
            self.bin.index.remove(record.filename)
            return "deleted by another server"
        except AlreadyBinned:
            return "put in the recycle bin by another server"
        return None


class RetentionSchedule(Periodic):
    """Applies every index's rules every C{interval} seconds, with an audit entry per file."""

    def __init__(self, cleanups: Mapping[str, IndexCleanup], audit: IJournal | None,
                 clock: IReactorTime, interval: float) -> None:
        Periodic.__init__(self, self._run, interval, clock, what="The retention schedule")
        self.cleanups = cleanups
        self.audit = audit

    @classmethod
    def from_config(cls, config: RetentionConfig, cleanups: Mapping[str, IndexCleanup],
                    audit: IJournal | None, clock: IReactorTime) -> RetentionSchedule | None:
        """The schedule of C{[retention] schedule}, or L{None} when it is off (the default)."""
        if not config.schedule:
            return None
        return cls(cleanups, audit, clock, config.schedule)

    async def _run(self) -> None:
        for name, cleanup in self.cleanups.items():
            if not cleanup.rules.removes:
                continue
            try:
                applied = await cleanup.apply(None, self._recorder(name))
            except CountsNotRead:
                log.info("Retention of {index} waits for the download counts", index=name)
                continue
            except Exception as e:
                log.warn("Retention of {index} stopped: {error}", index=name, error=str(e))
                continue
            if applied.removed:
                log.info("Retention removed {count} files ({size} bytes) from {index}",
                         count=len(applied.removed), size=applied.size, index=name)

    def _recorder(self, name: str) -> Removed:
        def removed(record: FileRecord, reason: str) -> None:
            if self.audit is not None:
                self.audit.queue(retention_entry(self.clock.seconds(), name, record, reason))
        return removed


def retention_entry(now: float, index: str, record: FileRecord, reason: str,
                    user: str | None = None, address: str | None = None) -> Entry:
    """The audit entry of a file a cleanup of C{index} removed."""
    return Entry(time=format_time(now), event=ChangeKind.RETENTION, user=user, address=address,
                 index=None if index == "default" else index, project=record.project,
                 version=record.version, filename=record.filename, sha256=record.sha256,
                 detail=reason)
