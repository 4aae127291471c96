"""
Tests for L{pypid.tap}: the command-line options and the composition root,
built on a L{MemoryReactorClock} so nothing listens, runs threads or sleeps;
and, in a fresh interpreter each, which libraries building the server
imports (L{LazyImportTests}).
"""

import json
import os
import subprocess
import sys
import textwrap
import time

import attrs
from twisted.application.service import IService
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from pypid.auth.factory import make_oidc_http, reloaded_oidc_http
from pypid.config import Config
from pypid.core.util.startup import StartupError
from pypid.daemon.container import Parts
from pypid.daemon.pools import ThreadPools
from pypid.sandbox.readme_sandbox import IDLE_TIMEOUT
from pypid.storage.base import snapshot_reading
from pypid.storage.folder import folder_scan
from pypid.tap import Options, makeService
from pypid.web.site import PypidSite
from tests.harness.distributions import make_wheel
from tests.harness.e2e import clean_env
from tests.harness.fakes import write_file
from tests.harness.tap import FakeThreadPool, fake_pools, site_of


def index_of(service):
    """The index the server serves."""
    return service.getServiceNamed("index").index


@attrs.define
class RecordingPort:
    """A listening port that remembers being closed."""

    port: int = 0
    interface: str = ""
    stopped: bool = False

    def getHost(self):
        """Where it listens (L{IListeningPort}), as it was asked."""
        return IPv4Address("TCP", self.interface or "0.0.0.0", self.port)

    def stopListening(self):
        """Remember the call."""
        self.stopped = True


class PortRecordingReactor(MemoryReactorClock):
    """
    A memory reactor that keeps the ports it hands out, and the ports the
    start-up checked (L{check_port}, given to L{makeService}).
    """

    def __init__(self):
        super().__init__()
        self.ports = []
        #: C{(port, interface)} of each port the start-up checked
        self.probes = []

    def check_port(self, port, interface):
        """Remember the start-up's check of a port (L{ListenCheck}): it is free."""
        self.probes.append((port, interface))

    def listenTCP(self, port, factory, backlog=50, interface=""):
        """Log the call, as L{MemoryReactorClock} does, and return a L{RecordingPort}."""
        super().listenTCP(port, factory, backlog, interface)
        self.ports.append(RecordingPort(port, interface))
        return self.ports[-1]


class ThreadedReactor(PortRecordingReactor):
    """A memory reactor whose other threads are the test's own."""

    def callFromThread(self, f, *args, **kwargs):
        """Call C{f} at once: the caller is the reactor's thread."""
        f(*args, **kwargs)


def refuse_port(port, interface):
    """Refuse to bind a port, as L{bind_for_a_moment} does when it is in use."""
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

    def test_worker_tells_each_refusal_once(self):
        """
        A worker reads the configuration in force at a reload, and a
        refusal of its supervisor's check refuses the reload too, once: a
        C{SIGHUP} sent to the worker itself (C{systemctl kill}), or a
        refusal made before the worker started, reads the configuration
        in force again.
        """
        from pypid.daemon.machine import WorkerRole
        from pypid.machine.config_in_force import ConfigInForce
        in_force = ConfigInForce.create("")
        self.addCleanup(in_force.close)
        in_force.write("[pypid]\nthreads = 5\n", refused="", refusals=1)
        options = Options()
        options["config"] = write_file(os.path.abspath(self.mktemp()), b"[pypid]\n")
        options["worker"] = WorkerRole(2, 2, None, (), in_force)
        options._read(reloading=False)
        self.assertEqual(options.reread().server.threads, 5)
        in_force.write("[pypid]\nthreads = 5\n", refused="[pypid] workers", refusals=2)
        e = self.assertRaises(StartupError, options.reread)
        self.assertEqual(e.named, "[pypid] workers")
        self.assertEqual(options.reread().server.threads, 5)
        in_force.write("[pypid]\nthreads = 6\n", refusals=2)
        self.assertEqual(options.reread().server.threads, 6)

    def test_errors_name_the_command_line(self):
        """
        Issue 59, finding 11: an error at start-up about a value of C{--set}
        or C{--listen} (or of the environment) names it, not the file.
        """
        from pypid.daemon.listeners import _endpoint
        from pypid.web.identity.identity_part import make_sessions
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        broken = write_file(os.path.join(folder, "sessions.json"), b"nonsense")
        config = self.parse("--set", f"auth.sessions={broken}")["config_obj"]
        e = self.assertRaises(StartupError, make_sessions, config, MemoryReactorClock(), None)
        self.assertTrue(str(e).startswith(f"--set auth.sessions: [auth] sessions: {broken}"),
                        str(e))
        config = self.parse("--listen", "systemd:domain=INET:index=7")["config_obj"]
        e = self.assertRaises(StartupError, _endpoint, config, MemoryReactorClock(),
                              "systemd:domain=INET:index=7", {})
        self.assertTrue(str(e).startswith("--listen: [pypid] listen: "), str(e))
        self.assertEqual(config.where("auth", "sessions"), "<defaults>: [auth] sessions")
        from pypid.config import load_config
        config = load_config(None, environ={"PYPID_AUTH_SESSIONS": broken})
        self.assertEqual(config.where("auth", "sessions"),
                         "environment PYPID_AUTH_SESSIONS: [auth] sessions")

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

    def service(self, *argv, reactor=None, check_port=None):
        """
        Build the service and stop it at the end of the test if it was
        started; the ports checked at start-up are the reactor's C{probes}.
        """
        reactor = reactor or self.reactor
        service = makeService(self.options(*argv), reactor=reactor,
                              pools=fake_pools(*self.pools),
                              check_port=check_port or reactor.check_port)

        def stop():
            if service.running:
                return service.stopService()
        self.addCleanup(stop)
        return service

    def test_builds(self):
        """makeService returns the service tree, not yet started, with nothing listening."""
        service = self.service("--listen", "tcp:8081", "--listen", r"tcp6:8082:interface=\:\:1")
        self.assertTrue(IService.providedBy(service))
        self.assertIsInstance(service, Parts)
        self.assertIsInstance(site_of(service), PypidSite)
        self.assertFalse(service.running)
        self.assertEqual(self.reactor.tcpServers, [])
        self.assertEqual(len(self.pools), 2)
        self.assertFalse(any(p.started for p in self.pools))

    def test_site_settings(self):
        """The site takes its upload limit from the configuration and spools into the storage."""
        service = self.service("--set", "pypid.max_upload_size=5M")
        self.assertEqual(site_of(service).max_upload_size, 5 << 20)
        self.assertEqual(site_of(service).spool_dir, os.path.join(self.folder, "packages", ".pypid", "tmp"))

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
            self.assertIs(factory, site_of(service))

    def test_loads_storage(self):
        """Start-up loads what the storage holds into the index, then saves a snapshot."""
        filename, data = make_wheel("holy-grail", "1.0")
        write_file(os.path.join(self.folder, "packages", filename), data)
        service = self.service("--listen", "tcp:8081")
        service.startService()
        self.successResultOf(service.ready)
        self.assertEqual([r.filename for r in index_of(service).records()], [filename])
        saved = snapshot_reading.read(os.path.join(self.folder, "index.json"))
        self.assertEqual(list(saved.records), [filename])

    def test_loads_snapshot(self):
        """
        A snapshot left by an earlier run is used and reconciled with
        storage; written again when storage had to be read against it (the
        first run kept records beside the files after it), and not when
        storage was found as it describes.
        """
        # (the three starts come within a second: with the margin of a change
        # time, a second, the last would read the first's records again)
        self.patch(folder_scan, "CHANGE_TIME_MARGIN", 0.0)
        filename, data = make_wheel("holy-grail", "1.0")
        write_file(os.path.join(self.folder, "packages", filename), data)
        path = os.path.join(self.folder, "index.json")

        def run(port):
            # (storage compares the snapshot's time with the files': real time)
            time.sleep(0.02)
            self.reactor.advance(time.time() - self.reactor.seconds())
            service = self.service("--listen", f"tcp:{port}")
            with capturedLogs() as events:
                service.startService()
            self.successResultOf(service.ready)
            self.assertEqual([r.filename for r in index_of(service).records()], [filename])
            self.successResultOf(service.stopService())
            return events

        run(8081)
        events = run(8082)
        self.assertIn("from the snapshot; storage is checked against it now",
                      [e.get("how") for e in events])
        written = os.stat(path).st_ino
        events = run(8083)
        self.assertIn("from the snapshot; storage is checked against it now",
                      [e.get("how") for e in events])
        # Nothing changed since: the snapshot is not written again.
        self.assertEqual(os.stat(path).st_ino, written)
        self.assertNotIn("Snapshot{of} saved: {files}", [e.get("log_format") for e in events])

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
        self.assertEqual(index_of(second).records(), [])
        self.assertIn("from storage", [e.get("how") for e in events])
        self.assertTrue([e for e in events if "describes" in e.get("log_format", "")])

    def test_idle_renderer_stopped(self):
        """
        The description sandbox's children are stopped on the reactor's
        clock once idle for IDLE_TIMEOUT (issue 43).
        """
        reactor = ThreadedReactor()
        service = self.service("--listen", "tcp:8081", reactor=reactor)
        service.startService()
        sandbox = service.getServiceNamed("readme-sandbox")
        readme = "# Grail\n\n```python\nseek()\n```\n"
        self.assertFalse(sandbox.render(readme, "text/markdown").fell_back)
        [child] = sandbox._idle
        reactor.advance(IDLE_TIMEOUT - 1)
        self.assertIsNone(child.process.poll())
        reactor.advance(1)
        self.assertIsNotNone(child.process.poll())
        self.assertEqual(sandbox._idle, [])

    def test_stop_order(self):
        """On stop, listening ends before the last snapshot is taken."""
        service = self.service("--listen", "tcp:8081")
        service.startService()
        self.successResultOf(service.ready)
        seen = []
        writer = service.getServiceNamed("snapshot")
        real = writer.stopService
        listeners = service.getServiceNamed("listeners").listeners

        def stop_snapshot():
            seen.append([listener.running for listener in listeners])
            return real()
        writer.stopService = stop_snapshot
        self.successResultOf(service.stopService())
        self.assertEqual(seen, [[False]])

    def test_stop(self):
        """Stopping stops listening, saves the snapshot and stops the thread pools."""
        service = self.service("--listen", "tcp:8081")
        service.startService()
        self.successResultOf(service.ready)
        self.assertEqual([p.stopped for p in self.reactor.ports], [False])
        index_of(service).remove("gone_thing-1.0.tar.gz")
        self.successResultOf(service.stopService())
        self.assertFalse(service.running)
        self.assertEqual([p.stopped for p in self.reactor.ports], [True])
        self.assertTrue(all(not p.started and p.stops == 1 for p in self.pools))
        saved = snapshot_reading.read(os.path.join(self.folder, "index.json"))
        self.assertEqual(saved.tombstones, ("gone_thing-1.0.tar.gz",))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_named_indexes_served(self):
        """
        makeService serves C{[index:NAME]} sections, C{[upstream:NAME]} and
        upstream bases of named indexes (issue 26): each named upstream is a
        part, and so is its state, read back before the listeners open.
        """
        path = write_file(os.path.join(self.folder, "pypid.ini"), b"[index:release]\n")
        service = self.service("--config", path)
        self.assertIn("index:release", [name for name, _ in service._parts])
        path = write_file(os.path.join(self.folder, "pypid.ini"),
                          b"[upstream]\nurl = http://127.0.0.1:9/simple/\nmode = redirect\n"
                          b"[index:release]\nbases = upstream:default, upstream:public\n"
                          b"[upstream:public]\n"
                          b"url = http://127.0.0.1:9/simple/\nmode = cache\n")
        names = [name for name, _ in self.service("--config", path)._parts]
        self.assertLess(names.index("upstream"), names.index("upstream:public"))
        self.assertLess(names.index("index:release"), names.index("upstream-state:public"))
        self.assertLess(names.index("upstream-state:public"), names.index("listeners"))

    def test_bad_endpoint(self):
        """An endpoint string Twisted cannot parse stops with one line naming the key."""
        e = self.assertRaises(SystemExit, makeService, self.options("--listen", "nonsense:1:2"),
                              reactor=self.reactor)
        message = str(e.code)
        self.assertIn("[pypid] listen: invalid endpoint 'nonsense:1:2'", message)
        # (the value came from --listen, not the file: issue 59)
        self.assertTrue(message.startswith("pypid: --listen: [pypid] listen: "), message)

    def test_cannot_listen(self):
        """
        A port that cannot be opened stops the reactor, with one line, before
        anything is written (issue 60): not the storage's folder, not the
        snapshot, not its running mark.
        """
        reactor = PortRecordingReactor()
        reactor.running = True
        service = self.service("--listen", "tcp:8081", reactor=reactor, check_port=refuse_port)
        with capturedLogs() as events:
            service.startService()
        self.assertTrue(reactor.hasStopped)
        critical = [formatEvent(e) for e in events if e["log_level"] == LogLevel.critical]
        self.assertEqual(critical, ["Cannot listen on tcp:8081: Couldn't listen on any:8081: "
                                    "[Errno 98] Address already in use; another program "
                                    "listens there: choose another address with --listen "
                                    "(twistd -n pypid --listen tcp:8081) or [pypid] listen"])
        self.assertFalse(os.path.exists(self.folder))
        self.flushLoggedErrors()

    def test_cannot_listen_before_running(self):
        """A port found taken before the reactor runs stops it once it runs (twistd's order)."""
        reactor = PortRecordingReactor()
        service = self.service("--listen", "tcp:8081", reactor=reactor, check_port=refuse_port)
        service.startService()
        self.assertTrue(service.failed)
        self.assertFalse(reactor.hasStopped)
        reactor.run()
        self.assertTrue(reactor.hasStopped)
        self.flushLoggedErrors()

    def test_ports_checked_and_let_go(self):
        """Each TCP port is bound and let go first; then the listeners bind it for good."""
        service = self.service("--listen", "tcp:8081", "--listen", "tcp:0")
        service.startService()
        self.successResultOf(service.ready)
        self.assertEqual(self.reactor.probes, [(8081, "")])
        self.assertEqual(sorted(p.port for p in self.reactor.ports), [0, 8081])

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


#: What a server without the sections that use them must not import, by the
#: section that does (measured import time on the 2-core test machine).
LAZY = {
    "oidc": ("joserfc",),                       # 19 ms: [oidc] issuers' tokens
    "http": ("treq", "pypid.http.client"),      # 11 ms: the issuers' keys' client
    "metrics": ("prometheus_client",),          # 13 ms: the first scrape of /metrics
    "upstream": ("pypid.upstream.fetch", "pypid.upstream.cache",  # 24 ms: [upstream]
                 "pypid.upstream.requirements", "packaging.requirements", "tomllib"),
}

#: Run by a fresh interpreter: build the server as C{twistd pypid} does
#: (L{makeService}, real reactor, nothing started) with the C{--set}s given
#: as JSON in argv[1], and say which of argv[2]'s modules were imported;
#: then scrape C{/metrics} once, and read a JWKS, saying again.
_PROBE = textwrap.dedent("""
    import base64, json, sys
    from twisted.internet import reactor
    from pypid.daemon.server import build_service
    from pypid.tap import Options, makeService
    sets, watched = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    def loaded():
        return sorted(name for name in watched if name in sys.modules)
    options = Options()
    options.parseOptions([arg for item in sets for arg in ("--set", item)])
    service = makeService(options, reactor=reactor)
    report = {"built": loaded()}

    from treq.testing import StubTreq
    stub = StubTreq(service.getServiceNamed("web").web.site.resource)
    answers = []
    stub.get("http://127.0.0.1/metrics").addCallback(
        lambda r: r.content().addCallback(lambda body: answers.append((r.code, body))))
    stub.flush()
    code, body = answers[0]
    report["metrics"] = [code, "pypid_index_files 0.0" in body.decode()]
    report["scraped"] = loaded()

    from cryptography.hazmat.primitives.asymmetric import ec
    from pypid.auth.issuer_keys import import_jwks
    numbers = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    def b64(n):
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()
    jwk = {"kty": "EC", "crv": "P-256", "kid": "k1", "x": b64(numbers.x), "y": b64(numbers.y)}
    report["jwks"] = sorted(import_jwks({"keys": [jwk]}))
    report["read"] = loaded()
    print(json.dumps(report))
""")


class LazyImportTests(SynchronousTestCase):
    """
    A server started without C{[oidc]} issuers, C{[upstream]} or a scrape
    of C{/metrics} never imports the libraries only those need (issue 14:
    the time to readiness); with the section, they load and work.
    """

    def probe(self, *sets):
        """Run L{_PROBE} in the venv's interpreter with C{sets}; its report."""
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        sets = (f"storage.path={folder}/packages", f"pypid.snapshot={folder}/index.json",
                *sets)
        watched = sorted(name for names in LAZY.values() for name in names)
        done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(sets),
                               json.dumps(watched)], cwd=folder, env=clean_env(folder),
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout)

    def test_default(self):
        """
        The default configuration imports none of them; the first scrape of
        C{/metrics} loads C{prometheus_client} and answers the counters,
        and reading a JWKS loads joserfc.
        """
        report = self.probe()
        self.assertEqual(report["built"], [])
        self.assertEqual(report["metrics"], [200, True])
        # (the probe's StubTreq imported treq itself)
        self.assertEqual(report["scraped"], ["prometheus_client", "treq"])
        self.assertEqual(report["jwks"], ["k1"])
        self.assertEqual(report["read"], ["joserfc", "prometheus_client", "treq"])

    def test_sections(self):
        """
        With C{[oidc] issuers} the issuers' client is built (treq), and with
        C{[upstream]} its proxy (fetch, cache, requirements) at start; the
        token library waits for the first JWKS all the same.
        """
        report = self.probe("oidc.issuers=ci https://token.ci.example",
                            "upstream.mode=cache", "upstream.url=http://127.0.0.1:9/simple/")
        expected = sorted(LAZY["http"] + LAZY["upstream"])
        self.assertEqual(report["built"], expected)
        self.assertEqual(report["metrics"], [200, True])
        self.assertEqual(report["read"], sorted(expected + ["joserfc", "prometheus_client"]))


_SUPERVISOR_PROBE = textwrap.dedent("""
    import json, sys
    from twisted.internet.testing import MemoryReactorClock
    from pypid.tap import Options, makeService
    options = Options()
    options.parseOptions(["--set", "pypid.workers=2", "--set", "storage.path=packages"])
    parts = makeService(options, MemoryReactorClock(), check_port=lambda port, interface: None)
    print(json.dumps([[name for name, _ in parts._parts],
                      sorted(m for m in sys.modules if m.startswith(("pypid.web", "pypid.daemon.server",
                                                                     "pypid.webhooks", "klein",
                                                                     "pypid.state.indexes")))]))
""")


class SupervisorImportsTests(SynchronousTestCase):
    """A machine's supervisor answers nothing: it imports none of the server's parts."""

    def test_supervisor(self):
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        done = subprocess.run([sys.executable, "-c", _SUPERVISOR_PROBE], cwd=folder,
                              env=clean_env(folder), capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        parts, loaded = json.loads(done.stdout)
        self.assertEqual(parts[-1], "handover")
        self.assertEqual(loaded, [])


class OIDCClientTests(SynchronousTestCase):
    """The treq client of trusted publishing, made only when it can be used."""

    def config(self, *sets):
        """The configuration of the defaults and C{sets}."""
        options = Options()
        options.parseOptions([arg for item in sets for arg in ("--set", item)])
        return options["config_obj"]

    def test_none_without_issuers(self):
        """Without issuers or a CA bundle, there is no client; with an issuer, one."""
        reactor = MemoryReactorClock()
        self.assertIsNone(make_oidc_http(self.config(), reactor))
        with_issuer = self.config("oidc.issuers=ci https://token.ci.example")
        self.assertTrue(callable(make_oidc_http(with_issuer, reactor).get))

    def test_bad_bundle_without_issuers(self):
        """A C{[pypid] ca_bundle} that cannot be read stops start-up, issuers or not."""
        path = write_file(os.path.abspath(self.mktemp()), b"no certificate here")
        e = self.assertRaises(StartupError, make_oidc_http,
                              self.config(f"pypid.ca_bundle={path}"), MemoryReactorClock())
        self.assertIn("[pypid] ca_bundle", str(e))

    def test_reload(self):
        """
        A reload that adds the first issuer gives trusted publishing a
        client; one that keeps the client's settings keeps its client.
        """
        reactor = MemoryReactorClock()
        default = self.config()
        with_issuer = self.config("oidc.issuers=ci https://token.ci.example")
        other_issuer = self.config("oidc.issuers=ci https://other.ci.example")
        self.assertIsNone(reloaded_oidc_http(default, default, reactor))
        self.assertIsNotNone(reloaded_oidc_http(default, with_issuer, reactor))
        self.assertIsNone(reloaded_oidc_http(with_issuer, other_issuer, reactor))
        self.assertIsNone(reloaded_oidc_http(with_issuer, default, reactor))


class ListenerURLTests(SynchronousTestCase):
    """Issue 60: the start log says the URL to open, not only the endpoint."""

    def test_url_of(self):
        from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

        from pypid.daemon.listeners import url_of
        for description, address, url in (
                ("tcp:8080:interface=127.0.0.1", IPv4Address("TCP", "127.0.0.1", 8080),
                 "http://127.0.0.1:8080/"),
                ("tcp:8080", IPv4Address("TCP", "0.0.0.0", 8080), "http://127.0.0.1:8080/"),
                ("https:8443", IPv4Address("TCP", "192.0.2.7", 8443), "https://192.0.2.7:8443/"),
                ("http-redirect:80", IPv4Address("TCP", "0.0.0.0", 80), "http://127.0.0.1:80/"),
                ("tcp6:8080", IPv6Address("TCP", "::", 8080), "http://[::1]:8080/"),
                ("tcp6:8080", IPv6Address("TCP", "2001:db8::1", 8080),
                 "http://[2001:db8::1]:8080/")):
            self.assertEqual(url_of(description, address), url, description)
        self.assertIsNone(url_of("unix:/run/pypid.sock", UNIXAddress(b"/run/pypid.sock")))
        # (the name the certificate holds, where the bound address would
        # fail a browser's check)
        self.assertEqual(url_of("https:8443", IPv4Address("TCP", "127.0.0.1", 8443),
                                "https://pypi.internal.example:8443/"),
                         "https://pypi.internal.example:8443/")

    def test_logged(self):
        """A listener's line says its URL (on a memory reactor: the port it was given)."""
        from twisted.internet.endpoints import TCP4ServerEndpoint
        from twisted.internet.protocol import Factory

        from pypid.daemon.listeners import ListenerService
        reactor = MemoryReactorClock()
        service = ListenerService(TCP4ServerEndpoint(reactor, 8080, interface="127.0.0.1"),
                                  "tcp:8080:interface=127.0.0.1", Factory())
        with capturedLogs() as events:
            service.startService()
        lines = [formatEvent(e) for e in events]
        self.assertIn("Listening on tcp:8080:interface=127.0.0.1: open "
                      "http://127.0.0.1:8080/", lines)
