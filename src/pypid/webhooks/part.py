"""
The webhooks as a part of the daemon (L{WebhookPart}): the ledger in the
default index's store, the subscriptions in force (taken again at C{SIGHUP}),
and, on the server that delivers (a machine's first worker; on a bucket, every
server, taking the lease in turn), the deliveries.

The events are the journal's entries: nothing is written for a webhook when a
change is made, and a subscription's filter is applied when its events are
sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from pypid.config import Config
from pypid.config.webhook_settings import WebhookConfig
from pypid.core.parts import IMetricsSource, IReloadable
from pypid.core.records.audit_chain import format_time
from pypid.core.records.metrics import Family, Timings
from pypid.core.records.webhook_events import make_test_event
from pypid.core.security.advisories import AdvisoryBoard
from pypid.jobs.run import Run
from pypid.storage.base.journal import IJournal
from pypid.storage.base.records import FOLDER, IRecords
from pypid.storage.bucket.bucket_records import BucketRecords
from pypid.storage.cloud_clients import make_client
from pypid.storage.folder.folder_records import FolderRecords
from pypid.webhooks.advisory_events import AdvisoryEvents, Releases
from pypid.webhooks.delivery import Deliveries
from pypid.webhooks.lease import Lease
from pypid.webhooks.ledger import Ledger
from pypid.webhooks.sender import Attempt, Sender

log = Logger()


def check_bundles(subscriptions: Iterable[WebhookConfig], config: Config) -> None:
    """
    Read each subscription's CA bundle now, so one that cannot be used stops
    the start (or the reload) with its key named (a C{StartupError}).
    """
    from pypid.core.util.startup import StartupError

    for subscription in subscriptions:
        if subscription.ca_bundle is None:
            continue
        from pypid.http.client import https_policy
        try:
            https_policy(subscription.ca_bundle, config.held)
        except ValueError as e:
            raise StartupError(f"{config.where('webhook:' + subscription.name, 'ca_bundle')}: "
                               f"{e}")


@attrs.define
class SubscriptionsInForce:
    """The subscriptions in force: what a reload replaces, and what every reader calls."""

    subscriptions: Mapping[str, WebhookConfig]

    def __call__(self) -> Mapping[str, WebhookConfig]:
        """The subscriptions in force now."""
        return self.subscriptions


@implementer(IReloadable, IMetricsSource)
class WebhookPart(Service):
    """The webhooks of a server; C{deliveries} only on the server that delivers."""

    def __init__(self, ledger: Ledger, sender: Sender,
                 subscriptions: Mapping[str, WebhookConfig] | SubscriptionsInForce,
                 clock: IReactorTime,
                 deliveries: Deliveries | None = None,
                 prepare: Callable[[], Any] | None = None,
                 close: Callable[[], Any] | None = None) -> None:
        """@param prepare: starts the store's client, once a subscription is there."""
        self.ledger = ledger
        self.sender = sender
        self.current = (subscriptions if isinstance(subscriptions, SubscriptionsInForce)
                        else SubscriptionsInForce(dict(subscriptions)))
        self.clock = clock
        self.deliveries = deliveries
        self._prepare = prepare
        self._prepared: Deferred[Any] | None = None
        self._close = close

    @property
    def subscriptions(self) -> Mapping[str, WebhookConfig]:
        """The subscriptions in force."""
        return self.current.subscriptions

    @classmethod
    def from_config(cls, config: Config, run: Run, reactor: IReactorTime, deliver: bool,
                    journal: IJournal, timings: Timings | None = None) -> WebhookPart:
        """
        The webhooks of C{config}, in the default index's storage (on a
        bucket, through a client of its own).

        @param deliver: whether this server delivers (a machine's first worker).
        @raise pypid.config.errors.StartupError: a CA bundle, or the
            bucket's credentials, cannot be used.
        """
        check_bundles(config.webhooks.values(), config)
        section = config.bucket
        records: IRecords
        prepare: Callable[[], Any] | None = None
        close: Callable[[], Any] | None = None
        if section is None:
            folder = os.path.join(config.storage.path, *FOLDER.strip("/").split("/"),
                                  "webhooks")
            records = FolderRecords(folder, run)
        else:
            store, closing = make_client(config, run, reactor, timings)
            records = BucketRecords(store, section.prefix + FOLDER + "webhooks/")

            def close() -> Deferred[Any]:
                store.stop()
                return closing()
            prepare = store.start
        ledger = Ledger(records, reactor)
        # (one sender: the deliveries' and the admin's tests)
        sender = Sender(reactor, config.server.ca_bundle, config.held)
        in_force = SubscriptionsInForce(dict(config.webhooks))
        deliveries = None
        if deliver:
            lease = Lease(records, reactor, ledger.instance) if records.shared else None
            deliveries = Deliveries(journal, ledger, sender, in_force, reactor, lease)
            # (what this server writes is looked at once written)
            journal.listen(deliveries.wake)
        return cls(ledger, sender, in_force, reactor, deliveries, prepare=prepare, close=close)

    def send_test(self, subscription: WebhookConfig, id: str,
                  user: str | None) -> Deferred[Attempt]:
        """Send C{subscription} a test event of C{id} from C{user} now, outside the journal."""
        event = make_test_event(id, format_time(self.clock.seconds()), subscription.name, user)
        return self.sender.send(subscription, event)

    def tell_advisories(self, board: AdvisoryBoard, journal: IJournal,
                        releases: Releases) -> AdvisoryEvents:
        """Tell in C{journal} each advisory of C{board} newly concerning one of C{releases()}."""
        told = AdvisoryEvents(self.ledger.store, journal, self.clock, releases,
                              lambda: board.db)
        board.listen(told.changed)
        journal.listen(told.written)
        return told

    def startService(self) -> Deferred[None]:
        """Start the store's client, then the deliveries."""
        Service.startService(self)
        return ensureDeferred(self._start())

    async def _start(self) -> None:
        if self.subscriptions:
            await self._prepared_store()
        if self.deliveries is not None:
            self.deliveries.startService()

    def _prepared_store(self) -> Deferred[Any]:
        """The store's client, started once (at the start, or at the first subscription)."""
        if self._prepared is None:
            self._prepared = maybeDeferred(self._prepare) if self._prepare is not None \
                else succeed(None)
        return self._prepared

    def stopService(self) -> Deferred[None]:
        """Stop the deliveries (what is under way is made again by the next), then the client."""
        Service.stopService(self)
        stopping = self.deliveries.stopService() if self.deliveries is not None \
            else succeed(None)

        def closed(_: object) -> Deferred[None]:
            d: Deferred[None] = self.sender.close()
            if self._close is not None and self._prepared is not None:
                d.addCallback(lambda _: self._close() if self._close is not None else None)
            return d
        return stopping.addCallback(closed)

    def prepare_reload(self, config: Config | None) -> Callable[[], str | None] | None:
        """Take the subscriptions of the configuration read again."""
        if config is None or not (config.webhooks or self.subscriptions):
            return None
        check_bundles(config.webhooks.values(), config)
        before = self.subscriptions

        def commit() -> str | None:
            # (new clients whatever changed: a CA bundle rotated in place is read again)
            self.sender.reset(config.held)
            if config.webhooks == before:
                return None
            self.current.subscriptions = dict(config.webhooks)
            if config.webhooks:
                self._prepared_store().addErrback(lambda f: log.failure(
                    "Cannot start the client of the webhooks' ledger", f))
            if self.deliveries is not None:
                self.deliveries.wake()
            return _changes(before, config.webhooks)
        return commit

    def metric_families(self) -> Iterable[Family]:
        """The deliveries' (nothing on a server that does not deliver)."""
        return self.deliveries.metric_families() if self.deliveries is not None else ()


def _changes(before: Mapping[str, WebhookConfig], after: Mapping[str, WebhookConfig]) -> str:
    """The few words a reload logs of the subscriptions' change."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(name for name in set(before) & set(after) if before[name] != after[name])
    said = [f"{verb} {', '.join(names)}" for verb, names in
            (("added", added), ("removed", removed), ("changed", changed)) if names]
    return "webhooks " + "; ".join(said)
