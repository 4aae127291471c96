"""
The listeners of C{[pypid] listen}, as one part of the daemon (L{Listeners},
made by L{make_listeners}). It starts once the index is loaded (a client
never sees a half-empty index) and stops first of the subsystems: the
listeners close, then the requests under way finish (with a deadline),
then the parts before it stop, so the last snapshot holds every change a
client could still make.

Before anything else starts, L{ListenCheck} binds each TCP port for a
moment: a port that is taken stops start-up before the storage, the
snapshot or any other file is written (it wrote an empty index's folders
wherever it was started, and then could not listen). It binds a plain
socket, not a Twisted listener, whose C{(TCP Port 8080 Closed)} in the
start log read as if the port were closed.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, NoReturn, cast

from twisted.application.service import Service
from twisted.internet.abstract import isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorCore,
    IReactorSSL,
    IReactorTCP,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pypid.config import Config
from pypid.config.server_settings import HTTP_REDIRECT, HTTPS, ListenAddress, parse_listen_address
from pypid.core.parts import IReloadable
from pypid.core.util.startup import StartupError
from pypid.daemon.socket_groups import in_use_hint
from pypid.jobs.gather import gather
from pypid.jobs.run import Run
from pypid.tls import Held, ServerTLS, TLSError, held_texts

if TYPE_CHECKING:
    # (a machine's supervisor opens the sockets, and serves nothing)
    from pypid.web.server.connections import ConnectionCounter
    from pypid.web.site import PypidSite

log = Logger()

#: How long a stopping server waits for the requests in flight (seconds):
#: under the shipped unit's TimeoutStopSec, with time left for the snapshot.
DRAIN_TIMEOUT = 20.0
DRAIN_POLL = 0.05


class IListeningReactor(IReactorCore, IReactorTCP, IReactorSSL, IReactorTime):
    """What the listeners use of the reactor: endpoints on it and its clock."""


def url_of(description: str, address: object, base_url: str | None = None) -> str | None:
    """
    The URL a person opens to reach a listener of C{description} bound to
    C{address}: C{[pypid] base_url} where set (the name a certificate or a
    proxy answers to); else the bound address, a wildcard as this
    machine's loopback. L{None} for a listener without an IP address.
    """
    if base_url is not None:
        return base_url
    if not isinstance(address, (IPv4Address, IPv6Address)):
        return None
    scheme = "https" if description.startswith("https:") else "http"
    host = address.host
    if isinstance(address, IPv6Address):
        host = "[::1]" if host == "::" else f"[{host}]"
    elif host == "0.0.0.0":
        host = "127.0.0.1"
    return f"{scheme}://{host}:{address.port}/"


class ListenFailed(Exception):
    """A listener could not open its endpoint."""

    def __init__(self, description: str, reason: str) -> None:
        super().__init__(f"{description}: {reason}")
        self.description = description
        self.reason = reason


class ListenerService(Service):
    """
    Listens on one endpoint while running.

    @ivar listening: fires when listening started, or fails with L{ListenFailed}.
    """

    def __init__(self, endpoint: IStreamServerEndpoint, description: str,
                 factory: IProtocolFactory, prepare: Callable[[], None] | None = None,
                 after: Iterable[Deferred[IListeningPort]] = (),
                 probe: tuple[int, str] | None = None, base_url: str | None = None) -> None:
        """
        @param probe: C{(port, interface)} of a TCP listener, for
            L{ListenCheck}; L{None} for another kind or port 0.
        @param prepare: called before listening (L{pypid.tls.ServerTLS.load});
            a L{TLSError} it raises fails C{listening}, and nothing listens.
        @param after: the C{listening} L{Deferred}s of listeners this one
            waits for: it opens only once they all listen, and never if one
            fails (a redirect to HTTPS never opens without the HTTPS listener).
        @param base_url: C{[pypid] base_url}, the URL the start log gives to
            open (L{url_of}); L{None} for a redirect's listener.
        """
        self.endpoint = endpoint
        self.description = description
        self.factory = factory
        self._prepare = prepare
        self._after = list(after)
        self.base_url = base_url
        self.probe = probe if probe is None or probe[0] else None
        self._port: IListeningPort | None = None
        self.listening: Deferred[IListeningPort] = Deferred()

    def startService(self) -> None:
        """Prepare, wait for the listeners this one comes after, then start listening."""
        Service.startService(self)
        if self._prepare is not None:
            try:
                self._prepare()
            except TLSError as e:
                self.listening.errback(ListenFailed(self.description, str(e)))
                return
        if not self._after:
            self._listen()
            return
        ready = DeferredList(self._after, fireOnOneErrback=True)
        ready.addCallbacks(lambda _: self._listen(), lambda _: None)

    def _listen(self) -> None:
        if not self.running:
            return
        d = self.endpoint.listen(self.factory)
        d.addCallbacks(self._listened, self._failed)

    def _listened(self, port: IListeningPort) -> None:
        self._port = port
        url = url_of(self.description, port.getHost(), self.base_url)
        if url is None:
            log.info("Listening on {endpoint}", endpoint=self.description)
        else:
            # (a URL to open, not only an endpoint string)
            log.info("Listening on {endpoint}: open {url}", endpoint=self.description, url=url)
        self.listening.callback(port)

    def _failed(self, failure: Failure) -> None:
        self.listening.errback(ListenFailed(self.description, failure.getErrorMessage()))

    def stopService(self) -> Deferred[None] | None:
        """Stop listening."""
        Service.stopService(self)
        if self._port is not None:
            port, self._port = self._port, None
            # (maybeDeferred waits for the Deferred that stopListening may return:
            # its overloads cannot say so of a function returning a Deferred or None)
            return cast("Deferred[None]", maybeDeferred(port.stopListening))
        return None


#: C{check(port, interface)}: bind the TCP port for a moment and let it go,
#: or raise L{CannotListenError} (L{bind_for_a_moment}, or a test's).
PortCheck = Callable[[int, str], None]


def bind_for_a_moment(port: int, interface: str) -> None:
    """
    Bind and listen on C{interface}:C{port} as Twisted's TCP listener would
    (C{SO_REUSEADDR} on POSIX, so a port in C{TIME_WAIT} passes here as it
    does there), then close the socket; or raise L{CannotListenError}.
    """
    family = socket.AF_INET6 if isIPv6Address(interface) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            if os.name == "posix":
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((interface, port))
            probe.listen(1)
    except OSError as e:
        raise CannotListenError(interface, port, e)


class ListenCheck(Service):
    """
    Binds each TCP port of the listeners for a moment, as the first part to
    start: a port taken (or an address this machine does not have) stops
    start-up with C{Cannot listen on <endpoint>: <error>} before anything
    is written.
    """

    def __init__(self, check: PortCheck, probes: Iterable[tuple[str, int, str]]) -> None:
        """@param probes: C{(description, port, interface)} of each TCP listener."""
        self._check = check
        self._probes = list(probes)

    def startService(self) -> None:
        """Bind and let go of each port; fail with the first that cannot be bound."""
        Service.startService(self)
        for description, port, interface in self._probes:
            try:
                self._check(port, interface)
            except CannotListenError as e:
                # (Twisted's text ends with a full stop, the hint after it)
                raise StartupError(f"Cannot listen on {description}: {str(e).rstrip('.')}"
                                   + in_use_hint(e.socketError))


@implementer(IReloadable)
class Listeners(Service):
    """
    Every listener of the server: opened together (a failure of one stops
    start-up), closed together, then the requests in flight finished; on
    C{SIGHUP}, the C{[tls]} files are read again.

    @ivar tls: the L{ServerTLS} of the C{https:} listeners, or L{None}.
    """

    def __init__(self, listeners: Iterable[ListenerService], tls: ServerTLS | None,
                 counter: ConnectionCounter, clock: IReactorTime,
                 check_port: PortCheck = bind_for_a_moment) -> None:
        """@param counter: the site's L{ConnectionCounter}, which knows the requests in flight."""
        self.listeners = list(listeners)
        self.tls = tls
        self._counter = counter
        self._clock = clock
        #: the part that checks the TCP ports first (L{ListenCheck})
        self.check = ListenCheck(check_port,
                                 [(listener.description, *listener.probe)
                                  for listener in self.listeners if listener.probe is not None])

    @classmethod
    def from_config(cls, config: Config, reactor: IListeningReactor,
                    site: PypidSite, run: Run,
                    check_port: PortCheck = bind_for_a_moment,
                    inherited: Mapping[str, IStreamServerEndpoint] | None = None,
                    tls_texts: Held = dict) -> Listeners:
        """
        The listeners of C{[pypid] listen} serving C{site} (see L{make_listeners}).

        @raise StartupError: for an endpoint Twisted cannot use (one line).
        """
        listeners, tls = make_listeners(config, reactor, site, run, inherited, tls_texts)
        return cls(listeners, tls, site.counter, reactor, check_port)

    def startService(self) -> Deferred[list[IListeningPort]]:
        """Open every listener; fire once all listen, or fail with the first that cannot."""
        Service.startService(self)
        for listener in self.listeners:
            listener.startService()
        d = gather(listener.listening for listener in self.listeners)
        d.addErrback(self._failed)
        return d

    def _failed(self, failure: Failure) -> NoReturn:
        error = failure.value
        assert isinstance(error, ListenFailed)
        raise StartupError(f"Cannot listen on {error.description}: {error.reason}")

    def stopService(self) -> Deferred[None]:
        """Stop listening, then finish the requests in flight (with a deadline)."""
        Service.stopService(self)
        d = DeferredList([maybeDeferred(listener.stopService)
                          for listener in self.listeners if listener.running])
        return d.addCallback(lambda _: Deferred.fromCoroutine(self._drain()))

    async def _drain(self) -> None:
        """
        Wait, up to L{DRAIN_TIMEOUT}, for the requests under way when the
        server stopped listening, and for those a client is about to send on
        a connection just opened or answered: an upload or a download in
        flight is finished rather than cut (an upload then in the last
        snapshot), and a connection accepted just before the stop is
        answered. Behind a socket that outlives the server (systemd's socket
        activation), no client sees a restart.
        """
        clock = self._clock

        def in_flight() -> int:
            return self._counter.in_flight(clock.seconds())

        if not in_flight():
            return
        log.info("Stopped listening; finishing {count} requests in flight", count=in_flight())
        deadline = clock.seconds() + DRAIN_TIMEOUT
        while in_flight() and clock.seconds() < deadline:
            await deferLater(clock, DRAIN_POLL, lambda: None)
        if in_flight():
            log.warn("Stopping with {count} requests still in flight after {timeout:g} s",
                     count=in_flight(), timeout=DRAIN_TIMEOUT)

    def prepare_reload(self, config: Config | None) -> Callable[[], str | None] | None:
        """
        Read the C{[tls]} files again, whether the configuration could be
        read or not: the configuration is taken or refused whatever the files
        hold, and the files whatever the configuration. So the commit only
        begins their own reload (L{ServerTLS.reload}: read in the pool, then
        installed), which logs what came of it; no part waits on the disk.
        """
        if self.tls is None:
            return None
        return self._reload_tls

    def _reload_tls(self) -> None:
        assert self.tls is not None  # (offered by prepare_reload only with TLS)
        self.tls.reload()  # (its errors are logged in it)


def held_tls(config: Config, before: Mapping[str, str], now: float
             ) -> tuple[dict[str, str], str | None]:
    """
    The C{[tls]} files' texts a machine's workers serve, and why the files
    as they are now are not (L{pypid.tls.held_texts}); none without an
    C{https:} line.
    """
    if not any(parse_listen_address(line).kind == HTTPS for line in config.server.listen):
        return {}, None
    certificate, key = config.tls.certificate, config.tls.key
    # (the configuration refuses an https: listener without both)
    assert certificate is not None and key is not None
    return held_texts(certificate, key, config.tls.chain, config.tls.allow_expired, now, before)


def endpoint_of(config: Config, reactor: IListeningReactor,
                address: ListenAddress) -> IStreamServerEndpoint:
    """
    The endpoint one line of C{[pypid] listen} listens on: TCP for an
    C{https:} or C{http-redirect:} line (the TLS is the factory's), the
    line's own Twisted endpoint otherwise (or L{StartupError}).
    """
    if address.kind in (HTTPS, HTTP_REDIRECT):
        return TCP4ServerEndpoint(reactor, address.port, address.backlog, address.interface)
    return _endpoint(config, reactor, address.description)


def make_listeners(config: Config, reactor: IListeningReactor, site: PypidSite,
                   run: Run, inherited: Mapping[str, IStreamServerEndpoint] | None = None,
                   tls_texts: Held = dict) -> tuple[list[ListenerService], ServerTLS | None]:
    """
    The listener services of C{[pypid] listen}, and the L{ServerTLS} of the
    C{https:} ones (L{None} without any): C{https:} listeners come first and
    read the C{[tls]} files as they start; C{http-redirect:} ones open only
    once every C{https:} one listens; any other line is a Twisted endpoint
    serving C{site} (never a TLS one: the configuration refuses those).

    @param inherited: in a worker of several, the endpoint of each line's
        socket, which the supervisor opened (and checked).
    @param tls_texts: in a worker of several, the machine's texts of the
        C{[tls]} files (L{pypid.tls.held_texts}); none, the files are read.
    @raise StartupError: for an endpoint Twisted cannot use (one line).
    """
    addresses = [parse_listen_address(description) for description in config.server.listen]

    def endpoint(address: ListenAddress) -> IStreamServerEndpoint:
        if inherited is not None:
            found = inherited.get(address.description)
            if found is None:
                # (a worker started again after an edit of listen not taken yet)
                raise StartupError(
                    f"{config.where('pypid', 'listen')}: {address.description!r} is not a "
                    "socket the supervisor opened: the file changed since the machine "
                    "started; restart it to listen there")
            return found
        return endpoint_of(config, reactor, address)

    def probe(address: ListenAddress) -> tuple[int, str] | None:
        """C{(port, interface)} of an C{https:} or C{http-redirect:} line, for L{ListenCheck}."""
        if inherited is not None or address.port is None:
            return None
        return address.port, address.interface
    https = [address for address in addresses if address.kind == HTTPS]
    tls = None
    secure: list[ListenerService] = []
    if https:
        certificate, key = config.tls.certificate, config.tls.key
        # (the configuration refuses an https: listener without both)
        assert certificate is not None and key is not None
        tls = ServerTLS(certificate, key, config.tls.chain, reactor, run,
                        config.tls.allow_expired, tls_texts)
        from pypid.web.server.tls_layer import ClosingTLSFactory
        secure = [ListenerService(endpoint(address), address.description,
                                  ClosingTLSFactory(tls, False, site, reactor),
                                  prepare=tls.load,
                                  probe=probe(address), base_url=config.server.base_url)
                  for address in https]
    others: list[ListenerService] = []
    redirect_site = None
    for address in addresses:
        if address.kind == HTTP_REDIRECT:
            if redirect_site is None:
                https_port = https[0].port
                assert https_port is not None  # (every https: line has its port)
                from pypid.web.server.redirect import HTTPSRedirect, RedirectSite
                redirect_site = RedirectSite(HTTPSRedirect(config.server.base_url, https_port),
                                             reactor)
            others.append(ListenerService(endpoint(address), address.description, redirect_site,
                                          after=[listener.listening for listener in secure],
                                          probe=probe(address)))
        elif address.kind != HTTPS:
            twisted_endpoint = endpoint(address)
            others.append(ListenerService(
                twisted_endpoint, address.description, site,
                probe=None if inherited is not None else tcp_address(twisted_endpoint),
                base_url=config.server.base_url))
    return secure + others, tls


def tcp_address(endpoint: IStreamServerEndpoint) -> tuple[int, str] | None:
    """
    C{(port, interface)} of a Twisted TCP endpoint (C{tcp:}, C{tcp6:}), as
    given, for L{ListenCheck} and the workers' sockets; L{None} for any other.
    """
    if isinstance(endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint)):
        return endpoint._port, endpoint._interface
    return None


def _endpoint(config: Config, reactor: IReactorCore, description: str,
              environ: Mapping[str, str] = os.environ) -> IStreamServerEndpoint:
    """The Twisted endpoint of one C{[pypid] listen} line."""
    where = config.where("pypid", "listen")
    try:
        return serverFromString(reactor, description)
    except (IndexError, KeyError) as e:
        if description.split(":", 1)[0] == "systemd":
            # (Twisted indexes the inherited sockets without a check: an
            # IndexError or KeyError is a socket systemd did not pass)
            raise StartupError(
                f"{where}: {description!r}: no such socket was inherited from systemd "
                f"(LISTEN_FDS={environ.get('LISTEN_FDS', '')!r}, "
                f"LISTEN_FDNAMES={environ.get('LISTEN_FDNAMES', '')!r}); start pypid from "
                "its .socket unit, or name the socket (systemd-socket-activate --fdname)")
        raise StartupError(f"{where}: invalid endpoint {description!r}: {e}")
    except (ValueError, TypeError) as e:
        raise StartupError(f"{where}: invalid endpoint {description!r}: {e}")
