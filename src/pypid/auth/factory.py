"""
The access gate's parts built from the configuration (its rules, its
password verifier and directory, its API tokens), and trusted publishing
(its ID token checks and the client the issuers' keys are fetched with):
what the daemon builds at the start and again on C{SIGHUP}
(L{pypid.web.access.AccessPart}).
"""

import attrs

from pypid.auth.policy import AccessModel, admin_users_and_groups
from pypid.auth.verifier import PasswordVerifier
from pypid.core.startup import StartupError


@attrs.frozen
class AccessParts:
    """
    What the access gate is made of, from one configuration.

    @ivar model: the L{AccessModel} of its rules.
    @ivar verifier: a new L{PasswordVerifier} of its users (an empty cache;
        with the directory of C{[ldap]}, if any).
    @ivar tokens: its L{pypid.auth.tokens.TokenBook}.
    """

    model: AccessModel
    verifier: PasswordVerifier
    tokens: object


def make_access_parts(config, reactor, hashing):
    """
    The L{AccessParts} of a configuration.

    @param hashing: the thread pool passwords are checked in.
    @raise StartupError: when the token file or C{[ldap] ca_bundle} cannot
        be used (one line).
    """
    directory = None
    if config.ldap.url:
        from pypid.auth.ldap import make_directory
        try:
            directory = make_directory(config.ldap, reactor, config.server.ca_bundle)
        except ValueError as e:
            key = "[ldap] ca_bundle" if config.ldap.ca_bundle else "[pypid] ca_bundle"
            raise StartupError(f"{config.source}: {key}: {e}")
    verifier = PasswordVerifier(config.users, reactor, hashing, directory=directory)
    admins, admin_groups = admin_users_and_groups(config.auth.admins)
    model = AccessModel(read=config.auth.read, upload=config.auth.upload,
                        groups=dict(config.groups), admins=admins, admin_groups=admin_groups,
                        rules=config.acl)
    return AccessParts(model, verifier, load_tokens(config, reactor))


def load_tokens(config, clock):
    """
    The API tokens, read once at start-up (a small file).

    @raise StartupError: when the file cannot be read or used (one line).
    """
    from pypid.auth.tokens import TokenBook, TokenError, read_file
    path = config.auth.tokens
    book = TokenBook(clock, path=path)
    try:
        data = read_file(path)
        if data is not None:
            book.loads(data)
    except (OSError, TokenError) as e:
        raise StartupError(f"{config.source}: [auth] tokens: cannot use {path}: {e}")
    return book


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
    else C{[pypid] ca_bundle}, else the system's roots.

    @return: the client, or L{None} when there is no issuer and no bundle
        (nothing would use it or could fail: treq stays unimported, 11 ms
        of the start).
    @raise StartupError: when a bundle cannot be used (at start-up, and on
        a reload, which is then refused).
    """
    if not _oidc_http_needed(config):
        return None
    from pypid.http.client import https_policy, make_http, outbound_policy
    bundle = config.oidc.ca_bundle
    if bundle is None:
        return make_http(reactor, config.oidc.timeout, connections=2,
                         policy=outbound_policy(config))[0]
    try:
        policy = https_policy(bundle)
    except ValueError as e:
        raise StartupError(f"{config.source}: [oidc] ca_bundle: {e}")
    return make_http(reactor, config.oidc.timeout, connections=2, policy=policy)[0]
