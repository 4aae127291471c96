"""
A connection pool whose connections log nothing as they come and go.

Twisted's L{HTTPConnectionPool} logs "Starting factory" and "Stopping
factory" for every connection it opens, which floods the log of a server
that talks to S3 or an upstream index all day. There is no public way to
quiet it: the pool builds each connection with the private
C{_HTTP11ClientFactory}, named by the pool's private C{_factory} attribute.
This module is the one place that touches either; checked with Twisted
24.7 to 26.10.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory


class _QuietFactory(_HTTP11ClientFactory):
    """A connection factory that logs nothing as connections come and go."""

    noisy = False


def quiet_pool(reactor: IReactorTime, connections: int,
               idle_timeout: int = 60) -> HTTPConnectionPool:
    """
    A persistent L{HTTPConnectionPool} that keeps C{connections} per host
    for C{idle_timeout} seconds, and logs nothing per connection.
    """
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = connections
    pool.cachedConnectionTimeout = idle_timeout
    pool._factory = _QuietFactory
    return pool
