"""
Tests for L{pypid.storage.shared_folder.MachineBucket}: two workers' S3
storages over one bucket (moto's) and one ring, each taking in at its next
look what the other changed, though the bucket's own interval is not up.
"""

from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from pypid.machine.ring import ChangeRing
from pypid.storage.capabilities import ISharedStorage
from pypid.storage.interface import IStorage
from pypid.storage.shared_folder import MachineBucket, folder_key
from tests.harness.s3 import S3Case


class MachineBucketTests(S3Case):
    """Two workers on one bucket."""

    def setUp(self):
        super().setUp()
        self.ring = ChangeRing.create(slots=16, slot_size=256)
        self.addCleanup(self.ring.close)
        self.clock = Clock()

    async def worker(self, number):
        """Worker C{number}'s storage of the bucket, prepared; its look once a minute."""
        ring = ChangeRing.attach(self.ring.fileno(), number)
        self.addCleanup(ring.close)
        storage = MachineBucket(await self.ready_storage(sync_interval=60.0), ring, self.clock)
        # (the first look at the bucket, as a start makes)
        await storage.poll()
        return storage

    async def test_interfaces(self):
        """A worker's bucket is a storage, and a shared one; its ring looked at each second."""
        one = await self.worker(1)
        self.assertTrue(verifyObject(IStorage, one))
        self.assertTrue(verifyObject(ISharedStorage, one))
        self.assertEqual(one.sync_interval, 1.0)

    async def test_changes_at_once(self):
        """
        What one worker changed (an upload, a yank, a delete) is in the
        other's next look, each time; a look with nothing announced does not
        ask the bucket until its own interval is up.
        """
        one, two = await self.worker(1), await self.worker(2)
        for number in range(8):
            temp, record, metadata, _ = self.spool_wheel(one, version=f"1.{number}")
            kept = await one.publish(temp, record, metadata)
            polled = await two.poll()
            self.assertEqual([c.filename for c in polled.files], [kept.filename])
            self.assertEqual(polled.files[0].record.sha256, kept.sha256)
            self.assertEqual((await one.poll()).files, [])
        yanked = kept.replace(yanked="broken")
        await two.update(yanked)
        # (the bucket's look brings this worker's own changes since its last too)
        polled = await one.poll()
        self.assertEqual([c.record.yanked for c in polled.files if c.filename == kept.filename],
                         ["broken"])
        await two.delete(yanked)
        polled = await one.poll()
        self.assertEqual([(c.filename, c.record) for c in polled.files], [(kept.filename, None)])
        calls = []
        original = one.inner.poll
        one.inner.poll = lambda: calls.append(1) or original()
        await one.poll()
        self.assertEqual(calls, [])
        self.clock.advance(60)
        await one.poll()
        self.assertEqual(calls, [1])

    async def test_other_announcements(self):
        """Another storage's announcements, and a worker's own, ask nothing of the bucket."""
        one, two = await self.worker(1), await self.worker(2)
        calls = []
        original = two.inner.poll
        two.inner.poll = lambda: calls.append(1) or original()
        self.ring.announce(b"f " + folder_key("/elsewhere") + b" x.whl")
        two._ring.announce(b"f " + folder_key(two.inner.identity()) + b" y.whl")
        await two.poll()
        self.assertEqual(calls, [])
        one._ring.announce(b"w 3")
        await two.poll()
        self.assertEqual(calls, [1])
