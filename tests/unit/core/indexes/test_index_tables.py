"""
Tests for the tables an L{pypid.core.indexes.index.Index} owns beside its records:
L{ProjectStatuses}, L{PromotedFiles} and L{LaterProjects}, each on its own
(the index's use of them is tested in C{tests.unit.core.indexes.test_index}).
"""

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.indexes.project import LaterProjects, Project
from pypid.core.indexes.project_status import ProjectStatus, ProjectStatuses
from pypid.core.indexes.promotion import PromotedFiles, Promotion
from tests.harness.records import LaterRecords, make_record

PROMOTION = Promotion("staging", "bob", 1.0)


class ProjectStatusesTests(SynchronousTestCase):
    """L{ProjectStatuses}: the statuses by name, each change told."""

    def setUp(self):
        self.told = []
        self.statuses = ProjectStatuses(self.told.append)

    def test_active_is_none(self):
        """A project with no status is active: L{None}, and not quarantined."""
        self.assertIsNone(self.statuses.get("spam"))
        self.assertFalse(self.statuses.quarantined("spam"))

    def test_set_and_clear(self):
        """A status set is read back and told of; L{None} clears it, told of too."""
        self.statuses.set("spam", ProjectStatus("quarantined", "report"))
        self.assertEqual(self.statuses.get("spam"), ProjectStatus("quarantined", "report"))
        self.assertTrue(self.statuses.quarantined("spam"))
        self.statuses.set("spam", None)
        self.assertEqual((self.statuses.all(), self.told), ({}, ["spam", "spam"]))

    def test_take_tells_only_changes(self):
        """L{ProjectStatuses.take} replaces every status, telling only of those that differ."""
        self.statuses.set("eggs", ProjectStatus("archived"))
        self.statuses.set("spam", ProjectStatus("deprecated"))
        del self.told[:]
        self.statuses.take({"spam": ProjectStatus("deprecated"), "ham": ProjectStatus("archived")})
        self.assertEqual(self.statuses.all(), {"spam": ProjectStatus("deprecated"),
                                               "ham": ProjectStatus("archived")})
        self.assertEqual(self.told, ["eggs", "ham"])

    def test_changed_since(self):
        """
        A bookmark (L{ProjectStatuses.serial}) names the projects whose
        status was set after it, set back to what it was too.
        """
        self.statuses.set("eggs", ProjectStatus("archived"))
        bookmark = self.statuses.serial
        self.assertEqual(self.statuses.changed_since(bookmark), set())
        self.statuses.set("spam", ProjectStatus("quarantined"))
        self.statuses.set("spam", None)
        self.statuses.take({"eggs": ProjectStatus("archived"), "ham": ProjectStatus("archived")})
        self.assertEqual(self.statuses.changed_since(bookmark), {"spam", "ham"})
        self.assertEqual(self.statuses.changed_since(0), {"eggs", "spam", "ham"})


class Holder:
    """A source index holding some records (L{pypid.core.indexes.promotion.RecordHolder})."""

    def __init__(self, *records):
        self.records = {r.filename: r for r in records}

    def get_file(self, filename, project=None):
        """The record of C{filename}, or L{None}."""
        return self.records.get(filename)


class PromotedFilesTests(SynchronousTestCase):
    """L{PromotedFiles}: the promotions by filename, and the records shared."""

    def test_note_get_forget(self):
        """A promotion noted is read back, among those C{of} live files, until forgotten."""
        promoted = PromotedFiles()
        promoted.note("a.whl", PROMOTION)
        self.assertEqual(promoted.get("a.whl"), PROMOTION)
        self.assertEqual(promoted.of({"a.whl", "b.whl"}), {"a.whl": PROMOTION})
        self.assertEqual(promoted.of(set()), {})
        promoted.forget("a.whl")
        self.assertIsNone(promoted.get("a.whl"))
        promoted.replace({"b.whl": PROMOTION})
        self.assertEqual(promoted.of({"a.whl", "b.whl"}), {"b.whl": PROMOTION})

    def test_shared_when_equal(self):
        """A promoted file's record is its source's when the two are equal, not otherwise."""
        theirs = make_record()
        source = Holder(theirs)
        promoted = PromotedFiles(lambda name: source if name == "staging" else None)
        mine = make_record()
        self.assertIsNot(mine, theirs)
        self.assertIs(promoted.shared(mine, Holder()), mine)  # (not promoted)
        promoted.note(mine.filename, PROMOTION)
        self.assertIs(promoted.shared(mine, Holder()), theirs)
        self.assertIs(promoted.shared(mine, source), mine)  # (its own source)
        other = make_record(size=1)
        self.assertIs(promoted.shared(other, Holder()), other)

    def test_no_peers_no_sharing(self):
        """Without peers (a server of one index) nothing is shared."""
        promoted = PromotedFiles()
        record = make_record()
        promoted.note(record.filename, PROMOTION)
        records = {record.filename: record}
        self.assertEqual(promoted.share_in(records, Holder()), [])
        self.assertIs(records[record.filename], record)

    def test_share_in(self):
        """L{PromotedFiles.share_in} takes the source's equal records in place, and names them."""
        theirs, unpromoted = make_record(), make_record(version="2.0")
        source = Holder(theirs, make_record(version="2.0"))
        promoted = PromotedFiles(lambda name: source)
        promoted.note(theirs.filename, PROMOTION)
        mine = make_record()
        records = {mine.filename: mine, unpromoted.filename: unpromoted}
        self.assertEqual(promoted.share_in(records, Holder()), [mine.filename])
        self.assertIs(records[mine.filename], theirs)
        self.assertIs(records[unpromoted.filename], unpromoted)


class LaterProjectsTests(SynchronousTestCase):
    """L{LaterProjects}: the projects waiting for their records, made once asked for."""

    def setUp(self):
        self.files = {}
        self.taken = []

        def take(project, records):
            made = {r.filename: r for r in records}
            self.taken.append(project.name)
            self.files.update(made)
            return made

        self.later = LaterProjects(take, self.files.get)
        self.grail = [make_record("holy-grail", "1.0"), make_record("holy-grail", "2.0")]
        self.project = Project("holy-grail", "Holy.Grail")
        self.later.defer(self.project, LaterRecords("holy-grail", "Holy.Grail", 2,
                                                    lambda: self.grail))

    def test_waiting(self):
        """A project deferred waits, counted with its files, until its files are asked for."""
        self.assertEqual((self.later.names(), self.later.waiting, self.later.file_count),
                         (["holy-grail"], 1, 2))
        self.assertEqual((self.project.loaded, self.project.count), (False, 2))
        self.assertEqual(len(self.project.files), 2)
        self.assertEqual((self.later.names(), self.later.file_count, self.taken),
                         ([], 0, ["holy-grail"]))

    def test_find(self):
        """L{LaterProjects.find} makes the project a filename names, once, and gives the record."""
        record = self.grail[1]
        self.assertEqual(self.later.find(record.filename), record)
        self.assertEqual(self.later.find(record.filename), record)
        self.assertEqual(self.taken, ["holy-grail"])

    def test_find_other_project(self):
        """Given another project, a filename is not found, and that project's records only are made."""
        self.assertIsNone(self.later.find(self.grail[0].filename, "spam"))
        self.assertEqual(self.taken, [])

    def test_failing_source(self):
        """A source that fails leaves the project waiting for nothing."""
        def fail():
            raise OSError("gone")
        project = Project("spam", "spam")
        self.later.defer(project, LaterRecords("spam", "spam", 1, fail))
        self.assertRaises(OSError, lambda: project.files)
        self.assertEqual((self.later.names(), self.later.file_count), (["holy-grail"], 2))

    def test_project_no_longer_waited_for(self):
        """
        A project the table forgot (the index loaded anew) asked for its
        files gets none: its source's records do not reach the index.
        """
        self.later.clear()
        self.assertEqual(self.project.files, {})
        self.assertEqual((self.taken, self.files), ([], {}))

    def test_clear(self):
        """L{LaterProjects.clear} forgets every waiting project."""
        self.later.clear()
        self.assertEqual((self.later.names(), self.later.file_count), ([], 0))
