"""
C{POST /api/oidc/mint-token}: trusted publishing's exchange of a CI
system's OIDC ID token for a pypid upload token (L{pypid.auth.oidc}).

The request is C{{"token": "<ID token>"}} as JSON; the answer, C{{"token":
"<pypid token>", "expires": "<ISO 8601>", "projects": [...]}}, the token
then used as twine's password with the user name C{__token__}. Refusals
are short plain text: 400 for a request that is not such JSON, 401 for a
token that is not trusted (with C{WWW-Authenticate: Bearer}, RFC 6750:
the credential is the body's token, not Basic), 403 for a genuine token no
C{[publishers]} rule lets publish, 503 when its issuer's keys cannot be
had.

Every exchange is in the audit log as a C{token-issued} entry: minted
ones name the publisher (the user C{publisher:<issuer>:<sub>}), the token
(C{target}) and what it may do (C{detail}); refusals name the publisher
when the ID token was genuine, and always the reason. Refusals of tokens
that are not genuine cost an attacker nothing to send, so past
L{UNVERIFIED_ENTRIES} of them a minute they are folded into the
C{login-failed} entries of the audit trail, like wrong passwords.
"""

from __future__ import annotations

import json

import attrs
from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.auth.oidc import (
    IssuerUnavailable,
    NoPublisher,
    TokenRefused,
    TooMany,
    TrustedPublishing,
    Verified,
    format_time,
)
from pypid.auth.verifier import Identity
from pypid.core.http_errors import BadRequest, Forbidden, HTTPError, NotFound, TooLarge, Unavailable
from pypid.web.access import client_address
from pypid.web.audit_trail import AuditTrail
from pypid.web.respond import RETRY_AFTER
from pypid.web.routes import answer_errors, send_json

log = Logger()

#: The largest request body: an ID token is 1 to 2 KiB.
MAX_BODY = 64 << 10

#: Audit entries of refused tokens that were not genuine, at most, a minute.
UNVERIFIED_ENTRIES = 60

#: The audit event of an exchange.
EVENT = "token-issued"


class InvalidIDToken(HTTPError):
    """The ID token is not trusted (401, with a Bearer challenge)."""

    code = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, [(b"www-authenticate",
                                    b'Bearer realm="pypid", error="invalid_token"')])


@attrs.define(slots=False)
class TrustedPublishingArea:
    """
    The exchange route.

    @ivar _publishing: the L{pypid.auth.oidc.TrustedPublishing}, or L{None}
        when trusted publishing is not configured.
    @ivar _audit: the L{pypid.web.audit_trail.AuditTrail}.
    @ivar _clock: provides C{seconds()}.
    """

    _publishing: TrustedPublishing | None
    _audit: AuditTrail
    _clock: IReactorTime
    #: C{(minute, refusals of tokens not genuine in it)}
    _window: tuple[int | None, int] = (None, 0)

    app = Klein()
    answer_errors(app)

    @app.route("/api/oidc/mint-token", methods=["POST"])
    async def mint(self, request: IRequest) -> bytes:
        """
        Exchange an OIDC ID token for an upload token of the projects its
        publisher may upload to (see the module docstring).
        """
        publishing = self._publishing
        if publishing is None or not publishing.enabled:
            raise NotFound("trusted publishing is not configured ([oidc] issuers)")
        verified = None
        try:
            text = _id_token(request)
            try:
                verified = await publishing.verify(text)
                minted = publishing.mint(verified)
            except NoPublisher as e:
                raise Forbidden(str(e))
            except TokenRefused as e:
                raise InvalidIDToken(str(e))
            except TooMany as e:
                raise Unavailable(str(e), [(b"retry-after", RETRY_AFTER)])
            except IssuerUnavailable as e:
                # (what went wrong with the issuer is for the log, not for
                # whoever sent a token)
                log.warn("Cannot verify an ID token now: {error}", error=str(e))
                raise Unavailable("the token cannot be verified now: its issuer cannot be "
                                  "reached, or its keys cannot be used",
                                  [(b"retry-after", RETRY_AFTER)])
        except HTTPError as e:
            log.info("Refused an ID token from {address}: {reason}",
                     address=client_address(request), reason=e.message)
            self._refused(request, verified, e)
            await self._audit.written(request)
            raise
        token = minted.token
        # (a minted token always expires, after [oidc] token_lifetime)
        expires = format_time(token.expires) if token.expires is not None else "never"
        projects = list(minted.projects)
        detail = (f"{verified.issuer} jti {verified.claims['jti']}: upload to "
                  f"{' '.join(projects)} until {expires}")
        self._audit.record(request, Identity(minted.publisher), EVENT, target=token.id,
                           detail=detail)
        await self._audit.written(request)
        log.info("Minted token {id} for {publisher} (upload to {projects})", id=token.id,
                 publisher=minted.publisher, projects=" ".join(projects))
        return send_json(request, {"token": minted.text, "expires": expires,
                                   "projects": projects})

    def _refused(self, request: IRequest, verified: Verified | None, error: HTTPError) -> None:
        """
        Record a refusal: in full when the ID token was genuine (or the
        server failed), and for the first L{UNVERIFIED_ENTRIES} others of a
        minute; past them as a failed login.
        """
        if verified is not None:
            self._audit.refused(request, Identity(verified.publisher), EVENT, error)
            return
        if error.code < 500 and not self._unverified_allowed():
            self._audit.login_failed(None, client_address(request))
            return
        self._audit.refused(request, None, EVENT, error)

    def _unverified_allowed(self) -> bool:
        minute = int(self._clock.seconds() // 60)
        start, count = self._window
        if start != minute:
            start, count = minute, 0
        self._window = (start, count + 1)
        return count < UNVERIFIED_ENTRIES


def _id_token(request: IRequest) -> str:
    """
    The ID token of the request's JSON body.

    @raise HTTPError: 413 for a body too large, 400 naming what is wrong.
    """
    content = request.content
    content.seek(0)
    body = content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise TooLarge(f"the request body is larger than {MAX_BODY >> 10} KiB")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest('expected a JSON object: {"token": "<OIDC ID token>"}')
    if not isinstance(data, dict):
        raise BadRequest('expected a JSON object: {"token": "<OIDC ID token>"}')
    if "token" not in data:
        raise BadRequest("token: missing (the OIDC ID token of the CI job)")
    text = data["token"]
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("token: expected the OIDC ID token as a string")
    return text.strip()
