"""
The C{[s3]} section: the bucket, region, endpoint and credentials of the S3
backend, and (as every store's section: L{pypid.config.bucket_settings})
how its bucket is worked. S3's own limits are those of the code that
enforces them (L{pypid.core.util.s3_limits}).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import attrs

from pypid.config.bucket_settings import BUCKET_KEYS, BucketConfig, check_bucket, parse_endpoint_url
from pypid.config.values import (
    Fail,
    Keys,
    Values,
    has_control_characters,
    is_ip_address,
    optional_choice,
    redacted,
)
from pypid.core.util.s3_limits import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE
from pypid.core.util.units import parse_size


@attrs.frozen
class S3Config(BucketConfig):
    """The C{[s3]} section (its defaults when C{[storage] backend} is another)."""

    bucket: str
    region: str
    addressing: str
    access_key: str | None
    secret_key: str | None = attrs.field(repr=redacted)
    session_token: str | None = attrs.field(repr=redacted)
    multipart_threshold: int

    def describe(self) -> str:
        """The bucket and its endpoint, for the start log."""
        return f"S3 bucket {self.bucket}" + (f" at {self.endpoint_url}" if self.endpoint_url
                                             else "")


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _bucket(value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    if not _BUCKET.match(value) or ".." in value:
        raise ValueError("expected an S3 bucket name: 3 to 63 lowercase letters, digits, "
                         "'.' and '-', starting and ending with a letter or digit, "
                         "without two '.' in a row")
    if is_ip_address(value):
        raise ValueError("a bucket name cannot be an IP address")
    return value


def _region(value: str) -> str:
    value = value.strip()
    if not re.match(r"^[a-z0-9-]+$", value):
        raise ValueError("expected a region name such as us-east-1: "
                         "lowercase letters, digits and '-'")
    return value


def _endpoint_url(value: str) -> str | None:
    return parse_endpoint_url(value, "http://127.0.0.1:9000")


def _credential(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    if has_control_characters(value) or any(c.isspace() for c in value):
        # The value may be a secret: never repeat it.
        raise ValueError("spaces and control characters are not allowed")
    return value


def _multipart_threshold(value: str) -> int:
    size = parse_size(value)
    if not MIN_PART_SIZE <= size <= MAX_PART_SIZE:
        raise ValueError("expected a size from 5M (S3's smallest part) to 5G (its largest)")
    return size


#: key -> (default, parser): S3's own, then every bucket's (L{BUCKET_KEYS})
S3_KEYS: Keys = {
    "bucket": ("", _bucket),
    "region": ("us-east-1", _region),
    "endpoint_url": ("", _endpoint_url),
    "addressing": ("", optional_choice("path", "virtual")),
    "access_key": ("", _credential),
    "secret_key": ("", _credential),
    "session_token": ("", _credential),
    "multipart_threshold": ("64M", _multipart_threshold),
    **BUCKET_KEYS,
}


def check_s3(values: Values, fail: Fail) -> None:
    """Check the C{[s3]} keys, and resolve an automatic C{addressing} in C{values}."""
    def s3(key: str) -> Any:
        return values["s3", key]

    backend = ("storage", "backend")
    using_s3 = values[backend] == "s3"
    if using_s3 and not s3("bucket"):
        fail("s3", "bucket", "required for backend = s3 ([storage] backend): "
             "set it to the name of the bucket that holds the packages", [backend])

    keys = [("s3", "access_key"), ("s3", "secret_key"), ("s3", "session_token")]
    for given, missing in (("access_key", "secret_key"), ("secret_key", "access_key")):
        if s3(given) and not s3(missing):
            fail("s3", missing, f"required when {given} is set; or leave both empty for the "
                 "standard credentials (environment, shared files, instance role)", keys)
    if s3("session_token") and not s3("access_key"):
        fail("s3", "session_token", "only allowed with access_key and secret_key", keys)

    check_bucket("s3", values, fail)

    threshold = s3("multipart_threshold")
    largest = values["pypid", "max_upload_size"]
    if using_s3 and threshold * MAX_PARTS < largest:
        fail("s3", "multipart_threshold", f"too small for [pypid] max_upload_size: S3 allows "
             f"at most {MAX_PARTS} parts, so it must be at least "
             f"{-(-largest // MAX_PARTS)} bytes", [("pypid", "max_upload_size"), backend])

    endpoint = s3("endpoint_url")
    automatic = s3("addressing") is None
    addressing = ("path" if endpoint else "virtual") if automatic else s3("addressing")
    values["s3", "addressing"] = addressing
    if addressing == "virtual":
        how = ("addressing is virtual (the automatic choice without an endpoint_url)"
               if automatic else "addressing = virtual")
        causes = [("s3", "bucket"), ("s3", "endpoint_url")]
        host = urlsplit(endpoint).hostname if endpoint else None
        https = endpoint is None or endpoint.startswith("https:")
        if "." in s3("bucket") and https:
            fail("s3", "addressing", f"{how} puts the bucket name in the host name, and a "
                 "bucket with '.' in its name then fails TLS certificate checks over https: "
                 "set addressing = path, or use a bucket without '.'", causes)
        if host is not None and is_ip_address(host):
            fail("s3", "addressing", f"{how} puts the bucket name in the host name, which "
                 "an endpoint_url with an IP address cannot have: set addressing = path",
                 causes)
