"""Tests for L{pypid.jobs.gather}."""

import gc

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from pypid.jobs.gather import gather


class GatherTests(SynchronousTestCase):
    def test_results_in_order(self):
        first, second = Deferred(), Deferred()
        both = gather([first, second])
        second.callback(2)
        self.assertNoResult(both)
        first.callback(1)
        self.assertEqual(self.successResultOf(both), [1, 2])

    def test_first_failure_itself_others_consumed(self):
        """The first failure, not a FirstError; a later one is not left unhandled."""
        first, second = Deferred(), Deferred()
        both = gather([first, succeed(0), second])
        first.errback(KeyError("first"))
        second.errback(ValueError("second"))
        failure = self.failureResultOf(both, KeyError)
        self.assertEqual(str(failure.value), "'first'")
        del first, second, both, failure
        gc.collect()
        self.assertEqual(self.flushLoggedErrors(), [])
