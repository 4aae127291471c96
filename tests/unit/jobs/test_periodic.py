"""Tests for L{pypid.jobs.periodic.Periodic}, the one loop of every periodic job."""

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from pypid.jobs.periodic import Periodic


class Job:
    """A job whose runs the test ends (C{pending}), or that ends at once."""

    def __init__(self, clock, hold=False, fail=False):
        self.clock = clock
        self.hold = hold
        self.fail = fail
        self.starts = []
        self.pending = []

    def __call__(self):
        self.starts.append(self.clock.seconds())
        if self.fail:
            raise RuntimeError("the storage is away")
        if self.hold:
            d = Deferred()
            self.pending.append(d)
            return d
        return None


class PeriodicTests(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()

    def periodic(self, job, interval=10.0, first=None):
        periodic = Periodic(job, interval, self.clock, what="The test's job", first=first)
        periodic.startService()
        return periodic

    def test_every_interval(self):
        """The first run comes an interval after the start, then one every interval."""
        job = Job(self.clock)
        self.periodic(job)
        self.clock.advance(9)
        self.assertEqual(job.starts, [])
        self.clock.advance(1)
        for _ in range(2):
            self.clock.advance(10)
        self.assertEqual(job.starts, [10, 20, 30])

    def test_first(self):
        """C{first} sets the first run's delay: at once with 0."""
        job = Job(self.clock)
        self.periodic(job, first=0)
        self.clock.advance(0)
        self.assertEqual(job.starts, [0])
        self.clock.advance(10)
        self.assertEqual(job.starts, [0, 10])
        other = Job(self.clock)
        self.periodic(other, first=3)
        self.clock.advance(3)
        self.assertEqual(other.starts, [13])

    def test_one_run_at_a_time(self):
        """A run longer than the interval delays the next, which starts when it ends."""
        job = Job(self.clock, hold=True)
        periodic = self.periodic(job)
        self.clock.advance(10)
        self.clock.advance(25)
        self.assertEqual(job.starts, [10])
        again = periodic.run_now()  # (the run under way)
        self.assertEqual(job.starts, [10])
        self.assertNoResult(again)
        job.pending[0].callback(None)
        self.assertIsNone(self.successResultOf(again))
        self.clock.advance(0)
        self.assertEqual(job.starts, [10, 35])
        job.pending[1].callback(None)
        self.clock.advance(10)
        self.assertEqual(job.starts, [10, 35, 45])

    def test_failure_logged_loop_goes_on(self):
        """A run that fails, raising or by its Deferred, is logged; the next comes."""
        job = Job(self.clock, fail=True)
        periodic = self.periodic(job)
        with capturedLogs() as events:
            self.clock.advance(10)
            self.clock.advance(10)
        self.assertEqual(job.starts, [10, 20])
        failures = [e for e in events if e.get("log_failure") is not None]
        self.assertEqual(len(failures), 2)
        self.assertEqual(failures[0]["what"], "The test's job")
        self.assertEqual(periodic.runs, 2)
        self.successResultOf(periodic.stopService())
        held = Job(self.clock, hold=True)
        self.periodic(held)
        with capturedLogs() as events:
            self.clock.advance(10)
            held.pending[0].errback(RuntimeError("gone"))
        self.assertEqual([e["log_failure"].getErrorMessage() for e in events
                          if e.get("log_failure") is not None], ["gone"])
        self.clock.advance(10)
        self.assertEqual(held.starts, [30, 40])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 3)

    def test_coroutine(self):
        """A job may be a coroutine function: its run ends when the coroutine does."""
        waiting = Deferred()
        ended = []

        async def job():
            await waiting
            ended.append(self.clock.seconds())
        periodic = self.periodic(job)
        self.clock.advance(10)
        stopped = periodic.stopService()
        self.assertNoResult(stopped)
        waiting.callback(None)
        self.successResultOf(stopped)
        self.assertEqual(ended, [10])

    def test_stop_waits_for_the_run(self):
        """Stopping cancels the next run and fires once the run in flight ended."""
        job = Job(self.clock, hold=True)
        periodic = self.periodic(job)
        self.clock.advance(10)
        stopped = periodic.stopService()
        self.assertNoResult(stopped)
        job.pending[0].callback(None)
        self.successResultOf(stopped)
        self.clock.advance(100)
        self.assertEqual(job.starts, [10])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_when_idle(self):
        """Stopping between runs fires at once and leaves nothing scheduled."""
        job = Job(self.clock)
        periodic = self.periodic(job)
        self.successResultOf(periodic.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_run_now(self):
        """C{run_now} runs at once; the next run is an interval after it."""
        job = Job(self.clock)
        periodic = self.periodic(job)
        self.clock.advance(4)
        self.successResultOf(periodic.run_now())
        self.clock.advance(9)
        self.assertEqual(job.starts, [4])
        self.clock.advance(1)
        self.assertEqual(job.starts, [4, 14])

    def test_interval_checked(self):
        """An interval of nothing is refused, naming the job."""
        with self.assertRaises(ValueError) as caught:
            Periodic(lambda: None, 0, self.clock, what="The test's job")
        self.assertEqual(str(caught.exception), "The test's job: the interval must be "
                                                "greater than 0")
