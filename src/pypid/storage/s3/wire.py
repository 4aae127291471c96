"""
S3's side of the wire: the XML of its answers and of the request bodies
pypid sends; pure functions, apart from the client (L{pypid.storage.s3.api}).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import cast
from urllib.parse import unquote

from pypid.storage.bucket.store import (
    Listed,
    ListPage,
    StoreRefused,
    StoreUnavailable,
    parse_iso_time,
)
from pypid.storage.s3.sign import quote_key

_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class S3Error(StoreRefused):
    """S3 answered with an error (a 4xx): C{status}, C{code}."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__("S3", status, code, message)


class S3Unavailable(StoreUnavailable):
    """S3 could not be reached, timed out, or failed (a 5xx)."""


def _text(element: ET.Element, name: str) -> str | None:
    found = element.find(_S3_NS + name)
    if found is None:
        found = element.find(name)
    return found.text or "" if found is not None else None


def _all(element: ET.Element, name: str) -> list[ET.Element]:
    """Every C{name} element under C{element}, with S3's namespace or without."""
    return [*element.iter(_S3_NS + name), *element.iter(name)]


def _parse(body: bytes, what: str) -> ET.Element:
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        raise S3Unavailable(f"S3 sent an unreadable answer to {what}")


def parse_error(status: int, body: bytes) -> tuple[str, str]:
    """The C{(code, message)} of an error answer (its XML body, when there is one)."""
    if body:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            root = None
        if root is not None:
            return (_text(root, "Code") or str(status)), (_text(root, "Message") or "")
    return {403: "AccessDenied", 404: "NotFound", 412: "PreconditionFailed"}.get(
        status, str(status)), ""


def parse_list(body: bytes) -> ListPage:
    """Parse a C{ListObjectsV2} answer into a L{ListPage}."""
    root = _parse(body, "a listing")
    # Asked for with encoding-type=url (keys may hold characters XML cannot):
    # decoded only when the store says it encoded them.
    encoded = (_text(root, "EncodingType") or "").lower() == "url"
    decode: Callable[[str], str] = unquote if encoded else (lambda text: text)
    keys = []
    for item in _all(root, "Contents"):
        # (a key is always there in an answer of S3's)
        keys.append(Listed(decode(cast(str, _text(item, "Key"))),
                           int(_text(item, "Size") or 0),
                           (_text(item, "ETag") or "").strip('"'),
                           parse_iso_time(_text(item, "LastModified") or "")))
    prefixes = tuple(decode(cast(str, _text(p, "Prefix")))
                     for p in _all(root, "CommonPrefixes"))
    truncated = (_text(root, "IsTruncated") or "").lower() == "true"
    token = _text(root, "NextContinuationToken") if truncated else None
    return ListPage(tuple(keys), prefixes, token)


def parse_upload_id(body: bytes) -> str | None:
    """The C{UploadId} of a C{CreateMultipartUpload} answer (L{None} if none)."""
    return _text(_parse(body, "a multipart upload"), "UploadId")


def parse_copy_etag(body: bytes) -> str | None:
    """
    The C{ETag} of a C{CopyObject} or C{UploadPartCopy} answer (L{None} if
    none); L{S3Unavailable} for an error in a 200 answer's body (a copy that
    failed after it began).
    """
    root = _parse(body, "a copy")
    if root.tag in ("Error", _S3_NS + "Error"):
        raise S3Unavailable("S3 could not complete a copy: " + parse_error(200, body)[0])
    return _text(root, "ETag")


def copy_source(bucket: str, key: str) -> str:
    """The C{x-amz-copy-source} of the object C{key} of C{bucket}."""
    return "/" + quote_key(bucket + "/" + key)


def complete_body(etags: list[str]) -> bytes:
    """The body of C{CompleteMultipartUpload} for the parts' ETags, in order."""
    root = ET.Element("CompleteMultipartUpload", xmlns=_S3_NS.strip("{}"))
    for number, etag in enumerate(etags, 1):
        part = ET.SubElement(root, "Part")
        ET.SubElement(part, "PartNumber").text = str(number)
        ET.SubElement(part, "ETag").text = etag
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def location_body(region: str) -> bytes:
    """The body of C{CreateBucket} in C{region} (none is sent for C{us-east-1})."""
    root = ET.Element("CreateBucketConfiguration", xmlns=_S3_NS.strip("{}"))
    ET.SubElement(root, "LocationConstraint").text = region
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


#: The four settings of Block Public Access: no ACL nor policy makes anything public.
PUBLIC_ACCESS_BLOCKS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                        "RestrictPublicBuckets")


def public_access_block_body() -> bytes:
    """The body of C{PutPublicAccessBlock} turning on L{PUBLIC_ACCESS_BLOCKS}."""
    root = ET.Element("PublicAccessBlockConfiguration", xmlns=_S3_NS.strip("{}"))
    for name in PUBLIC_ACCESS_BLOCKS:
        ET.SubElement(root, name).text = "true"
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
