"""
Reading a devpi export (C{devpi-export DIR}, or C{devpi-server --export
DIR}): its C{dataindex.json} and the files beside it. Tested with 6.20.3.

The export holds one entry per index (C{user/name}): its configuration and
its files, each with its path in the export, its digests, the time it was
stored (C{last_modified}) and a log of who did what to it, in UTC
(C{{"what": "upload", "who": "alice", "when": [2026, 11, 22, 23, 21, 53],
"dst": "alice/dev"}}). What is taken from it:

  - release files only: documentation zips and tox results are no
    distributions, and are reported as ignored;
  - the indexes of type C{stage}, and a mirror only when named
    (C{--index}): its files are copies of another index's;
  - the upload time and the uploader from the log's first upload (or
    push), else the file's C{last_modified};
  - the sha256 devpi recorded, checked against the bytes.

devpi keeps no yank state for its own indexes, and a delete leaves no
trace in its export: files come across not yanked, with no tombstone.

Each devpi index C{user/name} goes into the pypid index C{user-name} (or
the name C{--map} gives it), its bases translated the same way, a mirror
base (devpi's C{root/pypi}) as C{upstream:default} (L{DevpiIndexes}); those
indexes must be configured (L{pypid.bundle.sources.index_sections} prints
the sections). Flattened (C{--flatten}, the default while no
C{[index:NAME]} is configured), everything goes into the default index; a
filename two devpi indexes hold with other bytes is a conflict, and the
first index in name order wins.
"""

from __future__ import annotations

import calendar
import email.utils
import os
from collections.abc import Iterable
from functools import partial
from typing import IO, Any, TypeGuard

import attrs

from pypid.bundle.ingest import Arrival, SourceUnavailable
from pypid.bundle.manifest import BundleError
from pypid.bundle.sources import (
    IndexOffer,
    Offer,
    index_sections,
    local_fetch,
    open_regular,
    read_json_file,
    sha256_of,
)
from pypid.core.indexes.index_names import (
    DEFAULT,
    NAME,
    NAME_FORMS,
    ROUTE_SEGMENTS,
    UPSTREAM_PREFIX,
)
from pypid.jobs.run import Run

#: The most bytes of C{dataindex.json} read (it holds every release's metadata).
DATAINDEX_LIMIT = 1 << 30


@attrs.frozen
class DevpiFile:
    """One release file of a devpi export."""

    index: str
    relpath: str
    filename: str
    sha256: str | None
    upload_time: float | None
    uploader: str | None


def _when(value: Any) -> float | None:
    """POSIX time of a log entry's C{when} (UTC fields), or L{None}."""
    if (not isinstance(value, (list, tuple)) or len(value) < 6
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value[:6])):
        return None
    try:
        return float(calendar.timegm(tuple(value[:6]) + (0, 0, 0)))
    except (ValueError, OverflowError):
        return None


def _last_modified(value: Any) -> float | None:
    """POSIX time of an HTTP date (C{Sun, 22 Nov 2026 23:21:53 GMT}), or L{None}."""
    if not isinstance(value, str):
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _sha256(entry: dict[str, Any]) -> str | None:
    """The sha256 devpi recorded for a file, or L{None}."""
    mapping = entry.get("entrymapping")
    if not isinstance(mapping, dict):
        return None
    hashes = mapping.get("hashes")
    if isinstance(hashes, dict) and isinstance(hashes.get("sha256"), str):
        return sha256_of(hashes["sha256"])
    spec = mapping.get("hash_spec")
    if isinstance(spec, str) and spec.startswith("sha256="):
        return sha256_of(spec[len("sha256="):])
    return None


def _upload(entry: dict[str, Any]) -> tuple[float | None, str | None]:
    """C{(time, who)} of a file's first upload (or push) in its log."""
    log = entry.get("log")
    if isinstance(log, list):
        for wanted in ("upload", "push"):
            for item in log:
                if isinstance(item, dict) and item.get("what") == wanted:
                    who = item.get("who")
                    return _when(item.get("when")), who if isinstance(who, str) else None
    return None, None


def _safe_relpath(relpath: object) -> TypeGuard[str]:
    """Whether a path from the export stays inside it."""
    if (not isinstance(relpath, str) or not relpath or "\\" in relpath or "\x00" in relpath
            or relpath.startswith("/")):
        return False
    return all(part not in ("", ".", "..") for part in relpath.split("/"))


def parse_dataindex(data: Any, wanted: Iterable[str] | None = None
                    ) -> tuple[list[DevpiFile], list[tuple[str, str]], list[tuple[str, str]]]:
    """
    The release files of a devpi export's C{dataindex.json} (parsed), and
    what is left out.

    @param wanted: the indexes (C{user/name}) to take, or L{None} for every
        stage index.
    @return: C{(files, ignored, refused)}: L{DevpiFile}s in index-name
        order, and C{(origin, why)} pairs.
    @raise BundleError: when it is not a devpi export, or C{wanted} names
        an index that is not in it.
    """
    if not isinstance(data, dict) or not isinstance(data.get("indexes"), dict):
        raise BundleError("dataindex.json: not a devpi export (no indexes)")
    indexes = data["indexes"]
    if wanted:
        missing = [name for name in wanted if name not in indexes]
        if missing:
            raise BundleError(f"the devpi export has no index {', '.join(missing)} "
                              f"(it has: {', '.join(sorted(indexes)) or 'none'})")
    files: list[DevpiFile] = []
    ignored: list[tuple[str, str]] = []
    refused: list[tuple[str, str]] = []
    for name in sorted(indexes):
        index = indexes[name]
        if not isinstance(index, dict):
            refused.append((name, "not an index"))
            continue
        if wanted and name not in wanted:
            continue
        if not wanted and _index_config(data, name).get("type") == "mirror":
            ignored.append((name, "a mirror of another index: name it with --index to take "
                                  "the files it cached"))
            continue
        entries = index.get("files", [])
        if not isinstance(entries, list):
            refused.append((name, "its list of files is not a list"))
            continue
        for entry in entries:
            if not isinstance(entry, dict):
                refused.append((name, "a file entry that is not an object"))
                continue
            relpath = entry.get("relpath")
            origin = relpath if isinstance(relpath, str) else name
            kind = entry.get("type")
            if kind == "doczip":
                ignored.append((origin, "documentation (a doc zip), not a distribution"))
                continue
            if kind == "toxresult":
                ignored.append((origin, "a tox result, not a distribution"))
                continue
            if kind != "releasefile":
                ignored.append((origin, f"a {kind!r} entry, not a release file"))
                continue
            if not _safe_relpath(relpath):
                refused.append((origin, "its path leaves the export"))
                continue
            when, who = _upload(entry)
            if when is None:
                mapping = entry.get("entrymapping")
                when = _last_modified(mapping.get("last_modified")
                                      if isinstance(mapping, dict) else None)
            files.append(DevpiFile(name, relpath, relpath.rpartition("/")[2], _sha256(entry),
                                   when, who))
    return files, ignored, refused


#: The base a devpi mirror (C{root/pypi}) becomes: C{[upstream]}.
MIRROR_BASE = UPSTREAM_PREFIX + DEFAULT


def parse_map(text: str) -> tuple[str, str]:
    """
    One C{--map USER/NAME=INDEX}.

    @raise ValueError: saying what is wrong.
    """
    devpi, sep, name = text.partition("=")
    if not sep or devpi.count("/") != 1 or not all(devpi.split("/")):
        raise ValueError(f"--map {text}: expected USER/NAME=INDEX")
    return devpi, _checked_name(name, f"--map {text}")


def _checked_name(name: str, where: str) -> str:
    if not NAME.match(name):
        raise ValueError(f"{where}: {name!r} is not an index name; {NAME_FORMS}")
    if name in ROUTE_SEGMENTS:
        raise ValueError(f"{where}: {name!r} is a path of the server; choose another name")
    return name


@attrs.frozen
class DevpiIndexes:
    """
    How devpi's indexes become pypid's: C{user/name} -> C{user-name}
    (lower-cased), or what C{maps} says; their bases alike, a mirror as
    L{MIRROR_BASE}.
    """

    maps: dict[str, str] = attrs.field(factory=dict)

    def name_of(self, devpi: str) -> str:
        """
        The pypid index of the devpi index C{devpi}.

        @raise BundleError: when it makes no index name (then C{--map} it).
        """
        if devpi in self.maps:
            return self.maps[devpi]
        try:
            return _checked_name(devpi.replace("/", "-").lower(), f"the devpi index {devpi}")
        except ValueError as e:
            raise BundleError(f"{e}: name it with --map {devpi}=NAME")

    def bases_of(self, devpi: str, data: dict[str, Any]) -> tuple[str, ...]:
        """The bases of C{devpi}'s pypid index, from the export's C{indexconfig}s."""
        config = _index_config(data, devpi)
        bases = config.get("bases", ())
        if isinstance(bases, str):  # (devpi accepts "a/b,c/d" too)
            bases = bases.split(",")
        found: list[str] = []
        for base in bases if isinstance(bases, (list, tuple)) else ():
            if not isinstance(base, str) or not base.strip():
                continue
            base = base.strip()
            mirror = _index_config(data, base).get("type") == "mirror"
            name = MIRROR_BASE if mirror else self.name_of(base)
            if name not in found:
                found.append(name)
        return tuple(found)


def _index_config(data: dict[str, Any], devpi: str) -> dict[str, Any]:
    index = data["indexes"].get(devpi)
    config = index.get("indexconfig") if isinstance(index, dict) else None
    return config if isinstance(config, dict) else {}


class DevpiSource:
    """A devpi export folder; see the module."""

    kind = "devpi"

    def __init__(self, path: str, run: Run, indexes: Iterable[str] | None = None,
                 kept: DevpiIndexes | None = None) -> None:
        """
        @param indexes: the devpi indexes to take (L{None}: every stage).
        @param kept: how to keep devpi's indexes as pypid's; L{None}:
            flatten them into the default index.
        """
        self._path = os.path.abspath(path)
        self._run = run
        self._indexes = tuple(indexes) if indexes else None
        self._kept = kept

    async def read(self) -> Offer:
        """The export's L{Offer}."""
        data = await self._run(read_json_file, os.path.join(self._path, "dataindex.json"),
                               DATAINDEX_LIMIT)
        if data is None:
            raise BundleError(f"{self._path} has no readable dataindex.json: not a devpi export")
        files, ignored, refused = parse_dataindex(data, self._indexes)
        arrivals: list[Arrival] = []
        groups: dict[str, list[Arrival]] = {}
        for item in files:
            path = os.path.join(self._path, *item.relpath.split("/"))
            when: float | None = item.upload_time
            if when is None:
                try:
                    when = (await self._run(os.stat, path)).st_mtime
                except OSError:
                    when = 0.0
            arrival = Arrival(
                item.filename, item.relpath,
                local_fetch(self._run, partial(_open_inside, self._path, path)),
                when, sha256=item.sha256, uploader=item.uploader)
            arrivals.append(arrival)
            groups.setdefault(item.index, []).append(arrival)
        if self._kept is None:
            return Offer(tuple(arrivals), ignored=tuple(ignored), refused=tuple(refused),
                         note=_flattened(groups, data))
        offers = tuple(IndexOffer(self._kept.name_of(devpi), self._kept.bases_of(devpi, data),
                                  tuple(taken), origin=devpi)
                       for devpi, taken in sorted(groups.items()))
        return Offer((), ignored=tuple(ignored), refused=tuple(refused), indexes=offers)

    def close(self) -> None:
        """Nothing is held open."""


def _flattened(groups: dict[str, list[Arrival]], data: dict[str, Any]) -> str:
    """
    The note after a flattened import of several devpi indexes: the
    sections that would keep them (none when a name needs a C{--map}).
    """
    if len(groups) < 2:
        return ""
    kept = DevpiIndexes()
    try:
        offers = [IndexOffer(kept.name_of(devpi), kept.bases_of(devpi, data), (), origin=devpi)
                  for devpi in sorted(groups)]
    except BundleError:
        return ""
    return ("The devpi indexes went into the default index, flattened. To keep them as "
            "indexes of their own, configure these sections and import again:\n\n"
            + index_sections(offers) + "\n")


def _open_inside(root: str, path: str) -> IO[bytes]:
    """Open a file of the export, refusing one that a link leads out of it."""
    real = os.path.realpath(path)
    if os.path.commonpath([os.path.realpath(root), real]) != os.path.realpath(root):
        raise SourceUnavailable("a link leads out of the export")
    return open_regular(real)
