"""
TLS in memory (they were L{tests.unit.test_tls}' and L{tests.unit.web.server.test_channel}'s):
one test CA per process (L{shared_ca}) and its RSA server certificate,
a loaded L{pypid.tls.ServerTLS} (L{loaded}), a handshake between two
pyOpenSSL connections over memory BIOs (L{handshake}), and a client
connected to a site over real TLS through memory transports
(L{tls_connection}).
"""

import atexit
import datetime
import os
import shutil
import tempfile
import time
from functools import cache

from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import FakeTransport, connect
from zope.interface import alsoProvides

from pypid.tls import ServerTLS
from pypid.web.server.tls_layer import ClosingTLSFactory
from tests.harness.fakes import run_now
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
                    files.chain if chain else None, now_clock(), run_now)
    tls.load()
    return tls


def own_files(case, valid=None):
    """
    A server certificate issued into a folder of C{case}'s own, with its
    chain copied there (a test may replace any of the three files).

    @param valid: C{(not_before, not_after)} offsets from now, as timedeltas.
    @return: C{(files, chain path)}.
    """
    folder = os.path.abspath(case.mktemp())
    now = datetime.datetime.now(datetime.UTC)
    files = shared_ca().issue("server", kind="ec", folder=folder,
                              valid=None if valid is None else (now + valid[0], now + valid[1]))
    chain = shutil.copy(files.chain, os.path.join(folder, "chain.pem"))
    return files, chain


def client_context(minimum=None, maximum=None, ciphers=None, verify=True):
    """
    A client context trusting only the test root CA.

    @param ciphers: an OpenSSL cipher string; security level 0 is added so
        that the client itself offers old protocols and weak suites, and the
        refusal can only come from the server.
    """
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if minimum is not None:
        context.set_min_proto_version(minimum)
    if maximum is not None:
        context.set_max_proto_version(maximum)
    context.set_cipher_list(((ciphers or "DEFAULT") + ":@SECLEVEL=0").encode("ascii"))
    if verify:
        context.load_verify_locations(shared_ca().root_path)
        context.set_verify(SSL.VERIFY_PEER, lambda conn, cert, errno, depth, ok: bool(ok))
    return context


def _move(source, destination):
    try:
        data = source.bio_read(1 << 16)
    except SSL.WantReadError:
        return 0
    destination.bio_write(data)
    return len(data)


def handshake(tls, context, host=b"localhost"):
    """
    Run a TLS handshake between C{tls}'s server side and a client on
    C{context}, in memory.

    @return: C{(client, server, errors)}: the two connections and
        C{{"client": SSL.Error, "server": SSL.Error}} for the sides that failed.
    """
    server = tls.serverConnectionForTLS(None)
    server.set_accept_state()
    client = SSL.Connection(context, None)
    client.set_tlsext_host_name(host)
    client.set_connect_state()
    errors = {}
    for _ in range(50):
        for name, connection in (("client", client), ("server", server)):
            if name in errors:
                continue
            try:
                connection.do_handshake()
            except SSL.WantReadError:
                pass
            except SSL.Error as e:
                errors[name] = e
        if not _move(client, server) + _move(server, client):
            break
    return client, server, errors


def exchange(client, server, data=b"ping"):
    """Send C{data} from the client to the server over an established connection."""
    client.send(data)
    _move(client, server)
    return server.recv(1 << 16)


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
    Connect a client to C{site} over real TLS in memory (the https:
    listeners' layer and L{ServerTLS} on the server's side, a client
    trusting the test CA), the handshake done.

    @return: C{(client, server_io, pump)}: the client's L{_Client}, the
        server's L{FakeTransport} and the L{IOPump} that moves the bytes.
    """
    server = ClosingTLSFactory(loaded(rsa_server()), False, site, clock).buildProtocol(PEER)
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
    from pypid.web.server.connections import ConnectionCounter
    from pypid.web.site import PypidSite
    from pypid.web.web_inputs import SiteSettings
    spool = os.path.abspath(case.mktemp())
    os.makedirs(spool)
    extra = {} if limit is None else {"counter": ConnectionCounter(limit=limit)}
    site = PypidSite(resource, SiteSettings(1 << 20), spool, reactor=clock, **extra)
    site.startFactory()
    case.addCleanup(site.stopFactory)
    return site
