"""
Making a missing bucket (C{pypid-admin storage init}): the requests each
cloud's client sends to make it private, and what
L{pypid.storage.bucket.http_calls.StoreClient.ensure} makes of the
store's answers (made, there already, another's, refused). A small
in-memory store behind treq's StubTreq answers from a script and records
every request.
"""

import base64
import hashlib
import json
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pypid.storage.azure.blob_auth import AccountKey
from pypid.storage.azure.blob_calls import AzureClient
from pypid.storage.azure.shared_key import API_VERSION
from pypid.storage.base.interface import StorageError
from pypid.storage.bucket.store import Creation
from pypid.storage.gcs.object_calls import GCSClient
from pypid.storage.s3.api import S3Client
from pypid.storage.s3.sign import Bucket, Credentials
from pypid.storage.s3.wire import PUBLIC_ACCESS_BLOCKS
from tests.harness.azurite import ACCOUNT, KEY
from tests.harness.fakes import run_now

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

#: An empty listing, as each store answers one of a bucket that exists.
S3_LISTING = (200, {}, b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>")
AZURE_LISTING = (200, {}, b"<EnumerationResults><Blobs/></EnumerationResults>")
GCS_LISTING = (200, {"content-type": "application/json"}, b'{"kind": "storage#objects"}')


def s3_error(status, code):
    return status, {"content-type": "application/xml"}, (
        f"<Error><Code>{code}</Code><Message>{code}.</Message></Error>".encode())


def azure_error(status, code):
    return status, {"x-ms-error-code": code}, (
        f"<Error><Code>{code}</Code><Message>{code}.</Message></Error>".encode())


def gcs_error(status, reason):
    return status, {"content-type": "application/json"}, json.dumps(
        {"error": {"code": status, "message": reason,
                   "errors": [{"reason": reason}]}}).encode()


class ScriptedStore(Resource):
    """Answers each request from a script of C{(code, headers, body)}; records what it got."""

    isLeaf = True

    def __init__(self, *answers):
        super().__init__()
        self.answers = list(answers)
        self.seen = []

    def render(self, request):
        parts = urlsplit(request.uri.decode())
        self.seen.append({
            "method": request.method.decode(), "path": parts.path,
            "query": parse_qs(parts.query, keep_blank_values=True),
            "headers": {name.decode().lower(): values[0].decode() for name, values
                        in request.requestHeaders.getAllRawHeaders()},
            "body": request.content.read()})
        code, headers, body = self.answers.pop(0)
        request.setResponseCode(code)
        for name, value in headers.items():
            request.setHeader(name, value)
        return body

    def asked(self):
        """C{(method, path)} of each request, in order."""
        return [(seen["method"], seen["path"]) for seen in self.seen]


class _Credentials:
    """Credentials that need no finding: S3's keys, GCS's token."""

    def current(self):
        return Credentials("AKIDEXAMPLE", "secret")

    def authorize(self, headers):
        headers["authorization"] = "Bearer t"

    async def start(self):
        pass

    def stop(self):
        pass


class _Case(SynchronousTestCase):

    def ensure(self, client, create, prefix="packages/"):
        """What C{client.ensure} gives (its result, or its failure's line)."""
        d = ensureDeferred(client.ensure(prefix, create))
        results = []
        d.addBoth(results.append)
        self.assertEqual(len(results), 1, "not done without the clock")
        return results[0]

    def refused(self, client, create):
        """The line of the L{StorageError} C{ensure} fails with."""
        failure = self.ensure(client, create)
        self.assertFalse(isinstance(failure, Creation), failure)
        failure.trap(StorageError)
        return str(failure.value)


class S3Tests(_Case):
    """S3: C{CreateBucket} in the region, ACLs disabled, then Block Public Access."""

    def client(self, store, region="us-east-1"):
        return S3Client(Bucket("http://s3.test", "bkt", region), _Credentials(),
                        StubTreq(store), Clock(), run=run_now)

    def test_made_private(self):
        """
        A bucket the store says does not exist is made, its objects the
        owner's, then its four Block Public Access settings turned on,
        with the body's MD5 as S3 requires.
        """
        store = ScriptedStore(s3_error(404, "NoSuchBucket"), (200, {}, b""), (200, {}, b""))
        client = self.client(store)
        made = self.ensure(client, client.create_bucket)
        self.assertEqual(made, Creation(True, "in us-east-1",
                                        "Block Public Access on, ACLs disabled"))
        self.assertEqual(store.asked(), [("GET", "/bkt/"), ("PUT", "/bkt/"), ("PUT", "/bkt/")])
        create, block = store.seen[1:]
        self.assertEqual(create["query"], {})
        self.assertEqual(create["body"], b"")
        self.assertEqual(create["headers"]["x-amz-object-ownership"], "BucketOwnerEnforced")
        self.assertIn("x-amz-object-ownership", create["headers"]["authorization"])
        self.assertEqual(block["query"], {"publicAccessBlock": [""]})
        root = ET.fromstring(block["body"])
        self.assertEqual(root.tag, f"{S3_NS}PublicAccessBlockConfiguration")
        self.assertEqual({child.tag.removeprefix(S3_NS): child.text for child in root},
                         dict.fromkeys(PUBLIC_ACCESS_BLOCKS, "true"))
        self.assertEqual(len(PUBLIC_ACCESS_BLOCKS), 4)
        self.assertEqual(block["headers"]["content-md5"],
                         base64.b64encode(hashlib.md5(block["body"]).digest()).decode())

    def test_region(self):
        """Outside us-east-1 the bucket is made in the client's region (LocationConstraint)."""
        store = ScriptedStore(s3_error(404, "NoSuchBucket"), (200, {}, b""), (200, {}, b""))
        client = self.client(store, "eu-west-3")
        made = self.ensure(client, client.create_bucket)
        self.assertEqual(made.where, "in eu-west-3")
        root = ET.fromstring(store.seen[1]["body"])
        self.assertEqual(root.tag, f"{S3_NS}CreateBucketConfiguration")
        self.assertEqual(root.find(f"{S3_NS}LocationConstraint").text, "eu-west-3")

    def test_exists(self):
        """A bucket that answers is left as it is: one listing, nothing made."""
        store = ScriptedStore(S3_LISTING)
        client = self.client(store)
        self.assertEqual(self.ensure(client, client.create_bucket), Creation(False))
        self.assertEqual(len(store.seen), 1)
        self.assertEqual(store.seen[0]["query"]["prefix"], ["packages/"])

    def test_made_meanwhile(self):
        """Made by another since it was found missing: there, since it answers now."""
        store = ScriptedStore(s3_error(404, "NoSuchBucket"),
                              s3_error(409, "BucketAlreadyOwnedByYou"), S3_LISTING)
        client = self.client(store)
        self.assertEqual(self.ensure(client, client.create_bucket), Creation(False))
        self.assertEqual(store.asked(), [("GET", "/bkt/"), ("PUT", "/bkt/"), ("GET", "/bkt/")])

    def test_taken(self):
        """A name another account holds is an error that says so."""
        store = ScriptedStore(s3_error(403, "AccessDenied"), s3_error(409, "BucketAlreadyExists"))
        client = self.client(store)
        self.assertEqual(self.refused(client, client.create_bucket),
                         "the bucket name bkt is taken by another account (a bucket's name is "
                         "unique across every account of the store): choose another name")

    def test_ours_out_of_reach(self):
        """
        A bucket of ours the credentials may not list (refused, then
        BucketAlreadyOwnedByYou) is not one the server could use.
        """
        store = ScriptedStore(s3_error(403, "AccessDenied"),
                              s3_error(409, "BucketAlreadyOwnedByYou"))
        client = self.client(store)
        line = self.refused(client, client.create_bucket)
        self.assertTrue(line.startswith("the bucket bkt is taken: there is one of that name, "
                                        "which these credentials may not list (AccessDenied)"),
                        line)

    def test_refused(self):
        """Credentials that may neither list nor create: the refusal of the listing."""
        store = ScriptedStore(s3_error(403, "AccessDenied"), s3_error(403, "AccessDenied"))
        client = self.client(store)
        line = self.refused(client, client.create_bucket)
        self.assertTrue(line.startswith("S3 refused access to the bucket bkt (AccessDenied): "
                                        "check the credentials"), line)

    def test_store_fails(self):
        """A failure of the store while making it is one line, and the make is not retried."""
        store = ScriptedStore(s3_error(404, "NoSuchBucket"), s3_error(503, "SlowDown"))
        client = self.client(store)
        self.assertEqual(self.refused(client, client.create_bucket),
                         "cannot create the bucket bkt: S3 failed: 503 SlowDown")
        self.assertEqual(len(store.seen), 2)

    def test_block_not_implemented(self):
        """
        A store without Block Public Access (SeaweedFS answers 501) keeps
        the bucket made, with a note, and the call is not retried.
        """
        store = ScriptedStore(s3_error(404, "NoSuchBucket"), (200, {}, b""),
                              s3_error(501, "NotImplemented"))
        client = self.client(store)
        made = self.ensure(client, client.create_bucket)
        self.assertEqual((made.created, made.where, made.private), (True, "in us-east-1", ""))
        self.assertEqual(made.notes, (
            "the store does not implement Block Public Access (it answered 501 "
            "NotImplemented): its buckets are private unless made public",))
        self.assertEqual(len(store.seen), 3)

    def test_block_refused(self):
        """Public access that cannot be blocked is an error naming the bucket made."""
        store = ScriptedStore(s3_error(404, "NoSuchBucket"), (200, {}, b""),
                              s3_error(403, "AccessDenied"))
        client = self.client(store)
        self.assertEqual(self.refused(client, client.create_bucket),
                         "made the bucket bkt in us-east-1, but could not block public access "
                         "to it (S3 answered 403 AccessDenied: AccessDenied.): block it with "
                         "the store's own tools")

    def test_other_refusal(self):
        """Another refusal of the listing than access or absence is not made over."""
        store = ScriptedStore(s3_error(400, "InvalidBucketName"))
        client = self.client(store)
        self.assertEqual(self.refused(client, client.create_bucket),
                         "cannot use the bucket bkt: S3 answered 400 InvalidBucketName: "
                         "InvalidBucketName.")
        self.assertEqual(len(store.seen), 1)


class AzureTests(_Case):
    """Azure: C{Create Container} without public access."""

    def client(self, store):
        return AzureClient("http://azure.test/acct", ACCOUNT, "packages",
                           AccountKey(ACCOUNT, KEY), StubTreq(store), Clock(), run=run_now)

    def test_made_private(self):
        """A missing container is made with Shared Key, and no public access asked for."""
        store = ScriptedStore(azure_error(404, "ContainerNotFound"), (201, {}, b""))
        client = self.client(store)
        made = self.ensure(client, client.create_bucket)
        self.assertEqual(made, Creation(True, private="no public access"))
        self.assertEqual(store.asked(), [("GET", "/acct/packages"), ("PUT", "/acct/packages")])
        create = store.seen[1]
        self.assertEqual(create["query"], {"restype": ["container"]})
        self.assertNotIn("x-ms-blob-public-access", create["headers"])
        self.assertEqual(create["headers"]["x-ms-version"], API_VERSION)
        self.assertTrue(create["headers"]["authorization"].startswith(f"SharedKey {ACCOUNT}:"))

    def test_made_meanwhile(self):
        """C{ContainerAlreadyExists} for a container that answers: there already."""
        store = ScriptedStore(azure_error(404, "ContainerNotFound"),
                              azure_error(409, "ContainerAlreadyExists"), AZURE_LISTING)
        client = self.client(store)
        self.assertEqual(self.ensure(client, client.create_bucket), Creation(False))

    def test_being_deleted(self):
        """Another conflict (a container being deleted) is an error in Azure's words."""
        store = ScriptedStore(azure_error(404, "ContainerNotFound"),
                              azure_error(409, "ContainerBeingDeleted"))
        client = self.client(store)
        self.assertEqual(self.refused(client, client.create_bucket),
                         "cannot create the container packages: Azure answered 409 "
                         "ContainerBeingDeleted: ContainerBeingDeleted.")


class GCSTests(_Case):
    """Google Cloud Storage: C{buckets.insert}, uniform access, public access prevented."""

    def client(self, store):
        return GCSClient("http://gcs.test", "bkt", _Credentials(), StubTreq(store), Clock(),
                         run=run_now)

    def test_made_private(self):
        """A missing bucket is made in the project, where asked, private."""
        store = ScriptedStore(gcs_error(404, "notFound"), (
            200, {"content-type": "application/json"},
            b'{"name": "bkt", "location": "EU"}'))
        client = self.client(store)
        made = self.ensure(client, lambda: client.create_bucket("a-project", "EU"))
        self.assertEqual(made, Creation(
            True, "in project a-project, EU",
            "uniform bucket-level access, public access prevention enforced"))
        self.assertEqual(store.asked(), [("GET", "/storage/v1/b/bkt/o"),
                                         ("POST", "/storage/v1/b")])
        insert = store.seen[1]
        self.assertEqual(insert["query"], {"project": ["a-project"]})
        self.assertEqual(insert["headers"]["authorization"], "Bearer t")
        self.assertEqual(json.loads(insert["body"]), {
            "name": "bkt", "location": "EU", "iamConfiguration": {
                "uniformBucketLevelAccess": {"enabled": True},
                "publicAccessPrevention": "enforced"}})

    def test_default_location(self):
        """Without a location, Google's default is taken (none is sent)."""
        store = ScriptedStore(gcs_error(404, "notFound"), (200, {}, b'{"name": "bkt"}'))
        client = self.client(store)
        made = self.ensure(client, lambda: client.create_bucket("a-project"))
        self.assertEqual(made.where, "in project a-project")
        self.assertNotIn("location", json.loads(store.seen[1]["body"]))

    def test_made_meanwhile(self):
        """A 409 for a bucket that answers: there already."""
        store = ScriptedStore(gcs_error(404, "notFound"), gcs_error(409, "conflict"),
                              GCS_LISTING)
        client = self.client(store)
        self.assertEqual(self.ensure(client, lambda: client.create_bucket("p")), Creation(False))

    def test_taken(self):
        """A 409 for a bucket the credentials were refused: another's name, an error."""
        store = ScriptedStore(gcs_error(403, "forbidden"), gcs_error(409, "conflict"))
        client = self.client(store)
        line = self.refused(client, lambda: client.create_bucket("p"))
        self.assertTrue(line.startswith("the bucket bkt is taken: there is one of that name, "
                                        "which these credentials may not list (forbidden): "
                                        "choose another name"), line)
