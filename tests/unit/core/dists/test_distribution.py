"""
Tests for L{pypid.core.dists.distribution}: a file on disk turned into its record and
the core metadata to serve beside it.
"""

import hashlib
import io
import os
import random

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists import distribution
from pypid.core.dists.distribution import file_digests, inspect
from pypid.core.dists.metadata import InvalidDistribution
from pypid.core.dists.model import FileRecord
from pypid.core.dists.names import InvalidName
from tests.harness.distributions import (
    make_sdist,
    make_sdist_zip,
    make_tarball,
    make_wheel,
    metadata_text,
)
from tests.harness.fakes import write_file

WHEN = 1767225600.5


class FileDigestsTests(SynchronousTestCase):
    """Tests for L{file_digests}."""

    def test_digests(self):
        """The size and the sha256, blake2b-256 and md5 hex digests of the file."""
        data = os.urandom(3 << 20)
        path = write_file(os.path.abspath(self.mktemp()), data)
        self.assertEqual(file_digests(path), (
            len(data),
            hashlib.sha256(data).hexdigest(),
            hashlib.blake2b(data, digest_size=32).hexdigest(),
            hashlib.md5(data).hexdigest(),
        ))

    def test_empty(self):
        """An empty file has size 0 and the digests of nothing."""
        path = write_file(os.path.abspath(self.mktemp()), b"")
        self.assertEqual(file_digests(path)[:2], (0, hashlib.sha256(b"").hexdigest()))


class InspectTests(SynchronousTestCase):
    """Tests for L{inspect}."""

    def put(self, data):
        """Write C{data} to a new file and return its path."""
        return write_file(os.path.abspath(self.mktemp()), data)

    def test_lookalike_metadata_name(self):
        """
        A metadata Name that normalizes to the filename's project only
        through a lookalike letter (the Kelvin sign lowercases to k) is
        refused, in an import (legacy) as in an upload.
        """
        metadata = metadata_text("\u212aeras", "1.0")
        filename, data = make_wheel("keras", "1.0", metadata=metadata)
        for legacy in (False, True):
            with self.assertRaises(InvalidDistribution) as caught:
                inspect(self.put(data), filename, filename, WHEN, legacy=legacy)
            self.assertIn("is not a valid project name", str(caught.exception))

    def test_wheel(self):
        """A wheel gives a full record and its METADATA bytes, exactly."""
        metadata = metadata_text("Holy.Grail", "1.0", requires_python=">=3.8",
                                 requires_dist=["attrs"])
        filename, data = make_wheel("Holy.Grail", "1.0", metadata=metadata)
        inspected = inspect(self.put(data), filename, "h/" + filename, WHEN)
        record, served = inspected.record, inspected.metadata
        self.assertEqual(served, metadata.encode("utf-8"))
        self.assertEqual(record, FileRecord(
            filename=filename,
            project="holy-grail",
            name="Holy.Grail",
            version="1.0",
            packagetype="bdist_wheel",
            path="h/" + filename,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            blake2_256=hashlib.blake2b(data, digest_size=32).hexdigest(),
            md5=hashlib.md5(data).hexdigest(),
            upload_time=WHEN,
            requires_python=">=3.8",
            metadata_sha256=hashlib.sha256(metadata.encode("utf-8")).hexdigest(),
            summary="Test project Holy.Grail",
        ))
        self.assertIsNone(inspected.details)

    def test_sdist_reliable(self):
        """An sdist with Metadata 2.2 and nothing dynamic serves its PKG-INFO."""
        filename, data = make_sdist("holy-grail", "2.0", requires_python=">=3.9")
        inspected = inspect(self.put(data), filename, filename, WHEN)
        record, served = inspected.record, inspected.metadata
        self.assertEqual(record.packagetype, "sdist")
        self.assertEqual(record.version, "2.0")
        self.assertEqual(record.requires_python, ">=3.9")
        self.assertIsNotNone(served)
        self.assertIn(b"Metadata-Version: 2.2", served)
        self.assertEqual(record.metadata_sha256, hashlib.sha256(served).hexdigest())

    def test_sdist_unreliable(self):
        """An sdist with older metadata is described but its metadata is not served."""
        filename, data = make_sdist("holy-grail", "2.0", metadata_version="2.1")
        inspected = inspect(self.put(data), filename, filename, WHEN)
        record, served = inspected.record, inspected.metadata
        self.assertIsNone(served)
        self.assertIsNone(record.metadata_sha256)
        self.assertEqual(record.sha256, hashlib.sha256(data).hexdigest())

    def test_zip_sdist(self):
        """A C{.zip} sdist is read too."""
        filename, data = make_sdist_zip("holy-grail", "1.0")
        inspected = inspect(self.put(data), filename, filename, WHEN)
        record = inspected.record
        self.assertEqual((record.project, record.version, record.packagetype),
                         ("holy-grail", "1.0", "sdist"))

    def test_digests_passed_through(self):
        """Digests given by the caller (computed while uploading) are used as they are."""
        filename, data = make_wheel("holy-grail", "1.0")
        digests = (12345, "1" * 64, "2" * 64, "3" * 32)
        inspected = inspect(self.put(data), filename, filename, WHEN, digests)
        record = inspected.record
        self.assertEqual((record.size, record.sha256, record.blake2_256, record.md5), digests)

    def test_digests_computed(self):
        """Without digests, they are computed from the file."""
        filename, data = make_wheel("holy-grail", "1.0")
        path = self.put(data)
        inspected = inspect(path, filename, filename, WHEN)
        record = inspected.record
        self.assertEqual((record.size, record.sha256, record.blake2_256, record.md5),
                         file_digests(path))

    def test_legacy(self):
        """Legacy names are refused unless asked for, and then described."""
        meta = metadata_text("my-project", "1.0").encode()
        data = make_tarball([("my-project-1.0/PKG-INFO", meta)], mode="w:bz2")
        path = self.put(data)
        self.assertRaises(InvalidName, inspect, path, "my-project-1.0.tar.bz2", "k", WHEN)
        inspected = inspect(path, "my-project-1.0.tar.bz2", "old/my-project-1.0.tar.bz2",
                            WHEN, legacy=True)
        record = inspected.record
        self.assertEqual((record.project, record.version, record.path),
                         ("my-project", "1.0", "old/my-project-1.0.tar.bz2"))

    def test_bad_filename(self):
        """A filename that is not a distribution raises L{InvalidName}."""
        self.assertRaises(InvalidName, inspect, self.put(b"x"), "README.txt", "k", WHEN)

    def test_broken_archive(self):
        """A file that is not the archive its name says raises L{InvalidDistribution}."""
        self.assertRaises(InvalidDistribution, inspect, self.put(b"not a zip"),
                          "holy_grail-1.0-py3-none-any.whl", "k", WHEN)

    def test_metadata_mismatch(self):
        """A wheel whose metadata names another project is refused."""
        _, data = make_wheel("other", "1.0")
        self.assertRaises(InvalidDistribution, inspect, self.put(data),
                          "holy_grail-1.0-py3-none-any.whl", "k", WHEN)


def _outcome(function, *args, **kwargs):
    """
    What C{function} returns, or the type, field and text of what it raises;
    of the text, what comes before the first C{": "} only, as the reason a
    reader gives may differ between a file and memory (a negative seek: an
    C{OSError} from a file, a C{ValueError} from L{io.BytesIO}).
    """
    try:
        return function(*args, **kwargs)
    except (InvalidName, InvalidDistribution) as e:
        return type(e), getattr(e, "field", None), str(e).split(": ")[0]


class InMemoryTests(SynchronousTestCase):
    """
    Tests that L{inspect} gives the same answer whether it reads a file
    whole into memory (up to L{IN_MEMORY_LIMIT}) or streams it.
    """

    def put(self, data):
        """Write C{data} to a new file and return its path."""
        return write_file(os.path.abspath(self.mktemp()), data)

    def both(self, data, filename, **kwargs):
        """L{inspect}'s outcome for C{data} read whole, and streamed."""
        path = self.put(data)
        whole = _outcome(inspect, path, filename, "k/" + filename, WHEN, **kwargs)
        self.patch(distribution, "IN_MEMORY_LIMIT", -1)
        streamed = _outcome(inspect, path, filename, "k/" + filename, WHEN, **kwargs)
        self.patch(distribution, "IN_MEMORY_LIMIT", len(data))
        return whole, streamed

    def test_same_records(self):
        """Wheels, sdists and zip sdists, legacy or strict, are described alike."""
        for filename, data in (make_wheel("holy-grail", "1.0", requires_python=">=3"),
                               make_sdist("holy-grail", "2.0"),
                               make_sdist_zip("holy-grail", "3.0")):
            for legacy in (True, False):
                whole, streamed = self.both(data, filename, legacy=legacy)
                self.assertIsInstance(whole, distribution.Inspected)
                self.assertEqual(whole, streamed, (filename, legacy))
                self.assertEqual(whole.record.sha256, hashlib.sha256(data).hexdigest())

    def test_same_refusals(self):
        """Damaged archives are refused with the same message either way."""
        rng = random.Random(14)
        for filename, data in (make_wheel("demo", "1.0"), make_sdist_zip("demo", "1.0"),
                               make_sdist("demo", "1.0")):
            refused = 0
            for _ in range(60):
                damaged = bytearray(data)
                for _ in range(rng.randint(1, 4)):
                    damaged[rng.randrange(len(damaged))] = rng.randrange(256)
                for legacy in (True, False):
                    whole, streamed = self.both(bytes(damaged), filename, legacy=legacy)
                    self.assertEqual(whole, streamed, (filename, legacy, bytes(damaged)))
                    refused += isinstance(whole, tuple)
            self.assertGreater(refused, 0, filename)

    def test_limit(self):
        """A file of exactly the limit is read whole, one byte more is streamed."""
        filename, data = make_wheel("holy-grail", "1.0")
        path = self.put(data)
        fd = os.open(path, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        self.assertEqual(distribution._read_small(fd, len(data)), data)
        os.lseek(fd, 0, os.SEEK_SET)
        self.assertIsNone(distribution._read_small(fd, len(data) - 1))

    def test_larger_than_it_said(self):
        """A file that grew after its size was read is read to its end, or streamed."""
        path = self.put(b"x" * 10)
        fd = os.open(path, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        real_fstat = os.fstat
        self.patch(distribution.os, "fstat",
                   lambda fd: os.stat_result((0,) * 6 + (5,) + (0,) * 3))
        self.assertEqual(distribution._read_small(fd, 10), b"x" * 10)
        os.lseek(fd, 0, os.SEEK_SET)
        self.assertIsNone(distribution._read_small(fd, 9))
        self.patch(distribution.os, "fstat", real_fstat)

    def test_file_object(self):
        """A file object with no digests given is hashed from its start."""
        filename, data = make_wheel("holy-grail", "1.0")
        source = io.BytesIO(data)
        source.seek(7)
        record = inspect(source, filename, filename, WHEN).record
        self.assertEqual((record.size, record.sha256, record.blake2_256, record.md5),
                         distribution.data_digests(data))

    def test_data_digests(self):
        """L{distribution.data_digests} of bytes are L{file_digests} of a file holding them."""
        data = os.urandom(100_000)
        self.assertEqual(distribution.data_digests(data), file_digests(self.put(data)))

    def test_large_wheel(self):
        """A wheel over the limit is streamed: same record, same digests."""
        filename, data = make_wheel("holy-grail", "1.0",
                                    extra_files=[("holy_grail/blob.bin", os.urandom(300_000))])
        self.patch(distribution, "IN_MEMORY_LIMIT", 100_000)
        path = self.put(data)
        record = inspect(path, filename, filename, WHEN).record
        self.assertEqual((record.size, record.sha256, record.blake2_256, record.md5),
                         file_digests(path))
