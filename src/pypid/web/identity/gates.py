"""
Who may do what, applied to requests: the gates every route passes
through, joining who is asking (L{pypid.web.identity.identification}) to
what they may do (L{pypid.auth.reader}: one L{Reader} per request, kept on
it), and answering with the refusals HTTP clients see.

Reads are the hot path: when the policy lets everyone read, L{Gates.gate_read}
answers L{None} at once for a request without credentials, and no header
is even parsed. Credentials that are sent are checked, open index or not:
wrong ones get 401, so that pip or a CI job learns that its password or
token went bad rather than reading on as anonymous.
"""

from __future__ import annotations

import attrs
from twisted.internet.defer import Deferred, gatherResults
from twisted.web.iweb import IRequest

from pypid.auth.policy import AccessModel
from pypid.auth.publisher_tokens import PublisherTokens
from pypid.auth.reader import Reader, Rules
from pypid.auth.throttle import LoginThrottle
from pypid.auth.tokens import Token, TokenBook
from pypid.auth.verifier import Identity, PasswordVerifier
from pypid.core.access.outside_logins import OutsideLogins
from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.util.http_errors import Forbidden, NotFound, Unauthorized
from pypid.web.identity.browser_sessions import BrowserSessions
from pypid.web.identity.identification import FailedLogins, Identification
from pypid.web.identity.request_auth import IRequestAuth, identity_of, remember

#: What a change (an upload, a yank, a delete) answers without credentials.
UPLOAD_LOGIN = "authentication is required to upload"

#: What a person's own route (their tokens) answers without credentials.
PERSON_LOGIN = "authentication is required"

#: What a read answers without credentials, when they are needed.
READ_LOGIN = "authentication is required to read this index"

#: What a path no route takes answers; a hidden index's paths too.
NO_SUCH_PAGE = "no such page"


@attrs.define(init=False)
class Gates:
    """
    The gates: who is asking (its L{Identification}) and what they may do
    (its L{Rules}, taken whole again at each reload), made into one
    L{Reader} per request.
    """

    _identification: Identification
    _rules: Rules

    def __init__(self, model: AccessModel, verifier: PasswordVerifier,
                 throttle: LoginThrottle | None = None, tokens: TokenBook | None = None,
                 audit: FailedLogins | None = None,
                 publishers: PublisherTokens | None = None,
                 sessions: BrowserSessions | None = None,
                 outside: OutsideLogins | None = None) -> None:
        """
        The rules of C{model}; the other parameters are L{Identification}'s
        (C{sessions} L{None}: C{/login} has no form; C{outside}: by
        default, nobody).
        """
        self.__attrs_init__(Identification(verifier, throttle, tokens, audit, publishers,
                                           sessions, outside or OutsideLogins()),
                            Rules(model))

    @property
    def model(self) -> AccessModel:
        """The L{pypid.auth.policy.AccessModel} in force."""
        return self._rules.model

    @property
    def anonymous(self) -> Reader:
        """What a request without credentials may do, by the rules in force."""
        return self._rules.anonymous

    def reader(self, request: IRequest) -> Reader:
        """
        What the request's identity (as a gate verified it) may do: made
        once, by the rules in force then, and kept on the request (made
        again as a change commits: L{confirm}). Every route asks this,
        never the rules.
        """
        auth = IRequestAuth(request)
        reader = auth.reader
        if reader is None or reader.identity is not auth.identity:
            reader = auth.reader = self._rules.reader(auth.identity)
        return reader

    def identified_reader(self, request: IRequest) -> Deferred[Reader]:
        """
        The reader of whoever sent the request, their credentials checked
        here (wrong ones: L{Unauthorized}), where no gate checked them (who
        may scrape C{/metrics}; an admin's view of a quarantined project):
        not kept on the request, which goes on as its gate let it.
        """
        return self.identify(request).addCallback(self._rules.reader)

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
        """The browser sessions, or L{None}."""
        return self._identification.sessions

    @property
    def outside(self) -> OutsideLogins:
        """Who from outside (the directory, single sign-on) the configuration in force lets in."""
        return self._identification.outside

    def sync(self) -> Deferred[None]:
        """
        In a worker of a machine, before its next answer: take in the
        tokens, browser sessions and throttle counts another worker changed.
        """
        looks = [look.sync() for look in (self.tokens, self.sessions,
                                          self._identification.throttle) if look is not None]
        return gatherResults(looks).addCallback(lambda _: None)

    @property
    def verifier(self) -> PasswordVerifier:
        """The L{PasswordVerifier} of the users in force (L{reconfigure} replaces it)."""
        return self._identification.verifier

    @property
    def generation(self) -> int:
        """How many times the rules and users were reloaded (L{reconfigure})."""
        return self._identification.generation

    def reconfigure(self, model: AccessModel, verifier: PasswordVerifier,
                    tokens: TokenBook | None, outside: OutsideLogins | None = None) -> None:
        """
        Take a reloaded configuration's rules, users and tokens (C{SIGHUP}):
        no credentials checked before are trusted any more. Requests under
        way read with what they were given; a change under way is checked
        again as it commits (L{confirm}).
        """
        self._identification.reconfigure(verifier, tokens, outside)
        self._rules = Rules(model)

    def cache_key(self, request: IRequest,
                  ) -> tuple[str, str | None, frozenset[str]] | None:
        """What the project list a request sees depends on: its user, token and groups."""
        identity = identity_of(request)
        if identity is None:
            return None
        token: Token | None = identity.token
        return (identity.name, token.id if token is not None else None, identity.groups)

    # -- who is asking -------------------------------------------------------------

    def identify(self, request: IRequest, credentials: tuple[str, str] | None = None,
                 ) -> Deferred[Identity | None]:
        """Find who sent the request (L{Identification.identify})."""
        return self._identification.identify(request, credentials)

    async def confirm(self, request: IRequest, identity: Identity) -> Identity:
        """
        C{identity}, the request's, checked again as its change commits
        (L{Identification.confirm}), its reader made again by the rules in
        force now and kept on the request: the caller asks L{reader} then.
        """
        again = await self._identification.confirm(request, identity)
        return _kept(self._rules.reader(again), request)

    # -- the gates -----------------------------------------------------------------

    def gate_read(self, request: IRequest,
                  index: str = DEFAULT_INDEX) -> Deferred[Identity | None] | None:
        """
        L{None} when anyone may read C{index} whole and the request sends
        no credentials; otherwise a L{Deferred} of the request's identity,
        once its reader may enter C{index}: without credentials,
        L{Unauthorized} (a challenge: clients then send theirs); with
        credentials that may not, L{NotFound}, as a named index hidden from
        them answers (no challenge that good credentials cannot meet).
        """
        if self._rules.open(index) and not _sends_credentials(request):
            return None
        return self._identification.identify(request).addCallback(self._enter, request, index,
                                                                  False)

    def gate_anywhere(self, request: IRequest) -> Deferred[Identity | None] | None:
        """
        The gate of a path any index may answer (C{/packages/}): L{None}
        without credentials; otherwise a L{Deferred} of the identity, its
        reader kept on the request. The route asks each index
        L{Reader.enters}, and L{nothing_found} of what it found nowhere.
        """
        if not _sends_credentials(request):
            return None
        return self.identify(request).addCallback(
            lambda identity: keep(self._rules.reader(identity), request))

    def gate_index(self, request: IRequest,
                   index: str | None) -> Deferred[Identity | None] | None:
        """
        The gate of everything under C{/NAME/}: L{None} when anonymous
        clients may enter C{index} and the request sends no credentials;
        otherwise a L{Deferred} of the identity, failing with L{NotFound}
        when C{index} is L{None} (no such index) or its reader may not
        enter it, and with L{Unauthorized} for wrong credentials, or for
        none while some index is hidden from anonymous clients: a hidden
        index answers exactly as a missing one, to everyone.
        """
        if index is not None and self._rules.anyone_enters(index) \
                and not _sends_credentials(request):
            return None
        return self._identification.identify(request).addCallback(self._enter, request, index,
                                                                  True)

    def _enter(self, identity: Identity | None, request: IRequest, index: str | None,
               hidden_like_missing: bool) -> Identity | None:
        """C{identity}, its reader kept, when it may enter C{index}; else the refusal."""
        reader = self._rules.reader(identity)
        if index is None or not reader.enters(index):
            if identity is None and (not hidden_like_missing
                                     or self._rules.hidden_from_anonymous):
                raise Unauthorized(READ_LOGIN)
            raise NotFound(NO_SUCH_PAGE)
        return keep(reader, request)

    def log_in(self, request: IRequest) -> Deferred[Identity]:
        """
        The request's identity, or L{Unauthorized} (a Basic challenge)
        without one: a browser sends credentials only once asked.
        """
        return (self._identification.identify(request).addCallback(_logged_in)
                .addCallback(remember, request))

    def gate_upload(self, request: IRequest, credentials: tuple[str, str] | None = None,
                    needed: str = UPLOAD_LOGIN,
                    index: str | None = DEFAULT_INDEX) -> Deferred[Identity]:
        """
        The uploader's identity, its reader kept on the request, or
        L{Unauthorized} saying C{needed} (no credentials, or no C{upload}
        grant on C{index}).

        @param index: the index whose C{upload} grant decides; L{None} for
            none here: the caller asks the reader of the index it acts on
            (once its gate hid it from those who may not see it), so that
            each index's grant decides for that index alone.
        """
        # (what a change is checked against again as it commits: confirm;
        # [auth] upload is always "authenticated": no anonymous identity passes)
        return self._identification.identify_for_change(request, credentials).addCallback(
            self._may_upload, request, needed, index)

    def _may_upload(self, identity: Identity | None, request: IRequest, needed: str,
                    index: str | None) -> Identity:
        """C{identity}, its reader kept, when it may upload to C{index}, else L{Unauthorized}."""
        if identity is None:
            raise Unauthorized(needed)
        reader = self._rules.reader(identity)
        if index is not None and not reader.uploads_to(index):
            raise Unauthorized(needed)
        return _kept(reader, request)

    async def uploader(self, request: IRequest) -> Identity:
        """A user who may upload: with a password, or a token that may upload."""
        identity = await self.gate_upload(request)
        if not self.reader(request).uploads:
            raise Forbidden("this token may not upload")
        return identity

    async def person(self, request: IRequest, needed: str = PERSON_LOGIN,
                     not_for_tokens: str = "manages tokens") -> Identity:
        """
        A person, with a password (or, on the pages, a browser session):
        L{Unauthorized} saying C{needed} without credentials, L{Forbidden}
        for a token.
        """
        identity = await self.gate_upload(request, needed=needed, index=None)
        if not self.reader(request).is_person:
            raise Forbidden(f"a token never {not_for_tokens}: log in with a password")
        return identity

    async def admin(self, request: IRequest, needed: str = UPLOAD_LOGIN) -> Identity:
        """An admin (not a token), or L{Forbidden}; L{Unauthorized} saying C{needed}."""
        identity = await self.gate_upload(request, needed=needed, index=None)
        reader = self.reader(request)
        if not reader.is_admin:
            raise Forbidden(not_an_admin(reader))
        return identity


def _sends_credentials(request: IRequest) -> bool:
    """Whether C{request} has an C{Authorization} header (checked, if so, where none is needed)."""
    return request.requestHeaders.hasHeader(b"authorization")


def nothing_found(reader: Reader) -> NotFound | Unauthorized:
    """
    What a path any index may answer says of what it found in none the
    reader may enter: a challenge to an anonymous reader the default index
    is closed to, else L{NotFound}.
    """
    if reader.identity is None and not reader.enters(DEFAULT_INDEX):
        return Unauthorized(READ_LOGIN)
    return NotFound("no such file")


def keep(reader: Reader, request: IRequest) -> Identity | None:
    """Keep C{reader} (and its identity) on C{request}, for the checks that follow."""
    auth = IRequestAuth(request)
    auth.identity, auth.reader = reader.identity, reader
    return reader.identity


def _kept(reader: Reader, request: IRequest) -> Identity:
    """L{keep}, for a reader of someone (an upload's, a person's)."""
    identity = reader.identity
    assert identity is not None
    keep(reader, request)
    return identity


def not_an_admin(reader: Reader) -> str:
    """What one who is not an admin is told (a token, an admin's too: that tokens never are)."""
    identity = reader.identity
    if identity is None or not reader.is_person:
        return "a token never acts as an admin: log in with a password"
    return f"{identity.name} is not an admin (the admins are named in [auth] admins)"


def _logged_in(identity: Identity | None) -> Identity:
    if identity is None:
        raise Unauthorized("log in with your user name and password")
    return identity

