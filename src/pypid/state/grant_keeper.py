"""
The namespace grants the indexes' JSON API shows (PEP 752, issue 46), with
when each came into force (L{pypid.core.grant_ledger}), kept in the
default index's storage.

Read before the listeners open (a part of the server), and at each
C{SIGHUP} whose C{[namespaces]} or C{[groups]} changed: the document read,
brought up to the grants configured (a new grant in force from now, one
removed forgotten) and written back when that changed it. Why it reads
before it writes: on a shared bucket, the first server to run with a
grant says since when; the others keep its word. Nothing else changes the
document, so it is not read again on a timer.

A storage that fails, or a document that cannot be read, is logged and
not written: the grants are served all the same, those the server has no
word of in force from its start (C{owned} is then true only for their
owners' projects and the newer ones), and the next reload tries again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredLock, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pypid.core.grant_ledger import GrantLedger
from pypid.core.namespaces import NamespaceGrants
from pypid.core.parts import IReloadable
from pypid.storage.interface import GRANT_LEDGER, IServerDocuments

log = Logger()

#: C{take(grants, ledger, groups)}: serve the grants (the registry's
#: L{pypid.state.indexes.IndexRegistry.take_namespaces}).
Take = Callable[[NamespaceGrants, GrantLedger, Mapping[str, frozenset[str]]], object]


class GrantSettings(Protocol):
    """What the keeper reads of a configuration (a L{pypid.config.Config})."""

    @property
    def namespaces(self) -> NamespaceGrants: ...
    @property
    def groups(self) -> Mapping[str, frozenset[str]]: ...


@implementer(IReloadable)
class GrantKeeper(Service):
    """
    Keeps the grants' ledger and hands the grants to the indexes (see the
    module).

    @ivar ledger: the ledger in force.
    @ivar kept: whether the last bring-up read and kept the document.
    """

    def __init__(self, storage: IServerDocuments, clock: IReactorTime, take: Take,
                 settings: GrantSettings) -> None:
        """
        @param storage: the default index's storage.
        @param clock: provides C{seconds()}: when a new grant came into force.
        @param settings: the configuration the server started with.
        """
        self._storage = storage
        self._clock = clock
        self._take = take
        self._grants = settings.namespaces
        self._groups = settings.groups
        self._lock = DeferredLock()
        self.ledger = GrantLedger()
        self.kept: bool | None = None

    def startService(self) -> Deferred[None]:
        """Read the ledger before the server answers (a failure is logged)."""
        Service.startService(self)
        return self._bring_up()

    def prepare_reload(self, config: GrantSettings | None) -> Callable[[], str] | None:
        """Take C{[namespaces]} and C{[groups]} when either changed."""
        if config is None or (config.namespaces == self._grants
                              and config.groups == self._groups):
            return None

        def commit() -> str:
            self._grants, self._groups = config.namespaces, config.groups
            # (in force at once, from now; then since when the document says)
            self._serve(self.ledger.brought_up(self._grants, self._clock.seconds()))
            self._bring_up()
            return "namespace grants"
        return commit

    def _bring_up(self) -> Deferred[None]:
        d = self._lock.run(lambda: ensureDeferred(self._read_and_keep()))
        d.addErrback(self._unkept)
        return d

    async def _read_and_keep(self) -> None:
        grants = self._grants
        data = await self._storage.document(GRANT_LEDGER)
        kept = GrantLedger() if data is None else GrantLedger.from_bytes(data)
        ledger = kept.brought_up(grants, self._clock.seconds())
        if ledger != kept:
            await self._storage.keep_document(GRANT_LEDGER, ledger.to_bytes())
        self.kept = True
        self._serve(ledger)

    def _unkept(self, failure: Failure) -> None:
        self.kept = False
        log.error("Cannot keep when the namespace grants came into force ({error}): "
                  "those not recorded are taken as in force from now",
                  error=failure.getErrorMessage())
        self._serve(self.ledger.brought_up(self._grants, self._clock.seconds()))

    def _serve(self, ledger: GrantLedger) -> None:
        self.ledger = ledger
        self._take(self._grants, ledger, self._groups)
