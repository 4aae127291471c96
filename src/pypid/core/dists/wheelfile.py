"""
The C{WHEEL} file of a wheel, read strictly, and held to the filename.

pip and uv pick a wheel by the tags in its name, then install it by what
C{WHEEL} says (C{Root-Is-Purelib}, C{Wheel-Version}): a wheel whose C{Tag}
lines differ from its filename's tags is chosen for one platform and
describes itself as built for another, so pypid refuses such uploads. The
tags are compared as sets once expanded (poetry-core, pdm-backend and
maturin write C{py2.py3-none-any} on one line).

The format is read as one plain C{Key: Value} per line, no continuation
lines, no body: anything else is refused, since installers use different
parsers.
"""

from __future__ import annotations

import re

import attrs
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from pypid.core.dists.names import expand_tags

#: Largest WHEEL file accepted: real ones are a few hundred bytes.
MAX_WHEEL_FILE_SIZE = 64 << 10

#: Most Tag lines: a universal wheel of every CPython and platform has dozens.
MAX_TAGS = 1000

_LINE = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]*): ?(.*)\Z")
_TAG_PART = re.compile(r"[A-Za-z0-9_]+\Z")
_WHEEL_VERSION = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\Z")
_SINGLE = ("wheel-version", "root-is-purelib", "generator", "build")


class InvalidWheelFile(ValueError):
    """A C{WHEEL} file the index refuses; C{str()} is a short reason fit for a 400 answer."""


class TagMismatch(InvalidWheelFile):
    """
    A C{WHEEL} whose C{Tag} lines differ from the filename's tags: refused
    by default, taken for the projects an index names
    (L{pypid.core.access.upload_rules.UploadRules.tag_mismatch}), as the public
    index hosts such wheels.
    """


@attrs.frozen
class WheelInfo:
    """
    What a valid C{WHEEL} file says that the index holds to the filename
    (its C{Wheel-Version} and C{Root-Is-Purelib} are checked, not kept).

    @ivar tags: the tags, expanded and lower case, as C{"py3-none-any"} strings.
    @ivar build: the C{Build} value, or L{None}.
    """

    tags: frozenset[str]
    build: str | None


def parse_wheel_file(raw: bytes, member: str = "WHEEL") -> WheelInfo:
    """
    Parse the bytes of a C{WHEEL} file (C{member}: its name, for messages).

    @raise InvalidWheelFile: on anything but plain C{Key: Value} lines, a
        missing or unsupported C{Wheel-Version}, a C{Root-Is-Purelib} that is
        not C{true} or C{false}, or missing or malformed C{Tag} lines.
    """
    if len(raw) > MAX_WHEEL_FILE_SIZE:
        raise InvalidWheelFile(f"{member} is larger than {MAX_WHEEL_FILE_SIZE} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidWheelFile(f"{member} is not valid UTF-8") from None
    lines = text.split("\n")
    # One final line break (and, as some generators write, one blank line
    # after it) ends the file; no other blank line may appear.
    while lines and lines[-1] in ("", "\r"):
        lines.pop()
    fields = {}
    tags = []
    for number, line in enumerate(lines, 1):
        line = line.removesuffix("\r")
        match = _LINE.match(line)
        if match is None or any(c < " " and c != "\t" or c == "\x7f" for c in line):
            raise InvalidWheelFile(f"{member} line {number} is not a plain 'Key: Value' line")
        key, value = match.group(1).lower(), match.group(2).strip()
        if key == "tag":
            tags.append(value)
            if len(tags) > MAX_TAGS:
                raise InvalidWheelFile(f"{member} has more than {MAX_TAGS} Tag lines")
            continue
        if key in _SINGLE and key in fields:
            raise InvalidWheelFile(f"{member} has more than one {match.group(1)} line")
        fields[key] = value
    version = fields.get("wheel-version")
    if version is None:
        raise InvalidWheelFile(f"{member} has no Wheel-Version")
    parsed = _WHEEL_VERSION.match(version)
    if parsed is None or parsed.group(1) != "1":
        raise InvalidWheelFile(
            f"{member}: Wheel-Version {version[:20]!r} is not supported; the index takes 1.x"
        )
    purelib = fields.get("root-is-purelib", "").lower()
    if purelib not in ("true", "false"):
        raise InvalidWheelFile(f"{member}: Root-Is-Purelib must be true or false")
    if not tags:
        raise InvalidWheelFile(f"{member} has no Tag line")
    expanded = set()
    for tag in tags:
        parts = tag.split("-")
        if len(parts) != 3 or not all(_TAG_PART.match(p) for part in parts
                                      for p in part.split(".")):
            raise InvalidWheelFile(f"{member}: Tag {tag[:60]!r} is not a python-abi-platform tag")
        expanded.update(expand_tags(*tag.lower().split("-")))
        if len(expanded) > MAX_TAGS:
            raise InvalidWheelFile(f"{member} has more than {MAX_TAGS} tags")
    return WheelInfo(tags=frozenset(expanded), build=fields.get("build") or None)


def check_matches_filename(info: WheelInfo, filename: str, member: str = "WHEEL",
                           tags: bool = True, build: bool = True) -> None:
    """
    Refuse a C{WHEEL} whose tags (unless not C{tags}) or build number
    (unless not C{build}) are not exactly those of the wheel's filename.

    @raise TagMismatch: naming the tags that differ.
    @raise InvalidWheelFile: naming what else differs.
    """
    try:
        _name, _version, _build, parsed_tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as e:
        raise InvalidWheelFile(f"invalid wheel filename: {e}") from None
    expected = frozenset(str(t) for t in parsed_tags)
    if tags and info.tags != expected:
        missing = sorted(expected - info.tags)
        extra = sorted(info.tags - expected)
        faults = [f"the filename's {_few(missing)} not in WHEEL"] if missing else []
        if extra:
            faults.append(f"WHEEL's {_few(extra)} not in the filename")
        # (what is wrong first, the member last: a long project name makes
        # a long member, and twine shows only the reason's first 200 characters)
        raise TagMismatch(
            f"the Tag lines do not match the filename ({'; '.join(faults)}; in {member})")
    parts = filename[: -len(".whl")].split("-")
    filename_build = parts[2] if len(parts) == 6 else None
    if build and (info.build or None) != filename_build:
        shown = info.build[:40] if info.build else info.build
        raise InvalidWheelFile(
            f"{member}: Build {shown!r} does not match the filename's build tag "
            f"{filename_build!r}"
        )


def _few(tags: list[str]) -> str:
    """A few of C{tags}, each cut short, for a message."""
    shown = ", ".join(tag[:60] for tag in tags[:5])
    return shown + (f" and {len(tags) - 5} more" if len(tags) > 5 else "")
