"""
The object stores the end-to-end bucket tests run the daemon on, behind
one face (L{Cloud}): S3 on moto and on SeaweedFS, Azure Blob Storage on
Azurite, Google Cloud Storage on fake-gcs-server. Each gives the
C{--set} overrides that put a daemon on one of its buckets, fresh
buckets, a server of a test's own that it may stop and start again, and
the looks into a bucket the tests check pypid's writes with.
"""

import atexit
import base64
import shutil
import tempfile
import threading

from tests.harness import azurite, fake_gcs, s3server

#: How often the daemons of these tests look for each other's changes.
SYNC = 0.5


class S3Cloud:
    """S3, on one of L{tests.harness.s3server.STORES}."""

    signature_param = "X-Amz-Signature="
    #: the daemon's keys that make its large uploads go in parts
    part_options = {"multipart_threshold": "5M"}
    refused_words = "S3 refused access to the bucket"

    def __init__(self, store):
        self.store = store
        self.name = store.name
        self.signatures_checked = store.signatures_checked

    def skip_reason(self):
        return self.store.skip_reason()

    def endpoint(self):
        return self.store.endpoint()

    def new_bucket(self):
        return self.store.new_bucket()

    def settings(self, bucket, endpoint=None, **extra):
        """The C{--set} overrides that put a daemon on C{bucket}."""
        settings = {
            "storage.backend": "s3",
            "s3.bucket": bucket,
            "s3.prefix": "packages/",
            "s3.endpoint_url": endpoint or self.store.endpoint(),
            "s3.access_key": s3server.ACCESS_KEY,
            "s3.secret_key": s3server.SECRET_KEY,
            "s3.sync_interval": str(SYNC),
        }
        settings.update({f"s3.{key}": value for key, value in extra.items()})
        return settings

    def refused_settings(self, case, bucket):
        """Settings whose credentials the store refuses."""
        if not self.store.signatures_checked:
            s3server.set_auth(True)
            case.addCleanup(s3server.set_auth, False)
        return self.settings(bucket, secret_key="wrong" * 8)

    def keys(self, bucket, prefix):
        listed = self.store.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return {item["Key"] for item in listed.get("Contents", ())}

    def head(self, bucket, key):
        """C{(size, user metadata)} of an object."""
        head = self.store.client().head_object(Bucket=bucket, Key=key)
        return head["ContentLength"], head["Metadata"]

    def parts_left(self, bucket):
        """Parts of uploads begun and never finished (each costs money)."""
        return self.store.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])

    def own_server(self, case):
        return self.store.own_server(case)


#: S3 on moto and on SeaweedFS.
MOTO = S3Cloud(s3server.MOTO)
SEAWEED = S3Cloud(s3server.SEAWEED)


class _OwnServer:
    """
    A store's server of one test's own (an Azurite, a fake-gcs-server on
    a folder), that it may stop and start again: its data stays.
    """

    def __init__(self, server, new_bucket):
        self._server = server
        self._server.wait_ready()
        self.endpoint = server.endpoint
        self.new_bucket = new_bucket

    def halt(self):
        self._server.halt()

    def resume(self):
        self._server.start()
        self._server.wait_ready()

    def close(self):
        self._server.stop()


class AzureCloud:
    """Azure Blob Storage, on Azurite (L{tests.harness.azurite})."""

    name = "azurite"
    signatures_checked = True
    signature_param = "sig="
    part_options = {"block_size": "1M"}
    refused_words = "Azure refused access to the container"

    def skip_reason(self):
        return azurite.available()

    def endpoint(self):
        return azurite.server().endpoint

    def new_bucket(self):
        return azurite.server().new_container()

    def settings(self, bucket, endpoint=None, **extra):
        settings = {
            "storage.backend": "azure",
            "azure.account": azurite.ACCOUNT,
            "azure.container": bucket,
            "azure.prefix": "packages/",
            "azure.endpoint_url": endpoint or self.endpoint(),
            "azure.account_key": azurite.KEY,
            "azure.sync_interval": str(SYNC),
        }
        settings.update({f"azure.{key}": value for key, value in extra.items()})
        return settings

    def refused_settings(self, case, bucket):
        other = base64.b64encode(b"not the account's key" * 3).decode()
        return self.settings(bucket, account_key=other)

    def keys(self, bucket, prefix):
        return {key for key in azurite.container_state(self.endpoint(), bucket)
                if key.startswith(prefix)}

    def head(self, bucket, key):
        etag, size, modified, metadata = azurite.container_state(self.endpoint(), bucket)[key]
        # (Azurite's listing capitalises the names: they are case-insensitive)
        return int(size), {name.lower().replace("_", "-"): value
                           for name, value in metadata.items()}

    def parts_left(self, bucket):
        return []  # (blocks never committed are dropped by the service)

    def own_server(self, case):
        azurite.install()
        server = azurite.AzuriteServer()
        own = _OwnServer(server, server.new_container)
        case.addCleanup(own.close)
        return own


class GCSCloud:
    """
    Google Cloud Storage, on fake-gcs-server (L{tests.harness.fake_gcs}):
    with tokens of the harness's token endpoint, or (C{anonymous}) with
    none, a key file only signing if C{signed} (its token endpoint a
    closed port: asking it would stop the start).
    """

    name = "fake-gcs-server"
    signatures_checked = False
    signature_param = "X-Goog-Signature="
    part_options = {}
    refused_words = "could not be reached"
    _lock = threading.Lock()
    _key_file = None

    def __init__(self, anonymous=False, signed=True):
        self.anonymous = anonymous
        self.signed = signed

    def skip_reason(self):
        return fake_gcs.available()

    def endpoint(self):
        return fake_gcs.server().endpoint

    def new_bucket(self):
        return fake_gcs.server().new_bucket()

    def key_file(self, token_uri=None):
        """A service account's key file whose tokens come from the harness (one per process)."""
        if token_uri is not None:
            folder = tempfile.mkdtemp(prefix="pypid-gcs-key-")
            atexit.register(shutil.rmtree, folder, True)
            return fake_gcs.key_file(folder, token_uri)[0]
        with self._lock:
            if GCSCloud._key_file is None:
                folder = tempfile.mkdtemp(prefix="pypid-gcs-key-")
                atexit.register(shutil.rmtree, folder, True)
                GCSCloud._key_file = fake_gcs.key_file(folder, fake_gcs.tokens().url)[0]
            return GCSCloud._key_file

    def settings(self, bucket, endpoint=None, **extra):
        settings = {
            "storage.backend": "gcs",
            "gcs.bucket": bucket,
            "gcs.prefix": "packages/",
            "gcs.endpoint_url": endpoint or self.endpoint(),
            "gcs.sync_interval": str(SYNC),
        }
        if not self.anonymous:
            settings["gcs.credentials_file"] = self.key_file()
        else:
            settings["gcs.anonymous"] = "yes"
            if self.signed:
                settings["gcs.credentials_file"] = self.key_file(fake_gcs.closed_token_uri())
        settings.update({f"gcs.{key}": value for key, value in extra.items()})
        return settings

    def refused_settings(self, case, bucket):
        # (a token endpoint that cannot be reached: nothing listens there)
        return self.settings(bucket, credentials_file=self.key_file(
            fake_gcs.closed_token_uri()))

    def keys(self, bucket, prefix):
        return {key for key in fake_gcs.server().objects(bucket) if key.startswith(prefix)}

    def head(self, bucket, key):
        generation, size, updated, metadata = fake_gcs.server().objects(bucket)[key]
        return int(size), metadata

    def parts_left(self, bucket):
        return []  # (one request an upload)

    def own_server(self, case):
        server = fake_gcs.FakeGCSServer(folder=tempfile.mkdtemp(prefix="pypid-gcs-own-"))
        own = _OwnServer(server, server.new_bucket)
        case.addCleanup(own.close)
        return own


AZURE = AzureCloud()
GCS = GCSCloud()
#: without tokens: a key file that only signs, and none
GCS_ANONYMOUS_SIGNED = GCSCloud(anonymous=True)
GCS_ANONYMOUS = GCSCloud(anonymous=True, signed=False)
