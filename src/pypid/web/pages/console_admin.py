"""
The console's pages for admins: retention, the advisories, the recycle
bin, the groups, the indexes and the audit log (L{ConsoleAdmin}), and the
webhooks (L{ConsoleWebhooks}). Each draws what its API area's typed
question answers, and acts through the area's own change, after the same
admin check the API makes, audited as the API's are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from pypid.core.access.sessions import Session
from pypid.core.formats import console_pages, pages, webhook_pages
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import Forbidden, HTTPError, NotFound
from pypid.web.admin.advisory_admin import ADVISORIES_LOGIN, AdvisoryAdmin
from pypid.web.admin.audit_admin import AuditAdmin, audit_query
from pypid.web.admin.groups_admin import GROUPS_LOGIN, GroupsAdmin
from pypid.web.admin.indexes_admin import INDEXES_LOGIN, IndexesAdmin
from pypid.web.admin.recycle_admin import BIN_LOGIN, RecycleAdmin
from pypid.web.admin.retention_admin import RETENTION_LOGIN, RetentionAdmin, apply_body
from pypid.web.admin.webhook_admin import WEBHOOKS_LOGIN, WebhookAdmin
from pypid.web.identity.gates import not_an_admin
from pypid.web.pages.browser_login import body_fields, send_html
from pypid.web.pages.console import ConsoleGate, shown_field
from pypid.web.server.respond import root_of
from pypid.web.server.routes import answer_errors, form_field

_A = TypeVar("_A")


@attrs.define(slots=False)
class ConsoleAdmin:
    """
    The admins' pages of the console (each area L{None} without a registry:
    its page answers 404).
    """

    _gate: ConsoleGate
    _retention: RetentionAdmin | None = None
    _audit_admin: AuditAdmin | None = None
    _recycle: RecycleAdmin | None = None
    _advisories: AdvisoryAdmin | None = None
    _groups: GroupsAdmin | None = None
    _indexes: IndexesAdmin | None = None

    app = Klein()
    answer_errors(app)

    @app.route("/console/retention", methods=["GET", "HEAD"])
    async def retention(self, request: IRequest) -> bytes:
        """Each hosted index's retention plan (C{GET /api/retention}'s), with Apply buttons."""
        return await self._retention_page(request, self._gate.session(request), 200)

    @app.route("/console/retention/apply", methods=["POST"])
    async def apply_retention(self, request: IRequest) -> bytes:
        """Apply one index's plan as shown: C{POST /api/retention/apply}'s path."""
        session = self._gate.form_session(request, ChangeKind.RETENTION)
        retention = self._retention
        if retention is None:
            raise NotFound("no such page")
        try:
            applied = await retention.apply_as(request, lambda: apply_body(request))
        except HTTPError as e:
            return await self._retention_page(request, session, e.code, error=e.detail)
        return await self._retention_page(request, session, 200, applied=applied)

    async def _retention_page(self, request: IRequest, session: Session, code: int,
                              **shown: Any) -> bytes:
        retention = self._retention
        if retention is None:
            raise NotFound("no such page")
        identity = await self._gate.access.admin(request, RETENTION_LOGIN)
        # (the plans as the API makes them now: for every index, not the
        # index a form named)
        plans = retention.plans_of(None)["indexes"]
        return send_html(request, code, console_pages.retention_page(
            self._gate.chrome_of(identity), identity.name, session.csrf, plans,
            root=root_of(request), **shown))

    @app.route("/console/advisories", methods=["GET", "HEAD"])
    def advisories(self, request: IRequest) -> Awaitable[bytes]:
        """What the advisories do to each index (C{GET /api/advisories}'s), or a dry run."""
        area = self._advisories
        return self._read_page(
            request, ADVISORIES_LOGIN, None if area is None else lambda: area.report(
                shown_field(request, "index") or None, shown_field(request, "mode")),
            lambda chrome, person, session, report: console_pages.advisories_page(
                chrome, person, report, root=root_of(request),
                mode=shown_field(request, "mode")))

    @app.route("/console/recycle-bin", methods=["GET", "HEAD"])
    def recycle_bin(self, request: IRequest) -> Awaitable[bytes]:
        """An index's files in the recycle bin (C{GET /api/recycle-bin}'s), each restorable."""
        area = self._recycle
        return self._read_page(
            request, BIN_LOGIN, None if area is None else lambda: area.listing(
                shown_field(request, "index") or "default"),
            lambda chrome, person, session, listed: console_pages.recycle_bin_page(
                chrome, person, session.csrf, listed, root=root_of(request)))

    @app.route("/console/groups", methods=["GET", "HEAD"])
    def groups(self, request: IRequest) -> Awaitable[bytes]:
        """Who is in which group, as configured (C{GET /api/groups}'s)."""
        area = self._groups
        return self._read_page(
            request, GROUPS_LOGIN, None if area is None else area.listing,
            lambda chrome, person, session, groups: console_pages.groups_page(
                chrome, person, groups, root=root_of(request)))

    @app.route("/console/indexes", methods=["GET", "HEAD"])
    def indexes(self, request: IRequest) -> Awaitable[bytes]:
        """The indexes and the upstream caches (C{GET /api/indexes}'s)."""
        area = self._indexes
        return self._read_page(
            request, INDEXES_LOGIN, None if area is None else area.listing,
            lambda chrome, person, session, found: console_pages.indexes_page(
                chrome, person, found, root=root_of(request)))

    async def _read_page(self, request: IRequest, login: str, read: Callable[[], _A] | None,
                         draw: Callable[[pages.Chrome, str, Session, _A], bytes]) -> bytes:
        """
        A page, for an admin, of what an API's C{read} answers, as
        C{draw(chrome, person, session, answer)}; 404 without it.
        """
        session = self._gate.session(request)
        if read is None:
            raise NotFound("no such page")
        identity = await self._gate.access.admin(request, login)
        answer = read()
        return send_html(request, 200, draw(self._gate.chrome_of(identity), identity.name,
                                            session, answer))

    @app.route("/console/audit", methods=["GET", "HEAD"])
    async def audit(self, request: IRequest) -> bytes:
        """
        The audit log's entries (C{GET /api/audit}'s, with its filters and
        pages), and with C{verify=1} what checking its chains found (C{GET
        /api/audit/verify}'s).
        """
        self._gate.session(request)
        admin = self._audit_admin
        if admin is None:
            raise NotFound("no such page")
        identity = await self._gate.access.person(request)
        reader = self._gate.access.reader(request)
        if not reader.is_admin:
            # (a project's owner reads its trail on its page: this one is the admins')
            raise Forbidden(not_an_admin(reader))
        filters = {name: shown_field(request, name) for name, _ in console_pages.AUDIT_FILTERS}
        check = await admin.check() if shown_field(request, "verify") else None
        page = await admin.entries(reader, audit_query({
            name: form_field(request, name) or None
            for name in ("since", "before", "limit", *filters)}), "", "")
        return send_html(request, 200, console_pages.audit_page(
            self._gate.chrome_of(identity), identity.name, page, filters, root=root_of(request),
            check=check))


@attrs.define(slots=False)
class ConsoleWebhooks:
    """The console's pages of the webhooks: the subscriptions, one's deliveries, its forms."""

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
