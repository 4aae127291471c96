"""
The access gate's parts built from the configuration (its rules, password
verifier and directory, API tokens), trusted publishing and single sign-on:
what the daemon builds at the start and again on C{SIGHUP}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from pypid.auth.policy import AccessModel, admin_users_and_groups
from pypid.auth.tokens import TokenBook
from pypid.auth.verifier import PasswordVerifier
from pypid.config import Config
from pypid.config.sso_settings import sso_secret
from pypid.core.access.outside_logins import OutsideLogins
from pypid.core.access.sso_flow import provider_key
from pypid.core.util.startup import StartupError
from pypid.machine.topics import LONE, Hub
from pypid.storage.folder.shared_file import ShareFile

log = Logger()

if TYPE_CHECKING:
    # (types only: the directory, trusted publishing and treq load when configured)
    from treq.client import HTTPClient

    from pypid.auth.attestations import AttestationChecker
    from pypid.auth.oidc import TrustedPublishing
    from pypid.auth.sso import SingleSignOn
    from pypid.jobs.run import Run


@attrs.frozen
class GateMaterials:
    """What the access gate is made of, from one configuration (a new verifier: empty cache)."""

    model: AccessModel
    verifier: PasswordVerifier
    tokens: TokenBook


def make_gate_materials(config: Config, reactor: IReactorTime,
                      hashing: ThreadPool | None,
                      tokens: TokenBook | None = None,
                      held: Callable[[str], str | None] | None = None,
                      share: ShareFile | None = None) -> GateMaterials:
    """
    The L{GateMaterials} of a configuration.

    @param tokens: the token book to keep (a reload whose token file is the
        same), or L{None} to read C{[auth] tokens}.
    @param held: C{held(user)}: why a directory user's name is held here by
        a person of another source, or L{None}; L{None} for no such check.
    @param share: in a worker of a machine, makes the token file's shared file.
    @raise StartupError: the token file or C{[ldap] ca_bundle} cannot be used.
    """
    directory = None
    if config.ldap.url:
        from pypid.auth.ldap import make_directory
        try:
            directory = make_directory(config.ldap, reactor, config.server.ca_bundle,
                                       config.held)
        except ValueError as e:
            where = config.where("ldap", "ca_bundle") if config.ldap.ca_bundle \
                else config.where("pypid", "ca_bundle")
            raise StartupError(f"{where}: {e}")
    verifier = PasswordVerifier(config.users, reactor, hashing, directory=directory, held=held)
    admins, admin_groups = admin_users_and_groups(config.auth.admins)
    model = AccessModel(read=config.auth.read, upload=config.auth.upload,
                        groups=dict(config.groups), admins=admins, admin_groups=admin_groups,
                        rules=config.acl, indexes=config.index_grants,
                        namespaces=config.namespaces)
    return GateMaterials(model, verifier,
                       tokens if tokens is not None else load_tokens(config, reactor, share))


def directory_key(config: Config) -> str | None:
    """
    What names C{[ldap]}'s directory for its users' sessions and tokens: a
    reload that points elsewhere ends them. L{None} without a directory.
    """
    return config.ldap.key


def outside_logins(config: Config) -> OutsideLogins:
    """Who from outside the configuration lets in: its directory, its provider."""
    sso = config.sso
    return OutsideLogins(
        directory=directory_key(config),
        provider=provider_key(sso.issuer, sso.client_id, sso.user_claim, sso.groups_claim)
        if sso.issuer is not None else None,
        mapping=sso.mapping)


def load_tokens(config: Config, clock: IReactorTime,
                share: ShareFile | None = None) -> TokenBook:
    """
    The API tokens, read once at start-up (in a worker, the file as shared).

    @raise StartupError: when the file cannot be read or used (one line).
    """
    from pypid.auth.tokens import TokenError
    from pypid.storage.base.disk import read_if_present
    path = config.auth.tokens
    book = TokenBook(clock, path=path,
                     shared=share(path, ".tokens-") if share is not None else None)
    try:
        data = read_if_present(path)
        if data is not None:
            book.loads(data)
    except (OSError, TokenError) as e:
        raise StartupError(f"{config.where('auth', 'tokens')}: cannot use {path}: {e}")
    return book


def make_publishing(config: Config, reactor: IReactorTime) -> TrustedPublishing:
    """Trusted publishing (C{[oidc]}, C{[publishers]}), with an HTTP client of its own."""
    from pypid.auth.oidc import TrustedPublishing
    return TrustedPublishing(config.oidc.settings(config.publishers),
                             make_oidc_http(config, reactor), reactor)


def make_attestation_checker(source: str, trust_root: str | None, require: tuple[str, ...],
                             publishing: TrustedPublishing | None,
                             run: Run, held: Mapping[str, str] | None = None,
                             ) -> AttestationChecker:
    """
    What verifies uploads' attestations (PEP 740): over C{trust_root}
    (L{None}: the public-good root the sigstore package ships), reading
    C{publishing}'s issuers and C{[publishers]} rules at each check.

    @param source: the configuration file, for messages.
    @raise StartupError: the default trust root cannot be found.
    """
    from pypid.auth.attestations import AttestationChecker, TrustRootError, default_trust_root
    try:
        path = trust_root if trust_root is not None else default_trust_root()
    except TrustRootError as e:
        raise StartupError(f"{source}: [attestations] trust_root: {e}")
    rules = publishing.settings.rules if publishing is not None else ()
    for pattern in require:
        if not any(rule.pattern == pattern or rule.covers(pattern) for rule in rules):
            log.warn("[attestations] require names {pattern}, which no [publishers] rule "
                     "names: its uploads can only be refused", pattern=pattern)
    return AttestationChecker(path, publishing, run, require, held or {})


def _oidc_client_settings(config: Config) -> tuple[str | None, str | None, float]:
    return (config.oidc.ca_bundle, config.server.ca_bundle, config.oidc.timeout)


def reloaded_oidc_http(old: Config, new: Config,
                       reactor: IReactorTime) -> HTTPClient | None:
    """
    The client trusted publishing takes on a reload: a new one when its
    settings changed or C{old} needed none; else L{None}, to keep its own.
    """
    if _oidc_client_settings(new) != _oidc_client_settings(old) or not _oidc_http_needed(old):
        return make_oidc_http(new, reactor)
    return None


def _oidc_http_needed(config: Config) -> bool:
    """Whether trusted publishing has issuers to fetch keys from, or a bundle to check."""
    return (bool(config.oidc.issuers) or config.oidc.ca_bundle is not None
            or config.server.ca_bundle is not None)


def make_oidc_http(config: Config, reactor: IReactorTime) -> HTTPClient | None:
    """
    The treq client the issuers' keys are fetched with, or L{None} when there
    is no issuer and no bundle (treq stays unimported: 11 ms of the start).

    @raise StartupError: when a bundle cannot be used (a reload is refused).
    """
    if not _oidc_http_needed(config):
        return None
    return _http_client(config, reactor, "oidc", config.oidc.ca_bundle, config.oidc.timeout)


def _http_client(config: Config, reactor: IReactorTime, section: str, bundle: str | None,
                 timeout: float) -> HTTPClient:
    """A treq client checking HTTPS with C{bundle} (C{[section] ca_bundle}), else C{[pypid]}'s."""
    from pypid.http.client import https_policy, make_http, outbound_policy
    if bundle is None:
        policy = outbound_policy(config)
    else:
        try:
            policy = https_policy(bundle, config.held)
        except ValueError as e:
            raise StartupError(f"{config.where(section, 'ca_bundle')}: {e}")
    return make_http(reactor, timeout, connections=2, policy=policy)[0]


def make_sso(config: Config, reactor: IReactorTime, hub: Hub = LONE) -> SingleSignOn:
    """
    Single sign-on (C{[sso]}), with its secret and an HTTP client of its own;
    in a worker of a machine, its logins under way told to the others (C{hub}).

    @raise StartupError: the secret's file or a bundle cannot be used.
    """
    from pypid.auth.sso import SingleSignOn
    return SingleSignOn(config.sso, sso_secret(config.sso, config.held),
                        make_sso_http(config, reactor), reactor, hub=hub)


def make_sso_http(config: Config, reactor: IReactorTime) -> HTTPClient | None:
    """
    The treq client the provider is asked with; L{None} without a provider.

    @raise StartupError: the bundle cannot be used.
    """
    sso = config.sso
    if sso.issuer is None:
        return None
    return _http_client(config, reactor, "sso", sso.ca_bundle, sso.timeout)


def reloaded_sso_http(old: Config, new: Config, reactor: IReactorTime) -> HTTPClient | None:
    """Single sign-on's new client at a reload: when its settings changed or C{old} had none."""
    def settings(config: Config) -> tuple[object, ...]:
        return (config.sso.issuer is None, config.sso.ca_bundle, config.server.ca_bundle,
                config.sso.timeout)
    if settings(old) != settings(new) or old.sso.issuer is None:
        return make_sso_http(new, reactor)
    return None
