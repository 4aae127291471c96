"""
The C{[azure]} section: the storage account, container and credentials
of the Azure Blob Storage backend, and (as every store's section:
L{pypid.config.bucket_settings}) how its bucket is worked.
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
from pypid.config.values import Fail, Keys, Values, redacted
from pypid.core.util.units import parse_size

#: Azure's largest block pypid writes, and the most blocks of one blob.
MAX_BLOCK_SIZE = 100 << 20
MAX_BLOCKS = 50_000


@attrs.frozen
class AzureConfig(BucketConfig):
    """The C{[azure]} section (its defaults when C{[storage] backend} is another)."""

    account: str
    container: str
    account_key: str | None = attrs.field(repr=redacted)
    sas_token: str | None = attrs.field(repr=redacted)
    block_size: int

    @property
    def blob_endpoint(self) -> str:
        """The account's blob endpoint: C{endpoint_url}, or Azure's for the account."""
        return self.endpoint_url or f"https://{self.account}.blob.core.windows.net"

    @property
    def bucket(self) -> str:
        """The container: what the other clouds call the bucket."""
        return self.container

    def describe(self) -> str:
        """The container and its account's endpoint, for the start log."""
        return f"Azure container {self.container} of {self.blob_endpoint}"


def _account(value: str) -> str:
    value = value.strip()
    if value and not re.fullmatch(r"[a-z0-9]{3,24}", value):
        raise ValueError("expected a storage account name: 3 to 24 lowercase letters and digits")
    return value


def _container(value: str) -> str:
    value = value.strip()
    if value and (not re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}", value)):
        raise ValueError("expected a container name: 3 to 63 lowercase letters, digits and "
                         "'-', starting with a letter or digit, without two '-' in a row")
    return value


def _secret(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    if any(c.isspace() or ord(c) < 32 for c in value):
        # The value is a secret: never repeat it.
        raise ValueError("spaces and control characters are not allowed")
    return value


def _account_key(value: str) -> str | None:
    key = _secret(value)
    if key is not None and not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", key):
        raise ValueError("expected the account's key in base64, as the portal shows it")
    return key


def _block_size(value: str) -> int:
    size = parse_size(value)
    if not 1 << 20 <= size <= MAX_BLOCK_SIZE:
        raise ValueError("expected a size from 1M to 100M")
    return size


def _endpoint_url(value: str) -> str | None:
    return parse_endpoint_url(value, "http://127.0.0.1:10000/devstoreaccount1")


#: key -> (default, parser): Azure's own, then every bucket's (L{BUCKET_KEYS})
AZURE_KEYS: Keys = {
    "account": ("", _account),
    "container": ("", _container),
    "endpoint_url": ("", _endpoint_url),
    "account_key": ("", _account_key),
    "sas_token": ("", _secret),
    "block_size": ("64M", _block_size),
    **BUCKET_KEYS,
}


def check_azure(values: Values, fail: Fail) -> None:
    """Check the C{[azure]} keys against each other and the other sections."""
    backend = ("storage", "backend")
    if values[backend] == "azure":
        for key, what in (("account", "the storage account's name"),
                          ("container", "the container that holds the packages")):
            if not values["azure", key]:
                fail("azure", key, f"required for backend = azure ([storage] backend): "
                     f"set it to {what}", [backend])
    if values["azure", "account_key"] and values["azure", "sas_token"]:
        fail("azure", "sas_token", "give account_key or sas_token, not both; or neither, "
             "for the Azure identity chain", [("azure", "account_key")])
    if values[backend] == "azure" and values["azure", "sas_token"] and redirects(values, "azure"):
        fail("azure", "download", "redirect needs URLs pypid signs, which a SAS token cannot: "
             "set download = stream (or public_url), or give account_key or an identity",
             [("azure", "sas_token")])
    largest = values["pypid", "max_upload_size"]
    if values[backend] == "azure" and values["azure", "block_size"] * MAX_BLOCKS < largest:
        fail("azure", "block_size", f"too small for [pypid] max_upload_size: a blob has at "
             f"most {MAX_BLOCKS} blocks", [("pypid", "max_upload_size"), backend])
    check_bucket("azure", values, fail)
