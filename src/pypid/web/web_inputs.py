"""
What the web is built from besides its indexes (L{pypid.web.app.build_web}): the C{[pypid]}
settings the site takes and the services its areas call, each a value, so that a new setting
or service is a field with its default rather than one more parameter of every caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from pypid.auth.oidc import TrustedPublishing
from pypid.auth.sso import SingleSignOn
from pypid.config.metrics_settings import MetricsConfig
from pypid.core.access.addresses import IPV6_PREFIX
from pypid.core.access.forwarded import NO_PROXIES, TrustedProxies
from pypid.core.dists.readme import Renderer, render_description
from pypid.core.parts import IMetricsSource
from pypid.machine.topics import LONE, Hub
from pypid.state.catch_up import Looks
from pypid.state.indexes import IndexRegistry
from pypid.web.admin.exposition import MachineMetrics
from pypid.web.admin.webhook_admin import Webhooks
from pypid.web.changes.upload_store import AttestationCheck
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.server.connections import ConnectionCounter

if TYPE_CHECKING:
    from pypid.upstream.proxy import UpstreamProxy


@attrs.frozen
class SiteSettings:
    """
    The C{[pypid]} settings the site takes; a timeout or rate of L{None} is the channel's default.

    @ivar max_upload_size: the largest upload body, in bytes.
    @ivar base_url: the server's public URL, or L{None}: the origin a request reached it by.
    @ivar header_timeout: seconds a request's head has to arrive.
    @ivar send_timeout: seconds an answer may wait with none of it taken by the client.
    @ivar min_upload_rate: the slowest body accepted, in bytes a second.
    @ivar trusted_proxies: the reverse proxies whose C{X-Forwarded-For} names the client.
    @ivar ipv6_prefix: the bits of an IPv6 address that make one client for the token
        exchange's throttle (C{[auth] throttle_ipv6_prefix}).
    """

    max_upload_size: int
    base_url: str | None = None
    access_log: str | None = None
    header_timeout: float | None = None
    min_upload_rate: float | None = None
    trusted_proxies: TrustedProxies = NO_PROXIES
    ipv6_prefix: int = IPV6_PREFIX
    send_timeout: float | None = None


@attrs.frozen
class SiteServices:
    """
    The services the site's areas call; each has a default fit for a test. Without
    C{publishing}, C{sso}, C{registry} or C{webhooks}, the routes that call it answer 404.

    @ivar upstream: C{[upstream]}'s proxy, whose cache its admin routes act on.
    @ivar counter: limits connections per address (by default, the channel's limit).
    @ivar metrics: who may scrape C{/metrics} (by default: loopback clients).
    @ivar audit: where changes are recorded (by default, a log in memory).
    @ivar timer: the monotonic clock of latencies (the reactor's C{seconds} by default).
    @ivar sources: what C{/metrics} exposes after the site's own.
    @ivar ready: whether the index answers with every stored file, for C{/health}.
    @ivar attestations: checks the attestations uploads come with (PEP 740); L{None}: uploads
        that send any are refused.
    @ivar render: renders the descriptions of uploaded files: the daemon's sandbox, so that no
        README can stop the server; by default in this process.
    @ivar hub: in a worker of a machine, its hub: the worker catches up with the others'
        changes before each request (L{CatchUp}), and C{/health} says how many workers run.
    @ivar machine_metrics: in a worker of a machine, C{/metrics}' side of the machine.
    """

    upstream: UpstreamProxy | None = None
    counter: ConnectionCounter | None = None
    metrics: MetricsConfig | None = None
    audit: AuditTrail | None = None
    timer: Callable[[], float] | None = None
    publishing: TrustedPublishing | None = None
    sources: Iterable[IMetricsSource] = ()
    sso: SingleSignOn | None = None
    ready: Callable[[], bool] | None = None
    registry: IndexRegistry | None = None
    attestations: AttestationCheck | None = None
    render: Renderer = render_description
    hub: Hub = LONE
    #: the server's reader of the journal, which a worker's catching up
    #: asks too (L{pypid.state.journal_follower.JournalFollower}), or L{None}
    follower: Looks | None = None
    machine_metrics: MachineMetrics | None = None
    webhooks: Webhooks | None = None


#: The services of a site that calls none: a test's.
NO_SERVICES = SiteServices()
