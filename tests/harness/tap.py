"""
L{pypid.tap.makeService} without threads: pools that start no thread and
do the blocking work at once (L{fake_pools}), and the site a built service
serves (L{site_of}); they were L{tests.unit.test_tap}'s. For a server that
checks passwords: L{AtOncePool} and L{ThreadedReactor} (they were
L{tests.unit.web.admin.test_advisory_admin}'s), with L{checking_pools}; and
the daemon's identity part alone over files in a folder (L{identity_part}).
"""

import os

import attrs
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from pypid.daemon.pools import ThreadPools
from tests.harness.fakes import run_now


@attrs.define
class FakeThreadPool:
    """A thread pool that starts no thread; the tests only watch it start and stop."""

    minthreads: int = 0
    maxthreads: int = 0
    name: str = ""
    started: bool = False
    stops: int = 0

    def start(self):
        """Say the pool is started."""
        self.started = True

    def stop(self):
        """Say the pool is stopped."""
        self.started = False
        self.stops += 1


class AtOncePool(FakeThreadPool):
    """A hashing pool that checks a password at once, in the test's thread."""

    def callInThreadWithCallback(self, on_result, f, *args, **kwargs):
        try:
            result = f(*args, **kwargs)
        except BaseException:
            on_result(False, Failure())
        else:
            on_result(True, result)


class ThreadedReactor(MemoryReactorClock):
    """A memory reactor whose threads are the test's own (a password check's answer)."""

    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


def checking_pools():
    """L{fake_pools} whose hashing pool checks passwords at once (with a L{ThreadedReactor})."""
    return ThreadPools(FakeThreadPool(name="io"), AtOncePool(name="hash"), run_now)


def site_of(service):
    """The site the server's listeners serve."""
    return service.getServiceNamed("web").web.site


def fake_pools(io=None, hashing=None, run=run_now):
    """L{ThreadPools} that start no thread and do the blocking work at once (or as C{run} does)."""
    return ThreadPools(io or FakeThreadPool(name="io"), hashing or FakeThreadPool(name="hash"),
                       run)


def part_config(folder, text):
    """
    The configuration C{text} of a daemon whose files are in C{folder} (its
    snapshot, token file and browser sessions), written there and read.
    """
    from pypid.config import load_config
    path = os.path.join(folder, "pypid.ini")
    with open(path, "w") as f:
        f.write(f"[pypid]\nsnapshot = {folder}/var/index.json\n"
                f"[auth]\ntokens = {folder}/tokens.json\n" + text)
    return load_config(path, environ={})


def identity_part(folder, reactor, text):
    """
    A daemon's L{pypid.web.identity.identity_part.IdentityPart} started on the
    configuration C{text} (L{part_config}), as a start makes it: its files
    written at once, passwords checked at once (a L{ThreadedReactor}).
    """
    from pypid.storage.folder.journal_files import MemoryJournal
    from pypid.web.identity.identity_part import IdentityPart
    from pypid.web.server.audit_trail import AuditTrail
    return IdentityPart(part_config(folder, text), reactor, AtOncePool(),
                        AuditTrail(MemoryJournal(reactor), reactor), run_now)
