"""
The core metadata of upstream files (PEP 658): read from the kept file when
the cache keeps it, else fetched from the upstream's C{.metadata}, checked
against the page's hash and kept in memory (at most L{METADATA_MEMORY}
bytes, the oldest fetched forgotten first), so that pip's resolver, which
asks for the metadata of many files it never downloads, costs the
upstream one fetch a file.
"""

from __future__ import annotations

import hashlib

import attrs

from pypid.config.upstream_settings import UpstreamConfig
from pypid.core.util.lru import ByteLRU
from pypid.storage.base.interface import Location, MemoryFile
from pypid.upstream.cache import Offline
from pypid.upstream.fetch import UpstreamClient
from pypid.upstream.file_cache import FileCache
from pypid.upstream.page_model import UpstreamFile
from pypid.upstream.transfer import VerifyError

#: Upstream core metadata kept in memory (bytes, all files together).
METADATA_MEMORY = 32 << 20

#: The most bytes of upstream core metadata read for one file.
METADATA_LIMIT = 16 << 20


def held(filename: str, data: bytes) -> int:
    """
    What one file's bytes kept in memory (and its digest) cost against their
    budget: each entry costs its dictionary slot and name too, so that many
    tiny ones cannot grow the count without bound.
    """
    return len(data) + len(filename) + 300


def _metadata_url(url: str) -> str:
    """PEP 658: the metadata is at the file's URL plus C{.metadata} (before any query)."""
    path, sep, query = url.partition("?")
    return path + ".metadata" + sep + query


@attrs.define
class UpstreamMetadata:
    """The core metadata of the upstream files, from the cache or the upstream."""

    _config: UpstreamConfig
    _client: UpstreamClient
    _files: FileCache
    # filename -> (metadata, its sha256), the oldest fetched first
    _memory: ByteLRU[str, tuple[bytes, str]] = attrs.field(
        init=False, factory=lambda: ByteLRU(METADATA_MEMORY))

    def __contains__(self, filename: str) -> bool:
        """Whether the metadata of C{filename} is kept in memory."""
        return filename in self._memory

    async def read(self, upstream_file: UpstreamFile) -> bytes | None:
        """The core metadata of an upstream file (see the module), or L{None}: none offered."""
        stored = self._files.get(upstream_file.filename)
        if stored is not None and stored.metadata_sha256 is not None:
            data = await self._files.storage.read_metadata(stored)
            if upstream_file.metadata_sha256 in ("", hashlib.sha256(data).hexdigest()):
                return data
        if upstream_file.metadata_sha256 is None:
            return None
        kept = self._memory.peek(upstream_file.filename)
        if kept is not None and upstream_file.metadata_sha256 in ("", kept[1]):
            # (kept under the hash it has: a page that now gives another is
            # answered with the metadata fetched anew)
            return kept[0]
        if self._config.offline:
            raise Offline(upstream_file.filename)
        data = await self._client.small(_metadata_url(upstream_file.url), METADATA_LIMIT,
                                        f"the upstream's metadata of {upstream_file.filename}")
        digest = hashlib.sha256(data).hexdigest()
        if upstream_file.metadata_sha256 and digest != upstream_file.metadata_sha256:
            raise VerifyError(f"the upstream's metadata of {upstream_file.filename} does not "
                              "match the hash its page gives")
        self.keep(upstream_file.filename, data, digest)
        return data

    def kept(self, upstream_file: UpstreamFile) -> tuple[Location, str] | None:
        """
        Where the metadata of C{upstream_file} is and its sha256, when L{read}
        would answer it at once from what is kept; else L{None}.
        """
        wanted = upstream_file.metadata_sha256
        stored = self._files.get(upstream_file.filename)
        if stored is not None and stored.metadata_sha256 is not None \
                and wanted in ("", stored.metadata_sha256):
            return self._files.storage.locate_metadata(stored), stored.metadata_sha256
        if wanted is None:
            return None
        kept = self._memory.peek(upstream_file.filename)
        if kept is not None and wanted in ("", kept[1]):
            return MemoryFile(kept[0]), kept[1]
        return None

    def keep(self, filename: str, data: bytes, digest: str | None = None) -> None:
        """Keep C{data}, the metadata of C{filename}, in memory (the oldest go past the cap)."""
        self._memory.put(filename, (data, digest or hashlib.sha256(data).hexdigest()),
                         held(filename, data), keep=True)
