"""
The rules against dependency confusion (L{pypid.upstream.confusion}) applied
to what is hosted now: whether a name may be asked upstream. Apart from the
pages and the files because every side asks it, and the web layer too,
before anything reaches the upstream.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from pypid.core.dists.names import normalize
from pypid.core.indexes.namespace_api import IndexNamespaces
from pypid.core.indexes.project import Project
from pypid.core.indexes.project_status import ProjectStatus
from pypid.upstream.confusion import Decision, UpstreamPolicy


class MergedPages(Protocol):
    """
    What the upstream reads of a hosted index's pages
    (L{pypid.core.indexes.rendered_pages}).
    """

    @property
    def namespaces(self) -> IndexNamespaces | None:
        """
        The index's PEP 752 namespaces: its JSON pages, the upstream's
        projects' too, are at API 1.5 only while one is in use.
        """


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
    @ivar mode: C{none}, C{redirect} or C{cache} (C{[upstream] mode}).
    @ivar _policy: the configuration's rules.
    @ivar _index: the hosted projects (what is hosted is never asked upstream).
    """

    mode: str
    _policy: UpstreamPolicy
    _index: HostedIndex

    def decide(self, name: str) -> Decision:
        """May the upstream be asked about C{name}?"""
        hosted = self._index.project(normalize(name)) is not None
        return self._policy.decide(name, hosted)
