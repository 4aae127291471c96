"""
Everything but the hot path, composed of one small Klein app per area.

The default index's C{/simple/}, C{/files/}, C{/integrity/} and C{/project/...}, and the
C{/static/...} assets, are plain Twisted resources (the hot path); every other path goes to the
areas: the default index's (pages for people, uploads and changes, legacy JSON) and the site's
(L{PypidApp}: the admin API, the console, C{/health}, C{/metrics}). Which area owns which path
is read from the areas' routes (L{pypid.web.server.areas}).

Every index, the default included, is served by the same classes (L{IndexServer}), so a rule
added to one is never missing from another. Each index acts on its advisories by its own
policy; one L{DeniedDownloads} refuses, counts and audits the denied downloads of all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import attrs
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import IResource
from zope.interface import implementer

from pypid.assets import Assets
from pypid.auth.factory import make_attestation_checker
from pypid.auth.oidc import TrustedPublishing
from pypid.auth.shared_throttle import ThrottleShare
from pypid.auth.throttle import LoginThrottle
from pypid.config import Config
from pypid.config.metrics_settings import MetricsConfig
from pypid.core.access.forwarded import TrustedProxies
from pypid.core.dists.readme import Renderer
from pypid.core.formats.catalog import catalog_for
from pypid.core.formats.pages import Chrome, IndexLink
from pypid.core.indexes.composition import Filters
from pypid.core.indexes.index_names import DEFAULT
from pypid.core.indexes.index_names import NAME as INDEX_NAME
from pypid.core.indexes.links import file_url_for, package_url_for
from pypid.core.parts import IMetricsSource, IReloadable
from pypid.core.records.metrics import UPLOAD_PATHS, RequestStats
from pypid.jobs.run import Run
from pypid.machine.topics import LONE, Hub
from pypid.state.catch_up import CatchUp, Looks
from pypid.state.index_reload import IndexReload
from pypid.state.indexes import IndexRegistry
from pypid.storage.base.interface import IStorage
from pypid.storage.folder.journal_files import MemoryJournal
from pypid.web.admin.advisory_admin import AdvisoryAdmin
from pypid.web.admin.audit_admin import AuditAdmin
from pypid.web.admin.cache_admin import CacheAdmin
from pypid.web.admin.exposition import MachineMetrics, Metrics, SiteMetrics
from pypid.web.admin.groups_admin import GroupsAdmin
from pypid.web.admin.indexes_admin import IndexesAdmin
from pypid.web.admin.recycle_admin import RecycleAdmin
from pypid.web.admin.retention_admin import RetentionAdmin
from pypid.web.admin.token_admin import TokenAdmin
from pypid.web.admin.usage_admin import UsageAdmin
from pypid.web.admin.webhook_admin import WebhookAdmin, Webhooks
from pypid.web.changes.promote import Promote
from pypid.web.changes.publish import Publish
from pypid.web.changes.token_exchange import TrustedPublishingArea, exchange_throttle
from pypid.web.changes.upload_store import AttestationCheck, NoAttestations
from pypid.web.identity.gates import Gates
from pypid.web.identity.identity_part import IdentityPart
from pypid.web.pages.browser_login import BrowserLogin
from pypid.web.pages.console import Console, ConsoleGate
from pypid.web.pages.console_admin import ConsoleAdmin, ConsoleWebhooks
from pypid.web.pages.console_project import ConsoleProject
from pypid.web.pages.people import AssetsResource, IndexSwitcher, PeoplePages, ReaderChrome
from pypid.web.pages.project_pages import ProjectPages
from pypid.web.server.areas import Area, Areas
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.server.connections import ConnectionCounter
from pypid.web.server.health import Health
from pypid.web.serving.denied_files import DeniedDownloads
from pypid.web.serving.index_files import IndexFiles
from pypid.web.serving.index_pages import IndexSimple
from pypid.web.serving.index_root import (
    IndexMaterials,
    IndexRoot,
    ReadOnlyPublish,
    ServedIndex,
)
from pypid.web.serving.legacy import LegacyJSON
from pypid.web.serving.site_root import RootResource
from pypid.web.site import PypidSite
from pypid.web.web_inputs import NO_SERVICES, SiteServices, SiteSettings


@attrs.define
class PypidApp:
    """
    The site's own areas, beside the default index's (L{ServedIndex.areas}); those acting on
    the indexes are L{None} without the registry, the webhooks' without webhooks.
    """

    tokens: TokenAdmin
    cache: CacheAdmin
    health: Health
    metrics: Metrics
    audit: AuditAdmin
    oidc: TrustedPublishingArea | None = None
    promote: Promote | None = None
    advisories: AdvisoryAdmin | None = None
    usage: UsageAdmin | None = None
    recycle: RecycleAdmin | None = None
    retention: RetentionAdmin | None = None
    login: BrowserLogin | None = None
    console: Console | None = None
    console_admin: ConsoleAdmin | None = None
    console_project: ConsoleProject | None = None
    groups: GroupsAdmin | None = None
    indexes: IndexesAdmin | None = None
    webhooks: WebhookAdmin | None = None
    console_webhooks: ConsoleWebhooks | None = None

    def areas(self) -> list[Area]:
        """Its areas (those the configuration has)."""
        return [area for area in attrs.astuple(self, recurse=False) if area is not None]


@attrs.frozen
class Web:
    """
    The HTTP side of a server, as L{build_web} wired it.

    @ivar indexes: what answers under C{/NAME/}; L{None} without named indexes (C{switcher} too).
    @ivar serve_index: makes a named index's answers as L{build_web} made them.
    """

    root: IResource
    site: PypidSite
    app: PypidApp
    indexes: IndexRoot | None
    serve_index: IndexServer
    switcher: IndexSwitcher | None = None

    def prepare_indexes(self, indexes: Sequence[IndexMaterials]) -> Callable[[], None]:
        """
        The answers of the named indexes C{indexes} (C{SIGHUP}), those whose view is the same
        kept; returns what swaps them in, with the C{index} labels of C{/metrics}.
        """
        root = self.indexes
        kept = root.served if root is not None else {}
        served = {}
        indexes = [materials for materials in indexes if materials.name != DEFAULT]
        for materials in indexes:
            key = materials.name.encode("ascii")
            old = kept.get(key)
            served[key] = (old if old is not None and old.simple.composed is materials.composed
                           else self.serve_index(materials))
        links = switcher_links(indexes)

        def commit() -> None:
            # (a reload never gives named indexes to a server that had none: index_reload)
            if root is not None:
                root.replace(served)
                self.site.stats.take_indexes(frozenset(served))
            if self.switcher is not None:
                self.switcher.links = links
        return commit


def build_web(indexes: Sequence[IndexMaterials], access: Gates, run: Run, clock: IReactorTime,
              settings: SiteSettings, services: SiteServices = NO_SERVICES) -> Web:
    """
    Build the resource tree and the site, the one way both the server
    (L{pypid.daemon.server.build_service}) and the tests wire them.

    @param indexes: every index served, the default (at C{/}) and the named ones (under
        C{/NAME/}); without named ones, the tree is that of a server of one index.
    @param run: runs blocking work (upload bodies, inspection, token writes) in a thread pool.
    """
    max_upload_size, base_url = settings.max_upload_size, settings.base_url
    registry = services.registry
    attestations = services.attestations
    audit = services.audit or AuditTrail(MemoryJournal(clock), clock)
    counter = services.counter or ConnectionCounter()
    storage = _default_storage(indexes)
    named = [materials for materials in indexes if materials.name != DEFAULT]
    stats = RequestStats(indexes=frozenset(materials.name.encode("ascii") for materials in named))
    # (the downloads advisories deny, every index's: counted by index with named ones)
    denied = DeniedDownloads(audit, clock, labelled=bool(named))
    assets = Assets.load()
    switcher = IndexSwitcher(access, switcher_links(named)) if named else None
    serve_index = IndexServer(
        access, run, clock, attestations if attestations is not None else NoAttestations(),
        services.render, max_upload_size, base_url, audit, _chrome(assets, base_url), switcher,
        denied)
    default, root_indexes = serve_index.mount(indexes)
    exchanges = exchange_throttle(clock, settings.ipv6_prefix,
                                  ThrottleShare(services.hub, b"exchange"))
    app = _site_areas(
        access, run, clock, audit, services=services,
        health=Health(storage, services.ready,
                      registry.unread_advisories if registry is not None else None,
                      clock=clock, workers=_workers(services.hub)),
        metrics=Metrics(access, services.metrics or MetricsConfig(),
                        (SiteMetrics(stats, counter), denied, *services.sources),
                        services.machine_metrics),
        oidc=_token_exchange(services.publishing, audit, clock, access, named,
                             exchanges, base_url),
        chrome=_chrome(assets, base_url), served=_served_lookup(default, root_indexes))
    root = RootResource(default, access, Areas([*default.areas, *app.areas()]), root_indexes,
                        static=AssetsResource(assets))
    site = PypidSite(root, settings, storage.temp_dir, reactor=clock, access=access, run=run,
                     counter=counter, timer=services.timer, stats=stats, express=root,
                     catch_up=_catch_up(services, [access, exchanges, *(
                         [services.sso] if services.sso is not None else [])]),
                     index_uploads=bool(named))
    return Web(root, site, app, root_indexes, serve_index, switcher)


def _catch_up(services: SiteServices, looks: Sequence[Looks]) -> CatchUp | None:
    """
    A worker's catching up with the others' changes: every hosted index's look, every upstream
    cache's, and C{looks} (the tokens', the browser sessions', the throttles').
    """
    registry = services.registry
    if services.hub.alone or registry is None:
        return None
    return CatchUp(services.hub, [
        *(stack.sync for stack in registry.stacks.values() if stack.sync is not None),
        *(source.machine for source in registry.upstream_sources()
          if source.machine is not None), *looks, *filter(None, [services.follower])])


def _workers(hub: Hub) -> Callable[[], tuple[int, int, int]] | None:
    """C{/health}'s workers: this one's number, how many run, of how many."""
    return None if hub.alone else (lambda: (hub.worker, *hub.workers()))


def _default_storage(indexes: Sequence[IndexMaterials]) -> IStorage:
    """The default index's own storage (it is hosted): C{/health} asks it, uploads spool in it."""
    own = next(materials.own for materials in indexes if materials.name == DEFAULT)
    assert own is not None  # (the default index is hosted)
    return own.storage


def _site_areas(access: Gates, run: Run, clock: IReactorTime, audit: AuditTrail, *,
                services: SiteServices, health: Health, metrics: Metrics,
                oidc: TrustedPublishingArea, chrome: Chrome,
                served: Callable[[str], ServedIndex | None]) -> PypidApp:
    """
    The site's own areas (L{PypidApp}): those acting on the indexes only with the registry
    (without it, their routes answer 404), the webhooks' only with webhooks.
    """
    registry, upstream, webhooks = services.registry, services.upstream, services.webhooks
    tokens = TokenAdmin(access, run, audit=audit)
    audit_admin = AuditAdmin(access, audit)
    promote = (Promote(registry, access, audit=audit, clock=clock)
               if registry is not None else None)
    retention = RetentionAdmin(access, registry, audit) if registry is not None else None
    usage = UsageAdmin(access, registry) if registry is not None else None
    recycle = RecycleAdmin(access, registry) if registry is not None else None
    advisories = (AdvisoryAdmin(access, registry, audit=audit, clock=clock)
                  if registry is not None else None)
    groups = GroupsAdmin(access)
    gate = ConsoleGate(access, chrome, audit)
    indexes = IndexesAdmin(access, registry) if registry is not None else None
    hooks = WebhookAdmin(access, webhooks, audit) if webhooks is not None else None
    return PypidApp(
        tokens=tokens,
        cache=CacheAdmin(access, upstream, audit=audit,
                         sources=(registry.upstream_sources if registry is not None
                                  else lambda: [upstream.source] if upstream else [])),
        health=health, metrics=metrics, audit=audit_admin, oidc=oidc, promote=promote,
        advisories=advisories, usage=usage, recycle=recycle, retention=retention,
        login=BrowserLogin(access, audit, chrome, services.sso),
        console=Console(gate, tokens),
        console_admin=ConsoleAdmin(gate, retention, audit_admin, recycle, advisories, groups,
                                   indexes),
        console_webhooks=ConsoleWebhooks(gate, hooks) if hooks is not None else None,
        console_project=ConsoleProject(gate, served, promote, audit_admin, usage, advisories),
        groups=groups, indexes=indexes, webhooks=hooks)


def _served_lookup(default: ServedIndex, named: IndexRoot | None
                   ) -> Callable[[str], ServedIndex | None]:
    """The index of a name as served now (the console's): a reload may change the named ones."""
    def served(name: str) -> ServedIndex | None:
        if name == DEFAULT:
            return default
        if named is None or not INDEX_NAME.match(name):
            return None
        return named.served.get(name.encode("ascii"))
    return served


def _token_exchange(publishing: TrustedPublishing | None, audit: AuditTrail,
                    clock: IReactorTime, access: Gates, named: Sequence[IndexMaterials],
                    throttle: LoginThrottle, base_url: str | None) -> TrustedPublishingArea:
    """
    Trusted publishing's area (C{/api/oidc/...}), which tells the upload paths for discovery:
    the default index's, and those of each named hosted index anonymous clients may see.
    """
    return TrustedPublishingArea(
        publishing, audit, clock, throttle=throttle, base_url=base_url,
        discoverable=["", *(path.decode() for path in UPLOAD_PATHS), *(
            f"/{materials.name}{path.decode()}" for materials in named
            if materials.hosted and access.anonymous.enters(materials.name)
            for path in UPLOAD_PATHS)])


def _chrome(assets: Assets, base_url: str | None) -> Chrome:
    """The chrome of the default index's pages for people: the site's assets, at C{base_url}."""
    return Chrome(css=assets.css, js=assets.js, icon=assets.icon, base_url=base_url,
                  files_url=base_url + "files/" if base_url else None)


@attrs.frozen
class IndexServer:
    """
    Makes one index's answers (L{ServedIndex}) from its L{IndexMaterials} with what every index
    shares, so the default index, each named one, and each one a reload adds or changes
    (L{Web.prepare_indexes}) are served alike.

    @ivar _chrome: the default index's chrome (a named index's derives from it: L{_index_chrome}).
    """

    _access: Gates
    _run: Run
    _clock: IReactorTime
    _attestations: AttestationCheck
    _render: Renderer
    _max_upload_size: int
    _base_url: str | None
    _audit: AuditTrail
    _chrome: Chrome
    _switcher: IndexSwitcher | None
    _denied: DeniedDownloads

    def __call__(self, materials: IndexMaterials) -> ServedIndex:
        """
        One index's answers: pages from its view, files from its hosted sources and upstreams,
        uploads and changes into its own stack (a view's refused), legacy JSON, pages for people.
        """
        access, clock, name = self._access, self._clock, materials.name
        prefix = materials.prefix(self._base_url or "/")
        chrome = ReaderChrome(self._chrome if name == DEFAULT
                              else _index_chrome(self._chrome, materials, self._base_url),
                              self._switcher)
        composed = materials.composed
        filters = composed.filters
        people = PeoplePages(catalog_for(composed.order, filters), access, chrome, name)
        # (an index reading upstreams alone has no hosted project: its pages show their caches')
        project = ProjectPages(name, materials.sources, filters, access, chrome, clock, prefix,
                               upstreams=materials.upstreams, advisories=composed.advisories)
        publish = self._publish(materials)
        areas: list[Area] = [people, publish or ReadOnlyPublish(
            materials.name, self._access, tuple(source.name for source in materials.sources))]
        if materials.sources or materials.upstreams:
            # (hosted releases, and those its upstreams list: the legacy JSON finds what pip would)
            areas.append(self._legacy(materials, prefix))
        return ServedIndex(
            name,
            IndexSimple(name, composed, access, clock, prefix, materials.upstreams),
            IndexFiles(name, composed, materials.sources, access, clock, materials.upstreams,
                       self._denied),
            tuple(areas), project, publish)

    def _publish(self, materials: IndexMaterials) -> Publish | None:
        """The index's uploads and changes into its own stack; L{None} for a view."""
        own = materials.own
        if own is None:
            return None
        return Publish(own.index, own.storage, self._access, self._run, self._clock,
                       self._max_upload_size, audit=self._audit, locks=own.locks,
                       name=materials.name, attestations=self._attestations, bin=own.bin,
                       render=self._render, uploads=own.uploads)

    def _legacy(self, materials: IndexMaterials, prefix: str) -> LegacyJSON:
        """The index's legacy JSON (C{/pypi/...}), from its first source with the project."""
        chain = tuple((source.index, source.storage) for source in materials.sources)
        filters = materials.composed.filters
        return LegacyJSON(self._access, package_url_for(self._base_url or "/",
                                                        file_url_for(prefix)),
                          self._base_url, name=materials.name, chain=chain,
                          filters=filters if filters != Filters() else None,
                          advisories=materials.composed.advisories,
                          usage=materials.sources[0].usage if materials.sources else None,
                          composed=materials.composed, sides=materials.upstreams, clock=self._clock)

    def mount(self, indexes: Sequence[IndexMaterials]) -> tuple[ServedIndex, IndexRoot | None]:
        """The default index's answers (at C{/}), and what answers under C{/NAME/} (or L{None})."""
        default = self(next(materials for materials in indexes if materials.name == DEFAULT))
        named = {materials.name.encode("ascii"): self(materials) for materials in indexes
                 if materials.name != DEFAULT}
        return default, (IndexRoot(named, self._access, self._base_url or "/")
                         if named else None)


def switcher_links(indexes: Sequence[IndexMaterials]) -> tuple[IndexLink, ...]:
    """The indexes the switcher may list: the default first, then the named ones."""
    return (IndexLink(DEFAULT), *(IndexLink(materials.name, view=not materials.hosted)
                                  for materials in indexes))


def _index_chrome(chrome: Chrome, materials: IndexMaterials, base_url: str | None) -> Chrome:
    """
    The chrome of a named index's pages for people: their root is C{/NAME/} (links, search, the
    snippets stay in the index); the assets and the login are the site's, one level up.
    """
    prefix = f"{base_url}{materials.name}/" if base_url else None
    return attrs.evolve(chrome, site="../", index=materials.name, uploads=materials.hosted,
                        base_url=prefix, files_url=prefix + "files/" if prefix else None)


@implementer(IReloadable)
class WebPart(Service):
    """
    The HTTP side as a part of the daemon: nothing to start (the listeners serve its site); on
    C{SIGHUP} it takes who may scrape C{/metrics}, and the views of the named indexes.
    """

    def __init__(self, web: Web, registry: IndexRegistry | None = None,
                 started: Config | None = None) -> None:
        """
        @param registry: the indexes whose views a reload changes (L{IndexReload}), with
            C{started}, the configuration the server started with; L{None}: it changes none.
        """
        self.web = web
        self._indexes = (IndexReload(registry, started, self._serve)
                         if registry is not None and started is not None else None)

    @classmethod
    def from_config(cls, config: Config, registry: IndexRegistry, identity: IdentityPart,
                    audit: AuditTrail, ready: Callable[[], bool], run: Run,
                    reactor: IReactorTime, render: Renderer, sources: Iterable[IMetricsSource],
                    hub: Hub = LONE, webhooks: Webhooks | None = None,
                    follower: Looks | None = None) -> WebPart:
        """
        The web part of the server of C{config}: every index of C{registry} served
        (L{build_web}), the indexes' views reloaded at C{SIGHUP}. The other parameters are
        L{SiteServices}' (C{identity} gives its gates, trusted publishing, single sign-on).
        """
        server = config.server
        default = registry.default.upstream_part
        publishing = identity.publishing
        settings = SiteSettings(
            server.max_upload_size, server.base_url, server.access_log, server.header_timeout,
            server.min_upload_rate, TrustedProxies(server.trusted_proxies),
            config.auth.throttle_ipv6_prefix, send_timeout=server.send_timeout)
        services = SiteServices(
            upstream=default.proxy if default is not None else None,
            counter=ConnectionCounter(server.max_connections_per_address, hub),
            metrics=config.metrics, audit=audit, timer=time.monotonic, publishing=publishing,
            sources=sources, sso=identity.sso, ready=ready, registry=registry,
            attestations=make_attestation_checker(
                config.source, config.attestations.trust_root, config.attestations.require,
                publishing, run, config.held),
            render=render, hub=hub, webhooks=webhooks, follower=follower,
            machine_metrics=MachineMetrics(server.snapshot + ".d/metrics", hub, run, reactor)
            if not hub.alone else None)
        return cls(build_web(index_materials(registry), identity.access, run, reactor, settings,
                             services), registry, config)

    def _serve(self, registry: IndexRegistry) -> Callable[[], None]:
        """Prepare the web's answers of C{registry}'s indexes (taken when called)."""
        return self.web.prepare_indexes(index_materials(registry))

    def prepare_reload(self, config: Config | None) -> Callable[[], str | None] | None:
        """Take C{[metrics]} and the indexes' views (L{StartupError}: a change needs a restart)."""
        if config is None:
            return None
        indexes = self._indexes.prepare_reload(config) if self._indexes is not None else None

        def commit() -> str | None:
            self.web.app.metrics.reconfigure(config.metrics)
            return indexes() if indexes is not None else None
        return commit


def index_materials(registry: IndexRegistry) -> list[IndexMaterials]:
    """
    What the web serves each index from, the default's first: its pages composed, its hosted
    sources in order (itself first when it is hosted), and its upstreams.
    """
    stacks = registry.stacks
    sides = registry.sides
    return [
        IndexMaterials(name, composed, tuple(
            stacks[source].source() for source in registry.orders[name] if source in stacks),
            hosted=name in stacks,
            upstreams={source: sides[source] for source in registry.orders[name]
                       if source in sides})
        for name, composed in sorted(registry.composed.items(),
                                     key=lambda item: item[0] != DEFAULT)]
