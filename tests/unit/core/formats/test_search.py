"""
Tests for L{pypid.core.formats.search}: ranking, normalization, summaries, access
filtering and pages of results.
"""

from twisted.trial.unittest import SynchronousTestCase

from pypid.core.formats.search import (
    EXACT,
    MAX_QUERY_LENGTH,
    PREFIX,
    SUBSTRING,
    SUMMARY,
    WORD_PREFIX,
    SearchEntry,
    SearchIndex,
)

ENTRIES = [
    SearchEntry("requests", "requests", "Python HTTP for Humans."),
    SearchEntry("requests-toolbelt", "requests-toolbelt",
                "A utility belt for advanced users of requests"),
    SearchEntry("types-requests", "types-requests", "Typing stubs for requests"),
    SearchEntry("httpx", "httpx", "The next generation HTTP client."),
    SearchEntry("acme-secret", "Acme.Secret", "Internal HTTP helpers"),
    SearchEntry("foo-bar", "Foo_Bar", None),
    SearchEntry("zrequestsz", "zrequestsz", "odd"),
]


def names(results):
    """The normalized names of the hits, in order."""
    return [hit.entry.project for hit in results.hits]


class SearchTests(SynchronousTestCase):
    """Tests for L{SearchIndex.search}."""

    def setUp(self):
        self.index = SearchIndex(ENTRIES)

    def test_ranking(self):
        """Exact name first, then prefix, then word prefix, then substring, then summary."""
        results = self.index.search("requests")
        self.assertEqual(names(results), ["requests", "requests-toolbelt", "types-requests",
                                          "zrequestsz"])
        self.assertEqual([h.rank for h in results.hits], [EXACT, PREFIX, WORD_PREFIX, SUBSTRING])
        self.assertEqual(results.total, 4)

    def test_summary(self):
        """Every word of the query in the summary, any case, after the name matches."""
        results = self.index.search("http")
        self.assertEqual(names(results), ["httpx", "requests", "acme-secret"])
        self.assertEqual([h.rank for h in results.hits], [PREFIX, SUMMARY, SUMMARY])
        self.assertEqual(names(self.index.search("HTTP client")), ["httpx"])
        self.assertEqual(names(self.index.search("client http")), ["httpx"])
        self.assertEqual(names(self.index.search("typing stubs")), ["types-requests"])

    def test_name_spellings(self):
        """A query is normalized as a name is: case, dots, underscores and spaces."""
        for query in ("Foo_Bar", "foo.bar", "FOO--bar", "foo bar", " foo-bar "):
            results = self.index.search(query)
            self.assertEqual(names(results)[:1], ["foo-bar"], query)
            self.assertEqual(results.hits[0].rank, EXACT)
        self.assertEqual(self.index.search("Foo_Bar").hits[0].entry.display_name, "Foo_Bar")

    def test_no_match(self):
        """A query matching nothing, or an empty one, gives no results and one page."""
        for query in ("nothing-like-it", "", "   ", "---"):
            results = self.index.search(query)
            self.assertEqual((results.total, results.hits, results.page, results.pages),
                             (0, (), 1, 1), query)

    def test_hidden_projects(self):
        """What visible() refuses is never returned nor counted, by name or by summary."""
        visible = lambda project: not project.startswith("acme-")  # noqa: E731
        self.assertEqual(names(self.index.search("acme", visible)), [])
        self.assertEqual(self.index.search("internal", visible).total, 0)
        self.assertEqual(names(self.index.search("http", visible)), ["httpx", "requests"])
        self.assertEqual(self.index.search("http", visible).total, 2)

    def test_pages(self):
        """Results come in pages; a page past the end is the last one."""
        index = SearchIndex([SearchEntry(f"pkg-{i:03}", f"pkg-{i:03}") for i in range(45)])
        first = index.search("pkg", page_size=20)
        self.assertEqual((first.total, first.pages, first.page, len(first.hits)), (45, 3, 1, 20))
        self.assertEqual(names(first)[0], "pkg-000")
        last = index.search("pkg", page=99, page_size=20)
        self.assertEqual((last.page, len(last.hits)), (3, 5))
        self.assertEqual(names(last)[-1], "pkg-044")
        self.assertEqual(index.search("pkg", page=0).page, 1)

    def test_one_hit_per_project(self):
        """A name holding the query twice is one result."""
        index = SearchIndex([SearchEntry("aa-aa", "aa-aa", "aa aa")])
        self.assertEqual(index.search("aa").total, 1)

    def test_no_match_across_entries(self):
        """A query never matches the end of one name and the start of the next."""
        index = SearchIndex([SearchEntry("ab", "ab"), SearchEntry("cd", "cd")])
        self.assertEqual(index.search("bc").total, 0)
        self.assertEqual(index.search("b c").total, 0)

    def test_long_and_odd_queries(self):
        """Long queries are cut; regex and HTML characters are plain text."""
        self.assertEqual(len(self.index.search("x" * 10_000).query), MAX_QUERY_LENGTH)
        for query in (".*", "<script>", "(", "\\", "\x00", "requests\nhttpx"):
            self.index.search(query)
        self.assertEqual(self.index.search("requests\nhttpx").query, "requests httpx")

    def test_short_queries_match_name_starts(self):
        """A query of one or two characters matches names by their start, not inside them or summaries."""
        self.assertEqual(names(self.index.search("re")), ["requests", "requests-toolbelt"])
        self.assertEqual(names(self.index.search("ht")), ["httpx"])
        self.assertEqual(names(self.index.search("ts")), [])

    def test_summary_with_line_breaks(self):
        """A summary holding a line break is still one entry."""
        index = SearchIndex([SearchEntry("a", "a", "one\ntwo"), SearchEntry("b", "b", "three")])
        self.assertEqual(names(index.search("two")), ["a"])
        self.assertEqual(names(index.search("three")), ["b"])
