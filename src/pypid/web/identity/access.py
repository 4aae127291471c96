"""
Who may do what, applied to requests: the gates every route passes
through, joining who is asking (L{pypid.web.identity.identification}: credentials,
tokens, the login throttle) to what they may do (L{pypid.web.identity.permissions}:
rules and grants), and answering with the refusals HTTP clients see.

Reads are the hot path: when the policy lets everyone read, L{Access.gate_read}
answers L{None} at once and no header is even parsed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import attrs
from twisted.internet.defer import Deferred
from twisted.web.iweb import IRequest

from pypid.auth.policy import AccessModel
from pypid.auth.publisher_tokens import PublisherTokens
from pypid.auth.throttle import LoginThrottle
from pypid.auth.tokens import Token, TokenBook
from pypid.auth.verifier import Identity, PasswordVerifier
from pypid.core.access.access_rules import WRITE
from pypid.core.access.outside_logins import OutsideLogins
from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.indexes.namespaces import Grant, refusal
from pypid.core.util.http_errors import Forbidden, NotFound, Unauthorized
from pypid.web.identity.browser_sessions import BrowserSessions
from pypid.web.identity.identification import FailedLogins, Identification
from pypid.web.identity.permissions import Permissions
from pypid.web.identity.request_auth import identity_of, remember

#: What a change (an upload, a yank, a delete) answers without credentials.
UPLOAD_LOGIN = "authentication is required to upload"

#: What a person's own route (their tokens) answers without credentials.
PERSON_LOGIN = "authentication is required"

#: What a read answers without credentials, when they are needed.
READ_LOGIN = "authentication is required to read this index"

#: What a path no route takes answers; a hidden index's paths too.
NO_SUCH_PAGE = "no such page"


@attrs.define(init=False)
class Access:
    """
    The gates: who is asking (its L{Identification}) and what they may do
    (its L{Permissions}, taken whole again at each reload), asked for a
    request.
    """

    _identification: Identification
    _permissions: Permissions

    def __init__(self, model: AccessModel, verifier: PasswordVerifier,
                 throttle: LoginThrottle | None = None, tokens: TokenBook | None = None,
                 audit: FailedLogins | None = None,
                 publishers: PublisherTokens | None = None,
                 sessions: BrowserSessions | None = None,
                 outside: OutsideLogins | None = None) -> None:
        """
        @param model: the L{pypid.auth.policy.AccessModel}.
        @param throttle: the L{pypid.auth.throttle.LoginThrottle}, or L{None}.
        @param tokens: the L{pypid.auth.tokens.TokenBook}, or L{None} when
            tokens are not used.
        @param audit: the L{pypid.web.server.audit_trail.AuditTrail} that failed
            and throttled logins are recorded in, or L{None}.
        @param publishers: the L{pypid.auth.publisher_tokens.PublisherTokens} trusted
            publishing minted, or L{None}.
        @param sessions: the L{BrowserSessions} of people logged in through
            the pages' form, or L{None} (C{/login} then has no form).
        @param outside: who from outside (the directory, single sign-on)
            the configuration lets in; by default, nobody.
        """
        self.__attrs_init__(Identification(verifier, throttle, tokens, audit, publishers,
                                           sessions, outside or OutsideLogins()),
                            Permissions.of(model))

    @property
    def model(self) -> AccessModel:
        """The L{pypid.auth.policy.AccessModel} in force."""
        return self._permissions.model

    @property
    def permissions(self) -> Permissions:
        """
        What an identity may do, by the rules in force: asked afresh each
        time, never kept, as a reload replaces it.
        """
        return self._permissions

    @property
    def tokens(self) -> TokenBook | None:
        """The L{pypid.auth.tokens.TokenBook}, or L{None} when tokens are not used."""
        return self._identification.tokens

    @property
    def publishers(self) -> PublisherTokens | None:
        """The L{PublisherTokens} trusted publishing minted, or L{None}."""
        return self._identification.publishers

    @property
    def sessions(self) -> BrowserSessions | None:
        """The L{BrowserSessions}, or L{None}."""
        return self._identification.sessions

    @property
    def outside(self) -> OutsideLogins:
        """Who from outside (the directory, single sign-on) the configuration in force lets in."""
        return self._identification.outside

    def directory_knows(self, user: str) -> Deferred[bool]:
        """
        Whether the directory has a user of the name C{user}
        (L{pypid.auth.verifier.PasswordVerifier.directory_knows}).
        """
        return self._identification.directory_knows(user)

    @property
    def generation(self) -> int:
        """How many times the rules and users were reloaded (L{reconfigure})."""
        return self._identification.generation

    def reconfigure(self, model: AccessModel, verifier: PasswordVerifier,
                    tokens: TokenBook | None, outside: OutsideLogins | None = None) -> None:
        """
        Take a reloaded configuration's rules, users and tokens (C{SIGHUP}).
        The verifier is new, so no credentials checked before are trusted
        any more: a removed user, or a changed password, is refused at
        once. Requests under way read with what they were given; a change
        under way is checked again as it commits (L{confirm}).
        """
        self._identification.reconfigure(verifier, tokens, outside)
        self._permissions = Permissions.of(model)

    # -- per project ---------------------------------------------------------------

    @staticmethod
    def user(request: IRequest) -> str | None:
        """The name the request was authenticated as (by a gate), or L{None}."""
        identity = identity_of(request)
        return identity.name if identity is not None else None

    def may_read(self, request: IRequest, project: str, index: str = DEFAULT_INDEX) -> bool:
        """Whether the request may see C{project} of C{index} (others answer 404)."""
        permissions = self._permissions
        if permissions.open(index):
            return True
        return permissions.may_read(identity_of(request), project, index)

    def anyone_may_read(self, project: str, index: str = DEFAULT_INDEX) -> bool:
        """Whether a request without credentials may see C{project} of C{index}."""
        permissions = self._permissions
        if permissions.open(index):
            return True
        return permissions.may_read(None, project, index)

    def owns(self, identity: Identity, project: str, index: str) -> bool:
        """
        Whether C{identity} has an owner's rights on C{project} of C{index}:
        the index is one of the server's that they may enter, and they may
        both see and change the project there. What reading a project's own
        records (its audit trail, its downloads) asks: an index that does not
        exist and one hidden from them answer alike.
        """
        if index != DEFAULT_INDEX and index not in self.model.indexes:
            return False
        permissions = self._permissions
        return (permissions.index_shown(identity, index)
                and permissions.may_read(identity, project, index)
                and self.may_write(identity, project, index))

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
        return self._permissions.may_write(identity, project, index)

    def namespace_refusal(self, identity: Identity, project: str,
                          index: str = DEFAULT_INDEX) -> Grant | None:
        """
        The grant (PEP 752) whose namespace the normalized
        C{project} falls in and which C{identity} owns no part of, or
        L{None}: whether they may create the project in C{index}.
        """
        model = self.model
        grants = model.namespaces.matching(project, index)
        if not grants:
            return None
        return refusal(grants, model.principals(identity.name, identity.groups),
                       self.is_admin(identity))

    def grant_reader(self, identity: Identity | None) -> Callable[[Grant], bool]:
        """
        C{sees(grant)}: whether C{identity} (L{None}: anonymous) sees a
        hidden namespace grant and its owners (PEP 752's C{owner}): the
        grant's owners and the admins do.
        """
        if identity is None:
            return _nobody
        if self.is_admin(identity):
            return _anybody
        held = frozenset(self.model.principals(identity.name, identity.groups))
        return lambda grant: bool(grant.owners & held)

    def reads_everything(self, request: IRequest, index: str = DEFAULT_INDEX) -> bool:
        """Whether the request may see every project of C{index} (pages need no filtering)."""
        permissions = self._permissions
        if permissions.open(index):
            return True
        return permissions.reads_everything(identity_of(request), index)

    def anyone_reads_everything(self, index: str = DEFAULT_INDEX) -> bool:
        """Whether a request without credentials may see every project of C{index}."""
        return self._permissions.reads_everything(None, index)

    def is_local_user(self, name: str) -> bool:
        """Whether C{name} is a user of C{[users]} or the htpasswd file (not the directory's)."""
        return self._identification.knows(name)

    def stored_password(self, name: str) -> str | None:
        """The hash a local user's password is checked against, or L{None}."""
        return self._identification.stored(name)

    def is_admin(self, identity: Identity | None) -> bool:
        """Whether C{identity} is an admin (with a password: tokens never are)."""
        return self._permissions.is_admin(identity)

    # -- who is asking -------------------------------------------------------------

    def identify(self, request: IRequest, credentials: tuple[str, str] | None = None,
                 ) -> Deferred[Identity | None]:
        """
        Find who sent the request (L{Identification.identify}).

        @param credentials: C{(user, password)} already parsed, if any.
        @return: L{Deferred} firing with an L{pypid.auth.verifier.Identity}, or L{None}
            for an anonymous request; failing with L{Unauthorized} for
            malformed or wrong credentials.
        """
        return self._identification.identify(request, credentials)

    async def confirm(self, request: IRequest, identity: Identity) -> Identity:
        """
        C{identity}, the request's, checked again as its change commits
        (L{Identification.confirm}); the caller then applies the rules in
        force now to the identity returned.

        @raise Unauthorized: the credentials no longer hold.
        @raise Unavailable: they cannot be checked now.
        """
        return await self._identification.confirm(request, identity)

    # -- the gates -----------------------------------------------------------------

    def reads_openly(self, index: str = DEFAULT_INDEX) -> bool:
        """Whether anyone may read C{index}, without credentials (its read gate is open)."""
        permissions = self._permissions
        return permissions.open_reads if index == DEFAULT_INDEX else permissions.open(index)

    def enters_openly(self, index: str) -> bool:
        """Whether anyone may enter the named C{index} without credentials (L{gate_index})."""
        return self._permissions.anyone_enters(index)

    def gate_read(self, request: IRequest,
                  index: str = DEFAULT_INDEX) -> Deferred[Identity | None] | None:
        """
        L{None} when anyone may read C{index}; otherwise a L{Deferred} that
        fails with L{Unauthorized} unless the request carries valid
        credentials.
        """
        if self.reads_openly(index):
            return None
        d = self._identification.identify(request)
        d.addCallback(self._may_read_index, index)
        d.addCallback(remember, request)
        return d

    def _may_read_index(self, identity: Identity | None, index: str) -> Identity | None:
        """
        C{identity} if it may read C{index} at all. Without credentials,
        L{Unauthorized} (a challenge: clients then send theirs); with
        credentials that may not read it (no read grant, or a token kept to
        other indexes), L{NotFound}, as a named index hidden from them
        answers: no challenge that good credentials cannot meet.
        """
        if not self._permissions.may_read_index(identity, index):
            if identity is None:
                raise Unauthorized(READ_LOGIN)
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
        if index is not None and self._permissions.anyone_enters(index):
            return None
        d = self._identification.identify(request)
        d.addCallback(self._enter, index)
        d.addCallback(remember, request)
        return d

    def _enter(self, identity: Identity | None, index: str | None) -> Identity | None:
        permissions = self._permissions
        if identity is None:
            if permissions.hidden_from_anonymous:
                raise Unauthorized(READ_LOGIN)
            raise NotFound(NO_SUCH_PAGE)
        if index is None or not permissions.index_shown(identity, index):
            raise NotFound(NO_SUCH_PAGE)
        return identity

    def log_in(self, request: IRequest) -> Deferred[Identity]:
        """
        A L{Deferred} firing with the request's identity, or failing with
        L{Unauthorized} (and so a Basic challenge) when it carries none: a
        browser, which sends credentials only once asked, is asked here.
        """
        return (self._identification.identify(request).addCallback(_logged_in)
                .addCallback(remember, request))

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
            for that index alone.
        """
        # (what a change is checked against again as it commits: confirm)
        d = self._identification.identify_for_change(request, credentials)
        if index is None:
            d.addCallback(_authenticated, needed)
        else:
            d.addCallback(self._may_upload, needed, index)
        d.addCallback(remember, request)
        # ([auth] upload is always "authenticated": no anonymous identity passes)
        return cast("Deferred[Identity]", d)

    async def uploader(self, request: IRequest) -> Identity:
        """A user who may upload: with a password, or a token that may upload."""
        identity = await self.gate_upload(request)
        token: Token | None = identity.token
        if token is not None and "upload" not in token.actions:
            raise Forbidden("this token may not upload")
        return identity

    async def person(self, request: IRequest, needed: str = PERSON_LOGIN,
                     not_for_tokens: str = "manages tokens") -> Identity:
        """
        A person, with a password (or, on the pages, a browser session):
        L{Unauthorized} saying C{needed} without credentials, L{Forbidden}
        for a token (a token never C{not_for_tokens}).
        """
        identity = await self.gate_upload(request, needed=needed, index=None)
        if identity.token is not None:
            raise Forbidden(f"a token never {not_for_tokens}: log in with a password")
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
            raise Forbidden(not_an_admin(identity.name))
        return identity

    def _may_upload(self, identity: Identity | None, message: str,
                    index: str) -> Identity | None:
        """C{identity} if it has C{index}'s C{upload} grant, else L{Unauthorized}."""
        if not self._permissions.model.may_enter(identity, WRITE, index):
            raise Unauthorized(message)
        return identity


def may_not_upload(identity: Identity, where: str, project: str | None = None,
                   index: str | None = None) -> str:
    """
    Why C{identity} may not upload to C{where} (a project, or an index):
    blaming the token when its scope is what refuses (not the user, who
    may), else the user.
    """
    token: Token | None = identity.token
    if token is not None and not token.covers("upload", project, index):
        scope = (" ".join(token.projects) if token.projects and project is not None
                 else " ".join(token.indexes) if token.indexes else "")
        kept = f" (it is kept to {scope})" if scope else ""
        return f"token {token.id} may not upload to {where}{kept}"
    return f"{identity.name} may not upload to {where}"


def not_an_admin(name: str) -> str:
    """What a person who is not an admin is told, and how one becomes an admin."""
    return f"{name} is not an admin (the admins are named in [auth] admins)"


def _authenticated(identity: Identity | None, needed: str) -> Identity:
    """C{identity}, or L{Unauthorized} saying C{needed} for an anonymous request."""
    if identity is None:
        raise Unauthorized(needed)
    return identity


def _logged_in(identity: Identity | None) -> Identity:
    if identity is None:
        raise Unauthorized("log in with your user name and password")
    return identity


def _nobody(grant: Grant) -> bool:
    return False


def _anybody(grant: Grant) -> bool:
    return True
