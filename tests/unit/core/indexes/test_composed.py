"""
Tests for L{pypid.core.indexes.composed}: the order of an index's sources, the files
a project lists in a composed index, the view's filters, and the pages an
L{ComposedIndex} keeps, checks and delegates.
"""

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.version_order import version_key
from pypid.core.indexes.composed import ENTRY_COST, ComposedIndex
from pypid.core.indexes.composition import ChainSource, Filters, compose
from pypid.core.indexes.index import Index
from pypid.core.indexes.index_names import resolve_order
from pypid.core.indexes.links import file_url_for
from pypid.core.indexes.render import HTML, JSON
from pypid.core.indexes.rendered_pages import render_page
from pypid.upstream.confusion import UpstreamPolicy, merged
from pypid.upstream.page_model import UpstreamFile
from tests.harness.records import T0, record

#: the links of every index here (relative: the same under every /NAME/)
RELATIVE = file_url_for(None)
DAY = 86400.0
NONE = Filters()


def upfile(project="foo", version="1.0", kind="wheel", filename=None, **kwargs):
    """A file of an upstream's page."""
    dist = project.replace("-", "_")
    if filename is None:
        filename = (f"{dist}-{version}-py3-none-any.whl" if kind == "wheel"
                    else f"{dist}-{version}.tar.gz")
    values = dict(filename=filename, url=f"https://upstream.example/f/{filename}",
                  sha256="b" * 64, project=project, version=version,
                  packagetype="bdist_wheel" if kind == "wheel" else "sdist",
                  upload_time=T0)
    values.update(kwargs)
    return UpstreamFile(**values)


@attrs.define
class FakeUpstream:
    """
    An L{pypid.core.indexes.composition.UpstreamSide} over a dict of cached pages, with
    today's rules (L{UpstreamPolicy}, whose C{Decision} is the admission).
    """

    name: str
    policy: UpstreamPolicy = UpstreamPolicy(mode="cache")
    entries: dict = attrs.field(factory=dict)
    pages: dict = attrs.field(factory=dict)

    def publish(self, project, files):
        """Cache a new page of C{project} (a new token)."""
        self.entries[project] = (object(), tuple(
            sorted(files, key=lambda f: (version_key(f.version), f.filename))))

    def decide(self, project, hosted):
        return self.policy.decide(project, hosted)

    def cached(self, project):
        return self.entries.get(project)

    def status(self, project):
        return None

    def file_url(self, f):
        return RELATIVE(f)

    def page(self, project, kind):
        token, files = self.entries[project]
        key = (project, kind, id(token))
        if key not in self.pages:
            self.pages[key] = render_page(project, files, self.file_url, kind)
        return self.pages[key]


def names_of(composition):
    """The filenames a composition lists, with the source each came from."""
    return [(f.filename, source.name) for f, source in composition.files]


class ResolveOrderTests(SynchronousTestCase):
    """
    L{resolve_order}: itself, then its bases breadth first, left to right,
    each once, the upstreams last (devpi's C{sro}).
    """

    def test_chain(self):
        """A hosted index reads itself, then its base, then the base's upstream."""
        bases = {"staging": ["release"], "release": ["upstream:public"]}
        self.assertEqual(resolve_order("staging", bases),
                         ("staging", "release", "upstream:public"))

    def test_diamond(self):
        """A base shared by two bases is read once, where breadth first meets it first."""
        bases = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": ["upstream:x"]}
        self.assertEqual(resolve_order("a", bases), ("a", "b", "c", "d", "upstream:x"))

    def test_upstreams_last(self):
        """
        An upstream met early is read after every hosted index, as devpi
        reads its mirrors: a hosted file wins whatever its depth.
        """
        bases = {"a": ["upstream:x", "b"], "b": ["c"], "c": ["upstream:y"]}
        self.assertEqual(resolve_order("a", bases), ("a", "b", "c", "upstream:x", "upstream:y"))

    def test_duplicates_dropped(self):
        """A name given twice, directly or through a base, is read at its first place."""
        bases = {"a": ["b", "b", "upstream:x"], "b": ["upstream:x", "upstream:y"]}
        self.assertEqual(resolve_order("a", bases), ("a", "b", "upstream:x", "upstream:y"))

    def test_view_is_no_source(self):
        """A view reads its bases; neither it nor a view among its bases is a source."""
        bases = {"prod": ["frozen"], "frozen": ["release"], "release": ["upstream:p"]}
        self.assertEqual(resolve_order("prod", bases, views={"prod", "frozen"}),
                         ("release", "upstream:p"))

    def test_cycle_ends(self):
        """A cycle (refused by the configuration) still ends."""
        self.assertEqual(resolve_order("a", {"a": ["b"], "b": ["a"]}), ("a", "b"))


class ChainMixin:
    """C{staging} based on C{release} based on C{upstream:public}."""

    def setUp(self):
        self.staging = Index(RELATIVE)
        self.release = Index(RELATIVE)
        self.upstream = FakeUpstream("upstream:public")
        self.order = (ChainSource("staging", hosted=self.staging),
                      ChainSource("release", hosted=self.release),
                      ChainSource("upstream:public", upstream=self.upstream))

    def compose(self, project="foo", filters=NONE, now=T0 + DAY):
        """The composition of C{project} in C{staging}."""
        return compose(self.order, project, filters, now, RELATIVE)


class ComposeTests(ChainMixin, SynchronousTestCase):
    """L{compose}: the files of a project across the chain."""

    def test_hosted_in_order(self):
        """Each hosted source's files are listed, sorted by version then filename."""
        self.staging.add(record(version="2.0"))
        self.release.add(record(version="1.0"))
        self.release.add(record(version="10.0"))
        self.assertEqual(names_of(self.compose()), [
            ("foo-1.0-py3-none-any.whl", "release"),
            ("foo-2.0-py3-none-any.whl", "staging"),
            ("foo-10.0-py3-none-any.whl", "release"),
        ])

    def test_filename_shadows(self):
        """A filename an earlier source lists hides a later source's file of that name."""
        self.staging.add(record(sha256="1" * 64))
        self.release.add(record(sha256="2" * 64))
        composition = self.compose()
        self.assertEqual(names_of(composition), [("foo-1.0-py3-none-any.whl", "staging")])
        self.assertEqual(composition.files[0][0].sha256, "1" * 64)

    def test_distribution_key_shadows(self):
        """Another spelling of the same distribution is hidden as its filename would be."""
        self.staging.add(record(kind="sdist", filename="Foo-1.0.tar.gz"))
        self.release.add(record(kind="sdist", filename="foo-1.0.0.tar.gz", version="1.0.0"))
        self.release.add(record(filename="foo-1.0.0-py3-none-any.whl", version="1.0.0"))
        self.staging.add(record(filename="FOO-1.0-py3-none-any.whl"))
        self.assertEqual(names_of(self.compose()), [
            ("FOO-1.0-py3-none-any.whl", "staging"), ("Foo-1.0.tar.gz", "staging")])

    def test_one_sources_files_all_stand(self):
        """Two files of one source naming one distribution (.tar.gz and .zip) both stay."""
        self.upstream.publish("foo", [upfile(kind="sdist"),
                                      upfile(kind="sdist", filename="foo-1.0.zip")])
        self.assertEqual(len(self.compose().files), 2)

    def test_tombstone_hides_nothing(self):
        """A file deleted from an earlier source leaves a later source's file of that name listed."""
        self.staging.add(record())
        self.staging.remove(record().filename)
        self.release.add(record())
        self.assertEqual(names_of(self.compose()), [("foo-1.0-py3-none-any.whl", "release")])

    def test_upstream_when_hosted_nowhere(self):
        """A project no hosted source holds lists the upstream's files."""
        self.upstream.publish("foo", [upfile()])
        composition = self.compose()
        self.assertEqual(names_of(composition), [("foo-1.0-py3-none-any.whl", "upstream:public")])
        self.assertTrue(composition.found)
        self.assertFalse(composition.hosted)

    def test_hosted_in_base_blocks_upstream(self):
        """A project hosted in a base (not in the index itself) gets no upstream file."""
        self.upstream.publish("foo", [upfile(version="9.0")])
        self.release.add(record())
        self.assertEqual(names_of(self.compose()), [("foo-1.0-py3-none-any.whl", "release")])

    def test_tombstone_in_base_blocks_upstream(self):
        """A project that a base holds only by a deleted file still blocks the upstream."""
        self.upstream.publish("foo", [upfile(version="9.0")])
        self.release.remove("foo-0.1.tar.gz")
        composition = self.compose()
        self.assertEqual(composition.files, ())
        self.assertTrue(composition.hosted)

    def test_merge_lets_upstream_in(self):
        """An upstream that merges the project adds its files, those shadowed left out."""
        self.upstream.policy = UpstreamPolicy(mode="cache", merge=("foo",))
        self.upstream.publish("foo", [upfile(), upfile(version="9.0")])
        self.release.add(record())
        self.assertEqual(names_of(self.compose()), [
            ("foo-1.0-py3-none-any.whl", "release"),
            ("foo-9.0-py3-none-any.whl", "upstream:public")])

    def test_private_never_upstream(self):
        """A private name gets no upstream file even when hosted nowhere."""
        self.upstream.policy = UpstreamPolicy(mode="cache", private=("foo",))
        self.upstream.publish("foo", [upfile()])
        composition = self.compose()
        self.assertEqual(composition.files, ())
        self.assertFalse(composition.found)

    def test_same_as_merged(self):
        """Shadowing of upstream files is L{pypid.upstream.confusion.merged}'s rule."""
        self.upstream.policy = UpstreamPolicy(mode="cache", merge=("foo",))
        hosted = [record(), record(kind="sdist", filename="Foo-2.0.tar.gz", version="2.0")]
        for r in hosted:
            self.release.add(r)
        offered = [upfile(), upfile(version="2.0", kind="sdist"), upfile(version="3.0")]
        self.upstream.publish("foo", offered)
        from_upstream = [f for f, s in self.compose().files if s.upstream is not None]
        self.assertEqual(from_upstream, list(merged(hosted, offered)))


class FilterTests(ChainMixin, SynchronousTestCase):
    """The view's L{Filters}, each at its boundary."""

    def test_as_of_boundary(self):
        """A file uploaded exactly at C{as_of} is not listed; one a moment before is."""
        self.release.add(record(version="1.0", upload_time=T0 - 0.001))
        self.release.add(record(version="2.0", upload_time=T0))
        filters = Filters(as_of=T0)
        self.assertEqual(names_of(self.compose(filters=filters)),
                         [("foo-1.0-py3-none-any.whl", "release")])

    def test_as_of_upstream_and_unknown_time(self):
        """C{as_of} holds for upstream files too; one of unknown time is left out."""
        self.upstream.publish("foo", [upfile(version="1.0", upload_time=T0 - 1),
                                      upfile(version="2.0", upload_time=T0 + 1),
                                      upfile(version="3.0", upload_time=None)])
        self.assertEqual(names_of(self.compose(filters=Filters(as_of=T0))),
                         [("foo-1.0-py3-none-any.whl", "upstream:public")])

    def test_min_age_upstream_only(self):
        """The cooldown holds back young upstream files, never hosted ones."""
        self.upstream.policy = UpstreamPolicy(mode="cache", merge=("foo",))
        now = T0 + DAY
        self.release.add(record(version="1.0", upload_time=now))
        self.upstream.publish("foo", [upfile(version="2.0", upload_time=now - 3600),
                                      upfile(version="3.0", upload_time=now - 3601)])
        composition = self.compose(filters=Filters(min_age=3600.5), now=now)
        self.assertEqual(names_of(composition), [("foo-1.0-py3-none-any.whl", "release"),
                                                 ("foo-3.0-py3-none-any.whl", "upstream:public")])
        self.assertEqual(composition.recheck_at, now - 3600 + 3600.5)

    def test_min_age_boundary(self):
        """An upstream file exactly C{min_age} old is listed (as C{[upstream] min_age})."""
        self.upstream.publish("foo", [upfile(upload_time=T0)])
        self.assertEqual(len(self.compose(filters=Filters(min_age=DAY), now=T0 + DAY).files), 1)
        self.assertEqual(len(self.compose(filters=Filters(min_age=DAY),
                                          now=T0 + DAY - 0.001).files), 0)

    def test_prereleases(self):
        """C{hide_prereleases} leaves out pre-releases, from every source."""
        self.release.add(record(version="1.0"))
        self.release.add(record(version="2.0rc1"))
        self.staging.add(record(version="2.0.dev3"))
        self.assertEqual(names_of(self.compose(filters=Filters(hide_prereleases=True))),
                         [("foo-1.0-py3-none-any.whl", "release")])

    def test_yanked(self):
        """C{hide_yanked} leaves out yanked files altogether."""
        self.release.add(record(version="1.0", yanked=""))
        self.release.add(record(version="2.0"))
        self.assertEqual(names_of(self.compose(filters=Filters(hide_yanked=True))),
                         [("foo-2.0-py3-none-any.whl", "release")])

    def test_filtered_file_still_shadows(self):
        """A yanked file hidden in C{staging} does not bring back C{release}'s of that name."""
        self.staging.add(record(yanked="broken"))
        self.release.add(record())
        self.assertEqual(self.compose(filters=Filters(hide_yanked=True)).files, ())

    def test_include_exclude(self):
        """Globs admit a project, an exclusion wins; names are compared normalized."""
        filters = Filters(include=("foo*", "bar"), exclude=("foo-experimental-*",))
        self.assertTrue(filters.admits_project("foo"))
        self.assertTrue(filters.admits_project("Foo.Bar"))
        self.assertTrue(filters.admits_project("BAR"))
        self.assertFalse(filters.admits_project("foo-experimental-x"))
        self.assertFalse(filters.admits_project("baz"))


class IndexViewTests(ChainMixin, SynchronousTestCase):
    """L{ComposedIndex}: pages kept, checked by their stamp, and delegated."""

    def view(self, filters=NONE, file_url=RELATIVE, order=None, max_bytes=1 << 20):
        """C{staging}'s view."""
        return ComposedIndex("staging", self.order if order is None else order, filters, file_url,
                         max_bytes=max_bytes)

    def test_delegates_to_base_page(self):
        """A project inherited from one base is served the base's own page object."""
        self.release.add(record())
        view = self.view()
        own = self.release.rendered.project_page(self.release.project("foo"), JSON)
        self.assertIs(view.page("foo", JSON, T0), own)
        self.assertIs(view.page("foo", JSON, T0), own)
        self.assertEqual(view.bytes, ENTRY_COST)

    def test_delegates_to_upstream_page(self):
        """A project only an upstream has is served the upstream's own page."""
        self.upstream.publish("foo", [upfile()])
        view = self.view()
        self.assertIs(view.page("foo", HTML, T0), self.upstream.page("foo", HTML))

    def test_delegates_when_filter_hid_nothing(self):
        """A filter that hides nothing of the project still lets the base's page serve."""
        self.release.add(record())
        view = self.view(Filters(hide_yanked=True, as_of=T0 + 1))
        self.assertIs(view.page("foo", HTML, T0),
                      self.release.rendered.project_page(self.release.project("foo"), HTML))

    def test_own_page_when_composed(self):
        """Files from two sources make a page of the view's own, kept until a source changes."""
        self.staging.add(record(version="2.0"))
        self.release.add(record(version="1.0"))
        view = self.view()
        page = view.page("foo", HTML, T0)
        self.assertIn(b"foo-1.0-py3-none-any.whl", page.body)
        self.assertIn(b"foo-2.0-py3-none-any.whl", page.body)
        self.assertIs(view.page("foo", HTML, T0), page)
        self.assertGreater(view.bytes, ENTRY_COST)
        json_page = view.page("foo", JSON, T0)
        self.assertIs(view.page("foo", HTML, T0), page)
        self.assertIs(view.page("foo", JSON, T0), json_page)

    def test_same_bytes_as_one_index(self):
        """A composed page has the bytes one index holding those files would render."""
        both = Index(RELATIVE)
        for r in (record(version="2.0"), record(version="1.0", kind="sdist")):
            both.add(r)
        self.staging.add(record(version="2.0"))
        self.release.add(record(version="1.0", kind="sdist"))
        view = self.view()
        for kind in (HTML, JSON):
            self.assertEqual(view.page("foo", kind, T0).body,
                             both.rendered.project_page(both.project("foo"), kind).body)

    def test_absolute_links_not_delegated(self):
        """With other links than the base's (a base URL), the view renders its own page."""
        self.release.add(record())
        view = self.view(file_url=file_url_for("https://pypi.internal.invalid/staging/"))
        page = view.page("foo", HTML, T0)
        self.assertIn(b"https://pypi.internal.invalid/staging/files/foo/", page.body)
        self.assertIsNot(page, self.release.rendered.project_page(self.release.project("foo"),
                                                                  HTML))

    def test_invalidated_by_add_in_base(self):
        """A file added to a base is on the next page."""
        self.staging.add(record(version="2.0"))
        self.release.add(record(version="1.0"))
        view = self.view()
        view.page("foo", HTML, T0)
        self.release.add(record(version="1.5"))
        self.assertIn(b"foo-1.5-py3-none-any.whl", view.page("foo", HTML, T0).body)

    def test_invalidated_by_yank_in_base(self):
        """A yank (or unyank) in a base is on the next page."""
        self.staging.add(record(version="2.0"))
        self.release.add(record(version="1.0"))
        view = self.view()
        self.assertNotIn(b"data-yanked", view.page("foo", HTML, T0).body)
        self.release.add(record(version="1.0", yanked="bad"))
        self.assertIn(b'data-yanked="bad"', view.page("foo", HTML, T0).body)
        self.release.add(record(version="1.0"))
        self.assertNotIn(b"data-yanked", view.page("foo", HTML, T0).body)

    def test_invalidated_by_remove_in_base(self):
        """A file removed from a base is gone from the next page."""
        self.staging.add(record(version="2.0"))
        self.release.add(record(version="1.0"))
        view = self.view()
        view.page("foo", HTML, T0)
        self.release.remove(record(version="1.0").filename)
        self.assertNotIn(b"foo-1.0-py3-none-any.whl", view.page("foo", HTML, T0).body)

    def test_invalidated_by_new_project_in_base(self):
        """A project that appears in a base stops the upstream's files (confusion rule)."""
        self.upstream.publish("foo", [upfile(version="9.0")])
        view = self.view()
        self.assertIn(b"foo-9.0", view.page("foo", HTML, T0).body)
        self.release.add(record())
        body = view.page("foo", HTML, T0).body
        self.assertNotIn(b"foo-9.0", body)
        self.assertIn(b"foo-1.0", body)

    def test_invalidated_by_new_upstream_entry(self):
        """A new cached upstream page (a new token) is on the next page."""
        self.upstream.policy = UpstreamPolicy(mode="cache", merge=("foo",))
        self.release.add(record())
        view = self.view()
        view.page("foo", HTML, T0)
        self.upstream.publish("foo", [upfile(version="9.0")])
        self.assertIn(b"foo-9.0", view.page("foo", HTML, T0).body)

    def test_index_reloaded(self):
        """A base loaded anew (new project objects) is read anew."""
        self.release.add(record())
        view = self.view()
        view.page("foo", HTML, T0)
        self.release.load([record(version="3.0")])
        self.assertIn(b"foo-3.0", view.page("foo", HTML, T0).body)

    def test_min_age_recheck(self):
        """A page whose cooldown hid a file is composed again the moment the file comes of age."""
        self.upstream.publish("foo", [upfile(version="1.0", upload_time=T0 - DAY),
                                      upfile(version="2.0", upload_time=T0)])
        view = self.view(Filters(min_age=3600))
        page = view.page("foo", HTML, T0)
        self.assertNotIn(b"foo-2.0", page.body)
        self.assertIs(view.page("foo", HTML, T0 + 3599.999), page)
        self.assertIn(b"foo-2.0", view.page("foo", HTML, T0 + 3600).body)

    def test_as_of_needs_no_recheck(self):
        """A file the date hides stays hidden: the page is not composed again as time passes."""
        self.release.add(record(version="1.0"))
        self.release.add(record(version="2.0", upload_time=T0 + 10))
        view = self.view(Filters(as_of=T0 + 5))
        page = view.page("foo", HTML, T0 + 20)
        self.assertIs(view.page("foo", HTML, T0 + 10 * DAY), page)

    def test_unknown_and_excluded(self):
        """A project no source knows, or one the globs leave out, has no page."""
        self.release.add(record("experimental-x"))
        view = self.view(Filters(exclude=("experimental-*",)))
        self.assertIsNone(view.page("nothing", HTML, T0))
        self.assertIsNone(view.page("experimental-x", HTML, T0))

    def test_memory_bound(self):
        """The kept compositions stay within the budget, delegated ones counted too."""
        view = self.view(max_bytes=20 * ENTRY_COST)
        for i in range(100):
            self.release.add(record(f"p{i}"))
            view.page(f"p{i}", HTML, T0)
        self.assertEqual(len(view._kept), 20)
        self.assertLessEqual(view.bytes, 20 * ENTRY_COST)
        for i in range(30):
            self.staging.add(record(f"p{i}", version="2.0"))
            view.page(f"p{i}", HTML, T0)
        self.assertLessEqual(view.bytes, 20 * ENTRY_COST)

    def test_root_page(self):
        """The root lists the hosted sources' projects, admitted ones, until one comes or goes."""
        self.release.add(record("foo"))
        self.staging.add(record("bar"))
        self.release.add(record("experimental-x"))
        view = self.view(Filters(exclude=("experimental-*",)))
        page = view.root_page(HTML)
        self.assertIn(b'href="bar/"', page.body)
        self.assertIn(b'href="foo/"', page.body)
        self.assertNotIn(b"experimental", page.body)
        self.release.add(record("foo", version="2.0"))
        self.assertIs(view.root_page(HTML), page)
        self.release.add(record("baz"))
        self.assertIn(b'href="baz/"', view.root_page(HTML).body)


# -- composition against a plain reference ----------------------------------------------

VERSIONS = ["1.0", "1.0.0", "2.0", "2.0rc1", "10.0"]


@st.composite
def files_of(draw, make):
    """Files of C{foo}: a few versions, wheels and sdists, spellings that share a key."""
    chosen = draw(st.lists(st.tuples(st.sampled_from(VERSIONS), st.sampled_from(["wheel", "sdist"]),
                                     st.sampled_from(["a", "b"]), st.booleans(),
                                     st.integers(-3, 3)),
                           max_size=6))
    found, names = [], set()
    for version, kind, sha, yanked, age in chosen:
        f = make(version=version, kind=kind, sha256=sha * 64, yanked="" if yanked else None,
                 upload_time=T0 + age * 100)
        if f.filename not in names:
            names.add(f.filename)
            found.append(f)
    return found


def reference(hosted, tombstoned, offered, policy, filters, now):
    """The files of C{foo}, worked out the plain way with L{merged}."""
    listed = []
    is_hosted = False

    def dated(files):
        # (what arrived on or after a view's date did not exist then: left
        # out before anything shadows anything, issue 41)
        if filters.as_of is None:
            return files
        return [f for f in files if f.upload_time is not None and f.upload_time < filters.as_of]
    for name, files in hosted:
        if files or name in tombstoned:
            is_hosted = True
        listed += [(f, name) for f in merged([f for f, _ in listed], dated(files))]
    if offered is not None:
        decision = policy.decide("foo", is_hosted)
        if decision.allowed and (decision.merge or not is_hosted):
            listed += [(f, "up") for f in merged([f for f, _ in listed], dated(offered))]
    kept = [(f, n) for f, n in listed if filters.admits(f, n == "up", now)]
    return sorted(((f.filename, n) for f, n in kept),
                  key=lambda pair: (version_key(next(f.version for f, n in kept
                                                     if f.filename == pair[0])), pair[0]))


class PropertyTests(SynchronousTestCase):
    """L{compose} agrees with a plain reference on any chain."""

    @settings(max_examples=300, deadline=None)
    @given(hosted=st.lists(files_of(record), min_size=1, max_size=3),
           tombstoned=st.sets(st.integers(0, 2)),
           offered=st.one_of(st.none(), files_of(upfile)),
           merge=st.booleans(),
           filters=st.builds(Filters, min_age=st.sampled_from([0.0, 150.0]),
                             as_of=st.sampled_from([None, T0, T0 + 150]),
                             hide_prereleases=st.booleans(), hide_yanked=st.booleans()))
    def test_compose_is_reference(self, hosted, tombstoned, offered, merge, filters):
        """Shadowing, the confusion rule and the filters, as the reference works them out."""
        order, named = [], []
        for i, files in enumerate(hosted):
            index = Index(RELATIVE)
            for f in files:
                index.add(f)
            if i in tombstoned:
                index.remove("foo-0.1.tar.gz")
            order.append(ChainSource(f"h{i}", hosted=index))
            named.append((f"h{i}", sorted(files, key=lambda f: (version_key(f.version),
                                                                f.filename))))
        policy = UpstreamPolicy(mode="cache", merge=("foo",) if merge else ())
        upstream = FakeUpstream("up", policy)
        if offered is not None:
            upstream.publish("foo", offered)
            offered = list(upstream.entries["foo"][1])
        order.append(ChainSource("up", upstream=upstream))
        now = T0
        got = [(f.filename, s.name) for f, s in compose(order, "foo", filters, now).files]
        self.assertEqual(got, reference(named, {f"h{i}" for i in tombstoned}, offered, policy,
                                        filters, now))
