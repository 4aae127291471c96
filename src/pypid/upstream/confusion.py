"""
What may come from the upstream: the rules against dependency confusion.
Pure logic, no I/O.

A project that exists here (hosted, even with every file deleted) is never
looked up upstream, in any spelling, unless the administrator listed it in
C{merge}; names matching C{private} never leave the server at all. The
cooldown (C{min_age}) hides upstream files younger than it, except for the
projects in C{min_age_exempt}: a freshly published malicious release is
not installed before people had time to notice it.

L{ProjectRules} applies the rules to what is hosted now; every side asks
it, the web layer too.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Protocol, TypeVar

import attrs

from pypid.core.dists.names import filename_key, normalize
from pypid.core.indexes.namespace_api import IndexNamespaces
from pypid.core.indexes.project import Project
from pypid.core.indexes.project_status import ProjectStatus
from pypid.upstream.page_model import UpstreamFile, UpstreamPage, effective_files


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether the normalized C{name} matches one of the (normalized) glob C{patterns}."""
    return any(fnmatchcase(name, pattern) for pattern in patterns)


@attrs.frozen
class Decision:
    """
    Whether a project may be asked of the upstream, and why not.

    @ivar merge: upstream files are shown beside hosted ones.
    """

    allowed: bool
    reason: str = ""
    merge: bool = False


@attrs.frozen
class UpstreamPolicy:
    """
    The upstream rules of one configuration (see C{[upstream]} in the
    configuration documentation).
    """

    mode: str = "none"
    private: tuple[str, ...] = ()
    merge: tuple[str, ...] = ()
    min_age: float = 0.0
    min_age_exempt: tuple[str, ...] = ()

    def decide(self, project: str, hosted: bool) -> Decision:
        """
        May the upstream be asked about C{project} (in any spelling)?

        @param hosted: whether the name exists here (files or tombstones).
        """
        name = normalize(project)
        if self.mode == "none":
            return Decision(False, "no upstream is configured")
        if matches(name, self.private):
            return Decision(False, f"{name} is a private name, never asked upstream")
        if hosted:
            if matches(name, self.merge):
                return Decision(True, merge=True)
            return Decision(False, f"{name} is hosted here: the upstream is not asked")
        return Decision(True)

    def visible(self, page: UpstreamPage,
                now: float) -> tuple[tuple[UpstreamFile, ...], tuple[UpstreamFile, ...]]:
        """The upstream files of C{page} that may be shown now, and those the cooldown hides."""
        if not self.min_age or matches(page.project, self.min_age_exempt):
            return tuple(page.files), ()
        return effective_files(page, now, self.min_age)


class HasFilename(Protocol):
    """A file as L{merged} compares it: by its filename."""

    @property
    def filename(self) -> str:
        """The distribution's filename."""


_F = TypeVar("_F", bound=HasFilename)


def merged(hosted: Iterable[HasFilename], upstream: Iterable[_F]) -> tuple[_F, ...]:
    """
    Hosted records and upstream files of one project, for a merged page:
    a local file wins over an upstream one with the same filename, or that
    names the same distribution in another spelling.

    @return: the upstream files to show beside the hosted ones.
    """
    names = {record.filename for record in hosted}
    keys = {filename_key(record.filename) for record in hosted}
    return tuple(f for f in upstream
                 if f.filename not in names and filename_key(f.filename) not in keys)


class MergedPages(Protocol):
    """What the upstream reads of a hosted index's pages (L{pypid.core.indexes.rendered_pages})."""

    @property
    def namespaces(self) -> IndexNamespaces | None:
        """The index's PEP 752 namespaces: its JSON pages are at API 1.5 only while in use."""


class HostedIndex(Protocol):
    """What the upstream reads of the hosted index (L{pypid.core.indexes.index.Index})."""

    def project(self, name: str) -> Project | None:
        """The hosted project of the normalized C{name}, or L{None}."""

    def status(self, name: str) -> ProjectStatus | None:
        """The status of the hosted project of the normalized C{name} (L{None}: active)."""

    @property
    def rendered(self) -> MergedPages:
        """The hosted index's rendered pages (their namespaces)."""


@attrs.define
class ProjectRules:
    """
    The configuration's rules applied to what C{_index} hosts (never asked upstream).

    @ivar mode: C{none}, C{redirect} or C{cache} (C{[upstream] mode}).
    """

    mode: str
    _policy: UpstreamPolicy
    _index: HostedIndex

    def decide(self, name: str) -> Decision:
        """May the upstream be asked about C{name}?"""
        return self._policy.decide(name, self._index.project(normalize(name)) is not None)
