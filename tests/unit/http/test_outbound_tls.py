"""
Tests of outbound HTTPS (to S3 or the upstream): certificates and host
names are verified, against a private CA bundle when one is configured
(C{[pypid] ca_bundle}). A real HTTPS server on loopback, with a test CA.
"""

import os

import treq
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import reactor
from twisted.internet.endpoints import HostnameEndpoint, TCP4ServerEndpoint
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import TestCase
from twisted.web.client import URI, ResponseNeverReceived
from twisted.web.error import SchemeNotSupported
from twisted.web.resource import Resource
from twisted.web.server import Site

from pypid.http.client import KEPT_ENDPOINTS, KeptEndpoints, https_policy, make_http
from pypid.tls import ServerTLS
from tests.harness.fakes import run_now
from tests.harness.tlsca import TestCA


class _Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"hello"


class OutboundTLSTests(TestCase):
    """The outbound client against a server whose CA is private."""

    async def serve(self, hosts=("127.0.0.1", "localhost")):
        """An HTTPS server with a certificate from a new test CA; return (url, ca)."""
        ca = TestCA(self.mktemp())
        files = ca.issue("upstream", kind="ec", hosts=hosts)
        tls = ServerTLS(files.certificate, files.key, files.chain, reactor, run_now)
        tls.load()
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            TLSMemoryBIOFactory(tls, False, Site(_Hello()), reactor))
        self.addCleanup(port.stopListening)
        return f"https://127.0.0.1:{port.getHost().port}/", ca

    async def get(self, url, policy):
        """GET C{url} with a client verifying by C{policy}; return the body."""
        http, pool = make_http(reactor, 5, policy=policy)
        self.addCleanup(pool.closeCachedConnections)
        response = await http.get(url)
        return await treq.content(response)

    async def refused(self, url, policy, why=SSL.Error):
        """GET C{url} by C{policy}: the TLS handshake fails with C{why}, so no response comes."""
        with self.assertRaises(ResponseNeverReceived) as caught:
            await self.get(url, policy)
        self.assertTrue(any(reason.check(why) for reason in caught.exception.reasons),
                        caught.exception.reasons)

    async def test_private_ca(self):
        """With the CA in the bundle, the server is trusted."""
        url, ca = await self.serve()
        self.assertEqual(await self.get(url, https_policy(ca.root_path)), b"hello")

    async def test_unknown_ca_refused(self):
        """Without the bundle (system roots), or with another CA's, the server is refused."""
        url, _ca = await self.serve()
        await self.refused(url, https_policy(None))
        other = TestCA(self.mktemp())
        await self.refused(url, https_policy(other.root_path))

    async def test_host_name_checked(self):
        """A certificate for another name is refused even from a trusted CA."""
        url, ca = await self.serve(hosts=("upstream.example",))
        await self.refused(url, https_policy(ca.root_path), VerificationError)

    async def test_kept_endpoint_connects_checked(self):
        """An endpoint kept for a host checks each new connection's certificate."""
        url, ca = await self.serve()
        http, pool = make_http(reactor, 5, policy=https_policy(ca.root_path))
        self.addCleanup(pool.closeCachedConnections)
        for _ in range(2):
            self.assertEqual(await treq.content(await http.get(url)), b"hello")
            await pool.closeCachedConnections()
        http, pool = make_http(reactor, 5, policy=https_policy(None))
        self.addCleanup(pool.closeCachedConnections)
        for _ in range(2):
            with self.assertRaises(ResponseNeverReceived):
                await http.get(url)

    def test_endpoints_kept(self):
        """One endpoint per scheme, host and port, TLS for https, others refused."""
        endpoints = KeptEndpoints(reactor, https_policy(None), 5)
        plain = endpoints.endpointForURI(URI.fromBytes(b"http://a.example/x"))
        self.assertIsInstance(plain, HostnameEndpoint)
        self.assertIs(endpoints.endpointForURI(URI.fromBytes(b"http://a.example/y?z")), plain)
        other = endpoints.endpointForURI(URI.fromBytes(b"http://a.example:8080/x"))
        self.assertIsNot(other, plain)
        tls = endpoints.endpointForURI(URI.fromBytes(b"https://a.example/x"))
        self.assertNotIsInstance(tls, HostnameEndpoint)
        self.assertRaises(SchemeNotSupported, endpoints.endpointForURI,
                          URI.fromBytes(b"ftp://a.example/x"))
        for n in range(KEPT_ENDPOINTS * 2):
            endpoints.endpointForURI(URI.fromBytes(b"http://h%d.example/" % n))
        self.assertLessEqual(len(endpoints._kept), KEPT_ENDPOINTS)

    def test_bad_bundle(self):
        """A missing file, or one with no certificate, is a ValueError naming it."""
        path = self.mktemp()
        with self.assertRaises(ValueError) as caught:
            https_policy(path)
        self.assertIn(path, str(caught.exception))
        with open(path, "w") as f:
            f.write("not a certificate\n")
        self.assertRaises(ValueError, https_policy, path)
        self.assertTrue(os.path.exists(path))
