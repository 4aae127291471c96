"""
The audit log's pure parts: what an entry says, how the entries of one file
are chained, how a chain is checked, which entries a query wants, and how a
flood of failed logins is folded into a bounded number of entries.

An entry is one line of JSON (sorted keys, ASCII only, so the bytes of a
line are the same on every machine). Each line carries, in C{prev}, the
SHA-256 of the bytes of the line before it in the same file (L{None} for
the first line of a file). So an entry removed, edited, or moved breaks a
link that L{verify_lines} names. A chain without a secret key is evidence
against slips and clumsy edits, not against someone who rewrites every
line after the one they changed; and the last lines of a file can be cut
without a trace in the file itself (the running server notices when it
writes next: L{pypid.storage.audit}).

Times are kept as text, C{yyyy-mm-ddThh:mm:ss.ffffffZ} in UTC (the form of
PEP 700's upload times), which sorts as the times do: queries compare them
as strings, and an entry's day (its file) is the first ten characters.
"""

import datetime
import hashlib
import json
import re

import attrs

from pypid.core.model import cut_text, format_upload_time
from pypid.core.names import normalize

#: The kinds of entry. Changes: C{upload}, C{yank}, C{unyank}, C{delete},
#: C{token-issued}, C{token-revoked}, C{refresh} (an upstream page fetched
#: again on request), C{precache} (upstream files pinned by a requirements
#: file); logins: C{login-failed}, C{login-throttled}.
EVENTS = ("upload", "yank", "unyank", "delete", "token-issued", "token-revoked", "refresh",
          "precache", "login-failed", "login-throttled")
LOGIN_EVENTS = ("login-failed", "login-throttled")

#: Outcomes: done; refused (a 4xx: not allowed, not found, a conflict);
#: failed (the server could not do it: storage or upstream down).
OK, REFUSED, FAILED = "ok", "refused", "failed"
OUTCOMES = (OK, REFUSED, FAILED)

#: The most UTF-8 bytes of one text field: a line stays small whatever a
#: client sends (a user name typed by an attacker, a long yank reason).
FIELD_BYTES = 300

_TEXT_FIELDS = ("user", "token", "address", "project", "version", "filename", "sha256",
                "target", "detail")
_DAY = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z")


class AuditError(ValueError):
    """An entry, or a query value, cannot be used; the message says why."""


def format_time(seconds):
    """The text of a POSIX time, as entries keep it."""
    return format_upload_time(seconds)


def parse_time(text):
    """
    The canonical text of a time given as ISO 8601 (a date, or a date and a
    time; without an offset it is UTC).

    @raise AuditError: when C{text} is not such a time.
    """
    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise AuditError(f"expected a date or time such as 2026-01-31 or "
                         f"2026-01-31T12:00:00Z, not {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def after(time_text):
    """The time one microsecond after C{time_text} (where a next page starts)."""
    when = datetime.datetime.strptime(time_text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return (when + datetime.timedelta(microseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def day_of(time_text):
    """The day (C{yyyy-mm-dd}, UTC) of an entry's time: which file it is in."""
    return time_text[:10]


def is_day(text):
    """Whether C{text} names a day as the files are named (C{yyyy-mm-dd})."""
    return bool(_DAY.match(text))


def _text(value):
    return cut_text(str(value), FIELD_BYTES) if value is not None else None


@attrs.frozen
class Entry:
    """
    One audit entry.

    @ivar time: when, as L{format_time} writes it.
    @ivar event: one of L{EVENTS}.
    @ivar outcome: one of L{OUTCOMES}.
    @ivar user: who (the user a password or a token acts for); for failed
        logins, only a name that is a user's (people type passwords into
        the user field), else L{None}.
    @ivar token: the id of the token the request used, if any.
    @ivar address: the client's address, as the login throttle sees it.
    @ivar project: the normalized project, where one applies.
    @ivar target: what else the change was about: the id of the token
        issued or revoked.
    @ivar detail: a short human text: the yank reason, the refusal.
    @ivar count: how many events this entry stands for (failed logins
        folded together: see L{LoginFailures}).
    @ivar prev: the SHA-256 (hex) of the line before in the same file, or
        L{None} for a file's first line; set when the entry is written.
    """

    time: str
    event: str
    outcome: str = OK
    user: str | None = attrs.field(default=None, converter=_text)
    token: str | None = attrs.field(default=None, converter=_text)
    address: str | None = attrs.field(default=None, converter=_text)
    project: str | None = attrs.field(default=None, converter=_text)
    version: str | None = attrs.field(default=None, converter=_text)
    filename: str | None = attrs.field(default=None, converter=_text)
    sha256: str | None = attrs.field(default=None, converter=_text)
    target: str | None = attrs.field(default=None, converter=_text)
    detail: str | None = attrs.field(default=None, converter=_text)
    count: int = 1
    prev: str | None = None

    def to_json(self):
        """The entry as JSON-ready data: fields that say nothing are left out."""
        data = {"time": self.time, "event": self.event, "outcome": self.outcome}
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.count != 1:
            data["count"] = self.count
        data["prev"] = self.prev
        return data

    def public(self):
        """What the HTTP API shows: everything but the chain link."""
        data = self.to_json()
        del data["prev"]
        return data

    @classmethod
    def from_json(cls, data):
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
        if event not in EVENTS:
            raise AuditError(f"event: unknown event {event!r}")
        if outcome not in OUTCOMES:
            raise AuditError(f"outcome: unknown outcome {outcome!r}")
        fields = {}
        for name in _TEXT_FIELDS:
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise AuditError(f"{name}: not text")
            fields[name] = value
        count, prev = data.get("count", 1), data.get("prev")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise AuditError("count: not a positive number")
        if prev is not None and not (isinstance(prev, str) and len(prev) == 64):
            raise AuditError("prev: not a SHA-256")
        return cls(time=time, event=event, outcome=outcome, count=count, prev=prev, **fields)


def encode(entry):
    """The line of an entry (without its newline): the bytes its successor's link covers."""
    return json.dumps(entry.to_json(), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


def link(line):
    """The link to C{line} (its bytes, without the newline) its successor carries."""
    return hashlib.sha256(line).hexdigest()


def chain(entries, head):
    """
    The lines of C{entries} appended after a line whose link is C{head}
    (L{None} at the start of a file).

    @return: C{(lines, new head)}; each line without its newline.
    """
    lines = []
    for entry in entries:
        line = encode(attrs.evolve(entry, prev=head))
        lines.append(line)
        head = link(line)
    return lines, head


def decode(line):
    """
    The entry of one line.

    @raise AuditError: when the line is not an entry.
    """
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

    def __str__(self):
        where = f"{self.name}: line {self.line}" if self.line else self.name
        return f"{where}: {self.reason}"


@attrs.frozen
class Checked:
    """What L{verify_lines} found in one file (or object) of a chain."""

    entries: list
    broken: list
    head: str | None


def split_lines(data):
    """
    The lines of a file's bytes, without their newlines; a last line with no
    newline (a write cut short) is a line too.
    """
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def verify_lines(name, data, head=None):
    """
    Check the chain of one file's bytes (or of one object continuing a
    chain whose last link is C{head}).

    Each line must be an entry whose C{prev} is the link of the line before
    (C{head} for the first). A line that is not an entry is reported, and
    the chain goes on from its bytes, so one torn or mangled line is one
    report, not a cascade.

    @return: a L{Checked}.
    """
    entries, broken = [], []
    number = 0
    for number, line in enumerate(split_lines(data), 1):
        try:
            entry = decode(line)
        except AuditError as e:
            broken.append(Broken(name, number, f"not an audit entry: {e}"))
        else:
            entries.append(entry)
            if entry.prev != head:
                broken.append(Broken(name, number, _unlinked(number, head)))
        head = link(line)
    if data and not data.endswith(b"\n"):
        broken.append(Broken(name, number, "the last line is cut short"))
    return Checked(entries, broken, head)


def _unlinked(number, head):
    if number == 1:
        if head is None:
            return ("the first entry of the file names an entry before it: "
                    "the file's first entries were removed")
        return "does not follow the object before it: an object was removed or edited"
    before = number - 1
    return (f"does not follow line {before}: line {before} was edited, or entries "
            f"between them were removed, or entries were moved")


# -- queries ---------------------------------------------------------------------------------


#: The most entries one query answers (C{limit}'s ceiling), and its default.
MAX_LIMIT = 10000
DEFAULT_LIMIT = 1000


@attrs.frozen
class Query:
    """
    Which entries a reader wants.

    @ivar since: the canonical time from which (inclusive), or L{None}: then
        the newest C{limit} entries.
    @ivar project: a normalized project name, or L{None}.
    @ivar user: a user name, or L{None}.
    @ivar event: one of L{EVENTS}, or L{None}.
    @ivar limit: the most entries answered (ties at the last time are
        added, so that the next page, from just after it, misses none).
    """

    since: str | None = None
    project: str | None = None
    user: str | None = None
    event: str | None = None
    limit: int = DEFAULT_LIMIT

    def wants(self, entry):
        """Whether C{entry} is one of those asked for (C{since} aside)."""
        return ((self.project is None or entry.project == self.project)
                and (self.user is None or entry.user == self.user)
                and (self.event is None or entry.event == self.event))

    def first_day(self):
        """The first day whose file may hold a wanted entry, or L{None} for all."""
        return day_of(self.since) if self.since is not None else None


def make_query(since=None, project=None, user=None, event=None, limit=None):
    """
    A L{Query} from text values (of a URL or a command line), checked.

    @raise AuditError: naming the value that cannot be used, as
        C{"name: why"}.
    """
    values = {}
    if since:
        try:
            values["since"] = parse_time(since)
        except AuditError as e:
            raise AuditError(f"since: {e}") from None
    if project:
        values["project"] = normalize(project)
    if user:
        values["user"] = user
    if event:
        if event not in EVENTS:
            raise AuditError(f"event: expected one of {', '.join(EVENTS)}")
        values["event"] = event
    if limit is not None and limit != "":
        try:
            values["limit"] = int(limit)
        except ValueError:
            raise AuditError(f"limit: expected a whole number, not {limit!r}") from None
        if not 1 <= values["limit"] <= MAX_LIMIT:
            raise AuditError(f"limit: expected a number from 1 to {MAX_LIMIT}")
    return Query(**values)


@attrs.define
class Selection:
    """
    Gathers the entries a L{Query} asks for, one day's file at a time: with
    C{since}, days oldest first; without, newest first. L{take} says when
    enough are found, so a reader stops reading days.
    """

    query: Query
    _found: list = attrs.field(factory=list)

    def take(self, entries):
        """Take one day's entries (in any order); whether enough are found now."""
        query = self.query
        wanted = sorted((e for e in entries if query.wants(e)
                         and (query.since is None or e.time >= query.since)),
                        key=lambda e: e.time)
        if query.since is None:
            self._found[:0] = wanted
        else:
            self._found += wanted
        return len(self._found) >= query.limit

    def result(self):
        """
        C{(entries oldest first, next)}: C{next} is the C{since} of the
        following page, or L{None} when there is none to ask for.
        """
        query, found = self.query, self._found
        if query.since is None:
            return found[-query.limit:], None
        if len(found) <= query.limit:
            return found, None
        last = found[query.limit - 1].time
        return [e for e in found if e.time <= last], after(last)


def select(query, days):
    """
    The entries C{query} asks for from C{days}, an iterable of C{(day,
    entries)} pairs in L{Selection}'s order (read lazily: it stops once
    enough are found); see L{Selection.result}.
    """
    selection = Selection(query)
    for _day, entries in days:
        if selection.take(entries):
            break
    return selection.result()


# -- failed logins, folded ----------------------------------------------------------------


#: Failed logins are counted per minute.
LOGIN_WINDOW = 60.0

#: The most distinct (event, user, token, address) keys written one by one
#: in a window; failures past it are folded into one entry per event.
MAX_LOGIN_KEYS = 50


@attrs.define
class LoginFailures:
    """
    Folds failed and throttled logins so a flood cannot fill the disk.

    In each minute, the first failure of a (user, token, address) is an
    entry at once, and the repeats of it one more entry with their
    C{count} when the minute ends; past L{MAX_LOGIN_KEYS} distinct keys
    in a minute, the failures of further keys are one entry per event
    (no user, no address) with their count. So a minute writes at most
    C{2 * max_keys + 2} login entries, whatever arrives.
    """

    window: float = LOGIN_WINDOW
    max_keys: int = MAX_LOGIN_KEYS
    _start: float | None = None
    # key -> [time of the first repeat, repeats]
    _repeats: dict = attrs.field(factory=dict)
    # event -> [time of the first, count]
    _overflow: dict = attrs.field(factory=dict)

    def add(self, now, event, user, address, token=None):
        """
        Count one failure at C{now}.

        @return: the entries to write now (the first of a key, and those of
            a window that has ended).
        """
        due = self.due(now)
        if self._start is None:
            self._start = now - now % self.window
        key = (event, user, token, address)
        repeats = self._repeats.get(key)
        if repeats is not None:
            if repeats[1] == 0:
                repeats[0] = now
            repeats[1] += 1
        elif len(self._repeats) < self.max_keys:
            self._repeats[key] = [now, 0]
            due.append(Entry(time=format_time(now), event=event, outcome=REFUSED, user=user,
                             token=token, address=address))
        else:
            folded = self._overflow.setdefault(event, [now, 0])
            folded[1] += 1
        return due

    def ends_at(self):
        """When the current window ends, or L{None} when nothing is counted."""
        return self._start + self.window if self._start is not None else None

    def due(self, now):
        """The entries of the window, if it ended by C{now} (and it is forgotten)."""
        end = self.ends_at()
        if end is None or now < end:
            return []
        return self.drain()

    def drain(self):
        """The entries of the window now, ended early (at a stop)."""
        entries = []
        for (event, user, token, address), (first, repeats) in self._repeats.items():
            if repeats:
                entries.append(Entry(time=format_time(first), event=event, outcome=REFUSED,
                                     user=user, token=token, address=address, count=repeats,
                                     detail="repeats within the minute"))
        for event, (first, count) in self._overflow.items():
            entries.append(Entry(time=format_time(first), event=event, outcome=REFUSED,
                                 count=count,
                                 detail=f"more than {self.max_keys} distinct users and "
                                        "addresses within the minute"))
        self._start = None
        self._repeats.clear()
        self._overflow.clear()
        entries.sort(key=lambda e: e.time)
        return entries
