"""
C{POST /api/oidc/mint-token}: trusted publishing's exchange of a CI
system's OIDC ID token for a pypid upload token (L{pypid.auth.oidc}).
docs/http-api.rst gives the request, the answer and each refusal; the 401
carries C{WWW-Authenticate: Bearer} (RFC 6750: the credential is the
body's token, not Basic).

Every exchange is audited as a C{token-issued} entry, a minted token's
before the answer. Refusals cost a client nothing (any CI repository gets
genuine tokens for pypid's audience, a replay is free, junk cheaper), so
they are folded as failed logins are
(L{pypid.web.server.audit_trail.AuditTrail.fold_refused}): at most 102
entries a minute, and nobody waits for them to be written
(docs/performance.rst: 256 KiB of log a second before, 0.16 KiB/s at most
now).

The work is bounded too. Each address may have L{EXCHANGE_FAILURES}
refusals in the throttle's five-minute window, exchanges under way
included; past them it gets 429 before anything is read or verified. The
throttle is the exchange's own: a failing CI job behind a NAT never holds
back the password logins of that address, nor a guesser there the
exchanges. A publisher's 429 (L{PublisherHeldBack}) does not count: it
would let one publisher hold back the others behind the same address (a
CI's shared runners). An unreachable issuer's 503 (L{IssuerDown}) does:
junk naming one is as cheap as any other. A 503 for the server's own load
does not. Only a fetch of an issuer's keys makes exchanges wait, at most
L{pypid.auth.issuer_keys.MAX_WAITERS} per issuer, so an issuer that hangs
holds back no other's.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from urllib.parse import urlsplit

import attrs
from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.auth.oidc import Minted, TrustedPublishing, Verified
from pypid.auth.oidc_errors import (
    IssuerBusy,
    IssuerUnavailable,
    NoPublisher,
    OverShare,
    TokenRefused,
    TooMany,
    format_time,
)
from pypid.auth.shared_throttle import ThrottleShare
from pypid.auth.throttle import LoginThrottle
from pypid.auth.verifier import Identity
from pypid.core.access.addresses import IPV6_PREFIX
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import (
    BadRequest,
    Forbidden,
    HTTPError,
    NotAcceptable,
    NotFound,
    TooManyRequests,
    Unavailable,
)
from pypid.web.identity.request_auth import client_address
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.server.respond import RETRY_AFTER
from pypid.web.server.routes import answer_errors, bounded_body, send_json

#: (the namespace these lines always had, before the module moved: log filters keep matching)
log = Logger(namespace="pypid.web.identity.token_exchange")

#: The largest request body: an ID token is 1 to 2 KiB.
MAX_BODY = 64 << 10

#: Refused exchanges (4xx) counted against an address in the throttle's
#: window before it is held back: the throttle's bound of failures per
#: address, whatever user names they tried. A CI job exchanges once; a
#: hundred refusals in five minutes is a job broken, or someone probing.
EXCHANGE_FAILURES = 100

#: The audit event of an exchange.
EVENT = ChangeKind.TOKEN_ISSUED


class IssuerDown(Unavailable):
    """The ID token's issuer cannot be reached, or its keys used (503): counted as a refusal."""


class PublisherHeldBack(TooManyRequests):
    """
    The token's publisher holds its share of the places, or mints faster
    than its rate (429): not counted against the address.
    """


class InvalidIDToken(HTTPError):
    """The ID token is not trusted (401, with a Bearer challenge)."""

    code = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, [(b"www-authenticate",
                                    b'Bearer realm="pypid", error="invalid_token"')])


def _discovery_keys(paths: Iterable[str]) -> frozenset[str]:
    """The discovery keys of upload paths: the sha256 of each (PEP 807's draft)."""
    return frozenset(hashlib.sha256(path.encode("utf-8")).hexdigest() for path in paths)


def exchange_throttle(clock: IReactorTime, ipv6_prefix: int = IPV6_PREFIX,
                      share: ThrottleShare | None = None) -> LoginThrottle:
    """
    The exchange's throttle: L{EXCHANGE_FAILURES} refusals per client (of
    C{ipv6_prefix} bits: C{[auth] throttle_ipv6_prefix}); in a worker of a
    machine, the workers' counts together (C{share}).
    """
    return LoginThrottle(clock, max_address_failures=EXCHANGE_FAILURES,
                         ipv6_prefix=ipv6_prefix, share=share)


@attrs.define(slots=False)
class TrustedPublishingArea:
    """
    The exchange route.

    @ivar _publishing: L{None} when trusted publishing is not configured.
    @ivar _throttle: the exchange's own (L{exchange_throttle}), counting
        refusals by client only.
    """

    _publishing: TrustedPublishing | None
    _audit: AuditTrail
    _clock: IReactorTime
    #: the sha256 of each path that takes uploads here (C{/.well-known/pytp/})
    _discoverable: frozenset[str] = attrs.field(default=frozenset(), kw_only=True,
                                                converter=_discovery_keys)
    #: C{[pypid] base_url}: the host the discovery names, if set
    _base_url: str | None = attrs.field(default=None, kw_only=True)
    _throttle: LoginThrottle = attrs.field(
        default=attrs.Factory(lambda self: exchange_throttle(self._clock), takes_self=True),
        kw_only=True)

    app = Klein()
    answer_errors(app)

    @app.route("/api/oidc/mint-token", methods=["POST"])
    async def mint(self, request: IRequest) -> bytes:
        """
        Exchange an OIDC ID token for an upload token of the projects its
        publisher may upload to (see the module docstring).
        """
        minted = await self._mint(request)
        token = minted.token
        # (a minted token always expires, after [oidc] token_lifetime)
        expires = format_time(token.expires) if token.expires is not None else "never"
        return send_json(request, {"token": minted.text, "expires": expires,
                                   "projects": list(minted.projects)})

    # -- the routes the clients derive from the upload URL's host ---------------

    @app.route("/_/oidc/audience", methods=["GET", "HEAD"])
    def audience(self, request: IRequest) -> bytes:
        """
        C{{"audience": ...}}: what twine, uv and the publishing action ask
        the CI system's ID token for (C{[oidc] audience}).
        """
        try:
            _accepts_pytp(request)
            return send_json(request, {"audience": self._enabled().settings.audience})
        except HTTPError as e:
            return send_json_error(request, e)

    @app.route("/_/oidc/mint-token", methods=["POST"])
    async def mint_for_clients(self, request: IRequest) -> bytes:
        """
        The exchange as the clients call it: C{{"token": ..., "expires":
        <Unix time>}}, and a refusal as JSON whose C{errors} they print.
        """
        try:
            _accepts_pytp(request)
            minted = await self._mint(request)
        except HTTPError as e:
            return send_json_error(request, e)
        expires = minted.token.expires
        return send_json(request, {"token": minted.text,
                                   **({"expires": int(expires)} if expires is not None else {})})

    @app.route("/_/oidc/burn-token", methods=["POST"])
    async def burn(self, request: IRequest) -> bytes:
        """
        C{{"token": "<minted token>"}}: uv revokes the token it was minted
        once its upload is done. The token presented is the credential; any
        other is answered alike, so that the route tells nothing of tokens.
        """
        try:
            _accepts_pytp(request)
            publishing = self._enabled()
            text = _body_token(request, "upload token", "the upload token to revoke")
        except HTTPError as e:
            return send_json_error(request, e)
        token = publishing.tokens.verify(text)
        if token is not None and publishing.tokens.revoke(token.id):
            self._audit.record(request, Identity(token.user), ChangeKind.TOKEN_REVOKED,
                               target=token.id, detail="revoked by its holder")
            await self._audit.written(request)
            log.info("Revoked the minted token {id} of {publisher} at its holder's request",
                     id=token.id, publisher=token.user)
        return send_json(request, {})

    @app.route("/.well-known/pytp/<string:key>", methods=["GET", "HEAD"])
    def discover(self, request: IRequest, key: str) -> bytes:
        """
        Trusted publishing's discovery (the PEP 807 draft): C{key} is the
        sha256 of an upload URL's path; for a path that takes uploads here
        (C{/}, C{/legacy/}, a hosted index's C{/NAME/}...), the two
        endpoints, on the host the client asked; 404 without a body for
        any other, and when trusted publishing is off.
        """
        publishing = self._publishing
        if (publishing is None or not publishing.enabled
                or key.lower() not in self._discoverable):
            request.setResponseCode(404)
            request.setHeader(b"cache-control", b"no-store")
            return b""
        try:
            _accepts_pytp(request)
        except HTTPError as e:
            return send_json_error(request, e)
        root = self._root_for(request)
        return send_json(request, {"audience-endpoint": root + "_/oidc/audience",
                                   "mint-token-endpoint": root + "_/oidc/mint-token"})

    def _root_for(self, request: IRequest) -> str:
        """The server's root URL as the client reached it (C{[pypid] base_url}'s host, if set)."""
        if self._base_url is not None:
            parts = urlsplit(self._base_url)
            return f"{parts.scheme}://{parts.netloc}/"
        scheme = "https" if request.isSecure() else "http"
        host = (request.getHeader(b"host") or b"").decode("ascii", "replace")
        return f"{scheme}://{host}/"

    def _enabled(self) -> TrustedPublishing:
        publishing = self._publishing
        if publishing is None or not publishing.enabled:
            raise NotFound("trusted publishing is not configured ([oidc] issuers)")
        return publishing

    async def _mint(self, request: IRequest) -> Minted:
        """Verify the request's ID token and mint its token, audited (the module docstring)."""
        publishing = self._enabled()
        address = client_address(request)
        # (the other workers' refusals taken in first, with the lane held:
        # they move no ring that would have this worker catch up)
        wait = self._throttle.reserve(None, address)
        if wait:
            error = TooManyRequests("too many refused token exchanges from this address; "
                                    "try again later", [(b"retry-after", b"%d" % int(wait))])
            self._audit.fold_refused(address, None, EVENT, error)
            raise error
        counted = False
        try:
            minted, verified = await self._exchange(publishing, request, address)
            self._throttle.succeeded(None, address)
            counted = True
        except HTTPError as e:
            if (e.code < 500 and not isinstance(e, PublisherHeldBack)) \
                    or isinstance(e, IssuerDown):
                self._throttle.failed(None, address)
                counted = True
            raise
        finally:
            if not counted:
                self._throttle.abandoned(None, address)
        token = minted.token
        expires = format_time(token.expires) if token.expires is not None else "never"
        projects = list(minted.projects)
        detail = (f"{verified.issuer} jti {verified.claims['jti']}: upload to "
                  f"{' '.join(projects)} until {expires}")
        self._audit.record(request, Identity(minted.publisher), EVENT, target=token.id,
                           detail=detail)
        await self._audit.written(request)
        log.info("Minted token {id} for {publisher} (upload to {projects})", id=token.id,
                 publisher=minted.publisher, projects=" ".join(projects))
        return minted

    async def _exchange(self, publishing: TrustedPublishing, request: IRequest,
                        address: str | None) -> tuple[Minted, Verified]:
        """Verify the request's ID token and mint its upload token; a refusal is audited."""
        verified = None
        # (who a refusal names: the publisher of a genuine token)
        publisher = None
        try:
            text = _body_token(request, "OIDC ID token", "the OIDC ID token of the CI job")
            try:
                verified = await publishing.verify(text)
                publisher = verified.publisher
                return publishing.mint(verified), verified
            except NoPublisher as e:
                raise Forbidden(str(e))
            except TokenRefused as e:
                raise InvalidIDToken(str(e))
            except OverShare as e:
                publisher = e.publisher
                raise PublisherHeldBack(str(e), [(b"retry-after",
                                                  b"%d" % math.ceil(e.retry_after))])
            except TooMany as e:
                raise Unavailable(str(e), [(b"retry-after", RETRY_AFTER)])
            except IssuerBusy as e:
                log.warn("Cannot verify an ID token now: {error}", error=str(e))
                raise Unavailable("too many token exchanges are waiting for their issuer; "
                                  "try again shortly", [(b"retry-after", RETRY_AFTER)])
            except IssuerUnavailable as e:
                # (what went wrong with the issuer is for the log, not for
                # whoever sent a token)
                log.warn("Cannot verify an ID token now: {error}", error=str(e))
                raise IssuerDown("the token cannot be verified now: its issuer cannot be "
                                 "reached, or its keys cannot be used",
                                 [(b"retry-after", RETRY_AFTER)])
        except HTTPError as e:
            log.info("Refused an ID token from {address}: {reason}", address=address,
                     reason=e.message)
            self._audit.fold_refused(address, publisher, EVENT, e)
            raise


def _body_token(request: IRequest, name: str, what: str) -> str:
    """
    The C{token} of the request's JSON body, called C{name} (C{what} at
    length) in a refusal: 413 for a body too large, 400 naming what is wrong.
    """
    try:
        data = json.loads(bounded_body(request, MAX_BODY))
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise BadRequest(f'expected a JSON object: {{"token": "<{name}>"}}')
    if "token" not in data:
        raise BadRequest(f"token: missing ({what})")
    text = data["token"]
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(f"token: expected the {name} as a string")
    return text.strip()


#: The media type of the trusted publishing draft's requests (PEP 807).
PYTP = b"application/vnd.pypi.pytp.v1+json"

#: The C{code} of a JSON refusal, by status (the draft leaves codes to the
#: index; these are the public index's where it has them).
ERROR_CODES = {400: "invalid-payload", 401: "invalid-token", 403: "invalid-publisher",
               404: "not-enabled", 406: "not-acceptable", 413: "invalid-payload",
               429: "rate-limited", 503: "unavailable"}


def _accepts_pytp(request: IRequest) -> None:
    """
    Refuse (406) a request whose C{Accept} names neither the draft's type
    nor JSON nor anything: twine and uv send none, or C{*/*}.
    """
    accept = request.getHeader(b"accept")
    if not accept:
        return
    types = {part.split(b";")[0].strip().lower() for part in accept.split(b",")}
    if types & {PYTP, b"application/json", b"*/*", b"application/*"}:
        return
    raise NotAcceptable(f"expected Accept: {PYTP.decode()}")


def send_json_error(request: IRequest, error: HTTPError) -> bytes:
    """
    A refusal as the clients of trusted publishing read it (PEP 807's
    error response, as the public index answers), its status and headers kept.
    """
    request.setResponseCode(error.code)
    for name, value in error.headers:
        request.setHeader(name, value)
    code = ERROR_CODES.get(error.code, "error")
    return send_json(request, {"message": error.detail,
                               "errors": [{"code": code, "description": error.detail}]})
