"""
The C{[gcs]} section: the bucket and credentials of the Google Cloud
Storage backend, and how its bucket is worked. pypid does not read
C{STORAGE_EMULATOR_HOST}, as Google's client libraries do: an emulator is
named by the file, in one place, never by the environment.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import attrs

from pypid.config.bucket_settings import (
    BUCKET_KEYS,
    BucketConfig,
    check_bucket,
    parse_endpoint_url,
    redirects,
)
from pypid.config.values import Fail, Keys, Values, parse_boolean, parse_optional_path

#: Google's JSON API, where C{endpoint_url} is not set.
GOOGLE = "https://storage.googleapis.com"


@attrs.frozen
class GCSConfig(BucketConfig):
    """The C{[gcs]} section (its defaults when C{[storage] backend} is another)."""

    bucket: str
    credentials_file: str | None
    #: no token at all: an emulator's endpoint (see the module)
    anonymous: bool = False

    @property
    def api_endpoint(self) -> str:
        """The JSON API's root: C{endpoint_url}, or Google's."""
        return self.endpoint_url or GOOGLE

    def describe(self) -> str:
        """The bucket and its endpoint, for the start log."""
        return (f"Google Cloud Storage bucket {self.bucket}"
                + (f" at {self.endpoint_url}" if self.endpoint_url else "")
                + (" (anonymous: no token)" if self.anonymous else ""))


def _bucket(value: str) -> str:
    value = value.strip()
    if value and (not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]", value)
                  or ".." in value or value.startswith("goog")):
        raise ValueError("expected a bucket name: 3 to 63 lowercase letters, digits, '-', "
                         "'_' and '.', starting and ending with a letter or digit, not "
                         "starting with 'goog'")
    return value


def _endpoint_url(value: str) -> str | None:
    return parse_endpoint_url(value, "http://127.0.0.1:4443")


def is_google(endpoint: str) -> bool:
    """Whether C{endpoint} is Google's (a host of C{googleapis.com}), any scheme or port."""
    host = (urlsplit(endpoint).hostname or "").rstrip(".")
    return host == "googleapis.com" or host.endswith(".googleapis.com")


#: key -> (default, parser): Google's own, then every bucket's (L{BUCKET_KEYS})
GCS_KEYS: Keys = {
    "bucket": ("", _bucket),
    "endpoint_url": ("", _endpoint_url),
    "credentials_file": ("", parse_optional_path),
    "anonymous": ("no", parse_boolean),
    **BUCKET_KEYS,
}


def check_gcs(values: Values, fail: Fail) -> None:
    """Check the C{[gcs]} keys against each other (and C{[storage] backend})."""
    backend = ("storage", "backend")
    if values[backend] == "gcs" and not values["gcs", "bucket"]:
        fail("gcs", "bucket", "required for backend = gcs ([storage] backend): set it to "
             "the name of the bucket that holds the packages", [backend])
    _check_anonymous(values, fail)
    if values["gcs", "credentials_file"] is None and redirects(values, "gcs") \
            and values[backend] == "gcs":
        anonymous = values["gcs", "anonymous"]
        signs_none = ("anonymous = yes signs none without a key file" if anonymous else
                      "the metadata server's credentials sign none without a call each")
        fail("gcs", "download", f"redirect needs URLs pypid signs, and {signs_none}: set "
             "download = stream (or public_url), or give credentials_file (a service "
             "account's key file)",
             [("gcs", "credentials_file"), *([("gcs", "anonymous")] if anonymous else [])])
    check_bucket("gcs", values, fail)


def _check_anonymous(values: Values, fail: Fail) -> None:
    """No token only at an emulator's endpoint: never Google's, nor the default."""
    if not values["gcs", "anonymous"]:
        return
    endpoint = values["gcs", "endpoint_url"]
    if endpoint is None:
        fail("gcs", "anonymous", "is for an emulator only, and endpoint_url is empty "
             "(Google's own endpoint): set endpoint_url to the emulator's, such as "
             "http://127.0.0.1:4443, or anonymous = no", [("gcs", "endpoint_url")])
    if is_google(endpoint):
        fail("gcs", "anonymous", f"is for an emulator only, and endpoint_url {endpoint} is "
             "Google's own, where requests need a token: set anonymous = no (the token of "
             "credentials_file, or of the metadata server)", [("gcs", "endpoint_url")])
