"""
Checking user names and passwords, off the reactor thread.

L{PasswordVerifier} runs the slow hash verification in a thread pool, makes an
unknown user cost as much as a wrong password, and remembers recent successes
(by keyed digest, never the password) so that C{pip install} of fifty packages
costs one verification. Concurrent checks of identical credentials are one
check whose result every waiter shares. The login throttle is consulted only
for a new check. A name that is not a user here may be checked in a directory
(C{[ldap]}) instead, with the dummy hash still computed beside it.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from pypid.auth.hashes import (
    BROKEN,
    MATCH,
    dummy_shape,
    make_dummy_bcrypt,
    make_dummy_hash,
    verify_hash,
)
from pypid.core.access.credential_syntax import is_bcrypt, parse_hash
from pypid.core.access.outside_logins import DIRECTORY, LOCAL, LoginSource

if TYPE_CHECKING:
    # (types only: both modules import this one)
    from pypid.auth.ldap import Directory
    from pypid.auth.tokens import Token

log = Logger()

#: The most successful checks remembered (the oldest go first): only
#: successes enter, so filling it takes valid credentials, and 1,024 is more
#: distinct (user, password) pairs than a team uses within the TTL. An entry
#: is a 32-byte digest and its expiry: some 150 KiB in all. A pair forgotten
#: early is only checked again (one hash).
CACHE_SIZE = 1024

#: The most distinct checks waiting or running at once; past it a new one
#: fails at once with L{Busy} (a 503 with Retry-After) rather than queue.
MAX_PENDING = 64


class Busy(Exception):
    """Too many password verifications are under way; try again shortly."""


class NameHeld(Exception):
    """
    The directory's user has a name a person of another source holds here
    (one name, one person); the message says whose and what to do.
    """


class DirectoryUnavailable(Exception):
    """The directory (C{[ldap]}) cannot be reached; try again in C{retry_after} seconds."""

    def __init__(self, retry_after: float = 5) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


@attrs.frozen
class Identity:
    """
    Who a request was authenticated as.

    @ivar token: the L{pypid.auth.tokens.Token} the request used, whose scope
        limits what the user may do; or L{None} for a password.
    @ivar groups: the groups the directory (C{[ldap]}) says the user is in,
        remembered as long as the password; C{[groups]}' are the model's.
    @ivar login: where the person logged in (a person is a source and a
        name). Whatever they open or issue keeps it.
    """

    name: str
    token: Token | None = None
    groups: frozenset[str] = frozenset()
    login: LoginSource = LOCAL


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name.lstrip('_')} must not be negative")


def _copied(users: Mapping[str, str]) -> dict[str, str]:
    """A copy of the users given (a later change of the caller's is not taken)."""
    return dict(users)


@attrs.define
class PasswordVerifier:
    """
    Check user names and passwords against the C{[users]} hashes, off the
    reactor thread, with a short-lived in-memory cache of successes.

    A new configuration means a new verifier, so its cache starts empty and a
    removed user or a changed password takes effect at once.

    @ivar _threadpool: runs the verifications; the caller starts and stops
        it, and its size bounds the memory of concurrent verifications (19
        MiB each with the default cost).
    @ivar _cache_ttl: seconds a successful verification is remembered; 0
        disables the cache.
    @ivar _run_in_pool: a L{deferToThreadPool}-compatible callable (tests
        replace it).
    @ivar _directory: checks the names that are not users here (beside the
        dummy hash, so they cost at least what a user's check does), or
        L{None}; its successes are remembered for the shorter of the two
        TTLs, with the user's directory groups.
    """

    _users: Mapping[str, str] = attrs.field(converter=_copied, repr=False)
    _reactor: IReactorTime = attrs.field(repr=False)
    _threadpool: ThreadPool | None = attrs.field(repr=False)
    _cache_ttl: float = attrs.field(default=300.0, validator=_non_negative)
    _cache_size: int = attrs.field(default=CACHE_SIZE, validator=_non_negative)
    _max_pending: int = attrs.field(default=MAX_PENDING, kw_only=True,
                                    validator=_non_negative)
    _run_in_pool: Callable[..., Deferred[str]] = attrs.field(default=deferToThreadPool,
                                                           kw_only=True, repr=False)
    _directory: Directory | None = attrs.field(default=None, kw_only=True, repr=False)
    #: C{held(user)}: why a directory user's name is another person's here
    #: (a person of single sign-on holds it), or L{None}: asked before a
    #: directory success is taken or remembered
    _held: Callable[[str], str | None] | None = attrs.field(default=None, kw_only=True,
                                                           repr=False)
    # Per-process key for the cache's digests: a leaked cache (a core dump) cannot
    # be brute-forced offline without it, and is useless after a restart.
    _cache_key: bytes = attrs.field(init=False, repr=False,
                                    factory=lambda: secrets.token_bytes(32))
    # digest -> expiry (reactor seconds), oldest first.
    _cache: collections.OrderedDict[bytes, float] = attrs.field(init=False, repr=False,
                                                  factory=collections.OrderedDict)
    # digest -> directory groups, for the directory users of _cache.
    _groups: dict[bytes, frozenset[str]] = attrs.field(init=False, repr=False, factory=dict)
    # digest -> Deferreds waiting for the verification already under way.
    _in_flight: dict[bytes, list[Deferred[frozenset[str] | None]]] = attrs.field(
        init=False, repr=False, factory=dict)
    _dummy_hash: str = attrs.field(init=False, repr=False, default="")

    def __attrs_post_init__(self) -> None:
        for name, value in self._users.items():
            if is_bcrypt(value):
                continue  # from an htpasswd file (pypid.core.access.credential_syntax checked it)
            try:
                parse_hash(value)
            except ValueError as e:
                raise ValueError(f"user {name!r}: {e}") from None
        hashes = list(self._users.values())
        bcrypts = [h for h in hashes if is_bcrypt(h)]
        if bcrypts and len(bcrypts) * 2 > len(hashes):
            # Mostly bcrypt (users moved from pypiserver): an unknown user
            # costs a bcrypt check of the common cost.
            cost = collections.Counter(int(h[4:6]) for h in bcrypts).most_common(1)[0][0]
            self._dummy_hash = make_dummy_bcrypt(cost)
        else:
            self._dummy_hash = make_dummy_hash(dummy_shape(hashes))

    def knows(self, user: str) -> bool:
        """Whether C{user} is a user (of [users] or the htpasswd file)."""
        return user in self._users

    def directory_knows(self, user: str) -> Deferred[bool]:
        """
        Whether the directory has a user of the name C{user} (C{False} without
        one); failing with L{DirectoryUnavailable} when it cannot be asked.
        """
        if self._directory is None:
            return succeed(False)
        return self._directory.knows(user)

    @property
    def directory_ttl(self) -> float | None:
        """How long a directory user's groups are taken as read; L{None} without a directory."""
        return self._directory.cache_ttl if self._directory is not None else None

    def directory_groups(self, user: str) -> Deferred[frozenset[str] | None]:
        """
        The directory groups of C{user} now, read without a password (L{None}:
        no such user, or no directory); failing with L{DirectoryUnavailable}.
        """
        if self._directory is None:
            return succeed(None)
        return self._directory.groups_of(user)

    def stored(self, user: str) -> str | None:
        """
        The hash C{user}'s password is checked against, or L{None}: a browser
        session keeps a stamp of it, so a changed password ends the session.
        """
        return self._users.get(user)

    def passwords_set_since(self, before: PasswordVerifier) -> list[str]:
        """The users whose password hash is not C{before}'s (set by an admin, or a new user)."""
        return [user for user, stored in self._users.items() if before.stored(user) != stored]

    def needs_new_check(self, user: str, password: str) -> bool:
        """
        Whether verifying these credentials now would start a new hash check:
        not when they were verified lately, nor when a check of the same
        credentials is under way. Only a new check is the throttle's business.
        """
        digest = self._digest(user, password)
        return (digest not in self._in_flight
                and self._cached(digest, self._reactor.seconds()) is None)

    def _digest(self, user: str, password: str) -> bytes:
        """
        The cache key of C{(user, password)}: an HMAC, so the cache never
        holds the password or anything that can be checked offline.
        """
        # The length prefix keeps ("a\0b", "c") and ("a", "b\0c") apart,
        # whatever characters a caller lets into user names.
        user_bytes = user.encode("utf-8")
        message = (len(user_bytes).to_bytes(4, "big") + user_bytes + b"\0"
                   + password.encode("utf-8", "surrogatepass"))
        return hmac.new(self._cache_key, message, hashlib.sha256).digest()

    def _cached(self, digest: bytes, now: float) -> frozenset[str] | None:
        """The directory groups (empty for C{[users]}) of C{digest}'s live success, or L{None}."""
        expiry = self._cache.get(digest)
        if expiry is None:
            return None
        if expiry <= now:
            del self._cache[digest]
            self._groups.pop(digest, None)
            return None
        return self._groups.get(digest, frozenset())

    def _remember(self, digest: bytes, now: float, groups: frozenset[str] = frozenset(),
                  ttl: float | None = None) -> None:
        """Remember a success (with directory C{groups}) for the TTL (or C{ttl} if shorter)."""
        ttl = self._cache_ttl if ttl is None else min(ttl, self._cache_ttl)
        if ttl <= 0 or self._cache_size <= 0:
            return
        # Expiries are appended in time order (but for directory users' shorter
        # TTL): drop the expired at the front, then the oldest until there is room.
        while self._cache:
            oldest, expiry = next(iter(self._cache.items()))
            if expiry > now and len(self._cache) < self._cache_size:
                break
            del self._cache[oldest]
            self._groups.pop(oldest, None)
        self._cache[digest] = now + ttl
        self._cache.move_to_end(digest)
        if groups:
            self._groups[digest] = groups

    def verify(self, user: str, password: str) -> Deferred[bool]:
        """
        A L{Deferred} firing with whether C{password} is C{user}'s (an unknown
        user costs the same full hash verification). Calls with the same
        credentials while their check is under way share its result; they never
        fail with L{Busy}.

        @raise Busy: (its L{Deferred} fails so) past C{max_pending} checks under way.
        """
        return self._check(user, password).addCallback(lambda groups: groups is not None)

    def _check(self, user: str, password: str) -> Deferred[frozenset[str] | None]:
        """
        L{verify}, but firing with the user's directory groups (empty for a
        user of C{[users]}) on success, L{None} otherwise; failing with
        L{DirectoryUnavailable} when the directory was needed and unreachable.
        """
        digest = self._digest(user, password)
        groups = self._cached(digest, self._reactor.seconds())
        if groups is not None:
            return succeed(groups)
        result: Deferred[frozenset[str] | None] = Deferred()
        waiting = self._in_flight.get(digest)
        if waiting is not None:
            waiting.append(result)
            return result
        if len(self._in_flight) >= self._max_pending:
            return fail(Busy())
        self._in_flight[digest] = [result]
        stored = self._users.get(user)
        known = stored is not None
        work = self._run_in_pool(self._reactor, self._threadpool, verify_hash,
                                 stored if known else self._dummy_hash, password)
        directory = self._directory
        if known or directory is None:
            work.addCallback(self._verified, user, known, digest)
        else:
            work = self._ask_directory(directory, work, user, password, digest)
        work.addBoth(self._deliver, digest)
        return result

    def _ask_directory(self, directory: Directory, hashed: Deferred[str], user: str,
                       password: str, digest: bytes) -> Deferred[Any]:
        """
        Check a name that is not a user here in the directory while the dummy
        hash (C{hashed}) runs: the answer comes when both are done, so such a
        name never costs less than a user's check.
        """
        parts: list[Deferred[Any]] = [hashed, directory.check(user, password)]
        both = gatherResults(parts, consumeErrors=True)

        def checked(results: list[Any]) -> frozenset[str] | None:
            groups = results[1]
            if groups is not None:
                held = self._held(user) if self._held is not None else None
                if held is not None:
                    raise NameHeld(held)
                self._remember(digest, self._reactor.seconds(), groups,
                               directory.cache_ttl)
            return groups
        both.addCallbacks(checked, lambda failure: failure.value.subFailure)
        return both

    def _verified(self, outcome: str, user: str, known: bool,
                  digest: bytes) -> frozenset[str] | None:
        """A verification's outcome as groups (none here) or L{None}, logged; a success cached."""
        if outcome == MATCH and known:
            self._remember(digest, self._reactor.seconds())
            return frozenset()
        if outcome == BROKEN:
            log.error("The password hash of user {user!r} cannot be used", user=user)
        elif known:
            log.info("Wrong password for user {user!r}", user=user)
        else:
            # Not the name: people type passwords into the user field.
            log.info("Authentication attempt for an unknown user name")
        return None

    def _deliver(self, result: frozenset[str] | None | Failure, digest: bytes) -> None:
        """Fire every Deferred waiting for this verification with C{result}."""
        for waiter in self._in_flight.pop(digest, []):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    def authenticate(self, user: str, password: str) -> Deferred[Identity | None]:
        """A L{Deferred} firing with C{user}'s L{Identity} if C{password} is theirs, or L{None}."""
        return self._check(user, password).addCallback(self._identity, user)

    def _identity(self, groups: frozenset[str] | None, user: str) -> Identity | None:
        """Who a check's outcome says C{user} is: where they were checked, with their groups."""
        if groups is None:
            return None
        directory = self._directory
        if user in self._users or directory is None:
            return Identity(user)
        return Identity(user, groups=groups,
                        login=LoginSource(DIRECTORY, groups, directory.key))
