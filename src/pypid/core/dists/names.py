"""
Project names and distribution filenames: the rules of PEP 503, PEP 427
and PEP 625, as the public index applies them to uploads. Every function
takes a string and either returns a value or raises L{InvalidName} with a
message a person can act on.
"""

from __future__ import annotations

import functools
import re

import attrs
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from pypid.core.dists.wheel_variants import InvalidVariant, labelled, split_label
from pypid.core.util.bounded import remember

# re.ASCII: with IGNORECASE alone, [A-Z] also matches U+017F and U+212A
# (lookalikes of s and k), and PEP 508 names are ASCII.
_VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE | re.ASCII)
_SEPARATORS = re.compile(r"[-_.]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: The characters a project name may hold, wherever they stand (L{_VALID_NAME}
#: says where).
_NAME_CHARACTERS = re.compile(r"[A-Z0-9._-]+\Z", re.IGNORECASE | re.ASCII)
_BUILD = re.compile(r"(\d+)(.*)\Z", re.ASCII | re.DOTALL)
#: What a wheel filename may hold after its name: a version (with an epoch
#: and a local part), a build tag and tags, all ASCII (packaging
#: lets a build tag or a platform tag hold bidi overrides, C1 controls,
#: zero-width characters and NFC/NFD twins of another filename).
_WHEEL_REST = re.compile(r"[A-Za-z0-9_.!+-]+\Z", re.ASCII)

#: Longest filename accepted on upload: well under every filesystem's 255 bytes,
#: leaving room for the sidecar suffixes kept beside a file.
MAX_FILENAME_LENGTH = 200

WHEEL = "bdist_wheel"
SDIST = "sdist"

#: The extensions of the sdists a stored folder (pypiserver's layout) may
#: hold, every one served; uploads take only the first two, as the public
#: index does.
SDIST_EXTENSIONS = (".tar.gz", ".zip", ".tar.bz2", ".tgz")
_UPLOAD_SDIST_EXTENSIONS = SDIST_EXTENSIONS[:2]

_UPLOAD_EXTENSIONS = "invalid file extension: use .tar.gz, .whl or .zip"
#: (what a folder's file is told: the README's list, every one served)
_FOLDER_EXTENSIONS = ("invalid file extension: pypid serves .whl, "
                      + ", ".join(SDIST_EXTENSIONS[:-1]) + f" and {SDIST_EXTENSIONS[-1]} files")


class InvalidName(ValueError):
    """A project name, version or filename that the index refuses."""


def normalize(name: str) -> str:
    """Return the PEP 503 normalized form of a project name."""
    return _SEPARATORS.sub("-", name).lower()


def is_valid_name(name: str) -> bool:
    """Whether C{name} is a valid project name (PEP 508 / core metadata)."""
    return bool(_VALID_NAME.match(name))


def canonical_version(version: str) -> str:
    """The normalized PEP 440 spelling of C{version}, or L{InvalidName} for none."""
    try:
        return str(Version(version))
    except InvalidVersion:
        raise InvalidName(f"{version!r} is not a valid PEP 440 version")


@attrs.frozen
class ParsedFilename:
    """
    What a distribution filename says about the file it names.

    @ivar project: the normalized project name.
    @ivar version: the normalized version.
    @ivar packagetype: C{"bdist_wheel"} or C{"sdist"}.
    @ivar pyversion: the wheel's python tag(s), or C{"source"} for an sdist.
    @ivar variant: a variant wheel's label (PEP 825: what follows its
        platform tag), or L{None} for any other file.
    """

    project: str
    version: str
    packagetype: str
    pyversion: str
    variant: str | None = None


def check_filename_characters(filename: str) -> None:
    """Refuse a filename that could never be stored safely."""
    if not filename:
        raise InvalidName("the filename is empty")
    if "/" in filename or "\\" in filename:
        raise InvalidName("a filename cannot contain '/' or '\\'")
    if _CONTROL.search(filename):
        raise InvalidName("a filename cannot contain control characters")
    if filename.startswith("."):
        raise InvalidName("a filename cannot start with '.'")
    if len(filename.encode("utf-8")) > MAX_FILENAME_LENGTH:
        raise InvalidName(f"the filename is longer than {MAX_FILENAME_LENGTH} bytes")


def parse_filename(filename: str, legacy: bool = False) -> ParsedFilename:
    """
    Parse a wheel or sdist filename.

    @param legacy: accept what an existing package folder may hold
        (C{.tar.bz2}, C{.tgz}, and sdist names that predate PEP 625) as well
        as what is accepted on upload.
    @raise InvalidName: if the filename is not a distribution the index serves.
    """
    check_filename_characters(filename)
    if filename.endswith(".whl"):
        return _parse_wheel(filename)
    return _parse_sdist(filename, legacy)


def _parsed(filename: str) -> ParsedFilename | None:
    """L{parse_filename} of any name a folder may hold, or L{None} for no distribution's."""
    try:
        return parse_filename(filename, legacy=True)
    except InvalidName:
        return None


def project_of_filename(filename: str) -> str | None:
    """
    The normalized project a distribution filename names, or L{None} when
    its name cannot be read: what an upload, a change and a deleted file's
    tombstone are filed under.
    """
    parsed = _parsed(filename)
    return None if parsed is None else parsed.project


def _check_name_part(name: str) -> None:
    """
    Refuse a filename's name that an upload's form could not give
    (L{is_valid_name}: ASCII), whatever the file came from: packaging
    takes any letter there, and lowercases the Kelvin sign to C{k}.
    """
    if not is_valid_name(name):
        if not name:
            raise InvalidName("it has no project name before its version")
        if _NAME_CHARACTERS.match(name):
            raise InvalidName(f"its project name {name!r} must start and end with "
                              "a letter or a digit")
        raise InvalidName(f"its project name {name!r} may hold only ASCII letters, "
                          "digits and ._-")


def _parse_sdist(filename: str, legacy: bool) -> ParsedFilename:
    """L{parse_filename} for an sdist's name."""
    for ext in SDIST_EXTENSIONS:
        if filename.endswith(ext):
            break
    else:
        raise InvalidName(_FOLDER_EXTENSIONS if legacy else _UPLOAD_EXTENSIONS)
    if not legacy and ext not in _UPLOAD_SDIST_EXTENSIONS:
        raise InvalidName(_UPLOAD_EXTENSIONS)
    stem = filename[: -len(ext)]
    try:
        name, version = parse_sdist_filename(stem + ".tar.gz")
    except (InvalidSdistFilename, InvalidVersion) as e:
        if not legacy:
            raise InvalidName(_sdist_fault(stem, e)) from None
        return _parse_legacy_sdist(stem)
    _check_name_part(stem.rpartition("-")[0])
    return ParsedFilename(str(name), str(version), SDIST, "source")


def _parse_wheel(filename: str) -> ParsedFilename:
    """
    L{parse_filename} for a C{.whl} name, a variant wheel's label (PEP 825)
    split off first (L{split_label}).

    C{packaging} reads the escaped name (before the first dash) apart from
    the rest, and a folder's wheels share names (a project's releases) and
    rests (versions and tag sets): so once a name has been parsed whole,
    its two parts are remembered, and a name whose parts are both known is
    answered from them (less than half the cost).
    """
    name_part, dash, rest = filename.partition("-")
    if not _WHEEL_REST.match(rest):
        raise InvalidName("its version, build tag and tags may hold only ASCII letters, "
                          "digits and _.!+-")
    project = _wheel_projects.get(name_part)
    if project is None:
        _check_name_part(name_part)
    else:
        parsed_rest = _wheel_rests.get(rest)
        if parsed_rest is not None:
            return ParsedFilename(project, parsed_rest[0], WHEEL, parsed_rest[1], parsed_rest[2])
    try:
        plain, label = split_label(filename)
    except InvalidVariant as e:
        raise InvalidName(f"its {e}") from None
    try:
        name, version, _build, tags = parse_wheel_filename(plain)
    except (InvalidWheelFilename, InvalidVersion) as e:
        raise InvalidName(_wheel_fault(plain[:-4], e)) from None
    pyversions = ".".join(sorted({t.interpreter for t in tags}))
    parsed = ParsedFilename(str(name), str(version), WHEEL, pyversions, label)
    if dash:
        remember(_wheel_projects, name_part, parsed.project, _WHEEL_PARTS)
        remember(_wheel_rests, rest, (parsed.version, pyversions, label), _WHEEL_PARTS)
    return parsed


def _wheel_fault(stem: str, error: Exception) -> str:
    """
    What is wrong with the wheel name C{stem} (without C{.whl}) that
    C{packaging} refused with C{error}, in words that do not repeat the
    filename (the caller names it, whole; C{packaging}'s messages name the
    stem). Worked out only on this path: a name parsed well costs nothing more.
    """
    parts = stem.split("-")
    if len(parts) not in (5, 6):
        return (f"a wheel's filename has 5 or 6 parts between dashes "
                f"(name-version[-build]-python-abi-platform.whl), not {len(parts)}")
    try:
        _check_name_part(parts[0])
    except InvalidName as e:
        return str(e)
    if "__" in parts[0]:
        return (f"its project name {parts[0]!r} is not escaped as a wheel's is "
                "(each run of ._- becomes one _)")
    try:
        Version(parts[1])
    except InvalidVersion:
        return f"its version {parts[1]!r} is not a valid PEP 440 version"
    fault = _packaging_fault(stem, error)
    if "tag" in fault:
        return f"its tags {'-'.join(parts[-3:])!r} are not valid python-abi-platform tags"
    return fault


def _sdist_fault(stem: str, error: Exception) -> str:
    """L{_wheel_fault} for an sdist's C{stem} (without its extension)."""
    name, dash, version = stem.rpartition("-")
    if not dash:
        return "it has no dash between the project name and the version (name-version.tar.gz)"
    if not name:
        return "it has no project name before its version"
    try:
        Version(version)
    except InvalidVersion:
        return f"its version {version!r} is not a valid PEP 440 version"
    return _packaging_fault(stem, error)


def _packaging_fault(stem: str, error: Exception) -> str:
    """
    C{packaging}'s message for a fault L{_wheel_fault} does not word
    itself (C{"Invalid wheel filename (invalid tag component): 'x-1'"}),
    without the name it quotes: C{"invalid tag component"}.
    """
    text = str(error)
    bracketed = re.search(r"\((.+)\)", text)
    if bracketed is not None:
        return bracketed.group(1)
    text = text.replace(f" in {stem!r}", "").replace(f": {stem!r}", "")
    return text[:1].lower() + text[1:]


# The parts of wheel names parsed whole (L{_parse_wheel}), each table at
# most _WHEEL_PARTS entries of at most MAX_FILENAME_LENGTH bytes.
_WHEEL_PARTS = 4096
_wheel_projects: dict[str, str] = {}
_wheel_rests: dict[str, tuple[str, str, str | None]] = {}


def _parse_legacy_sdist(stem: str) -> ParsedFilename:
    """
    Split an old-style sdist stem such as C{my-project-1.0} on the last dash
    followed by a valid version, as pypiserver does for existing folders.
    """
    parts = stem.split("-")
    for i in range(len(parts) - 1, 0, -1):
        name, version = "-".join(parts[:i]), "-".join(parts[i:])
        if not is_valid_name(name):
            continue
        try:
            return ParsedFilename(normalize(name), canonical_version(version), SDIST, "source")
        except InvalidName:
            continue
    raise InvalidName(f"cannot find a name and version in {stem!r}")


def filename_key(filename: str) -> str | None:
    """
    What makes two filenames name the same distribution, as installers see
    them: the normalized project, the release (L{_release}: C{1.0} and
    C{1.0.0} are one), and for a wheel its build number and its set of
    compatibility tags, expanded and sorted (C{py2.py3} is C{py3.py2}). All
    sdists of one release share a key (the public index allows one sdist
    a release). L{None} for a name that is not a distribution.
    """
    parsed = _parsed(filename)
    if parsed is None:
        return None
    return distribution_key(parsed.project, parsed.version, parsed.packagetype, filename)


def variant_release(filename: str) -> str | None:
    """
    For a variant wheel (PEP 825), a key naming its release's variant
    wheels, which must agree with one another; L{None} for any other file.
    """
    parsed = _parsed(filename)
    if parsed is None or parsed.variant is None:
        return None
    return f"{parsed.project}|{_release(parsed.version)}|variants"


def distribution_key(project: str, version: str, packagetype: str, filename: str) -> str:
    """
    L{filename_key} for a file whose normalized project and version are
    known already (an index record): no filename parsing, as the index
    computes it for every file it loads. No key is ever stored, so a change
    of rule applies to old indexes at once.
    """
    release = _release(version)
    if packagetype == WHEEL:
        # (a wheel's name and version hold no "-": what follows them is the tail)
        tail = filename[:-4].split("-", 2)[2].lower()
        return f"{project}|{release}|{packagetype}|{_wheel_tags(tail)}"
    return f"{project}|{release}|{packagetype}"


@functools.lru_cache(maxsize=4096)
def _release(version: str) -> str:
    """
    The release a version belongs to, as the public index compares them:
    packaging's L{canonicalize_version}, which drops trailing C{.0} release
    components and keeps the epoch, pre/post/dev parts and local version.
    """
    return canonicalize_version(version)


@functools.lru_cache(maxsize=1024)
def _wheel_tags(tail: str) -> str:
    """
    The build number (compared as installers do: C{01} is C{1}) and the
    expanded, sorted tag set of a wheel filename's lowercased tail
    (C{[build-]python-abi-platform[-label]}), and a variant wheel's label
    (PEP 825), which makes another distribution.
    """
    parts = tail.split("-")
    # (a variant wheel's label last: a distribution of its own)
    label = "|" + parts.pop() if labelled(parts) else ""
    if len(parts) == 4:
        match = _BUILD.match(parts[0])
        build = f"{int(match.group(1))}{match.group(2)}" if match else parts[0]
        parts = parts[1:]
    elif len(parts) == 3:
        build = ""
    else:
        return tail  # (not a wheel name the index serves; kept as spelled)
    return f"{build}|{','.join(sorted(expand_tags(*parts)))}{label}"


def expand_tags(python: str, abi: str, platform: str) -> set[str]:
    """The tags a compressed tag set stands for (PEP 425): C{py2.py3-none-any} is two."""
    return {f"{p}-{a}-{pl}" for p in python.split(".") for a in abi.split(".")
            for pl in platform.split(".")}
