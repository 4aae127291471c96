"""
The contract of L{pypid.storage.base.records.IRecords}, which the
folder, the memory and every cloud's bucket pass: records written whole
and read back, replaced, listed by folder in order, removed; a name
written only once by L{put_new} however many race for it; names that
could leave the folder refused.

A test case mixes L{RecordsContractMixin} into a
C{twisted.trial.unittest.TestCase} and gives L{make_records}.
"""

import os

from twisted.internet.defer import gatherResults

from pypid.storage.base.records import IRecords
from pypid.storage.folder.folder_records import FolderRecords
from tests.harness.memory_records import MemoryRecords


class RecordsContractMixin:
    """The contract; see the module."""

    def make_records(self):
        """A new, empty L{IRecords} (or a Deferred or coroutine of one)."""
        raise NotImplementedError

    async def records(self):
        made = self.make_records()
        if hasattr(made, "__await__") or hasattr(made, "addCallback"):
            made = await made
        self.assertTrue(IRecords.providedBy(made))
        return made

    async def test_put_get(self):
        """Records written together are each read back whole; a missing one is L{None}."""
        store = await self.records()
        await store.put({"outbox/0001.json": b'{"a": 1}', "outbox/0002.json": b"x" * 70000})
        self.assertEqual(await store.get("outbox/0001.json"), b'{"a": 1}')
        self.assertEqual(await store.get("outbox/0002.json"), b"x" * 70000)
        self.assertIsNone(await store.get("outbox/0003.json"))

    async def test_replace(self):
        """A record written again is replaced whole."""
        store = await self.records()
        await store.put({"status/builds.json": b"first, and longer"})
        await store.put({"status/builds.json": b"second"})
        self.assertEqual(await store.get("status/builds.json"), b"second")

    async def test_names(self):
        """A folder's names, sorted, without those of its sub-folders or of other folders."""
        store = await self.records()
        self.assertEqual(await store.names("outbox"), [])
        await store.put({"outbox/0002.json": b"2", "outbox/0001.json": b"1",
                         "failed/builds/0001.json": b"f", "outboxes/0003.json": b"o"})
        self.assertEqual(await store.names("outbox"), ["0001.json", "0002.json"])
        self.assertEqual(await store.names("failed/builds"), ["0001.json"])
        self.assertEqual(await store.names("failed"), [])

    async def test_delete(self):
        """Removed records are gone; removing one that is not there is no error."""
        store = await self.records()
        await store.put({"outbox/0001.json": b"1", "outbox/0002.json": b"2"})
        await store.delete(["outbox/0001.json", "outbox/0009.json"])
        self.assertEqual(await store.names("outbox"), ["0002.json"])
        self.assertIsNone(await store.get("outbox/0001.json"))

    async def test_put_new_once(self):
        """Of writers racing for one name, exactly one writes it; the record is the winner's."""
        store = await self.records()
        results = await gatherResults([store.put_new("leases/000000000001", b"server-%d" % n)
                                       for n in range(6)])
        self.assertEqual(sorted(results), [False] * 5 + [True])
        winner = results.index(True)
        self.assertEqual(await store.get("leases/000000000001"), b"server-%d" % winner)
        self.assertFalse(await store.put_new("leases/000000000001", b"late"))
        self.assertTrue(await store.put_new("leases/000000000002", b""))
        self.assertEqual(await store.get("leases/000000000002"), b"")

    async def test_names_after(self):
        """The names after one, and the first few: where a reader of the journal goes on."""
        store = await self.records()
        await store.put({f"entries/{n:04d}.jsonl": b"%d" % n for n in range(1, 8)})
        self.assertEqual(await store.names("entries", "0004.jsonl"),
                         ["0005.jsonl", "0006.jsonl", "0007.jsonl"])
        self.assertEqual(await store.names("entries", "0002.jsonl", 2),
                         ["0003.jsonl", "0004.jsonl"])
        self.assertEqual(await store.names("entries", None, 1), ["0001.jsonl"])
        self.assertEqual(await store.names("entries", "0007.jsonl"), [])
        self.assertEqual(await store.names("entries", "0000"), [
            f"{n:04d}.jsonl" for n in range(1, 8)])

    async def test_stray_names_left_out(self):
        """A record that was not written as one (a copy made by hand) is not listed."""
        store = await self.records()
        await store.put({"outbox/0001.json": b"1"})
        await self.put_stray(store, "outbox/copy of 0001.json")
        self.assertEqual(await store.names("outbox"), ["0001.json"])

    async def put_stray(self, store, name):
        """Put a file or object of C{name} beside the records, as a person would."""
        if isinstance(store, MemoryRecords):
            store.records[name] = b"x"
        elif isinstance(store, FolderRecords):
            with open(os.path.join(store.root, *name.split("/")), "wb") as f:
                f.write(b"x")
        else:
            await store._store.put(store._prefix + name, b"x")

    async def test_names_refused(self):
        """A name that could leave the folder is refused before anything is written."""
        store = await self.records()
        for name in ("../escape.json", "outbox/../../x", "/abs", "outbox//x", "", ".hidden"):
            with self.assertRaises(ValueError):
                store.get(name)
