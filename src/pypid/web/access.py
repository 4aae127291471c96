"""
Who may do what, applied to requests: the bridge from HTTP Basic headers to
L{pypid.auth.verifier}'s verifier and policy.

Reads are the hot path: when the policy lets everyone read, L{Access.gate_read}
answers L{None} at once and no header is even parsed.

Only credentials that need a check of their own meet the login throttle:
those verified lately, and those identical to credentials being checked
(which share that check's result), pass straight to the verifier, so a burst
of the right password never throttles itself; a token is checked first (a
digest comparison) and only a wrong one meets it. The throttle counts the
client the site resolved for the request (L{client_address}: behind a
trusted proxy, the client it names); see L{pypid.auth.throttle} for the
whole rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, TypeVar, cast

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.components import registerAdapter
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.web.iweb import IRequest
from twisted.web.server import Request
from zope.interface import Attribute, Interface, implementer

from pypid.auth.basic import MalformedCredentials, parse_basic
from pypid.auth.factory import make_access_parts, make_publishing, reloaded_oidc_http
from pypid.auth.oidc import PublisherTokens, is_publisher
from pypid.auth.policy import AccessModel
from pypid.auth.throttle import LoginThrottle
from pypid.auth.tokens import TOKEN_USER, Token, TokenBook, presented_id
from pypid.auth.verifier import Busy, DirectoryUnavailable, Identity, PasswordVerifier
from pypid.config import Config
from pypid.core.access_rules import READ, WRITE
from pypid.core.http_errors import (
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from pypid.core.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.parts import IReloadable
from pypid.web.request_client import IRequestClient, peer_host

#: What a change (an upload, a yank, a delete) answers without credentials.
UPLOAD_LOGIN = "authentication is required to upload"

#: What a read answers without credentials, when they are needed.
READ_LOGIN = "authentication is required to read this index"

#: What a path no route takes answers; a hidden index's paths too.
NO_SUCH_PAGE = "no such page"

#: What a change answers whose credentials were revoked, or whose user was
#: removed, while it was under way (L{Access.confirm}).
REVOKED = ("these credentials were revoked, or their user removed or changed, while the "
           "request was under way")

#: Characters of a token's id the throttle counts it by: more than an id
#: has (8), so that made-up ids cannot make its keys large.
_TOKEN_ID_KEPT = 16


_Identity = TypeVar("_Identity", Identity, Identity | None)


class FailedLogins(Protocol):
    """Where failed and throttled logins are recorded (L{pypid.web.audit_trail.AuditTrail})."""

    def login_failed(self, user: str | None, address: str | None, token: str | None = None,
                     throttled: bool = False) -> None:
        """Record a failed (or throttled) login."""


class IRequestAuth(Interface):
    """What is known of who sent a request: its L{RequestAuth} component."""

    credentials = Attribute("C{(user, password)} of an upload, or L{None}.")
    verified = Attribute("A L{Deferred} of the upload's L{Identity}, or L{None}.")
    identity = Attribute("The verified L{Identity}, or L{None}.")
    generation = Attribute("The gate's L{Access.generation} when the check began, or L{None}.")


@attrs.define
class RequestAuth:
    """
    Who sent a request, as far as the server found out: kept on the request
    as its L{IRequestAuth} component (C{IRequestAuth(request)}), so the site,
    the gates and the routes read and write one typed place.

    @ivar credentials: C{(user, password)} of an upload, parsed by the site
        from its C{Authorization} header before the body.
    @ivar verified: a L{Deferred} of the upload's L{Identity}, when the site
        began verifying the credentials before the body; the upload route
        waits for it rather than checking (and counting failures) twice.
    @ivar identity: the verified L{Identity}, once a gate let the request
        through; L{None} for an anonymous request.
    @ivar generation: the gate's L{Access.generation} when the check of the
        credentials began, so that a change can tell whether a reload came
        in between (L{Access.confirm}).
    """

    credentials: tuple[str, str] | None = None
    verified: Deferred[Identity | None] | None = None
    identity: Identity | None = None
    #: the gate's L{Access.generation} when the credentials' check began
    generation: int | None = None


registerAdapter(lambda request: RequestAuth(), Request, IRequestAuth)


def identity_of(request: IRequest) -> Identity | None:
    """The L{Identity} a gate verified for C{request}, or L{None}."""
    return IRequestAuth(request).identity


@attrs.define
class Access:
    """
    @ivar _verifier: a L{pypid.auth.verifier.PasswordVerifier}.
    """

    #: the L{pypid.auth.policy.AccessModel}
    model: AccessModel
    _verifier: PasswordVerifier
    #: a L{pypid.auth.throttle.LoginThrottle}, or L{None}
    _throttle: LoginThrottle | None = None
    #: the L{pypid.auth.tokens.TokenBook}, or L{None} when tokens are not used
    tokens: TokenBook | None = None
    #: the L{pypid.web.audit_trail.AuditTrail} that failed and throttled logins
    #: are recorded in, or L{None}
    audit: FailedLogins | None = None
    #: the L{pypid.auth.oidc.PublisherTokens} trusted publishing minted, or L{None}
    publishers: PublisherTokens | None = None
    #: how many times the rules and users were reloaded (L{reconfigure}):
    #: a change whose credentials were checked before a reload has them
    #: checked again as it commits (L{confirm})
    generation: int = attrs.field(init=False, default=0)
    _open_reads: bool = attrs.field(init=False, default=True)
    #: the same, for each named index (issue 26)
    _open_index_reads: dict[str, bool] = attrs.field(init=False, factory=dict)
    #: each named index anonymous clients may enter (read at all)
    _open_entries: frozenset[str] = attrs.field(init=False, factory=frozenset)
    #: whether some named index is hidden from anonymous clients: then a
    #: path that names no index asks them for credentials too (L{gate_index})
    _hidden_from_anonymous: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        # Whether anonymous clients read every project: then reads need no
        # credentials at all, and pages no filtering (the hot path).
        self._take_open_reads()

    def _take_open_reads(self) -> None:
        model = self.model
        self._open_reads = model.reads_everything(None)
        self._open_index_reads = {index: model.reads_everything(None, index=index)
                                  for index in model.indexes}
        self._open_entries = frozenset(index for index in model.indexes
                                       if model.may_enter(None, READ, index))
        self._hidden_from_anonymous = any(index not in self._open_entries
                                          for index in model.indexes if index != DEFAULT_INDEX)

    def reconfigure(self, model: AccessModel, verifier: PasswordVerifier,
                    tokens: TokenBook | None) -> None:
        """
        Take a reloaded configuration's rules, users and tokens (C{SIGHUP}).
        The verifier is new, so no credentials checked before are trusted
        any more: a removed user, or a changed password, is refused at
        once. Requests under way read with what they were given; a change
        under way is checked again as it commits (L{confirm}).
        """
        self.generation += 1
        self.model = model
        self._verifier = verifier
        self.tokens = tokens
        self._take_open_reads()

    # -- per project ---------------------------------------------------------------

    @staticmethod
    def user(request: IRequest) -> str | None:
        """The name the request was authenticated as (by a gate), or L{None}."""
        identity = identity_of(request)
        return identity.name if identity is not None else None

    def _open(self, index: str) -> bool:
        """Whether anonymous clients read every project of C{index}."""
        if index == DEFAULT_INDEX:
            return self._open_reads
        return self._open_index_reads.get(index, self._open_reads)

    def may_read(self, request: IRequest, project: str, index: str = DEFAULT_INDEX) -> bool:
        """Whether the request may see C{project} of C{index} (others answer 404)."""
        if self._open(index):
            return True
        return self.identity_may_read(identity_of(request), project, index)

    def identity_may_read(self, identity: Identity | None, project: str,
                          index: str = DEFAULT_INDEX) -> bool:
        """
        Whether C{identity} (L{None}: anonymous) may see C{project} of
        C{index}, token scope included.
        """
        if identity is None:
            return self.model.may_read(None, project, index=index)
        token: Token | None = identity.token
        if token is not None and not token.covers("read", project, index):
            return False
        return self.model.may_read(identity.name, project, identity.groups, index)

    def cache_key(self, request: IRequest,
                  ) -> tuple[str, str | None, frozenset[str]] | None:
        """
        What the project list a request sees depends on: its user, its token,
        and its directory groups.
        """
        identity = identity_of(request)
        if identity is None:
            return None
        token: Token | None = identity.token
        return (identity.name, token.id if token is not None else None, identity.groups)

    def may_write(self, identity: Identity | None, project: str,
                  index: str = DEFAULT_INDEX) -> bool:
        """Whether C{identity} may upload to, yank or delete in C{project} of C{index}."""
        if identity is None:
            return self.model.may_write(None, project, index=index)
        token: Token | None = identity.token
        if token is not None:
            if not token.covers("upload", project, index):
                return False
            if is_publisher(identity.name):
                return True  # (its [publishers] rules are its grant, whatever [acl] says)
        return self.model.may_write(identity.name, project, identity.groups, index)

    def reads_everything(self, request: IRequest, index: str = DEFAULT_INDEX) -> bool:
        """Whether the request may see every project of C{index} (pages need no filtering)."""
        if self._open(index):
            return True
        identity = identity_of(request)
        if identity is None:
            return self.model.reads_everything(None, index=index)
        token: Token | None = identity.token
        if token is not None and (token.projects or "read" not in token.actions
                                  or (token.indexes and index not in token.indexes)):
            return False
        return self.model.reads_everything(identity.name, identity.groups, index)

    def is_local_user(self, name: str) -> bool:
        """Whether C{name} is a user of C{[users]} or the htpasswd file (not the directory's)."""
        return self._verifier.knows(name)

    def is_admin(self, identity: Identity | None) -> bool:
        """Whether C{identity} is an admin (with a password: tokens never are)."""
        return (identity is not None and identity.token is None
                and self.model.is_admin(identity.name, identity.groups))

    def identify(self, request: IRequest, credentials: tuple[str, str] | None = None,
                 ) -> Deferred[Identity | None]:
        """
        Find who sent the request.

        @param credentials: C{(user, password)} already parsed, if any.
        @return: L{Deferred} firing with an L{pypid.auth.verifier.Identity}, or L{None}
            for an anonymous request; failing with L{Unauthorized} for
            malformed or wrong credentials.
        """
        if credentials is None:
            try:
                credentials = request_credentials(request)
            except MalformedCredentials as e:
                return fail(Unauthorized(f"Authorization: {e}"))
            if credentials is None:
                return succeed(None)
        user, password = credentials
        throttle = self._throttle
        if throttle is not None and user == TOKEN_USER:
            return self._identify_token(request, password, throttle)
        if throttle is None or not self._needs_new_check(user, password):
            # Verified lately, or the very same credentials are being checked
            # (a burst of the right password): join, with no throttle
            # accounting, so such a burst is never held back by itself.
            d = self._authenticate(user, password)
            d.addCallback(self._audit_failure, request, user, password)
            d.addCallbacks(_known, _busy)
            return d
        address = client_address(request)
        key, guessable = self._throttle_key(user, password)
        wait = throttle.wait(key, address, guessable)
        if wait:
            return fail(self._throttled(request, user, password, wait))

        def checked(identity: Identity | None | Failure) -> Identity | None | Failure:
            if isinstance(identity, Failure):
                throttle.abandoned(key, address, guessable)  # (the check could not run: Busy)
            elif identity is None:
                throttle.failed(key, address, guessable)
            else:
                throttle.succeeded(key, address, guessable)
            return identity
        throttle.started(key, address, guessable)
        d = self._authenticate(user, password)
        d.addBoth(checked)
        d.addCallback(self._audit_failure, request, user, password)
        d.addCallbacks(_known, _busy)
        return d

    async def confirm(self, request: IRequest, identity: Identity) -> Identity:
        """
        C{identity}, the request's, checked again as its change commits (an
        upload is stored, a file yanked or deleted): a change must not be
        made by credentials that were revoked, or a user that was removed,
        while it was under way (its body arriving, its password being
        hashed, its lock awaited).

        A token is checked again every time: a digest comparison, nothing
        to wait for, and the only way to see a revocation (which changes
        the token book, not the rules). A password is checked again only
        when the rules and users were reloaded since its check began: with
        the new verifier, so a removed user, a changed password or a
        directory that no longer lets the user in is refused, at the cost
        of one more hash in that rare case. The caller then applies the
        rules in force now to the identity returned (its groups may have
        changed too).

        @raise Unauthorized: the credentials no longer hold.
        @raise Unavailable: they cannot be checked now (the verifier is busy,
            or the directory cannot be reached).
        """
        auth = IRequestAuth(request)
        if identity.token is None and auth.generation == self.generation:
            return identity
        credentials = auth.credentials
        if credentials is None:
            try:
                credentials = request_credentials(request)
            except MalformedCredentials:
                credentials = None
        again = None
        if credentials is not None:
            checking = self._authenticate(*credentials)
            checking.addErrback(_busy)
            again = await checking
        if again is None or again.name != identity.name:
            raise Unauthorized(REVOKED)
        auth.generation = self.generation
        return _remember(again, request)

    def _identify_token(self, request: IRequest, password: str,
                        throttle: LoginThrottle) -> Deferred[Identity | None]:
        """
        A token is checked first (a digest comparison: no thread, no wait),
        so a right one is never held back by what others tried from its
        address (L{pypid.auth.throttle}, rule 1); a wrong one meets the
        throttle, and counts as a failure unless it is held back.
        """
        identity = self._token_identity(password)
        if identity is not None:
            return succeed(identity)
        address = client_address(request)
        key, guessable = self._throttle_key(TOKEN_USER, password)
        wait = throttle.wait(key, address, guessable)
        if wait:
            return fail(self._throttled(request, TOKEN_USER, password, wait))
        throttle.started(key, address, guessable)
        throttle.failed(key, address, guessable)
        self._audit_failure(None, request, TOKEN_USER, password)
        return fail(Unauthorized("wrong user name or password"))

    def _throttled(self, request: IRequest, user: str, password: str,
                   wait: float) -> TooManyRequests:
        """
        The C{429} of a login the throttle holds back, recorded in the audit
        log: the same words and C{Retry-After} for a name the server knows
        and one it does not (L{pypid.auth.throttle}, rule 5).
        """
        self._audit_failure(None, request, user, password, throttled=True)
        who = "this token" if user == TOKEN_USER else repr(user)
        return TooManyRequests(
            f"too many failed or unfinished logins for {who}; try again later",
            [(b"retry-after", b"%d" % math.ceil(wait))])

    def _throttle_key(self, user: str, password: str) -> tuple[str, bool]:
        """
        C{(key, guessable)}: what an attempt is throttled as
        (L{pypid.auth.throttle}, rules 5 and 6): a token by its id, whether
        the server issued it or not (both are counted alike, so the answers
        tell nothing), and not across clients (its secret cannot be
        guessed); a password by its user name, known or not, and across
        clients too.
        """
        if user == TOKEN_USER:
            return f"{TOKEN_USER}:{presented_id(password)[:_TOKEN_ID_KEPT]}", False
        return user, True

    def _audit_failure(self, identity: Identity | None, request: IRequest, user: str | None,
                       password: str, throttled: bool = False) -> Identity | None:
        """
        Record a failed (C{identity} L{None}) or throttled login in the audit
        log: the user name only when it is a user's (people type passwords
        into the user field), the token id only when it is a token's.
        """
        if identity is None and self.audit is not None:
            token = None
            if user == TOKEN_USER:
                token = self.tokens.issued(password) if self.tokens is not None else None
            elif user is None or not self._verifier.knows(user):
                user = None
            self.audit.login_failed(user, client_address(request), token, throttled)
        return identity

    def _needs_new_check(self, user: str, password: str) -> bool:
        """
        Whether a password needs a check of its own, which the throttle
        may hold back: unless it was verified lately or the same one is
        being checked. (A token never comes here: L{_identify_token}.)
        """
        return self._verifier.needs_new_check(user, password)

    def _authenticate(self, user: str, password: str) -> Deferred[Identity | None]:
        """
        Check a password, or a token given as the password of C{__token__}
        (a token check is a digest comparison: no thread, no wait).
        """
        if user == TOKEN_USER:
            return succeed(self._token_identity(password))
        return self._verifier.authenticate(user, password)

    def _token_identity(self, password: str) -> Identity | None:
        """Who a token (the password of C{__token__}) acts for, or L{None}."""
        token = self.tokens.verify(password) if self.tokens is not None else None
        # A token acts for its issuer only while the issuer is a user.
        if token is not None and self._verifier.knows(token.user):
            return Identity(token.user, token)
        # A token trusted publishing minted acts for its publisher.
        minted = self.publishers.verify(password) if self.publishers is not None else None
        return Identity(minted.user, minted) if minted is not None else None

    def gate_read(self, request: IRequest,
                  index: str = DEFAULT_INDEX) -> Deferred[Identity | None] | None:
        """
        L{None} when anyone may read C{index}; otherwise a L{Deferred} that
        fails with L{Unauthorized} unless the request carries valid
        credentials.
        """
        if self._open_reads if index == DEFAULT_INDEX else self._open(index):
            return None
        d = self.identify(request)
        d.addCallback(self._may_read_index, index)
        d.addCallback(_remember, request)
        return d

    def _may_read_index(self, identity: Identity | None, index: str) -> Identity | None:
        """
        C{identity} if it may read C{index} at all. Without credentials,
        L{Unauthorized} (a challenge: clients then send theirs); with
        credentials that may not read it (no read grant, or a token kept to
        other indexes), L{NotFound}, as a named index hidden from them
        answers (issue 41): no challenge that good credentials cannot meet.
        """
        if identity is None:
            if not self.model.may_enter(None, READ, index):
                raise Unauthorized(READ_LOGIN)
            return identity
        token: Token | None = identity.token
        if (not self.model.may_enter(identity, READ, index)
                or (token is not None and token.indexes and index not in token.indexes
                    and not _minted(identity))):
            raise NotFound(NO_SUCH_PAGE)
        return identity

    def gate_index(self, request: IRequest,
                   index: str | None) -> Deferred[Identity | None] | None:
        """
        The gate of everything under C{/NAME/}: L{None} when anonymous
        clients may enter the named C{index}; otherwise a L{Deferred} of the
        request's identity, failing with L{NotFound} when C{index} is
        L{None} (no such index) or hidden from that identity, and with
        L{Unauthorized} for wrong credentials, or for none while some index
        is hidden from anonymous clients. So a hidden index answers exactly
        as a missing one, to anonymous clients and to everyone else.
        """
        if index is not None and self._anyone_enters(index):
            return None
        d = self.identify(request)
        d.addCallback(self._enter, index)
        d.addCallback(_remember, request)
        return d

    def _anyone_enters(self, index: str) -> bool:
        """Whether anonymous clients may enter the named C{index} (without grants: C{[auth]})."""
        if index in self._open_entries:
            return True
        return index not in self.model.indexes and self.model.may_enter(None, READ, index)

    def _enter(self, identity: Identity | None, index: str | None) -> Identity | None:
        if identity is None:
            if self._hidden_from_anonymous:
                raise Unauthorized(READ_LOGIN)
            raise NotFound(NO_SUCH_PAGE)
        if index is None or not self.index_shown(identity, index):
            raise NotFound(NO_SUCH_PAGE)
        return identity

    def index_shown(self, identity: Identity | None, index: str) -> bool:
        """
        Whether C{identity} may enter the named C{index} at all: its
        C{[index:NAME] read} grant, and a token's indexes (one kept to other
        indexes sees this one as missing, unless anyone may enter it).
        """
        if self._anyone_enters(index):
            return True
        if identity is not None and _minted(identity):
            # (a trusted publisher's grant is its [publishers] rules, in every
            # index: its minted token uploads and reads nothing else)
            return True
        if not self.model.may_enter(identity, READ, index):
            return False
        token: Token | None = identity.token if identity is not None else None
        return token is None or not token.indexes or index in token.indexes

    def may_upload_to(self, identity: Identity, index: str) -> bool:
        """
        Whether C{identity} may upload to the named C{index} at all (its
        C{upload} grant; a trusted publisher's is its C{[publishers]} rules,
        whichever index the upload goes to).
        """
        return _minted(identity) or self.model.may_enter(identity, WRITE, index)

    def log_in(self, request: IRequest) -> Deferred[Identity]:
        """
        A L{Deferred} firing with the request's identity, or failing with
        L{Unauthorized} (and so a Basic challenge) when it carries none: a
        browser, which sends credentials only once asked, is asked here.
        """
        return self.identify(request).addCallback(_logged_in).addCallback(_remember, request)

    def gate_upload(self, request: IRequest, credentials: tuple[str, str] | None = None,
                    needed: str = UPLOAD_LOGIN,
                    index: str | None = DEFAULT_INDEX) -> Deferred[Identity]:
        """
        A L{Deferred} firing with the uploader's identity, or failing with
        L{Unauthorized} (saying C{needed} when the request has no
        credentials, or when they lack the default index's grant).

        @param index: the index whose C{upload} grant decides (the default
            index's, C{[auth] upload} or C{[index:default] upload}); L{None}
            for none here: the caller checks the grant of the index it acts
            on (a named index's, once its gate hid it from those who may not
            see it: L{may_upload_to}), so that each index's grant decides
            for that index alone (issue 41).
        """
        # (what a change is checked against again as it commits: confirm)
        IRequestAuth(request).generation = self.generation
        d = self.identify(request, credentials)
        if index is None:
            d.addCallback(_authenticated, needed)
        else:
            d.addCallback(self._may, WRITE, needed, index)
        d.addCallback(_remember, request)
        # ([auth] upload is always "authenticated": no anonymous identity passes)
        return cast("Deferred[Identity]", d)

    async def uploader(self, request: IRequest) -> Identity:
        """A user who may upload: with a password, or a token that may upload."""
        identity = await self.gate_upload(request)
        token: Token | None = identity.token
        if token is not None and "upload" not in token.actions:
            raise Forbidden("this token may not upload")
        return identity

    async def admin(self, request: IRequest, needed: str = UPLOAD_LOGIN) -> Identity:
        """
        An admin (with a password), or L{Forbidden}; without credentials,
        L{Unauthorized} saying C{needed} (what the route is for).
        """
        identity = await self.gate_upload(request, needed=needed)
        if not self.is_admin(identity):
            if identity.token is not None:
                # (an admin's own token too: tokens never act as admins)
                raise Forbidden("a token never acts as an admin: log in with a password")
            raise Forbidden(f"{identity.name} is not an admin")
        return identity

    def _may(self, identity: Identity | None, permission: str, message: str,
             index: str = DEFAULT_INDEX) -> Identity | None:
        if not self.model.may_enter(identity, permission, index):
            raise Unauthorized(message)
        return identity


def _authenticated(identity: Identity | None, needed: str) -> Identity:
    """C{identity}, or L{Unauthorized} saying C{needed} for an anonymous request."""
    if identity is None:
        raise Unauthorized(needed)
    return identity


def _logged_in(identity: Identity | None) -> Identity:
    if identity is None:
        raise Unauthorized("log in with your user name and password")
    return identity


def _remember(identity: _Identity, request: IRequest) -> _Identity:
    """Keep who the request is, for the per-project checks that follow."""
    IRequestAuth(request).identity = identity
    return identity


def request_credentials(request: IRequest) -> tuple[str, str] | None:
    """
    C{(user, password)} of the request's C{Authorization} header (HTTP
    Basic), or L{None} without one.

    @raise MalformedCredentials: a header that is not Basic credentials.
    """
    return parse_basic(request.requestHeaders.getRawHeaders(b"authorization", (None,))[0])


def client_address(request: IRequest) -> str | None:
    """
    The client's address, as the login throttle counts it and the audit
    log records it: the one the site resolved for the request
    (L{pypid.web.request_client}: behind a trusted proxy, the client the
    proxy names), the peer's host for a request that has no component
    (a test's), L{None} for a peer without a host.
    """
    client = IRequestClient(request, None)
    return client.address if client is not None else peer_host(request)


def _busy(failure: Failure) -> None:
    if failure.check(DirectoryUnavailable):
        # (never 401: clients would forget good credentials)
        raise Unavailable("the directory that checks this user cannot be reached; try "
                          "again shortly",
                          [(b"retry-after", b"%d" % failure.value.retry_after)])
    failure.trap(Busy)
    raise Unavailable("too many logins are being checked; try again shortly",
                      [(b"retry-after", b"5")])


def _known(identity: Identity | None) -> Identity:
    if identity is None:
        raise Unauthorized("wrong user name or password")
    return identity


@implementer(IReloadable)
class AccessPart(Service):
    """
    Who may do what, as a part of the daemon: the access gate and trusted
    publishing, built from the configuration. Nothing to start or stop;
    on C{SIGHUP} it takes the users, groups, admins, rules, token file and
    trusted publishers of the configuration read again.

    @ivar access: the L{Access} gate.
    @ivar publishing: the L{pypid.auth.oidc.TrustedPublishing}.
    """

    def __init__(self, config: Config, reactor: IReactorTime, hashing: ThreadPool,
                 audit: FailedLogins) -> None:
        """
        @param hashing: the thread pool passwords are checked in.
        @param audit: the L{pypid.web.audit_trail.AuditTrail} failed logins go to.
        @raise pypid.config.errors.StartupError: when the token file, or a
            bundle of C{[ldap]} or C{[oidc]}, cannot be used.
        """
        self._config = config
        self._reactor = reactor
        self._hashing = hashing
        parts = make_access_parts(config, reactor, hashing)
        self.publishing = make_publishing(config, reactor)
        # (the throttle is the daemon's: a reload keeps what it counted, and
        # [auth] throttle_ipv6_prefix is read at start-up)
        throttle = LoginThrottle(reactor, ipv6_prefix=config.auth.throttle_ipv6_prefix)
        self.access = Access(parts.model, parts.verifier, throttle, parts.tokens,
                             audit=audit, publishers=self.publishing.tokens)

    def prepare_reload(self, config: Config | None) -> Callable[[], str] | None:
        """
        Build what the configuration read again asks for (a token file or
        a bundle that cannot be used refuses the whole reload), then take
        it: the gate's verifier is new, so no credentials checked before
        are trusted any more; a change of the issuers, audience or rules
        revokes minted tokens.
        """
        if config is None:
            return None
        http = reloaded_oidc_http(self._config, config, self._reactor)
        # The token file is the daemon's own (written by each issue and
        # revocation, read at start-up): a reload keeps the book in memory
        # rather than read a file a change may be writing at this moment,
        # which brought revoked tokens back. A new path is read.
        kept = self.access.tokens if config.auth.tokens == self._config.auth.tokens else None
        parts = make_access_parts(config, self._reactor, self._hashing, kept)

        def commit() -> str:
            self._config = config
            self.access.reconfigure(parts.model, parts.verifier, parts.tokens)
            revoked = self.publishing.reconfigure(config.oidc.settings(config.publishers), http)
            return (f"{len(config.users)} users, {len(config.groups)} groups, "
                    f"{len(config.auth.admins)} admins, {len(config.acl)} rules, "
                    f"{len(config.publishers)} publishers"
                    + (f" ({revoked} publisher tokens revoked)" if revoked else ""))
        return commit


def _minted(identity: Identity) -> bool:
    """Whether C{identity} is a trusted publisher's, by a token trusted publishing minted."""
    return identity.token is not None and is_publisher(identity.name)
