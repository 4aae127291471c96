"""
Azure Blob Storage's Shared Key signature of a request, and its user
metadata names.

C{azure-storage-blob}'s signer is a private policy of its own HTTP
pipeline (C{azure.storage.blob._shared.authentication.SharedKeyCredentialPolicy}),
not callable on a request sent with treq. This one gives the same string
to sign and signature for every request the adapter makes
(C{tests/unit/storage/azure/test_azure_sign.py} asks the policy), and
Azurite accepts them. The C{x-ms-*} headers are in the service's
collation (C{-} ignored, C{_} before digits before letters,
case-insensitive): a plain sort orders C{x-ms-meta-a_1} and
C{x-ms-meta-a1} wrongly, and the service refuses it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

#: The service version pypid speaks: one every endpoint has (emulators too).
API_VERSION = "2023-11-03"

#: The version of a listing after a name: the first with C{startFrom}.
START_FROM_VERSION = "2026-02-06"

#: The headers of the string to sign, in its order, before the C{x-ms-*} ones.
_STANDARD = ("content-encoding", "content-language", "content-length", "content-md5",
             "content-type", "date", "if-modified-since", "if-match", "if-none-match",
             "if-unmodified-since", "range")

#: The prefix of Azure's user metadata headers.
META = "x-ms-meta-"


def metadata_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    """
    User metadata as Azure's headers: a name must be a C# identifier, so
    the C{-} of pypid's names is C{_} (L{metadata_of} reads it back).
    """
    return {META + name.replace("-", "_"): value for name, value in metadata.items()}


def metadata_of(headers: Mapping[str, str]) -> dict[str, str]:
    """The user metadata in an answer's headers (lowercase names, C{_} read as C{-})."""
    return {name[len(META):].lower().replace("_", "-"): value
            for name, value in headers.items() if name.startswith(META)}


def _collation(name: str) -> tuple[int, ...]:
    """The service's order of header names (see the module)."""
    order = []
    for char in name.lower():
        if char == "-":
            continue
        if char == "_":
            order.append(1)
        elif char.isdigit():
            order.append(2 + ord(char) - ord("0"))
        elif "a" <= char <= "z":
            order.append(20 + ord(char) - ord("a"))
        else:
            order.append(200 + ord(char))
    return tuple(order)


def string_to_sign(account: str, method: str, url: str, headers: Mapping[str, str]) -> str:
    """What Shared Key signs for a request of C{headers} (those sent) to C{url}."""
    lowered = {name.lower(): str(value) for name, value in headers.items()}
    standard = ["" if name == "content-length" and lowered.get(name) == "0"
                else lowered.get(name, "") for name in _STANDARD]
    names = sorted((name for name in lowered if name.startswith("x-ms-")), key=_collation)
    canonical_headers = "".join(f"{name}:{lowered[name].strip()}\n" for name in names)
    parts = urlsplit(url)
    resource = f"/{account}{parts.path or '/'}"
    query: dict[str, list[str]] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(name.lower(), []).append(value)
    resource += "".join(f"\n{name}:{','.join(sorted(query[name]))}" for name in sorted(query))
    return "\n".join([method.upper(), *standard]) + "\n" + canonical_headers + resource


def shared_key(account: str, key: bytes, method: str, url: str,
               headers: Mapping[str, str]) -> str:
    """The C{Authorization} header of a request (C{key}: the account key, decoded)."""
    digest = hmac.new(key, string_to_sign(account, method, url, headers).encode("utf-8"),
                      hashlib.sha256).digest()
    return f"SharedKey {account}:{base64.b64encode(digest).decode('ascii')}"
