"""
Download counts: how often each file was downloaded, by day, and when it
last was.

Counting must cost the download path next to nothing: a download adds one
to a dict entry (L{UsageCounter.count}, about 0.2 us), and every few
seconds the counts are taken as one I{usage record} per UTC day
(L{UsageCounter.take}), written beside the files. A record is never
changed, and names its writer, so several instances on one bucket add up
rather than overwrite each other; a crash loses one interval's counts.

A writer later folds its records of a closed day into one that names
those it replaces (L{pypid.state.usage_log}), and a reader ignores a
replaced record (L{UsageBook.load}), so a crash between writing the fold
and removing the others counts nothing twice.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from pypid.core.util.bounded import put_newest

#: Days of counts kept by file (the pages show 30; rules may look back 90).
WINDOW_DAYS = 90

DAY = 86400

#: A record's name: C{<day>-<writer>-<sequence>}, or C{<day>-<writer>-all}
#: for a day folded (L{pypid.state.usage_log}).
_NAME = re.compile(r"^(\d{1,6})-([a-z0-9]{1,32})-(\d{1,12}|all)\Z")


class UsageInvalid(ValueError):
    """A usage record cannot be read; the message says why."""


def day_of(when: float) -> int:
    """The UTC day (days since the epoch) of the POSIX time C{when}."""
    return int(when // DAY)


def date_of(day: int) -> str:
    """The ISO date (C{2026-01-31}) of a UTC day number (L{day_of})."""
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=day)).isoformat()


def record_name(day: int, writer: str, sequence: int | None) -> str:
    """The name of a writer's record of C{day} (L{None}: the day folded)."""
    return f"{day}-{writer}-{'all' if sequence is None else sequence}"


def parse_name(name: str) -> tuple[int, str, int | None] | None:
    """C{(day, writer, sequence or None)} of a record's name, or L{None} for another name."""
    found = _NAME.match(name)
    if found is None:
        return None
    day, writer, sequence = found.groups()
    return int(day), writer, None if sequence == "all" else int(sequence)


@attrs.frozen
class UsageRecord:
    """
    One usage record: per file, the downloads counted on C{day} and the
    time of the last; C{replaces} names the records it folds.
    """

    day: int
    counts: Mapping[str, tuple[int, float]]
    replaces: tuple[str, ...] = ()

    def to_bytes(self) -> bytes:
        """The record's bytes (JSON)."""
        data: dict[str, Any] = {"day": self.day,
                                "files": {name: [count, last]
                                          for name, (count, last) in sorted(self.counts.items())}}
        if self.replaces:
            data["replaces"] = list(self.replaces)
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> UsageRecord:
        """Read a record; L{UsageInvalid} for anything that is not one."""
        try:
            value = json.loads(data)
            day = value["day"]
            files = value["files"]
            replaces = value.get("replaces", [])
            if (not isinstance(day, int) or isinstance(day, bool) or not isinstance(files, dict)
                    or not isinstance(replaces, list)
                    or not all(isinstance(name, str) for name in replaces)):
                raise ValueError("not a usage record")
            counts: dict[str, tuple[int, float]] = {}
            for name, (count, last) in files.items():
                if not isinstance(count, int) or isinstance(count, bool) or count < 0 \
                        or not isinstance(last, (int, float)) or isinstance(last, bool):
                    raise ValueError(f"the counts of {name!r} are not numbers")
                counts[name] = (count, float(last))
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise UsageInvalid(f"not a usage record: {e}")
        return cls(day, counts, tuple(replaces))


def merge(records: Iterable[UsageRecord], day: int,
          replaces: tuple[str, ...] = ()) -> UsageRecord:
    """One record of C{day} adding up C{records} (their counts summed, the last time kept)."""
    counts: dict[str, tuple[int, float]] = {}
    for record in records:
        for name, (count, last) in record.counts.items():
            kept = counts.get(name)
            counts[name] = (count, last) if kept is None else (kept[0] + count,
                                                               max(kept[1], last))
    return UsageRecord(day, counts, replaces)


@attrs.define
class UsageCounter:
    """The downloads counted since the last L{take}: C{filename -> [count, last time]} per day."""

    _pending: dict[int, dict[str, list[float]]] = attrs.field(factory=dict)

    def count(self, filename: str, when: float) -> None:
        """One download of C{filename} at C{when}."""
        day = int(when // DAY)
        files = self._pending.get(day)
        if files is None:
            files = self._pending[day] = {}
        kept = files.get(filename)
        if kept is None:
            files[filename] = [1, when]
        else:
            kept[0] += 1
            kept[1] = when

    def last_of(self, filename: str) -> float | None:
        """When C{filename} was last counted among the counts not taken yet, or L{None}."""
        times = [files[filename][1] for files in self._pending.values() if filename in files]
        return max(times) if times else None

    def __bool__(self) -> bool:
        return bool(self._pending)

    def take(self) -> list[UsageRecord]:
        """The counts gathered, one record a day, and start again from none."""
        pending, self._pending = self._pending, {}
        return [UsageRecord(day, {name: (int(count), last) for name, (count, last)
                                  in files.items()})
                for day, files in sorted(pending.items())]

    def give_back(self, records: Iterable[UsageRecord]) -> None:
        """Count again what a failed write did not keep (it is tried at the next interval)."""
        for record in records:
            files = self._pending.setdefault(record.day, {})
            for name, (count, last) in record.counts.items():
                kept = files.setdefault(name, [0, last])
                kept[0] += count
                kept[1] = max(kept[1], last)


#: The most downloads one client address adds to a file's count in a day: a
#: build farm behind one address installs a file a few times a day; a loop
#: of requests does not keep a file "downloaded".
MAX_PER_ADDRESS = 10

#: The most C{(address, file)} pairs a L{ClientBound} remembers in a day.
MAX_CLIENTS = 1 << 16


@attrs.define
class ClientBound:
    """
    What one client address may add to one file's downloads in a UTC day,
    so that one client cannot inflate a count: L{MAX_PER_ADDRESS} whole
    downloads, and one for all its ranged requests (a file fetched in
    pieces is downloaded once). At most L{MAX_CLIENTS} pairs, oldest out first.
    """

    limit: int = MAX_PER_ADDRESS
    max_entries: int = MAX_CLIENTS
    #: in a worker, the machine's tally of every worker's downloads
    #: (L{pypid.machine.ring.ChangeRing.admit}); L{None}: this process's own
    shared: Callable[[bytes, int, int], bool] | None = None
    _day: int = attrs.field(default=-1, init=False)
    #: (address, filename, ranged) -> downloads counted today
    _seen: dict[tuple[str | None, str, bool], int] = attrs.field(factory=dict, init=False)

    def admits(self, address: str | None, filename: str, when: float, ranged: bool) -> bool:
        """Whether one more download of C{filename} by C{address} at C{when} counts."""
        day = int(when // DAY)
        if day != self._day:
            self._seen.clear()
            self._day = day
        key = (address, filename, ranged)
        if self.shared is not None:
            return self._shared(key, day)
        seen = self._seen.pop(key, 0)
        if seen >= (1 if ranged else self.limit):
            self._seen[key] = seen
            return False
        put_newest(self._seen, key, seen + 1, self.max_entries)
        return True

    def _shared(self, key: tuple[str | None, str, bool], day: int) -> bool:
        """
        L{admits} on the machine's tally; a pair at its limit is remembered
        here for the day, so its later downloads cost no look at the tally.
        """
        assert self.shared is not None
        if key in self._seen:
            return False
        address, filename, ranged = key
        data = f"{address}\0{filename}\0{ranged:d}".encode("utf-8", "surrogateescape")
        if self.shared(data, day, 1 if ranged else self.limit):
            return True
        put_newest(self._seen, key, self.limit, self.max_entries)
        return False


@attrs.frozen
class FileUsage:
    """What is known of one file's downloads: by day (the window), and the last one."""

    days: dict[int, int]
    last: float

    def since(self, day: int) -> int:
        """Downloads on C{day} and after."""
        return sum(count for d, count in self.days.items() if d >= day)


@attrs.define
class UsageBook:
    """The downloads of one storage's files, as its usage records say, summed."""

    _files: dict[str, FileUsage] = attrs.field(factory=dict)
    #: moves at every change (pages showing counts are kept by it)
    stamp: int = 0
    #: the first day of the window at the last L{_trim}
    _first_day: int = attrs.field(default=0, init=False)

    def load(self, records: Mapping[str, UsageRecord], today: int) -> None:
        """Sum C{records} (by name), leaving out those another one replaces and those too old."""
        replaced = {name for record in records.values() for name in record.replaces}
        self._files = {}
        self._first_day = today - WINDOW_DAYS + 1
        self.stamp += 1
        for name, record in records.items():
            if name not in replaced:
                self.add(record, today)

    def add(self, record: UsageRecord, today: int) -> None:
        """Add one record's counts (its days out of the window count only for the last time)."""
        if today - WINDOW_DAYS + 1 > self._first_day:
            self._trim(today - WINDOW_DAYS + 1)
        inside = record.day > today - WINDOW_DAYS
        files = self._files
        self.stamp += 1
        for name, (count, last) in record.counts.items():
            usage = files.get(name)
            if usage is None:
                usage = files[name] = FileUsage({}, last)
            elif last > usage.last:
                usage = files[name] = FileUsage(usage.days, last)
            if inside:
                usage.days[record.day] = usage.days.get(record.day, 0) + count

    def _trim(self, first: int) -> None:
        """
        Drop the days before C{first}, and the files left with none, as a
        restart would: else a server kept every day of every file it ever
        served. Once a day: 1.6 us a file of 90 days (30 ms for 20,000 files).
        """
        self._first_day = first
        for name, usage in list(self._files.items()):
            days = usage.days
            for day in [day for day in days if day < first]:
                del days[day]
            if not days:
                del self._files[name]

    def of(self, filename: str) -> FileUsage | None:
        """What is known of C{filename}'s downloads, or L{None} (none kept)."""
        return self._files.get(filename)

    def downloads(self, filenames: Iterable[str], days: int, today: int) -> int:
        """The downloads of C{filenames} over the last C{days} days (today included)."""
        first = today - days + 1
        return sum(usage.since(first) for usage in map(self._files.get, filenames)
                   if usage is not None)

    def total(self, days: int, today: int) -> int:
        """Every download over the last C{days} days, deleted files' too: what the index served."""
        return self.downloads(self._files, days, today)

    def last_downloaded(self, filename: str) -> float | None:
        """When C{filename} was last downloaded, or L{None}."""
        usage = self._files.get(filename)
        return usage.last if usage is not None else None

    def daily(self, filenames: Iterable[str], days: int, today: int) -> list[int]:
        """The downloads of C{filenames} on each of the last C{days} days, oldest first."""
        first = today - days + 1
        counts = [0] * days
        for filename in filenames:
            usage = self._files.get(filename)
            if usage is None:
                continue
            for day, count in usage.days.items():
                if first <= day <= today:
                    counts[day - first] += count
        return counts

    def summary(self, filenames: Iterable[str], today: int) -> dict[str, int]:
        """The legacy JSON API's C{downloads}: C{last_day}, C{last_week}, C{last_month}."""
        names = list(filenames)
        return {"last_day": self.downloads(names, 1, today),
                "last_week": self.downloads(names, 7, today),
                "last_month": self.downloads(names, 30, today)}

    def ranked(self, filenames: Iterable[str], days: int, today: int,
               most: bool = True) -> list[tuple[str, int, float | None]]:
        """
        C{(filename, downloads over the last C{days} days, last download)},
        the most (or least) downloaded first, then by name.
        """
        first = today - days + 1
        rows = []
        for filename in filenames:
            usage = self._files.get(filename)
            rows.append((filename, usage.since(first) if usage else 0,
                         usage.last if usage else None))
        rows.sort(key=lambda row: ((-row[1] if most else row[1]), row[0]))
        return rows
