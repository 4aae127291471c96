"""
The checks of one value of an upstream page's entry, whichever form the
page came in: its URL (L{resolve_url}), sha256 (L{checked_sha256}), size,
upload time, provenance URL and core metadata's digest. An entry with a
value that cannot be passed on raises L{Unusable}, which the parser
(L{pypid.upstream.parser}) counts as a refused entry; a value that is
only informative is dropped instead.
"""

from __future__ import annotations

import datetime
import re
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# Whitespace and control characters have no place in a URL; a server that
# meant a space would have written %20. (Surrounding whitespace is stripped
# first, as browsers and pip do for href values.)
_BAD_URL_CHARACTERS = re.compile(r"[\x00-\x20\x7f]")
URL_STRIP = " \t\n\r\f"
DIGITS = re.compile(r"[0-9]+")
_UPLOAD_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", re.IGNORECASE)


class Unusable(Exception):
    """An entry of the page that is not passed on; the message says why."""


def resolve_url(base: str, ref: str) -> tuple[str, str]:
    """
    Resolve a file reference against its base, keeping only http(s) URLs
    (C{javascript:}, C{data:}, C{ftp:} are not something pypid will fetch).

    @return: the absolute URL without fragment, and the fragment.
    """
    ref = ref.strip(URL_STRIP)
    if _BAD_URL_CHARACTERS.search(ref):
        raise Unusable("the URL contains whitespace or control characters")
    try:
        # (an absolute URL, as most pages give, needs no join: urljoin is a
        # quarter of the time of a 45,000-file page)
        parts = urlsplit(ref if ref.startswith(("https://", "http://")) else urljoin(base, ref))
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        raise Unusable("the URL is malformed")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unusable("not an absolute http(s) URL")
    return urlunsplit(parts._replace(fragment="")), parts.fragment


def provenance_url(base: str, value: object) -> str | None:
    """
    A file's provenance URL (PEP 740), absolute: over https, or on the
    page's own origin; anything else (another scheme, a malformed URL, a
    plain http host that is not the page's) is ignored, the file kept.
    """
    if not isinstance(value, str) or not value or len(value) > 2048:
        return None
    try:
        url, _fragment = resolve_url(base, value)
    except Unusable:
        return None
    parts, page = urlsplit(url), urlsplit(base)
    if parts.scheme != "https" and (parts.scheme, parts.netloc) != (page.scheme, page.netloc):
        return None
    return url


def checked_sha256(value: object) -> str:
    """
    A valid sha256 hex digest, lowercased; else L{Unusable}, since a file
    whose bytes cannot be checked must not be cached.
    """
    if value is None:
        raise Unusable("no sha256 hash")
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise Unusable("the sha256 hash is not 64 hex digits")
    return value.lower()


def upload_time(value: object) -> float | None:
    """
    Read an ISO 8601 upload time (PEP 700: C{yyyy-mm-ddThh:mm:ss[.ffffff]Z})
    into a POSIX timestamp. Offsets other than Z and times without a zone
    (taken as UTC, which PEP 700 mandates) are accepted; anything unreadable
    gives L{None}, as the upload time is informative, not essential.
    """
    if not isinstance(value, str):
        return None
    match = _UPLOAD_TIME.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        tz = datetime.UTC
        if zone and zone.upper() != "Z":
            sign = -1 if zone[0] == "-" else 1
            # (an offset of a day or more, such as +99:00, raises ValueError)
            tz = datetime.timezone(
                sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        return datetime.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            int((fraction or "0")[:6].ljust(6, "0")), tzinfo=tz).timestamp()
    except (ValueError, OverflowError):
        return None


def size(value: object) -> int | None:
    """
    A size in bytes from a JSON number or an HTML attribute's digits, or
    L{None} for anything else: the size is checked again on download, so a
    missing one costs nothing but an early refusal.
    """
    if isinstance(value, str) and DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _metadata_digest(name: str, value: object) -> str | None:
    """
    The C{metadata_sha256} of one advertised hash of the core metadata:
    the digest for a valid sha256, C{""} for another algorithm, and L{None}
    for a malformed sha256, because advertising a C{.metadata} file that
    cannot be verified breaks pip, while advertising none only makes
    clients download the whole file.
    """
    if name == "sha256":
        try:
            return checked_sha256(value)
        except Unusable:
            return None
    return ""


def json_metadata(entry: dict[str, Any]) -> str | None:
    """
    The C{metadata_sha256} of a JSON entry: PEP 714's C{core-metadata},
    falling back to PEP 658's C{dist-info-metadata} (and the
    C{data-dist-info-metadata} spelling warehouse once sent) only when the
    new key is absent, as PEP 714 tells clients to do.
    """
    for key in ("core-metadata", "dist-info-metadata", "data-dist-info-metadata"):
        if key in entry:
            value = entry[key]
            break
    else:
        return None
    if value is True:
        return ""
    if isinstance(value, dict):
        return _metadata_digest("sha256", value["sha256"]) if "sha256" in value else ""
    return None


def html_metadata(attributes: dict[str, str | None]) -> str | None:
    """
    The C{metadata_sha256} of an HTML anchor: C{data-core-metadata}, falling
    back to C{data-dist-info-metadata}, whose value is C{true} or
    C{<hashname>=<hexdigest>}; any other value advertises nothing.
    """
    for key in ("data-core-metadata", "data-dist-info-metadata"):
        if key in attributes:
            value = attributes[key]
            break
    else:
        return None
    value = (value or "").strip()
    if value == "true":
        return ""
    name, sep, digest = value.partition("=")
    if sep and name and digest:
        return _metadata_digest(name.lower(), digest)
    return None
