"""The server's thread pools, as the first part to start and the last to stop."""

from __future__ import annotations

from functools import partial

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from pypid.jobs.run import Run


class ThreadPools(Service):
    """
    The server's thread pools, started first and stopped last (every other
    part may run work in them until it stopped).

    @ivar io: storage, spooling and inspection work (C{[pypid] threads}).
    @ivar hashing: password verification (bounded: each check holds 19 MiB).
    @ivar run: C{run(f, *args) -> Deferred}, running C{f} in C{io}.
    """

    def __init__(self, io: ThreadPool, hashing: ThreadPool, run: Run) -> None:
        self.io = io
        self.hashing = hashing
        self.run = run

    @classmethod
    def create(cls, reactor: IReactorFromThreads, threads: int) -> ThreadPools:
        """New pools, not started, for a server with C{threads} I/O threads."""
        io = ThreadPool(minthreads=1, maxthreads=threads, name="pypid-io")
        hashing = ThreadPool(minthreads=0, maxthreads=2, name="pypid-hash")
        return cls(io, hashing, partial(deferToThreadPool, reactor, io))

    def startService(self) -> None:
        """Start both pools."""
        Service.startService(self)
        self.io.start()
        self.hashing.start()

    def stopService(self) -> None:
        """Stop both pools (their threads finish the work they hold)."""
        Service.stopService(self)
        for pool in (self.io, self.hashing):
            if pool.started:
                pool.stop()
