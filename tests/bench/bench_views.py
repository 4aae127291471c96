"""
Measure what a page composed across indexes costs against the base's own
page (issue 26: a page of C{/NAME/simple/<p>/} inherited through two bases
must be served at least 0.9x as fast as C{/simple/<p>/}).

The chain is C{dev -> staging -> release -> upstream}; the project is
hosted in C{release} only, so C{dev}'s L{ComposedIndex} checks three hosted
sources and delegates to C{release}'s own kept page. Three measures:

  - C{lookup}: the page object alone (L{ComposedIndex.page} against
    C{release.rendered.project_page(release.project(p))}), ns a call;
  - C{served}: a whole request through twisted.web (StubTreq over a
    resource that answers C{/simple/<p>/} from the index and
    C{/dev/simple/<p>/} from the view, headers and body as pypid sends
    them), the two URLs alternated in one run, requests a second;
  - C{memory} (C{--memory}): bytes a project of an L{Index} (tracemalloc,
    records excluded) and bytes a kept composition of the view.

Not a test (trial loads only C{test_*.py}); run it by hand::

    .venv/bin/python tests/bench/bench_views.py [--projects 2000] [--rounds 7] [--memory]
"""

import argparse
import gc
import os
import statistics
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from twisted.web.resource import Resource  # noqa: E402

from pypid.core.dists.model import FileRecord  # noqa: E402
from pypid.core.indexes.composed import ComposedIndex  # noqa: E402
from pypid.core.indexes.composition import ChainSource, Filters  # noqa: E402
from pypid.core.indexes.index import Index  # noqa: E402
from pypid.core.indexes.render import JSON, file_url_for  # noqa: E402

RELATIVE = file_url_for(None)
NOW = 1767225600.0


def records(projects, versions=5):
    """C{projects} x C{versions} wheels."""
    return [FileRecord(f"p{i}-1.{v}-py3-none-any.whl", f"p{i}", f"p{i}", f"1.{v}",
                       "bdist_wheel", None, 100_000 + v, f"{i % 16:x}" * 64, NOW - v)
            for i in range(projects) for v in range(versions)]


class NoUpstream:
    """An upstream that is asked about nothing (every project here is hosted)."""

    name = "upstream:public"

    def decide(self, project, hosted):
        """Never allowed."""
        return _NO

    def cached(self, project):
        """Nothing cached."""
        return None


class _No:
    allowed = False
    merge = False


_NO = _No()


def chain(projects):
    """C{(release, dev's view)}: C{release} holds every project, C{dev} and C{staging} none."""
    release = Index(RELATIVE)
    release.load(records(projects))
    dev, staging = Index(RELATIVE), Index(RELATIVE)
    order = (ChainSource("dev", hosted=dev), ChainSource("staging", hosted=staging),
             ChainSource("release", hosted=release),
             ChainSource("upstream:public", upstream=NoUpstream()))
    return release, ComposedIndex("dev", order, Filters(), RELATIVE)


def lookup(release, view, names, rounds):
    """Median ns a call of each way of getting the page object."""
    own = {"base": [], "view": []}
    project, page = release.project, release.rendered.project_page
    for _ in range(rounds):
        started = time.perf_counter()
        for name in names:
            page(project(name), JSON)
        own["base"].append((time.perf_counter() - started) / len(names) * 1e9)
        started = time.perf_counter()
        for name in names:
            view.page(name, JSON, NOW)
        own["view"].append((time.perf_counter() - started) / len(names) * 1e9)
    return {k: statistics.median(v) for k, v in own.items()}


class Pages(Resource):
    """C{/simple/<p>/} from the index, C{/dev/simple/<p>/} from the view, as pypid answers."""

    isLeaf = True

    def __init__(self, release, view):
        super().__init__()
        self.release, self.view = release, view

    def render_GET(self, request):
        """The page's body, with its type, ETag and cache headers."""
        parts = request.postpath
        if parts[0] == b"simple":
            name = parts[1].decode()
            project = self.release.project(name)
            page = self.release.rendered.project_page(project, JSON)
        else:
            page = self.view.page(parts[2].decode(), JSON, NOW)
        request.setHeader(b"content-type", page.content_type)
        request.setHeader(b"etag", page.etag)
        request.setHeader(b"cache-control", b"max-age=60, public")
        return page.body


def served(release, view, names, rounds, per_round):
    """Requests a second of each URL, alternated in one run (median of the rounds)."""
    from treq.testing import StubTreq

    treq = StubTreq(Pages(release, view))

    def run(prefix):
        started = time.perf_counter()
        for i in range(per_round):
            name = names[i % len(names)]
            body = treq.get(f"http://127.0.0.1/{prefix}simple/{name}/").addCallback(
                treq.content)
            assert body.called and body.result, body
        return per_round / (time.perf_counter() - started)

    rates = {"base": [], "view": []}
    for i in range(rounds):
        # (ABBA: neither URL always runs first)
        for key in (("base", "view") if i % 2 == 0 else ("view", "base")):
            rates[key].append(run("" if key == "base" else "dev/"))
    return {k: statistics.median(v) for k, v in rates.items()}


def memory(projects):
    """Bytes a project of an L{Index}, and bytes a kept (delegated) composition."""
    made = records(projects)
    gc.collect()
    tracemalloc.start()
    index = Index(RELATIVE)
    index.load(made)
    gc.collect()
    per_project = tracemalloc.get_traced_memory()[0] / projects
    tracemalloc.stop()
    release, view = chain(projects)
    for p in release.projects():
        release.rendered.project_page(p, JSON)
    gc.collect()
    tracemalloc.start()
    for p in release.projects():
        view.page(p.name, JSON, NOW)
    gc.collect()
    per_entry = tracemalloc.get_traced_memory()[0] / projects
    tracemalloc.stop()
    return per_project, per_entry


def main():
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=3000, help="requests a round a URL")
    parser.add_argument("--memory", action="store_true")
    options = parser.parse_args()
    release, view = chain(options.projects)
    names = [p.name for p in release.projects()]
    for name in names:
        view.page(name, JSON, NOW)
    found = lookup(release, view, names, options.rounds)
    print(f"lookup: base {found['base']:.0f} ns, view {found['view']:.0f} ns a page "
          f"(+{found['view'] - found['base']:.0f} ns)")
    rates = served(release, view, names, options.rounds, options.requests)
    print(f"served: /simple/<p>/ {rates['base']:.0f}/s, /dev/simple/<p>/ {rates['view']:.0f}/s"
          f": ratio {rates['view'] / rates['base']:.3f}")
    if options.memory:
        per_project, per_entry = memory(options.projects * 10)
        print(f"memory: {per_project:.1f} bytes a project of an Index (records excluded), "
              f"{per_entry:.0f} bytes a kept composition")


if __name__ == "__main__":
    main()
