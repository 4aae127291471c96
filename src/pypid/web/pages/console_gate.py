"""
What every console page does first: find the browser session (a browser
without one goes to the login form; a request with credentials is
refused, as a form of the pages never sends one), check a form's CSRF
token, and draw the page for its person. The page groups
(L{pypid.web.pages.console}, L{pypid.web.pages.console_admin},
L{pypid.web.pages.console_project}) share it.
"""

from __future__ import annotations

from urllib.parse import quote

import attrs
from twisted.web.iweb import IRequest

from pypid.auth.verifier import Identity
from pypid.core.access.sessions import Session
from pypid.core.formats import pages
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.records.audit_chain import REFUSED
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import BadRequest, Forbidden, Unauthorized
from pypid.web.identity.gates import Gates
from pypid.web.pages.browser_login import body_fields, no_store
from pypid.web.pages.people import people_headers
from pypid.web.server.audit_trail import AuditTrail

#: What a console request with credentials is told.
SESSION_ONLY = ("the console works in a browser session: log in through the login page, "
                "without an Authorization header")


@attrs.frozen
class ConsoleGate:
    """
    @ivar access: the access gate, with the browser sessions.
    @ivar chrome: the chrome of the site's pages.
    @ivar audit: where a form refused for its CSRF token is recorded.
    """

    access: Gates
    chrome: pages.Chrome
    audit: AuditTrail

    def session(self, request: IRequest) -> Session:
        """
        The browser session of a console page's request; else the refusal
        the area answers: a browser is sent to the login form, a client
        with credentials refused.
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
        form without it is refused, and audited as C{event} refused (its
        C{target}, if any) for the session's person (L{None}: a form of
        no change, not audited).
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
