"""
Tests for L{pypid.daemon.inherited}: the supervisor's sockets, opened for
its workers and never accepted on by it (a TCP line's a socket per worker
on one port), and a worker's endpoints adopting them, with a real reactor
on loopback; and the listeners a worker makes over them.
"""

import dataclasses
import os
import socket

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase

from pypid.config import load_config
from pypid.core.util.startup import StartupError
from pypid.daemon.inherited import WorkerSockets, adopted
from pypid.daemon.listeners import make_listeners
from pypid.daemon.socket_groups import Inherited, Sockets
from tests.harness.system import socket_path


class _Hello(Protocol):
    def connectionMade(self):
        self.transport.write(b"hello from the worker")
        self.transport.loseConnection()


def _read_all(port):
    """Connect to C{port} on loopback (in a thread) and read until closed."""
    from twisted.internet.threads import deferToThread

    def read():
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            chunks = []
            while chunk := s.recv(1024):
                chunks.append(chunk)
            return b"".join(chunks)
    return deferToThread(read)


async def _opened(case, count, *listen, overrides=()):
    """
    The L{Sockets} of C{listen} for C{count} workers, as L{WorkerSockets}
    opened them (closed at the end).
    """
    sockets = WorkerSockets(load_config(None, list(overrides), list(listen)), reactor, count)
    case.addCleanup(sockets.close)
    await sockets.open()
    return sockets.held


async def _adopt(case, sockets, factory=None):
    """
    Each socket adopted, answering with L{_Hello} (or C{factory}): a copy
    of its descriptor, as a worker's is (the endpoint closes the one it
    adopted).
    """
    ports = []
    for inherited in sockets:
        [endpoint] = adopted(reactor, [dataclasses.replace(inherited,
                                                    fileno=os.dup(inherited.fileno))]).values()
        port = await endpoint.listen(factory or Factory.forProtocol(_Hello))
        case.addCleanup(port.stopListening)
        ports.append(port)
    return ports


def _free_port(family):
    """A port free on loopback of C{family} now (C{https:} takes no port 0)."""
    with socket.socket(family) as sock:
        sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        return sock.getsockname()[1]


def _listens(inherited):
    """Whether C{inherited}'s socket listens."""
    with socket.socket(fileno=os.dup(inherited.fileno)) as sock:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


class _Counting(Factory):
    """Counts the connections it took."""

    def __init__(self, counts, number):
        self.counts = counts
        self.number = number

    def buildProtocol(self, addr):
        self.counts[self.number] += 1
        return _Hello()


class WorkerSocketsTests(TestCase):
    """The supervisor's sockets, adopted by workers in this process."""

    async def test_tcp_group(self):
        """
        A TCP line is a socket per worker on one port (a line asking for any
        port: the first's), and the kernel spreads connections over them.
        """
        sockets = await _opened(self, 2, "tcp:0:interface=127.0.0.1")
        first, second = sockets.for_worker(1), sockets.for_worker(2)
        self.assertNotEqual(first[0].fileno, second[0].fileno)
        self.assertEqual(first[0].family, socket.AF_INET)
        [port] = [g.port for g in sockets.groups]
        self.assertNotEqual(port, 0)
        self.assertEqual(sockets.for_worker(1), first)
        counts = {1: 0, 2: 0}
        for number, mine in ((1, first), (2, second)):
            await _adopt(self, mine, _Counting(counts, number))
        for _ in range(40):
            self.assertEqual(await _read_all(port), b"hello from the worker")
        self.assertTrue(counts[1] and counts[2], counts)

    async def test_tls_lines_grouped(self):
        """
        An C{https:} and an C{http-redirect:} line are TCP lines: a socket
        per worker on one port each; an IPv6 interface, on an C{https:} or
        a C{tcp:} line (Twisted's endpoint of both is TCP4's), makes an
        IPv6 group.
        """
        families = (socket.AF_INET, socket.AF_INET, socket.AF_INET6, socket.AF_INET6)
        try:
            ports = [_free_port(family) for family in families]
        except OSError as e:
            raise SkipTest(f"no IPv6 loopback here ({e.strerror})")
        tls = await _opened(
            self, 2, f"https:{ports[0]}:interface=127.0.0.1",
            f"http-redirect:{ports[1]}:interface=127.0.0.1", f"https:{ports[2]}:interface=\\:\\:1",
            overrides=[("tls", "certificate", "/nowhere/cert.pem"), ("tls", "key", "/nowhere/key.pem")])
        # (plain HTTP beside https: is refused: the tcp: line on its own)
        plain = await _opened(self, 2, f"tcp:{ports[3]}:interface=\\:\\:1")
        first = tls.for_worker(1) + plain.for_worker(1)
        second = tls.for_worker(2) + plain.for_worker(2)
        self.assertEqual([one.family for one in first], list(families))
        self.assertEqual([g.port for g in tls.groups] + [g.port for g in plain.groups], ports)
        for mine, theirs in zip(first, second, strict=True):
            self.assertNotEqual(mine.fileno, theirs.fileno)
            self.assertEqual(mine.description, theirs.description)

    async def test_ended(self):
        """
        A worker that ended has its socket closed, so the others take every
        connection meanwhile; a new one, on the same port, when it starts again.
        """
        sockets = await _opened(self, 2, "tcp:0:interface=127.0.0.1")
        [port] = [g.port for g in sockets.groups]
        before = sockets.for_worker(1)[0]
        await _adopt(self, sockets.for_worker(2))
        sockets.ended(1)
        for _ in range(10):
            self.assertEqual(await _read_all(port), b"hello from the worker")
        again = sockets.for_worker(1)[0]
        self.assertEqual([g.port for g in sockets.groups], [port])
        with socket.socket(fileno=os.dup(again.fileno)) as sock:
            self.assertEqual(sock.getsockname()[1], port)
        self.assertEqual(again.description, before.description)

    async def test_listens_once_accepting(self):
        """
        At the start only a group's first socket listens (connections wait
        for the first worker); the others listen once their workers accept,
        so no connection waits on a worker that is loading.
        """
        sockets = await _opened(self, 2, "tcp:0:interface=127.0.0.1")
        [port] = [g.port for g in sockets.groups]
        first, second = sockets.for_worker(1)[0], sockets.for_worker(2)[0]
        self.assertEqual((_listens(first), _listens(second)), (True, False))
        self.assertEqual(second.backlog, first.backlog)
        self.assertGreater(first.backlog, 0)
        counts = {1: 0, 2: 0}
        await _adopt(self, [first], _Counting(counts, 1))
        for _ in range(20):
            self.assertEqual(await _read_all(port), b"hello from the worker")
        self.assertEqual(counts, {1: 20, 2: 0})
        await _adopt(self, [second], _Counting(counts, 2))
        self.assertTrue(_listens(second))
        for _ in range(40):
            self.assertEqual(await _read_all(port), b"hello from the worker")
        self.assertTrue(counts[2], counts)

    async def test_restarted_worker_loading(self):
        """
        A worker started again takes no connection until it accepts, while
        another accepts; with none accepting, its socket listens at once.
        """
        sockets = await _opened(self, 2, "tcp:0:interface=127.0.0.1")
        [port] = [g.port for g in sockets.groups]
        counts = {1: 0, 2: 0}
        await _adopt(self, sockets.for_worker(1), _Counting(counts, 1))
        [ended] = await _adopt(self, sockets.for_worker(2), _Counting(counts, 2))
        await ended.stopListening()  # (its process ended: its copy is closed too)
        sockets.ended(2)
        again = sockets.for_worker(2)[0]
        self.assertFalse(_listens(again))
        for _ in range(20):
            self.assertEqual(await _read_all(port), b"hello from the worker")
        self.assertEqual(counts[2], 0)
        sockets.ended(1)
        sockets.ended(2)
        self.assertTrue(_listens(sockets.for_worker(2)[0]))
        self.assertFalse(_listens(sockets.for_worker(1)[0]))

    async def test_hung_worker_shut(self):
        """
        A worker's socket that listens and is never accepted on (its process
        hangs, holding it) is shut by the supervisor: the others take every
        connection from then on.
        """
        sockets = await _opened(self, 2, "tcp:0:interface=127.0.0.1")
        [port] = [g.port for g in sockets.groups]
        await _adopt(self, sockets.for_worker(1))
        hung = sockets.for_worker(2)[0]
        with socket.socket(fileno=os.dup(hung.fileno)) as held:
            held.listen(hung.backlog)
            sockets.shut(2)
            self.assertFalse(_listens(hung))
            for _ in range(20):
                self.assertEqual(await _read_all(port), b"hello from the worker")

    async def test_silent_worker(self):
        """
        A worker gone silent has its socket taken out of the group; when it
        runs again its port finds the socket shut and listens again, and it
        takes its share. The only socket listening is left in (connections
        wait for it rather than be refused).
        """
        sockets = await _opened(self, 2, "tcp:0:interface=127.0.0.1")
        [port] = [g.port for g in sockets.groups]
        counts = {1: 0, 2: 0}
        [first] = await _adopt(self, sockets.for_worker(1), _Counting(counts, 1))
        [second] = await _adopt(self, sockets.for_worker(2), _Counting(counts, 2))
        second.stopReading()  # (its reactor held)
        sockets.silent(2)
        self.assertFalse(_listens(sockets.for_worker(2)[0]))
        for _ in range(20):
            self.assertEqual(await _read_all(port), b"hello from the worker")
        self.assertEqual(counts[2], 0)
        second.startReading()  # (it runs again)
        for _ in range(3):
            await deferLater(reactor, 0.01)
        self.assertTrue(_listens(sockets.for_worker(2)[0]))
        for _ in range(40):
            self.assertEqual(await _read_all(port), b"hello from the worker")
        self.assertTrue(counts[2], counts)
        # (the first socket of a line that asked for any port, too: on its port again)
        first.stopReading()
        sockets.silent(1)
        first.startReading()
        for _ in range(3):
            await deferLater(reactor, 0.01)
        with socket.socket(fileno=os.dup(sockets.for_worker(1)[0].fileno)) as sock:
            self.assertEqual((sock.getsockname()[1], _listens(sockets.for_worker(1)[0])),
                             (port, True))
        sockets.ended(1)
        sockets.silent(2)
        self.assertTrue(_listens(sockets.for_worker(2)[0]), "the last one listening")

    async def test_shared(self):
        """Any other line (a Unix socket here) is one socket every worker accepts on."""
        sockets = await _opened(self, 2, f"unix:{socket_path(self)}")
        self.assertEqual(sockets.for_worker(1), sockets.for_worker(2))
        self.assertEqual(sockets.for_worker(1)[0].family, socket.AF_UNIX)
        self.assertEqual([g.port for g in sockets.groups], [])

    def test_shared_closed_by_the_lean_process(self):
        """
        The lean supervisor closes a shared Unix socket at its stop as
        the opener's port did: its file and its lock go, so the next start
        may bind.
        """
        path = socket_path(self)
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)
        sock.listen(5)
        taken = Sockets([f"unix:{path}"], [], [Inherited(f"unix:{path}", sock.detach(),
                                                         socket.AF_UNIX)])
        # (the lock Twisted's port keeps beside it, naming this process)
        os.symlink(str(os.getpid()), path + ".lock")
        self.assertTrue(os.path.exists(path))
        taken.close_shared()
        self.assertEqual((os.path.exists(path), os.path.lexists(path + ".lock"), taken.shared),
                         (False, False, []))

    async def test_port_taken(self):
        """A port another process holds is the line's start-up error."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            sockets = WorkerSockets(load_config(None, [], [f"tcp:{port}:interface=127.0.0.1"]),
                                    reactor, 2)
            with self.assertRaises(StartupError) as raised:
                await sockets.open()
            sockets.close()
        self.assertIn(f"Cannot listen on tcp:{port}:interface=127.0.0.1", str(raised.exception))

    def test_haproxy(self):
        """A C{haproxy:} line's adopted endpoint reads the PROXY header first."""
        endpoints = adopted(reactor, [Inherited("haproxy:tcp:8080", 7, socket.AF_INET),
                                      Inherited("tcp:8081", 8, socket.AF_INET)])
        self.assertEqual([type(endpoint).__name__ for endpoint in endpoints.values()],
                         ["_WrapperServerEndpoint", "AdoptedStreamServerEndpoint"])

    async def test_worker_listeners(self):
        """A worker's listeners are the inherited sockets, no port checked before."""
        sockets = await _opened(self, 1, "tcp:0:interface=127.0.0.1", "tcp6:0:interface=\\:\\:1")
        mine = sockets.for_worker(1)
        self.assertEqual([inherited.family for inherited in mine],
                         [socket.AF_INET, socket.AF_INET6])
        config = load_config(None, [], [s.description for s in mine])
        listeners, tls = make_listeners(config, reactor, object(), None, adopted(reactor, mine))
        self.assertIsNone(tls)
        self.assertEqual([listener.probe for listener in listeners], [None, None])
        self.assertEqual([type(listener.endpoint).__name__ for listener in listeners],
                         ["_Joining"] * 2)

    async def test_not_inherited(self):
        """
        A line the supervisor did not open (the file edited since the
        machine started) stops a worker's start with one line saying so.
        """
        sockets = await _opened(self, 1, "tcp:0:interface=127.0.0.1")
        config = load_config(None, [], ["tcp:8099:interface=127.0.0.1"])
        with self.assertRaises(StartupError) as raised:
            make_listeners(config, reactor, object(), None,
                           adopted(reactor, sockets.for_worker(1)))
        self.assertIn("'tcp:8099:interface=127.0.0.1' is not a socket the supervisor opened",
                      str(raised.exception))
