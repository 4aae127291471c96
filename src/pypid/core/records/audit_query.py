"""
Which audit entries a reader wants: a L{Query} (from a URL's or a command
line's text, L{make_query}), and the L{EntryPage} a log answers with,
gathered a day's file at a time (L{select}) and bounded in the days and
entries one request reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import attrs

from pypid.core.dists.names import normalize
from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.indexes.index_names import NAME as INDEX_NAME
from pypid.core.records.audit_chain import (
    AuditError,
    Entry,
    after,
    day_of,
    day_plus,
    format_time,
    parse_time,
    start_of,
)
from pypid.core.records.change_kinds import UNSHOWN_KINDS, ChangeKind

#: A webhook event's id (L{pypid.core.records.audit_chain.event_id}): its milliseconds.
_EVENT_ID = re.compile(r"\Aevt_(\d{13})_[0-9a-f]{1,32}\Z")

#: The most entries one query answers (C{limit}'s ceiling), and its default.
MAX_LIMIT = 10000
DEFAULT_LIMIT = 1000

#: The most days' files and entries one query reads: past either (checked
#: after each day), it answers what it found with the cursor of the rest,
#: so a filter that matches nothing never reads years of log in one request.
MAX_DAYS_READ = 31
MAX_ENTRIES_READ = 100_000


@attrs.frozen
class Query:
    """
    Which entries a reader wants (L{None}: any).

    @ivar since: the canonical time from which (inclusive); L{None}: the
        newest C{limit} entries.
    @ivar before: the canonical time before which (exclusive).
    @ivar index: an index's name: C{default} asks for the entries that name
        no index (the default index's, and logins and tokens).
    @ivar limit: the most entries answered (ties at the last time are
        added, so that the next page, from just after it, misses none).
    """

    since: str | None = None
    before: str | None = None
    project: str | None = None
    user: str | None = None
    event: str | None = None
    limit: int = DEFAULT_LIMIT
    index: str | None = None
    #: the id of a webhook event (the entries it was made of)
    id: str | None = None

    def wants(self, entry: Entry) -> bool:
        """Whether C{entry} is one of those asked for."""
        return ((self.since is None or entry.time >= self.since)
                and (self.before is None or entry.time < self.before)
                and (self.project is None or entry.project == self.project)
                and (self.user is None or entry.user == self.user)
                and (entry.event == self.event if self.event is not None
                     else entry.event not in UNSHOWN_KINDS)
                and (self.index is None or (entry.index or DEFAULT_INDEX) == self.index)
                and (self.id is None or entry.id == self.id))

    def days(self, days: Iterable[str]) -> list[str]:
        """
        Of C{days} (the files' C{yyyy-mm-dd}), those that may hold a wanted
        entry: oldest first with C{since}, newest first without.
        """
        first = day_of(self.since) if self.since is not None else None
        last = None
        if self.before is not None:
            last = day_of(self.before)
            if self.before == start_of(last):
                last = day_plus(last, -1)
        kept = sorted(d for d in set(days)
                      if (first is None or d >= first) and (last is None or d <= last))
        return kept if self.since is not None else kept[::-1]


def make_query(since: str | None = None, project: str | None = None, user: str | None = None,
               event: str | None = None, limit: str | int | None = None,
               before: str | None = None, index: str | None = None,
               id: str | None = None) -> Query:
    """
    A L{Query} from text values, checked. An C{id} (a webhook event's)
    names its time: without C{since} and C{before}, the entries of the
    minute before it to the day after are read.

    @raise AuditError: as C{"name: why"}.
    """
    values: dict[str, str] = {}
    for name, text in (("since", since), ("before", before)):
        if text:
            try:
                values[name] = parse_time(text)
            except AuditError as e:
                raise AuditError(f"{name}: {e}") from None
    if project:
        values["project"] = normalize(project)
    if user:
        values["user"] = user
    if index:
        if not INDEX_NAME.match(index):
            raise AuditError(f"index: {index!r} is not an index name")
        values["index"] = index
    if event:
        if event not in set(ChangeKind):
            raise AuditError(f"event: expected one of {', '.join(ChangeKind)}")
        values["event"] = event
    if id:
        found = _EVENT_ID.match(id)
        if found is None:
            raise AuditError("id: expected a webhook event's id, such as "
                             "evt_1790000000000_0123456789")
        values["id"] = id
        if not since and not before:
            made = int(found.group(1)) / 1000
            values["since"] = format_time(made - 60)
            values["before"] = format_time(made + 86400)
    count = DEFAULT_LIMIT  # (Query's default)
    if limit is not None and limit != "":
        try:
            count = int(limit)
        except ValueError:
            raise AuditError(f"limit: expected a whole number, not {limit!r}") from None
        if not 1 <= count <= MAX_LIMIT:
            raise AuditError(f"limit: expected a number from 1 to {MAX_LIMIT}")
    return Query(**values, limit=count)


@attrs.frozen
class EntryPage:
    """
    The answer to a L{Query}: C{entries}, oldest first, and the cursor of
    the rest (L{None}: nothing more): with C{since}, C{next}, the following
    page's C{since}; without, C{before}, the older page's C{before}.
    """

    entries: list[Entry]
    next: str | None = None
    before: str | None = None


@attrs.define
class Selection:
    """Gathers a L{Query}'s entries a day at a time, until enough are found or the bounds read."""

    query: Query
    max_days: int = MAX_DAYS_READ
    max_entries: int = MAX_ENTRIES_READ
    _found: list[Entry] = attrs.field(factory=list)
    _days: list[str] = attrs.field(factory=list)
    _read: int = 0

    def take(self, day: str, entries: Sequence[Entry]) -> bool:
        """Take C{day}'s entries (in any order); whether to stop reading now."""
        self._days.append(day)
        self._read += len(entries)
        self._found += [e for e in entries if self.query.wants(e)]
        return (len(self._found) >= self.query.limit or len(self._days) >= self.max_days
                or self._read >= self.max_entries)

    def result(self, more: bool) -> EntryPage:
        """The L{EntryPage}; C{more}: whether days that may hold wanted entries were left unread."""
        query = self.query
        found = sorted(self._found, key=lambda e: e.time)
        if query.since is not None:
            if len(found) > query.limit:
                last = found[query.limit - 1].time
                return EntryPage([e for e in found if e.time <= last], next=after(last))
            return EntryPage(found, next=start_of(day_plus(self._days[-1], 1)) if more else None)
        if len(found) > query.limit:
            first = found[-query.limit].time
            return EntryPage([e for e in found if e.time >= first], before=first)
        return EntryPage(found, before=start_of(self._days[-1]) if more else None)


def select(query: Query, days: Iterable[str], entries_of: Callable[[str], Sequence[Entry]],
           ) -> EntryPage:
    """The L{EntryPage} of C{query}, reading each day needed with C{entries_of(day)}."""
    selection = Selection(query)
    order = query.days(days)
    for number, day in enumerate(order, 1):
        if selection.take(day, entries_of(day)):
            return selection.result(more=number < len(order))
    return selection.result(more=False)
