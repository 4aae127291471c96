"""
The namespace grants the indexes' JSON API shows (PEP 752), with when each came
into force (L{pypid.core.indexes.grant_ledger}), kept in the default index's
storage.

Read before the listeners open and at each C{SIGHUP} whose C{[namespaces]} or
C{[groups]} changed: the document is brought up to the grants configured (a new
grant in force from now, over the projects its owners did not make; one removed
forgotten), served, and written back when that changed it. It reads before it
writes because on a shared bucket the first server to run with a grant says
since when and over what; the others keep its word. Nothing else changes the
document, so no timer reads it again.

A failure is logged and the grants served all the same; the next reload tries
again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredLock, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pypid.auth.policy import admin_users_and_groups
from pypid.config import Config
from pypid.core.dists.model import FileRecord
from pypid.core.indexes.grant_ledger import GrantLedger
from pypid.core.indexes.index import Index
from pypid.core.indexes.namespace_api import IndexNamespaces, foreign_projects
from pypid.core.indexes.namespaces import Grant, NamespaceGrants
from pypid.core.indexes.project import Project
from pypid.core.parts import IReloadable
from pypid.storage.base.capabilities import GRANT_LEDGER, IServerDocuments

log = Logger()

#: C{take(grants, ledger)}: serve the grants (the registry's L{serve_namespaces}).
Take = Callable[[NamespaceGrants, GrantLedger], object]

#: C{found(grant, settings)}: the projects of C{grant}'s namespace the
#: indexes hold that its owners did not make (by the C{[groups]} and
#: admins of C{settings}: L{namespace_found}).
Found = Callable[[Grant, Any], Iterable[str]]


class GrantSettings(Protocol):
    """What the keeper reads of a configuration (a L{pypid.config.Config})."""

    @property
    def namespaces(self) -> NamespaceGrants: ...
    @property
    def groups(self) -> Mapping[str, frozenset[str]]: ...
    @property
    def auth(self) -> Any: ...


@implementer(IReloadable)
class GrantKeeper(Service):
    """
    Keeps the grants' ledger (C{ledger}) and hands the grants to the indexes.

    @ivar kept: whether the last bring-up read and kept the document.
    """

    def __init__(self, storage: IServerDocuments, clock: IReactorTime, take: Take,
                 found: Found, settings: GrantSettings) -> None:
        """@param settings: the configuration the server started with."""
        self._storage = storage
        self._clock = clock
        self._take = take
        self._found = found
        self._grants = settings.namespaces
        self._settings = settings
        self._lock = DeferredLock()
        self.ledger = GrantLedger()
        self.kept: bool | None = None

    def startService(self) -> Deferred[None]:
        """Read the ledger before the server answers (a failure is logged)."""
        Service.startService(self)
        return self._bring_up()

    def prepare_reload(self, config: GrantSettings | None) -> Callable[[], str] | None:
        """Take C{[namespaces]}, and C{[groups]} and the admins for new grants, when changed."""
        started = self._settings
        if config is None or (config.namespaces == self._grants
                              and config.groups == started.groups
                              and config.auth.admins == started.auth.admins):
            return None

        def commit() -> str:
            self._grants, self._settings = config.namespaces, config
            # (in force at once, from now; then as the document says)
            self._serve(self._brought_up(self.ledger))
            self._bring_up()
            return "namespace grants"
        return commit

    def _bring_up(self) -> Deferred[None]:
        d = self._lock.run(lambda: ensureDeferred(self._read_and_keep()))
        d.addErrback(self._unkept)
        return d

    async def _read_and_keep(self) -> None:
        data = await self._storage.document(GRANT_LEDGER)
        kept = GrantLedger() if data is None else GrantLedger.from_bytes(data)
        # (what the document says wins over what this server found at its commit)
        ledger = self._brought_up(GrantLedger({**self.ledger.entries, **kept.entries}))
        # (served first: a write that fails keeps what was read)
        self._serve(ledger)
        if ledger != kept:
            await self._storage.keep_document(GRANT_LEDGER, ledger.to_bytes())
        self.kept = True

    def _unkept(self, failure: Failure) -> None:
        self.kept = False
        log.error("Cannot keep when the namespace grants came into force ({error}): "
                  "those not recorded are taken as in force from now",
                  error=failure.getErrorMessage())
        self._serve(self._brought_up(self.ledger))

    def _brought_up(self, ledger: GrantLedger) -> GrantLedger:
        settings = self._settings
        return ledger.brought_up(self._grants, self._clock.seconds(),
                                 lambda grant: self._found(grant, settings))

    def _serve(self, ledger: GrantLedger) -> None:
        self.ledger = ledger
        self._take(self._grants, ledger)


class Hosted(Protocol):
    """A hosted index, as far as its namespaces go (L{pypid.state.hosted_stack.HostedStack})."""

    @property
    def index(self) -> Index: ...


def namespace_found(stacks: Mapping[str, Hosted], grant: Grant,
                    settings: Config) -> set[str]:
    """
    The projects of C{grant}'s namespace, as C{index/project}, that the hosted
    indexes it is granted in hold and its owners did not make (by the first
    file among live and binned ones; C{settings}' C{[groups]} and admins). Only
    the namespace's projects' records are read (a start defers most).
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
    Serve C{grants}, as C{ledger} dates them, in every index of C{spaces}; a
    hosted index whose namespaces changed drops its pages (the composed ones
    go by their stamp). The names of the indexes that changed.
    """
    changed = [name for name, found in spaces.items() if found.take(grants, ledger)]
    for name in changed:
        stack = stacks.get(name)
        if stack is not None:
            stack.index.rendered.namespaces_changed()
    return changed
