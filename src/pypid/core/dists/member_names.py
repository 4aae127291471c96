"""
The name rules for the members of an archive, whatever its format: what
L{pypid.core.dists.zipcheck} holds a zip's names to, and what an sdist's
tar members are held to (L{check_member_name}, L{MemberNames}), so that no
name reads as another path, escapes the folder it is extracted to, or
names the same file as another on some file system.

Apart from the zip checks because nothing here reads a zip: the rules are
on decoded names, and L{UnsafeArchive} is the error both kinds of archive
raise.
"""

from __future__ import annotations

import re
import unicodedata

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
    An archive, or a member name, that readers could read differently.

    C{str()} of the exception is a short message fit for a 400 response
    body; it names the member concerned, if any.

    @ivar member: the name of the member concerned, escaped for display,
        or L{None} when the fault is the archive's.
    """

    def __init__(self, message: str, member: str | bytes | None = None) -> None:
        """
        @param message: what is wrong.
        @param member: the member's name, as text or as raw bytes (either
            escaped here), or L{None}.
        """
        if isinstance(member, str):
            member = encode_name(member)
        shown = None
        if member is not None:
            shown = show_name(member)
            message = f"member '{shown}': {message}"
        super().__init__(message)
        self.member = shown


def show_name(raw_name: bytes) -> str:
    """A member's name escaped for an error message: short and printable."""
    text = raw_name.decode("utf-8", "backslashreplace")
    if len(text) > 120:
        text = text[:120] + "..."
    shown = []
    for c in text:
        if c in "'\\":
            shown.append("\\" + c)
        elif c.isprintable():
            shown.append(c)
        else:
            shown.append(c.encode("unicode_escape").decode("ascii"))
    return "".join(shown)


def check_member_name(name: str, *, max_name_length: int = DEFAULT_MAX_NAME_LENGTH) -> None:
    """
    Refuse a member name, of a tar member say, that the rules for zip
    member names refuse (see L{pypid.core.dists.zip_format.UnsafeZip}).

    A directory's name may end with C{/}; a leading C{./} is the caller's
    to strip.

    @param name: the decoded name (lone surrogates, as C{surrogateescape}
        leaves for undecodable bytes, are refused).
    @param max_name_length: longest name accepted, in bytes of UTF-8.
    @raise UnsafeArchive: if the name is refused.
    """
    raw = encode_name(name)
    if len(raw) > max_name_length:
        raise UnsafeArchive(f"the name is longer than {max_name_length} bytes", raw)
    check_name(name, raw, UnsafeArchive)


def encode_name(name: str) -> bytes:
    """
    Return the bytes of a decoded name, undoing C{surrogateescape}, so that
    it can be measured and shown.
    """
    try:
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogatepass")


def check_name(name: str, raw: bytes, error: type[UnsafeArchive]) -> None:
    """
    Refuse a name that readers or file systems could take for another
    path, that points outside the folder it is extracted to, or that holds
    characters not shown as themselves.
    """
    if not name:
        raise error("the name is empty", raw)
    if "\\" in name:
        raise error("the name holds a backslash", raw)
    if ":" in name:
        raise error("the name holds a colon (a drive letter or a Windows stream)", raw)
    # isprintable() is false for exactly the characters refused, and runs
    # in C: the loop only runs to say which one it is.
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
        raise error(
            f"a component of the name is longer than {_MAX_COMPONENT_LENGTH} bytes", raw,
        )


class MemberNames:
    """
    The names of an archive's members, to refuse two that name one file on
    some file system, and a name that is both a file and a directory:
    L{pypid.core.dists.zipcheck.check_zip} uses it for the central directory, and a caller can for
    another archive's members (a tar's, say), after L{check_member_name}.

    Names are compared equal, or equal once case-folded, NFC-normalized
    and stripped of trailing dots and spaces per component and of a
    trailing slash (L{_fold}), with NUL, the smallest character, for their
    slashes; once sorted, equal keys are neighbours, and so are a name and
    the first name under it. Folding and sorting run in C, so the cost
    grows with the names' length, not with their depth.

    Memory: one tuple per name holding its folded key and its bytes, about
    200 bytes plus three times the name's length (case folding can triple
    a character, as U+0390 does); so at most the caller's member limit
    times that, with names of at most C{max_name_length} bytes. Checking
    sorts the keys once, at the end: O(n log n) comparisons, in C.
    """

    def __init__(self, error: type[UnsafeArchive] = UnsafeArchive) -> None:
        """
        @param error: the exception L{check} raises
            (L{pypid.core.dists.zip_format.UnsafeZip} for zips).
        """
        #: C{(folded name, is a directory, raw name)} of each name added
        self._keys: list[tuple[str, bool, bytes]] = []
        self._error = error

    def add(self, name: str, is_dir: bool, raw: bytes | None = None) -> None:
        """
        Record the member C{name} (whose bytes are C{raw}, when known), a
        directory if C{is_dir}.
        """
        if raw is None:
            raw = encode_name(name)
        self._keys.append((_fold(name.rstrip("/")), is_dir, raw))

    def check(self) -> None:
        """
        Refuse the first collision among the names added, if any.

        @raise UnsafeArchive: naming one of the two members.
        """
        error = self._error
        self._keys.sort(key=lambda key: key[0])
        for (key, is_dir, raw), (next_key, _, next_raw) in zip(self._keys, self._keys[1:],
                                                               strict=False):
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
    Fold a name to what case-insensitive, normalizing file systems take it
    for: NFC, case-folded, without trailing dots and spaces in any
    component, its slashes made NULs.
    """
    if name.isascii():
        name = name.lower()
    else:
        name = unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())
    if name.endswith((".", " ")) or "./" in name or " /" in name:
        name = _TRAILING_DOTS.sub("", name)
    return name.replace("/", "\0")
