"""
Tests for L{pypid.core.model}: file records, their JSON form and PEP 700 times.
"""

import json
import re

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.model import SUMMARY_BYTES, FileRecord, cut_text, format_upload_time

SHA = "a" * 64
PEP700 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")


def make_record(**kwargs):
    """Return a minimal wheel record, overridable field by field."""
    values = dict(
        filename="holy_grail-1.0-py3-none-any.whl",
        project="holy-grail",
        name="Holy.Grail",
        version="1.0",
        packagetype="bdist_wheel",
        path="holy_grail-1.0-py3-none-any.whl",
        size=1337,
        sha256=SHA,
        upload_time=1767225600.5,
    )
    values.update(kwargs)
    return FileRecord(**values)


class FormatUploadTimeTests(SynchronousTestCase):
    """Tests for L{format_upload_time}."""

    def test_pep700(self):
        """Times are UTC, with microseconds and a C{Z}, as PEP 700 requires."""
        self.assertEqual(format_upload_time(1767225600.123456), "2026-01-01T00:00:00.123456Z")
        self.assertEqual(format_upload_time(0), "1970-01-01T00:00:00.000000Z")

    def test_record_property(self):
        """A record's C{upload_time_iso} is its time in that format."""
        iso = make_record().upload_time_iso
        self.assertRegex(iso, PEP700)
        self.assertEqual(iso, "2026-01-01T00:00:00.500000Z")


class FileRecordTests(SynchronousTestCase):
    """Tests for L{FileRecord}."""

    def test_is_wheel(self):
        """C{is_wheel} follows the package type."""
        self.assertTrue(make_record().is_wheel)
        self.assertFalse(make_record(packagetype="sdist", filename="holy_grail-1.0.tar.gz").is_wheel)

    def test_converters(self):
        """C{requires_python} and C{yanked} are kept as strings (or L{None})."""
        record = make_record(yanked="", requires_python=None)
        self.assertEqual(record.yanked, "")
        self.assertIsNone(record.requires_python)

    def test_frozen(self):
        """Records cannot be changed in place; a change makes a new record."""
        record = make_record()
        self.assertRaises(AttributeError, setattr, record, "yanked", "x")
        self.assertRaises(AttributeError, setattr, record, "other", "x")
        changed = record.replace(yanked="bad", md5="c" * 32)
        self.assertEqual((changed.yanked, changed.md5, changed.sha256), ("bad", "c" * 32, SHA))
        self.assertEqual((record.yanked, record.md5), (None, None))
        self.assertRaises(TypeError, record.replace, colour="blue")
        self.assertRaises(ValueError, record.replace, sha256="not hex")

    def test_compact(self):
        """
        Digests are held as raw bytes and given out as hex; a path that is
        the filename is not held twice; the record is a plain tuple of its
        values (no per-instance dict), which L{FileRecord.of_values} takes
        back as a snapshot keeps them.
        """
        record = make_record(blake2_256="B" * 64, metadata_sha256="d" * 64)
        self.assertEqual(record.sha256, SHA)
        self.assertEqual(record.blake2_256, "b" * 64)  # (hex is given out lowercase)
        values = record.values()
        self.assertEqual(values[7], bytes.fromhex(SHA))
        self.assertIsNone(values[5])
        self.assertEqual(record.path, record.filename)
        self.assertFalse(hasattr(record, "__dict__"))
        self.assertEqual(FileRecord.of_values(values), record)
        moved = record.replace(path="sub/" + record.filename)
        self.assertEqual(moved.path, "sub/" + record.filename)
        self.assertEqual(moved.replace(path=record.filename), record)

    def test_copies(self):
        """A record pickles and copies as itself (process pools pass them)."""
        import copy
        import pickle
        record = make_record(md5="c" * 32, yanked="")
        self.assertEqual(pickle.loads(pickle.dumps(record)), record)
        self.assertEqual(copy.deepcopy(record), record)
        self.assertIn("sha256='" + SHA, repr(record))

    def test_to_json_minimal(self):
        """Unset optional fields are left out of the JSON form."""
        self.assertEqual(
            make_record().to_json(),
            {
                "filename": "holy_grail-1.0-py3-none-any.whl",
                "project": "holy-grail",
                "name": "Holy.Grail",
                "version": "1.0",
                "packagetype": "bdist_wheel",
                "path": "holy_grail-1.0-py3-none-any.whl",
                "size": 1337,
                "sha256": SHA,
                "upload_time": 1767225600.5,
            },
        )

    def test_round_trip(self):
        """A record with every field set survives to_json, JSON text and from_json."""
        record = make_record(
            blake2_256="b" * 64,
            md5="c" * 32,
            requires_python=">=3.8",
            yanked="",
            metadata_sha256="d" * 64,
        )
        data = json.loads(json.dumps(record.to_json()))
        self.assertEqual(data["yanked"], "")
        self.assertEqual(FileRecord.from_json(data), record)

    def test_round_trip_sdist(self):
        """An sdist record round-trips too."""
        record = make_record(filename="holy_grail-1.0.tar.gz", path="holy_grail-1.0.tar.gz",
                             packagetype="sdist")
        self.assertEqual(FileRecord.from_json(record.to_json()), record)

    def assertRefused(self, data):
        """Assert that C{data} is refused with L{ValueError}."""
        self.assertRaises(ValueError, FileRecord.from_json, data)

    def test_not_a_dict(self):
        """Lists, strings and L{None} are not records."""
        for data in ([], "record", None, 3):
            self.assertRefused(data)

    def test_bad_digest(self):
        """A digest that is not hex of its size is refused."""
        for field, value in (("sha256", "a" * 63), ("sha256", "z" * 64), ("md5", "a" * 64),
                             ("blake2_256", 7), ("metadata_sha256", "")):
            data = make_record().to_json()
            data[field] = value
            self.assertRefused(data)

    def test_missing_field(self):
        """A dict missing a required field is refused."""
        for field in ("filename", "project", "name", "version", "packagetype", "path",
                      "sha256", "size", "upload_time"):
            data = make_record().to_json()
            del data[field]
            self.assertRefused(data)

    def test_unknown_field(self):
        """A dict with a field records do not have is refused."""
        self.assertRefused(dict(make_record().to_json(), colour="blue"))

    def test_bad_packagetype(self):
        """Only wheels and sdists are records."""
        self.assertRefused(dict(make_record().to_json(), packagetype="bdist_egg"))

    def test_bad_size(self):
        """A size that is not an integer is refused."""
        for size in ("1337", 1.5, None, True):
            self.assertRefused(dict(make_record().to_json(), size=size))

    def test_bad_sha256(self):
        """A sha256 that is not 64 characters of text is refused."""
        for sha in ("abc", "a" * 65, 5, None):
            self.assertRefused(dict(make_record().to_json(), sha256=sha))

    def test_bad_strings(self):
        """Names and paths must be strings."""
        for field in ("filename", "project", "name", "version", "path"):
            self.assertRefused(dict(make_record().to_json(), **{field: 1}))

    def test_bad_upload_time(self):
        """An upload time that is not a number is refused."""
        for when in ("2026-01-01", None):
            self.assertRefused(dict(make_record().to_json(), upload_time=when))


class CutTextTests(SynchronousTestCase):
    """L{cut_text} keeps a record's summary and uploader within their byte caps."""

    def test_short_kept(self):
        """Text within the cap is kept as it is; empty text is no text."""
        self.assertEqual(cut_text("A grail finder", 300), "A grail finder")
        self.assertIsNone(cut_text("", 300))
        self.assertIsNone(cut_text(None, 300))

    def test_cut_on_a_character(self):
        """Long text is cut to the cap in UTF-8 bytes, on a character, with an ellipsis."""
        for text in ("x" * 400, "\u00e9" * 400, "\U0001f40d" * 400, "a\u00e9" * 300):
            cut = cut_text(text, SUMMARY_BYTES)
            self.assertLessEqual(len(cut.encode("utf-8")), SUMMARY_BYTES)
            self.assertTrue(cut.endswith("\u2026"), cut[-3:])
            self.assertTrue(text.startswith(cut[:-1]))
            self.assertGreater(len(cut.encode("utf-8")), SUMMARY_BYTES - 8)

    def test_record_round_trip(self):
        """The summary and the uploader are kept in a record's JSON."""
        record = FileRecord(filename="a-1.0.tar.gz", project="a", name="a", version="1.0",
                            packagetype="sdist", path="a-1.0.tar.gz", size=1, sha256="0" * 64,
                            upload_time=1.0, summary="S\u00fcmmary", uploader="arthur")
        self.assertEqual(FileRecord.from_json(record.to_json()), record)
