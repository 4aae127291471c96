"""
One delivery of an event to a receiver: a signed POST (Standard Webhooks'
C{webhook-id}, C{webhook-timestamp} and C{webhook-signature}), and what came of
it (L{Attempt}).

Pointed wherever an admin chose, a delivery is kept small: it follows no
redirect (a 3xx is a failure, named), sends nothing of pypid's but the event
and its signature (no credentials, no cookies), reads at most L{ANSWER_LIMIT}
bytes of the answer, and ends after the subscription's C{timeout} in all. HTTPS
is checked as every outbound call of pypid's is; the deliveries to one
receiver's host share a pool of at most its C{max_connections} kept connections
(L{pypid.webhooks.receivers}).
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING

import attrs
from hyperlink import DecodedURL
from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.client import URI

from pypid.config.webhook_settings import WebhookConfig
from pypid.core.records.webhook_events import WebhookEvent, parse_retry_after, signature
from pypid.core.util.terminal_text import escaped
from pypid.http.bodies import describe

if TYPE_CHECKING:
    from pypid.webhooks.receivers import Answer, Receiver

#: The host an IPv6 literal's URL is encoded with, then given back its own.
_STAND_IN = "ipv6-literal.invalid"

#: The most characters of an answer kept to show with a failed delivery.
SHOWN = 200

#: What pypid says it is.
USER_AGENT = b"pypid-webhooks/1"


@attrs.frozen
class Attempt:
    """
    What one delivery came to: the receiver's HTTP status (0: none came), why
    it failed (L{None}: delivered), the seconds it asked to wait, if it did,
    and how long it took.
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
    """Sends events, a pool of kept connections per receiver's host and CA bundle."""

    def __init__(self, clock: IReactorTime, default_ca_bundle: str | None,
                 held: Mapping[str, str] | None = None,
                 wall: Callable[[], float] = _time.time) -> None:
        """
        @param default_ca_bundle: C{[pypid] ca_bundle}, for a subscription naming none.
        @param wall: the time the signatures carry (receivers compare it to theirs).
        """
        self._clock = clock
        self._default_ca_bundle = default_ca_bundle
        self._held = held
        self._wall = wall
        self._receivers: dict[tuple[str, str | None, int, float, bool], Receiver] = {}
        self._targets: dict[str, tuple[URI, bytes, str]] = {}

    def _receiver(self, subscription: WebhookConfig, uri: URI, origin: str) -> Receiver:
        bundle = subscription.ca_bundle or self._default_ca_bundle
        key = (origin, bundle, subscription.max_connections, subscription.timeout,
               subscription.allow_private)
        receiver = self._receivers.get(key)
        if receiver is None:
            # (the outbound client loads with the first subscription)
            from pypid.http.client import endpoint_for, https_policy
            from pypid.webhooks.receivers import Receiver

            # (at public addresses only unless allowed: see WebhookConfig)
            endpoint = endpoint_for(self._clock, https_policy(bundle, self._held),
                                    subscription.timeout, uri, named=subscription.allow_private)
            receiver = self._receivers[key] = Receiver(self._clock, endpoint,
                                                       subscription.max_connections)
        return receiver

    def _target(self, subscription: WebhookConfig) -> tuple[URI, bytes, str]:
        """
        The URL as sent (an international host or path encoded once), the
        start of its request (the request line and C{Host}), and its receiver
        (L{WebhookConfig.receiver}): worked out once a URL, not each delivery.
        """
        url = subscription.url
        if url not in self._targets:
            decoded = DecodedURL.from_text(url)
            # (IDNA refuses an IPv6 literal's colons: encoded around a stand-in)
            literal = isIPv6Address(decoded.host)
            encoded = (decoded.replace(host=_STAND_IN) if literal else decoded).to_uri().to_text()
            if literal:
                encoded = encoded.replace(_STAND_IN, f"[{decoded.host}]", 1)
            uri = URI.fromBytes(encoded.encode("ascii"))
            host = b"[" + uri.host + b"]" if isIPv6Address(uri.host.decode("ascii")) else uri.host
            if (uri.scheme, uri.port) not in ((b"http", 80), (b"https", 443)):
                host += b":%d" % uri.port
            self._targets[url] = (uri, b"POST %s HTTP/1.1\r\nHost: %s\r\n" % (uri.originForm, host),
                                  subscription.receiver)
        return self._targets[url]

    def send(self, subscription: WebhookConfig, event: WebhookEvent) -> Deferred[Attempt]:
        """Deliver C{event} to C{subscription}'s receiver once; never fails."""
        try:
            uri, start, origin = self._target(subscription)
        except ValueError as e:
            return succeed(Attempt(0, f"cannot send to its URL: {e}"))
        try:
            receiver = self._receiver(subscription, uri, origin)
        except ValueError as e:
            return succeed(Attempt(0, f"cannot use the CA bundle: {e}"))
        return receiver.bounded(partial(self._send, receiver, start, subscription, event))

    def _send(self, receiver: Receiver, start: bytes, subscription: WebhookConfig,
              event: WebhookEvent) -> Deferred[Attempt]:
        # (signed when its turn comes: a receiver refuses an old time stamp)
        began = self._clock.seconds()
        body = event.body()
        stamp = int(self._wall())
        request = b"".join((
            start, b"Content-Type: application/json\r\nUser-Agent: ", USER_AGENT,
            b"\r\nwebhook-id: ", event.id.encode("ascii"),
            b"\r\nwebhook-timestamp: %d\r\nwebhook-signature: " % stamp,
            signature(subscription.key, event.id, stamp, body).encode("ascii"),
            b"\r\nContent-Length: %d\r\n\r\n" % len(body), body))
        return receiver.exchange(request, began + subscription.timeout).addCallbacks(
            self._answered, self._failed, callbackArgs=(began,),
            errbackArgs=(subscription, began))

    def _answered(self, answer: Answer, began: float) -> Attempt:
        status, text, retry = answer
        error = outcome(status, text)
        return Attempt(status, error,
                       parse_retry_after(retry.decode("latin-1"), self._wall())
                       if error and retry is not None else None,
                       self._clock.seconds() - began)

    def _failed(self, failure: Failure, subscription: WebhookConfig, began: float,
                ) -> Attempt | Failure:
        if failure.check(CancelledError):
            return failure
        from pypid.http.public_only import NotPublic
        error = (f"no answer within {subscription.timeout:g} s"
                 if failure.check(TimeoutError) is not None
                 else f"cannot reach {subscription.receiver}: {describe(failure.value)}"
                 + ("; set allow_private = yes to send to it"
                    if failure.check(NotPublic) is not None else ""))
        return Attempt(0, error, None, self._clock.seconds() - began)

    def reset(self, held: Mapping[str, str] | None = None) -> Deferred[None]:
        """
        Make new pools from now on (a reload: a CA bundle rotated in place,
        another timeout), the kept connections closed; C{held}: the texts the
        reload read (L{None}: those of before).
        """
        if held is not None:
            self._held = held
        return self.close()

    def close(self) -> Deferred[None]:
        """Close every pool's kept connections."""
        receivers = list(self._receivers.values())
        self._receivers.clear()
        self._targets.clear()
        closed: Deferred[None] = gatherResults(
            [receiver.close() for receiver in receivers]).addCallback(lambda _: None)
        return closed
