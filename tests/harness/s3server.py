"""
The S3 servers of the tests (L{STORES}): moto's C{ThreadedMotoServer} on a
free loopback port, and SeaweedFS (L{tests.harness.seaweed}), a real S3 server;
each started once per test process when first used and shared; each test
gets buckets of its own. L{endpoint}, L{client} and L{new_bucket} are
moto's, as most tests use it.

moto runs in a thread of the test process, SeaweedFS in its own; both are reached over the
network stack like any S3 endpoint. Set-up calls (create a bucket, put an
object behind pypid's back) are plain blocking HTTP made from the test
thread with botocore's own client, which is what an operator's tools would
do; pypid's code is never given that client.
"""

import atexit
import socket
import threading
import uuid

ACCESS_KEY = "AKIAPYPIDTESTKEY0001"
SECRET_KEY = "pypid-test-secret-key-0000000000000000000"
#: A second access key of the same secret (a store that checks keys knows both).
OTHER_ACCESS_KEY = "AKIAPYPIDOTHERKEY001"
REGION = "us-east-1"
#: The access keys a store that checks them knows, with their secrets.
KEYS = ((ACCESS_KEY, SECRET_KEY), (OTHER_ACCESS_KEY, SECRET_KEY))

_server = None
_lock = threading.Lock()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _atomic_conditional_puts():
    """
    Make moto's C{PutObject} (and C{CompleteMultipartUpload}) one step, as S3's is: moto checks C{If-None-Match}
    and then writes, two steps another request's thread can come between
    (two pypid servers binning one file at the same moment both won);
    S3 makes the check and the write one. A lock around the whole request
    makes them one here too (issue 29's test of two servers applying the
    retention rules at once).
    """
    from moto.s3.responses import S3Response

    if getattr(S3Response.put_object, "_pypid_atomic", False):
        return
    original, completing = S3Response.put_object, S3Response._key_response_post
    writes = threading.Lock()

    def put_object(self):
        with writes:
            return original(self)
    put_object._pypid_atomic = True
    S3Response.put_object = put_object

    # (a multipart upload's completion checks If-None-Match, then writes, alike)
    def key_response_post(self, *args, **kwargs):
        with writes:
            return completing(self, *args, **kwargs)
    S3Response._key_response_post = key_response_post


def _moto_endpoint():
    """Start the shared moto server if needed; return its URL."""
    global _server
    with _lock:
        if _server is None:
            import logging

            from moto.server import ThreadedMotoServer

            _atomic_conditional_puts()

            # One line per request on stderr would bury the test output.
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            port = _free_port()
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()
            atexit.register(server.stop)
            _server = (server, f"http://127.0.0.1:{port}")
        return _server[1]


def _seaweed_endpoint():
    """Start the shared SeaweedFS server if needed; return its S3 URL."""
    from tests.harness import seaweed
    return seaweed.server(KEYS).endpoint


_session = None
_session_lock = threading.Lock()


def botocore_client(service="s3", endpoint_url=None, access_key=ACCESS_KEY,
                    secret_key=SECRET_KEY, **config):
    """
    A blocking botocore client of C{service} at C{endpoint_url} (moto's by
    default), path-style, tried once, with C{config} (botocore's
    C{Config} options). Every client comes from one botocore session of
    the test process: a session of its own loads and parses botocore's
    service models again (about 0.1 s a client, up to 0.4 on the busy
    machine, against 0.01), and the S3 tests make one or more a test.
    """
    global _session
    import botocore.config
    import botocore.session
    with _session_lock:
        # (a session is not safe for threads; the clients it makes are)
        if _session is None:
            _session = botocore.session.Session()
        return _session.create_client(
            service, region_name=REGION, endpoint_url=endpoint_url or endpoint(),
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            config=botocore.config.Config(**{"s3": {"addressing_style": "path"},
                                             "retries": {"max_attempts": 1}, **config}))


def _new_bucket(client):
    name = "pypid-" + uuid.uuid4().hex[:20]
    client.create_bucket(Bucket=name)
    return name


class OwnMoto:
    """
    A moto server of one test's own, that the test may stop and start
    again on the same port (moto keeps its buckets in the process, so
    they are there again).
    """

    def __init__(self):
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = None
        self.resume()

    def new_bucket(self):
        """A fresh bucket, seen by this server too."""
        return _new_bucket(botocore_client(endpoint_url=self.endpoint))

    def halt(self):
        """Stop answering (connections are refused)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def resume(self):
        """Answer again, with every bucket and object as before."""
        from moto.server import ThreadedMotoServer
        _moto_endpoint()  # (the shared one's set-up: atomic conditional puts)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()


class OwnSeaweed:
    """A SeaweedFS server of one test's own, that the test may stop and start again."""

    def __init__(self):
        from tests.harness import seaweed
        self._server = seaweed.own_server(KEYS)
        self.endpoint = self._server.endpoint

    def new_bucket(self):
        """A fresh bucket of this server."""
        return _new_bucket(botocore_client(endpoint_url=self.endpoint))

    def halt(self):
        """Stop the process (connections are refused); its data stays."""
        self._server.halt()

    def resume(self):
        """Start it again on the same ports and data, and wait until it answers."""
        self._server.start()
        self._server.wait_ready()

    def close(self):
        self._server.stop()


class Store:
    """
    One S3 implementation the tests run pypid against: its endpoint (the
    server started on first use), a blocking botocore client of it for
    set-up and checks, and fresh buckets.
    """

    def __init__(self, name, start, own, signatures_checked, skip_reason=lambda: None):
        #: how test names and messages call it
        self.name = name
        self._start = start
        self._own = own
        #: whether it always checks SigV4 signatures (moto only when told)
        self.signatures_checked = signatures_checked
        self._skip_reason = skip_reason

    def __repr__(self):
        return f"<S3 store {self.name}>"

    def skip_reason(self):
        """Why this store cannot run here, or L{None}."""
        return self._skip_reason()

    def endpoint(self):
        """The server's URL, started if needed."""
        return self._start()

    def client(self):
        """A blocking botocore S3 client of the server, for set-up and checks."""
        return botocore_client(endpoint_url=self.endpoint())

    def new_bucket(self):
        """Create an empty bucket with a unique name and return the name."""
        return _new_bucket(self.client())

    def own_server(self, case):
        """
        A server of this store for C{case} alone (L{OwnMoto}, L{OwnSeaweed}),
        that it may stop and start again; gone when the test ends.
        """
        own = self._own()
        case.addCleanup(getattr(own, "close", own.halt))
        return own


def _seaweed_missing():
    from tests.harness import seaweed
    return seaweed.available()


#: moto's mock, in this process (it checks signatures only after L{set_auth}).
MOTO = Store("moto", _moto_endpoint, OwnMoto, signatures_checked=False)

#: SeaweedFS, a real S3 server in a process of its own (L{tests.harness.seaweed}).
SEAWEED = Store("seaweedfs", _seaweed_endpoint, OwnSeaweed, signatures_checked=True,
                skip_reason=_seaweed_missing)

#: Every store the S3 tests run on.
STORES = (MOTO, SEAWEED)

# The moto store's, as most tests use it.
endpoint = MOTO.endpoint
client = MOTO.client
new_bucket = MOTO.new_bucket


def set_auth(enforced):
    """
    Make the server check every request's signature against the IAM users
    it knows (C{True}), or accept anything (C{False}, the default).
    """
    import urllib.request
    value = b"0" if enforced else b"inf"
    request = urllib.request.Request(endpoint() + "/moto-api/reset-auth", data=value,
                                     method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request) as response:
        response.read()
