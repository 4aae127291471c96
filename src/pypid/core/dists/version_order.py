"""
The order of versions, the version installers pick by default, and the
key a release is compared by (L{release_key}): for whatever lists
versions, none of which needs the index for it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar, overload

from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

from pypid.core.dists.model import FileRecord


def version_key(version: str) -> tuple[int, Version | None, str]:
    """Sort key for version strings; invalid ones sort first, by text."""
    try:
        return (1, Version(version), version)
    except InvalidVersion:
        return (0, None, version)


class _VersionedFile(Protocol):
    """What a page lists: a file of a version."""

    @property
    def version(self) -> str: ...

    @property
    def filename(self) -> str: ...


_F = TypeVar("_F", bound=_VersionedFile)
_T = TypeVar("_T")


@overload
def page_order(items: Iterable[_F]) -> list[_F]: ...
@overload
def page_order(items: Iterable[_T], file: Callable[[_T], _VersionedFile]) -> list[_T]: ...


def page_order(items: Iterable[Any],
               file: Callable[[Any], _VersionedFile] | None = None) -> list[Any]:
    """
    C{items} in the order pages list files: by version (L{version_key}),
    then filename; each distinct version parsed once, not once a file
    (an upstream page of thousands of wheels has a few hundred versions).

    @param file: where an item holds its file (items are files without it).
    """
    keys: dict[str, tuple[int, Version | None, str]] = {}

    def key(item: Any) -> tuple[tuple[int, Version | None, str], str]:
        f = item if file is None else file(item)
        version = f.version
        found = keys.get(version)
        if found is None:
            found = keys[version] = version_key(version)
        return found, f.filename
    return sorted(items, key=key)


def is_prerelease(version: str) -> bool:
    """Whether C{version} is a pre-release (one packaging cannot read counts as one)."""
    parsed = version_key(version)[1]
    return parsed is None or parsed.is_prerelease


def choose_latest(versions: Iterable[str], yanked: Callable[[str], bool]) -> str | None:
    """
    The version installers pick by default among C{versions}: the newest
    final release that is not wholly yanked; without one, the newest final
    release; with no final release, the same among pre-releases. L{None}
    for no versions.

    @param yanked: C{yanked(version)}: whether every file of it is yanked.
    """
    ordered = sorted(versions, key=version_key, reverse=True)
    finals = [v for v in ordered if not is_prerelease(v)] or ordered
    return next((v for v in finals if not yanked(v)), finals[0] if finals else None)


def latest_per_project(records: Iterable[FileRecord]) -> set[str]:
    """
    The filename of one file of each project's latest version (a wheel
    rather than an sdist): the page a person opens first, worth describing
    ahead of that view.
    """
    by_project: dict[str, list[FileRecord]] = {}
    for record in records:
        by_project.setdefault(record.project, []).append(record)
    chosen = set()
    for files in by_project.values():
        versions = {r.version for r in files}
        alive = {r.version for r in files if r.yanked is None}
        latest = choose_latest(versions, (versions - alive).__contains__)
        chosen.add(min((not r.is_wheel, r.filename) for r in files if r.version == latest)[1])
    return chosen


@functools.lru_cache(maxsize=1 << 16)
def release_key(version: str) -> str:
    """
    What a version is compared by in version lists and waivers: its PEP
    440 canonical text, trailing zeros of the release dropped (so C{1.0}
    and C{1.0.0} are one release, as installers see them: both C{1}), or,
    when PEP 440 cannot read it, its text in lower case.

    Text rather than L{Version} objects: a hostile record listing 400,000
    distinct versions kept 381 MiB as objects; as short strings, a sixth.
    Remembered (the same few thousand versions recur in every export).
    """
    try:
        return canonicalize_version(Version(version))
    except InvalidVersion:
        return version.strip().lower()
