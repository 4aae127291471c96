"""
Hostile descriptions (issue 31): a wheel whose README's rendering runs
away (L{hostile_wheel}), and L{Probe}, a client that times the server's
answers while it is fed one; shared by L{tests.e2e.test_readme} and its
benchmark.
"""

import threading
import time

from tests.harness.distributions import make_wheel, metadata_text
from tests.harness.e2e import Sampler, http

#: Unclosed C{<pre><code>} lines: readme_renderer's code highlighting takes
#: quadratic time on them, holding the interpreter lock (6,000 lines, 126 kB,
#: took 4.5 to 6 s here and stalled the server that long in-process before
#: issue 31; 2,000 lines 0.47 s). 24,000 lines (504 kB, still under
#: L{pypid.core.dists.readme.MAX_TEXT}, past which a description is not rendered
#: at all) take sixteen times that: over a minute here, several seconds on a
#: machine ten times faster.
FREEZING_MARKDOWN = '<pre lang="a"><code>\n' * 24_000


def hostile_wheel(name, version="1.0", text=FREEZING_MARKDOWN, content_type="text/markdown"):
    """A wheel whose description is C{text}."""
    header = metadata_text(name, version,
                           extra_headers=[f"Description-Content-Type: {content_type}"])
    head, _, _ = header.partition("\n\n")
    return make_wheel(name, version, metadata=f"{head}\n\n{text}")


class Probe(Sampler):
    """
    A client asking for C{url} again and again in a thread, timing each
    answer, until stopped: from its first answer, before the block it is
    used in begins, to an answer after the block ends, so it asks without
    a break all the while the block acts, however fast the machine.
    """

    def __init__(self, url):
        super().__init__(0.02)
        self.url = url
        self.times = []
        self.failures = []
        self._answered = threading.Condition()

    def __enter__(self):
        super().__enter__()
        self._wait_for(1)
        return self

    def __exit__(self, *exc):
        self._wait_for(len(self.times) + 1)
        return super().__exit__(*exc)

    def _wait_for(self, count):
        with self._answered:
            self._answered.wait_for(lambda: len(self.times) >= count, timeout=60)

    def sample(self):
        started = time.monotonic()
        try:
            status = http("GET", self.url, timeout=60).status
        except OSError as e:
            self.failures.append(repr(e))
        else:
            if status != 200:
                self.failures.append(status)
        with self._answered:
            self.times.append(time.monotonic() - started)
            self._answered.notify_all()

    @property
    def worst(self):
        return max(self.times, default=0.0)
