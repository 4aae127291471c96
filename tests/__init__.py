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
import shutil
import sys

#: The checkout the tests run from (the folder holding C{src/}, C{docs/} and C{tests/}).
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def forget_gone(cache):
    """
    Remove from the bytecode cache C{cache} (a C{PYTHONPYCACHEPREFIX}) the
    folders that mirror folders now gone: the temporary folders of earlier
    runs (their trial folders, the venvs some tests make), about 30 MB a
    run that the cache would otherwise keep for good. 870 folders are
    looked at, in about 40 ms.
    """
    for folder, names, _ in os.walk(cache):
        kept = []
        for name in names:
            cached = os.path.join(folder, name)
            if os.path.isdir(os.path.join(os.sep, os.path.relpath(cached, cache))):
                kept.append(name)
            else:
                shutil.rmtree(cached, ignore_errors=True)
        names[:] = kept


def _bytecode():
    """
    How the Python processes the tests start keep their bytecode, in their
    environment. A suite starts the daemon about 435 times, and pip, twine
    and the helpers' servers besides; without kept bytecode each compiles
    every module it imports again: a daemon's start took 1.6 s here, 0.7 to
    0.8 s with its bytecode kept. It is kept in the virtualenv the tests run
    from (its own folder, written by no one else), never beside the
    sources; outside a virtualenv none is written. The cache is tidied
    (L{forget_gone}) once a run, by the first process: those it starts
    (trial's workers, the helpers' servers run from C{tests.harness}) find
    the cache set in their environment already.
    """
    if sys.prefix == sys.base_prefix:
        return {"PYTHONDONTWRITEBYTECODE": "1"}
    cache = os.path.join(sys.prefix, "pycache")
    if os.environ.get("PYTHONPYCACHEPREFIX") != cache:
        forget_gone(cache)
    return {"PYTHONPYCACHEPREFIX": cache}


#: The environment of L{_bytecode}, for a process started with an environment of its own.
BYTECODE = _bytecode()
# (what the tests start with the tests' own environment gets it too: the
# processes of trial's -j, which this import precedes, included)
if "PYTHONPYCACHEPREFIX" in BYTECODE:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.update(BYTECODE)

# Hypothesis's clock-based checks (a per-example deadline, "input generation
# is slow") fail a correct test on a loaded machine: no test here depends on
# how fast the machine is, so every property test runs without them.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("pypid", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pypid")
