"""
The console: what a person logged in to the pages manages there, in
their browser session, with plain HTML forms. This module is its home and
"My tokens"; the admins' pages are L{pypid.web.pages.console_admin}, a
project's L{pypid.web.pages.console_project}, and what every page does
first L{pypid.web.pages.console_gate}.

Every action is its API's own code: the console's routes check the
browser session and the form's CSRF token (beside the site's cross-site
checks, L{pypid.core.access.cross_site}), then call the API area's typed
question or change (L{pypid.web.admin.token_admin.TokenAdmin.issue_token},
L{pypid.web.changes.promote.Promote.promote_as} and their siblings),
which identifies the person through the session, refuses exactly as the
API refuses, and records the audit entry with the person's name. What
the API answers as JSON, the console draws as a page (the shapes are
L{pypid.core.formats.admin_answers}); what it refuses, the console shows
with the same status and reason.
"""

from __future__ import annotations

from typing import Any

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from pypid.core.access.sessions import Session
from pypid.core.formats import console_pages
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import HTTPError
from pypid.web.admin.token_admin import TokenAdmin
from pypid.web.pages.browser_login import send_html, site_url
from pypid.web.pages.console_gate import ConsoleGate, shown_field
from pypid.web.server.respond import root_of, see_other
from pypid.web.server.routes import answer_errors


@attrs.define(slots=False)
class Console:
    """
    The console's home and "My tokens" (C{/console/}, C{/console/tokens}).

    @ivar _gate: the session, CSRF and chrome of every console page.
    @ivar _tokens: the token routes' code, which the console calls.
    """

    _gate: ConsoleGate
    _tokens: TokenAdmin

    app = Klein()
    answer_errors(app)

    @app.route("/console/", methods=["GET", "HEAD"])
    async def home(self, request: IRequest) -> bytes:
        """What the person can manage here."""
        self._gate.session(request)
        identity = await self._gate.access.person(request)
        chrome = self._gate.chrome_of(identity)
        return send_html(request, 200, console_pages.console_page(
            chrome, identity.name, root=root_of(request),
            admin=self._gate.access.reader(request).is_admin))

    @app.route("/console", methods=["GET", "HEAD"])
    def home_slash(self, request: IRequest) -> bytes:
        """The console's home is C{/console/}."""
        return see_other(request, "console/", "See /console/\n")

    @app.route("/console/tokens", methods=["GET", "HEAD"])
    async def tokens(self, request: IRequest) -> bytes:
        """The person's tokens and the form that issues one."""
        return await self._tokens_page(request, self._gate.session(request), 200)

    @app.route("/console/tokens", methods=["POST"])
    async def issue(self, request: IRequest) -> bytes:
        """Issue a token (C{POST /api/tokens}'s path); the page shows it once."""
        session = self._gate.form_session(request, ChangeKind.TOKEN_ISSUED)
        # (to fill the form in again: as sent, never refused here, so that
        # what the API refuses is refused there, and audited)
        fields = {name: shown_field(request, name)
                  for name in ("description", "actions", "projects", "indexes", "expires")}
        try:
            text, token = await self._tokens.issue_token(request)
        except HTTPError as e:
            return await self._tokens_page(request, session, e.code, error=e.detail,
                                           fields=fields)
        return await self._tokens_page(request, session, 200, issued=(text, token.public()))

    @app.route("/console/tokens/<string:token_id>/revoke", methods=["POST"])
    async def revoke(self, request: IRequest, token_id: str) -> bytes:
        """Revoke a token (C{DELETE /api/tokens/<id>}'s path), then the page again."""
        session = self._gate.form_session(request, ChangeKind.TOKEN_REVOKED, token_id)
        try:
            await self._tokens.revoke_token(request, token_id)
        except HTTPError as e:
            return await self._tokens_page(request, session, e.code, error=e.detail)
        return see_other(request, "../../tokens", f"Revoked {token_id}\n")


    async def _tokens_page(self, request: IRequest, session: Session, code: int,
                           **shown: Any) -> bytes:
        listed = await self._tokens.tokens_of(request)
        identity = await self._gate.access.person(request)
        admin = self._gate.access.reader(request).is_admin
        chrome = self._gate.chrome_of(identity)
        outside = identity.login.outside
        return send_html(request, code, console_pages.tokens_page(
            chrome, identity.name, session.csrf, listed, admin=admin, outside=outside,
            # (the page's examples name the site; without its URL, "this server")
            site_url=site_url(request, self._gate.chrome.base_url), root=root_of(request),
            **shown))

