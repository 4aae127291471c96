"""
Google Cloud Storage's V4 signed URLs (C{GOOG4-RSA-SHA256}): pure
functions, the RSA signature given by the caller (google-auth's signer of
the service account's key: L{pypid.storage.gcs.gcs_auth}).

The canonical request and the string to sign are Google's published
algorithm (the same as S3's SigV4, with C{GOOG4} names). They are kept
here rather than taken from C{google-cloud-storage}, whose signer
(C{google.cloud.storage._signing.generate_signed_url_v4}) is a private
function of a library that brings its own HTTP stack and protobuf: the
URLs this module makes were compared with that function's, byte for byte,
for the same key, time and object, and the test verifies each signature
with the key's public half (C{tests/unit/storage/gcs/test_gcs_urls.py}),
since the emulator checks none.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable
from urllib.parse import quote, urlsplit

#: The longest a V4 URL may be valid (7 days).
MAX_SECONDS = 604800


def _quote(text: str) -> str:
    return quote(text, safe="-_.~")


def signed_url(endpoint: str, bucket: str, name: str, email: str,
               sign: Callable[[bytes], bytes], seconds: int, now: float) -> str:
    """
    A URL that lets its holder C{GET} the object C{name} of C{bucket} for
    C{seconds} from C{now}.

    @param endpoint: C{https://storage.googleapis.com} (or an emulator's).
    @param sign: RSA SHA-256 over bytes, with the key of C{email}.
    """
    when = datetime.datetime.fromtimestamp(now, datetime.UTC)
    stamp, day = when.strftime("%Y%m%dT%H%M%SZ"), when.strftime("%Y%m%d")
    parts = urlsplit(endpoint)
    host = parts.netloc
    path = f"{parts.path.rstrip('/')}/{quote(bucket, safe='')}/{quote(name, safe='/~')}"
    scope = f"{day}/auto/storage/goog4_request"
    query = sorted({
        "X-Goog-Algorithm": "GOOG4-RSA-SHA256",
        "X-Goog-Credential": f"{email}/{scope}",
        "X-Goog-Date": stamp,
        "X-Goog-Expires": str(min(max(int(seconds), 1), MAX_SECONDS)),
        "X-Goog-SignedHeaders": "host",
    }.items())
    canonical_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in query)
    canonical = "\n".join(["GET", path, canonical_query, f"host:{host}\n", "host",
                           "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["GOOG4-RSA-SHA256", stamp, scope,
                         hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    signature = sign(to_sign.encode("utf-8")).hex()
    return f"{parts.scheme}://{host}{path}?{canonical_query}&X-Goog-Signature={signature}"
