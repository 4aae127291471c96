"""
Tests for L{pypid.core.util.terminal_text}: another party's text made one
safe line (L{escaped}), and bounded (L{short_line}).
"""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.util.terminal_text import escaped, short_line


class ShortLineTests(SynchronousTestCase):
    """L{short_line}: one escaped line, at most C{limit} characters."""

    def test_short_text_kept(self):
        """Printable text within the limit is as it was."""
        self.assertEqual(short_line("invalid_grant: bad key"), "invalid_grant: bad key")

    def test_escaped_then_cut(self):
        """Control characters are escapes, and a long answer ends in C{...}."""
        self.assertEqual(short_line("a\nb\x1b[31m"), "a\\nb\\x1b[31m")
        cut = short_line("<html>" + "x" * 500, limit=20)
        self.assertEqual(cut, "<html>xxxxxxxxxxx...")

    @given(st.text(), st.integers(min_value=3, max_value=300))
    def test_one_bounded_line(self, text, limit):
        """Whatever it is given: no line break, no escape character, never over the limit."""
        line = short_line(text, limit)
        self.assertLessEqual(len(line), limit)
        self.assertNotIn("\n", line)
        self.assertNotIn("\x1b", line)
        if len(escaped(text)) <= limit:
            self.assertEqual(line, escaped(text))
