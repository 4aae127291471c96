"""
What the tests of one class share in one process (a daemon, a directory
server, an upstream, an image), and the folder the processes of one trial
run share.

Starting a daemon or a directory server takes a second or more, so the
tests of a class share one, made on first use. Trial calls no
C{setUpClass}, and neither a test nor its class knows which test of the
class is the last one here: under C{python -m twisted.trial -j N} the
manager hands each test to whichever worker process is free, so a class's
tests are spread over the workers, and a count of the tests left in the
class never reaches zero in any of them. What both ways of running share
is the order: each process is given its tests in the suite's order, a
class's tests one after another. So L{ClassShared} keeps what one class
shares, in this process, until a test of another class asks for its own,
and closes it then (or when the process exits); and a test never relies on
what another test of its class did: whatever it needs, it asks for, and it
is made at that moment when this process has not made it yet.
"""

import atexit
import os
import threading

from twisted.python import log
from twisted.trial.unittest import SkipTest


class ClassShared:
    """
    What the tests of one class share in this process: values made on
    first use, kept while this process runs the tests of that class, and
    closed (the last made first) when a test of another class enters, or
    at exit.
    """

    def __init__(self):
        self._owner = None
        self._values = {}
        self._closers = []
        self._errors = {}
        # (threads of one test may ask at once, and a make may ask for
        # another value: reentrant)
        self._lock = threading.RLock()

    def enter(self, cls):
        """
        A test of C{cls} begins: what another class shares is closed now,
        as no test of that class comes to this process after one of C{cls}.
        """
        with self._lock:
            if cls is not self._owner:
                self.close()
                self._owner = cls

    def get(self, testcase, name, make, close=None):
        """
        What the tests of C{testcase}'s class share under C{name}: C{make()}'s
        value, made now if this process has not made it yet.

        @param close: C{close(value)}, called when the class's time is over.
        @raise SkipTest: C{make} raised it (not kept: each test skips alike).
        @raise testcase.failureException: C{make} failed for an earlier test
            of the class here; the first test got its exception.
        """
        with self._lock:
            self.enter(type(testcase))
            if name in self._errors:
                testcase.fail(f"the shared {name} of this class could not be made: "
                              f"{self._errors[name]}")
            if name not in self._values:
                try:
                    value = make()
                except SkipTest:
                    raise
                except BaseException as e:
                    self._errors[name] = str(e).splitlines()[0] if str(e) else repr(e)
                    raise
                self._values[name] = value
                if close is not None:
                    self._closers.append((name, close, value))
            return self._values[name]

    def close(self):
        """Close everything shared, the last made first; a failure is logged, not raised."""
        with self._lock:
            owner, closers = self._owner, self._closers
            self._owner, self._values, self._closers, self._errors = None, {}, [], {}
        for name, close, value in reversed(closers):
            try:
                close(value)
            except Exception as e:
                # (the next class's test runs now: the failure is not its own)
                log.msg(f"closing the shared {name} of {owner.__qualname__} failed: {e!r}")


#: The one L{ClassShared} of this process.
CLASS_SHARED = ClassShared()
atexit.register(CLASS_SHARED.close)


def class_shared(testcase, name, make, close=None):
    """What the tests of C{testcase}'s class share under C{name} (see L{ClassShared.get})."""
    return CLASS_SHARED.get(testcase, name, make, close)


def run_folder(here=None):
    """
    The folder trial made for this run: the working directory of a plain
    run, its parent in a worker process of C{-j} (each worker works in a
    numbered folder of it). Trial locks it for the run with a C{.lock}
    beside it, so two runs never share one, and it holds what the worker
    processes of the run share.

    @param here: the working directory; default: this process's.
    """
    here = os.path.abspath(here or os.getcwd())
    for folder in (here, os.path.dirname(here)):
        if os.path.lexists(folder + ".lock"):
            return folder
    return here
