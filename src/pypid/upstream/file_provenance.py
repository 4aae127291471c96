"""
The provenance (PEP 740) of upstream files, when their page gives a
C{provenance} URL: fetched after the file is kept (in the background), or
when a client asks pypid's Integrity API for it first (never for a page),
and checked to be a provenance object whose every statement names this
file and the sha256 its page gives. One that is not is logged and
remembered as failed for a while, never served. A good one is kept in
memory, and with the kept file in the cache's storage, where it outlives
the upstream.

Everything is kept by the file's name I{and sha256} (L{_key}): an upstream
that replaces a file under its name (which the public index never does,
but a mirror or a compromised upstream may) gives other bytes, whose
provenance is another one; the old one is never served for the new bytes
nor kept with them.
"""

from __future__ import annotations

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pypid.config.upstream_settings import UpstreamConfig
from pypid.core.dists.model import FileRecord
from pypid.core.dists.provenance import MAX_PROVENANCE_SIZE, ProvenanceInvalid, read_provenance
from pypid.core.util.lru import ByteLRU
from pypid.upstream.cache import RecentFailures
from pypid.upstream.fetch import UpstreamClient, UpstreamError, UpstreamNotFound
from pypid.upstream.file_cache import FileCache
from pypid.upstream.file_metadata import held
from pypid.upstream.page_model import UpstreamFile

#: (the downloads' namespace: their log lines read as before the split)
log = Logger(namespace="pypid.upstream.downloads")

#: Upstream provenance objects kept in memory (bytes, all files together).
PROVENANCE_MEMORY = 16 << 20


def _key(f: UpstreamFile) -> str:
    """What a provenance is kept by: the file's name and the sha256 it was checked against."""
    return f"{f.filename} {f.sha256}"


@attrs.define
class UpstreamProvenance:
    """The provenance objects of the upstream files: kept, or fetched and checked."""

    _config: UpstreamConfig
    _client: UpstreamClient
    _files: FileCache
    _clock: IReactorTime
    # _key(file) -> the provenance fetched (checked against its sha256), the oldest first
    _memory: ByteLRU[str, bytes] = attrs.field(
        init=False, factory=lambda: ByteLRU(PROVENANCE_MEMORY))
    # _key(file) -> the callers of the fetch of its provenance under way
    _fetches: dict[str, list[Deferred[bytes | None]]] = attrs.field(init=False, factory=dict)
    # the files (_key) whose provenance could not be had or was refused lately
    _failed: RecentFailures[bool] = attrs.field(init=False, default=attrs.Factory(
        lambda self: RecentFailures(self._clock), takes_self=True))

    def get(self, upstream_file: UpstreamFile) -> Deferred[bytes | None]:
        """
        The provenance object of an upstream file: the kept one, or fetched
        and checked now (one fetch for every caller); L{None} when the
        upstream offers none, or it could not be had or was refused lately.
        Never fails.
        """
        filename = upstream_file.filename
        key = _key(upstream_file)
        stored = self._files.get(filename)
        if stored is not None and stored.provenance_sha256 is not None:
            # (the kept file's own, checked against the file as it is served)
            return self._files.storage.read_provenance(stored).addErrback(
                self._unreadable, filename)
        if stored is not None and stored.sha256 != upstream_file.sha256:
            # (the file served is the one kept, whose hash wins over the
            # page's: a provenance of the page's file would describe another)
            return succeed(None)
        if upstream_file.provenance_url is None:
            return succeed(None)
        kept = self._memory.get(key)
        if kept is not None:
            if stored is not None:
                self._persist(stored, kept)
            return succeed(kept)
        if self._config.offline or self._failed.lately(key):
            return succeed(None)
        d: Deferred[bytes | None] = Deferred()
        waiting = self._fetches.get(key)
        if waiting is not None:
            waiting.append(d)
            return d
        self._fetches[key] = [d]
        ensureDeferred(self._fetch(upstream_file)).addBoth(self._fetched, key, filename)
        return d

    async def _fetch(self, f: UpstreamFile) -> bytes | None:
        assert f.provenance_url is not None
        key = _key(f)
        try:
            data = await self._client.small(f.provenance_url, MAX_PROVENANCE_SIZE,
                                            f"the upstream's provenance of {f.filename}")
            read_provenance(data, f.filename, f.sha256)
        except (UpstreamNotFound, UpstreamError, ProvenanceInvalid) as e:
            if isinstance(e, UpstreamNotFound):  # (the page linked one it does not have)
                log.warn("No provenance of {filename} from the upstream: it answers 404",
                         filename=f.filename)
            else:
                log.warn("No provenance of {filename} from the upstream: {reason}",
                         filename=f.filename, reason=str(e))
            self._failed.remember(key, True)
            return None
        self._memory.put(key, data, held(key, data), keep=True)
        stored = self._files.get(f.filename)
        if stored is not None and stored.sha256 == f.sha256:
            self._persist(stored, data)
        return data

    def _persist(self, stored: FileRecord, data: bytes) -> None:
        """Keep a checked provenance with its kept file (in the background; failures logged)."""
        if stored.provenance_sha256 is not None:
            return

        def kept(record: FileRecord) -> None:
            current = self._files.get(record.filename)
            if current is not None and current.sha256 == record.sha256:
                self._files.keep(current.replace(provenance_sha256=record.provenance_sha256))

        def failed(failure: Failure) -> None:
            log.warn("Cannot keep the provenance of {filename}: {error}",
                     filename=stored.filename, error=failure.getErrorMessage())
        self._files.storage.keep_provenance(stored, data).addCallbacks(kept, failed)

    def _fetched(self, result: bytes | None | Failure, key: str, filename: str) -> None:
        if isinstance(result, Failure):
            log.failure("Fetching the provenance of {filename} failed", result, filename=filename)
            self._failed.remember(key, True)
            result = None
        for d in self._fetches.pop(key):
            d.callback(result)

    def _unreadable(self, failure: Failure, filename: str) -> None:
        log.warn("Cannot read the kept provenance of {filename}: {error}",
                 filename=filename, error=failure.getErrorMessage())
