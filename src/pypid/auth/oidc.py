"""
Trusted publishing: a CI job trades the OIDC ID token its CI system signs
for it for a pypid upload token that lives 15 minutes, so no long-lived
upload secret is stored in CI.

The exchange (L{pypid.web.identity.token_exchange}) trusts a token only when:

  - it is a JWS signed with an asymmetric algorithm (L{ALGORITHMS}): C{none}
    and every HMAC algorithm are refused by name first, so an C{HS256}
    token whose secret is the issuer's public key never reaches a key;
  - its C{iss} is one of C{[oidc] issuers}, and its C{kid} names a key of
    that issuer's JWKS (L{IssuerKeys}: fetched under a deadline and a size
    bound, cached, fetched again for an unknown C{kid} at most once per
    C{jwks_min_refresh});
  - the signature verifies, C{aud}, C{exp}, C{nbf} and C{iat} are right,
    and C{jti} and C{sub} are present;
  - its claims match a C{[publishers]} rule (L{PublisherRule}), which gives
    the projects; and its C{jti} was not seen before (L{ReplayCache}).

The JWT library is joserfc: its keys are typed, so an algorithm only
verifies with a key of its own type and curve, and its validators take the
time as an argument. It is imported where tokens are read, not here.

The minted tokens (L{PublisherTokens}) are kept in memory only: they live
15 minutes, and writing them would fill the token file and slow each mint.
Each acts as C{publisher:<issuer name>:<repository>} (L{publisher_name}; a
name no user can have), upload only, on its rules' projects. That name
keys its share of the tables (L{pypid.core.access.shares}). Nothing here
blocks: a verification takes 0.13 to 0.23 ms, and junk is refused before
any signature check.
"""

from __future__ import annotations

import base64
import datetime
import heapq
import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeGuard
from urllib.parse import urlsplit

import attrs
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.auth.tokens import Token, TokenBook
from pypid.core.access.publishers import (
    PUBLISHER_PREFIX,
    PublisherRule,
    PublishingSettings,
    claim_text,
    publisher_name,
)
from pypid.core.access.shares import MintRate, TableShares
from pypid.http import bodies

if TYPE_CHECKING:
    # (types only: joserfc and treq load with the first issuer)
    from joserfc.jwk import Key
    from treq.client import HTTPClient

log = Logger()

#: A token exchanged, as replays are told apart: C{(issuer URL, jti)}. The
#: URL is its C{iss}, not the issuer's name in C{[oidc] issuers}, which a
#: reload may change while the token stays the same.
_Replay = tuple[str, str]

#: The signature algorithms accepted: RSA (PKCS#1 v1.5 and PSS), ECDSA and
#: EdDSA; public keys only. C{none} and C{HS*} never.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
              "EdDSA", "Ed25519")
#: The key types a JWKS may hold that pypid uses (C{oct}, a shared secret, never).
KEY_TYPES = ("RSA", "EC", "OKP")
#: The smallest RSA key trusted.
MIN_RSA_BITS = 2048

#: The largest ID token accepted (GitHub's and GitLab's are 1 to 2 KiB).
MAX_TOKEN_SIZE = 16 << 10
#: The largest discovery document and JWKS read from an issuer.
MAX_DISCOVERY_SIZE = 64 << 10
MAX_JWKS_SIZE = 256 << 10
#: The most keys of one JWKS kept.
MAX_KEYS = 100
#: The most exchanges waiting at once for one fetch of an issuer's keys
#: (L{IssuerKeys}); past it they are refused (L{IssuerBusy}), so clients
#: sending tokens of an issuer that hangs cannot pile up requests for the
#: whole fetch's deadline. Only a fetch makes an exchange wait: with the
#: keys at hand, verifying ends at once.
MAX_WAITERS = 100

#: The most exchanged C{jti}s remembered at once (each until its token
#: expires, two hours at most): about 270 bytes each, 27 MiB when full. Past it new exchanges
#: are refused (L{TooMany}, a 503 with Retry-After) rather than a live C{jti} forgotten, which
#: would let its token be exchanged again. They are shared between
#: publishers as the minted tokens are (L{pypid.core.access.shares.TableShares}).
MAX_REPLAYS = 100_000

#: The most live minted tokens at once (15 minutes each by default); past
#: it minting is refused (L{TooMany}) until some expire: a publisher's token
#: is never dropped early under a CI job that uses it. A publisher (the
#: configured one and its repository, L{pypid.core.access.publishers.publisher_name})
#: may hold no more than the places still free
#: (L{pypid.core.access.shares.TableShares}): alone it stops at half.
MAX_MINTED = 10_000
#: The most live minted tokens of one publisher, whatever is free: a tenth
#: of L{MAX_MINTED} (one publisher filled the whole table in 29 to 49 s
#: when it was counted by C{sub}, which each branch changes).
MAX_MINTED_PER_PUBLISHER = MAX_MINTED // 10
#: The mints one publisher may make at once: more than a CI matrix has
#: jobs (GitHub's has at most 256).
MINT_BURST = 300
#: Past its burst, a publisher mints one token every this many seconds: 3,600
#: an hour, past any release pipeline, and one audit entry a second at most
#: (a token burned as soon as used frees its place at once: only the rate
#: bounds how fast such a publisher mints).
MINT_EVERY = 1.0

_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class TokenRefused(ValueError):
    """The ID token is not one pypid trusts (401); the message says why."""


class NoPublisher(TokenRefused):
    """The ID token is genuine, but no C{[publishers]} rule lets it publish (403)."""


class IssuerUnavailable(Exception):
    """The issuer's keys cannot be had now (503); the message says why."""


class TooMany(IssuerUnavailable):
    """Too many minted tokens or remembered C{jti}s are live at once (503)."""


class OverShare(TooMany):
    """
    One publisher holds its share of the places, or mints faster than its
    rate (429): the others are not held back.

    @ivar retry_after: the seconds until it may mint again.
    @ivar publisher: the publisher held back.
    """

    def __init__(self, message: str, retry_after: float, publisher: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.publisher = publisher


class IssuerBusy(IssuerUnavailable):
    """Too many exchanges wait for the keys of one issuer already (503)."""


def _short(value: object, limit: int = 100) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_time(seconds: float) -> str:
    """A POSIX time as ISO 8601 in UTC, to the second (C{2026-01-31T12:00:00Z})."""
    try:
        when = datetime.datetime.fromtimestamp(int(seconds), tz=datetime.UTC)
    except (OverflowError, ValueError, OSError):
        return str(seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the configuration's parts (pure) ----------------------------------------------------


def match_publishers(rules: Iterable[PublisherRule], issuer: str,
                     claims: Mapping[str, Any]) -> tuple[str, ...]:
    """
    The projects (patterns, in file order, no duplicates) that the rules of
    C{issuer} matching C{claims} name.

    @raise NoPublisher: when none matches, saying which claims of the
        closest rule differ (never the values the rule wants).
    """
    projects: list[str] = []
    for rule in matching_rules(rules, issuer, claims):
        if rule.pattern not in projects:
            projects.append(rule.pattern)
    return tuple(projects)


def matching_rules(rules: Iterable[PublisherRule], issuer: str,
                   claims: Mapping[str, Any]) -> list[PublisherRule]:
    """
    The rules of C{issuer} that C{claims} match, in file order.

    @raise NoPublisher: as L{match_publishers}.
    """
    mine = [rule for rule in rules if rule.issuer == issuer]
    if not mine:
        raise NoPublisher(f"no [publishers] rule names the issuer {issuer}")
    matched: list[PublisherRule] = []
    closest: list[str] = []
    for rule in mine:
        missing = rule.mismatches(claims)
        if not missing:
            matched.append(rule)
        elif not closest or len(missing) < len(closest):
            closest = missing
    if matched:
        return matched
    reasons: list[str] = []
    for name in closest:
        value = claims.get(name)
        if value is None:
            reasons.append(f"the token has no {name} claim")
        else:
            reasons.append(f"its {name} is {_short(value)!r}, not the one the rule names")
    raise NoPublisher("no [publishers] rule matches this token: for the closest rule, "
                      + "; ".join(reasons))


# -- replays (pure) ------------------------------------------------------------------


@attrs.define
class ReplayCache:
    """
    The C{jti}s of the tokens already exchanged, each kept until its token
    expires (then it could not be replayed anyway), counted by the
    publisher that exchanged it.

    @ivar limit: the most kept at once; past it, new exchanges are refused
        (L{TooMany}) rather than old entries forgotten early; and a
        publisher holding its share (L{pypid.core.access.shares.TableShares}) is
        refused (L{OverShare}) before then.
    """

    limit: int = MAX_REPLAYS
    # key -> (until, the publisher that exchanged it)
    _until: dict[_Replay, tuple[float, str]] = attrs.field(factory=dict)
    _expiry: list[tuple[float, _Replay]] = attrs.field(factory=list)
    _shares: TableShares = attrs.field(
        default=attrs.Factory(lambda self: TableShares(self.limit, self.limit), takes_self=True))

    def __len__(self) -> int:
        return len(self._until)

    def _forget_expired(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            until, key = heapq.heappop(self._expiry)
            kept = self._until.get(key)
            if kept is not None and kept[0] == until:
                del self._until[key]
                self._shares.give_back(kept[1])

    def seen(self, key: _Replay, now: float) -> bool:
        """Whether C{key} (C{(issuer URL, jti)}) was exchanged and its token is still live."""
        kept = self._until.get(key)
        return kept is not None and kept[0] > now

    def check(self, key: _Replay, publisher: str, now: float) -> None:
        """
        Refuse when there is no room for one more C{jti} of C{publisher}.

        @raise TooMany: the memory is full.
        @raise OverShare: C{publisher} holds its share of it.
        """
        self._forget_expired(now)
        shares = self._shares
        shares.limit = shares.per_owner = self.limit
        if key in self._until:
            return
        if shares.full:
            raise TooMany("too many tokens were exchanged lately; try again later")
        if shares.over_share(publisher):
            # (when the first of all expires: each place freed is room)
            wait = max(1.0, self._expiry[0][0] - now) if self._expiry else 1.0
            raise OverShare(f"{publisher} exchanged {shares.held(publisher)} tokens lately, "
                            "its share; try again later", wait, publisher)

    def add(self, key: _Replay, until: float, now: float, publisher: str = "") -> None:
        """
        Remember C{key}, exchanged by C{publisher}, until C{until} (POSIX time).

        @raise TooMany: as L{check}.
        """
        self.check(key, publisher, now)
        old = self._until.pop(key, None)
        if old is not None:
            self._shares.give_back(old[1])
        self._until[key] = (until, publisher)
        self._shares.take(publisher)
        heapq.heappush(self._expiry, (until, key))


# -- the minted tokens ----------------------------------------------------------------


@attrs.define
class PublisherTokens:
    """
    The upload tokens minted for publishers: a L{TokenBook} kept in memory
    only (see the module docstring), whose expired tokens are dropped as
    new ones come, with each publisher's share of the places
    (L{pypid.core.access.shares.TableShares}) and rate (L{pypid.core.access.shares.MintRate}).

    @ivar clock: provides C{seconds()}.
    @ivar limit: the most live tokens at once.
    """

    clock: IReactorTime
    limit: int = MAX_MINTED
    book: TokenBook = attrs.field(
        default=attrs.Factory(lambda self: TokenBook(self.clock), takes_self=True))
    #: the most live tokens of one publisher
    per_publisher: int = MAX_MINTED_PER_PUBLISHER
    #: the mints one publisher may make at once, then one every C{every} seconds
    burst: int = MINT_BURST
    every: float = MINT_EVERY
    _rate: MintRate = attrs.field(
        default=attrs.Factory(lambda self: MintRate(self.burst, self.every), takes_self=True))
    _shares: TableShares = attrs.field(
        default=attrs.Factory(lambda self: TableShares(self.limit, self.per_publisher),
                              takes_self=True))
    # publisher -> {token id: expires} of its live tokens
    _owned: dict[str, dict[str, float]] = attrs.field(factory=dict)
    _expiry: list[tuple[float, str]] = attrs.field(factory=list)

    def __len__(self) -> int:
        return len(self.book.tokens)

    def _drop(self, token_id: str) -> bool:
        """Forget one token, giving its place back."""
        token = self.book.tokens.pop(token_id, None)
        if token is None:
            return False
        owned = self._owned.get(token.user)
        if owned is not None and owned.pop(token_id, None) is not None:
            self._shares.give_back(token.user)
            if not owned:
                del self._owned[token.user]
        return True

    def _forget_expired(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, token_id = heapq.heappop(self._expiry)
            self._drop(token_id)
        # (tokens revoked before they expire, burned ones above all, leave
        # their entries behind: past twice the live ones, they go at once)
        if len(self._expiry) > 2 * len(self.book.tokens) + 100:
            self._expiry = [(expires, token_id) for owned in self._owned.values()
                            for token_id, expires in owned.items()]
            heapq.heapify(self._expiry)

    def issue(self, publisher: str, projects: Iterable[str], lifetime: float,
              description: str, yields_to: Iterable[str] = (),
              proof: Iterable[tuple[str, str]] = ()) -> tuple[str, Token]:
        """
        A token of C{publisher} that may upload to C{projects}, for C{lifetime}
        seconds, but where a more specific pattern of C{yields_to} names the
        project (another C{[publishers]} entry, which this token does not match).

        @return: C{(token string, L{pypid.auth.tokens.Token})}.
        @raise OverShare: C{publisher} holds its share of the places, or
            mints faster than its rate.
        @raise TooMany: every place is taken.
        """
        now = self.clock.seconds()
        self._forget_expired(now)
        shares = self._shares
        shares.limit, shares.per_owner = self.limit, self.per_publisher
        if shares.full:
            raise TooMany("too many publisher tokens are live; try again later")
        if shares.over_share(publisher):
            held = shares.held(publisher)
            first = min(self._owned.get(publisher, {}).values(), default=now + 1)
            raise OverShare(f"{publisher} has {held} live tokens, its share; try again when "
                            "one expires", max(1.0, first - now), publisher)
        rate = self._rate
        rate.burst, rate.every = self.burst, self.every
        wait = rate.wait(publisher, now)
        if wait:
            raise OverShare(f"{publisher} mints at most {self.burst} tokens at once, then one "
                            f"every {self.every:g} s; try again later", wait, publisher)
        text, token = self.book.issue(publisher, {"upload"}, projects, lifetime, description,
                                      yields_to, proof)
        self._rate.charge(publisher, now)
        shares.take(publisher)
        expires = token.expires if token.expires is not None else now + lifetime
        self._owned.setdefault(publisher, {})[token.id] = expires
        heapq.heappush(self._expiry, (expires, token.id))
        return text, token

    def listing(self) -> list[dict[str, Any]]:
        """The live minted tokens, as the token listing shows them (marked C{minted})."""
        now = self.clock.seconds()
        return [dict(record, minted=True) for record in self.book.listing()
                if record["expires"] is None or record["expires"] > now]

    def revoke(self, token_id: str) -> bool:
        """Revoke one minted token at once (its holder or an admin asks); whether there was one."""
        return self._drop(token_id)

    def verify(self, presented: str) -> Token | None:
        """The live minted token C{presented} is, or L{None}."""
        return self.book.verify(presented)

    def revoke_all(self) -> int:
        """Forget every minted token (the rules that minted them changed)."""
        count = len(self.book.tokens)
        self.book.tokens = {}
        self._owned.clear()
        self._expiry.clear()
        self._shares.clear()
        return count


def is_publisher(name: str) -> bool:
    """Whether an identity's name is a publisher's (a minted token's)."""
    return name.startswith(PUBLISHER_PREFIX)


# -- an issuer's keys -----------------------------------------------------------------


def import_jwks(data: object) -> dict[str, Key]:
    """
    The signature keys of a JWKS document, by C{kid}: keys without a
    C{kid}, meant for encryption, of a type pypid does not use (C{oct}
    above all) or too weak, and entries that are not keys, are left out.

    @raise ValueError: when C{data} is no JWKS at all.
    """
    # (imported here, not with the module: see the module's docstring)
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
            log.warn("Skipping the key {kid} of a JWKS: {error}", kid=_short(kid), error=e)
            continue
        if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
            continue
        keys[kid] = key
    return keys


@attrs.define
class IssuerKeys:
    """
    One issuer's signature keys: its discovery document
    (C{URL/.well-known/openid-configuration}) gives C{jwks_uri}, whose JWKS
    is kept for C{ttl} seconds. An unknown C{kid} fetches them again (the
    issuer rotated its keys), but no fetch starts less than C{min_refresh}
    seconds after the last one, and concurrent needs share one fetch, at
    most C{max_waiters} of them (the others are refused, L{IssuerBusy},
    or use the keys at hand); when a fetch fails, the keys already known
    are used.

    @ivar name: the issuer's name in C{[oidc] issuers}.
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
    #: how many fetches were started (for the tests and the logs)
    fetches: int = 0
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
            raise TokenRefused(f"the token is signed with a key ({_short(kid)!r}) that the "
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
        A L{Deferred} firing once the keys were fetched again (or failing
        with L{IssuerUnavailable}), or at once when a fetch started less than
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
            return _done()
        waiter = Deferred()
        self._waiters.append(waiter)
        self._started = now
        self.fetches += 1
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
                f"({_short(discovery.get('issuer'))})")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme != "https":
            raise IssuerUnavailable(f"the discovery document of the issuer {self.name} has no "
                                    "https jwks_uri")
        if self.same_host and \
                urlsplit(jwks_uri).netloc.lower() != urlsplit(self.url).netloc.lower():
            # (the issuer is trusted, but a document that sends pypid to
            # another host would make it a client of any address it names)
            raise IssuerUnavailable(f"the jwks_uri of the issuer {self.name} is not on its "
                                    f"host ({_short(jwks_uri)})")
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
    Ask an issuer for a JSON object (its answer read to C{limit} bytes at
    most, the whole exchange within C{timeout} seconds, never following a
    redirect), with C{data} as a form's body.

    @param where: what is asked, for messages (C{"the JWKS of the issuer ci"}).
    @param codes: the statuses whose body is read (others are refused).
    @return: C{(status, object)}.
    @raise IssuerUnavailable: saying why it cannot be had.
    """
    sent: dict[bytes | str, list[bytes | str]] = {"Accept": ["application/json"]}
    for name, value in (headers or {}).items():
        sent[name] = [value]
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


def _done() -> Deferred[None]:
    d: Deferred[None] = Deferred()
    d.callback(None)
    return d


# -- verifying and minting -----------------------------------------------------------


@attrs.frozen
class Verified:
    """
    A genuine ID token.

    @ivar issuer: the issuer's name.
    @ivar claims: the token's claims.
    """

    issuer: str
    claims: dict[str, Any]

    @property
    def publisher(self) -> str:
        """
        Who the token is from before any publisher matched it, as a refusal
        names it (L{pypid.core.access.publishers.publisher_name}: its repository).
        """
        return publisher_name(self.issuer, self.claims)


@attrs.frozen
class Minted:
    """A minted upload token: its text (shown once), record and projects."""

    text: str
    token: Token
    projects: tuple[str, ...]
    publisher: str


#: The claims of an ID token a minted token keeps (L{proof_of}): those that
#: say where the CI job ran, which a Sigstore certificate of the same job
#: repeats (GitHub Actions', GitLab CI's, Google's), so an upload's
#: attestations can be checked to come from that job.
PROOF_CLAIMS = (
    "repository", "repository_id", "repository_owner_id", "workflow_ref", "job_workflow_ref",
    "sha", "ref", "environment", "run_id", "run_attempt", "event_name",
    "project_path", "project_id", "namespace_id", "ci_config_ref_uri", "job_id",
    "pipeline_id", "pipeline_source", "email",
)


def proof_of(claims: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """
    What a minted token remembers of the ID token it was minted for: its
    issuer (C{iss}) and the claims of L{PROOF_CLAIMS} it has, as text.
    """
    kept = [("iss", str(claims["iss"]))] if isinstance(claims.get("iss"), str) else []
    for name in PROOF_CLAIMS:
        text = claim_text(claims.get(name))
        if text is not None and len(text) <= 1024:
            kept.append((name, text))
    return tuple(kept)


def read_unverified(text: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """
    The header and claims of a compact JWS, before any signature check
    (only to choose the issuer and key: nothing else is believed yet).
    """
    parts = text.split(".") if isinstance(text, str) and len(text) <= MAX_TOKEN_SIZE else []
    if len(parts) != 3 or not parts[0] or not parts[1] \
            or not all(_BASE64URL.match(part) for part in parts):
        raise TokenRefused("not a JSON Web Token (three base64url parts separated by dots)")
    try:
        header, claims = (json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
                          for part in parts[:2])
    except (ValueError, TypeError, RecursionError):
        raise TokenRefused("not a JSON Web Token (its header or claims cannot be read)")
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenRefused("not a JSON Web Token (its header or claims are not JSON objects)")
    return header, claims


def check_algorithm(header: Mapping[str, Any]) -> str:
    """
    The token's C{alg}, when it is one of L{ALGORITHMS}.

    @raise TokenRefused: for C{none}, any HMAC algorithm, or anything else.
    """
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise TokenRefused("the token names no algorithm (alg)")
    if alg.lower() == "none":
        raise TokenRefused("unsigned tokens (alg none) are refused")
    if alg.upper().startswith("HS"):
        raise TokenRefused(f"tokens signed with a shared secret (alg {_short(alg)}) are "
                           "refused: only an issuer's public-key signatures are accepted")
    if alg not in ALGORITHMS:
        raise TokenRefused(f"the algorithm {_short(alg)} is not accepted (accepted: "
                           f"{', '.join(ALGORITHMS)})")
    return alg


def check_claims(claims: Mapping[str, Any], url: str, audience: str, now: float,
                 leeway: float) -> None:
    """
    Check the signed claims: C{iss}, C{aud}, C{exp}, C{nbf} and C{iat} (with
    C{leeway} seconds), and that C{jti} and C{sub} are there; in that
    order, so the message does not depend on the token's key order.

    @raise TokenRefused: saying which claim is wrong.
    """
    from joserfc import errors as jose_errors
    from joserfc import jwt

    registry = jwt.JWTClaimsRegistry(now=int(now), leeway=int(leeway),
                                     iss={"essential": True, "value": url},
                                     aud={"essential": True, "value": audience})
    needed = {"iss": "the token names no issuer (iss)",
              "aud": "the token names no audience (aud)",
              "exp": "the token has no expiry (exp)",
              "iat": "the token does not say when it was issued (iat)",
              "jti": "the token has no jti claim (pypid needs it to refuse replays)",
              "sub": "the token has no sub claim"}
    exp, iat = claims.get("exp"), claims.get("iat")
    if _number(exp) and _number(iat) and exp - iat > MAX_ID_TOKEN_LIFETIME:
        raise TokenRefused(f"the token is valid for {int(exp - iat)} s; pypid takes ID tokens "
                           f"valid for {MAX_ID_TOKEN_LIFETIME} s at most")
    if _number(iat) and now - iat > MAX_ID_TOKEN_LIFETIME + leeway:
        raise TokenRefused(f"the token was issued at {format_time(iat)}, more than "
                           f"{MAX_ID_TOKEN_LIFETIME} s ago")
    for name in ("iss", "aud", "exp", "nbf", "iat", "jti", "sub"):
        value = claims.get(name)
        if value is None:
            if name in needed:
                raise TokenRefused(needed[name])
            continue
        try:
            if name == "sub":
                if not isinstance(value, str) or not value or len(value) > 255 \
                        or not value.isprintable():
                    raise TokenRefused("the token's sub claim is not a short printable text")
                continue
            getattr(registry, "validate_" + name)(value)
        except jose_errors.ExpiredTokenError:
            raise TokenRefused(f"the token expired at {format_time(value)}")
        except jose_errors.JoseError:
            raise TokenRefused(_claim_refusal(name, value, audience))


async def signed_claims(text: str, header: Mapping[str, Any], alg: str,
                        issuer: IssuerKeys) -> dict[str, Any]:
    """
    The claims of the compact JWS C{text}, once its signature verifies
    with the key of C{issuer} its header names (C{alg} already allowed:
    L{check_algorithm}). Its claims are not checked here.

    @raise TokenRefused: no such key, or a signature that does not verify.
    @raise IssuerUnavailable: the issuer's keys cannot be had now.
    """
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenRefused("the token names no signing key (kid)")
    key = await issuer.key(kid)
    from joserfc import errors as jose_errors
    from joserfc import jwt
    try:
        token = jwt.decode(text, key, algorithms=[alg])
    except jose_errors.BadSignatureError:
        raise TokenRefused("the token's signature is not valid")
    except (jose_errors.InvalidKeyTypeError, jose_errors.InvalidKeyCurveError,
            jose_errors.UnsupportedKeyAlgorithmError,
            jose_errors.UnsupportedKeyUseError) as e:
        raise TokenRefused(f"the key {_short(kid)!r} cannot check an {alg} signature "
                           f"({e.description or e.error})")
    except jose_errors.JoseError as e:
        raise TokenRefused(f"the token cannot be read ({e.description or e.error})")
    return dict(token.claims)


#: The longest an ID token may be valid (C{exp - iat}), and the oldest
#: (C{iat}) it may be: CI systems' tokens live minutes (GitHub's) to the
#: length of a job (GitLab's, an hour by default). The replay cache is
#: per process (see L{ReplayCache}), so this bounds how long a stolen token
#: could be used again after a restart or on another instance.
MAX_ID_TOKEN_LIFETIME = 2 * 3600


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _claim_refusal(name: str, value: object, audience: str) -> str:
    if name == "aud":
        return (f"the token is meant for another audience ({_short(value)}); "
                f"this index accepts {audience!r}")
    if name == "iss":
        return f"the token's issuer {_short(value)} is not the one its key belongs to"
    if name == "nbf" and isinstance(value, (int, float)):
        return f"the token is not valid before {format_time(value)}"
    if name == "iat" and isinstance(value, (int, float)):
        return f"the token says it was issued in the future ({format_time(value)})"
    if name == "jti":
        return "the token's jti claim is not a text"
    return f"the token's {name} claim is not valid"


@attrs.define
class TrustedPublishing:
    """
    Verifies OIDC ID tokens and mints upload tokens for the publishers
    they prove to be.

    @ivar settings: the L{PublishingSettings}.
    @ivar tokens: the L{PublisherTokens} minted (the access gate checks them).
    @ivar _http: the treq client the issuers' keys are fetched with (L{None}
        while no issuer is configured: L{reconfigure} gives one with the first).
    @ivar _clock: provides C{seconds()} and C{callLater}.
    """

    settings: PublishingSettings
    _http: HTTPClient | None
    _clock: IReactorTime
    tokens: PublisherTokens = attrs.field(
        default=attrs.Factory(lambda self: PublisherTokens(self._clock), takes_self=True))
    replays: ReplayCache = attrs.field(factory=ReplayCache)
    #: issuer URL -> L{IssuerKeys}
    issuers: dict[str, IssuerKeys] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.issuers = self._issuer_keys(self.settings, {})

    @property
    def enabled(self) -> bool:
        """Whether any issuer is configured."""
        return bool(self.settings.issuers)

    def _issuer_keys(self, settings: PublishingSettings,
                     known: Mapping[str, IssuerKeys]) -> dict[str, IssuerKeys]:
        found: dict[str, IssuerKeys] = {}
        for name, url in settings.issuers:
            keys = known.get(url)
            if keys is None or keys.name != name:
                # (an issuer comes with a client: L{make_oidc_http})
                assert self._http is not None
                keys = IssuerKeys(name, url, self._http, self._clock)
            keys.timeout = settings.timeout
            keys.ttl = settings.jwks_ttl
            keys.min_refresh = settings.jwks_min_refresh
            found[url] = keys
        return found

    def reconfigure(self, settings: PublishingSettings, http: HTTPClient | None = None) -> int:
        """
        Take a reloaded configuration. The keys of issuers that stay are
        kept; when the audience, the issuers or the rules changed, every
        minted token is revoked (a removed publisher must stop at once).

        @return: how many minted tokens were revoked.
        """
        if http is not None:
            self._http = http
            self.issuers = {}
        revoked = 0
        if settings.trust() != self.settings.trust():
            revoked = self.tokens.revoke_all()
        self.settings = settings
        self.issuers = self._issuer_keys(settings, self.issuers)
        return revoked

    async def verify(self, text: str) -> Verified:
        """
        The L{Verified} token C{text} is.

        @raise TokenRefused: it is not one to trust.
        @raise IssuerUnavailable: its issuer's keys cannot be had now.
        """
        header, unverified = read_unverified(text)
        alg = check_algorithm(header)
        iss = unverified.get("iss")
        if not isinstance(iss, str):
            raise TokenRefused("the token names no issuer (iss)")
        issuer = self.issuers.get(iss)
        if issuer is None:
            raise TokenRefused(f"the token's issuer {_short(iss)} is not one of this index's "
                               "trusted issuers")
        claims = await signed_claims(text, header, alg, issuer)
        settings = self.settings
        check_claims(claims, iss, settings.audience, self._clock.seconds(), settings.leeway)
        return Verified(issuer.name, claims)

    def mint(self, verified: Verified) -> Minted:
        """
        Mint the upload token of a verified ID token.

        @rtype: L{Minted}
        @raise NoPublisher: no rule lets it publish.
        @raise TokenRefused: it was exchanged before (its C{jti}).
        @raise OverShare: its publisher holds its share, or mints too fast.
        @raise TooMany: too many tokens are live.
        """
        claims = verified.claims
        matched = matching_rules(self.settings.rules, verified.issuer, claims)
        projects = tuple(dict.fromkeys(rule.pattern for rule in matched))
        publisher = publisher_name(verified.issuer, claims, matched[0])
        now = self._clock.seconds()
        # (by the issuer's URL, which verify checked is the iss: a reload
        # may rename the issuer, the token stays the same)
        key = (claims["iss"], claims["jti"])
        if self.replays.seen(key, now):
            raise TokenRefused("this token was already exchanged (its jti was seen before): "
                               "ask the CI system for a new one")
        description = f"trusted publishing, {verified.issuer} jti {_short(claims['jti'], 60)}"
        # (as in [acl], the most specific entry naming a project decides: a
        # glob this token matches gives way to an exact entry it does not)
        others = sorted({rule.pattern for rule in self.settings.rules} - set(projects))
        # (the room for its jti first: nothing to undo when there is none)
        self.replays.check(key, publisher, now)
        text, token = self.tokens.issue(publisher, projects, self.settings.lifetime,
                                        description, others, proof_of(claims))
        self.replays.add(key, claims["exp"] + self.settings.leeway, now, publisher)
        return Minted(text, token, projects, publisher)
