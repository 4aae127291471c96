"""
L{pypid.storage.azure.shared_key}: Shared Key signatures, measured against
C{azure-storage-blob}'s own signer (its C{SharedKeyCredentialPolicy}), and
user metadata names as Azure takes them.
"""

from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy
from twisted.trial.unittest import SynchronousTestCase

from pypid.storage.azure.shared_key import (
    API_VERSION,
    metadata_headers,
    metadata_of,
    shared_key,
)
from pypid.storage.bucket.layout import user_metadata
from tests.harness.azurite import ACCOUNT, KEY
from tests.harness.records import make_record

ENDPOINT = "http://127.0.0.1:10000/devstoreaccount1"
BASE = {"x-ms-version": API_VERSION, "x-ms-date": "Fri, 27 Nov 2026 22:00:00 GMT"}


def library(method, url, headers):
    """The C{Authorization} the library's signer gives the request."""
    request = HttpRequest(method, url, headers=dict(headers))
    SharedKeyCredentialPolicy(ACCOUNT, KEY).on_request(
        PipelineRequest(request, PipelineContext(None)))
    return request.headers["Authorization"]


class SharedKeyTests(SynchronousTestCase):
    """Every kind of request the adapter makes is signed as the library signs it."""

    def assertSignedAlike(self, method, url, headers):
        import base64
        headers = dict(BASE, **headers)
        self.assertEqual(shared_key(ACCOUNT, base64.b64decode(KEY), method, url, headers),
                         library(method, url, headers))

    def test_put_blob_with_metadata(self):
        """A blob written with a record's metadata (names with '_' beside digits)."""
        record = make_record(blake2_256="0" * 64, md5="1" * 32, metadata_sha256="2" * 64)
        self.assertSignedAlike("PUT", f"{ENDPOINT}/c/pkgs/holy_grail-1.0-py3-none-any.whl",
                               dict(metadata_headers(user_metadata(record)), **{
                                   "x-ms-blob-type": "BlockBlob", "if-none-match": "*",
                                   "content-type": "application/octet-stream",
                                   "content-length": "1234"}))

    def test_quoted_names(self):
        """A key with spaces, '+' and non-ASCII, as the URL carries it."""
        self.assertSignedAlike("GET", f"{ENDPOINT}/c/p/a%20b%2Bc/%C3%A9.whl",
                               {"x-ms-range": "bytes=10-19"})

    def test_queries(self):
        """A listing, a block, a block list and a metadata change, with their queries."""
        for url in (f"{ENDPOINT}/c?comp=list&maxresults=5000&prefix=pkgs%2F&restype=container"
                    "&startFrom=pkgs%2F.pypid%2Fchanges%2F1700000000",
                    f"{ENDPOINT}/c/k?blockid=YmxvY2stMDAwMDAwMDA%3D&comp=block",
                    f"{ENDPOINT}/c/k?comp=blocklist",
                    f"{ENDPOINT}/c/k?comp=metadata"):
            self.assertSignedAlike("PUT" if "block" in url else "GET", url,
                                   {"content-length": "0"})

    def test_copy_and_conditions(self):
        """A copy, a conditional metadata change and a delete."""
        self.assertSignedAlike("PUT", f"{ENDPOINT}/c/dst",
                               {"x-ms-copy-source": f"{ENDPOINT}/c/src",
                                "if-none-match": "*", "x-ms-meta-sha256": "ab"})
        self.assertSignedAlike("PUT", f"{ENDPOINT}/c/k?comp=metadata",
                               {"if-match": '"0x8DC"', "x-ms-meta-upload_time": "1.5"})
        self.assertSignedAlike("DELETE", f"{ENDPOINT}/c/k", {})

    def test_empty_length_signed_empty(self):
        """A zero Content-Length is signed as none (service versions since 2015)."""
        import base64
        key = base64.b64decode(KEY)
        with_zero = dict(BASE, **{"content-length": "0"})
        self.assertEqual(shared_key(ACCOUNT, key, "PUT", f"{ENDPOINT}/c/k", with_zero),
                         shared_key(ACCOUNT, key, "PUT", f"{ENDPOINT}/c/k", BASE))


class MetadataNameTests(SynchronousTestCase):
    """pypid's metadata names travel as C# identifiers and come back as they were."""

    def test_round_trip(self):
        record = make_record(blake2_256="0" * 64, metadata_sha256="2" * 64)
        metadata = user_metadata(record)
        headers = metadata_headers(metadata)
        for name in headers:
            self.assertRegex(name, "^x-ms-meta-[a-z_][a-z0-9_]*$")
        self.assertEqual(metadata_of({k.title(): v for k, v in headers.items()} | {
            name.lower(): value for name, value in headers.items()}), metadata)
