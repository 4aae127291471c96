"""
The clients of Azure Blob Storage and Google Cloud Storage built from
their sections (C{[azure]}, C{[gcs]}), as L{pypid.storage.factory} builds
S3's: the endpoint, the credentials the operator gave (or the cloud's
own chain), the deadline and the outbound TLS policy, with a connection
pool of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from pypid.config import Config
from pypid.core.records.metrics import Timings
from pypid.core.util.startup import StartupError
from pypid.storage.bucket.layout import Layout
from pypid.storage.bucket.store import ObjectStore
from pypid.storage.interface import Run, StorageError


def make_azure_client(config: Config, run: Run, reactor: IReactorTime,
                      timings: Timings | None = None, *, shared: bool = False,
                      container: str | None = None,
                      ) -> tuple[ObjectStore, Callable[[], Deferred[Any]]]:
    """
    The client of the C{[azure]} container (or of another C{container} of
    the account): its account key, its SAS token, or the Azure identity
    chain.

    @raise StartupError: when C{[pypid] ca_bundle} cannot be used, or the key.
    """
    from pypid.http.client import make_http, outbound_policy
    from pypid.storage.azure.blob_auth import (
        AccountKey,
        AzureCredentials,
        AzureIdentity,
        SasToken,
    )
    from pypid.storage.azure.blob_calls import AzureClient

    azure = config.azure
    credentials: AzureCredentials
    try:
        if azure.account_key:
            credentials = AccountKey(azure.account, azure.account_key)
        elif azure.sas_token:
            credentials = SasToken(azure.sas_token)
        else:
            credentials = AzureIdentity(
                azure.account, run, reactor,
                delegate=azure.download == "redirect" and azure.public_url is None)
    except StorageError as e:
        raise StartupError(str(e))
    http, pool = make_http(reactor, azure.timeout, policy=outbound_policy(config))
    client = AzureClient(azure.blob_endpoint, azure.account, container or azure.container,
                         credentials,
                         http, reactor, run=run, timeout=azure.timeout, timings=timings,
                         block_size=azure.block_size, shared=shared)
    return client, pool.closeCachedConnections


def make_gcs_client(config: Config, run: Run, reactor: IReactorTime,
                    timings: Timings | None = None, *, shared: bool = False,
                    bucket: str | None = None,
                    ) -> tuple[ObjectStore, Callable[[], Deferred[Any]]]:
    """
    The client of the C{[gcs]} bucket (or of another C{bucket}): a
    service account's key file, or the machine's metadata server.

    @raise StartupError: when C{[pypid] ca_bundle} cannot be used.
    """
    from pypid.http.client import make_http, outbound_policy
    from pypid.storage.gcs.gcs_auth import (
        GoogleCredentials,
        key_file_credentials,
        metadata_server_credentials,
    )
    from pypid.storage.gcs.object_calls import GCSClient

    gcs = config.gcs
    make = (partial(key_file_credentials, gcs.credentials_file) if gcs.credentials_file
            else metadata_server_credentials)
    http, pool = make_http(reactor, gcs.timeout, policy=outbound_policy(config))
    client = GCSClient(gcs.api_endpoint, bucket or gcs.bucket,
                       GoogleCredentials(make, run, reactor), http,
                       reactor, run=run, timeout=gcs.timeout, timings=timings,
                       probe_prefix=Layout(gcs.prefix).probe_key(""),
                       copy_limit=config.server.max_upload_size, shared=shared)
    return client, pool.closeCachedConnections
