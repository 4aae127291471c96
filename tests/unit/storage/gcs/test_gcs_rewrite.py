"""
What fake-gcs-server does not show: a store that honours
C{ifGenerationMatch} on a rewrite (Google Cloud Storage does) gets
conditional copies on its side, never through pypid. Played by a small
in-memory store (treq's StubTreq).
"""

import json
from urllib.parse import parse_qs, unquote, urlsplit

from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from pypid.storage.gcs.object_calls import GCSClient
from tests.harness.fakes import run_now


class _Token:
    async def start(self):
        pass

    def stop(self):
        pass

    def authorize(self, headers):
        headers["authorization"] = "Bearer t"


class HonouringGCS(Resource):
    """Uploads and rewrites, each honouring C{ifGenerationMatch=0}; the requests seen."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.objects = {}
        self.seen = []

    def render(self, request):
        path = unquote(urlsplit(request.uri.decode()).path)
        query = parse_qs(urlsplit(request.uri.decode()).query)
        self.seen.append((request.method.decode(), path, query))
        conditional = query.get("ifGenerationMatch") == ["0"]
        request.setHeader(b"content-type", b"application/json")
        if request.method == b"POST" and path.startswith("/upload/"):
            body = request.content.read()
            resource = json.loads(body.split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0])
            return self._create(request, resource["name"], conditional)
        if request.method == b"POST" and "/rewriteTo/" in path:
            source = path.split("/o/", 1)[1].split("/rewriteTo/")[0]
            target = path.rsplit("/o/", 1)[1]
            if source not in self.objects:
                request.setResponseCode(404)
                return b'{"error": {"code": 404}}'
            created = self._create(request, target, conditional)
            return created if request.code != 200 else json.dumps({"done": True}).encode()
        if request.method == b"DELETE":
            self.objects.pop(path.rsplit("/o/", 1)[1], None)
            request.setResponseCode(204)
            return b""
        request.setResponseCode(404)
        return b'{"error": {"code": 404}}'

    def _create(self, request, name, conditional):
        if conditional and name in self.objects:
            request.setResponseCode(412)
            return b'{"error": {"code": 412, "errors": [{"reason": "conditionNotMet"}]}}'
        self.objects[name] = True
        return json.dumps({"name": name, "generation": "1"}).encode()


class ConditionalRewriteTests(SynchronousTestCase):
    """On a store that honours the condition, a promotion's copy stays on the store's side."""

    def test_on_the_store_side(self):
        store = HonouringGCS()
        client = GCSClient("http://gcs.test", "b", _Token(), StubTreq(store), Clock(),
                           run=run_now)
        self.successResultOf(ensureDeferred(client.put("src", b"bytes")))
        copy = ensureDeferred(client.copy("dst", client.ref("src"), 5, if_none_match=True,
                                          metadata={"sha256": "x"}))
        self.assertTrue(self.successResultOf(copy))
        again = ensureDeferred(client.copy("dst", client.ref("src"), 5, if_none_match=True,
                                           metadata={"sha256": "x"}))
        self.assertFalse(self.successResultOf(again))
        media = [s for s in store.seen if s[2].get("alt") == ["media"]]
        self.assertEqual(media, [], "no byte went through pypid")
        rewrites = [s for s in store.seen if "/rewriteTo/" in s[1] and "probe" not in s[1]]
        self.assertEqual([q.get("ifGenerationMatch") for _, _, q in rewrites], [["0"], ["0"]])
