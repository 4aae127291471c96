"""
TLS in memory (they were L{tests.unit.test_tls}' and L{tests.unit.web.server.test_channel}'s):
one test CA per process (L{shared_ca}) and its RSA server certificate,
a loaded L{pypid.tls.ServerTLS} (L{loaded}), and a client connected to a
site over real TLS through memory transports (L{tls_connection}).
"""

import atexit
import shutil
import tempfile
import time
from functools import cache

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import FakeTransport, connect
from zope.interface import alsoProvides

from pypid.tls import ServerTLS
from tests.harness.tlsca import TestCA


@cache
def shared_ca():
    """One CA for the whole module, in a folder removed at exit."""
    folder = tempfile.mkdtemp(prefix="pypid-tls-tests-")
    atexit.register(shutil.rmtree, folder, True)
    return TestCA(folder)


@cache
def rsa_server():
    """One RSA server certificate for the tests that only read it."""
    return shared_ca().issue("rsa-server", kind="rsa")


def now_clock():
    """A clock at the current time, so fresh certificates are valid."""
    clock = Clock()
    clock.advance(time.time())
    return clock


def loaded(files, chain=True, certificate=None):
    """A loaded L{ServerTLS} for issued C{files}."""
    tls = ServerTLS(certificate or files.certificate, files.key,
                    files.chain if chain else None, now_clock())
    tls.load()
    return tls


#: The client address of the in-memory connections.
PEER = IPv4Address("TCP", "127.0.0.1", 1234)


class _Client(Protocol):
    """The client's side of a connection: what it received, and how the connection ended."""

    def __init__(self):
        self.received = b""
        self.lost = None

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lost = reason


def tls_connection(site, clock):
    """
    Connect a client to C{site} over real TLS in memory (L{ServerTLS} on the
    server's side, a client trusting the test CA), the handshake done.

    @return: C{(client, server_io, pump)}: the client's L{_Client}, the
        server's L{FakeTransport} and the L{IOPump} that moves the bytes.
    """
    server = TLSMemoryBIOFactory(loaded(rsa_server()), False, site, clock).buildProtocol(PEER)
    with open(shared_ca().root_path, "rb") as f:
        root = Certificate.loadPEM(f.read())
    client = TLSMemoryBIOFactory(optionsForClientTLS("localhost", trustRoot=root), True,
                                 Factory.forProtocol(_Client), clock).buildProtocol(PEER)
    server_io = FakeTransport(server, isServer=True, peerAddress=PEER)
    # As a TCP transport does (FakeTransport has the methods but does not
    # say so): the TLS layer then provides it too, and HTTPChannel registers
    # itself as the TLS layer's producer, as it does in a real server.
    alsoProvides(server_io, IPushProducer)
    pump = connect(server, server_io, client, FakeTransport(client, isServer=False),
                   greet=True, clock=clock)
    return client.wrappedProtocol, server_io, pump


def started_site(case, clock, resource, limit=None):
    """
    A started L{pypid.web.site.PypidSite} of C{resource} on C{clock} (the
    site's guards, over a TLS layer or not), taking at most C{limit}
    connections per address when given, its spool in C{case}'s temporary
    folder.
    """
    import os

    from pypid.web.server.channel import ConnectionCounter
    from pypid.web.site import PypidSite, SiteRules
    spool = os.path.abspath(case.mktemp())
    os.makedirs(spool)
    extra = {} if limit is None else {"counter": ConnectionCounter(limit=limit)}
    site = PypidSite(resource, SiteRules(1 << 20), spool, reactor=clock, **extra)
    site.startFactory()
    case.addCleanup(site.stopFactory)
    return site
