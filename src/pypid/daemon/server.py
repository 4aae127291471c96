"""
The composition root of a server (of one process, or a worker of a
machine): L{build_service} lists its parts, each built complete by its
own package's factory, in the order they start
(L{pypid.daemon.container.Parts} stops them in reverse).

The hosted indexes are L{pypid.state.indexes.IndexRegistry}'s stacks: each
named index's parts follow the default's of their kind (C{storage:NAME},
C{index:NAME}, ...), so that every index loads before the listeners open
and saves its last snapshot after they closed; it is served under
C{/NAME/} (L{pypid.web.serving.index_root}). Each named upstream's parts
follow C{[upstream]}'s (C{upstream:NAME}) and the indexes' loads
(C{upstream-state:NAME}: read back before the listeners open, saved after).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import attrs
from twisted.application.service import IService
from twisted.internet.interfaces import IReactorProcess, IReactorSocket, IReactorTime

from pypid.advisories.feed import AdvisoryFeed
from pypid.config import Config
from pypid.core.records.audit_chain import Entry, format_time
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.security.advisories import AdvisoryBoard
from pypid.daemon.container import Parts
from pypid.daemon.inherited import adopted
from pypid.daemon.listeners import IListeningReactor, Listeners, PortCheck, bind_for_a_moment
from pypid.daemon.machine import Heartbeat, IStoppingReactor, ReadyLine, SupervisorWatch, WorkerRole
from pypid.daemon.pools import ThreadPools
from pypid.daemon.readiness import Readiness, RunningMark
from pypid.daemon.start_notes import StartNotes
from pypid.daemon.systemd import Notifier, notifier_part
from pypid.jobs.periodic import Periodic
from pypid.jobs.run import Run
from pypid.machine.topics import LONE, TAKE_EVERY, Hub, Topic
from pypid.sandbox.readme_sandbox import ReadmeSandbox
from pypid.state.cleanup import RetentionSchedule
from pypid.state.indexes import IndexRegistry
from pypid.state.journal_follower import EVERY, JournalFollower
from pypid.state.recycle_bin import BinUpkeep
from pypid.state.takedown_log import log_takedowns
from pypid.storage.base.journal import IJournal, JournalPart
from pypid.storage.factory import SharedBucket, Sharing, make_journal
from pypid.upstream.factory import UpstreamPart
from pypid.web.app import WebPart
from pypid.web.identity.identity_part import IdentityPart
from pypid.web.server.audit_trail import AuditPart, AuditTrail
from pypid.webhooks.part import WebhookPart


class IServerReactor(IListeningReactor, IReactorProcess, IStoppingReactor,
                     IReactorSocket):
    """
    What the server uses of the reactor: the listeners', processes, calls
    from other threads, readers and adopted sockets (a worker's).
    """


@attrs.frozen
class _MadeParts:
    """The parts the web is built over, made in the order each needs the others."""

    sandbox: ReadmeSandbox
    journal: JournalPart
    registry: IndexRegistry
    feed: AdvisoryFeed
    webhooks: WebhookPart
    audit: AuditPart
    follower: JournalFollower
    access: IdentityPart
    mark: RunningMark | None
    readiness: Readiness
    #: what this worker shares with the machine's others (L{LONE}: a server of one process)
    hub: Hub

    @classmethod
    def of(cls, config: Config, reactor: IServerReactor, pools: ThreadPools,
           worker: WorkerRole | None) -> _MadeParts:
        server = config.server
        run = pools.run
        # (descriptions render in children, with a time budget: a README cannot stop the server)
        sandbox = ReadmeSandbox(budget=server.description_budget, clock=reactor,
                                from_thread=lambda call: reactor.callFromThread(call))
        board = AdvisoryBoard()
        hub = Hub(worker.ring, worker.lane) if worker is not None else LONE
        # (the journal: the one record of every change, for the audit log, the
        # webhooks and the storages shared with other servers or workers;
        # one client of a bucket for them all: /metrics counts each request once)
        bucket = SharedBucket.create(config, run, reactor) if config.bucket is not None else None
        journal = make_journal(config, run, reactor, bucket)
        registry = IndexRegistry.from_config(
            config, run, reactor, board=board, render=sandbox.render,
            upstream=UpstreamPart.maker(config, run, reactor, sandbox.render, hub, journal),
            sharing=Sharing(bucket, journal, hub))
        # (what fills the board: read before the index loads, again at SIGHUP and on a timer)
        feed = AdvisoryFeed.from_config(config, board, run, reactor, hub)
        default = registry.default
        # (what this server writes moves its projects' serials at once; what
        # the others write, its follower reads: from the snapshot's serial on)
        journal.listen(registry.serials.take)
        follower = JournalFollower(journal, registry.serials, reactor,
                                   min(EVERY, config.bucket.sync_interval)
                                   if config.bucket is not None else EVERY,
                                   bound=registry.changes_read)
        # (the doorbell: the other workers read the journal before they answer)
        journal.listen(lambda entries: hub.publish(Topic.JOURNAL))
        webhooks = WebhookPart.from_config(config, run, reactor, hub.runs_once,
                                           journal, default.storage.s3_timings)
        audit = AuditPart(AuditTrail(journal, reactor))
        if config.advisories.configured and hub.runs_once:
            # (an advisory newly concerning a release is a journal entry, an event)
            webhooks.tell_advisories(board, journal, lambda: {
                name: registry.releases_of(name) for name in registry.policies})
        # (a worker keeps the tokens and browser sessions with the others)
        access = IdentityPart(config, reactor, pools.hashing, audit.trail, pools.run, hub)
        # (each file an upstream takes down is audited)
        log_takedowns(registry.upstream_sources(), audit.trail.log, reactor)
        # (a machine's mark is its first worker's; every worker serves its
        # snapshot, and the others' changes after it, and checks once it listens)
        mark = (RunningMark(server.snapshot + ".running", default.writer, default.loader)
                if hub.runs_once else None)
        readiness = Readiness([stack.loader for stack in registry.stacks.values()], mark)
        return cls(sandbox, JournalPart(journal), registry, feed, webhooks, audit, follower,
                   access, mark, readiness, hub)

    def web(self, config: Config, run: Run, reactor: IServerReactor) -> WebPart:
        """The web over these parts: every index served, C{/metrics} of each part."""
        registry, default = self.registry, self.registry.default
        return WebPart.from_config(
            config, registry, self.access, self.audit.trail,
            self.readiness.ready, run, reactor, self.sandbox.render,
            [source for source in (registry, default.writer, default.storage,
                                   default.upstream_part, self.audit, default.backfill, self.feed,
                                   self.webhooks)
             if source is not None]
            + [part for part, _ in registry.upstreams.values()],
            self.hub, self.webhooks, self.follower)


def build_service(config: Config, reactor: IServerReactor, exit_on_failure: bool = False,
                  pools: ThreadPools | None = None, notifier: Notifier | None = None,
                  load_config: Callable[[], Config] | None = None,
                  check_port: PortCheck = bind_for_a_moment,
                  worker: WorkerRole | None = None) -> Parts:
    """
    The parts of the server of C{config}, in the order they start, in their
    container (or L{StartupError}: a part cannot be built of it).

    @param exit_on_failure: make the process exit with status 1 after a fatal
        start-up error (only for a real process, never inside tests).
    @param notifier: the systemd notifier of a C{Type=notify} unit, or L{None}.
    @param load_config: reading the configuration again on C{SIGHUP};
        L{None} for no reload.
    @param worker: which worker of a machine this server is; L{None} for a
        server of one process.
    """
    pools = pools or ThreadPools.create(reactor, config.server.threads)
    made = _MadeParts.of(config, reactor, pools, worker)
    registry, feed, audit, readiness = made.registry, made.feed, made.audit, made.readiness
    default = registry.default
    web = made.web(config, pools.run, reactor)
    listeners = Listeners.from_config(
        config, reactor, web.web.site, pools.run, check_port,
        inherited=adopted(reactor, list(worker.sockets)) if worker is not None else None,
        tls_texts=dict if worker is None else lambda: worker.config.read().held)
    # (what a machine runs once, its first worker runs)
    once = made.hub.runs_once

    def parts(kind: str) -> list[tuple[str, IService]]:
        return registry.parts(kind) if once or kind not in _ONCE else []
    return Parts(_present(
        # (a worker beats from its start: one hung while it loads is killed)
        ("heartbeat", Heartbeat(reactor) if worker is not None else None),
        # (a TCP port taken stops start-up before anything is written)
        ("listen-check", listeners.check),
        # (where the data is, and the shipped password's warning)
        ("start-notes", StartNotes(config) if worker is None else None),
        ("threads", pools),
        ("readme-sandbox", made.sandbox),  # its children stopped once nothing renders
        ("journal", made.journal),  # (closed after the storages that tell their changes in it)
        *parts("storage"),
        ("upstream", default.upstream_part),
        *registry.upstream_parts("upstream"),
        ("audit", audit),
        ("webhooks", made.webhooks),  # (a reader of the journal: stops before it closes)
        ("access", made.access),
        ("advisories", feed),  # the path checked; unread until advisories-read
        ("advisory-waivers", registry.waivers),  # read before the listeners open
        ("running-mark", made.mark),  # removed once the last snapshot is saved
        *parts("index"),            # the listeners open once the indexes are loaded
        ("namespace-grants", registry.grants),  # (kept over the indexes loaded)
        ("journal-follower", made.follower),  # (the serials all agree on, read first)
        *registry.upstream_parts("upstream-state"),   # read back, and saved at the end
        *parts("snapshot"),         # the last snapshots, once the listeners drained
        ("readiness", readiness),   # after a crash, storage checked before listening
        *parts("usage"),  # (the download counts, written once the listeners drained)
        ("web", web),
        ("machine-metrics", web.web.app.metrics.machine),  # (a worker's, for the others)
        ("listeners", listeners),
        # (the advisories read once the server answers; until then, the
        # indexes that hide or deny fail closed)
        ("advisories-read", feed.first_read if config.advisories.configured else None),
        *parts("snapshot-timer"),
        *parts("sync"),
        *parts("follow-up"),        # the check of storage, or the backfill
        # (the recycle bins' purges and the retention rules, audited)
        *(_upkeep(config, registry, audit.trail, reactor) if once else ()),
        ("systemd", notifier_part(notifier, reactor,
                                   lambda: f"Serving {len(default.index)} files",
                                   readiness.when_ready)),
        *(_worker_parts(made.hub, readiness, reactor) if worker is not None else ()),
    ), reactor, exit_on_failure=exit_on_failure, load_config=load_config, config=config,
        reloaded=partial(_audit_reload, audit.trail.log, reactor) if once else None)


def _worker_parts(hub: Hub, readiness: Readiness,
                  reactor: IServerReactor) -> Iterator[tuple[str, IService]]:
    """
    A worker's parts of the machine: it tells its supervisor it is ready,
    keeps up with the ring while idle (the throttle's and the logins' news
    never go round it unread), and stops when the supervisor ends.
    """
    yield "ready-line", ReadyLine(readiness.when_ready)
    yield "ring-reader", Periodic(hub.take, TAKE_EVERY, reactor, "The ring's read")
    yield "supervisor-watch", SupervisorWatch(reactor)


def _audit_reload(audit: IJournal, clock: IReactorTime, outcome: str, detail: str) -> None:
    """A reload's audit entry (a machine's: its first worker's), and so its webhook event."""
    audit.queue(Entry(time=format_time(clock.seconds()), event=ChangeKind.RELOAD, outcome=outcome,
                       detail=detail))


#: The parts of each index a machine runs once, in its first worker: the
#: snapshots (the timer's and the last, at the stop); every worker checks
#: storage against the snapshot it started from once it listens.
_ONCE = frozenset(["snapshot", "snapshot-timer"])


def _upkeep(config: Config, registry: IndexRegistry, audit: AuditTrail,
            reactor: IReactorTime) -> list[tuple[str, IService | None]]:
    """The recycle bins' purges and the retention rules (when there are some), audited."""
    return [("recycle-bin", BinUpkeep.of(registry.bins(), audit.log, reactor)),
            ("retention", RetentionSchedule.from_config(config.retention, registry.cleanups(),
                                                        audit.log, reactor))]


def _present(*parts: tuple[str, IService | None]) -> list[tuple[str, IService]]:
    """The parts that are there (a part the configuration does not ask for is L{None})."""
    return [(name, part) for name, part in parts if part is not None]
