"""
Everything but the hot path, composed of one small Klein app per area.

L{pypid.web.simple} serves C{/simple/} and C{/files/} as plain Twisted
resources (the hot path), as L{pypid.web.project_pages} serves
C{/project/...} and L{pypid.web.people.AssetsResource} C{/static/...}; every other path
goes to L{PypidApp}, which hands the request to the area that owns its
first segments:

  - L{pypid.web.people.PeoplePages}: C{GET /}, C{/search}, C{/api/search},
    C{/login};
  - L{pypid.web.publish.Publish}: C{POST /} and C{/legacy/} (uploads),
    C{/api/files/...} and C{/api/projects/...} (yank, unyank, delete);
  - L{pypid.web.token_admin.TokenAdmin}: C{/api/tokens};
  - L{pypid.web.cache_admin.CacheAdmin}: C{/requirements.txt},
    C{/api/upstream/...};
  - L{pypid.web.legacy.LegacyJSON}: C{/pypi/...};
  - L{pypid.web.health.Health}: C{/health};
  - L{pypid.web.exposition.Metrics}: C{/metrics};
  - L{pypid.web.audit_trail.AuditAdmin}: C{/api/audit};
  - L{pypid.web.token_exchange.TrustedPublishingArea}: C{/api/oidc/...} (trusted
    publishing's token exchange).

Each index's security advisories (issue 27) reach every part that
applies them from its policy: the default index's is its
L{pypid.core.index.Index.advisories} (its pages, its upstream pages, its
downloads, its pages for people and legacy JSON), a named index's its
view's (L{pypid.core.views.IndexView.advisories}); one
L{pypid.web.denied_files.DeniedDownloads} refuses, counts and audits the
denied downloads of all.

Named indexes (issue 26) are answered under C{/NAME/} by
L{pypid.web.index_root}, each with its own instances of the areas that
belong to an index (its pages for people, uploads and changes, the legacy
JSON) and of its project pages, built here.

Each area's routes are written with their whole paths, so a route reads as
the URL a client sends, and each path is written only there: which area
owns which first segment (under C{/api/}, which second) is read from the
areas' routes when the tree is built (L{_Areas}), not kept in a table of
its own that could disagree with them. Mounting the areas under prefixes,
with routes relative to them, would not answer alike: the mount's own
path (C{/api/tokens}) would reach the area as an empty path, which
werkzeug redirects, and C{/api/tokens/}, now a 404, as that same route.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

import attrs
from klein import Klein
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from werkzeug.routing import Rule
from zope.interface import implementer

from pypid.assets import Assets
from pypid.auth.oidc import TrustedPublishing
from pypid.auth.throttle import IPV6_PREFIX
from pypid.config import Config
from pypid.config.metrics_settings import MetricsConfig
from pypid.core.catalog import Catalog, IndexCatalog
from pypid.core.forwarded import NO_PROXIES, TrustedProxies
from pypid.core.http_errors import NotFound
from pypid.core.index import Index
from pypid.core.index_names import DEFAULT
from pypid.core.metrics import UPLOAD_PATHS, RequestStats
from pypid.core.pages import Chrome, IndexLink
from pypid.core.parts import IMetricsSource, IReloadable
from pypid.core.readme import Renderer, render_description
from pypid.core.render import file_url_for
from pypid.core.views import ChainSource
from pypid.state.backfill import Backfill
from pypid.state.indexes import IndexRegistry
from pypid.state.recycle_bin import RecycleBin
from pypid.state.usage_log import UsageLog
from pypid.storage.audit_log import MemoryAuditLog
from pypid.storage.interface import IStorage, Run
from pypid.storage.locks import KeyedLock
from pypid.web.access import Access
from pypid.web.advisory_admin import AdvisoryAdmin
from pypid.web.audit_trail import AuditAdmin, AuditTrail
from pypid.web.cache_admin import CacheAdmin
from pypid.web.channel import ConnectionCounter
from pypid.web.denied_files import DeniedDownloads
from pypid.web.exposition import Metrics, SiteMetrics
from pypid.web.health import Health
from pypid.web.index_root import (
    IndexFiles,
    IndexParts,
    IndexRoot,
    IndexSimple,
    ReadOnlyPublish,
    ServedIndex,
)
from pypid.web.integrity import IntegrityResource
from pypid.web.legacy import LegacyJSON
from pypid.web.people import AssetsResource, IndexSwitcher, PeoplePages, ReaderChrome
from pypid.web.project_pages import IndexProjectPages, ProjectPages
from pypid.web.promote import Promote
from pypid.web.publish import AttestationCheck, NoAttestations, Publish
from pypid.web.recycle_admin import RecycleAdmin
from pypid.web.respond import Rendered, send_error, wrong_method_error
from pypid.web.retention_admin import RetentionAdmin
from pypid.web.simple import FilesResource, RootResource, SimpleResource
from pypid.web.site import PypidSite
from pypid.web.token_admin import TokenAdmin
from pypid.web.token_exchange import TrustedPublishingArea
from pypid.web.usage_admin import UsageAdmin

if TYPE_CHECKING:
    # (the upstream's modules load only when [upstream] is configured: issue 14)
    from pypid.upstream.proxy import UpstreamProxy


@attrs.define
class PypidApp:
    """
    The areas of the server other than C{/simple/} and C{/files/}.

    @ivar people: the L{pypid.web.people.PeoplePages}.
    @ivar publish: the L{pypid.web.publish.Publish}.
    @ivar tokens: the L{pypid.web.token_admin.TokenAdmin}.
    @ivar cache: the L{pypid.web.cache_admin.CacheAdmin}.
    @ivar legacy: the L{pypid.web.legacy.LegacyJSON}.
    @ivar health: the L{pypid.web.health.Health}.
    @ivar metrics: the L{pypid.web.exposition.Metrics}.
    @ivar audit: the L{pypid.web.audit_trail.AuditAdmin}.
    @ivar oidc: the L{pypid.web.token_exchange.TrustedPublishingArea}.
    @ivar promote: the L{pypid.web.promote.Promote}, with the registry.
    @ivar advisories: the L{pypid.web.advisory_admin.AdvisoryAdmin}, with the registry.
    @ivar usage: the L{pypid.web.usage_admin.UsageAdmin}, with the registry.
    @ivar recycle: the L{pypid.web.recycle_admin.RecycleAdmin}, with the registry.
    @ivar retention: the L{pypid.web.retention_admin.RetentionAdmin}, with the registry.
    """

    people: PeoplePages
    publish: Publish
    tokens: TokenAdmin
    cache: CacheAdmin
    legacy: LegacyJSON
    health: Health
    metrics: Metrics
    audit: AuditAdmin
    oidc: TrustedPublishingArea | None = None
    promote: Promote | None = None
    advisories: AdvisoryAdmin | None = None
    usage: UsageAdmin | None = None
    recycle: RecycleAdmin | None = None
    retention: RetentionAdmin | None = None

    def resource(self) -> IResource:
        """The Twisted resource that dispatches to the areas."""
        return _Areas([area for area in attrs.astuple(self, recurse=False) if area is not None])


class _Area(Protocol):
    """An area of L{PypidApp}: an object with its own Klein app."""

    app: Klein


#: Where an area's routes are found: C{{segment or method of /: Klein resource}}.
_Table = dict[bytes, IResource]


class _Areas(Resource):
    """
    Hands each request, whole path untouched, to the Klein resource of the
    area whose routes start with the request's first segment (under
    C{/api/}, its first two); C{/} itself goes by its method.

    Which area owns which segments is read from the areas' own routes when
    the tree is built, so that each path is written once, in its route; a
    request then costs one dictionary lookup to find its area.

    @ivar _root: C{{method: resource}} of the routes of C{/}.
    @ivar _first: C{{first segment: resource}} of the other routes.
    @ivar _api: C{{second segment: resource}} of the routes under C{/api/}.
    @ivar _root_methods: the methods C{/} takes, for a 405's C{Allow}.
    """

    isLeaf = True

    def __init__(self, areas: Iterable[_Area]) -> None:
        """
        @param areas: the areas (each with its Klein C{app}).

        @raise ValueError: if two areas claim the same segment (or method
            of C{/}), or a route starts with a variable: either would leave
            a route that no request reaches.
        """
        Resource.__init__(self)
        self._root: _Table = {}
        self._first: _Table = {}
        self._api: _Table = {}
        for area in areas:
            resource = area.app.resource()
            for rule in area.app.url_map.iter_rules():
                for table, key in self._places(rule):
                    if b"<" in key or table.setdefault(key, resource) is not resource:
                        raise ValueError(f"route {rule.rule} cannot be dispatched to its area")
        self._root_methods = sorted(method.decode("ascii") for method in self._root)

    def _places(self, rule: Rule) -> list[tuple[_Table, bytes]]:
        """
        Where the werkzeug C{rule} is found: C{(table, key)} pairs, split
        as L{render} splits a request's path.
        """
        segments = rule.rule.encode("ascii").split(b"/")[1:]
        if segments == [b""]:
            # (every route of / names its methods)
            methods: set[str] = rule.methods  # type: ignore[assignment]
            return [(self._root, method.encode("ascii")) for method in methods]
        if segments[0] == b"api" and len(segments) > 1:
            return [(self._api, segments[1])]
        return [(self._first, segments[0])]

    def render(self, request: Request) -> Rendered:
        """Render the request with the area that owns its path."""
        segments: list[bytes] = request.postpath  # type: ignore[assignment]  # (set by process())
        first = segments[0] if segments else b""
        if first == b"" and len(segments) <= 1:
            area = self._root.get(request.method)
            if area is None:
                return send_error(request, wrong_method_error(request, self._root_methods))
        elif first == b"api" and len(segments) > 1:
            area = self._api.get(segments[1])
        else:
            area = self._first.get(first)
        if area is None:
            return send_error(request, NotFound("no such page"))
        return area.render(request)


@attrs.frozen
class Web:
    """
    The HTTP side of a server, as L{build_web} wired it.

    @ivar root: the root resource (C{/simple/}, C{/files/}, then L{PypidApp}).
    @ivar site: the L{pypid.web.site.PypidSite} serving C{root}.
    @ivar app: the L{PypidApp}.
    @ivar indexes: what answers under C{/NAME/}, or L{None} without named indexes.
    @ivar serve_index: C{serve_index(parts) -> ServedIndex}: a named index's
        answers, built as L{build_web} built them.
    @ivar switcher: the index switcher of the pages for people, or L{None}
        without named indexes.
    """

    root: IResource
    site: PypidSite
    app: PypidApp
    indexes: IndexRoot | None
    serve_index: Callable[[IndexParts], ServedIndex]
    switcher: IndexSwitcher | None = None

    def prepare_indexes(self, indexes: Sequence[IndexParts]) -> Callable[[], None]:
        """
        The answers of the named indexes C{indexes} (C{SIGHUP}: a view
        added, removed or changed), those whose view is the same kept;
        returns what swaps them in, with the C{index} labels of C{/metrics}.
        """
        root = self.indexes
        kept = root.served if root is not None else {}
        served = {}
        for parts in indexes:
            key = parts.name.encode("ascii")
            old = kept.get(key)
            served[key] = (old if old is not None and old.simple.view is parts.view
                           else self.serve_index(parts))
        stats = self.site.stats
        switcher = self.switcher
        links = switcher_links(indexes)

        def commit() -> None:
            # (a reload never gives named indexes to a server that had none:
            # pypid.state.index_reload)
            if root is not None:
                root.replace(served)
                stats.take_indexes(frozenset(served))
            if switcher is not None:
                switcher.links = links
        return commit


def build_web(index: Index, storage: IStorage, access: Access, run: Run, clock: IReactorTime,
              *, max_upload_size: int, base_url: str | None = None,
              upstream: UpstreamProxy | None = None, access_log: str | None = None,
              counter: ConnectionCounter | None = None, header_timeout: float | None = None,
              min_upload_rate: float | None = None, metrics: MetricsConfig | None = None,
              audit: AuditTrail | None = None, timer: Callable[[], float] | None = None,
              publishing: TrustedPublishing | None = None, backfill: Backfill | None = None,
              locks: KeyedLock | None = None, sources: Iterable[IMetricsSource] = (),
              ready: Callable[[], bool] | None = None,
              trusted_proxies: TrustedProxies = NO_PROXIES,
              ipv6_prefix: int = IPV6_PREFIX, indexes: Sequence[IndexParts] = (),
              registry: IndexRegistry | None = None,
              attestations: AttestationCheck | None = None,
              usage: UsageLog | None = None, bin: RecycleBin | None = None,
              render: Renderer = render_description) -> Web:
    """
    Build the resource tree and the site, the one way both the server
    (L{pypid.tap.build_service}) and the tests wire them.

    @param index: the L{pypid.core.index.Index}.
    @param storage: the L{pypid.storage.interface.IStorage}; uploads are
        spooled to its C{temp_dir}.
    @param access: the L{pypid.web.access.Access} gate.
    @param run: C{run(f, *args) -> Deferred}, running blocking work (upload
        bodies, inspection, token writes) in a thread pool.
    @param clock: the reactor, or a L{twisted.internet.task.Clock}.
    @param upstream: the L{pypid.upstream.proxy.UpstreamProxy}, or L{None}.
    @param counter: the L{ConnectionCounter} limiting connections per address.
    @param metrics: the L{pypid.config.metrics_settings.MetricsConfig} of who may
        scrape C{/metrics} (by default: loopback clients).
    @param timer: C{timer() -> seconds}, the monotonic clock latencies are
        measured with (the C{clock}'s C{seconds} by default, for tests).
    @param audit: the L{pypid.web.audit_trail.AuditTrail} changes are recorded
        in (by default, one over a log in memory).
    @param publishing: the L{pypid.auth.oidc.TrustedPublishing} of
        C{/api/oidc/mint-token}, or L{None} (that route then answers 404).
    @param backfill: the L{pypid.state.backfill.Backfill} of files found
        without a record, whose projects' pages wait for it, or L{None}.
    @param locks: the L{pypid.storage.locks.KeyedLock} every change to a
        distribution holds (the snapshot writer reads its oldest); by
        default a new one.
    @param sources: the L{pypid.core.parts.IMetricsSource}s C{/metrics}
        exposes after the site's own.
    @param ready: C{ready() -> bool}, whether the index answers with every
        stored file (L{pypid.daemon.readiness.Readiness.ready}), for
        C{/health}; by default always.
    @param trusted_proxies: the reverse proxies whose C{X-Forwarded-For}
        names the client (C{[pypid] trusted_proxies}).
    @param ipv6_prefix: the bits of an IPv6 address that make one client for
        the token exchange's throttle (C{[auth] throttle_ipv6_prefix}), as
        for the login throttle.
    @param indexes: the named indexes, served under C{/NAME/}
        (L{pypid.web.index_root}); without any, the tree is today's.
    @param registry: the server's indexes, for C{POST /api/promote}
        (L{pypid.web.promote}) and C{GET /api/advisories}
        (L{pypid.web.advisory_admin}); L{None}: those routes answer 404.
    @param attestations: checks the attestations uploads come with (PEP
        740, L{pypid.auth.attestations}); L{None}: uploads that send any
        are refused (L{NoAttestations}).
    @param usage: counts the downloads of the default index's files (issue
        29); L{None}: none counted.
    @param bin: where the default index's deleted files wait to be purged
        (issue 29); L{None}: none, a deletion deletes at once.
    @param render: renders the descriptions of uploaded files: the
        daemon's sandbox (L{pypid.sandbox.readme_sandbox}), so that no
        README can stop the server; by default in this process (tests).
    """
    if attestations is None:
        attestations = NoAttestations()
    if audit is None:
        audit = AuditTrail(MemoryAuditLog(clock), clock)
    if counter is None:
        counter = ConnectionCounter()
    stats = RequestStats(indexes=frozenset(parts.name.encode("ascii") for parts in indexes))
    # (the downloads advisories deny, every index's: counted by index with named ones)
    denied = DeniedDownloads(audit, clock, labelled=bool(indexes))
    # Absolute file links, for the pages not under /simple/<project>/.
    absolute_file_url = file_url_for(base_url or "/")
    assets = Assets.load()
    chrome = Chrome(css=assets.css, js=assets.js, icon=assets.icon, base_url=base_url,
                    files_url=base_url + "files/" if base_url else None)
    # (the index switcher of the pages for people: only with named indexes)
    switcher = IndexSwitcher(access, switcher_links(indexes)) if indexes else None
    people = ReaderChrome(chrome, switcher)
    app = PypidApp(
        people=PeoplePages(Catalog(index), access, people),
        publish=Publish(index, storage, access, run, clock, max_upload_size, audit=audit,
                        locks=locks if locks is not None else KeyedLock(clock),
                        attestations=attestations, bin=bin, render=render),
        tokens=TokenAdmin(access, run, audit=audit),
        cache=CacheAdmin(access, upstream, audit=audit),
        legacy=LegacyJSON(index, storage, access, absolute_file_url, base_url,
                          advisories=index.advisories, usage=usage),
        health=Health(storage, ready),
        metrics=Metrics(access, metrics if metrics is not None else MetricsConfig(),
                        (SiteMetrics(stats, counter), denied, *sources)),
        audit=AuditAdmin(access, audit),
        oidc=TrustedPublishingArea(
            publishing, audit, clock, ipv6_prefix=ipv6_prefix, base_url=base_url,
            # (where uploads go, for discovery: a hidden index is not told)
            discoverable=["", *(path.decode() for path in UPLOAD_PATHS), *(
                f"/{parts.name}{path.decode()}" for parts in indexes
                if parts.hosted and access.index_shown(None, parts.name)
                for path in UPLOAD_PATHS)]),
        promote=(Promote(registry, access, audit=audit, clock=clock)
                 if registry is not None else None),
        advisories=AdvisoryAdmin(access, registry) if registry is not None else None,
        usage=UsageAdmin(access, registry) if registry is not None else None,
        recycle=RecycleAdmin(access, registry) if registry is not None else None,
        retention=RetentionAdmin(access, registry, audit) if registry is not None else None,
    )

    def serve_index(parts: IndexParts) -> ServedIndex:
        return _served(parts, access=access, run=run, clock=clock, attestations=attestations,
                       render=render,
                       max_upload_size=max_upload_size, base_url=base_url, audit=audit,
                       chrome=ReaderChrome(_index_chrome(chrome, parts, base_url), switcher),
                       denied=denied)
    named = None
    if indexes:
        named = IndexRoot({parts.name.encode("ascii"): serve_index(parts) for parts in indexes},
                          access, base_url or "/")
    files = FilesResource(index, storage, access, upstream, backfill, denied, usage)
    root = RootResource(
        SimpleResource(index, access, base_url or "/", upstream, backfill),
        files,
        app.resource(),
        named,
        integrity=IntegrityResource(files, access),
        project=ProjectPages(index, storage, access, people, clock, base_url or "/", upstream,
                             advisories=index.advisories, usage=usage),
        static=AssetsResource(assets),
    )
    site = PypidSite(root, max_upload_size, storage.temp_dir, access_log=access_log,
                     reactor=clock, access=access, run=run, counter=counter,
                     header_timeout=header_timeout, min_body_rate=min_upload_rate,
                     timer=timer, stats=stats, trusted_proxies=trusted_proxies,
                     index_uploads=bool(indexes), base_url=base_url)
    return Web(root, site, app, named, serve_index, switcher)


def switcher_links(indexes: Sequence[IndexParts]) -> tuple[IndexLink, ...]:
    """The indexes the switcher may list: the default first, then the named ones."""
    return (IndexLink(DEFAULT), *(IndexLink(parts.name, view=not parts.hosted)
                                  for parts in indexes))


def _index_chrome(chrome: Chrome, parts: IndexParts, base_url: str | None) -> Chrome:
    """
    The chrome of a named index's pages for people: their root is
    C{/NAME/} (links, search, the install and publish snippets stay in the
    index), the assets and the login are the site's, one level up.
    """
    prefix = f"{base_url}{parts.name}/" if base_url else None
    return attrs.evolve(chrome, site="../", index=parts.name, uploads=parts.hosted,
                        base_url=prefix, files_url=prefix + "files/" if prefix else None)


def _served(parts: IndexParts, *, access: Access, run: Run, clock: IReactorTime,
            attestations: AttestationCheck, render: Renderer,
            max_upload_size: int, base_url: str | None, audit: AuditTrail,
            chrome: ReaderChrome, denied: DeniedDownloads | None = None) -> ServedIndex:
    """
    One named index's answers: its pages from its view, its files from its
    hosted sources, its uploads and changes into its own stack (a view's
    refused), its legacy JSON from the first source holding a project, its
    pages for people from its hosted sources (L{IndexCatalog},
    L{IndexProjectPages}: upstream bases are not read for them).
    """
    name = parts.name
    prefix = f"{base_url or '/'}{name}/"
    publish: _Area
    if parts.own is not None:
        publish = Publish(parts.own.index, parts.own.storage, access, run, clock,
                          max_upload_size, audit=audit, locks=parts.own.locks, name=name,
                          attestations=attestations, bin=parts.own.bin, render=render)
    else:
        publish = ReadOnlyPublish(name, access)
    chain = tuple((source.index, source.storage) for source in parts.sources)
    hosted = tuple(ChainSource(source.name, hosted=source.index) for source in parts.sources)
    people = PeoplePages(IndexCatalog(hosted, parts.view.filters), access, chrome, name)
    # (an index that reads upstreams alone has no project pages: those
    # describe hosted releases)
    project = (IndexProjectPages(name, [(s.index, s.storage) for s in parts.sources],
                                 parts.view.filters, access, chrome, clock, prefix,
                                 advisories=parts.view.advisories)
               if parts.sources else None)
    areas: list[_Area] = [people, publish]
    if chain:
        # (the legacy JSON describes hosted releases: an index that reads
        # upstreams alone has none, and answers it 404)
        areas.append(LegacyJSON(chain[0][0], chain[0][1], access, file_url_for(prefix),
                                base_url, name=name, chain=chain,
                                filters=parts.view.filters, advisories=parts.view.advisories,
                                usage=parts.sources[0].usage))
    return ServedIndex(
        name,
        IndexSimple(name, parts.view, access, clock, prefix, parts.upstreams),
        IndexFiles(name, parts.view, parts.sources, access, clock, parts.upstreams, denied),
        _Areas(areas), project)


@implementer(IReloadable)
class WebPart(Service):
    """
    The HTTP side as a part of the daemon: nothing to start (the listeners
    serve its site); on C{SIGHUP} it takes who may scrape C{/metrics}, and
    the views of the named indexes (C{indexes}).

    @ivar web: the L{Web}.
    """

    def __init__(self, web: Web, indexes: IReloadable | None = None) -> None:
        """
        @param indexes: what a reload changes of the indexes and their
            answers (L{pypid.state.index_reload.IndexReload}), or L{None}.
        """
        self.web = web
        self._indexes = indexes

    def prepare_reload(self, config: Config | None) -> Callable[[], str | None] | None:
        """
        Take C{[metrics]} and the indexes' views.

        @raise pypid.core.startup.StartupError: when the indexes changed in
            a way only a restart takes.
        """
        if config is None:
            return None
        indexes = self._indexes.prepare_reload(config) if self._indexes is not None else None

        def commit() -> str | None:
            self.web.app.metrics.reconfigure(config.metrics)
            return indexes() if indexes is not None else None
        return commit
