"""
The outbound HTTP client that S3 and the upstream index share: its
connection pool, its connect timeout, and how HTTPS servers are verified
(certificates and host names always; against a private CA with
C{[pypid] ca_bundle}).

The pool logs nothing as connections come and go: Twisted's
L{HTTPConnectionPool} logs "Starting factory" and "Stopping factory" for
every connection, which flooded the log of a server that talks to S3 or an
upstream all day. There is no public way to quiet it: L{quiet_pool} swaps
the private C{_HTTP11ClientFactory} the pool names by its private
C{_factory} attribute, and is the one place that touches either; checked
with Twisted 24.7 to 26.10.

Bodies of answers are read with L{pypid.http.bodies} (bounded, with an idle
deadline): treq's C{timeout} covers only the headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from http.cookiejar import Cookie, CookieJar
from typing import Any

import treq.client
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.ssl import Certificate, trustRootFromCertificates
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    _HTTP11ClientFactory,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

from pypid.config import Config
from pypid.config.values import held_bytes
from pypid.core.util.bounded import remember
from pypid.core.util.startup import StartupError
from pypid.http.public_only import Named, PublicOnlyEndpoint, PublicOnlyPool


def https_policy(ca_bundle: str | None = None,
                 held: Mapping[str, str] | None = None) -> BrowserLikePolicyForHTTPS:
    """
    How outbound HTTPS is checked: certificates and host names verified
    (service-identity), against the system's trust roots, or only those of
    C{ca_bundle} (a PEM file of CA certificates: a private CA).

    @param held: the texts read with the configuration: the bundle's there
        is used, not the file as it is now (a worker started again trusts
        what the machine took).
    @raise ValueError: when the bundle cannot be read or holds no certificate.
    """
    if ca_bundle is None:
        return BrowserLikePolicyForHTTPS()
    try:
        pem = held_bytes(ca_bundle, held)
    except OSError as e:
        raise ValueError(f"cannot read {ca_bundle}: {e.strerror}")
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.DOTALL)
    try:
        certificates = [Certificate.loadPEM(block) for block in blocks]
    except Exception as e:
        raise ValueError(f"{ca_bundle} holds an unreadable certificate: {e}")
    if not certificates:
        raise ValueError(f"{ca_bundle} holds no PEM certificate")
    return BrowserLikePolicyForHTTPS(trustRoot=trustRootFromCertificates(certificates))


def outbound_policy(config: Config) -> BrowserLikePolicyForHTTPS:
    """How the server's outbound HTTPS is verified (C{[pypid] ca_bundle}); or L{StartupError}."""
    try:
        return https_policy(config.server.ca_bundle, config.held)
    except ValueError as e:
        raise StartupError(f"{config.where('pypid', 'ca_bundle')}: {e}")


class _NoCookies(CookieJar):
    """
    A cookie jar that keeps nothing. treq keeps every C{Set-Cookie} of a
    server by default and sends them all back, with no limit: an upstream
    that set a cookie on every page grew our memory and our requests by
    megabytes (a 10 MB C{Cookie} header after 20 pages). Neither S3 nor an
    index needs cookies.
    """

    def set_cookie(self, cookie: Cookie) -> None:
        """Keep nothing."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        """Keep nothing."""


class _QuietFactory(_HTTP11ClientFactory):
    """A connection factory that logs nothing as connections come and go."""

    noisy = False


def quiet_pool(reactor: IReactorTime, connections: int,
               named: Named | None = None) -> HTTPConnectionPool:
    """
    A persistent pool that keeps C{connections} per host for a minute, and
    logs nothing per connection; with C{named}, a L{PublicOnlyPool}.
    """
    pool = (HTTPConnectionPool(reactor, persistent=True) if named is None
            else PublicOnlyPool(reactor, named))
    pool.maxPersistentPerHost = connections
    pool.cachedConnectionTimeout = 60
    pool._factory = _QuietFactory
    return pool


#: The most endpoints an agent keeps (one per scheme, host and port).
KEPT_ENDPOINTS = 64


@implementer(IAgentEndpointFactory)
class KeptEndpoints:
    """
    An agent's endpoints (L{endpoint_for}), one kept per scheme, host and
    port (and, for an upstream's agent, whether the host is named).

    Twisted's agent makes a new endpoint for every request, one sent on a
    kept connection too, and encodes its host with IDNA each time: 9% of
    the CPU of a webhook's delivery when deliveries went through it
    (py-spy). An endpoint resolves its host again at each connection, so
    keeping it keeps no address; and which hosts are named is asked at
    every request (a reload changes it).
    """

    def __init__(self, reactor: IReactorTime, policy: IPolicyForHTTPS, timeout: float,
                 named: Named | None = None) -> None:
        """@param named: which hosts were named; L{None}: every host, as it resolves."""
        self._reactor = reactor
        self._policy = policy
        self._timeout = timeout
        self._named = named
        self._kept: dict[tuple[bytes, bytes, int, bool], IStreamClientEndpoint] = {}

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        """The endpoint of C{uri}'s scheme, host and port."""
        scheme, host = uri.scheme.decode("ascii"), uri.host.decode("ascii")
        named = self._named is None or self._named(scheme, host, uri.port)
        key = (uri.scheme, uri.host, uri.port, named)
        endpoint = self._kept.get(key)
        if endpoint is None:
            endpoint = remember(self._kept, key, endpoint_for(
                self._reactor, self._policy, self._timeout, uri, named), KEPT_ENDPOINTS)
        return endpoint


def endpoint_for(reactor: IReactorTime, policy: IPolicyForHTTPS, timeout: float, uri: URI,
                 named: bool = True) -> IStreamClientEndpoint:
    """
    The endpoint of C{uri}: plain TCP for C{http}, TLS checked by C{policy}
    for C{https}; a host not C{named} is reached at public addresses only.
    """
    scheme, host = uri.scheme.decode("ascii"), uri.host.decode("ascii")
    if scheme not in ("http", "https"):
        raise SchemeNotSupported(f"a URL is http or https, not {scheme}")
    endpoint: IStreamClientEndpoint = (
        HostnameEndpoint(reactor, host, uri.port, timeout=timeout) if named
        else PublicOnlyEndpoint(reactor, host, uri.port, timeout))
    if scheme == "https":
        endpoint = wrapClientTLS(policy.creatorForNetloc(uri.host, uri.port), endpoint)
    return endpoint


def make_agent(reactor: IReactorTime, timeout: float, connections: int = 16,
               policy: IPolicyForHTTPS | None = None,
               named: Named | None = None) -> tuple[Agent, HTTPConnectionPool]:
    """
    The agent for outbound calls: persistent connections, a connect timeout,
    certificates verified; no cookies, redirects or decoding of its own.

    @param named: for an upstream's agent, which hosts the operator named:
        any other is reached at public addresses only; L{None}: every host.
    @return: C{(agent, pool)}.
    """
    pool = quiet_pool(reactor, connections, named=named)
    policy = policy or BrowserLikePolicyForHTTPS()
    endpoints = KeptEndpoints(reactor, policy, timeout, named)
    return Agent.usingEndpointFactory(reactor, endpoints, pool), pool


def make_http(reactor: IReactorTime, timeout: float, connections: int = 16,
              policy: IPolicyForHTTPS | None = None,
              ) -> tuple[treq.client.HTTPClient, HTTPConnectionPool]:
    """The treq client for outbound calls (S3) on L{make_agent}'s agent, keeping no cookie."""
    agent, pool = make_agent(reactor, timeout, connections, policy)
    # treq 26 types the jar as its own CookieJar subclass (IndexableCookieJar,
    # which older treq releases lack); it only calls CookieJar's methods.
    return treq.client.HTTPClient(agent, cookiejar=_NoCookies()), pool  # type: ignore[arg-type]
