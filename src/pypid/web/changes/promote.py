"""
Promotion: C{POST /api/promote} brings a release from one hosted index to
another without its bytes going through pypid (devpi's C{push}).
docs/http-api.rst gives its checks, whose order fixes the status. A file
the target holds with the same bytes is skipped: it may be run again.

This module asks who may promote (the rights in both indexes, asked again
under the locks with the credentials as they are then; an admin's
C{allow_denied} over the advisories, which each file's audit entry
records) and answers; the rules of the indexes' state and the copy, all
or nothing, are L{pypid.state.promoter}'s. A delete of the release in the
source takes the lock in turn: first, nothing is promoted (404); after,
it takes the source's copy only. Each promoted file is one C{promote}
audit entry; docs/performance.rst has the timing.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.web.iweb import IRequest

from pypid.auth.reader import Reader
from pypid.auth.verifier import Identity
from pypid.core.dists.names import InvalidName, canonical_version, is_valid_name, normalize
from pypid.core.formats.admin_answers import Promoted
from pypid.core.indexes.index_names import DEFAULT as DEFAULT_INDEX
from pypid.core.records.change_kinds import ChangeKind
from pypid.core.util.http_errors import (
    BadRequest,
    Conflict,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    TooLarge,
)
from pypid.state.hosted_stack import HostedStack
from pypid.state.indexes import IndexRegistry
from pypid.state.promoter import (
    Promoter,
    PromotionRefused,
    key_of,
    locks_of,
    refuse_tags,
    release_of,
    under_locks,
)
from pypid.storage.base.interface import StorageError
from pypid.web.changes.change_checks import ChangeChecks
from pypid.web.identity.gates import Gates
from pypid.web.server.audit_trail import AuditTrail, Facts, facts_of
from pypid.web.server.respond import storage_unavailable
from pypid.web.server.routes import answer_errors, bounded_body, is_form, send_json

log = Logger()

#: What C{POST /api/promote} answers without credentials.
PROMOTE_LOGIN = "authentication is required to promote"

#: The largest request body: four short names.
MAX_BODY = 16 << 10

#: What C{allow_denied} from someone who is no admin answers (403).
NOT_ADMIN = "allow_denied: only an admin may promote a release the advisories deny"

#: The fields of a promotion's body, the optional one last.
FIELDS = ("from", "to", "project", "version", "allow_denied")


@attrs.frozen
class PromoteRequest:
    """What a promotion asks: the release C{project} C{version}, from one index to another."""

    source: str
    target: str
    project: str
    version: str
    allow_denied: bool = False


@attrs.define(slots=False)
class Promote:
    """C{POST /api/promote}; see the module."""

    _registry: IndexRegistry
    _access: Gates
    _audit: AuditTrail = attrs.field(kw_only=True)
    _clock: IReactorTime = attrs.field(kw_only=True)
    _promoter: Promoter = attrs.field(init=False)

    @_promoter.default
    def _promoter_of_registry(self) -> Promoter:
        return Promoter(self._registry, self._clock)

    app = Klein()
    answer_errors(app)

    @app.route("/api/promote", methods=["POST"])
    async def promote(self, request: IRequest) -> bytes:
        """
        Promote a release (JSON C{from}, C{to}, C{project}, C{version});
        answers JSON with the filenames C{promoted} and C{skipped}.
        """
        # (the grant that decides is the target index's: _promote)
        identity = await self._access.gate_upload(request, needed=PROMOTE_LOGIN, index=None)
        return send_json(request, await self.promote_as(
            request, identity, lambda: _asked(request), _asked_quietly(request)))

    def promote_as(self, request: IRequest, identity: Identity,
                   asked: Callable[[], PromoteRequest],
                   named: Mapping[str, object]) -> Awaitable[Promoted]:
        """
        Promote the release C{asked()} names, for C{identity}; each refusal,
        that of C{asked()} too, audited with what C{named} says.
        """
        known = self._registry.orders
        source = named.get("from")
        return self._audit.recorded(
            request, ChangeKind.PROMOTE, self._promote(request, identity, asked), identity=identity,
            index=_entry_index(named.get("to"), known),
            target=source if isinstance(source, str) and source in known else None,
            project=_text(named.get("project")), version=_text(named.get("version")))

    def targets(self, reader: Reader, source: str) -> list[str]:
        """
        The hosted indexes, other than C{source}, that C{reader} sees and
        may upload to: where the console offers to promote a release to.
        """
        return [name for name in self._registry.orders
                if name != source and name in self._registry.stacks
                and reader.enters(name) and reader.uploads_to(name)]

    async def _promote(self, request: IRequest, identity: Identity,
                       ask: Callable[[], PromoteRequest]) -> Promoted:
        asked = ask()
        source_name, target_name = asked.source, asked.target
        reader = self._access.reader(request)
        for field, name in (("from", source_name), ("to", target_name)):
            if name not in self._registry.orders or not reader.enters(name):
                raise NotFound(f"{field}: no such index: {name}")
        target = self._registry.stacks.get(target_name)
        if target is None:
            raise MethodNotAllowed(f"to: {target_name} is a view: it takes no files")
        if source_name == target_name:
            raise BadRequest(f"to: the release is in {source_name} already")
        project = normalize(asked.project)
        ChangeChecks.may_change_files(reader)
        if not reader.reads(project, source_name):
            raise Forbidden(f"{identity.name} may not read {project} in {source_name}")
        if not (reader.uploads_to(target_name) and reader.writes(project, target_name)):
            raise Forbidden(f"{identity.name} may not upload {project} to {target_name}")
        if asked.allow_denied and not reader.is_admin:
            raise Forbidden(NOT_ADMIN)
        version = asked.version
        source = self._registry.stacks.get(source_name)
        records = release_of(source, project, version)
        if not records:
            raise NotFound(self._not_hosted(reader, source_name, project, version))
        assert source is not None  # (a view holds no records)
        try:
            promoted, skipped = await under_locks(
                locks_of(source, target, records), self._promote_locked, request, identity,
                source, target, project, version, frozenset(key_of(r) for r in records),
                asked.allow_denied)
        except PromotionRefused as e:
            raise (NotFound if e.gone else Conflict)(str(e)) from None
        except StorageError as e:
            raise storage_unavailable(e)
        return {"from": source_name, "to": target_name, "project": project, "version": version,
                "promoted": promoted, "skipped": skipped}

    async def _promote_locked(self, request: IRequest, identity: Identity,
                              source: HostedStack, target: HostedStack, project: str,
                              version: str, keys: frozenset[str], allow_denied: bool,
                              ) -> tuple[list[str], list[str]]:
        """
        Check the rights, the project's status, the advisories and each
        file against the target, then copy all or none of the files the
        source holds now, under the locks (a delete that held them first
        took its files away).
        """
        # (the credentials and the rights as they are now: a reload or a
        # revocation may have come while the lock was awaited)
        identity = await self._access.confirm(request, identity)
        reader = self._access.reader(request)
        if not reader.writes(project, target.name):
            raise Forbidden(f"{identity.name} may not upload {project} to {target.name}")
        promoter = self._promoter
        records = [r for r in release_of(source, project, version) if key_of(r) in keys]
        if not records:
            raise NotFound(f"no such release: {project} {version} in {source.name} "
                           "(deleted meanwhile)")
        promoter.refuse_closed(source.name, target.name, project)
        refuse_tags(source, target, project, records)
        # (a new project of the target in a namespace reserved there is its
        # owners' to make, as an upload's would be: PEP 752's 409)
        ChangeChecks(self._access, target.name).may_create(reader, project, target.index)
        override = self._overridden(reader, promoter.denials(
            source.name, target.name, project, version), project, version, allow_denied)
        # (the target's hash only to whoever may read it there)
        reveal = reader.reads(project, target.name)
        wanted, skipped = promoter.sort_out(target, records, reveal)
        if not wanted:
            return [], skipped
        _, adopted = await promoter.copy(source, target, wanted, identity.name, reveal)
        # (one write: the files of the release are one event)
        self._audit.record_all(request, identity, ChangeKind.PROMOTE, [Facts(
            index=_entry_index(target.name, self._registry.orders), target=source.name,
            detail=override, **facts_of(kept)) for kept in adopted])
        for kept in adopted:
            log.emit(LogLevel.warn if override is not None else LogLevel.info,
                     "{user} promoted {filename} from {source} to {target}"
                     + (" ({override})" if override is not None else ""),
                     user=identity.name, filename=kept.filename, source=source.name,
                     target=target.name, override=override)
        return [r.filename for r in adopted], skipped

    def _overridden(self, reader: Reader, denied: list[tuple[str, str]], project: str,
                    version: str, allow_denied: bool) -> str | None:
        """
        What the audit entries say of an admin's override of the
        advisories that deny the release (C{denied}: C{(index, ids)} each;
        L{None}: none deny it); 409 without an override, 403 for one asked
        by someone who is no admin (now).
        """
        if not denied:
            return None
        if not allow_denied:
            name, ids = denied[0]
            raise Conflict(f"{project} {version} is denied by the advisories of index "
                           f"{name} ({ids}): only an admin may promote it, with allow_denied")
        if not reader.is_admin:
            raise Forbidden(NOT_ADMIN)
        return "allow_denied: " + "; ".join(f"denied by {name} ({ids})" for name, ids in denied)

    def _not_hosted(self, reader: Reader, source_name: str, project: str,
                    version: str) -> str:
        """Why the release cannot be promoted from C{source_name}: the index that holds it."""
        for name in self._registry.orders[source_name]:
            stack = self._registry.stacks.get(name)
            if (name != source_name and stack is not None and reader.enters(name)
                    and reader.reads(project, name)
                    and release_of(stack, project, version)):
                return (f"no files of {project} {version} in {source_name}: {name} holds "
                        f"them; promote from {name}")
        return f"no such release: {project} {version} in {source_name}"


def _entry_index(name: object, known: Any) -> str | None:
    """An audit entry's C{index}: a known index's name, L{None} for the default or another."""
    return name if isinstance(name, str) and name in known and name != DEFAULT_INDEX else None


def promotion_form(request: IRequest) -> dict[str, Any]:
    """A form's fields of a promotion, as its JSON would name them (C{allow_denied} a truth)."""
    data: dict[str, Any] = {field: values[0].decode("utf-8", "replace")
                            for field in FIELDS
                            if (values := request.args.get(field.encode("ascii")))}
    if "allow_denied" in data:
        # (as JSON's true or false: anything else is refused by _asked)
        data["allow_denied"] = {"true": True, "false": False}.get(
            data["allow_denied"].lower(), data["allow_denied"])
    return data


def _asked_quietly(request: IRequest) -> dict[str, Any]:
    """What the body names, as far as it is a JSON object (for a refusal's audit entry)."""
    if is_form(request):
        data = promotion_form(request)
    else:
        try:
            data = json.loads(bounded_body(request, MAX_BODY))
        except (ValueError, RecursionError, TooLarge):
            return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str) and len(v) <= 200}


def _asked(request: IRequest) -> PromoteRequest:
    """
    The promotion the JSON body (or a urlencoded form) asks for: 413 for a
    body too large, 400 naming the field that is wrong.
    """
    if is_form(request):
        return promote_request(promotion_form(request))
    try:
        return promote_request(json.loads(bounded_body(request, MAX_BODY)))
    except (ValueError, RecursionError):
        raise BadRequest(SHAPE)


#: What a body that is not a promotion's object is told.
SHAPE = 'expected a JSON object: {"from": ..., "to": ..., "project": ..., "version": ...}'


def promote_request(data: object) -> PromoteRequest:
    """The promotion C{data}, a JSON value or a form's fields, asks for; 400 naming the field."""
    if not isinstance(data, dict):
        raise BadRequest(SHAPE)
    values = {}
    for field in ("from", "to", "project", "version"):
        value = data.get(field)
        if not isinstance(value, str) or not value.strip():
            raise BadRequest(f"{field}: missing, or not text")
        values[field] = value.strip()
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise BadRequest(f"{unknown[0]}: not a field of a promotion")
    allow_denied = data.get("allow_denied", False)
    if not isinstance(allow_denied, bool):
        raise BadRequest("allow_denied: true or false")
    if not is_valid_name(values["project"]):
        raise BadRequest(f"project: {values['project']!r} is not a valid project name")
    try:
        version = canonical_version(values["version"])
    except InvalidName:
        raise BadRequest(f"version: {values['version']!r} is not a valid version")
    return PromoteRequest(values["from"], values["to"], values["project"], version,
                          allow_denied)


def _text(value: object) -> str | None:
    """A short text of a request, for a refusal's audit entry; L{None} for anything else."""
    return value if isinstance(value, str) and len(value) <= 200 else None
