"""
Tests for L{pypid.core.util.units}: the sizes and durations the configuration
and the token admin read.
"""

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.util.units import (
    DURATION_FORMS,
    counted,
    format_duration,
    is_zero_duration,
    parse_duration,
    parse_size,
)


class ParseSizeTests(SynchronousTestCase):
    """Tests for L{parse_size}."""

    def test_forms(self):
        """Plain bytes and binary units, with or without B or iB, in any case."""
        cases = {
            "1048576": 1 << 20,
            "1": 1,
            "100M": 100 << 20,
            "100m": 100 << 20,
            "1G": 1 << 30,
            "2T": 2 << 40,
            "512KiB": 512 << 10,
            "512kb": 512 << 10,
            " 3 MB ": 3 << 20,
            "10B": 10,
        }
        for text, size in cases.items():
            self.assertEqual(parse_size(text), size, text)

    def test_refused(self):
        """Anything else raises L{ValueError} with the allowed forms."""
        for text in ("", "M", "1.5G", "-1", "0", "0K", "10 X", "1 PB", "ten"):
            e = self.assertRaises(ValueError, parse_size, text)
            self.assertIn("expected a size", str(e))


class ParseDurationTests(SynchronousTestCase):
    """Tests for L{parse_duration}."""

    def test_forms(self):
        """Seconds, or a number with s, m, h or d, in any case and with optional spaces."""
        cases = {
            "30": 30.0,
            "30s": 30.0,
            "30S": 30.0,
            "2.5": 2.5,
            ".5": 0.5,
            "5m": 300.0,
            "5M": 300.0,
            "12h": 43200.0,
            "1.5h": 5400.0,
            "7d": 604800.0,
            " 7 D ": 604800.0,
            "10 m": 600.0,
        }
        for text, seconds in cases.items():
            result = parse_duration(text)
            self.assertEqual(result, seconds, text)
            self.assertIsInstance(result, float)

    def test_refused(self):
        """Anything else raises L{ValueError} with the allowed forms."""
        for text in ("", "s", "-1", "-5m", "1w", "1.5.5", "ten", "1h30m", "5 min", "1e3",
                     "1,5h", "inf", "nan", "+5", "1.", "9" * 400):
            e = self.assertRaises(ValueError, parse_duration, text)
            self.assertEqual(str(e), "expected a duration such as 30 (seconds), 30s, 5m, "
                                     "12h, 7d or 1.5h", text)

    def test_zero_refused(self):
        """A duration of zero is refused: it must be greater than 0."""
        for text in ("0", "0s", "0.0h", "00d"):
            e = self.assertRaises(ValueError, parse_duration, text)
            self.assertEqual(str(e), "expected a duration greater than 0", text)

    def test_forms_message(self):
        """L{DURATION_FORMS} is the message of a text that is not a duration."""
        e = self.assertRaises(ValueError, parse_duration, "ten")
        self.assertEqual(str(e), DURATION_FORMS)


class IsZeroDurationTests(SynchronousTestCase):
    """Tests for L{is_zero_duration}."""

    def test_zero(self):
        """A duration of nothing, in any of the duration forms, is zero."""
        for text in ("0", "0s", "0.0h", "00d", " 0 m ", ".0", "0.000"):
            self.assertTrue(is_zero_duration(text), text)

    def test_not_zero(self):
        """A positive duration, an empty text and a text that is not a duration are not zero."""
        for text in ("", " ", "1", "0.5s", "30m", "-0", "0w", "zero", "0 0"):
            self.assertFalse(is_zero_duration(text), text)


class CountedTests(SynchronousTestCase):
    """Tests for L{counted}: a count with its noun, as people say it (issue 69)."""

    def test_forms(self):
        """One is singular; none, many and fractions are plural; a plural can be given."""
        cases = [
            ((1, "project"), "1 project"),
            ((0, "project"), "0 projects"),
            ((2, "file"), "2 files"),
            ((100001, "file"), "100001 files"),
            ((1.0, "hour"), "1 hour"),
            ((1.5, "hour"), "1.5 hours"),
            ((1, "advisory", "advisories"), "1 advisory"),
            ((3, "advisory", "advisories"), "3 advisories"),
        ]
        for args, text in cases:
            self.assertEqual(counted(*args), text, args)

    def test_durations(self):
        """L{format_duration} says its unit the same way."""
        self.assertEqual([format_duration(s) for s in (1, 30, 3600, 5400, 86400 * 7)],
                         ["1 second", "30 seconds", "1 hour", "1.5 hours", "7 days"])
