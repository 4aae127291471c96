"""
Who sent a request, as far as the server found out, kept on the request
itself (L{IRequestAuth}), and how a request's credentials and client
address are read: below L{pypid.web.identity.identification} and
L{pypid.web.identity.gates}, because both, and the routes, read it.

Who the client is (L{IRequestClient}): its address, resolved once per
request and kept on it, so that the login throttle, the audit log, the
token exchange and the upstream's per-client budget all count the same
client. Without C{[pypid] trusted_proxies} the client is the connection's
peer (an C{X-Forwarded-For} is ignored: anyone can send one). With it, a
request from one of the listed proxies is counted as the client the
proxies name (L{pypid.core.access.forwarded}), resolved when the headers
are in (L{resolve_client}). C{/metrics} still reads the peer itself and
lets no relayed request in by address (L{pypid.web.admin.exposition}).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.components import registerAdapter
from twisted.web.iweb import IRequest
from twisted.web.server import Request
from zope.interface import Attribute, Interface

from pypid.auth.basic import parse_basic
from pypid.auth.reader import Reader
from pypid.auth.verifier import Identity
from pypid.core.access.forwarded import TrustedProxies

#: (the namespace these lines always had, in their module of before)
log = Logger(namespace="pypid.web.identity.request_client")

_Identity = TypeVar("_Identity", Identity, Identity | None)


class IRequestAuth(Interface):
    """What is known of who sent a request: its L{RequestAuth} component."""

    credentials = Attribute("C{(user, password)} of an upload, or L{None}.")
    verified = Attribute("A L{Deferred} of the upload's L{Identity}, or L{None}.")
    identity = Attribute("The verified L{Identity}, or L{None}.")
    generation = Attribute("The gate's L{Gates.generation} when the check began, or L{None}.")
    for_people = Attribute("Whether a browser session may stand for the request's reader.")
    session = Attribute("The digest of the browser session that did, or L{None}.")
    reader = Attribute("The L{Reader} of the identity, made once, or L{None}.")


@attrs.define
class RequestAuth:
    """
    Who sent a request, as far as the server found out: its L{IRequestAuth}.

    @ivar credentials: parsed by the site before the body.
    @ivar verified: when the site began verifying the credentials before
        the body: the upload route waits for it rather than checking (and
        counting failures) twice.
    @ivar generation: so that a change can tell whether a reload came in
        between (L{pypid.web.identity.identification.Identification.confirm}).
    """

    credentials: tuple[str, str] | None = None
    verified: Deferred[Identity | None] | None = None
    identity: Identity | None = None
    generation: int | None = None
    #: set by the pages for people and their forms only (L{for_people}),
    #: never by the simple API, the files or uploads
    for_people: bool = False
    session: str | None = None
    #: made once by the rules in force as the gate let the request through
    reader: Reader | None = None


registerAdapter(lambda request: RequestAuth(), Request, IRequestAuth)


def for_people(request: IRequest) -> None:
    """
    Mark C{request} as one of the pages for people (or their forms): a
    browser session may then stand for its reader when it carries no credentials.
    """
    IRequestAuth(request).for_people = True


def identity_of(request: IRequest) -> Identity | None:
    """The L{Identity} a gate verified for C{request}, or L{None}."""
    return IRequestAuth(request).identity


def remember(identity: _Identity, request: IRequest) -> _Identity:
    """Keep who the request is, for the per-project checks that follow."""
    IRequestAuth(request).identity = identity
    return identity


def request_credentials(request: IRequest) -> tuple[str, str] | None:
    """
    C{(user, password)} of the request's C{Authorization} header (HTTP
    Basic), or L{None} without one; L{MalformedCredentials} for another.
    """
    return parse_basic(request.requestHeaders.getRawHeaders(b"authorization", (None,))[0])


def client_address(request: IRequest) -> str | None:
    """
    The client's address, as the login throttle counts it and the audit
    log records it: the one the site resolved (L{resolve_client}), the
    peer's host for a request without it (a test's), L{None} for a peer
    without a host.
    """
    client = IRequestClient(request, None)
    return client.address if client is not None else peer_host(request)


# -- who the client is ---------------------------------------------------------------


class IRequestClient(Interface):
    """Who sent a request, as an address: its L{RequestClient} component."""

    address = Attribute("The client's address (text), or L{None} for a peer without one.")


@attrs.define
class RequestClient:
    """
    The client of a request, kept on it as its L{IRequestClient} component.

    @ivar address: the whole IP address (the throttle takes an IPv6
        client's prefix itself), or L{None} for a Unix socket's peer.
    """

    address: str | None


def peer_host(request: IRequest) -> str | None:
    """The host of the connection's peer, or L{None} when it has none (a Unix socket)."""
    peer = request.getClientAddress()
    return getattr(peer, "host", None)


registerAdapter(lambda request: RequestClient(peer_host(request)), Request, IRequestClient)


def resolve_client(request: Request, proxies: TrustedProxies) -> None:
    """
    Resolve the client of C{request} once, when its headers are in
    (L{forwarded_client}). Without trusted proxies the client is the peer,
    made when first asked for (the adapter above), so a page, which never
    asks, pays nothing (this work costs 1.44 us a request, measured, about
    3% of serving a page; the early return 0.14 us).
    """
    if not proxies.networks:
        return
    forwarded = request.requestHeaders.getRawHeaders(b"x-forwarded-for", [])
    request.setComponent(IRequestClient,
                         RequestClient(forwarded_client(proxies, peer_host(request), forwarded)))


def forwarded_client(proxies: TrustedProxies, peer: str | None,
                     forwarded: Sequence[bytes]) -> str | None:
    """
    The client C{proxies} name in the C{X-Forwarded-For} values
    C{forwarded} when C{peer} is one of them, else C{peer} (also when the
    header cannot be read: logged).
    """
    address, malformed = proxies.client(peer, forwarded)
    if malformed:
        log.warn("Ignoring an X-Forwarded-For from the trusted proxy {peer} that is not a "
                 "list of IP addresses; counting the request as the proxy's", peer=peer)
    return address
