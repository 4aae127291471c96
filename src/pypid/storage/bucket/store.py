"""
What the bucket layer asks of an object store: the few calls S3, Azure
Blob Storage and Google Cloud Storage all make (L{ObjectStore}), the
values they answer with, and the two errors every failure of theirs
becomes.

Everything pypid keeps in a bucket (the layout, the change and intent
markers, journals, adoption, imports, the snapshot's copy: the rest of
L{pypid.storage.bucket}) is written once, over these calls; a cloud is an
adapter of them (L{pypid.storage.s3.api}, L{pypid.storage.azure.blob_calls},
L{pypid.storage.gcs.object_calls}), checked by one contract test
(C{tests.harness.object_store}). Their promises, which the markers and
the filename race rely on:
  - a create with C{if_none_match} refuses an existing name, so of two
    racing writers exactly one is acknowledged;
  - a listing shows a write acknowledged before it began;
  - user metadata names are lowercase letters, digits and C{-}; an
    adapter maps them to what its store allows, and back;
  - every call has a deadline, and fails with L{StoreRefused} (the store
    said no: a 4xx) or L{StoreUnavailable} (unreachable, timed out, a
    5xx), both L{StorageError}s, which the web layer answers with 503.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, DeferredSemaphore, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from pypid.core.records.metrics import Timings
from pypid.storage.base.interface import Deliverable, StorageError


class StoreRefused(StorageError):
    """The store answered with an error (a 4xx): C{status}, C{code}."""

    def __init__(self, store: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{store} answered {status} {code}: {message}" if message
                         else f"{store} answered {status} {code}")
        self.status = status
        self.code = code


class StoreUnavailable(StorageError):
    """The store could not be reached, timed out, or failed (a 5xx)."""


def parse_iso_time(text: str) -> float:
    """POSIX time of an RFC 3339 timestamp (C{2026-11-21T10:00:00.000Z}); 0 when unreadable."""
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def parse_http_time(text: str) -> float:
    """POSIX time of an HTTP date (C{Sat, 21 Nov 2026 10:00:00 GMT}); 0 when unreadable."""
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return 0.0


@attrs.frozen
class Listed:
    """
    One object of a listing.

    @ivar etag: what L{ObjectStore.set_metadata}'s C{if_match} takes to
        change this version of the object only.
    @ivar modified: when it was written (POSIX time, the store's clock).
    """

    key: str
    size: int
    etag: str
    modified: float


@attrs.frozen
class ListPage:
    """One page of a listing: keys, and the common prefixes of a delimited one."""

    keys: tuple[Listed, ...]
    prefixes: tuple[str, ...]
    next_token: str | None


@attrs.frozen
class ObjectHead:
    """
    What a store says of an object without its bytes.

    @ivar metadata: its user metadata, by name (see the module).
    """

    size: int
    modified: float
    etag: str
    metadata: Mapping[str, str]


@attrs.frozen
class Creation:
    """
    What making a bucket did (C{pypid-admin storage init}).

    @ivar created: whether it was made now; L{False}: it was there already,
        and answers to the credentials.
    @ivar where: where it was made, as read after its name (C{in eu-west-3}).
    @ivar private: what keeps it private (C{no public access}).
    @ivar notes: a line each for what the store would not do.
    """

    created: bool
    where: str = ""
    private: str = ""
    notes: tuple[str, ...] = ()


@attrs.frozen
class ObjectRef:
    """
    An object of a store, from where another prefix of it may copy it on
    the store's side (a promotion between indexes).

    @ivar store: the store's endpoint and account: a copy is only within one.
    @ivar container: the bucket (or container) it is in.
    """

    store: str
    container: str
    key: str


class ObjectStore(Protocol):
    """
    One bucket (or container) of a cloud's object store; see the module.

    @ivar label: the store's name in messages (C{S3}).
    @ivar kind: its name in metric names and in C{identity} (C{s3}).
    @ivar limit: how many calls may be in flight at once.
    @ivar timings: every request to the store, by method, for C{/metrics}.
    """

    label: str
    kind: str
    limit: DeferredSemaphore
    timings: Timings

    @property
    def timeout(self) -> float:
        """The deadline of one call without a body, in seconds."""

    def identity(self) -> str:
        """The bucket, as C{kind://name/}: a snapshot of another bucket is not used."""

    def ref(self, key: str) -> ObjectRef:
        """The object C{key} of this bucket, as another prefix copies it."""

    async def start(self) -> None:
        """Find the credentials (a chain's first resolution); before any call."""

    def stop(self) -> None:
        """Stop refreshing the credentials."""

    async def head(self, key: str) -> ObjectHead | None:
        """The object's size, time and user metadata, or L{None} when there is none."""

    async def get(self, key: str, limit: int = 1 << 20, expect: int = 0) -> bytes | None:
        """
        An object's bytes, or L{None} when there is none.

        @param limit: the most bytes to read (more: L{StoreUnavailable}).
        @param expect: the size expected, which extends the deadline.
        """

    async def fetch(self, key: str, start: int, length: int, size: int) -> Deliverable | None:
        """
        The bytes C{start} to C{start + length} of the object C{key} (of
        C{size} bytes), unread, for a relay; L{None} when there is none.
        """

    async def put(self, key: str, body: bytes, content_type: str = "application/octet-stream",
                  metadata: Mapping[str, str] | None = None,
                  if_none_match: bool = False) -> bool:
        """
        Write a small object.

        @return: whether it was written (L{False} only when C{if_none_match}
            and an object is there already).
        """

    async def put_file(self, key: str, path: str, size: int, sha256: str,
                       content_type: str, metadata: Mapping[str, str]) -> bool:
        """
        Write the file at C{path} as the object C{key}, streamed, unless an
        object has that key (however large it is, in as many requests as
        the store needs, none of them left behind on a failure).

        @return: whether it was written.
        """

    async def copy(self, key: str, source: ObjectRef, size: int = 0, if_none_match: bool = False,
                   metadata: Mapping[str, str] | None = None,
                   content_type: str | None = None) -> bool:
        """
        Copy an object of this store into C{key} on the store's side (no
        byte goes through pypid).

        @param size: the source's size (some stores copy large ones otherwise).
        @param metadata: the copy's user metadata and C{content_type}; the
            source's when not given (a conditional copy gives them).
        @return: whether it was written (L{False} only when C{if_none_match}
            and an object is there already).
        @raise FileNotFoundError: when there is no object at C{source}.
        """

    async def set_metadata(self, key: str, metadata: Mapping[str, str], content_type: str,
                           if_match: str) -> bool:
        """
        Replace the user metadata of the object C{key}, if it is still the
        version listed with the etag C{if_match}.

        @return: whether it was replaced.
        """

    async def delete(self, key: str) -> None:
        """Remove an object (there being none is no error)."""

    def list(self, prefix: str, start_after: str | None = None,
             delimiter: str | None = None) -> AsyncIterator[ListPage]:
        """Every key under C{prefix} (after C{start_after}), in order, a page at a time."""

    def sign_url(self, key: str, seconds: float, now: float) -> tuple[str, float]:
        """
        A URL that lets its holder download C{key} for at most C{seconds}
        from C{now} (never beyond the credentials that sign it: a token's
        expiry), and how long it is valid for.
        """

    def signer(self) -> str:
        """
        Who signs URLs now (an access key, an account, a service account):
        a snapshot's URLs signed by another are dropped.

        @raise StorageError: while there are no credentials.
        """

    async def answers(self, prefix: str = "", retry: bool = True) -> None:
        """
        One short listing under C{prefix}: the store answers and the
        credentials may list.

        @raise StorageError: when it does not, saying what to fix.
        """


async def read_all(store: ObjectStore, prefix: str) -> dict[str, bytes]:
    """
    The objects under C{prefix}, by the rest of their keys, read one after
    another: for the few small ones pypid keeps of its own (statuses,
    journals, usage records), never for the files.
    """
    found: dict[str, bytes] = {}
    async for page in store.list(prefix):
        for listed in page.keys:
            data = await store.get(listed.key)
            if data is not None:
                found[listed.key[len(prefix):]] = data
    return found


class Pacer:
    """
    Spaces requests at most C{rate} a second on an injected clock, for the
    background full check (see L{PacedStore}): each caller waits for a slot
    of its own, the first at once, the next C{1 / rate} seconds after the
    one before it, and no slot is saved up while nobody asks (no burst
    after a pause).
    """

    def __init__(self, clock: IReactorTime, rate: float) -> None:
        """
        @param clock: provides C{seconds()} and C{callLater}.
        @param rate: the most requests a second; 0 for no cap.
        """
        self._clock = clock
        self._interval = 1.0 / rate if rate else 0.0
        self._next: float | None = None

    def wait(self) -> Deferred[None]:
        """
        A L{Deferred} that fires when the next request may start; cancelling
        it cancels its timer (a stopped check leaves nothing scheduled).
        """
        if not self._interval:
            return succeed(None)
        now = self._clock.seconds()
        slot = now if self._next is None else max(now, self._next)
        self._next = slot + self._interval
        if slot <= now:
            return succeed(None)
        timer: list[IDelayedCall] = []
        d: Deferred[None] = Deferred(lambda _: timer[0].cancel() if timer[0].active() else None)
        timer.append(self._clock.callLater(slot - now, d.callback, None))
        return d


class PacedStore:
    """
    A store's reads, each started no sooner than a L{Pacer} allows: what
    the background full check lists and reads the bucket with. The store's
    other users (uploads, downloads, polls) call it directly, so they never
    wait behind the check.
    """

    def __init__(self, store: ObjectStore, pacer: Pacer) -> None:
        self._store = store
        self._pacer = pacer
        self.label, self.kind = store.label, store.kind
        self.limit, self.timings = store.limit, store.timings

    def __getattr__(self, name: str) -> Any:
        # (the writes an import makes while checking pass through unpaced)
        return getattr(self._store, name)

    async def head(self, key: str) -> ObjectHead | None:
        """L{ObjectStore.head}, once the pacer gives it a slot."""
        await self._pacer.wait()
        return await self._store.head(key)

    async def get(self, key: str, limit: int = 1 << 20, expect: int = 0) -> bytes | None:
        """L{ObjectStore.get}, once the pacer gives it a slot."""
        await self._pacer.wait()
        return await self._store.get(key, limit, expect)

    async def list(self, prefix: str, start_after: str | None = None,
                   delimiter: str | None = None) -> AsyncIterator[ListPage]:
        """L{ObjectStore.list}, each page once the pacer gives it a slot."""
        pages = self._store.list(prefix, start_after, delimiter).__aiter__()
        while True:
            await self._pacer.wait()
            try:
                page = await pages.__anext__()
            except StopAsyncIteration:
                return
            yield page
