"""
Directory users: passwords checked, and groups read, in an LDAP directory
(OpenLDAP, Active Directory), without blocking the reactor.

A user name not in C{[users]} is looked up in the directory of C{[ldap]}: a
search for its entry, a bind as that entry with the password, and a search of
its groups. The verifier asks only what its cache cannot answer; the login
throttle and the cost of unknown names stay its business.

Which library: ldaptor, Twisted's own LDAP protocol (pure Python), so a check
is a few Deferreds on the reactor and a directory that hangs holds no thread;
python-ldap has no wheel for Linux and would hold a pool thread per check. As
ldaptor is little maintained, only its stable core is used (the BER codec and
C{LDAPClient}'s matching of answers): not its filter parser, which decodes an
escaped UTF-8 sequence byte by byte as Latin-1, nor its C{startTLS}, which
calls the global reactor and does not wait for the handshake (L{_start_tls}).

A directory that cannot be reached fails the check with
L{pypid.auth.verifier.DirectoryUnavailable}: C{503} and C{Retry-After}, never
C{401}, which would make clients forget good credentials. A server that failed
rests L{RETRY_AFTER} seconds (the next URL is tried), so an outage does not
hold a check, and a pending place, for the whole timeout.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap.ldaperrors import LDAPException
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, succeed
from twisted.internet.error import ConnectError, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger

from pypid.auth.verifier import DirectoryUnavailable
from pypid.config.ldap_settings import LDAPConfig
from pypid.core.access.ldap_syntax import LDAPServer, fill_filter

log = Logger()

#: Seconds a server that failed is not asked again (others are, first).
RETRY_AFTER = 5.0

#: LDAP result codes (RFC 4511, appendix A).
SUCCESS = 0
SIZE_LIMIT_EXCEEDED = 4
INVALID_CREDENTIALS = 49

#: Result codes that say the server cannot answer now, rather than "no".
_UNAVAILABLE_CODES = {
    3,   # timeLimitExceeded
    11,  # adminLimitExceeded
    51,  # busy
    52,  # unavailable
    80,  # other
}


#: ldaptor's objects (filters, messages, the client): the library has no types.
_Ldaptor = Any

#: C{tls(host, port)}: the client TLS settings of a directory server.
TLSCreators = Callable[[str, int], IOpenSSLClientConnectionCreator]

#: An entry found: C{(dn, [(attribute, [values])])}, as ldaptor gives them.
_Entry = tuple[str, Any]

_T = TypeVar("_T")


# -- checking a user ---------------------------------------------------------------------------


class _Refused(Exception):
    """An LDAP operation was answered with a result code other than success."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


def _expected() -> tuple[type[BaseException], ...]:
    """What a server that cannot be used fails with (a warning, no traceback)."""
    # (pyOpenSSL is imported on first use, not by the configuration's checks)
    from OpenSSL.SSL import Error as TLSError
    from service_identity import VerificationError
    return (ConnectError, ConnectionLost, ConnectionDone, TimeoutError, CancelledError,
            TLSError, VerificationError, LDAPException, OSError, _Refused)


@attrs.define
class Directory:
    """
    Check a user's password by binding as their entry, and read their
    groups, in the directory of C{[ldap]}.

    @ivar _connect: C{connect(server) -> Deferred} of a connected ldaptor
        C{LDAPClient} (TLS already wrapped for C{ldaps://}); by default
        L{_connect_endpoint}.
    """

    _settings: LDAPConfig = attrs.field(repr=False)
    _reactor: IReactorTime = attrs.field(repr=False)
    _tls: TLSCreators = attrs.field(repr=False)
    _connect: Callable[[LDAPServer], Deferred[_Ldaptor]] = attrs.field(
        kw_only=True, repr=False,
        default=attrs.Factory(lambda self: self._connect_endpoint, takes_self=True))
    # LDAPServer -> reactor seconds until which it is not asked
    _down_until: dict[LDAPServer, float] = attrs.field(init=False, factory=dict, repr=False)

    @property
    def key(self) -> str:
        """What names this directory (L{pypid.config.ldap_settings.LDAPConfig.key})."""
        return self._settings.key or ""

    @property
    def cache_ttl(self) -> float:
        """Seconds a directory user's check (password and groups) is remembered."""
        return self._settings.cache_ttl

    def check(self, user: str, password: str) -> Deferred[frozenset[str] | None]:
        """
        Check C{password} as the directory's user C{user}.

        @return: a L{Deferred} firing with the user's directory groups when
            the password is theirs, or L{None} when it is not or no such user
            is found; failing with L{DirectoryUnavailable} when no server could answer.
        """
        if not password:
            # (a bind with a DN and no password is an "unauthenticated bind", RFC
            # 4513 5.1.2, which many servers answer with success)
            return succeed(None)
        return Deferred.fromCoroutine(self._across(
            lambda client, server: self._converse(client, server, user, password)))

    def knows(self, user: str) -> Deferred[bool]:
        """
        Whether the directory has a user of exactly the name C{user}, found as
        a login finds it, without a password (single sign-on is refused a name
        the directory's user holds); failing with L{DirectoryUnavailable}.
        """
        return Deferred.fromCoroutine(self._across(
            lambda client, server: self._find(client, server, user)))

    def groups_of(self, user: str) -> Deferred[frozenset[str] | None]:
        """
        The directory groups of its user C{user} now, read by the service
        account (a browser session's groups follow the directory within
        C{cache_ttl}); L{None}: no such user any more. Fails as L{knows}.
        """
        return Deferred.fromCoroutine(self._across(
            lambda client, server: self._read_groups(client, server, user)))

    async def _read_groups(self, client: _Ldaptor, server: LDAPServer,
                           user: str) -> frozenset[str] | None:
        found = await self._found(client, server, user)
        if not self._the_one(found, user) or not found[0][0]:
            return None
        return await self._groups(client, user, found[0][0])

    async def _groups(self, client: _Ldaptor, user: str, dn: str) -> frozenset[str]:
        """The names of the groups of the entry C{dn} (none without C{group_base})."""
        settings = self._settings
        if settings.group_base is None:
            return frozenset()
        entries = await _search(client, settings.group_base,
                                fill_filter(settings.group_filter, user=user, dn=dn),
                                [settings.group_name_attribute], 0)
        return frozenset(name for _dn, attributes in entries
                         for name in _values(attributes, settings.group_name_attribute))

    async def _across(self, work: Callable[[_Ldaptor, LDAPServer], Awaitable[_T]]) -> _T:
        """
        C{work(client, server)} on a new connection to the first server up,
        the next one when it cannot be used (which then rests L{RETRY_AFTER}).

        @raise DirectoryUnavailable: no server could answer.
        """
        now = self._reactor.seconds()
        servers = [server for server in self._settings.url
                   if self._down_until.get(server, 0) <= now]
        if not servers:
            wait = min(self._down_until.values()) - now
            raise DirectoryUnavailable(max(1, math.ceil(wait)))
        for server in servers:
            attempt = Deferred.fromCoroutine(self._on(server, work))
            attempt.addTimeout(self._settings.timeout, self._reactor)
            try:
                result = await attempt
            except _expected() as e:
                self._down_until[server] = self._reactor.seconds() + RETRY_AFTER
                log.warn("The LDAP server {server} cannot be used: {reason}",
                         server=str(server),
                         reason=_describe(e, self._settings.timeout, server.host))
                continue
            except Exception:
                self._down_until[server] = self._reactor.seconds() + RETRY_AFTER
                log.failure("The LDAP server {server} failed", server=str(server))
                continue
            self._down_until.pop(server, None)
            return result
        raise DirectoryUnavailable(math.ceil(RETRY_AFTER))

    async def _on(self, server: LDAPServer,
                  work: Callable[[_Ldaptor, LDAPServer], Awaitable[_T]]) -> _T:
        """
        C{work} on one new connection to C{server}, closed at once after (no
        unbind, no TLS goodbye: RFC 4511 lets a client just close).
        """
        client = await self._connect(server)
        try:
            return await work(client, server)
        finally:
            if client.transport is not None:
                client.transport.abortConnection()

    async def _found(self, client: _Ldaptor, server: LDAPServer,
                     user: str) -> list[_Entry]:
        """StartTLS, the service bind, and the entries the user's search finds (at most 2)."""
        settings = self._settings
        if not server.secure and settings.starttls:
            await _start_tls(client, self._tls(server.host, server.port))
        await self._bind_service(client)
        user_base = settings.user_base
        assert user_base is not None  # (required with [ldap] url: check_ldap)
        return await _search(client, user_base, fill_filter(settings.user_filter, user=user),
                             [settings.user_name_attribute], 2)

    def _the_one(self, found: list[_Entry], user: str) -> bool:
        """
        Whether the search found one entry, whose own spelling of its name is
        C{user}: the directory matches names ignoring case, spaces and width
        (ALICE, " alice" find alice), and only the entry's own spelling is a
        login, so that each user has one name (throttle, audit, rules).
        """
        return len(found) == 1 and user in _values(found[0][1],
                                                   self._settings.user_name_attribute)

    async def _find(self, client: _Ldaptor, server: LDAPServer, user: str) -> bool:
        return self._the_one(await self._found(client, server, user), user)

    async def _converse(self, client: _Ldaptor, server: LDAPServer, user: str,
                        password: str) -> frozenset[str] | None:
        """StartTLS, the service bind, the user's search and bind, the group search."""
        settings = self._settings
        found = await self._found(client, server, user)
        user_base = settings.user_base
        assert user_base is not None  # (required with [ldap] url: check_ldap)
        if len(found) > 1:
            log.warn("More than one directory entry matches a user name; refused "
                     "(make [ldap] user_filter match one entry per name)")
        if not self._the_one(found, user):
            # (a bind as no one, so an unknown name costs what a wrong password does)
            await _bind(client, "cn=pypid-no-such-user," + user_base, password)
            log.info("Directory authentication attempt for an unknown user name")
            return None
        dn = found[0][0]
        if not dn:
            return None
        if not await _bind(client, dn, password):
            log.info("Wrong password for directory user {user!r}", user=user)
            return None
        if settings.group_base is None:
            return frozenset()
        await self._bind_service(client, again=True)
        return await self._groups(client, user, dn)

    async def _bind_service(self, client: _Ldaptor, again: bool = False) -> None:
        """Bind as the service account; without one, stay (or become C{again}) anonymous."""
        settings = self._settings
        if settings.bind_dn is None:
            if again:
                await _bind(client, "", "")
            return
        if not await _bind(client, settings.bind_dn, settings.bind_password):
            raise _Refused(INVALID_CREDENTIALS,
                           "the service account of [ldap] bind_dn was refused (wrong "
                           "bind_dn or bind_password)")

    def _connect_endpoint(self, server: LDAPServer) -> Deferred[_Ldaptor]:
        """Connect to C{server} through Twisted's endpoints (TLS from the start for ldaps)."""
        from ldaptor.protocols.ldap.ldapclient import LDAPClient
        from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
        from twisted.internet.protocol import ClientFactory
        endpoint: IStreamClientEndpoint = HostnameEndpoint(self._reactor, server.host, server.port,
                                    timeout=self._settings.timeout)
        if server.secure:
            endpoint = wrapClientTLS(self._tls(server.host, server.port), endpoint)
        factory = ClientFactory.forProtocol(LDAPClient)
        factory.noisy = False  # (no "Starting factory" line per login)
        return endpoint.connect(factory)


async def _start_tls(client: _Ldaptor, creator: IOpenSSLClientConnectionCreator) -> None:
    """
    StartTLS (RFC 4511 4.14): ask, then start TLS on the connection. The
    handshake completes with the next request, whose failure fails the check.
    """
    response = await client.send(pureldap.LDAPStartTLSRequest())
    if response.resultCode != SUCCESS:
        raise _Refused(response.resultCode, "StartTLS refused: " + _text(response.errorMessage))
    client.transport.startTLS(creator)


async def _bind(client: _Ldaptor, dn: str, password: str) -> bool:
    """
    A simple bind: C{True} on success, C{False} for wrong credentials.

    @raise _Refused: for any other answer (the server is busy, say).
    """
    response = await client.send(pureldap.LDAPBindRequest(dn=dn, auth=password))
    if response.resultCode == SUCCESS:
        return True
    if response.resultCode in _UNAVAILABLE_CODES:
        raise _Refused(response.resultCode, "bind: " + _text(response.errorMessage))
    return False


async def _search(client: _Ldaptor, base: str, search_filter: _Ldaptor, attributes: list[str],
                  size_limit: int) -> list[_Entry]:
    """
    A whole-subtree search: C{[(dn, [(attribute, [values])])]}, no referrals.

    @raise _Refused: the search ends with an error (no such base DN, say).
    """
    entries: list[_Entry] = []
    done: Deferred[_Ldaptor] = Deferred()

    def handle(message: _Ldaptor) -> bool:
        if isinstance(message, pureldap.LDAPSearchResultEntry):
            entries.append((_text(message.objectName), message.attributes))
            return False
        if isinstance(message, pureldap.LDAPSearchResultDone):
            done.callback(message)
            return True
        return False  # a search result reference: another server's part of the tree

    request = pureldap.LDAPSearchRequest(
        baseObject=base, scope=pureldap.LDAP_SCOPE_wholeSubtree,
        derefAliases=pureldap.LDAP_DEREF_neverDerefAliases, sizeLimit=size_limit,
        filter=search_filter, attributes=attributes)
    # (that Deferred fires only if the connection is lost)
    client.send_multiResponse(request, handle).addErrback(
        lambda failure: None if done.called else done.errback(failure))
    result = await done
    if result.resultCode == SIZE_LIMIT_EXCEEDED:
        if not size_limit:
            # (the server's own limit: Active Directory's is 1,000 entries)
            log.warn("The directory returned only {count} entries under {base!r}: its "
                     "size limit", count=len(entries), base=base)
        return entries
    if result.resultCode != SUCCESS:
        raise _Refused(result.resultCode, f"search under {base!r}: "
                       + _text(result.errorMessage))
    return entries


def _values(attributes: Iterable[tuple[Any, Iterable[Any]]], attribute: str) -> list[str]:
    """The values, as text, of C{attribute} (any case) among C{attributes}; not UTF-8: left out."""
    wanted = attribute.lower()
    result: list[str] = []
    for name, values in attributes:
        if _text(name).lower() == wanted:
            for value in values:
                try:
                    result.append(value.decode("utf-8") if isinstance(value, bytes) else value)
                except UnicodeDecodeError:
                    continue
    return result


def _text(value: bytes | str | None) -> str:
    """An LDAP string (bytes on the wire) as text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def _describe(error: BaseException, timeout: float, host: str) -> str:
    """What went wrong with a server (C{host}), in a few words for the log."""
    if isinstance(error, (TimeoutError, CancelledError)):
        return f"no answer within {timeout:g} s"
    if isinstance(error, _Refused):
        return f"{error.message} (LDAP result {error.code})"
    from service_identity import VerificationError
    if isinstance(error, VerificationError):
        # (a certificate the CA vouches for, but for other names)
        return f"TLS failed: the certificate is not for {host}"
    from OpenSSL.SSL import Error as TLSError
    if isinstance(error, TLSError):
        return f"TLS failed: {error}"
    return str(error) or type(error).__name__


def tls_creators(ca_bundle: str | None, held: Mapping[str, str] | None = None) -> TLSCreators:
    """
    C{tls(host, port)}: the client TLS settings of a directory server,
    verified against C{ca_bundle} (or the system's roots when L{None}).

    @raise ValueError: when the bundle cannot be used.
    """
    from pypid.http.client import https_policy
    policy = https_policy(ca_bundle, held)

    def tls(host: str, port: int) -> IOpenSSLClientConnectionCreator:
        return policy.creatorForNetloc(host.encode("idna") if not host.isascii()
                                       else host.encode("ascii"), port)
    return tls


def make_directory(settings: LDAPConfig, reactor: IReactorTime,
                   fallback_ca: str | None = None,
                   held: Mapping[str, str] | None = None) -> Directory | None:
    """
    The L{Directory} of a C{[ldap]} section, or L{None} without C{url}.

    @param fallback_ca: C{[pypid] ca_bundle}, used when C{[ldap] ca_bundle} is empty.
    @raise ValueError: when the CA bundle cannot be used.
    """
    if not settings.url:
        return None
    return Directory(settings, reactor, tls_creators(settings.ca_bundle or fallback_ca, held))
