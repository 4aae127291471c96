"""
S3 storages on buckets of moto's server (L{tests.harness.s3server}), and whole
servers sharing one bucket, in this process: each an S3 storage, an index
loaded from it as a start loads it, the look for the other servers'
changes (L{pypid.state.sync.SyncService}, made when the test says: no
timer), and the site built as the server builds it, on a loopback port.
"""

import json
import os
from functools import partial

import attrs
import treq
from twisted.internet import reactor
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import HTTPConnectionPool

from pypid.auth.policy import AccessModel
from pypid.auth.verifier import PasswordVerifier
from pypid.core.dists.distribution import inspect
from pypid.core.indexes.index import Index
from pypid.core.indexes.links import file_url_for, provenance_url_for
from pypid.http.client import make_http
from pypid.state.loader import IndexLoader
from pypid.state.sync import SyncService
from pypid.storage.bucket.layout import Layout
from pypid.storage.bucket.storage import BucketSettings, BucketStorage
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.storage.s3.api import S3Client
from pypid.storage.s3.credentials import CredentialSource
from pypid.storage.s3.sign import Bucket, Credentials
from pypid.web.app import build_web
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.web_inputs import SiteServices, SiteSettings
from tests.harness import s3server
from tests.harness.distributions import make_wheel
from tests.harness.fakes import one_index, run_in_pool_now, write_file
from tests.harness.storage import UPLOAD_TIME
from tests.harness.web import JSON_TYPE, PASSWORD, USERS

#: The prefix the storages use in their bucket.
PREFIX = "pkgs/"

#: The admin of the servers (L{BucketServer}).
ADMIN = "alice"


def s3_storage(case, run, bucket, endpoint=None, access_key=s3server.ACCESS_KEY,
               secret_key=s3server.SECRET_KEY, clock=None, credentials=None, timeout=10.0,
               prefix=PREFIX, **options):
    """
    An S3 storage of C{bucket} on the test server (not prepared), its
    blocking work done by C{run}; its connections and background writes
    are ended with the test C{case}.
    """
    http, pool = make_http(reactor, timeout)
    case.addCleanup(pool.closeCachedConnections)
    if credentials is None:
        credentials = CredentialSource(Credentials(access_key, secret_key), run, reactor)
    client = S3Client(Bucket(endpoint or s3server.endpoint(), bucket, s3server.REGION),
                      credentials, http, reactor, timeout, run=run,
                      probe_prefix=Layout(prefix).probe_key(""),
                      **{name: options.pop(name) for name in ("multipart_threshold",)
                         if name in options})
    # Exact times: moto runs on this machine's clock.
    options.setdefault("clock_margin", 0.0)
    options.setdefault("replay_window", 0.0)
    settings = BucketSettings(**{name: options.pop(name) for name in list(options)
                                 if name in attrs.fields_dict(BucketSettings)})
    storage = BucketStorage(client, Layout(prefix), run, clock or reactor,
                            os.path.abspath(case.mktemp()), settings, **options)
    case.addCleanup(storage.settle)
    return storage


class S3Case(TestCase):
    """Builds S3 storages on fresh buckets of the shared server of C{store}."""

    #: the S3 server the storages are on (L{tests.harness.s3server.STORES})
    store = s3server.MOTO

    def setUp(self):
        reason = self.store.skip_reason()
        if reason:
            raise SkipTest(reason)
        self.pool = ThreadPool(minthreads=1, maxthreads=4, name="test-s3")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.run_in_thread = partial(deferToThreadPool, reactor, self.pool)
        self.bucket = self.store.new_bucket()

    def fetch(self, url):
        """
        C{GET url} as a client would, on a connection of its own (a store
        that keeps connections open must not leave one to the next test).
        """
        return treq.get(url, pool=HTTPConnectionPool(reactor, persistent=False))

    def storage_on(self, bucket=None, **options):
        """An S3 storage of C{bucket} (this test's by default), not prepared."""
        options.setdefault("endpoint", self.store.endpoint())
        return s3_storage(self, self.run_in_thread, bucket or self.bucket, **options)

    async def ready_storage(self, **kwargs):
        """An S3 storage, prepared."""
        storage = self.storage_on(**kwargs)
        await storage.prepare()
        return storage

    def spool_wheel(self, storage, name="holy-grail", version="1.0", **kwargs):
        """Spool a new wheel; return C{(temp path, record, metadata, bytes)}."""
        filename, data = make_wheel(name, version, **kwargs)
        temp = write_file(os.path.join(storage.temp_dir, "up-" + os.urandom(4).hex()), data)
        inspected = inspect(temp, filename, filename, UPLOAD_TIME)
        record, metadata = inspected.record, inspected.metadata
        return temp, record, metadata, data

    def keys(self, prefix=PREFIX):
        """Every key of the test's bucket under C{prefix}."""
        listed = self.store.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", ()))


def s3_config(case, bucket):
    """A configuration file of a server on C{bucket} (for C{pypid-admin}); its path."""
    folder = os.path.abspath(case.mktemp())
    os.makedirs(folder)
    path = os.path.join(folder, "pypid.ini")
    with open(path, "w") as f:
        f.write(f"[pypid]\nsnapshot = {folder}/index.json\n"
                f"[storage]\nbackend = s3\npath = {folder}/spool\n"
                f"[s3]\nbucket = {bucket}\nprefix = {PREFIX}\n"
                f"endpoint_url = {s3server.endpoint()}\naccess_key = {s3server.ACCESS_KEY}\n"
                f"secret_key = {s3server.SECRET_KEY}\n")
    return path


@attrs.define
class BucketServer:
    """
    A server on a shared bucket: its storage, its index, its look for the
    other servers' changes, and its site at C{url}.
    """

    storage: BucketStorage
    index: Index
    sync: SyncService
    url: str
    _http: object

    async def poll(self):
        """
        Take in what the other servers changed, as the server's timer does,
        and wait for the full check it began, if one was due.
        """
        await self.sync.sync()
        checking = self.sync._reconciling
        if checking is not None:
            await checking

    async def get(self, path, admin=False, accept=None):
        """C{GET path}, redirects not followed: C{(status, body)}."""
        headers = {"Accept": accept} if accept else {}
        response = await self._http.get(self.url + path, headers=headers,
                                        auth=(ADMIN, PASSWORD) if admin else None,
                                        allow_redirects=False)
        return response.code, await response.content()

    async def page(self, project):
        """The JSON simple page of C{project}, as a reader gets it (it must be there)."""
        code, body = await self.get(f"simple/{project}/", accept=JSON_TYPE)
        if code != 200:
            raise AssertionError(f"{project}'s page: {code} {body!r}")
        return json.loads(body)

    async def file_code(self, record):
        """The status of a reader's download of C{record}'s file."""
        return (await self.get(f"files/{record.project}/{record.filename}"))[0]

    async def set_status(self, project, status, reason=None):
        """An admin sets C{project}'s status through the API: C{(status, body)}."""
        data = {"status": status} if reason is None else {"status": status, "reason": reason}
        response = await self._http.post(
            self.url + f"api/projects/{project}/status", data=json.dumps(data).encode(),
            headers={"Content-Type": "application/json"}, auth=(ADMIN, PASSWORD))
        return response.code, await response.content()


async def bucket_server(case, run, bucket, **options):
    """
    A server on C{bucket}, started (its index loaded from the bucket, its
    statuses too) and listening on loopback until the end of C{case}.
    """
    storage = s3_storage(case, run, bucket, **options)
    await storage.prepare()
    index = Index(file_url_for(None), provenance_url=provenance_url_for(None))
    snapshot = os.path.join(os.path.abspath(case.mktemp()), "index.json")
    await IndexLoader(index, storage, snapshot, run, reactor).load()
    verifier = PasswordVerifier(USERS, reactor, None, run_in_pool=run_in_pool_now)
    access = Gates(AccessModel(read="everyone", admins=frozenset({ADMIN})), verifier)
    web = build_web(one_index(index, storage, reactor), access, run, reactor,
                    SiteSettings(max_upload_size=10 << 20),
                    SiteServices(audit=AuditTrail(MemoryJournal(reactor), reactor)))
    port = reactor.listenTCP(0, web.site, interface="127.0.0.1")
    case.addCleanup(port.stopListening)
    http, pool = make_http(reactor, 10.0)
    case.addCleanup(pool.closeCachedConnections)
    url = f"http://127.0.0.1:{port.getHost().port}/"
    return BucketServer(storage, index, SyncService(index, storage, reactor), url, http)
