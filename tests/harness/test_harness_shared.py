"""
Tests of L{tests.harness.shared}: what the tests of a class share lives
while this process runs that class's tests, whichever of them it is given
(all, as in a plain run, or some, as a worker of C{trial -j} is), and is
closed when a test of another class begins, or at exit.
"""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.harness.shared import ClassShared, run_folder


def _classes():
    """Two test classes (made here, so that trial does not collect them) and a test of each."""

    class First(SynchronousTestCase):
        def test_one(self):
            pass

        def test_two(self):
            pass

    class Second(SynchronousTestCase):
        def test_one(self):
            pass

    return First("test_one"), First("test_two"), Second("test_one")


class ClassSharedTests(SynchronousTestCase):
    """L{ClassShared}: made once per class and process, closed when another class enters."""

    def setUp(self):
        self.shared = ClassShared()
        self.made = []
        self.closed = []

    def make(self, name):
        def make():
            value = f"{name}#{len(self.made)}"
            self.made.append(value)
            return value
        return make

    def test_shared_by_the_tests_of_a_class(self):
        """Any test of the class gets the value the first one made; C{make} runs once."""
        one, two, _ = _classes()
        first = self.shared.get(two, "daemon", self.make("daemon"), self.closed.append)
        self.assertEqual(self.shared.get(one, "daemon", self.make("daemon"), self.closed.append),
                         first)
        self.assertEqual((self.made, self.closed), (["daemon#0"], []))

    def test_threads_of_a_test(self):
        """
        Threads of one test asking at once (concurrent uploads to the
        class's daemon, say) get the one value; C{make} runs once.
        """
        one, _, _ = _classes()
        started = threading.Event()

        def slow():
            self.made.append("daemon")
            started.wait(5)
            return "daemon"
        with ThreadPoolExecutor(4) as pool:
            asks = [pool.submit(self.shared.get, one, "daemon", slow) for _ in range(4)]
            time.sleep(0.1)
            started.set()
            got = [ask.result() for ask in asks]
        self.assertEqual((got, self.made), (["daemon"] * 4, ["daemon"]))

    def test_closed_when_another_class_enters(self):
        """
        A test of another class closes what the class shared, the last made
        first; a test of the first class after that gets new values.
        """
        one, two, other = _classes()
        self.shared.get(one, "upstream", self.make("upstream"), self.closed.append)
        self.shared.get(one, "daemon", self.make("daemon"), self.closed.append)
        self.shared.enter(type(other))
        self.assertEqual(self.closed, ["daemon#1", "upstream#0"])
        again = self.shared.get(two, "daemon", self.make("daemon"), self.closed.append)
        self.assertEqual(again, "daemon#2")
        self.shared.close()
        self.assertEqual(self.closed, ["daemon#1", "upstream#0", "daemon#2"])

    def test_any_test_makes_it(self):
        """
        The test that makes the value need not be the class's first: in a
        process given only its second test, that test makes it.
        """
        _, two, _ = _classes()
        self.assertEqual(self.shared.get(two, "daemon", self.make("daemon")), "daemon#0")

    def test_failure_kept_for_the_class(self):
        """
        When C{make} fails, the test gets its exception, and the next tests
        of the class fail at once naming it, without making it again; a
        test of another class is not concerned, nor the class's next turn.
        """
        one, two, other = _classes()

        def broken():
            self.made.append("broken")
            raise OSError("no such program\nmore")
        self.assertRaises(OSError, self.shared.get, one, "daemon", broken)
        failure = self.assertRaises(two.failureException, self.shared.get, two, "daemon", broken)
        self.assertIn("the shared daemon of this class could not be made: no such program",
                      str(failure))
        self.assertEqual(self.made, ["broken"])
        self.assertEqual(self.shared.get(other, "daemon", self.make("daemon")), "daemon#1")
        self.assertEqual(self.shared.get(one, "daemon", self.make("daemon")), "daemon#2")

    def test_skip_not_kept(self):
        """A C{SkipTest} from C{make} skips each test that asks: nothing is kept."""
        one, two, _ = _classes()

        def missing():
            self.made.append("missing")
            raise SkipTest("needs slapd")
        self.assertRaises(SkipTest, self.shared.get, one, "slapd", missing)
        self.assertRaises(SkipTest, self.shared.get, two, "slapd", missing)
        self.assertEqual(self.made, ["missing", "missing"])

    def test_close_failure_logged(self):
        """A value that fails to close is logged; the others are closed all the same."""
        one, _, other = _classes()

        def refuse(value):
            raise RuntimeError(f"{value} did not stop")
        self.shared.get(one, "upstream", self.make("upstream"), self.closed.append)
        self.shared.get(one, "daemon", self.make("daemon"), refuse)
        with capturedLogs() as events:
            self.shared.enter(type(other))
        self.assertEqual(self.closed, ["upstream#0"])
        [text] = [formatEvent(e) for e in events]
        self.assertIn("closing the shared daemon of", text)
        self.assertIn("daemon#1 did not stop", text)


class RunFolderTests(SynchronousTestCase):
    """L{run_folder}: the folder trial locked for the run, from a worker's folder too."""

    def setUp(self):
        self.top = os.path.abspath(self.mktemp())
        self.run = os.path.join(self.top, "_trial_temp")
        os.makedirs(os.path.join(self.run, "1"))
        os.symlink("12345", self.run + ".lock")

    def test_plain_run(self):
        """A plain run works in the folder it locked."""
        self.assertEqual(run_folder(self.run), self.run)

    def test_worker(self):
        """A worker of C{-j} works in a numbered folder of the one the manager locked."""
        self.assertEqual(run_folder(os.path.join(self.run, "1")), self.run)

    def test_elsewhere(self):
        """Outside trial's folders, the working directory."""
        self.assertEqual(run_folder(self.top), self.top)
