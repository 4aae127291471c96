"""
The clouds that may keep the packages (C{[storage] backend}), one row
each: its section and keys, their check, and the scheme and word of its
buckets' URLs. The configuration, the reload rules, the command-line
tools and the start log iterate over this table; the clients of the
buckets (L{pypid.storage.cloud_clients.CLIENTS}) are keyed by the same
names, which are also the extras that install each cloud's SDK
(C{pip install 'pypid[azure]'}). So another cloud is a row here, the
module of its section, its client, its extra (C{setup.py}) and the
default C{EXTRAS} of C{etc/container/Containerfile}: five modules named
the clouds one by one before, each a place to forget.
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

    #: the value of C{[storage] backend}: also its section's name and
    #: the name of the extra that installs its SDK
    name: str
    #: its section's keys: C{key -> (default, parser)}
    keys: Keys
    #: makes the frozen section of its keys' values (as keywords)
    settings: Callable[..., BucketConfig]
    #: checks its keys against each other and the other sections
    check: Callable[[Values, Fail], None]
    #: the scheme of its buckets' URLs (C{s3://}), as C{pypid-admin import} takes them
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
