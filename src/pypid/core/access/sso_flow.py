"""
Single sign-on through an OpenID Connect provider (C{[sso]}): the parts
of the authorization code flow that decide, without I/O.

A login starts (L{PendingLogins.start}) with a C{state}, a C{nonce} and a
PKCE verifier (RFC 7636, C{S256}), kept for L{PENDING_TTL} seconds and
tied to the browser by a cookie of their own. The provider sends the
browser back with a code and the C{state}; the login is taken once (a
replayed callback is refused), and only by the browser whose cookie
matches (L{PendingLogins.take}), so an attacker cannot have a victim's
browser finish a login the attacker began (login CSRF). The ID token's
claims are checked (L{check_id_claims}, its C{nonce} tying it to this
login) and mapped to a user and groups (L{map_claims}).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeGuard
from urllib.parse import quote, urlencode

import attrs

from pypid.core.access.addresses import network_of
from pypid.core.access.credential_syntax import USER_NAME, b64_text

#: Seconds a login started may take to come back from the provider.
PENDING_TTL = 600.0
#: The most logins under way at once (a flood of starts costs no more memory).
MAX_PENDING = 10_000
#: The most logins under way from one client (an address, an IPv6 /64), so
#: one client's flood of starts pushes out its own logins, not everybody's.
MAX_PENDING_PER_CLIENT = 20
#: The most logins under way from one network (L{network_of}); once
#: L{MAX_PENDING} are under way, a new one pushes out the oldest of the
#: network that has the most (some 500 addresses, or one IPv6 /48, pushed
#: out everybody's logins).
MAX_PENDING_PER_NETWORK = 200
#: Random bytes of a C{state}, C{nonce}, PKCE verifier and binding cookie.
RANDOM_BYTES = 32
#: The longest an ID token may have been issued before it reaches pypid
#: (the provider makes it as the code is traded).
MAX_ID_TOKEN_AGE = 600.0
#: The most groups of a person kept (a claim holding more is cut there).
MAX_GROUPS = 200


class LoginRefused(ValueError):
    """The sign-in cannot go on (a 4xx page); the message says why, for the person."""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def pkce_challenge(verifier: str) -> str:
    """The C{S256} code challenge of a PKCE verifier (RFC 7636, 4.2)."""
    return b64_text(hashlib.sha256(verifier.encode("ascii")).digest())


@attrs.frozen
class PendingLogin:
    """
    A login sent to the provider, not back yet.

    @ivar binding: the SHA-256 of the binding cookie's value.
    @ivar redirect_uri: where the provider sends the browser back (the
        same must go with the code).
    @ivar next_path: the page to show once logged in.
    @ivar client: who began it (the key of its address).
    """

    state: str
    nonce: str
    verifier: str
    binding: str
    redirect_uri: str
    next_path: str
    started: float
    client: str = ""

    def to_json(self) -> list[object]:
        """The login as JSON (a machine's workers tell each other of it)."""
        return [self.state, self.nonce, self.verifier, self.binding, self.redirect_uri,
                self.next_path, self.started, self.client]

    @classmethod
    def from_json(cls, data: object) -> PendingLogin:
        """The login L{to_json} made; L{ValueError} for anything else."""
        if not isinstance(data, list) or len(data) != 8 or not all(
                isinstance(value, str) for index, value in enumerate(data) if index != 6) \
                or not isinstance(data[6], int | float):
            raise ValueError("not a login under way")
        return cls(*data)


@attrs.define
class PendingLogins:
    """The logins under way, by C{state}, oldest first."""

    ttl: float = PENDING_TTL
    limit: int = MAX_PENDING
    per_client: int = MAX_PENDING_PER_CLIENT
    per_network: int = MAX_PENDING_PER_NETWORK
    _pending: dict[str, PendingLogin] = attrs.field(factory=dict)
    #: client -> its logins' states, oldest first
    _by_client: dict[str, list[str]] = attrs.field(factory=dict)
    #: network -> its logins' states, oldest first
    _by_network: dict[str, list[str]] = attrs.field(factory=dict)

    def __len__(self) -> int:
        return len(self._pending)

    def forget(self, state: str) -> None:
        """Forget the login C{state} names: taken (here or elsewhere), expired or pushed out."""
        pending = self._pending.pop(state, None)
        if pending is not None:
            for by, key in ((self._by_client, pending.client),
                            (self._by_network, network_of(pending.client))):
                theirs = by.get(key)
                if theirs is not None:
                    theirs.remove(state)
                    if not theirs:
                        del by[key]

    def _forget_expired(self, now: float) -> None:
        # (oldest first: the first that is not expired ends it, without a
        # copy of the whole book at every start)
        while self._pending:
            state, pending = next(iter(self._pending.items()))
            if now - pending.started < self.ttl:
                break
            self.forget(state)

    def start(self, redirect_uri: str, next_path: str, now: float,
              random: Callable[[int], bytes], client: str = "") -> tuple[PendingLogin, str]:
        """A new login of C{client}, and the value of the cookie that binds it to the browser."""
        binding = b64_text(random(RANDOM_BYTES))
        pending = PendingLogin(
            state=b64_text(random(RANDOM_BYTES)), nonce=b64_text(random(RANDOM_BYTES)),
            verifier=b64_text(random(RANDOM_BYTES)), binding=_digest(binding),
            redirect_uri=redirect_uri, next_path=next_path, started=now, client=client)
        self.add(pending, now)
        return pending, binding

    def add(self, pending: PendingLogin, now: float) -> None:
        """Keep a login begun here or by another worker, making room within the bounds."""
        self._forget_expired(now)
        client = pending.client
        network = network_of(client)
        while len(self._by_client.get(client, ())) >= self.per_client:
            self.forget(self._by_client[client][0])
        while len(self._by_network.get(network, ())) >= self.per_network:
            # (the oldest of the client with the most in the network: a few
            # busy addresses push out their own, never a neighbour's one)
            theirs = self._by_network[network]
            counts = Counter(self._pending[state].client for state in theirs)
            busiest = max(counts, key=lambda each: (counts[each], each == client))
            self.forget(self._by_client[busiest][0])
        while len(self._pending) >= self.limit:
            # (the oldest of the network with the most: one with many
            # addresses pushes out its own, never a network that has fewer)
            fullest = max(self._by_network.values(), key=len)
            self.forget(fullest[0])
        self._pending[pending.state] = pending
        self._by_client.setdefault(client, []).append(pending.state)
        self._by_network.setdefault(network, []).append(pending.state)

    def take(self, state: str, binding: str | None, now: float) -> PendingLogin:
        """
        The login C{state} names, forgotten at once (a C{state} is used
        once), when the browser's binding cookie is the one it was given.

        @raise LoginRefused: no such login, or another browser's.
        """
        self._forget_expired(now)
        pending = self._pending.get(state)
        if pending is None:
            raise LoginRefused("This sign-in is not one this server started, or it was "
                               "already used or is too old. Start again from the login page.")
        if binding is None or not hmac.compare_digest(_digest(binding), pending.binding):
            raise LoginRefused("This sign-in was started in another browser, or this "
                               "browser did not keep its cookie. Start again from the login "
                               "page.")
        self.forget(state)
        return pending


def provider_key(issuer: str, client_id: str, user_claim: str = "preferred_username",
                 groups_claim: str = "groups") -> str:
    """
    What a single sign-on session remembers of its provider (its stamp,
    L{pypid.core.access.sessions.SessionBook.stamp_of}): a reload naming
    another provider or client ends it, and so does one reading names or
    groups from other claims (the same name may be another person). Claims
    are named only when not the defaults, so the key stays as it was.
    """
    key = f"sso {issuer} {client_id}"
    if (user_claim, groups_claim) != ("preferred_username", "groups"):
        key += f" names={user_claim} groups={groups_claim}"
    return key


def authorization_url(endpoint: str, client_id: str, scopes: Iterable[str],
                      pending: PendingLogin) -> str:
    """The provider's authorization endpoint, asked for a code for C{pending}."""
    query = urlencode({
        "response_type": "code", "client_id": client_id,
        "redirect_uri": pending.redirect_uri, "scope": " ".join(scopes),
        "state": pending.state, "nonce": pending.nonce,
        "code_challenge": pkce_challenge(pending.verifier), "code_challenge_method": "S256",
    }, quote_via=quote)
    return endpoint + ("&" if "?" in endpoint else "?") + query


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def check_id_claims(claims: Mapping[str, Any], issuer: str, client_id: str, nonce: str,
                    now: float, leeway: float) -> None:
    """
    Check an ID token's claims (its signature was checked before):
    OpenID Connect Core 1.0, 3.1.3.7.

    @raise LoginRefused: naming the claim that is wrong.
    """
    if claims.get("iss") != issuer:
        raise LoginRefused("The provider's ID token names another issuer.")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
    if not audiences or client_id not in audiences:
        raise LoginRefused("The provider's ID token is meant for another application "
                           f"(its aud is not {client_id!r}).")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise LoginRefused("The provider's ID token was issued to another application "
                           f"(its azp is not {client_id!r}).")
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    if not _number(exp) or not _number(iat):
        raise LoginRefused("The provider's ID token lacks its times (exp, iat).")
    if exp <= now - leeway:
        raise LoginRefused("The provider's ID token has expired (exp): is the server's "
                           "clock right?")
    if iat > now + leeway or (nbf is not None and not (_number(nbf) and nbf <= now + leeway)):
        raise LoginRefused("The provider's ID token is not valid yet (iat, nbf): is the "
                           "server's clock right?")
    if now - iat > MAX_ID_TOKEN_AGE + leeway:
        raise LoginRefused("The provider's ID token was issued too long ago (iat).")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise LoginRefused("The provider's ID token names no subject (sub).")
    presented = claims.get("nonce")
    if not isinstance(presented, str) or not hmac.compare_digest(
            presented.encode("utf-8", "replace"), nonce.encode("ascii")):
        raise LoginRefused("The provider's ID token is not for this sign-in (its nonce "
                           "differs). Start again from the login page.")


@attrs.frozen
class ClaimMapping:
    """
    How an ID token's claims name a pypid user and groups.

    @ivar groups_claim: the claim listing the person's groups, or C{""}.
    @ivar allow: who may log in: C{("*",)} for every person the provider
        authenticates, else user names and C{group:NAME}s.
    """

    user_claim: str = "preferred_username"
    groups_claim: str = "groups"
    allow: tuple[str, ...] = ("*",)

    def allows(self, user: str, groups: Iterable[str]) -> bool:
        """Whether C{user}, in C{groups}, may log in."""
        if "*" in self.allow:
            return True
        groups = set(groups)
        return any(user == entry if not entry.startswith("group:")
                   else entry[len("group:"):] in groups for entry in self.allow)


def group_names(value: object) -> frozenset[str]:
    """The valid group names a claim holds, a leading C{/} dropped (Keycloak's group paths)."""
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    stripped = (name.removeprefix("/") for name in names[:MAX_GROUPS] if isinstance(name, str))
    return frozenset(name for name in stripped if USER_NAME.match(name))


def map_claims(claims: Mapping[str, Any], mapping: ClaimMapping) -> tuple[str, frozenset[str]]:
    """
    The user name and groups C{claims} give.

    @raise LoginRefused: no usable name, an address not verified, or a
        person C{mapping.allow} does not let in.
    """
    value = claims.get(mapping.user_claim)
    if not isinstance(value, str) or not value:
        raise LoginRefused(f"The provider gave no {mapping.user_claim} for you, which this "
                           "server takes as your user name. Ask its administrator.")
    if mapping.user_claim == "email" and claims.get("email_verified") is not True:
        raise LoginRefused("The provider has not verified your email address "
                           "(email_verified), which this server takes as your user name.")
    if not USER_NAME.match(value):
        raise LoginRefused(f"Your {mapping.user_claim} at the provider is not a name this "
                           "server takes (1 to 64 letters, digits, '.', '_', '@' or '-').")
    groups = group_names(claims.get(mapping.groups_claim)) if mapping.groups_claim \
        else frozenset()
    if not mapping.allows(value, groups):
        raise LoginRefused(f"{value} may not log in to this server through single sign-on "
                           "([sso] allow). Ask its administrator.")
    return value, groups
