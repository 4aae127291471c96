"""
One deliverer for a store several servers share (a bucket): the lease.

The lease is a series of records, C{leases/<epoch>}, each written only if it is
not there yet: of the servers that try to write the next epoch at once, exactly
one does, and holds the lease. The holder writes the next epoch every L{RENEW}
seconds; another server that sees the newest epoch unchanged for L{TTL} seconds
of its own clock (no two clocks are compared) takes it over by writing the
next. A holder that finds the next epoch written by another stops delivering at
once.

Two servers may deliver for a moment after a holder stalled past L{TTL}: the
deliveries are at least once, and a receiver drops a repeat by its id.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, DeferredLock, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from pypid.storage.base.records import IRecords

log = Logger()

LEASES = "leases"
#: Seconds the newest epoch may stay unchanged before another server takes over.
TTL = 30.0
#: Seconds between the holder's renewals.
RENEW = 10.0
#: Epochs kept behind the newest (the older are removed by the holder).
KEPT = 2


class Lease:
    """This server's view of the lease of one shared store (C{renew}: seconds between renewals)."""

    def __init__(self, store: IRecords, clock: IReactorTime, instance: str,
                 ttl: float = TTL, renew: float = RENEW) -> None:
        self._store = store
        self._clock = clock
        self._instance = instance
        self._ttl = ttl
        self.renew = renew
        #: the epoch this server holds, and when it wrote it
        self._held: int | None = None
        self._written_at = 0.0
        #: the newest epoch seen, and since when (this server's clock)
        self._seen: int | None = None
        self._seen_at = 0.0
        # (one look at a time: a renewal racing a look would take its write for another's)
        self._lock = DeferredLock()

    @property
    def held(self) -> bool:
        """Whether this server held the lease at its last look."""
        return self._held is not None

    def hold(self) -> Deferred[bool]:
        """Look at the lease (renew it, or take it over when due): whether this server holds it."""
        return self._lock.run(lambda: ensureDeferred(self._hold()))

    async def _hold(self) -> bool:
        now = self._clock.seconds()
        epochs = [int(name) for name in await self._store.names(LEASES) if name.isdigit()]
        newest = max(epochs, default=0)
        if self._held is not None:
            if newest != self._held and not await self._mine(newest):
                log.info("Another server delivers the webhooks now (lease {epoch})",
                         epoch=newest)
                self._held = None
            elif newest != self._held:
                # (a renewal this server made, answered too late to be known)
                self._held, self._written_at = newest, now
            elif now - self._written_at >= self.renew:
                await self._claim(newest + 1, epochs)
            return self._held is not None
        if newest != self._seen:
            self._seen, self._seen_at = newest, now
            # (an epoch written empty is a lease given up: taken at once)
            if newest != 0 and await self._store.get(f"{LEASES}/{newest:012d}") != b"":
                return False
            self._seen_at = now - self._ttl
        if newest == 0 or now - self._seen_at >= self._ttl:
            await self._claim(newest + 1, epochs)
            if self._held is not None:
                log.info("This server delivers the webhooks (lease {epoch})", epoch=self._held)
        return self._held is not None

    async def _mine(self, epoch: int) -> bool:
        """Whether the epoch C{epoch} was written by this server."""
        return await self._store.get(f"{LEASES}/{epoch:012d}") == self._instance.encode()

    async def _claim(self, epoch: int, epochs: list[int]) -> None:
        now = self._clock.seconds()
        written = await self._store.put_new(f"{LEASES}/{epoch:012d}", self._instance.encode())
        # (or this server's own write, whose answer was lost: it holds it)
        if written or await self._mine(epoch):
            self._held, self._written_at = epoch, now
        else:
            if self._held is not None:
                log.info("Another server delivers the webhooks now (lease {epoch})",
                         epoch=epoch)
            self._held = None
        self._seen, self._seen_at = epoch, now
        old = [e for e in epochs if e < epoch - KEPT] if written else []
        if old:
            await self._store.delete([f"{LEASES}/{e:012d}" for e in old])

    def release(self) -> Deferred[None]:
        """Give the lease up (the server stops): the next holder need not wait L{TTL}."""
        return self._lock.run(lambda: ensureDeferred(self._release()))

    async def _release(self) -> None:
        if self._held is None:
            return
        epoch, self._held = self._held, None
        # (an epoch no one renews, written as given up: the others take over at once)
        await self._store.put_new(f"{LEASES}/{epoch + 1:012d}", b"")
