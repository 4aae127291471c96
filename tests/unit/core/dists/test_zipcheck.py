"""
Tests for L{pypid.core.dists.zipcheck} and its parts: zip archives built byte by byte, one exact
defect each, refused with a message naming the member; and archives that
C{zipfile} writes, accepted.
"""

import io
import struct
import tarfile
import unicodedata
import zipfile
import zlib

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.dist_members import MemberNames, UnsafeArchive, check_member_name
from pypid.core.dists.zip_format import UnsafeZip
from pypid.core.dists.zipcheck import ZipEntry, check_zip, check_zip_data
from tests.harness.distributions import make_sdist_zip, make_wheel

U32 = 0xFFFFFFFF
U16 = 0xFFFF


# A builder of zip archives whose every header field can be set.


def deflate(data):
    """Return C{data} as a raw deflate stream, as zip members hold it."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def zip64_extra(*values, disk=None):
    """Return a ZIP64 extra field block holding C{values} and, if given, a disk number."""
    body = b"".join(struct.pack("<Q", value) for value in values)
    if disk is not None:
        body += struct.pack("<L", disk)
    return extra_block(0x0001, body)


def extra_block(block_id, body):
    """Return one extra field block."""
    return struct.pack("<HH", block_id, len(body)) + body


def data_descriptor(crc, compressed_size, file_size, signature=True, zip64=False):
    """Return a data descriptor, with or without its signature, with 32- or 64-bit sizes."""
    body = struct.pack("<LQQ" if zip64 else "<LLL", crc, compressed_size, file_size)
    return (b"PK\x07\x08" if signature else b"") + body


class Member:
    """
    One member of a hand-built archive: its data and what its local header
    and central directory entry say, each field overridable.
    """

    def __init__(self, name, data=b"", *, method=0, flags=None, local=(), central=(),
                 local_extra=b"", central_extra=b"", compressed=None, descriptor=None,
                 gap=b"", mode=None, host=3, version=20):
        self.raw_name = name.encode("utf-8") if isinstance(name, str) else name
        if flags is None:
            flags = 0 if self.raw_name.isascii() else 0x800
        if compressed is None:
            compressed = deflate(data) if method == 8 else data
        is_dir = self.raw_name.endswith(b"/")
        if mode is None:
            mode = 0o40755 if is_dir else 0o100644
        self.compressed = compressed
        self.crc = zlib.crc32(data)
        self.file_size = len(data)
        self.method = method
        self.flags = flags
        self.version = version
        self.host = host
        self.external = (mode << 16) | (0x10 if is_dir else 0)
        self.local = dict(local)
        self.central = dict(central)
        self.local_extra = local_extra
        self.central_extra = central_extra
        self.descriptor = descriptor
        self.gap = gap

    def local_header(self):
        """Return the local header."""
        known = not self.flags & 0x08
        f = {
            "signature": b"PK\x03\x04", "version": self.version, "flags": self.flags,
            "method": self.method, "time": 0, "date": 0x21,
            "crc": self.crc if known else 0,
            "compressed_size": len(self.compressed) if known else 0,
            "file_size": self.file_size if known else 0,
            "name": self.raw_name, "extra": self.local_extra,
        }
        f.update(self.local)
        return struct.pack(
            "<4s5H3L2H", f["signature"], f["version"], f["flags"], f["method"], f["time"],
            f["date"], f["crc"], f["compressed_size"], f["file_size"], len(f["name"]),
            len(f["extra"]),
        ) + f["name"] + f["extra"]

    def central_header(self, offset):
        """Return the central directory entry, for a local header at C{offset}."""
        f = {
            "signature": b"PK\x01\x02", "made": 20, "host": self.host, "version": self.version,
            "flags": self.flags, "method": self.method, "time": 0, "date": 0x21,
            "crc": self.crc, "compressed_size": len(self.compressed),
            "file_size": self.file_size, "name": self.raw_name, "extra": self.central_extra,
            "comment": b"", "disk": 0, "internal": 0, "external": self.external,
            "offset": offset,
        }
        f.update(self.central)
        return struct.pack(
            "<4s2B5H3L5H2L", f["signature"], f["made"], f["host"], f["version"], f["flags"],
            f["method"], f["time"], f["date"], f["crc"], f["compressed_size"], f["file_size"],
            len(f["name"]), len(f["extra"]), len(f["comment"]), f["disk"], f["internal"],
            f["external"], f["offset"],
        ) + f["name"] + f["extra"] + f["comment"]

    def trailer(self):
        """Return the data descriptor (if any) and the bytes after it."""
        if self.descriptor is True:
            dd = data_descriptor(self.crc, len(self.compressed), self.file_size)
        else:
            dd = self.descriptor or b""
        return dd + self.gap


def build_zip(members, *, prefix=b"", suffix=b"", comment=b"", base=0, between=b"",
              zip64=False, end=(), end64=(), locator=(), end64_data=b"", directory=None):
    """
    Return the bytes of an archive of C{members}.

    @param prefix: bytes before the first member; C{suffix}: after the end.
    @param base: where offsets count from (C{len(prefix)} makes the prefix
        what C{zipfile} takes for a self-extracting stub).
    @param between: bytes between the central directory and the end records.
    @param zip64: write a ZIP64 end record and locator.
    @param end: overrides of the end of central directory record's fields;
        C{end64} and C{locator} of the ZIP64 ones.
    @param directory: the indexes of the members in the central directory
        (all, in order, by default).
    """
    out = bytearray(prefix)
    offsets = []
    for member in members:
        offsets.append(len(out) - base)
        out += member.local_header() + member.compressed + member.trailer()
    cd_offset = len(out) - base
    for index in range(len(members)) if directory is None else directory:
        out += members[index].central_header(offsets[index])
    cd_size = len(out) - base - cd_offset
    out += between
    count = len(members) if directory is None else len(directory)
    if zip64:
        record_offset = len(out) - base
        f = {"signature": b"PK\x06\x06", "size": 44 + len(end64_data), "made": 45,
             "version": 45, "disk": 0, "cd_disk": 0, "disk_count": count, "count": count,
             "cd_size": cd_size, "cd_offset": cd_offset}
        f.update(end64)
        out += struct.pack("<4sQ2H2L4Q", *f.values()) + end64_data
        f = {"signature": b"PK\x06\x07", "disk": 0, "offset": record_offset, "disks": 1}
        f.update(locator)
        out += struct.pack("<4sLQL", *f.values())
    f = {"signature": b"PK\x05\x06", "disk": 0, "cd_disk": 0, "disk_count": count,
         "count": count, "cd_size": cd_size, "cd_offset": cd_offset,
         "comment_length": len(comment)}
    f.update(end)
    out += struct.pack("<4s4H2LH", *f.values()) + comment + suffix
    return bytes(out)


def small_zip(**kwargs):
    """Return a valid two-member archive, built with C{kwargs}."""
    return build_zip([Member("pkg/__init__.py", b"x = 1\n"), Member("pkg/mod.py", b"y = 2\n")],
                     **kwargs)


def zipfile_members(data):
    """Return the names and contents C{zipfile} reads from C{data}."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


class Unseekable(io.RawIOBase):
    """A write-only stream, which makes C{zipfile} write data descriptors."""

    def __init__(self):
        self.written = io.BytesIO()

    def writable(self):
        """Accept writes."""
        return True

    def write(self, data):
        """Keep C{data}."""
        return self.written.write(data)


class SparseFile(io.RawIOBase):
    """
    A read-only file of C{size} bytes, zeros but for C{tail} at its end,
    counting the bytes read from it.
    """

    def __init__(self, size, tail):
        self.size = size
        self.tail = tail
        self.position = 0
        self.bytes_read = 0

    def readable(self):
        """Allow reads."""
        return True

    def seekable(self):
        """Allow seeks."""
        return True

    def seek(self, offset, whence=0):
        """Move to C{offset}."""
        self.position = {0: 0, 1: self.position, 2: self.size}[whence] + offset
        return self.position

    def tell(self):
        """Return the position."""
        return self.position

    def read(self, n=-1):
        """Return up to C{n} bytes."""
        end = self.size if n < 0 else min(self.size, self.position + n)
        start_tail = self.size - len(self.tail)
        data = bytes(max(0, min(end, start_tail) - self.position))
        if end > start_tail:
            data += self.tail[max(self.position, start_tail) - start_tail:end - start_tail]
        self.position = end
        self.bytes_read += len(data)
        return data


class CheckTestsMixin:
    """Helpers of the tests of L{check_zip}."""

    def assertRefused(self, data, reason, member=None, **kwargs):
        """Assert that L{check_zip} refuses C{data} for C{reason}, naming C{member}."""
        error = self.assertRaises(UnsafeZip, check_zip, io.BytesIO(data), **kwargs)
        self.assertIn(reason, str(error))
        self.assertEqual(error.member, member)
        if member is not None:
            self.assertTrue(str(error).startswith(f"member '{member}': "), str(error))
        return error

    def assertAccepted(self, data, **kwargs):
        """Assert that L{check_zip} accepts C{data} and sees what C{zipfile} sees."""
        entries = check_zip(io.BytesIO(data), **kwargs)
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            self.assertEqual(
                [(e.name, e.header_offset, e.compressed_size, e.file_size, e.crc, e.method,
                  e.is_dir) for e in entries],
                [(i.filename, i.header_offset, i.compress_size, i.file_size, i.CRC,
                  i.compress_type, i.is_dir()) for i in infos],
            )
            for entry, info in zip(entries, infos, strict=True):
                raw = data[entry.data_offset:entry.data_offset + entry.compressed_size]
                content = zlib.decompress(raw, -15) if entry.method == 8 else raw
                self.assertEqual(content, zf.read(info))
        return entries


class AcceptTests(CheckTestsMixin, SynchronousTestCase):
    """Archives as real tools write them are accepted."""

    def zipfile_archive(self, compression, stream=None, force_zip64=False):
        """Return an archive written by C{zipfile} with a directory and two files."""
        buf = io.BytesIO() if stream is None else stream
        with zipfile.ZipFile(buf, "w", compression) as zf:
            zf.writestr("pkg/", b"")
            zf.writestr("pkg/__init__.py", b"x = 1\n" * 100)
            with zf.open("pkg/data.bin", "w", force_zip64=force_zip64) as out:
                out.write(bytes(range(256)) * 10)
        return (buf if stream is None else stream.written).getvalue()

    def test_stored(self):
        """
        A stored archive written by zipfile is accepted, with every entry as zipfile reads it.
        """
        entries = self.assertAccepted(self.zipfile_archive(zipfile.ZIP_STORED))
        self.assertEqual([e.name for e in entries], ["pkg/", "pkg/__init__.py", "pkg/data.bin"])
        self.assertIsInstance(entries, tuple)
        self.assertIsInstance(entries[0], ZipEntry)
        self.assertTrue(entries[0].is_dir)

    def test_deflated(self):
        """
        A deflated archive written by zipfile, its directory an empty deflate stream, is accepted.
        """
        entries = self.assertAccepted(self.zipfile_archive(zipfile.ZIP_DEFLATED))
        self.assertEqual([e.method for e in entries], [8, 8, 8])
        self.assertEqual(entries[0].compressed_size, 2)

    def test_forced_zip64(self):
        """
        Members written with force_zip64 (sentinels and a ZIP64 extra in the local header) are
        accepted.
        """
        data = self.zipfile_archive(zipfile.ZIP_DEFLATED, force_zip64=True)
        self.assertIn(b"\xff\xff\xff\xff", data)
        self.assertAccepted(data)

    def test_data_descriptors_when_allowed(self):
        """
        Deflated members with data descriptors, as zipfile writes to a stream, are accepted when
        allowed.
        """
        data = self.zipfile_archive(zipfile.ZIP_DEFLATED, stream=Unseekable())
        self.assertIn(b"PK\x07\x08", data)
        entries = self.assertAccepted(data, allow_data_descriptors=True)
        self.assertEqual([e.flags & 0x08 for e in entries], [8, 8, 8])

    def test_zip64_data_descriptors_when_allowed(self):
        """
        A ZIP64 member with a 64-bit data descriptor, written by zipfile to a stream, is accepted
        when allowed.
        """
        data = self.zipfile_archive(zipfile.ZIP_DEFLATED, stream=Unseekable(), force_zip64=True)
        self.assertAccepted(data, allow_data_descriptors=True)

    def test_descriptor_forms(self):
        """
        Data descriptors with and without their signature, with 32- or 64-bit sizes, are accepted
        when allowed.
        """
        payload = b"hello " * 50
        size = len(deflate(payload))
        crc = zlib.crc32(payload)
        for signature in (True, False):
            for zip64 in (True, False):
                member = Member(
                    "a.txt", payload, method=8, flags=0x08,
                    local_extra=zip64_extra(0, 0) if zip64 else b"",
                    local={"file_size": U32, "compressed_size": U32} if zip64 else {},
                    descriptor=data_descriptor(crc, size, len(payload), signature, zip64),
                )
                self.assertAccepted(build_zip([member, Member("b.txt", b"b")]),
                                    allow_data_descriptors=True)

    def test_empty_archive(self):
        """An archive with no members is accepted and has no entries."""
        buf = io.BytesIO()
        zipfile.ZipFile(buf, "w").close()
        self.assertEqual(self.assertAccepted(buf.getvalue()), ())

    def test_wheel_and_zip_sdist(self):
        """The test suite's wheels and zip sdists are accepted."""
        self.assertAccepted(make_wheel("demo", "1.0")[1])
        self.assertAccepted(make_sdist_zip("demo", "1.0")[1])

    def test_zip64_end_records(self):
        """
        An archive ending with a ZIP64 record and locator, the plain record holding sentinels, is
        accepted.
        """
        data = small_zip(zip64=True, end={"disk_count": U16, "count": U16, "cd_size": U32,
                                          "cd_offset": U32})
        self.assertAccepted(data)

    def test_zip64_end_records_with_plain_values(self):
        """A ZIP64 end record whose values the plain record repeats exactly is accepted."""
        self.assertAccepted(small_zip(zip64=True))

    def test_zip64_central_offset(self):
        """A central entry whose offset and sizes are in its ZIP64 extra field is accepted."""
        first = Member("a.txt", b"a")
        second = Member("b.txt", b"bb")
        offset = len(first.local_header()) + 1
        second.central.update(file_size=U32, compressed_size=U32, offset=U32)
        second.central_extra = zip64_extra(2, 2, offset)
        entries = self.assertAccepted(build_zip([first, second]))
        self.assertEqual(entries[1].header_offset, offset)

    def test_empty_deflated_directory(self):
        """
        A directory entry holding the two-byte empty deflate stream (as in PySocks 1.7.1) is
        accepted.
        """
        member = Member("pkg/", method=8)
        self.assertEqual(member.compressed, b"\x03\x00")
        self.assertAccepted(build_zip([member, Member("pkg/a.py", b"a")]))

    def test_unusual_but_valid_names(self):
        """Names with spaces, leading dots and non-ASCII letters (flagged UTF-8) are accepted."""
        self.assertAccepted(build_zip([
            Member("flax/oss/ .git-blame-ignore-revs", b""),
            Member("pkg/.hidden", b""),
            Member("pkg/données.txt", b"d"),
        ]))


class EndRecordTests(CheckTestsMixin, SynchronousTestCase):
    """The end of central directory records, and what may surround the archive."""

    def test_not_a_zip(self):
        """Bytes with no end record, and a file too short to hold one, are refused."""
        self.assertRefused(b"\x00" * 100, "not a zip archive (no end of central directory")
        self.assertRefused(b"PK", "not a zip archive (too short)")

    def test_comment(self):
        """An archive comment, which zipfile accepts, is refused."""
        data = small_zip(comment=b"hidden payload")
        self.assertEqual(len(zipfile_members(data)), 2)
        self.assertRefused(data, "the archive has a comment (14 bytes)")

    def test_comment_length_past_the_end(self):
        """An end record announcing a comment that is not there is refused."""
        self.assertRefused(small_zip(end={"comment_length": 5}), "announces a comment past")

    def test_appended_data(self):
        """Bytes after the end record, which zipfile accepts, are refused."""
        data = small_zip(suffix=b"appended")
        self.assertEqual(len(zipfile_members(data)), 2)
        self.assertRefused(data, "8 bytes follow the end of central directory record")
        self.assertRefused(small_zip(suffix=b"PK\x05\x06"),
                           "4 bytes follow the end of central directory record")

    def test_appended_archive(self):
        """Two archives end to end, of which zipfile reads the second, are refused."""
        data = small_zip() + build_zip([Member("evil.py", b"import os")])
        self.assertEqual(zipfile_members(data), [("evil.py", b"import os")])
        self.assertRefused(data, "bytes are in front of the archive")

    def test_prepended_stub(self):
        """
        Bytes in front of an archive whose offsets ignore them, which zipfile accepts, are refused.
        """
        data = small_zip(prefix=b"#!/bin/sh\nexit 0\n", base=17)
        self.assertEqual(len(zipfile_members(data)), 2)
        self.assertRefused(data, "17 bytes are in front of the archive")

    def test_prepended_bytes(self):
        """Bytes before the first local header, with offsets counting them, are refused."""
        data = small_zip(prefix=b"junk")
        self.assertEqual(len(zipfile_members(data)), 2)
        self.assertRefused(data, "4 bytes come before the first local header")

    def test_tar_polyglot(self):
        """
        An archive whose first block is also a valid tar header, which tarfile and zipfile both
        read, is refused.
        """
        # The first member's name covers bytes 30 to 230, and so the tar
        # header's mode, ids, size, mtime, checksum and type fields.
        name = bytearray(b"a" * 200)
        for start, length in ((100, 8), (108, 8), (116, 8), (124, 12), (136, 12)):
            name[start - 30:start - 30 + length] = b"0" * (length - 1) + b" "
        name[148 - 30:156 - 30] = b" " * 8
        name[156 - 30] = ord("0")
        # Its data covers the rest of the block: spaces, which tar reads as 0.
        first = Member(bytes(name), b" " * 400)
        data = bytearray(build_zip([first]))
        checksum = sum(data[:512])
        field = b"%07o " % checksum
        data[148:156] = field
        cd = data.index(b"PK\x01\x02")
        data[cd + 46 + 118:cd + 46 + 126] = field
        data = bytes(data)
        self.assertEqual(len(zipfile_members(data)), 1)
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            self.assertEqual(len(tf.getmembers()), 1)
        self.assertRefused(data, "the archive is also a tar archive")

    def test_multi_disk(self):
        """An end record naming another disk is refused."""
        self.assertRefused(small_zip(end={"disk": 1}), "multi-disk archives")
        self.assertRefused(small_zip(end={"cd_disk": 1}), "multi-disk archives")

    def test_counts_differ(self):
        """Different entry counts for this disk and in all are refused."""
        self.assertRefused(small_zip(end={"disk_count": 1}), "counts 1 entries on this disk but 2")

    def test_sentinel_without_zip64(self):
        """A ZIP64 sentinel in the end record with no ZIP64 record is refused."""
        self.assertRefused(small_zip(end={"count": U16, "disk_count": U16}),
                           "has a ZIP64 sentinel value but there is no ZIP64 record")

    def test_zip64_value_differs(self):
        """
        A plain end record value that is neither the ZIP64 record's nor the sentinel is refused.
        """
        self.assertRefused(small_zip(zip64=True, end={"count": 1, "disk_count": 1}),
                           "entry count of this disk (1) differs from the ZIP64 record's (2)")

    def test_zip64_locator_offset(self):
        """A ZIP64 locator that points elsewhere than the record right before it is refused."""
        self.assertRefused(small_zip(zip64=True, locator={"offset": 0}),
                           "does not point at a ZIP64 end of central directory record right")

    def test_zip64_record_signature(self):
        """A ZIP64 record with a bad signature is refused."""
        self.assertRefused(small_zip(zip64=True, end64={"signature": b"PK\x06\x05"}),
                           "does not point at a ZIP64 end of central directory record")

    def test_zip64_extensible_data(self):
        """A ZIP64 record with extensible data, which zipfile does not read, is refused."""
        self.assertRefused(small_zip(zip64=True, end64_data=b"\x00" * 8),
                           "does not point at a ZIP64 end of central directory record right")
        data = small_zip(zip64=True, end64={"size": 52})
        self.assertRefused(data, "has extensible data")

    def test_zip64_multi_disk(self):
        """A ZIP64 locator or record naming another disk is refused."""
        self.assertRefused(small_zip(zip64=True, locator={"disks": 2}), "multi-disk archives")
        self.assertRefused(small_zip(zip64=True, end64={"disk": 1}, end={"disk": U16}),
                           "multi-disk archives")

    def test_zip64_version(self):
        """A ZIP64 record needing a zip version past 6.3 is refused."""
        self.assertRefused(small_zip(zip64=True, end64={"version": 64}), "unknown zip version")

    def test_gap_before_end_records(self):
        """Bytes between the central directory and the end records are refused."""
        self.assertRefused(small_zip(between=b"gap"),
                           "3 bytes are in front of the archive, or between")

    def test_directory_past_end_records(self):
        """A central directory size reaching past the end records is refused."""
        self.assertRefused(small_zip(end={"cd_size": 1000}), "reach past its end records")


class LimitTests(CheckTestsMixin, SynchronousTestCase):
    """The limits are checked before the central directory is read."""

    def huge(self, count, cd_size):
        """
        Return a 5 GiB sparse file whose ZIP64 end records announce C{count} entries in C{cd_size}
        bytes.
        """
        size = 5 << 30
        record_offset = size - 98
        cd_offset = record_offset - cd_size
        tail = (struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                            cd_size, cd_offset)
                + struct.pack("<4sLQL", b"PK\x06\x07", 0, record_offset, 1)
                + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, U16, U16, U32, U32, 0))
        return SparseFile(size, tail)

    def test_too_many_entries(self):
        """
        An archive announcing more entries than allowed is refused after reading only its end
        records.
        """
        f = self.huge(200_000, 4 << 30)
        error = self.assertRaises(UnsafeZip, check_zip, f)
        self.assertEqual(str(error),
                         "the archive has 200000 entries, more than the 100000 allowed")
        self.assertIsNone(error.member)
        self.assertLess(f.bytes_read, 1024)

    def test_huge_central_directory(self):
        """
        A central directory larger than its announced entries can be is refused after a small read.
        """
        f = self.huge(10, 4 << 30)
        error = self.assertRaises(UnsafeZip, check_zip, f)
        self.assertEqual(str(error), "the central directory is 4294967296 bytes, more than its "
                                     "10 entries can take (20940)")
        self.assertLess(f.bytes_read, 1024)

    def test_max_entries(self):
        """The entry limit is the caller's."""
        self.assertRefused(small_zip(), "2 entries, more than the 1 allowed", max_entries=1)
        self.assertAccepted(small_zip(), max_entries=2)

    def test_many_long_names(self):
        """
        30,004 entries of 174-byte names are accepted: the count the end record gives is
        checked, not the directory's size divided by the smallest entry.
        """
        names = [f"pkg/{'sub/' * 40}m{i:06d}.py" for i in range(30_000)]
        members = [Member(name, b"") for name in names]
        members += [Member(f"pkg/extra{i}.py", b"x") for i in range(4)]
        data = build_zip(members)
        cd_size = struct.unpack("<L", data[-10:-6])[0]
        self.assertGreater(cd_size // 46, 100_000)
        entries = check_zip(io.BytesIO(data))
        self.assertEqual(len(entries), 30_004)
        self.assertEqual(entries[0].name, names[0])
        check_zip_data(io.BytesIO(data), entries, max_expanded=4)

    def test_central_directory_too_small(self):
        """A central directory too small for its announced entries is refused."""
        self.assertRefused(small_zip(end={"count": 3, "disk_count": 3}),
                           "the central directory is too small for its 3 entries")
        data = build_zip([Member("a" * 30, b"a"), Member("b" * 30, b"b")],
                         end={"count": 3, "disk_count": 3})
        self.assertRefused(data, "the central directory ends after 2 of its 3 entries")

    def test_entry_past_central_directory(self):
        """
        A central entry whose name or extra field reaches past the directory's end is refused.
        """
        data = bytearray(build_zip([Member("a.py", b"a")]))
        cd = data.index(b"PK\x01\x02")
        data[cd + 28:cd + 30] = struct.pack("<H", 200)
        self.assertRefused(bytes(data), "central directory entry 0 runs past the directory's end")
        data = bytearray(build_zip([Member("a.py", b"a")]))
        data[cd + 30:cd + 32] = struct.pack("<H", 200)
        self.assertRefused(bytes(data),
                           "the central directory entry runs past the directory's end", "a.py")

    def test_more_entries_than_announced(self):
        """A central directory holding more entries than the end record says is refused."""
        data = build_zip([Member("a", b"a"), Member("b", b"b"), Member("c", b"c")],
                         end={"count": 2, "disk_count": 2})
        self.assertRefused(data, "the central directory holds more than its 2 entries")

    def test_name_length(self):
        """A name longer than the limit is refused."""
        data = build_zip([Member("a" * 30, b"")])
        self.assertRefused(data, "the name is longer than 20 bytes", "a" * 30, max_name_length=20)

    def test_component_length(self):
        """A path component longer than 255 bytes is refused."""
        name = "pkg/" + "a" * 256
        self.assertRefused(build_zip([Member(name, b"")]), "longer than 255 bytes",
                           name[:120] + "...")

    def test_extra_length(self):
        """Extra fields longer than the limit are refused, in either header."""
        block = extra_block(0x5455, b"\x00" * 40)
        self.assertRefused(build_zip([Member("a", central_extra=block)]),
                           "the central directory extra field is longer than 20 bytes", "a",
                           max_extra_length=20)
        self.assertRefused(build_zip([Member("a", local_extra=block)]),
                           "the local extra field is longer than 20 bytes", "a",
                           max_extra_length=20)


class CentralDirectoryTests(CheckTestsMixin, SynchronousTestCase):
    """Each central directory entry on its own."""

    def test_bad_signature(self):
        """A central directory entry with a bad signature is refused."""
        data = build_zip([Member("a", b"a", central={"signature": b"PK\x01\x03"})])
        self.assertRefused(data, "central directory entry 0 has a bad signature")

    def test_entry_comment(self):
        """An entry comment, which zipfile accepts, is refused."""
        data = build_zip([Member("a.py", b"a", central={"comment": b"more bytes"})])
        self.assertEqual(len(zipfile_members(data)), 1)
        self.assertRefused(data, "entry comments are not accepted", "a.py")

    def test_other_disk(self):
        """A member on another disk is refused."""
        data = build_zip([Member("a.py", b"a", central={"disk": 1})])
        self.assertRefused(data, "the member is on another disk", "a.py")

    def test_encrypted(self):
        """Encrypted members (flag bit 0, bit 6, bit 13, method 99, extra 0x0017) are refused."""
        for member in (Member("a.py", b"a", flags=0x01), Member("a.py", b"a", flags=0x40),
                       Member("a.py", b"a", flags=0x2000), Member("a.py", b"a", method=99),
                       Member("a.py", b"a", central_extra=extra_block(0x0017, b"\x00" * 8))):
            self.assertRefused(build_zip([member]), "encrypted members are not accepted", "a.py")

    def test_unknown_flags(self):
        """Flag bits other than the deflate options, the data descriptor and UTF-8 are refused."""
        for flags in (0x10, 0x20, 0x1000, 0x8000):
            self.assertRefused(build_zip([Member("a.py", b"a", flags=flags)]),
                               f"has unsupported flag bits {flags:#06x}", "a.py")

    def test_methods(self):
        """
        Compression methods other than stored and deflate (bzip2, lzma, deflate64) are refused.
        """
        for method in (12, 14, 9, 1):
            self.assertRefused(build_zip([Member("a.py", b"a", method=method)]),
                               f"compression method {method} is not accepted", "a.py")

    def test_version_needed(self):
        """A version needed to extract past 6.3, which zipfile cannot extract, is refused."""
        self.assertRefused(build_zip([Member("a.py", b"a", central={"version": 64})]),
                           "needs zip version 6.4", "a.py")
        self.assertRefused(build_zip([Member("a.py", b"a", local={"version": 64})]),
                           "the local header needs zip version 6.4", "a.py")

    def test_malformed_extra(self):
        """Extra fields whose blocks do not fit are refused, in either header."""
        for extra in (b"\x55\x54\x05\x00abc", b"\x55\x54\x00"):
            self.assertRefused(build_zip([Member("a.py", b"a", central_extra=extra)]),
                               "the central directory extra field is malformed", "a.py")
            self.assertRefused(build_zip([Member("a.py", b"a", local_extra=extra)]),
                               "the local extra field is malformed", "a.py")

    def test_unicode_path_extra(self):
        """The Info-ZIP Unicode Path extra field, which gives readers another name, is refused."""
        body = b"\x01" + struct.pack("<L", zlib.crc32(b"a.py")) + b"evil.py"
        data = build_zip([Member("a.py", b"a", central_extra=extra_block(0x7075, body))])
        self.assertRefused(data, "Unicode Path extra field (0x7075) is not accepted", "a.py")
        data = build_zip([Member("a.py", b"a", local_extra=extra_block(0x7075, body))])
        self.assertRefused(data, "Unicode Path extra field (0x7075) is not accepted", "a.py")

    def test_two_zip64_blocks(self):
        """Two ZIP64 blocks in one header, of which readers may take either, are refused."""
        extra = zip64_extra(1, 1) + zip64_extra(9, 9)
        data = build_zip([Member("a.py", b"a", local_extra=extra,
                                 local={"file_size": U32, "compressed_size": U32})])
        self.assertRefused(data, "the local extra field has two ZIP64 blocks", "a.py")
        data = build_zip([Member("a.py", b"a", central_extra=zip64_extra() + zip64_extra())])
        self.assertRefused(data, "the central directory extra field has two ZIP64", "a.py")

    def test_central_sentinel_without_zip64(self):
        """A central sentinel size with no ZIP64 extra field is refused."""
        data = build_zip([Member("a.py", b"a", central={"file_size": U32})])
        self.assertRefused(data, "has a ZIP64 sentinel value but no ZIP64 extra field", "a.py")

    def test_central_zip64_extra_length(self):
        """
        A central ZIP64 extra holding other fields than those its sentinels call for is refused.
        """
        # zipfile reads the first 8 bytes as the compressed size: another
        # reader taking them positionally as the size would see 1.
        data = build_zip([Member("a.py", b"a", central={"compressed_size": U32},
                                 central_extra=zip64_extra(1, 1))])
        self.assertEqual(zipfile_members(data), [("a.py", b"a")])
        self.assertRefused(data, "holds 16 bytes where its sentinel values call for 8", "a.py")

    def test_zip64_size_confusion(self):
        """
        Sizes whose 32- and 64-bit values differ, of which zipfile reads the 32-bit one, are
        refused.
        """
        # After the public index's accepted short_usize_zip64.zip: zipfile
        # reads 9 bytes, a reader trusting the ZIP64 extra all of them.
        payload = b"# benign\nprint('malicious')\n# 1232301311112331100\n"
        crc = zlib.crc32(payload[:9])
        headers = {"file_size": 9, "crc": crc}
        sizes = zip64_extra(len(payload), len(payload))
        member = Member("file", payload, local=headers, central=headers, local_extra=sizes,
                        central_extra=sizes)
        data = build_zip([member])
        self.assertEqual(zipfile_members(data), [("file", b"# benign\n")])
        self.assertRefused(data, "holds 16 bytes where its sentinel values call for 0", "file")
        member.central_extra = b""
        self.assertRefused(build_zip([member]),
                           "the local header's size (9) differs from its ZIP64 extra", "file")

    def test_central_zip64_disk(self):
        """
        A disk number in the central ZIP64 extra counts like the others: sentinel, field, and must
        be 0.
        """
        data = build_zip([Member("a.py", b"a", central={"disk": U16},
                                 central_extra=zip64_extra(disk=1))])
        self.assertRefused(data, "the member is on another disk", "a.py")
        data = build_zip([Member("a.py", b"a", central={"disk": U16},
                                 central_extra=zip64_extra(disk=0))])
        self.assertAccepted(data)


class NameTests(CheckTestsMixin, SynchronousTestCase):
    """Member names, each on its own and against each other."""

    def refuse_name(self, name, reason, shown=None):
        """Assert that an archive with a member named C{name} is refused for C{reason}."""
        return self.assertRefused(build_zip([Member(name, b"x")]), reason,
                                  name if shown is None else shown)

    def test_duplicate(self):
        """Two members of the same name, of which zipfile reads the last, are refused."""
        data = build_zip([Member("pkg/a.py", b"first"), Member("pkg/a.py", b"second")])
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            self.assertEqual(zf.read("pkg/a.py"), b"second")
        self.assertRefused(data, "the name appears twice", "pkg/a.py")

    def test_case_duplicate(self):
        """
        Names that differ only by case, one file on a case-insensitive file system, are refused.
        """
        data = build_zip([Member("pkg/README", b"a"), Member("pkg/readme", b"b")])
        error = self.assertRefused(data, "collides with 'pkg/README'", "pkg/readme")
        self.assertIn("case-insensitive", str(error))
        data = build_zip([Member("PKG/a", b"a"), Member("pkg/A", b"b")])
        self.assertRefused(data, "collides with 'PKG/a'", "pkg/A")

    def test_normalization_duplicate(self):
        """Names equal once NFC-normalized, one file on macOS, are refused."""
        composed = unicodedata.normalize("NFC", "pkg/caf\u00e9")
        decomposed = unicodedata.normalize("NFD", composed)
        data = build_zip([Member(composed, b"a"), Member(decomposed, b"b")])
        self.assertRefused(data, "collides with", decomposed)

    def test_trailing_dot_duplicate(self):
        """Names equal but for trailing dots or spaces, one file on Windows, are refused."""
        self.assertRefused(build_zip([Member("a.py", b"a"), Member("a.py.", b"b")]),
                           "collides with 'a.py'", "a.py.")
        self.assertRefused(build_zip([Member("pkg/a", b"a"), Member("pkg /a", b"b")]),
                           "collides with 'pkg/a'", "pkg /a")

    def test_trailing_slash_duplicate(self):
        """A file and a directory of the same name are refused."""
        self.assertRefused(build_zip([Member("pkg", b"a"), Member("pkg/")]),
                           "collides with 'pkg'", "pkg/")

    def test_file_used_as_directory(self):
        """A name that is a file and the parent of another, in either order, is refused."""
        self.assertRefused(build_zip([Member("pkg", b"a"), Member("pkg/a.py", b"b")]),
                           "puts a file under 'pkg', which is a file", "pkg/a.py")
        self.assertRefused(build_zip([Member("pkg/a.py", b"b"), Member("PKG", b"a")]),
                           "puts a file under 'PKG', which is a file", "pkg/a.py")
        data = build_zip([Member("a", b"a"), Member("a-b", b"b"), Member("a/c", b"c")])
        self.assertRefused(data, "puts a file under 'a', which is a file", "a/c")

    def test_absolute(self):
        """Absolute names, with a leading slash or a drive letter, are refused."""
        self.refuse_name("/etc/passwd", "the name is an absolute path")
        self.refuse_name("C:/evil.py", "holds a colon")
        self.refuse_name("pkg/a.py:stream", "holds a colon")

    def test_dot_components(self):
        """Names with a '..', '.' or empty component are refused."""
        for name in ("../evil.py", "pkg/../../evil.py", "./a.py", "pkg//a.py", "pkg/./a.py",
                     "pkg/.."):
            self.refuse_name(name, "the name has an empty, '.' or '..' component")

    def test_backslash(self):
        """A backslash, a separator on Windows, is refused."""
        self.refuse_name("pkg\\..\\evil.py", "the name holds a backslash", "pkg\\\\..\\\\evil.py")

    def test_nul(self):
        """A NUL, at which zipfile cuts the name, is refused, and shown escaped."""
        data = build_zip([Member("evil.py\x00.txt", b"x")])
        self.assertEqual(zipfile_members(data), [("evil.py", b"x")])
        self.assertRefused(data, "holds a NUL or another control character", "evil.py\\x00.txt")

    def test_control_characters(self):
        """Control characters (C0, DEL, C1) are refused."""
        self.refuse_name("a\x1b[2Jb", "control character", "a\\x1b[2Jb")
        self.refuse_name("a\x7fb", "control character", "a\\x7fb")
        self.refuse_name("a\x85b", "control character", "a\\x85b")
        self.refuse_name("a\nb", "control character", "a\\nb")

    def test_format_characters(self):
        """
        Invisible and lookalike characters (bidi controls, zero-width characters, a byte order
        mark, line separators, other spaces, private use) are refused, named by code point.
        """
        for char, what in (("\u202e", "invisible format character"),
                           ("\u2066", "invisible format character"),
                           ("\u200b", "invisible format character"),
                           ("\ufeff", "invisible format character"),
                           ("\u2028", "line separator"), ("\u2029", "paragraph separator"),
                           ("\u00a0", "space other than U+0020"),
                           ("\ue000", "private-use character")):
            name = f"pkg/a{char}b.py"
            shown = name.encode("unicode_escape").decode("ascii")
            self.refuse_name(name, f"the name holds an {what} (U+{ord(char):04X})"
                             if what[0] == "i" else f"the name holds a {what}", shown)

    def test_empty_name(self):
        """An empty name is refused."""
        self.refuse_name("", "the name is empty")

    def test_invalid_utf8(self):
        """A name flagged UTF-8 that is not is refused, and shown escaped."""
        data = build_zip([Member(b"caf\xe9", b"x", flags=0x800)])
        self.assertRefused(data, "the name is not valid UTF-8", "caf\\\\xe9")

    def test_cp437(self):
        """
        A non-ASCII name without the UTF-8 flag, which readers decode differently, is refused.
        """
        data = build_zip([Member("café".encode(), b"x", flags=0)])
        self.assertEqual(zipfile_members(data)[0][0], "caf\u251c\u2310")
        self.assertRefused(data, "the name is not ASCII and the UTF-8 flag", "café")

    def test_quote_escaped(self):
        """A quote in a name is escaped in the message."""
        self.refuse_name("it's/../x", "component", "it\\'s/../x")


class KindTests(CheckTestsMixin, SynchronousTestCase):
    """What a member is: file, directory, or something refused."""

    def test_directory_with_content(self):
        """A directory entry with data, a size or a CRC is refused."""
        self.assertRefused(build_zip([Member("pkg/", b"hidden")]),
                           "the directory entry has content", "pkg/")
        self.assertRefused(build_zip([Member("pkg/", method=8, compressed=b"\x03\x00\x00")]),
                           "the directory entry has content", "pkg/")
        self.assertRefused(build_zip([Member("pkg/", method=8, compressed=b"\x01\x00")]),
                           "the directory entry has content", "pkg/")

    def test_symlink(self):
        """A symbolic link, which zipfile extracts as a file and unzip as a link, is refused."""
        data = build_zip([Member("pkg/link", b"/etc/passwd", mode=0o120777)])
        self.assertRefused(data, "symbolic links are not accepted", "pkg/link")

    def test_special_file(self):
        """A FIFO or device in a Unix mode is refused."""
        data = build_zip([Member("pkg/fifo", b"", mode=0o010644)])
        self.assertRefused(data, "special files (Unix mode 0o10000)", "pkg/fifo")

    def test_mode_disagrees_with_name(self):
        """
        A Unix mode or DOS attribute saying directory without a slash, or file with one, is
        refused.
        """
        self.assertRefused(build_zip([Member("pkg", b"", mode=0o40755)]),
                           "the Unix mode says directory", "pkg")
        self.assertRefused(build_zip([Member("pkg/", mode=0o100644)]),
                           "the Unix mode says file", "pkg/")
        member = Member("pkg", b"", host=0)
        member.external = 0x10
        self.assertRefused(build_zip([member]), "the directory attribute is set", "pkg")

    def test_mode_ignored_for_other_hosts(self):
        """Upper attribute bits of an archive made on MS-DOS are not read as a Unix mode."""
        self.assertAccepted(build_zip([Member("pkg/a", b"a", host=0, mode=0o120777)]))


class LocalHeaderTests(CheckTestsMixin, SynchronousTestCase):
    """Each local header against its central entry, and how the members tile the file."""

    def test_gap_between_members(self):
        """Bytes between two members, which zipfile accepts, are refused."""
        data = build_zip([Member("a.py", b"a", gap=b"PK\x03\x04hidden"), Member("b.py", b"b")])
        self.assertEqual(len(zipfile_members(data)), 2)
        self.assertRefused(data, "10 bytes between it and 'a.py' belong to no member", "b.py")

    def test_gap_before_central_directory(self):
        """Bytes between the last member and the central directory are refused."""
        data = build_zip([Member("a.py", b"a"), Member("b.py", b"b", gap=b"hidden")])
        self.assertEqual(len(zipfile_members(data)), 2)
        self.assertRefused(data, "6 bytes between it and the central directory", "b.py")

    def test_hidden_local_member(self):
        """
        A local header the central directory leaves out, which a streaming reader extracts, is
        refused.
        """
        hidden = Member("evil.py", b"import os")
        data = build_zip([Member("a.py", b"a"), hidden, Member("b.py", b"b")],
                         directory=[0, 2], end={})
        self.assertEqual([name for name, _ in zipfile_members(data)], ["a.py", "b.py"])
        self.assertRefused(data, "belong to no member", "b.py")

    def test_only_bytes_before_central_directory(self):
        """An empty central directory after some bytes is refused."""
        data = build_zip([], prefix=b"PK\x03\x04 stray")
        self.assertRefused(data, "10 bytes come before the central directory")

    def test_overlap(self):
        """
        Two entries sharing one local header, or one starting inside another's data, are refused.
        """
        first = Member("a.py", b"a" * 100)
        second = Member("b.py", b"b", central={"offset": 0})
        data = build_zip([first, second])
        self.assertRefused(data, "the member overlaps 'a.py'", "b.py")
        second = Member("b.py", b"b", central={"offset": 50})
        self.assertRefused(build_zip([first, second]), "the member overlaps 'a.py'", "b.py")

    def test_entry_at_central_directory(self):
        """A central entry pointing at the central directory itself is refused."""
        phantom = Member("b.py", compressed=b"")
        phantom.local_header = lambda: b""
        data = build_zip([Member("a.py", b"a"), phantom])
        self.assertRefused(data, "the local header runs into the central directory", "b.py")

    def test_no_local_header(self):
        """A central entry pointing at something other than a local header is refused."""
        data = build_zip([Member("a.py", b"a", local={"signature": b"PK\x03\x05"})])
        self.assertRefused(data, "no local header where the central directory says", "a.py")

    def test_local_name(self):
        """A local header naming another file, which streaming readers extract, is refused."""
        data = build_zip([Member("a.py", b"a", local={"name": b"evil.py"})])
        self.assertRefused(data, "the local header has another name", "a.py")

    def test_local_crc(self):
        """A local CRC different from the central one is refused."""
        data = build_zip([Member("a.py", b"a", local={"crc": 1})])
        self.assertRefused(data, "the local header's CRC (1) differs", "a.py")

    def test_local_sizes(self):
        """Local sizes different from the central ones are refused."""
        data = build_zip([Member("a.py", b"abc", local={"compressed_size": 1})])
        self.assertRefused(data, "the local header's compressed size (1) differs from the "
                                 "central directory's (3)", "a.py")
        data = build_zip([Member("a.py", b"abc", local={"file_size": 9})])
        self.assertRefused(data, "the local header's size (9) differs", "a.py")

    def test_local_method(self):
        """A local compression method different from the central one is refused."""
        data = build_zip([Member("a.py", b"abc", local={"method": 8})])
        self.assertRefused(data, "compression method 8 differs from the central directory's 0",
                           "a.py")

    def test_local_flags(self):
        """Local flags different from the central ones are refused."""
        data = build_zip([Member("a.py", b"abc", local={"flags": 0x800})])
        self.assertRefused(data, "the local header's flags 0x0800 differ", "a.py")

    def test_local_encrypted(self):
        """An encrypted local header is refused even when the central entry is not."""
        data = build_zip([Member("a.py", b"abc", local={"flags": 0x01})])
        self.assertRefused(data, "encrypted members are not accepted", "a.py")

    def test_data_runs_into_central_directory(self):
        """A member whose data runs into the central directory is refused."""
        data = build_zip([Member("a.py", b"abc", central={"compressed_size": 500},
                                 local={"compressed_size": 500})])
        self.assertRefused(data, "the member's data runs into the central directory", "a.py")

    def test_local_header_runs_into_central_directory(self):
        """A local header whose name and extra run into the central directory is refused."""
        data = build_zip([Member("a.py", b"abc")])
        # The local header's extra field length is its last field.
        data = data[:28] + struct.pack("<H", 900) + data[30:]
        self.assertRefused(data, "the local header runs into the central directory", "a.py")

    def test_local_zip64_sentinel_without_extra(self):
        """A local sentinel size with no ZIP64 extra field is refused."""
        data = build_zip([Member("a.py", b"a", local={"file_size": U32})])
        self.assertRefused(data, "sentinel size but no ZIP64 extra field", "a.py")

    def test_local_zip64_length(self):
        """A local ZIP64 extra not holding both sizes is refused."""
        data = build_zip([Member("a.py", b"a", local={"file_size": U32},
                                 local_extra=zip64_extra(1))])
        self.assertRefused(data, "holds 8 bytes, not both sizes (16)", "a.py")

    def test_local_zip64_disagrees(self):
        """A local 32-bit size that is not the sentinel must equal the ZIP64 one."""
        data = build_zip([Member("a.py", b"a", local_extra=zip64_extra(1, 2))])
        self.assertRefused(data, "the local header's compressed size (1) differs from its ZIP64 "
                                 "extra field's (2)", "a.py")

    def test_local_zip64_differs_from_central(self):
        """Local ZIP64 sizes different from the central ones are refused."""
        data = build_zip([Member("a.py", b"a", local={"file_size": U32, "compressed_size": U32},
                                 local_extra=zip64_extra(7, 1))])
        self.assertRefused(data, "the local header's size (7) differs from the central", "a.py")

    def test_local_zip64_agrees(self):
        """A local ZIP64 extra repeating correct 32-bit sizes is accepted."""
        self.assertAccepted(build_zip([Member("a.py", b"a", local_extra=zip64_extra(1, 1))]))


class DataDescriptorTests(CheckTestsMixin, SynchronousTestCase):
    """Members whose sizes follow their data (flag bit 3)."""

    def member(self, payload=b"data " * 20, **kwargs):
        """Return a deflated member with a data descriptor."""
        kwargs.setdefault("descriptor", True)
        return Member("a.txt", payload, method=8, flags=0x08, **kwargs)

    def test_refused_by_default(self):
        """Data descriptors are refused unless allowed, as on the public index."""
        data = build_zip([self.member()])
        self.assertEqual(len(zipfile_members(data)), 1)
        self.assertRefused(data, "data descriptors (flag bit 3) are not accepted", "a.txt")
        self.assertAccepted(data, allow_data_descriptors=True)

    def test_stored(self):
        """
        A stored member with a data descriptor, whose end streaming readers must guess, is refused.
        """
        member = Member("a.txt", b"PK\x07\x08 looks like a descriptor", flags=0x08,
                        descriptor=True)
        data = build_zip([member])
        self.assertRefused(data, "a stored member with a data descriptor", "a.txt",
                           allow_data_descriptors=True)

    def test_descriptor_differs(self):
        """A data descriptor disagreeing with the central entry is refused."""
        payload = b"data " * 20
        wrong = data_descriptor(zlib.crc32(payload) ^ 1, len(deflate(payload)), len(payload))
        member = self.member(payload, descriptor=wrong)
        self.assertRefused(build_zip([member]), "the data descriptor differs", "a.txt",
                           allow_data_descriptors=True)

    def test_descriptor_width(self):
        """A 64-bit descriptor after a local header without a ZIP64 extra is refused."""
        payload = b"data " * 20
        member = self.member(payload, descriptor=data_descriptor(
            zlib.crc32(payload), len(deflate(payload)), len(payload), zip64=True))
        self.assertRefused(build_zip([member, Member("b", b"b")]), "the data descriptor differs",
                           "a.txt", allow_data_descriptors=True)

    def test_descriptor_missing(self):
        """A data descriptor flag with no descriptor before the central directory is refused."""
        data = build_zip([self.member(descriptor=None)])
        self.assertRefused(data, "the data descriptor runs into the central directory", "a.txt",
                           allow_data_descriptors=True)

    def test_local_values(self):
        """
        Local CRC and sizes of a member with a descriptor are 0 or the real ones, never others.
        """
        data = build_zip([self.member(local={"crc": 5})])
        self.assertRefused(data, "the local header's CRC is neither 0 nor", "a.txt",
                           allow_data_descriptors=True)
        member = self.member()
        member.local["compressed_size"] = len(member.compressed)
        self.assertAccepted(build_zip([member]), allow_data_descriptors=True)


class CountingFile(io.BytesIO):
    """An in-memory file counting the bytes read from it."""

    bytes_read = 0

    def read(self, n=-1):
        """Return up to C{n} bytes, counting them."""
        data = super().read(n)
        self.bytes_read += len(data)
        return data


class DataTests(SynchronousTestCase):
    """L{check_zip_data}: every member's bytes are the ones every reader reads."""

    def check(self, data, max_expanded=1 << 30):
        """Check C{data} with L{check_zip}, then L{check_zip_data}; return the entries."""
        entries = check_zip(io.BytesIO(data))
        check_zip_data(io.BytesIO(data), entries, max_expanded=max_expanded)
        return entries

    def assertRefused(self, data, reason, member, max_expanded=1 << 30):
        """
        Assert that L{check_zip} accepts C{data} but L{check_zip_data} refuses it for C{reason},
        naming C{member}.
        """
        entries = check_zip(io.BytesIO(data))
        error = self.assertRaises(UnsafeZip, check_zip_data, io.BytesIO(data), entries,
                                  max_expanded=max_expanded)
        self.assertIn(reason, str(error))
        self.assertEqual(error.member, member)
        if member is not None:
            self.assertTrue(str(error).startswith(f"member '{member}': "), str(error))
        return error

    def zipfile_archive(self, compression):
        """Return an archive written by C{zipfile}: a directory, an empty file, two others."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression) as zf:
            zf.writestr("pkg/", b"")
            zf.writestr("pkg/__init__.py", b"")
            zf.writestr("pkg/text.py", b"x = 1\n" * 1000)
            zf.writestr("pkg/data.bin", bytes(range(256)) * 9000)
        return buf.getvalue()

    def test_accepted(self):
        """Stored and deflated archives written by zipfile, and the test wheels, are accepted."""
        self.check(self.zipfile_archive(zipfile.ZIP_STORED))
        self.check(self.zipfile_archive(zipfile.ZIP_DEFLATED))
        self.check(make_wheel("demo", "1.0")[1])
        self.check(make_sdist_zip("demo", "1.0")[1])

    def test_large_members(self):
        """
        Members read and inflated over many chunks are accepted: incompressible data larger
        than a chunk, and a stream inflating to many chunks from few bytes.
        """
        noise = b"".join(zlib.crc32(b"seed", i).to_bytes(4, "little") for i in range(700_000))
        zeros = bytes(5 << 20)
        data = build_zip([Member("noise.bin", noise, method=8),
                          Member("zeros.bin", zeros, method=8), Member("stored.bin", noise)])
        self.assertGreater(len(deflate(noise)), 2 << 20)
        self.assertLess(len(deflate(zeros)), 1 << 20)
        self.check(data)

    def test_directories(self):
        """
        Directory entries with no data, stored or deflated, or with the empty deflate stream, are
        accepted.
        """
        self.check(build_zip([Member("a/"), Member("b/", method=8),
                              Member("c/", method=8, compressed=b"")]))

    def test_hidden_bytes_after_stored_data(self):
        """
        A stored member whose compressed size covers bytes after its data, which zipfile never
        reads, is refused.
        """
        data = build_zip([Member("pkg/a.py", b"x = 1\n", compressed=b"x = 1\nHIDDEN",
                                 central={"file_size": 6}, local={"file_size": 6})])
        self.assertEqual(zipfile_members(data), [("pkg/a.py", b"x = 1\n")])
        self.assertRefused(data, "the member is stored, but its compressed size (12) is not its "
                                 "size (6)", "pkg/a.py")

    def test_stored_empty_file_with_data(self):
        """A stored empty file whose compressed size covers ten bytes is refused."""
        data = build_zip([Member("pkg/x.py", b"", compressed=b"Z" * 10)])
        self.assertEqual(zipfile_members(data), [("pkg/x.py", b"")])
        self.assertRefused(data, "compressed size (10) is not its size (0)", "pkg/x.py")

    def test_junk_after_deflate_stream(self):
        """
        A deflate stream ending before the member's compressed size, the rest hidden from zipfile,
        is refused.
        """
        payload = b"x = 1\n"
        hidden = b"import os; os.system('id')\n"
        data = build_zip([Member("pkg/a.py", payload, method=8,
                                 compressed=deflate(payload) + hidden)])
        self.assertEqual(zipfile_members(data), [("pkg/a.py", payload)])
        self.assertRefused(data, f"the deflate stream ends {len(hidden)} bytes before the member's "
                                 "compressed size does", "pkg/a.py")

    def test_junk_after_deflate_stream_past_a_chunk(self):
        """Bytes after a deflate stream are refused when they lie in a later chunk of reading."""
        payload = b"x = 1\n"
        hidden = bytes(1 << 20)
        data = build_zip([Member("a.py", payload, method=8, compressed=deflate(payload) + hidden)])
        self.assertRefused(data, f"the deflate stream ends {1 << 20} bytes before", "a.py")

    def test_unfinished_deflate_stream(self):
        """A deflate stream cut before its final block is refused."""
        payload = bytes(range(256)) * 40
        stream = deflate(payload)
        data = build_zip([Member("a.bin", payload, method=8, compressed=stream[:-5])])
        self.assertRefused(data, "the deflate stream does not end within the member's compressed "
                                 "size", "a.bin")
        data = build_zip([Member("b.bin", b"", method=8, compressed=b"")])
        self.assertRefused(data, "the deflate stream does not end", "b.bin")

    def test_broken_deflate_stream(self):
        """Bytes that are no deflate stream are refused."""
        data = build_zip([Member("a.py", b"x", method=8, compressed=b"\xff\xff\xff")])
        self.assertRefused(data, "the deflate stream is broken", "a.py")

    def test_stream_shorter_than_size(self):
        """A deflate stream ending (at the last byte) before the declared size is refused."""
        payload = b"x = 1\n"
        sizes = {"file_size": 100}
        data = build_zip([Member("a.py", payload, method=8, central=sizes, local=sizes)])
        self.assertRefused(data, "the member inflates to 6 bytes, not its declared 100", "a.py")

    def test_stream_longer_than_size(self):
        """
        A deflate stream inflating past the declared size is refused without inflating it all.
        """
        sizes = {"file_size": 100}
        data = build_zip([Member("a.bin", bytes(8 << 20), method=8, central=sizes, local=sizes)])
        self.assertRefused(data, "the member inflates to more than its declared 100 bytes",
                           "a.bin")

    def test_wrong_crc(self):
        """A member whose data does not have its declared CRC-32 is refused, stored or deflated."""
        for method in (0, 8):
            crc = {"crc": zlib.crc32(b"x = 2\n")}
            data = build_zip([Member("a.py", b"x = 1\n", method=method, central=crc, local=crc)])
            error = self.assertRefused(data, "the member's data has CRC-32 ", "a.py")
            self.assertIn(f"not its declared {crc['crc']:#010x}", str(error))

    def test_bomb_refused_before_inflating(self):
        """
        An archive whose declared sizes add up past C{max_expanded} is refused before any of its
        data is read.
        """
        data = build_zip([Member("a.bin", bytes(600_000), method=8),
                          Member("b.bin", bytes(500_000), method=8)])
        entries = check_zip(io.BytesIO(data))
        f = CountingFile(data)
        error = self.assertRaises(UnsafeZip, check_zip_data, f, entries, max_expanded=1_000_000)
        self.assertEqual(str(error), "the archive expands to 1100000 bytes, more than 1000000")
        self.assertIsNone(error.member)
        self.assertEqual(f.bytes_read, 0)
        check_zip_data(io.BytesIO(data), entries, max_expanded=1_100_000)


class MemberNameTests(SynchronousTestCase):
    """L{check_member_name}: the zip name rules, for names from other archives."""

    def refuse(self, name, reason, shown=None, **kwargs):
        """Assert that C{name} is refused for C{reason}, naming it as C{shown}."""
        error = self.assertRaises(UnsafeArchive, check_member_name, name, **kwargs)
        self.assertNotIsInstance(error, UnsafeZip)
        self.assertIn(reason, str(error))
        self.assertEqual(error.member, name if shown is None else shown)
        return error

    def test_accepted(self):
        """Ordinary file and directory names, with spaces, dots and non-ASCII letters, pass."""
        for name in ("demo-1.0/setup.py", "demo-1.0/", "demo-1.0/src/pkg/", "demo-1.0/.hidden",
                     "demo-1.0/a b.txt", "demo-1.0/données.txt", "demo-1.0/" + "a" * 255):
            self.assertIsNone(check_member_name(name))

    def test_refused_characters(self):
        """BEL, newline, NUL, backslash, colon and U+202E (once accepted in tars) are refused."""
        self.refuse("demo/a\x07b", "control character (U+0007)", "demo/a\\x07b")
        self.refuse("demo/a\nb", "control character (U+000A)", "demo/a\\nb")
        self.refuse("demo/a\x00b", "control character (U+0000)", "demo/a\\x00b")
        self.refuse("demo\\..\\x", "the name holds a backslash", "demo\\\\..\\\\x")
        self.refuse("demo/a:b", "holds a colon")
        self.refuse("demo/\u202eyp.txt", "invisible format character (U+202E)",
                    "demo/\\u202eyp.txt")

    def test_undecodable(self):
        """A name holding bytes that were not UTF-8 (surrogate escapes) is refused, escaped."""
        name = b"demo/caf\xe9".decode("utf-8", "surrogateescape")
        self.refuse(name, "lone surrogate (an undecodable byte)", "demo/caf\\\\xe9")

    def test_paths(self):
        """Absolute names and empty, '.' or '..' components are refused; a trailing slash is not."""
        self.refuse("/etc/passwd", "the name is an absolute path")
        for name in ("demo/../x", "../x", "demo/./x", "demo//x", "demo/..", "./demo", "demo//"):
            self.refuse(name, "the name has an empty, '.' or '..' component")
        self.refuse("", "the name is empty")

    def test_lengths(self):
        """Names longer than the limit, and components over 255 bytes, are refused."""
        self.refuse("demo/" + "a" * 30, "the name is longer than 20 bytes", max_name_length=20)
        self.refuse("demo/" + "é" * 128, "a component of the name is longer than 255 bytes",
                    "demo/" + "é" * 115 + "...")
        self.refuse("d/" * 600, "the name is longer than 1024 bytes", "d/" * 60 + "...")

    def test_exceptions(self):
        """UnsafeZip is a kind of UnsafeArchive, so one handler catches either."""
        self.assertTrue(issubclass(UnsafeZip, UnsafeArchive))
        self.assertTrue(issubclass(UnsafeArchive, ValueError))


class MemberNamesTests(SynchronousTestCase):
    """L{MemberNames}: the zip rules against two names for one file, for other archives."""

    def refused(self, *names):
        """Return the error L{MemberNames} raises for C{names}, (name, is_dir) pairs."""
        member_names = MemberNames()
        for name, is_dir in names:
            member_names.add(name, is_dir)
        error = self.assertRaises(UnsafeArchive, member_names.check)
        self.assertNotIsInstance(error, UnsafeZip)
        return error

    def test_distinct(self):
        """Distinct names, directories holding files, and no names at all pass."""
        member_names = MemberNames()
        member_names.check()
        for name, is_dir in (("demo", True), ("demo/setup.py", False), ("demo/pkg/", True),
                             ("demo/pkg/a.py", False), ("demo/setup.cfg", False),
                             ("demo/a-b", False)):
            member_names.add(name, is_dir)
        self.assertIsNone(member_names.check())

    def test_duplicate(self):
        """The same name twice, which a tar extracts twice, keeping the last, is refused."""
        error = self.refused(("demo/a.py", False), ("demo/x", False), ("demo/a.py", False))
        self.assertEqual(str(error), "member 'demo/a.py': the name appears twice")

    def test_case(self):
        """setup.py beside SETUP.py, one file on case-insensitive file systems, is refused."""
        error = self.refused(("demo/setup.py", False), ("demo/SETUP.py", False))
        self.assertEqual(error.member, "demo/SETUP.py")
        self.assertIn("collides with 'demo/setup.py' on case-insensitive", str(error))

    def test_normalization_and_trailing_dots(self):
        """Names equal once NFC-normalized, or but for trailing dots and spaces, are refused."""
        composed = unicodedata.normalize("NFC", "demo/caf\u00e9")
        self.refused((composed, False), (unicodedata.normalize("NFD", composed), False))
        self.refused(("demo/a.py", False), ("demo/a.py. ", False))
        self.refused(("demo/pkg", True), ("demo/pkg /a", False), ("demo/PKG/a", False))

    def test_file_and_directory(self):
        """A name used for a file and a directory, or for a file and a parent, is refused."""
        error = self.refused(("demo/pkg", False), ("demo/pkg/", True))
        self.assertIn("collides with 'demo/pkg'", str(error))
        error = self.refused(("demo/pkg/a.py", False), ("demo/pkg", False))
        self.assertEqual(str(error), "member 'demo/pkg/a.py': the name puts a file under "
                                     "'demo/pkg', which is a file")
