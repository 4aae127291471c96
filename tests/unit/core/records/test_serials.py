"""
The serials the pages carry (L{pypid.core.records.serials}), made of the
journal's entries: in any order and more than once, a serial only grows;
refused changes and entries of no project move none; what a snapshot keeps
comes back.
"""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.records.audit_chain import BEGINNING, REFUSED, Entry, format_time
from pypid.core.records.serials import ProjectSerials


def entry(serial, project="alpha", index=None, event="upload", **fields):
    return Entry(time=format_time(0), event=event, project=project, index=index,
                 serial=serial, **fields)


class SerialsTests(SynchronousTestCase):

    def test_taken(self):
        """
        A project has its last entry's serial; an index's last is its
        projects' last (another index's changes, a token's, move none of it).
        """
        serials = ProjectSerials()
        moved = []
        serials.listen(lambda index, project: moved.append((index, project)))
        serials.take([entry(2), entry(3, "beta"), entry(4, index="private"),
                      entry(5, None, event="token-issued")])
        self.assertEqual((serials.of(None, "alpha"), serials.of(None, "beta"),
                          serials.of("private", "alpha"), serials.of(None, "gamma")),
                         (2, 3, 4, BEGINNING))
        self.assertEqual((serials.last_of(None), serials.last_of("private")), (3, 4))
        self.assertEqual(moved, [(None, "alpha"), (None, "beta"), ("private", "alpha")])
        view = serials.of_index("private")
        self.assertEqual((view("alpha"), view.last), (4, 4))

    def test_refused_moves_nothing(self):
        """A refused change names a project but changed nothing: its serial stays."""
        serials = ProjectSerials()
        serials.take([entry(2), entry(3, outcome=REFUSED)])
        self.assertEqual((serials.of(None, "alpha"), serials.last_of(None)), (2, 2))

    def test_storage_bookkeeping_moves_nothing(self):
        """
        A shared storage's entry of a project's status it holds (of any
        index's storage: the entry has none) is not a change of the default
        index: the action's own entry moves the serial.
        """
        serials = ProjectSerials()
        serials.take([entry(2), entry(3, event="stored", target=".indexes/team")])
        self.assertEqual((serials.of(None, "alpha"), serials.last_of(None)), (2, 2))

    @given(st.permutations(list(range(2, 12))), st.integers(1, 3))
    def test_any_order_any_times(self, order, times):
        """However the entries come, and however often, each project ends at its last."""
        entries = [entry(n, f"p{n % 3}") for n in order] * times
        serials = ProjectSerials()
        for start in range(0, len(entries), 4):
            serials.take(entries[start:start + 4])
        self.assertEqual([serials.of(None, f"p{k}") for k in range(3)], [9, 10, 11])

    def test_kept(self):
        """What a snapshot keeps is given back, and junk in it left out."""
        serials = ProjectSerials()
        serials.take([entry(2), entry(3, index="private")])
        serials.followed = 3
        again = ProjectSerials()
        again.restore(serials.to_json())
        self.assertEqual((again.of(None, "alpha"), again.of("private", "alpha"),
                          again.followed), (2, 3, 3))
        junk = ProjectSerials()
        for data in (None, [], {"followed": "x", "projects": {"": {"a": "b", 5: 1}}},
                     {"followed": True, "projects": []}):
            junk.restore(data)
        self.assertEqual((junk.followed, junk.of(None, "a")), (BEGINNING, BEGINNING))
