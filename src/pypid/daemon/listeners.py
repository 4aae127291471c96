"""
The listeners of C{[pypid] listen}, as one part of the daemon.

It starts once the index is loaded (so a client never sees a half-empty
index) and stops first of the subsystems: the listeners close, then the
requests under way finish (L{Listeners.stopService}, with a deadline),
then the parts before it stop: the last snapshot then holds every change
a client could still make.

C{https:} listeners come first and read the C{[tls]} files as they start;
C{http-redirect:} listeners open only once every C{https:} one listens;
any other line is a Twisted endpoint serving the site.
"""

import os

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, serverFromString
from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

from pypid.config.server_settings import HTTP_REDIRECT, HTTPS, parse_listen_address
from pypid.core.parts import IReloadable
from pypid.core.startup import StartupError
from pypid.tls import ServerTLS, TLSError
from pypid.web.redirect import HTTPSRedirect, RedirectSite

log = Logger()

#: How long a stopping server waits for the requests in flight (seconds):
#: under the shipped unit's TimeoutStopSec, with time left for the snapshot.
DRAIN_TIMEOUT = 20.0
DRAIN_POLL = 0.05


class ListenFailed(Exception):
    """A listener could not open its endpoint."""

    def __init__(self, description, reason):
        super().__init__(f"{description}: {reason}")
        self.description = description
        self.reason = reason


class ListenerService(Service):
    """
    Listens on one endpoint while running.

    @ivar listening: a L{Deferred} that fires when listening started, or
        fails with L{ListenFailed}.
    """

    def __init__(self, endpoint, description, factory, prepare=None, after=()):
        """
        @param prepare: called before listening, such as
            L{pypid.tls.ServerTLS.load}; a L{TLSError} it raises fails
            C{listening} with its message, and nothing listens.
        @param after: the C{listening} L{Deferred}s of listeners this one
            waits for: it opens only once they all listen, and never if one
            fails (a redirect to HTTPS never opens without the HTTPS listener).
        """
        self.endpoint = endpoint
        self.description = description
        self.factory = factory
        self._prepare = prepare
        self._after = list(after)
        self._port = None
        self.listening = Deferred()

    def startService(self):
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

    def _listen(self):
        if not self.running:
            return
        d = self.endpoint.listen(self.factory)
        d.addCallbacks(self._listened, self._failed)

    def _listened(self, port):
        self._port = port
        log.info("Listening on {endpoint}", endpoint=self.description)
        self.listening.callback(port)

    def _failed(self, failure):
        self.listening.errback(ListenFailed(self.description, failure.getErrorMessage()))

    def stopService(self):
        """Stop listening."""
        Service.stopService(self)
        if self._port is not None:
            port, self._port = self._port, None
            return maybeDeferred(port.stopListening)
        return None


@implementer(IReloadable)
class Listeners(Service):
    """
    Every listener of the server: opened together (a failure of one stops
    start-up: C{Cannot listen on <endpoint>: <error>}), closed together,
    then the requests in flight finished; on C{SIGHUP}, the C{[tls]} files
    are read again.

    @ivar listeners: the L{ListenerService}s, C{https:} ones first.
    @ivar tls: the L{ServerTLS} of the C{https:} listeners, or L{None}.
    """

    def __init__(self, listeners, tls, counter, clock):
        """
        @param counter: the site's L{pypid.web.channel.ConnectionCounter},
            which knows the requests in flight.
        @param clock: provides C{seconds()} and C{callLater}.
        """
        self.listeners = list(listeners)
        self.tls = tls
        self._counter = counter
        self._clock = clock

    @classmethod
    def from_config(cls, config, reactor, site):
        """
        The listeners of C{[pypid] listen} serving C{site}.

        @raise StartupError: for an endpoint Twisted cannot use (one line).
        """
        listeners, tls = make_listeners(config, reactor, site)
        return cls(listeners, tls, site.counter, reactor)

    def startService(self):
        """Open every listener; fire once all listen, or fail with the first that cannot."""
        Service.startService(self)
        for listener in self.listeners:
            listener.startService()
        d = DeferredList([listener.listening for listener in self.listeners],
                         fireOnOneErrback=True, consumeErrors=True)
        d.addErrback(self._failed)
        return d

    def _failed(self, failure):
        error = failure.value.subFailure.value
        raise StartupError(f"Cannot listen on {error.description}: {error.reason}")

    def stopService(self):
        """Stop listening, then finish the requests in flight (with a deadline)."""
        Service.stopService(self)
        d = DeferredList([maybeDeferred(listener.stopService)
                          for listener in self.listeners if listener.running])
        d.addCallback(lambda _: Deferred.fromCoroutine(self._drain()))
        return d

    async def _drain(self):
        """
        Wait, with a deadline (L{DRAIN_TIMEOUT}), for the requests under way
        when the server stopped listening, and for those a client is about to
        send on a connection it just opened or was just answered on: an
        upload or a download in flight is finished rather than cut (and an
        upload then in the last snapshot), and a connection accepted just
        before the stop is answered, not dropped. Behind a socket that
        outlives the server (systemd's socket activation), no client sees a
        restart.
        """
        counter = self._counter
        clock = self._clock

        def in_flight():
            return counter.in_flight(clock.seconds())

        if not in_flight():
            return
        log.info("Stopped listening; finishing {count} requests in flight", count=in_flight())
        deadline = clock.seconds() + DRAIN_TIMEOUT
        while in_flight() and clock.seconds() < deadline:
            await deferLater(clock, DRAIN_POLL, lambda: None)
        if in_flight():
            log.warn("Stopping with {count} requests still in flight after {timeout:g} s",
                     count=in_flight(), timeout=DRAIN_TIMEOUT)

    def prepare_reload(self, config):
        """Read the C{[tls]} files again (whether the configuration could be read or not)."""
        if self.tls is None:
            return None
        return self._reload_tls

    def _reload_tls(self):
        self.tls.reload()


def make_listeners(config, reactor, site):
    """
    The listener services of C{[pypid] listen}, and the L{ServerTLS} of the
    C{https:} ones (L{None} without any).

    C{https:} listeners come first and read the C{[tls]} files as they
    start; C{http-redirect:} listeners open only once every C{https:} one
    listens; any other line is a Twisted endpoint serving C{site} (never
    one of Twisted's TLS endpoints: the configuration refuses those).

    @raise StartupError: for an endpoint Twisted cannot use (one line).
    """
    addresses = [parse_listen_address(description) for description in config.server.listen]
    https = [address for address in addresses if address.kind == HTTPS]
    tls = (ServerTLS(config.tls.certificate, config.tls.key, config.tls.chain, reactor)
           if https else None)
    secure = [ListenerService(SSL4ServerEndpoint(reactor, address.port, tls, address.backlog,
                                                 address.interface),
                              address.description, site, prepare=tls.load)
              for address in https]
    others = []
    redirect_site = None
    for address in addresses:
        if address.kind == HTTP_REDIRECT:
            if redirect_site is None:
                redirect_site = RedirectSite(HTTPSRedirect(config.server.base_url, https[0].port),
                                             reactor)
            endpoint = TCP4ServerEndpoint(reactor, address.port, address.backlog,
                                          address.interface)
            others.append(ListenerService(endpoint, address.description, redirect_site,
                                          after=[listener.listening for listener in secure]))
        elif address.kind != HTTPS:
            description = address.description
            others.append(ListenerService(_endpoint(config, reactor, description), description,
                                          site))
    return secure + others, tls


def _endpoint(config, reactor, description, environ=os.environ):
    """The Twisted endpoint of one C{[pypid] listen} line."""
    where = f"{config.source}: [pypid] listen"
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
