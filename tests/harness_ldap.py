"""
Strings that try to inject into an LDAP search filter (C{INJECTIONS}),
for the pure tests and those against the real directory; they were
L{tests.test_ldap}'s.
"""


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
