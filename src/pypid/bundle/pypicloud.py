"""
Reading what pypicloud stores (checked against pypicloud 1.3's
C{pypicloud/storage/s3.py}, C{object_store.py} and C{files.py}):

  - in a bucket, each file is the object C{<prefix><name>/<filename>}, or
    C{<prefix><hash>/<name>/<filename>} with C{storage.prepend_hash} (the
    default: four hex digits of the filename's md5), whose user metadata
    holds C{name}, C{version}, and where known C{summary},
    C{requires-python}, C{hash-sha256}, C{hash-md5} and C{uploader} (the
    logged-in user who uploaded it); its C{LastModified} is the upload time;
  - on disk (C{storage.dir}), each file is C{<dir>/<name>/<version>/<filename>}
    with a C{<filename>.meta} JSON object beside it holding the same
    fields (C{hash_sha256}, C{uploader} ...); the file's modification time
    is the upload time.

pypicloud keeps no yank state and no tombstones. Each file's record is
learnt from the file itself (inspected as an upload is); only the upload
time, the uploader and the sha256 (checked against the bytes) are
pypicloud's.

A pypid server whose own bucket prefix holds pypicloud's objects already
serves them in place (its scan reads any distribution key); this import is
for moving them into another storage, with a report.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred

from pypid.bundle.archive import SourceTooLarge, copy_hashed
from pypid.bundle.ingest import Arrival, Digests, Fetch, SourceUnavailable
from pypid.bundle.manifest import BundleError
from pypid.bundle.sources import (
    FolderSource,
    Found,
    Offer,
    read_json_file,
    sha256_of,
    walk_files,
)
from pypid.config.store_backends import backend_of_url, url_forms
from pypid.jobs.gather import gather
from pypid.jobs.run import Run
from pypid.storage.bucket.store import Listed, ObjectHead, ObjectStore

#: The most bytes of a C{.meta} file read.
META_LIMIT = 1 << 20

def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_bucket_url(url: str) -> tuple[str, str, str]:
    """
    C{(backend, bucket, prefix)} of a bucket's URL (C{s3://BUCKET/PREFIX} ...).

    @raise BundleError: when there is no bucket.
    """
    backend = backend_of_url(url)
    if backend is None:
        raise BundleError(f"{url}: expected {url_forms()}")
    bucket, _, prefix = url[len(backend.scheme):].partition("/")
    if not bucket:
        raise BundleError(f"{url}: name the {backend.bucket_word}, as {backend.url_form()}")
    return backend.name, bucket, prefix


class PypicloudFolderSource(FolderSource):
    """A pypicloud C{storage.dir}; see the module."""

    kind = "pypicloud"

    def _scan(self) -> list[Found]:
        found: list[Found] = []
        for relative, path, info in walk_files(self._path):
            if path.endswith(".meta"):
                continue
            meta = read_json_file(path + ".meta", META_LIMIT) or {}
            found.append((relative, path, info, sha256_of(meta.get("hash_sha256")),
                          _text(meta.get("uploader"))))
        return found


class PypicloudBucketSource:
    """
    A pypicloud bucket under a prefix; see the module. Each file is read
    whole into memory (one at a time, at most C{[pypid] max_upload_size}),
    as the server reads a file it finds in its own bucket.
    """

    kind = "pypicloud"

    def __init__(self, client: ObjectStore, prefix: str, run: Run) -> None:
        self._client = client
        self._prefix = prefix
        self._run = run

    def describe(self) -> str:
        """The bucket and prefix, as a person names them."""
        return self._client.identity() + self._prefix

    async def read(self) -> Offer:
        """The bucket's L{Offer}."""
        listed: list[Listed] = []
        async for page in self._client.list(self._prefix):
            for item in page.keys:
                path = item.key[len(self._prefix):]
                if (not path or path.endswith("/")
                        or any(part.startswith(".") for part in path.split("/"))):
                    continue
                listed.append(item)
        limit = self._client.limit
        heads = await gather([limit.run(self._head, item) for item in listed])
        arrivals: list[Arrival] = []
        for item, head in zip(listed, heads, strict=True):
            filename = item.key.rpartition("/")[2]
            origin = self._client.identity() + item.key
            if head is None:
                arrivals.append(Arrival(filename, origin, None, 0.0,
                                        refused="removed from the bucket while it was listed"))
                continue
            arrivals.append(Arrival(
                filename, origin, self._fetcher(item), item.modified,
                sha256=sha256_of(head.metadata.get("hash-sha256")
                                 or head.metadata.get("hash_sha256")), size=item.size,
                uploader=_text(head.metadata.get("uploader"))))
        return Offer(tuple(arrivals))

    def _head(self, item: Listed) -> Deferred[ObjectHead | None]:
        return ensureDeferred(self._client.head(item.key))

    def _fetcher(self, item: Listed) -> Fetch:
        async def fetch(path: str, limit: int) -> Digests:
            if item.size > limit:
                raise SourceTooLarge(f"larger than {limit} bytes")
            data = await self._client.get(item.key, limit=limit, expect=item.size)
            if data is None:
                raise SourceUnavailable("removed from the bucket while it was read")
            digests: Digests = await self._run(copy_hashed, io.BytesIO(data), path, limit)
            return digests
        return lambda path, limit: ensureDeferred(fetch(path, limit))

    def close(self) -> None:
        """Nothing is held open here (the client's connections are closed by its owner)."""
