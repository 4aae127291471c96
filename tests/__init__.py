"""
pypid's tests.

Test modules are leaves: what several of them share lives in a harness
module, C{tests/harness/<area>.py}, one per area of pypid whose tests share
fixtures, named after the test module(s) the fixtures were written for
(doubles that stand in for one collaborator are in L{tests.harness.fakes}; the
end-to-end daemon is L{tests.harness.e2e}'s). A harness holds helpers, constants
and mixins, never a TestCase with tests, so trial runs each test once;
L{tests.unit.test_layers.TestModuleTests} keeps any test module from importing
another.
"""

import os

#: The checkout the tests run from (the folder holding C{src/}, C{docs/} and C{tests/}).
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Hypothesis's clock-based checks (a per-example deadline, "input generation
# is slow") fail a correct test on a loaded machine: no test here depends on
# how fast the machine is, so every property test runs without them.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("pypid", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pypid")
