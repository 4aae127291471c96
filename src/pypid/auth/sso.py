"""
Single sign-on (C{[sso]}): pypid as an OpenID Connect relying party, logging
people in to the pages through their company's provider with the authorization
code flow, PKCE, C{state} and C{nonce}.

L{SingleSignOn.begin} starts a login; L{SingleSignOn.finish} takes the browser
back: the C{state} and its binding cookie, the code traded at the token
endpoint with the client's secret and the PKCE verifier, and the ID token
verified as trusted publishing verifies its tokens, then its claims. The user's
and groups' claims are read from the ID token, or from the userinfo endpoint
(whose C{sub} must be the ID token's).

Only the ID token is used: the access token serves the userinfo request
and is dropped; no refresh token is asked for.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.auth.id_tokens import check_algorithm, read_unverified, signed_claims
from pypid.auth.issuer_keys import IssuerKeys, request_json
from pypid.auth.oidc_errors import IssuerUnavailable, TokenRefused
from pypid.config.sso_settings import SSOConfig
from pypid.core.access.sso_flow import (
    LoginRefused,
    PendingLogin,
    PendingLogins,
    authorization_url,
    check_id_claims,
    map_claims,
    provider_key,
)
from pypid.machine.topics import LONE, Hub, Topic

if TYPE_CHECKING:
    from treq.client import HTTPClient

log = Logger()

#: The largest answer of the token and userinfo endpoints read.
MAX_TOKEN_RESPONSE = 64 << 10


class ProviderUnavailable(Exception):
    """The provider cannot be reached or read now (a 503 page); the message says why."""


@attrs.frozen
class SignedIn:
    """
    A person the provider vouched for (C{subject}: its C{sub}, for the log).

    @ivar provider: the provider and client that vouched
        (L{pypid.core.access.sso_flow.provider_key}), as configured when the
        login came back: a reload meanwhile that changed them makes it void.
    """

    user: str
    groups: frozenset[str]
    next_path: str
    subject: str
    provider: str


def _https(value: object, what: str) -> str:
    if not isinstance(value, str) or urlsplit(value).scheme != "https" \
            or not urlsplit(value).hostname:
        raise ProviderUnavailable(f"the provider's discovery document has no https {what}")
    return value


@attrs.define
class SingleSignOn:
    """
    The provider of C{[sso]}, or none (L{enabled}).

    @ivar hub: in a worker of a machine, its hub: each login begun or taken
        is announced, and the others' taken in before the next answer
        (L{sync}), so a login begun on one worker finishes on any, once.
    """

    config: SSOConfig
    secret: str = attrs.field(repr=False)
    _http: HTTPClient | None
    _clock: IReactorTime
    _random: Callable[[int], bytes] = os.urandom
    pending: PendingLogins = attrs.field(factory=PendingLogins)
    keys: IssuerKeys | None = None
    hub: Hub = attrs.field(default=LONE, kw_only=True)

    def __attrs_post_init__(self) -> None:
        self.keys = self._issuer_keys(self.config, None)
        self.hub.on(Topic.SSO, self._heard, past=True)

    def _tell(self, kind: bytes, data: object) -> None:
        """Announce a login begun (C{s}) or taken (C{t}) to the machine's other workers."""
        self.hub.publish(Topic.SSO, kind, json.dumps(data).encode("utf-8"))

    def _heard(self, fields: Sequence[bytes], worker: int) -> None:
        kind, data = fields
        try:
            if kind == b"s":
                self.pending.add(PendingLogin.from_json(json.loads(data)), self._clock.seconds())
            elif kind == b"t":
                self.pending.forget(json.loads(data))
        except (ValueError, TypeError):
            return

    def sync(self) -> Deferred[None]:
        """In a worker of a machine: take in the logins the others began or took."""
        self.hub.take()
        return succeed(None)

    @property
    def enabled(self) -> bool:
        """Whether a provider is configured."""
        return self.config.issuer is not None and self._http is not None

    @property
    def label(self) -> str:
        """What the login page's button names the provider."""
        return self.config.label

    def _issuer_keys(self, config: SSOConfig, known: IssuerKeys | None) -> IssuerKeys | None:
        if config.issuer is None or self._http is None:
            return None
        if known is not None and known.url == config.issuer:
            keys = known
        else:
            keys = IssuerKeys("[sso]", config.issuer, self._http, self._clock, same_host=False)
        keys.timeout = config.timeout
        return keys

    def reconfigure(self, config: SSOConfig, secret: str, http: HTTPClient | None) -> None:
        """
        Take a reloaded C{[sso]}: the provider's keys are kept while its issuer
        stays; logins under way are forgotten when the provider or client
        changed.
        """
        if http is not None:
            self._http = http
            self.keys = None
        if (config.issuer, config.client_id) != (self.config.issuer, self.config.client_id):
            self.pending = PendingLogins()
        self.config, self.secret = config, secret
        self.keys = self._issuer_keys(config, self.keys)

    async def _discovery(self) -> dict[str, Any]:
        if self.keys is None:
            raise ProviderUnavailable("single sign-on is not configured")
        try:
            return await self.keys.discovered()
        except IssuerUnavailable as e:
            raise ProviderUnavailable(str(e))

    async def begin(self, redirect_uri: str, next_path: str,
                    client: str = "") -> tuple[str, str]:
        """
        Start a login: C{(the provider's URL to send the browser to, the
        binding cookie's value)}.

        @param redirect_uri: the callback's absolute URL, as registered at the provider.
        @param client: who asks (the throttle's key of its address), whose
            logins under way are bounded apart from the others'.
        @raise ProviderUnavailable: its discovery document cannot be had.
        """
        discovery = await self._discovery()
        endpoint = _https(discovery.get("authorization_endpoint"), "authorization_endpoint")
        if len(json.dumps([*(" " * 86,) * 4, redirect_uri, next_path, 0.0, client])) + 4 \
                > self.hub.room:
            # (too long to tell the other workers: back to the landing page)
            next_path = "./"
        pending, binding = self.pending.start(redirect_uri, next_path, self._clock.seconds(),
                                              self._random, client)
        self._tell(b"s", pending.to_json())
        return authorization_url(endpoint, self.config.client_id, self.config.scopes,
                                 pending), binding

    async def finish(self, state: str, code: str, binding: str | None) -> SignedIn:
        """
        Finish the login C{state} names with the provider's C{code}.

        @param binding: the browser's binding cookie (L{None}: it sent none).
        @raise LoginRefused: the login or the ID token is not right (a 4xx).
        @raise ProviderUnavailable: the provider cannot be reached or read (a 503).
        """
        provider = self.provider
        pending = self.pending.take(state, binding, self._clock.seconds())
        self._tell(b"t", state)
        if not code or len(code) > 2048:
            raise LoginRefused("The provider sent no authorization code back.")
        discovery = await self._discovery()
        tokens = await self._trade(discovery, code, pending.redirect_uri, pending.verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise ProviderUnavailable("the provider's token endpoint gave no ID token")
        claims = await self._verify(id_token, pending.nonce)
        claims = await self._with_userinfo(discovery, claims, tokens.get("access_token"))
        user, groups = map_claims(claims, self.config.mapping)
        return SignedIn(user, groups, pending.next_path, str(claims["sub"]), provider)

    @property
    def provider(self) -> str:
        """The provider and client configured now (L{pypid.core.access.sso_flow.provider_key})."""
        config = self.config
        return provider_key(config.issuer or "", config.client_id, config.user_claim,
                            config.groups_claim)

    def abandon(self, state: str, binding: str | None) -> None:
        """End the login C{state} names, if this browser's, without finishing it."""
        try:
            self.pending.take(state, binding, self._clock.seconds())
        except LoginRefused:
            return
        self._tell(b"t", state)

    async def _trade(self, discovery: Mapping[str, Any], code: str, redirect_uri: str,
                     verifier: str) -> dict[str, Any]:
        """The token endpoint's answer for C{code} (RFC 6749, 4.1.3; RFC 7636, 4.5)."""
        if self._http is None:
            raise ProviderUnavailable("single sign-on is not configured")
        endpoint = _https(discovery.get("token_endpoint"), "token_endpoint")
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": redirect_uri, "code_verifier": verifier}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        methods = discovery.get("token_endpoint_auth_methods_supported")
        client_id = self.config.client_id
        if isinstance(methods, list) and "client_secret_basic" not in methods \
                and "client_secret_post" in methods:
            form.update(client_id=client_id, client_secret=self.secret)
        else:
            # (RFC 6749, 2.3.1: each form-encoded, then joined)
            pair = f"{quote(client_id, safe='')}:{quote(self.secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            status, answer = await request_json(
                self._http, self._clock, self.config.timeout, "POST", endpoint,
                MAX_TOKEN_RESPONSE, "the provider's token endpoint", data=form,
                headers=headers, codes=(200, 400, 401))
        except IssuerUnavailable as e:
            raise ProviderUnavailable(str(e))
        if status != 200:
            error = answer.get("error")
            error = error if isinstance(error, str) and error.isprintable() else "an error"
            log.warn("The provider refused a code: {status} {error}", status=status,
                     error=error[:100])
            if error == "invalid_grant":
                raise LoginRefused("The provider refused this sign-in's code (invalid_grant): "
                                   "it was already used, has expired, or is another "
                                   "application's. Start again from the login page.")
            raise ProviderUnavailable(f"the provider's token endpoint refused pypid "
                                      f"({status}, {error[:100]}): is [sso] client_id or "
                                      "the client secret right?")
        return answer

    async def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of a genuine ID token for this login."""
        if self.keys is None:
            # (a reload took [sso] away while the code was being traded)
            raise ProviderUnavailable("single sign-on is not configured")
        try:
            header, _ = read_unverified(id_token)
            alg = check_algorithm(header)
            claims = await signed_claims(id_token, header, alg, self.keys)
        except TokenRefused as e:
            log.warn("Refused an ID token of the provider: {reason}", reason=e)
            raise LoginRefused(f"The provider's ID token was refused: {e}.")
        except IssuerUnavailable as e:
            raise ProviderUnavailable(str(e))
        try:
            check_id_claims(claims, self.keys.url, self.config.client_id, nonce,
                            self._clock.seconds(), self.config.leeway)
        except LoginRefused as e:
            log.warn("Refused an ID token of the provider: {reason}", reason=e)
            raise
        return claims

    async def _with_userinfo(self, discovery: Mapping[str, Any], claims: dict[str, Any],
                             access_token: object) -> dict[str, Any]:
        """C{claims}, with the userinfo endpoint's where the ID token lacks the user's, groups'."""
        mapping = self.config.mapping
        wanted = [name for name in (mapping.user_claim, mapping.groups_claim)
                  if name and name not in claims]
        if mapping.user_claim == "email" and "email" in wanted:
            # (an address read there is taken only as verified there)
            wanted.append("email_verified")
        endpoint = discovery.get("userinfo_endpoint")
        if not wanted or not isinstance(endpoint, str) or not isinstance(access_token, str) \
                or self._http is None:
            return claims
        try:
            _status, info = await request_json(
                self._http, self._clock, self.config.timeout, "GET",
                _https(endpoint, "userinfo_endpoint"), MAX_TOKEN_RESPONSE,
                "the provider's userinfo endpoint",
                headers={"Authorization": f"Bearer {access_token}"})
        except IssuerUnavailable as e:
            raise ProviderUnavailable(str(e))
        if info.get("sub") != claims.get("sub"):
            raise LoginRefused("The provider's userinfo is about another person (its sub "
                               "is not the ID token's).")
        return {**claims, **{name: info[name] for name in wanted if name in info}}
