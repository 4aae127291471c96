"""
The JSON snapshot of the index, so that a restart is instant. It is only a
cache: storage stays the source of truth, and start-up reconciles the two.
Saving is atomic (temporary file, fsync, rename), in a worker thread, from
an immutable list of records taken on the reactor thread.

Its layout (format 2) is JSON Lines: a first line of what the snapshot is,
a line a project holding its files as columns (a column of nulls only left
out), a line each for the tombstones, promotions, binned files, the
storage's and the upstream cache's state, and a last line counting what
came before, so a cut snapshot is never taken for whole. Each line is a
JSON object a person can read, C{grep} and mend; a line a project means no
second copy of the index is ever held whole in memory. At 100,001 files it
is 41 MB, read in 0.7-0.9 s and written in 0.53-0.59 s, with orjson, the
reactor running between projects. A start reads only each project's name
and where its line is (L{pypid.storage.base.snapshot_reading.KeptLines}).
Format 1 is still read, for an upgrade. The C{promotions} and C{binned}
lines are written only when there are some; an older pypid that finds them
rebuilds its index from storage.
"""

# (annotations kept as strings: a closure made per project at load, with
# its annotations evaluated, cost some 200 bytes a project of a large index)
from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
from typing import Any

import attrs
import orjson

from pypid.core.dists.model import DIGESTS, FIELDS, FileRecord, check_variant, raw_digest
from pypid.core.dists.names import SDIST, WHEEL
from pypid.core.indexes.project import LaterProject
from pypid.core.indexes.promotion import Promotion
from pypid.core.util.clock_steps import ClockReading
from pypid.storage.base.disk import sweep_unlocked, write_atomically

FORMAT = 2
#: the formats this version reads
READS = (1, 2)

#: a project line's columns, in the order a record holds its values; the
#: project is the line's, and a column that would be all nulls is left out
COLUMNS = ("filename", "name", "version", "packagetype", "path", "size", "sha256",
           "upload_time", "blake2_256", "md5", "requires_python", "yanked",
           "metadata_sha256", "summary", "uploader", "provenance_sha256", "variant")
REQUIRED = ("filename", "version", "packagetype", "size", "sha256", "upload_time")
#: where a record holds the two values no column does (the binned one last)
_PROJECT, _BINNED = FIELDS.index("project"), FIELDS.index("binned")
_KINDS = {WHEEL: WHEEL, SDIST: SDIST}
TEXT = frozenset({str})
_OPTIONAL_TEXT = frozenset({str, type(None)})
_NUMBER = frozenset({int, float})
_INT = frozenset({int})
_COLUMN_SET = frozenset(COLUMNS)
_make = functools.partial(tuple.__new__, FileRecord)


class SnapshotError(Exception):
    """The snapshot cannot be used; the index is rebuilt from storage."""


@attrs.frozen
class Snapshot:
    """
    A saved index.

    @ivar saved_at: POSIX time the records were taken.
    @ivar records: by filename, the binned files' too.
    """

    saved_at: float
    records: dict[str, FileRecord]
    tombstones: tuple[str, ...]
    serial: int = 0
    storage: str | None = None
    #: (JSON-ready: what the storage and the upstream cache keep)
    storage_state: Any = None
    upstream_state: Any = None
    #: the format it was read from: an older one is written again at once
    format: int = FORMAT
    #: read with C{later}: the projects whose records are made when first
    #: asked for (C{records} then holds none of theirs)
    later: tuple[LaterProject, ...] = ()
    #: the projects whose line a C{later} source found damaged: the check
    #: after the start then trusts no time of the snapshot
    damaged: list[str] = attrs.field(factory=list, eq=False)
    #: the clocks read as it was saved (L{pypid.core.util.clock_steps}), to
    #: tell the wall clock went back since; L{None}: no clock that never
    #: steps, or an older snapshot
    clock: ClockReading | None = None
    #: the promoted files' L{Promotion}s by filename
    promotions: dict[str, Promotion] = attrs.field(factory=dict)
    #: (JSON-ready) the journal serials taken in, and how far it was read
    #: (L{pypid.core.records.serials.ProjectSerials.to_json}); L{None}: none
    journal: Any = None
    #: the journal's serial up to which a shared storage's changes are in
    #: C{records} (L{pypid.storage.base.capabilities.ISharedStorage.changes_read});
    #: L{None}: unknown, the storage is listed
    changes: int | None = None

    @property
    def serial_taken(self) -> int | None:
        """
        The journal's serial up to which C{records} hold every change:
        L{changes}, or how far a lone process's index followed the journal
        (a change is in its index before its entry is written); else L{None}.
        """
        if self.changes is not None:
            return self.changes
        followed = self.journal.get("followed") if isinstance(self.journal, dict) else None
        return followed if isinstance(followed, int) and not isinstance(followed, bool) else None


def _line(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"


def lines(records: Iterable[FileRecord], tombstones: Iterable[str], saved_at: float,
          serial: int = 0, storage: str | None = None, storage_state: Any = None,
          upstream_state: Any = None, clock: ClockReading | None = None,
          promotions: Mapping[str, Promotion] | None = None,
          binned: Iterable[FileRecord] = (), journal: Any = None,
          changes: int | None = None) -> Iterator[bytes]:
    """
    The snapshot's lines, as bytes, a project at a time, for L{write} to
    write as they come; the parameters are L{Snapshot}'s fields, C{binned}
    the records of the files in the recycle bin. A line whose value is
    none is left out.
    """
    projects: dict[str, list[FileRecord]] = {}
    for record in records:
        projects.setdefault(record.project, []).append(record)
    first: dict[str, Any] = {"format": FORMAT, "saved_at": saved_at, "serial": serial,
                             "storage": storage}
    if clock is not None:
        first["clock"] = clock.to_json()
    if changes is not None:
        first["changes"] = changes
    yield _line(first)
    # (each column made whole, in C where it can be: 0.53-0.59 rather than
    # 0.75-0.89 s for 100,001 files, of which 0.14 s is the fsync)
    for project, files in projects.items():
        # (a record is the tuple of its values, in COLUMNS order once the
        # project and binned, never set here, are left out)
        values: list[Any] = list(zip(*files, strict=False))
        del values[_BINNED]
        del values[_PROJECT]
        name = files[0].name
        count = len(files)
        columns: dict[str, Any] = {}
        kept: Any
        for column, kept in zip(COLUMNS, values, strict=False):
            nulls = kept.count(None)
            if nulls == count and column not in REQUIRED:
                continue
            if column in DIGESTS:
                kept = (list(map(bytes.hex, kept)) if not nulls
                        else [None if raw is None else raw.hex() for raw in kept])
            elif column == "name" and kept.count(name) == count:
                continue
            columns[column] = kept
        yield _line({"project": project, "name": name, "files": columns})
    yield _line({"tombstones": list(tombstones)})
    if promotions:
        yield _line({"promotions": _grouped(promotions)})
    in_bin = [record.to_json() for record in binned]
    if in_bin:
        yield _line({"binned": in_bin})
    if storage_state is not None:
        yield _line({"storage_state": storage_state})
    if upstream_state is not None:
        yield _line({"upstream_state": upstream_state})
    if journal is not None:
        yield _line({"journal": journal})
    files_count = sum(map(len, projects.values()))
    yield _line({"end": {"projects": len(projects), "files": files_count}})


def encode(records: Iterable[FileRecord], tombstones: Iterable[str], saved_at: float,
           serial: int = 0, storage: str | None = None, storage_state: Any = None,
           upstream_state: Any = None,
           promotions: Mapping[str, Promotion] | None = None,
           binned: Iterable[FileRecord] = (), journal: Any = None,
           changes: int | None = None) -> bytes:
    """The snapshot's bytes, whole (L{lines} joined)."""
    return b"".join(lines(records, tombstones, saved_at, serial, storage, storage_state,
                          upstream_state, promotions=promotions, binned=binned,
                          journal=journal, changes=changes))


def _grouped(promotions: Mapping[str, Promotion]) -> list[dict[str, Any]]:
    """The C{promotions} line's value: a promotion at a time, with its filenames."""
    groups: dict[Promotion, list[str]] = {}
    for filename, promotion in promotions.items():
        groups.setdefault(promotion, []).append(filename)
    return [{**promotion.to_json(), "filenames": filenames}
            for promotion, filenames in groups.items()]


def _digests(column: str, values: list[Any] | None, count: int) -> Iterable[bytes | None]:
    """A digest column's raw bytes (the hex checked: of its size, or null where allowed)."""
    if values is None:
        if column == "sha256":
            raise SnapshotError("a project line has no sha256 column")
        return repeat(None, count)
    size = DIGESTS[column]
    try:
        raw = list(map(bytes.fromhex, values))
    except TypeError:
        # (nulls among them, or worse: a value at a time, in Python)
        if column == "sha256":
            raise SnapshotError("a sha256 is not a hex digest")
        return [raw_digest(value, size, column) for value in values]
    except ValueError:
        raise SnapshotError(f"a {column} column holds something that is not hex")
    if min(map(len, raw)) != size or max(map(len, raw)) != size:
        raise SnapshotError(f"a {column} column holds a digest of the wrong length")
    return raw


def project_records(line: dict[str, Any], shared: dict[str, str]) -> Iterator[FileRecord]:
    """
    The L{FileRecord}s of one project's line, each column checked and
    converted whole with C{map} in C rather than a loop in Python: 3.2 to 5
    us a file rather than 5.7 (timeit, a bench line of 5 files, 2 shared
    cores), of which the 4 digests are 1.3 us and making the records 0.2 us.
    """
    project, name, files = line["project"], line["name"], line["files"]
    if type(project) is not str or type(name) is not str or type(files) is not dict:
        raise SnapshotError("a project line needs a project, a name and files")
    if not _COLUMN_SET.issuperset(files):
        raise SnapshotError(f"{project}: unknown columns {sorted(set(files) - _COLUMN_SET)}")
    get = files.get
    filenames = get("filename")
    if type(filenames) is not list:
        raise SnapshotError(f"{project}: no filename column")
    count = len(filenames)
    for column in files:
        values = files[column]
        if type(values) is not list or len(values) != count:
            raise SnapshotError(f"{project}: the {column} column is not a list of "
                                f"{count} values")
    versions, kinds, sizes, times = get("version"), get("packagetype"), get("size"), \
        get("upload_time")
    if versions is None or kinds is None or sizes is None or times is None:
        raise SnapshotError(f"{project}: a column is missing (needed: {', '.join(REQUIRED)})")
    if not (TEXT.issuperset(map(type, filenames)) and TEXT.issuperset(map(type, versions))):
        raise SnapshotError(f"{project}: a filename or version is not a string")
    if not _INT.issuperset(map(type, sizes)) or (count and min(sizes) < 0):
        raise SnapshotError(f"{project}: a size is not a whole number")
    if not _NUMBER.issuperset(map(type, times)):
        raise SnapshotError(f"{project}: an upload time is not a number")
    try:
        kinds = list(map(_KINDS.__getitem__, kinds))
    except (KeyError, TypeError):
        raise SnapshotError(f"{project}: an unknown package type")
    texts: list[Iterable[str | None]] = []
    share = shared.setdefault
    for column in ("path", "requires_python", "yanked", "summary", "uploader", "name"):
        values = get(column)
        if values is None:
            texts.append(repeat(name if column == "name" else None, count))
        elif not (TEXT if column == "name" else _OPTIONAL_TEXT).issuperset(map(type, values)):
            raise SnapshotError(f"{project}: the {column} column holds something "
                                "that is not a string")
        elif column == "path":
            texts.append([None if path == filename else path
                          for path, filename in zip(values, filenames, strict=False)])
        elif column == "yanked":
            texts.append(values)
        else:
            texts.append(map(share, values, values))
    paths, requires, yanked, summaries, uploaders, names = texts
    variants = get("variant")
    if variants is None:
        variants = repeat(None, count)
    else:
        _check_variants(project, filenames, variants)
    return map(_make, zip(
        filenames, repeat(share(project, project), count), names, map(share, versions, versions),
        kinds, paths, sizes, _digests("sha256", get("sha256"), count), times,
        _digests("blake2_256", get("blake2_256"), count), _digests("md5", get("md5"), count),
        requires, yanked, _digests("metadata_sha256", get("metadata_sha256"), count),
        summaries, uploaders, _digests("provenance_sha256", get("provenance_sha256"), count),
        repeat(None, count), variants, strict=False))


def _check_variants(project: str, filenames: list[str], variants: list[Any]) -> None:
    """Refuse a variant column a record could not hold (L{check_variant}; few are set)."""
    for filename, variant in zip(filenames, variants, strict=True):
        if variant is not None:
            try:
                check_variant(filename, variant)
            except ValueError as e:
                raise SnapshotError(f"{project}: {e}") from None


def sweep(path: str) -> None:
    """Remove the temporary files a crashed save left beside the snapshot (L{sweep_unlocked})."""
    sweep_unlocked(os.path.dirname(path) or ".", ".index-")


def write(path: str, data: bytes | Iterable[bytes]) -> None:
    """Write the snapshot atomically: its bytes, or an iterable of them (L{lines})."""
    write_atomically(path, data, prefix=".index-")
