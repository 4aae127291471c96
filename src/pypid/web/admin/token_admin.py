"""
Tokens over HTTP: a person issues, lists and revokes their own API tokens
(the password of C{__token__} for pip, uv, twine and CI); an admin lists
and revokes everyone's, trusted publishing's live minted tokens among
them. A token never manages tokens.

A token is its person's, not its name's
(L{pypid.auth.tokens.TokenBook.belongs}): a user of C{[users]} or the
htpasswd file gets one that acts for their account while it stays (a name
removed and added again is a new account); a person from outside (the
directory, single sign-on) gets one that must expire within 90 days and
acts with the groups they had as they issued it, while the configuration
still lets their login in (L{pypid.core.access.outside_logins}).

The console's "My tokens" page (L{pypid.web.pages.console}) takes the same
paths, so what they refuse is refused alike.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import attrs
from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.auth import tokens
from pypid.auth.reader import Reader
from pypid.auth.verifier import Identity
from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import BadRequest, NotFound, Unavailable
from pypid.core.util.units import parse_duration
from pypid.jobs.run import Run
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail
from pypid.web.server.respond import RETRY_AFTER, send_text
from pypid.web.server.routes import answer_errors, form_field, send_json

log = Logger()


@attrs.define(slots=False)
class TokenAdmin:
    """
    The token routes.

    @ivar _access: the gates, which hold the L{pypid.auth.tokens.TokenBook}
        (L{None} when tokens are not used).
    @ivar _run: C{run(f, *args) -> Deferred} for the blocking file write.
    """

    _access: Gates
    _run: Run
    _audit: AuditTrail = attrs.field(kw_only=True)

    app = Klein()
    answer_errors(app)

    @app.route("/api/tokens", methods=["POST"])
    async def issue(self, request: IRequest) -> bytes:
        """
        Issue a token of one's own, answered once. Form fields, lists
        space-separated: C{actions} (C{read}, C{upload}), C{projects} (names
        or globs; none for all), C{indexes} (none for all), C{expires} (a
        duration such as C{90d}; none for never), C{description}.
        """
        text, token = await self.issue_token(request)
        return send_json(request, dict(token.public(), token=text))

    def issue_token(self, request: IRequest) -> Coroutine[Any, Any, tuple[str, tokens.Token]]:
        """Issue the request's person the token its form asks (audited, a refusal too)."""
        return self._audit.recorded(request, ChangeKind.TOKEN_ISSUED, self._issue(request))

    async def _issue(self, request: IRequest) -> tuple[str, tokens.Token]:
        identity = await self._access.person(request)
        fields = {name: form_field(request, name)
                  for name in ("actions", "projects", "expires", "description", "indexes")}
        login = identity.login
        try:
            lifetime = parse_duration(fields["expires"]) if fields["expires"] else None
            text, token = self._book().make(
                identity.name, fields["actions"].split(), fields["projects"].split(), lifetime,
                fields["description"], fields["indexes"].split(),
                known_indexes=self._shown_indexes(self._access.reader(request)), login=login)
        except ValueError as e:
            raise BadRequest(str(e))
        book = self._book()

        def add(kept: dict[str, tokens.Token], who: Identity) -> dict[str, tokens.Token]:
            nonlocal token
            # (whose it is, with the lock held: the account in force now)
            token = attrs.evolve(token, person=book.person_of(who.name, login))
            if book.count_of(who.name, login) >= tokens.MAX_PER_USER:
                raise BadRequest(f"{who.name} has {tokens.MAX_PER_USER} tokens, the most "
                                 "one keeps: revoke one first")
            return {**kept, token.id: token}
        identity = await self._change(request, identity, add)
        scope = (f"{' '.join(sorted(token.actions))} on "
                 f"{' '.join(token.projects) or 'every project'}"
                 + (f" in {' '.join(token.indexes)}" if token.indexes else ""))
        self._audit.record(request, identity, ChangeKind.TOKEN_ISSUED, target=token.id,
                           detail=scope)
        log.info("{user} issued token {id} ({scope})", user=identity.name, id=token.id,
                 scope=scope)
        return text, token

    def _shown_indexes(self, reader: Reader) -> set[str]:
        """The indexes C{reader} may see: those a token of theirs may be kept to."""
        return {name for name in (DEFAULT_INDEX, *self._access.model.indexes)
                if name == DEFAULT_INDEX or reader.enters(name)}

    @app.route("/api/tokens", methods=["GET"])
    async def listing(self, request: IRequest) -> bytes:
        """
        List tokens, without their secrets: one's own; an admin, every token
        of the file, then the live ones trusted publishing minted.
        """
        return send_json(request, {"tokens": await self.tokens_of(request)})

    async def tokens_of(self, request: IRequest) -> list[dict[str, Any]]:
        """The tokens the request's person may see (L{listing})."""
        identity = await self._access.person(request)
        book, minted = self._access.tokens, self._access.publishers
        if book is None and minted is None:
            raise NotFound("tokens are not enabled")
        if not self._access.reader(request).is_admin:
            return book.listing(identity.name, identity.login) if book is not None else []
        return ((book.listing() if book is not None else [])
                + (minted.listing() if minted is not None else []))

    @app.route("/api/tokens/<string:token_id>", methods=["DELETE"])
    async def revoke(self, request: IRequest, token_id: str) -> bytes:
        """Revoke a token of one's own at once (an admin: anyone's)."""
        await self.revoke_token(request, token_id)
        return send_text(request, 200, "OK: revoked")

    def revoke_token(self, request: IRequest, token_id: str) -> Coroutine[Any, Any, None]:
        """Revoke C{token_id} for the request's person (audited: C{token-revoked})."""
        return self._audit.recorded(request, ChangeKind.TOKEN_REVOKED,
                                    self._revoke(request, token_id), target=token_id)

    async def _revoke(self, request: IRequest, token_id: str) -> None:
        identity = await self._access.confirm(request, await self._access.person(request))
        minted = self._access.publishers
        if self._access.reader(request).is_admin and minted is not None \
                and minted.revoke(token_id):
            # (a minted token lives in memory only: nothing to write)
            self._audit.record(request, identity, ChangeKind.TOKEN_REVOKED, target=token_id)
            log.info("{user} revoked minted token {id}", user=identity.name, id=token_id)
            return

        def without(kept: dict[str, tokens.Token], who: Identity) -> dict[str, tokens.Token]:
            token = kept.get(token_id)
            if token is None or not self._access.reader(request).may_revoke(token, book):
                # (another's token is no business of a person's: as if none)
                raise NotFound(f"no such token: {token_id}")
            return {key: token for key, token in kept.items() if key != token_id}
        book = self._book()
        identity = await self._change(request, identity, without)
        self._audit.record(request, identity, ChangeKind.TOKEN_REVOKED, target=token_id)
        log.info("{user} revoked token {id}", user=identity.name, id=token_id)

    def _book(self) -> tokens.TokenBook:
        if self._access.tokens is None:
            raise NotFound("tokens are not enabled")
        return self._access.tokens

    async def _change(self, request: IRequest, identity: Identity,
                      change: Callable[[dict[str, tokens.Token], Identity],
                                       dict[str, tokens.Token]],
                      ) -> Identity:
        """
        Change the tokens by C{change(kept, identity)} for C{identity},
        confirmed again with the lock held (L{Gates.confirm}: a reload
        meanwhile may have removed the person or their admin rights); what
        answers 200 is on disk, what answers 503 changed nothing. The
        identity as confirmed.
        """
        book = self._book()

        async def still() -> None:
            nonlocal identity
            identity = await self._access.confirm(request, identity)
        try:
            await book.change(lambda kept: change(kept, identity), self._run, still)
        except OSError as e:
            log.error("Cannot keep the tokens in {path}: {error}", path=book.path,
                      error=e.strerror)
            raise Unavailable("the tokens cannot be saved now", [(b"retry-after", RETRY_AFTER)])
        return identity
