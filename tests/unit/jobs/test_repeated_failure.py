"""Tests for L{pypid.jobs.repeated_failure}: a repeated failure logged at its start, now and then, at its end."""

from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from pypid.jobs.repeated_failure import REMIND_EVERY, RepeatedFailure


class RepeatedFailureTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.events = []
        self.failure = RepeatedFailure("Cannot look", self.clock,
                                       Logger(observer=self.events.append))

    def lines(self):
        return [formatEvent(e) for e in self.events]

    def test_once_then_a_reminder_then_the_end(self):
        """Twice a second for a minute and a half: three lines, not 180."""
        for _ in range(180):
            self.failure.failed("S3 failed: 500 InternalError")
            self.clock.advance(0.5)
        self.failure.succeeded()
        self.assertEqual(self.lines(), [
            "Cannot look: S3 failed: 500 InternalError",
            "Cannot look, still (121 failures in 60 s): S3 failed: 500 InternalError",
            "Cannot look no more: it works again after 180 failures in 90 s",
        ])
        self.assertEqual(REMIND_EVERY, 60.0)

    def test_success_alone_says_nothing(self):
        self.failure.succeeded()
        self.assertEqual(self.lines(), [])

    def test_a_new_failure_after_the_end(self):
        self.failure.failed("down")
        self.failure.succeeded()
        self.failure.failed("down again")
        self.assertEqual(self.lines()[-1], "Cannot look: down again")
