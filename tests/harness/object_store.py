"""
The contract of L{pypid.storage.bucket.store.ObjectStore}, which every
cloud's adapter passes against a real server of its own (moto and
SeaweedFS for S3, Azurite for Azure, fake-gcs-server for GCS): the
promises the bucket layer builds on (a conditional create refuses an
existing name, so of racing writers exactly one is acknowledged; a
listing shows what was written; ranges; copies on the store's side;
metadata; signed URLs; errors as L{StoreRefused} and L{StoreUnavailable};
deadlines).

A test case mixes L{ObjectStoreContractMixin} into a
C{twisted.trial.unittest.TestCase} and gives L{make_store}.
"""

import hashlib
import os
import socket

import treq
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.web.client import HTTPConnectionPool

from pypid.storage.base.interface import StorageError
from pypid.storage.bucket.store import StoreRefused, StoreUnavailable, read_all

#: Metadata as the bucket layer writes it: names of letters, digits and '-'.
METADATA = {"sha256": "ab" * 32, "upload-time": "1700000000.5", "blake2-256": "cd" * 32,
            "name": "holy%20grail"}


class ObjectStoreContractMixin:
    """
    The contract; see the module.

    @ivar signatures_checked: whether the server refuses a tampered
        signed URL (moto does not check them).
    @ivar metadata_condition_checked: whether the server refuses a metadata
        change of another version (moto ignores C{x-amz-copy-source-if-match}).
    """

    signatures_checked = True
    metadata_condition_checked = True

    def make_store(self, **kwargs):
        """A started store on a container of this test's own (an L{ObjectStore})."""
        raise NotImplementedError

    async def make_broken_store(self, endpoint, timeout):
        """A store at C{endpoint} (nothing sane there), its deadline C{timeout}."""
        raise NotImplementedError

    def make_store_without_container(self):
        """A started store whose container does not exist."""
        raise NotImplementedError

    def make_refused_store(self):
        """A started store that refuses every call (its container does not exist, say)."""
        return self.make_store_without_container()

    def file_of(self, data):
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(data)
        return path

    def fetch_url(self, url):
        return treq.get(url, pool=HTTPConnectionPool(reactor, persistent=False))

    async def listed(self, store, prefix, **kwargs):
        return [item.key async for page in store.list(prefix, **kwargs) for item in page.keys]

    async def test_put_head_get(self):
        """An object comes back with its bytes, size and user metadata."""
        store = await self.make_store()
        self.assertTrue(await store.put("p/a b+c/é.whl", b"payload", "application/json",
                                        METADATA))
        head = await store.head("p/a b+c/é.whl")
        self.assertEqual((head.size, dict(head.metadata)), (7, METADATA))
        self.assertGreater(head.modified, 1_600_000_000)
        self.assertEqual(await store.get("p/a b+c/é.whl"), b"payload")
        self.assertIsNone(await store.head("p/none"))
        self.assertIsNone(await store.get("p/none"))
        await store.delete("p/none")

    async def test_conditional_create(self):
        """A conditional create refuses a name taken, and leaves its bytes."""
        store = await self.make_store()
        self.assertTrue(await store.put("k", b"first", if_none_match=True))
        self.assertFalse(await store.put("k", b"second", if_none_match=True))
        self.assertEqual(await store.get("k"), b"first")

    async def test_race_one_acknowledged(self):
        """
        Of eight racing conditional creates of one name, exactly one is
        acknowledged; each other is refused, or told the store is
        unavailable (SeaweedFS answers a racer 500 at times: the server
        then answers that upload 503, and its retry finds the name taken).
        """
        store = await self.make_store()

        async def racer(i):
            try:
                return await store.put("race", b"%d" % i, if_none_match=True)
            except StoreUnavailable:
                return None
        results = await gatherResults([ensureDeferred(racer(i)) for i in range(8)])
        self.assertEqual(results.count(True), 1)
        self.assertEqual(await store.get("race"), b"%d" % results.index(True))

    async def test_put_file(self):
        """A file is written whole, with its metadata, only where the name is free."""
        store = await self.make_store()
        data = os.urandom(300_000)
        path = self.file_of(data)
        sha = hashlib.sha256(data).hexdigest()
        self.assertTrue(await store.put_file("f.whl", path, len(data), sha,
                                             "application/octet-stream", METADATA))
        self.assertEqual(await store.get("f.whl", limit=1 << 20), data)
        self.assertEqual(dict((await store.head("f.whl")).metadata), METADATA)
        self.assertFalse(await store.put_file("f.whl", self.file_of(b"other"), 5,
                                              hashlib.sha256(b"other").hexdigest(),
                                              "application/octet-stream", METADATA))
        self.assertEqual(await store.get("f.whl", limit=1 << 20), data)

    async def test_put_file_in_parts(self):
        """A file above the store's single-request size is written in parts, as conditionally."""
        store = await self.make_store(small_parts=True)
        # (two uploads of one name with other bytes, at once: the parts of
        # one never mix with the other's)
        datas = [os.urandom(self.part_size * 2 + 1000) for _ in range(2)]
        racing = [ensureDeferred(store.put_file(
            "big.whl", self.file_of(data), len(data), hashlib.sha256(data).hexdigest(),
            "application/octet-stream", METADATA)) for data in datas]
        won = await gatherResults(racing)
        self.assertEqual(sorted(won), [False, True])
        self.assertEqual(await store.get("big.whl", limit=1 << 30), datas[won.index(True)])
        self.assertEqual(dict((await store.head("big.whl")).metadata), METADATA)

    #: The part size L{make_store} gives with C{small_parts}.
    part_size = 5 << 20

    async def test_listing(self):
        """A listing shows what was written, in order, after a name, and by delimiter."""
        store = await self.make_store()
        keys = ["a/1", "a/2", "a/x/3", "b/1", ".pypid/changes/100-a", ".pypid/changes/200-b"]
        for key in keys:
            await store.put(key, b"x")
        self.assertEqual(await self.listed(store, "a/"), ["a/1", "a/2", "a/x/3"])
        self.assertEqual(await self.listed(store, "a/", start_after="a/1"), ["a/2", "a/x/3"])
        self.assertEqual(await self.listed(store, ".pypid/changes/",
                                           start_after=".pypid/changes/150"),
                         [".pypid/changes/200-b"])
        pages = [page async for page in store.list("a/", delimiter="/")]
        self.assertEqual([item.key for page in pages for item in page.keys], ["a/1", "a/2"])
        self.assertEqual([p for page in pages for p in page.prefixes], ["a/x/"])
        await store.delete("a/2")
        self.assertEqual(await self.listed(store, "a/"), ["a/1", "a/x/3"])
        self.assertEqual(await read_all(store, "b/"), {"1": b"x"})

    async def test_listed_item(self):
        """
        A listed item has its size, time and an etag that a metadata change
        may name; the change replaces the metadata whole.
        """
        store = await self.make_store()
        await store.put("m", b"12345", metadata={"sha256": "old", "from-another-tool": "x"})
        [item] = [item async for page in store.list("m") for item in page.keys]
        self.assertEqual((item.key, item.size), ("m", 5))
        self.assertGreater(item.modified, 1_600_000_000)
        if self.metadata_condition_checked:
            self.assertFalse(await store.set_metadata(
                "m", {"sha256": "x"}, "application/octet-stream", "not-its-etag"))
        self.assertTrue(await store.set_metadata("m", dict(METADATA),
                                                 "application/octet-stream", item.etag))
        self.assertEqual(dict((await store.head("m")).metadata), METADATA)
        self.assertEqual(await store.get("m"), b"12345")

    async def test_fetch_range(self):
        """A range is relayed unread; the whole object too; none for a missing one."""
        store = await self.make_store()
        data = bytes(range(256)) * 4
        await store.put("r", data)
        for start, length in ((0, len(data)), (10, 20), (1000, 24)):
            stream = await store.fetch("r", start, length, len(data))
            self.assertEqual(await treq.content(stream), data[start:start + length])
        self.assertIsNone(await store.fetch("none", 0, 1, 1))

    async def test_copy(self):
        """A copy on the store's side has the bytes and the metadata; a conditional one never overwrites."""
        store = await self.make_store()
        await store.put("src", b"bytes", metadata=METADATA)
        self.assertTrue(await store.copy("dst", store.ref("src"), 5))
        self.assertEqual(await store.get("dst"), b"bytes")
        self.assertEqual(dict((await store.head("dst")).metadata), METADATA)
        await store.put("taken", b"mine")
        self.assertFalse(await store.copy("taken", store.ref("src"), 5, if_none_match=True,
                                          metadata=METADATA,
                                          content_type="application/octet-stream"))
        self.assertEqual(await store.get("taken"), b"mine")
        self.assertTrue(await store.copy("new", store.ref("src"), 5, if_none_match=True,
                                         metadata=dict(METADATA, name="other"),
                                         content_type="application/octet-stream"))
        self.assertEqual((await store.head("new")).metadata["name"], "other")
        with self.assertRaises(FileNotFoundError):
            await store.copy("x", store.ref("missing"), 1)

    async def test_signed_url(self):
        """A signed URL downloads the object; a tampered one does not."""
        store = await self.make_store()
        await store.put("s/a b.whl", b"signed")
        url, seconds = store.sign_url("s/a b.whl", 600, reactor.seconds())
        self.assertGreater(seconds, 0)
        response = await self.fetch_url(url)
        self.assertEqual((response.code, await response.content()), (200, b"signed"))
        self.assertTrue(store.signer())
        if self.signatures_checked:
            tampered = await self.fetch_url(url.replace("s/a%20b.whl", "s/other.whl"))
            await tampered.content()
            self.assertIn(tampered.code, (403, 401))

    async def test_answers(self):
        """A container that answers passes; one that does not exist is a line saying so."""
        store = await self.make_store()
        await store.answers("p/")
        missing = await self.make_store_without_container()
        with self.assertRaises(StorageError) as caught:
            await missing.answers("p/")
        self.assertIn("not exist", str(caught.exception))

    async def test_refused(self):
        """A refusal of the store (a container that does not exist, say) is a StoreRefused."""
        refused = await self.make_refused_store()
        with self.assertRaises(StoreRefused):
            await refused.put("k", b"x")

    async def test_deadline(self):
        """A store that never answers is StoreUnavailable at the call's deadline."""
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        store = await self.make_broken_store(f"http://127.0.0.1:{silent.getsockname()[1]}", 0.5)
        with self.assertRaises(StoreUnavailable):
            await store.get("k")
