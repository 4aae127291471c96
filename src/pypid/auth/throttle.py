"""
Throttling repeated failed logins, per user name and client address: a
guesser is slowed down (C{429}) while the user's other clients, and other
users, are not affected. Pure logic with an injected clock.
"""

import attrs

#: Failures allowed within the window before a (user, address) is throttled.
MAX_FAILURES = 10

#: The window, and how long a throttled pair waits (seconds).
WINDOW = 300.0

#: Failures one address may make, across every user name, within the window
#: (a guesser trying one password against many users).
MAX_ADDRESS_FAILURES = 100

#: Pairs remembered at most (oldest forgotten first), so that a flood of
#: made-up names cannot grow memory.
MAX_KEYS = 100_000


@attrs.define
class LoginThrottle:
    """
    Counts recent failures per C{(user, address)}.

    @ivar clock: provides C{seconds()}.
    """

    clock: object
    max_failures: int = MAX_FAILURES
    window: float = WINDOW
    max_address_failures: int = MAX_ADDRESS_FAILURES
    _failures: dict = attrs.field(factory=dict)
    # checks under way per (user, address): they count as failures until
    # they end, so guesses sent all at once are held back too
    _pending: dict = attrs.field(factory=dict)

    def wait(self, user, address):
        """
        Seconds C{user} from C{address} must wait before trying again, or 0.
        """
        recent = self._recent(user, address)
        pending = self._pending.get((user, address), 0)
        if len(recent) + pending >= self.max_failures:
            oldest = recent[0] if recent else self.clock.seconds()
            return max(oldest + self.window - self.clock.seconds(), 1.0)
        spread = self._recent(None, address)
        if len(spread) >= self.max_address_failures:
            return max(spread[0] + self.window - self.clock.seconds(), 1.0)
        return 0.0

    def started(self, user, address):
        """A check begins."""
        key = (user, address)
        self._pending[key] = self._pending.get(key, 0) + 1

    def abandoned(self, user, address):
        """A check that could not run (the server was busy): it counts for nothing."""
        self._ended(user, address)

    def _ended(self, user, address):
        key = (user, address)
        left = self._pending.get(key, 0) - 1
        if left > 0:
            self._pending[key] = left
        else:
            self._pending.pop(key, None)

    def failed(self, user, address):
        """Count one failed login (for the user, and for the address)."""
        self._ended(user, address)
        now = self.clock.seconds()
        for key, keep in (((user, address), self.max_failures),
                          ((None, address), self.max_address_failures)):
            recent = self._recent(*key)
            recent.append(now)
            del recent[:-keep]
            self._failures.pop(key, None)
            self._failures[key] = recent
        while len(self._failures) > MAX_KEYS:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, user, address):
        """A good login clears the user's count (not the address's)."""
        self._ended(user, address)
        self._failures.pop((user, address), None)

    def _recent(self, user, address):
        now = self.clock.seconds()
        recent = [t for t in self._failures.get((user, address), ()) if now - t < self.window]
        if not recent:
            self._failures.pop((user, address), None)
        return recent
