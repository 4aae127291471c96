"""
pypid's modules, read and parsed once for a test process's tests of the
source itself (L{tests.unit.test_layers}, L{tests.unit.test_sizes}), and
each syntax tree's nodes listed once (L{nodes}).

Each of those tests reads every module: parsed once a test, and walked
with C{ast.walk} once a check, they took about 2,000 parses and 5 million
walk steps a run of the two (cProfile); the trees are read, never changed.
"""

import ast
import functools
import os
from typing import NamedTuple

from tests import CHECKOUT

#: The folder that holds the C{pypid} package.
SOURCE = os.path.join(CHECKOUT, "src")


class SourceModule(NamedTuple):
    """One module of pypid."""

    #: its dotted name (a package's, for an C{__init__.py})
    dotted: str
    #: its path
    path: str
    #: its path under L{SOURCE}, with C{/}
    relative: str
    #: its text
    text: str
    #: its syntax tree
    tree: ast.Module


@functools.cache
def source_modules() -> tuple[SourceModule, ...]:
    """Every module of pypid, in the order of a walk of its folders (files sorted)."""
    found = []
    for folder, _, files in os.walk(os.path.join(SOURCE, "pypid")):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, SOURCE)
                dotted = relative[:-3].replace(os.sep, ".").removesuffix(".__init__")
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                found.append(SourceModule(dotted, path, relative.replace(os.sep, "/"), text,
                                          ast.parse(text)))
    return tuple(found)


@functools.cache
def nodes(tree: ast.AST) -> tuple[ast.AST, ...]:
    """Every node of C{tree}, in C{ast.walk}'s order (kept: the trees are never changed)."""
    return tuple(ast.walk(tree))
