"""
What every object store's section (C{[s3]}, C{[azure]}, C{[gcs]}) says of
how its bucket is worked, whatever the cloud: how downloads are served,
how often the other servers' changes are looked for, the snapshot's copy
in the bucket, the pace of the background check.
"""

from __future__ import annotations

import math
from urllib.parse import urlsplit

import attrs

from pypid.config.values import (
    Fail,
    Keys,
    Values,
    choice,
    has_control_characters,
    optional_url,
    parse_boolean,
)
from pypid.core.util.s3_limits import CHECK_RATE, MAX_PRESIGN_SECONDS
from pypid.core.util.units import parse_duration


@attrs.frozen(kw_only=True)
class BucketConfig:
    """
    What every store's section says, whatever the cloud (L{BUCKET_KEYS}, and
    its endpoint). Each cloud's section adds its own keys, its bucket among
    them, and says where the bucket is.
    """

    endpoint_url: str | None
    prefix: str
    expire_after: float
    buffer_time: float
    download: str
    public_url: str | None
    sync_interval: float
    timeout: float
    bucket_snapshot: bool
    # (with a default, so that a Config built by hand need not name it)
    check_rate: float = CHECK_RATE

    @property
    def bucket(self) -> str:
        """The bucket (Azure's container) that holds the packages."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where the bucket is, in the start log's words (the prefix not said)."""
        raise NotImplementedError


def parse_prefix(value: str) -> str:
    """A key prefix: no leading slash, one trailing slash (or none at all)."""
    value = value.strip()
    if has_control_characters(value):
        raise ValueError("control characters (and line breaks) are not allowed in a key prefix")
    value = value.removeprefix("/").removesuffix("/")
    if not value:
        return ""
    segments = value.split("/")
    if "" in segments:
        raise ValueError("empty segments (a//b) are not allowed in a key prefix")
    if "." in segments or ".." in segments:
        raise ValueError("'.' and '..' segments are not allowed in a key prefix")
    return value + "/"


def _expire_after(value: str) -> float:
    seconds = parse_duration(value)
    if seconds > MAX_PRESIGN_SECONDS:
        raise ValueError(f"expected at most 7d ({MAX_PRESIGN_SECONDS} seconds), "
                         "the longest a signed download URL can be valid")
    if seconds < 1:
        raise ValueError("expected at least 1 second")
    return seconds


#: The highest C{check_rate} taken: S3 serves 5,500 reads a second per
#: prefix, and a check faster than a few thousand a second is no check
#: "in the background" any more.
_MAX_CHECK_RATE = 5000.0


def _check_rate(value: str) -> float:
    try:
        rate = float(value.strip())
    except ValueError:
        rate = math.nan
    if not 0 <= rate <= _MAX_CHECK_RATE:
        raise ValueError(f"expected a number of requests a second from 0 (no cap) to "
                         f"{_MAX_CHECK_RATE:g}, such as 10 or 2.5")
    return rate


#: key -> (default, parser): the keys of every store's section.
BUCKET_KEYS: Keys = {
    "prefix": ("", parse_prefix),
    "expire_after": ("15m", _expire_after),
    "buffer_time": ("5m", parse_duration),
    "download": ("redirect", choice("redirect", "stream")),
    "public_url": ("", optional_url("https://downloads.internal.example/pypid/")),
    "sync_interval": ("30s", parse_duration),
    "timeout": ("30s", parse_duration),
    "bucket_snapshot": ("yes", parse_boolean),
    "check_rate": (f"{CHECK_RATE:g}", _check_rate),
}


def parse_endpoint_url(value: str, example: str) -> str | None:
    """A store's endpoint: an http or https URL with a host and nothing after its path."""
    value = value.strip()
    if not value:
        return None
    message = ("expected an http:// or https:// URL with a host and no query, fragment, "
               f"user name or password, such as {example}")
    if has_control_characters(value) or " " in value or "?" in value or "#" in value:
        raise ValueError(message)
    try:
        parts = urlsplit(value)
        _ = parts.port  # (raises ValueError for a bad port)
    except ValueError:  # a bad port or a bad [IPv6] host
        raise ValueError(message) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise ValueError(message)
    return value.rstrip("/")


def check_bucket(section: str, values: Values, fail: Fail) -> None:
    """Check the keys every store's section has against each other."""
    if values[section, "buffer_time"] >= values[section, "expire_after"]:
        fail(section, "buffer_time", f"must be less than expire_after "
             f"({values[section, 'expire_after']:g} seconds)", [(section, "expire_after")])


def redirects(values: Values, section: str) -> bool:
    """Whether the store's downloads are redirects to URLs pypid signs."""
    return (values[section, "download"] == "redirect"
            and values[section, "public_url"] is None)
