"""
What an import reads: a pypid bundle or a pypiserver folder (here), a devpi
export (L{pypid.bundle.devpi}), a pypicloud bucket or folder
(L{pypid.bundle.pypicloud}); and which of them a path is (L{detect}).

Every source gives an L{Offer}: the files as L{Arrival}s for
L{pypid.bundle.ingest.Ingest}, the deleted names it knows, and what it
holds that is not a distribution by design. A source never trusts a file
more than its kind deserves: a bundle's files must match its manifest,
and a devpi or pypicloud sha256 is checked against the bytes; the file is
then inspected like an upload by the ingest, whatever the source.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import IO, Any, Protocol

import attrs

from pypid.bundle.archive import BundleReader, copy_hashed, open_reader
from pypid.bundle.ingest import Arrival, Digests, Fetch, Opener, SourceUnavailable
from pypid.bundle.manifest import (
    INDEXES_JSON,
    MANIFEST,
    SHA256_HEX,
    BundledStatus,
    BundleError,
    BundleManifest,
    Digest,
    Member,
    classify,
    file_member,
    parse_indexes,
    parse_records,
    parse_statuses,
    parse_tombstones,
    provenance_member,
    records_member,
    statuses_member,
    tombstones_member,
)
from pypid.config.store_backends import backend_of_url
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.index_names import DEFAULT
from pypid.storage.base.reading import Run

#: How each kind is named in what the import says.
DESCRIPTIONS = {
    "bundle": "a pypid bundle",
    "devpi": "a devpi export",
    "pypiserver": "a pypiserver folder",
    "pypicloud": "a pypicloud storage",
}


@attrs.frozen
class IndexOffer:
    """
    What a source holds for one named index: a bundle's
    C{indexes/NAME/}, or a devpi index kept as an index of its own.

    @ivar name: the pypid index it goes into.
    @ivar bases: its bases, as an C{[index:NAME]} section spells them.
    @ivar origin: what the source calls it (devpi's C{user/name}), for people.
    @ivar statuses: its projects' statuses (a bundle's C{statuses.json}).
    """

    name: str
    bases: tuple[str, ...]
    arrivals: tuple[Arrival, ...]
    tombstones: frozenset[str] = frozenset()
    origin: str = ""
    statuses: dict[str, BundledStatus] = attrs.field(factory=dict)


def index_sections(indexes: Iterable[IndexOffer]) -> str:
    """
    The C{[index:NAME]} sections to add to the configuration for C{indexes}
    (each once, bases as given), for people to paste.
    """
    lines: list[str] = []
    seen: set[str] = set()
    for index in indexes:
        if index.name in seen:
            continue
        seen.add(index.name)
        if lines:
            lines.append("")
        lines.append(f"[index:{index.name}]" + (f"   ; {index.origin}" if index.origin
                                                and index.origin != index.name else ""))
        if index.bases:
            lines.append(f"bases = {', '.join(index.bases)}")
    return "\n".join(lines) + "\n"


@attrs.frozen
class Offer:
    """
    What a source holds.

    @ivar arrivals: the files, as L{Arrival}s, in the order best read in.
    @ivar tombstones: deleted filenames the source keeps (a bundle's).
    @ivar ignored: C{(origin, why)} of what is not imported by design.
    @ivar refused: C{(origin, why)} of what the source cannot offer, not
        tied to one file (a bundle's audit log file that does not match its
        manifest).
    @ivar audit: C{(name, opener)} of the bundle's audit log members,
        checked against its manifest (L{pypid.bundle.ingest.carry_audit}).
    @ivar indexes: what goes into named indexes; the rest is the default index's.
    @ivar note: what to tell people once it is imported (lines), or C{""}.
    @ivar statuses: the default index's projects' statuses (PEP 792; only
        a bundle keeps them), kept before any file is taken.
    """

    arrivals: tuple[Arrival, ...]
    tombstones: frozenset[str] = frozenset()
    ignored: tuple[tuple[str, str], ...] = ()
    refused: tuple[tuple[str, str], ...] = ()
    audit: tuple[tuple[str, Opener], ...] = ()
    indexes: tuple[IndexOffer, ...] = ()
    note: str = ""
    statuses: dict[str, BundledStatus] = attrs.field(factory=dict)


class ImportSource(Protocol):
    """What every kind of source offers the import (L{pypid.cli.bundle})."""

    kind: str

    async def read(self) -> Offer:
        """What the source holds."""

    def close(self) -> None:
        """Let go of what reading it holds open."""


def detect(path: str) -> str:
    """
    The kind of source at C{path}: a bucket's URL (C{s3://}, C{gs://} ...)
    is a pypicloud bucket; a file is a bundle (a tar file); a folder with a
    C{manifest.json} is a bundle, with a C{dataindex.json} a devpi export,
    with C{.meta} files beside the distributions a pypicloud storage, and
    otherwise a pypiserver folder.

    @raise BundleError: when nothing is there.
    """
    if backend_of_url(path) is not None:
        return "pypicloud"
    if os.path.isfile(path):
        return "bundle"
    if not os.path.isdir(path):
        raise BundleError(f"{path} does not exist")
    if os.path.isfile(os.path.join(path, MANIFEST)):
        return "bundle"
    if os.path.isfile(os.path.join(path, "dataindex.json")):
        return "devpi"
    for _folder, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(name.endswith(".meta") and not name.startswith(".") for name in files):
            return "pypicloud"
    return "pypiserver"


def open_regular(path: str) -> IO[bytes]:
    """
    Open a file for reading, refusing anything but a regular file (a device
    or a FIFO would block or never end) and a symbolic link (which may lead
    out of the folder imported).

    @raise SourceUnavailable: when it is not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SourceUnavailable(NOT_FOLLOWED)
        raise
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise SourceUnavailable("not a regular file")
    return f


def _copy(opener: Opener, path: str, limit: int) -> Digests:
    with opener() as source:
        return copy_hashed(source, path, limit)


def local_fetch(run: Run, opener: Opener) -> Fetch:
    """An L{Arrival.fetch} copying what C{opener()} gives, in a worker thread."""
    return lambda path, limit: run(_copy, opener, path, limit)


def walk_files(root: str) -> Iterator[tuple[str, str, os.stat_result | None]]:
    """
    Yield C{(relative path, absolute path, stat)} of every file under
    C{root}, but hidden ones (as pypid and pypiserver skip them); the stat
    is a link's own (see L{refusal_of}).
    """
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            info: os.stat_result | None
            try:
                info = os.lstat(path)
            except OSError:
                info = None
            yield os.path.relpath(path, root), path, info


#: What L{FolderSource._scan} finds of each file: its path relative to the
#: folder, its absolute path, its stat (see L{walk_files}), and the sha256
#: and the uploader the source gives, or L{None}.
Found = tuple[str, str, os.stat_result | None, str | None, str | None]

#: Why a symbolic link in a folder imported is not taken.
NOT_FOLLOWED = "a symbolic link: an import takes the folder's own files only"


def refusal_of(info: os.stat_result | None) -> str | None:
    """Why a file L{walk_files} found is not taken, or L{None} to take it."""
    if info is not None and stat.S_ISLNK(info.st_mode):
        return NOT_FOLLOWED
    if info is None or not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    return None


# -- a pypid bundle ---------------------------------------------------------------------


class BundleSource:
    """
    A bundle (L{pypid.bundle.manifest}), folder or tar file, checked whole
    before anything is offered: one with a member outside its layout,
    without a manifest, or whose records or tombstones do not match it, is
    refused entirely (L{BundleError}); a file whose bytes, metadata or
    details do not match, or that has no record, is refused alone.
    """

    kind = "bundle"

    def __init__(self, path: str, run: Run) -> None:
        self._path = path
        self._run = run
        self._reader: BundleReader | None = None

    async def read(self) -> Offer:
        """The bundle's L{Offer}."""
        self._reader = reader = await self._run(open_reader, self._path)
        kept = reader.kept
        if MANIFEST not in kept:
            raise BundleError(f"{self._path} has no {MANIFEST}: it is not a pypid bundle, "
                              "or an export that did not finish")
        manifest = BundleManifest.parse(kept[MANIFEST])
        named = parse_indexes(self._checked(reader, INDEXES_JSON, manifest)) \
            if INDEXES_JSON in kept or INDEXES_JSON in manifest.members else ()
        names = {index.name for index in named}
        problems: dict[tuple[str, str], str] = {}
        refused: list[tuple[str, str]] = []
        audit: list[tuple[str, Opener]] = []

        def wrong(member: Member, why: str) -> None:
            # (a file's own member refuses that file; any other, itself)
            if member.filename is not None:
                problems.setdefault((member.index or DEFAULT, member.filename), why)
            else:
                refused.append((member.name, why))
        for name in [*reader.digests, *reader.files]:
            member = classify(name)
            if member.index is not None and member.index not in names:
                raise BundleError(f"{name} is in the bundle, but its index is not in "
                                  f"{INDEXES_JSON}: the bundle was changed")
        for name, found in sorted(reader.digests.items()):
            member = classify(name)
            if member.kind in ("manifest", "records", "tombstones", "statuses", "indexes"):
                continue
            expected = manifest.members.get(name)
            if expected == found:
                if member.kind == "audit":
                    audit.append((name, partial(reader.open, name)))
                continue
            wrong(member, f"{name} is in the bundle but not in its manifest" if expected is None
                  else f"{name} {_differs(found, expected)}")
        for name in sorted(manifest.members):
            if name not in reader.sizes:
                wrong(classify(name),
                      f"{name} is named in the manifest but missing from the bundle")
        arrivals, tombstones = self._index(reader, DEFAULT, manifest, problems)
        offers = []
        for index in named:
            found_arrivals, found_tombstones = self._index(reader, index.name, manifest, problems)
            offers.append(IndexOffer(index.name, index.bases, found_arrivals, found_tombstones,
                                     statuses=self._statuses(reader, index.name, manifest)))
        return Offer(arrivals, tombstones, (), tuple(refused), tuple(audit), tuple(offers),
                     statuses=self._statuses(reader, DEFAULT, manifest))

    def _statuses(self, reader: BundleReader, index: str,
                  manifest: BundleManifest) -> dict[str, BundledStatus]:
        """
        The projects' statuses of one index of the bundle; none without a
        C{statuses.json} (a storage without any, or an older pypid's).

        @raise BundleError: when the member does not match the manifest, or
            is missing while the manifest names it: a status lost on the way
            would have the project's files arrive active.
        """
        member = statuses_member(index)
        if member not in reader.kept and member not in manifest.members:
            return {}
        return parse_statuses(self._checked(reader, member, manifest), member)

    def _checked(self, reader: BundleReader, name: str, manifest: BundleManifest) -> bytes:
        """The kept member C{name}; L{BundleError} when missing or not the manifest's."""
        if name not in reader.kept:
            raise BundleError(f"{self._path} has no {name}")
        expected, found = manifest.members.get(name), reader.digests[name]
        if expected is None:
            raise BundleError(f"{name} is in the bundle but not in its manifest: the "
                              "bundle was changed")
        if expected != found:
            raise BundleError(f"{name} {_differs(found, expected)}: the bundle was changed")
        return reader.kept[name]

    def _index(self, reader: BundleReader, index: str, manifest: BundleManifest,
               problems: dict[tuple[str, str], str]
               ) -> tuple[tuple[Arrival, ...], frozenset[str]]:
        """The arrivals and tombstones of one index of the bundle (C{default}: the top level)."""
        records = parse_records(self._checked(reader, records_member(index), manifest))
        tombstones = parse_tombstones(self._checked(reader, tombstones_member(index), manifest))
        own = None if index == DEFAULT else index
        listed = (manifest.files if own is None else
                  {m.filename: d for n, d in manifest.members.items()
                   if (m := classify(n)).kind == "file" and m.index == own
                   and m.filename is not None})
        arrivals: list[Arrival] = []
        offered: set[str] = set()
        for name in reader.files:
            member = classify(name)
            if member.index != own:
                continue
            filename = member.filename
            assert filename is not None  # (the reader's files are file members)
            offered.add(filename)
            arrivals.append(self._arrival(reader, index, name, filename, listed, records,
                                          problems.get((index, filename))))
        for filename in sorted((set(listed) | set(records)) - offered):
            arrivals.append(Arrival(filename, file_member(filename, index), None, 0.0,
                                    refused="missing from the bundle"))
        return tuple(arrivals), tombstones

    def _arrival(self, reader: BundleReader, index: str, name: str, filename: str,
                 listed: dict[str, Digest], records: dict[str, FileRecord],
                 problem: str | None) -> Arrival:
        expected, record = listed.get(filename), records.get(filename)
        if problem is None:
            if expected is None:
                problem = f"{name} is in the bundle but not in its manifest"
            elif record is None:
                problem = f"it has no record in {records_member(index)}"
            elif record.sha256 != expected.sha256 or record.size != expected.size:
                problem = f"its record in {records_member(index)} and the manifest disagree"
            elif reader.sizes[name] != expected.size:
                problem = f"it has {reader.sizes[name]} bytes; the manifest says {expected.size}"
        provenance = None
        if problem is None and record is not None and record.provenance_sha256 is not None:
            member = provenance_member(filename, index)
            if member not in reader.digests:
                problem = f"its record names a provenance, but the bundle has no {member}"
            else:
                provenance = partial(self._run, _read_member, reader.open, member,
                                     reader.digests[member])
        if problem is not None or expected is None or record is None:
            return Arrival(filename, name, None, 0.0, refused=problem)
        return Arrival(
            filename, name, local_fetch(self._run, partial(reader.open, name)),
            record.upload_time, sha256=expected.sha256, size=expected.size,
            uploader=record.uploader, yanked=record.yanked, yank_known=True,
            provenance=provenance, provenance_sha256=record.provenance_sha256)

    def close(self) -> None:
        """Close the bundle (a tar file is held open while it is read)."""
        if self._reader is not None:
            self._reader.close()


def _read_member(opener: Callable[[str], IO[bytes]], name: str, digest: Digest) -> bytes:
    """A small member's bytes (blocking), when they are still those the bundle was read with."""
    with opener(name) as f:
        data = f.read(digest.size + 1)
    if Digest(hashlib.sha256(data).hexdigest(), len(data)) != digest:
        raise BundleError(f"{name} changed while the bundle was read")
    return data


def _differs(found: Digest, expected: Digest) -> str:
    return (f"has sha256 {found.sha256} ({found.size} bytes); the manifest says "
            f"{expected.sha256} ({expected.size} bytes)")


# -- a pypiserver folder ------------------------------------------------------------------


class FolderSource:
    """A source that is a folder of files (pypiserver's, pypicloud's C{storage.dir})."""

    def __init__(self, path: str, run: Run) -> None:
        self._path = path
        self._run = run

    async def read(self) -> Offer:
        """The folder's L{Offer}."""
        if not os.path.isdir(self._path):
            raise BundleError(f"{self._path} is not a folder")
        found = await self._run(self._scan)
        arrivals: list[Arrival] = []
        for relative, path, info, sha256, uploader in found:
            filename = os.path.basename(path)
            refusal = refusal_of(info)
            if refusal is not None:
                arrivals.append(Arrival(filename, relative, None, 0.0, refused=refusal))
                continue
            assert info is not None  # (refusal_of refuses a file it could not stat)
            arrivals.append(Arrival(filename, relative,
                                    local_fetch(self._run, partial(open_regular, path)),
                                    info.st_mtime, sha256=sha256, size=info.st_size,
                                    uploader=uploader))
        return Offer(tuple(arrivals))

    def _scan(self) -> list[Found]:
        """The folder's files (L{walk_files}), none with a known sha256 or uploader."""
        return [(relative, path, info, None, None)
                for relative, path, info in walk_files(self._path)]

    def close(self) -> None:
        """Nothing is held open."""


class PypiserverSource(FolderSource):
    """
    A folder pypiserver serves: distribution files, flat or in nested
    folders. pypiserver keeps nothing but the files, so each one's upload
    time is its modification time.
    """

    kind = "pypiserver"


def sha256_of(value: Any) -> str | None:
    """The hex sha256 a source gives (any case), lower-cased; L{None} when it is not one."""
    return value.lower() if isinstance(value, str) and SHA256_HEX.match(value.lower()) else None


def read_json_file(path: str, limit: int) -> dict[str, Any] | None:
    """The JSON object in a small file, or L{None} when missing, too big or no object."""
    try:
        with open_regular(path) as f:
            data = f.read(limit + 1)
    except (OSError, SourceUnavailable):
        return None
    if len(data) > limit:
        return None
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
