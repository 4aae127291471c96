"""
Addressing and signing S3 requests: pure computation, no I/O.

txaws is Python 2 only, and boto3 blocks. So pypid builds each URL itself,
signs it with botocore's SigV4 signer (which only computes), and sends it
with treq; presigned URLs come from botocore's query-string signer. The
endpoint is the one configured, or botocore's for the region.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import quote, urlsplit

import attrs
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

#: SHA-256 of the empty string: the payload hash of a request without a body.
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@attrs.frozen
class Credentials:
    """Signing credentials at one moment; C{expiry}: when they stop working, if they do."""

    access_key: str
    secret_key: str = attrs.field(repr=False)
    token: str | None = attrs.field(default=None, repr=False)
    expiry: float | None = None


def aws_endpoint(region: str) -> str:
    """AWS S3's HTTPS endpoint for C{region}, from botocore's data (read from disk: once)."""
    from botocore.loaders import create_loader
    from botocore.regions import EndpointResolver
    resolved = EndpointResolver(create_loader().load_data("endpoints")).construct_endpoint(
        "s3", region)
    if not resolved or not resolved.get("hostname"):
        raise ValueError(f"botocore knows no S3 endpoint for region {region!r}")
    return "https://" + resolved["hostname"]


def quote_key(key: str) -> str:
    """Percent-encode an object key for a URL path the way SigV4 expects."""
    return quote(key, safe="/~")


def query_string(params: Iterable[tuple[str, str]]) -> str:
    """
    Query parameters as SigV4 canonicalises them (all but unreserved bytes
    escaped, C{/} included), sorted, so the URL sent is the URL signed.
    """
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                    for k, v in sorted(params))


@attrs.frozen
class Bucket:
    """
    Where a bucket's objects are addressed: C{addressing} C{"path"}
    (C{endpoint/bucket/key}) or C{"virtual"} (C{bucket.host/key}).
    """

    endpoint: str
    name: str
    region: str
    addressing: str = "path"

    def url(self, key: str = "", params: Sequence[tuple[str, str]] = ()) -> str:
        """The URL of an object (or of the bucket, with no key)."""
        parts = urlsplit(self.endpoint)
        # An endpoint may sit under a path (a store behind a proxy).
        path = parts.path.rstrip("/")
        if self.addressing == "virtual":
            base = f"{parts.scheme}://{self.name}.{parts.netloc}{path}/"
        else:
            base = f"{parts.scheme}://{parts.netloc}{path}/{self.name}/"
        url = base + quote_key(key)
        if params:
            url += "?" + query_string(params)
        return url


class _Signer(S3SigV4Auth):
    """botocore's S3 signer, told the payload's digest (pypid streams bodies, knowing it)."""

    def payload(self, request: AWSRequest) -> str:
        return request.context["payload_sha256"]


def _botocore(credentials: Credentials) -> ReadOnlyCredentials:
    return ReadOnlyCredentials(credentials.access_key, credentials.secret_key,
                               credentials.token)


def sign(credentials: Credentials, region: str, method: str, url: str,
         headers: dict[str, str] | None = None,
         payload_sha256: str = EMPTY_SHA256) -> dict[str, str]:
    """Sign one request: every header to send, C{Authorization} included."""
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}))
    request.context["payload_sha256"] = payload_sha256
    _Signer(_botocore(credentials), "s3", region).add_auth(request)
    return dict(request.headers.items())


def presign(credentials: Credentials, region: str, url: str, expires: float) -> str:
    """A URL that lets whoever holds it GET C{url} for C{expires} seconds."""
    request = AWSRequest(method="GET", url=url)
    S3SigV4QueryAuth(_botocore(credentials), "s3", region, expires=int(expires)).add_auth(request)
    return request.url
