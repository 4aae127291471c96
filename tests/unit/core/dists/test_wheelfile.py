"""
Tests for L{pypid.core.dists.wheelfile}: a wheel's C{WHEEL} file read strictly, and
its tags held to the filename's.
"""

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.wheelfile import (
    MAX_TAGS,
    MAX_WHEEL_FILE_SIZE,
    InvalidWheelFile,
    WheelInfo,
    check_matches_filename,
    parse_wheel_file,
)

GOOD = b"Wheel-Version: 1.0\nGenerator: bdist_wheel (0.45.1)\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


class ParseWheelFileTests(SynchronousTestCase):
    """Tests for L{parse_wheel_file}."""

    def refused(self, raw, words):
        """Assert C{raw} is refused with a message holding C{words}."""
        e = self.assertRaises(InvalidWheelFile, parse_wheel_file, raw, "demo-1.0.dist-info/WHEEL")
        self.assertIn(words, str(e))
        self.assertIn("demo-1.0.dist-info/WHEEL", str(e))

    def test_bdist_wheel_output(self):
        """What bdist_wheel writes is read: its tags, and no build."""
        self.assertEqual(parse_wheel_file(GOOD), WheelInfo(
            tags=frozenset({"py3-none-any"}), build=None))

    def test_several_tags_crlf_build_and_trailing_blank_line(self):
        """CRLF line ends, several Tag lines, a Build line and a final blank line are fine."""
        raw = (b"Wheel-Version: 1.9\r\nRoot-Is-Purelib: false\r\nTag: cp312-cp312-Manylinux_2_17_x86_64\r\n"
               b"Tag: cp312-cp312-manylinux2014_x86_64\r\nBuild: 1abc\r\n\r\n")
        info = parse_wheel_file(raw)
        self.assertEqual(info.tags, {"cp312-cp312-manylinux_2_17_x86_64",
                                     "cp312-cp312-manylinux2014_x86_64"})
        self.assertEqual(info.build, "1abc")

    def test_not_utf8(self):
        """Bytes that are not UTF-8 are refused."""
        self.refused(GOOD + b"Generator: \xff\n", "not valid UTF-8")

    def test_text_file(self):
        """A text file that is not Key: Value lines is refused, naming the line."""
        self.refused(b"This is not a WHEEL file.\n", "line 1 is not a plain 'Key: Value' line")

    def test_continuation_line(self):
        """A folded (continuation) line is refused: parsers disagree on it."""
        self.refused(GOOD + b" folded\n", "line 5")

    def test_blank_line_in_the_middle(self):
        """A blank line before more headers (a body, to an email parser) is refused."""
        self.refused(b"Wheel-Version: 1.0\n\nRoot-Is-Purelib: true\nTag: py3-none-any\n", "line 2")

    def test_control_character(self):
        """A control character in a value is refused."""
        self.refused(GOOD.replace(b"bdist_wheel", b"bdist\x00wheel"), "line 2")

    def test_no_wheel_version(self):
        """A WHEEL without Wheel-Version is refused."""
        self.refused(b"Root-Is-Purelib: true\nTag: py3-none-any\n", "no Wheel-Version")

    def test_wheel_version_2(self):
        """Wheel-Version 2.0 is refused: installers must not guess at it."""
        self.refused(GOOD.replace(b"1.0", b"2.0"), "is not supported")

    def test_wheel_version_garbage(self):
        """A Wheel-Version that is not major.minor is refused."""
        for bad in (b"1", b"1.0.0", b"01.0", b"one", b"1.x"):
            self.refused(GOOD.replace(b"1.0", bad, 1), "is not supported")

    def test_two_wheel_versions(self):
        """Wheel-Version twice is refused: readers would take different ones."""
        self.refused(GOOD + b"Wheel-Version: 2.0\n", "more than one Wheel-Version")

    def test_root_is_purelib(self):
        """Root-Is-Purelib missing or not true/false is refused."""
        self.refused(b"Wheel-Version: 1.0\nTag: py3-none-any\n", "Root-Is-Purelib")
        self.refused(GOOD.replace(b"true", b"yes"), "Root-Is-Purelib")

    def test_no_tag(self):
        """A WHEEL without Tag lines is refused."""
        self.refused(b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n", "no Tag line")

    def test_malformed_tag(self):
        """Tag lines must be python-abi-platform tags."""
        for bad in (b"py3-none", b"py3-none-any-x", b"py3--any", b"py3-none-an y", b"py3..py2-none-any"):
            self.refused(GOOD.replace(b"py3-none-any", bad), "is not a python-abi-platform tag")

    def test_compressed_tags_expanded(self):
        """A compressed Tag line (poetry-core, pdm-backend, maturin write them) is read expanded."""
        info = parse_wheel_file(GOOD.replace(b"py3-none-any", b"py2.py3-none-any"))
        self.assertEqual(info.tags, {"py2-none-any", "py3-none-any"})
        info = parse_wheel_file(GOOD.replace(
            b"py3-none-any", b"cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64"))
        self.assertEqual(info.tags, {"cp39-abi3-manylinux_2_17_x86_64",
                                     "cp39-abi3-manylinux2014_x86_64"})

    def test_too_many_tags(self):
        """More than MAX_TAGS Tag lines, or tags once expanded, are refused."""
        raw = GOOD + b"Tag: py3-none-any\n" * MAX_TAGS
        self.refused(raw, f"more than {MAX_TAGS} Tag lines")
        many = b".".join(b"p%d" % i for i in range(40))
        self.refused(GOOD.replace(b"py3-none-any", many + b"-" + many + b"-any"),
                     f"more than {MAX_TAGS} tags")

    def test_too_large(self):
        """A WHEEL over the size cap is refused before it is decoded."""
        self.refused(GOOD + b"X: " + b"y" * MAX_WHEEL_FILE_SIZE + b"\n", "larger than")


class MatchesFilenameTests(SynchronousTestCase):
    """Tests for L{check_matches_filename}."""

    def info(self, *tags, build=None):
        """A WheelInfo with C{tags}."""
        return WheelInfo(frozenset(tags), build)

    def test_same_tags(self):
        """Tags equal to the filename's expanded tags pass, whatever their case."""
        check_matches_filename(self.info("py2-none-any", "py3-none-any"),
                               "demo-1.0-py2.py3-none-any.whl")
        check_matches_filename(
            self.info("cp312-cp312-manylinux_2_17_x86_64", "cp312-cp312-manylinux2014_x86_64"),
            "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")

    def test_platform_differs(self):
        """A WHEEL built for another platform than the filename says is refused."""
        e = self.assertRaises(InvalidWheelFile, check_matches_filename,
                              self.info("cp312-cp312-win_amd64"),
                              "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", "d/WHEEL")
        self.assertEqual(str(e), "the Tag lines do not match the filename (the filename's "
                                 "cp312-cp312-manylinux_2_17_x86_64 not in WHEEL; WHEEL's "
                                 "cp312-cp312-win_amd64 not in the filename; in d/WHEEL)")

    def test_subset_and_superset(self):
        """Fewer or more tags than the filename's are refused."""
        self.assertRaises(InvalidWheelFile, check_matches_filename,
                          self.info("py3-none-any"), "demo-1.0-py2.py3-none-any.whl")
        self.assertRaises(InvalidWheelFile, check_matches_filename,
                          self.info("py2-none-any", "py3-none-any"), "demo-1.0-py3-none-any.whl")

    def test_messages_stay_short(self):
        """Long tags and build values are cut short in the message."""
        e = self.assertRaises(InvalidWheelFile, check_matches_filename,
                              self.info(*(f"py3-none-{'x' * 500}{i}" for i in range(50)),
                                        build="9" * 10000),
                              "demo-1.0-py3-none-any.whl")
        self.assertLess(len(str(e)), 1000)
        e = self.assertRaises(InvalidWheelFile, check_matches_filename,
                              self.info("py3-none-any", build="9" * 10000),
                              "demo-1.0-py3-none-any.whl")
        self.assertLess(len(str(e)), 200)

    def test_build(self):
        """The Build line and the filename's build tag must agree, both ways."""
        check_matches_filename(self.info("py3-none-any", build="01"), "demo-1.0-01-py3-none-any.whl")
        for info, filename in ((self.info("py3-none-any", build="2"), "demo-1.0-1-py3-none-any.whl"),
                               (self.info("py3-none-any", build="1"), "demo-1.0-py3-none-any.whl"),
                               (self.info("py3-none-any"), "demo-1.0-1-py3-none-any.whl")):
            e = self.assertRaises(InvalidWheelFile, check_matches_filename, info, filename)
            self.assertIn("Build", str(e))
