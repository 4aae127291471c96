"""
The console's pages of the webhooks (admins): C{/console/webhooks} lists
the subscriptions, C{/console/webhooks/<name>} shows one's deliveries and
failures, and its forms send a test event and send given-up events again,
through the admin API's own calls (L{pypid.web.admin.webhook_admin}),
after the same admin check, audited as the API's are.
"""

from __future__ import annotations

from typing import Any

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from pypid.core.formats import webhook_pages
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import HTTPError
from pypid.web.admin.webhook_admin import WEBHOOKS_LOGIN, WebhookAdmin
from pypid.web.pages.browser_login import body_fields, send_html
from pypid.web.pages.console_gate import ConsoleGate
from pypid.web.server.respond import root_of
from pypid.web.server.routes import answer_errors


@attrs.define(slots=False)
class ConsoleWebhooks:
    """
    @ivar _gate: the session, CSRF and chrome of every console page.
    @ivar _webhooks: the webhooks' admin API.
    """

    _gate: ConsoleGate
    _webhooks: WebhookAdmin

    app = Klein()
    answer_errors(app)

    @app.route("/console/webhooks", methods=["GET", "HEAD"])
    async def listed(self, request: IRequest) -> bytes:
        """Every subscription (C{GET /api/webhooks}'s)."""
        self._gate.session(request)
        identity = await self._gate.access.admin(request, WEBHOOKS_LOGIN)
        found = [await self._webhooks.state(subscription, details=False)
                 for subscription in self._webhooks.subscriptions().values()]
        return send_html(request, 200, webhook_pages.webhooks_page(
            self._gate.chrome_of(identity), identity.name, found, root=root_of(request)))

    @app.route("/console/webhooks/<string:name>", methods=["GET", "HEAD"])
    async def one(self, request: IRequest, name: str) -> bytes:
        """One subscription (C{GET /api/webhooks/<name>}'s)."""
        return await self._page(request, name, self._gate.session(request).csrf, 200)

    @app.route("/console/webhooks/<string:name>/test", methods=["POST"])
    async def test(self, request: IRequest, name: str) -> bytes:
        """Send a test event, and show what came of it."""
        session = self._gate.form_session(request, ChangeKind.WEBHOOK_TEST, name)
        try:
            tested = await self._webhooks.test_as(request, name)
        except HTTPError as e:
            return await self._page(request, name, session.csrf, e.code, error=e.detail)
        return await self._page(request, name, session.csrf, 200, tested=tested)

    @app.route("/console/webhooks/<string:name>/redeliver", methods=["POST"])
    async def redeliver(self, request: IRequest, name: str) -> bytes:
        """Send one given-up event (the form's C{key}), or every one, again."""
        session = self._gate.form_session(request, ChangeKind.WEBHOOK_REDELIVER, name)
        key = body_fields(request).get(b"key")
        try:
            done = await self._webhooks.redeliver_as(
                request, name, lambda: key.decode("utf-8", "replace") if key else None)
        except HTTPError as e:
            return await self._page(request, name, session.csrf, e.code, error=e.detail)
        return await self._page(request, name, session.csrf, 200,
                                redelivered=done["redelivered"])

    async def _page(self, request: IRequest, name: str, csrf: str, code: int,
                    **shown: Any) -> bytes:
        identity = await self._gate.access.admin(request, WEBHOOKS_LOGIN)
        state = await self._webhooks.state(self._webhooks.subscription(name), details=True)
        return send_html(request, code, webhook_pages.webhook_page(
            self._gate.chrome_of(identity), identity.name, csrf, state,
            root=root_of(request), **shown))
