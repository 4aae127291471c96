"""
One delivery of an event to a receiver: a signed POST (Standard
Webhooks' C{webhook-id}, C{webhook-timestamp} and C{webhook-signature}),
and what came of it (L{Attempt}).

Pointed wherever an admin chose, a delivery is kept small: it follows no
redirect (a 3xx is a failure, named), sends nothing of pypid's but the
event and its signature (no credentials, no cookies), reads at most
L{ANSWER_LIMIT} bytes of the answer, and ends after the subscription's
C{timeout} in all, connecting and reading included. HTTPS is checked as
every outbound call of pypid's is (the subscription's C{ca_bundle}, else
C{[pypid] ca_bundle}, else the system's roots); the deliveries to one
receiver's host share a pool of at most its C{max_connections}.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
from hyperlink import DecodedURL
from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

from pypid.config.webhook_settings import WebhookConfig
from pypid.core.records.webhook_events import WebhookEvent, parse_retry_after, signature
from pypid.core.util.terminal_text import escaped
from pypid.http.bodies import BodyError, BytesBody, describe, read_body

if TYPE_CHECKING:
    from twisted.web.iweb import IResponse

#: The most bytes of a receiver's answer read (the rest is dropped).
ANSWER_LIMIT = 64 << 10
#: The most characters of an answer kept to show with a failed delivery.
SHOWN = 200

#: What pypid says it is.
USER_AGENT = b"pypid-webhooks/1"


@attrs.frozen
class Attempt:
    """
    What one delivery came to.

    @ivar status: the receiver's HTTP status, or 0 when none came.
    @ivar error: why it failed (L{None}: it was delivered).
    @ivar retry_after: the seconds the receiver asked to wait, if it did.
    @ivar seconds: how long it took.
    """

    status: int
    error: str | None
    retry_after: float | None = None
    seconds: float = 0.0

    @property
    def delivered(self) -> bool:
        """Whether the receiver took it (a 2xx)."""
        return self.error is None


def outcome(status: int, answer: bytes) -> str | None:
    """Why an answer of C{status} is a failure, or L{None} for a 2xx."""
    if 200 <= status < 300:
        return None
    # (the receiver's words, as it sent them: one line, no escape sequence)
    shown = escaped(answer[:SHOWN].decode("utf-8", "replace").strip())
    kind = ("a redirect, which deliveries never follow" if 300 <= status < 400
            else "refused" if status < 500 else "failed")
    return f"HTTP {status} ({kind})" + (f": {shown}" if shown else "")


class Sender:
    """
    Sends events, a client (and a pool of connections) per receiver's
    host and CA bundle, each bounded by the subscription's C{max_connections}.
    """

    def __init__(self, clock: IReactorTime, default_ca_bundle: str | None,
                 wall: Callable[[], float] = _time.time) -> None:
        """
        @param default_ca_bundle: C{[pypid] ca_bundle}, for a subscription
            that names none.
        @param wall: the time the signatures carry (receivers compare it to
            theirs).
        """
        self._clock = clock
        self._default_ca_bundle = default_ca_bundle
        self._wall = wall
        self._clients: dict[tuple[str, str | None, int],
                            tuple[Agent, HTTPConnectionPool, DeferredSemaphore]] = {}
        self._uris: dict[str, bytes] = {}

    def _client(self, subscription: WebhookConfig) -> tuple[Agent, DeferredSemaphore]:
        # (the outbound client comes with the first subscription: a server
        # without webhooks never loads it at its start)
        from pypid.http.client import https_policy, make_agent

        bundle = subscription.ca_bundle or self._default_ca_bundle
        key = (subscription.receiver, bundle, subscription.max_connections)
        if key not in self._clients:
            agent, pool = make_agent(self._clock, subscription.timeout,
                                     subscription.max_connections, https_policy(bundle))
            self._clients[key] = (agent, pool, DeferredSemaphore(subscription.max_connections))
        agent, _, bound = self._clients[key]
        return agent, bound

    def _uri(self, url: str) -> bytes:
        """The URL as sent: an international host or path encoded once."""
        if url not in self._uris:
            self._uris[url] = DecodedURL.from_text(url).to_uri().to_text().encode("ascii")
        return self._uris[url]

    def send(self, subscription: WebhookConfig, event: WebhookEvent) -> Deferred[Attempt]:
        """Deliver C{event} to C{subscription}'s receiver once; never fails."""
        try:
            agent, bound = self._client(subscription)
        except ValueError as e:
            return succeed(Attempt(0, f"cannot use the CA bundle: {e}"))
        return bound.run(lambda: ensureDeferred(self._send(agent, subscription, event)))

    async def _send(self, agent: Agent, subscription: WebhookConfig,
                    event: WebhookEvent) -> Attempt:
        began = self._clock.seconds()
        body = event.body()
        stamp = int(self._wall())
        headers = Headers({
            b"Content-Type": [b"application/json"], b"User-Agent": [USER_AGENT],
            b"webhook-id": [event.id.encode("ascii")],
            b"webhook-timestamp": [str(stamp).encode("ascii")],
            b"webhook-signature": [signature(subscription.key, event.id, stamp,
                                             body).encode("ascii")]})
        call: Deferred[Attempt] = ensureDeferred(
            self._post(agent, self._uri(subscription.url), headers, body))
        call.addTimeout(subscription.timeout, self._clock,
                        lambda result, timeout: Attempt(
                            0, f"no answer within {timeout:g} s"))
        try:
            attempt = await call
        except Exception as e:
            attempt = Attempt(0, f"cannot reach {subscription.receiver}: {describe(e)}")
        return attrs.evolve(attempt, seconds=self._clock.seconds() - began)

    async def _post(self, agent: Agent, uri: bytes, headers: Headers,
                    body: bytes) -> Attempt:
        # (a bare agent: no redirect followed, no cookie kept or sent)
        response: IResponse = await agent.request(b"POST", uri, headers, BytesBody(body))
        try:
            answer = await read_body(response, ANSWER_LIMIT, self._clock)
        except BodyError as e:
            answer = f"(its answer: {describe(e)})".encode()
        error = outcome(response.code, answer)
        retry = response.headers.getRawHeaders(b"retry-after") if error else None
        return Attempt(response.code, error,
                       parse_retry_after(retry[0].decode("latin-1"), self._wall())
                       if retry else None)

    def reset(self) -> Deferred[None]:
        """
        Make new clients from now on (a reload: a CA bundle rotated in
        place, another timeout), the kept connections closed.
        """
        return self.close()

    def close(self) -> Deferred[None]:
        """Close every pool's kept connections."""
        pools = [pool for _, pool, _ in self._clients.values()]
        self._clients.clear()
        self._uris.clear()
        d: Deferred[None] = Deferred.fromCoroutine(_close_all(pools))
        return d


async def _close_all(pools: list[HTTPConnectionPool]) -> None:
    for pool in pools:
        await pool.closeCachedConnections()
