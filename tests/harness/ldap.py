"""
Strings that try to inject into an LDAP search filter (C{INJECTIONS}),
for the pure tests and those against the real directory; they were
L{tests.unit.auth.test_ldap}'s. And a directory in memory (L{MemoryDirectory}) for
the tests of what directory users do.
"""

import attrs
from twisted.internet.defer import Deferred, fail, succeed

from pypid.auth.verifier import DirectoryUnavailable

#: Names that would change a naively built filter's meaning.
INJECTIONS = [
    "*",
    "alic*",
    "(",
    ")",
    "\\",
    "\0",
    "*)(uid=*",
    "alice)(|(uid=*",
    "*)(|(objectClass=*",
    "alice)(&",
    "\\2a",
    "\\5c\\2a",
    "x\\",
    "zoë*",
    "日本語)(uid=*",
]


#: What names the directory of the tests' people (L{pypid.config.ldap_settings.LDAPConfig.key}).
DIRECTORY_KEY = "ldap ldaps://ldap.corp.example:636 ou=people,dc=corp,dc=example"


@attrs.define
class MemoryDirectory:
    """
    The directory as the verifier sees it: C{check} answers from C{people}
    (C{{(user, password): groups}}), or stays pending when C{hold}, or fails
    with L{DirectoryUnavailable} when C{down}; every question is recorded.
    """

    people: dict = attrs.Factory(dict)
    cache_ttl: float = 60.0
    key: str = DIRECTORY_KEY
    down: bool = False
    hold: bool = False
    asked: list = attrs.Factory(list)
    pending: list = attrs.Factory(list)

    def knows(self, user):
        """Whether a person of the name C{user} is among C{people}."""
        self.asked.append(user)
        if self.down:
            return fail(DirectoryUnavailable(7))
        return succeed(any(name == user for name, _ in self.people))

    def groups_of(self, user):
        """The groups of the person C{user} of C{people} (L{None}: none such)."""
        self.asked.append(user)
        if self.down:
            return fail(DirectoryUnavailable(7))
        for (name, _), groups in self.people.items():
            if name == user:
                return succeed(groups)
        return succeed(None)

    def check(self, user, password):
        self.asked.append(user)
        if self.down:
            return fail(DirectoryUnavailable(7))
        if self.hold:
            d = Deferred()
            self.pending.append((d, self.people.get((user, password))))
            return d
        return succeed(self.people.get((user, password)))
