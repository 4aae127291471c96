"""
The C{[gcs]} section: the bucket and credentials of the Google Cloud
Storage backend, and (as every store's section:
L{pypid.config.bucket_settings}) how its bucket is worked.

L{check_gcs} checks the keys against each other and against C{[storage]
backend}.
"""

from __future__ import annotations

import re

import attrs

from pypid.config.bucket_settings import (
    BUCKET_KEYS,
    BucketConfig,
    check_bucket,
    parse_endpoint_url,
    redirects,
)
from pypid.config.values import Fail, Keys, Values, parse_optional_path

#: Google's JSON API, where C{endpoint_url} is not set.
GOOGLE = "https://storage.googleapis.com"


@attrs.frozen
class GCSConfig(BucketConfig):
    """
    The C{[gcs]} section: where and how the Google Cloud Storage backend
    keeps packages. Always present, holding the defaults when C{[storage]
    backend} is not C{gcs}.
    """

    bucket: str
    credentials_file: str | None

    @property
    def api_endpoint(self) -> str:
        """The JSON API's root: C{endpoint_url}, or Google's."""
        return self.endpoint_url or GOOGLE

    def describe(self) -> str:
        """The bucket and its endpoint, for the start log."""
        return (f"Google Cloud Storage bucket {self.bucket}"
                + (f" at {self.endpoint_url}" if self.endpoint_url else ""))


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


#: key -> (default, parser): Google's own, then every bucket's (L{BUCKET_KEYS})
GCS_KEYS: Keys = {
    "bucket": ("", _bucket),
    "endpoint_url": ("", _endpoint_url),
    "credentials_file": ("", parse_optional_path),
    **BUCKET_KEYS,
}


def check_gcs(values: Values, fail: Fail) -> None:
    """Check the C{[gcs]} keys against each other (and C{[storage] backend})."""
    backend = ("storage", "backend")
    if values[backend] == "gcs" and not values["gcs", "bucket"]:
        fail("gcs", "bucket", "required for backend = gcs ([storage] backend): set it to "
             "the name of the bucket that holds the packages", [backend])
    if values["gcs", "credentials_file"] is None and redirects(values, "gcs") \
            and values[backend] == "gcs":
        fail("gcs", "download", "redirect needs URLs pypid signs, and the metadata server's "
             "credentials sign none without a call each: set download = stream (or "
             "public_url), or give credentials_file (a service account's key file)",
             [("gcs", "credentials_file")])
    check_bucket("gcs", values, fail)
