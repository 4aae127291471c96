"""
The webhooks over HTTP, admins only: what C{pypid-admin webhooks} and the
console call.

  - C{GET /api/webhooks}: every subscription, what it wants, and the
    deliverer's last word on it (L{pypid.webhooks.delivery}), never its
    secret.
  - C{GET /api/webhooks/<name>}: the same, with its last deliveries and
    the events given up after their last try.
  - C{POST /api/webhooks/<name>/redeliver}, a JSON body C{{"key": ...}}
    (one given-up event, by its key or event id) or C{{}} (every one):
    sends them once more, after what waits; audited.
  - C{POST /api/webhooks/<name>/test}: sends a test event to the
    receiver now, and answers what came of it; audited.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import attrs
from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from pypid.config.webhook_settings import WebhookConfig
from pypid.core.records.audit_chain import FAILED, OK, event_id, format_time
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import BadRequest, NotFound
from pypid.core.util.units import counted
from pypid.storage.base.interface import StorageError
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.server.respond import storage_unavailable
from pypid.web.server.routes import answer_errors, json_object, send_json
from pypid.webhooks.ledger import Ledger
from pypid.webhooks.sender import Attempt

#: What the routes answer without credentials.
WEBHOOKS_LOGIN = "authentication is required to read or act on the webhooks"


class Webhooks(Protocol):
    """What the routes use of the webhooks (L{pypid.webhooks.part.WebhookPart})."""

    ledger: Ledger
    clock: IReactorTime

    @property
    def subscriptions(self) -> Mapping[str, WebhookConfig]:
        """The subscriptions in force."""

    def send_test(self, subscription: WebhookConfig, id: str, user: str | None) -> Any:
        """Send a test event now: a L{Deferred} of its L{Attempt}."""


def shown_url(url: str) -> str:
    """
    A subscription's URL as shown: its host and the first segment of its
    path; the rest (where chat services keep a token) and the query cut.
    """
    parts = urlsplit(url)
    first, slash, rest = parts.path.lstrip("/").partition("/")
    path = "/" + first + ("/..." if rest or parts.query else "")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def described(subscription: WebhookConfig) -> dict[str, Any]:
    """What the API shows of a subscription: all but its secret."""
    wanted = subscription.filter
    return {"name": subscription.name, "url": shown_url(subscription.url),
            "events": sorted(wanted.events) or ["*"],
            "indexes": sorted(wanted.indexes) or ["*"],
            "projects": list(wanted.projects) or ["*"],
            "timeout": subscription.timeout, "retry_for": subscription.retry_for,
            "retry_delay": subscription.retry_delay,
            "max_connections": subscription.max_connections}


@attrs.define(slots=False)
class WebhookAdmin:
    """C{/api/webhooks}."""

    _access: Gates
    _webhooks: Webhooks
    _audit: AuditTrail

    app = Klein()
    answer_errors(app)

    def subscriptions(self) -> Mapping[str, WebhookConfig]:
        """The subscriptions in force."""
        return self._webhooks.subscriptions

    def subscription(self, name: str) -> WebhookConfig:
        """The subscription C{name}; 404 when there is none."""
        subscription = self._webhooks.subscriptions.get(name)
        if subscription is None:
            raise NotFound(f"webhook: no webhook {name!r} (see [webhook:NAME] in the "
                           "configuration)")
        return subscription

    @app.route("/api/webhooks", methods=["GET", "HEAD"])
    async def listed(self, request: IRequest) -> bytes:
        """Every subscription, and the deliverer's last word on each."""
        await self._access.admin(request, WEBHOOKS_LOGIN)
        return send_json(request, {"webhooks": [
            await self.state(subscription, details=False)
            for subscription in self.subscriptions().values()]})

    @app.route("/api/webhooks/<string:name>", methods=["GET", "HEAD"])
    async def one(self, request: IRequest, name: str) -> bytes:
        """One subscription, its last deliveries and its events given up."""
        await self._access.admin(request, WEBHOOKS_LOGIN)
        return send_json(request, await self.state(self.subscription(name), details=True))

    async def state(self, subscription: WebhookConfig, details: bool) -> dict[str, Any]:
        """A subscription as the API shows it (with C{details}: its deliveries and failures)."""
        ledger = self._webhooks.ledger
        try:
            status = await ledger.status(subscription.name) or {}
            given_up = await ledger.given_up(subscription.name)
        except StorageError as e:
            raise storage_unavailable(e)
        state = described(subscription) | {key: status.get(key) for key in (
            "pending", "oldest", "next_try", "last_error", "counts", "updated", "serial")}
        state["given_up"] = len(given_up)
        if details:
            state["deliveries"] = status.get("recent", [])
            state["failures"] = [failed.public() for failed in given_up]
        return state

    @app.route("/api/webhooks/<string:name>/redeliver", methods=["POST"])
    async def redeliver(self, request: IRequest, name: str) -> bytes:
        """Send given-up events again (see the module docstring)."""
        return send_json(request, await self._audit.recorded(
            request, ChangeKind.WEBHOOK_REDELIVER, self.redeliver_as(
                request, name, lambda: json_object(request, 4096).get("key")),
            target=name))

    async def redeliver_as(self, request: IRequest, name: str,
                           asked_for: Callable[[], object]) -> dict[str, int]:
        """
        Send C{name}'s given-up events once more, for the admin of
        C{request}: the one C{asked_for()} names, or all (L{None}).
        """
        identity = await self._access.admin(request, WEBHOOKS_LOGIN)
        self.subscription(name)
        asked = asked_for()
        if asked is not None and not isinstance(asked, str):
            raise BadRequest("key: expected the key (or the event id) of an event given up")
        ledger = self._webhooks.ledger
        try:
            keys = None
            if asked is not None:
                keys = [failed.key for failed in await ledger.given_up(name)
                        if asked in (failed.key, failed.event.id)]
                if not keys:
                    raise NotFound(f"key: no event {asked!r} given up for the webhook {name}")
            count = await ledger.redeliver(name, keys)
        except StorageError as e:
            raise storage_unavailable(e)
        self._audit.record(request, identity, ChangeKind.WEBHOOK_REDELIVER, target=name,
                           detail=f"{counted(count, 'event')} to send again")
        return {"redelivered": count}

    @app.route("/api/webhooks/<string:name>/test", methods=["POST"])
    async def test(self, request: IRequest, name: str) -> bytes:
        """Send a test event now, and say what came of it."""
        return send_json(request, await self._audit.recorded(
            request, ChangeKind.WEBHOOK_TEST, self.test_as(request, name), target=name))

    async def test_as(self, request: IRequest, name: str) -> dict[str, Any]:
        """Send C{name} a test event as the admin of C{request}; what came of it."""
        identity = await self._access.admin(request, WEBHOOKS_LOGIN)
        subscription = self.subscription(name)
        clock = self._webhooks.clock
        id = event_id(int(clock.seconds() * 1000), secrets.token_hex(5))
        attempt: Attempt = await self._webhooks.send_test(subscription, id, identity.name)
        self._audit.record(request, identity, ChangeKind.WEBHOOK_TEST,
                           OK if attempt.delivered else FAILED,
                           target=name, detail=attempt.error or f"HTTP {attempt.status}")
        return {"id": id, "time": format_time(clock.seconds()), "delivered": attempt.delivered,
                "status": attempt.status, "error": attempt.error,
                "seconds": round(attempt.seconds, 3)}

