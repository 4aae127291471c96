"""
Tests for L{pypid.daemon.inherited}: the supervisor's sockets, opened for
its workers and never accepted on by it, and a worker's endpoints adopting
them, with a real reactor on loopback; and the listeners a worker makes
over them.
"""

import socket

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from pypid.config import load_config
from pypid.daemon.inherited import adopted, open_for_workers
from pypid.daemon.listeners import make_listeners


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


class InheritedTests(TestCase):
    """The supervisor's sockets, adopted by a worker in the same process."""

    def config(self, *listen):
        return load_config(None, [], list(listen))

    async def test_opened_then_adopted(self):
        """
        Each line's socket is opened listening, the supervisor accepting on
        none; a worker's endpoint of it answers the connections.
        """
        opened = await open_for_workers(self.config("tcp:0:interface=127.0.0.1"), reactor)
        [(inherited, port)] = opened
        self.addCleanup(port.stopListening)
        self.assertEqual(inherited.description, "tcp:0:interface=127.0.0.1")
        self.assertEqual(inherited.family, socket.AF_INET)
        number = port.getHost().port
        [endpoint] = adopted(reactor, [inherited]).values()
        worker_port = await endpoint.listen(Factory.forProtocol(_Hello))
        self.addCleanup(worker_port.stopListening)
        self.assertEqual(await _read_all(number), b"hello from the worker")

    async def test_worker_listeners(self):
        """A worker's listeners are the inherited sockets, no port checked before."""
        opened = await open_for_workers(
            self.config("tcp:0:interface=127.0.0.1", "tcp6:0:interface=\\:\\:1"), reactor)
        for _, port in opened:
            self.addCleanup(port.stopListening)
        self.assertEqual([inherited.family for inherited, _ in opened],
                         [socket.AF_INET, socket.AF_INET6])
        sockets = [inherited for inherited, _ in opened]
        config = self.config(*(s.description for s in sockets))
        listeners, tls = make_listeners(config, reactor, object(), None,
                                        adopted(reactor, sockets))
        self.assertIsNone(tls)
        self.assertEqual([listener.probe for listener in listeners], [None, None])
        self.assertEqual([type(listener.endpoint).__name__ for listener in listeners],
                         ["AdoptedStreamServerEndpoint"] * 2)
