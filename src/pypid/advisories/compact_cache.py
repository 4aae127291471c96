"""
The advisories' compact cache beside the snapshot:
C{<snapshot>.d/advisories.cache}, what pypid keeps of the OSV export in
the compact form (L{pypid.core.security.compact_advisories}), written once per
export and read back at each start instead of the export.

Why so:
  - reading the export is the expensive part (the costs of both:
    L{pypid.advisories.feed}); it is done once per export, by
    L{compile_sources} (in a child process: L{pypid.advisories.compile_child});
    each start then reads the cache;
  - the cache is named by a key (L{cache_key}): the sources, their
    signature, the bounds they were read within, and the code that read
    them; so an export that changed, a C{max_size} changed or a pypid
    upgraded never reads an old cache;
  - the file is C{MAGIC}, one line of header, then the body: written to a
    temporary file and renamed over the cache, so a crash leaves the old
    cache or the new one; read, it is checked whole, and one that is not
    as written (truncated, damaged, edited) raises L{CacheUnusable}: the
    caller reads the export again, and the next write replaces it;
  - a cache whose records' digest is that of the advisories in force is
    not decoded at all: a refresh that finds the same records costs the
    header's read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol

import attrs

from pypid.advisories.osv_archive import ArchiveLimits, ArchiveRefused, Tally, records
from pypid.core.security.advisories import AdvisoryDB
from pypid.core.security.compact_advisories import CompactError, decode, encode
from pypid.core.security.osv import ReadResult, TooManyItems, read_records

#: The first line of a cache (its form's version).
MAGIC = b"pypid-advisories-cache 1\n"

#: The most bytes of a cache's header line, and of a whole cache.
MAX_HEADER = 64 << 10
MAX_CACHE = 1 << 30


class CacheUnusable(Exception):
    """The cache is not as it was written; the message says why, in one line."""


class CopyRefused(ArchiveRefused):
    """The URL's kept copy is refused (the path may still be read without it)."""


def cache_path(snapshot: str) -> str:
    """Where the compact cache is kept: beside the snapshot (as the URL's kept copy is)."""
    return f"{snapshot}.d/advisories.cache"


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """
    A digest of the code that reads the records and writes the compact form:
    a pypid whose reading changed does not trust what an older one made.
    """
    from pypid.advisories import osv_archive
    from pypid.core.security import advisories, compact_advisories, osv
    digest = hashlib.sha256()
    for module in (osv_archive, advisories, compact_advisories, osv):
        try:
            with open(module.__file__ or "", "rb") as f:
                digest.update(f.read())
        except OSError:
            digest.update(module.__name__.encode())
    return digest.hexdigest()


def cache_key(sources: list[str], signature: tuple[object, ...], limits: ArchiveLimits) -> str:
    """The name of the cache of C{sources} as C{signature} finds them, read within C{limits}."""
    named = json.dumps({"form": MAGIC.decode().strip(), "code": code_digest(),
                        "sources": sources, "signature": signature,
                        "limits": attrs.asdict(limits)}, sort_keys=True, default=str)
    return hashlib.sha256(named.encode("utf-8")).hexdigest()


@attrs.frozen
class CacheHeader:
    """The header line of a cache."""

    key: str
    digest: str
    source: str
    size: int
    body: str
    records: int = 0
    withdrawn: int = 0

    def to_json(self) -> dict[str, Any]:
        """The header as a JSON object."""
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: object) -> CacheHeader:
        """The header of a JSON object; L{CacheUnusable} when it is not one."""
        fields = {a.name: a.type for a in attrs.fields(cls)}
        if not isinstance(data, dict) or set(data) != set(fields):
            raise CacheUnusable("its header is not one")
        for name, kind in fields.items():
            value = data[name]
            if (kind == "str" and not isinstance(value, str)) or (kind == "int" and (
                    not isinstance(value, int) or isinstance(value, bool) or value < 0)):
                raise CacheUnusable(f"its header's {name} is not one")
        return cls(**data)


def write_cache(path: str, key: str, result: ReadResult) -> CacheHeader:
    """Write C{result}'s database as the cache C{path} named C{key}, whole or not at all."""
    lines = list(encode(result.db))
    body = hashlib.sha256()
    for line in lines:
        body.update(line)
    header = CacheHeader(key, result.db.digest, result.db.source, sum(map(len, lines)),
                         body.hexdigest(), result.records, result.withdrawn)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = f"{path}.part"
    try:
        with open(temporary, "wb") as f:
            f.write(MAGIC)
            f.write(json.dumps(header.to_json(), sort_keys=True).encode("utf-8") + b"\n")
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return header


@attrs.frozen
class Cached:
    """
    What L{read_cache} found: the header, and the database (L{None} when
    its digest is the one the caller has in force: not decoded).
    """

    header: CacheHeader
    db: AdvisoryDB | None


def read_cache(path: str, key: str, unless_digest: str = "") -> Cached | None:
    """
    The cache at C{path} when it is named C{key}; L{None} when there is
    none, or it is of another key. Its database is not decoded when its
    records' digest is C{unless_digest}. The body is read and decoded a line
    at a time, its size and digest checked at its end (all at once, the 18
    MB of 20,000 records' body were that much more at the peak).

    @raise CacheUnusable: when it is not as it was written.
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CacheUnusable(f"cannot read it: {e.strerror}")
    with f:
        try:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_CACHE:
                raise CacheUnusable(f"it is {size} bytes, more than {MAX_CACHE}")
            if f.read(len(MAGIC)) != MAGIC:
                raise CacheUnusable("it is not a cache of this pypid's")
            line = f.readline(MAX_HEADER)
            if not line.endswith(b"\n"):
                raise CacheUnusable("its header is cut short")
            try:
                header = CacheHeader.from_json(json.loads(line))
            except (ValueError, RecursionError):
                raise CacheUnusable("its header is not JSON")
            if header.key != key:
                return None
            if header.digest and header.digest == unless_digest:
                return Cached(header, None)
            body = _Body(f, header.size)
            try:
                db = decode(body.lines(), header.source, header.digest)
            except CompactError as e:
                raise CacheUnusable(str(e))
            if body.read != header.size or f.read(1) or body.digest() != header.body:
                raise CacheUnusable("its body is not the one written")
        except OSError as e:
            raise CacheUnusable(f"cannot read it: {e.strerror}")
    return Cached(header, db)


class _Body:
    """The lines of a cache's body, at most C{size} bytes of them, counted and digested."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f = f
        self._left = size
        self._digest = hashlib.sha256()
        self.read = 0

    def lines(self) -> Iterator[bytes]:
        while self._left > 0:
            line = self._f.readline(self._left)
            if not line:
                return
            self._left -= len(line)
            self.read += len(line)
            self._digest.update(line)
            yield line

    def digest(self) -> str:
        return self._digest.hexdigest()


def read_sources(path: str | None, saved: str | None, limits: ArchiveLimits) -> ReadResult:
    """
    Read the records of C{path} and of C{saved} (the URL's last archive)
    into one database; L{ArchiveRefused} (L{CopyRefused} for C{saved}) when refused.
    """
    tally = Tally()
    sources = [source for source in (path, saved) if source is not None]

    def documents() -> Iterator[bytes]:
        if path is not None:
            yield from records(path, limits, tally)
        if saved is not None:
            try:
                yield from records(saved, limits, tally)
            except ArchiveRefused as e:
                raise CopyRefused(str(e)) from None

    try:
        result = read_records(documents(), " + ".join(sources))
    except TooManyItems as e:
        raise ArchiveRefused(f"{' + '.join(sources)}: {e}") from None
    # (what the archive skipped, and the digest of what it read: known
    # only once the records were read)
    for reason, count in tally.skipped.items():
        result.skipped[reason] = result.skipped.get(reason, 0) + count
    result.db = attrs.evolve(result.db, digest=tally.digest)
    return result


@attrs.frozen
class CompileTask:
    """
    One reading of the sources into the cache: C{path} and C{saved} (the
    URL's kept copy) read within C{limits}, written to C{cache} named C{key}.
    """

    path: str | None
    saved: str | None
    cache: str
    key: str
    limits: ArchiveLimits = ArchiveLimits()

    def to_json(self) -> dict[str, Any]:
        """The task as a JSON object (for the child)."""
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompileTask:
        """The task of L{to_json}'s object."""
        return cls(data["path"], data["saved"], data["cache"], data["key"],
                   ArchiveLimits(**data["limits"]))


@attrs.frozen
class Compiled:
    """
    What a reading of the sources made: the cache's header (L{None}: nothing
    written), why the path was refused, why the kept copy was (the path read
    without it), and what was skipped (one line, or C{""}).
    """

    header: CacheHeader | None = None
    refused: str | None = None
    copy_refused: str | None = None
    skipped: str = ""

    def to_json(self) -> dict[str, Any]:
        """As a JSON object (the child's answer)."""
        return {"header": self.header.to_json() if self.header is not None else None,
                "refused": self.refused, "copy_refused": self.copy_refused,
                "skipped": self.skipped}

    @classmethod
    def from_json(cls, data: object) -> Compiled:
        """Of L{to_json}'s object; L{ValueError} when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        header = data.get("header")
        texts = [data.get(name) for name in ("refused", "copy_refused")]
        if not all(t is None or isinstance(t, str) for t in texts) \
                or not isinstance(data.get("skipped"), str):
            raise ValueError("not an answer")
        try:
            return cls(CacheHeader.from_json(header) if header is not None else None,
                       texts[0], texts[1], data["skipped"])
        except CacheUnusable as e:
            raise ValueError(str(e))


def compile_sources(task: CompileTask) -> Compiled:
    """
    Read the sources of C{task} within their bounds and write the cache
    (blocking). A kept copy that is refused is left out; a path refused
    writes nothing.
    """
    copy_refused = None
    try:
        try:
            result = read_sources(task.path, task.saved, task.limits)
        except CopyRefused as e:
            copy_refused = str(e)
            if task.path is None:
                return Compiled(copy_refused=copy_refused)
            result = read_sources(task.path, None, task.limits)
    except ArchiveRefused as e:
        return Compiled(refused=str(e), copy_refused=copy_refused)
    return Compiled(write_cache(task.cache, task.key, result), None, copy_refused, result.summary())


class Compiler(Protocol):
    """Who reads the sources into the cache (L{compile_sources}, here or in a child)."""

    def compile(self, task: CompileTask) -> Compiled:
        """Read C{task}'s sources and write its cache (blocking, in the pool)."""

    def stop(self) -> None:
        """End a reading under way, if it can be (the server stops)."""


class LocalCompiler:
    """L{compile_sources} in the calling thread (the tests, the tools)."""

    def compile(self, task: CompileTask) -> Compiled:
        """Read C{task}'s sources and write its cache."""
        return compile_sources(task)

    def stop(self) -> None:
        """Nothing to end: a reading here ends when it ends."""
