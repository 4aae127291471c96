"""
L{pypid.http.public_only}: a host no one named is connected to at public
addresses only, checked at the resolution the connection uses (so DNS
cannot move it afterwards), and a named one at whatever address it has.
"""

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IHostnameResolver
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import URI, Agent, BrowserLikePolicyForHTTPS, readBody
from twisted.web.error import SchemeNotSupported
from zope.interface import implementer

from pypid.core.access.addresses import is_public_address
from pypid.http.client import KeptEndpoints
from pypid.http.public_only import NotPublic, PublicOnlyPool


@implementer(IHostnameResolver)
class TableResolver:
    """Resolves names from a table, at once; counts the lookups."""

    def __init__(self, table):
        self.table = table
        self.lookups = 0

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None,
                        transportSemantics="TCP"):
        self.lookups += 1
        receiver.resolutionBegan(None)
        for address in self.table.get(hostName, ()):
            kind = IPv6Address if ":" in address else IPv4Address
            receiver.addressResolved(kind("TCP", address, portNumber))
        receiver.resolutionComplete()
        return receiver


class PublicAddressTests(SynchronousTestCase):
    """L{is_public_address}: the public internet only."""

    def test_addresses(self):
        """Loopback, private, link-local, shared, reserved and their IPv6 wrappings are not."""
        for address in ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
                        "2002:5db8:d70e::1", "64:ff9b::5db8:d70e"):
            self.assertTrue(is_public_address(address), address)
        for address in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1",
                        "169.254.169.254", "100.64.0.1", "0.0.0.0", "192.0.2.1",
                        "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd00::1",
                        "::ffff:127.0.0.1", "::ffff:169.254.169.254", "2002:7f00:1::1",
                        "64:ff9b::a01:203", "2001:db8::1", "ff02::1", "files.example", ""):
            self.assertFalse(is_public_address(address), address)

    def test_every_ipv6_form(self):
        """
        Every IPv6 spelling of an address that is not public is not: the
        deprecated IPv4-compatible and site-local forms, IPv4-translated,
        local-use NAT64, whatever IPv4 address they carry.
        """
        table = {
            "::127.0.0.1": False, "::8.8.8.8": False, "::ffff:0:7f00:1": False,
            "::ffff:0:808:808": False, "64:ff9b:1::a00:1": False, "64:ff9b:1::808:808": False,
            "fec0::1": False, "feff::1": False, "::ffff:10.0.0.1": False,
            "64:ff9b::7f00:1": False, "2002:a00:1::1": False, "2001:0:4136:e378:8000:63bf:80ff:fffe": False,
            "64:ff9b::808:808": True, "2002:808:808::1": True, "2606:4700::1111": True,
            "[2606:4700::1111]": False,
        }
        for address, public in table.items():
            self.assertEqual(is_public_address(address), public, address)


class EndpointTests(SynchronousTestCase):
    """L{KeptEndpoints} with named hosts: the endpoints of the upstream's agent."""

    TABLE = {"files.example": ["93.184.215.14"],
             "inside.example": ["10.0.0.7"],
             "both.example": ["93.184.215.14", "10.0.0.7"],
             "metadata.example": ["169.254.169.254"],
             "six.example": ["::ffff:127.0.0.1"],
             "127.0.0.1": ["127.0.0.1"]}

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.resolver = TableResolver(self.TABLE)
        self.reactor.nameResolver = self.resolver
        self.named = {("http", "inside.example", 8080)}
        self.endpoints = KeptEndpoints(
            self.reactor, BrowserLikePolicyForHTTPS(), 5.0,
            named=lambda scheme, host, port: (scheme, host, port) in self.named)

    def connect(self, url):
        endpoint = self.endpoints.endpointForURI(URI.fromBytes(url.encode()))
        return endpoint.connect(Factory.forProtocol(Protocol))

    def test_public_host(self):
        """A host at a public address is connected to at that address."""
        d = self.connect("http://files.example/f/x.whl")
        self.assertNoResult(d)
        [(host, port, *_)] = self.reactor.tcpClients
        self.assertEqual((host, port), ("93.184.215.14", 80))

    def test_public_host_over_tls(self):
        """Over https too: the TLS wraps the checked connection."""
        d = self.connect("https://files.example/f/x.whl")
        self.assertNoResult(d)
        [(host, port, *_)] = self.reactor.tcpClients
        self.assertEqual((host, port), ("93.184.215.14", 443))

    def test_private_hosts_refused(self):
        """
        A host with any address that is not public is refused before any
        connection, naming the host and the address.
        """
        for name, address in (("inside.example", "10.0.0.7"), ("both.example", "10.0.0.7"),
                              ("metadata.example", "169.254.169.254"),
                              ("six.example", "::ffff:127.0.0.1"),
                              ("127.0.0.1", "127.0.0.1")):
            for scheme in ("http", "https"):
                failure = self.failureResultOf(self.connect(f"{scheme}://{name}/x.whl"),
                                               NotPublic)
                self.assertEqual(str(failure.value),
                                 f"{address} is not a public address" if name == address
                                 else f"{name} resolves to {address}, not a public address")
        self.assertEqual(self.reactor.tcpClients, [])

    def test_named_host(self):
        """A host named (on its port) is connected to at whatever address it has."""
        d = self.connect("http://inside.example:8080/x.whl")
        self.assertNoResult(d)
        [(host, port, *_)] = self.reactor.tcpClients
        self.assertEqual((host, port), ("10.0.0.7", 8080))
        # (on another port it is not named: checked like any host)
        self.failureResultOf(self.connect("http://inside.example:8081/x.whl"), NotPublic)

    def test_each_connection_resolves(self):
        """
        Every connection is checked at its own resolution: a name that moves
        to a private address after one connection is refused at the next.
        """
        self.connect("http://files.example/a.whl")
        self.TABLE = dict(self.TABLE, **{"files.example": ["127.0.0.1"]})
        self.resolver.table = self.TABLE
        self.failureResultOf(self.connect("http://files.example/b.whl"), NotPublic)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.assertEqual(self.resolver.lookups, 2)

    def test_other_schemes(self):
        """Only http and https are connected."""
        self.assertRaises(SchemeNotSupported, self.endpoints.endpointForURI,
                          URI.fromBytes(b"ftp://files.example/x"))


class PoolTests(SynchronousTestCase):
    """
    L{PublicOnlyPool}: which hosts are named is asked at every request, so
    a connection kept from when its host was named is not used once it is
    not (the request connects again, under the rule in force), and is used
    again once it is named again; one made at public addresses is good
    under any rule.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.reactor.nameResolver = TableResolver({"127.0.0.1": ["127.0.0.1"],
                                                   "files.example": ["93.184.215.14"]})
        self.named = {("http", "127.0.0.1", 8080)}

        def named(scheme, host, port):
            return (scheme, host, port) in self.named
        self.agent = Agent.usingEndpointFactory(
            self.reactor, KeptEndpoints(self.reactor, BrowserLikePolicyForHTTPS(), 5.0, named),
            PublicOnlyPool(self.reactor, named))
        self.transports = []

    def get(self, url):
        """
        GET C{url}, a new connection made on a L{StringTransport}, answered
        C{200 ok} with its body read (the connection goes back to the pool):
        the body, and the transport that carried the request.
        """
        d = self.agent.request(b"GET", url.encode())
        for host, port, factory, *_ in self.reactor.tcpClients[len(self.transports):]:
            peer = IPv4Address("TCP", host, port)
            transport = StringTransport(peerAddress=peer)
            protocol = factory.buildProtocol(peer)
            protocol.makeConnection(transport)
            self.transports.append((transport, protocol))
        [(transport, protocol)] = [(t, p) for t, p in self.transports if t.value()]
        transport.clear()
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        body = self.successResultOf(d.addCallback(readBody))
        return body, transport

    def test_named_connection_kept_while_named(self):
        """A connection to a named host is used again while the host stays named."""
        first = self.get("http://127.0.0.1:8080/a.whl")
        second = self.get("http://127.0.0.1:8080/b.whl")
        self.assertEqual((first[0], second[0]), (b"ok", b"ok"))
        self.assertIs(first[1], second[1])
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_not_reused_once_not_named(self):
        """
        Once the host is not named, the kept connection is not used: the
        request connects again at public addresses only, and is refused.
        """
        _, kept = self.get("http://127.0.0.1:8080/a.whl")
        self.named.clear()
        failure = self.failureResultOf(
            self.agent.request(b"GET", b"http://127.0.0.1:8080/b.whl"), NotPublic)
        self.assertEqual(str(failure.value), "127.0.0.1 is not a public address")
        self.assertEqual(kept.value(), b"")
        self.assertEqual(len(self.reactor.tcpClients), 1)
        # Named again: the kept connection is good again.
        self.named.add(("http", "127.0.0.1", 8080))
        self.assertIs(self.get("http://127.0.0.1:8080/c.whl")[1], kept)

    def test_public_connection_under_any_rule(self):
        """
        A connection made at a public address is used whether or not the
        host is named since (named, it may be reached at any address: a
        connection of its own).
        """
        _, public = self.get("http://files.example/a.whl")
        self.assertIs(self.get("http://files.example/b.whl")[1], public)
        self.named.add(("http", "files.example", 80))
        self.assertIsNot(self.get("http://files.example/c.whl")[1], public)
        self.named.clear()
        self.assertIs(self.get("http://files.example/d.whl")[1], public)
