"""
Tests for L{pypid.daemon.container.Parts}: the order parts start and stop
in, start-up failures as one line, and reloads taken whole or not at all.
"""

import os

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from pypid.core.parts import IReloadable
from pypid.core.util.startup import StartupError
from pypid.daemon.container import Parts


class Recorded(Service):
    """A part that notes its start and stop in a shared list, and may hold either."""

    def __init__(self, name, seen, start=None, stop=None):
        self._name = name
        self._seen = seen
        self._start = start
        self._stop = stop

    def startService(self):
        """Note the start; return what the test gave (a Deferred, an error)."""
        Service.startService(self)
        self._seen.append(("start", self._name))
        if isinstance(self._start, Exception):
            raise self._start
        return self._start

    def stopService(self):
        """Note the stop; return what the test gave."""
        Service.stopService(self)
        self._seen.append(("stop", self._name))
        return self._stop


@implementer(IReloadable)
class Reloadable(Service):
    """A part that takes a value from a reloaded configuration, or refuses one."""

    def __init__(self, seen, refuse=False, files=False):
        self._seen = seen
        self._refuse = refuse
        self._files = files

    def prepare_reload(self, config):
        """Refuse when told to; take the configuration (or only files, without one)."""
        if config is None:
            return (lambda: self._seen.append("files")) if self._files else None
        if self._refuse:
            raise StartupError("cannot take it")
        return lambda: self._seen.append(config) or f"took {config}"


class OrderTests(SynchronousTestCase):
    """Parts start in order, each after the one before, and stop in reverse."""

    def test_start_and_stop(self):
        """A part whose start returns a Deferred holds the next; the stop is the reverse."""
        seen, held = [], Deferred()
        parts = Parts([("a", Recorded("a", seen)), ("b", Recorded("b", seen, start=held)),
                       ("c", Recorded("c", seen))], MemoryReactorClock())
        parts.startService()
        self.assertEqual(seen, [("start", "a"), ("start", "b")])
        self.assertNoResult(parts.ready)
        held.callback(None)
        self.successResultOf(parts.ready)
        self.assertEqual(seen[2:], [("start", "c")])
        del seen[:]
        self.successResultOf(parts.stopService())
        self.assertEqual(seen, [("stop", "c"), ("stop", "b"), ("stop", "a")])

    def test_stop_waits_for_each(self):
        """A part's stop that returns a Deferred holds the stop of the parts before it."""
        seen, held = [], Deferred()
        parts = Parts([("a", Recorded("a", seen)), ("b", Recorded("b", seen, stop=held))],
                      MemoryReactorClock())
        parts.startService()
        d = parts.stopService()
        self.assertEqual(seen[-1], ("stop", "b"))
        self.assertNoResult(d)
        held.callback(None)
        self.successResultOf(d)
        self.assertEqual(seen[-1], ("stop", "a"))

    def test_stop_during_start(self):
        """A stop while a part is starting stops only what started, and starts no more."""
        seen, held = [], Deferred()
        parts = Parts([("a", Recorded("a", seen, start=held)), ("b", Recorded("b", seen))],
                      MemoryReactorClock())
        parts.startService()
        self.successResultOf(parts.stopService())
        held.callback(None)
        self.assertEqual(seen, [("start", "a"), ("stop", "a")])

    def test_names(self):
        """A part is found by its name; two parts of one name are refused."""
        seen = []
        part = Recorded("a", seen)
        self.assertIs(Parts([("a", part)], MemoryReactorClock()).getServiceNamed("a"), part)
        self.assertRaises(ValueError, Parts, [("a", part), ("a", Recorded("b", seen))],
                          MemoryReactorClock())


class FailureTests(SynchronousTestCase):
    """A part that cannot start stops the server with one critical line."""

    def failing(self, error):
        """Start parts whose second fails with C{error}; the critical lines and the parts."""
        seen = []
        reactor = MemoryReactorClock()
        reactor.running = True
        parts = Parts([("a", Recorded("a", seen)), ("b", Recorded("b", seen, start=error)),
                       ("c", Recorded("c", seen))], reactor)
        with capturedLogs() as events:
            parts.startService()
        self.assertTrue(reactor.hasStopped)
        self.assertTrue(parts.failed)
        self.assertNoResult(parts.ready)
        self.assertNotIn(("start", "c"), seen)
        return [formatEvent(e) for e in events
                if e["log_level"] == LogLevel.critical and "log_failure" not in e], events

    def test_startup_error(self):
        """A L{StartupError} is its own line, with no traceback."""
        critical, events = self.failing(StartupError("Cannot listen on tcp:1: taken"))
        self.assertEqual(critical, ["Cannot listen on tcp:1: taken"])
        self.assertFalse([e for e in events if "log_failure" in e])

    def test_bug(self):
        """Another error is a bug: its traceback once, then one line naming the part."""
        critical, events = self.failing(ZeroDivisionError())
        self.flushLoggedErrors(ZeroDivisionError)
        self.assertEqual(critical, ["Cannot start b: stopping"])
        self.assertEqual(len([e for e in events if "log_failure" in e]), 1)


class ReloadTests(SynchronousTestCase):
    """A reload is taken whole or not at all; files are read again either way."""

    def test_taken(self):
        """Every part takes the configuration read again, and says what it took."""
        seen = []
        parts = Parts([("a", Reloadable(seen)), ("b", Reloadable(seen))], MemoryReactorClock(),
                      load_config=lambda: "new")
        with capturedLogs() as events:
            parts.reload()
        self.assertEqual(seen, ["new", "new"])
        self.assertIn("took new, took new", [e.get("took") for e in events])

    def test_refused_whole(self):
        """One part that refuses: no part takes anything, but files are read again."""
        seen = []
        parts = Parts([("a", Reloadable(seen, files=True)), ("b", Reloadable(seen)),
                       ("c", Reloadable(seen, refuse=True))], MemoryReactorClock(),
                      load_config=lambda: "new")
        with capturedLogs() as events:
            parts.reload()
        self.assertEqual(seen, ["files"])
        self.assertIn("cannot take it", [e.get("error") for e in events])

    def test_unreadable_configuration(self):
        """A configuration that cannot be read changes nothing but the files."""
        from pypid.config.errors import ConfigError

        def unreadable():
            raise ConfigError("pypid.ini: [auth] read: no")
        seen = []
        parts = Parts([("a", Reloadable(seen, files=True))], MemoryReactorClock(),
                      load_config=unreadable)
        parts.reload()
        self.assertEqual(seen, ["files"])


class ReloadAuditTests(SynchronousTestCase):
    """Each reload is told (its audit entry, so its webhook event): taken, or refused and why."""

    def test_told(self):
        said = []
        seen = []
        parts = Parts([("a", Reloadable(seen))], MemoryReactorClock(),
                      load_config=lambda: "new", reloaded=lambda *told: said.append(told))
        parts.reload()
        refusing = Parts([("a", Reloadable(seen, refuse=True))], MemoryReactorClock(),
                         load_config=lambda: "new", reloaded=lambda *told: said.append(told))
        refusing.reload()
        self.assertEqual(said, [("ok", "took new"),
                                ("refused", "the configuration: refused; the server's log says why")])

    def test_unreadable_told(self):
        """
        A configuration that cannot be used is a refusal naming the section
        and key at fault, not the log's line: the entry goes out as a
        webhook's event, and the line holds the file's path, a value, or a
        user's name (a key of [users], named by its section alone).
        """
        from pypid.config import load_config

        folder = self.mktemp()
        os.makedirs(folder)
        path = os.path.join(folder, "pypid.ini")
        said = []
        for text, told in (("[auth]\nread = nobody-at-all\n", "[auth] read"),
                           ("[users]\nalice = not-a-hash\n", "[users]")):
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            Parts([], MemoryReactorClock(), load_config=lambda: load_config(path),
                  reloaded=lambda *told: said.append(told)).reload()
            self.assertEqual(said.pop(), ("refused",
                                          f"{told}: refused; the server's log says why"))

        def unreadable():
            raise StartupError(f"{path}: cannot read the configuration file")
        Parts([], MemoryReactorClock(), load_config=unreadable,
              reloaded=lambda *told: said.append(told)).reload()
        self.assertEqual(said, [("refused",
                                 "the configuration: refused; the server's log says why")])
