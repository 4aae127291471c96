"""
The systemd recipe as the project gives it: the unit (C{etc/pypid.service}:
where the configuration is, the one folder it may write) and the edit the
recipe makes to the shipped C{etc/pypid.ini}, a C{sed} line read from the
README, C{docs/operations.rst} and the unit's own comments, which must all
give the same one. A test following it (L{follow}) breaks when the docs,
the unit and the shipped file drift apart.
"""

import os
import re

import attrs

from tests import CHECKOUT

#: The files that give the recipe's edit of the configuration (each the same).
RECIPE_FILES = ("README.rst", os.path.join("docs", "operations.rst"),
                os.path.join("etc", "pypid.service"))

#: A C{sed -i 's|PATTERN|REPLACEMENT|' FILE} line of the recipe.
_SED = re.compile(r"sed -i '(s\|([^|']+)\|([^|']+)\|(g?))' (\S+)")
#: The patterns this reading of sed's basic regular expressions takes as
#: Python's: letters, digits, C{/ - _} and escaped characters.
_SIMPLE = re.compile(r"(\\.|[\w/-])+")


@attrs.frozen
class Recipe:
    """What the recipe does: where it puts the configuration and the state, and its edit."""

    #: the configuration file (ExecStart's C{--config})
    config: str
    #: the state folder (C{WorkingDirectory=}, C{ReadWritePaths=}, C{StateDirectory=})
    state: str
    #: the edit: C{sed}'s pattern and replacement, and whether it is global (C{g})
    pattern: str
    replacement: str
    everywhere: bool


def _read(name):
    with open(os.path.join(CHECKOUT, name), encoding="utf-8") as f:
        return f.read()


def _unit_settings():
    """The unit's C{Key=value} lines (the last of each key), comments left out."""
    settings = {}
    for line in _read(os.path.join("etc", "pypid.service")).splitlines():
        key, equals, value = line.partition("=")
        if equals and not line.startswith("#"):
            settings[key.strip()] = value.strip()
    return settings


def read_recipe():
    """
    The L{Recipe} the unit and the docs give.

    @raise AssertionError: a file of L{RECIPE_FILES} gives no edit, or
        another one than the others; the unit's folders disagree; the edit
        is of another file than the unit's configuration.
    """
    unit = _unit_settings()
    state = unit["WorkingDirectory"]
    if not (unit["ReadWritePaths"] == state == "/var/lib/" + unit["StateDirectory"]):
        raise AssertionError(f"etc/pypid.service: WorkingDirectory, ReadWritePaths and "
                             f"StateDirectory name different folders: {unit}")
    command = unit["ExecStart"].split()
    config = command[command.index("--config") + 1]
    edits = {name: set(_SED.findall(_read(name))) for name in RECIPE_FILES}
    found = set().union(*edits.values())
    if len(found) != 1 or not all(edits.values()):
        raise AssertionError(f"the recipe's sed edit differs between {RECIPE_FILES}: {edits}")
    (_, pattern, replacement, flag, target), = found
    if target != config:
        raise AssertionError(f"the recipe edits {target}, the unit reads {config}")
    if not _SIMPLE.fullmatch(pattern) or "&" in replacement or "\\" in replacement:
        raise AssertionError(f"the recipe's sed edit is past what this test reads: {pattern!r}")
    return Recipe(config, state, pattern, replacement, flag == "g")


def follow(recipe, root):
    """
    Follow C{recipe} under the folder C{root} (standing for C{/}): the
    shipped C{etc/pypid.ini} installed at C{root + recipe.config} and
    edited, and the state folder made; return C{(configuration, state)},
    both under C{root}.
    """
    if not recipe.replacement.startswith("/"):
        raise AssertionError(f"the recipe's sed writes a relative path: {recipe.replacement}")
    replacement = root + recipe.replacement
    count = 0 if recipe.everywhere else 1
    text = "".join(re.sub(recipe.pattern, lambda _: replacement, line, count=count)
                   for line in _read(os.path.join("etc", "pypid.ini")).splitlines(True))
    config, state = root + recipe.config, root + recipe.state
    os.makedirs(os.path.dirname(config))
    os.makedirs(state)
    with open(config, "w", encoding="utf-8") as f:
        f.write(text)
    return config, state
