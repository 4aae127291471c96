"""
Tests for L{pypid.tap}: the command-line options and the composition root,
built on a L{MemoryReactorClock} so nothing listens, runs threads or sleeps.
"""

import os

import attrs
from twisted.application.service import IService
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from pypid.config import Config
from pypid.service import PypidService
from pypid.storage import snapshot
from pypid.tap import Options, ThreadPools, makeService
from pypid.web.site import PypidSite
from tests.distributions import make_wheel
from tests.fakes import run_now, write_file


@attrs.define
class FakeThreadPool:
    """A thread pool that starts no thread; the tests only watch it start and stop."""

    minthreads: int = 0
    maxthreads: int = 0
    name: str = ""
    started: bool = False
    stops: int = 0

    def start(self):
        """Say the pool is started."""
        self.started = True

    def stop(self):
        """Say the pool is stopped."""
        self.started = False
        self.stops += 1


def fake_pools(io=None, hashing=None):
    """L{ThreadPools} that start no thread and do the blocking work at once."""
    return ThreadPools(io or FakeThreadPool(name="io"), hashing or FakeThreadPool(name="hash"),
                       run_now)


@attrs.define
class RecordingPort:
    """A listening port that remembers being closed."""

    stopped: bool = False

    def stopListening(self):
        """Remember the call."""
        self.stopped = True


class PortRecordingReactor(MemoryReactorClock):
    """A memory reactor that keeps the ports it hands out."""

    def __init__(self):
        super().__init__()
        self.ports = []

    def listenTCP(self, port, factory, backlog=50, interface=""):
        """Log the call, as L{MemoryReactorClock} does, and return a L{RecordingPort}."""
        super().listenTCP(port, factory, backlog, interface)
        self.ports.append(RecordingPort())
        return self.ports[-1]


class RefusingReactor(MemoryReactorClock):
    """A memory reactor on which every port is taken."""

    def listenTCP(self, port, factory, backlog=50, interface=""):
        """Refuse, as a real reactor does when the port is in use."""
        raise CannotListenError(interface, port, OSError(98, "Address already in use"))


class OptionsTests(SynchronousTestCase):
    """Tests for L{Options}."""

    def parse(self, *argv):
        """Parse C{argv} and return the options."""
        options = Options()
        options.parseOptions(list(argv))
        return options

    def test_defaults(self):
        """Without arguments the embedded defaults are loaded."""
        options = self.parse()
        self.assertIsNone(options["config"])
        self.assertIsInstance(options["config_obj"], Config)
        self.assertEqual(options["config_obj"].server.listen, ("tcp:8080:interface=127.0.0.1",))

    def test_listen_repeatable(self):
        """Each C{--listen} adds an endpoint, and together they replace the configured ones."""
        options = self.parse("--listen", "tcp:8081", "--listen=unix:/tmp/pypid.sock")
        self.assertEqual(options["listen"], ["tcp:8081", "unix:/tmp/pypid.sock"])
        self.assertEqual(options["config_obj"].server.listen, ("tcp:8081", "unix:/tmp/pypid.sock"))

    def test_set_repeatable(self):
        """Each C{--set} overrides one key."""
        options = self.parse("--set", "pypid.threads=8", "--set", "auth.read=authenticated")
        self.assertEqual(options["set"], [("pypid", "threads", "8"),
                                          ("auth", "read", "authenticated")])
        config = options["config_obj"]
        self.assertEqual(config.server.threads, 8)
        self.assertEqual(config.auth.read, "authenticated")

    def test_bad_set(self):
        """A C{--set} that is not C{section.key=value} is a usage error."""
        e = self.assertRaises(usage.UsageError, self.parse, "--set", "threads=8")
        self.assertIn("expected section.key=value", str(e))

    def test_config_file(self):
        """C{--config} reads the file, and the options override it."""
        path = write_file(os.path.abspath(self.mktemp()), b"[pypid]\nthreads = 2\nlisten = tcp:1\n")
        options = self.parse("--config", path, "--set", "pypid.threads=3")
        config = options["config_obj"]
        self.assertEqual(config.source, path)
        self.assertEqual(config.server.threads, 3)
        self.assertEqual(config.server.listen, ("tcp:1",))

    def test_bad_config(self):
        """A bad configuration stops with one line naming the file, section and key."""
        path = write_file(os.path.abspath(self.mktemp()), b"[pypid]\nthreads = many\n")
        e = self.assertRaises(SystemExit, self.parse, "-c", path)
        message = str(e.code)
        self.assertEqual(message, f"pypid: {path}: [pypid] threads: "
                                  "expected a whole number from 1 to 64")

    def test_missing_config(self):
        """A configuration file that does not exist stops with one line."""
        path = os.path.abspath(self.mktemp())
        e = self.assertRaises(SystemExit, self.parse, "--config", path)
        self.assertTrue(str(e.code).startswith(f"pypid: {path}: cannot read"))
        self.assertNotIn("\n", str(e.code))

    def test_bad_override_value(self):
        """An override with a bad value stops like a bad file does."""
        e = self.assertRaises(SystemExit, self.parse, "--set", "auth.read=nobody")
        self.assertIn("[auth] read: expected one of", str(e.code))


class MakeServiceTests(SynchronousTestCase):
    """Tests for L{makeService} on a memory reactor, with blocking work done at once."""

    def setUp(self):
        self.pools = [FakeThreadPool(name="io"), FakeThreadPool(name="hash")]
        self.folder = os.path.abspath(self.mktemp())
        self.reactor = PortRecordingReactor()

    def options(self, *argv):
        """Options that keep every path in this test's folder."""
        options = Options()
        options.parseOptions([
            "--set", f"storage.path={self.folder}/packages",
            "--set", f"pypid.snapshot={self.folder}/index.json",
            *argv,
        ])
        return options

    def service(self, *argv, reactor=None):
        """Build the service and stop it at the end of the test if it was started."""
        service = makeService(self.options(*argv), reactor=reactor or self.reactor,
                              pools=fake_pools(*self.pools))

        def stop():
            if service.running:
                return service.stopService()
        self.addCleanup(stop)
        return service

    def test_builds(self):
        """makeService returns the service tree, not yet started, with nothing listening."""
        service = self.service("--listen", "tcp:8081", "--listen", r"tcp6:8082:interface=\:\:1")
        self.assertTrue(IService.providedBy(service))
        self.assertIsInstance(service, PypidService)
        self.assertIsInstance(service.site, PypidSite)
        self.assertFalse(service.running)
        self.assertEqual(self.reactor.tcpServers, [])
        self.assertEqual(len(self.pools), 2)
        self.assertFalse(any(p.started for p in self.pools))

    def test_site_settings(self):
        """The site takes its upload limit from the configuration and spools into the storage."""
        service = self.service("--set", "pypid.max_upload_size=5M")
        self.assertEqual(service.site.max_upload_size, 5 << 20)
        self.assertEqual(service.site.spool_dir, os.path.join(self.folder, "packages", ".pypid", "tmp"))

    def test_pool_size(self):
        """New pools: the I/O pool has as many threads as configured, none started."""
        pools = ThreadPools.create(self.reactor, 7)
        self.assertEqual((pools.io.max, pools.hashing.max), (7, 2))
        self.assertFalse(pools.io.started or pools.hashing.started)

    def test_listens_after_start(self):
        """Once started and loaded, the service listens on each endpoint with the site."""
        service = self.service("--listen", "tcp:8081", "--listen", "tcp:8082:interface=127.0.0.2")
        service.startService()
        self.successResultOf(service.ready)
        self.assertTrue(all(p.started for p in self.pools))
        listening = [(port, interface) for port, _, _, interface in self.reactor.tcpServers]
        self.assertEqual(sorted(listening), [(8081, ""), (8082, "127.0.0.2")])
        for _, factory, _, _ in self.reactor.tcpServers:
            self.assertIs(factory, service.site)

    def test_loads_storage(self):
        """Start-up loads what the storage holds into the index, then saves a snapshot."""
        filename, data = make_wheel("holy-grail", "1.0")
        write_file(os.path.join(self.folder, "packages", filename), data)
        service = self.service("--listen", "tcp:8081")
        service.startService()
        self.successResultOf(service.ready)
        self.assertEqual([r.filename for r in service.index.records()], [filename])
        saved = snapshot.read(os.path.join(self.folder, "index.json"))
        self.assertEqual(list(saved.records), [filename])

    def test_loads_snapshot(self):
        """A snapshot left by an earlier run is used and reconciled with storage."""
        filename, data = make_wheel("holy-grail", "1.0")
        write_file(os.path.join(self.folder, "packages", filename), data)
        first = self.service("--listen", "tcp:8081")
        first.startService()
        self.successResultOf(first.stopService())
        path = os.path.join(self.folder, "index.json")
        written = os.stat(path).st_ino
        second = self.service("--listen", "tcp:8082")
        with capturedLogs() as events:
            second.startService()
        self.successResultOf(second.ready)
        self.assertEqual([r.filename for r in second.index.records()], [filename])
        self.assertIn("from the snapshot and storage", [e.get("how") for e in events])
        # Nothing changed since: the snapshot is not written again.
        self.assertEqual(os.stat(path).st_ino, written)
        self.assertNotIn("Snapshot saved: {count} files", [e.get("log_format") for e in events])

    def test_snapshot_of_other_storage(self):
        """A snapshot that describes another storage folder is not used."""
        filename, data = make_wheel("holy-grail", "1.0")
        write_file(os.path.join(self.folder, "packages", filename), data)
        first = self.service("--listen", "tcp:8081")
        first.startService()
        self.successResultOf(first.stopService())
        os.makedirs(os.path.join(self.folder, "other"))
        second = self.service("--listen", "tcp:8082",
                              "--set", f"storage.path={self.folder}/other")
        with capturedLogs() as events:
            second.startService()
        self.successResultOf(second.ready)
        self.assertEqual(second.index.records(), [])
        self.assertIn("from storage", [e.get("how") for e in events])
        self.assertTrue([e for e in events if "describes" in e.get("log_format", "")])

    def test_stop_order(self):
        """On stop, listening ends before the last snapshot is taken."""
        service = self.service("--listen", "tcp:8081")
        service.startService()
        self.successResultOf(service.ready)
        seen = []
        snapshot_service = service._snapshot_service
        real = snapshot_service.stopService

        def stop_snapshot():
            seen.append([listener.running for listener in service._listeners])
            return real()
        snapshot_service.stopService = stop_snapshot
        self.successResultOf(service.stopService())
        self.assertEqual(seen, [[False]])

    def test_stop(self):
        """Stopping stops listening, saves the snapshot and stops the thread pools."""
        service = self.service("--listen", "tcp:8081")
        service.startService()
        self.successResultOf(service.ready)
        self.assertEqual([p.stopped for p in self.reactor.ports], [False])
        service.index.remove("gone_thing-1.0.tar.gz")
        self.successResultOf(service.stopService())
        self.assertFalse(service.running)
        self.assertEqual([p.stopped for p in self.reactor.ports], [True])
        self.assertTrue(all(not p.started and p.stops == 1 for p in self.pools))
        saved = snapshot.read(os.path.join(self.folder, "index.json"))
        self.assertEqual(saved.tombstones, ("gone_thing-1.0.tar.gz",))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_bad_endpoint(self):
        """An endpoint string Twisted cannot parse stops with one line naming the key."""
        e = self.assertRaises(SystemExit, makeService, self.options("--listen", "nonsense:1:2"),
                              reactor=self.reactor)
        message = str(e.code)
        self.assertIn("[pypid] listen: invalid endpoint 'nonsense:1:2'", message)
        self.assertTrue(message.startswith("pypid: <defaults>: "))

    def test_cannot_listen(self):
        """A port that cannot be opened stops the reactor."""
        reactor = RefusingReactor()
        reactor.running = True
        service = self.service("--listen", "tcp:8081", reactor=reactor)
        service.startService()
        self.assertTrue(reactor.hasStopped)
        self.flushLoggedErrors()

    def test_load_failure(self):
        """
        An index that cannot be loaded (storage path is a file) stops the
        reactor with one critical line naming the folder, and no traceback.
        """
        write_file(os.path.join(self.folder, "packages"), b"not a folder")
        self.reactor.running = True
        service = self.service("--listen", "tcp:8081")
        with capturedLogs() as events:
            service.startService()
        self.assertTrue(self.reactor.hasStopped)
        self.assertEqual(self.reactor.tcpServers, [])
        self.assertNoResult(service.ready)
        self.assertTrue(service.failed)
        critical = [formatEvent(e) for e in events if e["log_level"] == LogLevel.critical]
        self.assertEqual(len(critical), 1)
        self.assertIn("cannot use", critical[0])
        self.assertIn(os.path.join(self.folder, "packages"), critical[0])
        self.assertFalse([e for e in events if "log_failure" in e])
