"""
Reading a snapshot back (L{read} a file, L{decode} bytes) a line at a time,
the projects' records made now or, with C{later}, when first asked for; an
unreadable snapshot is moved aside for a person to look at.

With C{later} (a start), of a project's line only its name and filenames
are parsed at once (L{line_head}); its records are made when the project
is first asked for, or by the check after the start, from its line read
again (L{KeptLines}). A waiting project costs one object of six slots
(L{_LineSource}); C{docs/performance.rst} has the memory figures.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from typing import Any

import attrs
import orjson
from twisted.logger import Logger

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.project import LaterProject
from pypid.core.indexes.promotion import Promotion
from pypid.core.util.clock_steps import ClockReading
from pypid.storage.base.snapshot import (
    READS,
    TEXT,
    Snapshot,
    SnapshotError,
    project_records,
    sweep,
)

#: (the namespace the warning had in L{pypid.storage.base.snapshot})
log = Logger(namespace="pypid.storage.snapshot")


def _promotions(value: Any) -> dict[str, Promotion]:
    """The promotions by filename of a C{promotions} line's value."""
    if type(value) is not list:
        raise SnapshotError("the promotions are not a list")
    promotions: dict[str, Promotion] = {}
    for group in value:
        if type(group) is not dict:
            raise SnapshotError("a promotion is not a JSON object")
        filenames = group.pop("filenames", None)
        if type(filenames) is not list or not TEXT.issuperset(map(type, filenames)):
            raise SnapshotError("a promotion's filenames are not a list of strings")
        try:
            promotion = Promotion.from_json(group)
        except ValueError as e:
            raise SnapshotError(f"a promotion: {e}")
        promotions.update(zip(filenames, repeat(promotion), strict=False))
    return promotions


#: The lines that are not a project's, by the one key each holds.
_LINES = ("tombstones", "storage_state", "upstream_state", "journal", "promotions", "binned",
          "end")


@attrs.define(eq=False)
class _Decoded:
    """What the lines read so far hold: records, or projects kept for later, and the rest."""

    #: where the lines kept for later are read again (L{None}: none kept)
    kept: KeptLines | None = None
    records: dict[str, FileRecord] = attrs.field(factory=dict)
    #: the digests shared between records, interned (see L{project_records})
    shared: dict[str, str] = attrs.field(factory=dict)
    waiting: list[LaterProject] = attrs.field(factory=list)
    #: the projects whose lines were kept for later
    named: set[str] = attrs.field(factory=set)
    #: the files of the lines kept for later
    counted: int = 0
    projects: int = 0
    tombstones: Any = None
    upstream_state: Any = None
    storage_state: Any = None
    journal: Any = None
    end: Any = None
    promotions: dict[str, Promotion] = attrs.field(factory=dict)
    binned: dict[str, FileRecord] = attrs.field(factory=dict)

    def wait(self, head: tuple[str, str, list[str]], at: int, size: int) -> None:
        """Keep a project's line read with C{later} (C{size} bytes at C{at}) for later."""
        # Where its bytes are is kept, neither the bytes (410 bytes a file
        # of the bench corpus) nor the parsed line (750: every value a
        # Python object, hex digests as 113-byte strings) nor its
        # filenames (100).
        project = head[0]
        if project in self.named:
            raise SnapshotError(f"the project {project} has two lines")
        assert self.kept is not None  # (only a read with later waits)
        self.named.add(project)
        self.waiting.append(self.kept.source(head, at, size))
        self.counted += len(head[2])
        self.projects += 1

    def take(self, line: dict[str, Any]) -> None:
        """Take in a line that is not a project's (the first of L{_LINES} it holds)."""
        for name in _LINES:
            if name in line:
                value = line[name]
                setattr(self, name, _promotions(value) if name == "promotions"
                        else _binned(value) if name == "binned" else value)
                return
        raise SnapshotError(f"an unknown line: {sorted(line)[:3]}")

    def snapshot(self, first: dict[str, Any], storage: str | None) -> Snapshot:
        """The L{Snapshot} of every line read, once the last one says they all are."""
        if self.end != {"projects": self.projects, "files": len(self.records) + self.counted}:
            raise SnapshotError("the snapshot is cut short (its last line is not there, "
                                "or does not count what came before)")
        tombstones = self.tombstones
        if type(tombstones) is not list or not all(type(t) is str for t in tombstones):
            raise SnapshotError("the deleted filenames are not a list of strings")
        records = self.records
        records.update(self.binned)
        damaged = self.kept.damaged if self.kept is not None else []
        return Snapshot(float(first["saved_at"]), records, tuple(tombstones),
                        first.get("serial", 0), storage, self.storage_state,
                        self.upstream_state, later=tuple(self.waiting), damaged=damaged,
                        clock=ClockReading.from_json(first.get("clock")),
                        promotions=self.promotions, journal=self.journal,
                        changes=_serial(first.get("changes")))


def _storage_of(first: dict[str, Any]) -> str | None:
    """The storage a snapshot's first line names, once that line is checked."""
    if not isinstance(first.get("serial", 0), int):
        raise SnapshotError("the serial is not a whole number")
    storage = first.get("storage")
    if storage is not None and not isinstance(storage, str):
        raise SnapshotError("the storage is not a string")
    return storage


def _decode_lines(first: dict[str, Any], rest: Iterable[tuple[int, bytes | memoryview]],
                  kept: KeptLines | None = None) -> Snapshot:
    """
    A L{Snapshot} from its first line (parsed) and the others, each with
    where it begins; with C{kept}, the projects' lines are read again from
    it when first asked for (L{Snapshot.later}).
    """
    storage = _storage_of(first)
    decoded = _Decoded(kept)
    # (bound once: the loop runs once a project, 100,000 times at scale)
    records, shared, wait = decoded.records, decoded.shared, decoded.wait
    for at, raw in rest:
        if decoded.end is not None:
            raise SnapshotError("a line follows the last")
        if kept is not None and raw[:11] == b'{"project":':
            head = line_head(raw if type(raw) is bytes else bytes(raw))
            if head is not None:
                wait(head, at, len(raw))
                continue
        line = orjson.loads(raw)
        if type(line) is not dict:
            raise SnapshotError("a line is not a JSON object")
        project = line.get("project")
        if project is not None:
            if kept is not None:
                wait(head_of(line), at, len(raw))
                continue
            for record in project_records(line, shared):
                records[record[0]] = record
            decoded.projects += 1
        else:
            decoded.take(line)
    return decoded.snapshot(first, storage)


def _binned(value: Any) -> dict[str, FileRecord]:
    """The records by filename of a C{binned} line's value (each checked, and binned)."""
    if type(value) is not list:
        raise SnapshotError("the binned files are not a list")
    records = {}
    for item in value:
        try:
            record = FileRecord.from_json(item)
        except ValueError as e:
            raise SnapshotError(f"a binned file: {e}")
        if record.binned is None:
            raise SnapshotError(f"the binned file {record.filename} has no time it was binned")
        records[record.filename] = record
    return records


def _decode_format_1(obj: dict[str, Any]) -> Snapshot:
    storage = _storage_of(obj)
    records = {}
    for item in obj["files"]:
        record = FileRecord.from_json(item)
        records[record.filename] = record
    return Snapshot(float(obj["saved_at"]), records, tuple(obj["tombstones"]),
                    obj.get("serial", 0), storage, obj.get("storage_state"),
                    obj.get("upstream_state"), 1)


def _decode(first_line: bytes | memoryview, rest: Iterable[tuple[int, bytes | memoryview]],
            whole: Callable[[], bytes], kept: KeptLines | None = None) -> Snapshot:
    """
    Parse a snapshot given its first line, the others, and C{whole()}, the
    whole bytes (format 1 is one document that may span lines).
    """
    try:
        try:
            first = orjson.loads(first_line)
        except orjson.JSONDecodeError:
            first = json.loads(whole())
        if not isinstance(first, dict):
            raise SnapshotError("not a snapshot")
        found = first.get("format")
        if found not in READS:
            raise SnapshotError(f"unknown snapshot format {found!r}")
        if found == 1:
            return _decode_format_1(first)
        return _decode_lines(first, rest, kept)
    except SnapshotError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SnapshotError(f"not a valid snapshot: {e}")


def _split(data: bytes) -> Iterator[tuple[int, memoryview]]:
    """The lines of C{data}, as memoryviews (no copies), with where each begins; no empty ones."""
    view = memoryview(data)
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            end = len(data)
        if end > start:
            yield start, view[start:end]
        start = end + 1


def _placed(lines: Iterable[bytes], at: int) -> Iterator[tuple[int, bytes]]:
    """Each line of C{lines} but the blank ones, with where it begins (the first at C{at})."""
    for line in lines:
        # (a line starting with a printable byte is not blank: stripping
        # each copied the whole file again)
        if line[0] > 32 or line.strip():
            yield at, line
        at += len(line)


def decode(data: bytes, later: bool = False) -> Snapshot:
    """
    Parse a snapshot's bytes (L{SnapshotError}: not one this version reads);
    C{later}, make each project's records when first asked for, parsing
    only its name and filenames now (a fraction of a whole parse:
    C{docs/performance.rst}).
    """
    lines = _split(data)
    _, first = next(lines, (0, b""))
    return _decode(first, lines, lambda: data, KeptLines(data=data) if later else None)


def read(path: str, later: bool = False) -> Snapshot | None:
    """
    Read the snapshot at C{path} a line at a time (L{None}: there is none);
    C{later} as L{decode} takes it, the lines read again from the file
    (L{KeptLines}). An unreadable one is moved aside (C{<path>.bad}) and
    reported with L{SnapshotError}, kept for a person and out of the next
    start's way.
    """
    sweep(path)
    try:
        # (read in 64 KiB rather than 8: 20 rather than 45 ms to go through
        # the 41 MB of 100,001 files a line at a time)
        f = open(path, "rb", buffering=1 << 16)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SnapshotError(f"cannot read {path}: {e.strerror}")
    kept = None
    try:
        with f:
            def whole() -> bytes:
                f.seek(0)
                return f.read()
            try:
                first = f.readline()
                if later:
                    # (a descriptor of its own: the projects' lines are read
                    # again from the file read now, after this one is closed)
                    kept = KeptLines(os.dup(f.fileno()))
                snap = _decode(first, _placed(f, len(first)), whole, kept)
            except OSError as e:
                raise SnapshotError(f"cannot read {path}: {e.strerror}")
    except SnapshotError as e:
        if kept is not None:
            kept.close()
        aside = path + ".bad"
        try:
            os.replace(path, aside)
        except OSError:
            aside = path
        raise SnapshotError(f"{e}; kept as {aside}")
    if kept is not None:
        kept.settle()  # (closed now if no project waits)
    return snap


# -- a project's line read later -----------------------------------------------------


#: what comes between a project line's name and its filenames, as
#: L{pypid.storage.base.snapshot.lines} writes it (the filename column first)
_FILENAMES = b',"files":{"filename":['


def line_head(raw: bytes) -> tuple[str, str, list[str]] | None:
    """
    C{(project, name, filenames)} of a project line's bytes as
    L{pypid.storage.base.snapshot.lines} writes it, without parsing the rest
    (its digests are what takes the time), or L{None} for a line laid out
    otherwise. The filenames end at the first C{]}: one in a filename (none
    in a distribution's) ends them early, which the whole parse later
    finds out (L{_LineSource}).
    """
    start = raw.find(_FILENAMES)
    if start < 0:
        return None
    end = raw.find(b"]", start + len(_FILENAMES))
    try:
        head = orjson.loads(raw[:start] + b"}")
        filenames = orjson.loads(raw[start + len(_FILENAMES) - 1:end + 1])
    except orjson.JSONDecodeError:
        return None
    if type(head) is not dict or head.keys() != {"project", "name"}:
        return None
    project, name = head["project"], head["name"]
    if type(project) is not str or type(name) is not str or type(filenames) is not list \
            or not TEXT.issuperset(map(type, filenames)):
        return None
    return project, name, filenames


class KeptLines:
    """
    Where a C{later} snapshot's project lines are read again: its file, kept
    open until every line was (a save renames another over it), or its
    bytes; with the lines' interned strings and the projects found damaged.
    Not in memory: the lines' bytes were half of what a start held, and
    reading one again costs little beside parsing it (C{docs/performance.rst}).
    """

    __slots__ = ("_fd", "_data", "_left", "shared", "damaged")

    def __init__(self, fd: int = -1, data: bytes | None = None) -> None:
        self._fd = fd
        self._data = data
        #: how many lines are still to be read again
        self._left = 0
        self.shared: dict[str, str] = {}
        self.damaged: list[str] = []

    def source(self, head: tuple[str, str, list[str]], at: int, size: int) -> _LineSource:
        """The L{LaterProject} of the project line C{head} of C{size} bytes at C{at}."""
        self._left += 1
        return _LineSource(head, self, at, size)

    def line(self, at: int, size: int) -> bytes:
        """The C{size} bytes at C{at} (a project's line), read again."""
        if self._data is not None:
            return self._data[at:at + size]
        if self._fd < 0:
            raise SnapshotError("the snapshot's file is closed")
        raw = os.pread(self._fd, size, at)
        if len(raw) != size:
            raise SnapshotError("the snapshot's file is shorter than it was")
        return raw

    def read_again(self) -> None:
        """One more line was read again: the file is closed after the last."""
        self._left -= 1
        self.settle()

    def settle(self) -> None:
        """Close the file if no line is left to read again."""
        if self._left <= 0:
            self.close()

    def close(self) -> None:
        """Close the file (no line can be read again after)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        # (the projects' sources dropped before all were made: the index
        # was loaded anew)
        self.close()


class _LineSource:
    """
    A project's line read with C{later}, as a L{LaterProject} of six slots,
    80 bytes: its records made when called (once), from its line read again
    and checked whole. A damaged line, or one that no longer reads as it
    did, gives none, with a warning; the project goes to C{damaged}, so the
    check after the start reads its records from storage.
    """

    __slots__ = ("name", "display_name", "count", "_lines", "_at", "_size")

    def __init__(self, head: tuple[str, str, list[str]], lines: KeptLines, at: int,
                 size: int) -> None:
        project, name, filenames = head
        self.name = project
        # (one string for both when they are the same, as they mostly are)
        self.display_name = project if name == project else name
        self.count = len(filenames)
        self._lines: KeptLines | None = lines
        self._at = at
        self._size = size

    def __call__(self) -> list[FileRecord]:
        """The project's records (none, said in a warning, from a damaged line)."""
        lines, self._lines = self._lines, None
        if lines is None:
            raise RuntimeError(f"the records of {self.name} were made already")
        project = self.name
        try:
            line = orjson.loads(lines.line(self._at, self._size))
            files = line["files"]
            if line["project"] != project or line["name"] != self.display_name \
                    or len(files["filename"]) != self.count:
                raise SnapshotError("it does not read as it did at start")
            return list(project_records(line, lines.shared))
        except (SnapshotError, OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warn("The snapshot's line of the project {project} is damaged ({error}): "
                     "its files are read from storage", project=project, error=str(e))
            lines.damaged.append(project)
            return []
        finally:
            lines.read_again()


def head_of(line: dict[str, Any]) -> tuple[str, str, list[str]]:
    """L{line_head}'s C{(project, name, filenames)} of a line parsed whole, checked alike."""
    project, name, files = line["project"], line["name"], line["files"]
    if type(project) is not str or type(name) is not str or type(files) is not dict:
        raise SnapshotError("a project line needs a project, a name and files")
    filenames = files.get("filename")
    if type(filenames) is not list or not TEXT.issuperset(map(type, filenames)):
        raise SnapshotError(f"{project}: no filename column, or a filename not a string")
    return project, name, filenames


def _serial(value: object) -> int | None:
    """A journal's serial as the first line keeps it, or L{None} (none, or not one)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None
