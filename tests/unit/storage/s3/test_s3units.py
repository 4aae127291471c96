"""
Fast, in-memory tests of the pieces the S3 storage is built from: request
addressing and signing (L{pypid.storage.s3.sign}), the bucket layout
(L{pypid.storage.bucket.layout}), the treq-based client (L{pypid.storage.s3.api})
and the credential source (L{pypid.storage.s3.credentials}).

No network and no S3 server: a small twisted.web resource plays the store
behind L{StubTreq}, time is a L{Clock}, and thread-pool work runs at once.
"""

import datetime
import hashlib
import hmac
import os
import xml.etree.ElementTree as ET
from collections import namedtuple
from itertools import pairwise
from urllib.parse import parse_qs, urlsplit

import botocore.auth
from treq.testing import StubTreq
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pypid.config import ConfigError, load_config
from pypid.core.dists.model import SUMMARY_BYTES, UPLOADER_BYTES, FileRecord, cut_text
from pypid.core.indexes.promotion import PromotionJournal
from pypid.core.util.s3_limits import CHECK_RATE
from pypid.storage.base.interface import StorageError
from pypid.storage.bucket import http_calls
from pypid.storage.bucket.http_calls import RETRY_DELAYS, FileRangeProducer
from pypid.storage.bucket.layout import (
    METADATA_SUFFIX,
    Change,
    Layout,
    changes_start_after,
    intent_subject,
    record_from_metadata,
    user_metadata,
    yank_body,
    yank_reason,
)
from pypid.storage.bucket.object_adoption import JournalObjects
from pypid.storage.bucket.object_writes import CopySources
from pypid.storage.bucket.pending_writes import PendingWrites
from pypid.storage.bucket.storage import BucketSettings, BucketStorage
from pypid.storage.bucket.store import (
    Listed,
    ListPage,
    ObjectRef,
    PacedStore,
    Pacer,
    parse_iso_time,
)
from pypid.storage.s3.api import S3Client
from pypid.storage.s3.credentials import REFRESH_AHEAD, CredentialSource
from pypid.storage.s3.sign import (
    EMPTY_SHA256,
    Bucket,
    Credentials,
    aws_endpoint,
    presign,
    query_string,
    sign,
)
from pypid.storage.s3.wire import (
    S3Error,
    S3Unavailable,
    complete_body,
    parse_error,
    parse_list,
)
from tests.harness.fakes import QueuedRun, run_now, write_file

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"

#: The moment every signature in these tests is made at.
FIXED_NOW = datetime.datetime(2026, 1, 2, 3, 4, 5)
FIXED_AMZ_DATE = "20260102T030405Z"

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")

ENDPOINT = "http://s3.test:9000"


def fixed_time(test):
    """Make botocore sign every request at L{FIXED_NOW}."""
    test.patch(botocore.auth, "get_current_datetime", lambda *a, **kw: FIXED_NOW)


def lower(headers):
    """C{headers} with lowercase names."""
    return {name.lower(): value for name, value in headers.items()}


def authorization_fields(value):
    """Split a SigV4 Authorization header into its algorithm and C{{field: value}}."""
    algorithm, _, rest = value.partition(" ")
    fields = dict(part.strip().split("=", 1) for part in rest.split(","))
    return algorithm, fields


# -- s3sign ---------------------------------------------------------------------------


class BucketURLTests(SynchronousTestCase):
    """L{Bucket.url} addresses objects the way S3 expects."""

    def test_path_addressing(self):
        """Path addressing puts the bucket first in the path and keeps the port."""
        bucket = Bucket(ENDPOINT, "bkt", "eu-west-1")
        self.assertEqual(bucket.url("a/b.whl"), "http://s3.test:9000/bkt/a/b.whl")

    def test_path_addressing_bucket_only(self):
        """With no key, path addressing names the bucket itself."""
        bucket = Bucket(ENDPOINT, "bkt", "eu-west-1")
        self.assertEqual(bucket.url(), "http://s3.test:9000/bkt/")

    def test_virtual_addressing(self):
        """Virtual addressing puts the bucket in front of the host, keeping the port."""
        bucket = Bucket("https://store.test:8443", "bkt", "eu-west-1", "virtual")
        self.assertEqual(bucket.url("a/b.whl"), "https://bkt.store.test:8443/a/b.whl")
        self.assertEqual(bucket.url(), "https://bkt.store.test:8443/")

    def test_key_encoding(self):
        """Spaces, C{+}, C{%} and non-ASCII are percent-encoded; C{/} and C{~} are kept."""
        bucket = Bucket(ENDPOINT, "bkt", "eu-west-1")
        url = bucket.url("dir/a b+c~d\u00e9%.whl")
        self.assertEqual(url, "http://s3.test:9000/bkt/dir/a%20b%2Bc~d%C3%A9%25.whl")

    def test_params(self):
        """Query parameters follow the key, encoded by L{query_string}."""
        bucket = Bucket(ENDPOINT, "bkt", "eu-west-1", "virtual")
        url = bucket.url("", [("prefix", "a/b"), ("list-type", "2")])
        self.assertEqual(url, "http://bkt.s3.test:9000/?list-type=2&prefix=a%2Fb")


class QueryStringTests(SynchronousTestCase):
    """L{query_string} encodes parameters in SigV4's canonical form."""

    def test_sorted(self):
        """Parameters come out sorted by name."""
        self.assertEqual(query_string([("z", "1"), ("a", "2"), ("m", "3")]), "a=2&m=3&z=1")

    def test_escapes_slash_and_equals(self):
        """C{/}, C{=}, C{&}, C{+} and spaces are escaped; unreserved characters are not."""
        self.assertEqual(query_string([("k", "a/b=c&d+e f-_.~")]),
                         "k=a%2Fb%3Dc%26d%2Be%20f-_.~")

    def test_empty_value(self):
        """An empty value is written as C{k=}."""
        self.assertEqual(query_string([("uploads", ""), ("a", "1")]), "a=1&uploads=")

    def test_empty(self):
        """No parameters give an empty string."""
        self.assertEqual(query_string([]), "")


class SignTests(SynchronousTestCase):
    """L{sign} produces the headers of a SigV4-signed S3 request."""

    url = "http://s3.test:9000/bkt/dir/a%20b.whl"

    def setUp(self):
        fixed_time(self)

    def sign(self, **kw):
        """Sign a GET of L{url} with L{CREDENTIALS}, with overrides."""
        args = dict(credentials=CREDENTIALS, region="eu-west-1", method="GET", url=self.url)
        args.update(kw)
        return lower(sign(**args))

    def test_authorization(self):
        """The Authorization header names the algorithm, the credential scope and a signature."""
        algorithm, fields = authorization_fields(self.sign()["authorization"])
        self.assertEqual(algorithm, "AWS4-HMAC-SHA256")
        self.assertEqual(fields["Credential"],
                         "AKIDEXAMPLE/20260102/eu-west-1/s3/aws4_request")
        self.assertRegex(fields["Signature"], r"^[0-9a-f]{64}$")

    def test_signed_headers(self):
        """Host, the payload hash, the date and every given header are signed."""
        headers = self.sign(headers={"if-none-match": "*"})
        _, fields = authorization_fields(headers["authorization"])
        signed = fields["SignedHeaders"].split(";")
        for name in ("host", "x-amz-content-sha256", "x-amz-date", "if-none-match"):
            self.assertIn(name, signed)
        self.assertEqual(headers["if-none-match"], "*")
        self.assertEqual(headers["x-amz-date"], FIXED_AMZ_DATE)

    def test_payload_hash_default(self):
        """Without a payload hash, the empty body's is sent."""
        self.assertEqual(self.sign()["x-amz-content-sha256"], EMPTY_SHA256)

    def test_payload_hash_given(self):
        """The payload hash given is the one sent."""
        digest = hashlib.sha256(b"body").hexdigest()
        headers = self.sign(method="PUT", payload_sha256=digest)
        self.assertEqual(headers["x-amz-content-sha256"], digest)

    def test_no_token(self):
        """Credentials without a session token add no token header."""
        headers = self.sign()
        self.assertNotIn("x-amz-security-token", headers)
        _, fields = authorization_fields(headers["authorization"])
        self.assertNotIn("x-amz-security-token", fields["SignedHeaders"].split(";"))

    def test_token(self):
        """A session token is sent, and signed."""
        credentials = Credentials("AK", "SK", "the-token")
        headers = self.sign(credentials=credentials)
        self.assertEqual(headers["x-amz-security-token"], "the-token")
        _, fields = authorization_fields(headers["authorization"])
        self.assertIn("x-amz-security-token", fields["SignedHeaders"].split(";"))

    def test_deterministic(self):
        """At a fixed time, the same request gets the same signature."""
        self.assertEqual(self.sign()["authorization"], self.sign()["authorization"])

    def test_signature_depends_on_request(self):
        """The secret, the method, the URL and a header value each change the signature."""
        base = self.sign(headers={"if-none-match": "*"})["authorization"]
        variants = [
            self.sign(credentials=Credentials("AKIDEXAMPLE", "another secret"),
                      headers={"if-none-match": "*"}),
            self.sign(method="HEAD", headers={"if-none-match": "*"}),
            self.sign(url=self.url + "x", headers={"if-none-match": "*"}),
            self.sign(headers={"if-none-match": "\"abc\""}),
        ]
        signatures = {authorization_fields(v["authorization"])[1]["Signature"]
                      for v in variants}
        self.assertEqual(len(signatures), len(variants))
        self.assertNotIn(authorization_fields(base)[1]["Signature"], signatures)

    def test_signature_by_hand(self):
        """
        The signature is the one the SigV4 specification gives, computed here
        independently of botocore.
        """
        url = "http://s3.test:9000/bkt/dir/a%20b.whl?list-type=2&prefix=a%2Fb"
        headers = self.sign(url=url)
        scope = "20260102/eu-west-1/s3/aws4_request"
        signed_headers = "host;x-amz-content-sha256;x-amz-date"
        canonical_request = "\n".join([
            "GET",
            "/bkt/dir/a%20b.whl",
            "list-type=2&prefix=a%2Fb",
            "host:s3.test:9000",
            "x-amz-content-sha256:" + EMPTY_SHA256,
            "x-amz-date:" + FIXED_AMZ_DATE,
            "",
            signed_headers,
            EMPTY_SHA256,
        ])
        string_to_sign = "\n".join([
            "AWS4-HMAC-SHA256",
            FIXED_AMZ_DATE,
            scope,
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        ])
        key = ("AWS4" + CREDENTIALS.secret_key).encode("utf-8")
        for part in ("20260102", "eu-west-1", "s3", "aws4_request"):
            key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
        signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        self.assertEqual(
            headers["authorization"],
            f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}")


class PresignTests(SynchronousTestCase):
    """L{presign} makes URLs that carry their own signature."""

    url = "http://s3.test:9000/bkt/a%20b.whl"

    def setUp(self):
        fixed_time(self)

    def query(self, credentials=CREDENTIALS, expires=600):
        """The parsed query of a presigned L{url}."""
        signed = presign(credentials, "eu-west-1", self.url, expires)
        parts = urlsplit(signed)
        self.assertEqual(f"{parts.scheme}://{parts.netloc}{parts.path}", self.url)
        return parse_qs(parts.query, keep_blank_values=True)

    def test_parameters(self):
        """The URL names the algorithm, the credential, its validity, the signed headers and the signature."""
        query = self.query(expires=600)
        self.assertEqual(query["X-Amz-Algorithm"], ["AWS4-HMAC-SHA256"])
        self.assertEqual(query["X-Amz-Credential"],
                         ["AKIDEXAMPLE/20260102/eu-west-1/s3/aws4_request"])
        self.assertEqual(query["X-Amz-Date"], [FIXED_AMZ_DATE])
        self.assertEqual(query["X-Amz-Expires"], ["600"])
        self.assertEqual(query["X-Amz-SignedHeaders"], ["host"])
        self.assertRegex(query["X-Amz-Signature"][0], r"^[0-9a-f]{64}$")
        self.assertNotIn("X-Amz-Security-Token", query)

    def test_expires_given(self):
        """The validity is the number of seconds given, as a whole number."""
        self.assertEqual(self.query(expires=3600.0)["X-Amz-Expires"], ["3600"])

    def test_token(self):
        """A session token travels in the URL."""
        query = self.query(credentials=Credentials("AK", "SK", "the-token"))
        self.assertEqual(query["X-Amz-Security-Token"], ["the-token"])

    def test_secret_not_in_url(self):
        """The secret key never appears in the URL."""
        signed = presign(CREDENTIALS, "eu-west-1", self.url, 60)
        self.assertNotIn(CREDENTIALS.secret_key, signed)
        self.assertNotIn("wJalrXUtnFEMI", signed)


class CredentialsTests(SynchronousTestCase):
    """L{Credentials} and L{aws_endpoint}."""

    def test_repr_hides_secrets(self):
        """The repr shows the access key, but neither the secret nor the token."""
        text = repr(Credentials("AKVISIBLE", "SECRETVALUE", "TOKENVALUE", 12.5))
        self.assertIn("AKVISIBLE", text)
        self.assertNotIn("SECRETVALUE", text)
        self.assertNotIn("TOKENVALUE", text)

    def test_aws_endpoint(self):
        """The endpoint of a region is an HTTPS URL with a host naming the region."""
        url = aws_endpoint("eu-west-3")
        parts = urlsplit(url)
        self.assertEqual(parts.scheme, "https")
        self.assertIn("eu-west-3", parts.netloc)
        self.assertEqual(parts.path, "")

    def test_aws_endpoint_unknown(self):
        """A region botocore does not know is refused."""
        self.assertRaises(ValueError, aws_endpoint, "nowhere-1")


# -- s3layout -------------------------------------------------------------------------


class LayoutKeyTests(SynchronousTestCase):
    """Every key of L{Layout}, with and without a prefix."""

    def test_without_prefix(self):
        """Without a prefix, keys start at the bucket's root."""
        layout = Layout()
        self.assertEqual(layout.file_key("a-1.0.tar.gz"), "a-1.0.tar.gz")
        self.assertEqual(layout.file_key("a/a-1.0.tar.gz"), "a/a-1.0.tar.gz")
        self.assertEqual(layout.metadata_key("a-1.0.tar.gz"), "a-1.0.tar.gz.metadata")
        self.assertEqual(layout.yanked_prefix, ".pypid/yanked/")
        self.assertEqual(layout.deleted_prefix, ".pypid/deleted/")
        self.assertEqual(layout.changes_prefix, ".pypid/changes/")
        self.assertEqual(layout.snapshot_key, ".pypid/snapshot.json.gz")
        self.assertEqual(layout.yanked_key("a-1.0.tar.gz"), ".pypid/yanked/a-1.0.tar.gz")
        self.assertEqual(layout.deleted_key("a-1.0.tar.gz"), ".pypid/deleted/a-1.0.tar.gz")
        self.assertEqual(layout.files_start_after, ".pypid0")

    def test_with_prefix(self):
        """With a prefix, every key starts with it."""
        layout = Layout("pkgs/")
        self.assertEqual(layout.file_key("a-1.0.tar.gz"), "pkgs/a-1.0.tar.gz")
        self.assertEqual(layout.metadata_key("a-1.0.tar.gz"), "pkgs/a-1.0.tar.gz.metadata")
        self.assertEqual(layout.yanked_prefix, "pkgs/.pypid/yanked/")
        self.assertEqual(layout.deleted_prefix, "pkgs/.pypid/deleted/")
        self.assertEqual(layout.changes_prefix, "pkgs/.pypid/changes/")
        self.assertEqual(layout.snapshot_key, "pkgs/.pypid/snapshot.json.gz")
        self.assertEqual(layout.yanked_key("a-1.0.tar.gz"), "pkgs/.pypid/yanked/a-1.0.tar.gz")
        self.assertEqual(layout.deleted_key("a-1.0.tar.gz"),
                         "pkgs/.pypid/deleted/a-1.0.tar.gz")
        self.assertEqual(layout.files_start_after, "pkgs/.pypid0")

    def test_metadata_suffix(self):
        """The core metadata of a file is its key plus C{.metadata}."""
        self.assertEqual(METADATA_SUFFIX, ".metadata")


class PathOfTests(SynchronousTestCase):
    """L{Layout.path_of} tells which listed keys may be distribution files."""

    def test_flat(self):
        """A file at the top of the prefix is served under its own name."""
        self.assertEqual(Layout().path_of("a-1.0.tar.gz"), "a-1.0.tar.gz")
        self.assertEqual(Layout("p/").path_of("p/a-1.0.tar.gz"), "a-1.0.tar.gz")

    def test_nested(self):
        """A file in a folder (pypicloud's layout) keeps its folder in the path."""
        self.assertEqual(Layout().path_of("a/a-1.0.tar.gz"), "a/a-1.0.tar.gz")
        self.assertEqual(Layout("p/").path_of("p/a/b/a-1.0.tar.gz"), "a/b/a-1.0.tar.gz")

    def test_internal(self):
        """pypid's own keys are not files."""
        for layout in (Layout(), Layout("p/")):
            for key in (layout.yanked_key("a-1.0.tar.gz"), layout.deleted_key("a-1.0.tar.gz"),
                        layout.snapshot_key, Change(1, "i", 0, "a-1.0.tar.gz").key(layout)):
                self.assertIsNone(layout.path_of(key), key)

    def test_metadata_sibling(self):
        """A C{.metadata} sibling is not a file."""
        self.assertIsNone(Layout().path_of("a-1.0.tar.gz.metadata"))
        self.assertIsNone(Layout("p/").path_of("p/a/a-1.0.tar.gz.metadata"))

    def test_dotted_segments(self):
        """A segment starting with a dot (hidden, C{.}, C{..}) is refused."""
        for key in (".hidden", "a/.hidden.tar.gz", "../a-1.0.tar.gz", "a/../a-1.0.tar.gz",
                    "./a-1.0.tar.gz"):
            self.assertIsNone(Layout().path_of(key), key)

    def test_empty_segments(self):
        """Empty segments (a leading, doubled or trailing slash) are refused."""
        for key in ("/a-1.0.tar.gz", "a//a-1.0.tar.gz", "a/", ""):
            self.assertIsNone(Layout().path_of(key), key)
        self.assertIsNone(Layout("p/").path_of("p/"))
        self.assertIsNone(Layout("p/").path_of("p//a-1.0.tar.gz"))

    def test_outside_prefix(self):
        """A key outside the prefix is not served."""
        self.assertIsNone(Layout("p/").path_of("q/a-1.0.tar.gz"))
        self.assertIsNone(Layout("p/").path_of("a-1.0.tar.gz"))


class FilesStartAfterTests(SynchronousTestCase):
    """L{Layout.files_start_after} skips pypid's own keys in a listing."""

    def test_order(self):
        """It sorts after every C{.pypid/} key and before every key starting with a digit or letter."""
        for prefix in ("", "p/"):
            layout = Layout(prefix)
            start = layout.files_start_after.encode("utf-8")
            internal = [layout.yanked_key("zzz-9.9.tar.gz"), layout.deleted_key("\uffff"),
                        layout.snapshot_key, layout.changes_prefix + "~" * 50,
                        layout.prefix + ".pypid/"]
            for key in internal:
                self.assertLess(key.encode("utf-8"), start, key)
            for first in "09AZaz":
                key = layout.file_key(first + "-1.0.tar.gz")
                self.assertGreater(key.encode("utf-8"), start, key)
                key = layout.file_key(first)
                self.assertGreater(key.encode("utf-8"), start, key)


def make_record(**kw):
    """A wheel's record with every optional field set, unless overridden."""
    fields = dict(
        filename="caf_thing-1.0-py3-none-any.whl",
        project="caf\u00e9-thing",
        name="Caf\u00e9_Thing",
        version="1.0",
        packagetype="bdist_wheel",
        path="caf-thing/caf_thing-1.0-py3-none-any.whl",
        size=1234,
        sha256="a" * 64,
        upload_time=1767225600.25,
        blake2_256="b" * 64,
        md5="c" * 32,
        requires_python=">=3.8, <4, !=3.9.*",
        metadata_sha256="d" * 64,
    )
    fields.update(kw)
    return FileRecord(**fields)


class MetadataHeadersTests(SynchronousTestCase):
    """A file object's user metadata describes its record."""

    def test_round_trip(self):
        """The headers give back the record they were made from."""
        record = make_record()
        headers = user_metadata(record)
        self.assertEqual(record_from_metadata(record.path, record.size, headers), record)

    def test_ascii(self):
        """Every header name and value is ASCII, even for a non-ASCII name."""
        headers = user_metadata(make_record())
        for name, value in headers.items():
            self.assertTrue(name.isascii(), name)
            self.assertTrue(value.isascii(), (name, value))
            self.assertRegex(name, "^[a-z0-9-]+$")
        self.assertNotIn(" ", headers["requires-python"])
        self.assertNotIn("<", headers["requires-python"])
        self.assertNotIn(",", headers["requires-python"])

    def test_optional_fields_absent(self):
        """A record without optional fields round-trips, and sends no header for them."""
        record = make_record(blake2_256=None, md5=None, requires_python=None,
                             metadata_sha256=None)
        headers = user_metadata(record)
        self.assertEqual(set(headers), {"sha256", "name",
                                        "version", "upload-time"})
        self.assertEqual(record_from_metadata(record.path, record.size, headers), record)

    def test_sdist(self):
        """An sdist's record round-trips, its package type read from its filename."""
        record = make_record(filename="thing-2.0.tar.gz", project="thing", name="thing",
                             version="2.0", packagetype="sdist", path="thing-2.0.tar.gz")
        headers = user_metadata(record)
        self.assertEqual(record_from_metadata(record.path, record.size, headers), record)

    def test_summary_and_uploader(self):
        """
        The summary and the uploader round-trip, quoted to ASCII, and a
        record's largest (its caps, in characters that quote longest) fits
        in the 2 KB S3 allows for user metadata.
        """
        record = make_record(summary=cut_text("Gr\u00e4l \u2603 <%> " * 100, SUMMARY_BYTES),
                             uploader=cut_text("\u00e9" * 200, UPLOADER_BYTES))
        headers = user_metadata(record)
        self.assertTrue(all(v.isascii() for v in headers.values()))
        self.assertEqual(record_from_metadata(record.path, record.size, headers), record)
        self.assertLess(sum(len(k) + len(v) for k, v in headers.items()),
                        2048)

    def test_not_yanked(self):
        """The yank state is not kept in the headers: the record comes back not yanked."""
        record = make_record(yanked="broken")
        rebuilt = record_from_metadata(record.path, record.size, user_metadata(record))
        self.assertIsNone(rebuilt.yanked)

    def test_without_sha256(self):
        """An object without pypid's sha256 header has no record."""
        headers = user_metadata(make_record())
        del headers["sha256"]
        self.assertIsNone(record_from_metadata("a/caf_thing-1.0-py3-none-any.whl", 1, headers))
        self.assertIsNone(record_from_metadata("a/caf_thing-1.0-py3-none-any.whl", 1, {}))

    def test_broken_values(self):
        """Missing or unusable values give no record rather than an error."""
        record = make_record()
        good = user_metadata(record)
        broken = [
            {"upload-time": "yesterday"},
            {"upload-time": "nan"},
            {"upload-time": "inf"},
            {"upload-time": "1e300"},
            {"sha256": "abc"},
        ]
        for change in broken:
            headers = dict(good, **change)
            self.assertIsNone(record_from_metadata(record.path, record.size, headers), change)
        for missing in ("name", "version", "upload-time"):
            headers = dict(good)
            del headers[missing]
            self.assertIsNone(record_from_metadata(record.path, record.size, headers), missing)

    def test_not_a_distribution(self):
        """An object whose name is not a distribution filename has no record."""
        headers = user_metadata(make_record())
        self.assertIsNone(record_from_metadata("a/notes.txt", 1, headers))


class YankBodyTests(SynchronousTestCase):
    """The body of a yank marker holds the reason."""

    def test_round_trip(self):
        """A reason, empty or not, ASCII or not, comes back as it was."""
        for reason in ("", "broken build", "d\u00e9fectueux \"quoted\"\n"):
            self.assertEqual(yank_reason(yank_body(reason)), reason)

    def test_body_is_json_bytes(self):
        """The body is UTF-8 bytes."""
        self.assertIsInstance(yank_body("x"), bytes)

    def test_unreadable(self):
        """An unreadable body, or one without a string reason, counts as no reason."""
        for body in (b"", b"not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"null",
                     b'{"reason": 5}', b'{"other": "x"}', b"[" * 100000):
            self.assertEqual(yank_reason(body), "", body[:20])


class ChangeTests(SynchronousTestCase):
    """L{Change} markers are named so that a listing finds them in time order."""

    def test_key(self):
        """The key is the time (zero-padded), the instance, the number and the filename."""
        change = Change(1767225600250, "abc123", 7, "a-1.0.tar.gz")
        self.assertEqual(change.key(Layout("p/")),
                         "p/.pypid/changes/01767225600250.abc123.7.a-1.0.tar.gz")

    def test_round_trip(self):
        """Parsing a marker's key gives back the change, dots in the filename included."""
        for layout in (Layout(), Layout("p/")):
            for change in (Change(1767225600250, "abc123", 7, "a-1.0.tar.gz"),
                           Change(0, "i", 0, "a.b.c-1.0-py3-none-any.whl")):
                self.assertEqual(Change.parse(layout, change.key(layout)), change)

    def test_marker_of_before(self):
        """
        A status marker of a server from before the journal (C{~} and the
        project, issue 45) parses as a marker of no intent.
        """
        layout = Layout("p/")
        change = Change.parse(layout, "p/.pypid/changes/01767225600250.abc123.7.~holy-grail")
        self.assertEqual(change, Change(1767225600250, "abc123", 7, "~holy-grail"))
        self.assertIsNone(change.intended)

    def test_intent_marker(self):
        """
        A change under way is named by C{?} and the filename (issue 61),
        which no filename begins with; a file's change names none.
        """
        layout = Layout("p/")
        change = Change(1767225600250, "abc123", 7, intent_subject("a-1.0.tar.gz"))
        key = change.key(layout)
        self.assertEqual(key, "p/.pypid/changes/01767225600250.abc123.7.?a-1.0.tar.gz")
        self.assertEqual(Change.parse(layout, key), change)
        self.assertEqual(change.intended, "a-1.0.tar.gz")
        self.assertIsNone(Change(1, "i", 2, "a-1.0.tar.gz").intended)
        self.assertIsNone(Change.parse(layout, "p/.pypid/changes/01767225600250.abc123.7.?"))

    def test_parse_refuses(self):
        """Keys that are not well-formed markers give L{None}."""
        layout = Layout("p/")
        prefix = layout.changes_prefix
        for key in ("p/a-1.0.tar.gz", "q/.pypid/changes/1.i.2.f", prefix, prefix + "1.i.2",
                    prefix + "x.i.2.f", prefix + "1.i.x.f", prefix + "1.i.2.",
                    prefix + ".i.2.f",
                    prefix + "-1.i.2.f", prefix + "\u00b2.i.2.f", prefix + "1.i.\u00b2.f",
                    prefix + "\u0661.i.2.f"):
            self.assertIsNone(Change.parse(layout, key), key)

    def test_keys_sort_by_time(self):
        """Keys sort in the order of their times, whatever the instance and number."""
        layout = Layout()
        changes = [Change(when, instance, number, "a-1.0.tar.gz")
                   for when, instance, number in ((5, "zz", 9), (40, "aa", 0), (1000, "mm", 3),
                                                  (1767225600250, "aa", 1),
                                                  (1767225600251, "00", 0))]
        keys = [c.key(layout) for c in changes]
        self.assertEqual(sorted(keys, key=lambda k: k.encode("utf-8")), keys)

    def test_changes_start_after(self):
        """The start key sorts before every marker at or after the time, after every one before."""
        layout = Layout("p/")
        t = 1767225600250
        before = [Change(when, instance, n, "a-1.0.tar.gz").key(layout)
                  for when in (0, 1, t - 1000, t - 1)
                  for instance, n in (("0", 0), ("abc", 5), ("ffffffffffff", 99))]
        after = [Change(when, instance, n, "a-1.0.tar.gz").key(layout)
                 for when in (t, t + 1, t + 10 ** 6)
                 for instance, n in (("0", 0), ("abc", 5), ("ffffffffffff", 99))]
        start = changes_start_after(layout, t).encode("utf-8")
        for key in before:
            self.assertLess(key.encode("utf-8"), start, key)
        for key in after:
            self.assertGreater(key.encode("utf-8"), start, key)

    def test_changes_start_after_zero(self):
        """From time zero (or before), the listing starts at the first marker."""
        layout = Layout()
        self.assertEqual(changes_start_after(layout, 0), layout.changes_prefix)
        self.assertEqual(changes_start_after(layout, -5), layout.changes_prefix)
        first = Change(0, "a", 0, "f").key(layout)
        self.assertGreater(first, changes_start_after(layout, 0))


# -- s3client: parsing ----------------------------------------------------------------


def list_xml(keys=(), prefixes=(), truncated=False, token=None, namespaced=True):
    """A C{ListObjectsV2} answer."""
    ns = f' xmlns="{S3_NS}"' if namespaced else ""
    parts = [f"<?xml version='1.0' encoding='UTF-8'?><ListBucketResult{ns}><Name>bkt</Name>"]
    for key, size in keys:
        parts.append(f"<Contents><Key>{key}</Key><LastModified>2026-01-01T00:00:00.000Z"
                     f"</LastModified><ETag>&quot;e-{key}&quot;</ETag><Size>{size}</Size>"
                     f"<StorageClass>STANDARD</StorageClass></Contents>")
    for prefix in prefixes:
        parts.append(f"<CommonPrefixes><Prefix>{prefix}</Prefix></CommonPrefixes>")
    parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if token is not None:
        parts.append(f"<NextContinuationToken>{token}</NextContinuationToken>")
    parts.append("</ListBucketResult>")
    return "".join(parts).encode("utf-8")


def error_xml(code, message):
    """An S3 error answer."""
    return (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
            f"<Message>{message}</Message><RequestId>r</RequestId></Error>").encode()


class ParseListTests(SynchronousTestCase):
    """L{parse_list} reads a listing page."""

    def test_contents(self):
        """Keys come with their size, unquoted ETag and time, in order."""
        page = parse_list(list_xml([("a/b.whl", 10), ("c d.tar.gz", 0)]))
        self.assertEqual(page.keys, (
            Listed("a/b.whl", 10, "e-a/b.whl", parse_iso_time("2026-01-01T00:00:00.000Z")),
            Listed("c d.tar.gz", 0, "e-c d.tar.gz", parse_iso_time("2026-01-01T00:00:00.000Z")),
        ))
        self.assertEqual(page.prefixes, ())
        self.assertIsNone(page.next_token)

    def test_common_prefixes(self):
        """Common prefixes are listed."""
        page = parse_list(list_xml(prefixes=["a/", "b/"]))
        self.assertEqual(page.prefixes, ("a/", "b/"))
        self.assertEqual(page.keys, ())

    def test_truncated(self):
        """A truncated page gives its continuation token."""
        page = parse_list(list_xml([("a", 1)], truncated=True, token="tok/en=="))
        self.assertEqual(page.next_token, "tok/en==")

    def test_token_without_truncation(self):
        """A token on a page that is not truncated is ignored."""
        self.assertIsNone(parse_list(list_xml([("a", 1)], token="t")).next_token)

    def test_not_namespaced(self):
        """A listing without S3's XML namespace is read the same."""
        body = list_xml([("a", 1), ("b", 2)], ["p/"], truncated=True, token="t",
                        namespaced=False)
        page = parse_list(body)
        self.assertEqual([k.key for k in page.keys], ["a", "b"])
        self.assertEqual([k.size for k in page.keys], [1, 2])
        self.assertEqual(page.prefixes, ("p/",))
        self.assertEqual(page.next_token, "t")

    def test_garbage(self):
        """An answer that is not XML is the store failing."""
        self.assertRaises(S3Unavailable, parse_list, b"<ListBucketResult")


class ParseErrorTests(SynchronousTestCase):
    """L{parse_error} reads an error answer."""

    def test_xml(self):
        """The code and message come from the XML body."""
        self.assertEqual(parse_error(409, error_xml("BucketNotEmpty", "it is not")),
                         ("BucketNotEmpty", "it is not"))

    def test_namespaced(self):
        """A namespaced error body is read too."""
        body = (f'<Error xmlns="{S3_NS}"><Code>SlowDown</Code>'
                f"<Message>slow</Message></Error>").encode()
        self.assertEqual(parse_error(503, body), ("SlowDown", "slow"))

    def test_empty_body(self):
        """Without a body (a HEAD), the code comes from the status."""
        self.assertEqual(parse_error(404, b""), ("NotFound", ""))
        self.assertEqual(parse_error(403, b""), ("AccessDenied", ""))
        self.assertEqual(parse_error(412, b""), ("PreconditionFailed", ""))
        self.assertEqual(parse_error(418, b""), ("418", ""))

    def test_garbage(self):
        """A body that is not XML gives the status's code."""
        self.assertEqual(parse_error(403, b"<html>nope"), ("AccessDenied", ""))
        self.assertEqual(parse_error(500, b"\xff\x00"), ("500", ""))

    def test_xml_without_code(self):
        """XML without a code gives the status as the code."""
        self.assertEqual(parse_error(400, b"<Error><Message>m</Message></Error>"), ("400", "m"))


class CompleteBodyTests(SynchronousTestCase):
    """L{complete_body} lists the parts of a multipart upload."""

    def test_parts_in_order(self):
        """The body is XML numbering the parts from 1, with their ETags, in order."""
        etags = ['"e1"', '"e2"', '"e3"']
        root = ET.fromstring(complete_body(etags))
        self.assertEqual(root.tag, f"{{{S3_NS}}}CompleteMultipartUpload")
        parts = root.findall(f"{{{S3_NS}}}Part")
        self.assertEqual(
            [(p.find(f"{{{S3_NS}}}PartNumber").text, p.find(f"{{{S3_NS}}}ETag").text)
             for p in parts],
            [("1", '"e1"'), ("2", '"e2"'), ("3", '"e3"')])

    def test_declaration(self):
        """The body is UTF-8 with an XML declaration."""
        body = complete_body(['"e"'])
        self.assertIsInstance(body, bytes)
        self.assertTrue(body.startswith(b"<?xml"))


# -- s3client: calls ------------------------------------------------------------------


class StaticCredentials:
    """A credential source that always has the same credentials."""

    def __init__(self, credentials=CREDENTIALS):
        self._credentials = credentials

    def current(self):
        """The credentials."""
        return self._credentials

    async def start(self):
        """Nothing to find."""

    def stop(self):
        """Nothing to refresh."""


Seen = namedtuple("Seen", "method uri headers body args")


class FakeS3(Resource):
    """
    Plays the store: records each request and answers from a script of
    C{(code, headers, body)}, or with a function of the request.
    """

    isLeaf = True

    def __init__(self, answers=(), answer=None):
        super().__init__()
        self.answers = list(answers)
        self.answer = answer
        self.seen = []

    def render(self, request):
        """Record the request and give the next answer."""
        headers = {name.decode("latin-1").lower(): values[0].decode("latin-1")
                   for name, values in request.requestHeaders.getAllRawHeaders()}
        seen = Seen(request.method.decode("ascii"), request.uri, headers,
                    request.content.read(), request.args)
        self.seen.append(seen)
        if self.answer is not None:
            code, head, body = self.answer(seen)
        else:
            code, head, body = self.answers.pop(0)
        request.setResponseCode(code)
        for name, value in head.items():
            request.setHeader(name, value)
        return body


class NeverAnswers:
    """A treq client whose requests never get an answer, noting cancellation."""

    def __init__(self):
        self.requests = []
        self.cancelled = []

    def request(self, method, url, **kw):
        """Record the request; return a Deferred that only cancelling ends."""
        self.requests.append((method, url, kw))
        return Deferred(lambda d: self.cancelled.append(url))


class S3ClientTests(SynchronousTestCase):
    """L{S3Client.call} and the calls made with it."""

    def setUp(self):
        fixed_time(self)
        self.clock = Clock()
        self.bucket = Bucket(ENDPOINT, "bkt", "eu-west-1")

    def client(self, resource=None, http=None, **kw):
        """A client of L{bucket} over C{resource} (behind StubTreq) or C{http}."""
        if http is None:
            self.stub = http = StubTreq(resource)
        return S3Client(self.bucket, StaticCredentials(), http, self.clock, run=run_now, **kw)

    def call(self, client, *args, **kw):
        """Start a call; return its Deferred."""
        return ensureDeferred(client.call(*args, **kw))

    def test_ok(self):
        """A 200 answer comes back with its body and lowercase headers."""
        store = FakeS3([(200, {"X-Amz-Meta-Sha256": "abc"}, b"the body")])
        response = self.successResultOf(self.call(self.client(store), "GET", "a.whl"))
        self.assertEqual(response.code, 200)
        self.assertEqual(response.body, b"the body")
        self.assertEqual(response.headers["x-amz-meta-sha256"], "abc")

    def test_request_signed(self):
        """The request goes to L{Bucket.url} with the signed headers."""
        store = FakeS3([(200, {}, b"")])
        key = "dir/a b+c~\u00e9.whl"
        params = [("prefix", "a/b"), ("list-type", "2")]
        self.successResultOf(self.call(self.client(store), "GET", key, params=params,
                                       headers={"if-none-match": "*"}))
        [seen] = store.seen
        url = urlsplit(self.bucket.url(key, params))
        self.assertEqual(seen.uri.decode("ascii"), f"{url.path}?{url.query}")
        self.assertEqual(seen.headers["host"], "s3.test:9000")
        expected = lower(sign(CREDENTIALS, "eu-west-1", "GET", self.bucket.url(key, params),
                              {"if-none-match": "*"}))
        self.assertEqual(seen.headers["authorization"], expected["authorization"])
        self.assertTrue(seen.headers["authorization"].startswith("AWS4-HMAC-SHA256 "))
        self.assertEqual(seen.headers["x-amz-date"], FIXED_AMZ_DATE)
        self.assertEqual(seen.headers["x-amz-content-sha256"], EMPTY_SHA256)
        self.assertEqual(seen.headers["if-none-match"], "*")

    def test_body_hashed(self):
        """A body is sent, and its SHA-256 is the payload hash signed."""
        store = FakeS3([(200, {}, b"")])
        self.successResultOf(self.call(self.client(store), "PUT", "k", body=b"payload"))
        [seen] = store.seen
        self.assertEqual(seen.method, "PUT")
        self.assertEqual(seen.body, b"payload")
        self.assertEqual(seen.headers["x-amz-content-sha256"],
                         hashlib.sha256(b"payload").hexdigest())

    def test_ok_statuses(self):
        """A status listed in C{ok} is an answer, not an error."""
        store = FakeS3([(404, {}, error_xml("NoSuchKey", "gone")), (204, {}, b"")])
        client = self.client(store)
        response = self.successResultOf(self.call(client, "GET", "k", ok=(200, 404)))
        self.assertEqual(response.code, 404)
        response = self.successResultOf(self.call(client, "DELETE", "k", ok=(204,)))
        self.assertEqual(response.code, 204)

    def test_client_error(self):
        """A 4xx is an L{S3Error} with the status and the code of its body, and is not retried."""
        store = FakeS3([(409, {}, error_xml("BucketNotEmpty", "still full"))] * 3)
        failure = self.failureResultOf(self.call(self.client(store), "DELETE", "k"), S3Error)
        self.assertEqual(failure.value.status, 409)
        self.assertEqual(failure.value.code, "BucketNotEmpty")
        self.assertIn("still full", str(failure.value))
        self.assertIsInstance(failure.value, StorageError)
        self.assertEqual(len(store.seen), 1)

    def test_server_error_retried(self):
        """A 5xx is retried after each of L{RETRY_DELAYS}, then is L{S3Unavailable}."""
        store = FakeS3([(503, {}, error_xml("SlowDown", "slow"))] * (len(RETRY_DELAYS) + 1))
        d = self.call(self.client(store), "GET", "k")
        self.assertEqual(len(store.seen), 1)
        for attempt, delay in enumerate(RETRY_DELAYS, 2):
            self.clock.advance(delay * 0.9)
            self.stub.flush()
            self.assertEqual(len(store.seen), attempt - 1)
            self.assertNoResult(d)
            self.clock.advance(delay * 0.1)
            self.stub.flush()
            self.assertEqual(len(store.seen), attempt)
        failure = self.failureResultOf(d, S3Unavailable)
        self.assertIn("503", str(failure.value))
        self.assertIn("SlowDown", str(failure.value))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_server_error_then_success(self):
        """A retry that succeeds is the answer."""
        store = FakeS3([(500, {}, b""), (200, {}, b"fine")])
        d = self.call(self.client(store), "GET", "k")
        self.clock.advance(RETRY_DELAYS[0])
        self.stub.flush()
        self.assertEqual(self.successResultOf(d).body, b"fine")

    def test_no_retry(self):
        """With C{retry=False}, a 5xx fails at once."""
        store = FakeS3([(500, {}, b"")])
        self.failureResultOf(self.call(self.client(store), "GET", "k", retry=False),
                             S3Unavailable)
        self.assertEqual(len(store.seen), 1)

    def test_body_too_long(self):
        """An answer longer than C{limit} is L{S3Unavailable}."""
        store = FakeS3([(200, {}, b"x" * 100)])
        failure = self.failureResultOf(
            self.call(self.client(store), "GET", "k", limit=10, retry=False), S3Unavailable)
        self.assertIn("10 bytes", str(failure.value))

    def test_body_at_limit(self):
        """An answer of exactly C{limit} bytes is read."""
        store = FakeS3([(200, {}, b"x" * 10)])
        response = self.successResultOf(self.call(self.client(store), "GET", "k", limit=10))
        self.assertEqual(response.body, b"x" * 10)

    def test_deadline(self):
        """A request that never answers is cancelled at the deadline: L{S3Unavailable}."""
        http = NeverAnswers()
        d = self.call(self.client(http=http, timeout=30.0), "GET", "k", retry=False)
        self.clock.advance(29.9)
        self.assertNoResult(d)
        self.assertEqual(http.cancelled, [])
        self.clock.advance(0.1)
        self.assertEqual(http.cancelled, [self.bucket.url("k")])
        failure = self.failureResultOf(d, S3Unavailable)
        self.assertIn("did not answer", str(failure.value))

    def test_deadline_retried(self):
        """A request that times out is retried like any failure of the store."""
        http = NeverAnswers()
        d = self.call(self.client(http=http, timeout=10.0), "GET", "k")
        self.clock.advance(10.0)
        self.clock.advance(RETRY_DELAYS[0])
        self.assertEqual(len(http.requests), 2)
        self.clock.advance(10.0)
        self.clock.advance(RETRY_DELAYS[1])
        self.clock.advance(10.0)
        self.assertEqual(len(http.requests), 3)
        self.failureResultOf(d, S3Unavailable)
        self.assertEqual(len(http.cancelled), 3)

    def test_deadline_grows_with_body(self):
        """A request with a body gets more time, in proportion to its size."""
        http = NeverAnswers()
        body = b"x" * (http_calls.MIN_RATE * 10)
        d = self.call(self.client(http=http, timeout=30.0), "PUT", "k", body=body,
                      retry=False)
        self.clock.advance(39.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, S3Unavailable)

    def test_unreachable(self):
        """A request that fails to connect is L{S3Unavailable}."""

        class Refused:
            """A treq client whose connections are all refused."""

            def request(self, method, url, **kw):
                """Fail at once, as a refused connection does."""
                return fail(ConnectionRefusedError("refused"))

        failure = self.failureResultOf(
            self.call(self.client(http=Refused()), "GET", "k", retry=False), S3Unavailable)
        self.assertIn("refused", str(failure.value))

    def test_head(self):
        """L{S3Client.head} gives the headers of an object, or L{None} when there is none."""
        store = FakeS3([(200, {"X-Amz-Meta-Sha256": "abc"}, b""), (404, {}, b"")])
        client = self.client(store)
        head = self.successResultOf(ensureDeferred(client.head("k")))
        self.assertEqual(head.metadata, {"sha256": "abc"})
        self.assertIsNone(self.successResultOf(ensureDeferred(client.head("k"))))
        self.assertEqual([s.method for s in store.seen], ["HEAD", "HEAD"])

    def test_put_if_none_match(self):
        """A conditional put sends If-None-Match and reports a 412 as not written."""
        store = FakeS3([(412, {}, error_xml("PreconditionFailed", "exists"))])
        written = self.successResultOf(ensureDeferred(
            self.client(store).put("k", b"data", if_none_match=True)))
        self.assertFalse(written)
        self.assertEqual(store.seen[0].headers["if-none-match"], "*")

    def test_list_follows_tokens(self):
        """L{S3Client.list} follows continuation tokens across pages."""
        pages = {
            None: list_xml([("p/a", 1), ("p/b", 2)], truncated=True, token="t/1="),
            "t/1=": list_xml([("p/c", 3)], truncated=True, token="t2"),
            "t2": list_xml([("p/d", 4)]),
        }

        def answer(seen):
            """The page the continuation token asks for."""
            token = seen.args.get(b"continuation-token", [None])[0]
            return 200, {}, pages[token.decode("ascii") if token else None]

        store = FakeS3(answer=answer)
        client = self.client(store)

        async def collect():
            """Every key of every page."""
            keys = []
            async for page in client.list("p/", start_after="p/0"):
                keys.extend(item.key for item in page.keys)
            return keys

        keys = self.successResultOf(ensureDeferred(collect()))
        self.assertEqual(keys, ["p/a", "p/b", "p/c", "p/d"])
        self.assertEqual(len(store.seen), 3)
        first, second, third = (seen.args for seen in store.seen)
        self.assertEqual(first[b"prefix"], [b"p/"])
        self.assertEqual(first[b"list-type"], [b"2"])
        self.assertEqual(first[b"start-after"], [b"p/0"])
        self.assertNotIn(b"continuation-token", first)
        self.assertEqual(second[b"continuation-token"], [b"t/1="])
        self.assertNotIn(b"start-after", second)
        self.assertEqual(third[b"continuation-token"], [b"t2"])


# -- s3client: FileRangeProducer -------------------------------------------------------


class Consumer:
    """A consumer that collects what it is written, and may act on each write."""

    def __init__(self, on_write=None):
        self.writes = []
        self.on_write = on_write

    def write(self, data):
        """Collect C{data}."""
        self.writes.append(data)
        if self.on_write is not None:
            self.on_write(self)

    @property
    def data(self):
        """Everything written so far."""
        return b"".join(self.writes)


class FileRangeProducerTests(SynchronousTestCase):
    """L{FileRangeProducer} streams a range of a file at the consumer's pace."""

    def setUp(self):
        self.content = bytes(range(256)) * 8
        self.path = write_file(os.path.join(self.mktemp(), "file.bin"), self.content)

    def test_range(self):
        """Exactly C{length} bytes from C{offset} are written, a chunk at most at a time."""
        producer = FileRangeProducer(self.path, 100, 1000, run_now, chunk=64)
        self.assertEqual(producer.length, 1000)
        consumer = Consumer()
        self.successResultOf(producer.startProducing(consumer))
        self.assertEqual(consumer.data, self.content[100:1100])
        self.assertTrue(all(len(w) <= 64 for w in consumer.writes))
        self.assertEqual(len(consumer.writes), 16)

    def test_whole_file(self):
        """A range covering the whole file sends it all."""
        producer = FileRangeProducer(self.path, 0, len(self.content), run_now)
        consumer = Consumer()
        self.successResultOf(producer.startProducing(consumer))
        self.assertEqual(consumer.data, self.content)

    def test_file_too_short(self):
        """A file shorter than the range fails the production."""
        producer = FileRangeProducer(self.path, len(self.content) - 10, 20, run_now)
        consumer = Consumer()
        self.failureResultOf(producer.startProducing(consumer), StorageError)
        self.assertEqual(consumer.data, self.content[-10:])

    def test_pause_resume(self):
        """While paused, nothing is written; resuming goes on where it stopped."""
        producer = FileRangeProducer(self.path, 0, 256, run_now, chunk=64)
        consumer = Consumer(on_write=lambda c: producer.pauseProducing())
        d = producer.startProducing(consumer)
        self.assertEqual(consumer.data, self.content[:64])
        self.assertNoResult(d)
        producer.pauseProducing()
        self.assertEqual(len(consumer.writes), 1)
        consumer.on_write = None
        producer.resumeProducing()
        self.successResultOf(d)
        self.assertEqual(consumer.data, self.content[:256])

    def test_stop(self):
        """Once stopped, nothing more is written and the Deferred never fires."""
        producer = FileRangeProducer(self.path, 0, 256, run_now, chunk=64)
        consumer = Consumer(on_write=lambda c: producer.stopProducing())
        d = producer.startProducing(consumer)
        self.assertEqual(consumer.data, self.content[:64])
        self.assertNoResult(d)

    def test_stop_while_paused(self):
        """Stopping a paused producer ends it without writing more."""
        producer = FileRangeProducer(self.path, 0, 256, run_now, chunk=64)
        consumer = Consumer(on_write=lambda c: producer.pauseProducing())
        d = producer.startProducing(consumer)
        producer.stopProducing()
        self.assertEqual(len(consumer.writes), 1)
        self.assertNoResult(d)

    def test_stop_during_read(self):
        """Data read after the producer was stopped is not written."""
        run = QueuedRun()
        producer = FileRangeProducer(self.path, 0, 256, run, chunk=64)
        consumer = Consumer()
        d = producer.startProducing(consumer)
        run.run()  # open
        run.run()  # seek
        self.assertEqual(len(run.pending), 1)  # the first read
        producer.stopProducing()
        run.run_all()
        self.assertEqual(consumer.writes, [])
        self.assertNoResult(d)

    def test_closes_file(self):
        """The file is closed once sent, and once stopped."""
        opened = []

        def run(f, *args):
            """Run C{f} now, keeping the files it opens."""
            result = f(*args)
            if f is open:
                opened.append(result)
            return run_now(lambda: result)

        producer = FileRangeProducer(self.path, 0, 10, run)
        self.successResultOf(producer.startProducing(Consumer()))
        producer = FileRangeProducer(self.path, 0, 256, run, chunk=64)
        producer.startProducing(Consumer(on_write=lambda c: producer.stopProducing()))
        self.assertEqual(len(opened), 2)
        self.assertTrue(all(f.closed for f in opened))


# -- s3credentials --------------------------------------------------------------------


Frozen = namedtuple("Frozen", "access_key secret_key token")


class FakeResolved:
    """botocore's refreshable credentials, as far as L{CredentialSource} uses them."""

    def __init__(self, access_key, expiry):
        self.access_key = access_key
        self._expiry_time = expiry
        self.error = None
        self.calls = 0

    def get_frozen_credentials(self):
        """The keys as they are now (or the error set)."""
        self.calls += 1
        if self.error is not None:
            raise self.error
        return Frozen(self.access_key, "secret-" + self.access_key, "token-" + self.access_key)


def utc(seconds):
    """A tz-aware datetime of POSIX time C{seconds}."""
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


class CredentialSourceTests(SynchronousTestCase):
    """L{CredentialSource} gives the credentials to sign with, kept fresh."""

    start_time = 1_767_225_600

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(self.start_time)

    def source(self, resolved, run=run_now):
        """A chain source resolving to C{resolved}."""
        return CredentialSource(None, run, self.clock, resolve=lambda: resolved)

    def start(self, source):
        """Start C{source}; return the Deferred."""
        return ensureDeferred(source.start())

    def test_static(self):
        """Configured credentials are used as they are, and never refreshed."""
        static = Credentials("AK", "SK")
        source = CredentialSource(static, run_now, self.clock,
                                  resolve=lambda: self.fail("resolved"))
        self.assertIs(source.current(), static)
        self.successResultOf(self.start(source))
        self.assertIs(source.current(), static)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_not_started(self):
        """Chain credentials are not there before the source is started."""
        source = self.source(FakeResolved("AK1", None))
        self.assertRaises(StorageError, source.current)

    def test_chain(self):
        """The chain's keys and expiry become the current credentials."""
        expiry = self.start_time + 3600
        source = self.source(FakeResolved("AK1", utc(expiry)))
        self.successResultOf(self.start(source))
        current = source.current()
        self.assertEqual((current.access_key, current.secret_key, current.token),
                         ("AK1", "secret-AK1", "token-AK1"))
        self.assertEqual(current.expiry, expiry)

    def test_chain_not_expiring(self):
        """Credentials that do not expire are not refreshed."""
        source = self.source(FakeResolved("AK1", None))
        self.successResultOf(self.start(source))
        self.assertIsNone(source.current().expiry)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_refresh_ahead(self):
        """A refresh is due L{REFRESH_AHEAD} before expiry, and picks up new keys."""
        expiry = self.start_time + 3600
        resolved = FakeResolved("AK1", utc(expiry))
        source = self.source(resolved)
        self.successResultOf(self.start(source))
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), expiry - REFRESH_AHEAD)
        resolved.access_key = "AK2"
        resolved._expiry_time = utc(expiry + 3600)
        self.clock.advance(3600 - REFRESH_AHEAD - 1)
        self.assertEqual(source.current().access_key, "AK1")
        self.clock.advance(1)
        self.assertEqual(source.current().access_key, "AK2")
        self.assertEqual(source.current().expiry, expiry + 3600)
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), expiry + 3600 - REFRESH_AHEAD)

    def test_refresh_soon(self):
        """Credentials about to expire are refreshed no sooner than 30 s later."""
        resolved = FakeResolved("AK1", utc(self.start_time + 60))
        source = self.source(resolved)
        self.successResultOf(self.start(source))
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), self.start_time + 30)

    def test_refresh_fails(self):
        """A failed refresh is logged, keeps the old credentials, and is retried 30 s later."""
        expiry = self.start_time + 3600
        resolved = FakeResolved("AK1", utc(expiry))
        source = self.source(resolved)
        self.successResultOf(self.start(source))
        resolved.error = OSError("metadata service down")
        with capturedLogs() as events:
            self.clock.advance(3600 - REFRESH_AHEAD)
        [event] = [e for e in events if e.get("log_level") == LogLevel.warn]
        self.assertIn("metadata service down", formatEvent(event))
        self.assertNotIn("secret", formatEvent(event))
        self.assertEqual(source.current().access_key, "AK1")
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), self.clock.seconds() + 30)
        resolved.error = None
        resolved.access_key = "AK2"
        resolved._expiry_time = utc(expiry + 3600)
        self.clock.advance(30)
        self.assertEqual(source.current().access_key, "AK2")

    def test_none(self):
        """A chain that finds nothing is a L{StorageError} about credentials."""
        failure = self.failureResultOf(self.start(self.source(None)), StorageError)
        self.assertIn("credentials", str(failure.value))

    def test_resolved_in_run(self):
        """Resolving and reading the chain happen through C{run}, off the reactor."""
        run = QueuedRun()
        resolved = FakeResolved("AK1", None)
        d = self.start(self.source(resolved, run))
        self.assertNoResult(d)
        run.run()
        self.assertEqual(resolved.calls, 0)
        self.assertNoResult(d)
        run.run()
        self.assertEqual(resolved.calls, 1)
        self.successResultOf(d)

    def test_stop(self):
        """Stopping cancels the refresh timer."""
        source = self.source(FakeResolved("AK1", utc(self.start_time + 3600)))
        self.successResultOf(self.start(source))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        source.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        source.stop()

    def test_stop_during_refresh(self):
        """A refresh under way when the source stops schedules no further refresh."""
        run = QueuedRun()
        resolved = FakeResolved("AK1", utc(self.start_time + 3600))
        source = self.source(resolved, run)
        d = self.start(source)
        run.run_all()
        self.successResultOf(d)
        self.clock.advance(3600 - REFRESH_AHEAD)
        self.assertEqual(len(run.pending), 1)
        source.stop()
        run.run_all()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_during_failing_refresh(self):
        """A refresh that fails after the source stopped is not retried."""
        run = QueuedRun()
        resolved = FakeResolved("AK1", utc(self.start_time + 3600))
        source = self.source(resolved, run)
        d = self.start(source)
        run.run_all()
        self.successResultOf(d)
        self.clock.advance(3600 - REFRESH_AHEAD)
        resolved.error = OSError("down")
        source.stop()
        with capturedLogs():
            run.run_all()
        self.assertEqual(self.clock.getDelayedCalls(), [])



# -- the paced full check ------------------------------------------------------------


def run_clock(clock, limit=3600.0):
    """
    Advance C{clock} to each of its timers in turn (exactly, so that the
    times seen are those scheduled) until none is left before C{limit}
    seconds from now.
    """
    end = clock.seconds() + limit
    while clock.getDelayedCalls():
        due = min(call.getTime() for call in clock.getDelayedCalls())
        if due > end:
            return
        clock.advance(max(due - clock.seconds(), 0.0))


class PacerTests(SynchronousTestCase):
    """L{Pacer} spaces requests on the injected clock."""

    def fired_at(self, clock, waits):
        """The clock times at which C{waits} fire."""
        times = []
        for d in waits:
            d.addCallback(lambda _: times.append(clock.seconds()))
        run_clock(clock)
        return times

    def test_spaced(self):
        """N requests asked for at once start 1/rate apart: N take (N - 1)/rate seconds."""
        clock = Clock()
        pacer = Pacer(clock, 4.0)
        times = self.fired_at(clock, [pacer.wait() for _ in range(9)])
        self.assertEqual(len(times), 9)
        self.assertEqual(times[0], 0.0)
        for before, after in pairwise(times):
            self.assertGreaterEqual(after - before, 0.25 - 1e-9)
        self.assertGreaterEqual(times[-1] - times[0], (9 - 1) / 4.0 - 1e-9)

    def test_no_burst_after_a_pause(self):
        """A pause saves up no slots: after it, the next requests are spaced again."""
        clock = Clock()
        pacer = Pacer(clock, 10.0)
        self.successResultOf(pacer.wait())
        clock.advance(60)
        times = self.fired_at(clock, [pacer.wait() for _ in range(3)])
        self.assertEqual([round(t - 60, 9) for t in times], [0.0, 0.1, 0.2])

    def test_no_cap(self):
        """A rate of 0 makes nobody wait, and schedules nothing."""
        clock = Clock()
        pacer = Pacer(clock, 0)
        for _ in range(100):
            self.successResultOf(pacer.wait())
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_cancel(self):
        """Cancelling a wait (a stopped check) cancels its timer."""
        clock = Clock()
        pacer = Pacer(clock, 1.0)
        self.successResultOf(pacer.wait())
        waiting = pacer.wait()
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(clock.getDelayedCalls(), [])


def _wheel(i):
    return f"p{i}-1.0-py3-none-any.whl"


class ListedBucket:
    """
    A FakeS3 answer: a bucket of C{count} pypid files under C{pkgs/}, listed
    C{page} keys at a time, each object describing itself (HEAD); notes the
    clock time of every request.
    """

    def __init__(self, clock, count, page=2):
        self.clock = clock
        self.names = [_wheel(i) for i in range(count)]
        self.page = page
        self.times = []

    def __call__(self, seen):
        self.times.append(self.clock.seconds())
        path = urlsplit(seen.uri.decode("ascii")).path
        if seen.method == "HEAD":
            filename = path.rsplit("/", 1)[1]
            record = make_record(filename=filename, name=filename.split("-")[0],
                                 project=filename.split("-")[0], path=filename, size=1)
            return 200, dict({"x-amz-meta-" + name: value
                              for name, value in user_metadata(record).items()},
                             **{"content-length": "1"}), b""
        prefix = seen.args[b"prefix"][0].decode()
        if prefix != "pkgs/":
            return 200, {}, list_xml()
        token = seen.args.get(b"continuation-token", [b"0"])[0]
        start = int(token)
        keys = [("pkgs/" + name, 1) for name in self.names[start:start + self.page]]
        more = start + self.page < len(self.names)
        return 200, {}, list_xml(keys, truncated=more,
                                 token=str(start + self.page) if more else None)


class PacedCheckTests(SynchronousTestCase):
    """The background full check keeps to C{check_rate}; nothing else waits for it."""

    def setUp(self):
        self.clock = Clock()

    def client(self, store):
        return S3Client(Bucket(ENDPOINT, "bkt", "eu-west-1"), StaticCredentials(),
                        StubTreq(store), self.clock, run=run_now)

    def test_paced_listing(self):
        """
        A listing through a L{PacedStore} asks for its pages no faster than
        the rate, while a call made directly meanwhile (an upload's, a
        download's) is answered at once.
        """
        bucket = ListedBucket(self.clock, 10, page=1)
        store = FakeS3(answer=bucket)
        client = self.client(store)
        paced = PacedStore(client, Pacer(self.clock, 5.0))

        async def listing():
            return [key.key async for page in paced.list("pkgs/") for key in page.keys]
        d = ensureDeferred(listing())
        self.assertNoResult(d)
        self.assertEqual(len(store.seen), 1)
        # (an answer with no clock advance: it was not queued behind the check)
        self.successResultOf(ensureDeferred(client.head("pkgs/" + _wheel(0))))
        self.assertEqual(len(store.seen), 2)
        run_clock(self.clock)
        self.assertEqual(self.successResultOf(d), ["pkgs/" + name for name in bucket.names])
        pages = [t for t, seen in zip(bucket.times, store.seen, strict=True) if seen.method == "GET"]
        self.assertEqual(len(pages), 10)
        self.assertGreaterEqual(pages[-1] - pages[0], (10 - 1) / 5.0 - 1e-9)

    def storage(self, store, rate):
        storage = BucketStorage(self.client(store), Layout("pkgs/"), run_now,
                                self.clock, self.mktemp(), BucketSettings(check_rate=rate))
        # (where it read the journal up to, as a start learns it: only the
        # files are listed here)
        storage.resume(1)
        return storage

    def test_reconcile_paced(self):
        """
        A full check that must read every object (nothing known) makes
        its listings and per-object reads no faster than C{check_rate} on
        the storage's clock, and finds every file.
        """
        bucket = ListedBucket(self.clock, 6)
        store = FakeS3(answer=bucket)
        storage = self.storage(store, 4.0)
        d = storage.reconcile({}, ())
        self.assertNoResult(d)
        run_clock(self.clock)
        result = self.successResultOf(d)
        self.assertEqual(sorted(result.records), sorted(bucket.names))
        methods = [seen.method for seen in store.seen]
        # deleted/, yanked/, binned/ (issue 29), then three pages of files,
        # then a HEAD per file, then promoted/ (issue 26: the promotions of
        # the files listed), then projects/ (issue 45: the statuses, after
        # the files)
        self.assertEqual(methods, ["GET"] * 6 + ["HEAD"] * 6 + ["GET"] * 2)
        self.assertEqual(urlsplit(store.seen[-1].uri.decode("ascii")).query.count("projects"), 1)
        self.assertEqual(result.statuses, {})
        for before, after in pairwise(bucket.times):
            self.assertGreaterEqual(after - before, 0.25 - 1e-9)
        self.assertGreaterEqual(bucket.times[-1] - bucket.times[0], (14 - 1) / 4.0 - 1e-9)

    def test_reconcile_unpaced(self):
        """C{check_rate} 0: the same check runs at once, on no clock time."""
        bucket = ListedBucket(self.clock, 6)
        store = FakeS3(answer=bucket)
        result = self.successResultOf(self.storage(store, 0).reconcile({}, ()))
        self.assertEqual(len(result.records), 6)
        self.assertEqual(set(bucket.times), {0.0})

    def test_scan_at_start_unpaced(self):
        """A scan at start-up (the server is not answering yet) is never paced."""
        bucket = ListedBucket(self.clock, 6)
        store = FakeS3(answer=bucket)
        result = self.successResultOf(self.storage(store, 1.0).scan({}, 0.0))
        self.assertEqual(len(result.records), 6)
        self.assertEqual(set(bucket.times), {0.0})

    def test_stop_during_check(self):
        """A check cancelled while it waits for its turn leaves no timer behind."""
        bucket = ListedBucket(self.clock, 6)
        storage = self.storage(FakeS3(answer=bucket), 1.0)
        d = storage.reconcile({}, ())
        self.assertNoResult(d)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class CheckRateConfigTests(SynchronousTestCase):
    """C{[s3] check_rate}: requests a second, 0 for no cap, refused clearly otherwise."""

    def load(self, text):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[s3]\n" + text)
        return load_config(path).stores["s3"]

    def test_default(self):
        """Unset, the check makes at most L{CHECK_RATE} (10) requests a second."""
        self.assertEqual(self.load("").check_rate, CHECK_RATE)
        self.assertEqual(CHECK_RATE, 10.0)

    def test_values(self):
        """Whole and decimal numbers, and 0 (no cap), are taken."""
        for text, rate in (("25", 25.0), ("2.5", 2.5), ("0", 0.0), (" 5000 ", 5000.0)):
            self.assertEqual(self.load(f"check_rate = {text}\n").check_rate, rate, text)

    def test_refused(self):
        """A negative, huge or non-numeric rate is refused, naming the key."""
        for text in ("-1", "5001", "fast", "nan", "inf", "10/s"):
            with self.assertRaises(ConfigError) as caught:
                self.load(f"check_rate = {text}\n")
            message = str(caught.exception)
            self.assertIn("[s3] check_rate: expected a number of requests a second", message)
            self.assertNotIn("Traceback", message)


class CollaboratorKeyTests(SynchronousTestCase):
    """The keys the storage's collaborators keep their objects under."""

    def test_small_object_keys(self):
        """Usage records, statuses, journals and probes are under C{.pypid/}, after the prefix."""
        layout = Layout("pkgs/")
        self.assertEqual(layout.usage_prefix, "pkgs/.pypid/usage/")
        self.assertEqual(layout.statuses_prefix, "pkgs/.pypid/projects/")
        self.assertEqual(layout.journal_key("j1"), "pkgs/.pypid/promotions/j1")
        self.assertEqual(layout.probe_key("abc"), "pkgs/.pypid/probe/abc")

    def test_provenance_keys(self):
        """A record's provenance key is the one its digest names; none without one."""
        layout = Layout("pkgs/")
        record = make_record(provenance_sha256="e" * 64)
        self.assertEqual(layout.provenance_keys(record),
                         (layout.provenance_key(record.filename, "e" * 64),))
        self.assertEqual(layout.provenance_keys(make_record()), ())


class CopySourcesTests(SynchronousTestCase):
    """L{CopySources}: what a promotion copies, named in the source's bucket."""

    def test_objects_of_a_record(self):
        """Each object of the file is named by its key in the source's prefix and bucket."""
        client = S3Client(Bucket("http://s3.test", "b", "us-east-1"), StaticCredentials(), None,
                          Clock(), run=run_now)
        layout = Layout("staging/")
        record = make_record(provenance_sha256="e" * 64)
        sources = CopySources.of(client, layout, record)

        def ref(key):
            return ObjectRef("http://s3.test", "b", key)
        self.assertEqual(sources.file, ref(layout.file_key(record.path)))
        self.assertEqual(sources.metadata, ref(layout.metadata_key(record.path)))
        self.assertEqual(sources.details, ref(layout.details_key(record.filename)))
        self.assertEqual(sources.provenance,
                         ref(layout.provenance_key(record.filename, "e" * 64)))

    def test_no_provenance(self):
        """A record naming no provenance has no provenance to copy."""
        client = S3Client(Bucket("http://s3.test", "b", "us-east-1"), StaticCredentials(), None,
                          Clock(), run=run_now)
        sources = CopySources.of(client, Layout(), make_record())
        self.assertIsNone(sources.provenance)


class PendingWritesTests(SynchronousTestCase):
    """L{PendingWrites}: what a clean stop waits for."""

    def test_settle_waits_for_both_kinds(self):
        """L{PendingWrites.settle} fires once every write run or tracked is done."""
        pending = PendingWrites()
        ran, tracked = Deferred(), Deferred()

        async def write():
            await ran
        pending.run(write())
        pending.track(tracked)
        settled = pending.settle()
        self.assertNoResult(settled)
        ran.callback(None)
        self.assertNoResult(settled)
        tracked.callback("done")
        self.successResultOf(settled)
        # (and a later stop waits for nothing)
        self.successResultOf(pending.settle())

    def test_track_passes_the_result_on(self):
        """A tracked write's failure reaches its caller; a run one's does not."""
        pending = PendingWrites()
        failed = pending.track(fail(StorageError("S3 failed")))
        self.failureResultOf(failed, StorageError)

        async def failing():
            raise StorageError("S3 failed")
        self.assertIsNone(self.successResultOf(pending.run(failing())))


class _SmallObjects:
    """A bucket of small objects, for the collaborators that keep them."""

    def __init__(self, refuse=False):
        self.objects = {}
        self.refuse = refuse

    async def put(self, key, body, content_type="application/octet-stream", metadata=None,
                  if_none_match=False):
        if self.refuse:
            raise StorageError("S3 failed: 503 SlowDown")
        self.objects[key] = body
        return True

    async def delete(self, key):
        self.objects.pop(key, None)

    async def get(self, key, limit=1 << 20, expect=0):
        return self.objects.get(key)

    async def list(self, prefix, start_after=None, delimiter=None):
        yield ListPage(tuple(Listed(key, len(data), "e", 0.0)
                             for key, data in sorted(self.objects.items())
                             if key.startswith(prefix)), (), None)


class _Told:
    """Bucket changes that record what is told."""

    def __init__(self):
        self.told = []

    def tell(self, *filenames):
        self.told.extend(filenames)
        return succeed(None)


class JournalObjectsTests(SynchronousTestCase):
    """L{JournalObjects}: a promotion's journal holds its files' markers back until dropped."""

    def journal(self, *filenames):
        """The bytes of the journal C{j1} of a promotion of C{filenames}."""
        return PromotionJournal("j1", "staging", tuple(
            make_record(filename=name, path=name) for name in filenames)).to_bytes()

    def test_held_until_dropped(self):
        """The files a kept journal names are held back, then told, sorted, at its drop."""
        bucket, changes = _SmallObjects(), _Told()
        journals = JournalObjects(bucket, Layout("p/"), changes)
        data = self.journal("b-1.0.tar.gz", "a-1.0.tar.gz")
        self.successResultOf(ensureDeferred(journals.keep("j1", data)))
        self.assertTrue(journals.holds("a-1.0.tar.gz"))
        self.assertFalse(journals.holds("c-1.0.tar.gz"))
        self.assertEqual(self.successResultOf(ensureDeferred(journals.all())), {"j1": data})
        self.successResultOf(ensureDeferred(journals.drop("j1")))
        self.assertEqual(changes.told, ["a-1.0.tar.gz", "b-1.0.tar.gz"])
        self.assertFalse(journals.holds("a-1.0.tar.gz"))
        self.assertEqual(self.successResultOf(ensureDeferred(journals.all())), {})

    def test_failed_keep_holds_nothing(self):
        """A journal that could not be written holds no marker back."""
        journals = JournalObjects(_SmallObjects(refuse=True), Layout(), _Told())
        self.failureResultOf(ensureDeferred(journals.keep("j1", self.journal("a-1.0.tar.gz"))),
                             StorageError)
        self.assertFalse(journals.holds("a-1.0.tar.gz"))

    def test_unreadable_journal_holds_nothing(self):
        """Bytes that are no journal are kept, and hold no name back."""
        bucket = _SmallObjects()
        journals = JournalObjects(bucket, Layout(), _Told())
        self.successResultOf(ensureDeferred(journals.keep("j1", b"not json")))
        self.assertEqual(bucket.objects, {".pypid/promotions/j1": b"not json"})
        self.assertFalse(journals.holds("j1"))
