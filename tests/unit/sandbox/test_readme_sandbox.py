"""
Tests for L{pypid.sandbox.readme_sandbox}: descriptions rendered in real
child processes, the time budget, children that die or lie, and children
kept few and small (issue 43).
"""

import sys
import threading
import time

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pypid.core.dists.readme import MAX_HTML, MAX_TEXT, PLAIN, render_description
from pypid.sandbox.readme_sandbox import ReadmeSandbox, child_command

#: readme_renderer's highlighting takes quadratic time on these (seconds).
FREEZING = '<pre lang="a"><code>\n' * 6000

#: Other inputs that take the renderers seconds or more on this machine
#: (measured in-process; what each one does to a renderer).
PATHOLOGICAL = {
    "unclosed pre and code (quadratic highlighting)": (FREEZING, "text/markdown"),
    "50,000 nested quotes (10 s)": ("> " * 50000 + "x\n", "text/markdown"),
    "50,000 nested divs (14 s)": ("<div>" * 50000, "text/markdown"),
    "20,000 lines of code to highlight (8 s)": (
        ".. code:: python\n\n" + "   x = (((((((((\n" * 20000, "text/x-rst"),
    "a 300-deep list (RecursionError)": (
        "".join("  " * i + "- x\n\n" for i in range(300)), "text/x-rst"),
}

#: A description a child renders (prose would need none).
WARM = "*warm*"

README = "# Title\n\n```python\nimport grail\n```\n\nSee [docs](https://docs.example/).\n"

#: A description the children of L{hanging_on} never answer: a render past
#: any budget on any machine, however fast.
FROZEN = "# Frozen\n\nNo answer, ever.\n"

#: The budget of the renders these tests expect to succeed: no real render
#: of a small description comes near it, however loaded the machine (the
#: production L{pypid.sandbox.readme_sandbox.BUDGET} is not the tests').
GENEROUS = 60.0

#: What a render may take past its budget (or a start past the start
#: budget): killing and reaping its child, the plain text, threads waking
#: on a loaded machine. Milliseconds as a rule; the bounds allow seconds.
SLACK = 5.0


def script(code):
    """A command running C{code} in place of the child."""
    def command():
        argv, env = child_command()
        return [sys.executable, "-c", code], env
    return command


def hanging_on(frozen):
    """
    A command running a child that renders as the real one does, but never
    answers C{frozen}.
    """
    return script(
        "import threading\n"
        "import pypid.core.dists.readme as r\n"
        "real = r.render_description\n"
        "def render(text, content_type=None):\n"
        f"    if text == {frozen!r}:\n"
        "        threading.Event().wait()\n"
        "    return real(text, content_type)\n"
        "r.render_description = render\n"
        "import pypid.sandbox.readme_child as c\n"
        "c.main()\n")


def assert_rendered_in_threads(case, sandbox, count=8):
    """Renders in C{count} threads at once each get their own answer."""
    texts = [f"# Title {i}\n\nbody {i}\n" for i in range(count)]
    results = {}

    def render(i):
        results[i] = sandbox.render(texts[i], "text/markdown")
    threads = [threading.Thread(target=render, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, text in enumerate(texts):
        case.assertEqual(results[i], render_description(text, "text/markdown"))


class SandboxTests(SynchronousTestCase):
    """A sandbox of real children."""

    def sandbox(self, **kwargs):
        """A sandbox closed after the test; its budget L{GENEROUS} unless given."""
        kwargs.setdefault("budget", GENEROUS)
        sandbox = ReadmeSandbox(**kwargs)
        self.addCleanup(sandbox.close)
        return sandbox

    def warm(self, sandbox):
        """
        Have a child of C{sandbox} started and idle, for a render timed
        from its ask (the start of a new child is not a render's), however
        slow the start: a render within L{GENEROUS}, whatever the sandbox's
        budget. Return that child.
        """
        # (the budget is read when a render begins)
        budget, sandbox.budget = sandbox.budget, GENEROUS
        try:
            rendered = sandbox.render(WARM, "text/markdown")
        finally:
            sandbox.budget = budget
        self.assertFalse(rendered.fell_back, rendered.reason)
        self.assertEqual(len(sandbox._idle), 1)
        return sandbox._idle[0]

    def test_same_as_in_process(self):
        """A child renders what this process renders, for each markup."""
        sandbox = self.sandbox()
        for text, content_type in [(README, "text/markdown"),
                                   ("Title\n=====\n\n*x*\n", "text/x-rst"),
                                   ("`unclosed <b>", "text/x-rst"),
                                   ("a < b", "text/plain"),
                                   ("caf\N{LATIN SMALL LETTER E WITH ACUTE} \udcff", None),
                                   ("", "text/markdown"),
                                   (None, None)]:
            self.assertEqual(sandbox.render(text, content_type),
                             render_description(text, content_type), text)

    def test_budget(self):
        """
        A render past the budget falls back to plain text at the budget,
        and the next render has a new child.
        """
        sandbox = self.sandbox(budget=1.0, command=hanging_on(FROZEN))
        child = self.warm(sandbox)
        started = time.monotonic()
        rendered = sandbox.render(FROZEN, "text/markdown")
        took = time.monotonic() - started
        self.assertEqual((rendered.renderer, rendered.fell_back), (PLAIN, True))
        self.assertEqual(rendered.reason, "the description took longer than 1 s to render")
        self.assertGreaterEqual(took, 1.0)
        self.assertLess(took, 1.0 + SLACK)
        self.assertIsNotNone(child.process.poll())
        self.assertEqual(sandbox._busy, set())
        sandbox.budget = GENEROUS
        self.assertEqual(sandbox.render(README, "text/markdown"),
                         render_description(README, "text/markdown"))
        [new] = sandbox._idle
        self.assertIsNot(new, child)

    def test_pathological(self):
        """
        Each pathological input is answered within its budget (from a
        child ready to render), and bounded.
        """
        sandbox = self.sandbox(budget=2.0)
        for name, (text, content_type) in PATHOLOGICAL.items():
            self.warm(sandbox)
            started = time.monotonic()
            rendered = sandbox.render(text, content_type)
            self.assertLess(time.monotonic() - started, 2.0 + SLACK, name)
            self.assertTrue(rendered.fell_back or len(rendered.html) <= MAX_HTML, name)

    def test_waits_within_the_budget(self):
        """
        With the only child busy, a render waits for it to be free (here:
        killed at the budget) and is rendered then.
        """
        sandbox = self.sandbox(budget=1.0, children=1, command=hanging_on(FROZEN))
        child = self.warm(sandbox)
        results = []
        hostile = threading.Thread(
            target=lambda: results.append(sandbox.render(FROZEN, "text/markdown")))
        hostile.start()
        self.addCleanup(hostile.join)
        # The hostile render holds the only child (its budget is then its
        # own); the waiting one has a budget to wait for it, start a new
        # child and render in, whatever the machine.
        deadline = time.monotonic() + GENEROUS
        while not sandbox._busy and hostile.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(sandbox._busy, {child})
        sandbox.budget = GENEROUS
        waiting = sandbox.render(README, "text/markdown")
        hostile.join()
        self.assertEqual(waiting, render_description(README, "text/markdown"))
        self.assertEqual((results[0].renderer, results[0].fell_back), (PLAIN, True))
        self.assertIn("the description took longer than", results[0].reason)
        self.assertIsNotNone(child.process.poll())
        [new] = sandbox._idle
        self.assertIsNot(new, child)

    def test_busy_for_the_whole_budget(self):
        """No child free within the budget: plain text, at the budget."""
        sandbox = self.sandbox(budget=0.5, children=0)
        started = time.monotonic()
        rendered = sandbox.render(README, "text/markdown")
        took = time.monotonic() - started
        self.assertEqual(rendered.reason, "every renderer was busy for the whole budget")
        self.assertGreaterEqual(took, 0.5)
        self.assertLess(took, 0.5 + SLACK)

    def test_concurrent(self):
        """Renders in several threads each get their own answer."""
        sandbox = self.sandbox(children=2)
        assert_rendered_in_threads(self, sandbox)

    def test_child_dies(self):
        """A child that dies while rendering costs that render its markup, not the next."""
        sandbox = self.sandbox()
        sandbox.render(WARM, "text/markdown")
        [child] = sandbox._idle
        child.process.kill()
        child.process.wait()
        # (an idle child found dead is replaced before it is asked)
        self.assertEqual(sandbox.render(README, "text/markdown"),
                         render_description(README, "text/markdown"))

    def test_child_cannot_start(self):
        """A child that exits at once: plain text, with why."""
        sandbox = self.sandbox(command=script("import sys; sys.exit(3)"))
        rendered = sandbox.render(README, "text/markdown")
        self.assertEqual((rendered.renderer, rendered.fell_back), (PLAIN, True))
        self.assertEqual(rendered.reason, "the renderer stopped")
        self.assertIn("Title", rendered.html)

    def test_child_lies(self):
        """A child that answers nonsense, or too much: plain text."""
        for code, reason in [
            ("import sys; sys.stdout.buffer.write(b'\\x00\\x00\\x00\\x03abc'); sys.stdout.flush()",
             "the renderer answered nonsense"),
            ("import sys; sys.stdout.buffer.write(b'\\xff\\xff\\xff\\xff'); sys.stdout.flush()",
             "the renderer answered too much"),
        ]:
            rendered = self.sandbox(command=script(code)).render(README, "text/markdown")
            self.assertEqual(rendered.reason, reason)

    def test_slow_to_start(self):
        """A child that never says it is ready is given up at the start budget."""
        sandbox = self.sandbox(start_budget=0.5,
                               command=script("import time; time.sleep(30)"))
        started = time.monotonic()
        self.assertEqual(sandbox.render(README, "text/markdown").reason, "timeout")
        self.assertLess(time.monotonic() - started, 0.5 + SLACK)

    def test_close(self):
        """Closing stops every child; a render afterwards is plain text."""
        sandbox = self.sandbox()
        sandbox.render(WARM, "text/markdown")
        [child] = sandbox._idle
        sandbox.close()
        self.assertIsNotNone(child.process.poll())
        self.assertEqual(sandbox.render(README, "text/markdown").reason,
                         "the server is stopping")
        sandbox.startService()
        self.assertFalse(sandbox.render(README, "text/markdown").fell_back)

    def test_memory_bound(self):
        """
        A render that needs more memory than a child may have
        (C{MEMORY_LIMIT}, enforced by the kernel): plain text, and the
        child lives on.
        """
        sandbox = self.sandbox(command=script(
            "import pypid.core.dists.readme as r\n"
            "r.warm_up = lambda kind: None\n"
            "def greedy(text, content_type):\n"
            "    if text == '*greedy*':\n"
            "        return bytearray(2 << 30)\n"
            "    return r.RenderedDescription(text, r.PLAIN)\n"
            "r.render_description = greedy\n"
            "import pypid.sandbox.readme_child as c\n"
            "c.main()\n"))
        rendered = sandbox.render("*greedy*", "text/markdown")
        self.assertEqual(rendered.reason,
                         "the description needs more memory than a render may take")
        self.assertEqual(sandbox.render("*modest*", "text/markdown").html, "*modest*")


def counting(command, started):
    """C{command}, appending to C{started} each time a child is started."""
    def counted():
        started.append(True)
        return command()
    return counted


def warming_into(path):
    """
    A command running a real child that appends to C{path}, at each
    C{warm} asked of it, the markup asked and whether docutils is then
    loaded.
    """
    return script(
        "import sys\n"
        "import pypid.core.dists.readme as r\n"
        "real = r.warm_up\n"
        "def warm_up(kind=None):\n"
        "    real(kind)\n"
        f"    with open({path!r}, 'a') as f:\n"
        "        f.write(f\"{kind} {'docutils' in sys.modules}\\n\")\n"
        "r.warm_up = warm_up\n"
        "import pypid.sandbox.readme_child as c\n"
        "c.main()\n")


class FewSmallChildrenTests(SynchronousTestCase):
    """
    The children are few and small (issue 43): none for what needs no
    renderer, one unless it is busy, each with the renderers of the
    markups it was given, stopped once idle.
    """

    def sandbox(self, **kwargs):
        """A sandbox closed after the test; its budget L{GENEROUS} unless given."""
        kwargs.setdefault("budget", GENEROUS)
        sandbox = ReadmeSandbox(**kwargs)
        self.addCleanup(sandbox.close)
        return sandbox

    def test_no_child_without_markup(self):
        """
        Prose, plain text, no text and text too long to render are answered
        without a child, as in this process.
        """
        started = []
        sandbox = self.sandbox(command=counting(script("import sys; sys.exit(3)"), started))
        for text, content_type in [
                ("Benchmark package bench-upload-r0x1-00042 1.0.0.\n", None),
                ("UNKNOWN", "text/x-rst"), ("A grail finder.\n\nVersion 2.", "text/markdown"),
                ("*not* <markup>", "text/plain"), ("", None), (None, "text/markdown"),
                ("*x* " * (MAX_TEXT // 4 + 1), "text/markdown")]:
            self.assertEqual(sandbox.render(text, content_type),
                             render_description(text, content_type), text)
        self.assertEqual(started, [])

    def test_one_child_unless_busy(self):
        """Renders at once in several threads share one child while it keeps up."""
        started = []
        sandbox = self.sandbox(children=2, spare_after=GENEROUS,
                               command=counting(child_command, started))
        assert_rendered_in_threads(self, sandbox)
        self.assertEqual(len(started), 1)

    def test_spare_child_when_busy(self):
        """
        A render that waited C{spare_after} for a busy child has another
        started (up to C{children}), and is rendered there.
        """
        sandbox = self.sandbox(children=2, spare_after=0.5, command=hanging_on(FROZEN))
        self.assertFalse(sandbox.render(WARM, "text/markdown").fell_back)
        [first] = sandbox._idle
        hostile = threading.Thread(target=sandbox.render, args=(FROZEN, "text/markdown"))
        hostile.start()
        deadline = time.monotonic() + GENEROUS
        while not sandbox._busy and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        rendered = sandbox.render(README, "text/markdown")
        took = time.monotonic() - started
        self.assertEqual(rendered, render_description(README, "text/markdown"))
        self.assertGreaterEqual(took, 0.5)
        self.assertEqual(sandbox._busy, {first})
        [spare] = sandbox._idle
        self.assertIsNot(spare, first)
        sandbox.close()
        hostile.join()

    def test_renderers_imported_per_markup(self):
        """
        A child imports the renderer of a markup when first given one, once:
        Markdown alone does not load docutils.
        """
        path = self.mktemp()
        sandbox = self.sandbox(command=warming_into(path))
        for _ in range(2):
            self.assertEqual(sandbox.render(README, "text/markdown"),
                             render_description(README, "text/markdown"))
        with open(path) as f:
            self.assertEqual(f.read(), "text/markdown False\n")
        rst = "Title\n=====\n\n*x*\n"
        self.assertEqual(sandbox.render(rst, None), render_description(rst, None))
        with open(path) as f:
            self.assertEqual(f.read(), "text/markdown False\ntext/x-rst True\n")

    def test_import_outside_the_budget(self):
        """The import of a renderer is not spent from the render's budget."""
        # (an import past the budget; the render itself, of a line, takes
        # milliseconds, and has its two seconds however loaded the machine)
        sandbox = self.sandbox(budget=2.0, command=script(
            "import time\n"
            "import pypid.core.dists.readme as r\n"
            "real = r.warm_up\n"
            "def warm_up(kind=None):\n"
            "    time.sleep(2.5)\n"
            "    real(kind)\n"
            "r.warm_up = warm_up\n"
            "import pypid.sandbox.readme_child as c\n"
            "c.main()\n"))
        self.assertEqual(sandbox.render(WARM, "text/markdown"),
                         render_description(WARM, "text/markdown"))

    def idle_sandbox(self, clock, **kwargs):
        """A sandbox whose idle children are stopped on C{clock}, after 30 s."""
        return self.sandbox(clock=clock, from_thread=lambda f: f(), idle_timeout=30.0, **kwargs)

    def test_idle_child_stopped(self):
        """A child idle for C{idle_timeout} is stopped; the next render starts another."""
        clock = Clock()
        sandbox = self.idle_sandbox(clock)
        sandbox.render(README, "text/markdown")
        [child] = sandbox._idle
        clock.advance(29)
        self.assertIsNone(child.process.poll())
        clock.advance(1)
        self.assertIsNotNone(child.process.poll())
        self.assertEqual(sandbox._idle, [])
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(sandbox.render(README, "text/markdown"),
                         render_description(README, "text/markdown"))
        [new] = sandbox._idle
        self.assertIsNot(new, child)

    def test_used_child_lives_on(self):
        """A child used again is idle from then."""
        clock = Clock()
        sandbox = self.idle_sandbox(clock)
        sandbox.render(README, "text/markdown")
        [child] = sandbox._idle
        clock.advance(20)
        sandbox.render(README, "text/markdown")
        clock.advance(20)
        self.assertIsNone(child.process.poll())
        self.assertEqual(sandbox._idle, [child])
        clock.advance(10)
        self.assertIsNotNone(child.process.poll())

    def test_stop_cancels_the_timer(self):
        """Stopping the sandbox's part leaves no timer behind."""
        clock = Clock()
        sandbox = self.idle_sandbox(clock)
        sandbox.startService()
        sandbox.render(README, "text/markdown")
        [child] = sandbox._idle
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        sandbox.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertIsNotNone(child.process.poll())
