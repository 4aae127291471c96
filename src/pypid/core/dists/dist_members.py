"""
What the members of an archive must be: names that read as no other path,
escape no folder and name no other member's file on some file system
(L{check_member_name}, L{MemberNames}: what L{pypid.core.dists.zipcheck}
holds a zip's names to, and an sdist's tar members too), and what the zip
and tar readers (L{pypid.core.dists.dist_zip}, L{pypid.core.dists.dist_tar})
both hold a distribution to: an sdist's layout (L{SdistLayout}) and the
C{<name>-<version>} naming it shares with a wheel's C{.dist-info}.
"""

from __future__ import annotations

import itertools
import re
import tarfile
import unicodedata
from collections.abc import Iterable

from pypid.core.dists.metadata import InvalidDistribution, short_text, version_of
from pypid.core.dists.names import ParsedFilename, normalize

#: Longest member name accepted, in bytes (the longest in the 1,018 real
#: wheels measured is 238); Linux paths go to 4096.
DEFAULT_MAX_NAME_LENGTH = 1024

# Longest path component most file systems accept, in bytes.
_MAX_COMPONENT_LENGTH = 255

# What each kind of character that str.isprintable() refuses is, by Unicode
# category: those refused in names.
_UNPRINTABLE = {
    "Cc": "a NUL or another control character",
    "Cf": "an invisible format character",
    "Cs": "a lone surrogate (an undecodable byte)",
    "Co": "a private-use character",
    "Cn": f"a character unassigned in Unicode {unicodedata.unidata_version}",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Zs": "a space other than U+0020",
}

# The dots and spaces that end a component, which Windows drops.
_TRAILING_DOTS = re.compile(r"[. ]+(?=/|\Z)")


class UnsafeArchive(ValueError):
    """
    An archive, or a member name, that readers could read differently;
    C{str()} is a short message fit for a 400 response body.

    @ivar member: the name of the member concerned, escaped for display,
        or L{None} when the fault is the archive's.
    """

    def __init__(self, message: str, member: str | bytes | None = None) -> None:
        """@param member: the member's name, as text or raw bytes (escaped here), or L{None}."""
        if isinstance(member, str):
            member = encode_name(member)
        self.member = None if member is None else show_name(member)
        super().__init__(message if self.member is None else f"member '{self.member}': {message}")


def show_name(raw_name: bytes) -> str:
    """A member's name escaped for an error message: short and printable."""
    text = raw_name.decode("utf-8", "backslashreplace")
    if len(text) > 120:
        text = text[:120] + "..."
    return "".join("\\" + c if c in "'\\" else c if c.isprintable()
                   else c.encode("unicode_escape").decode("ascii") for c in text)


def check_member_name(name: str, *, max_name_length: int = DEFAULT_MAX_NAME_LENGTH) -> None:
    """
    Refuse a member name, of a tar member say, that the rules for zip
    member names refuse (L{pypid.core.dists.zip_format.UnsafeZip}). A
    directory's name may end with C{/}; a leading C{./} is the caller's to
    strip; lone surrogates (C{surrogateescape}'s undecodable bytes) are refused.

    @param max_name_length: longest name accepted, in bytes of UTF-8.
    @raise UnsafeArchive: if the name is refused.
    """
    raw = encode_name(name)
    if len(raw) > max_name_length:
        raise UnsafeArchive(f"the name is longer than {max_name_length} bytes", raw)
    check_name(name, raw, UnsafeArchive)


def encode_name(name: str) -> bytes:
    """The bytes of a decoded name, C{surrogateescape} undone, to measure and show it."""
    try:
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogatepass")


def check_name(name: str, raw: bytes, error: type[UnsafeArchive]) -> None:
    """Refuse a name read as another path, leading outside, or not shown as itself."""
    if not name:
        raise error("the name is empty", raw)
    if "\\" in name:
        raise error("the name holds a backslash", raw)
    if ":" in name:
        raise error("the name holds a colon (a drive letter or a Windows stream)", raw)
    # isprintable() is false for exactly the characters refused (no real
    # archive measured has even a non-ASCII name), and runs in C: the loop
    # only runs to say which one it is.
    if not name.isprintable():
        for c in name:
            if not c.isprintable():
                what = _UNPRINTABLE[unicodedata.category(c)]
                raise error(f"the name holds {what} (U+{ord(c):04X})", raw)
    if name.startswith("/"):
        raise error("the name is an absolute path", raw)
    body = "/" + (name[:-1] if name.endswith("/") else name) + "/"
    if "//" in body or "/./" in body or "/../" in body:
        raise error("the name has an empty, '.' or '..' component", raw)
    if len(raw) > _MAX_COMPONENT_LENGTH and max(map(len, raw.split(b"/"))) > _MAX_COMPONENT_LENGTH:
        raise error(f"a component of the name is longer than {_MAX_COMPONENT_LENGTH} bytes", raw)


class MemberNames:
    """
    The names of an archive's members, to refuse two that name one file on
    some file system, and a name that is both a file and a directory (the
    central directory's for L{pypid.core.dists.zipcheck.check_zip}, a tar's
    after L{check_member_name}).

    Names are compared folded (L{_fold}), with NUL, the smallest character,
    for their slashes: once sorted, equal keys are neighbours, and so are a
    name and the first name under it. Folding and sorting run in C, so the
    cost grows with the names' length, not with their depth. Memory: about
    200 bytes a name plus three times its length (case folding can triple a
    character, as U+0390 does).
    """

    def __init__(self, error: type[UnsafeArchive] = UnsafeArchive) -> None:
        """@param error: what L{check} raises (C{UnsafeZip} for zips)."""
        #: C{(folded name, is a directory, raw name)} of each name added
        self._keys: list[tuple[str, bool, bytes]] = []
        self._error = error

    def add(self, name: str, is_dir: bool, raw: bytes | None = None) -> None:
        """Record the member C{name} (its bytes C{raw}, if known), a directory if C{is_dir}."""
        if raw is None:
            raw = encode_name(name)
        self._keys.append((_fold(name.rstrip("/")), is_dir, raw))

    def check(self) -> None:
        """Refuse the first collision among the names added, naming one of the two."""
        error = self._error
        self._keys.sort(key=lambda key: key[0])
        for (key, is_dir, raw), (next_key, _, next_raw) in itertools.pairwise(self._keys):
            if next_key == key:
                if next_raw == raw:
                    raise error("the name appears twice", raw)
                raise error(
                    f"the name collides with '{show_name(raw)}' on case-insensitive or "
                    "normalizing file systems", next_raw,
                )
            if not is_dir and next_key.startswith(key + "\0"):
                raise error(
                    f"the name puts a file under '{show_name(raw)}', which is a file",
                    next_raw,
                )


def _fold(name: str) -> str:
    """
    A name as case-insensitive, normalizing file systems take it (NFC,
    case-folded, no trailing dots and spaces in a component), slashes made NULs.
    """
    if name.isascii():
        name = name.lower()
    else:
        name = unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())
    if name.endswith((".", " ")) or "./" in name or " /" in name:
        name = _TRAILING_DOTS.sub("", name)
    return name.replace("/", "\0")


def too_large(member: str, limit: int) -> InvalidDistribution:
    """The error for a metadata file over the size limit."""
    return InvalidDistribution(f"{member} is larger than {limit} bytes", field="metadata")


def is_named_for(stem: str, parsed: ParsedFilename) -> bool:
    """Whether C{<name>-<version>} names the filename's project and version, at any dash."""
    expected = version_of(parsed.version)
    if expected is None:
        return False
    i = stem.find("-")
    while i >= 0:
        if normalize(stem[:i]) == parsed.project and version_of(stem[i + 1:]) == expected:
            return True
        i = stem.find("-", i + 1)
    return False


def _split_member_name(name: str) -> list[str]:
    """
    Split an sdist member name into path parts, ignoring a leading C{./} and
    the trailing C{/} of a directory.

    @raise InvalidDistribution: on an absolute path or a C{..} part (pip
        refuses to unpack them).
    """
    parts = name.split("/")
    while len(parts) > 1 and parts[0] == ".":
        parts.pop(0)
    if parts == ["."]:
        return []
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if parts[0] == "" or ".." in parts:
        raise InvalidDistribution(
            f"the sdist has a member outside its directory: {short_text(name)}"
        )
    return parts


class SdistLayout:
    """
    Follows an sdist's members in order: they must share one top-level
    directory, in which a single PKG-INFO is the metadata.

    Given the parsed filename (uploads), the directory must also be named
    for the filename's project and version, and no path may appear twice.
    """

    def __init__(self, expected: ParsedFilename | None = None) -> None:
        self.top: str | None = None
        self.pkg_info_seen = False
        self._expected = expected
        self._seen: set[str] | None = set() if expected is not None else None
        # the names as a file system would take them (case, Unicode forms)
        self._names: MemberNames | None = MemberNames() if expected is not None else None
        # symbolic links by path, and hard links as (path, target)
        self._symlinks: dict[str, str] = {}
        self._hardlinks: list[tuple[str, str]] = []
        #: the path of the member last added, as an extractor writes it
        self.path: str | None = None

    def add(self, name: str) -> bool:
        """Account for one member; return whether it is C{<top>/PKG-INFO}."""
        parts = _split_member_name(name)
        if not parts:
            self.path = None
            return False
        if self.top is None:
            self.top = parts[0]
            if self._expected is not None and not is_named_for(self.top, self._expected):
                raise InvalidDistribution(
                    f"the sdist's top-level directory {short_text(self.top)} is not named "
                    f"<name>-<version> for {self._expected.project!r} "
                    f"{self._expected.version!r}"
                )
        elif parts[0] != self.top:
            raise InvalidDistribution(
                "an sdist must hold a single top-level directory, found "
                f"{short_text(self.top)} and {short_text(parts[0])}"
            )
        if self._seen is not None:
            # (the spelling an extractor writes: no empty or "." parts)
            path = "/".join(p for p in parts if p not in ("", "."))
            if path in self._seen:
                raise InvalidDistribution(f"the sdist holds {short_text(path)} more than once")
            self._seen.add(path)
            self.path = path
        if parts[1:] != ["PKG-INFO"]:
            return False
        if self.pkg_info_seen:
            raise InvalidDistribution("the sdist holds more than one PKG-INFO")
        self.pkg_info_seen = True
        return True

    def require_pkg_info(self) -> None:
        """Refuse an sdist in which no PKG-INFO was seen."""
        if not self.pkg_info_seen:
            raise InvalidDistribution("the sdist has no PKG-INFO in its top-level directory")

    def check_name(self, name: str, is_dir: bool) -> None:
        """Hold a tarball member's name to the zip name rules (L{check_member_name}): uploads."""
        while name.startswith("./"):
            name = name[2:]
        if name in ("", "."):
            return
        try:
            check_member_name(name)
            # (called with an expected filename only, which made _names)
            self._names.add(name, is_dir)  # type: ignore[union-attr]
        except UnsafeArchive as e:
            raise InvalidDistribution(f"the sdist's {e}") from None

    def check_names(self) -> None:
        """Refuse two names for one file, once every name is known."""
        try:
            # (called with an expected filename only, which made _names)
            self._names.check()  # type: ignore[union-attr]
        except UnsafeArchive as e:
            raise InvalidDistribution(f"the sdist's {e}") from None

    def add_link(self, member: tarfile.TarInfo, symbolic: bool) -> None:
        """
        Account for a link (the member L{add} took last): an absolute target
        is refused now, the rest once every link is known (L{check_links}).
        """
        target = member.linkname
        if not target or target.startswith("/") or "\x00" in target:
            raise _link_outside(member.name)
        # (self.path is set: _check_tar_member calls this only then)
        if symbolic:
            self._symlinks[self.path] = target  # type: ignore[index]
        else:
            self._hardlinks.append((self.path, target))  # type: ignore[arg-type]

    def check_links(self) -> None:
        """
        Refuse links that an extractor would follow out of the top-level
        directory.

        Checking each link's target as text is not enough: C{a/up -> ..}
        and C{a/up/up -> ..} each stay inside, yet a member written under
        C{a/up/up/up/} lands outside, because the extractor follows the
        links in its path. So no member may lie under a symbolic link
        (L{check_names}, run first, refuses a name under a file, which a
        link is), and a link's target may not pass through another link:
        then a target that stays inside as text stays inside.
        """
        links = self._symlinks
        for path, target in links.items():
            self._follow(path, path.rpartition("/")[0].split("/"), target)
        for path, target in self._hardlinks:
            self._follow(path, [], target)

    def _follow(self, path: str, start: Iterable[str], target: str) -> None:
        """Walk C{target} from the directory C{start}, as the link C{path} leads."""
        parts = list(start)
        steps = [step for step in target.split("/") if step not in ("", ".")]
        for index, step in enumerate(steps):
            if step == "..":
                if len(parts) <= 1:
                    raise _link_outside(path)
                parts.pop()
                continue
            parts.append(step)
            if parts[0] != self.top:
                raise _link_outside(path)
            if index < len(steps) - 1 and "/".join(parts) in self._symlinks:
                raise InvalidDistribution(
                    f"the sdist's link {short_text(path)} leads through another link"
                )
        if len(parts) < 2 and not (parts and parts[0] == self.top):
            raise _link_outside(path)


def _link_outside(name: str) -> InvalidDistribution:
    return InvalidDistribution(f"the sdist's link {short_text(name)} points outside its directory")
