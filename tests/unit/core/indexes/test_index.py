"""
Tests for L{pypid.core.indexes.index}: the in-memory index of projects, files and
tombstones, and the pages it keeps rendered.
"""

import json
from operator import itemgetter

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.version_order import latest_per_project, page_order, version_key
from pypid.core.indexes.index import Index
from pypid.core.indexes.project import Project
from pypid.core.indexes.render import HTML, JSON
from tests.harness.records import LaterRecords, file_url, make_record


@attrs.frozen
class _Listed:
    """A file a page lists."""

    version: str
    filename: str


class IndexChangeTests(SynchronousTestCase):
    """Tests for adding, yanking and removing files."""

    def setUp(self):
        self.index = Index(file_url)

    def test_empty(self):
        """A new index has no projects, files or tombstones, and serial 0."""
        self.assertEqual(self.index.projects(), [])
        self.assertEqual(len(self.index), 0)
        self.assertEqual(self.index.tombstones(), [])
        self.assertEqual(self.index.serial, 0)
        self.assertIsNone(self.index.project("holy-grail"))
        self.assertIsNone(self.index.get_file("x.whl"))

    def test_add(self):
        """An added file is found by filename and under its project, and the serial moves."""
        record = make_record()
        self.index.add(record)
        self.assertEqual(self.index.serial, 1)
        self.assertIs(self.index.get_file(record.filename), record)
        project = self.index.project("holy-grail")
        self.assertEqual(project.files, {record.filename: record})
        self.assertEqual(self.index.records(), [record])
        self.assertEqual(len(self.index), 1)

    def test_yank_by_add(self):
        """Adding an evolved record replaces the old one (that is how a yank is made)."""
        record = make_record()
        self.index.add(record)
        yanked = record.replace(yanked="broken")
        self.index.add(yanked)
        self.assertEqual(self.index.serial, 2)
        self.assertIs(self.index.get_file(record.filename), yanked)
        self.assertEqual(len(self.index), 1)
        self.assertEqual(list(self.index.project("holy-grail").files.values()), [yanked])

    def test_remove(self):
        """A removed file is gone but its filename stays as a tombstone."""
        record = make_record()
        self.index.add(record)
        self.index.remove(record.filename)
        self.assertEqual(self.index.serial, 2)
        self.assertIsNone(self.index.get_file(record.filename))
        self.assertTrue(self.index.is_deleted(record.filename))
        self.assertEqual(self.index.tombstones(), [record.filename])
        self.assertEqual(len(self.index), 0)

    def test_tombstone_keeps_project(self):
        """A project whose files are all deleted stays known, with no files."""
        record = make_record()
        self.index.add(record)
        self.index.remove(record.filename)
        project = self.index.project("holy-grail")
        self.assertIsNotNone(project)
        self.assertEqual(project.files, {})
        self.assertEqual([p.name for p in self.index.projects()], ["holy-grail"])

    def test_remove_unknown(self):
        """Removing a filename the index never held still records a tombstone and its project."""
        self.index.remove("other_thing-2.0.tar.gz")
        self.assertTrue(self.index.is_deleted("other_thing-2.0.tar.gz"))
        self.assertEqual([p.name for p in self.index.projects()], ["other-thing"])

    def test_remove_unparseable(self):
        """A tombstone whose name is not a distribution makes no project."""
        self.index.remove("README")
        self.assertTrue(self.index.is_deleted("README"))
        self.assertEqual(self.index.projects(), [])

    def test_projects_sorted(self):
        """Projects are listed by normalized name."""
        for project in ("zope", "attrs", "m-thing"):
            self.index.add(make_record(project=project))
        self.assertEqual([p.name for p in self.index.projects()], ["attrs", "m-thing", "zope"])

    def test_load(self):
        """load() replaces everything with the given records and tombstones."""
        self.index.add(make_record(project="old"))
        serial = self.index.serial
        kept = make_record(project="new", name="New")
        self.index.load([kept], ["gone-1.0.tar.gz"])
        self.assertEqual(self.index.serial, serial + 1)
        self.assertIsNone(self.index.project("old"))
        self.assertEqual(self.index.records(), [kept])
        self.assertEqual(self.index.tombstones(), ["gone-1.0.tar.gz"])
        self.assertEqual([p.name for p in self.index.projects()], ["gone", "new"])
        self.assertEqual(self.index.project("new").display_name, "New")


class DisplayNameTests(SynchronousTestCase):
    """Tests for a project's display name."""

    def setUp(self):
        self.index = Index(file_url)

    def test_from_first_file(self):
        """The display name is the name the first file's metadata spells."""
        self.index.add(make_record(name="Holy.Grail"))
        self.index.add(make_record(version="2.0", name="HOLY_GRAIL"))
        self.assertEqual(self.index.project("holy-grail").display_name, "Holy.Grail")

    def test_improved_from_normalized(self):
        """A normalized display name gives way to a file's own spelling."""
        self.index.add(make_record(name="holy-grail"))
        self.index.add(make_record(version="2.0", name="Holy_Grail"))
        self.assertEqual(self.index.project("holy-grail").display_name, "Holy_Grail")

    def test_after_tombstone(self):
        """A project known only by a tombstone takes the name of its next file."""
        self.index.remove("holy_grail-0.1.tar.gz")
        self.assertEqual(self.index.project("holy-grail").display_name, "holy-grail")
        self.index.add(make_record(name="HolyGrail"))
        self.assertEqual(self.index.project("holy-grail").display_name, "holy-grail")
        self.index.add(make_record(version="2.0", name="Holy.Grail"))
        self.assertEqual(self.index.project("holy-grail").display_name, "Holy.Grail")

    def test_not_from_another_name(self):
        """A metadata name that does not normalize to the project is not shown."""
        self.index.add(make_record(name="holy-grail"))
        self.index.add(make_record(version="2.0", name="Other"))
        self.assertEqual(self.index.project("holy-grail").display_name, "holy-grail")

    def test_root_page_shows_it(self):
        """The root pages list projects by display name and link them by normalized name."""
        self.index.add(make_record(name="holy-grail"))
        before = self.index.rendered.root_page(JSON)
        self.index.add(make_record(version="2.0", name="Holy.Grail"))
        after = self.index.rendered.root_page(JSON)
        self.assertIsNot(before, after)
        self.assertEqual(json.loads(after.body)["projects"], [{"name": "Holy.Grail"}])
        self.assertIn(b'<a href="holy-grail/">Holy.Grail</a>', self.index.rendered.root_page(HTML).body)


class VersionTests(SynchronousTestCase):
    """Tests for the versions of a project and which is the latest."""

    def project(self, *versions, yanked=()):
        """Return a project with one wheel per version, the given ones yanked."""
        index = Index(file_url)
        for version in versions:
            index.add(make_record(version=version,
                                  yanked="bad" if version in yanked else None))
        return index.project("holy-grail")

    def test_versions_order(self):
        """Versions are in PEP 440 order, not text order, each once."""
        project = self.project("1.10", "1.2", "1.0", "1.0rc1", "1.0.post1")
        self.assertEqual(project.versions(), ["1.0rc1", "1.0", "1.0.post1", "1.2", "1.10"])

    def test_versions_once(self):
        """A version with several files is listed once."""
        index = Index(file_url)
        index.add(make_record())
        index.add(make_record(kind="sdist"))
        self.assertEqual(index.project("holy-grail").versions(), ["1.0"])

    def test_version_key(self):
        """Invalid versions sort before valid ones, by text."""
        self.assertEqual(sorted(["2.0", "zzz", "1.0", "aaa"], key=version_key),
                         ["aaa", "zzz", "1.0", "2.0"])

    @given(st.lists(st.tuples(
        st.sampled_from(["1.0", "1.0.0", "1!0.1", "2.0rc1", "2.0", "1.10", "1.9", "bad",
                         "Bad", "1.0+local", "1.0.post1", "1.0.dev3"]),
        st.sampled_from(["a.whl", "b.tar.gz", "c.zip"]))))
    def test_page_order(self, pairs):
        """
        L{page_order} orders files as sorting each by C{(version_key, filename)}
        does, a file or a pair holding one alike, whatever the versions
        (equal ones spelt two ways, invalid ones, epochs).
        """
        files = [_Listed(version, filename) for version, filename in pairs]
        expected = sorted(files, key=lambda f: (version_key(f.version), f.filename))
        self.assertEqual(page_order(files), expected)
        self.assertEqual([f for f, _ in page_order([(f, "x") for f in files], itemgetter(0))],
                         expected)

    def test_sorted_files(self):
        """Files are listed by version, then filename."""
        index = Index(file_url)
        for record in (make_record(version="2.0", kind="sdist"), make_record(version="2.0"),
                       make_record(version="1.10"), make_record(version="1.9")):
            index.add(record)
        self.assertEqual(
            [r.filename for r in index.project("holy-grail").sorted_files()],
            ["holy_grail-1.9-py3-none-any.whl", "holy_grail-1.10-py3-none-any.whl",
             "holy_grail-2.0-py3-none-any.whl", "holy_grail-2.0.tar.gz"],
        )

    def test_latest_final(self):
        """The latest version is the newest final release."""
        self.assertEqual(self.project("1.0", "1.10", "1.9").latest_version(), "1.10")

    def test_latest_skips_prereleases(self):
        """A pre-release newer than a final is not the latest."""
        self.assertEqual(self.project("1.0", "2.0b1", "2.0.dev3").latest_version(), "1.0")

    def test_latest_only_prereleases(self):
        """With only pre-releases, the newest one is the latest."""
        self.assertEqual(self.project("2.0a1", "2.0b1").latest_version(), "2.0b1")

    def test_latest_skips_yanked(self):
        """A yanked release is passed over for an older one that is not yanked."""
        self.assertEqual(self.project("1.0", "2.0", yanked=("2.0",)).latest_version(), "1.0")

    def test_latest_partly_yanked(self):
        """A release with one file not yanked still counts."""
        index = Index(file_url)
        index.add(make_record(version="1.0"))
        index.add(make_record(version="2.0", yanked=""))
        index.add(make_record(version="2.0", kind="sdist"))
        self.assertEqual(index.project("holy-grail").latest_version(), "2.0")

    def test_latest_all_yanked(self):
        """When every release is yanked, the newest final one is the latest."""
        self.assertEqual(self.project("1.0", "2.0", "3.0rc1", yanked=("1.0", "2.0", "3.0rc1"))
                         .latest_version(), "2.0")

    def test_latest_none(self):
        """A project with no files has no latest version."""
        self.assertIsNone(Project("x", "x").latest_version())


class SameDistributionTests(SynchronousTestCase):
    """Tests for L{Index.same_distribution}: one file per distribution, whatever its spelling."""

    def test_other_spelling(self):
        """Another spelling of a stored wheel's name is reported with the stored name."""
        index = Index(lambda r: r.filename)
        index.add(make_record("demo-pkg"))
        self.assertEqual(index.same_distribution("Demo.Pkg-1.0-py3-none-any.whl"),
                         "demo_pkg-1.0-py3-none-any.whl")
        self.assertIsNone(index.same_distribution("demo_pkg-1.0-py3-none-any.whl"))
        self.assertIsNone(index.same_distribution("demo_pkg-1.0-cp311-cp311-linux_x86_64.whl"))

    def test_deleted_counts(self):
        """A deleted file's other spellings stay taken."""
        index = Index(lambda r: r.filename)
        index.add(make_record("demo-pkg", kind="sdist"))
        index.remove("demo_pkg-1.0.tar.gz")
        self.assertEqual(index.same_distribution("Demo-Pkg-1.0.tar.gz"), "demo_pkg-1.0.tar.gz")

    def test_keys_made_on_first_question(self):
        """
        A loaded index keeps no keys until an upload asks about a project,
        and then only that project's; a project's keys follow its changes
        after that (adds, deletions, files another server rolled back).
        """
        index = Index(lambda r: r.filename)
        index.load([make_record("demo-pkg"), make_record("other")],
                   ["demo_pkg-0.9.tar.gz", "gone-1.0.tar.gz"])
        self.assertEqual([p._keys for p in index.projects()], [None, None, None])
        self.assertEqual(index.same_distribution("Demo.Pkg-0.9.0.tar.gz"), "demo_pkg-0.9.tar.gz")
        self.assertIsNone(index.project("other")._keys)
        self.assertIsNone(index.same_distribution("unknown-1.0.tar.gz"))
        self.assertIsNone(index.same_distribution("not a distribution"))
        index.add(make_record("demo-pkg", "2.0", kind="sdist"))
        self.assertEqual(index.same_distribution("DEMO_PKG-2.0.0.tar.gz"), "demo_pkg-2.0.tar.gz")
        index.discard("demo_pkg-2.0.tar.gz")
        self.assertIsNone(index.same_distribution("DEMO_PKG-2.0.0.tar.gz"))
        index.remove("demo_pkg-1.0-py3-none-any.whl")
        self.assertEqual(index.same_distribution("Demo.Pkg-1.0-py3-none-any.whl"),
                         "demo_pkg-1.0-py3-none-any.whl")
        self.assertEqual(index.same_distribution("Gone-1.0.0.tar.gz"), "gone-1.0.tar.gz")

    def test_deleted_set_made_at_the_first(self):
        """
        Projects without a deleted file share one empty set of them; the
        first buried gives its project a set of its own, which the others
        do not see.
        """
        index = Index(lambda r: r.filename)
        index.load([make_record("demo-pkg"), make_record("other")])
        demo, other = index.project("demo-pkg"), index.project("other")
        self.assertIs(demo.deleted, other.deleted)
        index.remove("demo_pkg-1.0-py3-none-any.whl")
        self.assertEqual((demo.deleted, other.deleted),
                         ({"demo_pkg-1.0-py3-none-any.whl"}, set()))
        self.assertTrue(demo.claimed)

    def test_serial_continues(self):
        """Loading with a saved serial continues counting from it."""
        index = Index(lambda r: r.filename)
        index.load([], (), serial=41)
        self.assertEqual(index.serial, 42)


class LatestPerProjectTests(SynchronousTestCase):
    """L{latest_per_project} picks the file worth describing ahead of a view."""

    def test_latest_version_wheel_first(self):
        """
        One file a project: of the version its page shows first (the
        latest final release, not a newer pre-release; a yanked one only
        when nothing else is there), a wheel before an sdist.
        """
        records = [make_record("a", "1.0"), make_record("a", "2.0"),
                   make_record("a", "2.0", kind="sdist"), make_record("a", "10.0rc1"),
                   make_record("b", "0.1", kind="sdist"), make_record("c", "1.0"),
                   make_record("c", "1.1", yanked="bad"), make_record("d", "1.0a1")]
        self.assertEqual(latest_per_project(records),
                         {"a-2.0-py3-none-any.whl", "b-0.1.tar.gz", "c-1.0-py3-none-any.whl",
                          "d-1.0a1-py3-none-any.whl"})

    def test_same_rule_as_the_project(self):
        """The version chosen is the one L{Project.latest_version} gives."""
        index = Index(lambda r: r.filename)
        records = [make_record("a", v, yanked=y) for v, y in
                   (("1.0", None), ("1.1", "x"), ("2.0b1", None))]
        index.load(records)
        self.assertEqual(index.project("a").latest_version(), "1.0")
        self.assertEqual(latest_per_project(records), {"a-1.0-py3-none-any.whl"})


class LoadLaterTests(SynchronousTestCase):
    """
    Projects given to L{Index.load} as C{later} are listed, counted and
    found by filename at once, and their records made the first time
    anything asks for them.
    """

    def setUp(self):
        self.index = Index(file_url)
        self.made = []
        self.grail = [make_record("holy-grail", v, name="Holy.Grail") for v in ("1.0", "2.0")]
        self.spam = [make_record("spam", "0.1")]
        self.index.load([make_record("eager", "1.0")], ["spam-0.0.tar.gz"], 3, [
            self.later("holy-grail", "Holy.Grail", self.grail),
            self.later("spam", "Spam", self.spam),
        ])

    def later(self, name, display, records, gives=None):
        """A C{later} entry whose source notes that it was called."""
        def source():
            self.made.append(name)
            return list(records if gives is None else gives)
        return LaterRecords(name, display, len(records), source)

    def test_listed_and_counted(self):
        """Every project is listed and every file counted before a record is made."""
        self.assertEqual(len(self.index), 4)
        self.assertEqual([(p.name, p.display_name) for p in self.index.projects()],
                         [("eager", "eager"), ("holy-grail", "Holy.Grail"), ("spam", "Spam")])
        self.assertIn(b"Holy.Grail", self.index.rendered.root_page(HTML).body)
        self.assertEqual(sorted(self.index.later.names()), ["holy-grail", "spam"])
        self.assertEqual(self.made, [])
        self.assertEqual(self.index.serial, 4)

    def test_file_found_through_its_project(self):
        """
        A file's lookup makes the records of its project only: the one
        given (a file's URL names it), else the one its name tells. A file
        not found there is not looked for further when the project was
        given; when not, every project's records are made, once.
        """
        self.assertEqual(self.index.get_file(self.grail[1].filename), self.grail[1])
        self.assertEqual(self.made, ["holy-grail"])
        self.assertEqual(self.index.later.names(), ["spam"])
        self.assertIsNone(self.index.get_file("holy_grail-9.0-py3-none-any.whl", "holy-grail"))
        self.assertIsNone(self.index.get_file("spam-9.0.tar.gz", "eager"))
        self.assertEqual(self.made, ["holy-grail"])
        self.assertEqual(self.index.get_file(self.spam[0].filename, "spam"), self.spam[0])
        self.assertEqual(self.made, ["holy-grail", "spam"])

    def test_odd_name_makes_all(self):
        """A file whose name tells another project is found all the same."""
        odd = self.spam[0].replace(filename="SPAM_legacy-0.1.zip", path="SPAM_legacy-0.1.zip")
        index = Index(file_url)
        index.load([], later=[self.later("spam", "Spam", [odd]),
                              self.later("holy-grail", "Holy.Grail", self.grail)])
        self.assertIs(index.get_file(odd.filename), odd)
        self.assertEqual(index.later.names(), [])

    def test_page_made_once(self):
        """A project's page makes its records once; a second page does not again."""
        project = self.index.project("holy-grail")
        self.assertFalse(project.loaded)
        self.assertIn(self.grail[0].filename.encode(),
                      self.index.rendered.project_page(project, HTML).body)
        self.index.rendered.project_page(project, JSON)
        self.assertTrue(project.loaded)
        self.assertEqual(self.made, ["holy-grail"])

    def test_records_make_all(self):
        """L{Index.records} makes every project's; L{LaterProjects.make} does it ahead."""
        self.index.later.make(["spam"])
        self.assertEqual(self.made, ["spam"])
        self.assertEqual(sorted(r.filename for r in self.index.records()),
                         sorted(r.filename for r in [make_record("eager", "1.0"),
                                                     *self.grail, *self.spam]))
        self.assertEqual(self.made, ["spam", "holy-grail"])
        self.assertEqual(self.index.later.names(), [])

    def test_changes_to_a_project_not_made_yet(self):
        """Adding to, yanking in, removing from and discarding from such a project work."""
        new = make_record("holy-grail", "3.0", name="Holy.Grail")
        self.index.add(new)
        self.assertEqual(len(self.index.project("holy-grail").files), 3)
        self.index.remove(self.spam[0].filename)
        self.assertIsNone(self.index.get_file(self.spam[0].filename))
        self.assertTrue(self.index.is_deleted(self.spam[0].filename))
        self.index.discard(self.grail[0].filename)
        self.assertEqual(len(self.index), 3)
        self.assertFalse(self.index.is_deleted(self.grail[0].filename))
        self.assertEqual(self.index.same_distribution("Holy_Grail-3.0-py3-none-any.whl"),
                         new.filename)

    def test_tombstone_of_a_later_project(self):
        """A project first made for a deleted filename takes the spelling given later."""
        project = self.index.project("spam")
        self.assertEqual(project.display_name, "Spam")
        self.assertEqual(project.deleted, {"spam-0.0.tar.gz"})

    def test_source_gives_fewer(self):
        """A file the source does not give (a damaged line) is forgotten then."""
        index = Index(file_url)
        index.load([], later=[self.later("holy-grail", "Holy.Grail", self.grail,
                                         gives=self.grail[:1])])
        self.assertEqual(len(index), 2)
        self.assertIsNone(index.get_file(self.grail[1].filename))
        self.assertEqual(len(index), 1)
        self.assertEqual(index.records(), self.grail[:1])

    def test_file_in_two_projects(self):
        """A filename two projects give is the one first made's, never both's."""
        index = Index(file_url)
        odd = self.grail[0].replace(project="spam", name="spam")
        index.load([], later=[self.later("holy-grail", "Holy.Grail", self.grail),
                              self.later("spam", "spam", [odd])])
        self.assertEqual(len(index), 3)  # (counted twice until made)
        self.assertIs(index.get_file(odd.filename, "spam"), odd)
        self.assertEqual(list(index.project("holy-grail").files), [self.grail[1].filename])
        self.assertEqual(len(index), 2)

    def test_source_fails(self):
        """
        A source that raises leaves its project empty and no longer
        waiting: nothing is left to make, and the index counts no file of it.
        """
        index = Index(file_url)

        def broken():
            raise RuntimeError("disk on fire")
        index.load([], later=[LaterRecords("spam", "Spam", 1, broken)])
        self.assertRaises(RuntimeError, index.get_file, "spam-0.1.tar.gz", "spam")
        self.assertEqual((index.later.names(), len(index)), ([], 0))
        self.assertEqual(index.project("spam").files, {})
        self.assertEqual(index.records(), [])

    def test_given_twice(self):
        """A project given both as records and later is refused."""
        index = Index(file_url)
        self.assertRaises(ValueError, index.load, self.grail,
                          later=[self.later("holy-grail", "Holy.Grail", self.grail)])

    def test_load_again_forgets(self):
        """A new load forgets what waited to be made."""
        self.index.load([make_record("eager", "1.0")])
        self.assertEqual(self.index.later.names(), [])
        self.assertEqual(len(self.index), 1)

    def test_count_and_loaded_records(self):
        """
        A project's count and the records made so far are known without
        making the others.
        """
        self.assertEqual([p.count for p in self.index.projects()], [1, 2, 1])
        self.assertEqual(self.index.loaded_records(), [make_record("eager", "1.0")])
        self.index.get_file(self.spam[0].filename)
        self.assertEqual(len(self.index.loaded_records()), 2)
        self.assertEqual(self.made, ["spam"])

    def test_catalog_while_waiting(self):
        """
        The landing page's counts and recent uploads make no project's
        records while they wait (those made so far are shown), and are
        whole once every one is made.
        """
        from pypid.core.formats.catalog import Catalog

        catalog = Catalog(self.index)
        self.assertEqual(catalog.counts(), (3, 4))
        self.assertEqual([u.project for u in catalog.recent()], ["eager"])
        self.assertEqual(self.made, [])
        self.index.later.make()
        self.assertEqual(sorted(u.version for u in catalog.recent()), ["0.1", "1.0", "1.0", "2.0"])


class ChangeCounterTests(SynchronousTestCase):
    """
    L{Project.changes} counts every change of a project's files and
    L{RenderedPages.listing_serial} every change of the list of projects, so that
    a page composed of them elsewhere (L{pypid.core.indexes.composed}) knows when it
    is out of date.
    """

    def setUp(self):
        self.index = Index(file_url)
        self.record = make_record()
        self.index.add(self.record)
        self.project = self.index.project("holy-grail")

    def test_each_change_counted(self):
        """An add, a yank, an unyank, a removal and a discard each bump C{changes} once."""
        counts = [self.project.changes]
        other = make_record(version="2.0")
        self.index.add(other)
        counts.append(self.project.changes)
        self.index.add(other.replace(yanked="broken"))
        counts.append(self.project.changes)
        self.index.add(other.replace(yanked=None))
        counts.append(self.project.changes)
        self.index.remove(other.filename)
        counts.append(self.project.changes)
        self.index.add(make_record(version="3.0"))
        self.index.discard(make_record(version="3.0").filename)
        counts.append(self.project.changes)
        self.assertEqual(counts, [1, 2, 3, 4, 5, 7])

    def test_not_compared(self):
        """Two projects equal but for their counts of changes are equal (it is bookkeeping)."""
        fresh = Project("holy-grail", "holy-grail", {self.record.filename: self.record})
        self.assertEqual(fresh.changes, 0)
        self.assertEqual(fresh, self.project)

    def test_listing_serial(self):
        """
        A new project, a tombstone of an unknown one, a project forgotten
        and a load move the listing serial; a change within a project does not.
        """
        serials = [self.index.rendered.listing_serial]
        self.index.add(make_record(version="2.0"))
        serials.append(self.index.rendered.listing_serial)
        self.index.add(make_record("spam"))
        serials.append(self.index.rendered.listing_serial)
        self.index.remove("eggs-1.0.tar.gz")
        serials.append(self.index.rendered.listing_serial)
        extra = make_record("parrot")
        self.index.add(extra)
        self.index.discard(extra.filename)
        serials.append(self.index.rendered.listing_serial)
        self.index.load([])
        serials.append(self.index.rendered.listing_serial)
        self.assertEqual(serials, [1, 1, 2, 3, 5, 6])
