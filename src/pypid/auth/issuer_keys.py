"""
An OIDC issuer's signature keys: its discovery document and JWKS, fetched under
a deadline and a size bound, kept, and fetched again for an unknown C{kid} at
most once per C{min_refresh} (L{IssuerKeys}); and how an issuer is asked for a
JSON object (L{request_json}), as single sign-on's token and userinfo endpoints
are too. joserfc and treq are imported where keys are read, not with the
module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.auth.oidc_errors import IssuerBusy, IssuerUnavailable, TokenRefused, short
from pypid.http import bodies

if TYPE_CHECKING:
    # (types only: joserfc and treq load with the first issuer)
    from joserfc.jwk import Key
    from treq.client import HTTPClient

#: (trusted publishing's namespace: its log lines read as before the split)
log = Logger(namespace="pypid.auth.oidc")

#: The key types a JWKS may hold that pypid uses (C{oct}, a shared secret, never).
KEY_TYPES = ("RSA", "EC", "OKP")
#: The smallest RSA key trusted.
MIN_RSA_BITS = 2048

#: The largest discovery document and JWKS read from an issuer.
MAX_DISCOVERY_SIZE = 64 << 10
MAX_JWKS_SIZE = 256 << 10
#: The most keys of one JWKS kept.
MAX_KEYS = 100
#: The most exchanges waiting at once for one fetch of an issuer's keys;
#: past it they are refused (L{IssuerBusy}), so clients sending tokens of an
#: issuer that hangs cannot pile up requests for the fetch's whole deadline.
MAX_WAITERS = 100


def import_jwks(data: object) -> dict[str, Key]:
    """
    The signature keys of a JWKS document, by C{kid}: keys without a C{kid},
    meant for encryption, of a type pypid does not use (C{oct} above all) or
    too weak, and entries that are not keys, are left out.

    @raise ValueError: when C{data} is no JWKS at all.
    """
    from joserfc import errors as jose_errors
    from joserfc.jwk import RSAKey, import_key

    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JWKS (an object with a list of keys)")
    keys: dict[str, Key] = {}
    for entry in data["keys"][:MAX_KEYS]:
        if not isinstance(entry, dict) or entry.get("kty") not in KEY_TYPES:
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or entry.get("use", "sig") != "sig":
            continue
        public = {name: value for name, value in entry.items()
                  if name not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
        try:
            key = import_key(public)
        except (jose_errors.JoseError, ValueError, TypeError) as e:
            log.warn("Skipping the key {kid} of a JWKS: {error}", kid=short(kid), error=e)
            continue
        if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
            continue
        keys[kid] = key
    return keys


@attrs.define
class IssuerKeys:
    """
    One issuer's signature keys: its discovery document gives C{jwks_uri},
    whose JWKS is kept for C{ttl} seconds. An unknown C{kid} fetches them again
    (the issuer rotated its keys), but no fetch starts less than C{min_refresh}
    seconds after the last, and concurrent needs share one fetch, at most
    C{max_waiters} of them (the others are refused, L{IssuerBusy}, or use the
    keys at hand); when a fetch fails, the keys already known are used.

    @ivar url: the issuer, as its tokens' C{iss} say it.
    """

    name: str
    url: str
    _http: HTTPClient
    _clock: IReactorTime
    timeout: float = 10.0
    ttl: float = 3600.0
    min_refresh: float = 30.0
    max_waiters: int = MAX_WAITERS
    #: whether the JWKS must be on the issuer's own host (trusted
    #: publishing's CI issuers); single sign-on's providers may keep their
    #: keys elsewhere (Google's are on another host than its issuer)
    same_host: bool = True
    keys: dict[str, Key] = attrs.field(factory=dict)
    #: the discovery document last read (L{None}: none yet)
    discovery: dict[str, Any] | None = None
    #: when the keys were last fetched (L{None}: never)
    fetched: float | None = None
    _started: float | None = None
    _error: str | None = None
    _waiters: list[Deferred[None]] = attrs.field(factory=list)

    @property
    def discovery_url(self) -> str:
        """Where the issuer's discovery document is (OpenID Connect Discovery 1.0, 4)."""
        return self.url.rstrip("/") + "/.well-known/openid-configuration"

    async def key(self, kid: str) -> Key:
        """
        The key C{kid}, fetching the JWKS when needed and allowed.

        @raise TokenRefused: the issuer publishes no such key.
        @raise IssuerUnavailable: its keys cannot be had.
        """
        now = self._clock.seconds()
        stale = self.fetched is None or now - self.fetched >= self.ttl
        if stale or kid not in self.keys:
            try:
                await self._refresh(now)
            except IssuerBusy:
                if kid not in self.keys:
                    raise
            except IssuerUnavailable:
                if kid not in self.keys:
                    raise
                log.warn("Using the keys of {issuer} fetched earlier: {error}", issuer=self.name,
                         error=self._error)
        key = self.keys.get(kid)
        if key is None:
            raise TokenRefused(f"the token is signed with a key ({short(kid)!r}) that the "
                               f"issuer {self.name} does not publish")
        return key

    async def discovered(self) -> dict[str, Any]:
        """
        The issuer's discovery document, fetched again (with its keys) once
        C{ttl} old; the one read before while it cannot be.

        @raise IssuerUnavailable: none could ever be read.
        """
        now = self._clock.seconds()
        if self.fetched is None or now - self.fetched >= self.ttl:
            try:
                await self._refresh(now)
            except IssuerUnavailable:
                if self.discovery is None:
                    raise
        if self.discovery is None:
            raise IssuerUnavailable(self._error or f"the issuer {self.name} cannot be read")
        return self.discovery

    def _refresh(self, now: float) -> Deferred[None]:
        """
        A L{Deferred} firing once the keys were fetched again (or failing with
        L{IssuerUnavailable}), or at once when a fetch started less than
        C{min_refresh} ago.
        """
        waiter: Deferred[None]
        if self._waiters:
            if len(self._waiters) >= self.max_waiters:
                raise IssuerBusy(f"{len(self._waiters)} exchanges wait for the keys of the "
                                 f"issuer {self.name} already")
            waiter = Deferred()
            self._waiters.append(waiter)
            return waiter
        if self._started is not None and now - self._started < self.min_refresh:
            if not self.keys and self._error is not None:
                raise IssuerUnavailable(self._error)
            return succeed(None)
        waiter = Deferred()
        self._waiters.append(waiter)
        self._started = now
        fetch = ensureDeferred(self._fetch())
        fetch.addBoth(self._fetched)
        return waiter

    def _fetched(self, result: None | Failure) -> None:
        waiters, self._waiters = self._waiters, []
        if isinstance(result, Failure):
            if not result.check(IssuerUnavailable):
                log.failure("Fetching the keys of {issuer}", result, issuer=self.name)
                result = Failure(IssuerUnavailable(
                    f"the keys of the issuer {self.name} cannot be read"))
            self._error = result.value.args[0]
            log.warn("Cannot fetch the keys of {issuer}: {error}", issuer=self.name,
                     error=self._error)
        else:
            self._error = None
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(None)

    async def _fetch(self) -> None:
        discovery = await self._get_json(self.discovery_url, MAX_DISCOVERY_SIZE,
                                         "discovery document")
        if discovery.get("issuer") != self.url:
            raise IssuerUnavailable(
                f"the discovery document of the issuer {self.name} names another issuer "
                f"({short(discovery.get('issuer'))})")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme != "https":
            raise IssuerUnavailable(f"the discovery document of the issuer {self.name} has no "
                                    "https jwks_uri")
        if self.same_host and \
                urlsplit(jwks_uri).netloc.lower() != urlsplit(self.url).netloc.lower():
            # (a document sending pypid to another host would make it a client of any)
            raise IssuerUnavailable(f"the jwks_uri of the issuer {self.name} is not on its "
                                    f"host ({short(jwks_uri)})")
        document = await self._get_json(jwks_uri, MAX_JWKS_SIZE, "JWKS")
        try:
            keys = import_jwks(document)
        except ValueError as e:
            raise IssuerUnavailable(f"the JWKS of the issuer {self.name} is {e}")
        self.keys = keys
        self.discovery = discovery
        self.fetched = self._clock.seconds()
        log.info("Fetched {count} keys of the issuer {issuer}", count=len(keys),
                 issuer=self.name)

    async def _get_json(self, url: str, limit: int, what: str) -> dict[str, Any]:
        """GET a JSON object, the whole exchange within C{timeout} seconds."""
        _code, data = await request_json(self._http, self._clock, self.timeout, "GET", url,
                                         limit, f"the {what} of the issuer {self.name}")
        return data


async def request_json(http: HTTPClient, clock: IReactorTime, timeout: float, method: str,
                       url: str, limit: int, where: str, *,
                       data: Mapping[str, str] | None = None,
                       headers: Mapping[str, str] | None = None,
                       codes: tuple[int, ...] = (200,)) -> tuple[int, dict[str, Any]]:
    """
    Ask an issuer for a JSON object (its answer read to C{limit} bytes at most,
    the whole exchange within C{timeout} seconds, never following a redirect),
    with C{data} as a form's body.

    @param where: what is asked, for messages (C{"the JWKS of the issuer ci"}).
    @param codes: the statuses whose body is read (others are refused).
    @raise IssuerUnavailable: saying why it cannot be had.
    """
    sent: dict[bytes | str, list[bytes | str]] = {
        "Accept": ["application/json"], **{k: [v] for k, v in (headers or {}).items()}}
    current = http.request(method, url, headers=sent, data=dict(data) if data else None,
                           allow_redirects=False, unbuffered=True)
    holder: list[Deferred[Any]] = [current]
    timer = clock.callLater(timeout, lambda: holder[0].cancel())
    try:
        try:
            response = await current
        except Exception as e:
            if not timer.active():  # (it fired: it is cancelled only below)
                raise IssuerUnavailable(f"{where} did not answer within {timeout:g} s")
            raise IssuerUnavailable(f"cannot reach {where}: {bodies.describe(e)}")
        if response.code not in codes:
            bodies.discard(response, clock, timeout)
            raise IssuerUnavailable(f"{where} answered {response.code}")
        holder[0] = reading = bodies.read_body(response, limit, clock, timeout)
        try:
            body = await reading
        except (CancelledError, bodies.BodyError) as e:
            if not timer.active():  # (it fired: it is cancelled only below)
                raise IssuerUnavailable(f"{where} did not arrive within {timeout:g} s")
            raise IssuerUnavailable(f"{where} could not be read: {e}")
    finally:
        if timer.active():
            timer.cancel()
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise IssuerUnavailable(f"{where} is not JSON")
    if not isinstance(document, dict):
        raise IssuerUnavailable(f"{where} is not a JSON object")
    return response.code, document
