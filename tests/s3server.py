"""
A real S3-compatible server for the tests: moto's C{ThreadedMotoServer} on a
free loopback port, started once per test process and shared; each test
gets buckets of its own.

The server runs in a thread of the test process, and is reached over the
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
REGION = "us-east-1"

_server = None
_lock = threading.Lock()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _atomic_conditional_puts():
    """
    Make moto's C{PutObject} one step, as S3's is: moto checks C{If-None-Match}
    and then writes, two steps another request's thread can come between
    (two pypid servers binning one file at the same moment both won);
    S3 makes the check and the write one. A lock around the whole request
    makes them one here too (issue 29's test of two servers applying the
    retention rules at once).
    """
    from moto.s3.responses import S3Response

    if getattr(S3Response.put_object, "_pypid_atomic", False):
        return
    original = S3Response.put_object
    writes = threading.Lock()

    def put_object(self):
        with writes:
            return original(self)
    put_object._pypid_atomic = True
    S3Response.put_object = put_object


def endpoint():
    """Start the shared server if needed; return its URL."""
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


def client():
    """A blocking botocore S3 client of the test server, for set-up and checks."""
    import botocore.config
    import botocore.session
    session = botocore.session.Session()
    return session.create_client(
        "s3", region_name=REGION, endpoint_url=endpoint(),
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        config=botocore.config.Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))


def new_bucket():
    """Create an empty bucket with a unique name and return the name."""
    name = "pypid-" + uuid.uuid4().hex[:20]
    client().create_bucket(Bucket=name)
    return name


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
