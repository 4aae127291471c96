"""
Measure C{/simple/<p>/} through the real site (L{pypid.web.app.build_web},
its request class and resources, in memory), and, where named indexes
are served (issue 26, stage 4), C{/dev/simple/<p>/} of a project
inherited through two bases (C{dev -> staging -> release}), the two URLs
alternated in one run (ABBA), requests a second, median of the rounds.

Run against another checkout's code to compare the default index's rate
before and after a change (the same script, that checkout's C{src} first
on the path; it builds the site with either C{build_web}, before issue 41
and after)::

    PYTHONPATH=/path/to/other/src .venv/bin/python tests/bench/bench_index_routes.py

Not a test (trial loads only C{test_*.py}).
"""

import argparse
import inspect
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from twisted.internet.task import Clock  # noqa: E402

from pypid.auth.policy import AccessModel  # noqa: E402
from pypid.auth.verifier import PasswordVerifier  # noqa: E402
from pypid.core.indexes.index import Index  # noqa: E402
from pypid.core.indexes.render import file_url_for  # noqa: E402
from pypid.web.app import build_web  # noqa: E402
from pypid.web.identity.gates import Gates  # noqa: E402
from tests.bench.bench_views import records  # noqa: E402
from tests.harness.fakes import run_now, site_treq  # noqa: E402
from tests.harness.memory_storage import MemoryStorage  # noqa: E402

ACCEPT = {"Accept": ["application/vnd.pypi.simple.v1+json"]}


def build(projects):
    """C{(treq, named)}: a client of the site, and whether C{/dev/} is served."""
    clock = Clock()
    folder = tempfile.mkdtemp()
    storage = MemoryStorage(os.path.join(folder, "default"), clock)
    storage.prepare()
    default = Index(file_url_for(None))
    default.load(records(projects))
    access = Gates(AccessModel(), PasswordVerifier({}, clock, None))
    named = []
    try:
        from pypid.core.indexes.composed import ComposedIndex
        from pypid.core.indexes.composition import ChainSource, Filters
        from pypid.state.hosted_source import HostedSource
        from pypid.storage.base.locks import KeyedLock
        from pypid.web.serving.index_root import IndexMaterials
    except ImportError:
        pass
    else:
        release = Index(file_url_for(None))
        release.load(records(projects))
        stacks = [HostedSource(name, index, storage, KeyedLock(clock)) for name, index in
                  (("dev", Index(file_url_for(None))), ("staging", Index(file_url_for(None))),
                   ("release", release))]
        view = ComposedIndex("dev", tuple(ChainSource(s.name, hosted=s.index) for s in stacks),
                         Filters(), file_url_for(None))
        named = [IndexMaterials("dev", view, tuple(stacks), hosted=True)]
    parameters = list(inspect.signature(build_web).parameters)
    if "settings" in parameters:
        # (its settings as one value)
        from pypid.web.web_inputs import SiteSettings
        from tests.harness.fakes import one_index
        web = build_web([*one_index(default, storage, clock), *named], access, run_now, clock,
                        SiteSettings(max_upload_size=1 << 20))
    elif parameters[0] == "indexes":
        # (every index, the default included, from its IndexMaterials)
        from tests.harness.fakes import one_index
        web = build_web([*one_index(default, storage, clock), *named], access, run_now, clock,
                        max_upload_size=1 << 20)
    else:
        kwargs = {"indexes": named} if named else {}
        web = build_web(default, storage, access, run_now, clock, max_upload_size=1 << 20,
                        **kwargs)
    return site_treq(web.site), bool(named)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=3000, help="requests a round a URL")
    options = parser.parse_args()
    treq, named = build(options.projects)
    names = [f"p{i}" for i in range(options.projects)]

    def run(prefix):
        started = time.perf_counter()
        for i in range(options.requests):
            d = treq.get(f"http://127.0.0.1/{prefix}simple/{names[i % len(names)]}/",
                         headers=ACCEPT)
            response = d.result
            assert response.code == 200, response.code
            treq.content(response)
        return options.requests / (time.perf_counter() - started)

    keys = ("default", "dev") if named else ("default",)
    rates = {key: [] for key in keys}
    for i in range(options.rounds):
        for key in (keys if i % 2 == 0 else keys[::-1]):
            rates[key].append(run("" if key == "default" else "dev/"))
    found = {key: statistics.median(v) for key, v in rates.items()}
    for key, rate in found.items():
        print(f"{key:>8}: {rate:8.0f} requests/s")
    if named:
        print(f"   ratio: {found['dev'] / found['default']:.3f} (/dev/simple/<p>/ to /simple/<p>/)")


if __name__ == "__main__":
    main()
