"""
Strings that try to inject into an LDAP search filter (C{INJECTIONS}),
for the pure tests and those against the real directory; they were
L{tests.test_ldap}'s.

Test modules are leaves: what several of them share lives in a harness
module, C{tests/harness_<area>.py}, one per area of pypid whose tests share
fixtures, named after the test module(s) the fixtures were written for
(doubles that stand in for one collaborator are in L{tests.fakes}; the
end-to-end daemon is L{tests.e2e}'s). A harness holds helpers, constants
and mixins, never a TestCase with tests, so trial runs each test once;
L{tests.test_layers.TestModuleTests} keeps any test module from importing
another.
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
