"""Tests for L{pypid.core.util.repeats}: events by key, told in one line a window at most."""

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.util.repeats import Repeats, Summary


class RepeatsTests(SynchronousTestCase):
    """Tests for L{Repeats}."""

    def test_first_told_rest_summed(self):
        """A key's first event is told at once; the rest are one summary once its window passed."""
        repeats = Repeats(window=60)
        self.assertTrue(repeats.add("a", 0))
        self.assertEqual([repeats.add("a", t) for t in (1, 2, 59)], [False] * 3)
        self.assertEqual(repeats.due(59.9), [])
        self.assertEqual(repeats.due(60.5), [Summary("a", 3, 60.5)])
        self.assertEqual(repeats.due(61), [], "told once")

    def test_at_most_one_line_a_window(self):
        """
        A key that keeps repeating gets a summary a window, never an event
        told at once between; a key quiet for a whole window is forgotten,
        and its next event is told at once.
        """
        repeats = Repeats(window=60)
        repeats.add("a", 0)
        repeats.add("a", 30)
        self.assertEqual(repeats.due(60), [Summary("a", 1, 60)])
        self.assertFalse(repeats.add("a", 70), "within the new window: summed")
        self.assertEqual(repeats.due(120), [Summary("a", 1, 60)])
        self.assertEqual(repeats.due(180), [], "a quiet window: forgotten")
        self.assertTrue(repeats.add("a", 181))

    def test_keys_apart(self):
        """Each key has its own window."""
        repeats = Repeats(window=60)
        self.assertTrue(repeats.add("a", 0))
        self.assertTrue(repeats.add("b", 30))
        repeats.add("a", 31)
        repeats.add("b", 31)
        self.assertEqual(repeats.due(60), [Summary("a", 1, 60)])
        self.assertEqual(repeats.due(90), [Summary("b", 1, 60)])
