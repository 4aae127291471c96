"""
What the bucket layer asks of an object store (L{ObjectStore}): the few
calls S3, Azure Blob Storage and Google Cloud Storage all make, the values
they answer with, and the two errors every failure becomes. The rest of
L{pypid.storage.bucket} is written once over them; each cloud is an adapter
(L{pypid.storage.s3.api}, L{pypid.storage.azure.blob_calls},
L{pypid.storage.gcs.object_calls}) checked by one contract test
(C{tests.harness.object_store}). Their promises, which the filename race
relies on:
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
    One object of a listing: its C{etag} for L{ObjectStore.set_metadata}'s
    C{if_match}, and when it was C{modified} (by the store's clock).
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
    """What a store says of an object without its bytes; C{metadata}: its user metadata."""

    size: int
    modified: float
    etag: str
    metadata: Mapping[str, str]


@attrs.frozen
class Creation:
    """
    What making a bucket did (C{pypid-admin storage init}): whether it was
    C{created} now (else it was there, and answers), C{where} (C{in
    eu-west-3}), what keeps it C{private}, and C{notes} of what the store
    would not do.
    """

    created: bool
    where: str = ""
    private: str = ""
    notes: tuple[str, ...] = ()


@attrs.frozen
class ObjectRef:
    """
    An object of a store, which another prefix may copy on the store's side;
    C{store} is its endpoint and account (a copy is only within one).
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
        An object's bytes, or L{None}: at most C{limit} (more:
        L{StoreUnavailable}); C{expect}ing a size extends the deadline.
        """

    async def fetch(self, key: str, start: int, length: int, size: int) -> Deliverable | None:
        """C{length} bytes from C{start} of the object (of C{size}), unread, or L{None}."""

    async def put(self, key: str, body: bytes, content_type: str = "application/octet-stream",
                  metadata: Mapping[str, str] | None = None,
                  if_none_match: bool = False) -> bool:
        """Write a small object: whether written (L{False} only when C{if_none_match} refused)."""

    async def put_file(self, key: str, path: str, size: int, sha256: str,
                       content_type: str, metadata: Mapping[str, str]) -> bool:
        """
        Write the file at C{path} as C{key}, streamed, unless an object has
        that key (in as many requests as it needs, none left behind on a
        failure): whether it was written.
        """

    async def copy(self, key: str, source: ObjectRef, size: int = 0, if_none_match: bool = False,
                   metadata: Mapping[str, str] | None = None,
                   content_type: str | None = None) -> bool:
        """
        Copy an object of this store into C{key} on the store's side: whether
        written (as L{put}); L{FileNotFoundError} without C{source}.

        @param size: the source's (some stores copy large ones otherwise).
        @param metadata: and C{content_type}: the copy's, else the source's.
        """

    async def set_metadata(self, key: str, metadata: Mapping[str, str], content_type: str,
                           if_match: str) -> bool:
        """Replace C{key}'s user metadata if its etag is still C{if_match}: whether replaced."""

    async def delete(self, key: str) -> None:
        """Remove an object (there being none is no error)."""

    def list(self, prefix: str, start_after: str | None = None,
             delimiter: str | None = None) -> AsyncIterator[ListPage]:
        """Every key under C{prefix} (after C{start_after}), in order, a page at a time."""

    def sign_url(self, key: str, seconds: float, now: float) -> tuple[str, float]:
        """
        A URL to download C{key} for at most C{seconds} from C{now} (never
        beyond the signing credentials), and how long it is valid.
        """

    def signer(self) -> str:
        """
        Who signs URLs now (a snapshot's URLs signed by another are dropped);
        L{StorageError} while there are no credentials.
        """

    async def answers(self, prefix: str = "", retry: bool = True) -> None:
        """
        One short listing under C{prefix}, or L{StorageError} saying what
        to fix.
        """


async def read_all(store: ObjectStore, prefix: str) -> dict[str, bytes]:
    """
    The objects under C{prefix}, by the rest of their keys, read one by
    one: for pypid's few small ones, never the files.
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
    Spaces requests at most C{rate} a second (0: no cap), for the background
    full check (L{PacedStore}): each caller waits for a slot of its own, the
    next C{1 / rate} seconds after the one before, and no slot is saved up
    while nobody asks (no burst after a pause).
    """

    def __init__(self, clock: IReactorTime, rate: float) -> None:
        self._clock = clock
        self._interval = 1.0 / rate if rate else 0.0
        self._next: float | None = None

    def wait(self) -> Deferred[None]:
        """Fires when the next request may start; cancelling it cancels its timer."""
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
    A store's reads, paced by a L{Pacer}, for the background full check; its
    other users call the store directly, never waiting behind the check.
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
