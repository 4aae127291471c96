"""
Throttling repeated failed logins, per user name and client, per client, and
per user name across every client: a guesser is slowed down (C{429}) while the
user's other clients, and other users, are not.

A client is its address; an IPv6 client its network of C{ipv6_prefix} bits (a
/64), since a host picks new addresses in its /64 at will (300 wrong passwords
from 300 addresses of a /64 got no C{429} when addresses were counted). The
rule, in the order the gate applies it:

 1. Credentials verified lately, and a right API token, are never held back.
 2. Identical credentials whose check is under way join it: a burst is one check.
 3. Only a new check of distinct credentials asks L{LoginThrottle.wait}; it
    reserves one of the failures still allowed until it ends, so at most
    C{max_failures} distinct guesses per user and client are checked in a
    window, however many are sent at once.
 4. A failure counts against C{(user, client)} and against the client
    (C{max_address_failures}), whether the name exists or not: past the
    client's cap every name gets the same C{429}, so the answer never tells
    which names exist. C{[pypid] trusted_proxies} keeps clients behind a
    proxy apart.
 5. A password's user name is also counted across every client, as a leaky
    bucket of C{max_identity_failures} a window. Past it, the clients the
    user logged in from lately (C{good_for}) are still checked as usual;
    others get C{429} and share the checks the bucket frees. Refusing the
    user outright would let anyone lock them out. A token's id is not
    counted so: its secret cannot be guessed.
"""

from __future__ import annotations

import ipaddress
from bisect import insort
from collections.abc import Callable, Collection
from contextlib import nullcontext
from typing import TypeVar

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from pypid.auth.shared_throttle import (
    ABANDONED,
    FAILED,
    FORGIVEN,
    PENDING_TTL,
    STARTED,
    SUCCEEDED,
    Event,
    ThrottleShare,
    counted_user,
)
from pypid.core.access.addresses import IPV6_PREFIX, client_ip
from pypid.core.util.bounded import put_newest

#: Failures allowed within the window before a (user, client) is throttled.
MAX_FAILURES = 10

#: The window, and how long a throttled pair waits (seconds).
WINDOW = 300.0

#: Failures one client may make, across every user name, within the window
#: (a guesser trying one password against many users).
MAX_ADDRESS_FAILURES = 100

#: Failures one user name may take, from every client, within the window
#: (rule 5): past it, clients it did not log in from lately are slowed to
#: one check a second for that name (86,400 a day, at most).
MAX_IDENTITY_FAILURES = 300

#: How long a client a user logged in from stays exempt from rule 5 (seconds).
GOOD_FOR = 7 * 86400.0

#: Pairs and clients remembered at most, so that a flood of made-up names
#: cannot grow memory (about 360 bytes an entry measured, 35 MiB when full).
#: Kept in the order of the last failure, so the first forgotten are those
#: whose failures left the window. Only when a hundred thousand pairs all
#: failed within one window is a live pair forgotten: it may then try
#: C{max_failures} more guesses, while the client's own count outlives the
#: pair. Refusing new pairs instead would let a flood lock every user out.
#: The user names of rule 5 (185 bytes measured, 18 MiB when full) are
#: bounded alike.
MAX_KEYS = 100_000

#: C{(user, client)} pairs of good logins remembered at most (230 bytes
#: each measured, 11 MiB when full): only good logins enter, so filling it
#: takes valid credentials; a pair forgotten only loses rule 5's exemption.
MAX_GOOD = 50_000

#: Seconds a client held back only by checks under way is asked to wait:
#: they end in well under a second, and then its turn may have come.
PENDING_WAIT = 1.0

#: What failures are counted against: C{(user, client)}, or C{(None, client)}
#: (a client is L{None} for a peer without a host, such as a Unix socket).
_Key = tuple[str | None, str | None]
_T = TypeVar("_T")


def counted_client(address: str | None, ipv6_prefix: int = IPV6_PREFIX) -> str | None:
    """
    The client an address counts as: an IPv4 address (an IPv4-mapped one
    too) as it is, an IPv6 address as its network of C{ipv6_prefix} bits
    (C{2001:db8:1:2::/64}), anything else (a Unix socket's peer) as it is.
    """
    if address is None:
        return None
    ip = client_ip(address)
    if ip is None:
        return address
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    # (the network's text by hand: 17 us measured, where IPv6Network took 28)
    shift = 128 - ipv6_prefix
    return f"{ipaddress.IPv6Address(int(ip) >> shift << shift)}/{ipv6_prefix}"


@attrs.define
class LoginThrottle:
    """
    Counts recent failures, and distinct checks under way, per
    C{(user, client)}, per client and per user name (rules 4 and 5).

    The caller (the gate) calls L{started} only for a check of credentials not
    already being checked, and then exactly one of L{failed}, L{succeeded} or
    L{abandoned}, with the same arguments: the user (a user name, a token's id,
    or L{None}: counted by client only), the client's address and C{guessable}:
    whether the credentials are a password, whose user name is also counted
    across every client (rule 5).
    """

    clock: IReactorTime
    max_failures: int = MAX_FAILURES
    window: float = WINDOW
    max_address_failures: int = MAX_ADDRESS_FAILURES
    max_identity_failures: int = MAX_IDENTITY_FAILURES
    ipv6_prefix: int = IPV6_PREFIX
    good_for: float = GOOD_FOR
    # (user, client) or (None, client) -> times of recent failures
    _failures: dict[_Key, list[float]] = attrs.field(factory=dict)
    # (user, client) or (None, client) -> distinct checks under way, each
    # holding one of the failures still allowed (bounded by the verifier's cap)
    _pending: dict[_Key, int] = attrs.field(factory=dict)
    # user name -> (failures in its bucket, when that was counted) (rule 5)
    _identities: dict[str, tuple[float, float]] = attrs.field(factory=dict)
    # user name -> its checks under way (rule 5), as _pending
    _identity_pending: dict[str, int] = attrs.field(factory=dict)
    # (user, client) -> when the user last logged in from the client
    _good: dict[tuple[str, str | None], float] = attrs.field(factory=dict)
    #: in a worker of a machine, the other workers' events
    #: (L{pypid.auth.shared_throttle}); L{None} in a server of one process
    share: ThrottleShare | None = None
    # (worker, user, client, guessable) -> when each of the others' checks began
    _theirs: dict[tuple[int, str | None, str | None, bool], list[float]] = attrs.field(
        factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.share is not None:
            self.share.heard_by(self._heard)

    def _keys(self, user: str | None, client: str | None,
              ) -> tuple[tuple[_Key, int], ...]:
        """The counters an attempt counts against, with their limits (rule 4)."""
        if user is None:
            return (((None, client), self.max_address_failures),)
        return (((user, client), self.max_failures),
                ((None, client), self.max_address_failures))

    def reserve(self, user: str | None, address: str | None, guessable: bool = True) -> float:
        """
        Start a check of distinct credentials, if allowed now (L{wait}, then
        L{started}): 0, or the seconds to wait. In a worker the others' events
        are taken in first, with the ring held, so two workers never both take
        the last failure allowed.
        """
        with self.share.held() if self.share is not None else nullcontext():
            self.sync()
            wait = self.wait(user, address, guessable)
            if not wait:
                self.started(user, address, guessable)
        return wait

    def wait(self, user: str | None, address: str | None, guessable: bool = True) -> float:
        """Seconds C{user} from C{address} must wait before a new check may start, or 0."""
        user, client = self._counted(user, address)
        for key, limit in self._keys(user, client):
            recent = self._recent(*key)
            if len(recent) >= limit:
                return max(recent[0] + self.window - self.clock.seconds(), 1.0)
            if len(recent) + self._pending.get(key, 0) >= limit:
                return PENDING_WAIT
        if user is not None and guessable:
            return self._identity_wait(user, client)
        return 0.0

    def _identity_wait(self, user: str, client: str | None) -> float:
        """Rule 5: the wait for C{user} from a client it did not log in from lately."""
        cap = self.max_identity_failures
        level = self._level(user)
        pending = self._identity_pending.get(user, 0)
        if level + pending < cap:
            return 0.0
        now = self.clock.seconds()
        good = self._good.get((user, client))
        if good is not None and now - good < self.good_for:
            return 0.0
        if level < cap:
            return PENDING_WAIT
        # The bucket frees one check each window / cap seconds.
        return max((level - cap + 1) * self.window / cap, 1.0)

    def _level(self, user: str) -> float:
        """The failures in C{user}'s bucket now (rule 5)."""
        counted = self._identities.get(user)
        if counted is None:
            return 0.0
        level, at = counted
        return max(level - (self.clock.seconds() - at) * self.max_identity_failures
                   / self.window, 0.0)

    def started(self, user: str | None, address: str | None, guessable: bool = True) -> None:
        """A check of credentials not already being checked begins."""
        self._tell(STARTED, user, address, guessable, self._started)

    def _tell(self, kind: str, user: str | None, address: str | None, guessable: bool,
              apply: Callable[[str | None, str | None, bool], None]) -> None:
        """Apply one event of this worker's, and tell the others of it."""
        user, client = self._counted(user, address)
        apply(user, client, guessable)
        if self.share is not None:
            self.share.tell(kind, user, client, guessable, self.clock.seconds())

    def _counted(self, user: str | None, address: str | None) -> tuple[str | None, str | None]:
        return counted_user(user), counted_user(counted_client(address, self.ipv6_prefix))

    def _started(self, user: str | None, client: str | None, guessable: bool) -> None:
        for key, _ in self._keys(user, client):
            self._pending[key] = self._pending.get(key, 0) + 1
        if user is not None and guessable:
            self._identity_pending[user] = self._identity_pending.get(user, 0) + 1

    def abandoned(self, user: str | None, address: str | None, guessable: bool = True) -> None:
        """A check that could not run (the server was busy): it counts for nothing."""
        self._tell(ABANDONED, user, address, guessable, self._ended)

    def _ended(self, user: str | None, client: str | None, guessable: bool) -> None:
        for key, _ in self._keys(user, client):
            _one_less(self._pending, key)
        if user is not None and guessable:
            _one_less(self._identity_pending, user)

    def failed(self, user: str | None, address: str | None, guessable: bool = True) -> None:
        """Count one failed login (for the pair, the client and the user name)."""
        self._tell(FAILED, user, address, guessable, self._failed)

    def _failed(self, user: str | None, client: str | None, guessable: bool,
                at: float | None = None) -> None:
        self._ended(user, client, guessable)
        now = self.clock.seconds()
        # (another worker's failure counts from when it was made)
        when = now if at is None else min(at, now)
        for key, keep in self._keys(user, client):
            recent = self._recent(*key)
            insort(recent, when)
            del recent[:-keep]
            put_newest(self._failures, key, recent, MAX_KEYS)
        if user is not None and guessable:
            # (one made earlier counts what the bucket has not leaked of it since)
            weight = max(0.0, 1 - (now - when) * self.max_identity_failures / self.window)
            put_newest(self._identities, user, (self._level(user) + weight, now), MAX_KEYS)

    def succeeded(self, user: str | None, address: str | None, guessable: bool = True) -> None:
        """
        A good login clears the pair's count (not the client's, nor the user
        name's), and exempts the client from rule 5 for that user.
        """
        self._tell(SUCCEEDED, user, address, guessable, self._succeeded)

    def _succeeded(self, user: str | None, client: str | None, guessable: bool) -> None:
        self._ended(user, client, guessable)
        if user is not None:
            self._failures.pop((user, client), None)
            if guessable:
                put_newest(self._good, (user, client), self.clock.seconds(), MAX_GOOD)

    def forgive(self, users: Collection[str]) -> list[str]:
        """
        An admin set the passwords of C{users} again: their lock-outs end at
        once, from every client (each pair's count, and the bucket of rule 5),
        or the new password would be refused with C{429} until the window ends.
        The clients' own counts stay: they count every name tried.

        @return: those of C{users} that had failures here to forget.
        """
        if not users:
            return []
        named = {counted_user(user) for user in users}
        had = self._forgive(named)
        if self.share is not None:
            for user in sorted(name for name in named if name is not None):
                self.share.tell(FORGIVEN, user, None, True, self.clock.seconds())
        return sorted(user for user in users if counted_user(user) in had)

    def _forgive(self, named: set[str | None]) -> set[str | None]:
        """Forget the failures of C{named}; those that had some."""
        had: set[str | None] = set()
        for key in [key for key in self._failures if key[0] in named]:
            had.add(key[0])
            del self._failures[key]
        for user in named:
            if user is not None and self._identities.pop(user, None) is not None:
                had.add(user)
        return had

    def sync(self) -> Deferred[None]:
        """
        In a worker, before its next answer: take in the other workers' events,
        and let go of the checks they began that outlived L{PENDING_TTL}.
        """
        if self.share is None:
            return succeed(None)
        self.share.look()
        now = self.clock.seconds()
        for key, begun in list(self._theirs.items()):
            while begun and now - begun[0] > PENDING_TTL:
                begun.pop(0)
                self._ended(*key[1:])
            if not begun:
                del self._theirs[key]
        return succeed(None)

    def _heard(self, event: Event) -> None:
        """Apply one of another worker's events, as the lane is read."""
        now = self.clock.seconds()
        if event.kind == FORGIVEN:
            self._forgive({event.user})
            return
        key = (event.worker, event.user, event.client, event.guessable)
        if event.kind == STARTED:
            # (one begun before this worker took it in holds its slot from then)
            self._theirs.setdefault(key, []).append(now if event.at is None else min(event.at, now))
            self._started(event.user, event.client, event.guessable)
            return
        begun = self._theirs.get(key)
        if not begun:
            # (a check whose start was not taken in here: it never counted as under way)
            self._started(event.user, event.client, event.guessable)
        else:
            begun.pop(0)
            if not begun:
                del self._theirs[key]
        if event.kind == FAILED:
            self._failed(event.user, event.client, event.guessable, event.at)
        elif event.kind == SUCCEEDED:
            self._succeeded(event.user, event.client, event.guessable)
        else:
            self._ended(event.user, event.client, event.guessable)

    def _recent(self, user: str | None, client: str | None) -> list[float]:
        now = self.clock.seconds()
        recent = [t for t in self._failures.get((user, client), ()) if now - t < self.window]
        if not recent:
            self._failures.pop((user, client), None)
        return recent


def _one_less(table: dict[_T, int], key: _T) -> None:
    """One check under way fewer for C{key}; none left: forgotten."""
    left = table.get(key, 0) - 1
    if left > 0:
        table[key] = left
    else:
        table.pop(key, None)
