"""
Token administration over HTTP (admins only): issue, list and revoke the
API tokens that CI uses as the password of C{__token__}.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import attrs
from klein import Klein
from twisted.internet.defer import DeferredLock
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pypid.auth import tokens
from pypid.auth.verifier import Identity
from pypid.core.http_errors import BadRequest, Forbidden, NotFound, Unavailable
from pypid.core.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.units import parse_duration
from pypid.storage.interface import Run
from pypid.web.access import Access
from pypid.web.audit_trail import AuditTrail
from pypid.web.respond import RETRY_AFTER, send_text
from pypid.web.routes import answer_errors, form_field, send_json

log = Logger()


@attrs.define(slots=False)
class TokenAdmin:
    """
    The token routes.

    @ivar _access: the L{pypid.web.access.Access} gate, which holds the
        L{pypid.auth.tokens.TokenBook} (or L{None} when tokens are not used).
    @ivar _run: C{run(f, *args) -> Deferred} for the blocking file write.
    @ivar _audit: the L{pypid.web.audit_trail.AuditTrail} tokens issued and
        revoked are recorded in.
    """

    _access: Access
    _run: Run
    _audit: AuditTrail = attrs.field(kw_only=True)
    _writes: DeferredLock = attrs.field(init=False, factory=DeferredLock)

    app = Klein()
    answer_errors(app)

    @app.route("/api/tokens", methods=["POST"])
    def issue(self, request: IRequest) -> Coroutine[Any, Any, bytes]:
        """
        Issue a token (admins only). Form fields: C{actions} (C{read},
        C{upload}, or both, space-separated), C{projects} (names or globs,
        space-separated; none for all), C{indexes} (the indexes it may be
        used in, space-separated; none for all), C{expires} (a duration
        such as C{90d}; none for never), C{description}. Answers the token
        once.
        """
        return self._audit.recorded(request, "token-issued", self._issue(request))

    async def _issue(self, request: IRequest) -> bytes:
        identity = await self._access.admin(request)
        if not self._access.is_local_user(identity.name):
            # (a token acts for its issuer only while the issuer is a user of
            # [users]: a directory's cannot be checked without a password)
            raise Forbidden(f"{identity.name} logs in through the directory; tokens are "
                            "issued to users of [users] and the htpasswd file only")
        fields = {name: form_field(request, name)
                  for name in ("actions", "projects", "expires", "description", "indexes")}
        try:
            lifetime = parse_duration(fields["expires"]) if fields.get("expires") else None
            text, token = self._book().make(
                identity.name, fields.get("actions", "").split(),
                fields.get("projects", "").split(), lifetime, fields.get("description", ""),
                (fields.get("indexes") or "").split(),
                known_indexes={DEFAULT_INDEX, *self._access.model.indexes})
        except ValueError as e:
            raise BadRequest(str(e))
        identity = await self._confirmed(request, identity)
        await self._change(lambda kept: {**kept, token.id: token})
        scope = (f"{' '.join(sorted(token.actions))} on "
                 f"{' '.join(token.projects) or 'every project'}"
                 + (f" in {' '.join(token.indexes)}" if token.indexes else ""))
        self._audit.record(request, identity, "token-issued", target=token.id, detail=scope)
        log.info("{user} issued token {id} ({scope})", user=identity.name, id=token.id,
                 scope=scope)
        return send_json(request, dict(token.public(), token=text))

    @app.route("/api/tokens", methods=["GET"])
    async def listing(self, request: IRequest) -> bytes:
        """
        List the tokens, without their secrets (admins only): the file's,
        then the live tokens minted by trusted publishing (C{"minted": true}).
        """
        await self._access.admin(request)
        book, minted = self._access.tokens, self._access.publishers
        if book is None and minted is None:
            raise NotFound("tokens are not enabled")
        return send_json(request, {"tokens": (book.listing() if book is not None else [])
                                   + (minted.listing() if minted is not None else [])})

    @app.route("/api/tokens/<string:token_id>", methods=["DELETE"])
    def revoke(self, request: IRequest, token_id: str) -> Coroutine[Any, Any, bytes]:
        """Revoke a token at once (admins only)."""
        return self._audit.recorded(request, "token-revoked", self._revoke(request, token_id),
                                    target=token_id)

    async def _revoke(self, request: IRequest, token_id: str) -> bytes:
        identity = await self._confirmed(request, await self._access.admin(request))
        minted = self._access.publishers
        if minted is not None and minted.revoke(token_id):
            # (a minted token lives in memory only: nothing to write)
            self._audit.record(request, identity, "token-revoked", target=token_id)
            log.info("{user} revoked minted token {id}", user=identity.name, id=token_id)
            return send_text(request, 200, "OK: revoked")

        def without(kept: dict[str, tokens.Token]) -> dict[str, tokens.Token]:
            if token_id not in kept:
                raise NotFound(f"no such token: {token_id}")
            return {key: token for key, token in kept.items() if key != token_id}
        await self._change(without)
        self._audit.record(request, identity, "token-revoked", target=token_id)
        log.info("{user} revoked token {id}", user=identity.name, id=token_id)
        return send_text(request, 200, "OK: revoked")

    async def _confirmed(self, request: IRequest, identity: Identity) -> Identity:
        """
        The admin checked again as a change commits: one removed, or no
        longer an admin, by a reload that came while the password was
        checked changes nothing (L{pypid.web.access.Access.confirm}).
        """
        identity = await self._access.confirm(request, identity)
        if not self._access.is_admin(identity):
            raise Forbidden(f"{identity.name} is not an admin")
        return identity

    def _book(self) -> tokens.TokenBook:
        if self._access.tokens is None:
            raise NotFound("tokens are not enabled")
        return self._access.tokens

    async def _change(self, change: Callable[[dict[str, tokens.Token]],
                                             dict[str, tokens.Token]]) -> None:
        """
        Change the tokens: the file is written with the new state first,
        and the book takes it only once the file holds it, so what answers
        200 is on disk, and what answers 503 changed nothing (a retry finds
        the token as it was). One change at a time, each from the state the
        last one left.
        """
        book = self._book()
        await self._writes.acquire()
        try:
            changed = change(book.tokens)
            if book.path is not None:
                try:
                    await self._run(tokens.write_file, book.path, book.dumps(changed))
                except OSError as e:
                    log.error("Cannot keep the tokens in {path}: {error}", path=book.path,
                              error=e.strerror)
                    raise Unavailable("the tokens cannot be saved now",
                                      [(b"retry-after", RETRY_AFTER)])
            book.tokens = changed
        finally:
            self._writes.release()
