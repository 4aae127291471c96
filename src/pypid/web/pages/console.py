"""
The console: what a person logged in to the pages manages there, in
their browser session, with plain HTML forms. This module is its home and
"My tokens" (L{Console}), and what every page does first (L{ConsoleGate});
the admins' pages are L{pypid.web.pages.console_admin}, a project's
L{pypid.web.pages.console_project}.

Every action is its API's own code: the console's routes find the
browser session (a browser without one goes to the login form; a request
with credentials is refused, as a form of the pages never sends one) and
check the form's CSRF token, then call the API area's typed question or
change (L{pypid.web.admin.token_admin.TokenAdmin.issue_token} and its
siblings), which refuses exactly as the API refuses and audits with the
person's name. What the API answers as JSON, the console draws as a page
(the shapes are L{pypid.core.formats.admin_answers}); what it refuses,
the console shows with the same status and reason.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from pypid.auth.verifier import Identity
from pypid.core.access.sessions import Session
from pypid.core.formats import console_pages, pages
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.records.audit_chain import REFUSED
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import BadRequest, Forbidden, HTTPError, Unauthorized
from pypid.web.admin.token_admin import TokenAdmin
from pypid.web.identity.gates import Gates
from pypid.web.pages.browser_login import body_fields, no_store, send_html, site_url
from pypid.web.pages.people import people_headers
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.server.respond import root_of, see_other
from pypid.web.server.routes import answer_errors

#: What a console request with credentials is told.
SESSION_ONLY = ("the console works in a browser session: log in through the login page, "
                "without an Authorization header")


@attrs.frozen
class ConsoleGate:
    """
    What every console page does first: its session, a form's CSRF token
    (a refusal recorded in C{audit}), and the chrome of its person.
    """

    access: Gates
    chrome: pages.Chrome
    audit: AuditTrail

    def session(self, request: IRequest) -> Session:
        """
        The browser session of a console page's request; else the refusal
        (a browser is sent to the login form, a client with credentials refused).
        """
        people_headers(request)
        no_store(request)
        if request.requestHeaders.hasHeader(b"authorization"):
            raise BadRequest(SESSION_ONLY)
        sessions = self.access.sessions
        found = sessions.of(request) if sessions is not None else None
        if found is None:
            raise Unauthorized("log in to use the console")
        return found[1]

    def form_session(self, request: IRequest, event: ChangeKind | None,
                     target: str | None = None) -> Session:
        """
        L{session}, for a form whose CSRF token must be the session's: a
        form without it is refused, and audited as C{event} refused (with
        C{target}) for the session's person (C{event} L{None}: not audited).
        """
        session = self.session(request)
        sessions = self.access.sessions
        assert sessions is not None
        # (from the body only: a token in the URL would be in logs and histories)
        sent = body_fields(request).get(b"csrf")
        if not sessions.book.csrf_matches(
                session, sent.decode("utf-8", "replace") if sent else None):
            if event is not None:
                self.audit.record(request, Identity(session.user, groups=session.groups),
                                  event, REFUSED, target=target, detail="csrf")
            raise Forbidden("csrf: the form's token is not this session's; reload the page "
                            "and try again")
        return session

    def chrome_of(self, identity: Identity) -> pages.Chrome:
        """The site's chrome, naming the person a page is for."""
        return attrs.evolve(self.chrome, person=identity.name)


def shown_field(request: IRequest, name: str) -> str:
    """A form field as sent, to show again (bytes that are not UTF-8 replaced)."""
    values = request.args.get(name.encode("ascii"))
    return values[0].decode("utf-8", "replace").strip() if values else ""


def index_name(request: IRequest) -> str:
    """The index a page is of: C{?index=NAME}, the default without."""
    return shown_field(request, "index") or DEFAULT


def index_query(request: IRequest) -> str:
    """The query that keeps a page's index on a link (none for the default)."""
    name = index_name(request)
    return "" if name == DEFAULT else "?index=" + quote(name, safe="")


@attrs.define(slots=False)
class Console:
    """The console's home and "My tokens" (C{/console/}, C{/console/tokens})."""

    _gate: ConsoleGate
    _tokens: TokenAdmin

    app = Klein()
    answer_errors(app)

    @app.route("/console/", methods=["GET", "HEAD"])
    async def home(self, request: IRequest) -> bytes:
        """What the person can manage here."""
        self._gate.session(request)
        identity = await self._gate.access.person(request)
        return send_html(request, 200, console_pages.console_page(
            self._gate.chrome_of(identity), identity.name, root=root_of(request),
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
        return send_html(request, code, console_pages.tokens_page(
            self._gate.chrome_of(identity), identity.name, session.csrf, listed,
            admin=self._gate.access.reader(request).is_admin, outside=identity.login.outside,
            # (the page's examples name the site; without its URL, "this server")
            site_url=site_url(request, self._gate.chrome.base_url), root=root_of(request),
            **shown))

