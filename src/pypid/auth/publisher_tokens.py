"""
What trusted publishing keeps of its exchanges: the C{jti}s of the ID tokens
exchanged (L{ReplayCache}), and the upload tokens minted (L{PublisherTokens}),
each table shared out between publishers
(L{pypid.core.access.shares.TableShares}).

The minted tokens are kept in memory only: they live 15 minutes, and writing
them would fill the token file and slow each mint. Each acts as
C{publisher:<issuer name>:<repository>} (a name no user can have, which keys
its share of the tables), upload only, on its rules' projects.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime

from pypid.auth.oidc_errors import OverShare, TooMany
from pypid.auth.tokens import Token, TokenBook
from pypid.auth.verifier import Identity
from pypid.core.access.publishers import PUBLISHER_PREFIX
from pypid.core.access.shares import MintRate, TableShares

#: A token exchanged, as replays are told apart: C{(issuer URL, jti)}. The
#: URL is its C{iss}, not the issuer's name in C{[oidc] issuers}, which a
#: reload may change while the token stays the same.
_Replay = tuple[str, str]

#: The most exchanged C{jti}s remembered at once (each until its token
#: expires, two hours at most): about 270 bytes each, 27 MiB when full. Past
#: it new exchanges are refused (L{TooMany}, a 503 with Retry-After) rather
#: than a live C{jti} forgotten, which would let its token be exchanged again.
MAX_REPLAYS = 100_000

#: The most live minted tokens at once (15 minutes each by default); past
#: it minting is refused (L{TooMany}) until some expire: a publisher's token
#: is never dropped early under a CI job that uses it. A publisher may hold
#: no more than the places still free: alone it stops at half.
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


# -- replays (pure) ------------------------------------------------------------------


@attrs.define
class ReplayCache:
    """
    The C{jti}s of the tokens already exchanged, each kept until its token
    expires, counted by the publisher that exchanged it.

    @ivar limit: the most kept at once; past it, new exchanges are refused
        (L{TooMany}) rather than old entries forgotten early; a publisher
        holding its share is refused (L{OverShare}) before then.
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
        Refuse (L{TooMany}) when there is no room for one more C{jti} of
        C{publisher}, or (L{OverShare}) when it holds its share.
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
        """Remember C{key}, exchanged by C{publisher}, until C{until} (L{TooMany}: as L{check})."""
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
    only, at most C{limit} live, whose expired tokens are dropped as new ones
    come, with each publisher's share of the places and rate (L{MintRate}).
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

    def revoke(self, token_id: str) -> bool:
        """Forget one minted token at once, giving its place back; whether there was one."""
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
            self.revoke(token_id)
        # (tokens revoked before they expire leave entries behind: past twice the
        # live ones, they go at once)
        if len(self._expiry) > 2 * len(self.book.tokens) + 100:
            self._expiry = [(expires, token_id) for owned in self._owned.values()
                            for token_id, expires in owned.items()]
            heapq.heapify(self._expiry)

    def issue(self, publisher: str, projects: Iterable[str], lifetime: float,
              description: str, yields_to: Iterable[str] = (),
              proof: Iterable[tuple[str, str]] = ()) -> tuple[str, Token]:
        """
        A token of C{publisher} that may upload to C{projects}, for C{lifetime}
        seconds, but where a more specific pattern of C{yields_to} (another
        C{[publishers]} entry's) names the project.

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


def minted_proof(identity: Identity | None) -> tuple[dict[str, str], str] | None:
    """
    What the token of a trusted publisher's identity proved (L{Token.proof})
    and the name of the issuer that minted it; L{None} when it proved nothing.
    Ask L{pypid.auth.reader.Reader.minted} first whether it is a publisher's.
    """
    token = identity.token if identity is not None else None
    if identity is None or token is None or not token.proof:
        return None
    return dict(token.proof), identity.name.split(":")[1]
