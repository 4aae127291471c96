"""
Who is asking: from a request's HTTP Basic credentials (a password, or a
token given as the password of C{__token__}) to L{pypid.auth.verifier}'s
verifier, the token book and trusted publishing's minted tokens, with the
login throttle and the audit log of failed logins on the way.

Only credentials that need a check of their own meet the login throttle:
those verified lately, and those identical to credentials being checked
(which share that check's result), pass straight to the verifier, so a burst
of the right password never throttles itself; a token is checked first (a
digest comparison) and only a wrong one meets it. The throttle counts the
client the site resolved (L{client_address}: behind a trusted proxy, the
client it names); see L{pypid.auth.throttle} for the whole rule.
"""

from __future__ import annotations

import math
from typing import Protocol

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from pypid.auth.basic import MalformedCredentials
from pypid.auth.publisher_tokens import PublisherTokens
from pypid.auth.throttle import LoginThrottle
from pypid.auth.tokens import TOKEN_USER, TokenBook, presented_id
from pypid.auth.verifier import Busy, DirectoryUnavailable, Identity, NameHeld, PasswordVerifier
from pypid.core.access.outside_logins import DIRECTORY, PASSWORD, LoginSource, OutsideLogins
from pypid.core.access.sessions import Session
from pypid.core.util.http_errors import Forbidden, TooManyRequests, Unauthorized, Unavailable
from pypid.web.identity.browser_sessions import BrowserSessions
from pypid.web.identity.request_auth import (
    IRequestAuth,
    client_address,
    remember,
    request_credentials,
)

log = Logger()

#: What a change answers whose credentials were revoked, or whose user was
#: removed, while it was under way (L{Identification.confirm}).
REVOKED = ("these credentials were revoked, or their user removed or changed, while the "
           "request was under way")

#: Characters of a token's id the throttle counts it by: more than an id
#: has (8), so that made-up ids cannot make its keys large.
_TOKEN_ID_KEPT = 16


class FailedLogins(Protocol):
    """Where failed and throttled logins are recorded (L{pypid.web.server.audit_trail})."""

    def login_failed(self, user: str | None, address: str | None, token: str | None = None,
                     throttled: bool = False) -> None:
        """Record a failed (or throttled) login."""


@attrs.define
class Identification:
    """
    Who sent a request: its credentials checked (throttled, and recorded
    when they fail), and checked again as a change commits.
    """

    #: the verifier of the configuration in force (L{reconfigure} replaces it)
    verifier: PasswordVerifier
    throttle: LoginThrottle | None = None
    #: L{None} when tokens are not used
    tokens: TokenBook | None = None
    _audit: FailedLogins | None = None
    publishers: PublisherTokens | None = None
    sessions: BrowserSessions | None = None
    #: who from outside (the directory, single sign-on) the configuration
    #: lets in: their tokens act for them only while it does
    outside: OutsideLogins = attrs.field(factory=OutsideLogins)
    #: how many times the users and tokens were reloaded (L{reconfigure}):
    #: a change whose credentials were checked before a reload has them
    #: checked again as it commits (L{confirm})
    generation: int = attrs.field(init=False, default=0)
    #: what each session's source was found to vouch for (L{_vouched}), by
    #: its digest, for the users and rules in force: emptied by a reload
    _vouching: dict[str, tuple[str, frozenset[str], Identity]] = attrs.field(
        init=False, factory=dict)

    def reconfigure(self, verifier: PasswordVerifier, tokens: TokenBook | None,
                    outside: OutsideLogins | None = None) -> None:
        """
        Take a reloaded configuration's users and tokens (and who from
        outside it lets in): no credentials checked before are trusted any
        more, and a change under way is checked again as it commits
        (L{confirm}).
        """
        self.generation += 1
        self._vouching = {}
        reset = verifier.passwords_set_since(self.verifier)
        # (a password an admin set again works at once: the lock-out the
        # forgotten one earned is not the new one's)
        forgiven = self.throttle.forgive(reset) if self.throttle is not None else []
        if forgiven:
            log.info("Failed logins forgotten for {users}: their password was set again",
                     users=", ".join(forgiven))
        self.verifier = verifier
        self.tokens = tokens
        if outside is not None:
            self.outside = outside

    def identify(self, request: IRequest, credentials: tuple[str, str] | None = None,
                 ) -> Deferred[Identity | None]:
        """
        Who sent the request (L{None}: anonymous), from C{credentials}
        already parsed if given; L{Unauthorized} for malformed or wrong ones.
        """
        if credentials is None:
            try:
                credentials = request_credentials(request)
            except MalformedCredentials as e:
                return fail(Unauthorized(f"Authorization: {e}"))
            if credentials is None:
                return self._session_identity(request)
        user, password = credentials
        throttle = self.throttle
        if throttle is not None and user == TOKEN_USER:
            return self._identify_token(request, password, throttle)
        if throttle is None or not self.verifier.needs_new_check(user, password):
            # Verified lately, or the very same credentials are being checked
            # (a burst of the right password): join, with no throttle
            # accounting, so such a burst is never held back by itself.
            return self._checked(self._authenticate(user, password), request, user, password)
        address = client_address(request)
        key, guessable = _throttle_key(user, password)
        wait = throttle.reserve(key, address, guessable)
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
        return self._checked(self._authenticate(user, password).addBoth(checked), request,
                             user, password)

    def _checked(self, d: Deferred[Identity | None], request: IRequest, user: str,
                 password: str) -> Deferred[Identity | None]:
        """C{d}, a check's result, its failure recorded and answered."""
        d.addCallback(self._audit_failure, request, user, password)
        d.addCallbacks(_known, _busy)
        return d

    def _session_identity(self, request: IRequest) -> Deferred[Identity | None]:
        """
        Who the browser session of a request with no credentials stands
        for, on the pages for people and their forms only (L{for_people});
        L{None} without one. A directory user's groups are read again once
        the directory's C{cache_ttl} passed, as for a password.
        """
        sessions = self.sessions
        if sessions is None:
            return succeed(None)
        auth = IRequestAuth(request)
        if not auth.for_people:
            return succeed(None)
        found = sessions.of(request)
        if found is None:
            return succeed(None)
        digest, session = found
        identity = self._vouched(sessions, digest, session)
        if identity is None:
            # (its source no longer vouches for its person: a reload or a
            # start-up ends such sessions; every use checks all the same)
            sessions.end(digest)
            return succeed(None)
        auth.session = digest
        if session.source == DIRECTORY:
            ttl = self.verifier.directory_ttl
            now = sessions.now()
            if ttl is not None and now - session.groups_read >= ttl:
                return Deferred.fromCoroutine(
                    self._regrouped(digest, session, identity.login, now))
        return succeed(identity)

    def _vouched(self, sessions: BrowserSessions, digest: str,
                 session: Session) -> Identity | None:
        """
        Who C{session} stands for, with where they logged in, while its
        source still vouches for them
        (L{pypid.core.access.sessions.SessionBook.login_of}); worked out once
        per session and configuration, so a page costs a dictionary lookup.
        """
        known = self._vouching.get(digest)
        # (a session is a new value at each use, its time of use changed; its
        # stamp and groups are what its source vouched for)
        if known is not None and known[0] == session.stamp and known[1] == session.groups:
            return known[2]
        login = sessions.book.login_of(session, self.verifier.stored(session.user),
                                       self.outside)
        if login is None:
            return None
        identity = Identity(session.user, groups=session.groups, login=login)
        if len(self._vouching) > 2 * len(sessions.book.sessions) + 64:
            self._vouching = {}     # (those of sessions ended since)
        self._vouching[digest] = (session.stamp, session.groups, identity)
        return identity

    async def _regrouped(self, digest: str, session: Session, login: LoginSource,
                         now: float) -> Identity | None:
        """
        A directory user's session with their groups read again: ended when
        the directory has no such user any more; with no directory group
        while it cannot be asked (fail closed), asked again at the next page.
        """
        sessions = self.sessions
        assert sessions is not None
        try:
            groups = await self.verifier.directory_groups(session.user)
        except DirectoryUnavailable:
            # (the directory logged why; asked again at the next page)
            return Identity(session.user, login=attrs.evolve(login, groups=frozenset()))
        if groups is None:
            sessions.revoke(lambda kept: kept.user == session.user
                            and kept.source == DIRECTORY)
            log.info("{user} is no longer a user of the directory: their sessions ended",
                     user=session.user)
            return None
        regrouped = sessions.regroup(digest, groups, now)
        if regrouped is None:
            return None
        return Identity(session.user, groups=regrouped.groups,
                        login=attrs.evolve(login, groups=regrouped.groups))

    def identify_for_change(self, request: IRequest,
                            credentials: tuple[str, str] | None = None,
                            ) -> Deferred[Identity | None]:
        """
        L{identify}, for a request that changes something: the generation
        its check began in is kept on the request, for L{confirm}.
        """
        IRequestAuth(request).generation = self.generation
        return self.identify(request, credentials)

    async def confirm(self, request: IRequest, identity: Identity) -> Identity:
        """
        C{identity}, the request's, checked again as its change commits: no
        change is made by credentials revoked, or a user removed, while it
        was under way (its body arriving, its password hashed, its lock
        awaited); L{Unauthorized} then, L{Unavailable} when they cannot be
        checked now. A token is checked again every time (a digest
        comparison, and the only way to see a revocation); a password only
        when a reload came since its check began (one more hash, rarely).
        The caller then applies the rules in force now to the identity.
        """
        auth = IRequestAuth(request)
        if auth.session is not None:
            # (a browser session holds while it is open: a reload that
            # removed its user ended it, L{pypid.web.identity.identity_part})
            if self.sessions is None or not self.sessions.is_open(auth.session):
                raise Unauthorized(REVOKED)
            auth.generation = self.generation
            return identity
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
        return remember(again, request)

    def _identify_token(self, request: IRequest, password: str,
                        throttle: LoginThrottle) -> Deferred[Identity | None]:
        """
        A token is checked first (a digest comparison), so a right one is
        never held back by what others tried from its address
        (L{pypid.auth.throttle}, rule 1); a wrong one meets the throttle.
        """
        identity = self._token_identity(password)
        if identity is not None:
            return succeed(identity)
        address = client_address(request)
        key, guessable = _throttle_key(TOKEN_USER, password)
        wait = throttle.reserve(key, address, guessable)
        if wait:
            return fail(self._throttled(request, TOKEN_USER, password, wait))
        throttle.failed(key, address, guessable)
        self._audit_failure(None, request, TOKEN_USER, password)
        return fail(Unauthorized("wrong user name or password"))

    def _throttled(self, request: IRequest, user: str, password: str,
                   wait: float) -> TooManyRequests:
        """
        The C{429} of a login the throttle holds back, audited: the same
        answer for a name the server knows and one it does not
        (L{pypid.auth.throttle}, rule 5).
        """
        self._audit_failure(None, request, user, password, throttled=True)
        who = "this token" if user == TOKEN_USER else repr(user)
        return TooManyRequests(
            f"too many failed or unfinished logins for {who}; try again later",
            [(b"retry-after", b"%d" % math.ceil(wait))])

    def _audit_failure(self, identity: Identity | None, request: IRequest, user: str | None,
                       password: str, throttled: bool = False) -> Identity | None:
        """
        Audit a failed (C{identity} L{None}) or throttled login: the user
        name only when it is a user's (people type passwords into the user
        field), the token id only when it is a token's.
        """
        if identity is None and self._audit is not None:
            token = None
            if user == TOKEN_USER:
                token = self.tokens.issued(password) if self.tokens is not None else None
            elif user is None or not self.verifier.knows(user):
                user = None
            self._audit.login_failed(user, client_address(request), token, throttled)
        return identity

    def _authenticate(self, user: str, password: str) -> Deferred[Identity | None]:
        """Check a password, or a token given as the password of C{__token__}."""
        if user == TOKEN_USER:
            return succeed(self._token_identity(password))
        return self.verifier.authenticate(user, password)

    def _token_identity(self, password: str) -> Identity | None:
        """Who a token (the password of C{__token__}) acts for, or L{None}."""
        token = self.tokens.verify(password) if self.tokens is not None else None
        # (a user's token acts while they are a user; an outside person's,
        # with the groups they had, while the configuration still lets
        # their login in and no local user took their name)
        if token is not None:
            if token.source == PASSWORD:
                if self.verifier.knows(token.user):
                    return Identity(token.user, token)
            elif not self.verifier.knows(token.user) and self.outside.admits(
                    token.source, token.user, token.groups, token.provider):
                groups = frozenset(token.groups)
                return Identity(token.user, token, groups=groups,
                                login=LoginSource(token.source, groups, token.provider,
                                                  token.person))
        minted = self.publishers.verify(password) if self.publishers is not None else None
        return Identity(minted.user, minted) if minted is not None else None


def _throttle_key(user: str, password: str) -> tuple[str, bool]:
    """
    C{(key, guessable)}: what an attempt is throttled as
    (L{pypid.auth.throttle}, rules 5 and 6): a token by its id, issued or
    not (so the answers tell nothing), not across clients (its secret
    cannot be guessed); a password by its user name, across clients too.
    """
    if user == TOKEN_USER:
        return f"{TOKEN_USER}:{presented_id(password)[:_TOKEN_ID_KEPT]}", False
    return user, True


def _busy(failure: Failure) -> None:
    if failure.check(NameHeld):
        raise Forbidden(str(failure.value))
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
