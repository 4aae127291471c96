"""
C{/login} and C{/logout}: a person logs in to the pages through a form,
and a browser session stands for them from then on.

The form takes the name and password of a user of C{[users]}, of the
htpasswd file or of the directory, checked as every password is (the
login throttle, the audit log). A right one opens a session and sends the
browser on to the page it came for. A wrong one shows the form again with
a 401 that carries no challenge, so no browser opens its own password
prompt. An API token is refused: tokens are for tools. HTTP Basic
credentials sent to C{GET /login} get a 303 to the landing page once they
are right, and no session.

A person logged in sees, at C{/login} and C{/logout}, who they are and
the form that logs them out, which carries the session's CSRF token.

With C{[sso]}, the form also offers "Log in with <label>":
C{GET /login/sso} sends the browser to the provider (with a cookie that
ties the login to it) and C{GET /login/sso/callback} takes it back; the
person the provider vouches for gets a session like any other, refused
when a user of C{[users]}, the htpasswd file or the directory holds their
name (one name, one person). Every refusal is the login page with its
reason and a 4xx, an unreachable provider a 503: no 500.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import attrs
from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.auth.basic import MalformedCredentials, credentials_of
from pypid.auth.sso import ProviderUnavailable, SingleSignOn
from pypid.auth.throttle import counted_client
from pypid.auth.tokens import TOKEN_USER
from pypid.auth.verifier import DirectoryUnavailable, Identity
from pypid.core.access.origins import HOST
from pypid.core.access.outside_logins import PASSWORD, PROVIDER
from pypid.core.access.sessions import Session
from pypid.core.access.sso_flow import PENDING_TTL, LoginRefused
from pypid.core.formats import pages
from pypid.core.records.audit_chain import FAILED
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import HTTPError, Unauthorized
from pypid.web.identity.browser_sessions import BrowserSessions
from pypid.web.identity.gates import Gates
from pypid.web.identity.identity_part import name_held
from pypid.web.identity.request_auth import client_address, remember, request_credentials
from pypid.web.pages.people import HTML, people_headers
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.server.respond import root_of, see_other
from pypid.web.server.routes import answer_errors, form_field

log = Logger()

#: What the form says of wrong credentials (never which of the two was wrong).
WRONG = "The user name or password is not right."

#: What it says of a token.
NO_TOKENS = ("An API token cannot log a browser in: tokens are for tools such as pip, uv "
             "and twine. Log in with your user name and password.")

#: What it says when the users were reloaded during the check.
RELOADED = ("The server's users were reloaded while your password was checked. "
            "Log in again.")

#: What the logout says when the session's end could not be written.
NOT_SAVED = ("Your session has ended on this server, but the server could not save that "
             "now: it will try again. Until then, a restart of the server could bring the "
             "session back.")

#: What it says when sessions are not kept (a server built without them).
NO_SESSIONS = "This server does not keep browser sessions."

#: What it says at C{/login/sso} without C{[sso]}.
NO_SSO = "This server has no single sign-on."

#: What it says when the provider cannot be reached.
PROVIDER_DOWN = ("The sign-in provider cannot be reached now, so single sign-on does not "
                 "work at the moment. Try again later, or log in with a password.")

#: What it says when the provider's name is a local user's.
LOCAL_NAME = ("{user} is the name of a user of this server's own, which single sign-on "
              "cannot log in. Log in with that user's password, or ask the administrator.")

#: What it says when the provider's name is the directory's user's (one
#: name, one person; the directory's user came first).
DIRECTORY_NAME = ("{user} is the name of a user of this server's directory, which single "
                  "sign-on cannot log in. Log in with the directory's password, or ask the "
                  "administrator.")

#: What it says when the directory that holds names cannot be asked.
DIRECTORY_DOWN = ("The directory this server checks names against cannot be reached now, so "
                  "single sign-on cannot finish. Try again shortly.")

#: An OAuth error code as RFC 6749 spells them (C{access_denied}).
ERROR_CODE = re.compile(r"^[a-z_]{1,60}\Z")


#: What it says when the provider or client changed during the login.
SSO_RELOADED = ("The server's single sign-on settings were reloaded during your sign-in. "
                "Start again.")


def next_path(value: str) -> str:
    """
    Where to send a browser once logged in: C{value} when it is a path of
    this site, else the landing page. Never another site (an open redirect
    would lend this server's name to a phishing page).
    """
    if not value.startswith("/") or value.startswith("//") or "\\" in value \
            or any(ord(c) < 0x21 or ord(c) == 0x7f for c in value) or len(value) > 2000:
        return "./"
    return value


@attrs.define(slots=False)
class BrowserLogin:
    """
    The area of C{/login} and C{/logout}.

    @ivar _sso: single sign-on, or L{None} (a server built without it).
    """

    _access: Gates
    _audit: AuditTrail
    _chrome: pages.Chrome
    _sso: SingleSignOn | None = None

    app = Klein()
    answer_errors(app)

    @app.route("/login", methods=["GET", "HEAD"])
    async def login_form(self, request: IRequest) -> bytes:
        """The form, or who is logged in and the form to log out."""
        people_headers(request)
        no_store(request)
        if request.requestHeaders.hasHeader(b"authorization"):
            return await self._basic(request)
        found = self._session(request)
        if found is not None:
            return self._account(request, found)
        nxt = next_path(form_field(request, "next"))
        return self._form(request, 200, next_path=nxt if nxt != "./" else "")

    @app.route("/login", methods=["POST"])
    async def log_in(self, request: IRequest) -> bytes:
        """Check the form's credentials; open a session, or show the form again."""
        people_headers(request)
        no_store(request)
        fields = body_fields(request)
        user_bytes, password_bytes = fields.get(b"user", b""), fields.get(b"password", b"")
        nxt = next_path(fields.get(b"next", b"").decode("utf-8", "replace"))
        shown_next = nxt if nxt != "./" else ""
        sessions = self._access.sessions
        if sessions is None:
            return self._form(request, 404, error=NO_SESSIONS)
        if not user_bytes.strip() or not password_bytes:
            return self._form(request, 400, error="user and password: both are needed.",
                              user=user_bytes.decode("utf-8", "replace"), next_path=shown_next)
        try:
            user, password = credentials_of(user_bytes.strip(), password_bytes)
        except MalformedCredentials as e:
            return self._form(request, 400, error=f"{e}.", next_path=shown_next)
        if user == TOKEN_USER:
            return self._form(request, 400, error=NO_TOKENS, next_path=shown_next)
        generation = self._access.generation
        try:
            identity = await self._access.identify(request, (user, password))
        except Unauthorized:
            return self._form(request, 401, error=WRONG, user=user, next_path=shown_next)
        except HTTPError as e:
            # (throttled: 429 with Retry-After; the directory down: 503)
            for name, value in e.headers:
                request.responseHeaders.setRawHeaders(name, [value])
            return self._form(request, e.code, error=e.detail, user=user,
                              next_path=shown_next)
        if identity is None:  # (credentials were given: never anonymous)
            return self._form(request, 401, error=WRONG, user=user, next_path=shown_next)
        if self._access.generation != generation:
            # (the check was the configuration's before a reload)
            return self._form(request, 503, error=RELOADED, user=user, next_path=shown_next)
        login = identity.login
        # (the stamp: a password user's hash, a directory user's directory)
        stamp = self._access.verifier.stored(identity.name) if login.source == PASSWORD \
            else login.provider
        await sessions.open(request, identity.name, identity.groups, login.source, stamp)
        remember(identity, request)
        self._audit.record(request, identity, ChangeKind.SESSION_OPENED, detail=login.source)
        log.info("{user} logged in to the pages", user=identity.name)
        # (relative to /login, at the site's root: a proxy's path prefix is kept)
        location = "." + nxt if nxt.startswith("/") else nxt
        return see_other(request, location, f"Logged in as {identity.name}\n")

    @app.route("/logout", methods=["GET", "HEAD"])
    async def logout_form(self, request: IRequest) -> bytes:
        """Who is logged in and the form to log out, or the way to the landing page."""
        people_headers(request)
        no_store(request)
        found = self._session(request)
        if found is None:
            return see_other(request, "./", "Not logged in\n")
        return self._account(request, found)

    @app.route("/logout", methods=["POST"])
    async def log_out(self, request: IRequest) -> bytes:
        """End the session the form was served in (its CSRF token checked)."""
        people_headers(request)
        no_store(request)
        found = self._session(request)
        sessions = self._access.sessions
        if found is None or sessions is None:
            return see_other(request, "./", "Not logged in\n")
        digest, session = found
        csrf = body_fields(request).get(b"csrf")
        if not sessions.book.csrf_matches(session, None if csrf is None else csrf.decode(
                "utf-8", "replace")):
            request.setResponseCode(403, b"csrf: the form's token is not this session's")
            request.responseHeaders.setRawHeaders(b"content-type",
                                                  [b"text/plain; charset=utf-8"])
            return (b"csrf: the form's token is not this session's; "
                    b"reload the page and try again\n")
        identity = Identity(session.user, groups=session.groups)
        try:
            await sessions.close(request, digest)
        except Exception:
            # (logged by the sessions; ended in memory, written again later)
            self._audit.record(request, identity, ChangeKind.SESSION_CLOSED, FAILED)
            return send_html(request, 503, pages.account_page(
                self._chrome, session.user, None, problem=NOT_SAVED))
        self._audit.record(request, identity, ChangeKind.SESSION_CLOSED)
        log.info("{user} logged out of the pages", user=session.user)
        return see_other(request, "./", "Logged out\n")

    @app.route("/login/sso", methods=["GET", "HEAD"])
    async def sso_begin(self, request: IRequest) -> bytes:
        """Send the browser to the provider, with the cookie that ties the login to it."""
        ready = self._sso_ready(request)
        if isinstance(ready, bytes):
            return ready
        sso, sessions = ready
        nxt = next_path(form_field(request, "next"))
        callback = self._callback_url(request)
        if callback is None:
            return self._form(request, 400, error="Host: not a host name this server can "
                              "give the provider; set [pypid] base_url.")
        try:
            url, binding = await sso.begin(callback, nxt,
                                           counted_client(client_address(request)) or "")
        except ProviderUnavailable as e:
            log.warn("Single sign-on cannot begin: {error}", error=e)
            request.responseHeaders.setRawHeaders(b"retry-after", [b"30"])
            return self._form(request, 503, error=PROVIDER_DOWN,
                              next_path=nxt if nxt != "./" else "")
        sessions.bind(request, binding, int(PENDING_TTL))
        return see_other(request, url, "To the sign-in provider\n")

    @app.route("/login/sso/callback", methods=["GET", "HEAD"])
    async def sso_callback(self, request: IRequest) -> bytes:
        """The provider sends the browser back: open its person's session, or say why not."""
        ready = self._sso_ready(request)
        if isinstance(ready, bytes):
            return ready
        sso, sessions = ready
        binding = sessions.binding_of(request)
        state, code = form_field(request, "state"), form_field(request, "code")
        error = form_field(request, "error")
        if error:
            # (the person said no, or the provider would not: the login
            # under way ends. The page names the error's code, never its
            # description: anyone may link here with a text of their own)
            sso.abandon(state, binding)
            code = error if ERROR_CODE.match(error) else "an error"
            log.info("The provider did not sign in a person: {error}: {description}",
                     error=code, description=form_field(request, "error_description")[:200])
            return self._form(request, 403 if error == "access_denied" else 400, error=(
                f"The sign-in provider did not sign you in ({code}). Try again, or ask "
                "the administrator."))
        try:
            signed = await sso.finish(state, code, binding)
        except LoginRefused as e:
            return self._form(request, 400, error=str(e))
        except ProviderUnavailable as e:
            log.warn("Single sign-on cannot finish: {error}", error=e)
            request.responseHeaders.setRawHeaders(b"retry-after", [b"30"])
            return self._form(request, 503, error=PROVIDER_DOWN)
        if signed.provider != sso.provider:
            request.responseHeaders.setRawHeaders(b"retry-after", [b"30"])
            return self._form(request, 503, error=SSO_RELOADED)
        identity = Identity(signed.user, groups=signed.groups)
        try:
            taken = await self._name_taken(signed.user, sessions.now())
        except DirectoryUnavailable as e:
            request.responseHeaders.setRawHeaders(b"retry-after",
                                                  [b"%d" % max(1, int(e.retry_after))])
            return self._form(request, 503, error=DIRECTORY_DOWN)
        if taken is not None:
            self._audit.record(request, identity, ChangeKind.SESSION_OPENED, FAILED,
                               detail=PROVIDER)
            return self._form(request, 403, error=taken)
        await sessions.open(request, signed.user, signed.groups, PROVIDER, signed.provider,
                            person=signed.subject)
        remember(identity, request)
        self._audit.record(request, identity, ChangeKind.SESSION_OPENED, detail=PROVIDER)
        log.info("{user} logged in to the pages through single sign-on ({subject})",
                 user=signed.user, subject=signed.subject[:100])
        # (relative to /login/sso/callback: the site's root is two up)
        nxt = signed.next_path
        return see_other(request, "../.." + nxt if nxt.startswith("/") else "../../" + nxt,
                         f"Logged in as {signed.user}\n")

    async def _name_taken(self, user: str, now: float) -> str | None:
        """
        Why the provider's C{user} may not have the name (one name, one
        person), or L{None}: a local user's, the directory's user's, or one
        a directory user's session or token still holds (it outlives their
        entry in the directory); L{DirectoryUnavailable} when it cannot be asked.
        """
        if self._access.verifier.stored(user) is not None:
            return LOCAL_NAME.format(user=user)
        if await self._access.verifier.directory_knows(user):
            return DIRECTORY_NAME.format(user=user)
        held = name_held(self._access, now, user, PROVIDER)
        return None if held is None else held + "."

    def _sso_ready(self, request: IRequest) -> tuple[SingleSignOn, BrowserSessions] | bytes:
        """
        The single sign-on and the sessions a route of it uses, with the
        headers of a page for people; else the 404 to answer.
        """
        people_headers(request)
        no_store(request)
        sso, sessions = self._sso, self._access.sessions
        if sso is None or not sso.enabled or sessions is None:
            return self._form(request, 404, error=NO_SSO)
        return sso, sessions

    def _callback_url(self, request: IRequest) -> str | None:
        """
        Where the provider sends the browser back: under C{[pypid] base_url}
        (behind a proxy, it must be set), else this request's own scheme and
        C{Host}; L{None} when that is no host name.
        """
        site = site_url(request, self._chrome.base_url)
        return site + "login/sso/callback" if site else None

    def _session(self, request: IRequest) -> tuple[str, Session] | None:
        sessions = self._access.sessions
        return sessions.of(request) if sessions is not None else None

    def _account(self, request: IRequest, found: tuple[str, Session]) -> bytes:
        _, session = found
        chrome = attrs.evolve(self._chrome, person=session.user)
        return send_html(request, 200, pages.account_page(chrome, session.user, session.csrf))

    def _form(self, request: IRequest, code: int, **shown: Any) -> bytes:
        sso = self._sso
        label = sso.label if sso is not None and sso.enabled else None
        # (the page's way back to the site's root: /login/sso/... is deeper)
        return send_html(request, code, pages.login_page(self._chrome, sso_label=label,
                                                         root=root_of(request), **shown))

    async def _basic(self, request: IRequest) -> bytes:
        """C{GET /login} with HTTP Basic credentials: 303 home once they are right."""
        try:
            request_credentials(request)
        except MalformedCredentials as e:
            raise Unauthorized(f"Authorization: {e}")
        identity = await self._access.log_in(request)
        return see_other(request, "./", f"Logged in as {identity.name}\n")


def site_url(request: IRequest, base_url: str | None) -> str:
    """
    The site's URL: C{[pypid] base_url}, else the scheme and C{Host} this
    request came with (when it is a host name), else empty.
    """
    if base_url:
        return base_url
    host = request.getHeader(b"host") or b""
    if not HOST.match(host):
        return ""
    return ("https://" if request.isSecure() else "http://") + host.decode("ascii") + "/"


def body_fields(request: IRequest) -> dict[bytes, bytes]:
    """
    The fields of a urlencoded form body, as sent (the first of each name):
    never the query's, so a password in a URL (which logs keep) logs nobody in.
    """
    content = request.content
    if content is None:
        return {}
    content.seek(0)
    fields: dict[bytes, bytes] = {}
    # (latin-1 both ways: each byte a character, so the escapes' bytes come
    # back as sent, UTF-8 or not, for credentials_of to judge)
    text = content.read().decode("latin-1")
    for name, value in parse_qsl(text, keep_blank_values=True, encoding="latin-1"):
        fields.setdefault(name.encode("latin-1"), value.encode("latin-1"))
    return fields


def send_html(request: IRequest, code: int, body: bytes) -> bytes:
    """A page of a person's own (never kept by a cache), with C{code}."""
    request.setResponseCode(code)
    request.responseHeaders.setRawHeaders(b"content-type", [HTML])
    no_store(request)
    return body


def no_store(request: IRequest) -> None:
    """No cache keeps a page of a person's session, or the login form."""
    request.responseHeaders.setRawHeaders(b"cache-control", [b"no-store"])
