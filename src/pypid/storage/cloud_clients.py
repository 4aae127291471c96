"""
The client of each cloud's buckets (L{CLIENTS}), built from its section:
the endpoint, the credentials (or the cloud's chain), the deadline and the
outbound TLS policy, with a connection pool of its own.

Each cloud's SDK is an extra of its own, so a server on local disk
installs none; L{make_client} refuses one not installed with a line naming
the extra, rather than a traceback at the first request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, cast

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from pypid.config import Config
from pypid.config.azure_settings import AzureConfig
from pypid.config.gcs_settings import GCSConfig
from pypid.config.s3_settings import S3Config
from pypid.core.records.metrics import Timings
from pypid.core.util.startup import StartupError
from pypid.jobs.run import Run
from pypid.storage.base.interface import StorageError

if TYPE_CHECKING:
    from pypid.storage.bucket.store import ObjectStore
    from pypid.storage.s3.api import S3Client

    #: What a client's maker returns: the client, and what closes its pool's connections.
    Made = tuple[ObjectStore, Callable[[], Deferred[Any]]]


def make_azure_client(config: Config, run: Run, reactor: IReactorTime,
                      timings: Timings | None = None, *, shared: bool = False,
                      bucket: str | None = None) -> Made:
    """
    The client of the C{[azure]} container (or another C{bucket} of the
    account).

    @raise StartupError: when C{[pypid] ca_bundle} or the key cannot be used,
        or C{[azure] account} is empty but needed (all but a SAS token at an
        C{endpoint_url}).
    """
    from pypid.http.client import make_http, outbound_policy
    from pypid.storage.azure.blob_auth import (
        AccountKey,
        AzureCredentials,
        AzureIdentity,
        SasToken,
    )
    from pypid.storage.azure.blob_calls import AzureClient

    azure = cast(AzureConfig, config.stores["azure"])
    if not azure.account and not (azure.sas_token and azure.endpoint_url):
        raise StartupError(f"{config.where('azure', 'account')}: required to reach an Azure "
                           "container: set it to the storage account's name")
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
    client = AzureClient(azure.blob_endpoint, azure.account, bucket or azure.container,
                         credentials,
                         http, reactor, run=run, timeout=azure.timeout, timings=timings,
                         block_size=azure.block_size, shared=shared)
    return client, pool.closeCachedConnections


def make_gcs_client(config: Config, run: Run, reactor: IReactorTime,
                    timings: Timings | None = None, *, shared: bool = False,
                    bucket: str | None = None) -> Made:
    """
    The client of the C{[gcs]} bucket (or another C{bucket}).

    @raise StartupError: when C{[pypid] ca_bundle} cannot be used.
    """
    from pypid.http.client import make_http, outbound_policy
    from pypid.storage.bucket.layout import Layout
    from pypid.storage.gcs.gcs_auth import (
        AnonymousAccess,
        GCSCredentials,
        GoogleCredentials,
        key_file_credentials,
        metadata_server_credentials,
    )
    from pypid.storage.gcs.object_calls import GCSClient

    gcs = cast(GCSConfig, config.stores["gcs"])
    key_file = (partial(key_file_credentials, gcs.credentials_file, config.held)
                if gcs.credentials_file else None)
    credentials: GCSCredentials = (
        AnonymousAccess(run, key_file) if gcs.anonymous
        else GoogleCredentials(key_file or metadata_server_credentials, run, reactor))
    http, pool = make_http(reactor, gcs.timeout, policy=outbound_policy(config))
    client = GCSClient(gcs.api_endpoint, bucket or gcs.bucket, credentials, http,
                       reactor, run=run, timeout=gcs.timeout, timings=timings,
                       probe_prefix=Layout(gcs.prefix).probe_key(""),
                       copy_limit=config.server.max_upload_size, shared=shared)
    return client, pool.closeCachedConnections


def make_s3_client(config: Config, run: Run, reactor: IReactorTime,
                   timings: Timings | None = None, *, bucket: str | None = None,
                   endpoint: str | None = None, region: str | None = None,
                   shared: bool = False) -> tuple[S3Client, Callable[[], Deferred[Any]]]:
    """
    A client of the C{[s3]} bucket, or of another reached with the same
    credentials (the export's destination, a pypicloud bucket to import);
    see L{make_client}, and L{StartupError} when botocore knows no endpoint
    for the region. Another C{endpoint} is addressed by path (virtual host
    at AWS), C{[s3] addressing} being the configured one's only.
    """
    from pypid.http.client import make_http, outbound_policy
    from pypid.storage.bucket.layout import Layout
    from pypid.storage.s3.api import S3Client
    from pypid.storage.s3.credentials import CredentialSource
    from pypid.storage.s3.sign import Bucket, Credentials, aws_endpoint

    s3 = cast(S3Config, config.stores["s3"])
    endpoint = endpoint or s3.endpoint_url
    region = region or s3.region
    if endpoint == s3.endpoint_url:
        addressing = s3.addressing
    else:
        addressing = "path" if endpoint else "virtual"
    policy = outbound_policy(config)
    try:
        where = endpoint or aws_endpoint(region)
    except ValueError as e:
        raise StartupError(str(e))
    # (the configuration requires a secret key with an access key)
    static = (Credentials(s3.access_key, cast(str, s3.secret_key), s3.session_token)
              if s3.access_key else None)
    source = CredentialSource(static, run, reactor)
    http, pool = make_http(reactor, s3.timeout, policy=policy)
    client = S3Client(Bucket(where, bucket or s3.bucket, region, addressing), source, http,
                      reactor, s3.timeout, timings=timings, run=run,
                      multipart_threshold=s3.multipart_threshold,
                      probe_prefix=Layout(s3.prefix).probe_key(""), shared=shared)
    return client, pool.closeCachedConnections


@attrs.frozen
class CloudClient:
    """How pypid reaches one cloud's buckets."""

    #: makes a client: C{make(config, run, reactor, timings, *, shared, bucket, ...)}
    make: Callable[..., Made]
    #: the modules of its SDK, which the extra named as the cloud installs
    sdk: tuple[str, ...]


#: Each cloud's client, by the cloud's name.
CLIENTS: Mapping[str, CloudClient] = {
    "s3": CloudClient(make_s3_client, ("botocore",)),
    "azure": CloudClient(make_azure_client, ("azure.storage.blob", "azure.identity")),
    "gcs": CloudClient(make_gcs_client, ("google.auth", "requests")),
}


def require_sdk(backend: str) -> None:
    """
    Refuse, with L{StartupError}, a cloud whose SDK is not installed, naming
    its extra. The modules are looked for, not imported: importing Azure's
    identity chain took 0.25 s, looking for every cloud's modules 1 ms.
    """
    for module in CLIENTS[backend].sdk if backend in CLIENTS else ():
        try:
            found = find_spec(module) is not None
        except ImportError:  # (its parent package is missing)
            found = False
        if not found:
            raise StartupError(f"the {backend} backend needs its SDK, which is not installed "
                               f"(no module {module}): pip install 'pypid[{backend}]'")


def make_client(config: Config, run: Run, reactor: IReactorTime,
                timings: Timings | None = None, *, backend: str | None = None,
                shared: bool = False, bucket: str | None = None, **options: str | None) -> Made:
    """
    C{(client, close)}: a client of the configuration's bucket (or another
    C{bucket} of the cloud C{backend}), to C{start} and C{stop}, and what
    closes its own pool's connections. C{timings} counts its requests (one
    may be shared), C{shared} its users
    (L{pypid.storage.bucket.credential_life.SharedStarts}); C{options} are
    the cloud's own (S3's C{endpoint} and C{region}).

    @raise StartupError: when the cloud's SDK is not installed, C{[pypid]
        ca_bundle} or the section's credentials cannot be used.
    """
    backend = backend or config.storage.backend
    require_sdk(backend)
    return CLIENTS[backend].make(config, run, reactor, timings, shared=shared, bucket=bucket,
                                 **options)
