"""
Google Cloud Storage's V4 signed URLs (C{GOOG4-RSA-SHA256}): pure
functions, the RSA signature given by the caller (L{pypid.storage.gcs.gcs_auth}).

Google's published algorithm (S3's SigV4 with C{GOOG4} names), kept here
rather than taken from C{google-cloud-storage}, whose signer is private to
a library bringing its own HTTP stack and protobuf. Its URLs were compared
with that signer's byte for byte, and the test verifies each signature
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
    C{seconds} from C{now}, signed by C{sign} (RSA SHA-256, C{email}'s key).
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
