"""
The signed download URLs of a bucket storage (presigned, in S3's words), cached.

Signing a URL costs tens of microseconds, and a client that downloads the
same file twice is better served by the same URL (a CDN or proxy in front
of the store may cache by it). So a URL is kept until shortly before it
expires (the buffer time: a client redirected just before the expiry must
still have time to follow), and the cache goes into the local snapshot, so
that a restart does not sign everything again. This is apart from
L{pypid.storage.bucket.storage.BucketStorage} because none of it touches the
bucket: it is bookkeeping over the store's signatures and a clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime

from pypid.core.records.metrics import Family, counter, gauge
from pypid.core.util.bounded import put_newest
from pypid.storage.base.interface import StorageError
from pypid.storage.bucket.store import ObjectStore

#: The most presigned URLs kept (the oldest signed go first). A URL and its
#: key are about 600 bytes (measured), so this is some 30 MiB at most; past it, a file
#: whose URL was forgotten is signed again at its next download (tens of
#: microseconds), so a bucket of a million files does not hold a URL for
#: each one that was ever downloaded.
MAX_PRESIGNED = 50_000


@attrs.define
class PresignedURLs:
    """
    Presigned C{GET} URLs by object key, reused while they have at least
    the buffer time to live.

    @ivar _client: the L{pypid.storage.bucket.store.ObjectStore} whose bucket the
        URLs point into, and that signs them; a URL never outlives the
        credentials it was signed with, and a snapshot's URLs signed by
        another signer are dropped.
    @ivar _clock: provides C{seconds()} (wall-clock time: expiries are).
    @ivar _expire_after: how long a URL is valid for (s), at most.
    @ivar _buffer_time: how long before its expiry a URL stops being
        handed out (s).
    @ivar _urls: key -> C{(url, usable until)}, oldest signed first.
    @ivar _changed: whether URLs were signed since the last L{state}.
    @ivar hits: URLs answered from the cache (for C{/metrics}).
    @ivar misses: URLs signed anew (for C{/metrics}).
    """

    _client: ObjectStore
    _clock: IReactorTime
    _expire_after: float = 900.0
    _buffer_time: float = 300.0
    _urls: dict[str, tuple[str, float]] = attrs.field(factory=dict, init=False)
    _changed: bool = attrs.field(default=False, init=False)
    hits: int = attrs.field(default=0, init=False)
    misses: int = attrs.field(default=0, init=False)

    def __len__(self) -> int:
        """How many URLs the cache holds."""
        return len(self._urls)

    def url(self, key: str) -> str:
        """
        A presigned GET URL for C{key}, from the cache while it has at least
        the buffer time to live, else signed now (never valid beyond the
        expiry of the credentials that sign it).
        """
        now = self._clock.seconds()
        cached = self._urls.get(key)
        if cached is not None and cached[1] > now:
            self.hits += 1
            return cached[0]
        self.misses += 1
        url, expires = self._client.sign_url(key, self._expire_after, now)
        usable_until = now + expires - self._buffer_time
        if usable_until > now:
            put_newest(self._urls, key, (url, usable_until), MAX_PRESIGNED)
            self._changed = True
        return url

    def metric_families(self) -> Iterator[Family]:
        """The cache's size, and how many URLs came from it or were signed anew."""
        kind = self._client.kind
        yield gauge(f"pypid_{kind}_presigned_urls", "Presigned download URLs cached.",
                    len(self._urls))
        yield counter(f"pypid_{kind}_presigned", "Downloads redirected to a presigned URL, by "
                      "whether the URL came from the cache.", None, ("result",),
                      [(("hit",), self.hits), (("miss",), self.misses)])

    # -- the snapshot ------------------------------------------------------------------

    def state(self) -> dict[str, Any] | None:
        """
        The cache for the local snapshot, without the URLs already due for
        renewal, and the access key that signed it; L{None} while there
        are no credentials.
        """
        now = self._clock.seconds()
        try:
            access_key = self._client.signer()
        except StorageError:
            return None
        self._urls = {key: value for key, value in self._urls.items() if value[1] > now}
        self._changed = False
        urls = {key: [url, until] for key, (url, until) in self._urls.items()}
        return {"access_key": access_key, "presigned": urls}

    def changed(self) -> bool:
        """Whether URLs were signed since the last L{state}."""
        return self._changed

    def restore(self, state: object) -> None:
        """
        Take back the cache from a snapshot's L{state}: only URLs signed
        with the credentials in use now, not due for renewal, and within
        L{MAX_PRESIGNED}. Anything malformed is ignored (a snapshot is a
        cache, not a promise).
        """
        if not isinstance(state, dict):
            return
        try:
            if state.get("access_key") != self._client.signer():
                return
        except StorageError:
            return
        now = self._clock.seconds()
        presigned = state.get("presigned")
        if not isinstance(presigned, dict):
            return
        for key, value in presigned.items():
            if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
                    and isinstance(value[1], (int, float)) and value[1] > now
                    and len(self._urls) < MAX_PRESIGNED):
                self._urls[key] = (value[0], float(value[1]))
