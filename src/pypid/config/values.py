"""
The kinds of value the configuration's sections are made of. Each parser
takes the text of one key and returns its value, or raises L{ValueError}
saying what is allowed (the caller adds the file, the section and the key).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, Protocol, TypeVar
from urllib.parse import urlsplit

from pypid.core.access.access_rules import RuleError, normalize_pattern

#: A key's parser: its text in, its value out (L{ValueError} saying what is allowed).
Parser = Callable[[str], Any]

#: A section's keys: key -> (default text, parser).
Keys = dict[str, tuple[str, Parser]]

#: The parsed C{(section, key) -> value} of the fixed sections.
Values = dict[tuple[str, str], Any]

#: C{items(section)}: a free section's C{(key, value)} pairs in file order.
Items = Callable[[str], list[tuple[str, str]]]


class Fail(Protocol):
    """Raises the configuration error for C{[section] key}, blamed where it came from."""

    def __call__(self, section: str, key: str | None, message: str,
                 causes: Iterable[tuple[str, str]] = ()) -> NoReturn:
        """Raise L{pypid.config.errors.ConfigError}."""


T = TypeVar("T")

#: The parsers of values that are paths: a relative one written in the
#: configuration file is read against the file's folder (L{in_folder}).
PATH_PARSERS: set[Callable[[str], Any]] = set()


def path_valued(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Mark C{parse} as a parser of paths (L{PATH_PARSERS})."""
    PATH_PARSERS.add(parse)
    return parse


def in_folder(value: str, folder: str) -> str:
    """A path of the configuration file, read in its C{folder} when relative (C{~} expanded)."""
    value = value.strip()
    return os.path.join(folder, os.path.expanduser(value)) if value else value


@path_valued
def parse_path(value: str) -> str:
    """Parse a path, made absolute against the working directory (C{~} expanded)."""
    value = value.strip()
    if not value:
        raise ValueError("expected a path")
    return os.path.abspath(os.path.expanduser(value))


@path_valued
def parse_optional_path(value: str) -> str | None:
    """Parse a path like L{parse_path}, or L{None} when the value is empty."""
    return parse_path(value) if value.strip() else None


#: The keys naming a file that a part reads as it starts (beside those read
#: as they are parsed): held with the configuration (L{pypid.config.Config.held}),
#: so a worker started again reads what the machine took. C{[advisories]
#: path} is data, not settings: read as it is.
HELD_KEYS = frozenset({"ca_bundle", "credentials_file"})


def text_of(path: str, files: dict[str, str], strict: bool = True) -> str:
    """
    The text of a file the configuration names: the one in C{files}
    (L{pypid.config.Config.held}), else read now and added to them, so that
    a worker started again reads a file as the machine took it. Its bytes are
    kept (decoded with C{surrogateescape}: a bundle's comments need not be
    UTF-8); C{strict} refuses a file that is not UTF-8 (users, secrets).
    """
    text = files.get(path)
    if text is None:
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "surrogateescape")
        except OSError as e:
            raise ValueError(f"cannot read {path}: {e.strerror}") from None
        files[path] = text
    if strict:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{path} is not UTF-8 text") from None
    return text


def held_bytes(path: str, held: Mapping[str, str] | None) -> bytes:
    """The bytes of a file the configuration names, as read with it (in C{held}), else now."""
    if held is not None and path in held:
        return held[path].encode("utf-8", "surrogateescape")
    with open(path, "rb") as f:
        return f.read()


def parse_positive_number(value: str) -> float:
    """Parse a number of seconds greater than 0, as a L{float}."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0:
        raise ValueError("expected a number of seconds greater than 0")
    return number


def whole_number(lowest: int, highest: int) -> Callable[[str], int]:
    """Return a parser of a whole number from C{lowest} to C{highest}."""
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = lowest - 1
        if not lowest <= number <= highest:
            raise ValueError(f"expected a whole number from {lowest} to {highest}")
        return number
    return parse


def normalized_globs(value: str, forms: str = "") -> tuple[str, ...]:
    """
    Project names or globs (separated by spaces, commas or lines),
    normalized as C{[acl]}'s patterns (C{Corp.*} is C{corp-*}), without
    repeats; a refused one's message ends with C{forms}.
    """
    globs: list[str] = []
    for entry in value.replace(",", " ").split():
        try:
            glob = normalize_pattern(entry)
        except RuleError as e:
            raise ValueError(f"{e}{forms}") from None
        if glob not in globs:
            globs.append(glob)
    return tuple(globs)


def parse_globs(value: str) -> tuple[str, ...]:
    """Project names or globs, as L{normalized_globs} reads them."""
    return normalized_globs(value, ": expected project names or globs of letters, digits, "
                                   "'-', '_', '.', '*', '?' and '[...]'")


def parse_boolean(value: str) -> bool:
    """Parse yes or no (or true/false, on/off, 1/0, in any case) into a L{bool}."""
    value = value.strip().lower()
    if value in ("yes", "true", "on", "1"):
        return True
    if value in ("no", "false", "off", "0"):
        return False
    raise ValueError("expected yes or no (or true/false, on/off, 1/0)")


def choice(*allowed: str) -> Callable[[str], str]:
    """Return a parser of one of the words C{allowed}, in any case, lowercased."""
    def parse(value: str) -> str:
        value = value.strip().lower()
        if value not in allowed:
            raise ValueError("expected one of: " + ", ".join(allowed))
        return value
    return parse


def optional_choice(*allowed: str) -> Callable[[str], str | None]:
    """Return a parser like L{choice}'s that reads an empty value as L{None} (automatic)."""
    parse_choice = choice(*allowed)

    def parse(value: str) -> str | None:
        if not value.strip():
            return None
        try:
            return parse_choice(value)
        except ValueError as e:
            raise ValueError(f"{e}; or empty for automatic") from None
    return parse


def optional_url(example: str) -> Callable[[str], str | None]:
    """A parser of an http(s) URL without a query, with one trailing slash; empty: L{None}."""
    def parse(value: str) -> str | None:
        value = value.strip()
        if not value:
            return None
        parts = urlsplit(value)
        if (parts.scheme not in ("http", "https") or not parts.netloc or parts.query
                or parts.fragment):
            raise ValueError("expected an http:// or https:// URL with no query, "
                             f"such as {example}")
        return value.rstrip("/") + "/"
    return parse


def has_control_characters(value: str) -> bool:
    """Tell whether C{value} holds a C0 or C1 control character (a line break, say)."""
    return any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 for c in value)


#: The names of this machine that need no lookup.
_LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def is_loopback_host(host: str) -> bool:
    """Whether C{host} (a URL's host name or address) is this machine: no network crossed."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_ip_address(text: str) -> bool:
    """Tell whether C{text} is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def redacted(value: str | None) -> str:
    """A secret in a C{repr}: whether it is set, never the secret itself."""
    return "None" if value is None else "'<hidden>'"
