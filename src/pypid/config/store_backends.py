"""
The clouds that may keep the packages (C{[storage] backend}), one row
each. The configuration, the reload rules, the tools and the start log
iterate over this table; the buckets' clients
(L{pypid.storage.cloud_clients.CLIENTS}) and the extras that install each
cloud's SDK are keyed by the same names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs

from pypid.config.azure_settings import AZURE_KEYS, AzureConfig, check_azure
from pypid.config.bucket_settings import BucketConfig
from pypid.config.gcs_settings import GCS_KEYS, GCSConfig, check_gcs
from pypid.config.s3_settings import S3_KEYS, S3Config, check_s3
from pypid.config.values import Fail, Keys, Values


@attrs.frozen
class Backend:
    """One cloud that keeps the packages in a bucket, as the configuration knows it."""

    #: the value of C{[storage] backend}: also its section's and its extra's name
    name: str
    keys: Keys
    #: makes the frozen section of its keys' values (as keywords)
    settings: Callable[..., BucketConfig]
    #: checks its keys against each other and the other sections
    check: Callable[[Values, Fail], None]
    #: the scheme of its buckets' URLs (C{s3://})
    scheme: str
    #: what the cloud calls a bucket (C{azure://CONTAINER/PREFIX})
    bucket_word: str = "bucket"

    def url_form(self) -> str:
        """A URL of one of its buckets, as a person writes it: C{s3://BUCKET/PREFIX}."""
        return f"{self.scheme}{self.bucket_word.upper()}/PREFIX"


#: The clouds, by name, in the order their sections are read.
BACKENDS: Mapping[str, Backend] = {backend.name: backend for backend in (
    Backend("s3", S3_KEYS, S3Config, check_s3, "s3://"),
    Backend("azure", AZURE_KEYS, AzureConfig, check_azure, "azure://", "container"),
    Backend("gcs", GCS_KEYS, GCSConfig, check_gcs, "gs://"),
)}


def backend_of_url(url: str) -> Backend | None:
    """The cloud of a bucket's URL (C{gs://...}: C{gcs}), or L{None} for another."""
    return next((backend for backend in BACKENDS.values() if url.startswith(backend.scheme)),
                None)


def url_forms() -> str:
    """Every cloud's L{Backend.url_form}, for a message: C{s3://BUCKET/PREFIX, ... or ...}."""
    *others, last = [backend.url_form() for backend in BACKENDS.values()]
    return f"{', '.join(others)} or {last}"
