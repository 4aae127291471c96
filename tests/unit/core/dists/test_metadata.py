"""
Tests for L{pypid.core.dists.metadata} and L{pypid.core.dists.dist_archive}: core metadata out of real wheels and sdists, and
bounded refusal of damaged or hostile archives.
"""

import gzip
import hashlib
import io
import os
import random
import tarfile
import warnings
import zipfile

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.dist_archive import Extracted, extract
from pypid.core.dists.metadata import CoreMetadata, InvalidDistribution, parse_metadata
from pypid.core.dists.names import parse_filename
from tests.harness.distributions import (
    ZeroFill,
    make_sdist,
    make_sdist_zip,
    make_tarball,
    make_wheel,
    make_zip,
    metadata_text,
    set_zip_member_size,
)

FULL_METADATA = b"""\
Metadata-Version: 2.4
Name: Demo.Project
Version: 1.2.0
Dynamic: Classifier
Summary: A demo project
Home-page: https://example.com/home
Download-URL: https://example.com/download
Author: Ann Author
Author-email: Ann <ann@example.com>
Maintainer: Max Maintainer
Maintainer-email: max@example.com
License: Some licence
 spread over two lines
License-Expression: MIT OR Apache-2.0
License-File: LICENSE
License-File: NOTICE
Keywords: demo,test
Platform: linux
Platform: win32
Classifier: Programming Language :: Python :: 3
Classifier: Framework :: Twisted
Requires-Python: >=3.9
Requires-Dist: attrs>=23
Requires-Dist: pytest; extra == "test"
Provides-Extra: test
Project-URL: Source, https://example.com/src
Project-URL: Issues, https://example.com/issues
Project-URL: no-url-here
Description-Content-Type: text/markdown

# Demo

The body.
"""


def _distinfo_files(dist, version, metadata=None):
    """The members of a minimal valid wheel, for building broken variants."""
    info = f"{dist}-{version}.dist-info"
    meta = metadata or metadata_text(dist, version).encode()
    return [
        (f"{dist}/__init__.py", b""),
        (f"{info}/METADATA", meta),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\n"),
        (f"{info}/RECORD", b""),
    ]


class ReadCounter:
    """Counts the bytes that reads of zip members return."""

    def __init__(self, testcase):
        self.total = 0
        original = zipfile.ZipExtFile.read
        counter = self

        def read(self, n=-1):
            data = original(self, n)
            counter.total += len(data)
            return data

        testcase.patch(zipfile.ZipExtFile, "read", read)


class GzipReadCounter:
    """Counts the bytes that reads of gzip files return (what is inflated)."""

    def __init__(self, testcase):
        self.total = 0
        original = gzip.GzipFile.read
        counter = self

        def read(self, size=-1):
            data = original(self, size)
            counter.total += len(data)
            return data

        testcase.patch(gzip.GzipFile, "read", read)


class ExtractTestsMixin:
    """Helpers to write a distribution to a temporary file and extract it."""

    def write(self, filename, data):
        """Write C{data} as C{filename} in a fresh directory; return its path."""
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, filename)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def extract(self, filename, data, **kwargs):
        """Extract C{data} stored as C{filename}."""
        path = self.write(filename, data)
        return extract(path, parse_filename(filename, legacy=True), filename, **kwargs)

    def refused(self, filename, data, **kwargs):
        """Return the L{InvalidDistribution} that extracting C{data} raises."""
        return self.assertRaises(InvalidDistribution, self.extract, filename, data, **kwargs)


class WheelTests(ExtractTestsMixin, SynchronousTestCase):
    """Tests for L{extract} on wheels."""

    def test_exact_bytes(self):
        """A wheel's METADATA comes back byte for byte, and is always served."""
        meta = metadata_text("demo", "1.0", requires_python=">=3.8",
                             requires_dist=["attrs"]).encode()
        filename, data = make_wheel("demo", "1.0", metadata=meta)
        result = self.extract(filename, data)
        self.assertIsInstance(result, Extracted)
        self.assertEqual(result.metadata.raw, meta)
        self.assertTrue(result.serve)
        self.assertEqual(result.metadata_sha256, hashlib.sha256(meta).hexdigest())
        self.assertEqual(result.metadata.requires_python, ">=3.8")
        self.assertEqual(result.metadata.requires_dist, ("attrs",))

    def test_non_utf8_bytes_preserved(self):
        """Undecodable bytes are kept in raw and replaced in the parsed view."""
        meta = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nAuthor: Jos\xe9\r\n\r\nCaf\xe9 \xff\n"
        filename, data = make_wheel("demo", "1.0", metadata=meta)
        result = self.extract(filename, data)
        self.assertEqual(result.metadata.raw, meta)
        self.assertEqual(result.metadata.author, "Jos\ufffd")
        self.assertEqual(result.metadata.description, "Caf\ufffd \ufffd\n")

    def test_file_object(self):
        """A seekable binary file object works as well as a path."""
        filename, data = make_wheel("demo", "1.0")
        f = io.BytesIO(data)
        f.read(10)
        result = extract(f, parse_filename(filename), filename)
        self.assertEqual(result.metadata.name, "demo")

    def test_not_a_zip(self):
        """A .whl that is not a zip is refused as such."""
        error = self.refused("demo-1.0-py3-none-any.whl", b"this is not a zip" * 100)
        self.assertIn("not a valid zip file", str(error))
        self.assertEqual(error.field, "content")

    def test_truncated(self):
        """A truncated wheel is refused."""
        filename, data = make_wheel("demo", "1.0")
        error = self.refused(filename, data[: len(data) // 2])
        self.assertIn("not a valid zip file", str(error))

    def test_corrupt_member(self):
        """A wheel whose METADATA data is damaged is refused, not half-read."""
        noise = "".join(hashlib.sha256(b"%d" % i).hexdigest() for i in range(100))
        filename, data = make_wheel("demo", "1.0", metadata=metadata_text("demo", "1.0") + noise)
        offset = data.index(b"METADATA") + len(b"METADATA") + 100
        broken = data[:offset] + bytes(b ^ 0xFF for b in data[offset:offset + 30]) + data[offset + 30:]
        error = self.refused(filename, broken)
        self.assertIn("not a valid zip file", str(error))

    def test_no_dist_info(self):
        """A zip without a .dist-info directory is refused."""
        error = self.refused("demo-1.0-py3-none-any.whl", make_zip([("demo/__init__.py", b"")]))
        self.assertIn("no .dist-info", str(error))

    def test_no_metadata(self):
        """A wheel without METADATA is refused."""
        files = [f for f in _distinfo_files("demo", "1.0") if not f[0].endswith("METADATA")]
        error = self.refused("demo-1.0-py3-none-any.whl", make_zip(files))
        self.assertEqual(str(error), "the wheel has no demo-1.0.dist-info/METADATA")

    def test_no_record(self):
        """A wheel without RECORD is refused."""
        files = [f for f in _distinfo_files("demo", "1.0") if not f[0].endswith("RECORD")]
        error = self.refused("demo-1.0-py3-none-any.whl", make_zip(files))
        self.assertEqual(str(error), "the wheel has no demo-1.0.dist-info/RECORD")

    def test_two_dist_info(self):
        """A wheel with two .dist-info directories is refused."""
        files = _distinfo_files("demo", "1.0") + [("other-1.0.dist-info/METADATA", b"")]
        error = self.refused("demo-1.0-py3-none-any.whl", make_zip(files))
        self.assertIn("2 .dist-info directories", str(error))

    def test_dist_info_name_mismatch(self):
        """A .dist-info directory for another project is refused."""
        files = _distinfo_files("other", "1.0", metadata_text("demo", "1.0").encode())
        error = self.refused("demo-1.0-py3-none-any.whl", make_zip(files))
        self.assertIn("'other-1.0.dist-info' directory does not match", str(error))

    def test_dist_info_version_mismatch(self):
        """A .dist-info directory for another version is refused."""
        files = _distinfo_files("demo", "2.0", metadata_text("demo", "1.0").encode())
        error = self.refused("demo-1.0-py3-none-any.whl", make_zip(files))
        self.assertIn("does not match", str(error))

    def test_dist_info_equivalent_spellings(self):
        """A .dist-info name that normalizes to the filename's project and version matches."""
        files = _distinfo_files("Demo.Project", "1.0.0", metadata_text("demo-project", "1.0").encode())
        result = self.extract("demo_project-1.0-py3-none-any.whl", make_zip(files))
        self.assertEqual(result.metadata.name, "demo-project")

    def test_metadata_name_mismatch(self):
        """Metadata naming another project is refused, naming the field."""
        filename, data = make_wheel("demo", "1.0", metadata=metadata_text("other", "1.0"))
        error = self.refused(filename, data)
        self.assertEqual(error.field, "metadata.Name")
        self.assertIn("'other'", str(error))

    def test_metadata_version_mismatch(self):
        """Metadata with another version is refused, naming the field."""
        filename, data = make_wheel("demo", "1.0", metadata=metadata_text("demo", "1.1"))
        error = self.refused(filename, data)
        self.assertEqual(error.field, "metadata.Version")

    def test_metadata_version_equivalent(self):
        """A metadata Version equal to the filename's under PEP 440 is accepted."""
        filename, data = make_wheel("demo", "1.0", metadata=metadata_text("Demo", "1.0.0"))
        self.assertEqual(self.extract(filename, data).metadata.version, "1.0.0")

    def test_metadata_version_invalid(self):
        """A metadata Version that is not PEP 440 is refused, naming the field."""
        filename, data = make_wheel("demo", "1.0", metadata=metadata_text("demo", "one"))
        error = self.refused(filename, data)
        self.assertEqual(error.field, "metadata.Version")
        self.assertIn("not a valid PEP 440 version", str(error))

    def test_metadata_too_large(self):
        """An honest METADATA larger than the limit is refused."""
        filename, data = make_wheel("demo", "1.0", metadata=metadata_text("demo", "1.0") + "x" * 2000)
        error = self.refused(filename, data, max_metadata_size=1000)
        self.assertEqual(error.field, "metadata")
        self.assertIn("larger than 1000 bytes", str(error))

    def test_zip_bomb(self):
        """A METADATA of 100 MB of zeros is refused at once, without inflating it."""
        files = _distinfo_files("demo", "1.0")
        files[1] = (files[1][0], ZeroFill(100 * 1000 * 1000))
        data = make_zip(files)
        counter = ReadCounter(self)
        error = self.refused("demo-1.0-py3-none-any.whl", data)
        self.assertIn("larger than 4194304 bytes", str(error))
        self.assertEqual(counter.total, 0)

    def test_lying_size(self):
        """A METADATA whose header understates its size costs at most the limit to refuse."""
        files = _distinfo_files("demo", "1.0")
        files[1] = (files[1][0], ZeroFill(100 * 1000 * 1000))
        data = set_zip_member_size(make_zip(files), "demo-1.0.dist-info/METADATA", 100)
        counter = ReadCounter(self)
        error = self.refused("demo-1.0-py3-none-any.whl", data, max_metadata_size=1000)
        self.assertIn("not a valid zip file", str(error))
        self.assertLessEqual(counter.total, 1001)

    def test_overstated_size(self):
        """A METADATA whose header overstates its size beyond the limit is refused."""
        filename, data = make_wheel("demo", "1.0")
        data = set_zip_member_size(data, "demo-1.0.dist-info/METADATA", 5 << 20)
        error = self.refused(filename, data)
        self.assertIn("larger than", str(error))

    def test_too_many_entries(self):
        """A zip with more entries than the limit is refused before they are parsed."""
        files = _distinfo_files("demo", "1.0") + [(f"demo/m{i}.py", b"") for i in range(20)]
        error = self.refused("demo-1.0-py3-none-any.whl", make_zip(files), max_members=10)
        self.assertIn("more than 10 entries", str(error))

    def test_entries_at_the_limit(self):
        """A zip of exactly the limit's entries is read; one more is refused."""
        base = _distinfo_files("demo", "1.0")
        files = base + [(f"demo/m{i}.py", b"") for i in range(10 - len(base))]
        self.assertEqual(self.extract("demo-1.0-py3-none-any.whl", make_zip(files),
                                      max_members=10).metadata.version, "1.0")
        over = make_zip(files + [("demo/extra.py", b"")])
        error = self.refused("demo-1.0-py3-none-any.whl", over, max_members=10)
        self.assertIn("more than 10 entries", str(error))

    def test_duplicate_names(self):
        """A wheel naming one path twice is refused."""
        files = _distinfo_files("demo", "1.0")
        files.append((files[1][0], metadata_text("demo", "1.0", requires_dist=["evil"]).encode()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = make_zip(files)
        error = self.refused("demo-1.0-py3-none-any.whl", data)
        self.assertIn("more than once", str(error))

    def test_hostile_member_names(self):
        """Members named with '..' or an absolute path do not matter: nothing is extracted."""
        directory = self.mktemp()
        os.makedirs(os.path.join(directory, "inner"))
        filename, data = make_wheel("demo", "1.0", extra_files=[
            ("../../escaped.txt", b"x"), ("/tmp/pypid-absolute.txt", b"x"),
            ("../escaped.dist-info.txt", b"x"),
        ])
        path = os.path.join(directory, "inner", filename)
        with open(path, "wb") as f:
            f.write(data)
        result = extract(path, parse_filename(filename), filename)
        self.assertEqual(result.metadata.name, "demo")
        self.assertEqual(os.listdir(directory), ["inner"])
        self.assertEqual(os.listdir(os.path.join(directory, "inner")), [filename])
        self.assertFalse(os.path.exists("/tmp/pypid-absolute.txt"))

    def test_parsed_does_not_match_filename(self):
        """Passing a wheel's parse with an sdist's filename is a programming error."""
        filename, data = make_wheel("demo", "1.0")
        path = self.write(filename, data)
        error = self.assertRaises(ValueError, extract, path, parse_filename(filename),
                                  "demo-1.0.tar.gz")
        self.assertNotIsInstance(error, InvalidDistribution)


class SdistTests(ExtractTestsMixin, SynchronousTestCase):
    """Tests for L{extract} on sdists."""

    def test_exact_bytes(self):
        """An sdist's PKG-INFO comes back byte for byte."""
        meta = metadata_text("demo", "1.0", metadata_version="2.2").encode() + b"\xe9\xff"
        filename, data = make_sdist("demo", "1.0", metadata=meta)
        result = self.extract(filename, data)
        self.assertEqual(result.metadata.raw, meta)

    def test_metadata_2_1_not_served(self):
        """Metadata 2.1 in an sdist is not served as PEP 658 metadata."""
        filename, data = make_sdist("demo", "1.0", metadata_version="2.1")
        result = self.extract(filename, data)
        self.assertFalse(result.serve)
        self.assertIsNone(result.metadata_sha256)

    def test_metadata_2_2_served(self):
        """Metadata 2.2 in an sdist, with nothing dynamic, is served."""
        filename, data = make_sdist("demo", "1.0", metadata_version="2.2")
        result = self.extract(filename, data)
        self.assertTrue(result.serve)
        self.assertEqual(result.metadata_sha256, result.metadata.sha256)

    def test_dynamic_requires_dist_not_served(self):
        """Metadata 2.2 with Requires-Dist dynamic is not served."""
        meta = metadata_text("demo", "1.0", metadata_version="2.2",
                             extra_headers=["Dynamic: requires-dist"])
        filename, data = make_sdist("demo", "1.0", metadata=meta)
        result = self.extract(filename, data)
        self.assertEqual(result.metadata.dynamic, ("requires-dist",))
        self.assertFalse(result.serve)

    def test_dynamic_other_field_served(self):
        """Metadata 2.2 with only fields a resolver ignores dynamic is served."""
        meta = metadata_text("demo", "1.0", metadata_version="2.3",
                             extra_headers=["Dynamic: Summary", "Dynamic: Classifier"])
        filename, data = make_sdist("demo", "1.0", metadata=meta)
        self.assertTrue(self.extract(filename, data).serve)

    def test_name_mismatch(self):
        """A PKG-INFO naming another project is refused, naming the field."""
        filename, data = make_sdist("demo", "1.0", metadata=metadata_text("other", "1.0"))
        self.assertEqual(self.refused(filename, data).field, "metadata.Name")

    def test_version_mismatch(self):
        """A PKG-INFO with another version is refused, naming the field."""
        filename, data = make_sdist("demo", "1.0", metadata=metadata_text("demo", "2.0"))
        self.assertEqual(self.refused(filename, data).field, "metadata.Version")

    def test_no_pkg_info(self):
        """An sdist with no PKG-INFO is refused."""
        data = make_tarball([("demo-1.0/setup.py", b""), ("demo-1.0/README", b"")])
        error = self.refused("demo-1.0.tar.gz", data)
        self.assertIn("no PKG-INFO", str(error))

    def test_pkg_info_too_deep(self):
        """A PKG-INFO below the top-level directory does not count."""
        data = make_tarball([("demo-1.0/src/PKG-INFO", metadata_text("demo", "1.0").encode())])
        self.assertIn("no PKG-INFO", str(self.refused("demo-1.0.tar.gz", data)))

    def test_pkg_info_at_root(self):
        """A PKG-INFO outside any directory does not count."""
        data = make_tarball([("PKG-INFO", metadata_text("demo", "1.0").encode())])
        self.assertIn("no PKG-INFO", str(self.refused("demo-1.0.tar.gz", data)))

    def test_two_top_level_directories(self):
        """An sdist with more than one top-level directory is refused."""
        data = make_tarball([
            ("demo-1.0/PKG-INFO", metadata_text("demo", "1.0").encode()),
            ("other/setup.py", b""),
        ])
        self.assertIn("single top-level directory", str(self.refused("demo-1.0.tar.gz", data)))

    def test_two_pkg_infos(self):
        """An sdist holding PKG-INFO twice is refused."""
        meta = metadata_text("demo", "1.0").encode()
        data = make_tarball([("demo-1.0/PKG-INFO", meta), ("demo-1.0/PKG-INFO", meta)])
        self.assertIn("more than one PKG-INFO", str(self.refused("demo-1.0.tar.gz", data)))

    def test_pkg_info_not_a_file(self):
        """A PKG-INFO that is a directory is refused."""
        data = make_tarball([("demo-1.0/PKG-INFO", None)])
        self.assertIn("not a regular file", str(self.refused("demo-1.0.tar.gz", data)))

    def test_member_outside(self):
        """An sdist member with '..' or an absolute path is refused, and nothing is written."""
        meta = metadata_text("demo", "1.0").encode()
        for name in ("demo-1.0/../../escaped.txt", "/tmp/pypid-absolute.txt"):
            data = make_tarball([("demo-1.0/PKG-INFO", meta), (name, b"x")])
            error = self.refused("demo-1.0.tar.gz", data)
            self.assertIn("outside its directory", str(error))
        self.assertFalse(os.path.exists("/tmp/pypid-absolute.txt"))

    def test_leading_dot_slash(self):
        """Member names starting with './' are read as if it were absent."""
        data = make_tarball([("./demo-1.0", None),
                             ("./demo-1.0/PKG-INFO", metadata_text("demo", "1.0").encode())])
        self.assertEqual(self.extract("demo-1.0.tar.gz", data).metadata.name, "demo")

    def test_not_gzip(self):
        """A .tar.gz that is not gzip is refused."""
        error = self.refused("demo-1.0.tar.gz", b"not gzip at all" * 100)
        self.assertIn("not a valid tar.gz file", str(error))

    def test_not_tar(self):
        """A gzip file that is not a tarball is refused."""
        error = self.refused("demo-1.0.tar.gz", gzip.compress(b"\x01" * 5000))
        self.assertIn("not a valid tar.gz file", str(error))

    def test_truncated(self):
        """A truncated sdist is refused even when PKG-INFO comes before the cut."""
        filename, data = make_sdist("demo", "1.0")
        error = self.refused(filename, data[:-20])
        self.assertIn("not a valid tar.gz file", str(error))

    def test_tar_bomb(self):
        """
        A huge zero-filled member before PKG-INFO stops the scan at the cap:
        no more than the cap (and a byte) is inflated of its 64 MiB.
        """
        data = make_tarball([
            ("demo-1.0/zeros", ZeroFill(64 << 20)),
            ("demo-1.0/PKG-INFO", metadata_text("demo", "1.0").encode()),
        ])
        counter = GzipReadCounter(self)
        error = self.refused("demo-1.0.tar.gz", data, max_scan_bytes=1 << 20)
        self.assertIn("expands to more than 1048576 bytes", str(error))
        self.assertLessEqual(counter.total, (1 << 20) + 1)
        counter.total = 0
        result = self.extract("demo-1.0.tar.gz", data, max_scan_bytes=65 << 20)
        self.assertEqual(result.metadata.name, "demo")
        self.assertGreater(counter.total, 64 << 20)  # (the counter sees what is inflated)

    def test_huge_tar_header(self):
        """An oversized pax header is refused before tarfile reads it into memory."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
            info = tarfile.TarInfo("demo-1.0/PKG-INFO")
            info.pax_headers = {"comment": "x" * (2 << 20)}
            meta = metadata_text("demo", "1.0").encode()
            info.size = len(meta)
            tf.addfile(info, io.BytesIO(meta))
        error = self.refused("demo-1.0.tar.gz", buf.getvalue())
        self.assertIn("tar header larger than", str(error))

    def test_too_many_members(self):
        """A tarball with more members than the limit is refused."""
        meta = metadata_text("demo", "1.0").encode()
        data = make_tarball([("demo-1.0/PKG-INFO", meta)]
                            + [(f"demo-1.0/m{i}", b"") for i in range(20)])
        error = self.refused("demo-1.0.tar.gz", data, max_members=10)
        self.assertIn("more than 10 members", str(error))

    def test_members_at_the_limit(self):
        """
        At the boundary: a tarball of exactly the limit's members is read,
        one more is refused (an off-by-one either way fails here).
        """
        meta = metadata_text("demo", "1.0").encode()
        members = [("demo-1.0/PKG-INFO", meta)] + [(f"demo-1.0/m{i}.py", b"") for i in range(9)]
        self.assertEqual(self.extract("demo-1.0.tar.gz", make_tarball(members),
                                      max_members=10).metadata.version, "1.0")
        over = make_tarball(members + [("demo-1.0/m9.py", b"")])
        error = self.refused("demo-1.0.tar.gz", over, max_members=10)
        self.assertIn("more than 10 members", str(error))

    def test_pkg_info_too_large(self):
        """A PKG-INFO larger than the limit is refused."""
        filename, data = make_sdist("demo", "1.0", metadata=metadata_text("demo", "1.0") + "x" * 2000)
        error = self.refused(filename, data, max_metadata_size=1000)
        self.assertIn("PKG-INFO is larger than 1000 bytes", str(error))

    def test_zip_sdist(self):
        """A legacy .zip sdist gives back its PKG-INFO."""
        filename, data = make_sdist_zip("demo", "1.0")
        result = self.extract(filename, data)
        self.assertEqual(result.metadata.raw, metadata_text("demo", "1.0", metadata_version="2.2").encode())
        self.assertTrue(result.serve)

    def test_zip_sdist_without_pkg_info(self):
        """A .zip sdist with no top-level PKG-INFO is refused."""
        data = make_zip([("demo-1.0/sub/PKG-INFO", metadata_text("demo", "1.0").encode())])
        self.assertIn("no PKG-INFO", str(self.refused("demo-1.0.zip", data)))

    def test_bz2_and_tgz(self):
        """Legacy .tar.bz2 and .tgz sdists are read."""
        members = [("demo-1.0/PKG-INFO", metadata_text("demo", "1.0").encode())]
        for filename, mode in (("demo-1.0.tar.bz2", "w:bz2"), ("demo-1.0.tgz", "w:gz")):
            result = self.extract(filename, make_tarball(members, mode=mode))
            self.assertEqual(result.metadata.version, "1.0")

    def test_legacy_name(self):
        """An old-style sdist name and its metadata are matched after normalization."""
        data = make_tarball([("My.Project-1.0/PKG-INFO",
                              metadata_text("My.Project", "1.0", metadata_version="1.1").encode())])
        result = self.extract("My.Project-1.0.tar.gz", data)
        self.assertEqual(result.metadata.name, "My.Project")
        self.assertFalse(result.serve)


class ParseMetadataTests(SynchronousTestCase):
    """Tests for L{parse_metadata} and L{CoreMetadata}."""

    def test_fields(self):
        """Every field the JSON API shows is parsed."""
        meta = parse_metadata(FULL_METADATA)
        self.assertIsInstance(meta, CoreMetadata)
        self.assertEqual(meta.raw, FULL_METADATA)
        self.assertEqual(meta.metadata_version, "2.4")
        self.assertEqual(meta.name, "Demo.Project")
        self.assertEqual(meta.version, "1.2.0")
        self.assertEqual(meta.requires_python, ">=3.9")
        self.assertEqual(meta.dynamic, ("Classifier",))
        self.assertEqual(meta.license, "Some licence spread over two lines")
        self.assertEqual(meta.license_files, ("LICENSE", "NOTICE"))
        self.assertEqual(meta.project_urls, (("Source", "https://example.com/src"),
                                             ("Issues", "https://example.com/issues")))
        self.assertEqual(meta.description, "# Demo\n\nThe body.\n")

    def test_to_json_info(self):
        """to_json_info gives the public index's keys and values."""
        self.assertEqual(parse_metadata(FULL_METADATA).to_json_info(), {
            "name": "Demo.Project",
            "version": "1.2.0",
            "summary": "A demo project",
            "description": "# Demo\n\nThe body.\n",
            "description_content_type": "text/markdown",
            "author": "Ann Author",
            "author_email": "Ann <ann@example.com>",
            "maintainer": "Max Maintainer",
            "maintainer_email": "max@example.com",
            "license": "Some licence spread over two lines",
            "license_expression": "MIT OR Apache-2.0",
            "license_files": ["LICENSE", "NOTICE"],
            "keywords": "demo,test",
            "classifiers": ["Programming Language :: Python :: 3", "Framework :: Twisted"],
            "requires_dist": ["attrs>=23", 'pytest; extra == "test"'],
            "requires_python": ">=3.9",
            "provides_extra": ["test"],
            "project_urls": {"Source": "https://example.com/src",
                             "Issues": "https://example.com/issues"},
            "home_page": "https://example.com/home",
            "download_url": "https://example.com/download",
            "platform": "linux, win32",
            "dynamic": ["Classifier"],
        })

    def test_to_json_info_empty(self):
        """Absent fields are None, and absent lists None except classifiers."""
        info = parse_metadata(b"Metadata-Version: 1.0\nName: x\nVersion: 1\n").to_json_info()
        self.assertEqual(info["classifiers"], [])
        for key in ("summary", "description", "requires_dist", "provides_extra",
                    "project_urls", "dynamic", "license_files", "platform", "keywords",
                    "requires_python"):
            self.assertIsNone(info[key], key)

    def test_description_header_pipe(self):
        """A Description header folded with '|' is unfolded with its blank and indented lines."""
        raw = (b"Metadata-Version: 2.1\nName: x\nVersion: 1\n"
               b"Description: Title\n       |\n       |  indented\n       || a | b |\n\n")
        self.assertEqual(parse_metadata(raw).description, "Title\n\n  indented\n| a | b |")

    def test_description_header_spaces(self):
        """A Description header folded with eight spaces keeps a leading '|' of its text."""
        raw = (b"Metadata-Version: 1.1\nName: x\nVersion: 1\n"
               b"Description: Title\n        =====\n        \n        | a | b |\nSummary: s\n")
        meta = parse_metadata(raw)
        self.assertEqual(meta.description, "Title\n=====\n\n| a | b |")
        self.assertEqual(meta.summary, "s")

    def test_body_preferred(self):
        """The body is the description even when a Description header is present."""
        raw = b"Metadata-Version: 2.1\nName: x\nVersion: 1\nDescription: old\n\nnew\n  body\n"
        self.assertEqual(parse_metadata(raw).description, "new\n  body\n")

    def test_crlf_and_bom(self):
        """CRLF line ends and a UTF-8 byte order mark do not hide fields."""
        raw = b"\xef\xbb\xbfMetadata-Version: 2.1\r\nName: x\r\nVersion: 1\r\nRequires-Python: >=3\r\n"
        meta = parse_metadata(raw)
        self.assertEqual((meta.metadata_version, meta.requires_python), ("2.1", ">=3"))
        self.assertEqual(meta.raw, raw)

    def test_mime_headers_ignored(self):
        """A multipart Content-Type does not turn the body into MIME parts."""
        raw = (b"Metadata-Version: 2.1\nName: x\nVersion: 1\n"
               b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nhi\n--b--\n")
        self.assertEqual(parse_metadata(raw).description, "--b\n\nhi\n--b--\n")

    def test_missing_required(self):
        """Metadata without Name is refused, naming the field."""
        error = self.assertRaises(InvalidDistribution, parse_metadata,
                                  b"Metadata-Version: 2.1\nVersion: 1\n\nbody")
        self.assertEqual(error.field, "metadata.Name")

    def test_garbage(self):
        """Arbitrary bytes are refused as metadata without a crash."""
        self.assertRaises(InvalidDistribution, parse_metadata, bytes(range(256)) * 10)

    def test_reliable_for_sdist(self):
        """Only Metadata-Version 2.2+ without dynamic resolver fields is reliable."""
        def meta(version, *dynamic):
            headers = "".join(f"Dynamic: {d}\n" for d in dynamic)
            return parse_metadata(
                f"Metadata-Version: {version}\nName: x\nVersion: 1\n{headers}".encode())
        self.assertFalse(meta("2.1").is_reliable_for_sdist())
        self.assertFalse(meta("nonsense").is_reliable_for_sdist())
        self.assertTrue(meta("2.2").is_reliable_for_sdist())
        self.assertTrue(meta("2.10", "License").is_reliable_for_sdist())
        for field in ("Requires-Dist", "REQUIRES-PYTHON", "provides-extra"):
            self.assertFalse(meta("2.2", field).is_reliable_for_sdist(), field)


class DamagedArchiveTests(SynchronousTestCase):
    """Tests that damaged archives only ever raise L{InvalidDistribution}."""

    def test_mutations(self):
        """Flipped, truncated and inserted bytes give InvalidDistribution or a valid result, never another error."""
        rng = random.Random(658)
        for filename, data in (make_wheel("demo", "1.0", requires_dist=["a"]),
                               make_sdist("demo", "1.0"), make_sdist_zip("demo", "1.0")):
            parsed = parse_filename(filename, legacy=True)
            for _ in range(150):
                damaged = bytearray(data)
                choice = rng.random()
                if choice < 0.4:
                    for _ in range(rng.randint(1, 5)):
                        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
                elif choice < 0.7:
                    del damaged[rng.randrange(len(damaged)):]
                else:
                    at = rng.randrange(len(damaged))
                    damaged[at:at] = rng.randbytes(rng.randint(1, 50))
                try:
                    extract(io.BytesIO(bytes(damaged)), parsed, filename)
                except InvalidDistribution:
                    pass


class HeaderReaderTests(SynchronousTestCase):
    """
    Tests that the metadata header reader reads as the standard library's
    email parser (compat32, headers only) does, on the shapes metadata takes.
    """

    TEXTS = [
        "Metadata-Version: 2.1\nName: a\nVersion: 1\n\nbody\n",
        "Metadata-Version: 2.1\r\nName: a\r\nVersion: 1\r\n\r\nbody\r\nmore\r\n",
        "Metadata-Version: 2.1\rName: a\rVersion: 1\r\rbody",
        "name: a\nNAME: b\nClassifier: x\nclassifier: y\n",
        "Description: line one\n        line two\n       |line three\nName: a\n",
        "\tleading continuation\nName: a\nVersion: 1\n",
        "Name: a\nnot a header line\nVersion: 1\n",
        "Name:a\nVersion:\t1\nSummary:   spaced  \n",
        "Name: a\n\n",
        "Name: a",
        "",
        "\n\nName: a\n",
        "Key With Space: x\nName: a\n",
        "Name: a\nProject-URL: Home, https://example.invalid/\n \n continued\n",
        # characters str.splitlines breaks at, but email does not
        "Name: a\nSummary: hi\x1cRequires-Python: >=99\nVersion: 1\n",
        "Name: a\nSummary: hi\x0bVersion: 6\x85Version: 7\u2028Version: 8\u2029x\nVersion: 1\n",
        "Name: a\nX-Pad: a\x1dVersion: 1.0\x1e\x0cVersion: 2\nVersion: 6.6.6\n",
    ]

    def test_same_as_email(self):
        """Every header, repeated header and the body come out as email reads them."""
        import email.parser
        import email.policy

        from pypid.core.dists.metadata import _Headers

        for text in self.TEXTS:
            expected = email.parser.Parser(policy=email.policy.compat32).parsestr(
                text, headersonly=True)
            got = _Headers(text)
            for name in ("Name", "Version", "Classifier", "Description", "Summary",
                         "Project-URL", "Key With Space", "Metadata-Version"):
                self.assertEqual(got.get_all(name), expected.get_all(name), (text, name))
                self.assertEqual(got.get(name), expected.get(name), (text, name))
            self.assertEqual(got.payload, expected.get_payload(), text)

    def test_nameless_header_line(self):
        """
        A line starting with a colon does not end the headers: what follows
        is read as pip reads it (a Requires-Python after it applies).
        """
        from pypid.core.dists.metadata import _Headers

        headers = _Headers("Name: a\n: x\n more\nRequires-Python: >=99\n\nbody")
        self.assertEqual(headers.get_all("name"), ["a"])
        self.assertEqual(headers.get_all("requires-python"), [">=99"])
        self.assertEqual(headers.payload, "body")

    def test_random_same_as_email(self):
        """
        Random header blocks (continuations, blank lines, every line end, and
        the characters that str.splitlines but not email breaks at, lines
        starting with a colon, which email drops with what continues them
        and reads on) read as email reads them.
        """
        import email.parser
        import email.policy

        from pypid.core.dists.metadata import _Headers

        pieces = ["Name", "name", "Version", "Summary", "X:Y", "Key With Space", "a", " ",
                  "\t", "  cont", "\tcont", "1.0", "\u00e9", "\x1c", "\x0b", "\x85",
                  "\u2028", "|", "-", ": ", ":\t"]
        ends = ["\n", "\r\n", "\r", "", "\n\n", "\r\r\n"]
        rng = random.Random(14)
        parser = email.parser.Parser(policy=email.policy.compat32)
        for _ in range(4000):
            lines = []
            for _ in range(rng.randint(0, 8)):
                line = rng.choice(pieces) + (rng.choice(pieces) if rng.random() < 0.5 else "")
                lines.append(line + rng.choice(ends))
            text = "".join(lines)
            expected = parser.parsestr(text, headersonly=True)
            got = _Headers(text)
            for name in set(got.names()) | {"name", "version"}:
                self.assertEqual(got.get_all(name), expected.get_all(name), (text, name))
            self.assertEqual(got.payload, expected.get_payload(), text)


class ParseFieldsTests(SynchronousTestCase):
    """Tests for how L{parse_metadata} reads each field from its headers."""

    def test_first_value_empty_values_and_folding(self):
        """
        A single-valued field takes its first value, unfolded, and is L{None}
        when that is blank; repeated fields keep their non-blank values in
        order; Keywords join with commas; any spelling of a name counts.
        """
        meta = parse_metadata(
            b"metadata-version: 2.1\nNAME: a\nVersion: 1\n"
            b"Summary:   \nSummary: second\n"
            b"Author: Jane\n  Doe\n"
            b"Classifier: A\nclassifier:  \nCLASSIFIER: B\n  more\n"
            b"Keywords: x\nKeywords: \nKeywords: y, z\n"
            b"Project-URL: ,nothing\nProject-URL: Home , https://example.invalid/ \n"
            b"License-Expression: MIT\nRequires-Dist: c\nRequires-Dist: d ; extra == 'e'\n"
            b"Provides-Extra: e\nPlatform: any\nLicense-File: L\nDynamic: Requires-Dist\n"
            b"Home-page: https://example.invalid/h\nDownload-URL: https://example.invalid/d\n"
            b"Maintainer: M\nMaintainer-email: m@example.invalid\n"
            b"Author-email: j@example.invalid\nDescription-Content-Type: text/plain\n"
            b"Requires-Python: >=3\nLicense: L1\n"
        )
        self.assertEqual(
            (meta.metadata_version, meta.name, meta.version, meta.summary, meta.author),
            ("2.1", "a", "1", None, "Jane Doe"),
        )
        self.assertEqual(meta.classifiers, ("A", "B more"))
        self.assertEqual(meta.keywords, "x,y, z")
        self.assertEqual(meta.project_urls, (("Home", "https://example.invalid/"),))
        self.assertEqual(
            (meta.license_expression, meta.requires_dist, meta.provides_extra, meta.platforms,
             meta.license_files, meta.dynamic, meta.home_page, meta.download_url,
             meta.maintainer, meta.maintainer_email, meta.author_email,
             meta.description_content_type, meta.requires_python, meta.license,
             meta.description),
            ("MIT", ("c", "d ; extra == 'e'"), ("e",), ("any",), ("L",), ("Requires-Dist",),
             "https://example.invalid/h", "https://example.invalid/d", "M",
             "m@example.invalid", "j@example.invalid", "text/plain", ">=3", "L1", None),
        )

    def test_absent_fields(self):
        """Fields without a header are L{None}, or empty tuples for repeated ones."""
        meta = parse_metadata(b"Metadata-Version: 2.1\nName: a\nVersion: 1\nKeywords: \n")
        self.assertEqual(meta, CoreMetadata(raw=meta.raw, metadata_version="2.1", name="a",
                                            version="1"))

    def test_blank_required_field(self):
        """A blank Name is a missing one."""
        e = self.assertRaises(InvalidDistribution, parse_metadata,
                              b"Metadata-Version: 2.1\nName:  \nVersion: 1\n")
        self.assertEqual(e.field, "metadata.Name")


def _zipfile_read(zf, info):
    """What C{zipfile} reads of a member, or the type of what it raises."""
    try:
        return zf.read(info)
    except Exception as e:
        return type(e)


class InMemoryMemberTests(SynchronousTestCase):
    """
    Tests for the reading of zip members held in memory: it answers only
    with what C{zipfile} itself reads, and leaves every other case to it.
    """

    def both(self, data):
        """
        For each member of C{data} that C{zipfile} lists: what the in-memory
        reader gives (L{None} when it leaves the member to zipfile), and what
        C{zipfile} reads (or the type of what it raises).
        """
        from pypid.core.dists.dist_zip import _read_member_in_memory

        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except Exception:
            return []  # (what zipfile cannot open is never read at all)
        return [(_read_member_in_memory(data, info), _zipfile_read(zf, info))
                for info in zf.infolist()]

    def test_clean_members(self):
        """Stored, deflated, empty and UTF-8-named members are read here, exactly."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("stored.txt", b"plain bytes", compress_type=zipfile.ZIP_STORED)
            zf.writestr("deflated.txt", b"abc" * 1000, compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr("empty.txt", b"", compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr("\u00e9t\u00e9.txt", b"utf-8 name", compress_type=zipfile.ZIP_DEFLATED)
        results = self.both(buf.getvalue())
        self.assertEqual(len(results), 4)
        for fast, expected in results:
            self.assertEqual(fast, expected)

    def test_left_to_zipfile(self):
        """
        Other methods, encryption flags, a lying CRC, size or offset, a name
        the local header does not have: zipfile refuses them, and the
        in-memory reader leaves them to it. (A compressed size one byte short
        still holds the whole deflate stream but its padding: both read it.)
        """
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("bzip2.txt", b"x" * 100, compress_type=zipfile.ZIP_BZIP2)
        self.assertEqual([fast for fast, _ in self.both(buf.getvalue())], [None])
        _, data = make_wheel("demo", "1.0")
        zf = zipfile.ZipFile(io.BytesIO(data))
        info = zf.getinfo("demo-1.0.dist-info/METADATA")
        from pypid.core.dists.dist_zip import _read_member_in_memory

        left = []
        for attribute, value in (("flag_bits", info.flag_bits | 1),
                                 ("flag_bits", info.flag_bits | 0x20),
                                 ("flag_bits", info.flag_bits | 0x40),
                                 ("CRC", info.CRC ^ 1),
                                 ("file_size", info.file_size - 1),
                                 ("file_size", info.file_size + 1),
                                 ("compress_size", info.compress_size - 1),
                                 ("compress_size", info.compress_size - 5),
                                 ("compress_type", zipfile.ZIP_STORED),
                                 ("header_offset", info.header_offset + 1),
                                 ("orig_filename", info.orig_filename + "x")):
            changed = zipfile.ZipInfo(info.orig_filename)
            for name in ("flag_bits", "CRC", "file_size", "compress_size", "header_offset",
                         "compress_type", "orig_filename"):
                setattr(changed, name, getattr(info, name))
            setattr(changed, attribute, value)
            fast, expected = _read_member_in_memory(data, changed), _zipfile_read(zf, changed)
            if fast is None:
                left.append(attribute)
            else:
                self.assertEqual(fast, expected, attribute)
        self.assertEqual(len(left), 10)
        self.assertEqual(_read_member_in_memory(data, info), zf.read(info))

    def test_damaged(self):
        """In damaged archives the in-memory reader answers only as zipfile does."""
        rng = random.Random(14)
        answered = 0
        for _filename, data in (make_wheel("demo", "1.0", requires_dist=["a"]),
                               make_sdist_zip("demo", "1.0")):
            for _ in range(300):
                damaged = bytearray(data)
                for _ in range(rng.randint(1, 3)):
                    damaged[rng.randrange(len(damaged))] = rng.randrange(256)
                for fast, expected in self.both(bytes(damaged)):
                    if fast is not None:
                        answered += 1
                        self.assertEqual(fast, expected)
        self.assertGreater(answered, 100)

    def test_extract_same_from_memory_and_file(self):
        """L{extract} gives the same metadata from a file and from its bytes."""
        for filename, data in (make_wheel("demo", "1.0", requires_dist=["a"]),
                               make_sdist_zip("demo", "1.0")):
            directory = self.mktemp()
            os.makedirs(directory)
            path = os.path.join(directory, filename)
            with open(path, "wb") as f:
                f.write(data)
            parsed = parse_filename(filename, legacy=True)
            for strict in (False, True):
                self.assertEqual(extract(io.BytesIO(data), parsed, filename, strict=strict),
                                 extract(path, parsed, filename, strict=strict))
