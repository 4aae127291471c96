"""
A project's line of a snapshot read with C{later}
(L{pypid.storage.snapshot_reading.read}): only its name and filenames
parsed at the start (L{line_head}), its records made when the project is
first asked for or by the check after the start
(L{pypid.state.loader.IndexLoader}), from its line read again where it is
kept (L{KeptLines}). A waiting project costs one object of six slots
(L{_LineSource}); C{docs/performance.rst} has the memory figures.

Apart from the reading of the snapshot as a whole
(L{pypid.storage.snapshot_reading}), which hands each project's line here.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from twisted.logger import Logger

from pypid.core.dists.model import FileRecord
from pypid.storage.snapshot import TEXT, SnapshotError, project_records

#: (the namespace its lines had before it was a module of its own)
log = Logger(namespace="pypid.storage.snapshot")


#: what comes between a project line's name and its filenames, as
#: L{pypid.storage.snapshot.lines} writes it (the filename column first)
_FILENAMES = b',"files":{"filename":['


def line_head(raw: bytes) -> tuple[str, str, list[str]] | None:
    """
    C{(project, name, filenames)} of a project line's bytes as
    L{pypid.storage.snapshot.lines} writes it, parsed without the rest of
    the line (its other columns, a digest as a 113-byte string a file, are
    what takes the time), or L{None} for a line laid out otherwise (parsed
    whole, then). Where the
    filenames end is found by the first C{]}: one in a filename (none in a
    distribution's) ends them early, and the parse either fails or gives
    other filenames, which the line's whole parse later finds out
    (L{_source}).
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
    Where the project lines of a snapshot read with C{later} are read again
    when their records are made (L{_LineSource}): the snapshot's file, kept
    open (a save writes another file and renames it over this one, which
    stays as it was read), or the bytes a snapshot was given as
    (L{pypid.storage.snapshot_reading.decode}). With what the lines share once read: the strings
    interned (L{project_records}) and the projects found damaged.

    The lines are not kept in memory: at a start from a snapshot of
    100,001 files their bytes were 40 MiB of the 80 MiB the load held
    (C{tracemalloc}), until the check after the start had made every
    record, and a project's line is read again in 1.4 us (C{pread} of
    2 KB from the page cache, timeit) beside the 40 us it takes to parse
    it and make its 5 records. The file is closed once every line was read
    again.
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
    A project's line read with C{later}, as a L{LaterProject}: its names
    and count read at the start (L{line_head}), its records made when it is
    called (once), from its line read again (L{KeptLines.line}), parsed,
    made and checked whole. A line found damaged then, or that no longer
    reads as it did (a file changed in place), gives none (said in a
    warning): the index forgets its files, and the check of storage
    against the snapshot that follows a start finds them again beside the
    files (the project is added to C{damaged}, which tells it to read
    every record).

    Six slots, 80 bytes: where the line is, not the line.
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
    """
    C{(project, name, filenames)} of a project's line parsed whole (laid
    out otherwise than L{line_head} reads), checked as L{line_head} checks them.
    """
    project, name, files = line["project"], line["name"], line["files"]
    if type(project) is not str or type(name) is not str or type(files) is not dict:
        raise SnapshotError("a project line needs a project, a name and files")
    filenames = files.get("filename")
    if type(filenames) is not list or not TEXT.issuperset(map(type, filenames)):
        raise SnapshotError(f"{project}: no filename column, or a filename not a string")
    return project, name, filenames
