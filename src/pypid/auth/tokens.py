"""
API tokens: scoped, expiring, revocable credentials for machines (CI).

A token is used as the password with the user name C{__token__}, as twine does
with the public index. It reads C{pypid-<id>-<secret>}: the id finds its
record, and only the SHA-256 of the secret is kept (a token has 256 bits of
randomness, so a slow password hash would add nothing but cost). Each token
acts for the person who issued it, limited to its actions (C{read}, C{upload})
and projects (names or globs), until it expires or is revoked; a revoked token
stops working at once.

A token belongs to a person, not to a name: it records the whole login it was
made by, and acts, is listed and is revoked for that person only. At each start
and reload the tokens whose person is gone end for good (L{TokenBook.settle}),
the mark written to the file, so a name given back revives nothing.

The records live in a JSON file created with mode 0600; the in-memory
L{TokenBook} is the truth while the server runs, written back after each
change, one at a time (L{TokenBook.change}). A machine's workers share it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

import attrs
from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.core.access.access_rules import RuleError, normalize_pattern, pattern_specificity
from pypid.core.access.outside_logins import (
    DIRECTORY,
    LOCAL,
    MAX_OUTSIDE_TOKEN_LIFETIME,
    PASSWORD,
    PROVIDER,
    SOURCES,
    LoginSource,
    OutsideLogins,
)
from pypid.core.dists.names import normalize
from pypid.core.indexes.index_names import NAME as INDEX_NAME
from pypid.jobs.run import Run
from pypid.storage.base.disk import write_durably
from pypid.storage.folder.shared_file import SharedFile

log = Logger()

TOKEN_USER = "__token__"
ACTIONS = frozenset({"read", "upload"})
_PREFIX = "pypid-"


class TokenError(ValueError):
    """A token request or file cannot be used; the message says why."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


@attrs.frozen
class Token:
    """
    One token's record (never its secret): it acts for C{user}, within its
    scope.

    @ivar projects: normalized names or globs; empty for every project.
    @ivar expires: POSIX time, or L{None} for never.
    """

    id: str
    digest: str = attrs.field(repr=False)
    user: str
    actions: frozenset[str]
    projects: tuple[str, ...] = ()
    expires: float | None = None
    created: float = 0.0
    description: str = ""
    #: patterns this token's own give way to where they are more specific
    #: (a minted token: the other C{[publishers]} entries), never written
    yields_to: tuple[str, ...] = attrs.field(default=(), repr=False)
    #: the indexes it may be used in; empty for every index
    indexes: tuple[str, ...] = ()
    #: what a token minted by trusted publishing proved: C{(("iss", issuer
    #: URL), (claim, value), ...)}, the CI job's claims, so an upload's
    #: attestations can be checked to come from that very job
    #: (L{pypid.auth.attestations}); memory only, never written
    proof: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=False)
    #: where its user logged in when they issued it: C{password}, the
    #: directory (C{ldap}) or single sign-on (C{sso}); a token of the last
    #: two acts with the groups they had then, while that login is let in
    source: str = PASSWORD
    groups: tuple[str, ...] = ()
    #: for single sign-on, the provider and client (L{pypid.core.access.sso_flow.provider_key})
    provider: str = ""
    #: who its person is to the source (L{LoginSource.person}): a local
    #: account's id, the provider's subject
    person: str = ""

    def covers(self, action: str, project: str | None = None,
               index: str | None = None) -> bool:
        """Whether the token's scope includes C{action} (on C{project}, in C{index})."""
        if action not in self.actions:
            return False
        if index is not None and self.indexes and index not in self.indexes:
            return False
        if project is None or not self.projects:
            return True
        name = normalize(project)
        mine = [pattern for pattern in self.projects if fnmatchcase(name, pattern)]
        if not mine or not self.yields_to:
            return bool(mine)
        # the most specific pattern naming the project decides; a tie, the other entry
        best = min(pattern_specificity(pattern)[:2] for pattern in mine)
        return not any(pattern_specificity(pattern)[:2] <= best
                       for pattern in self.yields_to if fnmatchcase(name, pattern))

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data (the digest included: it is not the secret)."""
        data = {"id": self.id, "digest": self.digest, "user": self.user,
                "actions": sorted(self.actions), "projects": list(self.projects),
                "expires": self.expires, "created": self.created,
                "description": self.description}
        if self.indexes:
            # (only when scoped: the records of other tokens stay as they were)
            data["indexes"] = list(self.indexes)
        if self.source != PASSWORD:
            # (likewise: a local user's token is written as it always was)
            data.update(source=self.source, groups=list(self.groups))
            if self.provider:
                data["provider"] = self.provider
        if self.person:
            data["person"] = self.person
        return data

    def public(self) -> dict[str, Any]:
        """What listing shows: everything but the digest."""
        data = self.to_json()
        del data["digest"]
        return data

    @classmethod
    def from_json(cls, data: Any) -> Token:
        """The token a record describes."""
        try:
            actions = frozenset(data["actions"])
            if not actions or not actions <= ACTIONS:
                raise TokenError(f"unknown actions {sorted(actions)}")
            expires = data.get("expires")
            indexes = tuple(data.get("indexes") or ())
            for index in indexes:
                if not isinstance(index, str) or not INDEX_NAME.match(index):
                    raise TokenError(f"indexes: {index!r} is not an index name")
            source = data.get("source", PASSWORD)
            if source not in SOURCES:
                raise TokenError(f"source: expected one of {', '.join(sorted(SOURCES))}")
            groups = tuple(data.get("groups") or ())
            if not all(isinstance(group, str) for group in groups):
                raise TokenError("groups: expected a list of names")
            provider, person = data.get("provider", ""), data.get("person", "")
            for key, text in (("provider", provider), ("person", person)):
                if not isinstance(text, str):
                    raise TokenError(f"{key}: expected text")
            return cls(id=str(data["id"]), digest=str(data["digest"]), user=str(data["user"]),
                       actions=actions, projects=tuple(data.get("projects") or ()),
                       expires=None if expires is None else _time(expires, "expires"),
                       created=_time(data.get("created", 0), "created"),
                       description=str(data.get("description", "")), indexes=indexes,
                       source=source, groups=groups, provider=provider, person=person)
        except (KeyError, TypeError, ValueError) as e:
            raise TokenError(f"not a token record: {e}")


@attrs.frozen
class Ending:
    """
    Why and when a token ended for good (L{TokenBook.settle}); kept in the
    file until the token is revoked, so the listing says what became of it.
    """

    at: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The record's C{ended} field."""
        return {"at": self.at, "reason": self.reason}

    @classmethod
    def from_json(cls, data: Any) -> Ending:
        """The ending a record's C{ended} field describes."""
        if not isinstance(data, dict) or not isinstance(data.get("reason"), str):
            raise TokenError("ended: expected a time and a reason")
        return cls(_time(data.get("at"), "ended"), data["reason"][:200])


def presented_id(presented: str) -> str:
    """The id a presented token string names (C{pypid-<id>-<secret>}), issued or not."""
    return presented.removeprefix(_PREFIX).partition("-")[0]


def _time(value: object, name: str) -> float:
    """A record's time: a finite number of seconds (not a string, a truth value or NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value):
        raise TokenError(f"{name}: {value!r} is not a time in seconds")
    return float(value)


def _where(data: bytes, record: object, number: int) -> str:
    """Where the token file holds a record: its place, its id and its line when found."""
    token_id = record.get("id") if isinstance(record, dict) else None
    if not isinstance(token_id, str):
        return f"token {number}"
    needle = json.dumps({"id": token_id})[1:-1]
    for line, text in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if needle in text:
            return f"token {number} (id {token_id}, line {line})"
    return f"token {number} (id {token_id})"


#: The most project names or globs one token is scoped to.
MAX_PATTERNS = 100
#: The most tokens one user keeps in the file: past it, a person revokes
#: one before issuing another (every change writes the whole file).
MAX_PER_USER = 100


@attrs.define
class TokenBook:
    """The tokens, by id, and the local accounts they may belong to."""

    clock: IReactorTime
    tokens: dict[str, Token] = attrs.field(factory=dict)
    #: the file the tokens are kept in, or L{None}
    path: str | None = None
    #: each local account's own id, by name (L{settle})
    accounts: dict[str, str] = attrs.field(factory=dict)
    #: the tokens that ended for good, by id (L{settle})
    ended: dict[str, Ending] = attrs.field(factory=dict)
    #: in a worker of a machine, the file as the workers share it (each
    #: change made from the file as it is then, another's read again before
    #: the next request: L{sync}); L{None} otherwise
    shared: SharedFile | None = None
    #: one change of the file at a time (L{change})
    _writes: DeferredLock = attrs.field(factory=DeferredLock, init=False, repr=False)

    def issue(self, user: str, actions: Iterable[str], projects: Iterable[str] = (),
              lifetime: float | None = None, description: str = "",
              yields_to: Iterable[str] = (),
              proof: Iterable[tuple[str, str]] = ()) -> tuple[str, Token]:
        """Make a token (L{make}) and take it, in memory only: C{(token string, L{Token})}."""
        text, token = self.make(user, actions, projects, lifetime, description)
        if yields_to or proof:
            token = attrs.evolve(token, yields_to=tuple(yields_to), proof=tuple(proof))
        self.tokens[token.id] = token
        return text, token

    def make(self, user: str, actions: Iterable[str], projects: Iterable[str] = (),
             lifetime: float | None = None, description: str = "",
             indexes: Iterable[str] = (), known_indexes: Collection[str] | None = None,
             login: LoginSource = LOCAL) -> tuple[str, Token]:
        """
        Make a token without taking it: the book takes it once the file holds
        it.

        @param lifetime: seconds until it expires, or L{None} for never.
        @param indexes: the indexes it may be used in; none for all.
        @param known_indexes: the server's indexes the person may see, which
            C{indexes} must name (L{None}: not checked).
        @param login: where C{user} logged in: a person from outside gets a
            token that expires within L{MAX_OUTSIDE_TOKEN_LIFETIME}.
        @return: C{(token string, L{Token})}; the string is shown once.
        """
        scoped: list[str] = []
        for index in indexes:
            if not INDEX_NAME.match(index) or (known_indexes is not None
                                               and index not in known_indexes):
                known = ", ".join(sorted(known_indexes or ()))
                # (one hidden from the person answers as a missing one)
                raise TokenError(f"indexes: {index!r} is not an index of this server"
                                 + (f" you may use (yours are {known})" if known else ""))
            if index not in scoped:
                scoped.append(index)
        actions = frozenset(actions)
        if not actions or not actions <= ACTIONS:
            raise TokenError("actions: expected read, upload or both")
        patterns: list[str] = []
        for project in projects:
            try:
                pattern = normalize_pattern(project)
            except RuleError as e:
                raise TokenError(f"projects: {e}")
            if pattern not in patterns:
                patterns.append(pattern)
        if len(patterns) > MAX_PATTERNS:
            # (each is matched at every request of the token, on the reactor's thread)
            raise TokenError(f"projects: at most {MAX_PATTERNS} names or globs")
        if lifetime is not None and lifetime <= 0:
            raise TokenError("expires: a token must live a positive time")
        if login.outside and (lifetime is None or lifetime > MAX_OUTSIDE_TOKEN_LIFETIME):
            days = int(MAX_OUTSIDE_TOKEN_LIFETIME // 86400)
            raise TokenError(f"expires: {user} logs in through "
                             + ("the directory" if login.source == DIRECTORY
                                else "single sign-on")
                             + f", whose tokens expire within {days} days (such as 30d)")
        now = self.clock.seconds()
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        token = Token(id=token_id, digest=_digest(secret), user=user, actions=actions,
                      projects=tuple(patterns),
                      expires=None if lifetime is None else now + lifetime, created=now,
                      description=description[:200], indexes=tuple(scoped),
                      source=login.source, groups=tuple(sorted(login.groups)),
                      provider=login.provider, person=self.person_of(user, login))
        return f"{_PREFIX}{token_id}-{secret}", token

    def person_of(self, user: str, login: LoginSource) -> str:
        """Who C{user}, logged in through C{login}, is to their source (L{Token.person})."""
        if login.source == PASSWORD:
            return self.accounts.get(user, "")
        return login.person

    def belongs(self, token: Token, user: str, login: LoginSource) -> bool:
        """
        Whether C{token} is the very person's who is C{user} logged in through
        C{login}: same name, source, provider, and account or subject.
        """
        return (token.user == user and token.source == login.source
                and token.provider == login.provider
                and token.person == self.person_of(user, login))

    def revoke(self, token_id: str) -> bool:
        """Revoke a token; whether there was one."""
        self.ended.pop(token_id, None)
        return self.tokens.pop(token_id, None) is not None

    def settle(self, users: Collection[str], outside: OutsideLogins) -> int:
        """
        Take the configuration's local users and who from outside it lets in
        (at the start and each reload): a new name gets an account id of its
        own, a name gone loses its id, and every token whose person is gone
        ends for good (L{ended}, with the reason, L{_gone}). Tokens of a local
        user made before accounts had ids take their user's account.

        @return: how many tokens ended now.
        """
        accounts = {name: self.accounts.get(name) or secrets.token_hex(8) for name in users}
        now = self.clock.seconds()
        ended = 0
        for token in list(self.tokens.values()):
            if token.id in self.ended:
                continue
            if token.source == PASSWORD and not token.person and token.user in accounts:
                self.tokens[token.id] = attrs.evolve(token, person=accounts[token.user])
                continue
            reason = _gone(token, accounts, outside)
            if reason is not None:
                self.ended[token.id] = Ending(now, reason)
                ended += 1
        self.accounts = accounts
        # (the endings of tokens revoked since: their ids are never issued again)
        self.ended = {key: ending for key, ending in self.ended.items() if key in self.tokens}
        return ended

    def issued(self, presented: str) -> str | None:
        """The id a presented string names if this book issued it, whatever its secret."""
        token_id = presented_id(presented)
        return token_id if token_id in self.tokens else None

    def verify(self, presented: str) -> Token | None:
        """The live L{Token} a presented string is, or L{None}."""
        if not presented.startswith(_PREFIX):
            return None
        token_id, sep, secret = presented[len(_PREFIX):].partition("-")
        token = self.tokens.get(token_id)
        if not sep or token is None or not secret.isascii():
            return None
        if not hmac.compare_digest(token.digest, _digest(secret)):
            return None
        if token.expires is not None and self.clock.seconds() >= token.expires:
            return None
        if token_id in self.ended or (token.source == PASSWORD
                                      and token.person != self.accounts.get(token.user, "")):
            # (its person is gone: ended, or their account's id is not the one in force)
            return None
        return token

    def listing(self, user: str | None = None,
                login: LoginSource | None = None) -> list[dict[str, Any]]:
        """The tokens, without digests, oldest first: the person's (L{belongs}), or all."""
        return [dict(t.public(), ended=ending.to_json() if (ending := self.ended.get(t.id))
                     else None)
                for t in sorted(self.tokens.values(), key=lambda t: t.created)
                if user is None or self.belongs(t, user, login or LOCAL)]

    def count_of(self, user: str, login: LoginSource) -> int:
        """How many tokens the person holds (live or ended)."""
        return sum(1 for t in self.tokens.values() if self.belongs(t, user, login))

    async def change(self, change: Callable[[dict[str, Token]], dict[str, Token]],
                     run: Run, still: Callable[[], Awaitable[None]] | None = None,
                     first: Callable[[], object] | None = None) -> None:
        """
        Change the tokens: the file is written with the new state first and the
        book takes it only once the file holds it, so what was answered is on
        disk and what failed changed nothing. One change at a time, each from
        the state the last left (in a worker: the file's, under the machine's
        lock); C{still()} checks again, with the lock held, that who asked may
        still ask (a reload may have come meanwhile).

        @param first: called before C{change}, once the book holds the
            file's state (L{settle} at a reload).
        @raise OSError: the file cannot be written (nothing changed).
        """
        async with self._writes:
            if self.shared is not None:
                await self._change_shared(self.shared, change, still, first)
                return
            if first is not None:
                first()
            if still is not None:
                await still()
            changed = change(self.tokens)
            if self.path is not None:
                await run(write_file, self.path, self.dumps(changed))
            self.tokens = changed

    async def _change_shared(self, shared: SharedFile,
                             change: Callable[[dict[str, Token]], dict[str, Token]],
                             still: Callable[[], Awaitable[None]] | None,
                             first: Callable[[], object] | None) -> None:
        """L{change} in a worker of a machine: from the file, under the machine's lock."""
        made: list[dict[str, Token]] = []

        async def apply(current: bytes | None) -> bytes:
            if current is not None:
                self.loads(current)
            if first is not None:
                first()
            if still is not None:
                await still()
            made.append(change(self.tokens))
            return self.dumps(made[0])
        await shared.change(apply)
        self.tokens = made[0]

    def sync(self) -> Deferred[None]:
        """In a worker, before its next answer: read the file again if another worker changed it."""
        if self.shared is None or not self.shared.changed_elsewhere():
            return succeed(None)
        return Deferred.fromCoroutine(self._reread(self.shared))

    async def _reread(self, shared: SharedFile) -> None:
        async with self._writes:
            try:
                data = await shared.read()
                if data is not None:
                    self.loads(data)
            except (OSError, TokenError) as e:
                log.error("Cannot read the tokens another worker changed in {path}: {error}",
                          path=self.path, error=str(e))

    # -- the file ------------------------------------------------------------------

    def dumps(self, tokens: Mapping[str, Token] | None = None) -> bytes:
        """The file's bytes, of the book's tokens or of C{tokens}, with accounts and endings."""
        kept = self.tokens if tokens is None else tokens
        records = [dict(token.to_json(), ended=self.ended[token.id].to_json())
                   if token.id in self.ended else token.to_json() for token in kept.values()]
        data: dict[str, Any] = {"tokens": records}
        if self.accounts:
            data["accounts"] = self.accounts
        return json.dumps(data, indent=1, sort_keys=True).encode("utf-8")

    def loads(self, data: bytes) -> None:
        """Take the tokens of a file's bytes, all or none; a bad record is named with its line."""
        try:
            document = json.loads(data)
            records = document["tokens"]
            accounts = document.get("accounts") or {}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise TokenError(f"not a token file: {e}")
        if not isinstance(accounts, dict) or not all(
                isinstance(name, str) and isinstance(key, str) and key
                for name, key in accounts.items()):
            raise TokenError("accounts: expected each name's id")
        tokens: dict[str, Token] = {}
        ended: dict[str, Ending] = {}
        for number, record in enumerate(records, 1):
            try:
                token = Token.from_json(record)
                if record.get("ended") is not None:
                    ended[token.id] = Ending.from_json(record["ended"])
            except TokenError as e:
                raise TokenError(f"{_where(data, record, number)}: {e}")
            tokens[token.id] = token
        self.tokens, self.accounts, self.ended = tokens, dict(accounts), ended


def _gone(token: Token, accounts: Mapping[str, str], outside: OutsideLogins) -> str | None:
    """Why C{token}'s person is gone (L{TokenBook.settle}), or L{None} while they stand."""
    if token.source == PASSWORD:
        if token.user not in accounts:
            return f"the account {token.user} was removed"
        if token.person != accounts[token.user]:
            return f"the account {token.user} was removed; the name is a new account's"
        return None
    where = "the directory" if token.source == DIRECTORY else "single sign-on"
    if token.user in accounts:
        return f"{token.user} of {where}: a local account now has the name"
    if token.provider != outside.key_of(token.source):
        return f"{where} is no longer the one {token.user} came through"
    if not outside.admits(token.source, token.user, token.groups, token.provider):
        assert token.source == PROVIDER
        return f"[sso] allow no longer lets {token.user} in"
    return None


def write_file(path: str, data: bytes) -> None:
    """
    Write a token file atomically, readable by its owner only, the rename
    made durable: a revocation answered must survive a power cut (blocking).
    """
    write_durably(path, data, prefix=".tokens-")
