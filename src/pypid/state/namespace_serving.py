"""
The namespaces (PEP 752) of the hosted indexes as the grant keeper takes
them: which projects of a namespace its owners did not make
(L{namespace_found}), and serving a new set of grants
(L{serve_namespaces}).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Protocol

from pypid.auth.policy import admin_users_and_groups
from pypid.config import Config
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.grant_ledger import GrantLedger
from pypid.core.indexes.index import Index
from pypid.core.indexes.namespace_api import IndexNamespaces, foreign_projects
from pypid.core.indexes.namespaces import Grant, NamespaceGrants
from pypid.core.indexes.project import Project


class Hosted(Protocol):
    """A hosted index, as far as its namespaces go (L{pypid.state.hosted_stack.HostedStack})."""

    @property
    def index(self) -> Index: ...


def namespace_found(stacks: Mapping[str, Hosted], grant: Grant,
                    settings: Config) -> set[str]:
    """
    The projects of C{grant}'s namespace that the hosted indexes it is
    granted in hold (of C{stacks}) and its owners did not make, as
    C{index/project} (L{foreign_projects}, the first file of each among
    its live and binned ones; C{settings}' C{[groups]} and admins). Only
    the projects of the namespace are read: their records, not every
    project's (a start from a snapshot defers most).
    """
    users, admin_groups = admin_users_and_groups(settings.auth.admins)
    admins = frozenset({f"user:{u}" for u in users} | {f"group:{g}" for g in admin_groups})
    found: set[str] = set()
    for name, stack in stacks.items():
        if grant.index is not None and grant.index != name:
            continue
        index = stack.index
        binned: dict[str, list[FileRecord]] = {}
        for record in index.binned():
            binned.setdefault(record.project, []).append(record)
        projects = ((project.name, partial(_all_files, project, binned.get(project.name, ())))
                    for project in index.projects())
        found |= {f"{name}/{project}" for project in foreign_projects(
            grant, projects, settings.groups, admins)}
    return found


def _all_files(project: Project, binned: Sequence[FileRecord]) -> list[FileRecord]:
    return [*project.files.values(), *binned]


def serve_namespaces(spaces: Mapping[str, IndexNamespaces], stacks: Mapping[str, Hosted],
                     grants: NamespaceGrants, ledger: GrantLedger) -> list[str]:
    """
    Serve C{grants}, over what C{ledger} says of them (L{GrantKeeper}), in
    every index of C{spaces}; a hosted index (of C{stacks}) whose
    namespaces changed drops its pages (the composed ones go by their
    stamp). The names of the indexes that changed.
    """
    changed = [name for name, found in spaces.items() if found.take(grants, ledger)]
    for name in changed:
        stack = stacks.get(name)
        if stack is not None:
            stack.index.rendered.namespaces_changed()
    return changed
