"""
Throttling repeated failed logins, per user name and client address: a
guesser is slowed down (C{429}) while the user's other clients, and other
users, are not affected. Pure logic with an injected clock.

The rule, in the order the gate (L{pypid.web.access.Access.identify})
applies it:

 1. Credentials verified lately (the verifier's cache) are never held back.
 2. Identical credentials (same user, same password: the verifier compares
    keyed digests) whose check is already under way join that check and
    share its result: one hash, and one place here, however many requests
    wait for it. So a burst of the right password (C{uv pip install} of
    thirty projects, parallel uploads from CI) is one check, and never
    refused because of itself.
 3. Only a new check of distinct credentials asks L{LoginThrottle.wait}.
    Only checks that failed are recorded as failures. A check under way
    reserves one of the failures still allowed until it ends (then it is
    either a failure or forgotten): without that, a guesser sending a
    thousand different passwords at once would have them all checked
    before the first failure is counted. With it, at most C{max_failures}
    distinct guesses per user and address are ever checked in a window,
    however they are sent.
 4. A check that could not run (the verifier was busy) counts for nothing.
 5. Failures that name an identity the server knows (a user of its own, an
    API token by its id: C{named}) count against that identity from that
    address only; the others (unknown names, unknown tokens, the
    directory's users, which it cannot tell from made-up ones) also count
    against the address, whose ceiling is ten times higher. So a
    misconfigured CI job behind a NAT, failing with an old token, holds
    back that token alone, never the good tokens and users sharing the
    address; a guesser spraying made-up names is held back as a whole.
"""

from __future__ import annotations

import attrs
from twisted.internet.interfaces import IReactorTime

from pypid.core.bounded import put_newest

#: Failures allowed within the window before a (user, address) is throttled.
MAX_FAILURES = 10

#: The window, and how long a throttled pair waits (seconds).
WINDOW = 300.0

#: Failures one address may make, across every user name, within the window
#: (a guesser trying one password against many users).
MAX_ADDRESS_FAILURES = 100

#: Pairs remembered at most (oldest forgotten first), so that a flood of
#: made-up names cannot grow memory (an entry is a key and at most
#: C{max_failures} times: about 360 bytes measured, 35 MiB when full). The
#: table is kept in the order of the last failure, so the pairs forgotten
#: first are those whose failures left the window already, which throttle
#: nothing. Only when a hundred thousand pairs all failed within one window
#: is a live pair forgotten: it may then try C{max_failures} more guesses,
#: each a full hash check, while the address's own count (C{max_address_failures}),
#: renewed at each of its failures, outlives the pair. Refusing new pairs
#: instead would let a flood lock every user out.
MAX_KEYS = 100_000

#: Seconds a client held back only by checks under way is asked to wait:
#: they end in well under a second, and then its turn may have come.
PENDING_WAIT = 1.0

#: What failures are counted against: C{(user, address)}, or C{(None, address)}
#: (an address is L{None} for a peer without a host, such as a Unix socket).
_Key = tuple[str | None, str | None]


@attrs.define
class LoginThrottle:
    """
    Counts recent failures, and distinct checks under way, per
    C{(user, address)} and per address.

    The caller (the gate) calls L{started} only for a check of credentials
    not already being checked, and then exactly one of L{failed},
    L{succeeded} or L{abandoned}.

    @ivar clock: provides C{seconds()}.
    """

    clock: IReactorTime
    max_failures: int = MAX_FAILURES
    window: float = WINDOW
    max_address_failures: int = MAX_ADDRESS_FAILURES
    # (user, address) or (None, address) -> times of recent failures
    _failures: dict[_Key, list[float]] = attrs.field(factory=dict)
    # (user, address) or (None, address) -> distinct checks under way; each
    # holds one of the failures still allowed until it ends. Bounded by the
    # verifier's cap on checks under way.
    _pending: dict[_Key, int] = attrs.field(factory=dict)

    def _keys(self, user: str | None, address: str | None,
              named: bool) -> tuple[tuple[_Key, int], ...]:
        """The counters an attempt counts against, with their limits (rule 5)."""
        if user is None:
            return (((None, address), self.max_address_failures),)
        if named:
            return (((user, address), self.max_failures),)
        return (((user, address), self.max_failures),
                ((None, address), self.max_address_failures))

    def wait(self, user: str | None, address: str | None, named: bool = False) -> float:
        """
        Seconds C{user} from C{address} must wait before a new check of
        distinct credentials may start, or 0.

        @param user: the identity the credentials name (a user name, a
            token's id), or L{None} for none (counted by address only).
        @param named: whether the server knows that identity (rule 5).
        """
        for key, limit in self._keys(user, address, named):
            recent = self._recent(*key)
            if len(recent) >= limit:
                return max(recent[0] + self.window - self.clock.seconds(), 1.0)
            if len(recent) + self._pending.get(key, 0) >= limit:
                return PENDING_WAIT
        return 0.0

    def started(self, user: str | None, address: str | None, named: bool = False) -> None:
        """A check of credentials not already being checked begins."""
        for key, _ in self._keys(user, address, named):
            self._pending[key] = self._pending.get(key, 0) + 1

    def abandoned(self, user: str | None, address: str | None, named: bool = False) -> None:
        """A check that could not run (the server was busy): it counts for nothing."""
        self._ended(user, address, named)

    def _ended(self, user: str | None, address: str | None, named: bool) -> None:
        for key, _ in self._keys(user, address, named):
            left = self._pending.get(key, 0) - 1
            if left > 0:
                self._pending[key] = left
            else:
                self._pending.pop(key, None)

    def failed(self, user: str | None, address: str | None, named: bool = False) -> None:
        """Count one failed login (for the user, and for the address: rule 5)."""
        self._ended(user, address, named)
        now = self.clock.seconds()
        for key, keep in self._keys(user, address, named):
            recent = self._recent(*key)
            recent.append(now)
            del recent[:-keep]
            put_newest(self._failures, key, recent, MAX_KEYS)

    def succeeded(self, user: str | None, address: str | None, named: bool = False) -> None:
        """A good login clears the user's count (not the address's)."""
        self._ended(user, address, named)
        if user is not None:
            self._failures.pop((user, address), None)

    def _recent(self, user: str | None, address: str | None) -> list[float]:
        now = self.clock.seconds()
        recent = [t for t in self._failures.get((user, address), ()) if now - t < self.window]
        if not recent:
            self._failures.pop((user, address), None)
        return recent
