"""
The members' bytes of a zip that L{pypid.core.dists.zipcheck.check_zip}
accepted: every member inflated (L{check_zip_data}), so that its data has
the declared size and CRC and a deflate stream ends where the central
directory says, which C{zipfile} never checks.

Apart from the structure's checks because it is a second pass, over the
data rather than the headers, and the one that costs CPU.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

from pypid.core.dists.dist_members import encode_name
from pypid.core.dists.zip_format import STORED, SeekableFile, UnsafeZip, ZipEntry, read_at

# The most bytes of a member's data read, or inflated, at once.
_DATA_CHUNK = 1 << 20


def check_zip_data(f: SeekableFile, entries: Iterable[ZipEntry], *, max_expanded: int) -> None:
    """
    Inflate every member of an archive L{pypid.core.dists.zipcheck.check_zip}
    accepted, refusing one whose data readers could read differently.

    It reads every member's data, the C{compressed_size}
    bytes at C{data_offset}, since C{zipfile} reads a stored member's size and
    a deflated member's stream up to its end, and so never sees bytes the
    central directory gives the member past those, which other readers read
    (C{unzip -t} checks them, uv refuses such archives). So C{zipfile}
    installs one thing while the index's readers could see another. It
    refuses unless:

      - the declared sizes add up to at most C{max_expanded} (checked before
        anything is read, so a bomb costs nothing);
      - a stored member's compressed size is its size;
      - a deflated member's stream ends exactly at its last compressed byte:
        not before (bytes hidden after the stream), not after (an unfinished
        stream), and is valid deflate;
      - the data has the declared size and CRC-32 (a directory: none, its
        data being empty or the empty deflate stream).

    It reads 1 MiB at a time and asks zlib for at most 1 MiB per call, and
    stops a member as soon as its output passes its declared size: memory is
    about 2 MiB, and the bytes inflated at most C{max_expanded} plus 1 MiB.

    @param f: the seekable binary file object
        L{pypid.core.dists.zipcheck.check_zip} read; it is left at an
        unspecified position.
    @param entries: the entries L{pypid.core.dists.zipcheck.check_zip} returned for it.
    @param max_expanded: most bytes the members may hold in all.
    @raise UnsafeZip: if the archive is refused.
    """
    expanded = sum(entry.file_size for entry in entries)
    if expanded > max_expanded:
        raise UnsafeZip(f"the archive expands to {expanded} bytes, more than {max_expanded}")
    # In file order, so that the reads are sequential.
    for entry in sorted(entries, key=lambda entry: entry.data_offset):
        raw = encode_name(entry.name)
        if entry.method == STORED:
            if entry.compressed_size != entry.file_size:
                raise UnsafeZip(
                    f"the member is stored, but its compressed size ({entry.compressed_size}) "
                    f"is not its size ({entry.file_size})", raw,
                )
            crc = 0
            for chunk in _data_chunks(f, entry):
                crc = zlib.crc32(chunk, crc)
            size = entry.file_size
        elif entry.is_dir and not entry.compressed_size:
            # A deflated directory with no data: check_zip checked the
            # sizes and CRC are 0, and no reader inflates a directory.
            continue
        else:
            size, crc = _inflate(f, entry, raw)
        if size != entry.file_size:
            raise UnsafeZip(
                f"the member inflates to {size} bytes, not its declared {entry.file_size}", raw,
            )
        if crc != entry.crc:
            raise UnsafeZip(
                f"the member's data has CRC-32 {crc:#010x}, not its declared {entry.crc:#010x}",
                raw,
            )


def _data_chunks(f: SeekableFile, entry: ZipEntry) -> Iterator[bytes]:
    """Yield a member's compressed bytes in chunks of at most L{_DATA_CHUNK}."""
    position = entry.data_offset
    end = position + entry.compressed_size
    while position < end:
        length = min(_DATA_CHUNK, end - position)
        yield read_at(f, position, length, "a member's data")
        position += length


def _inflate(f: SeekableFile, entry: ZipEntry, raw: bytes) -> tuple[int, int]:
    """
    Inflate a deflated member, whose stream must end at its last compressed
    byte, and return the size and CRC-32 of its data; no more than
    L{_DATA_CHUNK} bytes past its declared size are ever inflated.
    """
    inflater = zlib.decompressobj(-15)
    size = crc = 0
    left = entry.compressed_size
    for chunk in _data_chunks(f, entry):
        left -= len(chunk)
        data = chunk
        while True:
            try:
                out = inflater.decompress(data, _DATA_CHUNK)
            except zlib.error as e:
                raise UnsafeZip(f"the deflate stream is broken ({e})", raw) from None
            size += len(out)
            if size > entry.file_size:
                raise UnsafeZip(
                    f"the member inflates to more than its declared {entry.file_size} bytes",
                    raw,
                )
            crc = zlib.crc32(out, crc)
            if inflater.eof:
                after = len(inflater.unused_data) + left
                if after:
                    raise UnsafeZip(
                        f"the deflate stream ends {after} bytes before the member's "
                        "compressed size does: readers differ on those bytes", raw,
                    )
                return size, crc
            # Output capped at max_length leaves input in unconsumed_tail,
            # or (all input taken) output still inside zlib: ask again
            # until the call gives nothing, then read more. (zlib leaves
            # input only when the output is full: the error cannot happen.)
            data = inflater.unconsumed_tail
            if not out:
                if data:
                    raise UnsafeZip("the deflate stream is broken (it stalls)", raw)
                break
    raise UnsafeZip("the deflate stream does not end within the member's compressed size", raw)
