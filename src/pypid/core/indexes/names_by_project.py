"""
Filenames grouped by normalized project, kept beside a table keyed by
filename so that one project's entries are found without a walk of them all.
"""

from __future__ import annotations

import attrs


@attrs.define
class NamesByProject:
    """Each normalized project's filenames; a project without any is not kept."""

    _names: dict[str, set[str]] = attrs.field(factory=dict)

    def add(self, project: str, filename: str) -> None:
        """C{filename} is one of C{project}'s."""
        self._names.setdefault(project, set()).add(filename)

    def discard(self, project: str, filename: str) -> None:
        """C{filename} is no longer one of C{project}'s (nothing if it was not)."""
        names = self._names.get(project)
        if names is not None:
            names.discard(filename)
            if not names:
                del self._names[project]

    def of(self, project: str) -> frozenset[str]:
        """The filenames of C{project}."""
        return frozenset(self._names.get(project, ()))

    def clear(self) -> None:
        """Forget every project."""
        self._names.clear()
