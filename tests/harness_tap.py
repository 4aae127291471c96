"""
L{pypid.tap.makeService} without threads: pools that start no thread and
do the blocking work at once (L{fake_pools}), and the site a built service
serves (L{site_of}); they were L{tests.test_tap}'s.
"""

import attrs

from pypid.daemon.pools import ThreadPools
from tests.fakes import run_now


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


def site_of(service):
    """The site the server's listeners serve."""
    return service.getServiceNamed("web").web.site


def fake_pools(io=None, hashing=None, run=run_now):
    """L{ThreadPools} that start no thread and do the blocking work at once (or as C{run} does)."""
    return ThreadPools(io or FakeThreadPool(name="io"), hashing or FakeThreadPool(name="hash"),
                       run)
