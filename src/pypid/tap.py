"""
C{twistd pypid}: command-line options and the composition root.

L{makeService} is the one place that reaches for the global reactor (inside
the function, only when none is given) and builds every collaborator: the
thread pools, the storage, the index, the web site and the services, and,
for a real process, the C{SIGHUP} handler (L{PypidService.reload}: the
certificate of C{https:} listeners is read again; the signal never stops
the server).  C{pypid.tac} calls the same function.
"""

import os
import signal
import time
from functools import partial

import attrs
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, serverFromString
from twisted.internet.threads import deferToThreadPool
from twisted.python import usage
from twisted.python.threadpool import ThreadPool

from pypid.auth.policy import AccessModel
from pypid.auth.throttle import LoginThrottle
from pypid.auth.verifier import PasswordVerifier
from pypid.config import ConfigError, load_config, parse_override
from pypid.config.auth import admin_users_and_groups
from pypid.config.server import HTTP_REDIRECT, HTTPS, parse_listen_address
from pypid.core.index import Index
from pypid.core.render import file_url_for
from pypid.describer import Describer
from pypid.service import IndexLoader, ListenerService, PypidService, SyncService
from pypid.storage.interface import ISharedStorage
from pypid.storage.local import LocalStorage
from pypid.storage.measured import MeasuredStorage
from pypid.storage.snapshot import SnapshotService, SnapshotWriter
from pypid.tls import ServerTLS
from pypid.web.access import Access
from pypid.web.app import build_web
from pypid.web.audit import AuditTrail
from pypid.web.channel import ConnectionCounter
from pypid.web.redirect import HTTPSRedirect, RedirectSite


class Options(usage.Options):
    """Options of C{twistd pypid}; they override the configuration file."""

    synopsis = "[--config FILE] [--listen ENDPOINT ...] [--set section.key=value ...]"
    longdesc = (
        "Run the pypid package index. Without --config, the embedded defaults "
        "are used: listen on 127.0.0.1:8080, store packages under ./var/."
    )
    optParameters = [
        ["config", "c", None, "The configuration file (INI)."],
    ]

    def __init__(self):
        usage.Options.__init__(self)
        self["listen"] = []
        self["set"] = []

    def opt_listen(self, endpoint):
        """A Twisted endpoint to listen on (repeatable); replaces [pypid] listen."""
        self["listen"].append(endpoint)

    def opt_set(self, assignment):
        """Override one configuration key: section.key=value (repeatable)."""
        try:
            self["set"].append(parse_override(assignment))
        except ValueError as e:
            raise usage.UsageError(str(e))

    def postOptions(self):
        """
        Read the configuration once. A bad one stops start-up with one line
        naming the file, section and key (no usage text, no traceback).
        """
        try:
            self["config_obj"] = load_config(self["config"], self["set"], self["listen"],
                                             os.environ)
        except ConfigError as e:
            raise SystemExit(f"pypid: {e}")


def makeService(options, reactor=None, pools=None):
    """
    Build the whole server from parsed L{Options}.

    @param pools: the L{ThreadPools} to use; by default new ones.
    """
    exit_on_failure = reactor is None
    if reactor is None:
        from twisted.internet import reactor
    config = options["config_obj"]
    notifier = None
    if exit_on_failure:
        from pypid.systemd import Notifier
        notifier = Notifier.from_environ(os.environ)
    service = build_service(config, reactor, exit_on_failure, pools, notifier)
    # SIGHUP reads the configuration again, as start-up read it
    service.load_config = partial(load_config, options["config"], options["set"],
                                  options["listen"], os.environ)
    if exit_on_failure:
        # (in every real process: Python's default for SIGHUP would stop it
        # at once, without its last snapshot)
        reload_on_hangup(reactor, service.reload)
    return service


def reload_on_hangup(reactor, reload, signals=signal):
    """
    Run C{reload} on the reactor's thread at every C{SIGHUP}.

    Only for a real process (L{makeService} without a given reactor): the
    signal handler belongs to the whole process.
    """
    def hangup(signum, frame):
        reactor.callFromThread(reload)
    signals.signal(signals.SIGHUP, hangup)


@attrs.frozen
class ThreadPools:
    """
    The server's thread pools, started and stopped with it.

    @ivar io: storage, spooling and inspection work (C{[pypid] threads}).
    @ivar hashing: password verification (bounded: each check holds 19 MiB).
    @ivar run: C{run(f, *args) -> Deferred}, running C{f} in C{io}.
    """

    io: object
    hashing: object
    run: object

    @classmethod
    def create(cls, reactor, threads):
        """New pools, not started, for a server with C{threads} I/O threads."""
        io = ThreadPool(minthreads=1, maxthreads=threads, name="pypid-io")
        hashing = ThreadPool(minthreads=0, maxthreads=2, name="pypid-hash")
        return cls(io, hashing, partial(deferToThreadPool, reactor, io))


def build_service(config, reactor, exit_on_failure=False, pools=None, notifier=None):
    """
    Build the service tree for a L{pypid.config.Config}.

    @param exit_on_failure: make the process exit with status 1 after a fatal
        start-up error (only for a real process, never inside tests).
    @param pools: the L{ThreadPools}; by default new ones.
    @param notifier: the L{pypid.systemd.Notifier} of a C{Type=notify} unit,
        or L{None}.
    """
    if pools is None:
        pools = ThreadPools.create(reactor, config.server.threads)
    run = pools.run

    # (timed for /metrics)
    storage = MeasuredStorage(make_storage(config, run, reactor), time.monotonic)
    index = Index(file_url_for(config.server.base_url),
                  page_cache_size=config.server.page_cache_size)
    upstream = (make_upstream(config, run, reactor, index)
                if config.upstream.mode != "none" else None)
    model, verifier, tokens = make_access_parts(config, reactor, pools)
    audit = AuditTrail(make_audit_log(config, run, reactor, storage), reactor)
    publishing = make_publishing(config, reactor)
    access = Access(model, verifier, LoginThrottle(reactor), tokens, audit=audit,
                    publishers=publishing.tokens)

    server = config.server
    # A folder's files found without a record are described after the
    # server answers (a shared storage imports what it finds its own way).
    describer = (Describer(index, storage, reactor)
                 if hasattr(storage, "describe_pending") and not ISharedStorage.providedBy(storage)
                 else None)
    web = build_web(index, storage, access, run, reactor,
                    max_upload_size=server.max_upload_size, base_url=server.base_url,
                    upstream=upstream, access_log=server.access_log,
                    counter=ConnectionCounter(server.max_connections_per_address),
                    header_timeout=server.header_timeout, min_upload_rate=server.min_upload_rate,
                    metrics=config.metrics, audit=audit, timer=time.monotonic,
                    publishing=publishing, describer=describer)

    shared = storage if ISharedStorage.providedBy(storage) else None
    writer = SnapshotWriter(index, server.snapshot, run, reactor, storage.identity(),
                            web.app.publish.busy_since, shared, upstream)
    snapshot_service = SnapshotService(writer, server.snapshot_interval, reactor)
    if upstream is not None:
        # (a page fetched or a file kept is saved within seconds, not at the
        # next tick: a crash loses none of what the cache learnt)
        upstream.watch(writer.soon)
    web.app.metrics.sources.snapshot = writer
    web.app.metrics.sources.describer = describer
    sync_service = SyncService(index, shared, reactor) if shared is not None else None
    loader = IndexLoader(index, storage, server.snapshot, run, reactor, writer, upstream,
                         describer=describer)

    listeners, tls = make_listeners(config, reactor, web.site)
    config_in_use = [config]
    def reconfigure(new):
        """
        Take a reloaded configuration's users, groups, admins, rules and
        tokens, who may scrape C{/metrics}, the trusted publishers, and
        C{[pypid] page_cache_size}.
        """
        http = reloaded_oidc_http(config_in_use[0], new, reactor)
        access.reconfigure(*make_access_parts(new, reactor, pools))
        # (a change of the issuers, audience or rules revokes minted tokens)
        revoked = publishing.reconfigure(new.oidc.settings(new.publishers), http)
        config_in_use[0] = new
        web.app.metrics.policy = new.metrics
        index.page_cache_size = new.server.page_cache_size
        # (the pages kept per reader's view of the rules are judged by it)
        index.serial += 1
        return (f"{len(new.users)} users, {len(new.groups)} groups, "
                f"{len(new.auth.admins)} admins, {len(new.acl)} rules, "
                f"{len(new.publishers)} publishers"
                + (f" ({revoked} publisher tokens revoked)" if revoked else ""))

    service = PypidService(loader, listeners, snapshot_service, [pools.io, pools.hashing],
                           reactor, exit_on_failure, sync_service, index=index, site=web.site,
                           tls=tls, notifier=notifier, reconfigure=reconfigure, audit=audit)
    loader.listening = service.ready
    return service


def make_access_parts(config, reactor, pools):
    """
    What the access gate is made of, from a configuration: the
    L{AccessModel} of its rules, a new L{PasswordVerifier} of its users
    (an empty cache; with the directory of C{[ldap]}, if any), and its
    tokens.

    @raise SystemExit: when the token file or C{[ldap] ca_bundle} cannot be
        used (one line).
    """
    directory = None
    if config.ldap.url:
        from pypid.auth.ldap import make_directory
        try:
            directory = make_directory(config.ldap, reactor, config.server.ca_bundle)
        except ValueError as e:
            key = "[ldap] ca_bundle" if config.ldap.ca_bundle else "[pypid] ca_bundle"
            raise SystemExit(f"pypid: {config.source}: {key}: {e}")
    verifier = PasswordVerifier(config.users, reactor, pools.hashing, directory=directory)
    admins, admin_groups = admin_users_and_groups(config.auth.admins)
    model = AccessModel(read=config.auth.read, upload=config.auth.upload,
                        groups=dict(config.groups), admins=admins, admin_groups=admin_groups,
                        rules=config.acl)
    return model, verifier, load_tokens(config, reactor)


def make_publishing(config, reactor):
    """
    Trusted publishing (C{[oidc]}, C{[publishers]}): the ID token checks,
    the issuers' keys, fetched with a client of its own, and the minted
    tokens.
    """
    from pypid.auth.oidc import TrustedPublishing
    return TrustedPublishing(config.oidc.settings(config.publishers),
                             make_oidc_http(config, reactor), reactor)


def _oidc_client_settings(config):
    return (config.oidc.ca_bundle, config.server.ca_bundle, config.oidc.timeout)


def reloaded_oidc_http(old, new, reactor):
    """
    The client trusted publishing takes on a reload from the configuration
    C{old} to C{new}: a new one when its settings changed, or when C{old}
    needed none (L{make_oidc_http} made none) and C{new} may; else L{None},
    to keep the one it has.
    """
    if _oidc_client_settings(new) != _oidc_client_settings(old) or not _oidc_http_needed(old):
        return make_oidc_http(new, reactor)
    return None


def _oidc_http_needed(config):
    """Whether trusted publishing has issuers to fetch keys from, or a bundle to check."""
    return (bool(config.oidc.issuers) or config.oidc.ca_bundle is not None
            or config.server.ca_bundle is not None)


def make_oidc_http(config, reactor):
    """
    The treq client the issuers' keys are fetched with: C{[oidc] ca_bundle},
    else C{[pypid] ca_bundle}, else the system's roots; a bad bundle stops
    start-up (and a reload) with one line.

    @return: the client, or L{None} when there is no issuer and no bundle
        (nothing would use it or could fail: treq stays unimported, 11 ms
        of the start).
    """
    if not _oidc_http_needed(config):
        return None
    from pypid.http.client import https_policy, make_http
    bundle = config.oidc.ca_bundle
    if bundle is None:
        return make_http(reactor, config.oidc.timeout, connections=2,
                         policy=outbound_policy(config))[0]
    try:
        policy = https_policy(bundle)
    except ValueError as e:
        raise SystemExit(f"pypid: {config.source}: [oidc] ca_bundle: {e}")
    return make_http(reactor, config.oidc.timeout, connections=2, policy=policy)[0]


def make_listeners(config, reactor, site):
    """
    The listener services of C{[pypid] listen}, and the L{ServerTLS} of the
    C{https:} ones (L{None} without any).

    C{https:} listeners come first and read the C{[tls]} files as they
    start; C{http-redirect:} listeners open only once every C{https:} one
    listens; any other line is a Twisted endpoint serving C{site} (never
    one of Twisted's TLS endpoints: the configuration refuses those).
    """
    addresses = [parse_listen_address(description) for description in config.server.listen]
    https = [address for address in addresses if address.kind == HTTPS]
    tls = (ServerTLS(config.tls.certificate, config.tls.key, config.tls.chain, reactor)
           if https else None)
    secure = [ListenerService(SSL4ServerEndpoint(reactor, address.port, tls, address.backlog,
                                                 address.interface),
                              address.description, site, prepare=tls.load)
              for address in https]
    others = []
    redirect_site = None
    for address in addresses:
        if address.kind == HTTP_REDIRECT:
            if redirect_site is None:
                redirect_site = RedirectSite(HTTPSRedirect(config.server.base_url, https[0].port),
                                             reactor)
            endpoint = TCP4ServerEndpoint(reactor, address.port, address.backlog,
                                          address.interface)
            others.append(ListenerService(endpoint, address.description, redirect_site,
                                          after=[listener.listening for listener in secure]))
        elif address.kind != HTTPS:
            description = address.description
            try:
                endpoint = serverFromString(reactor, description)
            except (ValueError, TypeError, KeyError) as e:
                raise SystemExit(f"pypid: {config.source}: [pypid] listen: "
                                 f"invalid endpoint {description!r}: {e}")
            others.append(ListenerService(endpoint, description, site))
    return secure + others, tls


def make_storage(config, run, reactor):
    """The storage backend the configuration names."""
    if config.storage.backend != "s3":
        return LocalStorage(config.storage.path, run, reactor)
    import os

    from pypid.storage.s3.layout import Layout
    from pypid.storage.s3.storage import S3Storage

    s3 = config.s3
    client, credentials, close = make_s3_client(config, run, reactor)
    return S3Storage(
        client, Layout(s3.prefix), credentials, run, reactor,
        os.path.join(config.storage.path, ".pypid", "tmp"),
        download=s3.download, public_url=s3.public_url, expire_after=s3.expire_after,
        buffer_time=s3.buffer_time, multipart_threshold=s3.multipart_threshold,
        sync_interval=s3.sync_interval, bucket_snapshot=s3.bucket_snapshot,
        check_rate=s3.check_rate, max_import_size=config.server.max_upload_size,
        on_close=close)


def make_s3_client(config, run, reactor, timings=None):
    """
    A client of the C{[s3]} bucket (its endpoint, credentials, deadline and
    the outbound TLS policy), with a connection pool of its own.

    @param timings: the L{pypid.core.metrics.Timings} its requests are
        counted in, to share one with another client of the bucket.
    @return: C{(client, credentials, close)}: the
        L{pypid.storage.s3.client.S3Client}, its
        L{pypid.storage.s3.credentials.CredentialSource} (to C{start} and
        C{stop}), and C{close()} closing the pool's connections.
    """
    from pypid.http.client import make_http
    from pypid.storage.s3.client import S3Client
    from pypid.storage.s3.credentials import CredentialSource
    from pypid.storage.s3.sign import Bucket, Credentials, aws_endpoint

    s3 = config.s3
    static = (Credentials(s3.access_key, s3.secret_key, s3.session_token)
              if s3.access_key else None)
    credentials = CredentialSource(static, run, reactor)
    http, pool = make_http(reactor, s3.timeout, policy=outbound_policy(config))
    client = S3Client(Bucket(s3.endpoint_url or aws_endpoint(s3.region), s3.bucket, s3.region,
                             s3.addressing), credentials, http, reactor, s3.timeout)
    if timings is not None:
        client.timings = timings
    return client, credentials, pool.closeCachedConnections


def make_audit_log(config, run, reactor, storage=None):
    """
    The audit log kept with the storage the configuration names: daily
    files in C{<path>/.pypid/audit/}, or objects under the bucket's
    C{<prefix>.pypid/audit/} (written with a client of its own, whose
    requests count in the storage's S3 metrics when C{storage}, the
    packages' L{pypid.storage.measured.MeasuredStorage}, is given).
    """
    import os

    from pypid.storage.audit import LocalAuditLog, S3AuditLog

    if config.storage.backend != "s3":
        return LocalAuditLog(os.path.join(config.storage.path, ".pypid", "audit"), run, reactor)
    shared = getattr(getattr(getattr(storage, "inner", None), "_client", None), "timings", None)
    client, credentials, close = make_s3_client(config, run, reactor, shared)

    def closed():
        credentials.stop()
        close()
    return S3AuditLog(client, config.s3.prefix, reactor, prepare=credentials.start,
                      on_close=closed)


def make_upstream(config, run, reactor, index):
    """
    The upstream proxy: its page cache, its client, and the storage of the
    files it fetched (beside the hosted ones, under C{.upstream}).
    """
    import os

    import attrs
    from twisted.internet.defer import ensureDeferred

    from pypid.http.client import make_agent
    from pypid.upstream.cache import PageCache
    from pypid.upstream.fetch import UpstreamClient
    from pypid.upstream.policy import UpstreamPolicy
    from pypid.upstream.proxy import UpstreamProxy

    up = config.upstream
    cache_config = attrs.evolve(
        config,
        storage=attrs.evolve(config.storage,
                             path=os.path.join(config.storage.path, ".upstream")),
        s3=attrs.evolve(config.s3, prefix=config.s3.prefix + ".upstream/",
                        bucket_snapshot=False))
    storage = MeasuredStorage(make_storage(cache_config, run, reactor), time.monotonic)
    agent, pool = make_agent(reactor, up.timeout, policy=outbound_policy(config))
    client = UpstreamClient(agent, reactor, up.url, up.hosts, up.timeout, up.max_page_size,
                            run=run, deadline=up.fetch_deadline, max_entries=up.max_page_files)
    pages = PageCache(lambda project: ensureDeferred(client.page(project)), reactor, up.ttl,
                      up.offline, max_bytes=up.page_cache_size)
    policy = UpstreamPolicy(up.mode, up.private, up.merge, up.min_age, up.min_age_exempt)
    return UpstreamProxy(up, policy, pages, client, storage, index, index.file_url, run,
                         reactor, on_close=pool.closeCachedConnections)


def load_tokens(config, clock):
    """
    The API tokens, read once at start-up (a small file); an unreadable one
    stops start-up with one line.
    """
    from pypid.auth.tokens import TokenBook, TokenError, read_file
    book = TokenBook(clock)
    path = config.auth.tokens
    try:
        data = read_file(path)
        if data is not None:
            book.loads(data)
    except (OSError, TokenError) as e:
        raise SystemExit(f"pypid: {config.source}: [auth] tokens: cannot use {path}: {e}")
    book.path = path
    return book


def outbound_policy(config):
    """How outbound HTTPS is verified ([pypid] ca_bundle); a bad bundle stops start-up."""
    from pypid.http.client import https_policy
    try:
        return https_policy(config.server.ca_bundle)
    except ValueError as e:
        raise SystemExit(f"pypid: {config.source}: [pypid] ca_bundle: {e}")
