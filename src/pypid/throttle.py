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
    _failures: dict = attrs.field(factory=dict)

    def wait(self, user, address):
        """
        Seconds C{user} from C{address} must wait before trying again, or 0.
        """
        recent = self._recent(user, address)
        if len(recent) < self.max_failures:
            return 0.0
        return max(recent[0] + self.window - self.clock.seconds(), 1.0)

    def failed(self, user, address):
        """Count one failed login."""
        key = (user, address)
        recent = self._recent(user, address)
        recent.append(self.clock.seconds())
        del recent[:-self.max_failures]
        self._failures.pop(key, None)
        self._failures[key] = recent
        while len(self._failures) > MAX_KEYS:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, user, address):
        """A good login clears the count."""
        self._failures.pop((user, address), None)

    def _recent(self, user, address):
        now = self.clock.seconds()
        recent = [t for t in self._failures.get((user, address), ()) if now - t < self.window]
        if not recent:
            self._failures.pop((user, address), None)
        return recent
