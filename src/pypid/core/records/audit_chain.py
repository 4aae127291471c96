"""
The audit log's pure parts: what an entry says, how a writer's entries are
chained, and how a chain is checked.

An entry is one line of JSON (sorted keys, ASCII only, so its bytes are
the same on every machine) whose C{prev} is the SHA-256 of the line its
writer wrote before it: the line before in the file, or, for a day's first
line, the last line of the writer's previous day (L{None} only for the
writer's very first entry). So an entry removed, edited or moved, a day's
file removed, or lines cut from the end of a day that has a successor,
breaks a link that L{verify_lines} and L{verify_files} name. Without a
secret key this is evidence against slips and clumsy edits, not against
someone who rewrites every later entry; and nothing links to the newest
entry, so it can be cut without a trace in the files (the running server
notices when it writes next: L{pypid.storage.base.journal}).

Times are text, C{yyyy-mm-ddThh:mm:ss.ffffffZ} in UTC (PEP 700's form),
which sorts as the times do, and an entry's day (its file) is the first
ten characters.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import cast

import attrs

from pypid.core.dists.model import cut_text, format_upload_time
from pypid.core.records.change_kinds import EVENT_KINDS, ChangeKind, kind_of

#: Outcomes: done; refused (a 4xx: not allowed, not found, a conflict);
#: failed (the server could not do it: storage or upstream down).
OK, REFUSED, FAILED = "ok", "refused", "failed"
OUTCOMES = (OK, REFUSED, FAILED)

#: The most UTF-8 bytes of one text field: a line stays small whatever a
#: client sends (a user name typed by an attacker, a long yank reason).
FIELD_BYTES = 300

_TEXT_FIELDS = ("user", "login", "token", "address", "index", "project", "version",
                "filename", "sha256", "target", "detail", "id")
_DAY = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z")


class AuditError(ValueError):
    """An entry, or a query value, cannot be used; the message says why."""


#: The text of a POSIX time, as entries keep it.
format_time = format_upload_time


#: The first year a query may name: no entry is older than POSIX time 0,
#: and an older year would not be written with four digits everywhere.
FIRST_YEAR = 1970


def _canonical(when: datetime.datetime) -> str:
    """The canonical text of an aware UTC C{datetime} (four-digit year, always)."""
    return (f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:"
            f"{when.minute:02d}:{when.second:02d}.{when.microsecond:06d}Z")


def parse_time(text: str) -> str:
    """
    The canonical text of an ISO 8601 date or time (UTC without an offset),
    from 1970 to 9999.

    @raise AuditError: when C{text} is not such a time.
    """
    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise AuditError(f"expected a date or time such as 2026-01-31 or "
                         f"2026-01-31T12:00:00Z, not {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    utc: datetime.datetime | None
    try:
        utc = when.astimezone(datetime.UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or utc.year < FIRST_YEAR:
        raise AuditError(f"expected a time from {FIRST_YEAR} to 9999, not {text!r}")
    return _canonical(utc)


def _parse_canonical(time_text: str) -> datetime.datetime:
    """
    The naive UTC time of an entry's canonical text (L{_canonical}).

    C{fromisoformat}, not C{strptime}: each webhook event reads its entry's
    time, and C{strptime} took 8 us, C{fromisoformat} 0.2; the shape is
    checked first, so that only the canonical text is read.
    """
    if len(time_text) != 27 or time_text[10] != "T" or time_text[19] != "." \
            or time_text[26] != "Z":
        raise ValueError(f"not an entry's time: {time_text!r}")
    return datetime.datetime.fromisoformat(time_text).replace(tzinfo=None)


def after(time_text: str) -> str:
    """The time one microsecond after C{time_text} (where a next page starts)."""
    return _canonical(_parse_canonical(time_text) + datetime.timedelta(microseconds=1))


def start_of(day: str) -> str:
    """The first time of C{day} (C{yyyy-mm-dd})."""
    return f"{day}T00:00:00.000000Z"


def day_plus(day: str, days: int) -> str:
    """The day C{days} after C{day} (C{yyyy-mm-dd}; before it, for a negative count)."""
    return (datetime.date.fromisoformat(day) + datetime.timedelta(days=days)).isoformat()


def day_of(time_text: str) -> str:
    """The day (C{yyyy-mm-dd}, UTC) of an entry's time: which file it is in."""
    return time_text[:10]


def is_day(text: str) -> bool:
    """Whether C{text} names a day as the files are named (C{yyyy-mm-dd})."""
    return bool(_DAY.match(text))


def text(value: object) -> str | None:
    """C{value} as an entry's text field keeps it: cut to L{FIELD_BYTES}; L{None} stays."""
    return cut_text(str(value), FIELD_BYTES) if value is not None else None


@attrs.frozen
class Entry:
    """
    One entry of the journal (what the audit log shows).

    @ivar event: its L{ChangeKind} (a plain string is taken as the kind it names).
    @ivar user: who (the user a password or a token acts for); for failed
        logins, only a name that is a user's (people type passwords into
        the user field), else L{None}.
    @ivar address: the client's address, as the login throttle sees it.
    @ivar index: the named index a change was made in; L{None} for the
        default index and for what concerns no index (logins, tokens), so
        their lines, and the chain over them, stay as before indexes existed.
    @ivar target: what else the change was about (a token's id).
    @ivar detail: a short human text: the yank reason, the refusal.
    @ivar count: how many events this entry stands for (folded failed logins).
    @ivar prev: the link to the line before (see the module); set when written.
    @ivar login: where C{user} logged in
        (L{pypid.core.access.outside_logins.SOURCES}): a person is a source
        and a name.
    @ivar id: the id of the webhook event the entry is (the C{webhook-id}
        a receiver got), set with the serial for the kinds a webhook may
        be told of.
    @ivar serial: its place in the journal, from 1; set when it is written
        (L{number}); L{None} for lines written before there was a journal.
    """

    time: str
    event: ChangeKind = attrs.field(converter=ChangeKind)
    outcome: str = OK
    user: str | None = attrs.field(default=None, converter=text)
    token: str | None = attrs.field(default=None, converter=text)
    address: str | None = attrs.field(default=None, converter=text)
    index: str | None = attrs.field(default=None, converter=text, kw_only=True)
    project: str | None = attrs.field(default=None, converter=text)
    version: str | None = attrs.field(default=None, converter=text)
    filename: str | None = attrs.field(default=None, converter=text)
    sha256: str | None = attrs.field(default=None, converter=text)
    target: str | None = attrs.field(default=None, converter=text)
    detail: str | None = attrs.field(default=None, converter=text)
    count: int = 1
    prev: str | None = None
    login: str | None = attrs.field(default=None, converter=text, kw_only=True)
    id: str | None = attrs.field(default=None, converter=text, kw_only=True)
    serial: int | None = attrs.field(default=None, kw_only=True)

    def to_json(self) -> dict[str, str | int | None]:
        """The entry as JSON-ready data: fields that say nothing are left out."""
        data: dict[str, str | int | None] = {"time": self.time, "event": str(self.event),
                                             "outcome": self.outcome}
        if self.serial is not None:
            data["serial"] = self.serial
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.count != 1:
            data["count"] = self.count
        data["prev"] = self.prev
        return data

    def public(self) -> dict[str, str | int | None]:
        """What the HTTP API shows: everything but the chain link."""
        data = self.to_json()
        del data["prev"]
        return data

    @classmethod
    def from_json(cls, data: object) -> Entry:
        """
        The entry a line's data describes.

        @raise AuditError: when it is not an entry.
        """
        if not isinstance(data, dict):
            raise AuditError("not a JSON object")
        try:
            time, event, outcome = data["time"], data["event"], data.get("outcome", OK)
        except KeyError as e:
            raise AuditError(f"no {e.args[0]!r}") from None
        if not isinstance(time, str) or len(time) != 27 or not is_day(time[:10]):
            raise AuditError("time: not a time")
        try:
            if not isinstance(event, str):
                raise ValueError(event)
            kind = kind_of(event)
        except ValueError:
            raise AuditError(f"event: unknown event {event!r}") from None
        if outcome not in OUTCOMES:
            raise AuditError(f"outcome: unknown outcome {outcome!r}")
        fields: dict[str, str | None] = {}
        for name in _TEXT_FIELDS:
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise AuditError(f"{name}: not text")
            fields[name] = value
        count, prev, serial = data.get("count", 1), data.get("prev"), data.get("serial")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise AuditError("count: not a positive number")
        if prev is not None and not (isinstance(prev, str) and len(prev) == 64):
            raise AuditError("prev: not a SHA-256")
        if serial is not None and (not isinstance(serial, int) or isinstance(serial, bool)
                                   or serial < 1):
            raise AuditError("serial: not a positive number")
        return cls(time=time, event=kind, outcome=outcome, count=count, prev=prev,
                   serial=serial, **fields)


def encode(entry: Entry) -> bytes:
    """The line of an entry (without its newline): the bytes its successor's link covers."""
    return json.dumps(entry.to_json(), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


def link(line: bytes) -> str:
    """The link to C{line} (its bytes, without the newline) its successor carries."""
    return hashlib.sha256(line).hexdigest()


def chain(entries: Iterable[Entry], head: str | None) -> tuple[list[bytes], str | None]:
    """
    C{(lines, new head)}: the lines (without newlines) of C{entries}
    appended after a line whose link is C{head} (L{None}: a chain's start).
    """
    lines: list[bytes] = []
    for entry in entries:
        line = encode(attrs.evolve(entry, prev=head))
        lines.append(line)
        head = link(line)
    return lines, head


def is_event(entry: Entry) -> bool:
    """Whether C{entry} reports a change a webhook may be told of (an event with an id)."""
    if entry.event not in EVENT_KINDS:
        return False
    return entry.outcome == OK or (entry.event == ChangeKind.RELOAD and entry.outcome == REFUSED)


def event_id(milliseconds: int, tail: str) -> str:
    """
    An event's id: C{evt_}, the time in milliseconds, then hex (the entry's
    serial): a store's ids sort as its entries were made, and name their day.
    """
    return f"evt_{milliseconds:013d}_{tail}"


def milliseconds(time_text: str) -> int:
    """The POSIX time of an entry's time, in milliseconds."""
    when = _parse_canonical(time_text).replace(tzinfo=datetime.UTC)
    return int(when.timestamp() * 1000)


#: The serial of what a store held before its journal's first entry: a
#: project no entry names carries it, so a mirror that took it sees every
#: later change as newer (the public index never serves a serial of 0 either).
BEGINNING = 1


def number(entries: Sequence[Entry], first: int) -> list[Entry]:
    """
    C{entries} with their serials from C{first} on, and each event
    (L{is_event}) its id; the files of one promoted release, written
    together, share the first one's id and so make one event.
    """
    numbered: list[Entry] = []
    releases: dict[tuple[str | None, ...], str] = {}
    for offset, entry in enumerate(entries):
        serial = first + offset
        id = entry.id
        if id is None and is_event(entry):
            release = ((entry.index, entry.target, entry.project, entry.version)
                       if entry.event == ChangeKind.PROMOTE else None)
            id = releases.get(release) if release is not None else None
            if id is None:
                id = event_id(milliseconds(entry.time), f"{serial:x}")
                if release is not None:
                    releases[release] = id
        numbered.append(attrs.evolve(entry, serial=serial, id=id))
    return numbered


def decode(line: bytes) -> Entry:
    """The entry of one line; L{AuditError} when it is not one."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as e:
        raise AuditError(f"not JSON ({e})") from None
    return Entry.from_json(data)


@attrs.frozen
class Broken:
    """A broken link of a chain: C{name} (a file, or an object), a line (1-based), why."""

    name: str
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.name}: line {self.line}" if self.line else self.name
        return f"{where}: {self.reason}"


@attrs.frozen
class Note:
    """What a check found that is not a broken link: the entries before were pruned."""

    name: str
    text: str

    def __str__(self) -> str:
        return f"{self.name}: {self.text}"


@attrs.frozen
class Checked:
    """What L{verify_lines} found in one file (or object) of a chain."""

    entries: list[Entry]
    broken: list[Broken]
    head: str | None


def split_lines(data: bytes) -> list[bytes]:
    """The lines of a file's bytes, without newlines; a last one cut short is a line too."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def verify_lines(name: str, data: bytes, head: str | None = None, before: str | None = None,
                 ) -> Checked:
    """
    Check the chain of one file's (or object's) bytes, whose first line
    must link to C{head}. A line that is not an entry is reported, and the
    chain goes on from its bytes: one mangled line is one report, not a
    cascade.

    @param before: the name of what C{head} is the last line of, for reports.
    """
    entries: list[Entry] = []
    broken: list[Broken] = []
    number = 0
    for number, line in enumerate(split_lines(data), 1):
        try:
            entry = decode(line)
        except AuditError as e:
            broken.append(Broken(name, number, f"not an audit entry: {e}"))
        else:
            entries.append(entry)
            if entry.prev != head:
                broken.append(Broken(name, number, _unlinked(number, head, before)))
        head = link(line)
    if data and not data.endswith(b"\n"):
        broken.append(Broken(name, number, "the last line is cut short"))
    return Checked(entries, broken, head)


def _unlinked(number: int, head: str | None, before: str | None) -> str:
    if number == 1:
        if before is not None:
            return (f"does not follow the last entry of {before}: entries at its end were "
                    "removed or edited, or what came between them was removed")
        if head is None:
            return ("the first entry of the file names an entry before it: "
                    "the file's first entries were removed")
        return "does not follow the object before it: an object was removed or edited"
    before_line = number - 1
    return (f"does not follow line {before_line}: line {before_line} was edited, or entries "
            f"between them were removed, or entries were moved")


def first_entry(data: bytes) -> Entry | None:
    """The first entry of a file's bytes, or L{None} (empty, or not an entry)."""
    lines = split_lines(data)
    if lines:
        try:
            return decode(lines[0])
        except AuditError:
            pass
    return None


def pruned(name: str, data: bytes) -> Note | None:
    """
    The L{Note} for the oldest kept file of a chain when its first entry
    links to one not kept (pruned, or removed: they cannot be told apart).
    """
    first = first_entry(data)
    if first is None or first.prev is None:
        return None
    return Note(name, f"entries before {first.time} are not kept (pruned)")


@attrs.frozen
class ChainReport:
    """What L{verify_files} found: entries read, broken links, notes."""

    entries: int
    broken: list[Broken]
    notes: list[Note]


def verify_files(files: Iterable[tuple[str, bytes]]) -> ChainReport:
    """
    Check one writer's chain through its C{(name, bytes)} files, oldest
    first. The oldest file's first link cannot be checked (what it names is
    not kept), and is a L{Note} when it names one.
    """
    entries = 0
    broken: list[Broken] = []
    notes: list[Note] = []
    head: str | None = None
    before: str | None = None
    for number, (name, data) in enumerate(files):
        if number == 0:
            note = pruned(name, data)
            if note is not None:
                notes.append(note)
                head = cast(Entry, first_entry(data)).prev  # (a note: it has one)
        checked = verify_lines(name, data, head, before)
        entries += len(checked.entries)
        broken += checked.broken
        head = checked.head
        if data:
            before = name
    return ChainReport(entries, broken, notes)


def verify_writers(files: Iterable[tuple[str, bytes]]) -> ChainReport:
    """
    Check the C{(name, bytes)} files of another server's log as a bundle
    carries them: a local log's day files (C{YYYY-MM-DD.jsonl}) are one
    chain; an S3 log's batches (C{YYYY-MM-DD/<instance>/<n>.jsonl}) one per
    instance, in day and number order; a bucket's journal
    (C{journal/<serial>.jsonl}) one, in the order of its serials.
    """
    # instance (None: a local log's) -> ((day, number) or name, name, bytes)
    writers: dict[str | None, list[tuple[tuple[str, int] | str, str, bytes]]] = {}
    for name, data in files:
        parts = name.split("/")
        if len(parts) == 2 and parts[0] == "journal" and parts[1][:-len(".jsonl")].isdigit():
            writers.setdefault("journal", []).append(((parts[1], 0), name, data))
        elif len(parts) == 3 and parts[2][:-len(".jsonl")].isdigit():
            day, instance, number = parts[0], parts[1], int(parts[2][:-len(".jsonl")])
            writers.setdefault(instance, []).append(((day, number), name, data))
        else:
            writers.setdefault(None, []).append((name, name, data))
    reports = [verify_files((name, data) for _key, name, data in sorted(found))
               for _writer, found in sorted(writers.items(), key=lambda item: item[0] or "")]
    return ChainReport(sum(r.entries for r in reports), [b for r in reports for b in r.broken],
                       [n for r in reports for n in r.notes])
