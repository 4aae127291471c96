"""
Tests for L{pypid.daemon.machine}: a worker's role from its environment,
the command the supervisor starts it with, its signals, its ready line
and its watch on the supervisor, C{SIGHUP} for the machine, and the
supervisor's parts.
"""

import fcntl
import io
import json
import os
import signal

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from pypid.config import load_config
from pypid.core.util.startup import StartupError
from pypid.daemon.handover import worker_args
from pypid.daemon.lean import CONFIG_FD, LANE_FD, RING_FD, WORKER_ENV, worker_command
from pypid.daemon.machine import (
    FoldersPart,
    Heartbeat,
    ReadyLine,
    SupervisorWatch,
    WorkerRole,
    build_supervisor,
    note_usr1,
    process_title,
    worker_signals,
)
from pypid.daemon.reload_check import main as reload_check
from pypid.daemon.socket_groups import Inherited
from pypid.daemon.workers import BEAT
from pypid.jobs.run import run_at_once
from pypid.machine.config_in_force import ConfigInForce
from pypid.machine.ring import ChangeRing
from pypid.storage.folder.local import LocalStorage, StorageError
from tests.harness.tls import own_files, shared_ca


class _Signals:
    """The L{signal} module's part a worker's handlers are installed with."""

    SIGHUP, SIGTERM, SIGINT, SIG_IGN = signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIG_IGN
    SIGUSR1, SIG_DFL = signal.SIGUSR1, signal.SIG_DFL
    SIG_UNBLOCK = signal.SIG_UNBLOCK

    def __init__(self):
        self.handlers = {}
        self.unblocked = []

    def signal(self, signum, handler):
        self.handlers[signum] = handler

    def getsignal(self, signum):
        return self.handlers.get(signum, signal.SIG_DFL)

    def pthread_sigmask(self, how, mask):
        assert how == signal.SIG_UNBLOCK
        # (only once its handler is in)
        assert all(signum in self.handlers for signum in mask), mask
        self.unblocked.extend(mask)


class _Reactor(MemoryReactorClock):
    """A memory reactor whose calls from other threads run at once, and that stops once."""

    def __init__(self):
        super().__init__()
        self.stops = 0
        self.readers_added = []

    def callFromThread(self, f, *args):
        f(*args)

    def stop(self):
        from twisted.internet.error import ReactorNotRunning
        if self.stops:
            raise ReactorNotRunning()
        self.stops += 1

    def addReader(self, reader):
        self.readers_added.append(reader)
        super().addReader(reader)


class WorkerRoleTests(SynchronousTestCase):
    """A worker's role, from what its supervisor put in its environment."""

    def test_none(self):
        """A process of its own has no role."""
        self.assertIsNone(WorkerRole.from_environ({}))

    def test_role(self):
        """The role names the worker, the machine's count, its ring and its sockets."""
        ring = ChangeRing.create(slots=4, slot_size=64)
        self.addCleanup(ring.close)
        ring.set_workers(1, 3)
        in_force = ConfigInForce.create("[pypid]\nthreads = 4\n")
        self.addCleanup(in_force.close)
        lane = ChangeRing.create(slots=4, slot_size=64)
        self.addCleanup(lane.close)
        given = {"number": 2, "count": 3, "ring": ring.fileno(), "config": in_force.fileno(),
                 "sockets": [["tcp:8080", 5, 2, 50]]}
        # (a supervisor of before the lane gives none: the ring carries its topics)
        before = WorkerRole.from_environ({WORKER_ENV: json.dumps(given)})
        self.addCleanup(before.ring.close)
        self.addCleanup(before.config.close)
        self.assertIsNone(before.lane)
        role = WorkerRole.from_environ({WORKER_ENV: json.dumps({**given,
                                                                "lane": lane.fileno()})})
        self.addCleanup(role.ring.close)
        self.addCleanup(role.config.close)
        self.addCleanup(role.lane.close)
        role.lane.announce(b"x y")
        self.assertEqual((lane.latest(), ring.latest()), (1, 0))
        self.assertEqual((role.number, role.count), (2, 3))
        self.assertEqual(role.sockets, (Inherited("tcp:8080", 5, 2, 50),))
        self.assertEqual(role.ring.workers(), (1, 3))
        role.ring.announce(b"f x")
        self.assertEqual(ring.latest(), 1)
        self.assertEqual(role.config.read().text, "[pypid]\nthreads = 4\n")

    def test_titles(self):
        """C{ps} names the supervisor and each worker; a server of one process keeps its own."""
        lone, machine = (load_config(None, [("pypid", "workers", n)], []) for n in ("1", "2"))
        role = WorkerRole(2, 2, None, (), None)
        arguments = ("--config", "etc/pypid.ini")
        self.assertEqual([process_title(None, lone, arguments),
                          process_title(None, machine, arguments),
                          process_title(role, machine, ())],
                         [None, "pypid: supervisor --config etc/pypid.ini", "pypid: worker 2"])

    def test_not_a_role(self):
        """A value the supervisor did not write stops the start with one line naming it."""
        for text in ("{", '{"number": 1}', json.dumps({"number": 1, "count": 2, "ring": 999,
                                                       "sockets": []})):
            with self.assertRaises(StartupError) as raised:
                WorkerRole.from_environ({WORKER_ENV: text})
            self.assertTrue(str(raised.exception).startswith(f"{WORKER_ENV}: "), text)


class WorkerCommandTests(SynchronousTestCase):
    """How the supervisor starts a worker."""

    def test_command(self):
        """
        The same C{twistd pypid} with the same options, in the foreground,
        without a pid file, logging to its output; told its role, its
        descriptors numbered from L{RING_FD}.
        """
        environ = {"PATH": "/usr/bin"}
        worker = {"executable": "/usr/bin/python3",
                  "args": worker_args("/usr/bin/python3", ("--config", "etc/pypid.ini")),
                  "env": environ}
        command = worker_command(worker, 2, 3, 40, 41, 43,
                                 [Inherited("tcp:8080:interface=127.0.0.1", 42, 2, 50)])
        self.assertEqual(command.executable, "/usr/bin/python3")
        self.assertEqual(command.args[:3], ("/usr/bin/python3", "-c",
                                            "from twisted.scripts.twistd import run; run()"))
        self.assertEqual(command.args[3:], (
            "--nodaemon", "--pidfile=", "--logger=pypid.daemon.machine.worker_log",
            "pypid", "--config", "etc/pypid.ini"))
        self.assertEqual(command.inherited, {RING_FD: 40, CONFIG_FD: 41, LANE_FD: 43,
                                             LANE_FD + 1: 42})
        self.assertEqual(set(command.env), {"PATH", WORKER_ENV})
        self.assertEqual(json.loads(command.env[WORKER_ENV]), {
            "number": 2, "count": 3, "ring": RING_FD, "config": CONFIG_FD, "lane": LANE_FD,
            "sockets": [["tcp:8080:interface=127.0.0.1", LANE_FD + 1, 2, 50]]})


class WorkerProcessTests(SynchronousTestCase):
    """A worker's signals, ready line and watch on its supervisor."""

    def test_signals(self):
        """C{SIGTERM} stops the worker once, however often it comes; C{SIGINT} is ignored."""
        reactor, signals = _Reactor(), _Signals()
        worker_signals(reactor, signals)
        self.assertIs(signals.handlers[signal.SIGINT], signal.SIG_IGN)
        signals.handlers[signal.SIGTERM](signal.SIGTERM, None)
        signals.handlers[signal.SIGTERM](signal.SIGTERM, None)
        self.assertEqual(reactor.stops, 1)

    def test_usr1_noted(self):
        """
        C{SIGUSR1}, whose default stops a process, is logged and the process
        goes on; a handler twistd installed (the rotation of its log file) is kept.
        """
        from twisted.logger import globalLogPublisher
        reactor, signals = _Reactor(), _Signals()
        note_usr1(reactor, signals)
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        signals.handlers[signal.SIGUSR1](signal.SIGUSR1, None)
        self.assertEqual(reactor.stops, 0)
        self.assertIn("Received SIGUSR1", " ".join(e.get("log_format", "") for e in events))
        rotation = object()
        signals.handlers[signal.SIGUSR1] = rotation
        note_usr1(reactor, signals)
        self.assertIs(signals.handlers[signal.SIGUSR1], rotation)
        # (a worker starts with it blocked: let through, either way)
        self.assertEqual(signals.unblocked, [signal.SIGUSR1, signal.SIGUSR1])

    def test_ready_line(self):
        """
        Once it listens, the worker says it serves, one line on its
        descriptor, that it is ready once it is, and that it drains as it
        stops; the heartbeat, its first part, beats there every L{BEAT}
        seconds from the start (while it loads too) until it stops.
        """
        from twisted.internet.defer import Deferred
        from twisted.internet.task import Clock
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        self.addCleanup(os.close, write)
        ready, clock = Deferred(), Clock()
        heart, line = Heartbeat(clock, write), ReadyLine(lambda: ready, write)
        heart.startService()
        os.set_blocking(read, False)
        clock.pump([BEAT] * 2)
        self.assertEqual(os.read(read, 100), b"alive\n" * 3, "at once, and while it loads")
        line.startService()
        self.assertEqual(os.read(read, 100), b"serving\n")
        clock.pump([BEAT] * 3)
        self.assertEqual(os.read(read, 100), b"alive\n" * 3)
        ready.callback(None)
        self.assertEqual(os.read(read, 100), b"ready\n")
        line.stopService()
        self.assertEqual(os.read(read, 100), b"draining\n")
        clock.pump([BEAT])
        self.assertEqual(os.read(read, 100), b"alive\n", "it beats while it drains")
        heart.stopService()
        clock.advance(5)
        with self.assertRaises(BlockingIOError):
            os.read(read, 100)

    def test_beats_never_block(self):
        """A supervisor that stopped reading never holds the worker: the beats are dropped."""
        from twisted.internet.task import Clock
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        self.addCleanup(os.close, write)
        clock = Clock()
        heart = Heartbeat(clock, write)
        heart.startService()
        self.addCleanup(heart.stopService)
        size = fcntl.fcntl(write, fcntl.F_GETPIPE_SZ)
        clock.pump([BEAT] * (size // len(b"alive\n") + 10))
        # (the pipe full: every beat after it dropped, none cut)
        said = os.read(read, size + 100)
        self.assertGreater(len(said), size * 0.9)
        self.assertEqual(said, b"alive\n" * (len(said) // len(b"alive\n")))

    def test_supervisor_ends(self):
        """
        The supervisor's end of the worker's input closes (it ended, even
        by C{kill -9}): the worker stops, whether the reactor reads the end
        or sees it hang up.
        """
        for hang_up in (False, True):
            read, write = os.pipe()
            self.addCleanup(os.close, read)
            reactor = _Reactor()
            watch = SupervisorWatch(reactor, read)
            watch.startService()
            self.assertEqual(reactor.readers_added, [watch])
            watch.doRead()
            self.assertEqual(reactor.stops, 0, "nothing to read yet")
            os.close(write)
            if hang_up:
                reactor.removeReader(watch)
                watch.connectionLost(None)
            else:
                watch.doRead()
            self.assertEqual(reactor.stops, 1)
            self.assertFalse(watch.running)
            watch.stopService()


class SupervisorPartsTests(SynchronousTestCase):
    """The supervisor's parts, and the check of C{SIGHUP} its lean process runs."""

    def _checked(self, before, after, *options):
        """
        What the check of C{SIGHUP} makes of the file C{after} on the
        configuration in force C{before}: its status, what is in force
        then, and the refusal it records for the workers.
        """
        in_force = ConfigInForce.create(before)
        self.addCleanup(in_force.close)
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write(after)
        given = {"config": path, "set": list(options), "listen": []}
        err = io.StringIO()
        status = reload_check([json.dumps(given)], fd=in_force.fileno(), err=err)
        self.assertEqual(bool(status), bool(err.getvalue()), "a refusal says why")
        held = in_force.read()
        return status, held.text, held.refused

    def test_hangup(self):
        """
        A configuration the check takes is the one in force (what every
        worker reads when the signal is passed on, and a worker started
        after); one it cannot read, or that changes a key only a restart
        takes, is refused and leaves the one in force, recording the
        sections and keys at fault (never the log's line) for the workers.
        """
        self.assertEqual(self._checked("[pypid]\n", "[pypid]\npage_cache_size = 5\n"),
                         (0, "[pypid]\npage_cache_size = 5\n", None))
        self.assertEqual(self._checked("[pypid]\n", "[pypid]\npage_cache_size = many\n"),
                         (1, "[pypid]\n", "[pypid] page_cache_size"))
        self.assertEqual(self._checked("[pypid]\nworkers = 2\n", "[pypid]\nworkers = 3\n"),
                         (1, "[pypid]\nworkers = 2\n", "[pypid] workers"))
        self.assertEqual(self._checked("[pypid]\n", "[pypid\n"), (1, "[pypid]\n", ""))

    def test_hangup_tls(self):
        """
        The [tls] files are taken at a SIGHUP when they can be served (what
        a worker started after serves, whatever the disk holds by then);
        when they cannot, the configuration is taken still, the files' texts
        in force are kept, and the check says why (the supervisor logs it).
        """
        files, chain = own_files(self)
        text = (f"[pypid]\nlisten = https:8443\n[tls]\ncertificate = {files.certificate}\n"
                f"key = {files.key}\nchain = {chain}\n")
        in_force = ConfigInForce.create(text)
        self.addCleanup(in_force.close)
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace("[tls]", "page_cache_size = 5\n[tls]"))

        def check():
            err = io.StringIO()
            given = {"config": path, "set": [], "listen": []}
            status = reload_check([json.dumps(given)], fd=in_force.fileno(), err=err)
            return status, err.getvalue(), in_force.read()
        status, said, taken = check()
        self.assertEqual((status, said), (0, ""))
        with open(files.key, encoding="latin-1") as f:
            self.assertEqual(taken.held[files.key], f.read())
        self.assertEqual(len(taken.held), 3)
        with open(files.key, "w") as f:
            f.write("not a key\n")
        status, said, kept = check()
        self.assertEqual(status, 0)
        self.assertIn("Cannot reload TLS, still using the certificate loaded before: "
                      f"cannot use the TLS key {files.key}", said)
        self.assertEqual(kept.held, taken.held)
        self.assertIn("page_cache_size = 5\n", kept.text)
        # a configuration refused takes the files all the same, as one
        # process reads them again whatever becomes of its configuration
        renewed, _ = own_files(self)
        with open(renewed.key, encoding="latin-1") as f:
            new_key = f.read()
        with open(files.key, "w", encoding="latin-1") as f:
            f.write(new_key)
        with open(files.certificate, "w", encoding="latin-1") as f, \
                open(renewed.certificate, encoding="latin-1") as g:
            f.write(g.read())
        with open(path, encoding="utf-8") as f:
            edited = f.read().replace("[pypid]\n", "[pypid]\nworkers = 3\n")
        with open(path, "w", encoding="utf-8") as f:
            f.write(edited)
        status, said, refused = check()
        self.assertEqual((status, refused.refused, refused.refusals), (1, "[pypid] workers", 1))
        self.assertEqual(refused.held[files.key], new_key)
        self.assertEqual(refused.text, kept.text)

    def test_folders(self):
        """
        The supervisor takes every hosted folder: another server cannot use
        it meanwhile; what the last run's workers passed each other is gone.
        """
        folder = os.path.abspath(self.mktemp())
        passed = os.path.join(folder, ".pypid", "machine", "pages")
        os.makedirs(passed)
        part = FoldersPart([LocalStorage(folder, run_at_once, MemoryReactorClock())])
        self.successResultOf(part.startService())
        self.assertFalse(os.path.exists(os.path.dirname(passed)))
        other = LocalStorage(folder, run_at_once, MemoryReactorClock())
        self.failureResultOf(other.prepare(), StorageError)
        part.stopService()
        self.successResultOf(other.prepare())
        other.close()

    def test_promotions_taken_back(self):
        """
        A promotion the last run's crash interrupted is taken back by the
        supervisor, before any worker starts (a worker starting again
        would take back another's promotion under way: workers do not).
        """
        from pypid.core.indexes.promotion import PromotionJournal
        folder = os.path.abspath(self.mktemp())
        storage = LocalStorage(folder, run_at_once, MemoryReactorClock())
        self.successResultOf(storage.prepare())
        journal = PromotionJournal("p-1", "staging", ())
        self.successResultOf(storage.keep_journal(journal.name, journal.to_bytes()))
        storage.close()
        part = FoldersPart([LocalStorage(folder, run_at_once, MemoryReactorClock())])
        self.successResultOf(part.startService())
        self.addCleanup(part.stopService)
        self.assertEqual(self.successResultOf(part._folders[0].journals()), {})

    def test_tls_refused(self):
        """
        [tls] files no worker could serve (a key not the certificate's)
        stop the machine's start with one line, before anything is opened.
        """
        from tests.harness.tls import own_files
        files, chain = own_files(self)
        stray = shared_ca().stray_key(folder=os.path.dirname(files.key))
        config = load_config(None, [
            ("pypid", "workers", "2"), ("pypid", "listen", "https:8443"),
            ("storage", "path", os.path.abspath(self.mktemp())),
            ("tls", "certificate", files.certificate), ("tls", "key", stray)], [])
        with self.assertRaises(StartupError) as raised:
            build_supervisor(config, MemoryReactorClock(), [], {},
                             check_port=lambda port, interface: None)
        self.assertEqual(str(raised.exception),
                         "cannot listen on the https: lines of [pypid] listen: the TLS key "
                         f"{stray} does not match the certificate {files.certificate}")
        self.assertFalse(os.path.exists(config.storage.path))

    def test_parts(self):
        """
        The supervisor's parts, in order: the ports checked, where the data
        is, the folders and sockets taken, then the hand-over to the lean
        process, which is given the workers' command and every descriptor
        it keeps; each hosted index's folder among the folders.
        """
        config = load_config(None, [
            ("pypid", "workers", "2"), ("storage", "path", os.path.abspath(self.mktemp())),
            ("index:release", "bases", "")], [])
        executed = []
        parts = build_supervisor(config, MemoryReactorClock(), ["--config", "x.ini"],
                                 {"PATH": "/usr/bin", "NOTIFY_SOCKET": "@n"},
                                 check_port=lambda port, interface: None,
                                 options={"config": "x.ini", "set": [["a", "b", "c"]],
                                          "listen": []},
                                 twistd={"pidfile": "p.pid", "logfile": "-"},
                                 executable="/usr/bin/python3",
                                 exec_=lambda path, args: executed.append((path, args)))
        self.assertEqual([name for name, _ in parts._parts],
                         ["listen-check", "start-notes", "folders", "sockets", "handover"])
        folders = parts.getServiceNamed("folders")._folders
        self.assertEqual([os.path.relpath(f.root, config.storage.path) for f in folders],
                         [".", os.path.join(".indexes", "release")])
        parts.startService()
        self.addCleanup(parts.stopService)
        [(path, args)] = executed
        self.assertEqual((path, args[:3]), ("/usr/bin/python3",
                                            ["/usr/bin/python3", "-m", "pypid.daemon.lean"]))
        with open(f"/proc/self/fd/{args[3]}", "rb") as f:
            handed = json.load(f)
        os.close(int(args[3]))
        self.assertEqual((handed["count"], handed["listen"], handed["notify"],
                          handed["pidfile"], handed["log"]),
                         (2, ["tcp:8080:interface=127.0.0.1"], "\0n", os.path.abspath("p.pid"),
                          None))
        self.assertEqual(handed["worker"]["args"][-3:], ["pypid", "--config", "x.ini"])
        self.assertNotIn("NOTIFY_SOCKET", handed["worker"]["env"])
        self.assertEqual(json.loads(handed["reload"]["args"][-1]),
                         {"config": os.path.abspath("x.ini"), "set": [["a", "b", "c"]],
                          "listen": []})
        # (every descriptor it keeps outlives the exec)
        kept = [handed["ring"], handed["config"], handed["lane"], *handed["locks"],
                *handed["groups"][0]["members"].values()]
        self.assertEqual(len(handed["locks"]), 2)
        self.assertTrue(all(os.get_inheritable(fd) for fd in kept))
