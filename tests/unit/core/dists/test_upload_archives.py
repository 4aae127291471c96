"""
Tests for the upload rules of L{pypid.core.dists.dist_archive.extract} (C{strict=True}):
wheels that are wheels, with a C{WHEEL} that matches their name, and sdists
that unpack into one C{<name>-<version>/} directory and nothing else. Each
rule is checked against an archive the test builds, and each refusal names
the member concerned; files already in a folder (C{strict=False}) keep the
old, lenient reading.
"""

import gzip
import io
import tarfile
import zipfile

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.dist_archive import extract
from pypid.core.dists.metadata import InvalidDistribution
from pypid.core.dists.names import parse_filename
from tests.harness.distributions import (
    make_sdist,
    make_sdist_zip,
    make_wheel,
    make_zip,
    metadata_text,
    wheel_text,
)


def check(filename, data, strict=True):
    """Run L{extract} on C{data} named C{filename}."""
    return extract(io.BytesIO(data), parse_filename(filename, legacy=not strict), filename,
                   strict=strict)


def wheel_members(dist="holy_grail", version="1.0", wheel=None, metadata=None, skip=()):
    """The members of a valid wheel, with C{WHEEL} or C{METADATA} replaced."""
    info = f"{dist}-{version}.dist-info"
    members = [
        (f"{dist}/__init__.py", b""),
        (f"{info}/METADATA", metadata or metadata_text("holy-grail", version).encode()),
        (f"{info}/WHEEL", wheel if wheel is not None else wheel_text().encode()),
        (f"{info}/RECORD", b""),
    ]
    return [(name, data) for name, data in members if name.rsplit("/", 1)[-1] not in skip]


def tarball(members, trailer=b"", gz=True):
    """
    A tarball of C{members}: C{(TarInfo, bytes or None)} pairs; C{trailer}
    is appended to the tar stream before compression.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue() + trailer
    return gzip.compress(raw, mtime=0) if gz else raw


def member(name, data=b"", type=tarfile.REGTYPE, linkname=""):
    """One tar member."""
    info = tarfile.TarInfo(name)
    info.type = type
    info.linkname = linkname
    info.size = len(data) if type == tarfile.REGTYPE else 0
    return info, (data if type == tarfile.REGTYPE else None)


def sdist(*extra, top="holy_grail-1.0", metadata=None):
    """A valid sdist of holy-grail 1.0 with C{extra} members added."""
    pkg_info = metadata or metadata_text("holy-grail", "1.0", metadata_version="2.2").encode()
    return [member(f"{top}/PKG-INFO", pkg_info), member(f"{top}/setup.py", b"#\n"), *extra]


WHEEL = "holy_grail-1.0-py3-none-any.whl"
SDIST = "holy_grail-1.0.tar.gz"


class _RefusedMixin:
    """Asserts refusals of the upload rules for archives named L{filename}."""

    filename = WHEEL

    def refused(self, data, *words, filename=None):
        """Assert the upload rules refuse C{data}, with C{words} in the message."""
        e = self.assertRaises(InvalidDistribution, check, filename or self.filename, data)
        for word in words:
            self.assertIn(word, str(e))
        return e


class StrictWheelTests(_RefusedMixin, SynchronousTestCase):
    """The upload rules for wheels."""

    def test_valid(self):
        """The tests' own wheels pass, single- and multi-tag."""
        check(*make_wheel("holy-grail", "1.0"))
        check(*make_wheel("holy-grail", "1.0", tag="py2.py3-none-any"))
        check(*make_wheel("holy-grail", "1.0", tag="cp312-cp312-manylinux_2_17_x86_64"))

    def test_no_wheel_file(self):
        """A wheel without WHEEL is refused on upload and still read from a folder."""
        data = make_zip(wheel_members(skip=("WHEEL",)))
        self.refused(data, "no holy_grail-1.0.dist-info/WHEEL")
        check(WHEEL, data, strict=False)

    def test_tags_differ(self):
        """A WHEEL whose tags are not the filename's is refused, naming the member and the tags."""
        data = make_zip(wheel_members(wheel=wheel_text("cp312-cp312-win_amd64").encode()))
        self.refused(data, "holy_grail-1.0.dist-info/WHEEL", "do not match the filename",
                     "cp312-cp312-win_amd64")
        check(WHEEL, data, strict=False)

    def test_fewer_tags_than_the_filename(self):
        """A py2.py3 filename over a WHEEL that lists only py3 is refused."""
        data = make_zip(wheel_members(wheel=wheel_text("py3-none-any").encode()))
        self.refused(data, "py2-none-any not in", filename="holy_grail-1.0-py2.py3-none-any.whl")

    def test_wheel_version_2(self):
        """A WHEEL of Wheel-Version 2.0 is refused."""
        data = make_zip(wheel_members(wheel=wheel_text().replace("1.0", "2.0").encode()))
        self.refused(data, "Wheel-Version", "not supported")

    def test_wheel_not_key_value(self):
        """A WHEEL that is free text is refused."""
        self.refused(make_zip(wheel_members(wheel=b"just some text\n")), "Key: Value")

    def test_build_tag(self):
        """A build tag in the filename needs the same Build line in WHEEL."""
        name = "holy_grail-1.0-1-py3-none-any.whl"
        self.refused(make_zip(wheel_members()), "Build", filename=name)
        check(name, make_zip(wheel_members(wheel=(wheel_text() + "Build: 1\n").encode())))

    def test_text_file(self):
        """A text file named .whl is refused as not a zip."""
        self.refused(b"this is a text file, not a wheel\n" * 10, "zip")

    def test_tar_named_whl(self):
        """An sdist renamed to .whl is refused as not a zip."""
        self.refused(make_sdist("holy-grail", "1.0")[1], "zip")

    def test_unsupported_metadata_version(self):
        """METADATA of a Metadata-Version the index does not know is refused on upload only."""
        meta = metadata_text("holy-grail", "1.0", metadata_version="3.0").encode()
        data = make_zip(wheel_members(metadata=meta))
        self.refused(data, "Metadata-Version", "'3.0'")
        check(WHEEL, data, strict=False)

    def test_damaged_member_data(self):
        """A member whose bytes no longer match its CRC is refused on upload, naming it."""
        members = wheel_members()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for name, content in members:
                zf.writestr(name, content if name != "holy_grail/__init__.py" else b"X = 1\n")
        data = bytearray(buf.getvalue())
        at = data.find(b"X = 1\n")
        data[at] = ord("Y")
        self.refused(bytes(data), "member 'holy_grail/__init__.py'", "CRC-32")
        check(WHEEL, bytes(data), strict=False)

    def test_expansion_cap(self):
        """A zip that would expand past the cap is refused before anything is inflated."""
        from tests.harness.distributions import ZeroFill
        data = make_zip(wheel_members() + [("holy_grail/zeros", ZeroFill(300 << 20))], compresslevel=9)
        self.assertLess(len(data), 1 << 20)
        self.refused(data, "expands to", "more than 268435456")

    def test_dist_info_of_another_project(self):
        """A dist-info directory named for another project is refused."""
        data = make_zip(wheel_members(dist="other"))
        self.refused(data, "other-1.0.dist-info", "does not match")


class StrictSdistTests(_RefusedMixin, SynchronousTestCase):
    """The upload rules for tarball sdists."""

    filename = SDIST

    def test_valid(self):
        """The tests' own sdists pass, and so do directories, inner links and hard links."""
        check(*make_sdist("holy-grail", "1.0"))
        check(SDIST, tarball(sdist(
            member("holy_grail-1.0/pkg", type=tarfile.DIRTYPE),
            member("holy_grail-1.0/pkg/link.py", type=tarfile.SYMTYPE, linkname="../setup.py"),
            member("holy_grail-1.0/pkg/hard.py", type=tarfile.LNKTYPE,
                   linkname="holy_grail-1.0/setup.py"),
        )))

    def test_top_directory_spellings(self):
        """The top directory may spell the name as older tools did."""
        for top in ("holy-grail-1.0", "Holy.Grail-1.0", "holy_grail-1.0.0"):
            check(SDIST, tarball(sdist(top=top)))

    def test_top_directory_of_another_project(self):
        """A top directory named for another project or version is refused, naming it."""
        for top in ("other-1.0", "holy_grail-2.0", "holy_grail", "src"):
            self.refused(tarball(sdist(top=top)), repr(top), "<name>-<version>")
            check(SDIST, tarball(sdist(top=top)), strict=False)

    def test_members_outside(self):
        """Absolute and parent paths are refused, naming the member."""
        for name in ("/etc/passwd", "holy_grail-1.0/../../x", "../x"):
            e = self.assertRaises(InvalidDistribution, check, SDIST, tarball(sdist(member(name, b"x"))))
            self.assertIn(repr(name), str(e))
            self.assertTrue("outside" in str(e) or "absolute" in str(e) or "'..'" in str(e), str(e))

    def test_member_names(self):
        """Tarball member names follow the zip name rules: printable, no backslash or colon, capped."""
        for name in ("holy_grail-1.0/bell\x07", "holy_grail-1.0/a\\..\\..\\evil.py",
                     "holy_grail-1.0/c:x", "holy_grail-1.0/\u202egnp.py", "holy_grail-1.0/" + "x" * 2000):
            self.refused(tarball(sdist(member(name, b"x"))), "holy_grail-1.0/")
        # a NUL only survives in a pax path (GNU tar stops the name there; tarfile does not)
        info, data = member("holy_grail-1.0/nul", b"x")
        info.pax_headers = {"path": "holy_grail-1.0/nul\x00tail.py"}
        self.refused(tarball([*sdist(), (info, data)]), "control character")

    def test_device_files(self):
        """Character and block devices and FIFOs are refused, naming the member."""
        for kind in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
            self.refused(tarball(sdist(member("holy_grail-1.0/dev", type=kind))),
                         "'holy_grail-1.0/dev'", "not a file, a directory or a link")

    def test_links_outside(self):
        """Symbolic and hard links that leave the top directory are refused, naming the link."""
        for link in (
            member("holy_grail-1.0/a", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
            member("holy_grail-1.0/a", type=tarfile.SYMTYPE, linkname="../other"),
            member("holy_grail-1.0/d/a", type=tarfile.SYMTYPE, linkname="../../x"),
            member("holy_grail-1.0/a", type=tarfile.SYMTYPE, linkname=".."),
            member("holy_grail-1.0/a", type=tarfile.LNKTYPE, linkname="/etc/passwd"),
            member("holy_grail-1.0/a", type=tarfile.LNKTYPE, linkname="other-1.0/x"),
            member("holy_grail-1.0/a", type=tarfile.LNKTYPE, linkname="holy_grail-1.0/../x"),
        ):
            e = self.assertRaises(InvalidDistribution, check, SDIST, tarball(sdist(link)))
            self.assertIn("holy_grail-1.0/", str(e))
            self.assertTrue("points outside" in str(e) or "outside its directory" in str(e), str(e))

    def test_link_chains(self):
        """Links that each stay inside as text but lead out together are refused (found by a hostile run)."""
        chain = [
            member("holy_grail-1.0/a", type=tarfile.DIRTYPE),
            member("holy_grail-1.0/a/b", type=tarfile.DIRTYPE),
            member("holy_grail-1.0/a/b/up", type=tarfile.SYMTYPE, linkname=".."),
            member("holy_grail-1.0/a/b/up/up", type=tarfile.SYMTYPE, linkname=".."),
            member("holy_grail-1.0/a/b/up/up/up", type=tarfile.SYMTYPE, linkname=".."),
            member("holy_grail-1.0/a/b/up/up/up/ESCAPED.txt", b"outside"),
        ]
        self.refused(tarball(sdist(*chain)), "under 'holy_grail-1.0/a/b/up'")
        through = [
            member("holy_grail-1.0/here", type=tarfile.SYMTYPE, linkname="."),
            member("holy_grail-1.0/out", type=tarfile.SYMTYPE, linkname="here/../x"),
        ]
        self.refused(tarball(sdist(*through)), "'holy_grail-1.0/out' leads through another link")
        hard = [
            member("holy_grail-1.0/here", type=tarfile.SYMTYPE, linkname="."),
            member("holy_grail-1.0/h", type=tarfile.LNKTYPE, linkname="holy_grail-1.0/here/../x"),
        ]
        self.refused(tarball(sdist(*hard)), "'holy_grail-1.0/h' leads through another link")
        # a link to a link is fine: each is checked on its own
        check(SDIST, tarball(sdist(
            member("holy_grail-1.0/one", type=tarfile.SYMTYPE, linkname="setup.py"),
            member("holy_grail-1.0/two", type=tarfile.SYMTYPE, linkname="one"),
            member("holy_grail-1.0/d", type=tarfile.DIRTYPE),
            member("holy_grail-1.0/d/three", type=tarfile.SYMTYPE, linkname="../two"),
        )))

    def test_pax_size_differs(self):
        """A pax size that contradicts the member's header size is refused (readers disagree on the next header)."""
        info, data = member("holy_grail-1.0/setup.py", b"x" * 600)
        info.pax_headers = {"size": "1024"}
        self.refused(tarball([*sdist()[:1], (info, data)]),
                     "pax size (1024) that differs from its header's (600)")
        info.pax_headers = {"size": "600"}
        check(SDIST, tarball([*sdist()[:1], (info, data)]))

    def test_tar_zip_polyglot(self):
        """A tar.gz that also reads as a zip (a zip stored as its last member) is refused."""
        hidden = make_zip([("demo/evil.py", b"evil")])
        raw = tarball(sdist(member("holy_grail-1.0/z", hidden)), gz=False)
        data = gzip.compress(raw, compresslevel=0)
        self.assertTrue(zipfile.is_zipfile(io.BytesIO(data)))
        self.refused(data, "reads as a zip archive")

    def test_second_gzip_member(self):
        """A second gzip member after the first (which some readers never read) is refused."""
        data = tarball(sdist()) + gzip.compress(b"more")
        self.refused(data, "data after its gzip stream")
        self.refused(tarball(sdist()) + b"\0" * 10, "data after its gzip stream")
        check(SDIST, tarball(sdist()) + gzip.compress(b"more"), strict=False)

    def test_sparse_members(self):
        """GNU sparse members (old-style, damaged) are refused, never a 500 (found by a review)."""
        raw = bytearray(tarball(sdist(), gz=False))
        info = tarfile.TarInfo("holy_grail-1.0/sparse")
        info.type = tarfile.GNUTYPE_SPARSE
        header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
        header[482] = 1  # "extended": more sparse headers follow (none do)
        header[148:156] = b"        "
        header[148:155] = b"%06o\0" % sum(header)
        # two members, each a header and one data block, then the sparse header
        data = bytes(raw[:2048]) + bytes(header)
        for blob in (gzip.compress(data), gzip.compress(data + bytes(1024))):
            self.refused(blob, "")
            self.assertRaises(InvalidDistribution, check, SDIST, blob, strict=False)

    def test_huge_pax_header(self):
        """A pax header over 8 KiB is refused before tarfile parses it (quadratic before 3.11.10)."""
        info, data = member("holy_grail-1.0/setup.py", b"x")
        info.pax_headers = {"comment": "1" * 20000}
        self.refused(tarball([*sdist()[:1], (info, data)]), "tar header larger than")

    def test_member_twice(self):
        """A path that appears twice (in any spelling) is refused, naming it."""
        for second, words in (("holy_grail-1.0/setup.py", "more than once"),
                              ("./holy_grail-1.0/setup.py", "more than once"),
                              ("holy_grail-1.0//setup.py", "empty, '.' or '..' component"),
                              ("holy_grail-1.0/SETUP.py", "holy_grail-1.0/SETUP.py")):
            self.refused(tarball(sdist(member(second, b"evil"))), words)

    def test_data_after_end_of_archive(self):
        """Bytes other than zeros after the end-of-archive marker are refused (a hidden zip, say)."""
        hidden = make_zip([("x", b"hidden")])
        self.refused(tarball(sdist(), trailer=hidden), "after its end-of-archive marker")
        check(SDIST, tarball(sdist(), trailer=bytes(4096)))

    def test_damaged_header_hides_the_rest(self):
        """A damaged member header, after which tarfile would stop quietly, is refused."""
        raw = bytearray(tarball(sdist(member("holy_grail-1.0/late.py", b"late")), gz=False))
        # The third member's header starts after two headers and two data blocks
        # (plus the pax headers PAX_FORMAT writes only when needed: none here).
        at = raw.find(b"holy_grail-1.0/late.py")
        raw[at + 148:at + 156] = b"garbage!"  # its checksum
        self.refused(gzip.compress(bytes(raw)), "after its end-of-archive marker")
        check(SDIST, gzip.compress(bytes(raw)), strict=False)

    def test_no_end_of_archive_marker(self):
        """A tar stream that stops after its last member, without the end marker, is truncated."""
        raw = tarball(sdist(), gz=False)
        last_data = raw.find(b"#\n")
        end = last_data - last_data % 512 + 512
        self.assertEqual(raw[end:end + 1024], bytes(1024))
        self.refused(gzip.compress(raw[:end]), "truncated")
        self.refused(gzip.compress(raw[:end + 512]), "truncated")
        check(SDIST, gzip.compress(raw[:end + 1024]))

    def test_truncated_gzip(self):
        """A gzip stream cut short is refused."""
        data = tarball(sdist())
        self.refused(data[:len(data) // 2], "not a valid tar.gz")

    def test_zero_bytes(self):
        """An empty file is refused."""
        self.refused(b"", "not a valid tar.gz")

    def test_zip_named_tar_gz(self):
        """A zip named .tar.gz is refused."""
        self.refused(make_zip([("holy_grail-1.0/PKG-INFO", b"x")]), "not a valid tar.gz")

    def test_zip_sdist(self):
        """A .zip sdist follows the same layout rules."""
        check(*make_sdist_zip("holy-grail", "1.0"))
        data = make_zip([("other-1.0/PKG-INFO",
                          metadata_text("holy-grail", "1.0", metadata_version="2.2").encode())])
        e = self.assertRaises(InvalidDistribution, check, "holy_grail-1.0.zip", data)
        self.assertIn("'other-1.0'", str(e))

    def test_metadata_version(self):
        """PKG-INFO of an unsupported Metadata-Version is refused on upload."""
        meta = metadata_text("holy-grail", "1.0", metadata_version="9.9").encode()
        self.refused(tarball(sdist(metadata=meta)), "Metadata-Version")


class ArchiveFormTests(SynchronousTestCase):
    """The archive's metadata and the upload form name the same project and version."""

    def test_metadata_names_another_project(self):
        """METADATA naming another project than the filename (and so the form) is refused."""
        meta = metadata_text("other", "1.0").encode()
        e = self.assertRaises(InvalidDistribution, check, WHEEL,
                              make_zip(wheel_members(metadata=meta)))
        self.assertEqual(e.field, "metadata.Name")

    def test_metadata_names_another_version(self):
        """METADATA of another version is refused."""
        meta = metadata_text("holy-grail", "1.1").encode()
        e = self.assertRaises(InvalidDistribution, check, WHEEL,
                              make_zip(wheel_members(metadata=meta)))
        self.assertEqual(e.field, "metadata.Version")

    def test_archive_spelling_is_served(self):
        """The archive's own spelling of the name is what the index keeps."""
        meta = metadata_text("Holy.Grail", "1.0").encode()
        extracted = check(WHEEL, make_zip(wheel_members(metadata=meta)))
        self.assertEqual(extracted.metadata.name, "Holy.Grail")


class StrictMetadataTests(_RefusedMixin, SynchronousTestCase):
    """The upload rules for the metadata file itself."""

    def refused(self, metadata, *words):
        """Assert a wheel with this METADATA is refused, with C{words} in the message."""
        return _RefusedMixin.refused(self, make_zip(wheel_members(metadata=metadata)), *words)

    def test_hidden_header(self):
        """A separator that str.splitlines breaks at hides no header, and is refused on upload (found by a hostile run)."""
        for separator in ("\x1c", "\x0b", "\x85", "\u2028", "\x0c"):
            meta = (f"Metadata-Version: 2.1\nName: holy-grail\nVersion: 1.0\n"
                    f"Summary: hi{separator}Requires-Python: >=99\n\nbody\n").encode()
            extracted = check(WHEEL, make_zip(wheel_members(metadata=meta)), strict=False)
            self.assertIsNone(extracted.metadata.requires_python)
            e = self.refused(meta, "Summary field contains a control character")
            self.assertEqual(e.field, "metadata.Summary")

    def test_header_caps(self):
        """A Summary over 512 characters, or an escape sequence in it, is refused on upload."""
        meta = metadata_text("holy-grail", "1.0", summary="A" * 513).encode()
        self.refused(meta, "Summary field is longer than 512")
        meta = metadata_text("holy-grail", "1.0", summary="\x1b[2J\x1b[31mpwned\x07").encode()
        self.refused(meta, "control character")
        check(WHEEL, make_zip(wheel_members(metadata=metadata_text(
            "holy-grail", "1.0", summary="\u00e9" * 512).encode())))

    def test_hidden_version(self):
        """A Version hidden behind a separator, beside the real one, is not read as the version."""
        meta = (b"Metadata-Version: 2.1\nName: holy-grail\nX-Pad: a\x1cVersion: 1.0\n"
                b"Version: 6.6.6\n")
        e = self.assertRaises(InvalidDistribution, check, WHEEL,
                              make_zip(wheel_members(metadata=meta)), strict=False)
        self.assertEqual(e.field, "metadata.Version")

    def test_repeated_single_use_field(self):
        """Name, Version or Requires-Python twice is refused, naming the field."""
        for field, value in (("Name", "holy-grail"), ("Version", "1.0"), ("Requires-Python", ">=3")):
            meta = metadata_text("holy-grail", "1.0", requires_python=">=3").encode()
            meta = meta.replace(b"\n\n", f"\n{field}: {value}\n\n".encode(), 1)
            self.refused(meta, f"more than one {field} field")
        # repeatable ones repeat
        check(WHEEL, make_zip(wheel_members(metadata=metadata_text(
            "holy-grail", "1.0", requires_dist=["a", "b"]).encode())))

    def test_not_utf8_or_nul(self):
        """Metadata that is not UTF-8, or holds a NUL, is refused on upload."""
        meta = metadata_text("holy-grail", "1.0").encode()
        self.refused(meta.replace(b"A test project", b"A test \xff project"), "not valid UTF-8")
        self.refused(meta.replace(b"A test project", b"A test \x00 project"), "NUL")
        check(WHEEL, make_zip(wheel_members(metadata=b"\xef\xbb\xbf" + meta)))
