"""
The house's figures, kept: no module of C{src/pypid} over L{MODULE_LINES}
lines, no class over L{CLASS_LINES}, no function over L{FUNCTION_LINES}
lines or L{PARAMETERS} parameters, and no import cycle. The words keep up
too: no module docstring over L{DOCSTRING_LINES} lines, and no reference to
a tracker issue (C{issue 26}) in the source, which does not hold the
tracker: the code gives the reason, not the ticket.

Sizes that no test kept grew back within a turn after they were brought
down once. Each figure over its limit today is named in L{OVER} with its
ceiling (what it measures now: it may shrink, never grow) and the reason
it is over; an entry whose figure came under the limit must go, so the
table only shrinks. Cycles are kept the same way in L{CYCLES}, long
docstrings in L{LONG_DOCSTRINGS} and tracker references in
L{TRACKER_REFERENCES}.
"""

import ast
import os
import re
import sys
from functools import cache

from twisted.trial.unittest import SynchronousTestCase

from tests.harness.source_trees import SOURCE, nodes, source_modules

MODULE_LINES = 600
CLASS_LINES = 400
FUNCTION_LINES = 80
PARAMETERS = 12
DOCSTRING_LINES = 30

#: A reference to a tracker issue: C{issue 26}, C{issues 26}, C{issue #26}.
TRACKER_REFERENCE = re.compile(r"\bissues? #?[0-9]+", re.IGNORECASE)

#: What is over its limit today: C{(kind, name) -> (ceiling, reason)}; a
#: module by its path under C{src/}, a class or function as C{path:Name}.
OVER = {
    ("parameters", "pypid/core/dists/model.py:__new__"): (
        19, "a file's record is a tuple made on the hot path: one argument a field"),
}

#: The import cycles of today (runtime, lazy or type-only imports alike),
#: each a sorted tuple of modules, with the reason it is there.
CYCLES = {
    ("pypid.auth.ldap", "pypid.auth.verifier"):
        "the directory is one of the verifier's sources (type-only one way)",
}

#: Module docstrings over L{DOCSTRING_LINES} lines today: C{path -> (ceiling, reason)}.
LONG_DOCSTRINGS: dict[str, tuple[int, str]] = {}

#: Files that still name tracker issues: C{path -> (ceiling of references, reason)}.
TRACKER_REFERENCES: dict[str, tuple[int, str]] = {}


def _modules():
    """C{(path under src/, dotted name, text, syntax tree)} of every module of pypid."""
    return [(module.relative, module.dotted, module.text, module.tree)
            for module in source_modules()]


def _parameters(node):
    arguments = node.args
    count = (len(arguments.posonlyargs) + len(arguments.args) + len(arguments.kwonlyargs)
             + (arguments.vararg is not None) + (arguments.kwarg is not None))
    every = arguments.posonlyargs + arguments.args
    if every and every[0].arg in ("self", "cls"):
        count -= 1
    return count


@cache
def measure():
    """Every figure over its limit: C{(kind, name) -> figure}."""
    over = {}
    for path, _, text, tree in _modules():
        lines = text.count("\n")
        if lines > MODULE_LINES:
            over[("module", path)] = lines
        for node in nodes(tree):
            size = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, ast.ClassDef) and size > CLASS_LINES:
                over[("class", f"{path}:{node.name}")] = size
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if size > FUNCTION_LINES:
                    over[("function", f"{path}:{node.name}")] = size
                if _parameters(node) > PARAMETERS:
                    over[("parameters", f"{path}:{node.name}")] = _parameters(node)
    return over


@cache
def long_docstrings():
    """Every module docstring over L{DOCSTRING_LINES} lines: C{path -> lines}."""
    long = {}
    for path, _, _, tree in _modules():
        docstring = ast.get_docstring(tree, clean=False) or ""
        if docstring.count("\n") > DOCSTRING_LINES:
            long[path] = docstring.count("\n")
    return long


@cache
def tracker_references():
    """
    The tracker references of every text file of pypid (the stylesheets and
    pages too): C{path -> count}, with the count of files read.
    """
    found, read = {}, 0
    for folder, _, files in os.walk(os.path.join(SOURCE, "pypid")):
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except UnicodeDecodeError:
                continue
            read += 1
            count = len(TRACKER_REFERENCE.findall(text))
            if count:
                found[os.path.relpath(path, SOURCE).replace(os.sep, "/")] = count
    return found, read


@cache
def cycles():
    """The import cycles among pypid's modules, as sorted tuples."""
    modules = {dotted: tree for _, dotted, _, tree in _modules()}
    graph = {}
    for dotted, tree in modules.items():
        edges = set()
        for node in nodes(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pypid"):
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    edges.add(child if child in modules else node.module)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in modules)
        graph[dotted] = {edge for edge in edges if edge in modules and edge != dotted}
    # Tarjan's strongly connected components.
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return set(found)


class SizeTests(SynchronousTestCase):
    """The figures of the house stay within their limits, or under their ceilings."""

    def test_nothing_new_over(self):
        """Nothing over a limit but what L{OVER} names."""
        new = {key: figure for key, figure in measure().items() if key not in OVER}
        self.assertEqual(new, {}, "over the limit: split it (or name it in OVER with why)")
        self.assertTrue(measure(), "the measure finds what OVER names (not vacuous)")

    def test_none_grew(self):
        """What L{OVER} names is no bigger than its ceiling."""
        measured = measure()
        grown = {key: (measured[key], ceiling) for key, (ceiling, _) in OVER.items()
                 if measured.get(key, 0) > ceiling}
        self.assertEqual(grown, {})

    def test_table_only_shrinks(self):
        """An entry of L{OVER} that came under its limit (or is gone) leaves the table."""
        measured = measure()
        self.assertEqual(sorted(key for key in OVER if key not in measured), [])

    def test_every_entry_has_a_reason(self):
        """Each entry says why it is over."""
        self.assertEqual([key for key, (_, reason) in OVER.items() if not reason.strip()], [])
        for table in (LONG_DOCSTRINGS, TRACKER_REFERENCES):
            self.assertEqual([key for key, (_, reason) in table.items() if not reason.strip()],
                             [])

    def test_no_new_cycle(self):
        """No import cycle but those L{CYCLES} names, and each of those still there."""
        self.assertEqual(cycles(), set(CYCLES))


class WordsTests(SynchronousTestCase):
    """
    The words keep up: module docstrings stay short, and the source gives
    reasons rather than tracker numbers.
    """

    def test_no_new_long_docstring(self):
        """No module docstring over L{DOCSTRING_LINES} but what L{LONG_DOCSTRINGS} names."""
        new = {path: lines for path, lines in long_docstrings().items()
               if path not in LONG_DOCSTRINGS}
        self.assertEqual(new, {}, "a long module docstring: keep what a reader needs there, "
                                  "move the rest to docs/ (or name it with why)")

    def test_no_docstring_grew(self):
        """What L{LONG_DOCSTRINGS} names is no longer than its ceiling."""
        measured = long_docstrings()
        grown = {path: (measured[path], ceiling) for path, (ceiling, _) in LONG_DOCSTRINGS.items()
                 if measured.get(path, 0) > ceiling}
        self.assertEqual(grown, {})

    def test_docstring_table_only_shrinks(self):
        """An entry of L{LONG_DOCSTRINGS} that came under the limit leaves the table."""
        measured = long_docstrings()
        self.assertEqual(sorted(path for path in LONG_DOCSTRINGS if path not in measured), [])

    def test_no_new_tracker_reference(self):
        """No tracker reference but in the files L{TRACKER_REFERENCES} names."""
        found, read = tracker_references()
        self.assertGreater(read, 100, "the files of pypid are read (not vacuous)")
        new = {path: count for path, count in found.items() if path not in TRACKER_REFERENCES}
        self.assertEqual(new, {}, "a tracker reference: give the reason instead")

    def test_no_reference_added(self):
        """The files L{TRACKER_REFERENCES} names have no more references than their ceiling."""
        found, _ = tracker_references()
        grown = {path: (found[path], ceiling)
                 for path, (ceiling, _) in TRACKER_REFERENCES.items()
                 if found.get(path, 0) > ceiling}
        self.assertEqual(grown, {})

    def test_reference_table_only_shrinks(self):
        """An entry of L{TRACKER_REFERENCES} whose file has none left leaves the table."""
        found, _ = tracker_references()
        self.assertEqual(sorted(path for path in TRACKER_REFERENCES if path not in found), [])

    def test_reference_pattern(self):
        """L{TRACKER_REFERENCE} finds the forms the source used, and not PEPs or RFCs."""
        text = "(issue 26, stage 4); Issue 44: as issues 61 found; issue #9; PEP 503; RFC 9110"
        self.assertEqual(len(TRACKER_REFERENCE.findall(text)), 4)
