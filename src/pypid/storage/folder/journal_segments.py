"""
An open segment file of the journal (L{SegmentFile}; on disk,
L{DiskSegment}), and what is read of one without reading it all: the link
to its last line (L{read_tail}), its last serial (L{serial_at_end}), and its
whole lines from a place on (L{lines_from}).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Protocol

import attrs

from pypid.core.records.audit_chain import AuditError, decode, link

#: Bytes read at once when a file is read through from a place.
_BLOCK = 1 << 20


class SegmentFile(Protocol):
    """An open segment file (L{DiskSegment}; in memory, L{pypid.storage.folder.journal_files}'s)."""

    def size(self) -> int:
        """Its size in bytes."""
        ...

    def pread(self, count: int, offset: int) -> bytes:
        """Up to C{count} bytes from C{offset}."""
        ...

    def append(self, data: bytes) -> None:
        """Append C{data}, durably."""
        ...

    def truncate(self, size: int) -> None:
        """Cut the file to C{size} bytes."""
        ...


def read_tail(f: SegmentFile, size: int) -> tuple[str | None, bool]:
    """
    The link to the last line of the first C{size} bytes of an open file
    (L{None}: none), and whether it is torn (no newline: a crash cut it).
    """
    if size == 0:
        return None, False
    block = 16 << 10
    end = size
    tail = b""
    torn = f.pread(1, size - 1) != b"\n"
    if not torn:
        end -= 1
    while True:
        start = max(end - block, 0)
        tail = f.pread(end - start, start) + tail
        end = start
        cut = tail.rfind(b"\n")
        if cut >= 0:
            return link(tail[cut + 1:]), torn
        if start == 0:
            return link(tail), torn


def serial_at_end(f: SegmentFile, size: int) -> tuple[int | None, bool]:
    """
    The serial of the last entry of the first C{size} bytes of an open
    file, and whether it holds any: entries from before the journal, without
    serials, answer C{(None, True)}.
    """
    block = 64 << 10
    end = size
    rest = b""
    while end > 0:
        start = max(end - block, 0)
        rest = f.pread(end - start, start) + rest
        end = start
        lines = rest.split(b"\n")
        # (the first piece may be the end of a line that begins before it)
        rest = lines.pop(0) if start > 0 else b""
        for line in reversed(lines):
            try:
                entry = decode(line)
            except AuditError:
                continue  # (a torn or damaged line: the one before may do)
            return entry.serial, True
    return None, False


def lines_from(f: SegmentFile, offset: int) -> Iterator[tuple[bytes, int]]:
    """
    The whole lines of an open file from C{offset}, each with the offset
    after it, a block at a time; a last line without its newline is left out.
    """
    size = f.size()
    rest = b""
    at = offset
    while at < size:
        block = f.pread(min(_BLOCK, size - at), at)
        if not block:
            break
        at += len(block)
        rest += block
        lines = rest.split(b"\n")
        rest = lines.pop()
        end = at - len(rest)
        # (the offsets after each line, counted back from the block's end)
        ends = []
        for line in reversed(lines):
            ends.append(end)
            end -= len(line) + 1
        yield from zip(lines, reversed(ends), strict=True)


@attrs.define
class DiskSegment:
    """An open segment file on disk (its descriptor, under the lock its opener took)."""

    _fd: int

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def pread(self, count: int, offset: int) -> bytes:
        chunks = []
        while count > 0:
            chunk = os.pread(self._fd, count, offset)
            if not chunk:
                break
            chunks.append(chunk)
            count -= len(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
