"""
What to pre-cache: requirements files, lock files and lists of names read
into pins, and the upstream files each pin selects. Pure logic, no I/O.

pypicache's C{POST /requirements.txt} fills a cache ahead of an outage or
of a disconnected build; here the same input (and PEP 751's C{pylock.toml},
and plain names) says which upstream files to fetch.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator, Sequence

import attrs
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from pypid.core.dists.names import InvalidName, canonical_version, is_valid_name, normalize
from pypid.core.dists.version_order import version_key
from pypid.upstream.page_model import UpstreamFile


class RequirementsError(ValueError):
    """The input cannot be read; the message names the line."""


@attrs.frozen
class Pin:
    """
    One project to pre-cache.

    @ivar version: the pinned version (normalized), or L{None} for the latest.
    @ivar hashes: sha256 digests the files must have (from C{--hash} or a
        lock file); empty for every file of the version.
    """

    project: str
    version: str | None = None
    hashes: frozenset[str] = frozenset()


def parse_requirements(text: str) -> list[Pin]:
    """
    Read a requirements file: C{name==version} lines (with C{--hash=sha256:}
    options and environment markers), or bare names.

    Comments, blank lines and options such as C{--index-url} are skipped;
    includes (C{-r}), editable and URL requirements cannot be pre-cached and
    are refused with the line named.

    @raise RequirementsError: for a line that cannot be read.
    """
    pins: list[Pin] = []
    for number, line in _logical_lines(text):
        words = line.split()
        if not words:
            continue
        if words[0].startswith("-"):
            if words[0] in ("-r", "--requirement", "-c", "--constraint", "-e", "--editable"):
                raise RequirementsError(f"line {number}: {words[0]} cannot be pre-cached")
            continue
        spec: list[str] = []
        hashes: set[str] = set()
        for word in words:
            if word.startswith("--hash="):
                algorithm, _, digest = word[len("--hash="):].partition(":")
                if algorithm == "sha256" and len(digest) == 64:
                    hashes.add(digest.lower())
            elif not word.startswith("-"):
                spec.append(word)
        pins.append(_pin(" ".join(spec), hashes, number))
    return pins


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines without comments, backslash continuations joined, numbered from 1."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        if not start:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, (pending + line).strip()
        pending, start = "", 0
    if pending:
        yield start, pending.strip()


def _pin(spec: str, hashes: Iterable[str], number: int) -> Pin:
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as e:
        raise RequirementsError(f"line {number}: not a requirement: {e}")
    if requirement.url:
        raise RequirementsError(f"line {number}: a URL requirement cannot be pre-cached")
    version = None
    specifiers = list(requirement.specifier)
    if len(specifiers) == 1 and specifiers[0].operator in ("==", "===") \
            and "*" not in specifiers[0].version:
        try:
            version = canonical_version(specifiers[0].version)
        except InvalidName as e:
            raise RequirementsError(f"line {number}: {e}")
    elif specifiers:
        raise RequirementsError(
            f"line {number}: {spec!r}: pin an exact version (==) or give the name alone")
    return Pin(normalize(requirement.name), version, frozenset(hashes))


def parse_names(names: Iterable[str]) -> list[Pin]:
    """Bare project names (the latest version of each)."""
    pins: list[Pin] = []
    for name in names:
        if not is_valid_name(name):
            raise RequirementsError(f"{name!r} is not a project name")
        pins.append(Pin(normalize(name)))
    return pins


def parse_pylock(text: str) -> list[Pin]:
    """
    Read a PEP 751 lock file: every package's name, version and the sha256
    digests of its sdist and wheels.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RequirementsError(f"not a TOML file: {e}")
    packages = data.get("packages")
    if not isinstance(packages, list):
        raise RequirementsError("a lock file needs a [[packages]] list")
    pins: list[Pin] = []
    for number, package in enumerate(packages, 1):
        if not isinstance(package, dict) or not is_valid_name(str(package.get("name", ""))):
            raise RequirementsError(f"package {number}: no valid name")
        version = package.get("version")
        hashes: set[str] = set()
        artifacts = list(package.get("wheels") or [])
        if isinstance(package.get("sdist"), dict):
            artifacts.append(package["sdist"])
        for artifact in artifacts:
            digest = (artifact.get("hashes") or {}).get("sha256") if isinstance(
                artifact, dict) else None
            if isinstance(digest, str) and len(digest) == 64:
                hashes.add(digest.lower())
        try:
            version = canonical_version(str(version)) if version else None
        except InvalidName as e:
            raise RequirementsError(f"package {number}: {e}")
        pins.append(Pin(normalize(package["name"]), version, frozenset(hashes)))
    return pins


def select(pin: Pin, files: Sequence[UpstreamFile]) -> tuple[UpstreamFile, ...]:
    """
    The upstream files (of those visible) a pin asks for: those of its version
    (or of the latest with a file not yanked), narrowed to its hashes if any.
    """
    version = pin.version
    if version is None:
        live = [f.version for f in files if f.yanked is None]
        if not live:
            return ()
        version = max(live, key=version_key)
    chosen = [f for f in files if _same_version(f.version, version)]
    if pin.hashes:
        chosen = [f for f in chosen if f.sha256 in pin.hashes]
    return tuple(chosen)


def _same_version(a: str, b: str) -> bool:
    """Whether two versions are equal under PEP 440 (C{1.0} is C{1.0.0})."""
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b
