"""
The contract of L{pypid.storage.base.journal.IJournal} as its readers use it,
which every store passes (memory, a folder, and each cloud's server):
serials that grow by one whoever writes, racing writers that both land in
one order every reader sees, a reader that stopped going on from where it
was, and the chain through it all intact.

A test case mixes L{JournalContractMixin} into a
C{twisted.trial.unittest.TestCase} and gives L{make_journal}, a new
journal of an empty store, and L{writer_of}, another journal (another
server's, or another worker's) of the same store.
"""

from twisted.internet.defer import gatherResults
from zope.interface.verify import verifyObject

from pypid.core.records.audit_chain import Entry, format_time
from pypid.storage.base.journal import BEGINNING, IJournal

#: 2026-01-01T00:00:00Z
T0 = 1767225600.0


def change(offset, **fields):
    """An upload's entry at C{T0 + offset}."""
    fields.setdefault("user", "alice")
    fields.setdefault("filename", f"f{offset}.whl")
    return Entry(time=format_time(T0 + offset), event="upload", **fields)


class JournalContractMixin:
    """The contract; see the module."""

    def make_journal(self):
        """A new journal of a new, empty store (or a Deferred or coroutine of one)."""
        raise NotImplementedError

    def writer_of(self, journal):
        """Another journal of C{journal}'s store, as another server makes it."""
        raise NotImplementedError

    async def journal(self):
        made = self.make_journal()
        if hasattr(made, "__await__") or hasattr(made, "addCallback"):
            made = await made
        return made

    async def test_provides(self):
        """It provides L{IJournal}, and an empty one holds nothing after the beginning."""
        journal = await self.journal()
        self.assertTrue(verifyObject(IJournal, journal))
        self.assertEqual(await journal.head(), BEGINNING)
        self.assertEqual(await journal.since(0), [])

    async def test_serials(self):
        """Each entry has the serial after the one before; C{append} fires with its last."""
        journal = await self.journal()
        self.assertEqual(await journal.append([change(0), change(1)]), BEGINNING + 2)
        self.assertEqual(await journal.append([change(2)]), BEGINNING + 3)
        self.assertEqual(journal.last_serial, BEGINNING + 3)
        found = await journal.since(BEGINNING)
        self.assertEqual([(e.serial, e.filename) for e in found], [
            (BEGINNING + 1, "f0.whl"), (BEGINNING + 2, "f1.whl"), (BEGINNING + 3, "f2.whl")])
        self.assertEqual([e.serial for e in await journal.since(BEGINNING + 1, 1)],
                         [BEGINNING + 2])
        self.assertEqual(await journal.since(BEGINNING + 3), [])
        self.assertEqual(await journal.head(), BEGINNING + 3)
        self.assertTrue(all(e.id is not None for e in found))

    async def test_listened(self):
        """A listener hears each batch, numbered, before its writers' appends fire."""
        journal = await self.journal()
        heard = []
        journal.listen(lambda entries: heard.append([e.serial for e in entries]))
        await journal.append([change(0), change(1)])
        self.assertEqual(heard, [[BEGINNING + 1, BEGINNING + 2]])

    async def test_racing_writers(self):
        """
        Two servers writing at once both land, each entry once, in one
        order every reader sees, without a gap, the chain intact.
        """
        one = await self.journal()
        two = self.writer_of(one)
        await gatherResults([one.append([change(i, user="one")]) for i in range(3)]
                            + [two.append([change(i, user="two")]) for i in range(3)])
        await gatherResults([one.append([change(10 + i, user="one")]) for i in range(2)]
                            + [two.append([change(10 + i, user="two")]) for i in range(2)])
        seen = [await self.writer_of(one).since(0) for _ in range(2)] + [await one.since(0)]
        for found in seen:
            self.assertEqual([e.serial for e in found],
                             list(range(BEGINNING + 1, BEGINNING + 11)))
            self.assertEqual(sorted((e.user, e.filename) for e in found), sorted(
                [(who, f"f{i}.whl") for who in ("one", "two") for i in (0, 1, 2, 10, 11)]))
        self.assertEqual(seen[0], seen[1])
        self.assertEqual(seen[0], seen[2])
        self.assertEqual((await one.verify()).broken, ())

    async def test_reader_resumes(self):
        """A reader that stopped (a new process) reads from its serial what came after."""
        journal = await self.journal()
        await journal.append([change(i) for i in range(5)])
        cursor = (await journal.since(0, 2))[-1].serial
        await self.writer_of(journal).append([change(9)])
        later = self.writer_of(journal)
        found = await later.since(cursor)
        self.assertEqual([e.filename for e in found],
                         ["f2.whl", "f3.whl", "f4.whl", "f9.whl"])
        self.assertEqual(await later.head(), BEGINNING + 6)

    async def test_written_after_another(self):
        """A server that wrote goes on after what another wrote meanwhile."""
        one = await self.journal()
        two = self.writer_of(one)
        await one.append([change(0)])
        await two.append([change(1)])
        self.assertEqual(await one.append([change(2)]), BEGINNING + 3)
        self.assertEqual([e.filename for e in await two.since(0)],
                         ["f0.whl", "f1.whl", "f2.whl"])
        self.assertEqual((await two.verify()).broken, ())
