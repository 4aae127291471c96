"""Tests for L{pypid.jobs.coalesced}: one run at a time, each caller after a run begun after it."""

from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase

from pypid.jobs.coalesced import Coalesced


class CoalescedTests(SynchronousTestCase):
    """Runs, callers and failures."""

    def setUp(self):
        self.runs = []
        self.coalesced = Coalesced(self.job)

    def job(self):
        d = Deferred()
        self.runs.append(d)
        return d

    def test_one_run_for_a_burst(self):
        """
        A call while a run is under way waits for the next run, which every
        caller meanwhile shares; a call when nothing runs starts one.
        """
        first = self.coalesced()
        self.assertEqual(len(self.runs), 1)
        second, third = self.coalesced(), self.coalesced()
        self.assertEqual(len(self.runs), 1)
        self.runs[0].callback("ignored")
        self.assertIsNone(self.successResultOf(first))
        self.assertNoResult(second)
        self.assertEqual(len(self.runs), 2)
        self.runs[1].callback(None)
        self.assertEqual([self.successResultOf(d) for d in (second, third)], [None, None])
        self.coalesced()
        self.assertEqual(len(self.runs), 3)

    def test_failure(self):
        """A run that fails fires its callers all the same (the job logs its failures)."""
        coalesced = Coalesced(lambda: fail(ValueError("broken")))
        self.assertIsNone(self.successResultOf(coalesced()))
        self.assertIsNone(self.successResultOf(coalesced()))
