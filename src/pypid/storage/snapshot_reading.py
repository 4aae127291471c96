"""
Reading a snapshot back (L{read} a file, L{decode} bytes): its first line
checked, then its other lines taken in a line at a time, the projects'
records made now, or, with C{later}, when first asked for
(L{pypid.storage.snapshot_later}). Format 1 is still read, so that an
upgrade starts from the snapshot the former version left; an unreadable
snapshot is moved aside for a person to look at.

Apart from what a snapshot is and how it is written
(L{pypid.storage.snapshot}).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from typing import Any

import attrs
import orjson

from pypid.core.dists.model import FileRecord
from pypid.core.indexes.later_projects import LaterProject
from pypid.core.indexes.promotion import Promotion
from pypid.core.util.clock_steps import ClockReading
from pypid.storage.snapshot import (
    READS,
    TEXT,
    Snapshot,
    SnapshotError,
    project_records,
    sweep,
)
from pypid.storage.snapshot_later import KeptLines, head_of, line_head


def _promotions(value: Any) -> dict[str, Promotion]:
    """
    The promotions by filename of a C{promotions} line's value
    (L{pypid.storage.snapshot._grouped}).
    """
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


@attrs.define(eq=False)
class _Decoded:
    """
    What the lines of a snapshot read so far hold (L{_decode_lines}): the
    project lines' records, or their lines kept to make them later, and
    the other lines' values.
    """

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
    end: Any = None
    promotions: dict[str, Promotion] = attrs.field(factory=dict)
    binned: dict[str, FileRecord] = attrs.field(factory=dict)

    def wait(self, head: tuple[str, str, list[str]], at: int, size: int) -> None:
        """
        Keep a project's line read with C{later} (its C{size} bytes at
        C{at}): its name and how many files it has now, its records when
        they are asked for (L{pypid.storage.snapshot_later._LineSource}).
        """
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
        """Take in a line that is not a project's."""
        if "tombstones" in line:
            self.tombstones = line["tombstones"]
        elif "storage_state" in line:
            self.storage_state = line["storage_state"]
        elif "upstream_state" in line:
            self.upstream_state = line["upstream_state"]
        elif "promotions" in line:
            self.promotions = _promotions(line["promotions"])
        elif "binned" in line:
            self.binned = _binned(line["binned"])
        elif "end" in line:
            self.end = line["end"]
        else:
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
                        promotions=self.promotions)


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
    A L{Snapshot} from its first line (parsed) and an iterator of the
    others (each one JSON object, bytes or a memoryview, with where it
    begins).

    @param kept: where each project's line is read again to make its
        records when first asked for (L{Snapshot.later}), or L{None}: every
        project's records are made now.
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
    records = {}
    for item in obj["files"]:
        record = FileRecord.from_json(item)
        records[record.filename] = record
    serial = obj.get("serial", 0)
    if not isinstance(serial, int):
        raise SnapshotError("the serial is not a whole number")
    storage = obj.get("storage")
    if storage is not None and not isinstance(storage, str):
        raise SnapshotError("the storage is not a string")
    return Snapshot(float(obj["saved_at"]), records, tuple(obj["tombstones"]), serial,
                    storage, obj.get("storage_state"), obj.get("upstream_state"), 1)


def _decode(first_line: bytes | memoryview, rest: Iterable[tuple[int, bytes | memoryview]],
            whole: Callable[[], bytes], kept: KeptLines | None = None) -> Snapshot:
    """
    Parse a snapshot given its first line, an iterator of the other lines
    (with where each begins), and C{whole()}, the whole bytes (for a format
    1 snapshot, one document that may span lines); C{kept} as
    L{_decode_lines} takes it.
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
    Parse a snapshot's bytes.

    @param later: leave each project's records to be made when first asked
        for (L{Snapshot.later}; a format 1 snapshot is read whole anyway):
        only its name and filenames are parsed now (L{line_head}), and checked.
        In process, with the collector off as at start-up: 0.14-0.16 s
        rather than 0.50-0.60 s at 100,001 files, 1.4-1.7 s rather than
        2.1-2.2 s (each line parsed whole, kept as bytes) at 1,000,001.
        The lines are read again from C{data}, which the sources keep.
    @rtype: L{Snapshot}
    @raise SnapshotError: when the bytes are not a snapshot this version reads.
    """
    lines = _split(data)
    _, first = next(lines, (0, b""))
    return _decode(first, lines, lambda: data, KeptLines(data=data) if later else None)


def read(path: str, later: bool = False) -> Snapshot | None:
    """
    Read the snapshot at C{path} a line at a time, or return L{None} when
    there is none; C{later} as L{decode} takes it, the projects' lines
    then read again from the file (a descriptor of it kept open until the
    last was, or until every source is dropped: L{KeptLines}).

    An unreadable one is moved aside (C{<path>.bad}) and reported with
    L{SnapshotError}, so that it is kept for a person to look at and the
    next start does not trip over it again.
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
