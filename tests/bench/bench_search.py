"""
Measure how long a search of the pages for people takes at a given number of
projects (default 20,000): building the index, and queries of each kind
(exact name, prefix, substring, summary words, no match), median and worst
of many runs; then the whole work of the server for C{/search?q=}: the
catalog of a real L{Index} (rebuilt after a change), the search, the
page's HTML and its gzip copy.

Not a test (trial loads only C{test_*.py}); run it by hand::

    .venv/bin/python tests/bench/bench_search.py [--projects 20000]
"""

import argparse
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from pypid.core import pages  # noqa: E402
from pypid.core.dists.model import FileRecord  # noqa: E402
from pypid.core.formats.catalog import Catalog  # noqa: E402
from pypid.core.formats.search import SearchEntry, SearchIndex  # noqa: E402
from pypid.core.indexes.index import Index  # noqa: E402
from pypid.core.indexes.render import HTML, Page  # noqa: E402

WORDS = ("http client server async json yaml parser toolkit data stream cloud storage "
         "plugin test framework fast simple secure crypto image audio graph queue cache "
         "config logging metrics tracing web api sdk cli utils core types stubs").split()


def corpus(count, seed=658):
    """C{count} projects with names and summaries made of common words."""
    rng = random.Random(seed)
    entries, seen = [], set()
    while len(entries) < count:
        name = "-".join(rng.sample(WORDS, rng.randint(1, 3))) + f"-{rng.randrange(10000)}"
        if name in seen:
            continue
        seen.add(name)
        summary = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize()
        entries.append(SearchEntry(name, name, summary))
    return entries


def timed(function, runs):
    """Median and worst seconds of C{runs} calls."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times)


def main():
    """Build the index and time each kind of query."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--projects", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=200)
    options = parser.parse_args()
    entries = corpus(options.projects)
    built = []
    median, worst = timed(lambda: built.append(SearchIndex(entries)), 5)
    index = built[-1]
    print(f"{options.projects} projects: build {median * 1e3:.1f} ms (worst {worst * 1e3:.1f})")
    hidden = {e.project for e in entries[::3]}
    queries = {
        "exact name": entries[12345 % len(entries)].project,
        "prefix": "http",
        "substring": "lient",
        "summary words": "secure storage",
        "one letter": "a",
        "no match": "zzzzzz",
    }
    for label, query in queries.items():
        median, worst = timed(lambda query=query: index.search(query), options.runs)
        total = index.search(query).total
        hmedian, hworst = timed(lambda query=query: index.search(query, hidden.__contains__),
                                options.runs)
        print(f"{label:>14} {query!r:>30}: {total:6} hits, median {median * 1e3:5.2f} ms, "
              f"worst {worst * 1e3:5.2f} ms; with an access filter median "
              f"{hmedian * 1e3:5.2f} ms, worst {hworst * 1e3:5.2f} ms")
    whole_page(entries, queries, options.runs)


def whole_page(entries, queries, runs):
    """Time what the server does for C{/search?q=}, from an index of records."""
    index = Index(lambda r: r.filename)
    index.load([FileRecord(filename=f"{e.project.replace('-', '_')}-1.0-py3-none-any.whl",
                           project=e.project, name=e.display_name, version="1.0",
                           packagetype="bdist_wheel", path="x", size=1, sha256="0" * 64,
                           upload_time=1.0, summary=e.summary) for e in entries])
    catalog = Catalog(index)
    chrome = pages.Chrome(css="static/a.css", js="static/a.js", icon="static/a.svg")
    started = time.perf_counter()
    catalog.search_index()
    print(f"catalog of {len(entries)} projects, first: "
          f"{(time.perf_counter() - started) * 1e3:.1f} ms")
    index.add(index.records()[0].replace(version="2.0",
                           filename=index.records()[0].filename.replace("1.0", "2.0")))
    started = time.perf_counter()
    catalog.search_index()
    print(f"catalog after one project changed: "
          f"{(time.perf_counter() - started) * 1e3:.1f} ms")

    def answer(query):
        results = catalog.search_index().search(query, None, 1, 20)
        versions = {hit.entry.project: catalog.latest(hit.entry.project)
                    for hit in results.hits}
        return Page.of(pages.search_page(chrome, results, versions), HTML)

    for label, query in queries.items():
        median, worst = timed(lambda query=query: answer(query), runs)
        print(f"{label:>14} {query!r:>30}: whole /search answer median "
              f"{median * 1e3:5.2f} ms, worst {worst * 1e3:5.2f} ms")


if __name__ == "__main__":
    main()
